//! One actor per namespace, started at its first request
//! ([`NamespaceStarter`]): its access list (owner, visibility, grants,
//! members, network), every read and write checked against the caller's
//! contract, the isolation policy between networks and that list; shared
//! space work (join, contribute, query, consensus). Storage work runs on
//! tokio's blocking pool, never on the actor's thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use actix::prelude::*;
use hvs_geometry::{FrechetOptions, Manifold};
use hvs_storage::{
    Filter, GeometrySpec, NewVector, SearchHit, SearchQuery, Store, VectorRecord, VectorUpdate,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::admission::Admission;
use crate::error::{ActorError, Result};
use crate::registry::{IsolationPolicy, MAILBOX_CAPACITY, Profile, Registry};

/// Catalog kind under which namespace access lists are stored.
pub(crate) const CATALOG_KIND: &str = "namespace";

/// Who may see a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Only the owner and models granted access.
    Private,
    /// Everyone reads; members (models that joined) and grantees write.
    Shared,
    /// Everyone reads; only the owner and grantees write.
    Public,
}

/// Access granted to one model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// May search and read.
    pub read: bool,
    /// May store and contribute.
    pub write: bool,
}

/// Reading or writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessKind {
    /// Search, read, query, consensus.
    Read,
    /// Store, contribute.
    Write,
}

impl AccessKind {
    fn verb(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// A namespace's access list, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceInfo {
    /// Its name.
    pub name: String,
    /// The model (or operator) that owns it.
    pub owner: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// The network it belongs to (its owner's `hvs_binding.region`).
    pub network: String,
    /// Its manifold.
    pub geometry: GeometrySpec,
    /// Explicit grants, by model.
    pub grants: BTreeMap<String, Grant>,
    /// Models that joined it, with the capabilities they declared.
    pub members: BTreeMap<String, Vec<String>>,
    /// The retention it was created with (`docs/SEMANTICS.md`,
    /// "Retention"); `None`: the store's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<hvs_storage::Retention>,
    /// The datatype its search graph was asked to store (docs/STORAGE.md,
    /// "Vector storage"); `None`: its geometry's default. Catalog rows
    /// written before it existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<hvs_storage::Datatype>,
    /// The graph settings it was created with (docs/STORAGE.md, "Graph
    /// settings"); `None`: the store's. Catalog rows written before they
    /// existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<hvs_storage::GraphSettings>,
}

impl NamespaceInfo {
    /// What its search graph stores: the datatype asked for, or its
    /// geometry's default (as the store decides).
    pub fn datatype(&self) -> hvs_storage::Datatype {
        self.datatype
            .unwrap_or_else(|| hvs_storage::Datatype::default_for(&self.geometry))
    }
}

/// What a new namespace may set beyond its name, visibility and geometry;
/// `Default`: the store's defaults for all of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamespaceOptions {
    /// How long its messages are kept (`docs/SEMANTICS.md`, "Retention");
    /// `None`: the store's defaults. Limits of 0 are refused with
    /// `invalid_retention`.
    pub retention: Option<hvs_storage::Retention>,
    /// What its search graph stores; `None`: its geometry's default. One
    /// its geometry cannot use is refused with `invalid_datatype`.
    pub datatype: Option<hvs_storage::Datatype>,
    /// How its search graph is built; `None`: the store's settings.
    /// Settings out of range are refused with `invalid_graph`.
    pub graph: Option<hvs_storage::GraphSettings>,
}

/// Who asks: a model (checked) or the operator of the process (trusted).
#[derive(Clone)]
pub(crate) enum Caller {
    Model(Arc<Profile>),
    Operator,
}

