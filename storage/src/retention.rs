//! What retention needs besides the writer's operations: the store's
//! clock, the ledger of a limited namespace's messages, its undo log, and
//! what the layers above hear of discarded messages.
//!
//! The rules are in `docs/SEMANTICS.md` ("Retention"); the writer enforces
//! them (`writer/retention.rs`, `store/expiry.rs`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::store::{Space, lock};

/// Where the store reads the time for expiry and retention: the system
/// clock, or a manual one that tests set and advance instead of sleeping.
#[derive(Debug, Clone, Default)]
pub struct StoreClock {
    manual: Option<Arc<AtomicU64>>,
}

impl StoreClock {
    /// The system clock (the default).
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands at `now_ms` until [`StoreClock::advance`] or
    /// [`StoreClock::set`] moves it; clones share it.
    pub fn manual(now_ms: u64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(now_ms))),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(t) => t.load(Ordering::Acquire),
            None => crate::record::now_ms(),
        }
    }

    /// Moves a manual clock forward by `ms`; the system clock ignores it.
    pub fn advance(&self, ms: u64) {
        if let Some(t) = &self.manual {
            t.fetch_add(ms, Ordering::AcqRel);
        }
    }

    /// Sets a manual clock; the system clock ignores it.
    pub fn set(&self, now_ms: u64) {
        if let Some(t) = &self.manual {
            t.store(now_ms, Ordering::Release);
        }
    }
}

impl PartialEq for StoreClock {
    /// Two clocks are equal when both are the system clock or both share
    /// one manual clock.
    fn eq(&self, other: &Self) -> bool {
        match (&self.manual, &other.manual) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// A message a retention limit removed before every recipient settled it
/// (or after: the recipients are all of its `to`), for the layers above to
/// take it out of their mailboxes ([`crate::Store::on_discard`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    /// The message.
    pub id: Uuid,
    /// The namespace it was stored in.
    pub namespace: String,
    /// Its recipients.
    pub recipients: Vec<String>,
}

/// Hears the messages retention discarded, once their removal is
/// committed, after every caller of that commit was answered (so after the
/// hand-over of any message it discards). Runs on the writer thread, or on
/// the sender's thread at `Memory` durability: it must only hand the ids
/// on.
pub type DiscardListener = Arc<dyn Fn(&[Discarded]) + Send + Sync>;

/// What the ledger keeps of one message: when it was sent, and its size
/// ([`hvs_types::message_bytes`]).
pub(crate) type HeldEntry = (u64, u64);

/// The messages of a namespace with retention limits, oldest (lowest id)
/// first, and their total size: the writer picks what to discard from it
/// without reading the table. Rebuilt from the table on open.
#[derive(Debug, Default)]
pub(crate) struct Held {
    by_id: BTreeMap<Uuid, HeldEntry>,
    bytes: u64,
}

impl Held {
    /// Adds a message; `false` if it was there already.
    pub(crate) fn add(&mut self, id: Uuid, entry: HeldEntry) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        self.by_id.insert(id, entry);
        self.bytes += entry.1;
        true
    }

    /// Removes a message; what it held, if it was there.
    pub(crate) fn remove(&mut self, id: Uuid) -> Option<HeldEntry> {
        let e = self.by_id.remove(&id)?;
        self.bytes -= e.1;
        Some(e)
    }

    /// Messages held.
    pub(crate) fn len(&self) -> u64 {
        self.by_id.len() as u64
    }

    /// Their total size.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The oldest messages, at most `n`, with what they hold.
    pub(crate) fn oldest(&self, n: usize) -> impl Iterator<Item = (Uuid, HeldEntry)> + '_ {
        self.by_id.iter().take(n).map(|(id, e)| (*id, *e))
    }
}

/// One change the writer made to a ledger in the transaction it is
/// building: undone if that transaction does not commit.
pub(crate) enum Undo {
    Added(Arc<Space>, Uuid),
    Removed(Arc<Space>, Uuid, HeldEntry),
}

/// The ledger changes of the writer's open transaction. The writer is the
/// only one that changes the ledgers of a durable store; it changes them as
/// it writes rows (the next operation of the same group must see them), and
/// keeps them if the group commits ([`UndoLog::keep`]) or undoes them
/// ([`UndoLog::undo`]).
#[derive(Default)]
pub(crate) struct UndoLog(Mutex<Vec<Undo>>);

impl UndoLog {
    pub(crate) fn push(&self, u: Undo) {
        lock(&self.0).push(u);
    }

