//! End-to-end: `hvs reindex` rebuilds every namespace's graph of a data
//! directory whose graph dumps are gone, reports the counts, writes new
//! dumps, and leaves an index `hvs inspect` finds consistent; it refuses a
//! database held by another process and leaves its dumps as they were.

use std::path::{Path, PathBuf};
use std::process::Command;

use hvs::storage::{Durability, GeometrySpec, NewVector, SpaceConfig, Store, StoreConfig};
use serde_json::Value;

fn hvs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hvs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn dumps_of(dir: &Path) -> PathBuf {
    dir.join("hvs.redb.graphs")
}

/// The graph dump files of a data directory, sorted.
fn dump_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dumps_of(dir))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A deterministic spread of numbers in [-1, 1).
fn coord(i: usize, j: usize) -> f64 {
    let mut x = (i as u64 * 31 + j as u64 * 7919 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 32;
    (x % 2_000_000) as f64 / 1_000_000.0 - 1.0
}

/// A data directory with 2500 vectors in `flat` (E^8) and 1500 in `tree`
/// (H^4), closed, then stripped of its graph dumps.
fn make_data_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let s = Store::open(StoreConfig::file(
        dir.join("hvs.redb"),
        Durability::Buffered,
    ))
    .unwrap();
    s.create_namespace(SpaceConfig::new("flat", GeometrySpec::Euclidean { dim: 8 }))
        .unwrap();
    s.create_namespace(SpaceConfig::new(
        "tree",
        GeometrySpec::Hyperboloid {
            dim: 4,
            curvature: 1.0,
        },
    ))
    .unwrap();
    for chunk in (0..2500).collect::<Vec<usize>>().chunks(500) {
        s.batch_store_vectors(
            chunk
                .iter()
                .map(|&i| NewVector::new("flat", (0..8).map(|j| coord(i, j)).collect()))
                .collect(),
        )
        .unwrap();
    }
    for chunk in (0..1500).collect::<Vec<usize>>().chunks(500) {
        s.batch_store_vectors(
            chunk
                .iter()
                .map(|&i| {
                    let v: Vec<f64> = (0..4).map(|j| coord(i + 10_000, j)).collect();
                    let t = (1.0 + v.iter().map(|x| x * x).sum::<f64>()).sqrt();
                    NewVector::new("tree", [vec![t], v].concat())
                })
                .collect(),
        )
        .unwrap();
    }
    drop(s);
    let dumps = dumps_of(dir);
    if dumps.exists() {
        std::fs::remove_dir_all(&dumps).unwrap();
    }
}

fn inspect(dir: &Path) -> Value {
    let (code, out, err) = hvs(&["inspect", "--json", "--data", path(dir)]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The summary's row of `name`: vectors, in graph, unreachable, in overflow.
fn row(out: &str, name: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row for {name} in\n{out}"));
    line.split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn reindex_rebuilds_every_graph_from_storage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    make_data_dir(&dir);
    assert!(dump_files(&dir).is_empty());

    let (code, out, err) = hvs(&["reindex", "--data", path(&dir)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(
            "2 namespaces, 4000 vectors, index consistent (4000 indexed, 0 missing, 0 orphaned)"
        ),
        "{out}"
    );
    let (flat, tree) = (row(&out, "flat"), row(&out, "tree"));
    assert_eq!(flat.len(), 4, "{out}");
    assert_eq!(&flat[..2], &[2500, 2500], "{out}");
    assert_eq!(&tree[..2], &[1500, 1500], "{out}");
    assert!(out.contains("rebuilding from storage"), "{out}");
    // Not a terminal: plain progress lines on stderr, nothing on stdout.
    assert!(err.contains("rebuilding the graphs of"), "{err}");
    assert!(
        err.contains("settling the indexes: 4000/4000 vectors in graphs"),
        "{err}"
    );
    assert!(!out.contains("settling the indexes"), "{out}");

    // The close wrote a dump per namespace; nothing is left set aside.
    assert_eq!(dump_files(&dir).len(), 2, "{:?}", dump_files(&dir));
    assert!(!dir.join("hvs.redb.graphs.set-aside").exists());

    let report = inspect(&dir);
    let c = &report["consistency"];
    assert_eq!(c["consistent"], true, "{report}");
    assert_eq!(c["vectors"], 4000, "{report}");
    assert_eq!(c["missing"], 0, "{report}");
    assert_eq!(c["orphaned"], 0, "{report}");
    for n in report["namespaces"].as_array().unwrap() {
        assert_eq!(n["in_graph"], n["vectors"], "{n}");
        assert_eq!(n["fresh"], 0, "{n}");
    }

    // Again, now with the dumps present: they are set aside, not loaded.
    let (code, out, err) = hvs(&["reindex", "--data", path(&dir)]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("index consistent"), "{out}");
    assert_eq!(&row(&out, "flat")[..2], &[2500, 2500], "{out}");
    assert_eq!(dump_files(&dir).len(), 2);
}

#[test]
fn reindex_refuses_a_missing_or_busy_database_and_keeps_the_dumps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");

    let (code, _, err) = hvs(&["reindex", "--data", path(&dir)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no database"), "{err}");
    assert!(!dir.exists(), "reindex must not create a database");

    make_data_dir(&dir);
    // Opened, its graphs built (flush_index waits for the build an open
    // without dumps starts) and closed here: the dumps are back.
    let s = Store::open(StoreConfig::file(
        dir.join("hvs.redb"),
        Durability::Buffered,
    ))
    .unwrap();
    s.flush_index().unwrap();
    s.close().unwrap();
    let dumps = dump_files(&dir);
    assert_eq!(dumps.len(), 2);

    let held = Store::open(StoreConfig::file(
        dir.join("hvs.redb"),
        Durability::Buffered,
    ))
    .unwrap();
    let (code, _, err) = hvs(&["reindex", "--data", path(&dir)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert_eq!(dump_files(&dir), dumps, "the dumps must be put back");
    assert!(!dir.join("hvs.redb.graphs.set-aside").exists());
    drop(held);
}
