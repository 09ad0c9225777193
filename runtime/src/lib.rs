//! `hvs-runtime`: HVS in one process — many models that talk through HVS.
//!
//! [`Runtime::open`] opens the store and starts the actors; models connect
//! with their contracts and get a [`ModelHandle`]. The runtime's own methods
//! take the acting model's id and follow the specification's vocabulary
//! (`send_message(from, to, payload, vector?)`, `receive_messages(model,
//! max)`, `broadcast`, `join`, `contribute`, `query_shared`, `consensus`, …);
//! a [`ModelHandle`] does the same for one model without the id.
//!
//! ```
//! use hvs_runtime::{Outgoing, Runtime, RuntimeConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), hvs_runtime::Error> {
//! let rt = Runtime::open(RuntimeConfig::memory()).await?;
//! let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/contracts");
//! let planner = rt.connect_model_file(format!("{dir}/rust_agent.json")).await?;
//! let chat = rt.connect_model_file(format!("{dir}/lorentzian_planner.json")).await?;
//!
//! let id = rt.send_message(planner.id(), chat.id(), "replan", None).await?;
//! let got = rt.receive_messages(chat.id(), 10).await?;
//! assert_eq!((got[0].message.id, &got[0].message.payload[..]), (id, &b"replan"[..]));
//! rt.ack(chat.id(), &[id]).await?;
//! rt.close().await?;
//! # Ok(()) }
//! ```
//!
//! Over the network: [`Server`] serves a runtime on TCP with the wire
//! protocol of [`protocol`] (`docs/PROTOCOL.md`), and [`Client`] is the Rust
//! client of it. The delivery guarantees are in `docs/SEMANTICS.md`.

mod admin;
pub mod auth;
mod bridge;
mod cluster;
mod cmd;
mod metrics;
pub mod server;

pub use hvs_wire::{Client, ClientConfig, ClientError, client, protocol};
pub use server::{Bound, Server, ServerConfig, ServerError};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hvs_storage::Store;
use uuid::Uuid;

pub use hvs_actors::{
    AccessKind, AckReport, ActorError as Error, BroadcastReport, BroadcastScope, ClusterConfig,
    ConsensusReport, DeadLetterInfo, Delivery, DeliveryStream, Grant, HubConfig, IsolationPolicy,
    MailboxDefaults, MailboxStats, ModelRef as ModelHandle, ModelState, NamespaceInfo,
    NamespaceOptions, Outgoing, OverflowPolicy, Replication, Role, SharedHit, VectorInput,
    Visibility, stream_name,
};
pub use hvs_contracts::Contract;
pub use hvs_storage::{
    Block, BlockContent, BlockHit, ConsistencyReport, Durability, Filter, GeometrySpec,
    MessageRecord, NewVector, SearchHit, SearchQuery, StoreConfig,
};
pub use hvs_types::{
    BridgeHit, BridgeHits, BridgeIsolation, BridgeKind, BridgeQuery, BridgeSpec, BridgeStatus,
    ConflictCounts, ConflictStrategy, FeedStatus, SyncMode, SyncSpec, SyncState, SyncStatus,
};

use hvs_actors::Hub;

/// Results of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the data lives and how the actors run.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The store: memory, or a file at a durability level.
    pub store: StoreConfig,
    /// The actors: arbiters, mailbox settings, isolation default.
    pub hub: HubConfig,
    /// Other instances on NATS JetStream (`docs/SYNC.md`); `None`: this
    /// instance stands alone.
    pub cluster: Option<ClusterConfig>,
}

impl RuntimeConfig {
    /// Everything in memory (gone with the process).
    pub fn memory() -> Self {
        Self {
            store: StoreConfig::memory(),
            hub: HubConfig::default(),
            cluster: None,
        }
    }

    /// A database file at `path` with the given durability.
    pub fn file(path: impl Into<PathBuf>, durability: Durability) -> Self {
        Self {
            store: StoreConfig::file(path, durability),
            hub: HubConfig::default(),
            cluster: None,
        }
    }
}

