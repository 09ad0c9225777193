//! The handles the layers above use: [`Hub`] (the running actor system)
//! and [`ModelRef`] (one connected model). They speak in plain types and
//! futures; no actix type crosses this boundary.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use dashmap::DashMap;
use hvs_contracts::{Contract, TextEncoder};
use hvs_storage::{
    Block, BlockContent, BlockHit, ConsistencyReport, GeometrySpec, MessageRecord, NewVector,
    SearchHit, SearchQuery, SpaceConfig, StorageError, Store, VectorRecord,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::cluster::{Cluster, ClusterConfig};
use crate::directory::{self, Connect, CreateNamespace, Directory, MailboxDefaults, SetIsolation};
use crate::error::{ActorError, Result};
use crate::model::{
    Ack, AckReport, Broadcast, BroadcastReport, DeadLetterInfo, Delivery, Inspect, MailboxStats,
    Outgoing, Post, Receive, Release, Subscribe,
};
use crate::namespace::{
    AccessKind, Caller, Check, Consensus, ConsensusReport, Contribute, Grant, GrantAccess, Info,
    Join, Members, NamespaceInfo, NamespaceOptions, QueryShared, Search, SharedHit, Visibility,
    blocking,
};
use crate::registry::{IsolationPolicy, ModelEntry, Registry};

/// The namespace that holds every model's state vector.
pub const STATES_NAMESPACE: &str = "hvs.states";
/// Dimension of the text encoder's vectors (model states).
const STATE_DIM: usize = 256;
pub(crate) const STATE_SCHEMA: &str = "state_schema";

/// How the actor system runs.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Arbiters (threads) the actors are spread over; default: one per core.
    pub arbiters: usize,
    /// Mailbox settings.
    pub mailboxes: MailboxDefaults,
    /// The isolation policy between networks not given one.
    pub default_isolation: IsolationPolicy,
    /// Lifetime of blocks stored with `persist: false`.
    pub cache_ttl_ms: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            arbiters: std::thread::available_parallelism().map_or(2, |n| n.get()),
            mailboxes: MailboxDefaults::default(),
            default_isolation: IsolationPolicy::Shared,
            cache_ttl_ms: 3_600_000,
        }
    }
}

pub(crate) struct HubInner {
    pub(crate) store: Arc<Store>,
    pub(crate) registry: Arc<Registry>,
    directory: Addr<Directory>,
    system: System,
    /// Taken (stopped and joined) by `shutdown`.
    arbiters: Mutex<Vec<Arbiter>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Each model's state vector.
    pub(crate) states: DashMap<String, Uuid>,
    pub(crate) text: TextEncoder,
    pub(crate) cache_ttl_ms: u64,
    /// Letters a mailbox holds (`MailboxDefaults::capacity`), also per
    /// recipient in the cluster's mail stream.
    mail_capacity: usize,
    /// Set once by [`Hub::join_cluster`].
    cluster: std::sync::OnceLock<Cluster>,
    /// The bridges (`bridge.rs`).
    pub(crate) bridges: crate::bridge::Bridges,
}

impl Drop for HubInner {
    /// The last handle gone: stop the actors' threads.
    fn drop(&mut self) {
        for a in self
            .arbiters
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            a.stop();
        }
        self.system.stop();
    }
}

/// The running actor system: a directory, one actor per model and per
/// namespace, spread over one arbiter per core. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<HubInner>,
}

