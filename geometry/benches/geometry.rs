//! Criterion benchmarks of the geometry crate: nanoseconds per distance at
//! dimension 12 and 128 on each manifold, and the time of a weighted Fréchet
//! mean of 1,000 points in dimension 12; far from the origin (`far_out`),
//! nanoseconds per distance, `log` and `exp` at hyperbolic radius 5 and 30
//! and the mean of 1,000 points clustered at radius 5 and 25, on the
//! Poincaré ball and the hyperboloid; `dd_vs_plain`, the double-double
//! hyperboloid beside the plain one on the same points (nanoseconds per
//! distance, `log` and `exp` one unit apart at radius 5, 30 and 50, per
//! distance between `random_point`s, and the mean of 1,000 points at radius
//! 5 and 25).
//!
//! Run: `cargo bench -p hvs-geometry` (figures in docs/BENCHMARKS.md), or
//! one group: `cargo bench -p hvs-geometry -- dd_vs_plain`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hvs_geometry::{
    AnyManifold, DdHyperboloid, DeSitter, Euclidean, FrechetOptions, Hyperboloid, Manifold,
    PoincareBall, Product, Sphere,
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

/// A tangent vector at `x` of length `len` in a random direction.
fn random_tangent(m: &AnyManifold, x: &[f64], len: f64, rng: &mut rand::rngs::StdRng) -> Vec<f64> {
    let w = Euclidean::new(m.ambient_dim()).unwrap().random_point(rng);
    let v = m.project_tangent(x, &w).unwrap();
    let n = m.norm(x, &v).unwrap();
    v.iter().map(|a| a * len / n).collect()
}

/// A point at hyperbolic radius `r` in a random direction.
fn point_at(m: &AnyManifold, r: f64, rng: &mut rand::rngs::StdRng) -> Vec<f64> {
    let u = Euclidean::new(m.dim()).unwrap().random_point(rng);
    let n = u.iter().map(|a| a * a).sum::<f64>().sqrt();
    m.exp0(&u.iter().map(|a| a * r / n).collect::<Vec<_>>())
        .unwrap()
}

fn far_out(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let models: [(&str, AnyManifold); 2] = [
        ("poincare", PoincareBall::new(12, 1.0).unwrap().into()),
        ("hyperboloid", Hyperboloid::new(12, 1.0).unwrap().into()),
    ];
    let mut group = c.benchmark_group("far_out");
    for (name, m) in &models {
        for r in [5.0, 30.0] {
            // 64 pairs one unit apart at radius r, and the tangent vector
            // that joins them.
            let pairs: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = (0..64)
                .map(|_| {
                    let x = point_at(m, r, &mut rng);
                    let v = random_tangent(m, &x, 1.0, &mut rng);
                    let y = m.exp(&x, &v).unwrap();
                    (x, y, v)
                })
                .collect();
            let mut i = 0;
            group.bench_function(BenchmarkId::new(format!("{name}_distance"), r), |b| {
                b.iter(|| {
                    i = (i + 1) % 64;
                    let (x, y, _) = &pairs[i];
                    black_box(m.distance_unchecked(black_box(x), black_box(y)))
                })
            });
            group.bench_function(BenchmarkId::new(format!("{name}_log"), r), |b| {
                b.iter(|| {
                    i = (i + 1) % 64;
                    let (x, y, _) = &pairs[i];
                    black_box(m.log(black_box(x), black_box(y)).ok())
                })
            });
            group.bench_function(BenchmarkId::new(format!("{name}_exp"), r), |b| {
                b.iter(|| {
                    i = (i + 1) % 64;
                    let (x, _, v) = &pairs[i];
                    black_box(m.exp(black_box(x), black_box(v)).ok())
                })
            });
        }
        for r in [5.0, 25.0] {
            // 1,000 points about 1 apart around a centre at radius r.
            let centre = point_at(m, r, &mut rng);
            let pts: Vec<Vec<f64>> = (0..1000)
                .map(|_| {
                    let len =
                        0.5 * Euclidean::new(1).unwrap().random_point(&mut rng)[0].abs() + 0.5;
                    let v = random_tangent(m, &centre, len, &mut rng);
                    m.exp(&centre, &v).unwrap()
                })
                .collect();
            let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
            let weights: Vec<f64> = (0..1000).map(|i| 1.0 + (i % 7) as f64).collect();
            let opts = FrechetOptions::default();
            match m.frechet_mean(&refs, Some(&weights), &opts) {
                Ok(r2) => println!(
                    "{name} mean at radius {r}: {} iterations, converged {}, gradient {:e}, \
                     variance {:e}",
                    r2.iterations, r2.converged, r2.gradient_norm, r2.variance
                ),
                Err(e) => println!("{name} mean at radius {r}: {e}"),
            }
            group.sample_size(10);
            group.bench_function(BenchmarkId::new(format!("{name}_mean_1000"), r), |b| {
                b.iter(|| black_box(m.frechet_mean(&refs, Some(&weights), &opts).ok()))
            });
            group.sample_size(100);
        }
    }
    group.finish();
}

/// Pairs of double-double points `len` apart at radius `r` (the second a
/// step from the first towards a random point), the tangent vector joining
/// them, and the same points rounded to `f64` with their own tangent vector.
struct DdPairs {
    dd: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    plain: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)>,
}

