//! Bridges (`docs/BRIDGES.md`): one [`BridgeActor`] per bridge, kept in
//! this instance's catalog (a local kind, never in the change feed) and
//! started again with the instance.
//!
//! - *shared*: an isolation policy between every pair of a set of networks
//!   of this instance, set when the bridge is created and put back as it
//!   was when it is deleted;
//! - *federated* (`federated.rs`): a search sent to every instance of the
//!   cluster that offers a capability, over NATS request/reply, merged by
//!   the true distance;
//! - *cross-manifold* (`cross.rs`): a namespace's vectors carried into a
//!   namespace of another geometry, and queries carried across;
//! - *slow* (`slow.rs`): a namespace of another instance copied here in
//!   chunks under a rate limit, resumable, checked by digest.

mod cross;
mod federated;
mod slow;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use hvs_geometry::Manifold;
use hvs_storage::Store;
use hvs_types::{
    BridgeHits, BridgeIsolation, BridgeKind, BridgeQuery, BridgeSpec, BridgeStatus, SlowProgress,
    SlowState,
};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::directory::{Directory, SetIsolation};
use crate::error::{ActorError, Result};
use crate::hub::Hub;
use crate::namespace::{AccessKind, blocking};
use crate::registry::{IsolationPolicy, Registry};

/// Starts this instance's answering side of bridges: its entry among the
/// instances and federated searches (`federated.rs`), and the chunks and
/// digests slow bridges elsewhere ask of it (`slow.rs`).
pub(crate) fn start_federation(cluster: &Cluster) {
    federated::start_federation(cluster);
    slow::start_serving(cluster);
}

/// Catalog kind of bridges' records: local (`_`), never in the feed.
const BRIDGES: &str = "_bridge";

/// How often a cross-manifold bridge reads the change feed.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// A cross-manifold bridge's position is written at most this often.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// How long a slow bridge waits after a failed step (the source
/// unreachable, no cluster yet) before trying again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What is kept of a bridge.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BridgeRecord {
    spec: BridgeSpec,
    /// Shared: each pair's policy before the bridge, put back on delete.
    #[serde(default)]
    previous: Vec<(String, String, IsolationPolicy)>,
    /// Cross-manifold: the first copy of the source namespace is done.
    #[serde(default)]
    copied: bool,
    /// Cross-manifold: the last change of the feed followed.
    #[serde(default)]
    position: u64,
    #[serde(default)]
    carried: u64,
    #[serde(default)]
    refused: u64,
    /// Slow: the copy's progress (its cursor included).
    #[serde(default)]
    slow: Option<SlowProgress>,
    /// Slow: why the copy failed, if it did.
    #[serde(default)]
    failure: Option<String>,
}

/// Writes a bridge's record.
fn put_record(store: &Store, record: &BridgeRecord) -> Result<()> {
    let bytes = serde_json::to_vec(record)
        .map_err(|e| ActorError::InvalidRequest(format!("bridge record: {e}")))?;
    Ok(store.catalog_put(BRIDGES, &record.spec.name, bytes)?)
}

fn policy_of(p: BridgeIsolation) -> IsolationPolicy {
    match p {
        BridgeIsolation::Strict => IsolationPolicy::Strict,
        BridgeIsolation::Shared => IsolationPolicy::Shared,
        BridgeIsolation::Federated => IsolationPolicy::Federated,
    }
}

/// Every pair of distinct networks, each once.
fn pairs(networks: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, a) in networks.iter().enumerate() {
        for b in &networks[i + 1..] {
            out.push((a.clone(), b.clone()));
        }
    }
    out
}

/// The bridges of this instance.
pub(crate) struct Bridges {
    store: Arc<Store>,
    registry: Arc<Registry>,
    directory: Addr<Directory>,
    arbiter: ArbiterHandle,
    running: Mutex<BTreeMap<String, Running>>,
    /// Held while a bridge is created or deleted, so two at once cannot
    /// both take one name or one pair of networks.
    managing: tokio::sync::Mutex<()>,
    /// This instance's cluster, once it joined one (slow bridges wait for it).
    cluster: Arc<OnceLock<Cluster>>,
}

