//! The Poincaré ball `B^n_c`.

use rand::RngCore;

use crate::dd::{Dd, dot_dd, exp_dd};
use crate::error::{GeometryError, Result};
use crate::manifold::Manifold;
use crate::mean::{self, FrechetMean, FrechetOptions};
use crate::numeric::{
    MAX_EXP_ARG, acosh1p, check_coords, check_curvature, check_dim, dist_sq, dot, finite_result,
    gap_dd, norm, norm_sq, one_minus_c_norm_sq, scaled, standard_normal,
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

    /// `x ⊕ tanh(√c λ_x |v| / 2) v / (√c|v|)`. A long step back towards the
    /// origin cancels in the Möbius sum; it is then evaluated in
    /// double-double in a form where only positive terms are added. A result
    /// that rounds onto the boundary is refused (`NotRepresentable`), never
    /// clamped.
    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        let vn = norm(v);
        if vn == 0.0 {
            return Ok(x.to_vec());
        }
        let c = self.c;
        let sc = c.sqrt();
        let gx = one_minus_c_norm_sq(x, c);
        // √c times the Riemannian length λ_x |v|.
        let theta = 2.0 * sc * vn / gx;
        if theta.is_nan() || theta > MAX_EXP_ARG {
            return Err(GeometryError::NotRepresentable {
                operation: "exp",
                reason: "the step leaves the ball in f64 (its length overflows)",
                argument: theta,
            });
        }
        let b = scaled(v, (0.5 * theta).tanh() / (sc * vn));
        let xb = dot(x, b.as_slice());
        let (x2, b2) = (c * norm_sq(x), c * norm_sq(&b));
        let a = 1.0 + 2.0 * c * xb + b2;
        let d = 1.0 + 2.0 * c * xb + x2 * b2;
        let y = if a >= 0.5 && d >= 0.5 {
            x.iter()
                .zip(&b)
                .map(|(p, q)| (a * p + gx * q) / d)
                .collect()
        } else {
            self.exp_far(x, v)
        };
        self.representable(y, "exp", theta / sc)
    }

    /// `(d(x, y) / λ_x) w / |w|` with `w = (1 - c|x|^2)(y - x) - c|y - x|^2 x`,
    /// the numerator of `(-x) ⊕ y` rewritten so that nothing cancels: the
    /// direction keeps its digits however close the points and however near
    /// the boundary.
    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        self.check(y)?;
        let c = self.c;
        let e: Vec<f64> = x.iter().zip(y).map(|(a, b)| b - a).collect();
        let e2 = norm_sq(&e);
        if e2 == 0.0 {
            return Ok(vec![0.0; self.dim]);
        }
        let gx = one_minus_c_norm_sq(x, c);
        let w: Vec<f64> = e
            .iter()
            .zip(x)
            .map(|(ei, xi)| gx * ei - c * e2 * xi)
            .collect();
        let wn = norm(&w);
        let d = self.distance_unchecked(x, y);
        let v = scaled(&w, 0.5 * d * gx / wn);
        if wn.is_nan() || wn == 0.0 || v.iter().all(|a| *a == 0.0) {
            return Err(GeometryError::NotRepresentable {
                operation: "log",
                reason: "the tangent vector underflows f64",
                argument: d,
            });
        }
        finite_result(v, "log")
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

    /// `P_{x→y}(v) = (λ_x / λ_y) gyr[y, -x] v`, with the gyration written in
    /// `e = y - x` so that its terms do not cancel for nearby points near the
    /// boundary: `gyr = v + α x + β e`,
    /// `α = 2c(<e,v> g_x - c<x,v>|e|^2) / D`,
    /// `β = 2c(2c<x,e><x,v> - g_x<x,v> - c|x|^2<e,v>) / D`,
    /// `D = ((g_x + g_y)/2 + c|e|^2/2)^2 + c^2 |x|^2 |e_⊥|^2`
    /// (`g = 1 - c|·|^2`, `e_⊥` the part of `e` across `x`).
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        self.check(y)?;
        let c = self.c;
        let e: Vec<f64> = x.iter().zip(y).map(|(a, b)| b - a).collect();
        let (gx, gy) = (one_minus_c_norm_sq(x, c), one_minus_c_norm_sq(y, c));
        let (x2, e2) = (norm_sq(x), norm_sq(&e));
        let ev = dot_dd(&e, v).to_f64();
        let xv = dot_dd(x, v).to_f64();
        let xe_dd = dot_dd(x, &e);
        let xe = xe_dd.to_f64();
        let x2_dd = dot_dd(x, x);
        let ep2: f64 = if x2 > 0.0 {
            let k = xe_dd / x2_dd;
            e.iter()
                .zip(x)
                .map(|(ei, xi)| (Dd::from_f64(*ei) - k.mul_f64(*xi)).hi.powi(2))
                .sum()
        } else {
            e2
        };
        let half = 0.5 * (gx + gy) + 0.5 * c * e2;
        let den = half * half + c * c * x2 * ep2;
        let alpha = 2.0 * c * (ev * gx - c * xv * e2) / den;
        let beta = 2.0 * c * (2.0 * c * xe * xv - gx * xv - c * x2 * ev) / den;
        let s = gy / gx;
        finite_result(
            v.iter()
                .zip(x.iter().zip(&e))
                .map(|(vi, (xi, ei))| s * (vi + alpha * xi + beta * ei))
                .collect(),
            "parallel_transport",
        )
    }

    /// Refuses (`NotRepresentable`) a vector so long that its image rounds
    /// onto the boundary (`√c|v|` beyond about 38): `d(0, exp0(v)) = |v|` to
    /// the resolution of the coordinates, never a clamp.
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_coords(v, self.dim)?;
        let y = self.exp0_unchecked(v);
        self.representable(y, "exp0", norm(v))
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
        // λ_p u is orthonormal: the ball is conformal.
        let to_frame = |p: &[f64], u: &[f64]| scaled(u, self.lambda(p));
        let from_frame = |p: &[f64], v: &[f64]| scaled(v, 1.0 / self.lambda(p));
        let resolution = |p: &[f64]| f64::EPSILON * self.lambda(p) * norm(p);
        let model = mean::CurvatureModel {
            curvature: -self.c,
            to_frame: &to_frame,
            from_frame: &from_frame,
            resolution: &resolution,
        };
        mean::karcher_flow(self, &wp, start, &model, options)
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
        scaled(v, (0.5 * sc * vn).tanh() / (sc * vn))
    }

    /// `y` if it is a point of the ball, else `NotRepresentable` (the exact
    /// result lies inside, but its coordinates round onto the boundary).
    fn representable(&self, y: Vec<f64>, operation: &'static str, length: f64) -> Result<Vec<f64>> {
        let y = finite_result(y, operation)?;
        if one_minus_c_norm_sq(&y, self.c) > 0.0 {
            Ok(y)
        } else {
            Err(GeometryError::NotRepresentable {
                operation,
                reason: "the point rounds onto the boundary of the ball",
                argument: length,
            })
        }
    }

    /// `exp_x(v)` in double-double, in the form
    /// `y = (A x + B v) / D` with `τ = tanh(θ/2)`, `m = √c<x,v>/|v|`,
    /// `A = (1-τ)^2 + 2τ(1+m)`, `D = (1-τ + τ(1+m))^2 + τ^2 c|x_⊥|^2`,
    /// `B = (1 - c|x|^2) τ / (√c|v|)`: every sum is of non-negative terms.
    fn exp_far(&self, x: &[f64], v: &[f64]) -> Vec<f64> {
        let c = self.c;
        let sc = Dd::from_f64(c).sqrt();
        let nv2 = dot_dd(v, v);
        let nv = nv2.sqrt();
        let xv = dot_dd(x, v);
        let gx = gap_dd(x, c);
        let theta = (sc * nv).mul_f64(2.0) / gx;
        let e = exp_dd(theta);
        let om_tau = Dd::from_f64(2.0) / (e + Dd::ONE);
        let tau = Dd::ONE - om_tau;
        let one_plus_m = (nv + sc * xv) / nv;
        let a = om_tau.sqr() + (tau * one_plus_m).mul_f64(2.0);
        let k = xv / nv2;
        let xp2 = x.iter().zip(v).fold(Dd::ZERO, |acc, (p, q)| {
            acc + (Dd::from_f64(*p) - k.mul_f64(*q)).sqr()
        });
        let one_plus_tm = om_tau + tau * one_plus_m;
        let d = one_plus_tm.sqr() + (tau.sqr() * xp2).mul_f64(c);
        let b = gx * tau / (sc * nv);
        x.iter()
            .zip(v)
            .map(|(p, q)| ((a.mul_f64(*p) + b.mul_f64(*q)) / d).to_f64())
            .collect()
    }
}
