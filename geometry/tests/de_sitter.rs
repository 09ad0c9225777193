//! de Sitter space: the interval's classification and value are invariant
//! under Lorentz transformations; exp and log invert each other on both
//! kinds of geodesic; parallel transport preserves the Lorentz product.

use hvs_geometry::{DeSitter, IntervalKind, Manifold};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

const N: usize = 3; // dS^3 in R^{1,3}

fn ds() -> DeSitter {
    DeSitter::new(N, 1.0).unwrap()
}

/// A Lorentz transformation of R^{1,N}: a spatial rotation (Q of a QR
/// factorisation) followed by a boost of rapidity `phi` along the first
/// spatial axis.
fn lorentz(entries: &[f64], phi: f64) -> DMatrix<f64> {
    let a = DMatrix::from_column_slice(N, N, &entries[..N * N]);
    let q = a.qr().q();
    let mut rot = DMatrix::identity(N + 1, N + 1);
    rot.view_mut((1, 1), (N, N)).copy_from(&q);
    let mut boost = DMatrix::identity(N + 1, N + 1);
    boost[(0, 0)] = phi.cosh();
    boost[(1, 1)] = phi.cosh();
    boost[(0, 1)] = phi.sinh();
    boost[(1, 0)] = phi.sinh();
    boost * rot
}

fn apply(l: &DMatrix<f64>, x: &[f64]) -> Vec<f64> {
    (l * DVector::from_column_slice(x))
        .iter()
        .copied()
        .collect()
}

fn point(v: &[f64]) -> Vec<f64> {
    ds().exp0(&v[..N]).unwrap()
}

fn coords() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-1.2..1.2f64, N)
}

