//! The directory: the one actor that adds models and namespaces, starts
//! their actors (spread over the arbiters, one per core) and records them in
//! the catalog so that a restart brings them back.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use hvs_contracts::Contract;
use hvs_mailbox::{Mailbox, MailboxConfig, OverflowPolicy, StoredLetter};
use hvs_storage::{CatalogRecord, GeometrySpec, SpaceConfig, StorageError, Store};
use serde::{Deserialize, Serialize};

use crate::error::{ActorError, Result};
use crate::model::{ModelActor, Unsubscribe, now_ms};
use crate::namespace::{self, NamespaceInfo, blocking};
use crate::registry::{
    Isolation, IsolationPolicy, MAILBOX_CAPACITY, ModelEntry, NamespaceSlot, Profile, Registry,
    geometry_of,
};

/// Catalog kind of stored contracts.
pub(crate) const MODELS: &str = "model";
/// Catalog kind of isolation policies.
pub(crate) const ISOLATION: &str = "isolation";

/// Mailbox settings every model gets (its contract sets the visibility
/// timeout, `communication_protocol.timeout_ms`, and the attempts,
/// `retry.max_attempts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailboxDefaults {
    /// Letters a mailbox holds (pending plus in flight).
    pub capacity: usize,
    /// What a full mailbox does.
    pub overflow: OverflowPolicy,
    /// How often each mailbox checks for redeliveries and expiries.
    pub tick: Duration,
}

impl Default for MailboxDefaults {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            overflow: OverflowPolicy::Refuse,
            tick: Duration::from_millis(100),
        }
    }
}

/// A contract as the catalog keeps it, with the folder its files are
/// relative to.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredModel {
    pub(crate) contract: serde_json::Value,
    pub(crate) base_dir: PathBuf,
}

pub(crate) struct Directory {
    pub(crate) store: Arc<Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) arbiters: Vec<ArbiterHandle>,
    pub(crate) next: usize,
    pub(crate) mailboxes: MailboxDefaults,
    /// Letters recovered at start for models not started yet.
    pub(crate) recovered: Arc<Mutex<HashMap<String, Vec<StoredLetter>>>>,
}

impl Actor for Directory {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

fn profile_of(contract: Contract, base_dir: &std::path::Path) -> Result<Profile> {
    // `encoder` validates the contract first (`Contract::validate`), so it
    // is checked once here.
    let encoder = contract.encoder(base_dir)?;
    Ok(Profile {
        id: contract.model.id.clone(),
        namespace: contract.hvs_binding.namespace.clone(),
        network: contract.hvs_binding.region.clone(),
        limiter: contract.rate_limiter(Instant::now()),
        encoder,
        contract,
        stored_bytes: AtomicU64::new(0),
    })
}

impl Directory {
    fn arbiter(&mut self) -> ArbiterHandle {
        self.next = (self.next + 1) % self.arbiters.len();
        self.arbiters[self.next].clone()
    }

    /// Starts a model's actor with its mailbox (refilled from what storage
    /// recovered) and registers it (`read_only`: see [`ModelEntry`]).
    pub(crate) fn start_model(
        &mut self,
        profile: Arc<Profile>,
        connected: bool,
        read_only: Option<String>,
    ) -> Arc<ModelEntry> {
        let p = &profile.contract.communication_protocol;
        let config = MailboxConfig {
            capacity: self.mailboxes.capacity,
            overflow: self.mailboxes.overflow,
            visibility_timeout_ms: p.timeout_ms.max(1),
            max_attempts: p.retry.max_attempts,
        };
        let mut mailbox = Mailbox::new(profile.id.clone(), config);
        let letters = self
            .recovered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&profile.id)
            .unwrap_or_default();
        let now = now_ms();
        let mut dead = Vec::new();
        for l in letters {
            dead.extend(mailbox.restore(l, now));
        }
        let gauge = mailbox.gauge();
        let (store, registry, tick) = (
            self.store.clone(),
            self.registry.clone(),
            self.mailboxes.tick,
        );
        let prof = profile.clone();
        let addr = ModelActor::start_in_arbiter(&self.arbiter(), move |_| {
            let mut a = ModelActor {
                profile: prof,
                mailbox,
                store,
                registry,
                subscriber: None,
                dead: Default::default(),
                dead_count: 0,
                withdrawn: 0,
                tick,
                tick_at: None,
                remote: Default::default(),
            };
            a.bury(dead);
            a
        });
        let entry = Arc::new(ModelEntry {
            addr,
            gauge,
            profile,
            connected: AtomicBool::new(connected),
            read_only,
        });
        self.registry
            .models
            .insert(entry.profile.id.clone(), entry.clone());
        entry
    }

