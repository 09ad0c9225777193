//! The numerical situations users hit: the edge of the Poincaré ball, far
//! out on the hyperboloid, overflow, and every kind of bad input.

mod common;

use hvs_geometry::{
    AnyManifold, BALL_MARGIN, DeSitter, Euclidean, FrechetOptions, GeometryError, Hyperboloid,
    Manifold, PoincareBall, Product, Sphere, hyperboloid_to_poincare, poincare_to_hyperboloid,
    transform,
};
use rand::{Rng, SeedableRng};

#[test]
fn poincare_points_at_the_edge_give_finite_correct_distances() {
    let b = PoincareBall::new(3, 1.0).unwrap();
    let r: f64 = 1.0 - 1e-12;
    // d(0, r e) = ln((1 + r)/(1 - r)); 1 - r is exact in f64 (Sterbenz).
    let expected = ((1.0 + r) / (1.0 - r)).ln();
    for dir in [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.48, 0.6, 0.64]] {
        let x: Vec<f64> = dir.iter().map(|a| a * r).collect();
        b.check(&x).unwrap();
        let d = b.distance(&b.origin(), &x).unwrap();
        // The direction's own rounding moves |x| by ~1e-16, i.e. d by ~1e-4 relative at most.
        assert!((d - expected).abs() / expected < 1e-4, "{d} vs {expected}");
        // Two edge points in different directions: finite, and about
        // d(0,x) + d(0,y) - ln 2 + small for far-apart directions.
        let y = [-x[1], x[0], x[2]];
        let dxy = b.distance(&x, &y).unwrap();
        assert!(dxy.is_finite() && dxy > expected);
    }
    // Exactly on the axis, the relative error is at the level of f64.
    let d = b.distance(&[0.0, 0.0, 0.0], &[r, 0.0, 0.0]).unwrap();
    assert!((d - expected).abs() / expected < 1e-12);
}

#[test]
fn poincare_project_pulls_outside_points_inside_with_the_documented_margin() {
    let b = PoincareBall::new(2, 2.0).unwrap();
    for x in [[3.0, 4.0], [0.75, 0.0], [-0.5, 0.6]] {
        let p = b.project(&x).unwrap();
        b.check(&p).unwrap();
        let n = (p[0] * p[0] + p[1] * p[1]).sqrt() * 2f64.sqrt();
        assert!((n - (1.0 - BALL_MARGIN)).abs() < 1e-15, "√c|p| = {n}");
        // Same direction.
        assert!((p[0] * x[1] - p[1] * x[0]).abs() < 1e-12);
        assert!(b.check(&x).is_err());
    }
    // Points inside are left alone.
    assert_eq!(b.project(&[0.1, 0.2]).unwrap(), vec![0.1, 0.2]);
}

/// `<x,x>_L + 1/c` evaluated in doubled precision (exact products by fma).
fn lorentz_residual(x: &[f64], c: f64) -> f64 {
    let mut hi = 0.0f64;
    let mut lo = 0.0f64;
    for (i, a) in x.iter().enumerate() {
        let s = if i == 0 { -1.0 } else { 1.0 };
        let p = s * a * a;
        let e = (s * a).mul_add(*a, -p);
        let t = hi + p;
        let bb = t - hi;
        lo += (hi - (t - bb)) + (p - bb) + e;
        hi = t;
    }
    (hi + 1.0 / c) + lo
}

fn time_residual(x: &[f64], c: f64) -> f64 {
    let s: f64 = x[1..].iter().map(|a| a * a).sum();
    let expected = (1.0 / c + s).sqrt();
    (x[0] - expected).abs() / expected
}

