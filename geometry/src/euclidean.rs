//! Flat space `E^n`.

use rand::RngCore;

use crate::error::Result;
use crate::manifold::Manifold;
use crate::mean::{self, FrechetMean, FrechetOptions};
use crate::numeric::{
    check_coords, check_dim, dist_sq, dot, finite_result, nan_to_inf, standard_normal,
};

/// Euclidean space `E^n`: curvature 0, distance `|x - y|`, `exp_x(v) = x + v`.
///
/// Its Fréchet mean is the weighted average, computed in closed form.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Euclidean {
    dim: usize,
}

impl Euclidean {
    /// `E^n`; `n` must be at least 1.
    pub fn new(dim: usize) -> Result<Self> {
        Ok(Self {
            dim: check_dim(dim)?,
        })
    }
}

impl Manifold for Euclidean {
    fn name(&self) -> &'static str {
        "euclidean"
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn ambient_dim(&self) -> usize {
        self.dim
    }

    fn check(&self, x: &[f64]) -> Result<()> {
        check_coords(x, self.dim)
    }

    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()> {
        self.check(x)?;
        check_coords(v, self.dim)
    }

    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        Ok(x.to_vec())
    }

    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        Ok(v.to_vec())
    }

    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        nan_to_inf(dist_sq(x, y).sqrt())
    }

    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check_tangent(x, v)?;
        finite_result(x.iter().zip(v).map(|(a, b)| a + b).collect(), "exp")
    }

    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        self.check(x)?;
        self.check(y)?;
        finite_result(y.iter().zip(x).map(|(a, b)| a - b).collect(), "log")
    }

    fn origin(&self) -> Vec<f64> {
        vec![0.0; self.dim]
    }

    /// Standard normal coordinates.
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        standard_normal(rng, self.dim)
    }

    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        self.check_tangent(x, u)?;
        check_coords(v, self.dim)?;
        Ok(dot(u, v))
    }

    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        self.check(y)?;
        self.project_tangent(x, v)
    }

    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        self.project(v)
    }

    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.project(x)
    }

    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        _options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        let wp = mean::prepare(self, points, weights)?;
        let m = finite_result(mean::weighted_sum(&wp, self.dim), "frechet_mean")?;
        mean::closed_form(self, &wp, m)
    }
}