/// A contribution found by [`query_shared`](crate::ModelRef::query_shared).
#[derive(Debug, Clone, PartialEq)]
pub struct SharedHit {
    /// The contribution's vector id.
    pub id: Uuid,
    /// Who contributed it.
    pub contributor: String,
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: serde_json::Value,
    /// Distance from the query on the space's manifold.
    pub distance: f64,
    /// `1 / (1 + distance)`.
    pub score: f64,
    /// The contribution's point.
    pub vector: Vec<f64>,
}

/// The weighted Fréchet mean of a shared space's contributions.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsensusReport {
    /// The mean, a point of the space's manifold.
    pub mean: Vec<f64>,
    /// Contributions averaged.
    pub contributions: usize,
    /// Distinct contributors.
    pub contributors: usize,
    /// Iterations the mean took.
    pub iterations: usize,
    /// Whether it converged to the requested tolerance.
    pub converged: bool,
    /// Norm of the gradient at the answer (0 at the exact mean).
    pub gradient_norm: f64,
    /// Weighted Fréchet variance about the mean.
    pub variance: f64,
}

pub(crate) struct NamespaceActor {
    pub(crate) info: NamespaceInfo,
    pub(crate) store: Arc<Store>,
    pub(crate) registry: Arc<Registry>,
    /// (contributor, key) → vector id; loaded on first use.
    pub(crate) contributions: Option<HashMap<(String, String), Uuid>>,
}

/// Starts namespaces' actors, spread over the arbiters. A namespace's actor
/// starts at its first request ([`Registry::namespace`]), not when the
/// namespace is made or read back: a model's home namespace that nothing
/// asks for holds its access list in the registry and no running actor.
pub(crate) struct NamespaceStarter {
    pub(crate) store: Arc<Store>,
    /// Weak: the registry holds this starter.
    pub(crate) registry: Weak<Registry>,
    pub(crate) arbiters: Vec<ArbiterHandle>,
    pub(crate) next: AtomicUsize,
}

impl NamespaceStarter {
    /// Starts the actor of the namespace `info` describes.
    pub(crate) fn start(&self, info: NamespaceInfo) -> Result<Addr<NamespaceActor>> {
        let registry = self.registry.upgrade().ok_or(ActorError::Stopped)?;
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len().max(1);
        let arbiter = self.arbiters.get(i).ok_or(ActorError::Stopped)?;
        let store = self.store.clone();
        Ok(NamespaceActor::start_in_arbiter(arbiter, move |_| {
            NamespaceActor {
                info,
                store,
                registry,
                contributions: None,
            }
        }))
    }
}

impl Actor for NamespaceActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

/// Runs blocking storage work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ActorError::Stopped)?
}

const CONTRIBUTION: &str = "contribution";

/// A search and the records of its hits (hits whose record is gone
/// meanwhile are left out).
pub(crate) fn search_records(
    store: &Store,
    q: &SearchQuery,
) -> Result<Vec<(SearchHit, VectorRecord)>> {
    crate::vectors::with_records(store, store.semantic_search(q)?)
}

fn contribution_filter() -> Filter {
    Filter::Eq("hvs_kind".into(), serde_json::json!(CONTRIBUTION))
}