#[test]
fn hyperboloid_points_out_to_radius_20_stay_on_the_hyperboloid() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for c in [1.0, 0.5, 3.0] {
        let h = Hyperboloid::new(6, c).unwrap();
        let ball = PoincareBall::new(6, c).unwrap();
        for _ in 0..500 {
            let r: f64 = rng.random_range(0.0..20.0);
            let mut dir: Vec<f64> = (0..6).map(|_| rng.random_range(-1.0..1.0)).collect();
            let n = dir.iter().map(|a| a * a).sum::<f64>().sqrt();
            dir.iter_mut().for_each(|a| *a *= r / n);
            let x = h.exp0(&dir).unwrap();
            // A small step from x, a projection of a perturbed point, and a
            // round trip through the Poincaré ball.
            let v = h
                .project_tangent(&x, &[0.0, 0.3, -0.2, 0.1, 0.0, 0.05, 0.0])
                .unwrap();
            let len = h.norm(&x, &v).unwrap();
            let v: Vec<f64> = v.iter().map(|a| a * 0.5 / len).collect();
            let y = h.exp(&x, &v).unwrap();
            let mut z = x.clone();
            z[0] *= 1.0 + 1e-3;
            let z = h.project(&z).unwrap();
            let w = match hyperboloid_to_poincare(&x, c) {
                Ok(p) if ball.check(&p).is_ok() => poincare_to_hyperboloid(&p, c).unwrap(),
                _ => x.clone(),
            };
            for p in [&x, &y, &z, &w] {
                // Relative to x_0: 1e-9 at every radius.
                assert!(
                    time_residual(p, c) <= 1e-9,
                    "r = {r}: {}",
                    time_residual(p, c)
                );
                // Literally, <x,x>_L = -1/c to 1e-9 relative — possible in
                // f64 only while x_0 is small enough (radius <= 8, see docs).
                let radius = h.distance(&h.origin(), p).unwrap() * c.sqrt();
                if radius <= 8.0 {
                    let rel = lorentz_residual(p, c).abs() * c;
                    assert!(rel <= 1e-9, "r = {radius}: <x,x>_L residual {rel}");
                }
            }
        }
    }
}

#[test]
fn hyperboloid_distances_far_out_are_accurate() {
    // Two points on one ray at radii 15 and 15.1 (c = 1): d = 0.1. The naive
    // acosh(-<x,y>_L) is off by ~1e-3 here.
    let h = Hyperboloid::new(3, 1.0).unwrap();
    let dir = [0.6, 0.0, 0.8];
    let at = |r: f64| h.exp0(&dir.map(|a| a * r)).unwrap();
    let d = h.distance(&at(15.0), &at(15.1)).unwrap();
    assert!((d - 0.1).abs() < 1e-9, "{d}");
    // Equal radii, angle θ: cosh d = 1 + sinh^2(r) (1 - cos θ); for r = 15
    // and a tangential separation of 0.05 the distance is ~0.05.
    let r = 15.0f64;
    let theta = 0.05 / r.sinh();
    let x = h.exp0(&[r, 0.0, 0.0]).unwrap();
    let y = h.exp0(&[r * theta.cos(), r * theta.sin(), 0.0]).unwrap();
    let expected = (r.sinh().powi(2) * 2.0 * (theta / 2.0).sin().powi(2)).ln_1p();
    let expected = (expected.exp()).acosh();
    let d = h.distance(&x, &y).unwrap();
    assert!((d - expected).abs() / expected < 1e-6, "{d} vs {expected}");
}

#[test]
fn no_nan_leaves_the_crate() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for case in common::riemannian() {
        let m = case.m;
        for _ in 0..200 {
            let x = m.random_point(&mut rng);
            // Identical and nearly identical points: arcosh arguments just
            // below 1 from rounding are clamped.
            let d = m.distance(&x, &x).unwrap();
            assert!(d.is_finite() && d >= 0.0);
            assert!(d <= 1e-7, "{}: d(x,x) = {d}", case.label);
            let y = m
                .project(&x.iter().map(|a| a * (1.0 + 1e-15)).collect::<Vec<_>>())
                .unwrap();
            assert!(m.distance(&x, &y).unwrap().is_finite());
            let l = m.log(&x, &y).unwrap();
            assert!(l.iter().all(|a| a.is_finite()));
        }
    }
}

fn all_manifolds() -> Vec<AnyManifold> {
    let mut v: Vec<AnyManifold> = common::riemannian().into_iter().map(|c| c.m).collect();
    v.push(DeSitter::new(3, 1.0).unwrap().into());
    v
}

