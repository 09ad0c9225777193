//! End-to-end: `hvs inspect --digest` (docs/STORAGE.md, "Digests"). Two
//! data directories with the same namespaces, vectors and blocks have the
//! same digest, whatever order they were written in and whatever their
//! clocks and timestamps; a changed metadata value, coordinate, version or
//! block content changes it; an empty store has a fixed one.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use hvs::storage::{
    ApplyOutcome, BlockClass, BlockContent, BlockOptions, BlockPermissions, Change, ChangeBody,
    ChangeKind, ConflictStrategy, Durability, GeometrySpec, NewVector, SpaceConfig, Store,
    StoreConfig, VectorRecord, VectorUpdate, restore_backup,
};
use serde_json::{Value, json};

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

/// The text `hvs inspect --digest` prints for `dir`.
fn digest(dir: &Path) -> String {
    let (code, out, err) = hvs(&["inspect", "--digest", "--data", path(dir)]);
    assert_eq!(code, 0, "{err}");
    out
}

fn digest_json(dir: &Path) -> Value {
    let (code, out, err) = hvs(&["inspect", "--digest", "--json", "--data", path(dir)]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The printed line of `kind`.
fn line<'a>(digest: &'a str, kind: &str) -> &'a str {
    digest
        .lines()
        .find(|l| l.split_whitespace().next() == Some(kind))
        .unwrap()
}

fn open(dir: &Path) -> Store {
    std::fs::create_dir_all(dir).unwrap();
    Store::open(StoreConfig::file(
        dir.join("hvs.redb"),
        Durability::Buffered,
    ))
    .unwrap()
}

/// Three namespaces (one of them the model states' `hvs.states`), 32
/// vectors with regions and nested metadata, one of them updated; written
/// directly into `dir`. Answers the change feed that wrote them.
fn write_source(dir: &Path) -> Vec<Change> {
    let s = open(dir);
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
    s.create_namespace(SpaceConfig::new(
        "hvs.states",
        GeometrySpec::Euclidean { dim: 2 },
    ))
    .unwrap();
    let flat = s
        .batch_store_vectors(
            (0..20)
                .map(|i| NewVector {
                    region: (i % 2 == 0).then(|| "even".to_string()),
                    metadata: [
                        ("i".to_string(), json!(i)),
                        ("tags".to_string(), json!({"b": [1, 2.5], "a": "x"})),
                    ]
                    .into(),
                    ..NewVector::new("flat", vec![i as f64, 0.1, -1.0])
                })
                .collect(),
        )
        .unwrap();
    s.batch_store_vectors(
        (0..10)
            .map(|i| {
                let x = f64::from(i) / 10.0;
                NewVector::new("tree", vec![(1.0 + x * x).sqrt(), x, 0.0])
            })
            .collect(),
    )
    .unwrap();
    for model in ["m1", "m2"] {
        s.store_vector(NewVector {
            metadata: [("model".to_string(), json!(model))].into(),
            ..NewVector::new("hvs.states", vec![0.5, -0.5])
        })
        .unwrap();
    }
    s.update_vector(
        flat[5].id,
        VectorUpdate {
            metadata: Some([("i".to_string(), json!("five"))].into()),
            ..VectorUpdate::default()
        },
    )
    .unwrap();
    let changes = s.changes_since(0, 10_000).unwrap();
    s.close().unwrap();
    changes
}

/// The changes sync applies: namespaces and vectors.
fn syncable(changes: Vec<Change>) -> Vec<Change> {
    changes
        .into_iter()
        .filter(|c| {
            matches!(
                c.kind,
                ChangeKind::CreateNamespace
                    | ChangeKind::Insert
                    | ChangeKind::Update
                    | ChangeKind::Delete
            )
        })
        .collect()
}

/// A new data directory at `dir` with `changes` applied as a sync job
/// applies them.
fn replay(dir: &Path, changes: Vec<Change>) {
    let s = open(dir);
    for outcome in s
        .apply_changes("digest-test", ConflictStrategy::LastWriteWins, changes)
        .unwrap()
    {
        assert!(!matches!(outcome, ApplyOutcome::Refused(_)), "{outcome:?}");
    }
    s.close().unwrap();
}

