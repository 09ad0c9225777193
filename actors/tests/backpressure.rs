//! A writer that cannot keep up (its disk stalls) holds back only the
//! models that write: a sender's write waits for a place in the writer's
//! queue without holding the actors' thread, so another model on the same
//! thread is answered meanwhile, and the sender takes no other request
//! until then (one write of it waits, not thousands); once the disk
//! answers, every send is stored and delivered.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{contract, roomy};
use hvs_actors::{Hub, HubConfig, MailboxDefaults, Outgoing, VectorInput};
use hvs_storage::{Durability, FaultSwitch, Store, StoreConfig};

/// More sends than the writer's queue (4,096) and its group in commit
/// (at most 4,096) hold together.
const SENDS: usize = 10_000;

fn message(n: usize) -> Outgoing {
    Outgoing {
        payload: n.to_le_bytes().to_vec(),
        vector: VectorInput::Point(vec![1.0, 0.0, 0.0]),
        metadata: Default::default(),
        ttl_ms: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_writer_holds_back_the_sender_not_the_other_models_on_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultSwitch::new();
    let mut config = StoreConfig::file(dir.path().join("bp.redb"), Durability::Buffered);
    config.faults = Some(faults.clone());
    let store = Arc::new(Store::open(config).unwrap());
    let hub = Hub::start(
        store.clone(),
        HubConfig {
            // Both models' actors on one thread.
            arbiters: 1,
            mailboxes: MailboxDefaults {
                capacity: 2 * SENDS,
                ..MailboxDefaults::default()
            },
            ..HubConfig::default()
        },
    )
    .unwrap();
    let a = hub
        .connect_model(contract("a", roomy(), 4096), Path::new("."))
        .await
        .unwrap();
    let b = hub
        .connect_model(contract("b", roomy(), 4096), Path::new("."))
        .await
        .unwrap();

    faults.stall_syncs(true);
    let sends: Vec<_> = (0..SENDS)
        .map(|n| tokio::spawn(a.send_message("b", message(n))))
        .collect();
    // The queue fills up behind the stalled commit.
    let start = std::time::Instant::now();
    while store.queued_writes() < 4096 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the writer's queue never filled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // b shares a's thread and is answered while a's sends wait.
    let (stats, _) = tokio::time::timeout(Duration::from_secs(10), b.mailbox())
        .await
        .expect("a full writer queue held the actors' thread")
        .unwrap();
    assert_eq!(stats.pending, 0, "nothing is delivered before it is stored");
    // a's further sends wait in its own mailbox, not in the store.
    assert_eq!(store.writes_waiting(), 1);

    faults.stall_syncs(false);
    for s in sends {
        tokio::time::timeout(Duration::from_secs(60), s)
            .await
            .expect("a send answered once the disk answers")
            .unwrap()
            .unwrap();
    }
    let (stats, _) = b.mailbox().await.unwrap();
    assert_eq!(stats.pending, SENDS);
    hub.shutdown();
}
