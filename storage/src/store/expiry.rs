//! Messages that expire: the writer purges them in expiry order.

use super::*;

impl Shared {
    /// The earliest expired messages, at most [`PURGE_BATCH`].
    pub(super) fn due_messages(&self, now: u64) -> Vec<(u64, Uuid)> {
        lock(&self.message_expiries)
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(PURGE_BATCH)
            .copied()
            .collect()
    }

    /// Remembers when stored messages expire (those with a TTL).
    pub(crate) fn note_message_expiries(&self, records: &[Arc<crate::messages::MessageRecord>]) {
        let mut set = None;
        for m in records {
            if let Some(t) = m.expires_ms {
                set.get_or_insert_with(|| lock(&self.message_expiries))
                    .insert((t, m.id));
            }
        }
    }

    /// Purges expired messages at `Memory` durability, where they live in
    /// a map and the index only: no transaction.
    pub(super) fn purge_memory_messages(&self, due: &[(u64, Uuid)]) {
        if due.is_empty() {
            return;
        }
        let mut removed: HashMap<String, Vec<Uuid>> = HashMap::new();
        let mut count = 0;
        {
            let mut map = lock(&self.memory_messages);
            for (_, id) in due {
                if let Some(m) = map.remove(id) {
                    removed.entry(m.namespace.clone()).or_default().push(*id);
                    count += 1;
                }
            }
        }
        self.forget_messages(due, removed.into_iter().collect(), count);
    }

    /// Takes purged messages out of the set of expiries and the indexes.
    pub(super) fn forget_messages(
        &self,
        due: &[(u64, Uuid)],
        removed: Vec<(String, Vec<Uuid>)>,
        count: usize,
    ) {
        {
            let mut set = lock(&self.message_expiries);
            for d in due {
                set.remove(d);
            }
        }
        for (namespace, ids) in removed {
            let space = self
                .spaces
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&namespace)
                .cloned();
            if let Some(s) = space {
                s.index.remove_all(&ids);
            }
        }
        self.messages_purged
            .fetch_add(count as u64, Ordering::Relaxed);
    }
}
