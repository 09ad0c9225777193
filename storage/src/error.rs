//! The one error type of the storage crate.

use hvs_geometry::GeometryError;
use uuid::Uuid;

/// Everything the storage layer can refuse or fail at.
///
/// [`StorageError::is_validation`] separates bad input (fix the request) from
/// faults of the machine or the file (retry, or page someone).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// This instance is a member of a failover group but not its primary
    /// (or its lease lapsed): it takes no writes of its own.
    #[error("this instance is not its group's primary{}", primary.as_ref().map(|p| format!("; writes go to {p}")).unwrap_or_default())]
    NotPrimary {
        /// The primary's address, if known.
        primary: Option<String>,
    },
    /// The vector is not a valid point of the space's manifold.
    #[error("invalid vector for namespace {namespace:?}: {source}")]
    InvalidVector {
        /// The namespace written to.
        namespace: String,
        /// What the geometry said.
        #[source]
        source: GeometryError,
    },
    /// The geometry of a space is unusable.
    #[error("invalid geometry: {0}")]
    InvalidGeometry(#[source] GeometryError),
    /// No namespace of that name exists.
    #[error("namespace {0:?} does not exist")]
    NamespaceNotFound(String),
    /// The change feed no longer holds the entries asked for: they were
    /// trimmed ([`crate::StoreConfig::feed_keep`]). `first` is the oldest
    /// entry it still holds.
    #[error("the change feed was trimmed: its oldest entry is {first}")]
    FeedTrimmed {
        /// The number of the oldest entry the feed holds.
        first: u64,
    },
    /// A namespace of that name exists already, with another configuration.
    #[error("namespace {0:?} exists already with a different configuration")]
    NamespaceExists(String),
    /// A namespace name that cannot be used (empty or longer than 256 bytes).
    #[error("invalid namespace name {0:?}: it must be 1 to 256 bytes")]
    InvalidNamespaceName(String),
    /// No vector with that id exists.
    #[error("vector {0} does not exist")]
    VectorNotFound(Uuid),
    /// A compare-and-set update found another version than the one it
    /// was conditioned on (`VectorUpdate::if_version`); nothing changed.
    #[error("vector {id} is at version {current}, not {expected}: re-read it and retry")]
    VersionConflict {
        /// The vector.
        id: Uuid,
        /// The version the update asked for.
        expected: u64,
        /// The version stored when the update was committed.
        current: u64,
    },
    /// A namespace that messages still have their vectors in cannot be
    /// deleted (their rows would be orphaned).
    #[error("namespace {namespace:?} holds {messages} message(s); it cannot be deleted")]
    NamespaceInUse {
        /// The namespace.
        namespace: String,
        /// Stored messages whose vectors are in it.
        messages: usize,
    },
    /// A message does not fit its namespace's retention limits: the
    /// namespace is at `limit` and its discard policy is `new`, or the
    /// message alone is larger than `max_bytes` (under either policy).
    /// Nothing was stored.
    #[error("namespace {namespace:?} is full: {limit} is {max} and {why}")]
    NamespaceFull {
        /// The namespace the message is stored in (its sender's).
        namespace: String,
        /// `max_messages` or `max_bytes`.
        limit: &'static str,
        /// The limit's value.
        max: u64,
        /// Which: the policy, or the message's own size.
        why: String,
    },
    /// Retention limits that cannot be used (a limit of 0).
    #[error("invalid retention: {0}")]
    InvalidRetention(String),
    /// A namespace's `datatype` that its geometry cannot use.
    #[error("invalid datatype: {0}")]
    InvalidDatatype(String),
    /// A namespace's graph settings out of range.
    #[error("invalid graph settings: {0}")]
    InvalidGraph(String),
    /// A search parameter is out of range.
    #[error("invalid search: {0}")]
    InvalidQuery(String),
    /// Metadata that cannot be stored (too deep, too large).
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
    /// The database was written by a newer HVS.
    #[error(
        "the database has format version {found}, newer than this build's {supported}; upgrade HVS to open it"
    )]
    NewerFormat {
        /// Version in the file.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The file is not an HVS database, or is damaged.
    #[error("the database is corrupt or not an HVS database: {0}")]
    Corrupt(String),
    /// Another process holds the database open.
    #[error("the database is already open in another process")]
    AlreadyOpen,
    /// The underlying database or file system failed (disk full, I/O error).
    #[error("storage fault: {0}")]
    Io(String),
    /// The disk failed a write (full, or failing). This write and every
    /// write after it until the disk takes writes again are refused and
    /// leave nothing behind; reads go on. (Only if the disk failed the sync
    /// after a commit's last write may that commit be kept: the message
    /// says so.) See "When the disk fails" in `docs/STORAGE.md`.
    #[error("writes are refused: the disk failed a write ({0}); reads go on")]
    WriteFailed(String),
    /// The store has been closed.
    #[error("the store is closed")]
    Closed,
    /// The block is read-only: updates and deletes are refused.
    #[error("block {0} is read-only")]
    ReadOnlyBlock(Uuid),
    /// The actor may not do this to the block.
    #[error("{actor:?} may not {action} block {block}")]
    PermissionDenied {
        /// Who asked.
        actor: String,
        /// `read`, `write` or `change the permissions of`.
        action: &'static str,
        /// The block's name.
        block: String,
    },
    /// A block of that name exists already.
    #[error("a block named {0:?} exists already")]
    BlockNameTaken(String),
    /// No block of that id or name (or it has expired).
    #[error("block {0} does not exist")]
    BlockNotFound(String),
    /// A block that cannot be created as asked.
    #[error("invalid block: {0}")]
    InvalidBlock(String),
    /// A change from another instance is for a namespace that has another
    /// manifold here (moving between manifolds is a bridge's work).
    #[error(
        "namespace {namespace:?} is {here} here but {there} at the source; a sync job never changes a namespace's manifold"
    )]
    GeometryMismatch {
        /// The namespace.
        namespace: String,
        /// Its manifold here.
        here: String,
        /// Its manifold at the source.
        there: String,
    },
    /// The search index refused an operation.
    #[error("index fault: {0}")]
    Index(String),
    /// A database exists already where a new one was to be made: an
    /// import never writes over one.
    #[error("a database exists already at {0}; import into a new path")]
    DatabaseExists(String),
}

