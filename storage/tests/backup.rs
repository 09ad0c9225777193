//! Backups: an export imported into a new file is the same store, row for
//! row; a damaged backup or an occupied target is refused and leaves no
//! database behind.

use std::path::Path;
use std::sync::mpsc;

use hvs_storage::{
    BackupProgress, BackupSummary, BlockClass, BlockContent, BlockOptions, BlockPermissions,
    Durability, GeometrySpec, MessageRecord, NewVector, SearchQuery, Settled, Settlement,
    SpaceConfig, StorageError, Store, StoreConfig, VectorUpdate,
};
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

/// A point of H^n (curvature -1) from intrinsic coordinates `v`.
fn hyperboloid(v: &[f64]) -> Vec<f64> {
    let r2: f64 = v.iter().map(|x| x * x).sum();
    std::iter::once((1.0 + r2).sqrt())
        .chain(v.iter().copied())
        .collect()
}

/// A point of the unit sphere S^n from ambient coordinates `v`.
fn sphere(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn random(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn append(s: &Store, ms: Vec<MessageRecord>) -> Vec<MessageRecord> {
    let (tx, rx) = mpsc::channel();
    s.append_messages(
        ms,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv()
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|m| m.as_ref().clone())
        .collect()
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

/// A store with something in every table: vectors on four geometries
/// (with regions and metadata, one updated, one deleted), blocks (a
/// read-only one, one with history, documentation, a refused read in the
/// audit log), messages with settlements, catalog records.
fn populate(s: &Store) -> Vec<(String, Vec<f64>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let spaces = [
        (
            "h3",
            GeometrySpec::Hyperboloid {
                dim: 3,
                curvature: 1.0,
            },
        ),
        ("e4", GeometrySpec::Euclidean { dim: 4 }),
        (
            "s2",
            GeometrySpec::Sphere {
                dim: 2,
                curvature: 1.0,
            },
        ),
        (
            "chat",
            GeometrySpec::Hyperboloid {
                dim: 2,
                curvature: 1.0,
            },
        ),
    ];
    for (name, g) in &spaces {
        s.create_namespace(SpaceConfig::new(*name, g.clone()))
            .unwrap();
    }
    let mut queries = Vec::new();
    for (name, point) in [
        (
            "h3",
            &(|r: &mut _| hyperboloid(&random(r, 3))) as &dyn Fn(&mut _) -> Vec<f64>,
        ),
        ("e4", &|r: &mut _| random(r, 4)),
        ("s2", &|r: &mut _| sphere(&random(r, 3))),
    ] {
        let batch: Vec<NewVector> = (0..300)
            .map(|i| {
                let mut v = NewVector::new(name, point(&mut rng));
                v.region = (i % 3 == 0).then(|| format!("region-{}", i % 2));
                v.metadata.insert("i".into(), json!(i));
                v.metadata
                    .insert("tags".into(), json!({"even": i % 2 == 0}));
                v
            })
            .collect();
        let stored = s.batch_store_vectors(batch).unwrap();
        s.update_vector(
            stored[1].id,
            VectorUpdate {
                data: Some(point(&mut rng)),
                ..VectorUpdate::default()
            },
        )
        .unwrap();
        assert!(s.delete_vector(stored[2].id).unwrap());
        for _ in 0..3 {
            queries.push((name.to_string(), point(&mut rng)));
        }
    }
    let ro = BlockOptions {
        readonly: true,
        ..BlockOptions::default()
    };
    s.create_block(
        "op",
        "constants",
        BlockClass::SharedKnowledge,
        BlockContent::Json(json!({"answer": 42})),
        ro,
    )
    .unwrap();
    let state = s
        .create_block(
            "op",
            "state",
            BlockClass::ProgramState,
            BlockContent::Json(json!({"n": 0})),
            BlockOptions::default(),
        )
        .unwrap();
    for n in 1..=3 {
        s.update_block("op", state.id, BlockContent::Json(json!({ "n": n })))
            .unwrap();
    }
    s.create_block(
        "op",
        "guide",
        BlockClass::Documentation,
        BlockContent::Text("# Start\nRun it.\n# Stop\nKill it.".into()),
        BlockOptions::default(),
    )
    .unwrap();
    let secret = BlockOptions {
        permissions: BlockPermissions {
            read: vec!["op".into()],
            write: vec!["op".into()],
        },
        ..BlockOptions::default()
    };
    s.create_block(
        "op",
        "secret",
        BlockClass::Custom("keys".into()),
        BlockContent::Bytes(vec![0, 1, 2, 255]),
        secret,
    )
    .unwrap();
    assert!(matches!(
        s.get_block_by_name("mallory", "secret"),
        Err(StorageError::PermissionDenied { .. })
    ));
    let messages: Vec<MessageRecord> = (0..50)
        .map(|i| MessageRecord {
            id: Uuid::now_v7(),
            namespace: "chat".into(),
            from: "a".into(),
            to: vec!["b".into(), "c".into()],
            payload: format!("message {i}").into_bytes(),
            vector: hyperboloid(&random(&mut rng, 2)),
            metadata: [("i".to_string(), json!(i))].into_iter().collect(),
            sent_ms: 1000 + i,
            expires_ms: (i % 5 == 0).then_some(u64::MAX / 2),
        })
        .collect();
    let messages = append(s, messages);
    settle(
        s,
        messages[..20]
            .iter()
            .map(|m| Settled {
                message: m.id,
                recipient: "b".into(),
                settlement: Settlement::Acked,
                at_ms: 2000,
            })
            .chain(std::iter::once(Settled {
                message: messages[20].id,
                recipient: "c".into(),
                settlement: Settlement::DeadLettered {
                    reason: "expired".into(),
                },
                at_ms: 2001,
            }))
            .collect(),
    );
    queries.push(("chat".into(), hyperboloid(&random(&mut rng, 2))));
    s.catalog_put("model", "a", b"contract a".to_vec()).unwrap();
    s.catalog_put("model", "b", b"contract b".to_vec()).unwrap();
    s.catalog_put("acl", "chat", br#"{"read":["*"]}"#.to_vec())
        .unwrap();
    queries
}

fn export(s: &Store) -> (Vec<u8>, BackupSummary, Vec<BackupProgress>) {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let summary = s.export(&mut out, &mut |p| seen.push(p)).unwrap();
    (out, summary, seen)
}

fn import(path: &Path, backup: &[u8]) -> Result<(Store, BackupSummary), StorageError> {
    Store::import(
        StoreConfig::file(path, Durability::Buffered),
        &mut &backup[..],
        &mut |_| {},
    )
}

/// Files in `dir` (the database, temporaries, anything).
fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn an_imported_backup_is_the_same_store_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let source = Store::open(StoreConfig::file(
        dir.path().join("a.redb"),
        Durability::Buffered,
    ))
    .unwrap();
    let queries = populate(&source);
    let (backup, summary, progress) = export(&source);
    assert_eq!(summary.bytes, backup.len() as u64);
    assert_eq!(summary.tables, source.table_rows().unwrap());
    assert_eq!(summary.rows("vectors"), 3 * 299);
    assert_eq!(summary.rows("messages"), 50);
    assert_eq!(summary.rows("settled"), 21);
    assert_eq!(summary.rows("blocks"), 4);
    assert_eq!(summary.rows("catalog"), 3);
    assert!(summary.rows("audit") > 0 && summary.rows("changes") > 0);
    // Progress ends every table with all its rows.
    for (table, rows) in &summary.tables {
        let last = progress.iter().rfind(|p| p.table == *table).unwrap();
        assert_eq!((last.rows_done, last.rows_total), (*rows, *rows));
    }

    let target = dir.path().join("restored").join("b.redb");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    let mut imported_progress = Vec::new();
    let (restored, restored_summary) = Store::import(
        StoreConfig::file(&target, Durability::Buffered),
        &mut &backup[..],
        &mut |p| imported_progress.push(p),
    )
    .unwrap();
    assert_eq!(restored_summary, summary);
    assert_eq!(imported_progress, progress);

    let rows = source.raw_rows().unwrap();
    assert_eq!(
        rows.len() as u64,
        summary.tables.iter().map(|t| t.1).sum::<u64>()
    );
    assert!(restored.raw_rows().unwrap() == rows, "rows differ");
    // A second export of the copy is the same stream, byte for byte.
    assert!(export(&restored).0 == backup, "the re-export differs");

    let (a, b) = (source.get_stats().unwrap(), restored.get_stats().unwrap());
    assert_eq!(a.namespaces.len(), 4);
    for (name, ns) in &a.namespaces {
        assert_eq!(ns.vectors, b.namespaces[name].vectors, "{name}");
    }
    assert_eq!(a.last_change, b.last_change);
    assert_eq!(source.namespaces(), restored.namespaces());
    for (ns, q) in &queries {
        for exact in [false, true] {
            let mut query = SearchQuery::new(ns.as_str(), q.clone(), 5);
            query.exact = exact;
            let hits = |s: &Store| -> Vec<(Uuid, f64)> {
                s.semantic_search(&query)
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.id, h.distance))
                    .collect()
            };
            assert_eq!(hits(&source), hits(&restored), "{ns} exact={exact}");
        }
    }
    let report = restored.verify_consistency().unwrap();
    assert!(report.consistent, "{report:?}");
    assert_eq!(report, source.verify_consistency().unwrap());

    // What the layers above read back is the same too.
    let unsettled = |s: &Store| -> Vec<(Uuid, Vec<String>)> {
        s.unsettled_messages()
            .unwrap()
            .into_iter()
            .map(|u| (u.message.id, u.recipients))
            .collect()
    };
    assert_eq!(unsettled(&source), unsettled(&restored));
    assert_eq!(unsettled(&restored).len(), 50);
    assert_eq!(
        source.list_blocks("op", None).unwrap(),
        restored.list_blocks("op", None).unwrap()
    );
    let constants = restored
        .get_block_by_name("op", "constants")
        .unwrap()
        .unwrap();
    assert!(matches!(
        restored.update_block("op", constants.id, BlockContent::Text("x".into())),
        Err(StorageError::ReadOnlyBlock(_))
    ));
    let state = restored.get_block_by_name("op", "state").unwrap().unwrap();
    assert_eq!(state.history.len(), 3);
    assert_eq!(
        source.catalog_list("model").unwrap(),
        restored.catalog_list("model").unwrap()
    );

    // The copy is durable: it reopens the same (with the refused update
    // in its audit log).
    let rows = restored.raw_rows().unwrap();
    drop(restored);
    let reopened = Store::open(StoreConfig::file(&target, Durability::Buffered)).unwrap();
    assert!(reopened.raw_rows().unwrap() == rows);
}

#[test]
fn a_damaged_backup_is_refused_and_leaves_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let source = Store::open(StoreConfig::file(
        dir.path().join("a.redb"),
        Durability::Buffered,
    ))
    .unwrap();
    source
        .create_namespace(SpaceConfig::new("e2", GeometrySpec::Euclidean { dim: 2 }))
        .unwrap();
    source
        .batch_store_vectors(
            (0..20)
                .map(|i| NewVector::new("e2", vec![i as f64, 1.0]))
                .collect(),
        )
        .unwrap();
    source.catalog_put("model", "a", b"x".to_vec()).unwrap();
    let (backup, _, _) = export(&source);
    let target_dir = dir.path().join("restored");
    std::fs::create_dir(&target_dir).unwrap();
    let target = target_dir.join("b.redb");

    let refused = |bytes: &[u8], what: &str| {
        match import(&target, bytes) {
            Err(StorageError::Corrupt(_) | StorageError::NewerFormat { .. }) => {}
            Err(e) => panic!("{what}: refused with {e:?}, not as a damaged backup"),
            Ok(_) => panic!("{what}: accepted"),
        }
        assert_eq!(files_in(&target_dir), Vec::<String>::new(), "{what}");
    };
    let mut cuts: Vec<usize> = vec![0, 1, 8, 9, 13, 21, 25, backup.len() - 4, backup.len() - 1];
    cuts.extend((1..40).map(|i| backup.len() * i / 40));
    for cut in cuts {
        refused(&backup[..cut], &format!("truncated to {cut} bytes"));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut positions: Vec<usize> = (0..40).map(|_| rng.random_range(0..backup.len())).collect();
    positions.extend([0, 9, 13, 21, backup.len() - 1]);
    for at in positions {
        let mut damaged = backup.clone();
        damaged[at] ^= 1 << rng.random_range(0..8);
        refused(&damaged, &format!("byte {at} flipped"));
    }
    let mut longer = backup.clone();
    longer.push(0);
    refused(&longer, "a byte appended");
    refused(b"not a backup at all", "foreign bytes");

    // The intact backup still imports.
    let (restored, _) = import(&target, &backup).unwrap();
    assert!(restored.raw_rows().unwrap() == source.raw_rows().unwrap());
}

#[test]
fn an_import_never_writes_over_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.redb");
    let source = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    source
        .create_namespace(SpaceConfig::new("e2", GeometrySpec::Euclidean { dim: 2 }))
        .unwrap();
    let (backup, _, _) = export(&source);
    let before = source.raw_rows().unwrap();
    drop(source);

    // Its own file, closed.
    let err = import(&path, &backup).err().unwrap();
    assert!(matches!(err, StorageError::DatabaseExists(_)), "{err:?}");
    assert_eq!(err.code(), "database_exists");
    let again = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    assert!(again.raw_rows().unwrap() == before);
    // And while open.
    let err = import(&path, &backup).err().unwrap();
    assert!(matches!(err, StorageError::DatabaseExists(_)), "{err:?}");
    drop(again);
    assert!(!files_in(dir.path()).iter().any(|f| f.ends_with(".tmp")));

    // An empty file is not a database: it is replaced.
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let (s, _) = import(&empty, &backup).unwrap();
    assert_eq!(s.namespaces().len(), 1);
}

