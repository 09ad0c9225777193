//! Far from the origin: the Poincaré ball and the hyperboloid against
//! references computed at 80 digits from the same `f64` inputs
//! (`reference/far_out.py` wrote `reference/far_out.txt`), at hyperbolic
//! radius 5, 10, 15, 20 and 30 and separations 1e-10, 1e-6, 0.1, 1 and 10.
//!
//! What "agrees" means (docs/GEOMETRY.md, "Far from the origin"):
//! - a distance: to 1e-12 relative;
//! - a tangent vector (`log`, parallel transport): its coordinates to 1e-12
//!   of the vector's norm;
//! - a point (`exp`, `geodesic`): within `1e-12 · step + 8 ρ` of the exact
//!   point, in hyperbolic distance, where `ρ` is the resolution of `f64`
//!   coordinates there (one ulp of the coordinates, in hyperbolic length).

use hvs_geometry::{FrechetOptions, GeometryError, Hyperboloid, Manifold, PoincareBall};

const TOL: f64 = 1e-12;

struct Case {
    model: String,
    r: f64,
    s: f64,
    x: Vec<f64>,
    y: Vec<f64>,
    distance: f64,
    log: Vec<f64>,
    v: Vec<f64>,
    exp: Vec<f64>,
    geodesic: Vec<f64>,
    u: Vec<f64>,
    transport: Vec<f64>,
}

fn cases() -> Vec<Case> {
    let vec = |f: &str| -> Vec<f64> {
        f.split_whitespace()
            .map(|a| a.parse().expect("a number"))
            .collect()
    };
    include_str!("reference/far_out.txt")
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            Case {
                model: f[0].to_string(),
                r: f[1].parse().unwrap(),
                s: f[2].parse().unwrap(),
                x: vec(f[3]),
                y: vec(f[4]),
                distance: vec(f[5])[0],
                log: vec(f[6]),
                v: vec(f[7]),
                exp: vec(f[8]),
                geodesic: vec(f[9]),
                u: vec(f[10]),
                transport: vec(f[11]),
            }
        })
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

fn diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(p, q)| (p - q) * (p - q))
        .sum::<f64>()
        .sqrt()
}

/// Relative error of a vector, normwise (0 when both are zero).
fn vec_err(got: &[f64], want: &[f64]) -> f64 {
    let d = diff(got, want);
    if d == 0.0 { 0.0 } else { d / norm(want) }
}

/// Hyperbolic length of the small displacement `got - want` at `want`, and
/// the resolution there (one ulp of the largest coordinate, in hyperbolic
/// length), in the model's coordinates.
fn point_err(model: &str, got: &[f64], want: &[f64]) -> (f64, f64) {
    let eps = f64::EPSILON;
    if model == "ball" {
        let lam = 2.0 / (1.0 - want.iter().map(|a| a * a).sum::<f64>());
        (
            lam * diff(got, want),
            lam * eps * norm(want).max(f64::MIN_POSITIVE),
        )
    } else {
        // A spatial step δ at y has length² |δ_⊥|² + |δ_∥|² / cosh² r
        // (`∥` along y_s): radial coordinates are `cosh r` times finer.
        let (g, w) = (&got[1..], &want[1..]);
        let d: Vec<f64> = g.iter().zip(w).map(|(a, b)| a - b).collect();
        let nw = norm(w);
        if nw == 0.0 {
            return (norm(&d), eps);
        }
        let par = d.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / nw;
        let perp2 = (d.iter().map(|a| a * a).sum::<f64>() - par * par).max(0.0);
        let len = (perp2 + par * par / (1.0 + nw * nw)).sqrt();
        (len, eps * nw.max(1.0))
    }
}

fn manifold(model: &str, dim: usize) -> Box<dyn Manifold> {
    curved(model, dim, 1.0)
}

fn curved(model: &str, dim: usize, curvature: f64) -> Box<dyn Manifold> {
    if model == "ball" {
        Box::new(PoincareBall::new(dim, curvature).unwrap())
    } else {
        Box::new(Hyperboloid::new(dim, curvature).unwrap())
    }
}

/// `v` times a power of two (exact).
fn times(v: &[f64], k: f64) -> Vec<f64> {
    v.iter().map(|a| a * k).collect()
}