impl Hub {
    /// Starts the actors on `store`, bringing back every model (disconnected,
    /// with its mailbox), namespace and isolation policy it records.
    pub fn start(store: Arc<Store>, config: HubConfig) -> Result<Hub> {
        let (tx, rx) = std::sync::mpsc::channel();
        let s = store.clone();
        let cache_ttl_ms = config.cache_ttl_ms;
        let mail_capacity = config.mailboxes.capacity;
        let thread = std::thread::Builder::new()
            .name("hvs-actors".into())
            .spawn(move || {
                let sys = System::new();
                let started = sys.block_on(async move { start_actors(s, &config) });
                let failed = started.is_err();
                let _ = tx.send(started);
                if !failed {
                    let _ = sys.run();
                }
            })
            .map_err(|e| ActorError::Storage(StorageError::Io(e.to_string())))?;
        let (registry, directory, system, arbiters) =
            rx.recv().map_err(|_| ActorError::Stopped)??;
        // Letters of messages retention discarded leave their mailboxes.
        // Weak: the store must not keep the actors' registry alive.
        let weak = Arc::downgrade(&registry);
        store.on_discard(Arc::new(move |d: &[hvs_storage::Discarded]| {
            if let Some(r) = weak.upgrade() {
                crate::model::withdraw_discarded(&r, d);
            }
        }));
        let text = TextEncoder::new(STATE_DIM)
            .ok_or_else(|| ActorError::InvalidRequest("text encoder dimension".into()))?;
        match store.create_namespace(SpaceConfig::new(
            STATES_NAMESPACE,
            GeometrySpec::Sphere {
                dim: STATE_DIM - 1,
                curvature: 1.0,
            },
        )) {
            Ok(()) | Err(StorageError::NamespaceExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let bridges = crate::bridge::Bridges::start(
            store.clone(),
            registry.clone(),
            directory.clone(),
            arbiters
                .first()
                .map(Arbiter::handle)
                .ok_or(ActorError::Stopped)?,
        )?;
        let states = DashMap::new();
        for r in store.iter_namespace(STATES_NAMESPACE)? {
            if let Some(m) = r.metadata.get("model").and_then(|m| m.as_str()) {
                states.insert(m.to_string(), r.id);
            }
        }
        Ok(Hub {
            inner: Arc::new(HubInner {
                store,
                registry,
                directory,
                system,
                arbiters: Mutex::new(arbiters),
                thread: Mutex::new(Some(thread)),
                states,
                text,
                cache_ttl_ms,
                mail_capacity,
                cluster: std::sync::OnceLock::new(),
                bridges,
            }),
        })
    }

    /// Joins the other instances on NATS JetStream: publishes this
    /// instance's change feed and runs its sync jobs (`docs/SYNC.md`).
    /// Returns at once even if NATS is unreachable (the feed catches up
    /// when it answers).
    pub async fn join_cluster(&self, config: ClusterConfig) -> Result<Cluster> {
        let joined = || ActorError::InvalidRequest("this instance joined a cluster already".into());
        if self.inner.cluster.get().is_some() {
            return Err(joined());
        }
        let arbiter = self.arbiter()?;
        let store = self.inner.store.clone();
        let directory = self.inner.directory.clone();
        let cluster = Cluster::start(store, config, arbiter, directory).await?;
        self.inner
            .cluster
            .set(cluster.clone())
            .map_err(|_| joined())?;
        crate::cluster::mail::start(&cluster, &self.inner.registry, self.inner.mail_capacity);
        self.inner.bridges.attach(cluster.clone());
        Ok(cluster)
    }

    /// This instance's cluster membership, if it joined one.
    pub fn cluster(&self) -> Result<&Cluster> {
        self.inner.cluster.get().ok_or(ActorError::NoCluster)
    }

    /// An arbiter for long-running work of the actor system.
    fn arbiter(&self) -> Result<ArbiterHandle> {
        let arbiters = self
            .inner
            .arbiters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        arbiters
            .first()
            .map(Arbiter::handle)
            .ok_or(ActorError::Stopped)
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Connects a model with its contract (files it names, such as encoder
    /// weights, are relative to `base_dir`). Its namespace is created on
    /// first connect (private, owned by the model); a model that was
    /// connected before gets its mailbox back. While the store refuses
    /// writes, a model that would have to be stored connects read-only
    /// ([`ModelRef::read_only`]).
    pub async fn connect_model(&self, contract: Contract, base_dir: &Path) -> Result<ModelRef> {
        let entry = self
            .inner
            .directory
            .send(Connect {
                contract,
                base_dir: base_dir.to_path_buf(),
            })
            .await??;
        // In a cluster this instance becomes the model's home: mail for it
        // from other instances comes here (`docs/SEMANTICS.md`).
        if let Some(mail) = self.inner.registry.mail.get() {
            mail.claim(&entry.profile.id, entry.addr.clone()).await;
        }
        Ok(ModelRef {
            hub: self.clone(),
            entry,
        })
    }

    /// A handle of a connected model.
    pub fn model(&self, id: &str) -> Result<ModelRef> {
        let entry = self.inner.registry.model(id)?;
        if !entry.connected.load(Ordering::SeqCst) {
            return Err(ActorError::Disconnected(id.to_string()));
        }
        Ok(ModelRef {
            hub: self.clone(),
            entry,
        })
    }

    /// Every known model and whether it is connected, by id.
    pub fn models(&self) -> Vec<(String, bool)> {
        let mut v: Vec<(String, bool)> = self
            .inner
            .registry
            .models
            .iter()
            .map(|e| (e.key().clone(), e.connected.load(Ordering::SeqCst)))
            .collect();
        v.sort();
        v
    }

    /// Creates a namespace owned by `owner` (a model id, or an operator's
    /// name); its network is the owner's region, or `"local"`. Its
    /// messages are kept as the store's default retention says.
    pub async fn create_namespace(
        &self,
        name: &str,
        owner: &str,
        visibility: Visibility,
        geometry: GeometrySpec,
    ) -> Result<NamespaceInfo> {
        let options = NamespaceOptions::default();
        self.create_namespace_with(name, owner, visibility, geometry, options)
            .await
    }

    /// [`Hub::create_namespace`] with the namespace's own retention,
    /// datatype and graph settings (limits of 0 are refused with
    /// `invalid_retention`, a datatype its geometry cannot use with
    /// `invalid_datatype`, graph settings out of range with
    /// `invalid_graph`).
    pub async fn create_namespace_with(
        &self,
        name: &str,
        owner: &str,
        visibility: Visibility,
        geometry: GeometrySpec,
        options: NamespaceOptions,
    ) -> Result<NamespaceInfo> {
        let network = self
            .inner
            .registry
            .model(owner)
            .map_or_else(|_| "local".to_string(), |e| e.profile.network.clone());
        let info = NamespaceInfo {
            name: name.to_string(),
            owner: owner.to_string(),
            visibility,
            network,
            geometry,
            grants: BTreeMap::new(),
            members: BTreeMap::new(),
            retention: options.retention,
            datatype: options.datatype,
            graph: options.graph,
        };
        self.inner.directory.send(CreateNamespace(info)).await?
    }

    /// A namespace's access list.
    pub async fn namespace_info(&self, name: &str) -> Result<NamespaceInfo> {
        Ok(self.inner.registry.namespace(name)?.send(Info).await?)
    }

    /// Grants `grantee` access to a namespace (as the operator).
    pub async fn grant_access(&self, namespace: &str, grantee: &str, grant: Grant) -> Result<()> {
        self.ns(namespace)?
            .send(GrantAccess {
                by: Caller::Operator,
                grantee: grantee.to_string(),
                grant,
            })
            .await?
    }

    /// Whether `model` may read or write `namespace`: `Ok(())`, or the
    /// refusal saying which rule.
    pub async fn check_access(&self, model: &str, namespace: &str, kind: AccessKind) -> Result<()> {
        let p = self.inner.registry.model(model)?.profile.clone();
        self.ns(namespace)?
            .send(Check(Caller::Model(p), kind))
            .await?
    }

    /// Sets the isolation policy between two networks (models' regions).
    pub async fn set_isolation(&self, a: &str, b: &str, policy: IsolationPolicy) -> Result<()> {
        self.inner
            .directory
            .send(SetIsolation(a.to_string(), b.to_string(), policy))
            .await?
    }

    /// The consensus of a shared space, as the operator.
    pub async fn consensus(
        &self,
        space: &str,
        weights: Option<HashMap<String, f64>>,
    ) -> Result<ConsensusReport> {
        self.ns(space)?
            .send(Consensus {
                caller: Caller::Operator,
                weights,
            })
            .await?
    }

    /// Compares storage with the indexes (vectors and messages).
    pub async fn verify_consistency(&self) -> Result<ConsistencyReport> {
        let store = self.inner.store.clone();
        blocking(move || Ok(store.verify_consistency()?)).await
    }

    /// Stops every actor and waits until their threads are gone (so no
    /// actor holds the store any more). Idempotent; the store stays open
    /// while this `Hub` or a [`ModelRef`] is held. Not to be called from
    /// inside an actor.
    pub fn shutdown(&self) {
        let arbiters = std::mem::take(
            &mut *self
                .inner
                .arbiters
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for a in &arbiters {
            a.stop();
        }
        for a in arbiters {
            let _ = a.join();
        }
        self.inner.system.stop();
        let t = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }

    /// Deletes a namespace owned by `by` (see [`ModelRef::delete_namespace`]).
    pub(crate) async fn delete_namespace(&self, name: &str, by: &str) -> Result<bool> {
        self.inner
            .directory
            .send(directory::DeleteNamespace {
                name: name.to_string(),
                by: by.to_string(),
            })
            .await?
    }

    pub(crate) fn ns(&self, name: &str) -> Result<Addr<crate::namespace::NamespaceActor>> {
        self.inner.registry.namespace(name)
    }
}

type Started = (Arc<Registry>, Addr<Directory>, System, Vec<Arbiter>);

/// Runs inside the actor system's thread.
fn start_actors(store: Arc<Store>, config: &HubConfig) -> Result<Started> {
    let arbiters: Vec<Arbiter> = (0..config.arbiters.max(1))
        .map(|_| Arbiter::new())
        .collect();
    let registry = Arc::new_cyclic(|registry| {
        let starter = crate::namespace::NamespaceStarter {
            store: store.clone(),
            registry: registry.clone(),
            arbiters: arbiters.iter().map(|a| a.handle()).collect(),
            next: Default::default(),
        };
        Registry::new(config.default_isolation, starter)
    });
    let recovered = hvs_mailbox::recover_letters(&store)?;
    let mut dir = Directory {
        store,
        registry: registry.clone(),
        arbiters: arbiters.iter().map(|a| a.handle()).collect(),
        next: 0,
        mailboxes: config.mailboxes,
        recovered: Arc::new(Mutex::new(recovered)),
        connects: Default::default(),
    };
    if let Err(e) = directory::recover(&mut dir) {
        for a in &arbiters {
            a.stop();
        }
        return Err(e);
    }
    let addr = dir.start();
    Ok((registry, addr, System::current(), arbiters))
}

/// Who receives a broadcast.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BroadcastScope {
    /// The members of this namespace (the sender must be able to read it);
    /// `None`: every connected model.
    pub namespace: Option<String>,
    /// Models left out.
    pub exclude: Vec<String>,
}

/// A stream of deliveries pushed to a connected model.
pub struct DeliveryStream {
    rx: mpsc::Receiver<Delivery>,
}

impl DeliveryStream {
    /// The next delivery; `None` once the model is disconnected or another
    /// stream replaced this one.
    pub async fn next(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// A delivery that has already arrived, without waiting.
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.rx.try_recv().ok()
    }
}

/// A model's state as last updated.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelState {
    /// The model.
    pub model: String,
    /// The state.
    pub state: serde_json::Value,
    /// 1 for the first update, then one more each time.
    pub version: u64,
}

/// A connected model: everything it does goes through here. Cheap to clone.
#[derive(Clone)]
pub struct ModelRef {
    pub(crate) hub: Hub,
    pub(crate) entry: Arc<ModelEntry>,
}

impl ModelRef {
    /// The model's id.
    pub fn id(&self) -> &str {
        &self.entry.profile.id
    }

    /// The model's own namespace, where its messages are stored.
    pub fn namespace(&self) -> &str {
        &self.entry.profile.namespace
    }

    /// The contract it connected with.
    pub fn contract(&self) -> &Contract {
        &self.entry.profile.contract
    }

    /// Why this model is connected read-only, if it is: it connected while
    /// the store refused writes after a disk fault (the store's reason), so
    /// its contract or home namespace is not stored until it connects
    /// again. The server refuses such a session's writes itself
    /// (`docs/PROTOCOL.md`, "Read-only sessions during a disk fault"); this
    /// handle does not: its writes are refused by the store while the
    /// fault lasts, and go through once the store takes writes again.
    pub fn read_only(&self) -> Option<&str> {
        self.entry.read_only.as_deref()
    }

    pub(crate) fn live(&self) -> Result<&Addr<crate::model::ModelActor>> {
        let current = self.hub.inner.registry.model(self.id())?;
        if !Arc::ptr_eq(&current, &self.entry) || !current.connected.load(Ordering::SeqCst) {
            return Err(ActorError::Disconnected(self.id().to_string()));
        }
        Ok(&self.entry.addr)
    }

    pub(crate) fn me(&self) -> Caller {
        Caller::Model(self.entry.profile.clone())
    }

    /// Sends a message; answered once it is stored (durably, at the store's
    /// level) and queued for `to`.
    ///
    /// The message is queued to the model's actor when this is called, not
    /// when the future is first polled, so sends made one after another
    /// keep their order even when their futures are awaited elsewhere
    /// (a server answering pipelined requests does that).
    pub fn send_message(
        &self,
        to: &str,
        message: Outgoing,
    ) -> impl std::future::Future<Output = Result<Uuid>> + Send + 'static {
        let sent = self.send_messages(vec![(to.to_string(), message)]);
        async move { sent.await?.pop().ok_or(ActorError::Stopped) }
    }

    /// Sends many messages in one go, all or none, in order (queued at the
    /// call, as [`send_message`](Self::send_message)).
    pub fn send_messages(
        &self,
        messages: Vec<(String, Outgoing)>,
    ) -> impl std::future::Future<Output = Result<Vec<Uuid>>> + Send + 'static {
        let queued = self.live().map(|addr| addr.send(Post(messages)));
        async move { queued?.await? }
    }

    /// Sends many messages, each accepted or refused on its own; the
    /// accepted ones are stored in one write and answered together (queued
    /// at the call, as [`send_message`](Self::send_message)).
    pub fn send_each(
        &self,
        messages: Vec<(String, Outgoing)>,
    ) -> impl std::future::Future<Output = Result<crate::model::EachOutcome>> + Send + 'static {
        let queued = self
            .live()
            .map(|addr| addr.send(crate::model::PostEach(messages)));
        async move { queued?.await? }
    }

