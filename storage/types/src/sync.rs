//! How a sync job settles a conflict (see `docs/SYNC.md`).

use serde::{Deserialize, Serialize};

/// What a sync job does when both instances changed the same vector since
/// the version they last agreed on (neither version vector covers the
/// other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictStrategy {
    /// The version with the later hybrid-logical-clock timestamp wins (ties
    /// broken by the version vectors, so every instance picks the same).
    #[default]
    LastWriteWins,
    /// The version with the higher version number wins (ties as
    /// `last_write_wins`).
    HighestVersion,
    /// The geodesic midpoint of the two versions on the namespace's
    /// manifold; region and metadata from the `last_write_wins` winner.
    Merge,
    /// The Fréchet mean of the two versions on the namespace's manifold;
    /// region and metadata from the `last_write_wins` winner.
    GeometricMean,
    /// The target's version stays; the conflict is recorded.
    KeepTarget,
}

impl ConflictStrategy {
    /// The name used on the wire, in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::LastWriteWins => "last_write_wins",
            Self::HighestVersion => "highest_version",
            Self::Merge => "merge",
            Self::GeometricMean => "geometric_mean",
            Self::KeepTarget => "keep_target",
        }
    }

    /// Every strategy, in the order of the docs.
    pub const ALL: [ConflictStrategy; 5] = [
        Self::LastWriteWins,
        Self::HighestVersion,
        Self::Merge,
        Self::GeometricMean,
        Self::KeepTarget,
    ];
}

impl std::str::FromStr for ConflictStrategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|c| c.name()).collect();
                format!(
                    "unknown conflict strategy {s:?}: one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What a sync job copies from its source instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SyncMode {
    /// Every namespace of the source, deletions included (`sync_full`).
    Full,
    /// Everything of the source, as its mirror (`docs/CLUSTER.md`): what
    /// `full` copies, and messages, settlements, expiries, blocks and
    /// every catalog record (contracts, access lists, isolation policies),
    /// as the source left them, so that this instance can take the
    /// source's place.
    Mirror,
    /// The named namespaces; with `regions`, only vectors of those regions
    /// (`sync_partial`).
    Partial {
        /// The namespaces (at least one).
        namespaces: Vec<String>,
        /// Only vectors whose region is one of these (all if empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        regions: Vec<String>,
    },
    /// Only vectors whose metadata `filter` matches, in `namespaces` (all if
    /// empty) (`sync_selective`).
    Selective {
        /// The same filter language as search.
        filter: crate::Filter,
        /// Restrict to these namespaces (all if empty).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        namespaces: Vec<String>,
    },
}

impl SyncMode {
    /// `full`, `partial` or `selective`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Mirror => "mirror",
            Self::Partial { .. } => "partial",
            Self::Selective { .. } => "selective",
        }
    }
}

/// A sync job: what to copy from which instance into this one, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncSpec {
    /// The job's name on this instance (letters, digits, `-` and `_`).
    pub name: String,
    /// The source instance's name (its `[cluster] instance`).
    pub source: String,
    /// What to copy.
    pub mode: SyncMode,
    /// How conflicts are settled.
    #[serde(default)]
    pub strategy: ConflictStrategy,
    /// `true`: follow the source's feed until deleted (continuous);
    /// `false`: catch up with what the feed holds when the job starts,
    /// report, stop (one-shot).
    #[serde(default = "follow_by_default")]
    pub follow: bool,
}

fn follow_by_default() -> bool {
    true
}

/// Where a sync job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Reaching NATS or the source's stream (or waiting for it to return).
    Starting,
    /// Applying or waiting for changes.
    Running,
    /// Paused by an operator; resumes where it stopped.
    Paused,
    /// A one-shot job that caught up.
    Done,
}

/// How a sync job's conflicts were settled, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConflictCounts {
    /// The target's version stayed.
    pub kept_target: u64,
    /// The source's version replaced it.
    pub took_source: u64,
    /// A version made of both (`merge`, `geometric_mean`).
    pub combined: u64,
}

impl ConflictCounts {
    /// All conflicts.
    pub fn total(&self) -> u64 {
        self.kept_target + self.took_source + self.combined
    }
}

/// A sync job and what it has done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// The job.
    pub spec: SyncSpec,
    /// Where it is.
    pub state: SyncState,
    /// Changes written here.
    pub applied: u64,
    /// Changes already here (or older than what is here): nothing written.
    pub unchanged: u64,
    /// Changes outside the job's scope (other namespaces, regions, filter;
    /// mail, blocks and catalog records, which sync jobs do not copy).
    pub skipped: u64,
    /// Changes this instance refused (another manifold, an unreadable
    /// change); each is counted and the last is in `last_error`.
    pub refused: u64,
    /// Conflicts, by how they were settled.
    pub conflicts: ConflictCounts,
    /// The source stream's sequence number of the last change applied and
    /// acknowledged (0 before the first).
    pub position: u64,
    /// Changes in the source's stream not yet applied, as of the last batch.
    pub pending: u64,
    /// Milliseconds from the source's publishing of the last applied change
    /// to its commit here.
    pub lag_ms: u64,
    /// The latest refusal (kept until the next), or a fault (NATS, the
    /// source's stream, this store) until the job reaches the stream again
    /// or a batch goes through.
    pub last_error: Option<String>,
}

/// How far the feed's publishing is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// This instance's name.
    pub instance: String,
    /// Its stream.
    pub stream: String,
    /// Whether the NATS connection is up.
    pub connected: bool,
    /// The last change JetStream acknowledged.
    pub published: u64,
    /// The last change committed here.
    pub last_change: u64,
    /// Changes committed but not yet acknowledged by JetStream.
    pub lag: u64,
    /// The latest publishing failure, until the next success.
    pub last_error: Option<String>,
}
