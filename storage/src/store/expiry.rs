//! Messages that leave by themselves: those whose TTL passed or whose
//! `keep_acked_ms` ran out (both scheduled in the set of expiries and
//! purged by the writer in that order), and those a retention limit
//! discards (`max_age_ms`, `max_messages`, `max_bytes`, picked oldest first
//! from the namespace's ledger). The rules are in `docs/SEMANTICS.md`,
//! "Retention".

use std::sync::MutexGuard;

use super::*;
use crate::messages::MessageRecord;
use crate::record::{DiscardPolicy, Retention};
use crate::retention::{Discarded, Held, Removed, Settling, Why};

/// How often (by the store's clock) the writer looks for messages a limit
/// removes without a write: aged ones, and any excess left by limits
/// lowered since they were stored.
pub(super) const SWEEP_EVERY_MS: u64 = 1_000;

impl Space {
    /// The ledger of its messages, if it has limits.
    pub(crate) fn held(&self) -> Option<MutexGuard<'_, Held>> {
        self.held.as_ref().map(lock)
    }

    /// Puts a stored message into the ledger (at open), and lists it if
    /// the namespace removes settled messages.
    pub(crate) fn note_held(&self, m: &MessageRecord, settling: &mut Settling) {
        if let Some(mut h) = self.held() {
            h.add(m.id, crate::retention::held_entry(m));
        }
        if let Some(keep) = self.retention.keep_acked_ms {
            settling.insert(m.id, (m.to.len(), keep));
        }
    }

    /// The oldest messages a limit removes now, at most `cap`: those older
    /// than `max_age_ms`, then, under discard `old`, as many more as bring
    /// the namespace within `max_messages` and `max_bytes`.
    pub(crate) fn over_limit(&self, held: &Held, now: u64, cap: usize) -> Vec<Uuid> {
        let r = &self.retention;
        let (mut count, mut bytes) = (held.len(), held.bytes());
        let mut out = Vec::new();
        for (id, (sent, size)) in held.oldest(cap) {
            let aged = r.max_age_ms.is_some_and(|a| sent.saturating_add(a) <= now);
            let over = r.discard == DiscardPolicy::Old
                && (r.max_messages.is_some_and(|m| count > m)
                    || r.max_bytes.is_some_and(|b| bytes > b));
            if !(aged || over) {
                break;
            }
            out.push(id);
            count -= 1;
            bytes -= size;
        }
        out
    }

    /// Whether messages of these sizes may join the namespace once
    /// `leaving` (what [`Space::over_limit`] picked) has left: a message
    /// larger than `max_bytes` never may; under discard `new`, none may
    /// that would take the namespace past `max_messages` or `max_bytes`.
    pub(crate) fn check_room(&self, held: &Held, leaving: &[Uuid], sizes: &[u64]) -> Result<()> {
        let r = &self.retention;
        let full = |limit, max, why: String| StorageError::NamespaceFull {
            namespace: self.config.name.clone(),
            limit,
            max,
            why,
        };
        if let (Some(max), Some(big)) = (r.max_bytes, sizes.iter().max())
            && *big > max
        {
            return Err(full(
                "max_bytes",
                max,
                format!("a message of {big} bytes can never fit"),
            ));
        }
        if r.discard == DiscardPolicy::Old {
            return Ok(());
        }
        let gone: u64 = held
            .oldest(leaving.len())
            .filter(|(id, _)| leaving.contains(id))
            .map(|(_, (_, size))| size)
            .sum();
        let count = held.len() - leaving.len() as u64 + sizes.len() as u64;
        let bytes = held.bytes() - gone + sizes.iter().sum::<u64>();
        let why = || "the discard policy is new".to_string();
        if let Some(max) = r.max_messages.filter(|m| count > *m) {
            return Err(full("max_messages", max, why()));
        }
        if let Some(max) = r.max_bytes.filter(|b| bytes > *b) {
            return Err(full("max_bytes", max, why()));
        }
        Ok(())
    }
}

impl Shared {
    /// A namespace's retention (its own, or the store's defaults) and, if
    /// that has limits, an empty ledger.
    pub(super) fn retention_of(&self, config: &SpaceConfig) -> (Retention, Option<Mutex<Held>>) {
        let r = config.retention.unwrap_or(self.retention.defaults);
        if r.keep_acked_ms.is_some() {
            self.retention
                .keep_acked_anywhere
                .store(true, Ordering::Relaxed);
        }
        (r, r.limited().then(Default::default))
    }

    /// The earliest due removals (TTLs and `keep_acked_ms`), at most
    /// [`PURGE_BATCH`].
    pub(super) fn due_messages(&self, now: u64) -> Vec<(u64, Uuid)> {
        lock(&self.message_expiries)
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(PURGE_BATCH)
            .copied()
            .collect()
    }