fn dd_pairs(r: f64, len: f64, rng: &mut rand::rngs::StdRng) -> DdPairs {
    let (dd, plain) = (
        DdHyperboloid::new(12, 1.0).unwrap(),
        Hyperboloid::new(12, 1.0).unwrap(),
    );
    let e = Euclidean::new(12).unwrap();
    let unit = |rng: &mut rand::rngs::StdRng| {
        let u = e.random_point(rng);
        let n = u.iter().map(|a| a * a).sum::<f64>().sqrt();
        u.iter().map(|a| a / n).collect::<Vec<_>>()
    };
    let (mut pd, mut pp) = (Vec::new(), Vec::new());
    for _ in 0..64 {
        let x = dd
            .exp0(&unit(rng).iter().map(|a| a * r).collect::<Vec<_>>())
            .unwrap();
        let z = dd
            .exp0(&unit(rng).iter().map(|a| a * 3.0).collect::<Vec<_>>())
            .unwrap();
        let y = dd
            .geodesic(&x, &z, len / dd.distance(&x, &z).unwrap())
            .unwrap();
        let v = dd.log(&x, &y).unwrap();
        let (xf, yf) = (dd.to_f64_point(&x).unwrap(), dd.to_f64_point(&y).unwrap());
        let vf = plain.log(&xf, &yf).unwrap();
        pd.push((x, y, v));
        pp.push((xf, yf, vf));
    }
    DdPairs { dd: pd, plain: pp }
}

fn bench_maps(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    r: f64,
    m: &dyn Manifold,
    pairs: &[(Vec<f64>, Vec<f64>, Vec<f64>)],
) {
    let mut i = 0;
    group.bench_function(BenchmarkId::new(format!("{name}_distance"), r), |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            let (x, y, _) = &pairs[i];
            black_box(m.distance_unchecked(black_box(x), black_box(y)))
        })
    });
    group.bench_function(BenchmarkId::new(format!("{name}_log"), r), |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            let (x, y, _) = &pairs[i];
            black_box(m.log(black_box(x), black_box(y)).ok())
        })
    });
    group.bench_function(BenchmarkId::new(format!("{name}_exp"), r), |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            let (x, _, v) = &pairs[i];
            black_box(m.exp(black_box(x), black_box(v)).ok())
        })
    });
}

fn dd_vs_plain(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let (dd, plain) = (
        DdHyperboloid::new(12, 1.0).unwrap(),
        Hyperboloid::new(12, 1.0).unwrap(),
    );
    let mut group = c.benchmark_group("dd_vs_plain");
    for r in [5.0, 30.0, 50.0] {
        let pairs = dd_pairs(r, 1.0, &mut rng);
        if r < 40.0 {
            // At radius 50, f64 coordinates hold no two points one unit apart.
            bench_maps(&mut group, "plain", r, &plain, &pairs.plain);
        }
        bench_maps(&mut group, "dd", r, &dd, &pairs.dd);
    }
    // What the index meets near the origin: pairs of random points
    // (radius ≈ 3.5), where the double-double distance tries the plain
    // formula on the high parts first.
    let pts: Vec<Vec<f64>> = (0..128).map(|_| dd.random_point(&mut rng)).collect();
    let flat: Vec<Vec<f64>> = pts.iter().map(|p| dd.to_f64_point(p).unwrap()).collect();
    for (name, m, pts) in [
        ("plain", &plain as &dyn Manifold, &flat),
        ("dd", &dd as &dyn Manifold, &pts),
    ] {
        let mut i = 0;
        group.bench_function(
            BenchmarkId::new(format!("{name}_random_distance"), 12),
            |b| {
                b.iter(|| {
                    i = (i + 2) % 128;
                    black_box(m.distance_unchecked(black_box(&pts[i]), black_box(&pts[i + 1])))
                })
            },
        );
    }
    // Means of 1,000 points about 1 apart around a centre at radius r.
    group.sample_size(10);
    for r in [5.0, 25.0] {
        let centre = dd.exp0(&[r / 12f64.sqrt(); 12]).unwrap();
        let pts: Vec<Vec<f64>> = (0..1000)
            .map(|_| {
                let z = dd.random_point(&mut rng);
                let len = 0.5 * Euclidean::new(1).unwrap().random_point(&mut rng)[0].abs() + 0.5;
                dd.geodesic(&centre, &z, len / dd.distance(&centre, &z).unwrap())
                    .unwrap()
            })
            .collect();
        let flat: Vec<Vec<f64>> = pts.iter().map(|p| dd.to_f64_point(p).unwrap()).collect();
        let weights: Vec<f64> = (0..1000).map(|i| 1.0 + (i % 7) as f64).collect();
        let opts = FrechetOptions::default();
        for (name, m, pts) in [
            ("plain", &plain as &dyn Manifold, &flat),
            ("dd", &dd as &dyn Manifold, &pts),
        ] {
            let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
            match m.frechet_mean(&refs, Some(&weights), &opts) {
                Ok(r2) => println!(
                    "{name} mean at radius {r}: {} iterations, converged {}, gradient {:e}",
                    r2.iterations, r2.converged, r2.gradient_norm
                ),
                Err(e) => println!("{name} mean at radius {r}: {e}"),
            }
            group.bench_function(BenchmarkId::new(format!("{name}_mean_1000"), r), |b| {
                b.iter(|| black_box(m.frechet_mean(&refs, Some(&weights), &opts).ok()))
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = distances, means, far_out, dd_vs_plain
}
criterion_main!(benches);
