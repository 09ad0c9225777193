//! The Poincaré ball `B^n_c`.

use rand::RngCore;

use crate::error::{GeometryError, Result};
use crate::manifold::Manifold;
use crate::mean::{self, FrechetMean, FrechetOptions};
use crate::numeric::{
    acosh1p, check_coords, check_curvature, check_dim, dist_sq, dot, finite_result, norm, norm_sq,
    one_minus_c_norm_sq, scaled, standard_normal,
};

/// How far inside the boundary [`PoincareBall::project`] puts a point that
/// was outside the ball (or on its boundary): to `√c |x| = 1 - BALL_MARGIN`,
/// i.e. about 23.7 / √c from the origin.
pub const BALL_MARGIN: f64 = 1e-10;

/// The Poincaré ball of curvature `-c`: `{x ∈ R^n : c |x|^2 < 1}` with the
/// metric `λ_x^2 |dx|^2`, `λ_x = 2 / (1 - c |x|^2)` (the conformal factor).
///
/// Distance: `d(x, y) = (1/√c) acosh(1 + 2c|x-y|^2 / ((1-c|x|^2)(1-c|y|^2)))`,
/// computed from the argument minus one and with `1 - c|x|^2` in doubled
/// precision near the boundary, so points at `|x| = 1 - 1e-12` give finite,
/// accurate distances. Maps follow Ganea, Bécigneul and Hofmann (2018).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoincareBall {
    dim: usize,
    c: f64,
}

impl PoincareBall {
    /// `B^n_c`: dimension `n >= 1`, curvature `-c` with `c > 0`.
    pub fn new(dim: usize, c: f64) -> Result<Self> {
        Ok(Self {
            dim: check_dim(dim)?,
            c: check_curvature(c)?,
        })
    }

    /// The curvature parameter `c` (sectional curvature `-c`).
    pub fn c(&self) -> f64 {
        self.c
    }

    /// The conformal factor `λ_x = 2 / (1 - c|x|^2)`.
    pub fn conformal_factor(&self, x: &[f64]) -> Result<f64> {
        self.check(x)?;
        Ok(self.lambda(x))
    }

    /// Möbius addition `x ⊕_c y`, the ball's gyrogroup operation
    /// (`0 ⊕ y = y`, `(-x) ⊕ x = 0`).
    pub fn mobius_add(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        self.check(y)?;
        finite_result(mobius_add(x, y, self.c), "mobius_add")
    }

    /// The weighted gyromidpoint (Ungar): the Einstein midpoint of the
    /// points' Klein coordinates, read back in the ball. A closed-form
    /// centre that is close to, but not equal to, the Fréchet mean; it is the
    /// starting point of [`Manifold::frechet_mean`] here.
    pub fn gyromidpoint(&self, points: &[&[f64]], weights: Option<&[f64]>) -> Result<Vec<f64>> {
        let wp = mean::prepare(self, points, weights)?;
        Ok(self.gyromidpoint_of(&wp))
    }

    fn gyromidpoint_of(&self, wp: &mean::WeightedPoints<'_>) -> Vec<f64> {
        let mut num = vec![0.0; self.dim];
        let mut den = 0.0;
        for (x, w) in wp.points.iter().zip(&wp.weights) {
            let lam = self.lambda(x);
            for (a, b) in num.iter_mut().zip(x.iter()) {
                *a += w * lam * b;
            }
            den += w * (lam - 1.0);
        }
        // `num / den` is the Einstein midpoint in Klein coordinates; ½ ⊗ maps
        // it back to the ball.
        let k = scaled(&num, 1.0 / den);
        let sk = self.c.sqrt() * norm(&k);
        if sk == 0.0 {
            return k;
        }
        let r = (0.5 * sk.min(1.0 - 1e-16).atanh()).tanh();
        scaled(&k, r / sk)
    }

    fn lambda(&self, x: &[f64]) -> f64 {
        2.0 / one_minus_c_norm_sq(x, self.c)
    }

    fn clamp_into_ball(&self, x: Vec<f64>) -> Vec<f64> {
        if one_minus_c_norm_sq(&x, self.c) > 0.0 {
            return x;
        }
        let n = norm(&x);
        scaled(&x, (1.0 - BALL_MARGIN) / (self.c.sqrt() * n))
    }
}

/// `x ⊕_c y = ((1 + 2c<x,y> + c|y|^2) x + (1 - c|x|^2) y) / (1 + 2c<x,y> + c^2 |x|^2 |y|^2)`.
pub(crate) fn mobius_add(x: &[f64], y: &[f64], c: f64) -> Vec<f64> {
    let xy = dot(x, y);
    let x2 = norm_sq(x);
    let y2 = norm_sq(y);
    let a = 1.0 + 2.0 * c * xy + c * y2;
    let b = one_minus_c_norm_sq(x, c);
    let den = 1.0 + 2.0 * c * xy + c * c * x2 * y2;
    let den = if den.abs() < 1e-300 { 1e-300 } else { den };
    x.iter()
        .zip(y)
        .map(|(p, q)| (a * p + b * q) / den)
        .collect()
}

