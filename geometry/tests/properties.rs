//! Property tests of every Riemannian manifold: metric axioms, exp/log
//! inverses, projection, transforms, parallel transport and Fréchet means.

mod common;

use common::{Case, point, riemannian, scale, sub, tangent, tangent_gap};
use hvs_geometry::{AnyManifold, FrechetOptions, Manifold, transform};
use proptest::prelude::*;

/// Coordinates for up to 7 intrinsic dimensions, in a box that keeps points
/// within hyperbolic radius ~4 of the origin.
fn coords() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1.5..1.5f64, 8)
}

fn case(i: usize) -> Case {
    let mut all = riemannian();
    let n = all.len();
    all.swap_remove(i % n)
}

fn tol_for(x: f64) -> f64 {
    1e-9 * (1.0 + x.abs())
}

proptest! {

    #[test]
    fn metric_axioms(i in 0usize..8, a in coords(), b in coords(), c in coords()) {
        let Case { m, label, .. } = case(i);
        let (x, y, z) = (point(&m, &a), point(&m, &b), point(&m, &c));
        let dxy = m.distance(&x, &y).unwrap();
        let dyx = m.distance(&y, &x).unwrap();
        let dxz = m.distance(&x, &z).unwrap();
        let dyz = m.distance(&y, &z).unwrap();
        prop_assert!(dxy >= 0.0 && dxy.is_finite(), "{label}: d = {dxy}");
        prop_assert!((dxy - dyx).abs() <= 1e-12 * (1.0 + dxy), "{label}: {dxy} vs {dyx}");
        prop_assert!(m.distance(&x, &x).unwrap() <= 1e-7, "{label}: d(x, x) = {}", m.distance(&x, &x).unwrap());
        prop_assert!(dxz <= dxy + dyz + tol_for(dxz), "{label}: triangle {dxz} > {dxy} + {dyz}");
    }

    #[test]
    fn log_inverts_exp(i in 0usize..8, a in coords(), w in coords(), s in 0.0..1.0f64) {
        let Case { m, label, max_len } = case(i);
        let x = point(&m, &a);
        let v = tangent(&m, &x, &w, s * max_len);
        let y = m.exp(&x, &v).unwrap();
        m.check(&y).unwrap();
        let back = m.log(&x, &y).unwrap();
        let gap = tangent_gap(&m, &x, &back, &v);
        prop_assert!(gap <= 1e-8 * (1.0 + max_len), "{label}: |log(exp(v)) - v| = {gap}");
        // The geodesic's length is the tangent vector's.
        let len = m.norm(&x, &v).unwrap();
        prop_assert!((m.distance(&x, &y).unwrap() - len).abs() <= 1e-8 * (1.0 + len), "{label}");
    }

    #[test]
    fn exp_inverts_log(i in 0usize..8, a in coords(), b in coords()) {
        let Case { m, label, .. } = case(i);
        let (x, y) = (point(&m, &a), point(&m, &b));
        let Ok(v) = m.log(&x, &y) else {
            // Only antipodal points on a sphere have no log; the generator
            // essentially never produces them.
            return Ok(());
        };
        let back = m.exp(&x, &v).unwrap();
        let d = m.distance(&back, &y).unwrap();
        prop_assert!(d <= 1e-8, "{label}: d(exp(log(y)), y) = {d}");
    }

    #[test]
    fn project_is_idempotent_and_keeps_points(i in 0usize..8, a in coords(), z in prop::collection::vec(-3.0..3.0f64, 10)) {
        let Case { m, label, .. } = case(i);
        let z = &z[..m.ambient_dim()];
        let p = m.project(z).unwrap();
        m.check(&p).unwrap();
        prop_assert_eq!(m.project(&p).unwrap(), p.clone(), "{}", label);
        let x = point(&m, &a);
        let px = m.project(&x).unwrap();
        prop_assert!(m.distance(&x, &px).unwrap() <= 1e-9, "{label}: project moved a point");
    }

    #[test]
    fn exp0_is_an_isometry_along_rays(i in 0usize..8, a in coords()) {
        let Case { m, label, .. } = case(i);
        let v = &a[..m.dim()];
        let x = m.exp0(v).unwrap();
        let len = v.iter().map(|t| t * t).sum::<f64>().sqrt();
        let d = m.distance(&m.origin(), &x).unwrap();
        // The sphere wraps: distance is the length modulo the circumference.
        if !label.starts_with('S') && !label.contains('S') {
            prop_assert!((d - len).abs() <= 1e-9 * (1.0 + len), "{label}: {d} vs {len}");
        }
        let back = m.exp0(&m.log0(&x).unwrap()).unwrap();
        prop_assert!(m.distance(&back, &x).unwrap() <= 1e-9, "{label}");
    }

    #[test]
    fn parallel_transport_is_an_isometry(i in 0usize..8, a in coords(), b in coords(), w in coords(), u in coords()) {
        let Case { m, label, .. } = case(i);
        let (x, y) = (point(&m, &a), point(&m, &b));
        let Ok(lxy) = m.log(&x, &y) else { return Ok(()) };
        let lyx = m.log(&y, &x).unwrap();
        // The geodesic's velocity is carried to minus the reverse velocity.
        let moved = m.parallel_transport(&x, &y, &lxy).unwrap();
        let gap = tangent_gap(&m, &y, &moved, &scale(&lyx, -1.0));
        prop_assert!(gap <= 1e-7 * (1.0 + m.norm(&x, &lxy).unwrap()), "{label}: gap {gap}");
        // Inner products are preserved.
        let (p, q) = (tangent(&m, &x, &w, 1.0), tangent(&m, &x, &u, 0.7));
        let (pp, qq) = (m.parallel_transport(&x, &y, &p).unwrap(), m.parallel_transport(&x, &y, &q).unwrap());
        m.check_tangent(&y, &pp).unwrap();
        let before = m.inner(&x, &p, &q).unwrap();
        let after = m.inner(&y, &pp, &qq).unwrap();
        prop_assert!((before - after).abs() <= 1e-8, "{label}: {before} vs {after}");
    }

    #[test]
    fn mean_of_two_points_is_the_midpoint(i in 0usize..8, a in coords(), b in coords()) {
        let Case { m, label, .. } = case(i);
        let (x, y) = (point(&m, &a), point(&m, &b));
        // On a sphere the mean is unique only within a quarter circle.
        if m.name() != "euclidean" && m.log(&x, &y).is_err() { return Ok(()) }
        let Ok(mean) = m.frechet_mean(&[&x, &y], None, &FrechetOptions::default()) else {
            prop_assert!(label.contains('S'), "{label}: mean refused");
            return Ok(());
        };
        prop_assert!(mean.converged, "{label}: {mean:?}");
        let mid = m.geodesic(&x, &y, 0.5).unwrap();
        let d = m.distance(&mean.mean, &mid).unwrap();
        prop_assert!(d <= 1e-7, "{label}: mean is {d} from the midpoint");
    }

    #[test]
    fn mean_ignores_order_and_centres_symmetric_sets(i in 0usize..8, a in coords(), ws in prop::collection::vec(coords(), 1..5), seed in any::<u64>()) {
        let Case { m, label, max_len } = case(i);
        let centre = point(&m, &a);
        // Pairs exp(c, ±v_k): symmetric about the centre.
        let mut pts = Vec::new();
        for (k, w) in ws.iter().enumerate() {
            let v = tangent(&m, &centre, w, max_len * 0.45 * (k as f64 + 1.0) / ws.len() as f64);
            pts.push(m.exp(&centre, &v).unwrap());
            pts.push(m.exp(&centre, &scale(&v, -1.0)).unwrap());
        }
        let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
        let r = m.frechet_mean(&refs, None, &FrechetOptions::default()).unwrap();
        prop_assert!(r.converged, "{label}: {r:?}");
        let d = m.distance(&r.mean, &centre).unwrap();
        prop_assert!(d <= 1e-7, "{label}: symmetric mean is {d} from the centre");
        // Any permutation (a rotation by `seed`) gives the same mean.
        let mut perm = refs.clone();
        perm.rotate_left((seed as usize) % refs.len());
        perm.reverse();
        let r2 = m.frechet_mean(&perm, None, &FrechetOptions::default()).unwrap();
        prop_assert!(m.distance(&r.mean, &r2.mean).unwrap() <= 1e-9, "{label}: order changed the mean");
    }

    #[test]
    fn weighted_mean_is_a_stationary_point(i in 0usize..8, pts in prop::collection::vec(coords(), 1..12), ws in prop::collection::vec(0.01..10.0f64, 12)) {
        let Case { m, label, .. } = case(i);
        let pts: Vec<Vec<f64>> = pts.iter().map(|a| point(&m, &scale(a, 0.5))).collect();
        let refs: Vec<&[f64]> = pts.iter().map(Vec::as_slice).collect();
        let w = &ws[..refs.len()];
        let r = match m.frechet_mean(&refs, Some(w), &FrechetOptions::default()) {
            Ok(r) => r,
            Err(e) => {
                prop_assert!(label.contains('S'), "{label}: {e}");
                return Ok(());
            }
        };
        prop_assert!(r.converged, "{label}: {r:?}");
        // No nearby point has a lower weighted variance.
        let f = |p: &[f64]| -> f64 { refs.iter().zip(w).map(|(x, wi)| wi * m.distance(p, x).unwrap().powi(2)).sum() };
        let f0 = f(&r.mean);
        for k in 0..m.ambient_dim() {
            let mut e = vec![0.0; m.ambient_dim()];
            e[k] = 1.0;
            let t = tangent(&m, &r.mean, &e, 1e-3);
            for s in [1.0, -1.0] {
                let q = m.exp(&r.mean, &scale(&t, s)).unwrap();
                prop_assert!(f(&q) >= f0 - 1e-9 * (1.0 + f0), "{label}: moving lowers the variance");
            }
        }
    }

    #[test]
    fn transforms_round_trip(i in 0usize..8, j in 0usize..8, a in coords()) {
        let (from, to) = (case(i), case(j));
        if from.m.dim() != to.m.dim() { return Ok(()) }
        let x = point(&from.m, &scale(&a, 0.5));
        let there = transform(&x, &from.m, &to.m).unwrap();
        to.m.check(&there).unwrap();
        let back = transform(&there, &to.m, &from.m).unwrap();
        let d = from.m.distance(&x, &back).unwrap();
        prop_assert!(d <= 1e-9, "{} -> {}: {d}", from.label, to.label);
    }
}