/// HVS running in this process.
pub struct Runtime {
    hub: Hub,
}

impl Runtime {
    /// Opens the store (recovering what it holds: models, mailboxes,
    /// namespaces) and starts the actors.
    pub async fn open(config: RuntimeConfig) -> Result<Runtime> {
        let RuntimeConfig {
            mut store,
            hub,
            cluster,
        } = config;
        // The hub takes them at once to refill the mailboxes.
        store.keep_unsettled = true;
        let hub = tokio::task::spawn_blocking(move || {
            let store = Arc::new(Store::open(store)?);
            Hub::start(store, hub)
        })
        .await
        .map_err(|_| Error::Stopped)??;
        let runtime = Runtime { hub };
        if let Some(c) = cluster {
            runtime.join_cluster(c).await?;
        }
        Ok(runtime)
    }

    /// The store underneath (for stats, search, blocks).
    pub fn storage(&self) -> &Arc<Store> {
        self.hub.store()
    }

    /// Connects a model; files its contract names are relative to the
    /// current directory.
    pub async fn connect_model(&self, contract: Contract) -> Result<ModelHandle> {
        self.hub.connect_model(contract, Path::new(".")).await
    }

    /// Connects a model; files its contract names are relative to `dir`.
    pub async fn connect_model_in(&self, contract: Contract, dir: &Path) -> Result<ModelHandle> {
        self.hub.connect_model(contract, dir).await
    }

