//! Operations over many vectors: compare-and-set updates, deleting by ids
//! and by filter, counting, scrolling in id order under concurrent writes,
//! and deleting a namespace (refused while messages are in it, gone after a
//! reopen).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};

use hvs_storage::{
    ChangeKind, Durability, Filter, GeometrySpec, MAX_RESULTS, MessageRecord, NewVector,
    SearchQuery, SpaceConfig, StorageError, Store, StoreConfig, VectorRecord, VectorUpdate,
};
use serde_json::json;
use uuid::Uuid;

fn h2() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    }
}

/// A point of H^2 at distance `r` from the origin along the first axis.
fn point(r: f64) -> Vec<f64> {
    vec![r.cosh(), r.sinh(), 0.0]
}

fn memory_store(namespaces: &[&str]) -> Store {
    let s = Store::open(StoreConfig::memory()).unwrap();
    for ns in namespaces {
        s.create_namespace(SpaceConfig::new(*ns, h2())).unwrap();
    }
    s
}

/// Stores a vector with metadata `{"n": n, "even": n.is_multiple_of(2)}`.
fn put(s: &Store, ns: &str, n: u64) -> VectorRecord {
    let mut v = NewVector::new(ns, point(n as f64 * 0.01));
    v.metadata = serde_json::from_value(json!({"n": n, "even": n.is_multiple_of(2)})).unwrap();
    s.store_vector(v).unwrap()
}

/// Polls until `ns` holds at least `n` vectors (a minute at most).
fn wait_for_count(s: &Store, ns: &str, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while s.count(ns, None).unwrap() < n {
        assert!(std::time::Instant::now() < deadline, "{ns} never held {n}");
        std::thread::yield_now();
    }
}

fn even() -> Filter {
    Filter::Eq("even".into(), json!(true))
}

fn ids(records: &[VectorRecord]) -> Vec<Uuid> {
    records.iter().map(|r| r.id).collect()
}

/// Every page of a scroll, concatenated; checks each cursor on the way.
fn scroll_all(s: &Store, ns: &str, limit: usize, filter: Option<&Filter>) -> Vec<VectorRecord> {
    let (mut all, mut after) = (Vec::new(), None);
    loop {
        let (page, next) = s.scroll(ns, after, limit, filter).unwrap();
        assert!(page.len() <= limit);
        all.extend(page.iter().cloned());
        match next {
            Some(n) => {
                assert_eq!(
                    Some(n),
                    page.last().map(|r| r.id),
                    "the cursor is the last id"
                );
                after = Some(n);
            }
            None => return all,
        }
    }
}

#[test]
fn a_conditioned_update_applies_only_at_the_version_it_names() {
    let s = memory_store(&["a"]);
    let r = put(&s, "a", 1);
    let at = |version, r: f64| VectorUpdate {
        data: Some(point(r)),
        if_version: Some(version),
        ..VectorUpdate::default()
    };
    let up = s.update_vector(r.id, at(1, 0.5)).unwrap();
    assert_eq!(up.version, 2);
    let e = s.update_vector(r.id, at(1, 0.9)).unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::VersionConflict {
                id,
                expected: 1,
                current: 2
            } if id == r.id
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), "version_conflict");
    assert!(e.is_validation());
    assert_eq!(s.retrieve_vector(r.id).unwrap().unwrap(), up, "unchanged");
    assert_eq!(s.update_vector(r.id, at(2, 0.9)).unwrap().version, 3);
    // Without a condition, any version is updated.
    assert_eq!(
        s.update_vector(r.id, VectorUpdate::default())
            .unwrap()
            .version,
        4
    );
    // A missing vector, conditioned or not.
    let missing = Uuid::now_v7();
    for update in [VectorUpdate::default(), at(1, 0.1)] {
        let e = s.update_vector(missing, update).unwrap_err();
        assert!(matches!(e, StorageError::VectorNotFound(id) if id == missing));
        assert_eq!(e.code(), "vector_not_found");
    }
}

