//! Floating-point helpers shared by the manifolds.
//!
//! The rule of this module: every function returns a finite value for finite
//! input, and formulas are chosen so that cancellation does not eat the
//! answer (e.g. `acosh(1 + d)` is computed from `d`, never from `1 + d`).

use rand::{Rng, RngCore};
use rand_distr::StandardNormal;

use crate::dd::{Dd, sum_sq_dd, sum_sq_dd_near};
use crate::error::{GeometryError, Result};

/// Relative tolerance of [`crate::Manifold::check`] and
/// [`crate::Manifold::check_tangent`]. Loose enough for points that passed
/// through `f32` once, tight enough to catch a point of the wrong manifold.
pub const CHECK_TOLERANCE: f64 = 1e-6;

/// Arguments of `cosh`/`sinh` above this overflow `f64`.
pub(crate) const MAX_EXP_ARG: f64 = 700.0;

pub(crate) fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| a * b).sum()
}

pub(crate) fn norm_sq(x: &[f64]) -> f64 {
    dot(x, x)
}

pub(crate) fn norm(x: &[f64]) -> f64 {
    norm_sq(x).sqrt()
}

pub(crate) fn dist_sq(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum()
}

/// Largest `|a_i|` (0 for an empty slice).
pub(crate) fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, a| m.max(a.abs()))
}

pub(crate) fn scaled(v: &[f64], s: f64) -> Vec<f64> {
    v.iter().map(|a| a * s).collect()
}

/// `a * x + b * y`, element-wise.
pub(crate) fn lin2(a: f64, x: &[f64], b: f64, y: &[f64]) -> Vec<f64> {
    x.iter().zip(y).map(|(p, q)| a * p + b * q).collect()
}

/// `acosh(1 + d)` for `d >= 0`: accurate for tiny `d`, finite for huge `d`.
pub(crate) fn acosh1p(d: f64) -> f64 {
    if d.is_nan() {
        return f64::INFINITY; // see `nan_to_inf`
    }
    let d = if d > 0.0 { d } else { 0.0 };
    if d > 1e8 {
        // acosh(z) = ln(2z) - 1/(4z^2) - ...; the tail is below 1e-17 here.
        (d + 1.0).ln() + std::f64::consts::LN_2
    } else {
        (d + (d * (d + 2.0)).sqrt()).ln_1p()
    }
}

/// What `distance_unchecked` answers for NaN input: `+∞`, never NaN, so a
/// corrupted point is never anyone's near neighbour (and no NaN leaves the
/// crate).
pub(crate) fn nan_to_inf(d: f64) -> f64 {
    if d.is_nan() { f64::INFINITY } else { d }
}

/// `|v|` without overflow or underflow in the squares (for vectors whose
/// coordinates may be as large as 1e300).
pub(crate) fn norm_scaled(v: &[f64]) -> f64 {
    let m = max_abs(v);
    if m == 0.0 || !m.is_finite() {
        return m;
    }
    if (1e-150..=1e150).contains(&m) {
        return norm(v);
    }
    m * v.iter().map(|a| (a / m) * (a / m)).sum::<f64>().sqrt()
}

/// `sinh(t) / t`, equal to 1 at 0.
pub(crate) fn sinhc(t: f64) -> f64 {
    if t.abs() < 1e-8 { 1.0 } else { t.sinh() / t }
}

/// `sin(t) / t`, equal to 1 at 0.
pub(crate) fn sinc(t: f64) -> f64 {
    if t.abs() < 1e-8 { 1.0 } else { t.sin() / t }
}

/// `t / sinh(t)`, equal to 1 at 0.
pub(crate) fn inv_sinhc(t: f64) -> f64 {
    if t.abs() < 1e-8 { 1.0 } else { t / t.sinh() }
}

/// `t / sin(t)`, equal to 1 at 0.
pub(crate) fn inv_sinc(t: f64) -> f64 {
    if t.abs() < 1e-8 { 1.0 } else { t / t.sin() }
}

/// `2^-53`, the largest relative error of one rounding (half of
/// `f64::EPSILON`): the unit of the error bounds of the fast paths.
pub(crate) const UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;

/// Relative error accepted from a plain-`f64` fast path before the
/// double-double path takes over: 2^-42 ≈ 2.3e-13, a quarter of the 1e-12
/// the crate promises far from the origin (the bounds are worst cases; the
/// errors met are usually a hundred times smaller).
pub(crate) const FAST_PATH_TOLERANCE: f64 = 1.0 / 4_398_046_511_104.0;

/// `1 - c |x|^2`, to a few ulps relative at every point of the ball.
///
/// The plain sum's error is at most `(n + 2) ε c|x|^2 / 2` (ε = 2^-52); when
/// that is more than [`FAST_PATH_TOLERANCE`] of the gap (beyond a hyperbolic
/// radius of about 6.5 in dimension 12, 4 in dimension 128), `|x|^2` is
/// summed in double-double instead (about six times slower).
pub(crate) fn one_minus_c_norm_sq(x: &[f64], c: f64) -> f64 {
    let s = norm_sq(x);
    let n = c * s;
    let bound = (x.len() as f64 + 2.0) * UNIT_ROUNDOFF * n;
    if bound <= FAST_PATH_TOLERANCE * (1.0 - n) {
        return 1.0 - n;
    }
    gap_far(x, s, c)
}

/// The double-double branch of [`one_minus_c_norm_sq`], kept out of line so
/// that the plain branch stays as small as it was.
#[cold]
#[inline(never)]
fn gap_far(x: &[f64], s: f64, c: f64) -> f64 {
    gap_from(sum_sq_dd_near(x, s), c).to_f64()
}

/// `1 - c |x|^2` in double-double.
pub(crate) fn gap_dd(x: &[f64], c: f64) -> Dd {
    gap_from(sum_sq_dd(x), c)
}

