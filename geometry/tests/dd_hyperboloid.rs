//! The double-double hyperboloid: its typed refusals and round trips, and
//! its accuracy far from the origin against references computed at 160
//! digits from the same double-double inputs (`reference/far_out_dd.py`
//! wrote `reference/far_out_dd.txt` and `far_out_dd_means.txt`), at
//! hyperbolic radius 5, 30 and 50 and separations 1e-30 to 10, beside the
//! plain `f64` hyperboloid on the same points rounded to `f64`.
//!
//! What "agrees" means (docs/GEOMETRY.md, "Beyond f64: a double-double
//! hyperboloid"), with `ρ(r) = 2^-104 sinh r` the resolution of
//! double-double coordinates at radius `r`:
//! - a distance: to `1e-12 + ρ(r)` relative, `r` the larger radius;
//! - a tangent vector (`log`, transport): within `1e-28 + 8ρ` of its
//!   length, in the metric at its base point, `ρ` at the farther point;
//! - a point from `geodesic`: within `1e-28 · step + 8ρ` hyperbolic; from
//!   `exp(x, v)` also `8ρ(x) sinh|v|` (the tangent vector's own resolution,
//!   grown along the step); a mean: `10 · tolerance + 8ρ`.

use hvs_geometry::{DdHyperboloid, FrechetOptions, GeometryError, Hyperboloid, Manifold};
use proptest::prelude::*;

const DD_EPSILON: f64 = f64::EPSILON * f64::EPSILON;

fn vec(f: &str) -> Vec<f64> {
    f.split_whitespace()
        .map(|a| a.parse().expect("a number"))
        .collect()
}

struct Case {
    r: f64,
    s: f64,
    x: Vec<f64>,
    y: Vec<f64>,
    distance: f64,
    log: Vec<f64>,
    v: Vec<f64>,
    exp: Vec<f64>,
    midpoint: Vec<f64>,
    u: Vec<f64>,
    transport: Vec<f64>,
}

fn cases() -> Vec<Case> {
    include_str!("reference/far_out_dd.txt")
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            let d = vec(f[4]);
            Case {
                r: f[0].parse().unwrap(),
                s: f[1].parse().unwrap(),
                x: vec(f[2]),
                y: vec(f[3]),
                distance: d[0] + d[1],
                log: vec(f[5]),
                v: vec(f[6]),
                exp: vec(f[7]),
                midpoint: vec(f[8]),
                u: vec(f[9]),
                transport: vec(f[10]),
            }
        })
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// A minimal double-double for the error measures, independent of the
/// crate's: `(hi, lo)` with products made exact by `mul_add`.
#[derive(Clone, Copy)]
struct D(f64, f64);

impl D {
    fn add(self, o: D) -> D {
        let s = self.0 + o.0;
        let b = s - self.0;
        let e = (self.0 - (s - b)) + (o.0 - b) + self.1 + o.1;
        let h = s + e;
        D(h, e - (h - s))
    }
    fn mul(self, o: D) -> D {
        let p = self.0 * o.0;
        let e = self.0.mul_add(o.0, -p) + self.0 * o.1 + self.1 * o.0;
        let h = p + e;
        D(h, e - (h - p))
    }
    fn div(self, o: D) -> D {
        let q = self.0 / o.0;
        let r = self.add(o.mul(D(-q, 0.0)));
        D(q, 0.0).add(D(r.0 / o.0, 0.0))
    }
}

/// Spatial parts of `got - want` (both in the double-double layout), in
/// double-double: the high parts of nearby values subtract exactly, and so
/// do the low parts (two-sum); the smallest of the three terms is dropped.
fn spatial_diff(got: &[f64], want: &[f64]) -> Vec<D> {
    let n1 = got.len() / 2;
    (1..n1)
        .map(|i| {
            let (a, b) = (got[n1 + i], -want[n1 + i]);
            let s = a + b;
            let bb = s - a;
            let e = (a - (s - bb)) + (b - bb);
            D(got[i] - want[i], 0.0).add(D(s, 0.0)).add(D(e, 0.0))
        })
        .collect()
}