/// A running bridge: its actor, and the gate its feed-following steps run
/// under (taken on delete, so no step writes after the record is gone).
#[derive(Clone)]
struct Running {
    addr: Addr<BridgeActor>,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Bridges {
    /// Starts one actor per bridge the catalog records.
    pub(crate) fn start(
        store: Arc<Store>,
        registry: Arc<Registry>,
        directory: Addr<Directory>,
        arbiter: ArbiterHandle,
    ) -> Result<Bridges> {
        let bridges = Bridges {
            store,
            registry,
            directory,
            arbiter,
            running: Mutex::new(BTreeMap::new()),
            managing: tokio::sync::Mutex::new(()),
            cluster: Arc::new(OnceLock::new()),
        };
        for (name, bytes) in bridges.store.catalog_list(BRIDGES)? {
            match serde_json::from_slice::<BridgeRecord>(&bytes) {
                Ok(record) => bridges.launch(record),
                Err(e) => tracing::error!("bridge {name}: its record cannot be read: {e}"),
            }
        }
        Ok(bridges)
    }

    /// Hands the bridges this instance's cluster, once it joined one.
    pub(crate) fn attach(&self, cluster: Cluster) {
        // Joining twice is refused before this is reached.
        let _ = self.cluster.set(cluster);
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn launch(&self, record: BridgeRecord) {
        let name = record.spec.name.clone();
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let rate = match &record.spec.kind {
            BridgeKind::Slow {
                bytes_per_second, ..
            } => *bytes_per_second,
            _ => 1,
        };
        let actor = BridgeActor {
            record,
            store: self.store.clone(),
            gate: gate.clone(),
            cluster: self.cluster.clone(),
            searches: 0,
            partial: 0,
            last_error: None,
            busy: false,
            saved: Instant::now(),
            bucket: slow::TokenBucket::new(rate, Instant::now()),
            mark: Instant::now(),
        };
        let addr = BridgeActor::start_in_arbiter(&self.arbiter, move |_| actor);
        self.running().insert(name, Running { addr, gate });
    }

    fn get(&self, name: &str) -> Result<Running> {
        self.running()
            .get(name)
            .cloned()
            .ok_or_else(|| ActorError::UnknownBridge(name.to_string()))
    }

    async fn save(&self, record: &BridgeRecord) -> Result<()> {
        let (store, record) = (self.store.clone(), record.clone());
        blocking(move || put_record(&store, &record)).await
    }

    async fn set_policies(&self, pairs: &[(String, String, IsolationPolicy)]) -> Result<()> {
        for (a, b, p) in pairs {
            self.directory
                .send(SetIsolation(a.clone(), b.clone(), *p))
                .await??;
        }
        Ok(())
    }

    /// Checks a new bridge and works out what its record starts with.
    fn prepare(&self, spec: &BridgeSpec, cluster: Option<&Cluster>) -> Result<BridgeRecord> {
        crate::cluster::check_name("bridge name", &spec.name)?;
        if self.running().contains_key(&spec.name) {
            return Err(ActorError::InvalidRequest(format!(
                "a bridge named {:?} exists already",
                spec.name
            )));
        }
        let mut record = BridgeRecord {
            spec: spec.clone(),
            previous: Vec::new(),
            copied: false,
            position: 0,
            carried: 0,
            refused: 0,
            slow: None,
            failure: None,
        };
        match &spec.kind {
            BridgeKind::Shared { networks, .. } => {
                record.previous = self.check_shared(networks)?;
            }
            BridgeKind::Federated {
                namespace,
                capability,
                timeout_ms,
            } => {
                cluster.ok_or(ActorError::NoCluster)?;
                if namespace.is_empty() || capability.is_empty() {
                    return Err(ActorError::InvalidRequest(
                        "a federated bridge names a namespace and a capability".into(),
                    ));
                }
                if !(1..=60_000).contains(timeout_ms) {
                    return Err(ActorError::InvalidRequest(format!(
                        "timeout_ms {timeout_ms}: 1 to 60,000"
                    )));
                }
            }
            BridgeKind::CrossManifold { from, to } => {
                cross::check(&self.store, from, to)?;
            }
            BridgeKind::Slow {
                source,
                namespace,
                target,
                bytes_per_second,
                chunk_vectors,
            } => {
                let cluster = cluster.ok_or(ActorError::NoCluster)?;
                check_slow(cluster.instance(), source, namespace, target.as_deref())?;
                if !(1..=10_000_000_000).contains(bytes_per_second) {
                    return Err(ActorError::InvalidRequest(format!(
                        "bytes_per_second {bytes_per_second}: 1 to 10,000,000,000"
                    )));
                }
                if !(1..=10_000).contains(chunk_vectors) {
                    return Err(ActorError::InvalidRequest(format!(
                        "chunk_vectors {chunk_vectors}: 1 to 10,000"
                    )));
                }
                record.spec.kind = BridgeKind::Slow {
                    source: source.clone(),
                    namespace: namespace.clone(),
                    target: Some(target.clone().unwrap_or_else(|| namespace.clone())),
                    bytes_per_second: *bytes_per_second,
                    chunk_vectors: *chunk_vectors,
                };
                record.slow = Some(SlowProgress::default());
            }
        }
        Ok(record)
    }

    /// The pairs a shared bridge sets, with their policies now; refused if
    /// another shared bridge holds one of them.
    fn check_shared(&self, networks: &[String]) -> Result<Vec<(String, String, IsolationPolicy)>> {
        let mut sorted = networks.to_vec();
        sorted.sort();
        sorted.dedup();
        if sorted.len() < 2 || sorted.len() != networks.len() || sorted.iter().any(String::is_empty)
        {
            return Err(ActorError::InvalidRequest(
                "a shared bridge names at least two distinct, non-empty networks".into(),
            ));
        }
        let held: Vec<(String, String)> = self
            .records()?
            .into_iter()
            .filter_map(|r| match r.spec.kind {
                BridgeKind::Shared { networks, .. } => Some((r.spec.name, networks)),
                _ => None,
            })
            .flat_map(|(name, n)| pairs(&n).into_iter().map(move |p| (name.clone(), p)))
            .map(|(name, (a, b))| (name, format!("{a}\u{1f}{b}")))
            .collect();
        let mut out = Vec::new();
        for (a, b) in pairs(&sorted) {
            let key = format!("{a}\u{1f}{b}");
            if let Some((other, _)) = held.iter().find(|(_, k)| *k == key) {
                return Err(ActorError::InvalidRequest(format!(
                    "networks {a:?} and {b:?} are bridged by {other:?} already"
                )));
            }
            let now = self.registry.policy(&a, &b);
            out.push((a, b, now));
        }
        Ok(out)
    }

    fn records(&self) -> Result<Vec<BridgeRecord>> {
        Ok(self
            .store
            .catalog_list(BRIDGES)?
            .into_iter()
            .filter_map(|(_, b)| serde_json::from_slice(&b).ok())
            .collect())
    }

    async fn create(&self, spec: BridgeSpec, cluster: Option<&Cluster>) -> Result<BridgeStatus> {
        let _managing = self.managing.lock().await;
        let record = self.prepare(&spec, cluster)?;
        self.save(&record).await?;
        if let BridgeKind::Shared { policy, .. } = &spec.kind {
            let set: Vec<_> = record
                .previous
                .iter()
                .map(|(a, b, _)| (a.clone(), b.clone(), policy_of(*policy)))
                .collect();
            self.set_policies(&set).await?;
        }
        let name = spec.name.clone();
        self.launch(record);
        self.status(&name).await
    }

    async fn status(&self, name: &str) -> Result<BridgeStatus> {
        Ok(self.get(name)?.addr.send(GetStatus).await?)
    }

    async fn list(&self) -> Result<Vec<BridgeStatus>> {
        let addrs: Vec<_> = self.running().values().map(|r| r.addr.clone()).collect();
        let mut out = Vec::with_capacity(addrs.len());
        for a in addrs {
            out.push(a.send(GetStatus).await?);
        }
        Ok(out)
    }

    async fn delete(&self, name: &str) -> Result<BridgeStatus> {
        let _managing = self.managing.lock().await;
        let running = self.get(name)?;
        let (status, record) = running.addr.send(Stop).await?;
        drop(running.gate.lock().await);
        self.running().remove(name);
        let (store, key) = (self.store.clone(), name.to_string());
        blocking(move || Ok(store.catalog_delete(BRIDGES, &key)?)).await?;
        self.set_policies(&record.previous).await?;
        Ok(status)
    }
}

/// Refuses a slow bridge from this instance itself (ids are unique across
/// an instance's namespaces, so a copy here would collide with its source),
/// or one with a source or namespace name that cannot be.
fn check_slow(here: &str, source: &str, namespace: &str, target: Option<&str>) -> Result<()> {
    crate::cluster::check_name("source instance", source)?;
    if source == here {
        return Err(ActorError::InvalidRequest(format!(
            "a slow bridge copies from another instance; {source:?} is this one"
        )));
    }
    if namespace.is_empty() || target.is_some_and(str::is_empty) {
        return Err(ActorError::InvalidRequest(
            "a slow bridge names a source namespace (and a target, if given) that are not empty"
                .into(),
        ));
    }
    Ok(())
}

impl Hub {
    fn bridges(&self) -> &Bridges {
        &self.inner.bridges
    }

    /// Creates and starts a bridge (`docs/BRIDGES.md`). A federated or a
    /// slow bridge needs a cluster ([`ActorError::NoCluster`]).
    pub async fn create_bridge(&self, spec: BridgeSpec) -> Result<BridgeStatus> {
        self.bridges().create(spec, self.cluster().ok()).await
    }

    /// Every bridge's status, by name.
    pub async fn list_bridges(&self) -> Result<Vec<BridgeStatus>> {
        self.bridges().list().await
    }

    /// One bridge's status.
    pub async fn bridge_status(&self, name: &str) -> Result<BridgeStatus> {
        self.bridges().status(name).await
    }

    /// Stops a bridge and forgets it (its status before). A shared bridge's
    /// pairs of networks get back the policies they had before it; what a
    /// cross-manifold bridge carried stays in its target namespace.
    pub async fn delete_bridge(&self, name: &str) -> Result<BridgeStatus> {
        self.bridges().delete(name).await
    }

    /// Searches through a federated or a cross-manifold bridge, as `model`
    /// (who needs read access to the namespaces searched here) or as the
    /// operator (`None`).
    pub async fn bridge_search(
        &self,
        name: &str,
        query: BridgeQuery,
        model: Option<&str>,
    ) -> Result<BridgeHits> {
        let running = self.bridges().get(name)?;
        let spec = running.addr.send(GetStatus).await?.spec;
        if let Some(model) = model {
            let namespaces = match &spec.kind {
                BridgeKind::Shared { .. } | BridgeKind::Slow { .. } => vec![],
                BridgeKind::Federated { namespace, .. } => vec![namespace.as_str()],
                BridgeKind::CrossManifold { from, to } => vec![from.as_str(), to.as_str()],
            };
            for ns in namespaces {
                self.check_access(model, ns, AccessKind::Read).await?;
            }
        }
        let cluster = self.cluster().ok().cloned();
        running.addr.send(Search { query, cluster }).await?
    }
}

/// One bridge.
pub(crate) struct BridgeActor {
    record: BridgeRecord,
    store: Arc<Store>,
    gate: Arc<tokio::sync::Mutex<()>>,
    cluster: Arc<OnceLock<Cluster>>,
    searches: u64,
    partial: u64,
    last_error: Option<String>,
    /// A feed-following step is running.
    busy: bool,
    /// When the record was last written.
    saved: Instant,
    /// Slow: spaces the chunks (empty when the actor starts).
    bucket: slow::TokenBucket,
    /// Slow: when the last step ended (or the actor started).
    mark: Instant,
}

impl Actor for BridgeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        match self.record.spec.kind {
            BridgeKind::CrossManifold { .. } => {
                ctx.run_interval(FOLLOW_EVERY, |act, ctx| act.follow(ctx));
            }
            BridgeKind::Slow { .. } => {
                ctx.run_later(Duration::ZERO, |act, ctx| act.copy(ctx));
            }
            _ => {}
        }
    }
}

