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
//!   namespace of another geometry, and queries carried across.

mod cross;
mod federated;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use hvs_geometry::Manifold;
use hvs_storage::Store;
use hvs_types::{BridgeHits, BridgeIsolation, BridgeKind, BridgeQuery, BridgeSpec, BridgeStatus};
use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::directory::{Directory, SetIsolation};
use crate::error::{ActorError, Result};
use crate::hub::Hub;
use crate::namespace::{AccessKind, blocking};
use crate::registry::{IsolationPolicy, Registry};

pub(crate) use federated::start_federation;

/// Catalog kind of bridges' records: local (`_`), never in the feed.
const BRIDGES: &str = "_bridge";

/// How often a cross-manifold bridge reads the change feed.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// A cross-manifold bridge's position is written at most this often.
const SAVE_EVERY: Duration = Duration::from_secs(1);

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
        };
        for (name, bytes) in bridges.store.catalog_list(BRIDGES)? {
            match serde_json::from_slice::<BridgeRecord>(&bytes) {
                Ok(record) => bridges.launch(record),
                Err(e) => tracing::error!("bridge {name}: its record cannot be read: {e}"),
            }
        }
        Ok(bridges)
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn launch(&self, record: BridgeRecord) {
        let name = record.spec.name.clone();
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        let actor = BridgeActor {
            record,
            store: self.store.clone(),
            gate: gate.clone(),
            searches: 0,
            partial: 0,
            last_error: None,
            busy: false,
            saved: Instant::now(),
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
        let bytes = serde_json::to_vec(record)
            .map_err(|e| ActorError::InvalidRequest(format!("bridge record: {e}")))?;
        let (store, name) = (self.store.clone(), record.spec.name.clone());
        blocking(move || Ok(store.catalog_put(BRIDGES, &name, bytes)?)).await
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

impl Hub {
    fn bridges(&self) -> &Bridges {
        &self.inner.bridges
    }

    /// Creates and starts a bridge (`docs/BRIDGES.md`). A federated bridge
    /// needs a cluster ([`ActorError::NoCluster`]).
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
                BridgeKind::Shared { .. } => vec![],
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
    searches: u64,
    partial: u64,
    last_error: Option<String>,
    /// A feed-following step is running.
    busy: bool,
    /// When the record was last written.
    saved: Instant,
}

impl Actor for BridgeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let BridgeKind::CrossManifold { .. } = self.record.spec.kind {
            ctx.run_interval(FOLLOW_EVERY, |act, ctx| act.follow(ctx));
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
            last_error: self.last_error.clone(),
        }
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