impl NamespaceActor {
    /// Whether `caller` may read or write here; the reason if not.
    pub(crate) fn check(&self, caller: &Caller, kind: AccessKind) -> Result<()> {
        let Caller::Model(p) = caller else {
            return Ok(());
        };
        let info = &self.info;
        let deny = |reason: String| {
            Err(ActorError::PermissionDenied {
                model: p.id.clone(),
                action: kind.verb(),
                namespace: info.name.clone(),
                reason,
            })
        };
        let perms = &p.contract.permissions;
        let allowed = match kind {
            AccessKind::Read => perms.can_read(&info.name),
            AccessKind::Write => perms.can_write(&info.name),
        };
        if !allowed {
            return deny(format!(
                "the contract's {}_namespaces do not match it",
                kind.verb()
            ));
        }
        match (self.registry.policy(&p.network, &info.network), kind) {
            (IsolationPolicy::Strict, _) => {
                return deny(format!(
                    "networks {:?} and {:?} are strictly isolated",
                    p.network, info.network
                ));
            }
            (IsolationPolicy::Shared, AccessKind::Write) => {
                return deny(format!(
                    "network {:?} has read-only (shared) access to network {:?}",
                    p.network, info.network
                ));
            }
            _ => {}
        }
        if p.id == info.owner {
            return Ok(());
        }
        let grant = info.grants.get(&p.id).copied().unwrap_or_default();
        let granted = match kind {
            AccessKind::Read => grant.read,
            AccessKind::Write => grant.write,
        };
        if granted {
            return Ok(());
        }
        match (info.visibility, kind) {
            (Visibility::Shared | Visibility::Public, AccessKind::Read) => Ok(()),
            (Visibility::Shared, AccessKind::Write) if info.members.contains_key(&p.id) => Ok(()),
            (Visibility::Shared, AccessKind::Write) => {
                deny("only members write to a shared namespace: join it first".into())
            }
            (Visibility::Public, AccessKind::Write) => deny(format!(
                "a public namespace is written only by its owner {:?} and grantees",
                info.owner
            )),
            (Visibility::Private, _) => deny(format!(
                "it is private to {:?} and grants no {} access",
                info.owner,
                kind.verb()
            )),
        }
    }

    fn query_limit(caller: &Caller) -> Result<()> {
        if let Caller::Model(p) = caller {
            p.limiter.acquire_queries(1, Instant::now())?;
        }
        Ok(())
    }

    /// Writes the access list to the catalog; on failure the in-memory
    /// change is undone by the caller.
    fn persist(&self) -> impl Future<Output = Result<()>> + use<> {
        let store = self.store.clone();
        let info = self.info.clone();
        blocking(move || {
            let bytes =
                serde_json::to_vec(&info).map_err(|e| ActorError::InvalidRequest(e.to_string()))?;
            Ok(store.catalog_put_in(&info.name, CATALOG_KIND, &info.name, bytes)?)
        })
    }
}

/// Is `caller` allowed `kind` access?
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct Check(pub(crate) Caller, pub(crate) AccessKind);

impl Handler<Check> for NamespaceActor {
    type Result = Result<()>;

    fn handle(&mut self, msg: Check, _: &mut Self::Context) -> Result<()> {
        self.check(&msg.0, msg.1)
    }
}

/// The access list.
#[derive(Message)]
#[rtype(result = "NamespaceInfo")]
pub(crate) struct Info;

impl Handler<Info> for NamespaceActor {
    type Result = MessageResult<Info>;

    fn handle(&mut self, _: Info, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.info.clone())
    }
}

/// Joins a shared space (needs read access).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct Join {
    pub(crate) caller: Arc<Profile>,
    pub(crate) capabilities: Vec<String>,
}

impl Handler<Join> for NamespaceActor {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: Join, _: &mut Self::Context) -> Self::Result {
        let id = msg.caller.id.clone();
        if let Err(e) = self.check(&Caller::Model(msg.caller), AccessKind::Read) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        }
        let before = self.info.members.insert(id.clone(), msg.capabilities);
        let save = self.persist();
        AtomicResponse::new(Box::pin(save.into_actor(self).map(move |r, act, _| {
            if r.is_err() {
                match before {
                    Some(b) => act.info.members.insert(id, b),
                    None => act.info.members.remove(&id),
                };
            }
            r
        })))
    }
}

/// Grants (or, with both false, revokes) access; only the owner or the
/// operator may.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct GrantAccess {
    pub(crate) by: Caller,
    pub(crate) grantee: String,
    pub(crate) grant: Grant,
}

