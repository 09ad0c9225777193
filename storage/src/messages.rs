//! Messages between models, their settlements (acked or dead-lettered per
//! recipient), and a small catalog of named records (contracts, access
//! lists, …) for the layers above.
//!
//! A message is one row: payload, vector and recipients together, so a send
//! costs one insert. Its vector is indexed in its namespace beside the
//! namespace's vectors (metadata `hvs_kind: "message"`, `from`, `to`), so
//! messages are found by meaning like everything else. Settling a message
//! for a recipient is one small row more. At `Memory` durability messages
//! and settlements never touch redb: the index and a map in memory are the
//! store, which is what `Memory` promises (gone with the process) and what
//! lets a process move a million messages a second.
//!
//! A message with a TTL is purged (row, settlements, index entry) by the
//! writer once it has expired, earliest expiry first, in bounded batches
//! (see `Shared::run_writer` and `Tables::purge_messages`). Its
//! namespace's retention (`docs/SEMANTICS.md`, "Retention") removes it the
//! same way when a limit discards it or, once every recipient settled it,
//! when `keep_acked_ms` runs out; without a TTL or retention it is kept
//! for good.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Result, StorageError};
use crate::index::Entry;
use crate::record::{CompactMetadata, Metadata, SpaceConfig, check_metadata, decode};
use crate::store::{CATALOG, Durability, MESSAGES, SETTLED, Slot, Store, contain, lock};
use crate::writer::{Op, Reply};

/// A message from one model to one or more others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// UUID v7: the order of ids is the order of sending within a process.
    pub id: Uuid,
    /// The namespace whose index holds the message's vector.
    pub namespace: String,
    /// The sending model.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The message itself, opaque bytes.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Its point on the namespace's manifold.
    pub vector: Vec<f64>,
    /// The sender's metadata (searchable with filters).
    pub metadata: Metadata,
    /// When it was sent, ms since the Unix epoch.
    pub sent_ms: u64,
    /// When it stops being delivered, ms since the Unix epoch.
    pub expires_ms: Option<u64>,
}

impl MessageRecord {
    /// What the index (and its filters) see of the message: its metadata
    /// plus `hvs_kind: "message"`, `from` and `to`.
    pub fn index_metadata(&self) -> Metadata {
        let mut metadata = self.metadata.clone();
        metadata.insert("hvs_kind".into(), serde_json::json!("message"));
        metadata.insert("from".into(), serde_json::json!(self.from));
        metadata.insert("to".into(), serde_json::json!(self.to));
        metadata
    }

    /// The index entry of the message.
    pub(crate) fn entry(&self) -> Entry {
        self.entry_with(Arc::new(self.index_metadata().into()))
    }

    /// The index entry of the message, with its index metadata made already.
    pub(crate) fn entry_with(&self, metadata: Arc<CompactMetadata>) -> Entry {
        Entry::new(self.id, self.vector.clone(), None, metadata)
    }
}

/// How a message ended for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Settlement {
    /// The recipient acknowledged it.
    Acked,
    /// It was moved to the recipient's dead-letter queue.
    DeadLettered {
        /// Why (expired, too many attempts, mailbox overflow).
        reason: String,
    },
}

/// A settlement of one message for one recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settled {
    /// The message.
    pub message: Uuid,
    /// The recipient it was settled for.
    pub recipient: String,
    /// How.
    pub settlement: Settlement,
    /// When, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A stored message and the recipients that have not settled it yet.
#[derive(Debug, Clone)]
pub struct Unsettled {
    /// The message.
    pub message: Arc<MessageRecord>,
    /// Recipients still owed a delivery.
    pub recipients: Vec<String>,
}

/// A record to put in the catalog together with others
/// ([`Store::catalog_put_all`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRecord {
    /// Its kind (`model`, `namespace`, …); 1 to 256 bytes.
    pub kind: String,
    /// Its key within the kind; at most 1024 bytes.
    pub key: String,
    /// Its value, opaque bytes.
    pub value: Vec<u8>,
    /// The namespace it belongs to, if any, as for
    /// [`Store::catalog_put_in`].
    pub namespace: Option<String>,
}

