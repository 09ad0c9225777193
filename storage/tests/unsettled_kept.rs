//! `StoreConfig::keep_unsettled`: the open keeps the unsettled messages it
//! reads, and the first `take_unsettled_messages` hands them over (the
//! actors' hub refills the mailboxes from them without reading every
//! message row again). What it returns is always what
//! `unsettled_messages` would: a commit between the open and the take, or
//! a second take, reads the table.

use std::path::Path;
use std::sync::{Arc, mpsc};

use hvs_storage::{
    Durability, GeometrySpec, MessageRecord, Settled, Settlement, SpaceConfig, Store, StoreConfig,
    Unsettled,
};
use uuid::Uuid;

fn message(to: &[&str], r: f64) -> MessageRecord {
    MessageRecord {
        id: Uuid::now_v7(),
        namespace: "chat".into(),
        from: "a".into(),
        to: to.iter().map(|s| s.to_string()).collect(),
        payload: format!("hello at {r}").into_bytes(),
        vector: vec![r.cosh(), r.sinh(), 0.0],
        metadata: Default::default(),
        sent_ms: 1,
        expires_ms: None,
    }
}

fn open(path: &Path, keep_unsettled: bool) -> Store {
    let mut config = StoreConfig::file(path, Durability::Buffered);
    config.keep_unsettled = keep_unsettled;
    Store::open(config).unwrap()
}

fn append(s: &Store, ms: Vec<MessageRecord>) -> Vec<Arc<MessageRecord>> {
    let (tx, rx) = mpsc::channel();
    s.append_messages(ms, Box::new(move |r| drop(tx.send(r))));
    rx.recv().unwrap().unwrap()
}

fn ack(s: &Store, m: &MessageRecord, recipient: &str) {
    let settled = Settled {
        message: m.id,
        recipient: recipient.into(),
        settlement: Settlement::Acked,
        at_ms: 2,
    };
    let (tx, rx) = mpsc::channel();
    s.settle_messages(vec![settled], Box::new(move |r| drop(tx.send(r))));
    rx.recv().unwrap().unwrap();
}

fn owed(u: Vec<Unsettled>) -> Vec<(Uuid, Vec<String>)> {
    u.into_iter()
        .map(|u| (u.message.id, u.recipients))
        .collect()
}

/// A closed store holding three messages: the first owed to `c` only (`b`
/// acked it), the second to `b`, the third settled by everyone.
fn stored(path: &Path) -> Vec<Arc<MessageRecord>> {
    let s = open(path, false);
    s.create_namespace(SpaceConfig::new(
        "chat",
        GeometrySpec::Hyperboloid {
            dim: 2,
            curvature: 1.0,
        },
    ))
    .unwrap();
    let ms = append(
        &s,
        vec![
            message(&["b", "c"], 0.1),
            message(&["b"], 0.2),
            message(&["c"], 0.3),
        ],
    );
    ack(&s, &ms[0], "b");
    ack(&s, &ms[2], "c");
    s.close().unwrap();
    ms
}

#[test]
fn the_first_take_hands_over_what_the_open_read_then_the_table_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ms = stored(&path);
    let s = open(&path, true);
    let first = s.take_unsettled_messages().unwrap();
    assert_eq!(first[0].message.as_ref(), ms[0].as_ref());
    assert_eq!(
        owed(first),
        vec![
            (ms[0].id, vec!["c".to_string()]),
            (ms[1].id, vec!["b".into()])
        ]
    );
    // Later takes read the table: they see what was settled since.
    ack(&s, &ms[1], "b");
    assert_eq!(
        owed(s.take_unsettled_messages().unwrap()),
        vec![(ms[0].id, vec!["c".to_string()])]
    );
    assert_eq!(
        owed(s.take_unsettled_messages().unwrap()),
        owed(s.unsettled_messages().unwrap())
    );
}

#[test]
fn a_commit_before_the_first_take_is_not_missed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ms = stored(&path);
    let s = open(&path, true);
    ack(&s, &ms[0], "c");
    let later = append(&s, vec![message(&["d"], 0.4)]);
    assert_eq!(
        owed(s.take_unsettled_messages().unwrap()),
        vec![
            (ms[1].id, vec!["b".to_string()]),
            (later[0].id, vec!["d".into()])
        ]
    );
}

#[test]
fn a_store_opened_without_keeping_reads_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let ms = stored(&path);
    let s = open(&path, false);
    assert_eq!(
        owed(s.take_unsettled_messages().unwrap()),
        vec![
            (ms[0].id, vec!["c".to_string()]),
            (ms[1].id, vec!["b".into()])
        ]
    );
    assert_eq!(
        owed(s.take_unsettled_messages().unwrap()),
        owed(s.unsettled_messages().unwrap())
    );
}
