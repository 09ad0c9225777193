//! The writer thread: group commits, answering each request after its
//! commit, and applying what was committed to memory.

use super::recovery::WriterState;
use super::*;
use crate::retention::Why;

/// How often an idle writer checks for expired blocks and messages to purge.
const PURGE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// What a group's transaction did: its operations' outcomes, the
/// positions it reached, and its commit.
struct Attempt {
    results: Vec<OpOutcome>,
    seq: u64,
    audit_seq: u64,
    hlc: u64,
    committed: Result<()>,
}

/// Answers every request of a group with [`StorageError::WriteFailed`].
fn refuse(batch: Vec<Request>, reason: &str) {
    for req in batch {
        req.reply
            .send(Err(StorageError::WriteFailed(reason.to_string())));
    }
}

impl Shared {
    pub(super) fn run_writer(
        &self,
        rx: Receiver<Request>,
        group: usize,
        durability: redb::Durability,
    ) {
        let mut state = WriterState::default();
        // More expired messages are due than the last purge took: go on
        // at once instead of waiting for a request or the next check.
        let mut backlog = false;
        let mut sweep_again = false;
        loop {
            let wait = if backlog {
                std::time::Duration::ZERO
            } else {
                PURGE_CHECK
            };
            let first = match rx.recv_timeout(wait) {
                Ok(r) => Some(r),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch: Vec<Request> = first.into_iter().collect();
            let now = self.retention.clock.now_ms();
            // Blocks expire by the system clock (`purge_expired` reads it).
            if lock(&self.next_expiry).is_some_and(|t| now_ms() >= t) {
                batch.push(Request {
                    op: Op::PurgeExpired,
                    reply: Replier::Nobody,
                    slot: None,
                });
            }
            let due = self.due_messages(now);
            let full = due.len() == PURGE_BATCH;
            let head = due.first().copied();
            backlog = false;
            let asked = batch.first().is_some_and(|r| matches!(r.op, Op::Sweep));
            let discards = self.swept_messages(now, asked || sweep_again);
            // A full batch: more may be due; look again at the next turn.
            sweep_again = discards.len() == PURGE_BATCH;
            if self.durability == Durability::Memory {
                self.remove_memory_messages(&due, Why::Due);
                let discards: Vec<(u64, Uuid)> = discards.into_iter().map(|id| (0, id)).collect();
                self.remove_memory_messages(&discards, Why::Limit);
                self.notify_discarded();
                backlog = full;
            } else {
                if !due.is_empty() {
                    batch.push(Request {
                        op: Op::PurgeMessages(due),
                        reply: Replier::Nobody,
                        slot: None,
                    });
                }
                if !discards.is_empty() {
                    batch.push(Request {
                        op: Op::DiscardMessages(discards),
                        reply: Replier::Nobody,
                        slot: None,
                    });
                }
            }
            if asked {
                // Answered after the purges it asked for are applied.
                batch.rotate_left(1);
            }
            if batch.is_empty() {
                // Idle while writes are refused: look at the disk now and
                // then, so that the store (and /health) says it takes
                // writes again without waiting for a write to try.
                if state.refusing.is_some() {
                    self.writable(&mut state);
                }
                continue;
            }
            while batch.len() < group {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            // Taken: their places in the queue go to whoever waits, who
            // hand their requests over while this group commits.
            for r in &mut batch {
                r.slot = None;
            }
            self.commit_group(batch, durability, &mut state);
            // A purge that committed took its messages out of the set; one
            // that failed left them (and is retried at the next check).
            if self.durability != Durability::Memory && full {
                let first = lock(&self.message_expiries).first().copied();
                let now = self.retention.clock.now_ms();
                backlog = first != head && first.is_some_and(|(t, _)| t <= now);
            }
        }
    }

    /// One transaction for the whole group; each caller is answered after
    /// the commit (with its own error if its operation was refused).
    ///
    /// If the disk fails the commit, every caller hears
    /// [`StorageError::WriteFailed`], nothing of the group is applied to
    /// memory, and writes are refused (reads go on, on a reopened handle)
    /// until the disk takes writes again: see [`Shared::recover`].
    pub(super) fn commit_group(
        &self,
        batch: Vec<Request>,
        durability: redb::Durability,
        state: &mut WriterState,
    ) {
        if !self.writable(state) {
            let reason = state.refusing.as_ref().map(|r| r.reason.clone());
            refuse(batch, &reason.unwrap_or_default());
            return;
        }
        self.apply_group(batch, durability, state);
        // Whatever of the group was not applied (`finish` keeps what was)
        // leaves the retention ledgers too.
        self.retention.undo.undo();
    }

    /// [`Shared::commit_group`] once the store takes writes.
    fn apply_group(
        &self,
        batch: Vec<Request>,
        durability: redb::Durability,
        state: &mut WriterState,
    ) {
        let started = std::time::Instant::now();
        let requests = batch.len() as u64;
        let seq_before = *lock(&self.last_seq);
        let audit_before = *lock(&self.last_audit);
        let marker = self.last_commit.load(Ordering::Relaxed) + 1;
        let db = match self.db() {
            Ok(db) => db,
            Err(e) => {
                refuse(batch, &e.to_string());
                return;
            }
        };
        let outcome = contain("writing", || -> Result<Attempt> {
            let mut txn = db.begin_write()?;
            txn.set_durability(durability)?;
            txn.set_quick_repair(self.quick_repair);
            let positions = Positions {
                seq: seq_before,
                audit_seq: audit_before,
                hlc: *lock(&self.last_hlc),
                instance: self.instance.load(Ordering::Relaxed),
                now_ms: self.retention.clock.now_ms(),
            };
            let mut tables = Tables::open(&txn, positions, &self.spaces, &self.retention.undo)?;
            // Checked once per group, before any of it is written: a
            // member of a failover group whose lease lapsed writes nothing
            // of its own (`fence.rs`).
            let fenced = self.fence.check(std::time::Instant::now()).err();
            let results = batch
                .iter()
                .map(|req| match &fenced {
                    Some(StorageError::NotPrimary { primary }) if req.op.is_own_write() => {
                        Ok(Err(StorageError::NotPrimary {
                            primary: primary.clone(),
                        }))
                    }
                    _ => tables.apply(&req.op),
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(keep) = self.feed_keep {
                tables.trim_feed(keep)?;
            }
            let (seq, audit_seq, hlc) = (tables.seq, tables.audit_seq, tables.hlc);
            drop(tables);
            if self.durability != Durability::Memory {
                txn.open_table(META)?.insert(LAST_COMMIT, marker)?;
            }
            let committed = txn.commit().map_err(StorageError::from);
            Ok(Attempt {
                results,
                seq,
                audit_seq,
                hlc,
                committed,
            })
        });
        drop(db);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_requests.fetch_add(requests, Ordering::Relaxed);
        self.commit_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let (e, results) = match outcome {
            Ok(Attempt {
                results,
                seq,
                audit_seq,
                hlc,
                committed: Ok(()),
            }) => {
                *lock(&self.last_seq) = seq;
                *lock(&self.last_audit) = audit_seq;
                *lock(&self.last_hlc) = hlc;
                self.last_commit.store(marker, Ordering::Relaxed);
                state.backoff = std::time::Duration::ZERO;
                self.finish(batch, results, None);
                return;
            }
            Ok(Attempt {
                results,
                committed: Err(e),
                ..
            }) => (e, Some(results)),
            Err(e) => (e, None),
        };
        if self.durability == Durability::Memory || !self.latched() {
            // Refused before the disk was involved (a damaged page, a value
            // too large): nothing was committed, nothing is applied,
            // everyone hears why; the handle still works.
            let msg = e.to_string();
            for req in batch {
                req.reply.send(Err(match &e {
                    StorageError::Corrupt(m) => StorageError::Corrupt(m.clone()),
                    _ => StorageError::Io(msg.clone()),
                }));
            }
            return;
        }
        let reason = match e {
            StorageError::Io(m) => m,
            other => other.to_string(),
        };
        match (self.recover(&reason, state), results) {
            // Only the sync after the commit's last write failed: the file
            // holds the group. Memory follows the file, but the callers
            // hear the failure: a failed sync promises no durability.
            (Some(found), Some(results)) if found == marker => {
                let kept = format!(
                    "{reason}; this write reached the file before the sync failed and is kept, \
                     but not known to be durable: do not repeat it"
                );
                self.finish(batch, results, Some(&kept))
            }
            _ => refuse(batch, &reason),
        }
    }

    /// Answers each request of a committed group after applying its changes
    /// to memory; with `failed`, the callers whose operation went through
    /// hear [`StorageError::WriteFailed`] instead (see `commit_group`).
    pub(super) fn finish(
        &self,
        batch: Vec<Request>,
        results: Vec<OpOutcome>,
        failed: Option<&str>,
    ) {
        self.retention.undo.keep();
        let mut wake = false;
        for (req, result) in batch.into_iter().zip(results) {
            let answer = result.map(|(reply, applied)| {
                for a in applied {
                    wake |= self.apply(a);
                }
                reply
            });
            if let Ok(Reply::Block(b)) = &answer
                && let Some(t) = b.expires_ms
            {
                self.note_expiry(Some(t));
            }
            if let Ok(Reply::Purged { next_expiry, .. }) = &answer {
                *lock(&self.next_expiry) = *next_expiry;
            }
            req.reply.send(match (failed, answer) {
                (Some(reason), Ok(_)) => Err(StorageError::WriteFailed(reason.to_string())),
                (_, answer) => answer,
            });
        }
        if wake {
            let (m, cv) = &self.signal;
            lock(m).0 = true;
            cv.notify_one();
        }
        // After every answer: a message handed over by this commit is in
        // its mailbox before the mailbox hears it was discarded.
        self.notify_discarded();
    }

    /// Remembers the earliest time a block expires.
    pub(super) fn note_expiry(&self, at: Option<u64>) {
        if let Some(t) = at {
            let mut next = lock(&self.next_expiry);
            *next = Some(next.map_or(t, |n| n.min(t)));
        }
    }

    /// Applies a committed change to memory; `true` if the indexer has work.
    pub(super) fn apply(&self, a: Applied) -> bool {
        match a {
            Applied::Space(config) => {
                // The geometry was validated before the commit.
                if let Ok(space) = self.make_space(config) {
                    self.spaces
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(space.config.name.clone(), space);
                }
                false
            }
            Applied::Upsert(r) => {
                let space = self
                    .spaces
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&r.namespace)
                    .cloned();
                let Some(s) = space else {
                    return false;
                };
                let id = r.id;
                let work = s.index.upsert(entry_of(r));
                s.write_vectors().insert(id);
                work
            }
            Applied::IndexBlock(b) => {
                self.unindex_block(b.id);
                for e in self.section_entries(&b) {
                    self.blocks_index.upsert(e);
                }
                true
            }
            Applied::IndexMessages(records) => {
                let work = self.index_messages(&records);
                self.note_message_expiries(&records);
                work
            }
            Applied::MessagesPurged { due, removed, why } => {
                self.forget_messages(&due, removed, why);
                false
            }
            Applied::ScheduleRemovals(at) => {
                self.schedule_removals(&at);
                false
            }
            Applied::UnindexBlock(id) => {
                self.unindex_block(id);
                false
            }
            Applied::Remove { namespace, id } => {
                let space = self
                    .spaces
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&namespace)
                    .cloned();
                if let Some(s) = space {
                    s.index.remove(id);
                    s.write_vectors().remove(&id);
                }
                false
            }
            Applied::DropSpace(name) => {
                self.drop_space(&name);
                false
            }
        }
    }
}
