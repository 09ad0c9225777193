//! The writer's side of a transaction: the operations callers submit, and one
//! function per operation over the open tables of one redb write
//! transaction. `Store`'s writer thread groups requests, runs each through
//! [`Tables::apply`], commits once, then applies what [`Applied`] lists to
//! memory and answers each caller.

use redb::{Key, ReadableTable, Table, TableDefinition, Value, WriteTransaction};
use uuid::Uuid;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use crate::blocks::{AuditAction, AuditEntry, Block, BlockContent, BlockPermissions, BlockVersion};
use crate::error::{Result, StorageError};
use crate::messages::{MessageRecord, Settled};
use crate::record::{
    Change, ChangeBody, ChangeKind, SpaceConfig, VectorRecord, VectorUpdate, decode, encode, now_ms,
};
use crate::store::{
    AUDIT, BLOCK_NAMES, BLOCKS, CATALOG, CHANGES, FEED_PUBLISHED, FEED_TRIM_STEP, MESSAGES,
    SETTLED, SPACES, Space, TOMBSTONES, VECTORS,
};
use crate::sync::{Clock, Tombstone, next_hlc};
use hvs_types::{ConflictStrategy, Filter};

mod remote;
mod retention;

pub use remote::ApplyOutcome;

/// Who the audit log names for what the store does by itself.
pub(crate) const SYSTEM_ACTOR: &str = "hvs";

/// Expired messages one purge removes at most (one transaction), so that a
/// large backlog (after a restart, say) never makes one giant write.
pub(crate) const PURGE_BATCH: usize = 10_000;

/// A write a caller submits.
pub(crate) enum Op {
    CreateSpace(SpaceConfig),
    Insert(Vec<VectorRecord>),
    Update {
        id: Uuid,
        update: VectorUpdate,
    },
    Delete(Uuid),
    /// Deletes each id (one commit); answers one bool per id.
    DeleteMany(Vec<Uuid>),
    /// Deletes the namespace's vectors whose metadata matches, as of the
    /// commit.
    DeleteByFilter {
        namespace: String,
        filter: Filter,
    },
    /// Deletes a namespace: config, vectors, index, graph dump.
    DeleteSpace(String),
    CreateBlock {
        actor: String,
        block: Block,
    },
    UpdateBlock {
        actor: String,
        id: Uuid,
        content: BlockContent,
    },
    DeleteBlock {
        actor: String,
        id: Uuid,
    },
    SetBlockPermissions {
        actor: String,
        id: Uuid,
        permissions: BlockPermissions,
    },
    /// A refused read, recorded.
    Audit {
        actor: String,
        action: AuditAction,
        block: Option<Uuid>,
        name: Option<String>,
        outcome: String,
    },
    /// Removes every expired block from the file.
    PurgeExpired,
    PutMessages(Vec<std::sync::Arc<MessageRecord>>),
    /// Removes these expired messages (`(expires_ms, id)`, at most
    /// [`PURGE_BATCH`]): their rows, their settlements, their index entries.
    PurgeMessages(Vec<(u64, Uuid)>),
    /// Removes these messages, which a retention limit discards (the
    /// writer's sweep, at most [`PURGE_BATCH`]).
    DiscardMessages(Vec<Uuid>),
    /// Nothing of its own: the writer purges what is due in the same
    /// commit and answers after it (`Store::purge_due`).
    Sweep,
    Settle(Vec<Settled>),
    CatalogPut {
        kind: String,
        key: String,
        value: Vec<u8>,
        /// The namespace the record belongs to, if any (its change is
        /// logged under it).
        namespace: Option<String>,
    },
    CatalogDelete {
        kind: String,
        key: String,
    },
    /// Creates `space`, if any, and puts every record, in one commit: a
    /// refusal (the namespace exists) writes none of them
    /// (`Store::catalog_put_all`).
    CatalogPutAll {
        space: Option<SpaceConfig>,
        records: Vec<crate::messages::CatalogRecord>,
    },
    /// Applies changes from another instance's feed (`remote.rs`).
    ApplyRemote {
        /// Who the audit log names for conflicts: the sync job.
        job: String,
        strategy: ConflictStrategy,
        changes: Vec<Change>,
        /// A mirror's job: messages, settlements, expiries, blocks and
        /// every catalog record apply too, as the source left them.
        mirror: bool,
    },
    /// Sets a number in the `meta` table (positions kept for the layers
    /// above, such as the last change the feed's publisher had
    /// acknowledged); never in the change feed.
    SetMark {
        key: String,
        value: u64,
    },
}

impl Op {
    /// Whether this is the store's own write (from a model or the API),
    /// which a closed write fence refuses; changes applied from another
    /// instance, positions, audit rows and expiry purges are not.
    pub(crate) fn is_own_write(&self) -> bool {
        match self {
            Op::ApplyRemote { .. }
            | Op::SetMark { .. }
            | Op::Audit { .. }
            | Op::PurgeExpired
            | Op::PurgeMessages(_)
            | Op::DiscardMessages(_)
            | Op::Sweep => false,
            Op::CatalogPut { kind, .. } | Op::CatalogDelete { kind, .. } => !kind.starts_with('_'),
            _ => true,
        }
    }
}