/// The metric length at a point (spatial part `ps`, double-double pairs)
/// of a small spatial displacement or tangent vector `d`:
/// `|d_⊥|^2 + |d_∥|^2 / cosh^2 r`. Far out `d` is mostly along `ps`, so
/// its part across is formed in double-double.
fn metric_len(ps: &[(f64, f64)], d: &[D]) -> f64 {
    let n2 = ps
        .iter()
        .fold(D(0.0, 0.0), |acc, p| acc.add(D(p.0, p.1).mul(D(p.0, p.1))));
    if n2.0 == 0.0 {
        return d.iter().map(|a| a.0 * a.0).sum::<f64>().sqrt();
    }
    let pd = ps
        .iter()
        .zip(d)
        .fold(D(0.0, 0.0), |acc, (p, q)| acc.add(D(p.0, p.1).mul(*q)));
    let a = pd.div(n2);
    let perp2: f64 = ps
        .iter()
        .zip(d)
        .map(|(p, q)| q.add(D(-a.0, -a.1).mul(D(p.0, p.1))).0.powi(2))
        .sum();
    let par2 = a.0 * a.0 * n2.0 / (1.0 + n2.0);
    (perp2 + par2).sqrt()
}

/// The spatial coordinates as pairs.
fn spatial_pairs(x: &[f64]) -> Vec<(f64, f64)> {
    let n1 = x.len() / 2;
    (1..n1).map(|i| (x[i], x[n1 + i])).collect()
}

/// High parts of the spatial coordinates.
fn spatial_hi(x: &[f64]) -> Vec<f64> {
    x[1..x.len() / 2].to_vec()
}

/// The resolution of double-double coordinates at the point `p`.
fn rho_dd(p: &[f64]) -> f64 {
    DD_EPSILON * norm(&spatial_hi(p)).max(1.0)
}

/// Hyperbolic distance between nearby points `got` and `want`, and the
/// resolution at `want`.
fn point_err(got: &[f64], want: &[f64]) -> (f64, f64) {
    (
        metric_len(&spatial_pairs(want), &spatial_diff(got, want)),
        rho_dd(want),
    )
}

/// Error of the tangent vector `got` at `base`, relative to `want`'s
/// length, and the resolution at `base`.
fn vector_err(base: &[f64], got: &[f64], want: &[f64]) -> (f64, f64) {
    let ps = spatial_pairs(base);
    let n1 = want.len() / 2;
    let w: Vec<D> = (1..n1).map(|i| D(want[i], want[n1 + i])).collect();
    let len = metric_len(&ps, &w);
    let err = metric_len(&ps, &spatial_diff(got, want));
    if err == 0.0 {
        (0.0, rho_dd(base))
    } else {
        (err / len, rho_dd(base))
    }
}

/// `v` times a power of two (exact, pair by pair).
fn times(v: &[f64], k: f64) -> Vec<f64> {
    v.iter().map(|a| a * k).collect()
}

/// Worst error / tolerance per quantity and radius, and the failures.
#[derive(Default)]
struct Tally {
    worst: std::collections::BTreeMap<String, (f64, f64)>,
    failures: Vec<String>,
}

impl Tally {
    fn record(
        &mut self,
        label: &str,
        what: &str,
        r: f64,
        outcome: Result<(f64, f64), GeometryError>,
    ) {
        match outcome {
            Ok((err, tol)) => {
                if std::env::var("DD_VERBOSE").is_ok() {
                    println!("{label} {what}: {err:.2e} / {tol:.2e}");
                }
                let w = self
                    .worst
                    .entry(format!("{what} r={r:>2}"))
                    .or_insert((0.0, 0.0));
                if err / tol >= w.0 / w.1.max(f64::MIN_POSITIVE) || w.1 == 0.0 {
                    *w = (err, tol);
                }
                if err.is_nan() || err > tol {
                    self.failures
                        .push(format!("{label} {what}: {err:e} > {tol:e}"));
                }
            }
            Err(e) => self.failures.push(format!("{label} {what}: {e}")),
        }
    }
}

