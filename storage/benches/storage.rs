//! Criterion benchmarks of single operations: store and retrieve at each
//! durability level, a k = 10 search among 20,000 H^12 vectors, and the
//! `f32` squared distance of 128-d graphs (HVS's kernel beside usearch's,
//! each through an exact scan of a usearch index, as a graph calls it).
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

/// usearch's exact scan of 20,000 128-d `f32` vectors (one distance per
/// vector, called as a graph calls its metric) with its own `f32` kernel and
/// with HVS's ([`hvs_storage::l2sq_f32`]); then HVS's kernel called directly.
fn l2sq(c: &mut Criterion) {
    use rand::Rng;
    use usearch::{Index, IndexOptions, MetricKind, ScalarKind};
    const DIMS: usize = 128;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut point = || -> Vec<f32> { (0..DIMS).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let points: Vec<Vec<f32>> = (0..20_000).map(|_| point()).collect();
    let query = point();
    let index = |hvs_kernel: bool| {
        let mut index = Index::new(&IndexOptions {
            dimensions: DIMS,
            metric: MetricKind::L2sq,
            quantization: ScalarKind::F32,
            ..IndexOptions::default()
        })
        .unwrap();
        if hvs_kernel {
            let kernel = hvs_storage::l2sq_f32();
            index.change_metric::<f32>(Box::new(move |a, b| {
                #[allow(unsafe_code)]
                // SAFETY: usearch passes two vectors of the index's 128
                // `f32` dimensions, alive for the call.
                let (a, b) = unsafe {
                    (
                        std::slice::from_raw_parts(a, DIMS),
                        std::slice::from_raw_parts(b, DIMS),
                    )
                };
                kernel(a, b)
            }));
        }
        index.reserve(points.len()).unwrap();
        for (k, p) in points.iter().enumerate() {
            index.add(k as u64, p).unwrap();
        }
        index
    };
    for (name, hvs_kernel) in [("usearch", false), ("hvs", true)] {
        let index = index(hvs_kernel);
        c.bench_function(&format!("l2sq_f32/128d/exact_scan_20k/{name}"), |b| {
            b.iter(|| index.exact_search(&query, 10).unwrap())
        });
    }
    let kernel = hvs_storage::l2sq_f32();
    c.bench_function("l2sq_f32/128d/one_distance/hvs", |b| {
        b.iter(|| {
            kernel(
                std::hint::black_box(&points[0]),
                std::hint::black_box(&query),
            )
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = ops, l2sq
}
criterion_main!(benches);
