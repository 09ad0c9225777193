//! Criterion benchmarks of the geometry crate: nanoseconds per distance at
//! dimension 12 and 128 on each manifold, and the time of a weighted Fréchet
//! mean of 1,000 points in dimension 12.
//!
//! Run: `cargo bench -p hvs-geometry` (figures in docs/BENCHMARKS.md).

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hvs_geometry::{
    AnyManifold, DeSitter, Euclidean, FrechetOptions, Hyperboloid, Manifold, PoincareBall, Product,
    Sphere,
};
use rand::SeedableRng;

fn manifolds(dim: usize) -> Vec<(&'static str, AnyManifold)> {
    let half = dim / 2;
    vec![
        ("euclidean", Euclidean::new(dim).unwrap().into()),
        ("poincare", PoincareBall::new(dim, 1.0).unwrap().into()),
        ("hyperboloid", Hyperboloid::new(dim, 1.0).unwrap().into()),
        ("sphere", Sphere::new(dim, 1.0).unwrap().into()),
        ("de_sitter", DeSitter::new(dim, 1.0).unwrap().into()),
        (
            "product_h_x_s",
            Product::new(vec![
                (Hyperboloid::new(half, 1.0).unwrap().into(), 1.0),
                (Sphere::new(dim - half, 1.0).unwrap().into(), 1.0),
            ])
            .unwrap()
            .into(),
        ),
    ]
}

fn distances(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for (mode, checked) in [("distance_unchecked", false), ("distance_checked", true)] {
        let mut group = c.benchmark_group(mode);
        for dim in [12, 128] {
            for (name, m) in manifolds(dim) {
                // 64 pairs, cycled, so one pair's cache state does not flatter.
                let pts: Vec<Vec<f64>> = (0..128).map(|_| m.random_point(&mut rng)).collect();
                let mut i = 0;
                group.bench_with_input(BenchmarkId::new(name, dim), &m, |b, m| {
                    b.iter(|| {
                        i = (i + 2) % 128;
                        let (x, y) = (&pts[i], &pts[i + 1]);
                        if checked {
                            black_box(m.distance(black_box(x), black_box(y)).unwrap_or(0.0))
                        } else {
                            black_box(m.distance_unchecked(black_box(x), black_box(y)))
                        }
                    })
                });
            }
        }
        group.finish();
    }
}

fn means(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut group = c.benchmark_group("frechet_mean_1000");
    group.sample_size(20);
    for (name, m) in manifolds(12) {
        if name == "de_sitter" {
            continue; // no Fréchet mean on a Lorentzian manifold
        }
        // Hyperbolic and flat points spread as `random_point` spreads them
        // (radius ~ 3.5); where there is a sphere, points within a cap, because
        // the mean is unique only there: exp0 of N(0, 0.2^2 I) vectors.
        let pts: Vec<Vec<f64>> = (0..1000)
            .map(|_| {
                if name == "sphere" || name.starts_with("product") {
                    let v = Euclidean::new(12).unwrap().random_point(&mut rng);
                    m.exp0(&v.iter().map(|a| a * 0.2).collect::<Vec<_>>())
                        .unwrap()
                } else {
                    m.random_point(&mut rng)
                }
            })
            .collect();
        let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
        let weights: Vec<f64> = (0..1000).map(|i| 1.0 + (i % 7) as f64).collect();
        let opts = FrechetOptions::default();
        let r = m.frechet_mean(&refs, Some(&weights), &opts).unwrap();
        println!(
            "{name}: {} iterations, converged {}",
            r.iterations, r.converged
        );
        group.bench_function(name, |b| {
            b.iter(|| black_box(m.frechet_mean(&refs, Some(&weights), &opts).unwrap()))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = distances, means
}
criterion_main!(benches);
