//! How faithful `transform` is between manifold kinds: the exact isometries
//! carry every neighbour and distance, the tangent-space chart keeps the
//! distance from the origin and the direction (and compares distances as
//! the curvature says), near-origin data keeps most neighbours, and points
//! the chart would wrap around a sphere or de Sitter space are refused.
//! The full table is `cargo run --release -p hvs-geometry --example
//! transfer_distortion`; docs/GEOMETRY.md, "Carrying points between
//! manifolds".

use hvs_geometry::{
    AnyManifold, DeSitter, Euclidean, GeometryError, Hyperboloid, Manifold, PoincareBall, Product,
    Sphere, TransferSample, measure_transfer, transform,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn ball(n: usize, c: f64) -> AnyManifold {
    PoincareBall::new(n, c).unwrap().into()
}
fn hyperboloid(n: usize, c: f64) -> AnyManifold {
    Hyperboloid::new(n, c).unwrap().into()
}
fn sphere(n: usize, c: f64) -> AnyManifold {
    Sphere::new(n, c).unwrap().into()
}
fn euclidean(n: usize) -> AnyManifold {
    Euclidean::new(n).unwrap().into()
}
fn de_sitter(n: usize, c: f64) -> AnyManifold {
    DeSitter::new(n, c).unwrap().into()
}

/// Smaller than the example's 2,000 × 300 so the debug build stays quick;
/// recall is a little higher with fewer points (sparser neighbourhoods).
fn sample(max_radius: f64) -> TransferSample {
    TransferSample {
        points: 1_000,
        queries: 60,
        max_radius,
        ..TransferSample::default()
    }
}

/// A tangent vector of uniform direction and length `len`.
fn tangent(rng: &mut StdRng, n: usize, len: f64) -> Vec<f64> {
    let g: Vec<f64> = (0..n).map(|_| rng.random::<f64>() - 0.5).collect();
    let s = len / g.iter().map(|a| a * a).sum::<f64>().sqrt();
    g.iter().map(|a| a * s).collect()
}

#[test]
fn ball_and_hyperboloid_carry_every_neighbour_and_distance() {
    for c in [1.0, 0.3] {
        for n in [2, 8, 32] {
            let (b, h) = (ball(n, c), hyperboloid(n, c));
            for (from, to) in [(&b, &h), (&h, &b)] {
                // Out to radius 5/√c, where the ball's coordinates are ≈ 1 - 2e-4.
                let d = measure_transfer(from, to, &sample(5.0 / c.sqrt())).unwrap();
                let label = format!("{} → {}, n = {n}, c = {c}", from.name(), to.name());
                assert_eq!(d.recall, 1.0, "{label}: {d:?}");
                assert!(d.spearman > 1.0 - 1e-12, "{label}: {d:?}");
                assert!((d.ratio_low - 1.0).abs() < 1e-9, "{label}: {d:?}");
                assert!((d.ratio_high - 1.0).abs() < 1e-9, "{label}: {d:?}");
                assert_eq!((d.refused_points, d.refused_queries), (0, 0));
            }
        }
    }
}

/// `to.log0(transform(x)) = from.log0(x)`: the chart keeps the tangent vector
/// at the origin, so its length (the distance from the origin; on de Sitter
/// space the geodesic interval) and its direction.
#[test]
fn the_chart_keeps_distance_from_the_origin_and_direction() {
    let mut rng = StdRng::seed_from_u64(5);
    for n in [2, 8, 32] {
        let kinds = [
            euclidean(n),
            ball(n, 1.0),
            hyperboloid(n, 1.0),
            sphere(n, 1.0),
            sphere(n, 2.0),
            de_sitter(n, 1.0),
        ];
        for from in &kinds {
            for to in &kinds {
                for _ in 0..20 {
                    // Below every target's injectivity radius (π/√2 ≈ 2.2).
                    let len = 2.1 * rng.random::<f64>();
                    let v = tangent(&mut rng, n, len);
                    let x = from.exp0(&v).unwrap();
                    let y = transform(&x, from, to).unwrap();
                    to.check(&y).unwrap();
                    let (u, w) = (from.log0(&x).unwrap(), to.log0(&y).unwrap());
                    let gap = u.iter().zip(&w).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
                    let label = format!("{} → {}, n = {n}", from.name(), to.name());
                    assert!(gap.sqrt() <= 1e-9 * (1.0 + len), "{label}: {u:?} vs {w:?}");
                    if !matches!(to, AnyManifold::DeSitter(_)) {
                        let r = to.distance(&to.origin(), &y).unwrap();
                        assert!(
                            (r - len).abs() <= 1e-9 * (1.0 + len),
                            "{label}: {r} vs {len}"
                        );
                    }
                }
            }
        }
    }
}

/// Rauch comparison: `exp0` of a space of curvature ≤ 0 never shortens
/// tangent-space distances and that of curvature ≥ 0 (inside the
/// injectivity radius) never lengthens them, so the chart from flat space
/// stretches every distance into hyperbolic space and shrinks it onto the
/// sphere, by at most `sinh r / r` and at least `sin r / r`.
#[test]
fn the_chart_from_flat_space_stretches_to_hyperbolic_and_shrinks_to_the_sphere() {
    let mut rng = StdRng::seed_from_u64(8);
    for n in [2, 8, 32] {
        let (e, h, s) = (euclidean(n), hyperboloid(n, 1.0), sphere(n, 1.0));
        for _ in 0..500 {
            let (rx, ry) = (1.5 * rng.random::<f64>(), 1.5 * rng.random::<f64>());
            let (x, y) = (tangent(&mut rng, n, rx), tangent(&mut rng, n, ry));
            let d = e.distance(&x, &y).unwrap();
            let dh = h
                .distance(
                    &transform(&x, &e, &h).unwrap(),
                    &transform(&y, &e, &h).unwrap(),
                )
                .unwrap();
            let ds = s
                .distance(
                    &transform(&x, &e, &s).unwrap(),
                    &transform(&y, &e, &s).unwrap(),
                )
                .unwrap();
            // The bounds hold with r the larger distance from the origin
            // (1.5 < π/2, where balls of the sphere are convex).
            let r = rx.max(ry);
            let (stretch, shrink) = (r.sinh() / r, r.sin() / r);
            assert!(dh >= d * (1.0 - 1e-12), "n = {n}: {dh} < flat {d}");
            assert!(
                dh <= d * stretch * (1.0 + 1e-12),
                "n = {n}: {dh} > {stretch} × {d}"
            );
            assert!(ds <= d * (1.0 + 1e-12), "n = {n}: {ds} > flat {d}");
            assert!(
                ds >= d * shrink * (1.0 - 1e-12),
                "n = {n}: {ds} < {shrink} × {d}"
            );
        }
    }
}

/// Near the origin (radius ≤ 1) curvature barely bends the chart, so most
/// neighbours survive between the Riemannian kinds, and over-fetching
/// recovers nearly all the rest. This is the example's
/// seeded sample (2,000 points, 300 queries, k = 10), so the measured recall
/// is GEOMETRY.md's table (in parentheses, n = 2 / 8 / 32); each threshold is
/// the lowest of the three less two to three points, room for rounding
/// differences across platforms, none for a change in the maps.
#[test]
fn near_origin_data_keeps_most_neighbours() {
    let cases = [
        ("euclidean", "poincare", 0.87),    // (0.980 / 0.940 / 0.895)
        ("hyperboloid", "euclidean", 0.87), // the same
        ("euclidean", "sphere", 0.85),      // (0.981 / 0.936 / 0.868)
        ("poincare", "sphere", 0.75),       // (0.963 / 0.880 / 0.779)
        ("sphere", "hyperboloid", 0.75),    // the same
    ];
    for (from, to, least) in cases {
        for n in [2, 8, 32] {
            let m = |kind: &str| match kind {
                "euclidean" => euclidean(n),
                "poincare" => ball(n, 1.0),
                "hyperboloid" => hyperboloid(n, 1.0),
                _ => sphere(n, 1.0),
            };
            let d = measure_transfer(&m(from), &m(to), &TransferSample::default()).unwrap();
            assert!(d.recall >= least, "{from} → {to}, n = {n}: {d:?}");
            assert!(d.spearman >= 0.99, "{from} → {to}, n = {n}: {d:?}");
            // Fetching 5k and re-ranking by source distance finds nearly all
            // (lowest measured: 0.920, sphere → hyperboloid at n = 32).
            assert!(d.recall_overfetched >= 0.9, "{from} → {to}, n = {n}: {d:?}");
        }
    }
}

#[test]
fn points_the_chart_would_wrap_around_are_refused() {
    let n = 3;
    let (h, s, s4, ds) = (
        hyperboloid(n, 1.0),
        sphere(n, 1.0),
        sphere(n, 4.0),
        de_sitter(n, 1.0),
    );
    let wrapped = |r: Result<Vec<f64>, GeometryError>| {
        matches!(r, Err(GeometryError::IncompatibleManifolds { .. }))
    };
    // Hyperbolic radius 3 reaches the sphere; radius 4 > π would wrap.
    let near = h.exp0(&[3.0, 0.0, 0.0]).unwrap();
    let far = h.exp0(&[0.0, 4.0, 0.0]).unwrap();
    assert!(transform(&near, &h, &s).is_ok());
    assert!(wrapped(transform(&far, &h, &s)));
    // S_1 → S_4 doubles the angle: 1.5 rad fits (3.0 < π), 1.6 does not.
    assert!(transform(&s.exp0(&[1.5, 0.0, 0.0]).unwrap(), &s, &s4).is_ok());
    assert!(wrapped(transform(
        &s.exp0(&[1.6, 0.0, 0.0]).unwrap(),
        &s,
        &s4
    )));
    // de Sitter space wraps along spacelike directions only (frame (t, s…)).
    let timelike = h.exp0(&[4.0, 1.0, 0.0]).unwrap();
    let spacelike = h.exp0(&[1.0, 4.0, 0.0]).unwrap();
    assert!(transform(&timelike, &h, &ds).is_ok());
    assert!(wrapped(transform(&spacelike, &h, &ds)));
    // Inside a product, per component, after the component's weight.
    let p: AnyManifold = Product::new(vec![(euclidean(1), 1.0), (s.clone(), 0.25)])
        .unwrap()
        .into();
    let e4 = euclidean(4);
    assert!(transform(&[9.0, 1.0, 0.0, 0.0], &e4, &p).is_ok()); // 1/√0.25 = 2 < π
    assert!(wrapped(transform(&[0.0, 1.6, 0.0, 0.0], &e4, &p))); // 3.2 > π
    // The error names the length and says why.
    let e = transform(&far, &h, &s).unwrap_err();
    assert!(e.to_string().contains("injectivity radius"), "{e}");
}