impl Handler<GrantAccess> for NamespaceActor {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: GrantAccess, _: &mut Self::Context) -> Self::Result {
        if let Caller::Model(p) = &msg.by
            && p.id != self.info.owner
        {
            let e = ActorError::PermissionDenied {
                model: p.id.clone(),
                action: "administer",
                namespace: self.info.name.clone(),
                reason: format!("only its owner {:?} grants access", self.info.owner),
            };
            return AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        }
        let grantee = msg.grantee.clone();
        let before = if msg.grant == Grant::default() {
            self.info.grants.remove(&grantee)
        } else {
            self.info.grants.insert(grantee.clone(), msg.grant)
        };
        let save = self.persist();
        AtomicResponse::new(Box::pin(save.into_actor(self).map(move |r, act, _| {
            if r.is_err() {
                match before {
                    Some(b) => act.info.grants.insert(grantee, b),
                    None => act.info.grants.remove(&grantee),
                };
            }
            r
        })))
    }
}

/// Members of the space (for broadcasts to it).
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub(crate) struct Members;

impl Handler<Members> for NamespaceActor {
    type Result = MessageResult<Members>;

    fn handle(&mut self, _: Members, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.info.members.keys().cloned().collect())
    }
}

/// Adds (or, for a key the contributor used before, updates) a
/// contribution.
#[derive(Message)]
#[rtype(result = "Result<Uuid>")]
pub(crate) struct Contribute {
    pub(crate) caller: Arc<Profile>,
    pub(crate) key: String,
    pub(crate) point: Vec<f64>,
    pub(crate) value: serde_json::Value,
}

impl Handler<Contribute> for NamespaceActor {
    type Result = AtomicResponse<Self, Result<Uuid>>;

    fn handle(&mut self, msg: Contribute, _: &mut Self::Context) -> Self::Result {
        let caller = Caller::Model(msg.caller.clone());
        let who = msg.caller.id.clone();
        let ready = self.check(&caller, AccessKind::Write).and_then(|()| {
            let bytes = 8 * msg.point.len() + msg.value.to_string().len();
            let mut admission = Admission::new(msg.caller.clone());
            admission.take_vectors(1)?;
            admission.charge(bytes as u64)?;
            Ok(admission)
        });
        let admission = match ready {
            Ok(a) => a,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        let (store, ns) = (self.store.clone(), self.info.name.clone());
        let known = self.contributions.clone();
        let key = msg.key.clone();
        let work = blocking(move || {
            let known = match known {
                Some(k) => k,
                None => load_contributions(&store, &ns)?,
            };
            let mut metadata = hvs_storage::Metadata::new();
            metadata.insert("hvs_kind".into(), serde_json::json!(CONTRIBUTION));
            metadata.insert("contributor".into(), serde_json::json!(msg.caller.id));
            metadata.insert("key".into(), serde_json::json!(msg.key));
            metadata.insert("value".into(), msg.value);
            let id = match known.get(&(msg.caller.id.clone(), msg.key.clone())) {
                Some(id) => {
                    let update = VectorUpdate {
                        data: Some(msg.point),
                        metadata: Some(metadata),
                        ..VectorUpdate::default()
                    };
                    store.update_vector(*id, update)?.id
                }
                None => {
                    let mut v = NewVector::new(ns, msg.point);
                    v.metadata = metadata;
                    store.store_vector(v)?.id
                }
            };
            Ok((known, id))
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |r, act, _| {
            let (mut known, id) = r?;
            admission.commit();
            known.insert((who, key), id);
            act.contributions = Some(known);
            Ok(id)
        })))
    }
}

fn load_contributions(store: &Store, ns: &str) -> Result<HashMap<(String, String), Uuid>> {
    Ok(store
        .iter_namespace(ns)?
        .into_iter()
        .filter_map(|r| contribution_of(&r).map(|(c, k, _)| ((c, k), r.id)))
        .collect())
}

