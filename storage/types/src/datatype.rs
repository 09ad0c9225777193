//! How a namespace's search graph stores its vectors.

use serde::{Deserialize, Serialize};

use crate::GeometrySpec;

/// The scalar type of a namespace's search graph (`datatype` in
/// `create_namespace`). Records in the database always keep the `f64`
/// coordinates they were given; this is only what the HNSW graph holds and
/// ranks candidates with (docs/STORAGE.md, "Vector storage").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Datatype {
    /// 8 bytes per coordinate: the only choice for the hyperbolic, de Sitter
    /// and product spaces, whose distances cancel badly in lower precision.
    F64,
    /// 4 bytes per coordinate: the default for Euclidean and spherical spaces.
    F32,
    /// 2 bytes per coordinate (IEEE half precision; magnitudes above 65,504
    /// saturate): Euclidean and spherical spaces.
    F16,
    /// 1 byte per coordinate, each vector scaled by its norm into
    /// `[-127, 127]`: spherical spaces only (a Euclidean vector's length would
    /// be lost).
    I8,
}

impl Datatype {
    /// What a namespace of this geometry uses when `datatype` is not given.
    pub fn default_for(geometry: &GeometrySpec) -> Self {
        match geometry {
            GeometrySpec::Euclidean { .. } | GeometrySpec::Sphere { .. } => Self::F32,
            _ => Self::F64,
        }
    }

    /// Why this datatype cannot be used for `geometry`, if it cannot.
    pub fn problem(self, geometry: &GeometrySpec) -> Option<String> {
        let euclidean = matches!(geometry, GeometrySpec::Euclidean { .. });
        let sphere = matches!(geometry, GeometrySpec::Sphere { .. });
        let ok = match self {
            Self::F64 => true,
            Self::F32 | Self::F16 => euclidean || sphere,
            Self::I8 => sphere,
        };
        (!ok).then(|| {
            format!(
                "datatype {} is not available for this geometry (f64 always; f32 and f16 for euclidean and sphere; i8 for sphere)",
                self.name()
            )
        })
    }

    /// `f64`, `f32`, `f16` or `i8`, as written on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "f64",
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::I8 => "i8",
        }
    }

    /// Bytes per coordinate in the graph.
    pub fn bytes(self) -> usize {
        match self {
            Self::F64 => 8,
            Self::F32 => 4,
            Self::F16 => 2,
            Self::I8 => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_limits_follow_the_geometry() {
        let e = GeometrySpec::Euclidean { dim: 4 };
        let s = GeometrySpec::Sphere {
            dim: 4,
            curvature: 1.0,
        };
        let h = GeometrySpec::Hyperboloid {
            dim: 4,
            curvature: 1.0,
        };
        assert_eq!(Datatype::default_for(&e), Datatype::F32);
        assert_eq!(Datatype::default_for(&s), Datatype::F32);
        assert_eq!(Datatype::default_for(&h), Datatype::F64);
        assert!(Datatype::I8.problem(&e).is_some());
        assert!(Datatype::I8.problem(&s).is_none());
        assert!(Datatype::F16.problem(&e).is_none());
        assert!(Datatype::F32.problem(&h).is_some());
        assert!(Datatype::F64.problem(&h).is_none());
        let d: Datatype = serde_json::from_str("\"f16\"").unwrap();
        assert_eq!(d, Datatype::F16);
        assert!(serde_json::from_str::<Datatype>("\"f8\"").is_err());
    }
}