/// Called once a write is committed (on the writer thread), or at once
/// with the error that refused it.
pub type Completion<T> = Box<dyn FnOnce(Result<T>) + Send>;

impl Store {
    /// Stores messages and indexes their vectors, all or none; `done` hears
    /// the stored records once they are committed (at `Memory` durability,
    /// before this returns). Every vector is checked (or projected, as its
    /// namespace says) first. If the writer's queue is full the write waits
    /// in line for its place (in order: writes handed over later are
    /// committed later) and this returns at once; a caller that must not
    /// take more work meanwhile waits for [`Store::slot`] first and calls
    /// [`Store::append_messages_in`].
    pub fn append_messages(
        &self,
        messages: Vec<MessageRecord>,
        done: Completion<Vec<Arc<MessageRecord>>>,
    ) {
        self.append_messages_with(None, messages, done);
    }

    /// [`Store::append_messages`] with a place in the writer's queue taken
    /// already ([`Store::try_slot`], [`Store::slot`]): hands the write over
    /// at once.
    pub fn append_messages_in(
        &self,
        slot: Slot,
        messages: Vec<MessageRecord>,
        done: Completion<Vec<Arc<MessageRecord>>>,
    ) {
        self.append_messages_with(Some(slot), messages, done);
    }

    fn append_messages_with(
        &self,
        slot: Option<Slot>,
        messages: Vec<MessageRecord>,
        done: Completion<Vec<Arc<MessageRecord>>>,
    ) {
        let admitted = messages
            .into_iter()
            .map(|mut m| {
                let space = self.space(&m.namespace)?;
                check_metadata(&m.metadata)?;
                m.vector = Self::admit(&space, std::mem::take(&mut m.vector))?;
                Ok(Arc::new(m))
            })
            .collect::<Result<Vec<_>>>();
        let records = match admitted {
            Ok(r) if r.is_empty() => return done(Ok(r)),
            Ok(r) => r,
            Err(e) => return done(Err(e)),
        };
        if self.durability() == Durability::Memory {
            if let Err(e) = self.shared.append_memory_messages(&records) {
                return done(Err(e));
            }
            done(Ok(records));
            // After the hand-over, as after a commit (`Shared::finish`).
            return self.shared.notify_discarded();
        }
        let op = Op::PutMessages(records.clone());
        let done = Box::new(move |r: Result<Reply>| done(r.map(|_| records)));
        match slot {
            Some(slot) => self.submit_in(slot, op, done),
            None => self.submit_then(op, done),
        }
    }

    /// Records settlements; `done` hears when they are committed. If the
    /// writer's queue is full they wait in line for a place and this
    /// returns at once. At
    /// `Memory` durability there is nothing to restore after a restart, so
    /// nothing is written; only namespaces with `keep_acked_ms` count them
    /// (see [`Store::keeps_settlements`]).
    pub fn settle_messages(&self, settled: Vec<Settled>, done: Completion<()>) {
        if settled.is_empty() {
            return done(Ok(()));
        }
        if self.durability() == Durability::Memory {
            self.shared.settle_memory(&settled);
            return done(Ok(()));
        }
        self.submit_then(Op::Settle(settled), Box::new(move |r| done(r.map(|_| ()))));
    }