#[test]
fn bad_input_is_a_typed_error_never_a_panic() {
    for m in all_manifolds() {
        let n = m.ambient_dim();
        let o = m.origin();
        let zero_t = vec![0.0; n];
        let short = vec![0.0; n - 1];
        let mut nan = o.clone();
        nan[n - 1] = f64::NAN;
        let mut inf = o.clone();
        inf[0] = f64::INFINITY;
        for bad in [&short, &nan, &inf] {
            let is_input_error = |e: GeometryError| {
                matches!(
                    e,
                    GeometryError::DimensionMismatch { .. } | GeometryError::NonFinite { .. }
                )
            };
            assert!(is_input_error(m.check(bad).unwrap_err()), "{}", m.name());
            assert!(is_input_error(m.distance(&o, bad).unwrap_err()));
            assert!(is_input_error(m.distance(bad, &o).unwrap_err()));
            assert!(is_input_error(m.project(bad).unwrap_err()));
            assert!(is_input_error(m.exp(bad, &zero_t).unwrap_err()));
            assert!(is_input_error(m.exp(&o, bad).unwrap_err()));
            assert!(is_input_error(m.log(&o, bad).unwrap_err()));
            assert!(is_input_error(m.log0(bad).unwrap_err()));
            assert!(is_input_error(m.inner(&o, bad, &zero_t).unwrap_err()));
            assert!(is_input_error(
                m.parallel_transport(&o, bad, &zero_t).unwrap_err()
            ));
            assert!(m.geodesic(&o, bad, 0.5).is_err());
            assert!(
                m.frechet_mean(&[&o, bad], None, &FrechetOptions::default())
                    .is_err()
            );
        }
        assert!(m.exp0(&vec![f64::NAN; m.dim()]).is_err());
        assert!(m.exp0(&vec![0.0; m.dim() + 1]).is_err());
        let code = m.check(&short).unwrap_err().code();
        assert_eq!(code, "dimension_mismatch");
    }
}

#[test]
fn off_manifold_points_are_refused_with_the_reason() {
    let cases: Vec<(AnyManifold, Vec<f64>)> = vec![
        (PoincareBall::new(2, 1.0).unwrap().into(), vec![1.0, 0.0]),
        (
            Hyperboloid::new(2, 1.0).unwrap().into(),
            vec![0.0, 0.0, 0.0],
        ),
        (
            Hyperboloid::new(2, 1.0).unwrap().into(),
            vec![-1.0, 0.0, 0.0],
        ), // lower sheet
        (Sphere::new(2, 1.0).unwrap().into(), vec![2.0, 0.0, 0.0]),
        (DeSitter::new(2, 1.0).unwrap().into(), vec![0.0, 0.0, 0.0]),
    ];
    for (m, x) in cases {
        match m.check(&x) {
            Err(GeometryError::OffManifold { manifold, .. }) => assert_eq!(manifold, m.name()),
            other => panic!("{}: {other:?}", m.name()),
        }
        assert!(m.distance(&m.origin(), &x).is_err());
    }
    // A non-tangent vector.
    let h = Hyperboloid::new(2, 1.0).unwrap();
    assert!(matches!(
        h.exp(&h.origin(), &[1.0, 0.0, 0.0]),
        Err(GeometryError::NotTangent { .. })
    ));
}

#[test]
fn overflow_is_refused_never_clamped() {
    let h = Hyperboloid::new(2, 1.0).unwrap();
    assert!(matches!(
        h.exp(&h.origin(), &[0.0, 1000.0, 0.0]),
        Err(GeometryError::NotRepresentable { .. })
    ));
    assert!(matches!(
        h.exp0(&[800.0, 0.0]),
        Err(GeometryError::NotRepresentable { .. })
    ));
    // The ball has no room past its edge: a step whose end rounds onto the
    // boundary is refused, not clamped to a point at the wrong distance.
    let b = PoincareBall::new(2, 1.0).unwrap();
    for (x, v) in [([0.1, 0.0], [1e6, 1e6]), ([0.0, 0.0], [20.0, 0.0])] {
        match b.exp(&x, &v) {
            Err(e) => assert_eq!(e.code(), "not_representable", "{e}"),
            Ok(p) => panic!("exp({x:?}, {v:?}) = {p:?}"),
        }
    }
    // exp0: |v| = 36 still fits (d(0, exp0 v) = 36 to the resolution there,
    // about 0.1), |v| = 40 does not: refused, where it used to be clamped
    // to a point at distance 23.7.
    let p = b.exp0(&[36.0, 0.0]).unwrap();
    assert!((b.distance(&b.origin(), &p).unwrap() - 36.0).abs() < 0.2);
    assert!(matches!(
        b.exp0(&[40.0, 0.0]),
        Err(GeometryError::NotRepresentable { argument, .. }) if argument == 40.0
    ));
    // A step straight back towards the origin from radius 30: exact to 15
    // units, refused at 25 (cancellation beyond double-double), never wrong.
    let h5 = Hyperboloid::new(1, 1.0).unwrap();
    let x = h5.exp0(&[30.0]).unwrap();
    let back = |len: f64| {
        let v = h5.log(&x, &h5.origin()).unwrap();
        h5.exp(&x, &v.iter().map(|a| a * len / 30.0).collect::<Vec<_>>())
    };
    let y = back(15.0).unwrap();
    assert!((h5.distance(&h5.origin(), &y).unwrap() - 15.0).abs() < 1e-9);
    assert!(matches!(
        back(25.0),
        Err(GeometryError::NotRepresentable { .. })
    ));
    // A hyperboloid point at radius 40 has no f64 image inside the ball.
    let far = h.exp0(&[40.0, 0.0]).unwrap();
    assert!(matches!(
        hyperboloid_to_poincare(&far, 1.0),
        Err(GeometryError::NotRepresentable { .. })
    ));
    assert!(transform(&far, &h.into(), &b.into()).is_err());
    // Enormous but finite coordinates in Euclidean space overflow on the sum.
    let e = Euclidean::new(1).unwrap();
    assert!(e.exp(&[f64::MAX], &[f64::MAX]).is_err());
}

