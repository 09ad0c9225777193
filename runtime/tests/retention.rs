//! Retention seen by models in one process (`docs/SEMANTICS.md`,
//! "Retention"): a message a limit discards leaves its recipient's mailbox
//! too (pending or in flight: never delivered again, not a dead letter),
//! and `keep_acked_ms` removes a message once its recipient acked it.

mod common;

use std::time::Duration;

use common::{build, contract, eventually};
use hvs_runtime::{Durability, Outgoing, Runtime, RuntimeConfig};
use hvs_storage::Retention;

async fn runtime(durability: Durability, dir: &std::path::Path, retention: Retention) -> Runtime {
    let mut config = match durability {
        Durability::Memory => RuntimeConfig::memory(),
        d => RuntimeConfig::file(dir.join("db"), d),
    };
    config.store.retention = retention;
    let rt = Runtime::open(config).await.unwrap();
    for id in ["a", "b"] {
        rt.connect_model(build(contract(id))).await.unwrap();
    }
    rt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_message_leaves_the_mailbox_pending_or_in_flight() {
    for durability in [Durability::Memory, Durability::Buffered] {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(
            durability,
            dir.path(),
            Retention {
                max_messages: Some(2),
                ..Retention::default()
            },
        )
        .await;
        let (a, b) = (rt.model("a").unwrap(), rt.model("b").unwrap());
        let first = a.send_message("b", Outgoing::text("one")).await.unwrap();
        let got = b.receive_messages(10).await.unwrap();
        assert_eq!(got[0].message.id, first);
        // In flight at b when the next two push it out of a's namespace
        // (messages are stored in their sender's), then one still pending.
        let second = a.send_message("b", Outgoing::text("two")).await.unwrap();
        a.send_message("b", Outgoing::text("three")).await.unwrap();
        let fourth = a.send_message("b", Outgoing::text("four")).await.unwrap();
        let stats = eventually(Duration::from_secs(30), || async {
            let (stats, _) = b.mailbox().await.unwrap();
            (stats.discarded == 2).then_some(stats)
        })
        .await
        .expect("b's mailbox hears of both discards");
        assert_eq!((stats.in_flight, stats.pending), (0, 2), "{durability:?}");
        assert_eq!(stats.dead_lettered, 0, "not dead letters");
        assert_eq!(b.ack(&[first]).await.unwrap().unknown, vec![first]);
        let left: Vec<_> = b
            .receive_messages(10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.message.payload.clone())
            .collect();
        assert_eq!(left, vec![b"three".to_vec(), b"four".to_vec()]);
        let s = rt.storage();
        assert!(s.get_message(first).unwrap().is_none());
        assert!(s.get_message(second).unwrap().is_none());
        assert!(s.get_message(fourth).unwrap().is_some());
        assert_eq!(s.get_stats().unwrap().messages_discarded, 2);
        assert!(rt.verify_consistency().await.unwrap().consistent);
        rt.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_acked_removes_an_acked_message_at_every_durability() {
    for durability in [Durability::Memory, Durability::Buffered] {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime(
            durability,
            dir.path(),
            Retention {
                keep_acked_ms: Some(0),
                ..Retention::default()
            },
        )
        .await;
        let (a, b) = (rt.model("a").unwrap(), rt.model("b").unwrap());
        let acked = a.send_message("b", Outgoing::text("acked")).await.unwrap();
        let unacked = a.send_message("b", Outgoing::text("later")).await.unwrap();
        b.receive_messages(10).await.unwrap();
        b.ack(&[acked]).await.unwrap();
        let s = rt.storage();
        s.purge_due().unwrap();
        assert!(s.get_message(acked).unwrap().is_none(), "{durability:?}");
        assert!(s.get_message(unacked).unwrap().is_some(), "{durability:?}");
        assert_eq!(s.get_stats().unwrap().messages_purged, 1);
        rt.close().await.unwrap();
    }
}