/// The answer to an operation.
pub(crate) enum Reply {
    Done,
    Records(Vec<VectorRecord>),
    Deleted(bool),
    DeletedEach(Vec<bool>),
    Count(usize),
    /// Boxed: a block is much larger than the other answers.
    Block(Box<Block>),
    /// Blocks purged, and the earliest expiry among those left.
    Purged {
        count: usize,
        next_expiry: Option<u64>,
    },
    /// One outcome per remote change.
    Outcomes(Vec<ApplyOutcome>),
}

/// A change made in a transaction, applied to memory after its commit.
pub(crate) enum Applied {
    Space(SpaceConfig),
    /// A namespace deleted: its index and graph dump go.
    DropSpace(String),
    Upsert(VectorRecord),
    Remove {
        namespace: String,
        id: Uuid,
    },
    IndexBlock(Block),
    UnindexBlock(Uuid),
    IndexMessages(Vec<std::sync::Arc<MessageRecord>>),
    /// Messages removed: `due` leaves the set of expiries (whether or
    /// not its row was still there), `removed` (their rows deleted) the
    /// index and the set; `why` says which counter they go to, and
    /// whether the mailboxes hear of them (`store/expiry.rs`).
    MessagesPurged {
        due: Vec<(u64, Uuid)>,
        removed: Vec<crate::retention::Removed>,
        why: crate::retention::Why,
    },
    /// Messages every recipient settled, removed at these times
    /// (`keep_acked_ms`).
    ScheduleRemovals(Vec<(u64, Uuid)>),
}

/// The answer to one operation of a group, with what to apply after commit;
/// an `Err` refuses this operation only.
pub(crate) type OpOutcome = Result<(Reply, Vec<Applied>)>;

/// An operation's outcome, or (outer `Err`) a storage failure that aborts the
/// whole group's transaction.
type Step = Result<OpOutcome>;

fn done(reply: Reply, applied: Vec<Applied>) -> Step {
    Ok(Ok((reply, applied)))
}

/// A table of one write transaction, opened the first time an operation
/// touches it. redb looks each opened table up in its table of tables and,
/// at the commit, again to store its root, changed or not: a transaction
/// that opened all eleven to write a connect's rows, in three of them,
/// paid for eleven (docs/BENCHMARKS.md, "Connects in batches").
pub(crate) struct Lazy<'t, K: Key + 'static, V: Value + 'static> {
    txn: &'t WriteTransaction,
    definition: TableDefinition<'static, K, V>,
    table: Option<Table<'t, K, V>>,
}

impl<'t, K: Key + 'static, V: Value + 'static> Lazy<'t, K, V> {
    fn new(txn: &'t WriteTransaction, definition: TableDefinition<'static, K, V>) -> Self {
        Self {
            txn,
            definition,
            table: None,
        }
    }

    /// The table, opened now if it was not yet.
    fn open(&mut self) -> Result<&mut Table<'t, K, V>> {
        let table = match self.table.take() {
            Some(t) => t,
            None => self.txn.open_table(self.definition)?,
        };
        Ok(self.table.insert(table))
    }
}

/// The tables of one write transaction (each opened when first used), and
/// the change-feed and audit sequence numbers it has reached.
pub(crate) struct Tables<'t> {
    spaces: Lazy<'t, &'static str, &'static [u8]>,
    vectors: Lazy<'t, u128, &'static [u8]>,
    changes: Lazy<'t, u64, &'static [u8]>,
    blocks: Lazy<'t, u128, &'static [u8]>,
    names: Lazy<'t, &'static str, u128>,
    audit: Lazy<'t, u64, &'static [u8]>,
    messages: Lazy<'t, u128, &'static [u8]>,
    settled: Lazy<'t, (u128, &'static str), &'static [u8]>,
    catalog: Lazy<'t, (&'static str, &'static str), &'static [u8]>,
    tombstones: Lazy<'t, u128, &'static [u8]>,
    meta: Lazy<'t, &'static str, u64>,
    /// Last change-feed sequence number written.
    pub(crate) seq: u64,
    /// Last hybrid-logical-clock timestamp given out.
    pub(crate) hlc: u64,
    /// This store's instance id: its entry in version vectors.
    instance: u64,
    /// Last audit sequence number written.
    pub(crate) audit_seq: u64,
    /// The change-feed entries of the operation being applied, written as
    /// one row when it succeeds ([`Tables::apply`]).
    logged: Vec<Change>,
    /// The namespaces in memory, as of the last commit (the writer applies
    /// each commit before it starts the next transaction).
    memory: &'t RwLock<HashMap<String, Arc<Space>>>,
    /// Ids of the vectors inserted by this transaction: with the ids in
    /// memory, every vector a namespace may hold now.
    inserted: Vec<Uuid>,
    /// Messages stored by this transaction (not in memory yet).
    messages_put: Vec<Arc<MessageRecord>>,
    /// Namespaces found in `spaces` by this transaction (forgotten when one
    /// is deleted).
    known_spaces: HashSet<String>,
    /// The ledger changes of this transaction (`writer/retention.rs`).
    undo: &'t crate::retention::UndoLog,
    /// The store's clock when the transaction began.
    now_ms: u64,
}

