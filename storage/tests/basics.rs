//! Vectors and namespaces: storing, reading, updating, deleting, validation,
//! the change feed.

use hvs_storage::{
    ChangeKind, GeometrySpec, InvalidPointPolicy, Metadata, NewVector, SpaceConfig, StorageError,
    Store, StoreConfig, VectorRecord, VectorUpdate,
};
use serde_json::json;

fn store_with(ns: &str, geometry: GeometrySpec) -> Store {
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new(ns, geometry)).unwrap();
    s
}

fn h2() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    }
}

fn meta(v: serde_json::Value) -> Metadata {
    serde_json::from_value(v).unwrap()
}

#[test]
fn store_retrieve_update_delete() {
    let s = store_with("a", h2());
    let mut v = NewVector::new("a", vec![1.0, 0.0, 0.0]);
    v.region = Some("r1".into());
    v.metadata = meta(json!({"topic": "cats"}));
    let r = s.store_vector(v).unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(r.id.get_version_num(), 7, "ids are UUID v7");
    assert_eq!(s.retrieve_vector(r.id).unwrap().unwrap(), r);

    let up = s
        .update_vector(
            r.id,
            VectorUpdate {
                data: Some(vec![1.5430806348152437, 1.1752011936438014, 0.0]),
                metadata: Some(meta(json!({"topic": "dogs"}))),
                ..VectorUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(up.version, 2);
    assert_eq!(up.region.as_deref(), Some("r1"));
    assert_eq!(up.metadata["topic"], json!("dogs"));
    assert_eq!(s.retrieve_vector(r.id).unwrap().unwrap(), up);

    assert!(s.delete_vector(r.id).unwrap());
    assert!(!s.delete_vector(r.id).unwrap());
    assert_eq!(s.retrieve_vector(r.id).unwrap(), None);
    assert!(matches!(
        s.update_vector(r.id, VectorUpdate::default()),
        Err(StorageError::VectorNotFound(_))
    ));
}

#[test]
fn bad_vectors_are_refused_and_nothing_is_stored() {
    let s = store_with("a", h2());
    let cases = [
        vec![1.0, 0.0],
        vec![f64::NAN, 0.0, 0.0],
        vec![2.0, 0.0, 0.0],
    ];
    for data in cases {
        let e = s.store_vector(NewVector::new("a", data)).unwrap_err();
        assert!(e.is_validation(), "{e}");
        assert!(matches!(e, StorageError::InvalidVector { .. }));
    }
    // The dimension error names what was expected and what came.
    let e = s.store_vector(NewVector::new("a", vec![1.0])).unwrap_err();
    assert!(
        e.to_string().contains("expected 3 coordinates, got 1"),
        "{e}"
    );
    assert!(matches!(
        s.store_vector(NewVector::new("nope", vec![1.0, 0.0, 0.0])),
        Err(StorageError::NamespaceNotFound(_))
    ));
    // A batch with one bad vector stores none of them.
    let batch = vec![
        NewVector::new("a", vec![1.0, 0.0, 0.0]),
        NewVector::new("a", vec![1.0, 0.0]),
    ];
    assert!(s.batch_store_vectors(batch).is_err());
    assert_eq!(s.iter_namespace("a").unwrap().len(), 0);
    assert_eq!(s.get_stats().unwrap().namespaces["a"].vectors, 0);
    assert_eq!(
        s.changes_since(0, 100).unwrap().len(),
        1,
        "only the namespace's creation"
    );
}

#[test]
fn a_projecting_space_says_so_and_projects() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let mut cfg = SpaceConfig::new(
        "p",
        GeometrySpec::Poincare {
            dim: 2,
            curvature: 1.0,
        },
    );
    cfg.on_invalid = InvalidPointPolicy::Project;
    s.create_namespace(cfg.clone()).unwrap();
    assert_eq!(
        s.namespace("p").unwrap().on_invalid,
        InvalidPointPolicy::Project
    );
    let r = s.store_vector(NewVector::new("p", vec![3.0, 4.0])).unwrap();
    let n = (r.data[0].powi(2) + r.data[1].powi(2)).sqrt();
    assert!(n < 1.0 && n > 0.999);
    // NaN cannot be projected.
    assert!(
        s.store_vector(NewVector::new("p", vec![f64::NAN, 0.0]))
            .is_err()
    );
}

#[test]
fn namespaces_are_validated_and_idempotent() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let cfg = SpaceConfig::new("x", h2());
    s.create_namespace(cfg.clone()).unwrap();
    s.create_namespace(cfg).unwrap();
    assert!(matches!(
        s.create_namespace(SpaceConfig::new("x", GeometrySpec::Euclidean { dim: 3 })),
        Err(StorageError::NamespaceExists(_))
    ));
    assert!(matches!(
        s.create_namespace(SpaceConfig::new("", h2())),
        Err(StorageError::InvalidNamespaceName(_))
    ));
    assert!(matches!(
        s.create_namespace(SpaceConfig::new(
            "bad",
            GeometrySpec::Sphere {
                dim: 0,
                curvature: 1.0
            }
        )),
        Err(StorageError::InvalidGeometry(_))
    ));
    assert_eq!(s.namespaces().len(), 1);
}

#[test]
fn deep_metadata_is_refused() {
    let s = store_with("a", h2());
    let mut v = json!("leaf");
    for _ in 0..100 {
        v = json!({ "n": v });
    }
    let mut nv = NewVector::new("a", vec![1.0, 0.0, 0.0]);
    nv.metadata = meta(json!({ "deep": v }));
    assert!(matches!(
        s.store_vector(nv),
        Err(StorageError::InvalidMetadata(_))
    ));
}

