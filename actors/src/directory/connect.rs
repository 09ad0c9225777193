//! Connecting models, in batches. The directory takes every connect
//! waiting when it gets to them as one batch: it checks them against the
//! registry together, prepares them on one blocking thread (each contract
//! validated, its records made), hands every write to the store without
//! waiting between them, so that the writer commits them together, and
//! then starts the actors. One connect at a time, each paid for a commit
//! of its own and for the hand-offs between threads around it
//! (docs/BENCHMARKS.md, "Connects in batches").

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix::prelude::*;
use hvs_contracts::Contract;
use hvs_storage::{CatalogRecord, GeometrySpec, SpaceConfig, StorageError, Store};
use serde::Serialize;
use tokio::sync::oneshot;

use super::{Directory, MODELS, StoredModel, profile_of};
use crate::error::{ActorError, Result};
use crate::namespace::{self, NamespaceInfo, blocking};
use crate::registry::{ModelEntry, Profile, geometry_of};

/// Connects one batch prepares and stores at most; the rest wait for the
/// next.
const BATCH_MAX: usize = 256;

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

/// Where a connect's answer goes.
type Answer = oneshot::Sender<Result<Arc<ModelEntry>>>;

/// The connects waiting for the next batch, in the order they came.
#[derive(Default)]
pub(crate) struct Connects {
    waiting: Vec<(Connect, Answer)>,
    /// Whether a batch ([`RunConnects`]) is due or under way.
    scheduled: bool,
}

impl Handler<Connect> for Directory {
    type Result = ResponseFuture<Result<Arc<ModelEntry>>>;

    fn handle(&mut self, msg: Connect, ctx: &mut Self::Context) -> Self::Result {
        let (answer, answered) = oneshot::channel();
        self.connects.waiting.push((msg, answer));
        // actix hands an actor every message waiting in its mailbox before
        // it runs what the actor notified itself of: the connects that came
        // meanwhile join this batch.
        if !self.connects.scheduled {
            self.connects.scheduled = true;
            ctx.notify(RunConnects);
        }
        Box::pin(async move { answered.await.unwrap_or(Err(ActorError::Stopped)) })
    }
}

/// Runs the next batch of connects; the directory handles nothing else
/// until it is done, as it did each connect before.
#[derive(Message)]
#[rtype(result = "()")]
struct RunConnects;

/// A connect of the batch under way: where its answer goes, and the
/// model's entry before it (a returning model keeps its actor).
struct Taken {
    answer: Answer,
    existing: Option<Arc<ModelEntry>>,
}

/// What a connect stored: the model's profile, the home namespace it made
/// (if it made one), and why the model is read-only (if it is).
type Stored = (Profile, Option<NamespaceInfo>, Option<String>);

impl Handler<RunConnects> for Directory {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, _: RunConnects, _: &mut Self::Context) -> Self::Result {
        let mut later = Vec::new();
        let (mut ids, mut names) = (HashSet::new(), HashSet::new());
        let (mut jobs, mut taken) = (Vec::new(), Vec::new());
        for (msg, answer) in std::mem::take(&mut self.connects.waiting) {
            let id = &msg.contract.model.id;
            let ns = &msg.contract.hvs_binding.namespace;
            // A second connect of a model or of a home namespace waits for
            // the next batch, which sees what the first one did.
            if jobs.len() == BATCH_MAX || ids.contains(id) || names.contains(ns) {
                later.push((msg, answer));
                continue;
            }
            let existing = self.registry.models.get(id).map(|e| e.value().clone());
            if existing
                .as_ref()
                .is_some_and(|e| e.connected.load(Ordering::SeqCst))
            {
                let _ = answer.send(Err(ActorError::AlreadyConnected(id.clone())));
                continue;
            }
            let ns_known = self.registry.namespaces.contains_key(ns);
            ids.insert(id.clone());
            names.insert(ns.clone());
            jobs.push((msg, ns_known));
            taken.push(Taken { answer, existing });
        }
        self.connects.waiting = later;
        let store = self.store.clone();
        let work = blocking(move || Ok(store_connects(&store, jobs)));
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |r, act, ctx| {
            let mut results = r.unwrap_or_default().into_iter();
            for t in taken {
                let result = results
                    .next()
                    .unwrap_or(Err(ActorError::Stopped))
                    .map(|stored| act.finish_connect(stored, t.existing));
                let _ = t.answer.send(result);
            }
            if act.connects.waiting.is_empty() {
                act.connects.scheduled = false;
            } else {
                ctx.notify(RunConnects);
            }
        })))
    }
}

