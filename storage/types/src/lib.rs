//! `hvs-types`: the vocabulary that storage and the wire share — a space's
//! manifold ([`GeometrySpec`]), metadata and its filters ([`Filter`]), a
//! block's content ([`BlockContent`]) — with no database, index or actor
//! behind it, so a client of the wire links none of those.
//!
//! ```
//! use hvs_geometry::Manifold;
//! use hvs_types::{Filter, GeometrySpec, Metadata};
//! let g: GeometrySpec = serde_json::from_str(r#"{"kind": "hyperboloid", "dim": 12, "curvature": 1.0}"#).unwrap();
//! assert_eq!(g.build().unwrap().ambient_dim(), 13);
//! let m: Metadata = serde_json::from_str(r#"{"from": "alice"}"#).unwrap();
//! assert!(Filter::Eq("from".into(), "alice".into()).matches(&m));
//! ```

mod block;
mod bridge;
mod datatype;
mod filter;
mod geometry;
mod retention;
mod sync;

pub use block::BlockContent;
pub use bridge::{
    BridgeHit, BridgeHits, BridgeIsolation, BridgeKind, BridgeQuery, BridgeSpec, BridgeStatus,
    InstanceRefusal, SlowProgress, SlowState,
};
pub use datatype::Datatype;
pub use filter::Filter;
pub use geometry::{GeometrySpec, MAX_DIMENSION};
pub use retention::{DiscardPolicy, Retention, message_bytes};
pub use sync::{
    ConflictCounts, ConflictStrategy, FeedStatus, SyncMode, SyncSpec, SyncState, SyncStatus,
};

/// Metadata of a vector or a message: string keys to JSON values.
pub type Metadata = std::collections::BTreeMap<String, serde_json::Value>;
