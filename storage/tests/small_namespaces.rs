//! A namespace gets an HNSW graph only once it holds 256 vectors
//! (`GRAPH_MIN` in `index.rs`, docs/STORAGE.md "Index"): below that it has
//! no graph and no fresh buffer, and every search scans it exactly; the
//! write that reaches 256 hands its vectors to the indexer, which builds
//! the graph while searches go on scanning what it does not hold yet.
//! Either way a search answers what a scan of every vector answers.

use hvs_geometry::Manifold;
use hvs_storage::{
    Durability, Filter, GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig,
};
use rand::SeedableRng;
use serde_json::json;
use uuid::Uuid;

/// Below the threshold (256).
const SMALL: usize = 200;
/// Past it.
const LARGE: usize = 600;

fn h12() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 12,
        curvature: 1.0,
    }
}

/// `n` random points of H^12 stored in `ns`, half of them `even`; what
/// was stored, by id.
fn store_points(s: &Store, ns: &str, n: usize, seed: u64) -> Vec<(Uuid, Vec<f64>, bool)> {
    let m = h12().build().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let batch = (0..n)
        .map(|i| {
            let mut v = NewVector::new(ns, m.random_point(&mut rng));
            v.metadata = serde_json::from_value(json!({"even": i % 2 == 0})).unwrap();
            v
        })
        .collect();
    s.batch_store_vectors(batch)
        .unwrap()
        .into_iter()
        .map(|r| {
            let even = r.metadata["even"] == json!(true);
            (r.id, r.data, even)
        })
        .collect()
}

/// The `k` nearest of `points` to `q` (of those `keep` accepts), by a scan
/// in the test itself: ids and distances.
fn brute_force(
    points: &[(Uuid, Vec<f64>, bool)],
    q: &[f64],
    k: usize,
    keep: impl Fn(bool) -> bool,
) -> Vec<(Uuid, f64)> {
    let m = h12().build().unwrap();
    let mut all: Vec<(Uuid, f64)> = points
        .iter()
        .filter(|(_, _, even)| keep(*even))
        .map(|(id, p, _)| (*id, m.distance(q, p).unwrap()))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// Searches `ns` around 50 random points, with and without a filter, and
/// checks every answer against the brute-force one: same ids in the same
/// order, same distances.
fn assert_exact_answers(s: &Store, ns: &str, points: &[(Uuid, Vec<f64>, bool)], seed: u64) {
    let m = h12().build().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for i in 0..50 {
        let q = m.random_point(&mut rng);
        let mut query = SearchQuery::new(ns, q.clone(), 10);
        let want = if i % 2 == 0 {
            brute_force(points, &q, 10, |_| true)
        } else {
            query.filter = Some(Filter::Eq("even".into(), json!(true)));
            brute_force(points, &q, 10, |even| even)
        };
        let got: Vec<(Uuid, f64)> = s
            .semantic_search(&query)
            .unwrap()
            .into_iter()
            .map(|h| (h.id, h.distance))
            .collect();
        assert_eq!(got.len(), want.len(), "query {i}");
        for ((gid, gd), (wid, wd)) in got.iter().zip(&want) {
            assert_eq!(gid, wid, "query {i}: {got:?} vs {want:?}");
            assert!((gd - wd).abs() <= 1e-9 * wd.max(1.0), "query {i}");
        }
    }
}

#[test]
fn a_small_namespace_has_no_graph_and_answers_exactly() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new("small", h12()))
        .unwrap();
    let points = store_points(&s, "small", SMALL, 1);
    s.flush_index().unwrap();
    let st = &s.get_stats().unwrap().namespaces["small"];
    assert_eq!((st.vectors, st.in_graph, st.fresh), (SMALL, 0, 0), "{st:?}");
    assert_exact_answers(&s, "small", &points, 2);
    assert_eq!(self_lookup_misses(&s, "small", &points), 0);
    assert!(s.verify_consistency().unwrap().consistent);
}

#[test]
fn a_namespace_that_crosses_the_threshold_gets_a_graph_and_keeps_answering() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new("growing", h12()))
        .unwrap();
    let mut points = store_points(&s, "growing", SMALL, 3);
    assert_eq!(s.get_stats().unwrap().namespaces["growing"].in_graph, 0);
    // Past the threshold: searched right away, whatever the indexer has
    // built of the graph so far (the rest is scanned exactly).
    points.extend(store_points(&s, "growing", LARGE - SMALL, 4));
    assert_exact_answers(&s, "growing", &points, 5);
    assert!(s.verify_consistency().unwrap().consistent);
    // Once the graph holds every vector, searches go through it.
    s.flush_index().unwrap();
    let st = &s.get_stats().unwrap().namespaces["growing"];
    assert_eq!(
        (st.vectors, st.in_graph, st.fresh),
        (LARGE, LARGE, 0),
        "{st:?}"
    );
    assert_eq!(self_lookup_misses(&s, "growing", &points), 0);
    // Shrinking below the threshold keeps the graph; what is left is found.
    let gone: Vec<Uuid> = points
        .drain(..LARGE - SMALL / 2)
        .map(|(id, _, _)| id)
        .collect();
    assert!(s.delete_vectors(&gone).unwrap().iter().all(|d| *d));
    s.flush_index().unwrap();
    let st = &s.get_stats().unwrap().namespaces["growing"];
    assert_eq!((st.vectors, st.in_graph), (SMALL / 2, SMALL / 2), "{st:?}");
    assert_eq!(self_lookup_misses(&s, "growing", &points), 0);
    assert!(s.verify_consistency().unwrap().consistent);
}

/// Points of `points` that a k=1 search for their own vector (all of them
/// in one batch) does not return first.
fn self_lookup_misses(s: &Store, ns: &str, points: &[(Uuid, Vec<f64>, bool)]) -> usize {
    let queries: Vec<SearchQuery> = points
        .iter()
        .map(|(_, p, _)| SearchQuery::new(ns, p.clone(), 1))
        .collect();
    let answers = s.batch_search(&queries).unwrap();
    answers
        .iter()
        .zip(points)
        .filter(|(hits, (id, _, _))| hits.first().map(|h| h.id) != Some(*id))
        .count()
}

#[test]
fn a_small_namespace_writes_no_graph_dump_and_answers_exactly_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let (small, large) = {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        s.create_namespace(SpaceConfig::new("small", h12()))
            .unwrap();
        s.create_namespace(SpaceConfig::new("large", h12()))
            .unwrap();
        let small = store_points(&s, "small", SMALL, 7);
        let large = store_points(&s, "large", LARGE, 8);
        s.flush_index().unwrap();
        s.close().unwrap();
        (small, large)
    };
    let dumps: Vec<String> = std::fs::read_dir(dir.path().join("db.redb.graphs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        dumps.len(),
        1,
        "only the large namespace's graph: {dumps:?}"
    );
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    let stats = s.get_stats().unwrap();
    assert_eq!(stats.namespaces["small"].in_graph, 0);
    assert_eq!(stats.namespaces["large"].restored_from_dump, LARGE);
    assert_exact_answers(&s, "small", &small, 9);
    assert_eq!(self_lookup_misses(&s, "large", &large), 0);
    assert!(s.verify_consistency().unwrap().consistent);
}