    /// Registers a namespace; its actor starts at its first request
    /// (`Registry::namespace`).
    pub(crate) fn start_namespace(&mut self, info: NamespaceInfo) {
        let name = info.name.clone();
        let slot = NamespaceSlot::Idle(Box::new(info));
        self.registry.namespaces.insert(name, slot);
    }
}

/// Connects a model: validates its contract, creates its namespace, records
/// it, starts (or re-profiles) its actor.
///
/// While the store refuses writes after a disk fault, a model whose
/// contract or home namespace would have to be stored connects read-only
/// instead ([`ModelEntry::read_only`]): what the store refused is not
/// stored, nor kept in memory as if it were, and the next connect once the
/// store takes writes again stores it.
#[derive(Message)]
#[rtype(result = "Result<Arc<ModelEntry>>")]
pub(crate) struct Connect {
    pub(crate) contract: Contract,
    pub(crate) base_dir: PathBuf,
}

impl Handler<Connect> for Directory {
    type Result = AtomicResponse<Self, Result<Arc<ModelEntry>>>;

    fn handle(&mut self, msg: Connect, _: &mut Self::Context) -> Self::Result {
        let id = msg.contract.model.id.clone();
        let existing = self.registry.models.get(&id).map(|e| e.value().clone());
        if let Some(e) = &existing
            && e.connected.load(std::sync::atomic::Ordering::SeqCst)
        {
            return AtomicResponse::new(Box::pin(fut::ready(Err(ActorError::AlreadyConnected(
                id,
            )))));
        }
        let store = self.store.clone();
        let ns_known = self
            .registry
            .namespaces
            .contains_key(&msg.contract.hvs_binding.namespace);
        let work = blocking(move || {
            let geometry = geometry_of(&msg.contract)?;
            // A namespace the store has already (a sync job's, say) keeps
            // its graph settings, and its access list says so.
            let graph = match store.namespace(&msg.contract.hvs_binding.namespace) {
                Ok(c) => c.graph,
                Err(_) => msg.contract.hvs_binding.graph,
            };
            let profile = profile_of(msg.contract, &msg.base_dir)?;
            let home = (!ns_known).then(|| home_of(&profile, geometry, graph));
            let mut records = Vec::with_capacity(2);
            if let Some(info) = &home {
                records.push(access_record(info)?);
            }
            if !contract_stored(&store, &profile.id, &profile.contract, &msg.base_dir)? {
                records.push(contract_record(&profile, &msg.base_dir)?);
            }
            match store_connect(&store, home.as_ref(), records) {
                Ok(()) => Ok((profile, home, None)),
                // Nothing of the connect is stored: no namespace either.
                Err(ActorError::Storage(StorageError::WriteFailed(r))) => {
                    Ok((profile, None, Some(refusal(&store, r))))
                }
                Err(e) => Err(e),
            }
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |r, act, _| {
            let (profile, info, read_only) = r?;
            match info {
                Some(i) => act.start_namespace(i),
                // Not stored, so not claimed either (a claim is stored).
                None if read_only.is_some() => {}
                // Created before by another model: it is this model's now.
                None => {
                    if let Ok(ns) = act.registry.namespace(&profile.namespace) {
                        ns.do_send(namespace::ClaimHome(profile.id.clone()));
                    }
                }
            }
            let profile = Arc::new(profile);
            Ok(match existing {
                // A returning model keeps its actor and mailbox; its new
                // contract takes effect.
                Some(e) => {
                    e.addr.do_send(crate::model::Reprofile(profile.clone()));
                    let entry = Arc::new(ModelEntry {
                        addr: e.addr.clone(),
                        gauge: e.gauge.clone(),
                        profile,
                        connected: AtomicBool::new(true),
                        read_only,
                    });
                    act.registry.models.insert(id, entry.clone());
                    entry
                }
                None => act.start_model(profile, true, read_only),
            })
        })))
    }
}

