//! Bridges between networks, instances and geometries (`docs/BRIDGES.md`):
//! what a bridge is, what it has done, and what a search through one
//! answers.

use serde::{Deserialize, Serialize};

use crate::{Filter, Metadata};

/// How two networks of a shared bridge reach each other's namespaces.
///
/// The same three policies as the actor layer's `IsolationPolicy`, spelled
/// again here because this crate sits below it (a client links no actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BridgeIsolation {
    /// No access across the networks.
    Strict,
    /// Read-only access across them.
    Shared,
    /// Read and write access across them.
    Federated,
}

impl BridgeIsolation {
    /// The name used on the wire and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Shared => "shared",
            Self::Federated => "federated",
        }
    }
}

impl std::str::FromStr for BridgeIsolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [Self::Strict, Self::Shared, Self::Federated]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown isolation {s:?}: one of strict, shared, federated"))
    }
}

/// What a bridge connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BridgeKind {
    /// Several networks of this instance, each with its own namespaces,
    /// under one isolation policy between every pair of them.
    Shared {
        /// The networks (models' `hvs_binding.region`), at least two.
        networks: Vec<String>,
        /// The policy between every pair of them.
        policy: BridgeIsolation,
    },
    /// A search of `namespace` sent to every instance of the cluster that
    /// offers `capability`, the answers merged by the true distance.
    Federated {
        /// The namespace searched on every instance.
        namespace: String,
        /// Instances offering this capability (`serve --capability`) answer.
        capability: String,
        /// How long the asking instance waits for answers (default 2,000).
        #[serde(default = "default_timeout_ms")]
        timeout_ms: u64,
    },
    /// Vectors of namespace `from` carried into namespace `to` (another
    /// geometry of the same intrinsic dimension), and queries in `from`'s
    /// coordinates run in `to`.
    CrossManifold {
        /// The source namespace.
        from: String,
        /// The target namespace.
        to: String,
    },
    /// Namespace `namespace` of instance `source` copied into this
    /// instance in chunks, at most `bytes_per_second` on average, resumable
    /// after either side restarts, checked by digest at the end.
    Slow {
        /// The instance copied from (its `--instance` name).
        source: String,
        /// The namespace copied, on the source.
        namespace: String,
        /// The namespace written here (default: `namespace`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// The average rate of chunk bytes received, 1 to 10,000,000,000.
        bytes_per_second: u64,
        /// Vectors per chunk, 1 to 10,000 (default 256); the source sends
        /// fewer when a chunk would not fit in one NATS message.
        #[serde(default = "default_chunk_vectors")]
        chunk_vectors: u32,
    },
}

fn default_chunk_vectors() -> u32 {
    256
}

fn default_timeout_ms() -> u64 {
    2_000
}

impl BridgeKind {
    /// `shared`, `federated`, `cross_manifold` or `slow`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Shared { .. } => "shared",
            Self::Federated { .. } => "federated",
            Self::CrossManifold { .. } => "cross_manifold",
            Self::Slow { .. } => "slow",
        }
    }
}

/// A bridge: its name on this instance and what it connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeSpec {
    /// Letters, digits, `-` and `_`, at most 64.
    pub name: String,
    /// What it connects.
    pub kind: BridgeKind,
}

/// A bridge and what it has done since it was created (counts of the
/// current process for searches; carried vectors are kept with it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeStatus {
    /// The bridge.
    pub spec: BridgeSpec,
    /// Searches run through it since this process started.
    pub searches: u64,
    /// Federated searches that lacked an instance's answer.
    pub partial: u64,
    /// Cross-manifold: vectors written into the target namespace.
    pub carried: u64,
    /// Cross-manifold: vectors or changes the transform or the target refused.
    pub refused: u64,
    /// Cross-manifold: the last change of this instance's feed followed.
    pub position: u64,
    /// The latest refusal or fault.
    pub last_error: Option<String>,
    /// Slow: how far the copy is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<SlowProgress>,
}

/// Where a slow bridge's copy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowState {
    /// Copying chunks, or waiting for the digests.
    #[default]
    Running,
    /// Every chunk applied and the digests equal.
    Done,
    /// Stopped: the digests differ, or the target refused a chunk
    /// (`last_error` says which).
    Failed,
}

impl SlowState {
    /// `running`, `done` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// A slow bridge's progress, kept with the bridge (so it survives restarts).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SlowProgress {
    /// Running, done or failed.
    pub state: SlowState,
    /// Chunks received and applied (one fetched again after a restart of
    /// this instance counts again).
    pub chunks: u64,
    /// Vectors received in those chunks.
    pub vectors: u64,
    /// Bytes of those chunks as they crossed NATS.
    pub bytes: u64,
    /// Milliseconds spent copying (waits included, time stopped not).
    pub active_ms: u64,
    /// `bytes` over `active_ms`, per second.
    pub bytes_per_second: u64,
    /// The last vector id applied: the copy resumes after it.
    pub cursor: Option<String>,
    /// Every chunk is applied; the digests are compared (or being asked).
    pub copied: bool,
    /// The source namespace's digest at the end, and its vector count.
    pub source_digest: Option<String>,
    /// The target namespace's digest at the end.
    pub target_digest: Option<String>,
    /// Whether they are equal, once both are known.
    pub digest_match: Option<bool>,
}

/// A search through a federated or cross-manifold bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeQuery {
    /// The query point: in the namespace's coordinates (federated), or in
    /// the source namespace's (cross-manifold).
    pub vector: Vec<f64>,
    /// How many hits (default 10).
    #[serde(default = "default_k")]
    pub k: usize,
    /// Only vectors whose metadata matches.
    #[serde(default)]
    pub filter: Option<Filter>,
}

fn default_k() -> usize {
    10
}

/// One hit of a bridge search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeHit {
    /// The vector's id on the instance that holds it.
    pub id: String,
    /// That instance (empty on an instance in no cluster).
    pub instance: String,
    /// The namespace that holds it.
    pub namespace: String,
    /// Distance from the query on the query's manifold.
    pub distance: f64,
    /// Its coordinates, in the query's coordinates.
    pub vector: Vec<f64>,
    /// Its metadata.
    pub metadata: Metadata,
}

/// An instance that answered a federated search with a refusal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRefusal {
    /// The instance.
    pub instance: String,
    /// The error's stable code (`geometry_mismatch`, `bad_request`, …).
    pub code: String,
    /// What it said.
    pub message: String,
}

/// What a bridge search answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BridgeHits {
    /// Nearest first.
    pub hits: Vec<BridgeHit>,
    /// Instances whose hits are included, sorted.
    pub answered: Vec<String>,
    /// Instances with the capability that did not answer in time, sorted:
    /// when not empty, the answer is partial.
    pub missing: Vec<String>,
    /// Instances that answered with a refusal.
    pub refused: Vec<InstanceRefusal>,
}