/// `(contributor, key, value)` of a contribution record.
fn contribution_of(r: &VectorRecord) -> Option<(String, String, serde_json::Value)> {
    let m = &r.metadata;
    if m.get("hvs_kind")?.as_str()? != CONTRIBUTION {
        return None;
    }
    Some((
        m.get("contributor")?.as_str()?.to_string(),
        m.get("key")?.as_str()?.to_string(),
        m.get("value").cloned().unwrap_or(serde_json::Value::Null),
    ))
}

/// The `k` contributions nearest to a point.
#[derive(Message)]
#[rtype(result = "Result<Vec<SharedHit>>")]
pub(crate) struct QueryShared {
    pub(crate) caller: Caller,
    pub(crate) query: Vec<f64>,
    pub(crate) k: usize,
}

impl Handler<QueryShared> for NamespaceActor {
    type Result = ResponseFuture<Result<Vec<SharedHit>>>;

    fn handle(&mut self, msg: QueryShared, _: &mut Self::Context) -> Self::Result {
        let ready = self
            .check(&msg.caller, AccessKind::Read)
            .and_then(|()| Self::query_limit(&msg.caller));
        let (store, ns) = (self.store.clone(), self.info.name.clone());
        Box::pin(async move {
            ready?;
            blocking(move || {
                let mut q = SearchQuery::new(ns, msg.query, msg.k);
                q.filter = Some(contribution_filter());
                Ok(search_records(&store, &q)?
                    .into_iter()
                    .filter_map(|(h, r)| {
                        let (contributor, key, value) = contribution_of(&r)?;
                        Some(SharedHit {
                            id: h.id,
                            contributor,
                            key,
                            value,
                            distance: h.distance,
                            score: h.score,
                            vector: r.data,
                        })
                    })
                    .collect())
            })
            .await
        })
    }
}

/// The weighted Fréchet mean of every contribution.
#[derive(Message)]
#[rtype(result = "Result<ConsensusReport>")]
pub(crate) struct Consensus {
    pub(crate) caller: Caller,
    /// Weight per contributor (1 for contributors not named).
    pub(crate) weights: Option<HashMap<String, f64>>,
}

impl Handler<Consensus> for NamespaceActor {
    type Result = ResponseFuture<Result<ConsensusReport>>;

    fn handle(&mut self, msg: Consensus, _: &mut Self::Context) -> Self::Result {
        let ready = self.check(&msg.caller, AccessKind::Read);
        let (store, ns) = (self.store.clone(), self.info.name.clone());
        let geometry = self.info.geometry.clone();
        Box::pin(async move {
            ready?;
            blocking(move || {
                let records = store.iter_namespace(&ns)?;
                let mut points = Vec::new();
                let mut weights = Vec::new();
                let mut contributors = std::collections::HashSet::new();
                for r in &records {
                    let Some((c, _, _)) = contribution_of(r) else {
                        continue;
                    };
                    let w = msg
                        .weights
                        .as_ref()
                        .and_then(|m| m.get(&c))
                        .copied()
                        .unwrap_or(1.0);
                    points.push(r.data.as_slice());
                    weights.push(w);
                    contributors.insert(c);
                }
                if points.is_empty() {
                    return Err(ActorError::InvalidRequest(format!(
                        "namespace {ns:?} has no contributions to agree on"
                    )));
                }
                let m = geometry.build()?;
                let mean = m.frechet_mean(&points, Some(&weights), &FrechetOptions::default())?;
                Ok(ConsensusReport {
                    mean: mean.mean,
                    contributions: points.len(),
                    contributors: contributors.len(),
                    iterations: mean.iterations,
                    converged: mean.converged,
                    gradient_norm: mean.gradient_norm,
                    variance: mean.variance,
                })
            })
            .await
        })
    }
}

/// Searches the namespace (vectors, messages and contributions alike;
/// filter on `hvs_kind` to narrow).
#[derive(Message)]
#[rtype(result = "Result<Vec<SearchHit>>")]
pub(crate) struct Search(pub(crate) Caller, pub(crate) SearchQuery);

