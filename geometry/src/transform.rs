//! Maps between models of hyperbolic space, and between manifolds.

use crate::any::AnyManifold;
use crate::error::{GeometryError, Result};
use crate::hyperboloid::Hyperboloid;
use crate::manifold::Manifold;
use crate::numeric::{
    check_coords, check_curvature, finite_result, norm_sq, one_minus_c_norm_sq, scaled,
};
use crate::poincare::PoincareBall;

/// Poincaré ball `B^n_c` → hyperboloid `H^n_c`, an isometry:
/// `x_s = 2p / (1 - c|p|^2)`, `x_0 = sqrt(1/c + |x_s|^2)`.
pub fn poincare_to_hyperboloid(p: &[f64], c: f64) -> Result<Vec<f64>> {
    let ball = PoincareBall::new(p.len().max(1), c)?;
    ball.check(p)?;
    let g = one_minus_c_norm_sq(p, c);
    let h = Hyperboloid::new(p.len(), c)?;
    finite_result(h.lift(&scaled(p, 2.0 / g)), "poincare_to_hyperboloid")
}

/// Hyperboloid `H^n_c` → Poincaré ball `B^n_c`, an isometry:
/// `p = x_s / (1 + √c x_0)`. A point so far out (beyond radius ≈ 37/√c)
/// that its image rounds onto the ball's boundary is refused
/// (`NotRepresentable`), not moved.
pub fn hyperboloid_to_poincare(x: &[f64], c: f64) -> Result<Vec<f64>> {
    let h = Hyperboloid::new(x.len().saturating_sub(1).max(1), c)?;
    h.check(x)?;
    let xs = &x[1..];
    let x0 = (1.0 / c + norm_sq(xs)).sqrt();
    let p = scaled(xs, 1.0 / (1.0 + c.sqrt() * x0));
    if one_minus_c_norm_sq(&p, c) > 0.0 {
        Ok(p)
    } else {
        Err(GeometryError::NotRepresentable {
            operation: "hyperboloid_to_poincare",
            reason: "the point rounds onto the boundary of the ball",
            argument: (c.sqrt() * norm_sq(xs).sqrt()).asinh() / c.sqrt(),
        })
    }
}

/// Hyperboloid `H^n_c` → Beltrami–Klein ball `{k : c|k|^2 < 1}`:
/// `k = x_s / (√c x_0)` (geodesics become straight chords).
pub fn hyperboloid_to_klein(x: &[f64], c: f64) -> Result<Vec<f64>> {
    let h = Hyperboloid::new(x.len().saturating_sub(1).max(1), c)?;
    h.check(x)?;
    let xs = &x[1..];
    let x0 = (1.0 / c + norm_sq(xs)).sqrt();
    Ok(scaled(xs, 1.0 / (c.sqrt() * x0)))
}

/// Klein ball → hyperboloid: `x_s = k / sqrt(1 - c|k|^2)`, `x_0` lifted.
pub fn klein_to_hyperboloid(k: &[f64], c: f64) -> Result<Vec<f64>> {
    check_curvature(c)?;
    check_coords(k, k.len())?;
    let g = one_minus_c_norm_sq(k, c);
    if g <= 0.0 {
        return Err(GeometryError::OffManifold {
            manifold: "klein",
            constraint: "c|k|^2 < 1",
            residual: 1.0 - g,
            tolerance: 1.0,
        });
    }
    let h = Hyperboloid::new(k.len().max(1), c)?;
    finite_result(h.lift(&scaled(k, 1.0 / g.sqrt())), "klein_to_hyperboloid")
}

/// Moves a point of `from` to `to`.
///
/// - The same manifold: the point, unchanged.
/// - Poincaré ball ↔ hyperboloid of the same dimension and curvature: the
///   exact isometry above (distances preserved).
/// - Anything else of equal intrinsic dimension: through the tangent space
///   at the origin, `to.exp0(from.log0(x))`. This preserves the distance
///   from the origin and the direction, and only those: it is a chart, not
///   an isometry, between spaces of different curvature.
///
/// Errors: the point is checked against `from`; different intrinsic
/// dimensions are [`GeometryError::IncompatibleManifolds`]; a point with no
/// `log0` (the sphere's antipode of the origin) or a result that overflows
/// is refused.
pub fn transform(point: &[f64], from: &AnyManifold, to: &AnyManifold) -> Result<Vec<f64>> {
    from.check(point)?;
    if from == to {
        return Ok(point.to_vec());
    }
    match (from, to) {
        (AnyManifold::PoincareBall(a), AnyManifold::Hyperboloid(b))
            if a.c() == b.c() && a.dim() == b.dim() =>
        {
            poincare_to_hyperboloid(point, a.c())
        }
        (AnyManifold::Hyperboloid(a), AnyManifold::PoincareBall(b))
            if a.c() == b.c() && a.dim() == b.dim() =>
        {
            hyperboloid_to_poincare(point, a.c())
        }
        _ if from.dim() == to.dim() => to.exp0(&from.log0(point)?),
        _ => Err(GeometryError::IncompatibleManifolds {
            from: from.name(),
            to: to.name(),
            reason: format!(
                "intrinsic dimensions differ: {} vs {}",
                from.dim(),
                to.dim()
            ),
        }),
    }
}