/// A connecting model's home namespace: the model owns it, private, its
/// graph built as the contract says (`hvs_binding.graph`).
fn home_of(
    profile: &Profile,
    geometry: GeometrySpec,
    graph: Option<hvs_storage::GraphSettings>,
) -> NamespaceInfo {
    NamespaceInfo {
        name: profile.namespace.clone(),
        owner: profile.id.clone(),
        visibility: namespace::Visibility::Private,
        network: profile.network.clone(),
        geometry,
        grants: BTreeMap::new(),
        members: BTreeMap::new(),
        retention: None,
        datatype: None,
        graph,
    }
}

/// A namespace's access list as the catalog keeps it (under the
/// namespace, so that a sync job copying the namespace copies it).
fn access_record(info: &NamespaceInfo) -> Result<CatalogRecord> {
    let value = serde_json::to_vec(info).map_err(|e| ActorError::InvalidRequest(e.to_string()))?;
    Ok(CatalogRecord {
        kind: namespace::CATALOG_KIND.to_string(),
        key: info.name.clone(),
        value,
        namespace: Some(info.name.clone()),
    })
}

/// A model's contract as the catalog keeps it ([`StoredModel`]),
/// serialised once, from the validated contract.
fn contract_record(profile: &Profile, base_dir: &Path) -> Result<CatalogRecord> {
    #[derive(Serialize)]
    struct Stored<'a> {
        contract: &'a Contract,
        base_dir: &'a Path,
    }
    let stored = Stored {
        contract: &profile.contract,
        base_dir,
    };
    let value =
        serde_json::to_vec(&stored).map_err(|e| ActorError::InvalidRequest(e.to_string()))?;
    Ok(CatalogRecord {
        kind: MODELS.to_string(),
        key: profile.id.clone(),
        value,
        namespace: None,
    })
}

/// Stores what a connect must, in one commit, all or none: the home
/// namespace (`home`, unless it is known already) and `records` (its
/// access list, the contract). A namespace made here before by a sync
/// job, without an access list yet, becomes the connecting model's, as if
/// it had made it; one with another geometry refuses the connect.
fn store_connect(
    store: &Store,
    home: Option<&NamespaceInfo>,
    records: Vec<CatalogRecord>,
) -> Result<()> {
    let space = match home {
        None => None,
        Some(info) => match store.namespace(&info.name) {
            Ok(c) if c.geometry == info.geometry => None,
            Ok(_) => {
                return Err(ActorError::InvalidRequest(format!(
                    "namespace {:?} exists with another geometry than the contract's",
                    info.name
                )));
            }
            Err(_) => Some(SpaceConfig {
                graph: info.graph,
                ..SpaceConfig::new(info.name.clone(), info.geometry.clone())
            }),
        },
    };
    Ok(store.catalog_put_all(space, records)?)
}

/// Why a connect goes read-only: the store's own reason for refusing
/// writes, or else what the refused write heard (`refused`).
fn refusal(store: &Store, refused: String) -> String {
    store.write_refusal().unwrap_or(refused)
}

/// Whether the catalog holds `contract` for model `id` already, from
/// `base_dir` (or from any folder, while this store takes no writes of its
/// own). Then a connect writes nothing: on a mirror of a failover group,
/// whose fence refuses its own writes, a model whose contract and home
/// namespace came from the primary connects for reads (`docs/CLUSTER.md`,
/// "Reading from a mirror"), the folder recorded by the primary kept.
fn contract_stored(store: &Store, id: &str, contract: &Contract, base_dir: &Path) -> Result<bool> {
    let Some(bytes) = store.catalog_get(MODELS, id)? else {
        return Ok(false);
    };
    let Ok(stored) = serde_json::from_slice::<StoredModel>(&bytes) else {
        return Ok(false);
    };
    let contract =
        serde_json::to_value(contract).map_err(|e| ActorError::InvalidRequest(e.to_string()))?;
    let fenced = store.fence().check(Instant::now()).is_err();
    Ok(stored.contract == contract && (stored.base_dir == base_dir || fenced))
}

