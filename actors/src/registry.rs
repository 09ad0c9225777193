//! What every actor may look up without a message round trip: the models
//! and namespaces that exist, each model's immutable profile, and the
//! isolation policies between networks. Only the [`Directory`] actor adds or
//! removes entries; everyone reads.
//!
//! [`Directory`]: crate::directory::Directory

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix::Addr;
use dashmap::DashMap;
use hvs_contracts::{Contract, GeometryKind, MessageEncoder, RateLimiter};
use hvs_mailbox::Gauge;
use hvs_storage::GeometrySpec;
use serde::{Deserialize, Serialize};

use crate::error::{ActorError, Result};
use crate::model::ModelActor;
use crate::namespace::{NamespaceActor, NamespaceInfo, NamespaceStarter};

/// Requests an actor queues before senders wait (actix's own mailbox, not
/// a model's): bounded, so a flood of requests meets backpressure.
pub(crate) const MAILBOX_CAPACITY: usize = 4096;

/// What a model is, as fixed by its contract when it connected.
pub(crate) struct Profile {
    pub(crate) id: String,
    pub(crate) contract: Contract,
    /// The model's own namespace (`hvs_binding.namespace`).
    pub(crate) namespace: String,
    /// The model's network (`hvs_binding.region`), for isolation policies.
    pub(crate) network: String,
    pub(crate) encoder: MessageEncoder,
    pub(crate) limiter: RateLimiter,
    /// Bytes of payload and vectors the model has stored since it connected.
    pub(crate) stored_bytes: AtomicU64,
}

impl Profile {
    /// Charges `bytes` to the model's storage quota, or refuses.
    pub(crate) fn charge_storage(&self, bytes: u64) -> Result<()> {
        let used = self.stored_bytes.load(Ordering::Relaxed);
        self.limiter.check_storage(used, bytes)?;
        self.stored_bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back a charge whose write did not happen.
    pub(crate) fn refund_storage(&self, bytes: u64) {
        let _ = self
            .stored_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// A known model: its actor, its mailbox's admission gauge, its profile.
pub(crate) struct ModelEntry {
    pub(crate) addr: Addr<ModelActor>,
    pub(crate) gauge: Arc<Gauge>,
    pub(crate) profile: Arc<Profile>,
    pub(crate) connected: AtomicBool,
    /// Why the model is connected read-only: it connected while the store
    /// refused writes, so its contract (or home namespace) is not stored
    /// (`None`: connected normally, or not connected).
    pub(crate) read_only: Option<String>,
}

/// How two networks may reach each other's namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationPolicy {
    /// No access across the two networks.
    Strict,
    /// Read-only access across them.
    Shared,
    /// Full access across them.
    Federated,
}

/// Policies between pairs of networks, with a default for the rest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Isolation {
    pub(crate) default: IsolationPolicy,
    pub(crate) pairs: HashMap<String, IsolationPolicy>,
}

impl Isolation {
    pub(crate) fn key(a: &str, b: &str) -> String {
        let (x, y) = if a <= b { (a, b) } else { (b, a) };
        format!("{x}\u{1f}{y}")
    }

