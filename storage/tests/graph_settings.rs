//! A namespace's own graph settings (`SpaceConfig::graph`, docs/STORAGE.md,
//! "Graph settings"): its graph is built with them, they survive a reopen
//! (and the graph dump made with them loads back), and settings out of
//! range are refused with nothing created.

use hvs_storage::{
    Durability, GeometrySpec, GraphSettings, IndexParams, NewVector, SearchQuery, SpaceConfig,
    StorageError, Store, StoreConfig,
};
use rand::{Rng, SeedableRng};

/// Past the 256 at which a namespace gets a graph.
const N: usize = 600;

fn space() -> GeometrySpec {
    GeometrySpec::Euclidean { dim: 16 }
}

fn small() -> GraphSettings {
    GraphSettings {
        m: Some(8),
        ef_construction: Some(32),
    }
}

/// Every stored vector is the nearest hit of a graph search for its own
/// coordinates.
fn each_finds_itself(s: &Store, name: &str, stored: &[(uuid::Uuid, Vec<f64>)]) {
    for (id, data) in stored {
        let hits = s
            .semantic_search(&SearchQuery::new(name, data.clone(), 1))
            .unwrap();
        assert_eq!(hits[0].id, *id, "{name}");
    }
}

#[test]
fn a_namespace_builds_its_graph_with_its_own_settings_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let defaults = IndexParams::default();
    let own = IndexParams {
        connectivity: 8,
        expansion_add: 32,
        ..defaults
    };
    // Only `m`: `ef_construction` stays the store's.
    let half = GraphSettings {
        m: Some(12),
        ef_construction: None,
    };
    let spaces = [
        ("small", Some(small()), own),
        (
            "half",
            Some(half),
            IndexParams {
                connectivity: 12,
                ..defaults
            },
        ),
        ("plain", None, defaults),
    ];
    let mut stored = Vec::new();
    {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        for (name, graph, params) in spaces {
            let mut config = SpaceConfig::new(name, space());
            config.graph = graph;
            s.create_namespace(config).unwrap();
            assert_eq!(s.graph_params(name).unwrap(), params, "{name}");
            let batch: Vec<NewVector> = (0..N)
                .map(|_| {
                    NewVector::new(name, (0..16).map(|_| rng.random_range(-3.0..3.0)).collect())
                })
                .collect();
            let records = s.batch_store_vectors(batch).unwrap();
            stored.push(
                records
                    .into_iter()
                    .map(|r| (r.id, r.data))
                    .collect::<Vec<_>>(),
            );
        }
        s.flush_index().unwrap();
        for ((name, _, _), stored) in spaces.iter().zip(&stored) {
            each_finds_itself(&s, name, stored);
        }
        s.close().unwrap();
    }
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let stats = s.get_stats().unwrap();
    for ((name, graph, params), stored) in spaces.iter().zip(&stored) {
        assert_eq!(s.namespace(name).unwrap().graph, *graph, "{name}");
        assert_eq!(s.graph_params(name).unwrap(), *params, "{name}");
        // The dump made with the namespace's settings is its graph again.
        let ns = &stats.namespaces[*name];
        assert_eq!(
            (ns.restored_from_dump, ns.in_graph),
            (N, N),
            "{name}: {ns:?}"
        );
        each_finds_itself(&s, name, stored);
    }
}

#[test]
fn graph_settings_out_of_range_are_refused_and_nothing_is_created() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    for (m, ef_construction) in [
        (Some(3), None),
        (Some(65), None),
        (None, Some(7)),
        (None, Some(1025)),
        (Some(32), Some(16)),
    ] {
        let config =
            SpaceConfig::new("n", space()).with_graph(GraphSettings { m, ef_construction });
        let e = s.create_namespace(config).unwrap_err();
        assert!(matches!(e, StorageError::InvalidGraph(_)), "{e:?}");
        assert_eq!(e.code(), "invalid_graph");
        assert!(s.namespace("n").is_err());
    }
    // The same name again: the same settings are a no-op, others a clash.
    s.create_namespace(SpaceConfig::new("n", space()).with_graph(small()))
        .unwrap();
    s.create_namespace(SpaceConfig::new("n", space()).with_graph(small()))
        .unwrap();
    let e = s
        .create_namespace(SpaceConfig::new("n", space()))
        .unwrap_err();
    assert_eq!(e.code(), "namespace_exists");
}