/// Checks one case on the model of curvature `-curvature`, a power of 4:
/// `x ↦ x/√c` maps the model of curvature -1 onto it, scaling lengths by
/// `1/√c` (exactly, in f64), so inputs are scaled down, results scaled back
/// and compared with the same references.
fn check_case(
    c: &Case,
    curvature: f64,
    failures: &mut Vec<String>,
    worst: &mut std::collections::BTreeMap<String, f64>,
) {
    let m = curved(
        &c.model,
        c.x.len() - usize::from(c.model != "ball"),
        curvature,
    );
    let k = curvature.sqrt();
    let (x, y, v, u) = (
        times(&c.x, 1.0 / k),
        times(&c.y, 1.0 / k),
        times(&c.v, 1.0 / k),
        times(&c.u, 1.0 / k),
    );
    let label = format!("{} c={curvature} r={} s={:e}", c.model, c.r, c.s);
    // Each check gives (error, tolerance) or the error the crate returned.
    let mut record = |what: &str, outcome: Result<(f64, f64), GeometryError>| match outcome {
        Ok((err, tol)) => {
            let w = worst.entry(format!("{} {what}", c.model)).or_insert(0.0);
            *w = w.max(err / tol);
            if err.is_nan() || err > tol {
                failures.push(format!("{label} {what}: {err:e} > {tol:e}"));
            }
        }
        Err(e) => failures.push(format!("{label} {what}: {e}")),
    };
    record(
        "distance",
        m.distance(&x, &y).map(|d| {
            let err = (d * k - c.distance).abs() / c.distance.max(f64::MIN_POSITIVE);
            (err, TOL)
        }),
    );
    record(
        "log",
        m.log(&x, &y).map(|l| (vec_err(&times(&l, k), &c.log), TOL)),
    );
    let step = c.distance;
    let point = |p: Vec<f64>, want: &[f64], len: f64| {
        let (err, rho) = point_err(&c.model, &p, want);
        (err, TOL * len + 8.0 * rho)
    };
    record(
        "exp",
        m.exp(&x, &v).map(|p| point(times(&p, k), &c.exp, step)),
    );
    record(
        "geodesic",
        m.geodesic(&x, &y, 0.3)
            .map(|p| point(times(&p, k), &c.geodesic, 0.3 * step)),
    );
    record(
        "transport",
        m.parallel_transport(&x, &y, &u)
            .map(|t| (vec_err(&times(&t, k), &c.transport), TOL)),
    );
}

#[test]
fn far_out_maps_scale_with_the_curvature() {
    // Curvature -4 and -1/4: every formula's `c` is exercised, and the
    // answers must be the curvature -1 ones scaled.
    let mut failures = Vec::new();
    let mut worst = std::collections::BTreeMap::new();
    for c in &cases() {
        for curvature in [4.0, 0.25] {
            check_case(c, curvature, &mut failures, &mut worst);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn far_out_maps_agree_with_80_digit_references() {
    let cases = cases();
    assert_eq!(cases.len(), 100);
    let mut failures = Vec::new();
    let mut worst = std::collections::BTreeMap::new();
    for c in &cases {
        check_case(c, 1.0, &mut failures, &mut worst);
    }
    for (what, ratio) in &worst {
        println!("{what}: worst error / tolerance = {ratio:.3}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What the index ranks hyperboloid points by far out: `cosh(d) - 1`, as
/// exact as the distance (the 80-digit distance gives it as `2 sinh²(d/2)`,
/// which keeps tiny separations), so the graph can tell nearby points apart
/// at radius 30.
#[test]
fn cosh_distance_minus_one_agrees_with_80_digit_references() {
    let mut seen = 0;
    for c in cases().iter().filter(|c| c.model == "hyperboloid") {
        seen += 1;
        let h = Hyperboloid::new(c.x.len() - 1, 1.0).unwrap();
        let got = h.cosh_distance_minus_one(&c.x, &c.y);
        let want = 2.0 * (c.distance / 2.0).sinh().powi(2);
        // A relative error e in d is d·sinh d/(cosh d - 1)·e in cosh d - 1:
        // 2e for tiny d, d·e for large d.
        let tol = TOL * c.distance.max(2.0);
        assert!(
            (got - want).abs() <= tol * want,
            "r = {}, s = {}: {got} against {want}",
            c.r,
            c.s
        );
    }
    assert_eq!(seen, 50);
    let h = Hyperboloid::new(2, 1.0).unwrap();
    let nan = [f64::NAN, 0.0, 0.0];
    assert_eq!(
        h.cosh_distance_minus_one(&nan, &[1.0, 0.0, 0.0]),
        f64::INFINITY
    );
}

struct MeanCase {
    model: String,
    r: f64,
    weights: Vec<f64>,
    mean: Vec<f64>,
    points: Vec<Vec<f64>>,
}

fn mean_cases() -> Vec<MeanCase> {
    let vec = |f: &str| -> Vec<f64> {
        f.split_whitespace()
            .map(|a| a.parse().expect("a number"))
            .collect()
    };
    include_str!("reference/far_out_means.txt")
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            MeanCase {
                model: f[0].to_string(),
                r: f[1].parse().unwrap(),
                weights: vec(f[2]),
                mean: vec(f[3]),
                points: f[4..].iter().map(|p| vec(p)).collect(),
            }
        })
        .collect()
}

#[test]
fn weighted_means_of_deep_clusters_are_accurate_and_converged() {
    let mut failures = Vec::new();
    for c in mean_cases() {
        let m = manifold(&c.model, c.mean.len() - usize::from(c.model != "ball"));
        let refs: Vec<&[f64]> = c.points.iter().map(Vec::as_slice).collect();
        let got = m
            .frechet_mean(&refs, Some(&c.weights), &FrechetOptions::default())
            .unwrap();
        let (err, rho) = point_err(&c.model, &got.mean, &c.mean);
        let tol = 1e-9 + 8.0 * rho;
        println!(
            "{} r={}: error {err:e} (resolution {rho:e}), {} iterations, converged {}",
            c.model, c.r, got.iterations, got.converged
        );
        if !(err <= tol && got.converged) {
            failures.push(format!(
                "{} r={}: error {err:e} > {tol:e} or not converged ({got:?})",
                c.model, c.r
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