/// Checks one case on the model of curvature `-curvature`, a power of 4:
/// `x ↦ x/√c` maps the model of curvature -1 onto it exactly.
fn check_case(c: &Case, curvature: f64, tally: &mut Tally) {
    let m = DdHyperboloid::new(c.x.len() / 2 - 1, curvature).unwrap();
    let k = curvature.sqrt();
    let (x, y, v, u) = (
        times(&c.x, 1.0 / k),
        times(&c.y, 1.0 / k),
        times(&c.v, 1.0 / k),
        times(&c.u, 1.0 / k),
    );
    let label = format!("c={curvature} r={} s={:e}", c.r, c.s);
    // The resolution at the farther of the two points.
    let far = rho_dd(&c.x).max(rho_dd(&c.y));
    let step = c.distance;
    let point = |p: Vec<f64>, want: &[f64], len: f64| {
        let (err, rho) = point_err(&times(&p, k), want);
        (err, 1e-28 * len + 8.0 * rho)
    };
    // exp amplifies an error across its tangent vector (which holds its
    // direction to ρ(x)|v|) by sinh θ/θ, the growth of a Jacobi field.
    let exp_point = |p: Vec<f64>, want: &[f64], len: f64| {
        let (err, tol) = point(p, want, len);
        let sinhc = if len > 0.0 { len.sinh() / len } else { 1.0 };
        (err, tol + 8.0 * rho_dd(&c.x) * len * sinhc)
    };
    let vector = |t: Vec<f64>, base: &[f64], want: &[f64]| {
        let (err, rho) = vector_err(base, &times(&t, k), want);
        (err, 1e-28 + 8.0 * rho.max(far))
    };
    tally.record(
        &label,
        "distance",
        c.r,
        m.distance(&x, &y).map(|d| {
            let err = (d * k - c.distance).abs() / c.distance.max(f64::MIN_POSITIVE);
            (err, 1e-12 + far)
        }),
    );
    tally.record(
        &label,
        "log",
        c.r,
        m.log(&x, &y).map(|l| vector(l, &c.x, &c.log)),
    );
    tally.record(
        &label,
        "exp",
        c.r,
        m.exp(&x, &v).map(|p| exp_point(p, &c.exp, step)),
    );
    tally.record(
        &label,
        "round trip",
        c.r,
        m.log(&x, &y)
            .and_then(|l| m.exp(&x, &l))
            .map(|p| exp_point(p, &c.y, step)),
    );
    tally.record(
        &label,
        "midpoint",
        c.r,
        m.geodesic(&x, &y, 0.5)
            .map(|p| point(p, &c.midpoint, 0.5 * step)),
    );
    tally.record(
        &label,
        "transport",
        c.r,
        m.parallel_transport(&x, &y, &u)
            .map(|t| vector(t, &c.y, &c.transport)),
    );
}

