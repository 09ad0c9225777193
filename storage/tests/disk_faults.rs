//! When the disk fails a write (full, or failing): the write and every
//! write after it are refused with `WriteFailed` (`write_failed`) and leave
//! nothing behind, reads go on, writes resume once the disk takes them
//! again, and nothing acknowledged is lost. Faults come from a switch in
//! the store's file backend (`StoreConfig::faults`) and, where the test may
//! mount one, from a real file system that fills up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};

use hvs_storage::{
    BlockClass, BlockContent, BlockOptions, Durability, FaultSwitch, GeometrySpec, MessageRecord,
    NewVector, SearchQuery, SpaceConfig, StorageError, Store, StoreConfig, VectorRecord,
    VectorUpdate,
};
use uuid::Uuid;

fn h2() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    }
}

/// A point of H^2, `r` from the origin at angle `a`.
fn point(r: f64, a: f64) -> Vec<f64> {
    vec![r.cosh(), r.sinh() * a.cos(), r.sinh() * a.sin()]
}

fn open(path: &Path, durability: Durability, faults: Option<&FaultSwitch>) -> Store {
    let mut config = StoreConfig::file(path, durability);
    config.faults = faults.cloned();
    Store::open(config).unwrap()
}

fn message(n: u32) -> MessageRecord {
    MessageRecord {
        id: Uuid::now_v7(),
        namespace: "n".into(),
        from: "a".into(),
        to: vec!["b".into()],
        payload: format!("message {n}").into_bytes(),
        vector: point(0.5 + n as f64 / 100.0, 2.0),
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
            let _ = tx.send(r);
        }),
    );
    rx.recv().unwrap().map(|_| ())
}

fn assert_write_failed<T: std::fmt::Debug>(r: Result<T, StorageError>) {
    match r {
        Err(e @ StorageError::WriteFailed(_)) => {
            assert_eq!(e.code(), "write_failed");
            assert!(!e.is_validation());
        }
        other => panic!("expected write_failed, got {other:?}"),
    }
}

/// What the store must hold: everything acknowledged, nothing refused.
#[derive(Default)]
struct Model {
    vectors: BTreeMap<Uuid, VectorRecord>,
    blocks: BTreeMap<String, BlockContent>,
    messages: Vec<Uuid>,
    catalog: BTreeMap<String, Vec<u8>>,
    /// Change-feed entries (the namespace's creation included): every
    /// vector, block, message and catalog write is one.
    changes: u64,
}

impl Model {
    fn store(&mut self, s: &Store, n: u32) {
        let r = s
            .store_vector(NewVector::new("n", point(n as f64 / 10.0, n as f64)))
            .unwrap();
        self.vectors.insert(r.id, r);
        self.changes += 1;
    }

    fn block(&mut self, s: &Store, name: &str) {
        let content = BlockContent::Text(format!("# {name}\n\nnotes about {name}"));
        let opts = BlockOptions::default();
        s.create_block(
            "ann",
            name,
            BlockClass::Documentation,
            content.clone(),
            opts,
        )
        .unwrap();
        self.blocks.insert(name.into(), content);
        self.changes += 1;
    }

    fn message(&mut self, s: &Store, n: u32) {
        let m = message(n);
        self.messages.push(m.id);
        append(s, vec![m]).unwrap();
        self.changes += 1;
    }

    fn catalog(&mut self, s: &Store, key: &str) {
        s.catalog_put("kind", key, key.as_bytes().to_vec()).unwrap();
        self.catalog.insert(key.into(), key.as_bytes().to_vec());
        self.changes += 1;
    }

    /// Every read answers, with exactly what the model holds.
    fn check(&self, s: &Store) {
        for (id, r) in &self.vectors {
            assert_eq!(s.retrieve_vector(*id).unwrap().as_ref(), Some(r));
            let hits = s
                .semantic_search(&SearchQuery::new("n", r.data.clone(), 1))
                .unwrap();
            assert!(hits[0].distance < 1e-9, "{id} found by its own vector");
        }
        let stored: Vec<Uuid> = s
            .iter_namespace("n")
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(stored, self.vectors.keys().copied().collect::<Vec<_>>());
        let everything = s
            .semantic_search(&SearchQuery {
                exact: true,
                ..SearchQuery::new("n", point(0.0, 0.0), 10_000)
            })
            .unwrap();
        assert_eq!(
            everything.len(),
            self.vectors.len() + self.messages.len(),
            "vectors and messages in the index"
        );
        let blocks = s.list_blocks("ann", None).unwrap();
        let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            self.blocks.keys().map(String::as_str).collect::<Vec<_>>()
        );
        for (name, content) in &self.blocks {
            let b = s.get_block_by_name("ann", name).unwrap().unwrap();
            assert_eq!(&b.content, content);
            assert_eq!(s.get_block("ann", b.id).unwrap().unwrap(), b);
            let hits = s.semantic_query("ann", &format!("notes about {name}"), 1, None);
            assert_eq!(hits.unwrap()[0].name, *name);
        }
        for id in &self.messages {
            assert!(s.get_message(*id).unwrap().is_some());
        }
        let unsettled: Vec<Uuid> = s
            .unsettled_messages()
            .unwrap()
            .iter()
            .map(|u| u.message.id)
            .collect();
        assert_eq!(unsettled, self.messages);
        let catalog: BTreeMap<String, Vec<u8>> =
            s.catalog_list("kind").unwrap().into_iter().collect();
        assert_eq!(catalog, self.catalog);
        let changes = s.changes_since(0, 100_000).unwrap();
        let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
        assert_eq!(
            seqs,
            (1..=self.changes).collect::<Vec<_>>(),
            "no gaps, nothing refused"
        );
        assert_eq!(s.get_stats().unwrap().last_change, self.changes);
        let report = s.verify_consistency().unwrap();
        assert!(report.consistent, "{report:?}");
        assert_eq!(report.vectors, self.vectors.len() + self.messages.len());
    }
}

