//! Helpers shared by the geometry integration tests.
#![allow(dead_code)]

use hvs_geometry::{AnyManifold, Euclidean, Hyperboloid, Manifold, PoincareBall, Product, Sphere};

/// A manifold under test, with the largest tangent length that keeps
/// `log(x, exp(x, v)) = v` valid (below the injectivity radius).
pub(crate) struct Case {
    pub(crate) label: &'static str,
    pub(crate) m: AnyManifold,
    pub(crate) max_len: f64,
}

/// Every Riemannian manifold of the crate, at two curvatures where it has one.
pub(crate) fn riemannian() -> Vec<Case> {
    let pi = std::f64::consts::PI;
    vec![
        Case {
            label: "E^3",
            m: Euclidean::new(3).unwrap().into(),
            max_len: 4.0,
        },
        Case {
            label: "B^3_1",
            m: PoincareBall::new(3, 1.0).unwrap().into(),
            max_len: 4.0,
        },
        Case {
            label: "B^4_0.5",
            m: PoincareBall::new(4, 0.5).unwrap().into(),
            max_len: 4.0,
        },
        Case {
            label: "H^3_1",
            m: Hyperboloid::new(3, 1.0).unwrap().into(),
            max_len: 4.0,
        },
        Case {
            label: "H^4_2",
            m: Hyperboloid::new(4, 2.0).unwrap().into(),
            max_len: 4.0,
        },
        Case {
            label: "S^3_1",
            m: Sphere::new(3, 1.0).unwrap().into(),
            max_len: 0.9 * pi,
        },
        Case {
            label: "S^2_4",
            m: Sphere::new(2, 4.0).unwrap().into(),
            max_len: 0.9 * pi / 2.0,
        },
        Case {
            label: "H^2 x S^2 x E^2",
            m: Product::new(vec![
                (Hyperboloid::new(2, 1.0).unwrap().into(), 1.0),
                (Sphere::new(2, 1.0).unwrap().into(), 0.5),
                (Euclidean::new(2).unwrap().into(), 2.0),
            ])
            .unwrap()
            .into(),
            // The sphere component's length is at most max_len / sqrt(0.5).
            max_len: 0.9 * pi * 0.5_f64.sqrt(),
        },
    ]
}

/// The point `exp0(v[..dim])`.
pub(crate) fn point(m: &AnyManifold, v: &[f64]) -> Vec<f64> {
    m.exp0(&v[..m.dim()]).unwrap()
}

/// A tangent vector at `x` of length `len` in the direction of the tangent
/// part of the ambient vector `w` (zero if that part vanishes).
pub(crate) fn tangent(m: &AnyManifold, x: &[f64], w: &[f64], len: f64) -> Vec<f64> {
    let t = m.project_tangent(x, &w[..m.ambient_dim()]).unwrap();
    let n = m.norm(x, &t).unwrap();
    if n < 1e-9 {
        return vec![0.0; t.len()];
    }
    t.iter().map(|a| a * len / n).collect()
}

/// The metric length of `a - b`, two tangent vectors at `x`.
pub(crate) fn tangent_gap(m: &AnyManifold, x: &[f64], a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(p, q)| p - q).collect();
    m.norm(x, &m.project_tangent(x, &d).unwrap()).unwrap()
}

pub(crate) fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(p, q)| p - q).collect()
}

pub(crate) fn scale(a: &[f64], s: f64) -> Vec<f64> {
    a.iter().map(|p| p * s).collect()
}
