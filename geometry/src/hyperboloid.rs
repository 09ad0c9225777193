//! The hyperboloid (Lorentz) model `H^n_c`.

use rand::RngCore;

use crate::error::{GeometryError, Result};
use crate::manifold::Manifold;
use crate::mean::{self, FrechetMean, FrechetOptions};
use crate::numeric::{
    CHECK_TOLERANCE, MAX_EXP_ARG, acosh1p, check_coords, check_curvature, check_dim, finite_result,
    inv_sinhc, lin2, minkowski, norm, norm_sq, scaled, sinhc, standard_normal, tangent_residual,
};

/// The hyperboloid of curvature `-c`:
/// `{x ∈ R^{n+1} : <x,x>_L = -1/c, x_0 > 0}` with the Lorentz inner product
/// `<x,y>_L = -x_0 y_0 + Σ_{i≥1} x_i y_i` restricted to its tangent spaces.
///
/// # Numerics
/// Coordinates grow like `e^r` with the hyperbolic radius `r`, so the naive
/// `acosh(-c<x,y>_L)` loses everything to cancellation for nearby points far
/// from the origin (at `r = 15`, `x_0 y_0 ≈ 1e13`). Here the time
/// coordinate is treated as derived from the spatial ones
/// (`x_0 = sqrt(1/c + |x_s|^2)`), and
/// `-c<x,y>_L - 1 = 2 sinh^2(√c Δr / 2) + (c/2) |x_s| |y_s| |x̂_s - ŷ_s|^2`
/// is a sum of non-negative terms, each computed without cancellation
/// (`Δr` is the difference of the points' radii, `x̂_s` the direction of the
/// spatial part). Distances are accurate to about `1e-16 · e^r` absolute.
///
/// [`project`](Manifold::project), [`exp`](Manifold::exp) and the transforms
/// recompute `x_0` from the spatial part, so their results satisfy the
/// constraint to the last bit of `x_0`. In exact arithmetic on the stored
/// `f64` values, `<x,x>_L + 1/c` is then bounded by about `x_0^2 · 2^-52`:
/// below `1e-9 / c` up to radius 8, and ≈ 7/c at radius 20 — no `f64`
/// representation can do better, because one ulp of `x_0 ≈ 2.4e8` is `3e-8`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyperboloid {
    dim: usize,
    c: f64,
}

impl Hyperboloid {
    /// `H^n_c`: dimension `n >= 1` (points have `n + 1` coordinates),
    /// curvature `-c` with `c > 0`.
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

    /// The Lorentz (Minkowski) inner product `-x_0 y_0 + Σ x_i y_i` of two
    /// ambient vectors.
    pub fn lorentz_inner(&self, x: &[f64], y: &[f64]) -> Result<f64> {
        check_coords(x, self.dim + 1)?;
        check_coords(y, self.dim + 1)?;
        Ok(minkowski(x, y))
    }

    /// The point over the spatial coordinates `xs`: `(sqrt(1/c + |xs|^2), xs)`.
    pub(crate) fn lift(&self, xs: &[f64]) -> Vec<f64> {
        let mut x = Vec::with_capacity(xs.len() + 1);
        x.push((1.0 / self.c + norm_sq(xs)).sqrt());
        x.extend_from_slice(xs);
        x
    }

    /// `-c<x,y>_L - 1 ≥ 0`, without cancellation (see the type's docs).
    fn delta(&self, x: &[f64], y: &[f64]) -> f64 {
        let (xs, ys) = (x.get(1..).unwrap_or(&[]), y.get(1..).unwrap_or(&[]));
        let (nx, ny) = (norm(xs), norm(ys));
        let sc = self.c.sqrt();
        let (s1, s2) = (sc * nx, sc * ny);
        let (h1, h2) = ((1.0 + s1 * s1).sqrt(), (1.0 + s2 * s2).sqrt());
        let den = s1 * h2 + h1 * s2;
        // sinh(√c (r1 - r2)) = (s1^2 - s2^2) / (s1 h2 + h1 s2).
        let sinh_dr = if den > 0.0 {
            (s1 - s2) * (s1 + s2) / den
        } else {
            0.0
        };
        let radial = sinh_dr * sinh_dr / (1.0 + (1.0 + sinh_dr * sinh_dr).sqrt());
        let angular = if nx > 0.0 && ny > 0.0 {
            let (ix, iy) = (1.0 / nx, 1.0 / ny);
            let chord2: f64 = xs
                .iter()
                .zip(ys)
                .map(|(a, b)| (a * ix - b * iy).powi(2))
                .sum();
            0.5 * s1 * s2 * chord2
        } else {
            0.0
        };
        radial + angular
    }

    /// `<v,v>_L` of a tangent vector at `x`, from spatial parts only
    /// (`v_0 = <x_s, v_s> / x_0` is implied by tangency):
    /// `|v_⊥|^2 + |v_∥|^2 / (1 + c|x_s|^2)`, where `∥` is along `x_s`.
    fn tangent_norm_sq(&self, x: &[f64], v: &[f64]) -> f64 {
        let (xs, vs) = (&x[1..], &v[1..]);
        let nx2 = norm_sq(xs);
        if nx2 == 0.0 {
            return norm_sq(vs);
        }
        let a = crate::numeric::dot(xs, vs) / nx2;
        let perp2: f64 = xs.iter().zip(vs).map(|(p, q)| (q - a * p).powi(2)).sum();
        perp2 + a * a * nx2 / (1.0 + self.c * nx2)
    }
}

impl Manifold for Hyperboloid {
    fn name(&self) -> &'static str {
        "hyperboloid"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn ambient_dim(&self) -> usize {
        self.dim + 1
    }