impl BridgeActor {
    fn status(&self) -> BridgeStatus {
        BridgeStatus {
            spec: self.record.spec.clone(),
            searches: self.searches,
            partial: self.partial,
            carried: self.record.carried,
            refused: self.record.refused,
            position: self.record.position,
            last_error: self
                .last_error
                .clone()
                .or_else(|| self.record.failure.clone()),
            slow: self.record.slow.clone().map(|mut p| {
                p.bytes_per_second = (p.bytes * 1000).checked_div(p.active_ms).unwrap_or(0);
                p
            }),
        }
    }

    /// One step of a slow bridge: the next chunk, or once every chunk is
    /// here the digests; then the next step, after the token bucket's
    /// wait (or [`RETRY_EVERY`] after a fault).
    fn copy(&mut self, ctx: &mut Context<Self>) {
        let BridgeKind::Slow {
            source,
            namespace,
            target,
            chunk_vectors,
            ..
        } = &self.record.spec.kind
        else {
            return;
        };
        if self.record.slow.as_ref().map(|p| p.state) != Some(SlowState::Running) {
            return;
        }
        let Some(cluster) = self.cluster.get().cloned() else {
            self.last_error = Some("no_cluster: this instance has not joined one yet".into());
            ctx.run_later(RETRY_EVERY, |act, ctx| act.copy(ctx));
            return;
        };
        let step = CopyStep {
            copier: slow::Copier {
                source: source.clone(),
                namespace: namespace.clone(),
                target: target.clone().unwrap_or_else(|| namespace.clone()),
            },
            cluster,
            store: self.store.clone(),
            gate: self.gate.clone(),
            record: self.record.clone(),
            mark: self.mark,
            limit: *chunk_vectors,
        };
        ctx.spawn(step.run().into_actor(self).map(|r, act, ctx| {
            let next = match r {
                Ok((record, bytes)) => {
                    act.record = record;
                    act.last_error = None;
                    let now = Instant::now();
                    act.mark = now;
                    act.bucket.take(bytes, now)
                }
                Err(slow::StepError::Retry(e)) => {
                    act.last_error = Some(e);
                    RETRY_EVERY
                }
                Err(slow::StepError::Fail(e)) => {
                    act.last_error = Some(e);
                    RETRY_EVERY
                }
            };
            ctx.run_later(next, |act, ctx| act.copy(ctx));
        }));
    }

