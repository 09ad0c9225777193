//! Graph dumps: a closed store's graphs are loaded on reopen instead of
//! rebuilt, and a dump that is stale, damaged or missing never changes what
//! the store returns.

use std::path::{Path, PathBuf};

use hvs_geometry::Manifold;

use hvs_storage::{
    Durability, GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig,
    VectorRecord, VectorUpdate,
};
use rand::{Rng, SeedableRng};

fn spaces() -> Vec<(&'static str, GeometrySpec)> {
    vec![
        (
            "h",
            GeometrySpec::Hyperboloid {
                dim: 6,
                curvature: 1.0,
            },
        ),
        ("e", GeometrySpec::Euclidean { dim: 8 }),
    ]
}

fn random_point(spec: &GeometrySpec, rng: &mut rand::rngs::StdRng) -> Vec<f64> {
    match spec {
        GeometrySpec::Hyperboloid { dim, .. } => {
            let s: Vec<f64> = (0..*dim).map(|_| rng.random_range(-2.0..2.0)).collect();
            let x0 = (1.0 + s.iter().map(|v| v * v).sum::<f64>()).sqrt();
            std::iter::once(x0).chain(s).collect()
        }
        GeometrySpec::Euclidean { dim } => (0..*dim).map(|_| rng.random_range(-1.0..1.0)).collect(),
        other => panic!("no generator for {other:?}"),
    }
}

fn graph_files(db: &Path) -> Vec<PathBuf> {
    let mut dir = db.as_os_str().to_owned();
    dir.push(".graphs");
    // Dumps only: a `.graph.tmp` being written is not one yet.
    let mut files: Vec<PathBuf> = std::fs::read_dir(PathBuf::from(dir))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "graph"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Every live record is found first by a search for its own vector, and a
/// deleted one is never returned.
fn assert_all_findable(s: &Store, live: &[VectorRecord], deleted: &[VectorRecord]) {
    for r in live {
        let hits = s
            .semantic_search(&SearchQuery::new(&r.namespace, r.data.clone(), 1))
            .unwrap();
        assert_eq!(hits[0].id, r.id, "own vector did not find {}", r.id);
    }
    assert_none_found(s, deleted);
    let report = s.verify_consistency().unwrap();
    assert!(report.consistent, "{report:?}");
    assert_eq!(report.vectors, live.len());
}

fn assert_none_found(s: &Store, deleted: &[VectorRecord]) {
    for r in deleted {
        let hits = s
            .semantic_search(&SearchQuery::new(&r.namespace, r.data.clone(), 3))
            .unwrap();
        assert!(
            hits.iter().all(|h| h.id != r.id),
            "deleted {} was found",
            r.id
        );
    }
}

fn fill(s: &Store, n: usize, rng: &mut rand::rngs::StdRng) -> Vec<VectorRecord> {
    let mut out = Vec::new();
    for (name, spec) in spaces() {
        s.create_namespace(SpaceConfig::new(name, spec.clone()))
            .unwrap();
        let batch = (0..n)
            .map(|_| NewVector::new(name, random_point(&spec, rng)))
            .collect();
        out.extend(s.batch_store_vectors(batch).unwrap());
    }
    out
}

#[test]
fn reopening_a_closed_store_loads_its_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let live = {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        let live = fill(&s, 1500, &mut rng);
        s.flush_index().unwrap();
        s.close().unwrap();
        live
    };
    assert_eq!(graph_files(&path).len(), 2);
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let stats = s.get_stats().unwrap();
    for name in ["h", "e"] {
        let ns = &stats.namespaces[name];
        assert_eq!(ns.restored_from_dump, 1500, "{name}: {ns:?}");
        assert_eq!(ns.in_graph, 1500);
    }
    assert_all_findable(&s, &live, &[]);
}

