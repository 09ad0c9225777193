//! The handshake, `ping` and `stats`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `hello`'s arguments: the first request on a connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol versions the client speaks.
    pub versions: Vec<u32>,
    /// The model's contract, as the text of `model_contract_hvs.json`.
    pub contract: String,
    /// The operator's token (required when the server has a tokens file).
    #[serde(default)]
    pub token: Option<String>,
    /// The client's name and version, for logs.
    #[serde(default)]
    pub client: Option<String>,
    /// The client accepts a read-only session on a mirror of a failover
    /// group (`docs/CLUSTER.md`, "Reading from a mirror"). Without it a
    /// mirror refuses the hello with `not_primary`, naming the primary, as
    /// clients that follow the primary expect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mirror_reads: bool,
}

/// `hello`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The version chosen.
    pub version: u32,
    /// The server's name and version.
    pub server: String,
    /// The model this connection acts as.
    pub model: String,
    /// Its home namespace.
    pub namespace: String,
    /// Send something (a `ping` if nothing else) at least this often.
    pub heartbeat_interval_ms: u64,
    /// Silent this long, the model is marked disconnected.
    pub heartbeat_timeout_ms: u64,
    /// The largest frame the server accepts.
    pub max_frame_bytes: u64,
    /// Requests the server reads ahead per connection before it waits.
    pub max_in_flight: u64,
    /// `"mirror"` when the session is served by a mirror of a failover
    /// group: read-only (writes, `receive` and `subscribe` are refused with
    /// `not_primary`), closed with `not_primary` when the server's role
    /// changes. Absent on a primary or a server in no group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// On a mirror, where the group's primary takes writes (`host:port`),
    /// if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The session cannot write. On a mirror: see `role`. When the model
    /// connected while the server's store refused writes after a disk
    /// fault (so its contract or home namespace is not stored): every
    /// write is refused with `write_failed` for the session's life, while
    /// reads, `receive`, `subscribe`, `ack` and `release` are served; a
    /// new hello once the store takes writes again stores the contract.
    /// Absent (false) otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Why the session is read-only (with `read_only`): on a disk fault,
    /// the store's reason for refusing writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_reason: Option<String>,
}

/// `ping`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The server's clock, ms since the Unix epoch.
    pub now_ms: u64,
}

/// `stats`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireStats {
    /// Per namespace: vectors, in_graph, fresh, unreachable.
    pub namespaces: BTreeMap<String, WireNamespaceStats>,
    /// Database file size.
    pub bytes_on_disk: u64,
    /// Last change-feed number.
    pub last_change: u64,
    /// Commits since the server started.
    pub commits: u64,
    /// Requests those commits carried.
    pub commit_requests: u64,
    /// Open connections.
    pub connections: u64,
    /// Known models and whether each is connected.
    pub models: BTreeMap<String, bool>,
    /// The caller's mailbox: waiting.
    pub mailbox_pending: usize,
    /// Received and not acked.
    pub mailbox_in_flight: usize,
}

/// One namespace in [`WireStats`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireNamespaceStats {
    /// Vectors stored.
    pub vectors: usize,
    /// In the HNSW graph.
    pub in_graph: usize,
    /// In the exact fresh buffer.
    pub fresh: usize,
    /// Graph nodes found only by the overflow graph or exact scan.
    pub unreachable: usize,
    /// The graph is being built after the server's start: every search
    /// scans exactly until it is (absent from older servers: `false`).
    #[serde(default)]
    pub building: bool,
}
