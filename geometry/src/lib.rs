//! `hvs-geometry`: the manifolds HVS spaces live on.
//!
//! Pure math on `f64`, no I/O: distances, exponential and logarithmic maps,
//! projections, geodesics, parallel transport, transforms between models of
//! hyperbolic space, weighted Fréchet means, and the Lorentzian interval of
//! de Sitter space and of the 4-D cost space. Every function that takes input
//! checks it and answers a typed [`GeometryError`]; none panics on input
//! and no NaN leaves the crate.
//!
//! ```
//! use hvs_geometry::{FrechetOptions, Hyperboloid, Manifold, PoincareBall, transform};
//!
//! # fn main() -> Result<(), hvs_geometry::GeometryError> {
//! let h = Hyperboloid::new(2, 1.0)?;
//! let a = h.exp0(&[1.0, 0.0])?; // one unit from the origin along the first axis
//! let b = h.exp0(&[0.0, 2.0])?;
//! assert!((h.distance(&h.origin(), &b)? - 2.0).abs() < 1e-12);
//!
//! // The same points in the Poincaré ball are at the same distance.
//! let ball = PoincareBall::new(2, 1.0)?;
//! let (pa, pb) = (
//!     transform(&a, &h.into(), &ball.into())?,
//!     transform(&b, &h.into(), &ball.into())?,
//! );
//! assert!((ball.distance(&pa, &pb)? - h.distance(&a, &b)?).abs() < 1e-12);
//!
//! // The Fréchet mean of two points is their geodesic midpoint.
//! let mean = h.frechet_mean(&[&a, &b], None, &FrechetOptions::default())?;
//! let mid = h.geodesic(&a, &b, 0.5)?;
//! assert!(h.distance(&mean.mean, &mid)? < 1e-9 && mean.converged);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Manifold`]: the trait every geometry implements (`manifold.rs`).
//! - [`Euclidean`], [`PoincareBall`], [`Hyperboloid`], [`Sphere`],
//!   [`DeSitter`], [`Product`]: one file each; [`AnyManifold`] dispatches
//!   to any of them (`any.rs`).
//! - [`FrechetOptions`], [`FrechetMean`]: the Karcher flow (`mean.rs`).
//! - [`transform`] and the model maps (`transform.rs`);
//!   [`measure_transfer`]: how well `transform` keeps nearest neighbours
//!   (`distortion.rs`).
//! - [`lorentzian_cost_distance`], [`Interval`]: the cost space
//!   (`de_sitter.rs`).
//! - `numeric.rs`: cancellation-free helpers (`acosh(1 + d)`, doubled
//!   precision `1 - c|x|^2`); `dd.rs`: the double-double arithmetic the
//!   ball and the hyperboloid fall back to far from the origin.
//! - [`DdHyperboloid`]: the hyperboloid with double-double coordinates,
//!   which tells apart points `2^-53` times closer than `f64` coordinates
//!   can, far from the origin (`dd_hyperboloid.rs`; not in [`AnyManifold`]).
//!
//! # Conventions
//! Curvature is a positive parameter `c`: the Poincaré ball and the
//! hyperboloid have sectional curvature `-c`, the sphere and de Sitter space
//! `+c`. `exp0` / `log0` read Euclidean vectors in an orthonormal frame at the
//! manifold's origin, so `distance(origin, exp0(v)) = |v|` on every
//! Riemannian manifold here — the bridge from ordinary embeddings.

mod any;
mod dd;
mod dd_hyperboloid;
mod de_sitter;
mod distortion;
mod error;
mod euclidean;
mod hyperboloid;
mod manifold;
mod mean;
mod numeric;
mod poincare;
mod product;
mod sphere;
mod transform;

pub use any::AnyManifold;
pub use dd_hyperboloid::DdHyperboloid;
pub use de_sitter::{
    DeSitter, Interval, IntervalKind, LIGHTLIKE_TOLERANCE, causally_precedes,
    lorentzian_cost_distance,
};
pub use distortion::{TransferDistortion, TransferSample, measure_transfer};
pub use error::{GeometryError, Result};
pub use euclidean::Euclidean;
pub use hyperboloid::Hyperboloid;
pub use manifold::Manifold;
pub use mean::{FrechetMean, FrechetOptions};
pub use numeric::CHECK_TOLERANCE;
pub use poincare::{BALL_MARGIN, PoincareBall};
pub use product::Product;
pub use sphere::Sphere;
pub use transform::{
    hyperboloid_to_klein, hyperboloid_to_poincare, klein_to_hyperboloid, poincare_to_hyperboloid,
    transform,
};