    /// A stored message by id.
    pub fn get_message(&self, id: Uuid) -> Result<Option<Arc<MessageRecord>>> {
        if self.durability() == Durability::Memory {
            return Ok(lock(&self.shared.memory_messages).get(&id).cloned());
        }
        contain("reading a message", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(MESSAGES)?;
            let m = t.get(id.as_u128())?;
            m.map(|v| decode(v.value(), "message").map(Arc::new))
                .transpose()
        })
    }

    /// Every stored message some recipient has not settled, oldest first:
    /// what the mailboxes hold again after a restart.
    pub fn unsettled_messages(&self) -> Result<Vec<Unsettled>> {
        if self.durability() == Durability::Memory {
            return Ok(Vec::new());
        }
        contain("reading messages", || {
            let txn = self.shared.begin_read()?;
            let settled = settled_pairs(&txn)?;
            let mut out = Vec::new();
            for row in txn.open_table(MESSAGES)?.iter()? {
                let (_, v) = row?;
                let m: MessageRecord = decode(v.value(), "message")?;
                out.extend(unsettled_of(&Arc::new(m), &settled));
            }
            Ok(out)
        })
    }

    /// Every settlement recorded for `recipient`, oldest message first.
    pub fn settlements_of(&self, recipient: &str) -> Result<Vec<Settled>> {
        if self.durability() == Durability::Memory {
            return Ok(Vec::new());
        }
        contain("reading settlements", || {
            let txn = self.shared.begin_read()?;
            let mut out = Vec::new();
            for row in txn.open_table(SETTLED)?.iter()? {
                let (k, v) = row?;
                let (id, r) = k.value();
                if r == recipient {
                    let (settlement, at_ms): (Settlement, u64) = decode(v.value(), "settlement")?;
                    out.push(Settled {
                        message: Uuid::from_u128(id),
                        recipient: r.to_string(),
                        settlement,
                        at_ms,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Stores `value` under `(kind, key)` in the catalog, replacing any
    /// value there; answered after the commit.
    pub fn catalog_put(&self, kind: &str, key: &str, value: Vec<u8>) -> Result<()> {
        check_catalog_key(kind, key)?;
        self.submit(Op::CatalogPut {
            kind: kind.to_string(),
            key: key.to_string(),
            value,
            namespace: None,
        })
        .map(|_| ())
    }

    /// Like [`Store::catalog_put`] for a record that belongs to
    /// `namespace` (its access list, say): its change-feed entry is
    /// under that namespace, so a sync job that copies the namespace
    /// copies the record (the first record of a key wins on the target).
    pub fn catalog_put_in(
        &self,
        namespace: &str,
        kind: &str,
        key: &str,
        value: Vec<u8>,
    ) -> Result<()> {
        check_catalog_key(kind, key)?;
        self.submit(Op::CatalogPut {
            kind: kind.to_string(),
            key: key.to_string(),
            value,
            namespace: Some(namespace.to_string()),
        })
        .map(|_| ())
    }

    /// Creates `space`, if given, and puts every record, as one commit:
    /// all or none. A namespace that exists with this very configuration
    /// is kept, as [`Store::create_namespace`] keeps it, and the records
    /// are put; one that exists with another configuration (or that was
    /// created meanwhile) refuses the whole write with
    /// [`StorageError::NamespaceExists`], and so does a failed commit with
    /// its error: then neither the namespace nor any record is stored.
    /// Nothing to write is `Ok` at once.
    pub fn catalog_put_all(
        &self,
        space: Option<SpaceConfig>,
        records: Vec<CatalogRecord>,
    ) -> Result<()> {
        match self.catalog_put_all_op(space, records)? {
            Some(op) => self.submit(op).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Like [`Store::catalog_put_all`] without waiting: `done` hears the
    /// commit (at once, on this thread, for a refusal found before it or
    /// for nothing to write). Writes submitted one after another without
    /// waiting are committed in that order, as many together as the
    /// writer groups: a batch of connects shares its commits this way.
    pub fn catalog_put_all_then(
        &self,
        space: Option<SpaceConfig>,
        records: Vec<CatalogRecord>,
        done: Completion<()>,
    ) {
        match self.catalog_put_all_op(space, records) {
            Ok(Some(op)) => self.submit_then(op, Box::new(move |r| done(r.map(|_| ())))),
            Ok(None) => done(Ok(())),
            Err(e) => done(Err(e)),
        }
    }

    /// The write [`Store::catalog_put_all`] submits, checked; `None` for
    /// nothing to write.
    fn catalog_put_all_op(
        &self,
        space: Option<SpaceConfig>,
        records: Vec<CatalogRecord>,
    ) -> Result<Option<Op>> {
        for r in &records {
            check_catalog_key(&r.kind, &r.key)?;
        }
        let space = match space {
            Some(config) => self.namespace_to_create(config)?,
            None => None,
        };
        if space.is_none() && records.is_empty() {
            return Ok(None);
        }
        Ok(Some(Op::CatalogPutAll { space, records }))
    }

    /// Like [`Store::catalog_put`] without waiting: `done` hears the commit.
    /// Writes are committed in the order they are submitted.
    pub fn catalog_put_then(&self, kind: &str, key: &str, value: Vec<u8>, done: Completion<()>) {
        if let Err(e) = check_catalog_key(kind, key) {
            return done(Err(e));
        }
        let op = Op::CatalogPut {
            kind: kind.to_string(),
            key: key.to_string(),
            value,
            namespace: None,
        };
        self.submit_then(op, Box::new(move |r| done(r.map(|_| ()))));
    }

    /// Removes `(kind, key)` from the catalog; whether it was there.
    pub fn catalog_delete(&self, kind: &str, key: &str) -> Result<bool> {
        check_catalog_key(kind, key)?;
        match self.submit(Op::CatalogDelete {
            kind: kind.to_string(),
            key: key.to_string(),
        })? {
            Reply::Deleted(d) => Ok(d),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// Every `(key, value)` of a kind in the catalog, by key.
    pub fn catalog_list(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>> {
        contain("reading the catalog", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(CATALOG)?;
            let mut out = Vec::new();
            for row in t.range((kind, "")..)? {
                let (k, v) = row?;
                let (k_kind, key) = k.value();
                if k_kind != kind {
                    break;
                }
                out.push((key.to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// The value under `(kind, key)` in the catalog, if any (one lookup,
    /// however many records the kind holds).
    pub fn catalog_get(&self, kind: &str, key: &str) -> Result<Option<Vec<u8>>> {
        check_catalog_key(kind, key)?;
        contain("reading the catalog", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(CATALOG)?;
            Ok(t.get((kind, key))?.map(|v| v.value().to_vec()))
        })
    }
}

fn check_catalog_key(kind: &str, key: &str) -> Result<()> {
    if kind.is_empty() || kind.len() > 256 || key.len() > 1024 {
        return Err(StorageError::InvalidQuery(format!(
            "catalog kind must be 1 to 256 bytes and key at most 1024 (got {} and {})",
            kind.len(),
            key.len()
        )));
    }
    Ok(())
}

/// `(expires_ms, id)` of stored messages with a TTL, earliest first.
pub(crate) type Expiries = BTreeSet<(u64, Uuid)>;

/// Every `(message, recipient)` pair with a settlement.
pub(crate) fn settled_pairs(txn: &redb::ReadTransaction) -> Result<HashSet<(u128, String)>> {
    let mut settled = HashSet::new();
    for row in txn.open_table(SETTLED)?.iter()? {
        let (k, _) = row?;
        let (id, recipient) = k.value();
        settled.insert((id, recipient.to_string()));
    }
    Ok(settled)
}

/// The message with its recipients that have not settled it, if any has not.
pub(crate) fn unsettled_of(
    m: &Arc<MessageRecord>,
    settled: &HashSet<(u128, String)>,
) -> Option<Unsettled> {
    let id = m.id.as_u128();
    let recipients: Vec<String> =
        m.to.iter()
            .filter(|r| !settled.contains(&(id, (*r).clone())))
            .cloned()
            .collect();
    (!recipients.is_empty()).then(|| Unsettled {
        message: m.clone(),
        recipients,
    })
}

/// Message entries per namespace, and `(expires_ms, id)` of those with a
/// TTL, from stored rows (at open); each message also goes into its
/// namespace's retention ledger, if it keeps one, and those of namespaces
/// with `keep_acked_ms` are listed with their number of recipients (see
/// `Shared::schedule_settled`).
pub(crate) fn message_entries(
    rows: impl Iterator<Item = Result<Arc<MessageRecord>>>,
    spaces: &HashMap<String, Arc<crate::store::Space>>,
) -> Result<(
    HashMap<String, Vec<Entry>>,
    Expiries,
    crate::retention::Settling,
)> {
    let mut out: HashMap<String, Vec<Entry>> = HashMap::new();
    let mut expiries = BTreeSet::new();
    let mut settling = HashMap::new();
    for m in rows {
        let m = m?;
        if let Some(t) = m.expires_ms {
            expiries.insert((t, m.id));
        }
        if let Some(space) = spaces.get(&m.namespace) {
            space.note_held(&m, &mut settling);
        }
        out.entry(m.namespace.clone()).or_default().push(m.entry());
    }
    Ok((out, expiries, settling))
}
