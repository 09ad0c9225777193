//! A namespace's `datatype` (docs/STORAGE.md, "Vector storage") and a
//! search's own `ef` (docs/STORAGE.md, "Search"): what each graph datatype
//! answers, what is refused, and that dumps of every datatype load back.

use hvs_geometry::Manifold;
use hvs_storage::{
    Datatype, Durability, GeometrySpec, MessageRecord, NewVector, SearchQuery, SpaceConfig,
    StorageError, Store, StoreConfig, VectorRecord,
};
use rand::{Rng, SeedableRng};

/// Past the 256 at which a namespace gets a graph.
const N: usize = 600;

fn euclidean() -> GeometrySpec {
    GeometrySpec::Euclidean { dim: 16 }
}

fn sphere() -> GeometrySpec {
    GeometrySpec::Sphere {
        dim: 15,
        curvature: 1.0,
    }
}

/// Every datatype, each on a geometry that takes it.
fn spaces() -> Vec<(&'static str, GeometrySpec, Datatype)> {
    vec![
        ("e64", euclidean(), Datatype::F64),
        ("e32", euclidean(), Datatype::F32),
        ("e16", euclidean(), Datatype::F16),
        ("s8", sphere(), Datatype::I8),
    ]
}

fn point(spec: &GeometrySpec, rng: &mut rand::rngs::StdRng) -> Vec<f64> {
    let v: Vec<f64> = (0..16).map(|_| rng.random_range(-3.0..3.0)).collect();
    match spec {
        GeometrySpec::Sphere { .. } => {
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter().map(|x| x / n).collect()
        }
        _ => v,
    }
}

fn fill(s: &Store, rng: &mut rand::rngs::StdRng) -> Vec<(&'static str, Vec<VectorRecord>)> {
    spaces()
        .into_iter()
        .map(|(name, spec, datatype)| {
            s.create_namespace(SpaceConfig::new(name, spec.clone()).with_datatype(datatype))
                .unwrap();
            let batch = (0..N)
                .map(|_| NewVector::new(name, point(&spec, rng)))
                .collect();
            (name, s.batch_store_vectors(batch).unwrap())
        })
        .collect()
}

/// The coordinates a namespace's distances are computed from: rounded to
/// `f32` in an `f32` graph, the record's own otherwise.
fn as_searched(datatype: Datatype, data: &[f64]) -> Vec<f64> {
    match datatype {
        Datatype::F32 => data.iter().map(|x| f64::from(*x as f32)).collect(),
        _ => data.to_vec(),
    }
}

