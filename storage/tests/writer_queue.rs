//! The writer's queue when the writer cannot keep up (here: its disk stops
//! answering fsyncs): a write handed over meanwhile never holds its
//! caller's thread, waits in line for a place, and is committed in the
//! order it was handed over once the disk answers again; `try_slot` says
//! the queue is full, and `slot()` resolves when a place is this caller's.

use std::path::Path;
use std::sync::mpsc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hvs_storage::{
    Durability, FaultSwitch, GeometrySpec, MessageRecord, SpaceConfig, Store, StoreConfig,
};
use uuid::Uuid;

/// More than the queue holds (4,096) and the group the writer has taken
/// (at most 4,096) together: some writes must wait for a place.
const WRITES: usize = 10_000;

fn open(path: &Path, faults: &FaultSwitch) -> Store {
    let mut config = StoreConfig::file(path, Durability::Buffered);
    config.faults = Some(faults.clone());
    let s = Store::open(config).unwrap();
    s.create_namespace(SpaceConfig::new(
        "n",
        GeometrySpec::Hyperboloid {
            dim: 2,
            curvature: 1.0,
        },
    ))
    .unwrap();
    s
}

fn message(n: usize) -> MessageRecord {
    let r = 0.1 + n as f64 / WRITES as f64;
    MessageRecord {
        id: Uuid::now_v7(),
        namespace: "n".into(),
        from: "a".into(),
        to: vec!["b".into()],
        payload: n.to_le_bytes().to_vec(),
        vector: vec![r.cosh(), r.sinh(), 0.0],
        metadata: Default::default(),
        sent_ms: 1,
        expires_ms: None,
    }
}

fn wait_until(ok: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn writes_wait_in_line_for_a_stalled_writer_without_holding_their_caller() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultSwitch::new();
    let store = std::sync::Arc::new(open(&dir.path().join("q.redb"), &faults));
    faults.stall_syncs(true);

    // Every write is handed over from one thread, which must get through
    // all of them while the writer is held in its first commit.
    let (done_tx, done_rx) = mpsc::channel();
    let (handed_tx, handed_rx) = mpsc::channel();
    let s = store.clone();
    let caller = std::thread::spawn(move || {
        for n in 0..WRITES {
            let done = done_tx.clone();
            s.append_messages(
                vec![message(n)],
                Box::new(move |r| {
                    let _ = done.send((n, r.map(|stored| stored[0].id)));
                }),
            );
        }
        handed_tx.send(()).unwrap();
    });
    handed_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("handing writes over to a stalled writer held the caller's thread");
    caller.join().unwrap();

    // Still stalled: nothing committed, the queue full (once the writer
    // has taken its first group), a new place in turn.
    wait_until(|| store.queued_writes() == 4096);
    assert!(
        done_rx.try_recv().is_err(),
        "a write answered while the disk was stalled"
    );
    assert!(
        store.try_slot().is_none(),
        "the queue had room with {WRITES} writes waiting"
    );
    let mut turn = Box::pin(store.slot());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(turn.as_mut().poll(&mut cx).is_pending());

    faults.stall_syncs(false);
    let mut ids = Vec::with_capacity(WRITES);
    for expected in 0..WRITES {
        let (n, r) = done_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("every write is answered once the disk answers");
        assert_eq!(
            n, expected,
            "writes were committed out of the order they were handed over"
        );
        ids.push(r.unwrap());
    }
    // The place taken in turn comes, and a write handed over with it goes
    // through at once.
    let slot = loop {
        if let Poll::Ready(slot) = turn.as_mut().poll(&mut cx) {
            break slot;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let (tx, rx) = mpsc::channel();
    store.append_messages_in(
        slot,
        vec![message(WRITES)],
        Box::new(move |r| {
            let _ = tx.send(r.map(|_| ()));
        }),
    );
    rx.recv_timeout(Duration::from_secs(60)).unwrap().unwrap();
    for id in [ids[0], ids[WRITES / 2], ids[WRITES - 1]] {
        assert!(store.get_message(id).unwrap().is_some());
    }
    assert_eq!(store.queued_writes(), 0);
}

/// A place waited for and then given up (its caller gone) goes to the
/// next in line; nothing is lost or held.
#[test]
fn a_place_given_up_goes_to_the_next_in_line() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultSwitch::new();
    let store = std::sync::Arc::new(open(&dir.path().join("q.redb"), &faults));
    faults.stall_syncs(true);
    let (done_tx, done_rx) = mpsc::channel();
    for n in 0..WRITES {
        let done = done_tx.clone();
        store.append_messages(
            vec![message(n)],
            Box::new(move |r| {
                let _ = done.send(r.is_ok());
            }),
        );
    }
    let mut cx = Context::from_waker(Waker::noop());
    let mut given_up = Box::pin(store.slot());
    assert!(given_up.as_mut().poll(&mut cx).is_pending());
    let mut kept = Box::pin(store.slot());
    drop(given_up);
    faults.stall_syncs(false);
    for _ in 0..WRITES {
        assert!(done_rx.recv_timeout(Duration::from_secs(60)).unwrap());
    }
    let slot = loop {
        if let Poll::Ready(slot) = kept.as_mut().poll(&mut cx) {
            break slot;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(store.queued_writes(), 1, "only the kept place is held");
    drop(slot);
    assert_eq!(store.queued_writes(), 0);
}