/// Marks a model disconnected; its mailbox keeps collecting.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Disconnect(pub(crate) String);

impl Handler<Disconnect> for Directory {
    type Result = ();

    fn handle(&mut self, msg: Disconnect, _: &mut Self::Context) {
        if let Some(e) = self.registry.models.get(&msg.0) {
            e.connected
                .store(false, std::sync::atomic::Ordering::SeqCst);
            e.addr.do_send(Unsubscribe);
        }
    }
}

/// Creates a namespace with its access list.
#[derive(Message)]
#[rtype(result = "Result<NamespaceInfo>")]
pub(crate) struct CreateNamespace(pub(crate) NamespaceInfo);

impl Handler<CreateNamespace> for Directory {
    type Result = AtomicResponse<Self, Result<NamespaceInfo>>;

    fn handle(&mut self, msg: CreateNamespace, _: &mut Self::Context) -> Self::Result {
        let info = msg.0;
        if self.registry.namespaces.contains_key(&info.name) {
            return AtomicResponse::new(Box::pin(fut::ready(Err(ActorError::NamespaceExists(
                info.name,
            )))));
        }
        let store = self.store.clone();
        let work = blocking(move || {
            let config = SpaceConfig {
                retention: info.retention,
                datatype: info.datatype,
                graph: info.graph,
                ..SpaceConfig::new(info.name.clone(), info.geometry.clone())
            };
            match store.create_namespace(config) {
                Ok(()) => {}
                Err(StorageError::NamespaceExists(n)) => {
                    return Err(ActorError::NamespaceExists(n));
                }
                Err(e) => return Err(e.into()),
            }
            let bytes =
                serde_json::to_vec(&info).map_err(|e| ActorError::InvalidRequest(e.to_string()))?;
            store.catalog_put_in(&info.name, namespace::CATALOG_KIND, &info.name, bytes)?;
            Ok(info)
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|r, act, _| {
            let info = r?;
            act.start_namespace(info.clone());
            Ok(info)
        })))
    }
}

/// Sets the isolation policy between two networks.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct SetIsolation(
    pub(crate) String,
    pub(crate) String,
    pub(crate) IsolationPolicy,
);

impl Handler<SetIsolation> for Directory {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: SetIsolation, _: &mut Self::Context) -> Self::Result {
        let key = Isolation::key(&msg.0, &msg.1);
        let store = self.store.clone();
        let policy = msg.2;
        let k = key.clone();
        let work = blocking(move || {
            let bytes = serde_json::to_vec(&policy)
                .map_err(|e| ActorError::InvalidRequest(e.to_string()))?;
            Ok(store.catalog_put(ISOLATION, &k, bytes)?)
        });
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |r, act, _| {
            r?;
            act.registry
                .isolation
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .pairs
                .insert(key, policy);
            Ok(())
        })))
    }
}

/// Brings back, at start, every model and namespace the catalog records
/// (models disconnected, with their recovered mailboxes) and the isolation
/// policies.
pub(crate) fn recover(dir: &mut Directory) -> Result<()> {
    for (name, bytes) in dir.store.catalog_list(namespace::CATALOG_KIND)? {
        // A deletion commits the namespace's removal from storage, then its
        // access list: one that stopped in between is finished here.
        if let Err(StorageError::NamespaceNotFound(_)) = dir.store.namespace(&name) {
            dir.store.catalog_delete(namespace::CATALOG_KIND, &name)?;
            continue;
        }
        let info: NamespaceInfo = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::Corrupt(format!("namespace access list: {e}")))?;
        dir.start_namespace(info);
    }
    for (key, bytes) in dir.store.catalog_list(ISOLATION)? {
        let policy: IsolationPolicy = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::Corrupt(format!("isolation policy: {e}")))?;
        dir.registry
            .isolation
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .pairs
            .insert(key, policy);
    }
    for (id, bytes) in dir.store.catalog_list(MODELS)? {
        let stored: StoredModel = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::Corrupt(format!("stored contract of {id:?}: {e}")))?;
        let contract = Contract::from_value(stored.contract)?;
        match profile_of(contract, &stored.base_dir) {
            Ok(p) => {
                dir.start_model(Arc::new(p), false, None);
            }
            // A contract whose encoder file is gone: the model must connect
            // again with a valid one; its mailbox waits in storage.
            Err(e) => tracing::warn!(model = %id, error = %e, "stored contract no longer loads"),
        }
    }
    Ok(())
}