    /// One step of a cross-manifold bridge: the first copy, or the
    /// changes since its position; the record is written with the new
    /// position at most once a second (and after the first copy).
    fn follow(&mut self, ctx: &mut Context<Self>) {
        let BridgeKind::CrossManifold { from, to } = &self.record.spec.kind else {
            return;
        };
        if self.busy {
            return;
        }
        self.busy = true;
        let carrier = cross::Carrier {
            bridge: self.record.spec.name.clone(),
            from: from.clone(),
            to: to.clone(),
        };
        let (store, gate) = (self.store.clone(), self.gate.clone());
        let mut record = self.record.clone();
        let due = self.saved.elapsed() >= SAVE_EVERY;
        let step = async move {
            let guard = gate.lock_owned().await;
            blocking(move || {
                let _held = guard;
                let copying = !record.copied;
                let report = if copying {
                    carrier.copy_all(&store)?
                } else {
                    carrier.follow(&store, record.position)?
                };
                let moved = report.position != record.position;
                record.copied = true;
                record.position = report.position;
                record.carried += report.carried;
                record.refused += report.refused;
                let saved = copying || (moved && due);
                if saved {
                    let bytes = serde_json::to_vec(&record)
                        .map_err(|e| ActorError::InvalidRequest(format!("bridge record: {e}")))?;
                    store.catalog_put(BRIDGES, &record.spec.name, bytes)?;
                }
                Ok((record, report.last_error, saved))
            })
            .await
        };
        ctx.spawn(step.into_actor(self).map(|r, act, _| {
            act.busy = false;
            match r {
                Ok((record, error, saved)) => {
                    act.record = record;
                    if error.is_some() {
                        act.last_error = error;
                    }
                    if saved {
                        act.saved = Instant::now();
                    }
                }
                Err(e) => act.last_error = Some(format!("{}: {e}", e.code())),
            }
        }));
    }
}

