//! End-to-end: `hvs export` a data directory, `hvs import` it into another,
//! and `hvs inspect --json` both: the same namespaces with the same counts.

use std::path::Path;
use std::process::Command;

use hvs::storage::{
    BlockClass, BlockContent, BlockOptions, Durability, GeometrySpec, NewVector, SpaceConfig,
    Store, StoreConfig,
};
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

/// A data directory with two namespaces, a block and a catalog record.
fn make_data_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let s = Store::open(StoreConfig::file(
        dir.join("hvs.redb"),
        Durability::Buffered,
    ))
    .unwrap();
    s.create_namespace(SpaceConfig::new("flat", GeometrySpec::Euclidean { dim: 3 }))
        .unwrap();
    s.create_namespace(SpaceConfig::new(
        "tree",
        GeometrySpec::Hyperboloid {
            dim: 2,
            curvature: 1.0,
        },
    ))
    .unwrap();
    s.batch_store_vectors(
        (0..120)
            .map(|i| NewVector::new("flat", vec![i as f64, 1.0, -1.0]))
            .collect(),
    )
    .unwrap();
    s.batch_store_vectors(
        (0..40)
            .map(|i| {
                let x = i as f64 / 10.0;
                NewVector::new("tree", vec![(1.0 + x * x).sqrt(), x, 0.0])
            })
            .collect(),
    )
    .unwrap();
    s.create_block(
        "op",
        "notes",
        BlockClass::Documentation,
        BlockContent::Text("# Notes\nhello".into()),
        BlockOptions::default(),
    )
    .unwrap();
    s.catalog_put("model", "a", b"contract".to_vec()).unwrap();
}

fn inspect(dir: &Path) -> Value {
    let (code, out, err) = hvs(&["inspect", "--json", "--data", path(dir)]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

fn counts(report: &Value) -> Vec<(String, u64)> {
    report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["vectors"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn export_then_import_gives_the_same_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let backup = tmp.path().join("a.hvsbackup");
    make_data_dir(&a);

    let (code, out, err) = hvs(&["export", "--data", path(&a), path(&backup)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("exported"), "{out}");
    // Not a terminal: plain lines, one per table.
    assert!(err.contains("exported vectors: 160 rows"), "{err}");
    assert!(backup.is_file());
    // The file is not replaced unless asked.
    let (code, _, err) = hvs(&["export", "--data", path(&a), path(&backup)]);
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = hvs(&["import", "--data", path(&b), path(&backup)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("index consistent"), "{out}");
    assert!(err.contains("imported catalog: 1 rows"), "{err}");

    let (ra, rb) = (inspect(&a), inspect(&b));
    assert_eq!(
        counts(&ra),
        vec![("flat".to_string(), 120), ("tree".to_string(), 40)]
    );
    assert_eq!(counts(&ra), counts(&rb));
    for r in [&ra, &rb] {
        assert_eq!(r["consistency"]["consistent"], true, "{r}");
        assert_eq!(r["blocks"], 1);
        assert_eq!(r["catalog"], 1);
        assert_eq!(r["namespaces"][1]["dimension"], 2);
        assert_eq!(r["namespaces"][1]["geometry"]["kind"], "hyperboloid");
    }
    assert_eq!(ra["tables"], rb["tables"]);

    // Text output names the namespaces and the verdict.
    let (code, out, _) = hvs(&["inspect", "--data", path(&b)]);
    assert_eq!(code, 0);
    assert!(out.contains("tree") && out.contains("consistent"), "{out}");

    // A second import onto b is refused; b is unchanged.
    let (code, _, err) = hvs(&["import", "--data", path(&b), path(&backup)]);
    assert_eq!(code, 2);
    assert!(err.contains("database_exists"), "{err}");
    assert_eq!(counts(&inspect(&b)), counts(&ra));
}

#[test]
fn clear_errors_for_a_missing_a_busy_and_a_damaged_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");

    let (code, _, err) = hvs(&["inspect", "--data", path(&a)]);
    assert_eq!(code, 2);
    assert!(err.contains("no database"), "{err}");
    assert!(!a.exists(), "inspect must not create a database");

    make_data_dir(&a);
    let held = Store::open(StoreConfig::file(a.join("hvs.redb"), Durability::Buffered)).unwrap();
    let (code, _, err) = hvs(&["inspect", "--data", path(&a)]);
    assert_eq!(code, 1);
    assert!(err.contains("in use by another process"), "{err}");
    drop(held);

    let backup = tmp.path().join("backup");
    let (code, _, err) = hvs(&["export", "--data", path(&a), path(&backup)]);
    assert_eq!(code, 0, "{err}");
    let mut bytes = std::fs::read(&backup).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&backup, bytes).unwrap();
    let b = tmp.path().join("b");
    let (code, _, err) = hvs(&["import", "--data", path(&b), path(&backup)]);
    assert_eq!(code, 2);
    assert!(err.contains("corrupt"), "{err}");
    assert!(!b.join("hvs.redb").exists());
}