/// This instance became its failover group's primary (`cluster/group.rs`):
/// its store now holds what the old primary held, mailboxes included, so
/// every model and namespace is brought back from it as a restart would.
/// (On a mirror, models connect only for reads: see `contract_stored`.)
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct Promote;

impl Handler<Promote> for Directory {
    type Result = Result<()>;

    fn handle(&mut self, _: Promote, _: &mut Self::Context) -> Self::Result {
        let letters = hvs_mailbox::recover_letters(&self.store)?;
        for m in self.registry.models.iter() {
            m.addr.do_send(crate::model::Retire);
        }
        self.registry.models.clear();
        for n in self.registry.namespaces.iter() {
            if let NamespaceSlot::Running(addr) = n.value() {
                addr.do_send(namespace::Stop);
            }
        }
        self.registry.namespaces.clear();
        *self.recovered.lock().unwrap_or_else(|e| e.into_inner()) = letters;
        recover(self)
    }
}

/// A namespace a sync job brought here, with the source's access list
/// (written to the catalog by the job): started unless one of that name is
/// known here already.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct AdoptNamespace(pub(crate) NamespaceInfo);

impl Handler<AdoptNamespace> for Directory {
    type Result = ();

    fn handle(&mut self, msg: AdoptNamespace, _: &mut Self::Context) {
        if !self.registry.namespaces.contains_key(&msg.0.name) {
            self.start_namespace(msg.0);
        }
    }
}

/// A namespace a sync job deleted here (as its source did): its actor stops
/// and its access list goes.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(crate) struct ForgetNamespace(pub(crate) String);

impl Handler<ForgetNamespace> for Directory {
    type Result = AtomicResponse<Self, Result<()>>;

    fn handle(&mut self, msg: ForgetNamespace, _: &mut Self::Context) -> Self::Result {
        if let Some((_, NamespaceSlot::Running(addr))) = self.registry.namespaces.remove(&msg.0) {
            addr.do_send(namespace::Stop);
        }
        let store = self.store.clone();
        let work = blocking(move || {
            store.catalog_delete(namespace::CATALOG_KIND, &msg.0)?;
            Ok(())
        });
        AtomicResponse::new(Box::pin(work.into_actor(self)))
    }
}

/// Deletes a namespace: only its owner may, never a model's home, and not
/// while messages keep their vectors in it.
#[derive(Message)]
#[rtype(result = "Result<bool>")]
pub(crate) struct DeleteNamespace {
    pub(crate) name: String,
    pub(crate) by: String,
}

impl Handler<DeleteNamespace> for Directory {
    type Result = AtomicResponse<Self, Result<bool>>;

    fn handle(&mut self, msg: DeleteNamespace, _: &mut Self::Context) -> Self::Result {
        let Ok(addr) = self.registry.namespace(&msg.name) else {
            return AtomicResponse::new(Box::pin(fut::ready(Ok(false))));
        };
        let home = self.registry.is_home(&msg.name);
        let store = self.store.clone();
        let work = async move {
            let info = addr.send(namespace::Info).await?;
            if info.owner != msg.by {
                return Err(ActorError::PermissionDenied {
                    model: msg.by,
                    action: "delete",
                    namespace: msg.name,
                    reason: format!("only its owner {:?} deletes it", info.owner),
                });
            }
            if home {
                return Err(ActorError::InvalidRequest(format!(
                    "namespace {:?} is a model's home namespace and cannot be deleted",
                    msg.name
                )));
            }
            let name = msg.name.clone();
            blocking(move || {
                let deleted = store.delete_namespace(&name)?;
                store.catalog_delete(namespace::CATALOG_KIND, &name)?;
                Ok(deleted)
            })
            .await
            .map(|d| (d, msg.name))
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(|r, act, _| {
            let (deleted, name) = r?;
            if let Some((_, NamespaceSlot::Running(addr))) = act.registry.namespaces.remove(&name) {
                addr.do_send(namespace::Stop);
            }
            Ok(deleted)
        })))
    }
}