/// `changes` with the record of vector `id`'s last change edited.
fn with_record(
    mut changes: Vec<Change>,
    id: u128,
    edit: impl Fn(&mut VectorRecord),
) -> Vec<Change> {
    let last = changes
        .iter_mut()
        .rev()
        .find_map(|c| match &mut c.body {
            Some(ChangeBody::Vector(r)) if r.id.as_u128() == id => Some(r),
            _ => None,
        })
        .unwrap();
    edit(last);
    changes
}

#[test]
fn copies_written_in_different_orders_have_the_same_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, a, b) = (
        tmp.path().join("src"),
        tmp.path().join("a"),
        tmp.path().join("b"),
    );
    let feed = syncable(write_source(&src));
    replay(&a, feed.clone());
    // Namespaces created in the reverse order, then every vector change
    // newest first (the update arrives before the insert it follows,
    // which then changes nothing).
    let (mut spaces, mut vectors): (Vec<Change>, Vec<Change>) = feed
        .into_iter()
        .partition(|c| c.kind == ChangeKind::CreateNamespace);
    spaces.reverse();
    vectors.reverse();
    replay(&b, spaces.into_iter().chain(vectors).collect());

    let d = digest(&src);
    assert_eq!(digest(&a), d, "a replica in order");
    assert_eq!(digest(&b), d, "a replica in reverse order");
    let e3b0 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert!(line(&d, "namespaces").starts_with("namespaces  3 "), "{d}");
    assert!(line(&d, "vectors").starts_with("vectors     32 "), "{d}");
    assert_eq!(line(&d, "blocks"), format!("blocks      0 {e3b0}"));
    assert_eq!(d.lines().count(), 4);

    let j = digest_json(&b);
    assert_eq!(j["namespaces"]["rows"], 3);
    assert_eq!(j["vectors"]["rows"], 32);
    assert_eq!(j["blocks"], json!({"rows": 0, "digest": e3b0}));
    let overall = j["digest"].as_str().unwrap();
    assert_eq!(line(&d, "digest"), format!("digest      {overall}"));
    assert_eq!(
        line(&d, "vectors").split_whitespace().nth(2),
        j["vectors"]["digest"].as_str()
    );
}

#[test]
fn a_changed_metadata_value_coordinate_or_version_changes_the_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let feed = syncable(write_source(&tmp.path().join("src")));
    // A flat vector written once: its insert is its last change.
    let id = feed
        .iter()
        .filter_map(|c| match &c.body {
            Some(ChangeBody::Vector(r)) if r.namespace == "flat" => Some(r.id.as_u128()),
            _ => None,
        })
        .nth(3)
        .unwrap();
    let base = tmp.path().join("base");
    replay(&base, feed.clone());
    let base = digest(&base);

    type Edit = fn(&mut VectorRecord);
    let changes: [(&str, Edit); 5] = [
        ("metadata value", |r| {
            r.metadata.insert("i".into(), json!(1000));
        }),
        ("nested metadata value", |r| {
            r.metadata
                .insert("tags".into(), json!({"b": [1, 2.0], "a": "x"}));
        }),
        ("coordinate, by one bit", |r| {
            r.data[1] = r.data[1].next_up()
        }),
        ("version", |r| r.version += 1),
        ("region", |r| r.region = Some("odd".into())),
    ];
    let mut seen = BTreeSet::from([base.clone()]);
    for (i, (what, edit)) in changes.into_iter().enumerate() {
        let dir = tmp.path().join(format!("changed-{i}"));
        replay(&dir, with_record(feed.clone(), id, edit));
        let d = digest(&dir);
        assert_ne!(line(&d, "vectors"), line(&base, "vectors"), "{what}");
        assert_ne!(line(&d, "digest"), line(&base, "digest"), "{what}");
        assert_eq!(line(&d, "namespaces"), line(&base, "namespaces"), "{what}");
        assert_eq!(line(&d, "blocks"), line(&base, "blocks"), "{what}");
        assert!(seen.insert(d), "{what}: a digest seen before");
    }

    // Bookkeeping is not data: other timestamps and clocks, same digest.
    let dir = tmp.path().join("restamped");
    replay(
        &dir,
        with_record(feed.clone(), id, |r| {
            r.timestamp_ms += 12_345;
            r.hlc += 7;
            r.clock = Default::default();
        }),
    );
    assert_eq!(
        digest(&dir),
        base,
        "timestamp_ms, hlc and clock are left out"
    );
}

