//! Sync jobs and the change feed (`docs/SYNC.md`): operators' operations,
//! allowed to a connection whose token covers every namespace.

use serde::{Deserialize, Serialize};

pub use hvs_types::{
    ConflictCounts, ConflictStrategy, FeedStatus, SyncMode, SyncSpec, SyncState, SyncStatus,
};

/// `sync_conflicts`' arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncConflicts {
    /// The job.
    pub name: String,
    /// Only entries after this audit sequence number (paging).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 100, at most 10,000).
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    100
}

/// `sync_list`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncJobs {
    /// Every job on this instance, by name.
    pub jobs: Vec<SyncStatus>,
}

/// One conflict a job met, from the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncConflict {
    /// Its audit sequence number (page with `after`).
    pub seq: u64,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
    /// The vector's id.
    pub vector: Option<String>,
    /// Its namespace.
    pub namespace: Option<String>,
    /// Both versions and how the conflict was settled.
    pub detail: String,
}

/// `sync_conflicts`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncConflictList {
    /// Oldest first.
    pub conflicts: Vec<SyncConflict>,
}