fn gap_from(n2: Dd, c: f64) -> Dd {
    if c == 1.0 {
        Dd::ONE - n2
    } else {
        Dd::ONE - n2.mul_f64(c)
    }
}

/// The Minkowski inner product `-x_0 y_0 + Σ_{i≥1} x_i y_i`.
pub(crate) fn minkowski(x: &[f64], y: &[f64]) -> f64 {
    match (x.split_first(), y.split_first()) {
        (Some((x0, xs)), Some((y0, ys))) => -x0 * y0 + dot(xs, ys),
        _ => 0.0,
    }
}

/// `n` independent standard normal numbers.
pub(crate) fn standard_normal(rng: &mut dyn RngCore, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.sample(StandardNormal)).collect()
}

/// How far `v` is from tangent at `x`, given `ip = <x, v>` in the
/// manifold's ambient product: `|ip| / (|x| |v|)`, the cosine of the angle
/// between `x` and `v`. Vectors shorter than `1e-12 |x|` count as that long,
/// so that rounding noise (the sum of tangent vectors that cancel) is
/// accepted as the zero vector it stands for.
pub(crate) fn tangent_residual(ip: f64, x: &[f64], v: &[f64]) -> f64 {
    let nx = norm_scaled(x);
    let scale = nx * norm_scaled(v).max(1e-12 * nx);
    if scale > 0.0 { ip.abs() / scale } else { 0.0 }
}

/// Checks the length and finiteness of a coordinate vector.
pub(crate) fn check_coords(x: &[f64], expected: usize) -> Result<()> {
    if x.len() != expected {
        return Err(GeometryError::DimensionMismatch {
            expected,
            got: x.len(),
        });
    }
    if let Some((index, value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(GeometryError::NonFinite {
            index,
            value: *value,
        });
    }
    Ok(())
}

/// Refuses results that overflowed, so no NaN or infinity leaves the crate.
pub(crate) fn finite_result(v: Vec<f64>, operation: &'static str) -> Result<Vec<f64>> {
    match v.iter().find(|a| !a.is_finite()) {
        None => Ok(v),
        Some(a) => Err(GeometryError::NotRepresentable {
            operation,
            reason: "the result overflows f64",
            argument: *a,
        }),
    }
}

pub(crate) fn check_curvature(c: f64) -> Result<f64> {
    if c.is_finite() && c > 0.0 {
        Ok(c)
    } else {
        Err(GeometryError::InvalidCurvature { got: c })
    }
}

pub(crate) fn check_dim(n: usize) -> Result<usize> {
    if n == 0 {
        Err(GeometryError::InvalidDimension { got: n })
    } else {
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acosh1p_matches_acosh_and_is_accurate_near_zero() {
        for z in [1.5_f64, 2.0, 10.0, 1e6, 1e12] {
            let rel = (acosh1p(z - 1.0) - z.acosh()).abs() / z.acosh();
            assert!(rel < 1e-14, "z = {z}: rel err {rel}");
        }
        // acosh(1 + d) ~ sqrt(2d) for tiny d, where acosh(1.0 + d) would lose it all.
        let d = 1e-20;
        assert!((acosh1p(d) - (2.0 * d).sqrt()).abs() < 1e-25);
        assert_eq!(acosh1p(-1e-17), 0.0);
        assert!(acosh1p(1e300).is_finite());
        assert_eq!(acosh1p(f64::NAN), f64::INFINITY);
        assert_eq!(norm_scaled(&[3e300, 4e300]), 5e300);
        assert_eq!(norm_scaled(&[3e-300, 4e-300]), 5e-300);
    }

    #[test]
    fn one_minus_norm_is_accurate_at_the_edge_of_the_ball() {
        // Points of norm 1 - 1e-12 in random directions; the exact value of
        // 1 - |x|^2 for these f64 coordinates was computed with Python's
        // `fractions` (rational arithmetic). The naive `1.0 - |x|^2` is off by
        // 3.0e-5, 4.6e-7, 1.5e-5 and 3.1e-5 relative on them.
        let cases: [([f64; 5], f64); 4] = [
            (
                [
                    -0.22085264239841665,
                    0.4414212662896122,
                    -0.19514568992961745,
                    -0.2719384679073944,
                    -0.8027072974534273,
                ],
                2.0000153835860935e-12,
            ),
            (
                [
                    -0.1323140469404851,
                    0.6897372026859439,
                    0.26310385325395036,
                    0.6431899416506512,
                    0.15439768642552895,
                ],
                1.9999548431531334e-12,
            ),
            (
                [
                    0.19853385132043652,
                    0.0932027502145741,
                    -0.837880578161634,
                    0.43011481579763894,
                    0.25466632914699094,
                ],
                2.000096007976668e-12,
            ),
            (
                [
                    0.18640018553763663,
                    -0.6320354160367658,
                    -0.6516626179254557,
                    -0.33243478110810515,
                    -0.1749547153206071,
                ],
                2.0001151309693083e-12,
            ),
        ];
        for (x, exact) in cases {
            let got = one_minus_c_norm_sq(&x, 1.0);
            assert!((got - exact).abs() / exact < 1e-12, "{got} vs {exact}");
        }
    }

    #[test]
    fn check_coords_names_the_offending_value() {
        assert_eq!(
            check_coords(&[1.0, 2.0], 3),
            Err(GeometryError::DimensionMismatch {
                expected: 3,
                got: 2
            })
        );
        assert!(matches!(
            check_coords(&[1.0, f64::NAN], 2),
            Err(GeometryError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            check_coords(&[f64::NEG_INFINITY, 0.0], 2),
            Err(GeometryError::NonFinite { index: 0, .. })
        ));
    }
}