#[test]
fn of_concurrent_updates_conditioned_on_one_version_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        Store::open(StoreConfig::file(
            dir.path().join("v.redb"),
            Durability::Buffered,
        ))
        .unwrap(),
    );
    s.create_namespace(SpaceConfig::new("a", h2())).unwrap();
    let id = put(&s, "a", 1).id;
    const THREADS: usize = 8;
    for version in 1..=5u64 {
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (s, barrier) = (s.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let update = VectorUpdate {
                        data: Some(point(t as f64 * 0.1)),
                        if_version: Some(version),
                        ..VectorUpdate::default()
                    };
                    barrier.wait();
                    s.update_vector(id, update)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let won: Vec<&VectorRecord> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "round {version}: {results:?}");
        assert_eq!(won[0].version, version + 1);
        for r in &results {
            if let Err(e) = r {
                assert!(
                    matches!(e, StorageError::VersionConflict { expected, current, .. }
                        if *expected == version && *current == version + 1),
                    "{e:?}"
                );
            }
        }
        assert_eq!(s.retrieve_vector(id).unwrap().unwrap(), *won[0]);
    }
}

#[test]
fn delete_vectors_answers_per_id_in_one_commit() {
    let s = memory_store(&["a"]);
    let rs: Vec<VectorRecord> = (0..5).map(|n| put(&s, "a", n)).collect();
    let before = s.get_stats().unwrap();
    let asked = [rs[0].id, Uuid::now_v7(), rs[3].id, rs[0].id];
    assert_eq!(
        s.delete_vectors(&asked).unwrap(),
        vec![true, false, true, false]
    );
    let after = s.get_stats().unwrap();
    assert_eq!(after.commits, before.commits + 1, "one commit");
    let feed = s.changes_since(before.last_change, 100).unwrap();
    let deleted: Vec<(ChangeKind, Option<Uuid>)> = feed.iter().map(|c| (c.kind, c.id)).collect();
    assert_eq!(
        deleted,
        vec![
            (ChangeKind::Delete, Some(rs[0].id)),
            (ChangeKind::Delete, Some(rs[3].id))
        ]
    );
    assert_eq!(s.count("a", None).unwrap(), 3);
    assert_eq!(s.retrieve_vector(rs[0].id).unwrap(), None);
    let hits = s
        .semantic_search(&SearchQuery::new("a", point(0.0), 10))
        .unwrap();
    let found: BTreeSet<Uuid> = hits.iter().map(|h| h.id).collect();
    assert_eq!(found, [rs[1].id, rs[2].id, rs[4].id].into());
    assert_eq!(s.delete_vectors(&[]).unwrap(), Vec::<bool>::new());
}

#[test]
fn count_counts_vectors_matching_a_filter_as_of_the_last_write() {
    let s = memory_store(&["a", "b"]);
    for n in 0..10 {
        put(&s, "a", n);
    }
    put(&s, "b", 0);
    assert_eq!(s.count("a", None).unwrap(), 10);
    assert_eq!(s.count("a", Some(&even())).unwrap(), 5);
    let big = Filter::Range {
        key: "n".into(),
        min: Some(7.0),
        max: None,
    };
    assert_eq!(s.count("a", Some(&big)).unwrap(), 3);
    let first = s.scroll("a", None, 1, None).unwrap().0.remove(0);
    s.update_vector(
        first.id,
        VectorUpdate {
            metadata: Some(serde_json::from_value(json!({"n": 99})).unwrap()),
            ..VectorUpdate::default()
        },
    )
    .unwrap();
    assert_eq!(s.count("a", Some(&even())).unwrap(), 4);
    assert_eq!(s.count("a", Some(&big)).unwrap(), 4);
    assert!(matches!(
        s.count("nope", None),
        Err(StorageError::NamespaceNotFound(_))
    ));
    let mut deep = even();
    for _ in 0..40 {
        deep = Filter::Not(Box::new(deep));
    }
    assert_eq!(
        s.count("a", Some(&deep)).unwrap_err().code(),
        "invalid_query"
    );
}

