//! A mirror (`Store::mirror_changes`) ends up holding everything its
//! source holds: namespaces and vectors as a sync job copies them, and
//! also messages, settlements, expiries and catalog records, so that it can
//! take the source's place (`docs/CLUSTER.md`); applied twice, nothing
//! changes. And a store whose write fence is closed refuses its own writes
//! with `not_primary` while it keeps applying its source's changes.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use hvs_storage::{
    ApplyOutcome, Change, ChangeBody, ChangeKind, ConflictStrategy, Durability, GeometrySpec,
    MessageRecord, NewVector, Settled, Settlement, SpaceConfig, StorageError, Store, StoreConfig,
};
use uuid::Uuid;

const NS: &str = "chat";

fn open(dir: &tempfile::TempDir, name: &str) -> Store {
    Store::open(StoreConfig::file(
        dir.path().join(name),
        Durability::Buffered,
    ))
    .unwrap()
}

fn message(to: &str, text: &str, expires_ms: Option<u64>) -> MessageRecord {
    MessageRecord {
        id: Uuid::now_v7(),
        namespace: NS.into(),
        from: "alice".into(),
        to: vec![to.into()],
        payload: text.as_bytes().to_vec(),
        vector: vec![0.1, 0.2],
        metadata: Default::default(),
        sent_ms: 1,
        expires_ms,
    }
}

fn append(s: &Store, m: Vec<MessageRecord>) {
    let (tx, rx) = mpsc::channel();
    s.append_messages(m, Box::new(move |r| tx.send(r.map(drop)).unwrap()));
    rx.recv().unwrap().unwrap();
}

fn settle(s: &Store, settled: Vec<Settled>) {
    let (tx, rx) = mpsc::channel();
    s.settle_messages(settled, Box::new(move |r| tx.send(r).unwrap()));
    rx.recv().unwrap().unwrap();
}

/// The source's feed as its publisher sends it: message rows attached.
fn feed(s: &Store) -> Vec<Change> {
    let mut out = s.changes_since(0, 10_000).unwrap();
    for c in &mut out {
        if c.kind == ChangeKind::PutMessage
            && let Some(id) = c.id
            && let Some(m) = s.get_message(id).unwrap()
        {
            c.body = Some(ChangeBody::Message(Box::new((*m).clone())));
        }
    }
    out
}

#[test]
fn a_mirror_holds_messages_settlements_and_catalog_records_and_applies_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let source = open(&dir, "source.redb");
    let mirror = open(&dir, "mirror.redb");
    source
        .create_namespace(SpaceConfig::new(NS, GeometrySpec::Euclidean { dim: 2 }))
        .unwrap();
    source
        .store_vector(NewVector::new(NS, vec![1.0, 2.0]))
        .unwrap();
    let (kept, acked) = (message("bob", "kept", None), message("bob", "acked", None));
    let (kept_id, acked_id) = (kept.id, acked.id);
    append(&source, vec![kept, acked]);
    settle(
        &source,
        vec![Settled {
            message: acked_id,
            recipient: "bob".into(),
            settlement: Settlement::Acked,
            at_ms: 2,
        }],
    );
    source
        .catalog_put("model", "bob", b"contract".to_vec())
        .unwrap();
    source
        .catalog_put("_local", "x", b"not mirrored".to_vec())
        .unwrap();

    let changes = feed(&source);
    let outcomes = mirror
        .mirror_changes("mirror", ConflictStrategy::LastWriteWins, changes.clone())
        .unwrap();
    assert!(
        outcomes.iter().all(|o| matches!(o, ApplyOutcome::Applied)),
        "{outcomes:?}"
    );
    // What bob's mailbox holds again on the mirror: the unacked one only.
    let pending: Vec<Uuid> = mirror
        .unsettled_messages()
        .unwrap()
        .into_iter()
        .map(|u| u.message.id)
        .collect();
    assert_eq!(pending, vec![kept_id]);
    assert_eq!(
        mirror.get_message(kept_id).unwrap().unwrap().payload,
        b"kept"
    );
    assert_eq!(
        mirror.catalog_list("model").unwrap(),
        vec![("bob".to_string(), b"contract".to_vec())]
    );
    assert!(mirror.catalog_list("_local").unwrap().is_empty());
    assert_eq!(
        mirror.count(NS, None).unwrap(),
        source.count(NS, None).unwrap()
    );

    // Applied again (a redelivery): nothing changes, nothing is logged.
    let before = mirror.last_change();
    let again = mirror
        .mirror_changes("mirror", ConflictStrategy::LastWriteWins, changes)
        .unwrap();
    assert!(
        again
            .iter()
            .all(|o| matches!(o, ApplyOutcome::Unchanged | ApplyOutcome::Applied)),
        "{again:?}"
    );
    assert_eq!(mirror.unsettled_messages().unwrap().len(), 1);
    assert_eq!(mirror.last_change(), before, "a repeat logs nothing");

    // A plain sync job does not take messages.
    let job = open(&dir, "job.redb");
    let outcomes = job
        .apply_changes("job", ConflictStrategy::LastWriteWins, feed(&source))
        .unwrap();
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, ApplyOutcome::Refused(_)))
    );
    assert!(job.unsettled_messages().unwrap().is_empty());
}

#[test]
fn a_closed_fence_refuses_own_writes_but_not_the_sources_changes() {
    let dir = tempfile::tempdir().unwrap();
    let source = open(&dir, "source.redb");
    let mirror = open(&dir, "mirror.redb");
    source
        .create_namespace(SpaceConfig::new(NS, GeometrySpec::Euclidean { dim: 2 }))
        .unwrap();
    mirror.fence().close(Some("127.0.0.1:7411".to_string()));
    let refused =
        mirror.create_namespace(SpaceConfig::new("mine", GeometrySpec::Euclidean { dim: 2 }));
    match refused {
        Err(e @ StorageError::NotPrimary { .. }) => {
            assert_eq!(e.code(), "not_primary");
            assert!(e.to_string().contains("127.0.0.1:7411"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    mirror
        .mirror_changes("mirror", ConflictStrategy::LastWriteWins, feed(&source))
        .unwrap();
    assert!(mirror.namespace(NS).is_ok(), "the source's changes apply");
    let refused = mirror.store_vector(NewVector::new(NS, vec![0.0, 0.0]));
    assert!(matches!(refused, Err(StorageError::NotPrimary { .. })));
    assert_eq!(mirror.count(NS, None).unwrap(), 0, "nothing half-written");

    // A lease opens it until its deadline, and no longer.
    let now = Instant::now();
    mirror.fence().hold(3, now + Duration::from_secs(60));
    mirror
        .store_vector(NewVector::new(NS, vec![0.0, 0.0]))
        .unwrap();
    mirror.fence().hold(4, now);
    let refused = mirror.store_vector(NewVector::new(NS, vec![1.0, 0.0]));
    assert!(matches!(
        refused,
        Err(StorageError::NotPrimary { primary: None })
    ));
    assert_eq!(mirror.count(NS, None).unwrap(), 1);
}