/// Tries every kind of write; each must be refused with `write_failed`.
fn every_write_is_refused(s: &Store, m: &Model) {
    let (first, second) = {
        let mut ids = m.vectors.keys();
        (*ids.next().unwrap(), *ids.next().unwrap())
    };
    assert_write_failed(s.store_vector(NewVector::new("n", point(3.0, 1.0))));
    assert_write_failed(s.batch_store_vectors(vec![
        NewVector::new("n", point(3.1, 1.0)),
        NewVector::new("n", point(3.2, 1.0)),
    ]));
    let update = VectorUpdate {
        data: Some(point(4.0, 0.5)),
        ..Default::default()
    };
    assert_write_failed(s.update_vector(first, update));
    assert_write_failed(s.delete_vector(second));
    assert_write_failed(s.create_namespace(SpaceConfig::new("other", h2())));
    let content = BlockContent::Text("# refused\n\nnever stored".into());
    let opts = BlockOptions::default();
    assert_write_failed(s.create_block("ann", "refused", BlockClass::Documentation, content, opts));
    let b = s.get_block_by_name("ann", m.blocks.keys().next().unwrap());
    let b = b.unwrap().unwrap();
    let changed = BlockContent::Text("# changed\n\nnever stored".into());
    assert_write_failed(s.update_block("ann", b.id, changed));
    assert_write_failed(s.delete_block("ann", b.id));
    assert_write_failed(append(s, vec![message(99)]));
    assert_write_failed(s.catalog_put("kind", "refused", b"no".to_vec()));
    assert_write_failed(s.catalog_delete("kind", m.catalog.keys().next().unwrap()));
}

/// Acknowledged writes of every kind, to start from.
fn fill(s: &Store, m: &mut Model, from: u32) {
    for n in from..from + 20 {
        m.store(s, n);
    }
    m.block(s, &format!("block {from}"));
    m.message(s, from);
    m.message(s, from + 1);
    m.catalog(s, &format!("key {from}"));
}

#[test]
fn writes_are_refused_while_the_disk_fails_and_resume_after() {
    for durability in [Durability::Buffered, Durability::Sync] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let faults = FaultSwitch::new();
        let mut m = Model::default();
        {
            let s = open(&path, durability, Some(&faults));
            s.create_namespace(SpaceConfig::new("n", h2())).unwrap();
            m.changes += 1;
            fill(&s, &mut m, 0);
            m.check(&s);

            faults.fail_writes(true);
            every_write_is_refused(&s, &m);
            // Reads go on, and show nothing of what was refused.
            m.check(&s);
            every_write_is_refused(&s, &m);
            m.check(&s);

            faults.heal();
            fill(&s, &mut m, 100);
            let first = *m.vectors.keys().next().unwrap();
            let update = VectorUpdate {
                data: Some(point(4.0, 0.5)),
                ..Default::default()
            };
            let updated = s.update_vector(first, update).unwrap();
            assert_eq!(updated.version, 2);
            m.vectors.insert(first, updated);
            m.changes += 1;
            m.check(&s);

            // Failed syncs too: the fault comes and goes again.
            faults.fail_syncs(true);
            assert_write_failed(s.store_vector(NewVector::new("n", point(5.0, 1.0))));
            faults.heal();
            // The refused write may have reached the file before its sync
            // failed: then memory holds it as the file does. Take the
            // store's word for it, then check that the two agree.
            adopt_after_failed_sync(&s, &mut m);
            m.check(&s);
            fill(&s, &mut m, 200);
            m.check(&s);
        }
        // Everything acknowledged is in the file after a clean reopen.
        let s = open(&path, durability, None);
        m.check(&s);
        fill(&s, &mut m, 300);
        m.check(&s);
    }
}