#[test]
fn delete_by_filter_deletes_what_matches_in_one_commit() {
    let s = memory_store(&["a", "b"]);
    let rs: Vec<VectorRecord> = (0..20).map(|n| put(&s, "a", n)).collect();
    let other = put(&s, "b", 0);
    let before = s.get_stats().unwrap();
    assert_eq!(s.delete_by_filter("a", &even()).unwrap(), 10);
    let after = s.get_stats().unwrap();
    assert_eq!(after.commits, before.commits + 1, "one commit");
    assert_eq!(after.last_change, before.last_change + 10);
    let left = ids(&scroll_all(&s, "a", 100, None));
    let odd: Vec<Uuid> = rs.iter().skip(1).step_by(2).map(|r| r.id).collect();
    assert_eq!(left, odd);
    assert_eq!(s.count("a", Some(&even())).unwrap(), 0);
    assert!(
        s.retrieve_vector(other.id).unwrap().is_some(),
        "other namespace kept"
    );
    assert_eq!(s.delete_by_filter("a", &even()).unwrap(), 0);
    let e = s.delete_by_filter("nope", &even()).unwrap_err();
    assert_eq!(e.code(), "namespace_not_found");
    assert!(s.verify_consistency().unwrap().consistent);
}

/// While vectors that match are being inserted, a delete by filter takes
/// exactly those committed before it (its deletes are one block of the
/// change feed), and leaves every one committed after it.
#[test]
fn delete_by_filter_takes_what_matches_when_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        Store::open(StoreConfig::file(
            dir.path().join("f.redb"),
            Durability::Buffered,
        ))
        .unwrap(),
    );
    s.create_namespace(SpaceConfig::new("a", h2())).unwrap();
    let start = s.get_stats().unwrap().last_change;
    let stop = Arc::new(AtomicBool::new(false));
    let inserters: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    put(&s, "a", n * 2);
                    n += 1;
                }
            })
        })
        .collect();
    wait_for_count(&s, "a", 200);
    let deleted = s.delete_by_filter("a", &even()).unwrap();
    wait_for_count(&s, "a", 50);
    stop.store(true, Ordering::Relaxed);
    for h in inserters {
        h.join().unwrap();
    }
    let feed = s.changes_since(start, 1_000_000).unwrap();
    let deletes: Vec<usize> = (0..feed.len())
        .filter(|&i| feed[i].kind == ChangeKind::Delete)
        .collect();
    assert_eq!(deletes.len(), deleted);
    assert!(deleted >= 200);
    assert!(
        deletes.windows(2).all(|w| w[1] == w[0] + 1),
        "the deletes are one block"
    );
    let (first, last) = (deletes[0], deletes[deleted - 1]);
    let inserted_before: BTreeSet<Uuid> = feed[..first]
        .iter()
        .filter(|c| c.kind == ChangeKind::Insert)
        .filter_map(|c| c.id)
        .collect();
    let removed: BTreeSet<Uuid> = feed[first..=last].iter().filter_map(|c| c.id).collect();
    assert_eq!(removed, inserted_before, "all that was there, nothing else");
    let left: BTreeSet<Uuid> = ids(&scroll_all(&s, "a", 1000, None)).into_iter().collect();
    let inserted_after: BTreeSet<Uuid> = feed[last + 1..]
        .iter()
        .filter(|c| c.kind == ChangeKind::Insert)
        .filter_map(|c| c.id)
        .collect();
    assert_eq!(left, inserted_after);
}