/// One step of a slow bridge, run off the actor.
struct CopyStep {
    copier: slow::Copier,
    cluster: Cluster,
    store: Arc<Store>,
    gate: Arc<tokio::sync::Mutex<()>>,
    record: BridgeRecord,
    /// When the step before ended: the time since is the copy's.
    mark: Instant,
    limit: u32,
}

impl CopyStep {
    /// The record after the step (written), and the bytes received. A
    /// step that cannot go on leaves the record `failed`, saying why.
    async fn run(mut self) -> std::result::Result<(BridgeRecord, u64), slow::StepError> {
        let copied = self.record.slow.as_ref().is_some_and(|p| p.copied);
        let step = if copied {
            self.verify().await.map(|()| 0)
        } else {
            self.next_chunk().await
        };
        let bytes = match step {
            Ok(bytes) => bytes,
            Err(slow::StepError::Fail(why)) => {
                if let Some(p) = self.record.slow.as_mut() {
                    p.state = SlowState::Failed;
                }
                self.record.failure = Some(why);
                0
            }
            Err(retry) => return Err(retry),
        };
        let guard = self.gate.clone().lock_owned().await;
        let (store, record) = (self.store.clone(), self.record.clone());
        let saved = blocking(move || {
            let _held = guard;
            put_record(&store, &record)
        })
        .await;
        match saved {
            Ok(()) => Ok((self.record, bytes)),
            Err(e) => Err(slow::StepError::Retry(format!("{}: {e}", e.code()))),
        }
    }