#[test]
fn undefined_results_are_errors() {
    let s = Sphere::new(2, 1.0).unwrap();
    let (n, south) = ([0.0, 0.0, 1.0], [0.0, 0.0, -1.0]);
    assert!(matches!(
        s.log(&n, &south),
        Err(GeometryError::NoGeodesic { .. })
    ));
    assert!(matches!(
        s.frechet_mean(&[&n, &south], None, &FrechetOptions::default()),
        Err(GeometryError::NoUniqueMean { .. })
    ));
    // Three points a third of a great circle apart: balanced, no unique mean.
    let t = 2.0 * std::f64::consts::PI / 3.0;
    let pts: Vec<Vec<f64>> = (0..3)
        .map(|k| vec![(k as f64 * t).cos(), (k as f64 * t).sin(), 0.0])
        .collect();
    let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
    assert!(
        s.frechet_mean(&refs, None, &FrechetOptions::default())
            .is_err()
    );
    // Points spread over 240 degrees of a great circle: no ball of radius
    // π/2 holds them, so uniqueness is not guaranteed and no mean is given.
    let spread: Vec<Vec<f64>> = (0..5)
        .map(|k| {
            let a = (k as f64 * 60.0).to_radians();
            vec![a.cos(), a.sin(), 0.0]
        })
        .collect();
    let refs: Vec<&[f64]> = spread.iter().map(Vec::as_slice).collect();
    assert!(matches!(
        s.frechet_mean(&refs, None, &FrechetOptions::default()),
        Err(GeometryError::NoUniqueMean { .. })
    ));
    // Two points 170 degrees apart with unequal weights: unique, and given.
    let a = 170f64.to_radians();
    let two = [[1.0, 0.0, 0.0], [a.cos(), a.sin(), 0.0]];
    let refs: Vec<&[f64]> = two.iter().map(|p| p.as_slice()).collect();
    let m = s
        .frechet_mean(&refs, Some(&[10.0, 1.0]), &FrechetOptions::default())
        .unwrap();
    let expected = a / 11.0;
    assert!(
        s.distance(&m.mean, &[expected.cos(), expected.sin(), 0.0])
            .unwrap()
            < 1e-9
    );
    let ds = DeSitter::new(2, 1.0).unwrap();
    let o = ds.origin();
    assert!(matches!(
        ds.frechet_mean(&[&o], None, &FrechetOptions::default()),
        Err(GeometryError::Unsupported { .. })
    ));
}

