//! The one error type of the actor layer.

use hvs_contracts::ContractError;
use hvs_geometry::GeometryError;
use hvs_mailbox::MailboxError;
use hvs_storage::StorageError;

/// Everything a call into the actor runtime can refuse or fail at.
///
/// [`ActorError::is_validation`] separates what the caller must fix (bad
/// input, a permission, a limit) from faults to retry or report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The contract refused: invalid, a rate limit, a size limit.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// Storage refused or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A mailbox refused (full).
    #[error(transparent)]
    Mailbox(#[from] MailboxError),
    /// A geometry computation failed (a consensus that has no mean).
    #[error(transparent)]
    Geometry(#[from] GeometryError),
    /// No model of that id has ever connected.
    #[error("model {0:?} is not known")]
    UnknownModel(String),
    /// No namespace of that name.
    #[error("namespace {0:?} does not exist")]
    UnknownNamespace(String),
    /// A namespace of that name exists already.
    #[error("namespace {0:?} exists already")]
    NamespaceExists(String),
    /// The model is connected already (disconnect it first).
    #[error("model {0:?} is connected already")]
    AlreadyConnected(String),
    /// The model's handle was disconnected.
    #[error("model {0:?} is disconnected")]
    Disconnected(String),
    /// The contract, the namespace's access list or an isolation policy
    /// refuses the operation.
    #[error("{model:?} may not {action} namespace {namespace:?}: {reason}")]
    PermissionDenied {
        /// Who asked.
        model: String,
        /// `read`, `write`, `broadcast`, `administer`, …
        action: &'static str,
        /// Where.
        namespace: String,
        /// Which rule refused.
        reason: String,
    },
    /// A request that cannot be served as asked (empty space for a
    /// consensus, a vector of the wrong kind, …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The runtime has stopped.
    #[error("the runtime has stopped")]
    Stopped,
    /// A multi-instance operation on an instance without `[cluster]`.
    #[error(
        "this instance is not in a cluster: configure [cluster] (NATS urls and an instance name)"
    )]
    NoCluster,
    /// No sync job of that name on this instance.
    #[error("no sync job named {0:?}")]
    UnknownSyncJob(String),
    /// A write committed here whose replication (`replicated`, `quorum`)
    /// was not confirmed in time: it may survive a failover, or not, so
    /// the caller retries (writes are at least once).
    #[error(
        "the write is committed here but {level} durability was not confirmed within {waited_ms} ms"
    )]
    NotReplicated {
        /// The durability level waited for.
        level: &'static str,
        /// How long it waited.
        waited_ms: u64,
    },
    /// No bridge of that name on this instance.
    #[error("no bridge named {0:?}")]
    UnknownBridge(String),
    /// NATS or JetStream did not answer a cluster operation (retry later).
    #[error("the cluster is unavailable: {0}")]
    ClusterUnavailable(String),
}

impl ActorError {
    /// Whether the caller must change the request (as opposed to a fault).
    pub fn is_validation(&self) -> bool {
        match self {
            Self::Contract(_) | Self::Mailbox(_) | Self::Geometry(_) => true,
            Self::Storage(e) => e.is_validation(),
            Self::UnknownModel(_)
            | Self::UnknownNamespace(_)
            | Self::NamespaceExists(_)
            | Self::AlreadyConnected(_)
            | Self::Disconnected(_)
            | Self::PermissionDenied { .. }
            | Self::InvalidRequest(_)
            | Self::NoCluster
            | Self::UnknownSyncJob(_)
            | Self::UnknownBridge(_) => true,
            Self::Stopped | Self::ClusterUnavailable(_) | Self::NotReplicated { .. } => false,
        }
    }

    /// A stable, machine-readable code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Contract(e) => e.code(),
            Self::Storage(e) => e.code(),
            Self::Mailbox(e) => e.code(),
            Self::Geometry(e) => e.code(),
            Self::UnknownModel(_) => "unknown_model",
            Self::UnknownNamespace(_) => "unknown_namespace",
            Self::NamespaceExists(_) => "namespace_exists",
            Self::AlreadyConnected(_) => "already_connected",
            Self::Disconnected(_) => "disconnected",
            Self::PermissionDenied { .. } => "permission_denied",
            Self::InvalidRequest(_) => "bad_request",
            Self::Stopped => "stopped",
            Self::NoCluster => "no_cluster",
            Self::UnknownSyncJob(_) => "unknown_sync_job",
            Self::NotReplicated { .. } => "not_replicated",
            Self::UnknownBridge(_) => "unknown_bridge",
            Self::ClusterUnavailable(_) => "cluster_unavailable",
        }
    }
}

impl From<actix::MailboxError> for ActorError {
    fn from(_: actix::MailboxError) -> Self {
        Self::Stopped
    }
}

/// Results of the actor layer.
pub type Result<T, E = ActorError> = std::result::Result<T, E>;