/// After a failed sync, the refused vector (at `point(5.0, 1.0)`) is either
/// wholly in the store — file, index and change feed — or wholly absent.
fn adopt_after_failed_sync(s: &Store, m: &mut Model) {
    let hits = s
        .semantic_search(&SearchQuery::new("n", point(5.0, 1.0), 1))
        .unwrap();
    if hits[0].distance < 1e-9 {
        let r = s.retrieve_vector(hits[0].id).unwrap().unwrap();
        m.vectors.insert(r.id, r);
        m.changes += 1;
    }
}

#[test]
fn reads_in_flight_and_writers_waiting_come_through_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let faults = FaultSwitch::new();
    let s = Arc::new(open(&path, Durability::Buffered, Some(&faults)));
    s.create_namespace(SpaceConfig::new("n", h2())).unwrap();
    let mut m = Model::default();
    m.changes += 1;
    fill(&s, &mut m, 0);
    let ids: Vec<Uuid> = m.vectors.keys().copied().collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Arc::new(Barrier::new(5));
    // Readers read all along.
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (s, ids, stop, start) = (s.clone(), ids.clone(), stop.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for id in &ids {
                        assert!(s.retrieve_vector(*id).unwrap().is_some());
                        reads += 1;
                    }
                    assert!(s.iter_namespace("n").unwrap().len() >= ids.len());
                }
                reads
            })
        })
        .collect();
    // Writers write all along: each write is acknowledged or refused.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (s, stop, start) = (s.clone(), stop.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let (mut acked, mut refused) = (Vec::new(), 0);
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let v = NewVector::new("n", point(1.0 + n as f64 / 1000.0, w as f64));
                    match s.store_vector(v) {
                        Ok(r) => acked.push(r),
                        Err(StorageError::WriteFailed(_)) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (acked, refused)
            })
        })
        .collect();
    start.wait();
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        faults.fail_writes(true);
        std::thread::sleep(std::time::Duration::from_millis(100));
        faults.heal();
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let mut refused = 0;
    for w in writers {
        let (acked, r) = w.join().unwrap();
        refused += r;
        for rec in acked {
            m.vectors.insert(rec.id, rec);
            m.changes += 1;
        }
    }
    assert!(refused > 0, "the faults refused some writes");
    m.check(&s);
    drop(s);
    let s = open(&path, Durability::Buffered, None);
    m.check(&s);
}

/// A real file system that fills up: a small tmpfs, mounted when the test
/// may (root in a container that allows it); skipped otherwise.
#[test]
fn a_full_file_system_refuses_writes_until_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.0)
                .status();
        }
    }
    let _unmount = Unmount(&mnt);
    let path = mnt.join("db.redb");
    let filler = mnt.join("filler");
    let mut m = Model::default();
    {
        let s = open(&path, Durability::Buffered, None);
        s.create_namespace(SpaceConfig::new("n", h2())).unwrap();
        m.changes += 1;
        fill(&s, &mut m, 0);
        // Fill the disk, then write until it refuses.
        let _ = std::fs::write(&filler, vec![1u8; 8 << 20]);
        let mut refused = false;
        for n in 0..10_000u32 {
            let mut v = NewVector::new("n", point(2.0 + n as f64 / 1e4, 0.3));
            v.metadata
                .insert("pad".into(), serde_json::json!("x".repeat(4000)));
            match s.store_vector(v) {
                Ok(r) => {
                    m.vectors.insert(r.id, r);
                    m.changes += 1;
                }
                Err(e) => {
                    assert_write_failed::<()>(Err(e));
                    refused = true;
                    break;
                }
            }
        }
        assert!(refused, "the full disk refused a write");
        m.check(&s);
        every_write_is_refused(&s, &m);
        m.check(&s);
        // Space returns.
        std::fs::remove_file(&filler).unwrap();
        fill(&s, &mut m, 100);
        m.check(&s);
    }
    let s = open(&path, Durability::Buffered, None);
    m.check(&s);
}

#[test]
fn an_idle_store_notices_by_itself_that_the_disk_takes_writes_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let faults = FaultSwitch::new();
    let s = open(&path, Durability::Buffered, Some(&faults));
    s.create_namespace(SpaceConfig::new("n", h2())).unwrap();
    assert_eq!(s.write_refusal(), None);
    faults.fail_writes(true);
    assert_write_failed(s.store_vector(NewVector::new("n", point(1.0, 0.0))));
    let reason = s.write_refusal().expect("refusing writes after the fault");
    assert!(reason.contains("No space left"), "{reason}");
    faults.heal();
    // No write comes: the writer's idle probe finds the disk healed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.write_refusal().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "still refusing 30 s after the disk healed, with no write"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    s.store_vector(NewVector::new("n", point(1.0, 0.0)))
        .unwrap();
}