#[test]
fn a_memory_store_exports_what_its_database_holds() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new(
        "chat",
        GeometrySpec::Hyperboloid {
            dim: 2,
            curvature: 1.0,
        },
    ))
    .unwrap();
    let v = s
        .store_vector(NewVector::new("chat", hyperboloid(&[0.5, 0.5])))
        .unwrap();
    append(
        &s,
        vec![MessageRecord {
            id: Uuid::now_v7(),
            namespace: "chat".into(),
            from: "a".into(),
            to: vec!["b".into()],
            payload: b"hi".to_vec(),
            vector: hyperboloid(&[0.1, 0.0]),
            metadata: Default::default(),
            sent_ms: 1,
            expires_ms: None,
        }],
    );
    let (backup, summary, _) = export(&s);
    // Messages at `Memory` live outside the database: not in the backup.
    assert_eq!(summary.rows("messages"), 0);
    assert_eq!(summary.rows("vectors"), 1);
    let dir = tempfile::tempdir().unwrap();
    let (restored, _) = import(&dir.path().join("b.redb"), &backup).unwrap();
    assert_eq!(restored.retrieve_vector(v.id).unwrap().unwrap(), v);
    assert!(matches!(
        Store::import(StoreConfig::memory(), &mut &backup[..], &mut |_| {}),
        Err(StorageError::Io(_))
    ));
}
