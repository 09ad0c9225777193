//! Durability and recovery: reopening finds every acknowledged write (also
//! after SIGKILL mid-stream), newer and corrupt files are clear errors, and
//! a random history reopens identical to a simple model.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use hvs_storage::{
    Durability, GeometrySpec, NewVector, SpaceConfig, StorageError, Store, StoreConfig,
    VectorUpdate,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

fn h3() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 3,
        curvature: 1.0,
    }
}

fn point(t: f64) -> Vec<f64> {
    vec![t.cosh(), t.sinh(), 0.0, 0.0]
}

#[test]
fn reopening_finds_every_write_at_buffered_and_sync() {
    for durability in [Durability::Buffered, Durability::Sync] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let (kept, gone, updated);
        {
            let s = Store::open(StoreConfig::file(&path, durability)).unwrap();
            s.create_namespace(SpaceConfig::new("n", h3())).unwrap();
            let recs: Vec<_> = (0..50)
                .map(|i| {
                    s.store_vector(NewVector::new("n", point(i as f64 / 10.0)))
                        .unwrap()
                })
                .collect();
            gone = recs[3].id;
            s.delete_vector(gone).unwrap();
            updated = s
                .update_vector(
                    recs[4].id,
                    VectorUpdate {
                        data: Some(point(9.0)),
                        ..Default::default()
                    },
                )
                .unwrap();
            kept = recs;
        }
        let s = Store::open(StoreConfig::file(&path, durability)).unwrap();
        assert_eq!(s.namespace("n").unwrap().geometry, h3());
        for r in &kept {
            let got = s.retrieve_vector(r.id).unwrap();
            if r.id == gone {
                assert!(got.is_none());
            } else if r.id == updated.id {
                assert_eq!(got.unwrap(), updated);
            } else {
                assert_eq!(&got.unwrap(), r);
            }
        }
        let report = s.verify_consistency().unwrap();
        assert!(report.consistent && report.vectors == 49, "{report:?}");
        assert_eq!(s.changes_since(0, 1000).unwrap().len(), 1 + 50 + 1 + 1);
    }
}

