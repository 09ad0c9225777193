//! The directory: the one actor that adds models and namespaces, starts
//! their actors (spread over the arbiters, one per core) and records them in
//! the catalog so that a restart brings them back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use hvs_contracts::Contract;
use hvs_mailbox::{Mailbox, MailboxConfig, OverflowPolicy, StoredLetter};
use hvs_storage::{SpaceConfig, StorageError, Store};
use serde::{Deserialize, Serialize};

use crate::error::{ActorError, Result};
use crate::model::{ModelActor, Unsubscribe, now_ms};
use crate::namespace::{self, NamespaceInfo, blocking};
use crate::registry::{
    Isolation, IsolationPolicy, MAILBOX_CAPACITY, ModelEntry, NamespaceSlot, Profile, Registry,
};

mod connect;

pub(crate) use connect::{Connect, Connects};

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
    /// Connects waiting for their batch (`directory/connect.rs`).
    pub(crate) connects: Connects,
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