    /// Messages every limited namespace must discard now, at most
    /// [`PURGE_BATCH`] in all, if [`SWEEP_EVERY_MS`] has passed since the
    /// last look (or `now_anyway`).
    pub(super) fn swept_messages(&self, now: u64, now_anyway: bool) -> Vec<Uuid> {
        let last = self.retention.last_sweep_ms.load(Ordering::Relaxed);
        if !now_anyway && now < last.saturating_add(SWEEP_EVERY_MS) {
            return Vec::new();
        }
        self.retention.last_sweep_ms.store(now, Ordering::Relaxed);
        let mut out = Vec::new();
        for s in self.all_spaces() {
            let Some(held) = s.held() else { continue };
            out.extend(s.over_limit(&held, now, PURGE_BATCH - out.len()));
            if out.len() == PURGE_BATCH {
                break;
            }
        }
        out
    }

    /// Remembers when stored messages expire (those with a TTL).
    pub(crate) fn note_message_expiries(&self, records: &[Arc<MessageRecord>]) {
        let mut set = None;
        for m in records {
            if let Some(t) = m.expires_ms {
                set.get_or_insert_with(|| lock(&self.message_expiries))
                    .insert((t, m.id));
            }
        }
    }

    /// Schedules the removal of messages every recipient settled.
    pub(crate) fn schedule_removals(&self, at: &[(u64, Uuid)]) {
        if !at.is_empty() {
            lock(&self.message_expiries).extend(at.iter().copied());
        }
    }

    /// At open: schedules the removal of every message of a namespace with
    /// `keep_acked_ms` that all its recipients settled, `keep_acked_ms`
    /// after the last settlement.
    pub(super) fn schedule_settled(&self, txn: &Reading, settling: Settling) -> Result<()> {
        if settling.is_empty() {
            return Ok(());
        }
        // Per message: recipients settled, and when the last one did.
        let mut seen: HashMap<Uuid, (usize, u64)> = HashMap::new();
        for row in txn.open_table(SETTLED)?.iter()? {
            let (k, v) = row?;
            let id = Uuid::from_u128(k.value().0);
            if settling.contains_key(&id) {
                let (_, at): (crate::messages::Settlement, u64) = decode(v.value(), "settlement")?;
                let e = seen.entry(id).or_default();
                *e = (e.0 + 1, e.1.max(at));
            }
        }
        let due: Vec<(u64, Uuid)> = seen
            .into_iter()
            .filter_map(|(id, (n, at))| {
                let (recipients, keep) = settling.get(&id)?;
                (n >= *recipients).then(|| (at.saturating_add(*keep), id))
            })
            .collect();
        self.schedule_removals(&due);
        Ok(())
    }

    /// At `Memory` durability, where settlements are not stored: schedules
    /// the removal of messages of namespaces with `keep_acked_ms` once
    /// every recipient settled them.
    pub(crate) fn settle_memory(&self, settled: &[crate::messages::Settled]) {
        if !self.retention.keep_acked_anywhere.load(Ordering::Relaxed) {
            return;
        }
        let now = self.retention.clock.now_ms();
        let mut due = Vec::new();
        {
            let map = lock(&self.memory_messages);
            let mut counts = lock(&self.retention.memory_settled);
            for s in settled {
                let Some(m) = map.get(&s.message) else {
                    continue;
                };
                let keep = self
                    .space_of(&m.namespace)
                    .and_then(|sp| sp.retention.keep_acked_ms);
                let Some(keep) = keep else { continue };
                let n = counts.entry(m.id).or_default();
                *n += 1;
                if *n >= m.to.len() {
                    counts.remove(&m.id);
                    due.push((now.saturating_add(keep), m.id));
                }
            }
        }
        self.schedule_removals(&due);
    }

    fn space_of(&self, name: &str) -> Option<Arc<Space>> {
        crate::retention::space_in(&self.spaces, name)
    }

    /// At `Memory` durability: stores messages in the map and the index,
    /// with retention applied (refused as a whole if a namespace refuses
    /// one; the oldest discarded to make room under discard `old`).
    pub(crate) fn append_memory_messages(&self, records: &[Arc<MessageRecord>]) -> Result<()> {
        let now = self.retention.clock.now_ms();
        let mut per_space: HashMap<&str, Vec<&Arc<MessageRecord>>> = HashMap::new();
        for m in records {
            per_space.entry(&m.namespace).or_default().push(m);
        }
        let mut limited = Vec::new();
        for (name, ms) in per_space {
            let Some(space) = self.space_of(name) else {
                continue;
            };
            if space.held.is_some() {
                limited.push((space, ms));
            }
        }
        // Every namespace's ledger locked at once, in name order, so that
        // all are checked before any changes.
        limited.sort_by(|a, b| a.0.config.name.cmp(&b.0.config.name));
        let mut held: Vec<MutexGuard<'_, Held>> =
            limited.iter().filter_map(|(s, _)| s.held()).collect();
        let mut before = Vec::with_capacity(limited.len());
        for ((space, ms), h) in limited.iter().zip(&held) {
            let leaving = space.over_limit(h, now, PURGE_BATCH);
            let sizes: Vec<u64> = ms
                .iter()
                .map(|m| crate::retention::held_entry(m).1)
                .collect();
            space.check_room(h, &leaving, &sizes)?;
            before.push(leaving);
        }
        let mut victims = Vec::new();
        for (((space, ms), h), leaving) in limited.iter().zip(held.iter_mut()).zip(before) {
            for id in leaving {
                h.remove(id);
                victims.push((0, id));
            }
            for m in ms {
                h.add(m.id, crate::retention::held_entry(m));
            }
            for id in space.over_limit(h, now, PURGE_BATCH + ms.len()) {
                h.remove(id);
                victims.push((0, id));
            }
        }
        drop(held);
        self.index_messages(records);
        lock(&self.memory_messages).extend(records.iter().map(|m| (m.id, m.clone())));
        // After the map: a purge finds what it takes from the set.
        self.note_message_expiries(records);
        self.remove_memory_messages(&victims, Why::Limit);
        Ok(())
    }

