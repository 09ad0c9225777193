//! The [`Manifold`] trait every geometry implements.

use rand::RngCore;

use crate::error::Result;
use crate::mean::{FrechetMean, FrechetOptions};

/// A space HVS can put vectors in.
///
/// Points and tangent vectors are plain `f64` slices in the manifold's
/// *ambient* coordinates ([`ambient_dim`](Manifold::ambient_dim) of them):
/// `n` for the Euclidean space and the Poincaré ball, `n + 1` for the
/// hyperboloid, the sphere and de Sitter space, the concatenation of the
/// components' coordinates for a product. Tangent vectors at `x` live in the
/// same ambient coordinates and satisfy the manifold's tangency condition.
///
/// Every method that takes input from a caller checks it first (length,
/// finiteness, on the manifold / tangent) and answers a typed
/// [`GeometryError`](crate::GeometryError) instead of panicking or returning
/// NaN. [`distance_unchecked`](Manifold::distance_unchecked) is the one
/// exception, for hot loops over points that were checked once on the way in.
pub trait Manifold {
    /// A short name (`"poincare"`, `"hyperboloid"`, …) used in errors.
    fn name(&self) -> &'static str;

    /// Intrinsic dimension `n`.
    fn dim(&self) -> usize;

    /// Number of coordinates of a point.
    fn ambient_dim(&self) -> usize;

    /// `Ok(())` when `x` is a valid point; otherwise says why not.
    fn check(&self, x: &[f64]) -> Result<()>;

    /// `Ok(())` when `v` is a tangent vector at the point `x`.
    fn check_tangent(&self, x: &[f64], v: &[f64]) -> Result<()>;

    /// Maps a finite ambient vector to a point of the manifold. The identity
    /// on points already on it (so it is idempotent); each manifold documents
    /// which point it picks for the others.
    fn project(&self, x: &[f64]) -> Result<Vec<f64>>;

    /// Maps an ambient vector to the tangent space at `x` (orthogonal
    /// projection in the manifold's ambient inner product).
    fn project_tangent(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>>;

    /// Geodesic distance between two points (checked).
    fn distance(&self, x: &[f64], y: &[f64]) -> Result<f64> {
        self.check(x)?;
        self.check(y)?;
        Ok(self.distance_unchecked(x, y))
    }

    /// Geodesic distance between two points the caller has already checked.
    /// Never panics and never returns NaN: a NaN coordinate gives `+∞` (so
    /// a corrupted point is nobody's near neighbour); on other unchecked
    /// garbage the value is unspecified (finite or infinite).
    fn distance_unchecked(&self, x: &[f64], y: &[f64]) -> f64;

    /// Exponential map: the point reached after unit time along the geodesic
    /// leaving `x` with velocity `v`.
    fn exp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>>;

    /// Logarithmic map: the velocity at `x` of the geodesic reaching `y` at
    /// unit time; the inverse of [`exp`](Manifold::exp).
    fn log(&self, x: &[f64], y: &[f64]) -> Result<Vec<f64>>;

    /// The point a fraction `t` of the way along the geodesic from `x` to
    /// `y` (`t` outside `[0, 1]` extrapolates).
    fn geodesic(&self, x: &[f64], y: &[f64], t: f64) -> Result<Vec<f64>> {
        let v = self.log(x, y)?;
        self.exp(x, &crate::numeric::scaled(&v, t))
    }

    /// The manifold's distinguished origin (where `exp0`/`log0` are based).
    fn origin(&self) -> Vec<f64>;

    /// A random point; each manifold documents its distribution.
    fn random_point(&self, rng: &mut dyn RngCore) -> Vec<f64>;

    /// The metric's inner product of two tangent vectors at `x`.
    fn inner(&self, x: &[f64], u: &[f64], v: &[f64]) -> Result<f64>;

    /// The length of a tangent vector at `x`.
    fn norm(&self, x: &[f64], v: &[f64]) -> Result<f64> {
        Ok(self.inner(x, v, v)?.max(0.0).sqrt())
    }

    /// Parallel transport of the tangent vector `v` at `x` to `y` along the
    /// geodesic joining them.
    fn parallel_transport(&self, x: &[f64], y: &[f64], v: &[f64]) -> Result<Vec<f64>>;

    /// Maps a Euclidean vector of [`dim`](Manifold::dim) coordinates — read
    /// in an orthonormal frame of the tangent space at the origin — onto the
    /// manifold by the exponential map, so that the distance from the origin
    /// equals the vector's Euclidean length.
    fn exp0(&self, v: &[f64]) -> Result<Vec<f64>>;

    /// The inverse of [`exp0`](Manifold::exp0).
    fn log0(&self, x: &[f64]) -> Result<Vec<f64>>;

    /// The weighted Fréchet (Karcher) mean: the point minimising
    /// `Σ w_i d(p, x_i)^2`. `weights` of `None` means equal weights.
    fn frechet_mean(
        &self,
        points: &[&[f64]],
        weights: Option<&[f64]>,
        options: &FrechetOptions,
    ) -> Result<FrechetMean>;
}