/// Every distance is the geometry's to the coordinates the datatype
/// promises; once the graphs are `settled` (flushed), a graph search with
/// `ef` as large as the namespace finds what the exact scan finds. (While
/// the indexer inserts, a node can lose its in-links until the next
/// reachability check: HNSW then misses it as a neighbour of other
/// queries, though never as its own point: docs/STORAGE.md, "Found by
/// its own vector at every instant".)
fn assert_answers(
    s: &Store,
    stored: &[(&'static str, Vec<VectorRecord>)],
    seed: u64,
    settled: bool,
) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for (name, spec, datatype) in spaces() {
        let records = &stored.iter().find(|(n, _)| *n == name).unwrap().1;
        let m = spec.build().unwrap();
        for _ in 0..20 {
            let q = point(&spec, &mut rng);
            let mut graph = SearchQuery::new(name, q.clone(), 10);
            graph.ef = Some(N);
            let mut exact = graph.clone();
            exact.exact = true;
            let got = s.semantic_search(&graph).unwrap();
            let want = s.semantic_search(&exact).unwrap();
            let ids = |h: &[hvs_storage::SearchHit]| h.iter().map(|h| h.id).collect::<Vec<_>>();
            assert_eq!(got.len(), want.len(), "{name}");
            if settled {
                assert_eq!(ids(&got), ids(&want), "{name}");
            }
            for h in &got {
                let r = records.iter().find(|r| r.id == h.id).unwrap();
                let d = m.distance(&q, &as_searched(datatype, &r.data)).unwrap();
                assert!(
                    (h.distance - d).abs() <= 1e-12 * d.max(1.0),
                    "{name}: {} vs {d}",
                    h.distance
                );
                let exact_d = m.distance(&q, &r.data).unwrap();
                assert!(
                    (h.distance - exact_d).abs() <= 1e-6 * exact_d.max(1.0),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn every_datatype_answers_as_its_exact_scan_with_the_distances_it_promises() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let stored = fill(&s, &mut rng);
    // Searched while the indexer moves them into the graphs, then after.
    assert_answers(&s, &stored, 2, false);
    s.flush_index().unwrap();
    for (name, _, _) in spaces() {
        assert_eq!(
            s.get_stats().unwrap().namespaces[name].in_graph,
            N,
            "{name}"
        );
    }
    assert_answers(&s, &stored, 3, true);
    // Records keep the coordinates they were given.
    let (_, e32) = stored.iter().find(|(n, _)| *n == "e32").unwrap();
    assert_eq!(
        s.retrieve_vector(e32[0].id).unwrap().unwrap().data,
        e32[0].data
    );
    assert!(s.verify_consistency().unwrap().consistent);
}

#[test]
fn a_datatype_the_geometry_cannot_use_is_refused_and_nothing_is_created() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let hyperboloid = GeometrySpec::Hyperboloid {
        dim: 4,
        curvature: 1.0,
    };
    for (spec, datatype) in [
        (euclidean(), Datatype::I8),
        (hyperboloid.clone(), Datatype::F32),
        (hyperboloid.clone(), Datatype::F16),
        (hyperboloid, Datatype::I8),
    ] {
        let e = s
            .create_namespace(SpaceConfig::new("n", spec).with_datatype(datatype))
            .unwrap_err();
        assert!(matches!(e, StorageError::InvalidDatatype(_)), "{e:?}");
        assert_eq!(e.code(), "invalid_datatype");
        assert!(s.namespace("n").is_err());
    }
    // Without one, the geometry's default.
    s.create_namespace(SpaceConfig::new("e", euclidean()))
        .unwrap();
    assert_eq!(s.namespace("e").unwrap().datatype(), Datatype::F32);
}

#[test]
fn ef_out_of_range_is_refused_and_a_small_ef_still_returns_k() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    fill(&s, &mut rng);
    s.flush_index().unwrap();
    let q = point(&euclidean(), &mut rng);
    for ef in [0, hvs_storage::MAX_EF + 1] {
        let mut query = SearchQuery::new("e32", q.clone(), 10);
        query.ef = Some(ef);
        let e = s.semantic_search(&query).unwrap_err();
        assert_eq!(e.code(), "invalid_query", "ef {ef}");
    }
    let mut query = SearchQuery::new("e32", q, 10);
    query.ef = Some(1);
    assert_eq!(s.semantic_search(&query).unwrap().len(), 10);
}

#[test]
fn dumped_graphs_of_every_datatype_are_loaded_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let stored = {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        let stored = fill(&s, &mut rng);
        s.flush_index().unwrap();
        s.close().unwrap();
        stored
    };
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let stats = s.get_stats().unwrap();
    for (name, _, _) in spaces() {
        let ns = &stats.namespaces[name];
        assert_eq!(
            (ns.restored_from_dump, ns.in_graph),
            (N, N),
            "{name}: {ns:?}"
        );
    }
    assert_answers(&s, &stored, 6, true);
}

/// An `f16` namespace holds vectors and messages; once in the graph their
/// coordinates are read back from their rows (docs/STORAGE.md, "Vector
/// storage"): every distance is the stored point's own, at every
/// durability and after a reopen, and a deleted vector is gone.
#[test]
fn an_f16_namespace_answers_messages_and_vectors_from_their_rows() {
    for durability in [Durability::Memory, Durability::Buffered] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let config = || match durability {
            Durability::Memory => StoreConfig::memory(),
            d => StoreConfig::file(&path, d),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let spec = euclidean();
        let mut points: Vec<(uuid::Uuid, Vec<f64>)> = Vec::new();
        {
            let s = Store::open(config()).unwrap();
            s.create_namespace(SpaceConfig::new("half", spec.clone()).with_datatype(Datatype::F16))
                .unwrap();
            let messages: Vec<MessageRecord> = (0..N / 2)
                .map(|i| MessageRecord {
                    id: uuid::Uuid::now_v7(),
                    namespace: "half".into(),
                    from: "a".into(),
                    to: vec!["b".into()],
                    payload: format!("m{i}").into_bytes(),
                    vector: point(&spec, &mut rng),
                    metadata: Default::default(),
                    sent_ms: 1,
                    expires_ms: None,
                })
                .collect();
            let (tx, rx) = std::sync::mpsc::channel();
            s.append_messages(
                messages,
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            for m in rx.recv().unwrap().unwrap() {
                points.push((m.id, m.vector.clone()));
            }
            let batch = (0..N / 2)
                .map(|_| NewVector::new("half", point(&spec, &mut rng)))
                .collect();
            for r in s.batch_store_vectors(batch).unwrap() {
                points.push((r.id, r.data));
            }
            let (gone, _) = points.pop().unwrap();
            assert!(s.delete_vector(gone).unwrap());
            s.flush_index().unwrap();
            check_half(&s, &points, &mut rng);
            if durability == Durability::Memory {
                continue;
            }
            s.close().unwrap();
        }
        let s = Store::open(config()).unwrap();
        s.flush_index().unwrap();
        check_half(&s, &points, &mut rng);
    }
}

/// Searches of "half" (graph and exact) and a range give the points'
/// own distances, in the exact ranking's order.
fn check_half(s: &Store, points: &[(uuid::Uuid, Vec<f64>)], rng: &mut rand::rngs::StdRng) {
    let m = euclidean().build().unwrap();
    assert_eq!(
        s.get_stats().unwrap().namespaces["half"].in_graph,
        points.len()
    );
    for i in 0..10 {
        let q = match i % 2 {
            0 => points[i * 7].1.clone(),
            _ => point(&euclidean(), rng),
        };
        let mut want: Vec<(uuid::Uuid, f64)> = points
            .iter()
            .map(|(id, x)| (*id, m.distance(&q, x).unwrap()))
            .collect();
        want.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut query = SearchQuery::new("half", q.clone(), 10);
        query.ef = Some(N);
        for exact in [false, true] {
            query.exact = exact;
            let got: Vec<(uuid::Uuid, f64)> = s
                .semantic_search(&query)
                .unwrap()
                .iter()
                .map(|h| (h.id, h.distance))
                .collect();
            assert_eq!(got, want[..10].to_vec(), "exact {exact}");
        }
        let got = s.range_search(&query, want[9].1).unwrap();
        assert_eq!(got.len(), 10);
        assert_eq!(got[9].distance, want[9].1);
    }
}
