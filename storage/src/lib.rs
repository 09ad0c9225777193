//! `hvs-storage`: the durable truth of HVS.
//!
//! Vectors live in a redb database (msgpack records, a format version in a
//! `meta` table, a numbered change feed of every mutation); each namespace
//! has an in-memory HNSW graph (usearch) over its manifold's own distance,
//! derived from the database and rebuilt from it on open.
//!
//! ```
//! use hvs_storage::{GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig};
//!
//! # fn main() -> Result<(), hvs_storage::StorageError> {
//! let store = Store::open(StoreConfig::memory())?;
//! store.create_namespace(SpaceConfig::new(
//!     "notes",
//!     GeometrySpec::Hyperboloid { dim: 2, curvature: 1.0 },
//! ))?;
//! let a = store.store_vector(NewVector::new("notes", vec![1.0, 0.0, 0.0]))?;
//! let b = store.store_vector(NewVector::new("notes", vec![1.5430806348152437, 1.1752011936438014, 0.0]))?;
//! let hits = store.semantic_search(&SearchQuery::new("notes", vec![1.0, 0.0, 0.0], 2))?;
//! assert_eq!(hits[0].id, a.id);
//! assert!((hits[1].distance - 1.0).abs() < 1e-12 && hits[1].id == b.id);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Store`] (`store.rs`): opening and recovery, the group-commit writer,
//!   the public operations.
//! - `index.rs`: one space's HNSW graph plus its exact fresh buffer;
//!   `kernel.rs`: the `f32` squared distance its Euclidean and spherical
//!   `f32` graphs rank by.
//! - [`Block`] (`blocks.rs`): named, classed, versioned content with
//!   permissions, the audit log, markdown sections for search.
//! - [`MessageRecord`] (`messages.rs`): messages between models (one row
//!   each, their vectors indexed in their namespace), their per-recipient
//!   [`Settlement`]s, and a catalog of named records for the layers above.
//! - [`Filter`], [`GeometrySpec`], [`BlockContent`], [`Metadata`]: the
//!   vocabulary shared with the wire, from `hvs-types` (`storage/types/`).
//! - `record.rs`: [`VectorRecord`], [`SpaceConfig`], [`GeometrySpec`],
//!   [`Change`] and their msgpack encoding.
//! - `vectors.rs`: operations over many vectors of a namespace (delete by
//!   ids or filter, count, scroll in id order, delete the namespace).
//! - `digest.rs`: a namespace's digest ([`NamespaceDigest`]), whatever its
//!   name, to compare copies across instances.
//! - `disk.rs`: the database file under redb, and how reads go on while
//!   the disk refuses writes ([`StorageError::WriteFailed`]).
//!
//! Guarantees (durability, ordering, what search returns) are written down in
//! `docs/STORAGE.md`.

mod backup;
mod blocks;
mod digest;
mod disk;
mod dump;
mod error;
mod fence;
mod index;
mod kernel;
mod messages;
mod record;
mod retention;
mod store;
mod sync;
mod vectors;
mod writer;

pub use backup::{BackupProgress, BackupSummary, restore_backup};
pub use blocks::{
    AuditAction, AuditEntry, Block, BlockClass, BlockContent, BlockHit, BlockOptions,
    BlockPermissions, BlockVersion,
};
pub use digest::{DigestRow, NamespaceDigest};
#[doc(hidden)]
pub use disk::FaultSwitch;
pub use error::{Result, StorageError};
pub use fence::WriteFence;
pub use hvs_types::ConflictStrategy;
pub use hvs_types::Filter;
pub use index::IndexParams;
pub use kernel::{L2sq, l2sq_f32};
pub use messages::{CatalogRecord, Completion, MessageRecord, Settled, Settlement, Unsettled};
pub use record::{
    Change, ChangeBody, ChangeKind, Datatype, DiscardPolicy, GeometrySpec, GraphSettings,
    InvalidPointPolicy, MAX_DIMENSION, MAX_METADATA_DEPTH, Metadata, NewVector, Retention,
    SpaceConfig, VectorRecord, VectorUpdate, decode_change, decode_stored_rows,
    try_decode_stored_rows,
};
pub use retention::{DiscardListener, Discarded, StoreClock};
pub use store::{
    CHECKPOINT_EVERY, ConsistencyReport, Durability, FEED_PUBLISHED, FEED_TRIM_STEP,
    FORMAT_VERSION, MAX_EF, MAX_RESULTS, NamespaceStats, SearchHit, SearchQuery, Slot, SlotWait,
    Stats, Store, StoreConfig,
};
pub use sync::{ApplyOutcome, Causality, Clock, Resolution, Tombstone, hlc_millis};
