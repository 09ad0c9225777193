//! The one error type of the geometry crate.

/// Everything the geometry crate can refuse.
///
/// Every variant is a problem with the caller's input (or a result that does
/// not exist, such as the mean of antipodal points): there are no internal
/// faults in pure math. [`GeometryError::code`] gives a stable code that can
/// travel on the wire.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GeometryError {
    /// A point or tangent vector has the wrong number of coordinates.
    #[error("dimension mismatch: expected {expected} coordinates, got {got}")]
    DimensionMismatch {
        /// Coordinates the manifold's ambient space has.
        expected: usize,
        /// Coordinates the caller gave.
        got: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("coordinate {index} is not finite ({value})")]
    NonFinite {
        /// Index of the first offending coordinate.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// The point does not satisfy the manifold's defining constraint.
    #[error(
        "point is not on {manifold}: {constraint} violated (residual {residual:e}, tolerance {tolerance:e})"
    )]
    OffManifold {
        /// The manifold's name.
        manifold: &'static str,
        /// The constraint, written out.
        constraint: &'static str,
        /// How far off the point is, in the constraint's own (relative) measure.
        residual: f64,
        /// The largest residual accepted.
        tolerance: f64,
    },
    /// The vector is not tangent to the manifold at the given point.
    #[error(
        "vector is not tangent to {manifold} at the point: {constraint} violated (residual {residual:e}, tolerance {tolerance:e})"
    )]
    NotTangent {
        /// The manifold's name.
        manifold: &'static str,
        /// The tangency condition, written out.
        constraint: &'static str,
        /// How far off the vector is, relative to its size.
        residual: f64,
        /// The largest residual accepted.
        tolerance: f64,
    },
    /// A curvature parameter is zero, negative, or not finite.
    #[error("curvature parameter must be finite and > 0, got {got}")]
    InvalidCurvature {
        /// The value given.
        got: f64,
    },
    /// A manifold of dimension zero was asked for.
    #[error("a manifold needs dimension >= 1, got {got}")]
    InvalidDimension {
        /// The value given.
        got: usize,
    },
    /// A product manifold was built wrongly (no components, bad weight).
    #[error("invalid product manifold: {reason}")]
    InvalidProduct {
        /// What is wrong.
        reason: String,
    },
    /// The weights of a mean are unusable.
    #[error("invalid weights: {reason}")]
    InvalidWeights {
        /// What is wrong.
        reason: String,
    },
    /// A mean of no points (or only zero-weight points) was asked for.
    #[error("the mean of an empty set of points is undefined")]
    EmptyInput,
    /// The weighted Fréchet mean is not unique, so no answer is given.
    #[error("no unique Fréchet mean on {manifold}: {reason}")]
    NoUniqueMean {
        /// The manifold's name.
        manifold: &'static str,
        /// Why, in words.
        reason: String,
    },
    /// No (unique) geodesic joins the two points, so `log` is undefined.
    #[error("no unique geodesic joins the points on {manifold}: {reason}")]
    NoGeodesic {
        /// The manifold's name.
        manifold: &'static str,
        /// Why, in words.
        reason: &'static str,
    },
    /// The operation does not exist on this manifold.
    #[error("{operation} is not defined on {manifold}")]
    Unsupported {
        /// The operation asked for.
        operation: &'static str,
        /// The manifold's name.
        manifold: &'static str,
    },
    /// A transform between two manifolds that cannot be related.
    #[error("cannot transform from {from} to {to}: {reason}")]
    IncompatibleManifolds {
        /// Source manifold's name.
        from: &'static str,
        /// Target manifold's name.
        to: &'static str,
        /// Why, in words.
        reason: String,
    },
    /// The exact result exists but `f64` coordinates cannot carry it: it
    /// overflows (e.g. `exp` of a tangent vector of hyperbolic length 1,000),
    /// it rounds onto the boundary of the Poincaré ball, or cancellation
    /// would leave fewer correct digits than the crate promises. Never
    /// replaced by a clamp, a zero vector or a NaN.
    #[error("{operation} is not representable in f64: {reason} (argument {argument:e})")]
    NotRepresentable {
        /// The operation.
        operation: &'static str,
        /// Why, in words.
        reason: &'static str,
        /// The offending magnitude (a tangent vector's length, a hyperbolic
        /// radius, or the overflowing value).
        argument: f64,
    },
}

impl GeometryError {
    /// A stable, machine-readable code for the error kind. Codes never change
    /// meaning; new kinds get new codes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DimensionMismatch { .. } => "dimension_mismatch",
            Self::NonFinite { .. } => "non_finite",
            Self::OffManifold { .. } => "off_manifold",
            Self::NotTangent { .. } => "not_tangent",
            Self::InvalidCurvature { .. } => "invalid_curvature",
            Self::InvalidDimension { .. } => "invalid_dimension",
            Self::InvalidProduct { .. } => "invalid_product",
            Self::InvalidWeights { .. } => "invalid_weights",
            Self::EmptyInput => "empty_input",
            Self::NoUniqueMean { .. } => "no_unique_mean",
            Self::NoGeodesic { .. } => "no_geodesic",
            Self::Unsupported { .. } => "unsupported",
            Self::IncompatibleManifolds { .. } => "incompatible_manifolds",
            Self::NotRepresentable { .. } => "not_representable",
        }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = GeometryError> = std::result::Result<T, E>;
