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
mod graph;
mod retention;
mod sync;

pub use block::BlockContent;
pub use bridge::{
    BridgeHit, BridgeHits, BridgeIsolation, BridgeKind, BridgeQuery, BridgeSpec, BridgeStatus,
    InstanceRefusal, SlowProgress, SlowState,
};
pub use datatype::Datatype;
pub use filter::{Filter, MetadataLookup};
pub use geometry::{GeometrySpec, MAX_DIMENSION};
pub use graph::GraphSettings;
pub use retention::{DiscardPolicy, Retention, message_bytes};
pub use sync::{
    ConflictCounts, ConflictStrategy, FeedStatus, SyncMode, SyncSpec, SyncState, SyncStatus,
};

/// Metadata of a vector or a message: string keys to JSON values.
pub type Metadata = std::collections::BTreeMap<String, serde_json::Value>;

/// [`Metadata`] as a search index keeps it for every vector it holds: its
/// pairs in one allocation, sorted by key. A `BTreeMap` allocates a node of
/// eleven slots (about 640 bytes) for even one key; this holds one key in
/// 48 bytes plus the key's text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactMetadata(Box<[(Box<str>, serde_json::Value)]>);

impl CompactMetadata {
    /// The value at `key`, if any.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// Whether it has no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The same pairs as [`Metadata`].
    pub fn to_metadata(&self) -> Metadata {
        self.0
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

impl From<Metadata> for CompactMetadata {
    fn from(m: Metadata) -> Self {
        // A BTreeMap iterates in key order: the slice is sorted.
        Self(m.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}