#[test]
fn bad_weights_and_constructors_are_errors() {
    let h = Hyperboloid::new(2, 1.0).unwrap();
    let o = h.origin();
    let opts = FrechetOptions::default();
    for w in [
        vec![1.0],
        vec![1.0, -1.0],
        vec![f64::NAN, 1.0],
        vec![f64::INFINITY, 1.0],
    ] {
        assert!(matches!(
            h.frechet_mean(&[&o, &o], Some(&w), &opts),
            Err(GeometryError::InvalidWeights { .. })
        ));
    }
    assert_eq!(
        h.frechet_mean(&[&o, &o], Some(&[0.0, 0.0]), &opts),
        Err(GeometryError::EmptyInput)
    );
    assert_eq!(
        h.frechet_mean(&[], None, &opts),
        Err(GeometryError::EmptyInput)
    );
    assert!(Hyperboloid::new(0, 1.0).is_err());
    for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            PoincareBall::new(2, c),
            Err(GeometryError::InvalidCurvature { .. })
        ));
        assert!(Sphere::new(2, c).is_err() && DeSitter::new(2, c).is_err());
    }
    assert!(Product::new(vec![]).is_err());
    assert!(Product::new(vec![(Euclidean::new(2).unwrap().into(), 0.0)]).is_err());
    // Transform between different dimensions.
    let a: AnyManifold = Euclidean::new(2).unwrap().into();
    let b: AnyManifold = Euclidean::new(3).unwrap().into();
    assert!(matches!(
        transform(&[0.0, 0.0], &a, &b),
        Err(GeometryError::IncompatibleManifolds { .. })
    ));
}

#[test]
fn frechet_mean_of_1000_spread_hyperbolic_points_converges_quickly() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let h = Hyperboloid::new(12, 1.0).unwrap();
    let pts: Vec<Vec<f64>> = (0..1000).map(|_| h.random_point(&mut rng)).collect();
    let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
    let r = h
        .frechet_mean(&refs, None, &FrechetOptions::default())
        .unwrap();
    assert!(r.converged, "{r:?}");
    assert!(r.iterations <= 64, "{} iterations", r.iterations);
    assert!(r.gradient_norm <= 1e-10 * r.variance.sqrt());
}

#[test]
fn a_single_point_is_its_own_mean_at_once_and_near_copies_converge() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let opts = FrechetOptions::default();
    for dim in [12, 128] {
        let ms: [AnyManifold; 2] = [
            PoincareBall::new(dim, 1.0).unwrap().into(),
            Hyperboloid::new(dim, 1.0).unwrap().into(),
        ];
        for m in ms {
            for _ in 0..20 {
                let x = m.random_point(&mut rng);
                let r = m.frechet_mean(&[&x], None, &opts).unwrap();
                assert!(r.converged && r.iterations == 0 && r.mean == x, "{r:?}");
                // Two copies an ulp apart in one coordinate: converged within
                // a few iterations, as close as f64 allows.
                let mut z = x.clone();
                let last = z.len() - 1;
                z[last] = z[last].next_up();
                let z = m.project(&z).unwrap();
                assert_ne!(z, x);
                let r = m.frechet_mean(&[&x, &z], Some(&[1.0, 3.0]), &opts).unwrap();
                assert!(
                    r.converged && r.iterations <= 3,
                    "{} dim {dim}: {r:?}",
                    m.name()
                );
            }
        }
    }
}

#[test]
fn distance_unchecked_answers_infinity_never_nan_on_nan_input() {
    for m in all_manifolds() {
        let o = m.origin();
        let mut bad = o.clone();
        bad[0] = f64::NAN;
        for (x, y) in [(&o, &bad), (&bad, &o), (&bad, &bad)] {
            assert_eq!(m.distance_unchecked(x, y), f64::INFINITY, "{}", m.name());
        }
    }
}

#[test]
fn sphere_edge_cases_have_the_documented_answers() {
    let s = Sphere::new(2, 1.0).unwrap();
    let (n, south) = ([0.0, 0.0, 1.0], [0.0, 0.0, -1.0]);
    // A weighted antipodal pair: a whole circle of means.
    assert!(matches!(
        s.frechet_mean(&[&n, &south], Some(&[2.0, 1.0]), &FrechetOptions::default()),
        Err(GeometryError::NoUniqueMean { .. })
    ));
    // A finite tangent vector of norm 1e300: the angle is reduced exactly.
    // cos(1e300) and sin(1e300) from mpmath at 400 digits.
    let p = s.exp(&[1.0, 0.0, 0.0], &[0.0, 1e300, 0.0]).unwrap();
    let want = [-0.5753861119575491, -0.8178819121159085, 0.0];
    for (a, b) in p.iter().zip(want) {
        assert!((a - b).abs() < 1e-15, "{p:?}");
    }
    let q = s.exp0(&[-1e300, 0.0]).unwrap();
    assert!(
        (q[0] - want[0]).abs() < 1e-15 && (q[1] + want[1]).abs() < 1e-15,
        "{q:?}"
    );
}