proptest! {
    #[test]
    fn interval_is_lorentz_invariant(
        a in coords(), b in coords(),
        entries in prop::collection::vec(-1.0..1.0f64, N * N),
        phi in -1.5..1.5f64,
    ) {
        let m = ds();
        let (x, y) = (point(&a), point(&b));
        let l = lorentz(&entries, phi);
        let (lx, ly) = (apply(&l, &x), apply(&l, &y));
        m.check(&lx).unwrap();
        let (i, j) = (m.interval(&x, &y).unwrap(), m.interval(&lx, &ly).unwrap());
        let scale = 1.0 + x.iter().chain(&y).chain(&lx).chain(&ly).map(|t| t * t).sum::<f64>();
        prop_assert!((i.squared - j.squared).abs() <= 1e-12 * scale, "{i:?} vs {j:?}");
        // The kind is invariant unless the interval is within rounding of zero.
        if i.squared.abs() > 1e-9 * scale {
            prop_assert_eq!(i.kind, j.kind);
        }
        prop_assert!((m.distance(&x, &y).unwrap() - m.distance(&lx, &ly).unwrap()).abs() <= 1e-6 * scale);
    }

    #[test]
    fn lightlike_pairs_stay_lightlike(
        a in coords(), w in prop::collection::vec(-1.0..1.0f64, N + 1), s in 0.1..3.0f64,
        entries in prop::collection::vec(-1.0..1.0f64, N * N),
        phi in -1.5..1.5f64,
    ) {
        let m = ds();
        let x = point(&a);
        // A null tangent vector n at x: take the tangent part of w, split it into
        // its time-like and space-like parts relative to the frame, rebalance.
        let t = m.project_tangent(&x, &w).unwrap();
        // The tangent space at x contains a timelike unit vector e (x is spacelike);
        // e = tangent part of (1, 0, …), normalised.
        let mut e0 = vec![0.0; N + 1];
        e0[0] = 1.0;
        let e = m.project_tangent(&x, &e0).unwrap();
        let ee = -m.inner(&x, &e, &e).unwrap();
        prop_assume!(ee > 1e-6);
        let e: Vec<f64> = e.iter().map(|c| c / ee.sqrt()).collect();
        // Spatial part of t orthogonal to e, normalised.
        let te = m.inner(&x, &t, &e).unwrap();
        let sp: Vec<f64> = t.iter().zip(&e).map(|(ti, ei)| ti + te * ei).collect();
        let spn = m.inner(&x, &sp, &sp).unwrap();
        prop_assume!(spn > 1e-6);
        let n: Vec<f64> = sp.iter().zip(&e).map(|(si, ei)| s * (si / spn.sqrt() + ei)).collect();
        let y: Vec<f64> = x.iter().zip(&n).map(|(p, q)| p + q).collect();
        m.check(&y).unwrap();
        prop_assert_eq!(m.interval(&x, &y).unwrap().kind, IntervalKind::Lightlike);
        let l = lorentz(&entries, phi);
        prop_assert_eq!(m.interval(&apply(&l, &x), &apply(&l, &y)).unwrap().kind, IntervalKind::Lightlike);
        // And the geodesic from x along n reaches y: exp(x, n) = x + n.
        let e = m.exp(&x, &n).unwrap();
        prop_assert!(e.iter().zip(&y).all(|(p, q)| (p - q).abs() <= 1e-9 * (1.0 + q.abs())));
    }

    #[test]
    fn log_inverts_exp_on_timelike_and_spacelike_geodesics(
        a in coords(), w in prop::collection::vec(-1.0..1.0f64, N + 1), len in 0.01..1.3f64,
    ) {
        let m = ds();
        let x = point(&a);
        let t = m.project_tangent(&x, &w).unwrap();
        let tn = m.norm(&x, &t).unwrap();
        prop_assume!(tn > 1e-3);
        let v: Vec<f64> = t.iter().map(|c| c * len / tn).collect();
        let kind = m.inner(&x, &v, &v).unwrap();
        let y = m.exp(&x, &v).unwrap();
        m.check(&y).unwrap();
        let back = m.log(&x, &y).unwrap();
        prop_assert!(back.iter().zip(&v).all(|(p, q)| (p - q).abs() <= 1e-8 * (1.0 + q.abs())), "{back:?} vs {v:?}");
        // The chord's kind is the geodesic's, and its length is |v|.
        let g = m.geodesic_interval(&x, &y).unwrap();
        let expected = if kind < 0.0 { IntervalKind::Timelike } else { IntervalKind::Spacelike };
        prop_assert_eq!(g.kind, expected);
        prop_assert!((g.magnitude - len).abs() <= 1e-8);
    }

    #[test]
    fn parallel_transport_preserves_the_lorentz_product(
        a in coords(), b in prop::collection::vec(-0.6..0.6f64, N),
        u in prop::collection::vec(-1.0..1.0f64, N + 1), w in prop::collection::vec(-1.0..1.0f64, N + 1),
    ) {
        let m = ds();
        let x = point(&a);
        let y = m.exp(&x, &m.project_tangent(&x, &[0.0, b[0], b[1], b[2]]).unwrap()).unwrap();
        let (p, q) = (m.project_tangent(&x, &u).unwrap(), m.project_tangent(&x, &w).unwrap());
        let Ok(pp) = m.parallel_transport(&x, &y, &p) else { return Ok(()) };
        let qq = m.parallel_transport(&x, &y, &q).unwrap();
        m.check_tangent(&y, &pp).unwrap();
        let (before, after) = (m.inner(&x, &p, &q).unwrap(), m.inner(&y, &pp, &qq).unwrap());
        prop_assert!((before - after).abs() <= 1e-8 * (1.0 + before.abs()), "{before} vs {after}");
    }
}

#[test]
fn origin_and_exp0_conventions() {
    let m = ds();
    assert_eq!(m.origin(), vec![0.0, 1.0, 0.0, 0.0]);
    // Intrinsic (t, s1, s2): a pure time step of length 1 at the origin is
    // the boost (sinh 1, cosh 1, 0, 0).
    let x = m.exp0(&[1.0, 0.0, 0.0]).unwrap();
    let want = [1f64.sinh(), 1f64.cosh(), 0.0, 0.0];
    assert!(
        x.iter().zip(&want).all(|(p, q)| (p - q).abs() < 1e-14),
        "{x:?}"
    );
    let back = m.log0(&x).unwrap();
    assert!((back[0] - 1.0).abs() < 1e-12 && back[1].abs() < 1e-12);
}