    fn progress(&mut self) -> &mut SlowProgress {
        self.record.slow.get_or_insert_with(SlowProgress::default)
    }

    /// Fetches and applies the chunk after the cursor; the bytes received.
    async fn next_chunk(&mut self) -> std::result::Result<u64, slow::StepError> {
        let cursor = match &self.progress().cursor {
            None => None,
            Some(c) => Some(c.parse::<uuid::Uuid>().map_err(|e| {
                slow::StepError::Fail(format!("bad_request: the saved cursor {c:?}: {e}"))
            })?),
        };
        let chunk = self.copier.fetch(&self.cluster, cursor, self.limit).await?;
        let guard = self.gate.clone().lock_owned().await;
        let (store, copier) = (self.store.clone(), self.copier.clone());
        let (bytes, count, last, more) = (chunk.bytes, chunk.len(), chunk.last(), chunk.more);
        let written = blocking(move || {
            let _held = guard;
            Ok(copier.apply(&store, &chunk))
        })
        .await
        .map_err(|e| slow::StepError::Retry(format!("{}: {e}", e.code())))??;
        self.record.carried += written;
        let active = self.mark.elapsed().as_millis() as u64;
        let p = self.progress();
        p.chunks += 1;
        p.vectors += count;
        p.bytes += bytes;
        p.active_ms += active;
        if let Some(id) = last {
            p.cursor = Some(id.to_string());
        }
        p.copied = !more;
        Ok(bytes)
    }

