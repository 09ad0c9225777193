//! HVS: a runtime through which AI models talk to each other in vectors.
//!
//! This crate is the facade: it re-exports the public API of the workspace's
//! crates: the geometry layer, [`geometry`]; model contracts,
//! [`contracts`]; storage, [`storage`]; and the in-process runtime,
//! [`runtime`] (many models in one process talking through HVS). The server
//! and clients follow (see `README.md`).

pub use hvs_contracts as contracts;
pub use hvs_geometry as geometry;
pub use hvs_geometry::{AnyManifold, FrechetMean, FrechetOptions, GeometryError, Manifold};
pub use hvs_runtime as runtime;
pub use hvs_storage as storage;
