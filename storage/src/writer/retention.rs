//! The writer's side of message retention: storing messages within their
//! namespace's limits, removing a message (for a TTL, `keep_acked_ms` or
//! a limit), and scheduling the removal of settled messages. The ledgers
//! change with the rows, each change in the undo log until the group
//! commits (`retention.rs`).

use std::sync::Arc;

use redb::ReadableTable;
use uuid::Uuid;

use super::{Applied, MessageHead, Reply, Step, Tables, done};
use crate::error::Result;
use crate::messages::MessageRecord;
use crate::record::{ChangeKind, decode};
use crate::retention::{Removed, Undo, Why, held_entry};
use crate::store::Space;

/// Removals one put may add to make room, beyond one per message it
/// stores (the rest of an excess left by limits lowered since waits for
/// the writer's sweep).
const PUT_EXTRA: usize = crate::writer::PURGE_BATCH;

impl Tables<'_> {
    /// The namespace `name` as of the last commit, if it exists.
    fn space(&self, name: &str) -> Option<Arc<Space>> {
        crate::retention::space_in(self.memory, name)
    }

    /// Stores messages (their namespaces exist) within their namespaces'
    /// limits: refused as a whole (nothing written) if a namespace refuses
    /// one (discard `new` at a limit, or a message larger than
    /// `max_bytes`); otherwise the oldest messages a limit removes go in
    /// the same transaction. `enforce` is false for a mirror, which applies
    /// the source's removals instead.
    pub(super) fn put_within_limits(
        &mut self,
        records: &[Arc<MessageRecord>],
        enforce: bool,
    ) -> Step {
        let mut before = Vec::new();
        if enforce {
            for (space, ms) in self.limited_spaces(records) {
                let Some(held) = space.held() else { continue };
                let leaving = space.over_limit(&held, self.now_ms, PUT_EXTRA);
                let sizes: Vec<u64> = ms.iter().map(|m| held_entry(m).1).collect();
                if let Err(e) = space.check_room(&held, &leaving, &sizes) {
                    return Ok(Err(e));
                }
                before.extend(leaving);
            }
        }
        let mut removed = self.remove_messages(&before)?;
        self.messages_put.extend(records.iter().cloned());
        for m in records {
            self.messages.open()?.insert(
                m.id.as_u128(),
                crate::record::encode(m.as_ref())?.as_slice(),
            )?;
            self.log(ChangeKind::PutMessage, &m.namespace, Some(m.id), 0, None)?;
            self.hold(m);
        }
        if enforce {
            let mut after = Vec::new();
            for (space, ms) in self.limited_spaces(records) {
                if let Some(held) = space.held() {
                    after.extend(space.over_limit(&held, self.now_ms, PUT_EXTRA + ms.len()));
                }
            }
            removed.extend(self.remove_messages(&after)?);
        }
        let mut applied = vec![Applied::IndexMessages(records.to_vec())];
        if !removed.is_empty() {
            applied.push(Applied::MessagesPurged {
                due: Vec::new(),
                removed,
                why: Why::Limit,
            });
        }
        done(Reply::Done, applied)
    }

    /// The namespaces of `records` that keep a ledger, each with its
    /// records.
    fn limited_spaces<'r>(
        &self,
        records: &'r [Arc<MessageRecord>],
    ) -> Vec<(Arc<Space>, Vec<&'r Arc<MessageRecord>>)> {
        let mut out: Vec<(Arc<Space>, Vec<&'r Arc<MessageRecord>>)> = Vec::new();
        for m in records {
            match out.iter_mut().find(|(s, _)| s.config.name == m.namespace) {
                Some((_, ms)) => ms.push(m),
                None => {
                    if let Some(s) = self.space(&m.namespace).filter(|s| s.held.is_some()) {
                        out.push((s, vec![m]));
                    }
                }
            }
        }
        out
    }

    /// Puts a stored message into its namespace's ledger, if it keeps one.
    fn hold(&mut self, m: &MessageRecord) {
        let Some(space) = self.space(&m.namespace) else {
            return;
        };
        let added = space.held().is_some_and(|mut h| h.add(m.id, held_entry(m)));
        if added {
            self.undo.push(Undo::Added(space, m.id));
        }
    }

    /// Discards messages a limit removes (the writer's sweep).
    pub(super) fn discard(&mut self, ids: &[Uuid]) -> Step {
        let removed = self.remove_messages(ids)?;
        done(
            Reply::Done,
            vec![Applied::MessagesPurged {
                due: Vec::new(),
                removed,
                why: Why::Limit,
            }],
        )
    }

    /// Removes each message still stored; what memory must forget.
    pub(super) fn remove_messages(&mut self, ids: &[Uuid]) -> Result<Vec<Removed>> {
        let mut removed = Vec::with_capacity(ids.len());
        for &id in ids {
            removed.extend(self.remove_message(id)?);
        }
        Ok(removed)
    }

    /// Deletes a message's row and every settlement of it, logs it, and
    /// takes it out of its namespace's ledger. A row that is gone already
    /// (or that cannot be read) is skipped: `None`.
    pub(super) fn remove_message(&mut self, id: Uuid) -> Result<Option<Removed>> {
        let key = id.as_u128();
        let head = match self.messages.open()?.get(key)? {
            Some(v) => decode::<MessageHead>(v.value(), "message").ok(),
            None => None,
        };
        let Some(head) = head else {
            return Ok(None);
        };
        self.messages.open()?.remove(key)?;
        let mut recipients = Vec::new();
        for row in self.settled.open()?.range((key, "")..)? {
            let (k, _) = row?;
            let (m, r) = k.value();
            if m != key {
                break;
            }
            recipients.push(r.to_string());
        }
        for r in &recipients {
            self.settled.open()?.remove((key, r.as_str()))?;
        }
        self.log(
            ChangeKind::ExpireMessage,
            &head.namespace,
            Some(id),
            0,
            None,
        )?;
        if let Some(space) = self.space(&head.namespace) {
            let entry = space.held().and_then(|mut h| h.remove(id));
            if let Some(e) = entry {
                self.undo.push(Undo::Removed(space, id, e));
            }
        }
        Ok(Some(Removed {
            namespace: head.namespace,
            id,
            to: head.to,
            expires_ms: head.expires_ms,
        }))
    }

    /// After a settlement of `id` was written: if its namespace removes
    /// settled messages and every recipient has now settled it, when it
    /// goes (`keep_acked_ms` from now).
    pub(super) fn removal_after_settled(
        &mut self,
        id: Uuid,
        head: &MessageHead,
    ) -> Result<Option<(u64, Uuid)>> {
        let keep = self
            .space(&head.namespace)
            .and_then(|s| s.retention.keep_acked_ms);
        let Some(keep) = keep else {
            return Ok(None);
        };
        let key = id.as_u128();
        let mut settled = 0;
        for row in self.settled.open()?.range((key, "")..)? {
            let (k, _) = row?;
            if k.value().0 != key {
                break;
            }
            settled += 1;
        }
        Ok((settled >= head.to.len()).then(|| (self.now_ms.saturating_add(keep), id)))
    }
}
