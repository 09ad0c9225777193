//! Retention (`docs/SEMANTICS.md`, "Retention"): each limit and each
//! discard policy, `keep_acked_ms`, the store's defaults, and a reopen;
//! after every step the table, the ledger and the index agree
//! (`verify_consistency`). Time is a manual clock: the tests move it and
//! call `purge_due` instead of sleeping.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use hvs_storage::{
    DiscardPolicy, Discarded, Durability, GeometrySpec, MessageRecord, Retention, SearchQuery,
    Settled, Settlement, SpaceConfig, StorageError, Store, StoreClock, StoreConfig,
};
use uuid::Uuid;

/// Where the manual clock starts (ms since the epoch).
const T0: u64 = 1_700_000_000_000;

const DURABILITIES: [Durability; 2] = [Durability::Memory, Durability::Buffered];

fn point(i: usize) -> Vec<f64> {
    let (r, a) = (0.1 + (i % 50) as f64 * 0.07, i as f64 * 0.61);
    vec![r.cosh(), r.sinh() * a.cos(), r.sinh() * a.sin()]
}

/// Message `i` in `chat` to `b` and `c`, sent at `sent_ms`, with a payload
/// of `payload` bytes: it counts `payload + 24` bytes (3 coordinates).
fn message(i: usize, sent_ms: u64, payload: usize) -> MessageRecord {
    MessageRecord {
        id: Uuid::now_v7(),
        namespace: "chat".into(),
        from: "a".into(),
        to: vec!["b".into(), "c".into()],
        payload: vec![i as u8; payload],
        vector: point(i),
        metadata: Default::default(),
        sent_ms,
        expires_ms: None,
    }
}

fn messages(range: std::ops::Range<usize>, clock: &StoreClock) -> Vec<MessageRecord> {
    range.map(|i| message(i, clock.now_ms(), 8)).collect()
}

fn append(s: &Store, ms: Vec<MessageRecord>) -> Result<Vec<Arc<MessageRecord>>, StorageError> {
    let (tx, rx) = mpsc::channel();
    s.append_messages(
        ms,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv().unwrap()
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

fn acked(id: Uuid, who: &str, at_ms: u64) -> Settled {
    Settled {
        message: id,
        recipient: who.into(),
        settlement: Settlement::Acked,
        at_ms,
    }
}

fn h2() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    }
}

/// A store whose namespace `chat` has `own` retention (or the store's
/// `defaults`), and what its discard listener heard.
struct Fixture {
    store: Store,
    clock: StoreClock,
    heard: Arc<Mutex<Vec<Discarded>>>,
}