    /// Sends one message to every connected model, or to a namespace's
    /// members, except the sender and `scope.exclude`.
    pub async fn broadcast(
        &self,
        message: Outgoing,
        scope: BroadcastScope,
    ) -> Result<BroadcastReport> {
        let addr = self.live()?;
        let mut recipients: Vec<String> = match &scope.namespace {
            Some(ns) => {
                let ns = self.hub.ns(ns)?;
                ns.send(Check(self.me(), AccessKind::Read)).await??;
                ns.send(Members).await?
            }
            None => self
                .hub
                .models()
                .into_iter()
                .filter(|(_, connected)| *connected)
                .map(|(id, _)| id)
                .collect(),
        };
        recipients.retain(|r| r != self.id() && !scope.exclude.contains(r));
        addr.send(Broadcast {
            message,
            recipients,
        })
        .await?
    }

    /// Up to `max` waiting messages; each must be acked before its deadline.
    pub async fn receive_messages(&self, max: usize) -> Result<Vec<Delivery>> {
        Ok(self.live()?.send(Receive(max)).await?)
    }

    /// A stream that pushes each message as it arrives (replacing any
    /// earlier stream of this model).
    pub async fn deliveries(&self) -> Result<DeliveryStream> {
        let rx = self.live()?.send(Subscribe).await?;
        Ok(DeliveryStream { rx })
    }