#[test]
fn a_stale_dump_is_corrected_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut live = {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        let live = fill(&s, 800, &mut rng);
        s.flush_index().unwrap();
        s.close().unwrap();
        live
    };
    // Keep the first dumps aside, change the data, and put them back: as if
    // the process had crashed long after its last dump.
    let old: Vec<(PathBuf, Vec<u8>)> = graph_files(&path)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let mut deleted = Vec::new();
    {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        for i in 0..100 {
            let r = live.remove(i);
            assert!(s.delete_vector(r.id).unwrap());
            deleted.push(r);
        }
        for r in live.iter_mut().take(200) {
            let spec = s.namespace(&r.namespace).unwrap().geometry;
            *r = s
                .update_vector(
                    r.id,
                    VectorUpdate {
                        data: Some(random_point(&spec, &mut rng)),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        for (name, spec) in spaces() {
            for _ in 0..100 {
                live.push(
                    s.store_vector(NewVector::new(name, random_point(&spec, &mut rng)))
                        .unwrap(),
                );
            }
        }
    }
    for (p, b) in &old {
        std::fs::write(p, b).unwrap();
    }
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let stats = s.get_stats().unwrap();
    let restored: usize = stats
        .namespaces
        .values()
        .map(|n| n.restored_from_dump)
        .sum();
    // 1,600 dumped, 100 deleted and 200 moved since: 1,300 nodes still agree.
    assert_eq!(restored, 1300, "{stats:?}");
    // Deleted vectors are gone at once.
    assert_none_found(&s, &deleted);
    assert!(s.verify_consistency().unwrap().consistent);
    // Heavy churn (300 of 800 nodes replaced) can cut old nodes off until the
    // next reachability pass; once the index has settled, all are found.
    s.flush_index().unwrap();
    assert_all_findable(&s, &live, &deleted);
}

#[test]
fn a_damaged_or_foreign_dump_means_a_rebuild_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let live = {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        let live = fill(&s, 500, &mut rng);
        s.flush_index().unwrap();
        s.close().unwrap();
        live
    };
    let files = graph_files(&path);
    let good: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let flip = |b: &[u8]| {
        let mut b = b.to_vec();
        let at = b.len() / 2;
        b[at] ^= 1;
        b
    };
    let damaged: Vec<[Vec<u8>; 2]> = vec![
        [flip(&good[0]), flip(&good[1])],
        [
            good[0][..good[0].len() / 3].to_vec(),
            good[1][..40].to_vec(),
        ],
        // Each space's dump under the other's name.
        [good[1].clone(), good[0].clone()],
        [b"not a graph".to_vec(), Vec::new()],
    ];
    for pair in damaged {
        for (f, bytes) in files.iter().zip(&pair) {
            std::fs::write(f, bytes).unwrap();
        }
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        let stats = s.get_stats().unwrap();
        assert!(
            stats.namespaces.values().all(|n| n.restored_from_dump == 0),
            "{stats:?}"
        );
        assert_all_findable(&s, &live, &[]);
        drop(s);
    }
}

#[test]
fn memory_stores_write_no_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let s = Store::open(StoreConfig::file(&path, Durability::Memory)).unwrap();
    fill(&s, 10, &mut rng);
    s.close().unwrap();
    assert!(graph_files(&path).is_empty());
}

#[test]
fn an_unchanged_index_is_not_dumped_again() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        fill(&s, 300, &mut rng);
        s.flush_index().unwrap();
        s.close().unwrap();
    }
    // A dump is replaced by renaming a new file over it: a rewrite shows as
    // a new inode.
    let inodes = |p: &Path| -> Vec<u64> {
        graph_files(p)
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().ino())
            .collect()
    };
    let before = inodes(&path);
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let hits = s
        .semantic_search(&SearchQuery::new("e", vec![0.0; 8], 5))
        .unwrap();
    assert_eq!(hits.len(), 5);
    s.close().unwrap();
    assert_eq!(inodes(&path), before, "read-only use rewrote the dumps");
    // A write to one namespace rewrites that namespace's dump only.
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    s.store_vector(NewVector::new("e", vec![0.5; 8])).unwrap();
    s.close().unwrap();
    let after = inodes(&path);
    assert_eq!(after.iter().zip(&before).filter(|(a, b)| a != b).count(), 1);
}

