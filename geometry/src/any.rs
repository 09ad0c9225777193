//! [`AnyManifold`]: one type for every geometry, for spaces chosen at run time.

use rand::RngCore;

use crate::de_sitter::DeSitter;
use crate::error::Result;
use crate::euclidean::Euclidean;
use crate::hyperboloid::Hyperboloid;
use crate::manifold::Manifold;
use crate::mean::{FrechetMean, FrechetOptions};
use crate::poincare::PoincareBall;
use crate::product::Product;
use crate::sphere::Sphere;

/// Any of the manifolds of this crate, dispatching [`Manifold`] to it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AnyManifold {
    /// Flat space.
    Euclidean(Euclidean),
    /// The Poincaré ball.
    PoincareBall(PoincareBall),
    /// The hyperboloid (Lorentz) model.
    Hyperboloid(Hyperboloid),
    /// The sphere.
    Sphere(Sphere),
    /// de Sitter space (Lorentzian).
    DeSitter(DeSitter),
    /// A weighted product.
    Product(Product),
}

macro_rules! dispatch {
    ($self:ident, $m:ident => $e:expr) => {
        match $self {
            AnyManifold::Euclidean($m) => $e,
            AnyManifold::PoincareBall($m) => $e,
            AnyManifold::Hyperboloid($m) => $e,
            AnyManifold::Sphere($m) => $e,
            AnyManifold::DeSitter($m) => $e,
            AnyManifold::Product($m) => $e,
        }
    };
}

macro_rules! from_impl {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for AnyManifold {
            fn from(m: $t) -> Self {
                AnyManifold::$v(m)
            }
        }
    )*};
}

from_impl!(Euclidean => Euclidean, PoincareBall => PoincareBall, Hyperboloid => Hyperboloid,
    Sphere => Sphere, DeSitter => DeSitter, Product => Product);

impl Manifold for AnyManifold {
    fn name(&self) -> &'static str {
        dispatch!(self, m => m.name())
    }
    fn dim(&self) -> usize {
        dispatch!(self, m => m.dim())
    }
    fn ambient_dim(&self) -> usize {
        dispatch!(self, m => m.ambient_dim())
    }
    fn check(&self, x: &[f64]) -> Result<()> {
        dispatch!(self, m => m.check(x))
    }
    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()> {
        dispatch!(self, m => m.check_tangent(x, v))
    }
    fn project(&self, x: &[f64]) -> Result<Vec<f64>> {
        dispatch!(self, m => m.project(x))
    }
    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        dispatch!(self, m => m.project_tangent(x, v))
    }
    fn distance(&self, x: &[f64], y: &[f64]) -> Result<f64> {
        dispatch!(self, m => m.distance(x, y))
    }
    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64 {
        dispatch!(self, m => m.distance_unchecked(x, y))
    }
    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        dispatch!(self, m => m.exp(x, v))
    }
    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>> {
        dispatch!(self, m => m.log(x, y))
    }
    fn geodesic(&self, x: &[f64], y: &[f64], t: f64) -> Result<Vec<f64>> {
        dispatch!(self, m => m.geodesic(x, y, t))
    }
    fn origin(&self) -> Vec<f64> {
        dispatch!(self, m => m.origin())
    }
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64> {
        dispatch!(self, m => m.random_point(rng))
    }
    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64> {
        dispatch!(self, m => m.inner(x, u, v))
    }
    fn norm(&self, x: &[f64], v: &[f64]) -> Result<f64> {
        dispatch!(self, m => m.norm(x, v))
    }
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>> {
        dispatch!(self, m => m.parallel_transport(x, y, v))
    }
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>> {
        dispatch!(self, m => m.exp0(v))
    }
    fn log0(&self, x: &[f64]) -> Result<Vec<f64>> {
        dispatch!(self, m => m.log0(x))
    }
    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        options: &FrechetOptions,
    ) -> Result<FrechetMean> {
        dispatch!(self, m => m.frechet_mean(points, weights, options))
    }
}