    /// Acks received messages: they are gone from the mailbox for good.
    /// Answered once the acks are stored.
    pub async fn ack(&self, ids: &[Uuid]) -> Result<AckReport> {
        self.live()?.send(Ack(ids.to_vec())).await?
    }

    /// Gives received messages back for immediate redelivery.
    pub async fn release(&self, ids: &[Uuid]) -> Result<usize> {
        Ok(self.live()?.send(Release(ids.to_vec())).await?)
    }

    /// The mailbox's counts and its most recent dead letters.
    pub async fn mailbox(&self) -> Result<(MailboxStats, Vec<DeadLetterInfo>)> {
        self.live()?;
        Ok(self.entry.addr.send(Inspect).await?)
    }

    /// Dead letters of this mailbox since the process started (the latest
    /// 1,024), oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetterInfo>> {
        Ok(self.mailbox().await?.1)
    }

    /// A stored message this model sent or received, or whose namespace it
    /// may read.
    pub async fn get_message(&self, id: Uuid) -> Result<Option<Arc<MessageRecord>>> {
        self.live()?;
        let store = self.hub.inner.store.clone();
        let Some(m) = blocking(move || Ok(store.get_message(id)?)).await? else {
            return Ok(None);
        };
        if m.from != self.id() && !m.to.iter().any(|t| t == self.id()) {
            self.hub
                .ns(&m.namespace)?
                .send(Check(self.me(), AccessKind::Read))
                .await??;
        }
        Ok(Some(m))
    }

    /// Disconnects: the handle stops working, pushed deliveries stop, the
    /// mailbox keeps collecting until the model connects again.
    pub async fn disconnect(&self) -> Result<()> {
        self.live()?;
        self.hub
            .inner
            .directory
            .send(directory::Disconnect(self.id().to_string()))
            .await?;
        Ok(())
    }

    /// Creates a namespace owned by this model.
    pub async fn create_namespace(
        &self,
        name: &str,
        visibility: Visibility,
        geometry: GeometrySpec,
    ) -> Result<NamespaceInfo> {
        let options = NamespaceOptions::default();
        self.create_namespace_with(name, visibility, geometry, options)
            .await
    }

    /// [`ModelRef::create_namespace`] with the namespace's own retention
    /// and datatype ([`NamespaceOptions`]).
    pub async fn create_namespace_with(
        &self,
        name: &str,
        visibility: Visibility,
        geometry: GeometrySpec,
        options: NamespaceOptions,
    ) -> Result<NamespaceInfo> {
        self.live()?;
        if !self.contract().permissions.can_write(name) {
            return Err(ActorError::PermissionDenied {
                model: self.id().to_string(),
                action: "create",
                namespace: name.to_string(),
                reason: "the contract's write_namespaces do not match it".into(),
            });
        }
        if self.hub.inner.registry.is_home_of_other(name, self.id()) {
            return Err(ActorError::PermissionDenied {
                model: self.id().to_string(),
                action: "create",
                namespace: name.to_string(),
                reason: "it is another model's home namespace".into(),
            });
        }
        self.hub
            .create_namespace_with(name, self.id(), visibility, geometry, options)
            .await
    }

    /// A namespace's access list (members included), if this model may
    /// read the namespace.
    pub async fn namespace_info(&self, namespace: &str) -> Result<NamespaceInfo> {
        self.live()?;
        let ns = self.hub.ns(namespace)?;
        ns.send(Check(self.me(), AccessKind::Read)).await??;
        Ok(ns.send(Info).await?)
    }

    /// Grants another model access to a namespace this model owns.
    pub async fn grant_access(&self, namespace: &str, grantee: &str, grant: Grant) -> Result<()> {
        self.live()?;
        self.hub
            .ns(namespace)?
            .send(GrantAccess {
                by: self.me(),
                grantee: grantee.to_string(),
                grant,
            })
            .await?
    }

    /// Whether this model may read or write `namespace`.
    pub async fn check_access(&self, namespace: &str, kind: AccessKind) -> Result<()> {
        self.live()?;
        self.hub.ns(namespace)?.send(Check(self.me(), kind)).await?
    }

    /// Stores a vector in a namespace this model may write.
    pub async fn store_vector(&self, vector: NewVector) -> Result<VectorRecord> {
        let ns = vector.namespace.clone();
        let mut stored = self.batch_store_vectors(&ns, vec![vector]).await?;
        stored.pop().ok_or(ActorError::Stopped)
    }

    /// Searches a namespace this model may read.
    pub async fn semantic_search(&self, query: SearchQuery) -> Result<Vec<SearchHit>> {
        self.live()?;
        let ns = self.hub.ns(&query.namespace)?;
        ns.send(Search(self.me(), query)).await?
    }

    /// Joins a shared space, declaring capabilities.
    pub async fn join(&self, space: &str, capabilities: &[&str]) -> Result<()> {
        self.live()?;
        self.hub
            .ns(space)?
            .send(Join {
                caller: self.entry.profile.clone(),
                capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
            })
            .await?
    }

    /// Contributes knowledge: a point of the space and a value under a key
    /// (the same key again replaces this model's earlier contribution).
    pub async fn contribute(
        &self,
        space: &str,
        key: &str,
        point: Vec<f64>,
        value: serde_json::Value,
    ) -> Result<Uuid> {
        self.live()?;
        self.hub
            .ns(space)?
            .send(Contribute {
                caller: self.entry.profile.clone(),
                key: key.to_string(),
                point,
                value,
            })
            .await?
    }

    /// The `k` contributions nearest to `query`.
    pub async fn query_shared(
        &self,
        space: &str,
        query: Vec<f64>,
        k: usize,
    ) -> Result<Vec<SharedHit>> {
        self.live()?;
        self.hub
            .ns(space)?
            .send(QueryShared {
                caller: self.me(),
                query,
                k,
            })
            .await?
    }

    /// The weighted Fréchet mean of the space's contributions (weights by
    /// contributor; 1 for those not named).
    pub async fn consensus(
        &self,
        space: &str,
        weights: Option<HashMap<String, f64>>,
    ) -> Result<ConsensusReport> {
        self.live()?;
        self.hub
            .ns(space)?
            .send(Consensus {
                caller: self.me(),
                weights,
            })
            .await?
    }

    /// Stores content as a block (the HVS–NVM integration): kept as shared
    /// knowledge when `persist`, else as a cache block that expires; its
    /// text is indexed for [`query`](Self::query).
    pub async fn store(&self, name: &str, content: BlockContent, persist: bool) -> Result<Block> {
        let settings = crate::BlockSettings {
            persist,
            ..crate::BlockSettings::default()
        };
        self.store_block(name, content, settings).await
    }

    /// Blocks whose text is nearest in meaning to `text`, with scores.
    pub async fn query(&self, text: &str, k: usize) -> Result<Vec<BlockHit>> {
        let store = self.hub.inner.store.clone();
        let (actor, text) = (self.id().to_string(), text.to_string());
        self.as_model(Some(crate::vectors::Cost::Query), move || {
            Ok(store.semantic_query(&actor, &text, k, None)?)
        })
        .await
    }
}