/// Poincaré ↔ hyperboloid of equal curvature is an isometry, checked on
/// random pairs: distances agree to 1e-9 relative.
#[test]
fn poincare_hyperboloid_transform_is_an_isometry() {
    use hvs_geometry::{Hyperboloid, PoincareBall};
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for c in [0.3, 1.0, 2.5] {
        let ball: AnyManifold = PoincareBall::new(5, c).unwrap().into();
        let h: AnyManifold = Hyperboloid::new(5, c).unwrap().into();
        for _ in 0..200 {
            let (p, q) = (ball.random_point(&mut rng), ball.random_point(&mut rng));
            let (hp, hq) = (
                transform(&p, &ball, &h).unwrap(),
                transform(&q, &ball, &h).unwrap(),
            );
            let (d1, d2) = (
                ball.distance(&p, &q).unwrap(),
                h.distance(&hp, &hq).unwrap(),
            );
            assert!(
                (d1 - d2).abs() <= 1e-9 * d1.max(1.0),
                "c = {c}: {d1} vs {d2}"
            );
            let back = transform(&hp, &h, &ball).unwrap();
            assert!(ball.distance(&back, &p).unwrap() <= 1e-9);
        }
    }
}

/// Hyperboloid → Klein → hyperboloid returns the point, and Klein maps
/// geodesics to straight chords: the geodesic midpoint lies on the chord.
#[test]
fn klein_round_trip_and_straight_geodesics() {
    use hvs_geometry::{Hyperboloid, hyperboloid_to_klein, klein_to_hyperboloid};
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let h = Hyperboloid::new(3, 1.5).unwrap();
    for _ in 0..200 {
        let (x, y) = (h.random_point(&mut rng), h.random_point(&mut rng));
        let kx = hyperboloid_to_klein(&x, 1.5).unwrap();
        let back = klein_to_hyperboloid(&kx, 1.5).unwrap();
        assert!(h.distance(&x, &back).unwrap() <= 1e-9);
        let ky = hyperboloid_to_klein(&y, 1.5).unwrap();
        let km = hyperboloid_to_klein(&h.geodesic(&x, &y, 0.3).unwrap(), 1.5).unwrap();
        // km - kx is parallel to ky - kx.
        let (u, v) = (sub(&km, &kx), sub(&ky, &kx));
        let uv: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
        let (uu, vv): (f64, f64) = (u.iter().map(|a| a * a).sum(), v.iter().map(|a| a * a).sum());
        assert!(
            (uv * uv - uu * vv).abs() <= 1e-9 * uu * vv + 1e-18,
            "not collinear"
        );
    }
}