    /// The transaction committed: its changes stay.
    pub(crate) fn keep(&self) {
        lock(&self.0).clear();
    }

    /// The transaction did not commit: its changes go, newest first.
    pub(crate) fn undo(&self) {
        let changes = std::mem::take(&mut *lock(&self.0));
        for u in changes.into_iter().rev() {
            match u {
                Undo::Added(space, id) => {
                    if let Some(mut h) = space.held() {
                        h.remove(id);
                    }
                }
                Undo::Removed(space, id, e) => {
                    if let Some(mut h) = space.held() {
                        h.add(id, e);
                    }
                }
            }
        }
    }
}

/// The namespace `name` of a store's map of namespaces, if there.
pub(crate) fn space_in(
    spaces: &std::sync::RwLock<std::collections::HashMap<String, Arc<Space>>>,
    name: &str,
) -> Option<Arc<Space>> {
    spaces
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()
}

/// A message's ledger entry.
pub(crate) fn held_entry(m: &crate::messages::MessageRecord) -> HeldEntry {
    (
        m.sent_ms,
        hvs_types::message_bytes(m.payload.len(), m.vector.len()),
    )
}

/// The store's retention state beside its ledgers (which live in each
/// namespace's `Space`).
pub(crate) struct RetentionState {
    /// The time expiry and retention read.
    pub(crate) clock: StoreClock,
    /// The retention of namespaces without their own.
    pub(crate) defaults: hvs_types::Retention,
    /// The ledger changes of the writer's open transaction.
    pub(crate) undo: UndoLog,
    /// Messages discarded by a limit since the store opened.
    pub(crate) discarded: AtomicU64,
    /// Who hears of discarded messages.
    pub(crate) listener: std::sync::RwLock<Option<DiscardListener>>,
    /// Discarded messages the listener has not heard of yet.
    pub(crate) pending: Mutex<Vec<Discarded>>,
    /// When (store clock) the writer last looked for messages a limit
    /// removes.
    pub(crate) last_sweep_ms: AtomicU64,
    /// At `Memory` durability, where settlements are not stored: how many
    /// recipients settled each message of a namespace with
    /// `keep_acked_ms` that some recipient has not settled yet.
    pub(crate) memory_settled: Mutex<std::collections::HashMap<Uuid, usize>>,
    /// Whether some namespace has `keep_acked_ms` (so settlements matter
    /// even at `Memory` durability).
    pub(crate) keep_acked_anywhere: std::sync::atomic::AtomicBool,
}

impl RetentionState {
    /// The state of a store opened with these defaults; defaults that
    /// cannot be used are [`crate::StorageError::InvalidRetention`].
    pub(crate) fn new(clock: StoreClock, defaults: hvs_types::Retention) -> crate::Result<Self> {
        if let Some(p) = defaults.problem() {
            return Err(crate::StorageError::InvalidRetention(format!(
                "the store's default retention: {p}"
            )));
        }
        Ok(Self {
            clock,
            defaults,
            undo: UndoLog::default(),
            discarded: AtomicU64::new(0),
            listener: std::sync::RwLock::new(None),
            pending: Mutex::new(Vec::new()),
            last_sweep_ms: AtomicU64::new(0),
            memory_settled: Mutex::new(std::collections::HashMap::new()),
            keep_acked_anywhere: std::sync::atomic::AtomicBool::new(
                defaults.keep_acked_ms.is_some(),
            ),
        })
    }
}

/// Messages of namespaces with `keep_acked_ms`, read at open: each one's
/// number of recipients and its namespace's `keep_acked_ms`.
pub(crate) type Settling = std::collections::HashMap<Uuid, (usize, u64)>;

/// Why the store removed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// Their TTL passed, or their `keep_acked_ms` after every recipient
    /// settled them (both scheduled in the store's set of expiries).
    Due,
    /// A retention limit discarded them (`max_age_ms`, `max_messages`,
    /// `max_bytes`).
    Limit,
}

/// A message the store removed: what memory must forget of it.
#[derive(Debug, Clone)]
pub(crate) struct Removed {
    pub(crate) namespace: String,
    pub(crate) id: Uuid,
    pub(crate) to: Vec<String>,
    pub(crate) expires_ms: Option<u64>,
}

impl Removed {
    pub(crate) fn of(m: &crate::messages::MessageRecord) -> Self {
        Self {
            namespace: m.namespace.clone(),
            id: m.id,
            to: m.to.clone(),
            expires_ms: m.expires_ms,
        }
    }
}
