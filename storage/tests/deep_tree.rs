//! A hierarchy embedded deep in hyperbolic space (levels out to radius 25,
//! where the hyperboloid's f64 coordinates reach 1e10 and the ball's points
//! lie within 1e-10 of its edge): the index's graph search returns the same
//! neighbours as the exact scan, at the geometry crate's exact distances.

use hvs_geometry::Manifold;
use hvs_storage::{GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig};
use rand::{Rng, SeedableRng};

fn unit(v: Vec<f64>) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// A tree of `levels` levels of `width` nodes, in polar form: a child sits
/// one unit further out than a random parent of the level above, in the
/// parent's direction bent by an angle that shrinks as e^-r (so siblings
/// stay about one unit apart at every depth). Returns every node's point.
fn deep_tree(m: &dyn Manifold, levels: usize, width: usize) -> Vec<Vec<f64>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut random = |scale: f64| -> Vec<f64> {
        (0..m.dim())
            .map(|_| scale * rng.random_range(-1.0..1.0))
            .collect()
    };
    let mut level: Vec<(f64, Vec<f64>)> = (0..width).map(|_| (1.0, unit(random(1.0)))).collect();
    let mut points = Vec::new();
    for depth in 1..=levels {
        let mut next = Vec::with_capacity(width);
        for i in 0..width {
            let (r, d) = if depth == 1 {
                level[i].clone()
            } else {
                let (r, d) = &level[(i * 7919 + depth) % level.len()];
                let r = r + 1.0;
                let bend = random(2.0 * (-r).exp());
                (r, unit(d.iter().zip(bend).map(|(x, b)| x + b).collect()))
            };
            points.push(
                m.exp0(&d.iter().map(|x| x * r).collect::<Vec<_>>())
                    .unwrap(),
            );
            next.push((r, d));
        }
        level = next;
    }
    points
}

fn graph_finds_what_the_exact_scan_finds(spec: GeometrySpec) {
    let m = spec.build().unwrap();
    let points = deep_tree(&m, 25, 80);
    let origin = m.exp0(&vec![0.0; m.dim()]).unwrap();
    let deepest = points
        .iter()
        .map(|p| m.distance(&origin, p).unwrap())
        .fold(0.0, f64::max);
    assert!(deepest > 24.0, "the tree reaches radius {deepest}");

    let store = Store::open(StoreConfig::memory()).unwrap();
    store
        .create_namespace(SpaceConfig::new("tree", spec.clone()))
        .unwrap();
    let new = points.iter().map(|p| NewVector::new("tree", p.clone()));
    let stored = store.batch_store_vectors(new.collect()).unwrap();
    store.flush_index().unwrap();

    let k = 10;
    let (mut found, mut wanted) = (0usize, 0usize);
    // The deepest quarter of the tree, each node's own point the query.
    for (i, r) in stored.iter().enumerate().skip(3 * stored.len() / 4) {
        let mut q = SearchQuery::new("tree", r.data.clone(), k);
        let graph = store.semantic_search(&q).unwrap();
        q.exact = true;
        let exact = store.semantic_search(&q).unwrap();
        assert_eq!(graph[0].id, r.id, "node {i} is found by its own point");
        for h in &graph {
            let j = stored.iter().position(|s| s.id == h.id).unwrap();
            let truth = m.distance(&r.data, &points[j]).unwrap();
            assert!((h.distance - truth).abs() <= 1e-9 * (1.0 + truth));
        }
        let ids: Vec<_> = graph.iter().map(|h| h.id).collect();
        wanted += exact.len();
        found += exact.iter().filter(|h| ids.contains(&h.id)).count();
    }
    let recall = found as f64 / wanted as f64;
    assert!(recall >= 0.99, "{spec:?}: recall@{k} {recall} far out");
}

#[test]
fn a_deep_hierarchy_on_the_hyperboloid_is_searched_as_exactly_as_it_is_scanned() {
    graph_finds_what_the_exact_scan_finds(GeometrySpec::Hyperboloid {
        dim: 12,
        curvature: 1.0,
    });
}

#[test]
fn a_deep_hierarchy_in_the_ball_is_searched_as_exactly_as_it_is_scanned() {
    graph_finds_what_the_exact_scan_finds(GeometrySpec::Poincare {
        dim: 12,
        curvature: 1.0,
    });
}