    /// The policy between two networks; a network is always federated
    /// with itself.
    pub(crate) fn policy(&self, a: &str, b: &str) -> IsolationPolicy {
        if a == b {
            return IsolationPolicy::Federated;
        }
        self.pairs
            .get(&Self::key(a, b))
            .copied()
            .unwrap_or(self.default)
    }
}

/// A known namespace: its actor, or, until its first request, the access
/// list the actor will start with (`NamespaceStarter`).
pub(crate) enum NamespaceSlot {
    Idle(Box<NamespaceInfo>),
    Running(Addr<NamespaceActor>),
}

/// The lookup tables.
pub(crate) struct Registry {
    pub(crate) models: DashMap<String, Arc<ModelEntry>>,
    pub(crate) namespaces: DashMap<String, NamespaceSlot>,
    /// Starts a namespace's actor at its first request.
    starter: NamespaceStarter,
    pub(crate) isolation: RwLock<Isolation>,
    /// Mail across instances, once this instance joined a cluster.
    pub(crate) mail: std::sync::OnceLock<Arc<crate::cluster::mail::Mail>>,
}

impl Registry {
    pub(crate) fn new(default: IsolationPolicy, starter: NamespaceStarter) -> Self {
        Self {
            models: DashMap::new(),
            namespaces: DashMap::new(),
            starter,
            isolation: RwLock::new(Isolation {
                default,
                pairs: HashMap::new(),
            }),
            mail: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn model(&self, id: &str) -> Result<Arc<ModelEntry>> {
        self.models
            .get(id)
            .map(|e| e.value().clone())
            .ok_or_else(|| ActorError::UnknownModel(id.to_string()))
    }

    /// A namespace's actor, started now if this is its first request.
    pub(crate) fn namespace(&self, name: &str) -> Result<Addr<NamespaceActor>> {
        let unknown = || ActorError::UnknownNamespace(name.to_string());
        if let NamespaceSlot::Running(addr) = self.namespaces.get(name).ok_or_else(unknown)?.value()
        {
            return Ok(addr.clone());
        }
        // Under the entry's lock, so that one actor starts however many
        // first requests race.
        let mut slot = self.namespaces.get_mut(name).ok_or_else(unknown)?;
        let addr = match slot.value() {
            NamespaceSlot::Running(addr) => return Ok(addr.clone()),
            NamespaceSlot::Idle(info) => self.starter.start((**info).clone())?,
        };
        *slot.value_mut() = NamespaceSlot::Running(addr.clone());
        Ok(addr)
    }

    pub(crate) fn policy(&self, a: &str, b: &str) -> IsolationPolicy {
        self.isolation
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .policy(a, b)
    }
}

/// The storage geometry of a contract's space.
pub(crate) fn geometry_of(contract: &Contract) -> Result<GeometrySpec> {
    fn one(kind: GeometryKind, dim: usize, c: Option<f64>) -> Result<GeometrySpec> {
        let curvature = c.unwrap_or(1.0);
        Ok(match kind {
            GeometryKind::Poincare => GeometrySpec::Poincare { dim, curvature },
            GeometryKind::Hyperboloid => GeometrySpec::Hyperboloid { dim, curvature },
            GeometryKind::Euclidean => GeometrySpec::Euclidean { dim },
            GeometryKind::Lorentzian => GeometrySpec::DeSitter { dim, curvature },
            GeometryKind::Sphere => GeometrySpec::Sphere { dim, curvature },
            _ => {
                return Err(ActorError::InvalidRequest(
                    "a product factor cannot itself be a product".into(),
                ));
            }
        })
    }
    let b = &contract.hvs_binding;
    if b.geometry != GeometryKind::Product {
        return one(b.geometry, b.dimension, b.curvature);
    }
    let components = b
        .factors
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|f| {
            Ok((
                one(f.geometry, f.dimension, f.curvature)?,
                f.weight.unwrap_or(1.0),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GeometrySpec::Product { components })
}

impl Registry {
    /// Every namespace's name, sorted.
    pub(crate) fn namespace_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.namespaces.iter().map(|e| e.key().clone()).collect();
        names.sort_unstable();
        names
    }

    /// Whether a known model's contract binds `namespace` as its home.
    pub(crate) fn is_home(&self, namespace: &str) -> bool {
        self.models
            .iter()
            .any(|e| e.value().profile.namespace == namespace)
    }
}

impl Registry {
    /// Whether a known model other than `model` binds `namespace` as home.
    pub(crate) fn is_home_of_other(&self, namespace: &str, model: &str) -> bool {
        self.models
            .iter()
            .any(|e| e.key() != model && e.value().profile.namespace == namespace)
    }
}