    /// Compares the source's digest of its namespace with this one's of
    /// the target: equal is done, else failed with both.
    async fn verify(&mut self) -> std::result::Result<(), slow::StepError> {
        let theirs = self.copier.source_digest(&self.cluster).await?;
        let (store, target) = (self.store.clone(), self.copier.target.clone());
        let ours = blocking(move || Ok(store.namespace_digest(&target)?))
            .await
            .map_err(|e| slow::StepError::Retry(format!("{}: {e}", e.code())))?;
        let active = self.mark.elapsed().as_millis() as u64;
        let p = self.progress();
        p.active_ms += active;
        p.source_digest = Some(theirs.sha256.clone());
        p.target_digest = Some(ours.sha256.clone());
        p.digest_match = Some(theirs == ours);
        if theirs == ours {
            p.state = SlowState::Done;
            return Ok(());
        }
        Err(slow::StepError::Fail(format!(
            "digest_mismatch: source {} ({} vectors), target {} ({} vectors)",
            theirs.sha256, theirs.vectors, ours.sha256, ours.vectors
        )))
    }
}

#[derive(Message)]
#[rtype(result = "BridgeStatus")]
struct GetStatus;

impl Handler<GetStatus> for BridgeActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

/// Stops the bridge; answers its status and record.
#[derive(Message)]
#[rtype(result = "(BridgeStatus, BridgeRecord)")]
struct Stop;

impl Handler<Stop> for BridgeActor {
    type Result = MessageResult<Stop>;

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) -> Self::Result {
        ctx.stop();
        MessageResult((self.status(), self.record.clone()))
    }
}

/// A search through the bridge.
#[derive(Message)]
#[rtype(result = "Result<BridgeHits>")]
struct Search {
    query: BridgeQuery,
    cluster: Option<Cluster>,
}

impl Handler<Search> for BridgeActor {
    type Result = ResponseActFuture<Self, Result<BridgeHits>>;

    fn handle(&mut self, msg: Search, _: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let work: std::pin::Pin<Box<dyn std::future::Future<Output = Result<BridgeHits>>>> =
            match self.record.spec.kind.clone() {
                BridgeKind::Shared { .. } => Box::pin(async {
                    Err(ActorError::InvalidRequest(
                        "a shared bridge is searched as its namespaces are (search)".into(),
                    ))
                }),
                BridgeKind::Slow { .. } => Box::pin(async {
                    Err(ActorError::InvalidRequest(
                        "a slow bridge copies a namespace; search its target namespace (search)"
                            .into(),
                    ))
                }),
                BridgeKind::Federated {
                    namespace,
                    capability,
                    timeout_ms,
                } => Box::pin(async move {
                    let cluster = msg.cluster.ok_or(ActorError::NoCluster)?;
                    let ask = federated::Ask {
                        namespace,
                        capability,
                        timeout: Duration::from_millis(timeout_ms),
                    };
                    ask.search(&cluster, msg.query).await
                }),
                BridgeKind::CrossManifold { from, to } => Box::pin(async move {
                    let instance = msg
                        .cluster
                        .map(|c| c.instance().to_string())
                        .unwrap_or_default();
                    blocking(move || cross::search(&store, &from, &to, &msg.query, &instance)).await
                }),
            };
        Box::pin(work.into_actor(self).map(|r, act, _| {
            act.searches += 1;
            if let Ok(hits) = &r
                && !hits.missing.is_empty()
            {
                act.partial += 1;
            }
            r
        }))
    }
}

/// Sorts hits nearest first (ties by instance and id, so every asker
/// orders them alike) and keeps `k`.
fn rank(hits: &mut Vec<hvs_types::BridgeHit>, k: usize) {
    hits.sort_by(|a, b| {
        a.distance
            .total_cmp(&b.distance)
            .then_with(|| a.instance.cmp(&b.instance))
            .then_with(|| a.id.cmp(&b.id))
    });
    hits.truncate(k);
}

/// The manifold of a geometry, its errors typed.
fn manifold(g: &hvs_types::GeometrySpec) -> Result<hvs_geometry::AnyManifold> {
    Ok(g.build()?)
}

/// Checks a query point against a manifold.
fn check_point(m: &hvs_geometry::AnyManifold, x: &[f64]) -> Result<()> {
    Ok(m.check(x)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_once() {
        let n: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            pairs(&n),
            vec![
                ("a".into(), "b".into()),
                ("a".into(), "c".into()),
                ("b".into(), "c".into())
            ]
        );
    }
}
