//! `Store::catalog_put_all`: a namespace and catalog records in one commit,
//! all or none (what a model's connect stores: its home namespace, the
//! namespace's access list, its contract).

use std::path::Path;

use hvs_storage::{
    CatalogRecord, ChangeKind, Durability, FaultSwitch, GeometrySpec, SpaceConfig, StorageError,
    Store, StoreConfig,
};

fn h2() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    }
}

fn open(path: &Path, faults: Option<&FaultSwitch>) -> Store {
    let mut config = StoreConfig::file(path, Durability::Buffered);
    config.faults = faults.cloned();
    Store::open(config).unwrap()
}

/// The records of a model `m` whose home is namespace `n`.
fn records() -> Vec<CatalogRecord> {
    vec![
        CatalogRecord {
            kind: "namespace".into(),
            key: "n".into(),
            value: b"access list".to_vec(),
            namespace: Some("n".into()),
        },
        CatalogRecord {
            kind: "model".into(),
            key: "m".into(),
            value: b"contract".to_vec(),
            namespace: None,
        },
    ]
}

/// Whether the store holds namespace `n` and each of [`records`].
fn holds(s: &Store) -> (bool, bool, bool) {
    (
        s.namespace("n").is_ok(),
        s.catalog_get("namespace", "n").unwrap().is_some(),
        s.catalog_get("model", "m").unwrap().is_some(),
    )
}

#[test]
fn a_namespace_and_its_records_are_stored_and_logged_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let s = open(&path, None);
        s.catalog_put_all(Some(SpaceConfig::new("n", h2())), records())
            .unwrap();
        assert_eq!(holds(&s), (true, true, true));
        let changes = s.changes_since(0, 100).unwrap();
        let logged: Vec<(ChangeKind, &str)> = changes
            .iter()
            .map(|c| (c.kind, c.namespace.as_str()))
            .collect();
        assert_eq!(
            logged,
            [
                (ChangeKind::CreateNamespace, "n"),
                (ChangeKind::CatalogPut, "n"),
                (ChangeKind::CatalogPut, ""),
            ]
        );
    }
    let s = open(&path, None);
    assert_eq!(holds(&s), (true, true, true));
    assert_eq!(s.catalog_get("model", "m").unwrap().unwrap(), b"contract");
}

#[test]
fn a_namespace_with_the_same_configuration_is_kept_and_the_records_put() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new("n", h2())).unwrap();
    s.catalog_put_all(Some(SpaceConfig::new("n", h2())), records())
        .unwrap();
    assert_eq!(holds(&s), (true, true, true));
    // Records alone, no namespace; and nothing at all is nothing to do.
    let more = CatalogRecord {
        key: "m2".into(),
        ..records()[1].clone()
    };
    s.catalog_put_all(None, vec![more]).unwrap();
    assert!(s.catalog_get("model", "m2").unwrap().is_some());
    let before = s.changes_since(0, 100).unwrap().len();
    s.catalog_put_all(None, Vec::new()).unwrap();
    assert_eq!(s.changes_since(0, 100).unwrap().len(), before);
}

#[test]
fn a_refused_namespace_or_record_stores_nothing() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new("n", h2())).unwrap();
    let other = GeometrySpec::Hyperboloid {
        dim: 3,
        curvature: 1.0,
    };
    let r = s.catalog_put_all(Some(SpaceConfig::new("n", other)), records());
    assert!(matches!(r, Err(StorageError::NamespaceExists(n)) if n == "n"));
    assert_eq!(holds(&s), (true, false, false));

    let mut bad = records();
    bad[1].kind = String::new();
    let r = s.catalog_put_all(Some(SpaceConfig::new("fresh", h2())), bad);
    assert!(matches!(r, Err(StorageError::InvalidQuery(_))), "{r:?}");
    assert!(s.namespace("fresh").is_err());
    assert!(s.catalog_get("namespace", "n").unwrap().is_none());
}

#[test]
fn a_failed_commit_stores_neither_the_namespace_nor_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let faults = FaultSwitch::new();
    {
        let s = open(&path, Some(&faults));
        faults.fail_writes(true);
        let r = s.catalog_put_all(Some(SpaceConfig::new("n", h2())), records());
        assert!(matches!(r, Err(StorageError::WriteFailed(_))), "{r:?}");
        faults.heal();
        assert_eq!(holds(&s), (false, false, false));
        assert!(s.changes_since(0, 100).unwrap().is_empty());
        // The same write goes through once the disk takes writes again.
        s.catalog_put_all(Some(SpaceConfig::new("n", h2())), records())
            .unwrap();
        assert_eq!(holds(&s), (true, true, true));
    }
    let s = open(&path, None);
    assert_eq!(holds(&s), (true, true, true));
}