fn open_with(
    durability: Durability,
    path: &Path,
    defaults: Retention,
    own: Option<Retention>,
    clock: &StoreClock,
) -> Fixture {
    let mut config = match durability {
        Durability::Memory => StoreConfig::memory(),
        d => StoreConfig::file(path, d),
    };
    config.retention = defaults;
    config.clock = clock.clone();
    let store = Store::open(config).unwrap();
    let mut space = SpaceConfig::new("chat", h2());
    space.retention = own;
    match store.create_namespace(space) {
        Ok(()) | Err(StorageError::NamespaceExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    let heard = Arc::new(Mutex::new(Vec::new()));
    let h = heard.clone();
    store.on_discard(Arc::new(move |d: &[Discarded]| {
        h.lock().unwrap().extend_from_slice(d)
    }));
    Fixture {
        store,
        clock: clock.clone(),
        heard,
    }
}

/// A fresh store (in a directory that lives as long as the first half)
/// whose `chat` has `own` retention, on a manual clock at [`T0`].
fn fresh(durability: Durability, own: Retention) -> (tempfile::TempDir, Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let f = open_with(
        durability,
        &dir.path().join("db"),
        Retention::default(),
        Some(own),
        &StoreClock::manual(T0),
    );
    (dir, f)
}

/// Every message id a search over all of `chat` returns, exact and through
/// the graph (the same both ways).
fn searchable(s: &Store) -> HashSet<Uuid> {
    let mut found = Vec::new();
    for exact in [true, false] {
        let mut q = SearchQuery::new("chat", point(0), 10_000);
        q.exact = exact;
        found.push(
            s.semantic_search(&q)
                .unwrap()
                .into_iter()
                .map(|h| h.id)
                .collect::<HashSet<_>>(),
        );
    }
    assert_eq!(found[0], found[1]);
    found.swap_remove(0)
}

/// The store holds exactly `kept` of its messages, in the table and the
/// index, and storage and index agree.
fn check_holds(s: &Store, kept: &[&Arc<MessageRecord>], gone: &[&Arc<MessageRecord>]) {
    let what = format!("{:?}", s.durability());
    for m in kept {
        assert!(s.get_message(m.id).unwrap().is_some(), "{what}: kept");
    }
    for m in gone {
        assert!(s.get_message(m.id).unwrap().is_none(), "{what}: gone");
    }
    let ids: HashSet<Uuid> = kept.iter().map(|m| m.id).collect();
    assert_eq!(searchable(s), ids, "{what}");
    let report = s.verify_consistency().unwrap();
    assert!(report.consistent, "{what}: {report:?}");
    assert_eq!(report.vectors, kept.len(), "{what}");
    if s.durability() != Durability::Memory {
        let unsettled: HashSet<Uuid> = s
            .unsettled_messages()
            .unwrap()
            .into_iter()
            .map(|u| u.message.id)
            .collect();
        assert!(unsettled.is_subset(&ids), "{what}");
        for who in ["b", "c"] {
            for st in s.settlements_of(who).unwrap() {
                assert!(ids.contains(&st.message), "{what}: {st:?}");
            }
        }
    }
}

/// What the listener heard so far. It hears a commit's discards after the
/// commit's callers were answered: the writer runs one commit at a time,
/// so once a later write (`purge_due`, which discards nothing more in
/// these tests) is answered, the listener has heard the earlier ones.
fn heard_ids(f: &Fixture) -> Vec<Uuid> {
    f.store.purge_due().unwrap();
    f.heard.lock().unwrap().iter().map(|d| d.id).collect()
}

fn refs(ms: &[Arc<MessageRecord>]) -> Vec<&Arc<MessageRecord>> {
    ms.iter().collect()
}

#[test]
fn max_messages_with_discard_old_drops_the_oldest_and_tells_the_listener() {
    for durability in DURABILITIES {
        let (_dir, f) = fresh(
            durability,
            Retention {
                max_messages: Some(3),
                ..Retention::default()
            },
        );
        let first = append(&f.store, messages(0..2, &f.clock)).unwrap();
        settle(&f.store, vec![acked(first[0].id, "b", T0)]);
        let more = append(&f.store, messages(2..5, &f.clock)).unwrap();
        check_holds(&f.store, &refs(&more), &refs(&first));
        assert_eq!(heard_ids(&f), vec![first[0].id, first[1].id]);
        let heard = f.heard.lock().unwrap().clone();
        assert_eq!(heard.len(), 2);
        assert_eq!(heard[0].recipients, vec!["b".to_string(), "c".into()]);
        assert_eq!(heard[0].namespace, "chat");
        // One batch larger than the limit: its own oldest go too.
        let big = append(&f.store, messages(5..10, &f.clock)).unwrap();
        check_holds(&f.store, &refs(&big[2..]), &refs(&more));
        let stats = f.store.get_stats().unwrap();
        assert_eq!(stats.messages_discarded, 7, "{durability:?}");
        assert_eq!(stats.messages_purged, 0, "{durability:?}");
    }
}

#[test]
fn max_messages_with_discard_new_refuses_the_send_whole_and_keeps_the_rest() {
    for durability in DURABILITIES {
        let (_dir, f) = fresh(
            durability,
            Retention {
                max_messages: Some(3),
                discard: DiscardPolicy::New,
                ..Retention::default()
            },
        );
        let kept = append(&f.store, messages(0..2, &f.clock)).unwrap();
        // Two more do not fit in the one place left: neither is stored.
        let e = append(&f.store, messages(2..4, &f.clock)).unwrap_err();
        assert_eq!(e.code(), "namespace_full");
        assert!(e.is_validation());
        assert!(
            matches!(
                &e,
                StorageError::NamespaceFull {
                    limit: "max_messages",
                    max: 3,
                    ..
                }
            ),
            "{e}"
        );
        check_holds(&f.store, &refs(&kept), &[]);
        let third = append(&f.store, messages(4..5, &f.clock)).unwrap();
        assert_eq!(
            append(&f.store, messages(5..6, &f.clock))
                .unwrap_err()
                .code(),
            "namespace_full"
        );
        let all: Vec<_> = kept.iter().chain(&third).collect();
        check_holds(&f.store, &all, &[]);
        assert!(heard_ids(&f).is_empty());
        assert_eq!(f.store.get_stats().unwrap().messages_discarded, 0);
    }
}

#[test]
fn max_bytes_counts_payload_and_vector_under_both_policies() {
    // Each message counts 8 + 3 × 8 = 32 bytes; 100 bytes hold 3.
    for durability in DURABILITIES {
        for discard in [DiscardPolicy::Old, DiscardPolicy::New] {
            let (_dir, f) = fresh(
                durability,
                Retention {
                    max_bytes: Some(100),
                    discard,
                    ..Retention::default()
                },
            );
            let three = append(&f.store, messages(0..3, &f.clock)).unwrap();
            let fourth = append(&f.store, messages(3..4, &f.clock));
            match discard {
                DiscardPolicy::Old => {
                    let fourth = fourth.unwrap();
                    let kept: Vec<_> = three[1..].iter().chain(&fourth).collect();
                    check_holds(&f.store, &kept, &[&three[0]]);
                }
                _ => {
                    let e = fourth.unwrap_err();
                    assert!(
                        matches!(
                            &e,
                            StorageError::NamespaceFull {
                                limit: "max_bytes",
                                max: 100,
                                ..
                            }
                        ),
                        "{e}"
                    );
                    check_holds(&f.store, &refs(&three), &[]);
                }
            }
            // A message larger than the limit alone never fits: refused
            // whatever the policy, and nothing is discarded for it.
            let before = f.store.get_stats().unwrap().messages_discarded;
            let huge = message(9, f.clock.now_ms(), 77);
            let e = append(&f.store, vec![huge]).unwrap_err();
            assert_eq!(e.code(), "namespace_full", "{e}");
            assert!(e.to_string().contains("101 bytes can never fit"), "{e}");
            assert_eq!(f.store.get_stats().unwrap().messages_discarded, before);
        }
    }
}

#[test]
fn max_age_removes_messages_once_older_than_the_limit_whatever_the_policy() {
    for durability in DURABILITIES {
        for discard in [DiscardPolicy::Old, DiscardPolicy::New] {
            let (_dir, f) = fresh(
                durability,
                Retention {
                    max_age_ms: Some(10_000),
                    discard,
                    ..Retention::default()
                },
            );
            let old = append(&f.store, messages(0..3, &f.clock)).unwrap();
            f.clock.advance(6_000);
            let young = append(&f.store, messages(3..5, &f.clock)).unwrap();
            f.clock.advance(3_999);
            f.store.purge_due().unwrap();
            let all: Vec<_> = old.iter().chain(&young).collect();
            check_holds(&f.store, &all, &[]);
            // 10 s after the first three were sent.
            f.clock.advance(1);
            f.store.purge_due().unwrap();
            check_holds(&f.store, &refs(&young), &refs(&old));
            assert_eq!(heard_ids(&f).len(), 3);
            f.clock.advance(6_000);
            f.store.purge_due().unwrap();
            check_holds(&f.store, &[], &refs(&young));
            assert_eq!(f.store.get_stats().unwrap().messages_discarded, 5);
        }
    }
}

#[test]
fn keep_acked_removes_a_message_once_every_recipient_settled_it() {
    for durability in DURABILITIES {
        let (_dir, f) = fresh(
            durability,
            Retention {
                keep_acked_ms: Some(5_000),
                ..Retention::default()
            },
        );
        assert!(f.store.keeps_settlements());
        let ms = append(&f.store, messages(0..3, &f.clock)).unwrap();
        let now = f.clock.now_ms();
        // 0: both recipients; 1: acked by one, dead-lettered by the other;
        // 2: only one of them.
        settle(
            &f.store,
            vec![
                acked(ms[0].id, "b", now),
                acked(ms[0].id, "c", now),
                acked(ms[1].id, "b", now),
                Settled {
                    message: ms[1].id,
                    recipient: "c".into(),
                    settlement: Settlement::DeadLettered {
                        reason: "max_attempts".into(),
                    },
                    at_ms: now,
                },
                acked(ms[2].id, "b", now),
            ],
        );
        f.clock.advance(4_999);
        f.store.purge_due().unwrap();
        check_holds(&f.store, &refs(&ms), &[]);
        f.clock.advance(1);
        f.store.purge_due().unwrap();
        check_holds(&f.store, &[&ms[2]], &[&ms[0], &ms[1]]);
        let stats = f.store.get_stats().unwrap();
        assert_eq!(stats.messages_purged, 2, "{durability:?}");
        assert_eq!(stats.messages_discarded, 0, "{durability:?}");
        // Settled messages are not a mailbox's business any more.
        assert!(heard_ids(&f).is_empty());
    }
}

#[test]
fn without_retention_acked_messages_are_kept_as_before() {
    for durability in DURABILITIES {
        let dir = tempfile::tempdir().unwrap();
        let f = open_with(
            durability,
            &dir.path().join("db"),
            Retention::default(),
            None,
            &StoreClock::manual(T0),
        );
        assert_eq!(
            f.store.keeps_settlements(),
            durability != Durability::Memory
        );
        let ms = append(&f.store, messages(0..50, &f.clock)).unwrap();
        settle(
            &f.store,
            ms.iter()
                .flat_map(|m| [acked(m.id, "b", T0), acked(m.id, "c", T0)])
                .collect(),
        );
        f.clock.advance(365 * 86_400_000);
        f.store.purge_due().unwrap();
        check_holds(&f.store, &refs(&ms), &[]);
    }
}

#[test]
fn the_store_defaults_apply_to_namespaces_without_their_own() {
    for durability in DURABILITIES {
        let dir = tempfile::tempdir().unwrap();
        let defaults = Retention {
            max_messages: Some(2),
            discard: DiscardPolicy::New,
            ..Retention::default()
        };
        let f = open_with(
            durability,
            &dir.path().join("db"),
            defaults,
            None,
            &StoreClock::manual(T0),
        );
        // `own` has its own retention: none of the defaults applies.
        f.store
            .create_namespace(SpaceConfig::new("own", h2()).with_retention(Retention {
                max_age_ms: Some(60_000),
                ..Retention::default()
            }))
            .unwrap();
        assert_eq!(f.store.namespace("chat").unwrap().retention, None);
        append(&f.store, messages(0..2, &f.clock)).unwrap();
        assert_eq!(
            append(&f.store, messages(2..3, &f.clock))
                .unwrap_err()
                .code(),
            "namespace_full"
        );
        let own: Vec<MessageRecord> = messages(0..5, &f.clock)
            .into_iter()
            .map(|m| MessageRecord {
                namespace: "own".into(),
                ..m
            })
            .collect();
        assert_eq!(append(&f.store, own).unwrap().len(), 5);
    }
}

#[test]
fn limits_of_zero_are_refused() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let e = s
        .create_namespace(SpaceConfig::new("x", h2()).with_retention(Retention {
            max_bytes: Some(0),
            ..Retention::default()
        }))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_retention");
    assert!(s.namespace("x").is_err());
    let mut config = StoreConfig::memory();
    config.retention.max_age_ms = Some(0);
    let e = Store::open(config).err().unwrap();
    assert_eq!(e.code(), "invalid_retention", "{e}");
}

#[test]
fn limits_hold_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = StoreClock::manual(T0);
    let own = Retention {
        max_messages: Some(4),
        keep_acked_ms: Some(1_000),
        ..Retention::default()
    };
    let reopen =
        |defaults: Retention| open_with(Durability::Buffered, &path, defaults, Some(own), &clock);
    let (first, acked_both) = {
        let f = reopen(Retention::default());
        let ms = append(&f.store, messages(0..4, &f.clock)).unwrap();
        settle(
            &f.store,
            vec![acked(ms[3].id, "b", T0), acked(ms[3].id, "c", T0)],
        );
        // A crash as far as retention goes: no close.
        drop(f);
        (ms[..3].to_vec(), ms[3].clone())
    };
    // The ledger came back: one more message drops exactly the oldest.
    let f = reopen(Retention::default());
    let fifth = append(&f.store, messages(4..5, &f.clock)).unwrap();
    let kept: Vec<_> = first[1..]
        .iter()
        .chain([&acked_both])
        .chain(&fifth)
        .collect();
    check_holds(&f.store, &kept, &[&first[0]]);
    // So did the removal scheduled for the message both recipients acked
    // (at its last settlement + 1 s).
    f.clock.set(T0 + 1_000);
    f.store.purge_due().unwrap();
    let kept: Vec<_> = first[1..].iter().chain(&fifth).collect();
    check_holds(&f.store, &kept, &[&first[0], &acked_both]);
    f.store.close().unwrap();
    // The namespace's own limits are stored with it: defaults given at a
    // reopen do not replace them.
    let f = reopen(Retention {
        max_messages: Some(1),
        ..Retention::default()
    });
    f.store.purge_due().unwrap();
    check_holds(&f.store, &kept, &[]);
    assert_eq!(f.store.namespace("chat").unwrap().retention, Some(own));
}

#[test]
fn lowered_defaults_discard_the_excess_at_the_first_sweep_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let clock = StoreClock::manual(T0);
    let ms = {
        let f = open_with(
            Durability::Buffered,
            &path,
            Retention::default(),
            None,
            &clock,
        );
        append(&f.store, messages(0..6, &f.clock)).unwrap()
    };
    let f = open_with(
        Durability::Buffered,
        &path,
        Retention {
            max_messages: Some(2),
            ..Retention::default()
        },
        None,
        &clock,
    );
    f.store.purge_due().unwrap();
    check_holds(&f.store, &refs(&ms[4..]), &refs(&ms[..4]));
    assert_eq!(
        heard_ids(&f),
        ms[..4].iter().map(|m| m.id).collect::<Vec<_>>()
    );
}