#[test]
fn every_block_counts_whoever_may_read_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let s = open(&src);
    s.create_block(
        "op",
        "notes",
        BlockClass::Documentation,
        BlockContent::Text("# Notes\nhello".into()),
        BlockOptions::default(),
    )
    .unwrap();
    // Readable by its owner alone: `list_blocks` shows it to no one else.
    let private = s
        .create_block(
            "op",
            "private",
            BlockClass::ProgramState,
            BlockContent::Json(json!({"step": 3, "plan": ["a", "b"]})),
            BlockOptions {
                permissions: BlockPermissions {
                    read: vec![],
                    write: vec![],
                },
                ..BlockOptions::default()
            },
        )
        .unwrap();
    s.create_block(
        "op",
        "raw",
        BlockClass::Custom("blob".into()),
        BlockContent::Bytes(vec![0, 1, 2, 255]),
        BlockOptions::default(),
    )
    .unwrap();
    // Gone a millisecond after it is written: not counted.
    s.create_block(
        "op",
        "cached",
        BlockClass::Cache,
        BlockContent::Text("soon gone".into()),
        BlockOptions {
            ttl_ms: Some(1),
            ..BlockOptions::default()
        },
    )
    .unwrap();
    let backup = tmp.path().join("src.hvsbackup");
    let mut out = std::fs::File::create(&backup).unwrap();
    s.export(&mut out, &mut |_| {}).unwrap();
    drop(out);
    s.close().unwrap();

    let copy = |name: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut input = std::fs::File::open(&backup).unwrap();
        restore_backup(&dir.join("hvs.redb"), &mut input, &mut |_| {}).unwrap();
        dir
    };
    let (a, b, c) = (copy("a"), copy("b"), copy("c"));
    let d = digest(&src);
    assert!(line(&d, "blocks").starts_with("blocks      3 "), "{d}");
    assert_eq!(digest(&a), d);

    // New content: another digest; the same content back, at version 3:
    // still another.
    let s = open(&b);
    s.update_block("op", private.id, BlockContent::Json(json!({"step": 4})))
        .unwrap();
    s.close().unwrap();
    let s = open(&c);
    s.update_block("op", private.id, BlockContent::Json(json!({"step": 4})))
        .unwrap();
    s.update_block("op", private.id, private.content.clone())
        .unwrap();
    s.close().unwrap();
    let (db, dc) = (digest(&b), digest(&c));
    for changed in [&db, &dc] {
        assert_ne!(line(changed, "blocks"), line(&d, "blocks"));
        assert_ne!(line(changed, "digest"), line(&d, "digest"));
        assert_eq!(line(changed, "vectors"), line(&d, "vectors"));
    }
    assert_ne!(db, dc);
}

#[test]
fn an_empty_store_has_a_fixed_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let e3b0 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let want = format!(
        "namespaces  0 {e3b0}\nvectors     0 {e3b0}\nblocks      0 {e3b0}\n\
         digest      ef415114051225cbe9694b6e02c3a538a7ff9ce3a97c6b662b07cbc0423381d3\n"
    );
    for name in ["a", "b"] {
        let dir = tmp.path().join(name);
        open(&dir).close().unwrap();
        assert_eq!(digest(&dir), want);
    }

    // A directory without a database is refused, not digested as empty.
    let none = tmp.path().join("none");
    let (code, out, err) = hvs(&["inspect", "--digest", "--data", path(&none)]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("no_database"), "{err}");
    assert!(!none.exists(), "inspect must not create a database");
}
