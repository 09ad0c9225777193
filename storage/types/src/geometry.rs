//! [`GeometrySpec`]: the manifold of a space, as stored and sent.

use hvs_geometry::{
    AnyManifold, DeSitter, Euclidean, GeometryError, Hyperboloid, Manifold, PoincareBall, Product,
    Sphere,
};
use serde::{Deserialize, Serialize};

/// The manifold of a space, in a form that can be stored and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum GeometrySpec {
    /// Flat space `E^dim`.
    Euclidean {
        /// Dimension.
        dim: usize,
    },
    /// The Poincaré ball of curvature `-curvature`.
    Poincare {
        /// Dimension.
        dim: usize,
        /// `c > 0`.
        curvature: f64,
    },
    /// The hyperboloid of curvature `-curvature` (points have `dim + 1` coordinates).
    Hyperboloid {
        /// Dimension.
        dim: usize,
        /// `c > 0`.
        curvature: f64,
    },
    /// The sphere of curvature `curvature` (points have `dim + 1` coordinates).
    Sphere {
        /// Dimension.
        dim: usize,
        /// `c > 0`.
        curvature: f64,
    },
    /// de Sitter space (points have `dim + 1` coordinates).
    DeSitter {
        /// Dimension.
        dim: usize,
        /// `c > 0`.
        curvature: f64,
    },
    /// A weighted product.
    Product {
        /// `(component, weight)` pairs.
        components: Vec<(GeometrySpec, f64)>,
    },
}

/// The most coordinates a space's points may have (as contracts allow: a
/// namespace of billions of dimensions would be accepted by the math and
/// then exhaust memory in the index).
pub const MAX_DIMENSION: usize = 65_536;

impl GeometrySpec {
    /// The manifold this describes (at most [`MAX_DIMENSION`] coordinates).
    pub fn build(&self) -> Result<AnyManifold, GeometryError> {
        let m = self.build_unchecked()?;
        if m.ambient_dim() > MAX_DIMENSION {
            return Err(GeometryError::InvalidDimension {
                got: m.ambient_dim(),
            });
        }
        Ok(m)
    }

    fn build_unchecked(&self) -> Result<AnyManifold, GeometryError> {
        if let Self::Euclidean { dim }
        | Self::Poincare { dim, .. }
        | Self::Hyperboloid { dim, .. }
        | Self::Sphere { dim, .. }
        | Self::DeSitter { dim, .. } = self
            && *dim > MAX_DIMENSION
        {
            return Err(GeometryError::InvalidDimension { got: *dim });
        }
        Ok(match self {
            Self::Euclidean { dim } => Euclidean::new(*dim)?.into(),
            Self::Poincare { dim, curvature } => PoincareBall::new(*dim, *curvature)?.into(),
            Self::Hyperboloid { dim, curvature } => Hyperboloid::new(*dim, *curvature)?.into(),
            Self::Sphere { dim, curvature } => Sphere::new(*dim, *curvature)?.into(),
            Self::DeSitter { dim, curvature } => DeSitter::new(*dim, *curvature)?.into(),
            Self::Product { components } => Product::new(
                components
                    .iter()
                    .map(|(g, w)| Ok((g.build_unchecked()?, *w)))
                    .collect::<Result<Vec<_>, GeometryError>>()?,
            )?
            .into(),
        })
    }
}