    /// Accepts `x` when `x_0` is within [`CHECK_TOLERANCE`] (relative) of
    /// `sqrt(1/c + |x_s|^2)`.
    fn check(&self, x: &[f64]) -> Result<()> {
        check_coords(x, self.dim + 1)?;
        let expected = (1.0 / self.c + norm_sq(&x[1..])).sqrt();
        let residual = (x[0] - expected).abs() / expected;
        if residual <= CHECK_TOLERANCE {
            Ok(())
        } else {
            Err(GeometryError::OffManifold {
                manifold: self.name(),
                constraint: "<x,x>_L = -1/c with x_0 > 0",
                residual,
                tolerance: CHECK_TOLERANCE,
            })
        }
    }

    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()> {
        self.check(x)?;
        check_coords(v, self.dim + 1)?;
        let residual = tangent_residual(minkowski(x, v), x, v);
        if residual <= CHECK_TOLERANCE {
            Ok(())
        } else {
            Err(GeometryError::NotTangent {
                manifold: self.name(),
                constraint: "<x,v>_L = 0",
                residual,
                tolerance: CHECK_TOLERANCE,
            })
        }
    }

    /// Keeps the spatial coordinates and sets `x_0 = sqrt(1/c + |x_s|^2)`
    /// (whatever `x_0` was), the standard retraction onto the upper sheet.
    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        check_coords(x, self.dim + 1)?;
        finite_result(self.lift(&x[1..]), "project")
    }

    /// `v + c<x,v>_L x`.
    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        check_coords(v, self.dim + 1)?;
        finite_result(lin2(1.0, v, self.c * minkowski(x, v), x), "project_tangent")
    }

    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        acosh1p(self.delta(x, y)) / self.c.sqrt()
    }

    /// `cosh(√c|v|) x + sinh(√c|v|) v / (√c|v|)`, then the time coordinate
    /// is recomputed from the spatial ones.
    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        let theta = self.c.sqrt() * self.tangent_norm_sq(x, v).sqrt();
        if theta > MAX_EXP_ARG {
            return Err(GeometryError::NotRepresentable {
                operation: "exp",
                argument: theta,
            });
        }
        let y = lin2(theta.cosh(), x, sinhc(theta), v);
        finite_result(self.lift(&y[1..]), "exp")
    }

    /// `d · (y + c<x,y>_L x) / |y + c<x,y>_L x|_L`, with
    /// `y + c<x,y>_L x = (y - x) - δ x` and `|·|_L = sinh(√c d)/√c`.
    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        self.check(y)?;
        let delta = self.delta(x, y);
        let t = acosh1p(delta); // √c d
        let k = inv_sinhc(t);
        finite_result(
            x.iter()
                .zip(y)
                .map(|(a, b)| k * ((b - a) - delta * a))
                .collect(),
            "log",
        )
    }

    fn origin(&self) -> Vec<f64> {
        let mut o = vec![0.0; self.dim + 1];
        o[0] = 1.0 / self.c.sqrt();
        o
    }

    /// `exp0` of a standard normal vector: hyperbolic radius about `√n`.
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        let v = standard_normal(rng, self.dim);
        let theta = self.c.sqrt() * norm(&v);
        self.lift(&scaled(&v, sinhc(theta)))
    }

    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, u)?;
        self.check_tangent(x, v)?;
        Ok(minkowski(u, v))
    }

    fn norm(&self, x: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, v)?;
        Ok(self.tangent_norm_sq(x, v).sqrt())
    }

    /// `v + c<y,v>_L / (1 - c<x,y>_L) · (x + y)`.
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        self.check(y)?;
        let k = self.c * minkowski(y, v) / (2.0 + self.delta(x, y));
        finite_result(
            v.iter()
                .zip(x.iter().zip(y))
                .map(|(vi, (xi, yi))| vi + k * (xi + yi))
                .collect(),
            "parallel_transport",
        )
    }

    /// The tangent space at the origin is `{(0, v)}`:
    /// `exp0(v) = (cosh(√c|v|)/√c, sinh(√c|v|) v / (√c|v|))`.
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        check_coords(v, self.dim)?;
        let theta = self.c.sqrt() * norm(v);
        if theta > MAX_EXP_ARG {
            return Err(GeometryError::NotRepresentable {
                operation: "exp0",
                argument: theta,
            });
        }
        finite_result(self.lift(&scaled(v, sinhc(theta))), "exp0")
    }

    /// `asinh(√c|x_s|)/√c · x_s/|x_s|`.
    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        let xs = &x[1..];
        let n = norm(xs);
        if n == 0.0 {
            return Ok(vec![0.0; self.dim]);
        }
        let sc = self.c.sqrt();
        Ok(scaled(xs, (sc * n).asinh() / (sc * n)))
    }

    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        let wp = mean::prepare(self, points, weights)?;
        // Start from the Lorentzian centroid: the weighted sum rescaled onto
        // the hyperboloid (Law et al. 2019), close to the Fréchet mean.
        let s = mean::weighted_sum(&wp, self.dim + 1);
        let q = -minkowski(&s, &s);
        let start = if q > 0.0 && q.is_finite() {
            self.lift(&scaled(&s[1..], 1.0 / (self.c * q).sqrt()))
        } else {
            wp.points[0].to_vec()
        };
        let lower = |_: &[f64], u: &[f64]| {
            let mut l = u.to_vec();
            l[0] = -l[0];
            l
        };
        let model = mean::CurvatureModel {
            curvature: -self.c,
            lower: &lower,
        };
        mean::karcher_flow(self, &wp, start, Some(&model), options)
    }
}