#[test]
fn scroll_pages_through_a_namespace_in_id_order() {
    let s = memory_store(&["a", "b"]);
    let mut stored = Vec::new();
    for n in 0..25 {
        stored.push(put(&s, "a", n));
        put(&s, "b", n);
    }
    let (p1, c1) = s.scroll("a", None, 10, None).unwrap();
    assert_eq!(p1, stored[..10].to_vec(), "whole records, oldest first");
    assert_eq!(c1, Some(stored[9].id));
    // Between pages: one not yet seen is deleted, one seen is deleted,
    // one is inserted (a later id: at the end).
    s.delete_vector(stored[12].id).unwrap();
    s.delete_vector(stored[3].id).unwrap();
    let late = put(&s, "a", 100);
    let (p2, c2) = s.scroll("a", c1, 10, None).unwrap();
    let want: Vec<Uuid> = stored[10..21]
        .iter()
        .map(|r| r.id)
        .filter(|id| *id != stored[12].id)
        .collect();
    assert_eq!(ids(&p2), want);
    let (p3, c3) = s.scroll("a", c2, 10, None).unwrap();
    assert_eq!(
        ids(&p3),
        [ids(&stored[21..]), vec![late.id]].concat(),
        "the last page"
    );
    assert_eq!(c3, None, "no cursor after the last page");
    // A last page exactly `limit` long has no cursor either.
    let (p, c) = s.scroll("a", c2, 5, None).unwrap();
    assert_eq!((p.len(), c), (5, None));
    // A filter.
    let evens = scroll_all(&s, "a", 3, Some(&even()));
    assert!(evens.iter().all(|r| r.metadata["even"] == json!(true)));
    assert_eq!(evens.len(), s.count("a", Some(&even())).unwrap());
    assert!(evens.windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn scroll_refuses_limits_out_of_range_and_unknown_namespaces() {
    let s = memory_store(&["a"]);
    put(&s, "a", 1);
    for limit in [0, MAX_RESULTS + 1] {
        let e = s.scroll("a", None, limit, None).unwrap_err();
        assert_eq!(e.code(), "invalid_query", "{limit}");
    }
    assert_eq!(s.scroll("a", None, MAX_RESULTS, None).unwrap().0.len(), 1);
    let e = s.scroll("nope", None, 10, None).unwrap_err();
    assert_eq!(e.code(), "namespace_not_found");
    // A cursor past every id: an empty last page.
    let (page, next) = s
        .scroll("a", Some(Uuid::from_u128(u128::MAX)), 10, None)
        .unwrap();
    assert!(page.is_empty() && next.is_none());
}

/// Writers insert and delete while a scroll goes on: every vector that was
/// stored before it started and never deleted is returned exactly once, in
/// id order, and nothing deleted before the scroll started comes back.
#[test]
fn a_scroll_returns_every_vector_present_throughout_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(
        Store::open(StoreConfig::file(
            dir.path().join("s.redb"),
            Durability::Buffered,
        ))
        .unwrap(),
    );
    s.create_namespace(SpaceConfig::new("a", h2())).unwrap();
    s.create_namespace(SpaceConfig::new("b", h2())).unwrap();
    let initial = s
        .batch_store_vectors(
            (0..2000u32)
                .map(|n| {
                    NewVector::new(
                        if n.is_multiple_of(4) { "b" } else { "a" },
                        point(0.001 * n as f64),
                    )
                })
                .collect(),
        )
        .unwrap();
    let initial: Vec<Uuid> = initial
        .iter()
        .filter(|r| r.namespace == "a")
        .map(|r| r.id)
        .collect();
    let gone_before = s.delete_vectors(&initial[..10]).unwrap();
    assert!(gone_before.iter().all(|d| *d));
    let touched: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Deletes every third initial vector (from the end), and inserts.
    let writer = {
        let (s, touched, stop) = (s.clone(), touched.clone(), stop.clone());
        let victims: Vec<Uuid> = initial[10..].iter().rev().step_by(3).copied().collect();
        std::thread::spawn(move || {
            for (i, id) in victims.into_iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                touched.lock().unwrap().insert(id);
                s.delete_vector(id).unwrap();
                s.store_vector(NewVector::new("a", point(0.5 + i as f64 * 1e-4)))
                    .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = s.scroll("a", after, 7, None).unwrap();
        seen.extend(ids(&page));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in id order, once each"
    );
    let seen: HashSet<Uuid> = seen.into_iter().collect();
    let touched = touched.lock().unwrap();
    for id in &initial[10..] {
        if !touched.contains(id) {
            assert!(seen.contains(id), "{id} was there throughout");
        }
    }
    for id in &initial[..10] {
        assert!(!seen.contains(id), "{id} was deleted before");
    }
}

fn message(namespace: &str, r: f64) -> MessageRecord {
    MessageRecord {
        id: Uuid::now_v7(),
        namespace: namespace.into(),
        from: "m1".into(),
        to: vec!["m2".into()],
        payload: b"hi".to_vec(),
        vector: point(r),
        metadata: Default::default(),
        sent_ms: 1,
        expires_ms: None,
    }
}

fn append(s: &Store, ms: Vec<MessageRecord>) -> Result<(), StorageError> {
    let (tx, rx) = mpsc::channel();
    s.append_messages(
        ms,
        Box::new(move |r| {
            let _ = tx.send(r.map(drop));
        }),
    );
    rx.recv().unwrap()
}

#[test]
fn a_namespace_holding_messages_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    for config in [
        StoreConfig::memory(),
        StoreConfig::file(dir.path().join("m.redb"), Durability::Buffered),
    ] {
        let s = Store::open(config).unwrap();
        s.create_namespace(SpaceConfig::new("chat", h2())).unwrap();
        let v = put(&s, "chat", 1);
        append(&s, vec![message("chat", 0.1), message("chat", 0.2)]).unwrap();
        assert_eq!(s.count("chat", None).unwrap(), 1, "vectors, not messages");
        let e = s.delete_namespace("chat").unwrap_err();
        assert!(
            matches!(&e, StorageError::NamespaceInUse { namespace, messages: 2 } if namespace == "chat"),
            "{e:?}"
        );
        assert_eq!(e.code(), "namespace_in_use");
        assert!(s.retrieve_vector(v.id).unwrap().is_some());
        assert_eq!(s.namespaces().len(), 1);
        let hits = s
            .semantic_search(&SearchQuery::new("chat", point(0.1), 10))
            .unwrap();
        assert_eq!(hits.len(), 3, "the vector and both messages");
    }
}

fn graph_files(db: &Path) -> Vec<PathBuf> {
    let mut dir = db.as_os_str().to_owned();
    dir.push(".graphs");
    std::fs::read_dir(PathBuf::from(dir))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_deleted_namespace_is_gone_with_its_vectors_index_and_dump_after_reopen() {
    // Enough vectors for a graph (and so a dump) in each namespace: a
    // smaller one is scanned exactly and has no dump (docs/STORAGE.md).
    const N: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.redb");
    let (gone, kept, stale);
    {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        s.create_namespace(SpaceConfig::new("a", h2())).unwrap();
        s.create_namespace(SpaceConfig::new("b", h2())).unwrap();
        gone = ids(&(0..N).map(|n| put(&s, "a", n)).collect::<Vec<_>>());
        kept = ids(&(0..N).map(|n| put(&s, "b", n)).collect::<Vec<_>>());
        s.save_index().unwrap();
        let dumps = graph_files(&path);
        assert_eq!(dumps.len(), 2);
        let saved: Vec<Vec<u8>> = dumps.iter().map(|f| std::fs::read(f).unwrap()).collect();
        let from = s.get_stats().unwrap().last_change;
        assert!(s.delete_namespace("a").unwrap());
        assert!(!s.delete_namespace("a").unwrap());
        let left = graph_files(&path);
        assert_eq!(left.len(), 1, "its graph dump is gone");
        let i = usize::from(dumps[0] == left[0]);
        stale = (dumps[i].clone(), saved[i].clone());
        let n = N as usize;
        let feed = s.changes_since(from, 2 * n).unwrap();
        assert_eq!(feed.len(), n + 1);
        assert!(feed[..n].iter().all(|c| c.kind == ChangeKind::Delete));
        let deleted: BTreeSet<Uuid> = feed[..n].iter().filter_map(|c| c.id).collect();
        assert_eq!(deleted, gone.iter().copied().collect());
        assert_eq!(feed[n].kind, ChangeKind::DeleteNamespace);
        assert_eq!(feed[n].namespace, "a");
        let e = s
            .semantic_search(&SearchQuery::new("a", point(0.0), 1))
            .unwrap_err();
        assert_eq!(e.code(), "namespace_not_found");
        assert!(s.verify_consistency().unwrap().consistent);
        assert!(!s.get_stats().unwrap().namespaces.contains_key("a"));
    }
    // As if the process had died between the commit and the removal of the
    // dump: the next open removes it.
    std::fs::write(&stale.0, &stale.1).unwrap();
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    assert_eq!(
        graph_files(&path).len(),
        1,
        "a stale dump is removed on open"
    );
    let names: Vec<String> = s.namespaces().into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["b".to_string()]);
    assert!(
        s.batch_retrieve_vectors(&gone)
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
    assert_eq!(ids(&s.iter_namespace("b").unwrap()), kept);
    assert!(s.verify_consistency().unwrap().consistent);
    // The name can be used again, and starts empty.
    s.create_namespace(SpaceConfig::new("a", h2())).unwrap();
    assert_eq!(s.count("a", None).unwrap(), 0);
    put(&s, "a", 1);
    assert_eq!(s.count("a", None).unwrap(), 1);
}

/// Vectors stored while their namespace is deleted are refused with
/// `namespace_not_found` or deleted with it: none is left without a
/// namespace (which a reopen would refuse as corrupt).
#[test]
fn writes_racing_a_namespace_deletion_leave_no_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    {
        let s = Arc::new(Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap());
        s.create_namespace(SpaceConfig::new("a", h2())).unwrap();
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for n in 0..300 {
                        let mut batch = vec![NewVector::new("a", point(n as f64 * 0.01))];
                        batch.push(batch[0].clone());
                        match s.batch_store_vectors(batch) {
                            Ok(_) => {}
                            Err(e) => {
                                assert_eq!(e.code(), "namespace_not_found", "{e}");
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        wait_for_count(&s, "a", 50);
        assert!(s.delete_namespace("a").unwrap());
        for w in writers {
            w.join().unwrap();
        }
        assert!(s.verify_consistency().unwrap().consistent);
    }
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    assert!(s.namespaces().is_empty());
    let v = s.verify_consistency().unwrap();
    assert_eq!((v.consistent, v.vectors), (true, 0));
}

/// Messages appended while their namespace is deleted: either one is
/// stored first and the deletion is refused, or the deletion commits first
/// and every later append is refused with `namespace_not_found`. No message
/// row is left without its namespace: the file reopens, consistent.
#[test]
fn messages_racing_a_namespace_deletion_leave_no_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.redb");
    let rounds = 30;
    {
        let s = Arc::new(Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap());
        for round in 0..rounds {
            let ns = format!("n{round}");
            s.create_namespace(SpaceConfig::new(ns.as_str(), h2()))
                .unwrap();
            let barrier = Arc::new(Barrier::new(4));
            let senders: Vec<_> = (0..3)
                .map(|_| {
                    let (s, barrier, ns) = (s.clone(), barrier.clone(), ns.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        append(&s, vec![message(&ns, 0.1)])
                    })
                })
                .collect();
            barrier.wait();
            let deleted = s.delete_namespace(&ns);
            let sent: Vec<_> = senders.into_iter().map(|h| h.join().unwrap()).collect();
            match deleted {
                Ok(true) => {
                    for r in &sent {
                        if let Err(e) = r {
                            assert_eq!(e.code(), "namespace_not_found", "{e}");
                        }
                    }
                    assert!(sent.iter().all(Result::is_err), "{round}: {sent:?}");
                }
                Err(e) => {
                    assert_eq!(e.code(), "namespace_in_use", "{e}");
                    assert!(sent.iter().any(Result::is_ok), "{round}: {sent:?}");
                }
                Ok(false) => panic!("{round}: the namespace existed"),
            }
        }
    }
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    assert!(s.verify_consistency().unwrap().consistent);
}
