//! Messages whose TTL has passed leave storage: their row, their
//! settlements and their index entry, at every durability, and a reopen
//! does not bring them back. Messages without a TTL stay.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hvs_storage::{
    Durability, GeometrySpec, MessageRecord, SearchQuery, Settled, Settlement, SpaceConfig, Store,
    StoreConfig,
};
use uuid::Uuid;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A point of H^2 at distance `r` from the origin, at angle `a`.
fn point(r: f64, a: f64) -> Vec<f64> {
    vec![r.cosh(), r.sinh() * a.cos(), r.sinh() * a.sin()]
}

/// Message `i` to `b` and `c`, expiring at `expires_ms`.
fn message(i: usize, expires_ms: Option<u64>) -> MessageRecord {
    let now = now_ms();
    MessageRecord {
        id: Uuid::now_v7(),
        namespace: "chat".into(),
        from: "a".into(),
        to: vec!["b".into(), "c".into()],
        payload: format!("message {i}").into_bytes(),
        vector: point(0.1 + (i % 50) as f64 * 0.07, i as f64 * 0.61),
        metadata: Default::default(),
        sent_ms: now,
        expires_ms,
    }
}

fn append(s: &Store, ms: Vec<MessageRecord>) -> Vec<Arc<MessageRecord>> {
    let (tx, rx) = mpsc::channel();
    s.append_messages(
        ms,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv().unwrap().unwrap()
}

fn settle(s: &Store, settled: Vec<Settled>) {
    let (tx, rx) = mpsc::channel();
    s.settle_messages(
        settled,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv().unwrap().unwrap();
}

fn acked(id: Uuid, who: &str) -> Settled {
    Settled {
        message: id,
        recipient: who.into(),
        settlement: Settlement::Acked,
        at_ms: now_ms(),
    }
}

fn open(durability: Durability, path: &std::path::Path) -> Store {
    let s = Store::open(match durability {
        Durability::Memory => StoreConfig::memory(),
        d => StoreConfig::file(path, d),
    })
    .unwrap();
    s.create_namespace(SpaceConfig::new(
        "chat",
        GeometrySpec::Hyperboloid {
            dim: 2,
            curvature: 1.0,
        },
    ))
    .unwrap();
    s
}

/// Waits (up to a generous deadline) until none of `ids` is stored or
/// searchable. (The writer drops index entries right after the commit that
/// deleted their rows; a read in between sees the rows gone and the
/// entries still there.)
fn wait_until_purged(s: &Store, ids: &[Uuid]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = ids
            .iter()
            .filter(|id| s.get_message(**id).unwrap().is_some())
            .count();
        let indexed = searchable(s, true);
        let left = stored + ids.iter().filter(|id| indexed.contains(id)).count();
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} expired messages still stored or indexed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every message id a search over all of `chat` returns, exact or through
/// the graph.
fn searchable(s: &Store, exact: bool) -> HashSet<Uuid> {
    let mut q = SearchQuery::new("chat", point(0.0, 0.0), 10_000);
    q.exact = exact;
    s.semantic_search(&q)
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect()
}

/// What a store that has purged `gone` and keeps `kept` must show.
fn check_purged(s: &Store, gone: &[Arc<MessageRecord>], kept: &[Arc<MessageRecord>]) {
    let what = format!("{:?}", s.durability());
    for m in gone {
        assert!(s.get_message(m.id).unwrap().is_none(), "{what}");
    }
    for m in kept {
        assert_eq!(
            s.get_message(m.id).unwrap().as_deref(),
            Some(m.as_ref()),
            "{what}"
        );
    }
    let kept_ids: HashSet<Uuid> = kept.iter().map(|m| m.id).collect();
    for exact in [true, false] {
        assert_eq!(searchable(s, exact), kept_ids, "{what}, exact: {exact}");
        // Searched by its own vector, an expired message is not found;
        // the nearest hit is a kept one.
        for m in gone.iter().take(10) {
            let mut q = SearchQuery::new("chat", m.vector.clone(), 3);
            q.exact = exact;
            for h in s.semantic_search(&q).unwrap() {
                assert!(kept_ids.contains(&h.id), "{what}, exact: {exact}");
            }
        }
    }
    let stats = s.get_stats().unwrap();
    assert_eq!(stats.namespaces["chat"].vectors, kept.len(), "{what}");
    let unsettled: HashSet<Uuid> = s
        .unsettled_messages()
        .unwrap()
        .into_iter()
        .map(|u| u.message.id)
        .collect();
    if s.durability() != Durability::Memory {
        // What the test left unsettled: every kept message.
        assert_eq!(unsettled, kept_ids, "{what}");
    }
    for who in ["b", "c"] {
        for st in s.settlements_of(who).unwrap() {
            assert!(kept_ids.contains(&st.message), "{what}: {st:?}");
        }
    }
    let report = s.verify_consistency().unwrap();
    assert!(report.consistent, "{what}: {report:?}");
    assert_eq!(report.vectors, kept.len(), "{what}");
}

#[test]
fn expired_messages_leave_the_table_the_settlements_and_the_index() {
    for durability in [Durability::Memory, Durability::Buffered] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(durability, &dir.path().join("db"));
        let now = now_ms();
        // Expiring at several moments between 50 and 200 ms from now;
        // without a TTL; with a TTL of an hour.
        let short: Vec<MessageRecord> = (0..40)
            .map(|i| message(i, Some(now + 50 + (i as u64 % 4) * 50)))
            .collect();
        let forever: Vec<MessageRecord> = (40..60).map(|i| message(i, None)).collect();
        let later: Vec<MessageRecord> = (60..70)
            .map(|i| message(i, Some(now + 3_600_000)))
            .collect();
        let mut all = short;
        all.extend(forever);
        all.extend(later);
        let stored = append(&s, all);
        let (gone, kept) = stored.split_at(40);
        // Some of each settled: the settlements of the expired go with them.
        settle(
            &s,
            gone.iter()
                .step_by(3)
                .chain(kept.iter().step_by(3))
                .map(|m| acked(m.id, "b"))
                .collect(),
        );
        let ids: Vec<Uuid> = gone.iter().map(|m| m.id).collect();
        wait_until_purged(&s, &ids);
        // The index is told right after the commit that removed the rows.
        check_purged(&s, gone, kept);
        let stats = s.get_stats().unwrap();
        assert_eq!(stats.messages_purged, 40, "{durability:?}");
        assert_eq!(stats.messages_expiring, 10, "{durability:?}");
        // The dead letter (or a late ack) of a purged message is accepted
        // and dropped: no settlement row outlives its message.
        settle(
            &s,
            vec![Settled {
                message: gone[1].id,
                recipient: "c".into(),
                settlement: Settlement::DeadLettered {
                    reason: "expired".into(),
                },
                at_ms: now_ms(),
            }],
        );
        check_purged(&s, gone, kept);
        s.flush_index().unwrap();
        check_purged(&s, gone, kept);
        if durability == Durability::Memory {
            continue;
        }
        // A reopen brings back the kept messages and none of the purged.
        s.close().unwrap();
        let s = open(durability, &dir.path().join("db"));
        check_purged(&s, gone, kept);
        assert_eq!(s.get_stats().unwrap().messages_expiring, 10);
        // Without the graph dump too (the index rebuilt from the table). A
        // namespace this small has no graph, so maybe no dump to remove.
        drop(s);
        match std::fs::remove_dir_all(dir.path().join("db.graphs")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other.unwrap(),
        }
        let s = open(durability, &dir.path().join("db"));
        check_purged(&s, gone, kept);
    }
}

#[test]
fn messages_that_expire_while_the_store_is_closed_are_purged_after_the_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (gone, kept) = {
        let s = open(Durability::Buffered, &path);
        let now = now_ms();
        let mut ms: Vec<MessageRecord> = (0..30).map(|i| message(i, Some(now + 150))).collect();
        ms.extend((30..40).map(|i| message(i, None)));
        let stored = append(&s, ms);
        settle(&s, vec![acked(stored[0].id, "c")]);
        // A crash, as far as the purge is concerned: no close.
        drop(s);
        let (gone, kept) = stored.split_at(30);
        (gone.to_vec(), kept.to_vec())
    };
    while now_ms() <= gone[0].expires_ms.unwrap() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = open(Durability::Buffered, &path);
    let ids: Vec<Uuid> = gone.iter().map(|m| m.id).collect();
    wait_until_purged(&s, &ids);
    check_purged(&s, &gone, &kept);
    drop(s);
    let s = open(Durability::Buffered, &path);
    check_purged(&s, &gone, &kept);
}

#[test]
fn a_backlog_larger_than_one_purge_is_purged_in_several() {
    // More expired messages than one purge takes (10,000): all of them go,
    // each purge its own transaction.
    for durability in [Durability::Memory, Durability::Buffered] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(durability, &dir.path().join("db"));
        let n = 12_500;
        // Already expired when stored.
        let ms: Vec<MessageRecord> = (0..n).map(|i| message(i, Some(1))).collect();
        let kept = append(&s, vec![message(n, None)]);
        let commits_before = s.get_stats().unwrap().commits;
        let stored = append(&s, ms);
        let deadline = Instant::now() + Duration::from_secs(120);
        while s.get_stats().unwrap().messages_purged < n as u64 {
            assert!(Instant::now() < deadline, "{durability:?}: not purged");
            std::thread::sleep(Duration::from_millis(50));
        }
        let stats = s.get_stats().unwrap();
        if durability != Durability::Memory {
            // The append, and at least two purges.
            assert!(stats.commits >= commits_before + 3, "{stats:?}");
        }
        check_purged(&s, &stored, &kept);
    }
}