impl Directory {
    /// Registers what a connect stored: its home namespace (or the model's
    /// claim on one made before), and its actor, new or kept.
    fn finish_connect(
        &mut self,
        (profile, info, read_only): Stored,
        existing: Option<Arc<ModelEntry>>,
    ) -> Arc<ModelEntry> {
        match info {
            Some(i) => self.start_namespace(i),
            // Not stored, so not claimed either (a claim is stored).
            None if read_only.is_some() => {}
            // Created before by another model: it is this model's now.
            None => {
                if let Ok(ns) = self.registry.namespace(&profile.namespace) {
                    ns.do_send(namespace::ClaimHome(profile.id.clone()));
                }
            }
        }
        let profile = Arc::new(profile);
        match existing {
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
                self.registry
                    .models
                    .insert(entry.profile.id.clone(), entry.clone());
                entry
            }
            None => self.start_model(profile, true, read_only),
        }
    }
}

/// Prepares each connect ([`prepare`]), hands every write to the store
/// without waiting, so that the writer commits them together, then waits
/// for each: one answer per connect, in order.
fn store_connects(store: &Store, jobs: Vec<(Connect, bool)>) -> Vec<Result<Stored>> {
    let n = jobs.len();
    let mut out: Vec<Option<Result<Stored>>> = (0..n).map(|_| None).collect();
    let mut prepared: Vec<Option<(Profile, Option<NamespaceInfo>)>> =
        (0..n).map(|_| None).collect();
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, (msg, ns_known)) in jobs.into_iter().enumerate() {
        match prepare(store, msg, ns_known) {
            Ok((profile, home, space, records)) => {
                prepared[i] = Some((profile, home));
                let tx = tx.clone();
                store.catalog_put_all_then(
                    space,
                    records,
                    Box::new(move |r| {
                        let _ = tx.send((i, r));
                    }),
                );
            }
            Err(e) => out[i] = Some(Err(e)),
        }
    }
    drop(tx);
    // Ends once every write has been answered (each answer drops its
    // sender).
    for (i, r) in rx {
        let Some((profile, home)) = prepared[i].take() else {
            continue;
        };
        out[i] = Some(match r {
            Ok(()) => Ok((profile, home, None)),
            // Nothing of the connect is stored: no namespace either.
            Err(StorageError::WriteFailed(reason)) => {
                Ok((profile, None, Some(refusal(store, reason))))
            }
            Err(e) => Err(e.into()),
        });
    }
    out.into_iter()
        .map(|o| o.unwrap_or(Err(ActorError::Stopped)))
        .collect()
}

/// What a connect stores, all in one write: its home namespace, unless
/// the registry knows it (`ns_known`) or the store has it already, and its
/// records (the home namespace's access list, the contract unless stored
/// as it is). The contract is validated once, here. A namespace the store
/// has already (a sync job's, say) becomes the model's if its geometry is
/// the contract's, keeping its graph settings, and its access list says
/// so; with another geometry it refuses the connect.
#[allow(clippy::type_complexity)]
fn prepare(
    store: &Store,
    msg: Connect,
    ns_known: bool,
) -> Result<(
    Profile,
    Option<NamespaceInfo>,
    Option<SpaceConfig>,
    Vec<CatalogRecord>,
)> {
    let geometry = geometry_of(&msg.contract)?;
    let stored = store.namespace(&msg.contract.hvs_binding.namespace).ok();
    let graph = match &stored {
        Some(c) => c.graph,
        None => msg.contract.hvs_binding.graph,
    };
    let profile = profile_of(msg.contract, &msg.base_dir)?;
    let home = (!ns_known).then(|| home_of(&profile, geometry, graph));
    let space = match (&home, &stored) {
        (None, _) => None,
        (Some(info), Some(c)) if c.geometry == info.geometry => None,
        (Some(info), Some(_)) => {
            return Err(ActorError::InvalidRequest(format!(
                "namespace {:?} exists with another geometry than the contract's",
                info.name
            )));
        }
        (Some(info), None) => Some(SpaceConfig {
            graph: info.graph,
            ..SpaceConfig::new(info.name.clone(), info.geometry.clone())
        }),
    };
    let mut records = Vec::with_capacity(2);
    if let Some(info) = &home {
        records.push(access_record(info)?);
    }
    if !contract_stored(store, &profile.id, &profile.contract, &msg.base_dir)? {
        records.push(contract_record(&profile, &msg.base_dir)?);
    }
    Ok((profile, home, space, records))
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