/// The gyration `gyr[u, v] w`, written out so that it applies to any vector
/// `w` (tangent vectors need not lie in the ball).
fn gyration(u: &[f64], v: &[f64], w: &[f64], c: f64) -> Vec<f64> {
    let (u2, v2, uv, uw, vw) = (norm_sq(u), norm_sq(v), dot(u, v), dot(u, w), dot(v, w));
    let c2 = c * c;
    let a = -c2 * uw * v2 + c * vw + 2.0 * c2 * uv * vw;
    let b = -c2 * vw * u2 - c * uw;
    let d = (1.0 + 2.0 * c * uv + c2 * u2 * v2).max(1e-300);
    w.iter()
        .zip(u.iter().zip(v))
        .map(|(wi, (ui, vi))| wi + 2.0 * (a * ui + b * vi) / d)
        .collect()
}

impl Manifold for PoincareBall {
    fn name(&self) -> &'static str {
        "poincare"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn ambient_dim(&self) -> usize {
        self.dim
    }

    fn check(&self, x: &[f64]) -> Result<()> {
        check_coords(x, self.dim)?;
        let gap = one_minus_c_norm_sq(x, self.c);
        if gap > 0.0 {
            Ok(())
        } else {
            Err(GeometryError::OffManifold {
                manifold: self.name(),
                constraint: "c|x|^2 < 1",
                residual: 1.0 - gap,
                tolerance: 1.0,
            })
        }
    }

    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()> {
        self.check(x)?;
        check_coords(v, self.dim)
    }

    /// Points inside the ball are returned unchanged; a point outside it or
    /// on its boundary is scaled back along its ray to `√c|x| = 1 - BALL_MARGIN`.
    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        check_coords(x, self.dim)?;
        Ok(self.clamp_into_ball(x.to_vec()))
    }

    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        Ok(v.to_vec())
    }

    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        let c = self.c;
        let delta =
            2.0 * c * dist_sq(x, y) / (one_minus_c_norm_sq(x, c) * one_minus_c_norm_sq(y, c));
        acosh1p(delta) / c.sqrt()
    }

    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        let vn = norm(v);
        if vn == 0.0 {
            return Ok(x.to_vec());
        }
        let sc = self.c.sqrt();
        let t = (0.5 * sc * self.lambda(x) * vn).tanh();
        let step = scaled(v, t / (sc * vn));
        let y = mobius_add(x, &step, self.c);
        finite_result(self.clamp_into_ball(y), "exp")
    }

    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        self.check(y)?;
        let u = mobius_add(&scaled(x, -1.0), y, self.c);
        let un = norm(&u);
        if un == 0.0 {
            return Ok(vec![0.0; self.dim]);
        }
        // (2 / (√c λ_x)) artanh(√c |u|) = d(x, y) / λ_x, and d is computed accurately.
        let d = self.distance_unchecked(x, y);
        finite_result(scaled(&u, d / (self.lambda(x) * un)), "log")
    }

    fn origin(&self) -> Vec<f64> {
        vec![0.0; self.dim]
    }

    /// `exp0` of a standard normal vector: hyperbolic radius about `√n`.
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        let v = standard_normal(rng, self.dim);
        self.exp0_unchecked(&v)
    }

    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, u)?;
        check_coords(v, self.dim)?;
        Ok(self.lambda(x).powi(2) * dot(u, v))
    }

    /// `P_{x→y}(v) = (λ_x / λ_y) gyr[y, -x] v`.
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        self.check(y)?;
        let g = gyration(y, &scaled(x, -1.0), v, self.c);
        finite_result(
            scaled(&g, self.lambda(x) / self.lambda(y)),
            "parallel_transport",
        )
    }

    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_coords(v, self.dim)?;
        Ok(self.exp0_unchecked(v))
    }

    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        let n = norm(x);
        if n == 0.0 {
            return Ok(vec![0.0; self.dim]);
        }
        let d = self.distance_unchecked(&self.origin(), x);
        Ok(scaled(x, d / n))
    }

    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        let wp = mean::prepare(self, points, weights)?;
        let start = self.gyromidpoint_of(&wp);
        let lower = |p: &[f64], u: &[f64]| scaled(u, self.lambda(p).powi(2));
        let model = mean::CurvatureModel {
            curvature: -self.c,
            lower: &lower,
        };
        mean::karcher_flow(self, &wp, start, Some(&model), options)
    }
}

impl PoincareBall {
    /// `exp` at the origin of a Euclidean vector in an orthonormal frame
    /// (`λ_0 = 2`): `tanh(√c|v|/2) v / (√c|v|)`.
    fn exp0_unchecked(&self, v: &[f64]) -> Vec<f64> {
        let vn = norm(v);
        if vn == 0.0 {
            return v.to_vec();
        }
        let sc = self.c.sqrt();
        self.clamp_into_ball(scaled(v, (0.5 * sc * vn).tanh() / (sc * vn)))
    }
}
