//! Maps between models of hyperbolic space, and between manifolds.

use crate::any::AnyManifold;
use crate::error::{GeometryError, Result};
use crate::hyperboloid::Hyperboloid;
use crate::manifold::Manifold;
use crate::numeric::{
    check_coords, check_curvature, finite_result, norm, norm_sq, one_minus_c_norm_sq, scaled,
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
///   from the origin (on de Sitter: the geodesic interval) and the
///   direction, and only those: it is a chart, not an isometry, between
///   spaces of different curvature. How many nearest neighbours survive it
///   is measured by [`measure_transfer`](crate::measure_transfer) and
///   tabled in `docs/GEOMETRY.md`.
///
/// Errors: the point is checked against `from`; different intrinsic
/// dimensions are [`GeometryError::IncompatibleManifolds`]; a point with no
/// `log0` (the sphere's antipode of the origin, a de Sitter point no
/// geodesic from the origin reaches) or a result that overflows is
/// refused. So is a point whose tangent vector is at least `πR` long where
/// `to` is a sphere, or spacelike of at least that length where `to` is de
/// Sitter space (also inside a product): `exp0` would wrap it around the
/// closed geodesic onto another point's image, so neither its distance from
/// the origin nor its direction would be kept and the transform would not
/// be invertible (`IncompatibleManifolds`, naming the length).
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
        _ if from.dim() == to.dim() => {
            let v = from.log0(point)?;
            check_chart_reaches(&v, from, to)?;
            to.exp0(&v)
        }
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

/// Refuses a tangent vector `v` (in `to`'s frame at the origin) that `to`'s
/// `exp0` would wrap around a closed geodesic: beyond the injectivity radius
/// `πR` of the sphere, or of de Sitter space along spacelike directions.
fn check_chart_reaches(v: &[f64], from: &AnyManifold, to: &AnyManifold) -> Result<()> {
    match wrapped_length(v, to) {
        None => Ok(()),
        Some((length, limit)) => Err(GeometryError::IncompatibleManifolds {
            from: from.name(),
            to: to.name(),
            reason: format!(
                "the point is {length} from the origin, beyond {to}'s injectivity radius \
                 {limit} there: the chart through the origin would wrap it onto another \
                 point's image",
                to = to.name()
            ),
        }),
    }
}

/// `Some((length, πR))` when `to.exp0(v)` wraps around.
fn wrapped_length(v: &[f64], to: &AnyManifold) -> Option<(f64, f64)> {
    let pi = std::f64::consts::PI;
    match to {
        AnyManifold::Sphere(s) => {
            let (length, limit) = (norm(v), pi * s.radius());
            (length >= limit).then_some((length, limit))
        }
        AnyManifold::DeSitter(d) => {
            // The frame is (t, s_1, …): spacelike when |s|² > t².
            let (t, s) = v.split_first()?;
            let q = norm_sq(s) - t * t;
            let (length, limit) = (q.max(0.0).sqrt(), pi / d.c().sqrt());
            (q > 0.0 && length >= limit).then_some((length, limit))
        }
        AnyManifold::Product(p) => {
            // Component i receives its slice divided by √wᵢ (`Product::exp0`).
            let mut rest = v;
            for (m, w) in p.components() {
                let (part, tail) = rest.split_at_checked(m.dim())?;
                rest = tail;
                let found = wrapped_length(&scaled(part, 1.0 / w.sqrt()), m);
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        _ => None,
    }
}