    /// Removes messages at `Memory` durability, where they live in a map
    /// and the index only: no transaction. `due` are `(when, id)`; the
    /// time is what the set of expiries holds for [`Why::Due`], unused for
    /// [`Why::Limit`].
    pub(super) fn remove_memory_messages(&self, due: &[(u64, Uuid)], why: Why) {
        if due.is_empty() {
            return;
        }
        let mut removed = Vec::new();
        {
            let mut map = lock(&self.memory_messages);
            for (_, id) in due {
                if let Some(m) = map.remove(id) {
                    removed.push(Removed::of(&m));
                }
            }
        }
        for r in &removed {
            if let Some(space) = self.space_of(&r.namespace)
                && let Some(mut h) = space.held()
            {
                h.remove(r.id);
            }
        }
        let due = if why == Why::Due { due } else { &[] };
        self.forget_messages(due, removed, why);
    }

    /// Takes removed messages out of memory: the set of expiries (`due`
    /// and each one's TTL), the indexes, the count of settlements at
    /// `Memory` durability; discarded ones are queued for the listener
    /// ([`Shared::notify_discarded`]). Their ledger entries are gone
    /// already.
    pub(super) fn forget_messages(&self, due: &[(u64, Uuid)], removed: Vec<Removed>, why: Why) {
        {
            let mut set = lock(&self.message_expiries);
            for d in due {
                set.remove(d);
            }
            for r in &removed {
                if let Some(t) = r.expires_ms {
                    set.remove(&(t, r.id));
                }
            }
        }
        {
            let mut counts = lock(&self.retention.memory_settled);
            if !counts.is_empty() {
                for r in &removed {
                    counts.remove(&r.id);
                }
            }
        }
        let mut per_space: HashMap<&str, Vec<Uuid>> = HashMap::new();
        for r in &removed {
            per_space.entry(&r.namespace).or_default().push(r.id);
        }
        for (namespace, ids) in per_space {
            if let Some(s) = self.space_of(namespace) {
                s.index.remove_all(&ids);
            }
        }
        let n = removed.len() as u64;
        match why {
            Why::Due => {
                self.messages_purged.fetch_add(n, Ordering::Relaxed);
            }
            Why::Limit => {
                self.retention.discarded.fetch_add(n, Ordering::Relaxed);
                lock(&self.retention.pending).extend(removed.into_iter().map(|r| Discarded {
                    id: r.id,
                    namespace: r.namespace,
                    recipients: r.to,
                }));
            }
        }
    }

    /// Tells the listener of the discarded messages queued so far.
    pub(crate) fn notify_discarded(&self) {
        let pending = std::mem::take(&mut *lock(&self.retention.pending));
        if pending.is_empty() {
            return;
        }
        let listener = self
            .retention
            .listener
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(f) = listener {
            f(&pending);
        }
    }
}

impl Store {
    /// Sets who hears of the messages retention discards (the mailboxes
    /// that still hold them), replacing any listener before.
    pub fn on_discard(&self, listener: crate::retention::DiscardListener) {
        *self
            .shared
            .retention
            .listener
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    /// Removes now, in one commit, what is due: messages whose TTL or
    /// `keep_acked_ms` passed and messages a limit discards (at most
    /// [`PURGE_BATCH`] of each), by the store's clock. The writer does
    /// this by itself about every second; tests that move a manual clock
    /// call this instead of waiting.
    pub fn purge_due(&self) -> Result<()> {
        self.submit(Op::Sweep).map(|_| ())
    }

    /// Whether settlements matter to the store: always when durable (they
    /// are stored); at `Memory` durability only if some namespace has
    /// `keep_acked_ms`.
    pub fn keeps_settlements(&self) -> bool {
        self.durability() != Durability::Memory
            || self
                .shared
                .retention
                .keep_acked_anywhere
                .load(Ordering::Relaxed)
    }

    /// The store's clock (for expiry and retention).
    pub fn clock(&self) -> &crate::retention::StoreClock {
        &self.shared.retention.clock
    }
}