impl StorageError {
    /// `true` for errors caused by the request (fix it and retry), `false`
    /// for faults of the store itself.
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            Self::InvalidVector { .. }
                | Self::InvalidGeometry(_)
                | Self::NamespaceNotFound(_)
                | Self::NamespaceExists(_)
                | Self::FeedTrimmed { .. }
                | Self::InvalidNamespaceName(_)
                | Self::VectorNotFound(_)
                | Self::VersionConflict { .. }
                | Self::NamespaceInUse { .. }
                | Self::NamespaceFull { .. }
                | Self::InvalidRetention(_)
                | Self::InvalidDatatype(_)
                | Self::InvalidGraph(_)
                | Self::InvalidQuery(_)
                | Self::InvalidMetadata(_)
                | Self::ReadOnlyBlock(_)
                | Self::PermissionDenied { .. }
                | Self::BlockNameTaken(_)
                | Self::BlockNotFound(_)
                | Self::InvalidBlock(_)
                | Self::DatabaseExists(_)
                | Self::GeometryMismatch { .. }
        )
    }

    /// A stable, machine-readable code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidVector { source, .. } => source.code(),
            Self::InvalidGeometry(_) => "invalid_geometry",
            Self::NamespaceNotFound(_) => "namespace_not_found",
            Self::NamespaceExists(_) => "namespace_exists",
            Self::FeedTrimmed { .. } => "feed_trimmed",
            Self::InvalidNamespaceName(_) => "invalid_namespace_name",
            Self::VectorNotFound(_) => "vector_not_found",
            Self::VersionConflict { .. } => "version_conflict",
            Self::NamespaceInUse { .. } => "namespace_in_use",
            Self::NamespaceFull { .. } => "namespace_full",
            Self::InvalidRetention(_) => "invalid_retention",
            Self::InvalidDatatype(_) => "invalid_datatype",
            Self::InvalidGraph(_) => "invalid_graph",
            Self::InvalidQuery(_) => "invalid_query",
            Self::InvalidMetadata(_) => "invalid_metadata",
            Self::NewerFormat { .. } => "newer_format",
            Self::Corrupt(_) => "corrupt",
            Self::AlreadyOpen => "already_open",
            Self::Io(_) => "io",
            Self::WriteFailed(_) => "write_failed",
            Self::Closed => "closed",
            Self::Index(_) => "index",
            Self::ReadOnlyBlock(_) => "read_only_block",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::BlockNameTaken(_) => "block_name_taken",
            Self::BlockNotFound(_) => "block_not_found",
            Self::InvalidBlock(_) => "invalid_block",
            Self::DatabaseExists(_) => "database_exists",
            Self::GeometryMismatch { .. } => "geometry_mismatch",
            Self::NotPrimary { .. } => "not_primary",
        }
    }
}

impl From<redb::Error> for StorageError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Corrupted(m) => Self::Corrupt(m),
            redb::Error::DatabaseAlreadyOpen => Self::AlreadyOpen,
            redb::Error::UpgradeRequired(v) => {
                Self::Corrupt(format!("redb file format {v} needs an upgrade"))
            }
            other => Self::Io(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                redb::Error::from(e).into()
            }
        }
    )*};
}

from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Shorthand used throughout the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