    /// Connects a model with the contract in a file; files the contract
    /// names are relative to the contract's folder.
    pub async fn connect_model_file(&self, path: impl AsRef<Path>) -> Result<ModelHandle> {
        let path = path.as_ref();
        let contract = Contract::load(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        self.hub.connect_model(contract, dir).await
    }

    /// The handle of a connected model.
    pub fn model(&self, id: &str) -> Result<ModelHandle> {
        self.hub.model(id)
    }

    /// Every known model and whether it is connected.
    pub fn models(&self) -> Vec<(String, bool)> {
        self.hub.models()
    }

    /// Sends `payload` from one model to another. Without a vector, the
    /// text encoder makes one from the payload.
    pub async fn send_message(
        &self,
        from: &str,
        to: &str,
        payload: impl Into<Vec<u8>>,
        vector: Option<VectorInput>,
    ) -> Result<Uuid> {
        let message = Outgoing {
            payload: payload.into(),
            vector: vector.unwrap_or_default(),
            ..Outgoing::default()
        };
        self.model(from)?.send_message(to, message).await
    }

    /// Up to `max` waiting messages of `model`.
    pub async fn receive_messages(&self, model: &str, max: usize) -> Result<Vec<Delivery>> {
        self.model(model)?.receive_messages(max).await
    }

    /// Acks messages `model` received.
    pub async fn ack(&self, model: &str, ids: &[Uuid]) -> Result<AckReport> {
        self.model(model)?.ack(ids).await
    }

    /// Sends one message to every connected model (or a namespace's
    /// members), except the sender and those excluded.
    pub async fn broadcast(
        &self,
        from: &str,
        payload: impl Into<Vec<u8>>,
        scope: BroadcastScope,
    ) -> Result<BroadcastReport> {
        let message = Outgoing {
            payload: payload.into(),
            ..Outgoing::default()
        };
        self.model(from)?.broadcast(message, scope).await
    }

    /// Disconnects a model; its mailbox keeps collecting.
    pub async fn disconnect(&self, model: &str) -> Result<()> {
        self.model(model)?.disconnect().await
    }

    /// Creates a namespace owned by `owner`.
    pub async fn create_namespace(
        &self,
        name: &str,
        owner: &str,
        visibility: Visibility,
        geometry: GeometrySpec,
    ) -> Result<NamespaceInfo> {
        self.hub
            .create_namespace(name, owner, visibility, geometry)
            .await
    }

    /// A namespace's access list: owner, visibility, network, grants,
    /// members.
    pub async fn namespace_info(&self, name: &str) -> Result<NamespaceInfo> {
        self.hub.namespace_info(name).await
    }

    /// Grants a model access to a namespace (as the operator).
    pub async fn grant_access(&self, namespace: &str, model: &str, grant: Grant) -> Result<()> {
        self.hub.grant_access(namespace, model, grant).await
    }

    /// Whether `model` may read or write `namespace`; the refusal says why.
    pub async fn check_access(&self, model: &str, namespace: &str, kind: AccessKind) -> Result<()> {
        self.hub.check_access(model, namespace, kind).await
    }

    /// Sets the isolation policy between two networks (models' regions).
    pub async fn set_isolation(&self, a: &str, b: &str, policy: IsolationPolicy) -> Result<()> {
        self.hub.set_isolation(a, b, policy).await
    }

    /// `model` joins a shared space.
    pub async fn join(&self, model: &str, space: &str, capabilities: &[&str]) -> Result<()> {
        self.model(model)?.join(space, capabilities).await
    }

    /// `model` contributes a point and a value under `key` to a space.
    pub async fn contribute(
        &self,
        model: &str,
        space: &str,
        key: &str,
        vector: Vec<f64>,
        value: serde_json::Value,
    ) -> Result<Uuid> {
        self.model(model)?
            .contribute(space, key, vector, value)
            .await
    }

    /// The `k` contributions of a space nearest to `query`, as `model` sees
    /// them.
    pub async fn query_shared(
        &self,
        model: &str,
        space: &str,
        query: Vec<f64>,
        k: usize,
    ) -> Result<Vec<SharedHit>> {
        self.model(model)?.query_shared(space, query, k).await
    }

    /// The weighted Fréchet mean of a space's contributions.
    pub async fn consensus(
        &self,
        space: &str,
        weights: Option<HashMap<String, f64>>,
    ) -> Result<ConsensusReport> {
        self.hub.consensus(space, weights).await
    }

    /// Registers `model`'s state schema.
    pub async fn register_state(&self, model: &str, schema: serde_json::Value) -> Result<()> {
        self.model(model)?.register_state(schema).await
    }

    /// Replaces `model`'s state; returns its version.
    pub async fn update_state(&self, model: &str, state: serde_json::Value) -> Result<u64> {
        self.model(model)?.update_state(state).await
    }

    /// `model`'s current state, if any (read by `reader`).
    pub async fn get_state(&self, reader: &str, model: &str) -> Result<Option<ModelState>> {
        self.model(reader)?.get_state(model).await
    }

    /// The `k` models whose states are nearest to `state`.
    pub async fn find_similar_states(
        &self,
        reader: &str,
        state: &serde_json::Value,
        k: usize,
    ) -> Result<Vec<(ModelState, f64)>> {
        self.model(reader)?.find_similar_states(state, k).await
    }

    /// Stores content as a block owned by `model` (kept when `persist`,
    /// else a cache block that expires) and indexes its text.
    pub async fn store(
        &self,
        model: &str,
        name: &str,
        content: BlockContent,
        persist: bool,
    ) -> Result<Block> {
        self.model(model)?.store(name, content, persist).await
    }

    /// Blocks nearest in meaning to `text`, as `model` may read them.
    pub async fn query(&self, model: &str, text: &str, k: usize) -> Result<Vec<BlockHit>> {
        self.model(model)?.query(text, k).await
    }

    /// Compares storage with the indexes (vectors, messages, states).
    pub async fn verify_consistency(&self) -> Result<ConsistencyReport> {
        self.hub.verify_consistency().await
    }

    /// Stops the actors, saves the index dumps and closes the database —
    /// at once if no [`ModelHandle`] is still held, else when the last one
    /// is dropped. Another `Runtime` may open the same file after that.
    pub async fn close(self) -> Result<()> {
        let hub = self.hub;
        tokio::task::spawn_blocking(move || {
            hub.shutdown();
            // Saved here so that an error is heard; closing saves again
            // only what changed since.
            hub.store().save_index()?;
            drop(hub);
            Ok(())
        })
        .await
        .map_err(|_| Error::Stopped)?
    }
}