impl Handler<Search> for NamespaceActor {
    type Result = ResponseFuture<Result<Vec<SearchHit>>>;

    fn handle(&mut self, mut msg: Search, _: &mut Self::Context) -> Self::Result {
        msg.1.namespace = self.info.name.clone();
        let ready = self
            .check(&msg.0, AccessKind::Read)
            .and_then(|()| Self::query_limit(&msg.0));
        let store = self.store.clone();
        Box::pin(async move {
            ready?;
            blocking(move || Ok(store.semantic_search(&msg.1)?)).await
        })
    }
}

/// Stops the actor (its namespace was deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Stop;

impl Handler<Stop> for NamespaceActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A model connects whose contract binds this namespace as its home: the
/// namespace is its own, whoever created it first.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct ClaimHome(pub(crate) String);

impl Handler<ClaimHome> for NamespaceActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: ClaimHome, _: &mut Self::Context) -> Self::Result {
        if self.info.owner == msg.0 || self.registry.is_home_of_other(&self.info.name, &msg.0) {
            return Box::pin(std::future::ready(Ok(())));
        }
        tracing::warn!(
            namespace = %self.info.name,
            from = %self.info.owner,
            to = %msg.0,
            "a model's home namespace was created by another model; it goes to the model whose contract binds it"
        );
        self.info.owner = msg.0;
        self.info.grants.clear();
        Box::pin(self.persist())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private namespace `n` of E^3.
    fn info(datatype: Option<hvs_storage::Datatype>) -> NamespaceInfo {
        NamespaceInfo {
            name: "n".into(),
            owner: "o".into(),
            visibility: Visibility::Private,
            network: "local".into(),
            geometry: GeometrySpec::Euclidean { dim: 3 },
            grants: BTreeMap::new(),
            members: BTreeMap::new(),
            retention: None,
            datatype,
            graph: None,
        }
    }

    #[test]
    fn catalog_rows_without_a_datatype_read_as_the_geometry_default() {
        let info = info(Some(hvs_storage::Datatype::F16));
        let mut row = serde_json::to_value(&info).unwrap();
        assert_eq!(row["datatype"], "f16");
        assert_eq!(
            serde_json::from_value::<NamespaceInfo>(row.clone()).unwrap(),
            info
        );
        // A row written before namespaces had a datatype.
        row.as_object_mut().unwrap().remove("datatype");
        let old: NamespaceInfo = serde_json::from_value(row).unwrap();
        assert_eq!(old.datatype, None);
        assert_eq!(old.datatype(), hvs_storage::Datatype::F32);
    }

    #[test]
    fn a_namespace_actor_starts_once_at_its_first_request() {
        use crate::registry::NamespaceSlot;
        let idle = |r: &Registry| matches!(*r.namespaces.get("n").unwrap(), NamespaceSlot::Idle(_));
        actix::System::new().block_on(async {
            let store = Arc::new(Store::open(hvs_storage::StoreConfig::memory()).unwrap());
            let registry = Arc::new_cyclic(|weak| {
                let starter = NamespaceStarter {
                    store,
                    registry: weak.clone(),
                    arbiters: vec![actix::Arbiter::current()],
                    next: AtomicUsize::new(0),
                };
                Registry::new(IsolationPolicy::Strict, starter)
            });
            let info = info(None);
            let slot = NamespaceSlot::Idle(Box::new(info.clone()));
            registry.namespaces.insert("n".into(), slot);
            assert!(idle(&registry));
            let first = registry.namespace("n").unwrap();
            assert!(!idle(&registry));
            // Every later request reaches the same actor, which holds the
            // access list it was registered with.
            assert!(registry.namespace("n").unwrap() == first);
            assert_eq!(first.send(Info).await.unwrap(), info);
            assert!(matches!(
                registry.namespace("other"),
                Err(ActorError::UnknownNamespace(n)) if n == "other"
            ));
        });
    }
}