#[test]
fn dd_hyperboloid_agrees_with_160_digit_references() {
    let cases = cases();
    assert_eq!(cases.len(), 78);
    let mut tally = Tally::default();
    for c in &cases {
        check_case(c, 1.0, &mut tally);
    }
    for (what, (err, tol)) in &tally.worst {
        println!("{what}: worst error {err:.2e} (tolerance {tol:.2e})");
    }
    assert!(
        tally.failures.is_empty(),
        "{} failures:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

#[test]
fn dd_far_out_maps_scale_with_the_curvature() {
    let mut tally = Tally::default();
    for c in &cases() {
        for curvature in [4.0, 0.25] {
            check_case(c, curvature, &mut tally);
        }
    }
    assert!(
        tally.failures.is_empty(),
        "{} failures:\n{}",
        tally.failures.len(),
        tally.failures.join("\n")
    );
}

/// An `f64` result in the double-double layout (zero low parts).
fn widen(v: &[f64]) -> Vec<f64> {
    let mut out = v.to_vec();
    out.extend(std::iter::repeat_n(0.0, v.len()));
    out
}

/// The same points as the double-double representation holds them and
/// rounded to `f64` (the plain `Hyperboloid`), against the exact answers:
/// what a user gets from each. The distance is compared with the intended
/// separation `s` (so the rounding of the points shows), the maps with the
/// exact results for the double-double points.
#[test]
fn double_double_and_f64_hyperboloids_side_by_side() {
    let dd = DdHyperboloid::new(5, 1.0).unwrap();
    let plain = Hyperboloid::new(5, 1.0).unwrap();
    let mut resolution = std::collections::BTreeMap::<(u64, &str), f64>::new();
    let mut failures = Vec::new();
    println!(
        "|  r | s | distance dd | distance f64 | log dd | log f64 | round trip dd | round trip f64 | midpoint dd | midpoint f64 |"
    );
    for c in &cases() {
        let (xf, yf) = (
            dd.to_f64_point(&c.x).unwrap(),
            dd.to_f64_point(&c.y).unwrap(),
        );
        let rel = |d: f64| (d - c.s).abs() / c.s;
        let d_dd = rel(dd.distance(&c.x, &c.y).unwrap());
        let d_f64 = rel(plain.distance(&xf, &yf).unwrap());
        // The double-double points are within ρ of the intended ones.
        if d_dd * c.s > 1e-12 * c.s + 4.0 * rho_dd(&c.x) {
            failures.push(format!("r={} s={:e}: distance error {d_dd:e}", c.r, c.s));
        }
        for (repr, err) in [("dd", d_dd), ("f64", d_f64)] {
            // The smallest separation told apart: distance within 1 %.
            let smallest = resolution
                .entry((c.r as u64, repr))
                .or_insert(f64::INFINITY);
            if err <= 0.01 && c.s < *smallest {
                *smallest = c.s;
            }
            if err > 0.01 && c.s >= *smallest {
                *smallest = f64::INFINITY; // a larger separation failed: start over
            }
        }
        let log_dd = dd.log(&c.x, &c.y).map(|l| vector_err(&c.x, &l, &c.log).0);
        let log_f64 = plain
            .log(&xf, &yf)
            .map(|l| vector_err(&c.x, &widen(&l), &c.log).0);
        let trip_dd = dd
            .log(&c.x, &c.y)
            .and_then(|l| dd.exp(&c.x, &l))
            .map(|p| point_err(&p, &c.y).0);
        let trip_f64 = plain
            .log(&xf, &yf)
            .and_then(|l| plain.exp(&xf, &l))
            .map(|p| point_err(&widen(&p), &c.y).0);
        let mid_dd = dd
            .geodesic(&c.x, &c.y, 0.5)
            .map(|p| point_err(&p, &c.midpoint).0);
        let mid_f64 = plain
            .geodesic(&xf, &yf, 0.5)
            .map(|p| point_err(&widen(&p), &c.midpoint).0);
        let show = |r: Result<f64, GeometryError>| match r {
            Ok(e) => format!("{e:.1e}"),
            Err(e) => e.code().to_string(),
        };
        println!(
            "| {} | {:e} | {d_dd:.1e} | {d_f64:.1e} | {} | {} | {} | {} | {} | {} |",
            c.r,
            c.s,
            show(log_dd),
            show(log_f64),
            show(trip_dd),
            show(trip_f64),
            show(mid_dd),
            show(mid_f64)
        );
    }
    for ((r, repr), s) in &resolution {
        println!("radius {r}: {repr} tells apart separations down to {s:e}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

struct MeanCase {
    r: f64,
    weights: Vec<f64>,
    mean: Vec<f64>,
    points: Vec<Vec<f64>>,
}

fn mean_cases() -> Vec<MeanCase> {
    include_str!("reference/far_out_dd_means.txt")
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            MeanCase {
                r: f[0].parse().unwrap(),
                weights: vec(f[1]),
                mean: vec(f[2]),
                points: f[3..].iter().map(|p| vec(p)).collect(),
            }
        })
        .collect()
}

/// Weighted means of 25-point clusters at radius 5, 30 and 50: the
/// double-double mean within `1e-12 + 8ρ` of the 160-digit one and
/// converged, with the default tolerance and a tighter one; the plain
/// hyperboloid's mean of the same points rounded to `f64` beside it.
#[test]
fn weighted_means_of_deep_clusters_are_exact_to_the_resolution() {
    let dd = DdHyperboloid::new(5, 1.0).unwrap();
    let plain = Hyperboloid::new(5, 1.0).unwrap();
    let mut failures = Vec::new();
    for c in mean_cases() {
        let refs: Vec<&[f64]> = c.points.iter().map(Vec::as_slice).collect();
        for tolerance in [1e-10, 1e-14] {
            let options = FrechetOptions {
                tolerance,
                ..FrechetOptions::default()
            };
            let got = dd.frechet_mean(&refs, Some(&c.weights), &options).unwrap();
            let (err, rho) = point_err(&got.mean, &c.mean);
            println!(
                "dd r={} tolerance {tolerance:e}: error {err:.1e} (resolution {rho:.1e}), \
                 {} iterations, converged {}, gradient {:.1e}",
                c.r, got.iterations, got.converged, got.gradient_norm
            );
            let tol = 10.0 * tolerance + 8.0 * rho;
            if !(err <= tol && got.converged) {
                failures.push(format!(
                    "r={} tolerance {tolerance:e}: {err:e} > {tol:e} or not converged",
                    c.r
                ));
            }
        }
        let rounded: Vec<Vec<f64>> = c
            .points
            .iter()
            .map(|p| dd.to_f64_point(p).unwrap())
            .collect();
        let refs: Vec<&[f64]> = rounded.iter().map(Vec::as_slice).collect();
        match plain.frechet_mean(&refs, Some(&c.weights), &FrechetOptions::default()) {
            Ok(got) => println!(
                "f64 r={}: error {:.1e}, {} iterations, converged {}",
                c.r,
                point_err(&widen(&got.mean), &c.mean).0,
                got.iterations,
                got.converged
            ),
            Err(e) => println!("f64 r={}: {e}", c.r),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn assert_off_manifold(r: Result<(), GeometryError>) {
    assert!(matches!(r, Err(GeometryError::OffManifold { .. })), "{r:?}");
}

#[test]
fn bad_points_and_vectors_are_refused_with_the_reason() {
    let m = DdHyperboloid::new(3, 1.0).unwrap();
    let plain = Hyperboloid::new(3, 1.0).unwrap();
    assert_eq!(m.ambient_dim(), 8);
    assert_eq!(m.dim(), 3);
    let x = m.exp0(&[3.0, -1.0, 0.5]).unwrap();
    m.check(&x).unwrap();
    assert_eq!(
        m.check(&x[..4]),
        Err(GeometryError::DimensionMismatch {
            expected: 8,
            got: 4
        })
    );
    let mut nan = x.clone();
    nan[6] = f64::NAN;
    assert!(matches!(
        m.check(&nan),
        Err(GeometryError::NonFinite { index: 6, .. })
    ));
    // A low part larger than half an ulp of its high part.
    let mut loose = x.clone();
    loose[5] = x[1] * 1e-10;
    assert_off_manifold(m.check(&loose));
    // The pairs interleaved instead of high parts first.
    let interleaved: Vec<f64> = (0..4).flat_map(|i| [x[i], x[4 + i]]).collect();
    assert_off_manifold(m.check(&interleaved));
    // x_0 off by 1e-20 relative: fine for f64, not for this representation.
    let mut off = x.clone();
    off[4] += 1e-20 * x[0];
    assert_off_manifold(m.check(&off));
    // An f64 point with zero low parts: its x_0 is only f64-exact.
    let xf = plain.exp0(&[3.0, -1.0, 0.5]).unwrap();
    let zero_lo = widen(&xf);
    assert_off_manifold(m.check(&zero_lo));
    assert_eq!(m.project(&zero_lo).unwrap(), m.from_f64_point(&xf).unwrap());
    // A point given as a tangent vector.
    assert!(matches!(
        m.exp(&x, &x),
        Err(GeometryError::NotTangent { .. })
    ));
    // Overflow is refused, never clamped or NaN.
    assert!(matches!(
        m.exp0(&[800.0, 0.0, 0.0]),
        Err(GeometryError::NotRepresentable { .. })
    ));
    // |x_s|^2 overflows beyond radius ≈ 355, as on the plain hyperboloid.
    assert!(matches!(
        m.exp0(&[400.0, 0.0, 0.0]),
        Err(GeometryError::NotRepresentable { argument, .. }) if argument == f64::INFINITY
    ));
    assert!(matches!(
        m.from_f64_point(&[1.0, 1.0, 0.0, 0.0]),
        Err(GeometryError::OffManifold { .. })
    ));
    assert_eq!(m.distance_unchecked(&x, &nan), f64::INFINITY);
    assert_eq!(m.distance_unchecked(&x, &x[..4]), f64::INFINITY);
    assert!(matches!(
        DdHyperboloid::new(0, 1.0),
        Err(GeometryError::InvalidDimension { .. })
    ));
    assert!(matches!(
        DdHyperboloid::new(2, -1.0),
        Err(GeometryError::InvalidCurvature { .. })
    ));
}

#[test]
fn f64_points_convert_both_ways_and_keep_their_distances() {
    let m = DdHyperboloid::new(4, 0.5).unwrap();
    let plain = Hyperboloid::new(4, 0.5).unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
    for _ in 0..20 {
        let (a, b) = (plain.random_point(&mut rng), plain.random_point(&mut rng));
        let (da, db) = (m.from_f64_point(&a).unwrap(), m.from_f64_point(&b).unwrap());
        assert_eq!(m.to_f64_point(&da).unwrap(), plain.project(&a).unwrap());
        let (d, d_plain) = (
            m.distance(&da, &db).unwrap(),
            plain.distance(&a, &b).unwrap(),
        );
        assert!((d - d_plain).abs() <= 1e-12 * d_plain, "{d} vs {d_plain}");
        // The high half of a point is a point of the plain hyperboloid.
        plain.check(&da[..5]).unwrap();
        // project keeps points in place; the origin is where exp0 starts.
        assert_eq!(m.project(&da).unwrap(), da);
        assert_eq!(m.exp0(&[0.0; 4]).unwrap(), m.origin());
        let back = m.exp0(&m.log0(&da).unwrap()).unwrap();
        assert!(m.distance(&back, &da).unwrap() < 1e-12);
    }
}

#[test]
fn the_mean_of_two_far_points_is_their_midpoint() {
    let m = DdHyperboloid::new(3, 1.0).unwrap();
    let x = m.exp0(&[40.0, 0.0, 0.0]).unwrap();
    let z = m.exp0(&[0.0, 40.0, 3.0]).unwrap();
    // A point 0.5 from x towards z, far out.
    let d = m.distance(&x, &z).unwrap();
    let y = m.geodesic(&x, &z, 0.5 / d).unwrap();
    let mid = m.geodesic(&x, &y, 0.5).unwrap();
    let mean = m
        .frechet_mean(&[&x, &y], None, &FrechetOptions::default())
        .unwrap();
    assert!(mean.converged, "{mean:?}");
    assert!(m.distance(&mean.mean, &mid).unwrap() < 1e-12);
    assert!((m.distance(&x, &mid).unwrap() - 0.25).abs() < 1e-14);
    assert!((m.distance(&y, &mid).unwrap() - 0.25).abs() < 1e-14);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Points out to radius 50 and steps from 1e-12 to 3 towards another
    /// point: the distance is the step, the midpoint halves it, and
    /// `exp(x, log(x, y))` comes back to `y`, each to the resolution.
    #[test]
    fn far_out_maps_are_consistent(
        r in 0.0f64..50.0,
        u in prop::collection::vec(-1.0f64..1.0, 4),
        w in prop::collection::vec(-1.0f64..1.0, 4),
        log_step in -12.0f64..0.5,
    ) {
        let m = DdHyperboloid::new(4, 1.0).unwrap();
        let nu = norm(&u).max(1e-3);
        let x = m.exp0(&u.iter().map(|a| a * r / nu).collect::<Vec<_>>()).unwrap();
        let z = m.exp0(&w.iter().map(|a| a * 20.0).collect::<Vec<_>>()).unwrap();
        let dz = m.distance(&x, &z).unwrap();
        prop_assume!(dz > 1e-3);
        let step = 10f64.powf(log_step).min(dz);
        let y = m.geodesic(&x, &z, step / dz).unwrap();
        let rho = rho_dd(&x).max(rho_dd(&y)).max(rho_dd(&z));
        let d = m.distance(&x, &y).unwrap();
        // geodesic's own error moves y by up to 8ρ.
        prop_assert!((d - step).abs() <= 1e-12 * step + 16.0 * rho, "{d} vs {step}");
        let mid = m.geodesic(&x, &y, 0.5).unwrap();
        let (a, b) = (m.distance(&x, &mid).unwrap(), m.distance(&mid, &y).unwrap());
        prop_assert!((a - b).abs() <= 1e-12 * d + 16.0 * rho, "{a} vs {b}");
        let v = m.log(&x, &y).unwrap();
        prop_assert!((m.norm(&x, &v).unwrap() - d).abs() <= 1e-12 * d + 8.0 * rho);
        let back = m.exp(&x, &v).unwrap();
        let sinhc = if d > 0.0 { d.sinh() / d } else { 1.0 };
        let err = m.distance(&back, &y).unwrap();
        prop_assert!(err <= 16.0 * rho * (1.0 + d * sinhc), "{err:e} (ρ {rho:e})");
        let d_yx = m.distance(&y, &x).unwrap();
        prop_assert!((d - d_yx).abs() <= 1e-12 * d + 8.0 * rho, "{d} vs {d_yx}");
    }
}