#[test]
fn the_change_feed_numbers_every_mutation_without_gaps() {
    let s = store_with("a", h2());
    let r = s
        .store_vector(NewVector::new("a", vec![1.0, 0.0, 0.0]))
        .unwrap();
    s.batch_store_vectors(vec![
        NewVector::new("a", vec![1.0, 0.0, 0.0]),
        NewVector::new("a", vec![1.0, 0.0, 0.0]),
    ])
    .unwrap();
    s.update_vector(
        r.id,
        VectorUpdate {
            region: Some(Some("z".into())),
            ..Default::default()
        },
    )
    .unwrap();
    s.delete_vector(r.id).unwrap();
    let feed = s.changes_since(0, 100).unwrap();
    let kinds: Vec<ChangeKind> = feed.iter().map(|c| c.kind).collect();
    use ChangeKind::*;
    assert_eq!(
        kinds,
        vec![CreateNamespace, Insert, Insert, Insert, Update, Delete]
    );
    assert!(feed.iter().enumerate().all(|(i, c)| c.seq == i as u64 + 1));
    assert_eq!(feed[4].version, 2);
    assert_eq!(s.changes_since(4, 100).unwrap().len(), 2);
    assert_eq!(s.get_stats().unwrap().last_change, 6);
}

#[test]
fn iteration_is_oldest_first_and_per_namespace() {
    let s = store_with("a", h2());
    s.create_namespace(SpaceConfig::new("b", GeometrySpec::Euclidean { dim: 2 }))
        .unwrap();
    let ids: Vec<_> = (0..20)
        .map(|_| {
            s.store_vector(NewVector::new("a", vec![1.0, 0.0, 0.0]))
                .unwrap()
                .id
        })
        .collect();
    s.store_vector(NewVector::new("b", vec![0.0, 0.0])).unwrap();
    let got: Vec<_> = s
        .iter_namespace("a")
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(got, ids);
    let many = s
        .batch_retrieve_vectors(&[ids[3], uuid::Uuid::nil(), ids[0]])
        .unwrap();
    assert_eq!(many[0].as_ref().unwrap().id, ids[3]);
    assert!(many[1].is_none());
}

/// A page cache far smaller than the data (`StoreConfig::cache_bytes`, `hvs
/// serve --cache-mb`) changes where reads come from, not what they return,
/// before and after a reopen.
#[test]
fn a_small_page_cache_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-cache.redb");
    let open = || {
        let mut config = StoreConfig::file(&path, hvs_storage::Durability::Buffered);
        config.cache_bytes = Some(64 * 1024);
        Store::open(config).unwrap()
    };
    let s = open();
    s.create_namespace(SpaceConfig::new("c", GeometrySpec::Euclidean { dim: 64 }))
        .unwrap();
    // About 3 MB of records against a 64 KB cache.
    let stored: Vec<VectorRecord> = (0..6)
        .flat_map(|b| {
            let batch = (0..1000)
                .map(|i| NewVector::new("c", vec![f64::from(b * 1000 + i); 64]))
                .collect();
            s.batch_store_vectors(batch).unwrap()
        })
        .collect();
    drop(s);
    let s = open();
    for r in &stored {
        assert_eq!(s.retrieve_vector(r.id).unwrap().as_ref(), Some(r));
    }
    assert_eq!(s.iter_namespace("c").unwrap().len(), stored.len());
}

/// An operation that makes many feed entries (a batch insert, a batch of
/// messages) writes them as one row: every page of the feed still starts
/// and ends at any entry, and after a reopen numbering and clocks go on
/// from the last entry without a gap.
#[test]
fn the_feed_pages_through_entries_written_together_and_goes_on_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let config = || StoreConfig::file(&path, hvs_storage::Durability::Buffered);
    let (first, last_hlc) = {
        let s = Store::open(config()).unwrap();
        s.create_namespace(SpaceConfig::new("a", h2())).unwrap();
        s.batch_store_vectors(
            (0..7)
                .map(|_| NewVector::new("a", vec![1.0, 0.0, 0.0]))
                .collect(),
        )
        .unwrap();
        let one = s
            .store_vector(NewVector::new("a", vec![1.0, 0.0, 0.0]))
            .unwrap();
        s.batch_store_vectors(
            (0..5)
                .map(|_| NewVector::new("a", vec![1.0, 0.0, 0.0]))
                .collect(),
        )
        .unwrap();
        s.delete_vector(one.id).unwrap();
        let feed = s.changes_since(0, 100).unwrap();
        assert_eq!(feed.len(), 1 + 7 + 1 + 5 + 1);
        assert!(feed.iter().enumerate().all(|(i, c)| c.seq == i as u64 + 1));
        assert!(feed.windows(2).all(|w| w[0].hlc < w[1].hlc));
        // Every start and every length: the entries numbered after `after`,
        // at most `limit` of them, whatever rows they share.
        for after in 0..=feed.len() as u64 {
            for limit in [1, 2, 3, 6, 100] {
                let page = s.changes_since(after, limit).unwrap();
                let want: Vec<_> = feed.iter().filter(|c| c.seq > after).take(limit).collect();
                assert_eq!(
                    page.iter().collect::<Vec<_>>(),
                    want,
                    "after {after}, limit {limit}"
                );
            }
        }
        (feed, s.changes_since(0, 100).unwrap().last().unwrap().hlc)
    };
    let s = Store::open(config()).unwrap();
    assert_eq!(s.changes_since(0, 100).unwrap(), first);
    s.store_vector(NewVector::new("a", vec![1.0, 0.0, 0.0]))
        .unwrap();
    let next = s.changes_since(first.len() as u64, 100).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].seq, first.len() as u64 + 1);
    assert!(
        next[0].hlc > last_hlc,
        "the clock goes on from the last entry of the last row"
    );
    assert_eq!(s.get_stats().unwrap().last_change, first.len() as u64 + 1);
}