impl<'t> Tables<'t> {
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        positions: Positions,
        memory: &'t RwLock<HashMap<String, Arc<Space>>>,
        undo: &'t crate::retention::UndoLog,
    ) -> Result<Self> {
        let Positions {
            seq,
            audit_seq,
            hlc,
            instance,
            now_ms,
        } = positions;
        Ok(Self {
            spaces: Lazy::new(txn, SPACES),
            vectors: Lazy::new(txn, VECTORS),
            changes: Lazy::new(txn, CHANGES),
            blocks: Lazy::new(txn, BLOCKS),
            names: Lazy::new(txn, BLOCK_NAMES),
            audit: Lazy::new(txn, AUDIT),
            messages: Lazy::new(txn, MESSAGES),
            settled: Lazy::new(txn, SETTLED),
            catalog: Lazy::new(txn, CATALOG),
            tombstones: Lazy::new(txn, TOMBSTONES),
            meta: Lazy::new(txn, crate::store::META),
            seq,
            audit_seq,
            logged: Vec::new(),
            hlc,
            instance,
            memory,
            inserted: Vec::new(),
            messages_put: Vec::new(),
            known_spaces: HashSet::new(),
            undo,
            now_ms,
        })
    }

    /// Removes the change feed's oldest rows, at most [`FEED_TRIM_STEP`],
    /// once its oldest row's number is that step or more below the floor:
    /// `keep` below the last entry, and never above the cluster
    /// publisher's saved position ([`FEED_PUBLISHED`]). Only rows whose
    /// entries all lie at or below the floor go, and never the last row,
    /// whose number a reopen reads. One lookup of the first row when
    /// nothing is due (the saved position can only lower the floor, so it
    /// is read only when the feed is long enough).
    pub(crate) fn trim_feed(&mut self, keep: u64) -> Result<()> {
        let mut floor = self.seq.saturating_sub(keep);
        let Some(first) = self.changes.open()?.first()?.map(|(k, _)| k.value()) else {
            return Ok(());
        };
        if first.saturating_add(FEED_TRIM_STEP) > floor {
            return Ok(());
        }
        if let Some(published) = self.meta.open()?.get(FEED_PUBLISHED)? {
            floor = floor.min(published.value());
        }
        if first.saturating_add(FEED_TRIM_STEP) > floor {
            return Ok(());
        }
        let changes = self.changes.open()?;
        // A row is keyed by its last entry's number: every entry of a row
        // keyed at or below the floor is.
        let due = changes
            .range(..=floor.min(self.seq.saturating_sub(1)))?
            .take(FEED_TRIM_STEP as usize)
            .map(|row| row.map(|(k, _)| k.value()))
            .collect::<std::result::Result<Vec<u64>, _>>()?;
        for key in due {
            changes.remove(key)?;
        }
        Ok(())
    }

    /// Runs one operation. A refusal (`Ok(Err(_))`) refuses this operation
    /// only and writes nothing but, for blocks, its audit row; the group's
    /// other operations still commit. An outer `Err` is a storage failure:
    /// the caller aborts the transaction.
    pub(crate) fn apply(&mut self, op: &Op) -> Step {
        let step = self.apply_op(op)?;
        // A refusal has logged nothing (it writes nothing); whatever an
        // operation logged goes in, as each entry did when it was its own
        // row.
        self.write_logged()?;
        Ok(step)
    }

    /// Writes the feed entries of the operation just applied: one row,
    /// keyed by the last entry's number, holding the entry (a msgpack
    /// `Change`) or, when the operation made several (a batch of messages
    /// or settlements, a multi-vector insert), all of them in order (an
    /// array of `Change`): one B-tree insert per operation, not per
    /// message (`crate::record::decode_change_row` reads both).
    fn write_logged(&mut self) -> Result<()> {
        let row = match self.logged.as_slice() {
            [] => return Ok(()),
            [one] => encode(one)?,
            many => encode(&many)?,
        };
        self.changes.open()?.insert(self.seq, row.as_slice())?;
        self.logged.clear();
        Ok(())
    }

    fn apply_op(&mut self, op: &Op) -> Step {
        match op {
            Op::CreateSpace(config) => self.create_space(config),
            Op::Insert(records) => self.insert(records),
            Op::Update { id, update } => self.update(*id, update),
            Op::Delete(id) => self.delete(*id),
            Op::DeleteMany(ids) => self.delete_many(ids),
            Op::DeleteByFilter { namespace, filter } => self.delete_by_filter(namespace, filter),
            Op::DeleteSpace(name) => self.delete_space(name),
            Op::CreateBlock { actor, block } => self.create_block(actor, block),
            Op::UpdateBlock { actor, id, content } => self.update_block(actor, *id, content),
            Op::DeleteBlock { actor, id } => self.delete_block(actor, *id),
            Op::SetBlockPermissions {
                actor,
                id,
                permissions,
            } => self.set_block_permissions(actor, *id, permissions),
            Op::Audit {
                actor,
                action,
                block,
                name,
                outcome,
            } => {
                self.audit(actor, *action, *block, name.as_deref(), outcome.clone())?;
                done(Reply::Done, vec![])
            }
            Op::PurgeExpired => self.purge_expired(),
            Op::PutMessages(records) => self.put_messages(records, true),
            Op::PurgeMessages(due) => self.purge_messages(due),
            Op::DiscardMessages(ids) => self.discard(ids),
            Op::Sweep => done(Reply::Done, vec![]),
            Op::Settle(settled) => self.settle(settled),
            Op::CatalogPut {
                kind,
                key,
                value,
                namespace,
            } => {
                self.catalog
                    .open()?
                    .insert((kind.as_str(), key.as_str()), value.as_slice())?;
                let namespace = namespace.as_deref().unwrap_or("");
                self.log_catalog(namespace, kind, key, Some(value))?;
                done(Reply::Done, vec![])
            }
            Op::CatalogPutAll { space, records } => self.catalog_put_all(space.as_ref(), records),
            Op::CatalogDelete { kind, key } => {
                let was = self
                    .catalog
                    .open()?
                    .remove((kind.as_str(), key.as_str()))?
                    .is_some();
                if was {
                    self.log_catalog("", kind, key, None)?;
                }
                done(Reply::Deleted(was), vec![])
            }
            Op::ApplyRemote {
                job,
                strategy,
                changes,
                mirror,
            } => self.apply_remote(job, *strategy, changes, *mirror),
            Op::SetMark { key, value } => {
                self.meta.open()?.insert(key.as_str(), *value)?;
                done(Reply::Done, vec![])
            }
        }
    }

    /// The next hybrid-logical-clock timestamp.
    fn tick(&mut self) -> u64 {
        self.hlc = next_hlc(self.hlc, now_ms());
        self.hlc
    }

    /// Logs a catalog write (under `namespace`, or none if empty), unless
    /// its kind is local to this instance (its name begins with `_`, like
    /// sync jobs' own records).
    fn log_catalog(
        &mut self,
        namespace: &str,
        kind: &str,
        key: &str,
        value: Option<&Vec<u8>>,
    ) -> Result<()> {
        if kind.starts_with('_') {
            return Ok(());
        }
        let (change, body) = match value {
            Some(v) => (ChangeKind::CatalogPut, Some(v.clone())),
            None => (ChangeKind::CatalogDelete, None),
        };
        let body = ChangeBody::Catalog {
            kind: kind.to_string(),
            key: key.to_string(),
            value: body,
        };
        self.log(change, namespace, None, 0, Some(body))
    }

    /// One row per message: payload, vector and recipients together,
    /// within the namespace's retention limits if `enforce`
    /// (`writer/retention.rs`).
    fn put_messages(&mut self, records: &[std::sync::Arc<MessageRecord>], enforce: bool) -> Step {
        // A namespace deleted since the messages were checked: refused, or
        // their rows would outlive it.
        for m in records {
            if !self.space_exists(&m.namespace)? {
                return Ok(Err(StorageError::NamespaceNotFound(m.namespace.clone())));
            }
        }
        self.put_within_limits(records, enforce)
    }

    /// Deletes the rows of due messages (TTL, `keep_acked_ms`) and every
    /// settlement of them. A row that is gone already (or that cannot be
    /// read) is skipped: the purge of the rest goes on, and its expiry is
    /// forgotten either way.
    fn purge_messages(&mut self, due: &[(u64, Uuid)]) -> Step {
        let ids: Vec<Uuid> = due.iter().map(|(_, id)| *id).collect();
        let removed = self.remove_messages(&ids)?;
        done(
            Reply::Done,
            vec![Applied::MessagesPurged {
                due: due.to_vec(),
                removed,
                why: crate::retention::Why::Due,
            }],
        )
    }

    /// Records settlements of stored messages. A settlement of a message
    /// that is not stored (purged once it expired, typically: its dead
    /// letter, or a late ack) is dropped, so no row outlives its message.
    fn settle(&mut self, settled: &[Settled]) -> Step {
        let mut removals = Vec::new();
        for s in settled {
            let head = match self.messages.open()?.get(s.message.as_u128())? {
                Some(v) => decode::<MessageHead>(v.value(), "message")?,
                None => continue,
            };
            self.settled.open()?.insert(
                (s.message.as_u128(), s.recipient.as_str()),
                encode(&(&s.settlement, s.at_ms))?.as_slice(),
            )?;
            removals.extend(self.removal_after_settled(s.message, &head)?);
            let namespace = head.namespace;
            let body = ChangeBody::Settled(s.clone());
            self.log(
                ChangeKind::Settle,
                &namespace,
                Some(s.message),
                0,
                Some(body),
            )?;
        }
        let applied = if removals.is_empty() {
            vec![]
        } else {
            vec![Applied::ScheduleRemovals(removals)]
        };
        done(Reply::Done, applied)
    }

    /// Appends a change to the feed, stamped with the store's clock.
    fn log(
        &mut self,
        kind: ChangeKind,
        namespace: &str,
        id: Option<Uuid>,
        version: u64,
        body: Option<ChangeBody>,
    ) -> Result<()> {
        // The store's clock at the change (a version from elsewhere keeps
        // its own in its body; the clock has moved past it already), so
        // the last change holds the largest clock given out.
        let hlc = match &body {
            Some(ChangeBody::Vector(r)) => self.hlc.max(r.hlc),
            Some(ChangeBody::Tombstone(t)) => self.hlc.max(t.hlc),
            _ => self.tick(),
        };
        self.seq += 1;
        let c = Change {
            seq: self.seq,
            kind,
            namespace: namespace.to_string(),
            id,
            version,
            timestamp_ms: now_ms(),
            hlc,
            body,
        };
        self.logged.push(c);
        Ok(())
    }

    fn audit(
        &mut self,
        actor: &str,
        action: AuditAction,
        block: Option<Uuid>,
        name: Option<&str>,
        outcome: String,
    ) -> Result<()> {
        self.audit_seq += 1;
        let e = AuditEntry {
            seq: self.audit_seq,
            at_ms: now_ms(),
            actor: actor.to_string(),
            action,
            block,
            name: name.map(str::to_string),
            outcome,
        };
        self.audit
            .open()?
            .insert(self.audit_seq, encode(&e)?.as_slice())?;
        Ok(())
    }

    /// Records a refused block operation and returns its error.
    fn refuse(
        &mut self,
        actor: &str,
        action: AuditAction,
        block: Option<Uuid>,
        name: Option<&str>,
        e: StorageError,
    ) -> Step {
        self.audit(actor, action, block, name, format!("refused: {e}"))?;
        Ok(Err(e))
    }

    fn create_space(&mut self, config: &SpaceConfig) -> Step {
        if self.spaces.open()?.get(config.name.as_str())?.is_some() {
            return Ok(Err(StorageError::NamespaceExists(config.name.clone())));
        }
        self.spaces
            .open()?
            .insert(config.name.as_str(), encode(config)?.as_slice())?;
        let body = ChangeBody::Namespace(config.clone());
        self.log(
            ChangeKind::CreateNamespace,
            &config.name,
            None,
            0,
            Some(body),
        )?;
        done(Reply::Done, vec![Applied::Space(config.clone())])
    }

    /// Creates `space` (refused, writing nothing, if it exists) and puts
    /// `records`. Past the namespace only a storage failure can stop it,
    /// and that aborts the whole transaction: all or none.
    fn catalog_put_all(
        &mut self,
        space: Option<&SpaceConfig>,
        records: &[crate::messages::CatalogRecord],
    ) -> Step {
        let applied = match space {
            Some(config) => match self.create_space(config)? {
                Ok((_, applied)) => applied,
                Err(refused) => return Ok(Err(refused)),
            },
            None => Vec::new(),
        };
        for r in records {
            self.catalog
                .open()?
                .insert((r.kind.as_str(), r.key.as_str()), r.value.as_slice())?;
            let namespace = r.namespace.as_deref().unwrap_or("");
            self.log_catalog(namespace, &r.kind, &r.key, Some(&r.value))?;
        }
        done(Reply::Done, applied)
    }

    fn insert(&mut self, records: &[VectorRecord]) -> Step {
        // All or none, and never into a namespace deleted since the
        // records were built.
        for r in records {
            if !self.space_exists(&r.namespace)? {
                return Ok(Err(StorageError::NamespaceNotFound(r.namespace.clone())));
            }
        }
        let mut applied = Vec::with_capacity(records.len());
        let mut stored = Vec::with_capacity(records.len());
        for r in records {
            let hlc = self.tick();
            let r = VectorRecord {
                hlc,
                clock: Clock::default().with(self.instance, hlc),
                ..r.clone()
            };
            self.put_vector(ChangeKind::Insert, &r)?;
            applied.push(Applied::Upsert(r.clone()));
            stored.push(r);
        }
        done(Reply::Records(stored), applied)
    }

    fn update(&mut self, id: Uuid, update: &VectorUpdate) -> Step {
        let current = self
            .vectors
            .open()?
            .get(id.as_u128())?
            .map(|b| b.value().to_vec());
        let Some(bytes) = current else {
            return Ok(Err(StorageError::VectorNotFound(id)));
        };
        let mut r: VectorRecord = decode(&bytes, "vector record")?;
        if let Some(expected) = update.if_version
            && expected != r.version
        {
            return Ok(Err(StorageError::VersionConflict {
                id,
                expected,
                current: r.version,
            }));
        }
        if let Some(d) = &update.data {
            r.data = d.clone();
        }
        if let Some(reg) = &update.region {
            r.region = reg.clone();
        }
        if let Some(m) = &update.metadata {
            r.metadata = m.clone();
        }
        r.version += 1;
        r.timestamp_ms = now_ms();
        r.hlc = self.tick();
        r.clock = r.clock.with(self.instance, r.hlc);
        self.put_vector(ChangeKind::Update, &r)?;
        done(Reply::Records(vec![r.clone()]), vec![Applied::Upsert(r)])
    }

    /// Writes a vector's row (clearing any tombstone of it) and logs it.
    fn put_vector(&mut self, kind: ChangeKind, r: &VectorRecord) -> Result<()> {
        if kind == ChangeKind::Insert {
            self.inserted.push(r.id);
        }
        self.vectors
            .open()?
            .insert(r.id.as_u128(), encode(r)?.as_slice())?;
        self.tombstones.open()?.remove(r.id.as_u128())?;
        let body = Some(ChangeBody::Vector(r.clone()));
        self.log(kind, &r.namespace, Some(r.id), r.version, body)
    }

    /// Removes a vector's row, leaves `t` in its place, and logs it.
    fn put_tombstone(&mut self, t: Tombstone) -> Result<Applied> {
        self.vectors.open()?.remove(t.id.as_u128())?;
        self.tombstones
            .open()?
            .insert(t.id.as_u128(), encode(&t)?.as_slice())?;
        let (namespace, id, version) = (t.namespace.clone(), t.id, t.version);
        let body = Some(ChangeBody::Tombstone(t));
        self.log(ChangeKind::Delete, &namespace, Some(id), version, body)?;
        Ok(Applied::Remove { namespace, id })
    }

    /// The tombstone of a local deletion of `r`.
    fn tombstone_of(&mut self, r: &VectorRecord) -> Tombstone {
        let hlc = self.tick();
        Tombstone {
            id: r.id,
            namespace: r.namespace.clone(),
            version: r.version + 1,
            hlc,
            clock: r.clock.with(self.instance, hlc),
        }
    }

    fn delete(&mut self, id: Uuid) -> Step {
        match self.delete_row(id)? {
            Some(a) => done(Reply::Deleted(true), vec![a]),
            None => done(Reply::Deleted(false), vec![]),
        }
    }

    /// Deletes the vector `id` and logs it; what memory must forget, or
    /// `None` if there was no such vector.
    fn delete_row(&mut self, id: Uuid) -> Result<Option<Applied>> {
        let old = self
            .vectors
            .open()?
            .get(id.as_u128())?
            .map(|b| b.value().to_vec());
        let Some(bytes) = old else {
            return Ok(None);
        };
        let r: VectorRecord = decode(&bytes, "vector record")?;
        let t = self.tombstone_of(&r);
        self.put_tombstone(t).map(Some)
    }

    /// Deletes each id; an id asked twice is `false` the second time.
    fn delete_many(&mut self, ids: &[Uuid]) -> Step {
        let mut applied = Vec::new();
        let mut each = Vec::with_capacity(ids.len());
        for &id in ids {
            let a = self.delete_row(id)?;
            each.push(a.is_some());
            applied.extend(a);
        }
        done(Reply::DeletedEach(each), applied)
    }

    /// Whether the namespace `name` exists in this transaction.
    fn space_exists(&mut self, name: &str) -> Result<bool> {
        if self.known_spaces.contains(name) {
            return Ok(true);
        }
        let found = self.spaces.open()?.get(name)?.is_some();
        if found {
            self.known_spaces.insert(name.to_string());
        }
        Ok(found)
    }

    /// Ids that may be vectors of `namespace` in this transaction, in
    /// order: those in memory (every commit before this one) plus those
    /// this transaction inserted (of any namespace). Deleted ones are
    /// among them; their rows are gone.
    fn candidates(&self, namespace: &str) -> Vec<Uuid> {
        let spaces = self.memory.read().unwrap_or_else(|e| e.into_inner());
        let mut ids = spaces
            .get(namespace)
            .map_or_else(Vec::new, |s| s.vector_ids());
        drop(spaces);
        ids.extend(&self.inserted);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Deletes the vectors of `namespace` that `filter` matches (all if
    /// `None`) as this transaction sees them, one row at a time; what
    /// memory must forget.
    fn delete_in(&mut self, namespace: &str, filter: Option<&Filter>) -> Result<Vec<Applied>> {
        let mut applied = Vec::new();
        for id in self.candidates(namespace) {
            let r: VectorRecord = match self.vectors.open()?.get(id.as_u128())? {
                Some(bytes) => decode(bytes.value(), "vector record")?,
                None => continue,
            };
            if r.namespace == namespace && filter.is_none_or(|f| f.matches(&r.metadata)) {
                let t = self.tombstone_of(&r);
                applied.push(self.put_tombstone(t)?);
            }
        }
        Ok(applied)
    }

    fn delete_by_filter(&mut self, namespace: &str, filter: &Filter) -> Step {
        if !self.space_exists(namespace)? {
            return Ok(Err(StorageError::NamespaceNotFound(namespace.to_string())));
        }
        let applied = self.delete_in(namespace, Some(filter))?;
        done(Reply::Count(applied.len()), applied)
    }

    /// Messages stored with their vectors in `namespace`.
    fn messages_in(&self, namespace: &str) -> usize {
        let in_memory = self
            .memory
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(namespace)
            .map_or(0, |s| s.message_count());
        let here = self
            .messages_put
            .iter()
            .filter(|m| m.namespace == namespace);
        in_memory + here.count()
    }

    /// Deletes a namespace with all its vectors, unless messages are in
    /// it: one `Delete` change per vector, then `DeleteNamespace`.
    fn delete_space(&mut self, name: &str) -> Step {
        if !self.space_exists(name)? {
            return done(Reply::Deleted(false), vec![]);
        }
        let messages = self.messages_in(name);
        if messages > 0 {
            return Ok(Err(StorageError::NamespaceInUse {
                namespace: name.to_string(),
                messages,
            }));
        }
        // The whole index goes with `DropSpace`: no `Remove` each.
        self.delete_in(name, None)?;
        self.spaces.open()?.remove(name)?;
        self.known_spaces.remove(name);
        self.log(ChangeKind::DeleteNamespace, name, None, 0, None)?;
        done(
            Reply::Deleted(true),
            vec![Applied::DropSpace(name.to_string())],
        )
    }

    /// Logs a block as a change left it.
    fn log_block(&mut self, b: &Block) -> Result<()> {
        let body = Some(ChangeBody::Block(Box::new(b.clone())));
        self.log(ChangeKind::PutBlock, "", Some(b.id), b.version, body)
    }

    /// The block `id` unless it is absent or expired.
    fn live_block(&mut self, id: Uuid) -> Result<Option<Block>> {
        live_block(self.blocks.open()?, id)
    }

    fn create_block(&mut self, actor: &str, block: &Block) -> Step {
        let mut applied = Vec::new();
        let holder = self
            .names
            .open()?
            .get(block.name.as_str())?
            .map(|v| v.value());
        if let Some(old) = holder {
            match self.live_block(Uuid::from_u128(old))? {
                Some(_) => {
                    let e = StorageError::BlockNameTaken(block.name.clone());
                    return self.refuse(
                        actor,
                        AuditAction::CreateBlock,
                        None,
                        Some(&block.name),
                        e,
                    );
                }
                // An expired block frees its name.
                None => {
                    if self.blocks.open()?.remove(old)?.is_some() {
                        applied.push(Applied::UnindexBlock(Uuid::from_u128(old)));
                    }
                }
            }
        }
        self.blocks
            .open()?
            .insert(block.id.as_u128(), encode(block)?.as_slice())?;
        self.names
            .open()?
            .insert(block.name.as_str(), block.id.as_u128())?;
        self.audit(
            actor,
            AuditAction::CreateBlock,
            Some(block.id),
            Some(&block.name),
            "ok".into(),
        )?;
        self.log_block(block)?;
        applied.push(Applied::IndexBlock(block.clone()));
        done(Reply::Block(Box::new(block.clone())), applied)
    }

    fn update_block(&mut self, actor: &str, id: Uuid, content: &BlockContent) -> Step {
        let action = AuditAction::UpdateBlock;
        let Some(mut b) = self.live_block(id)? else {
            let e = StorageError::BlockNotFound(id.to_string());
            return self.refuse(actor, action, Some(id), None, e);
        };
        if let Some(e) = block_write_refusal(&b, actor) {
            return self.refuse(actor, action, Some(b.id), Some(&b.name), e);
        }
        let old = std::mem::replace(&mut b.content, content.clone());
        b.history.insert(
            0,
            BlockVersion {
                version: b.version,
                content: old,
                updated_ms: b.updated_ms,
            },
        );
        b.history.truncate(b.history_limit);
        b.version += 1;
        b.updated_ms = now_ms();
        self.blocks
            .open()?
            .insert(b.id.as_u128(), encode(&b)?.as_slice())?;
        self.audit(actor, action, Some(b.id), Some(&b.name), "ok".into())?;
        self.log_block(&b)?;
        done(
            Reply::Block(Box::new(b.clone())),
            vec![Applied::IndexBlock(b)],
        )
    }

    fn delete_block(&mut self, actor: &str, id: Uuid) -> Step {
        let action = AuditAction::DeleteBlock;
        let Some(b) = self.live_block(id)? else {
            return done(Reply::Deleted(false), vec![]);
        };
        if let Some(e) = block_write_refusal(&b, actor) {
            return self.refuse(actor, action, Some(b.id), Some(&b.name), e);
        }
        self.blocks.open()?.remove(b.id.as_u128())?;
        self.names.open()?.remove(b.name.as_str())?;
        self.audit(actor, action, Some(b.id), Some(&b.name), "ok".into())?;
        self.log(ChangeKind::DeleteBlock, "", Some(b.id), b.version, None)?;
        done(Reply::Deleted(true), vec![Applied::UnindexBlock(b.id)])
    }

    /// Replaces a block's permissions: its owner only (for a block without
    /// owner, its writers), read-only or not; every refusal audited. The
    /// version and history are the content's and do not change.
    fn set_block_permissions(
        &mut self,
        actor: &str,
        id: Uuid,
        permissions: &BlockPermissions,
    ) -> Step {
        let action = AuditAction::SetPermissions;
        let Some(mut b) = self.live_block(id)? else {
            let e = StorageError::BlockNotFound(id.to_string());
            return self.refuse(actor, action, Some(id), None, e);
        };
        if !b.permissions_settable_by(actor) {
            let e = StorageError::PermissionDenied {
                actor: actor.to_string(),
                action: "change the permissions of",
                block: b.name.clone(),
            };
            return self.refuse(actor, action, Some(b.id), Some(&b.name), e);
        }
        b.permissions = permissions.clone();
        self.blocks
            .open()?
            .insert(b.id.as_u128(), encode(&b)?.as_slice())?;
        self.audit(actor, action, Some(b.id), Some(&b.name), "ok".into())?;
        self.log_block(&b)?;
        done(Reply::Block(Box::new(b)), vec![])
    }

    fn purge_expired(&mut self) -> Step {
        let now = now_ms();
        let mut expired = Vec::new();
        let mut next_expiry: Option<u64> = None;
        for row in self.blocks.open()?.iter()? {
            let (_, v) = row?;
            let b: Block = decode(v.value(), "block")?;
            match b.expires_ms {
                Some(_) if b.expired(now) => expired.push(b),
                Some(t) => next_expiry = Some(next_expiry.map_or(t, |n| n.min(t))),
                None => {}
            }
        }
        let mut applied = Vec::with_capacity(expired.len());
        for b in &expired {
            self.blocks.open()?.remove(b.id.as_u128())?;
            let holder = self.names.open()?.get(b.name.as_str())?.map(|v| v.value());
            if holder == Some(b.id.as_u128()) {
                self.names.open()?.remove(b.name.as_str())?;
            }
            self.audit(
                SYSTEM_ACTOR,
                AuditAction::Expire,
                Some(b.id),
                Some(&b.name),
                "ok".into(),
            )?;
            self.log(ChangeKind::DeleteBlock, "", Some(b.id), b.version, None)?;
            applied.push(Applied::UnindexBlock(b.id));
        }
        done(
            Reply::Purged {
                count: expired.len(),
                next_expiry,
            },
            applied,
        )
    }
}

/// Where a write transaction starts: the feed's and the audit log's
/// sequence numbers and the clock, as the last commit left them, and the
/// store's instance id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Positions {
    pub(crate) seq: u64,
    pub(crate) audit_seq: u64,
    pub(crate) hlc: u64,
    pub(crate) instance: u64,
    /// The store's clock (expiry and retention read it).
    pub(crate) now_ms: u64,
}

/// The part of a stored message that settling and purging need.
#[derive(serde::Deserialize)]
pub(crate) struct MessageHead {
    pub(crate) namespace: String,
    #[serde(default)]
    pub(crate) to: Vec<String>,
    #[serde(default)]
    pub(crate) expires_ms: Option<u64>,
}

/// The block `id` unless it is absent or expired.
pub(crate) fn live_block(
    blocks: &impl ReadableTable<u128, &'static [u8]>,
    id: Uuid,
) -> Result<Option<Block>> {
    let b = blocks.get(id.as_u128())?;
    let b = b.map(|v| decode::<Block>(v.value(), "block")).transpose()?;
    Ok(b.filter(|b| !b.expired(now_ms())))
}

/// Why `actor` may not change `b`, if it may not.
fn block_write_refusal(b: &Block, actor: &str) -> Option<StorageError> {
    if b.readonly {
        Some(StorageError::ReadOnlyBlock(b.id))
    } else if !b.writable_by(actor) {
        Some(StorageError::PermissionDenied {
            actor: actor.to_string(),
            action: "write",
            block: b.name.clone(),
        })
    } else {
        None
    }
}