#[test]
fn a_newer_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    drop(Store::open(StoreConfig::file(&path, Durability::Sync)).unwrap());
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                .unwrap();
            meta.insert("format_version", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    match Store::open(StoreConfig::file(&path, Durability::Sync)) {
        Err(StorageError::NewerFormat {
            found: 99,
            supported: 1,
        }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a newer format"),
    }
}

#[test]
fn foreign_truncated_and_busy_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    // Not a database at all.
    let junk = dir.path().join("junk.redb");
    std::fs::write(&junk, vec![0x5a; 10_000]).unwrap();
    let e = Store::open(StoreConfig::file(&junk, Durability::Sync))
        .err()
        .unwrap();
    assert!(!e.is_validation(), "{e}");
    // A real database cut in half: an error, or (if redb can repair it) a
    // store that opens; never a panic.
    let path = dir.path().join("db.redb");
    {
        let s = Store::open(StoreConfig::file(&path, Durability::Sync)).unwrap();
        s.create_namespace(SpaceConfig::new("n", h3())).unwrap();
        for i in 0..200 {
            s.store_vector(NewVector::new("n", point(i as f64 / 100.0)))
                .unwrap();
        }
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    if let Ok(s) = Store::open(StoreConfig::file(&path, Durability::Sync)) {
        let _ = s.verify_consistency();
    }
    // Open twice at once.
    let other = dir.path().join("busy.redb");
    let first = Store::open(StoreConfig::file(&other, Durability::Sync)).unwrap();
    assert!(matches!(
        Store::open(StoreConfig::file(&other, Durability::Sync)),
        Err(StorageError::AlreadyOpen)
    ));
    drop(first);
}

const CHILD_ENV: &str = "HVS_CRASH_CHILD_DB";
/// Set (to anything) for a child whose store commits with quick-repair.
const QUICK_REPAIR_ENV: &str = "HVS_CRASH_CHILD_QUICK_REPAIR";

fn buffered(path: &std::path::Path, quick_repair: bool) -> StoreConfig {
    StoreConfig {
        quick_repair,
        ..StoreConfig::file(path, Durability::Buffered)
    }
}

/// Not a test of its own: the body of the child process that
/// `acknowledged_buffered_writes_survive_sigkill` starts and kills. Run
/// without its environment variable, it returns at once.
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let quick = std::env::var_os(QUICK_REPAIR_ENV).is_some();
    let s = std::sync::Arc::new(Store::open(buffered(path.as_ref(), quick)).unwrap());
    s.create_namespace(SpaceConfig::new("n", h3())).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let r = s
                        .store_vector(NewVector::new(
                            "n",
                            point((t * 1000 + i % 1000) as f64 / 1e3),
                        ))
                        .unwrap();
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {}", r.id).unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn acknowledged_buffered_writes_survive_sigkill() {
    let rounds: usize = std::env::var("HVS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    sigkill_rounds(rounds, false);
}

/// With quick-repair every commit saves redb's allocator state, so the
/// open after a SIGKILL loads it instead of repairing the file (which the
/// test above sees done every time), and loses nothing acknowledged.
#[test]
fn with_quick_repair_a_killed_store_reopens_without_a_repair() {
    sigkill_rounds(4, true);
}

/// Starts a child that writes on four threads, SIGKILLs it after a random
/// number of acknowledgements, reopens the file and finds every
/// acknowledged write, `rounds` times over the same file.
fn sigkill_rounds(rounds: usize, quick_repair: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(rounds as u64);
    let mut acked: Vec<Uuid> = Vec::new();
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .envs(quick_repair.then_some((QUICK_REPAIR_ENV, "1")))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill after a random number of acknowledgements.
        let kill_after = rng.random_range(1..1500);
        let mut seen = 0;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        while seen < kill_after {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(id) = line.strip_prefix("ACK ") {
                        acked.push(id.parse().unwrap());
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Acknowledgements already in the pipe count too: they were answered.
        for line in lines.map_while(Result::ok) {
            if let Some(id) = line.strip_prefix("ACK ") {
                acked.push(id.parse().unwrap());
            }
        }
        let _ = child.wait();
        assert!(seen > 0, "round {round}: the child acknowledged nothing");
        let s = Store::open(buffered(&path, quick_repair)).unwrap();
        assert_eq!(
            s.repaired_on_open(),
            !quick_repair,
            "round {round}: a repair on open"
        );
        let found = s.batch_retrieve_vectors(&acked).unwrap();
        let lost = found.iter().filter(|r| r.is_none()).count();
        assert_eq!(
            lost,
            0,
            "round {round}: {lost} of {} acknowledged writes lost",
            acked.len()
        );
        let report = s.verify_consistency().unwrap();
        assert!(report.consistent, "round {round}: {report:?}");
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(f64),
    Update(usize, f64),
    Delete(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (-3.0..3.0f64).prop_map(Op::Insert),
        1 => (any::<usize>(), -3.0..3.0f64).prop_map(|(i, t)| Op::Update(i, t)),
        1 => any::<usize>().prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn reopen_matches_a_simple_model(ops in prop::collection::vec(op(), 1..60), sync in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.redb");
        let durability = if sync { Durability::Sync } else { Durability::Buffered };
        let mut model: BTreeMap<Uuid, (Vec<f64>, u64)> = BTreeMap::new();
        let mut ids: Vec<Uuid> = Vec::new();
        {
            let s = Store::open(StoreConfig::file(&path, durability)).unwrap();
            s.create_namespace(SpaceConfig::new("n", h3())).unwrap();
            for op in &ops {
                match op {
                    Op::Insert(t) => {
                        let r = s.store_vector(NewVector::new("n", point(*t))).unwrap();
                        model.insert(r.id, (r.data, 1));
                        ids.push(r.id);
                    }
                    Op::Update(i, t) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        let res = s.update_vector(id, VectorUpdate { data: Some(point(*t)), ..Default::default() });
                        match model.get_mut(&id) {
                            Some(m) => { let r = res.unwrap(); m.0 = r.data; m.1 += 1; prop_assert_eq!(r.version, m.1); }
                            None => prop_assert!(matches!(res, Err(StorageError::VectorNotFound(_)))),
                        }
                    }
                    Op::Delete(i) if !ids.is_empty() => {
                        let id = ids[i % ids.len()];
                        prop_assert_eq!(s.delete_vector(id).unwrap(), model.remove(&id).is_some());
                    }
                    _ => {}
                }
            }
        }
        let s = Store::open(StoreConfig::file(&path, durability)).unwrap();
        let stored: BTreeMap<Uuid, (Vec<f64>, u64)> = s
            .iter_namespace("n")
            .unwrap()
            .into_iter()
            .map(|r| (r.id, (r.data, r.version)))
            .collect();
        prop_assert_eq!(stored, model);
        let report = s.verify_consistency().unwrap();
        prop_assert!(report.consistent, "{:?}", report);
    }
}

#[test]
fn randomly_damaged_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.redb");
    {
        let s = Store::open(StoreConfig::file(&good, Durability::Sync)).unwrap();
        s.create_namespace(SpaceConfig::new("n", h3())).unwrap();
        for i in 0..300 {
            s.store_vector(NewVector::new("n", point(i as f64 / 100.0)))
                .unwrap();
        }
    }
    let bytes = std::fs::read(&good).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    for round in 0..60 {
        let mut damaged = bytes.clone();
        for _ in 0..rng.random_range(1..64) {
            let at = rng.random_range(0..damaged.len());
            damaged[at] = rng.random();
        }
        let path = dir.path().join(format!("bad{round}.redb"));
        std::fs::write(&path, &damaged).unwrap();
        // Whatever the damage, open answers Ok or Err; reading back must not panic.
        if let Ok(s) = Store::open(StoreConfig::file(&path, Durability::Sync)) {
            let _ = s.verify_consistency();
            let _ = s.iter_namespace("n");
        }
    }
}