/// The unreachable nodes of a dumped graph come back as they were: those
/// attached to an anchor still attached (searches find them through it),
/// the loose ones covered by an overflow graph or the scan, and every
/// point found by its own vector.
#[test]
fn unreachable_nodes_keep_their_anchors_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    // Spread over H^12: a fifth or more of the nodes lose their in-links.
    let spec = GeometrySpec::Hyperboloid {
        dim: 12,
        curvature: 1.0,
    };
    let m = spec.build().unwrap();
    let (live, before) = {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        s.create_namespace(SpaceConfig::new("s", spec.clone()))
            .unwrap();
        let batch = (0..4000)
            .map(|_| NewVector::new("s", m.random_point(&mut rng)))
            .collect();
        let live = s.batch_store_vectors(batch).unwrap();
        s.flush_index().unwrap();
        let st = s.get_stats().unwrap().namespaces["s"].clone();
        s.close().unwrap();
        (live, st)
    };
    assert!(before.attached >= 100, "{before:?}");
    assert!(before.attached <= before.unreachable, "{before:?}");
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let after = s.get_stats().unwrap().namespaces["s"].clone();
    assert_eq!(after.restored_from_dump, 4000, "{after:?}");
    assert_eq!(
        (after.unreachable, after.attached, after.scanned_exactly),
        (before.unreachable, before.attached, before.scanned_exactly),
        "{before:?} then {after:?}"
    );
    assert_all_findable(&s, &live, &[]);
}

const CHECKPOINT_CHILD_ENV: &str = "HVS_CHECKPOINT_CHILD_DB";

/// Not a test of its own: the body of the child process that
/// `a_store_killed_after_a_checkpoint_reopens_from_it` starts and kills.
/// Run without its environment variable, it returns at once.
#[test]
fn checkpoint_child() {
    let Ok(path) = std::env::var(CHECKPOINT_CHILD_ENV) else {
        return;
    };
    let mut config = StoreConfig::file(&path, Durability::Buffered);
    config.checkpoint_every = Some(std::time::Duration::from_millis(200));
    let s = Store::open(config).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    fill(&s, 600, &mut rng);
    s.flush_index().unwrap();
    // No close, no save_index: only the indexer's checkpoint writes dumps.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while graph_files(Path::new(&path)).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Written after the checkpoint: these come back through the fresh buffer.
    let more: Vec<NewVector> = (0..100)
        .map(|_| NewVector::new("h", random_point(&spaces()[0].1, &mut rng)))
        .collect();
    s.batch_store_vectors(more).unwrap();
    println!("READY");
    std::thread::sleep(std::time::Duration::from_secs(600));
}

#[test]
fn a_store_killed_after_a_checkpoint_reopens_from_it() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "checkpoint_child", "--nocapture"])
        .env(CHECKPOINT_CHILD_ENV, &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let ready = out
        .lines()
        .map_while(Result::ok)
        .any(|l| l.trim() == "READY");
    child.kill().unwrap(); // SIGKILL: no close, no dump on drop
    let _ = child.wait();
    assert!(ready, "the child did not reach its checkpoint");

    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let stats = s.get_stats().unwrap();
    let h = &stats.namespaces["h"];
    assert_eq!(h.vectors, 700);
    // The graph came from the checkpoint, not from a rebuild; what was
    // written after it waits in the fresh buffer (or a later checkpoint
    // took it too), or the indexer has merged it since the open (a key
    // enters the graph before it leaves the fresh buffer).
    assert!(h.restored_from_dump >= 600, "{h:?}");
    assert!(h.restored_from_dump + h.fresh <= 700, "{h:?}");
    assert!(h.in_graph + h.fresh >= 700, "{h:?}");
    assert_eq!(stats.namespaces["e"].restored_from_dump, 600);
    let live: Vec<VectorRecord> = ["h", "e"]
        .iter()
        .flat_map(|n| s.iter_namespace(n).unwrap())
        .collect();
    assert_all_findable(&s, &live, &[]);
}
