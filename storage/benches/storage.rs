//! Criterion benchmarks of single operations: store and retrieve at each
//! durability level, and a k = 10 search among 20,000 H^12 vectors.
//! Latency percentiles and the large runs are in `benches/large.rs`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hvs_geometry::{Hyperboloid, Manifold};
use hvs_storage::{
    Durability, GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig,
};
use rand::SeedableRng;

fn ops(c: &mut Criterion) {
    let h = Hyperboloid::new(12, 1.0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for (name, durability) in [
        ("memory", Durability::Memory),
        ("buffered", Durability::Buffered),
        ("sync", Durability::Sync),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(StoreConfig::file(dir.path().join("b.redb"), durability)).unwrap();
        s.create_namespace(SpaceConfig::new(
            "n",
            GeometrySpec::Hyperboloid {
                dim: 12,
                curvature: 1.0,
            },
        ))
        .unwrap();
        let p = h.random_point(&mut rng);
        let id = s.store_vector(NewVector::new("n", p.clone())).unwrap().id;
        c.bench_function(&format!("store_vector/{name}"), |b| {
            b.iter(|| s.store_vector(NewVector::new("n", p.clone())).unwrap())
        });
        c.bench_function(&format!("retrieve_vector/{name}"), |b| {
            b.iter(|| s.retrieve_vector(id).unwrap())
        });
    }
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new(
        "n",
        GeometrySpec::Hyperboloid {
            dim: 12,
            curvature: 1.0,
        },
    ))
    .unwrap();
    let pts: Vec<Vec<f64>> = (0..20_000).map(|_| h.random_point(&mut rng)).collect();
    s.batch_store_vectors(pts.iter().map(|p| NewVector::new("n", p.clone())).collect())
        .unwrap();
    s.flush_index().unwrap();
    let q = h.random_point(&mut rng);
    c.bench_function("semantic_search/k10/20k_spread_h12", |b| {
        b.iter(|| {
            s.semantic_search(&SearchQuery::new("n", q.clone(), 10))
                .unwrap()
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = ops
}
criterion_main!(benches);
