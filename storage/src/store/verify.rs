//! Comparing storage with the indexes, and repairing them.

use super::*;

impl Shared {
    pub(super) fn verify(&self, repair: bool) -> Result<ConsistencyReport> {
        let txn = self.begin_read()?;
        let table = txn.open_table(VECTORS)?;
        let mut stored: HashMap<String, HashMap<Uuid, VectorRecord>> = HashMap::new();
        // The rows of `vectors` alone (no messages), per namespace.
        let mut rows: HashMap<String, BTreeSet<Uuid>> = HashMap::new();
        let mut vectors = 0;
        for row in table.iter()? {
            let (_, v) = row?;
            let r: VectorRecord = decode(v.value(), "vector record")?;
            vectors += 1;
            rows.entry(r.namespace.clone()).or_default().insert(r.id);
            stored
                .entry(r.namespace.clone())
                .or_default()
                .insert(r.id, r);
        }
        // Messages count as vectors of their namespace.
        let as_record = |m: &crate::messages::MessageRecord| {
            let e = m.entry();
            VectorRecord {
                id: e.id,
                namespace: m.namespace.clone(),
                data: e.data,
                region: e.region,
                metadata: e.metadata.to_metadata(),
                version: 1,
                timestamp_ms: m.sent_ms,
                hlc: 0,
                clock: Default::default(),
            }
        };
        let mut add = |r: VectorRecord| {
            vectors += 1;
            stored
                .entry(r.namespace.clone())
                .or_default()
                .insert(r.id, r);
        };
        if self.durability == Durability::Memory {
            for m in lock(&self.memory_messages).values() {
                add(as_record(m));
            }
        } else {
            for row in txn.open_table(MESSAGES)?.iter()? {
                let (_, v) = row?;
                add(as_record(&decode(v.value(), "message")?));
            }
        }
        let spaces: Vec<(String, Arc<Space>)> = self
            .spaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let (mut indexed, mut missing, mut orphaned) = (0, 0, 0);
        for (name, space) in spaces {
            let empty = HashMap::new();
            let truth = stored.get(&name).unwrap_or(&empty);
            let ids = space.index.ids();
            let unreachable: std::collections::HashSet<Uuid> =
                space.index.unreachable_ids().into_iter().collect();
            let stale = space.index.stale_graph_nodes();
            let ns_orphans: Vec<Uuid> = ids
                .iter()
                .filter(|id| !truth.contains_key(id))
                .copied()
                .collect();
            let ns_missing: Vec<&VectorRecord> = truth
                .values()
                .filter(|r| !ids.contains(&r.id) || unreachable.contains(&r.id))
                .collect();
            indexed += truth.len() - ns_missing.len();
            let (unlisted, unstored) =
                space.verify_ids(rows.remove(&name).unwrap_or_default(), repair);
            missing += ns_missing.len() + unlisted;
            orphaned += ns_orphans.len() + stale + unstored;
            if repair {
                for id in &ns_orphans {
                    space.index.remove(*id);
                }
                for r in ns_missing {
                    space.index.upsert(entry_of(r.clone()));
                }
                if stale > 0 {
                    // An f32 space's entries keep their coordinates in the
                    // graph; any the graph lost come from the records.
                    space
                        .index
                        .rebuild(&|id| truth.get(&id).map(|r| r.data.clone()))?;
                }
            }
        }
        Ok(ConsistencyReport {
            consistent: missing == 0 && orphaned == 0,
            vectors,
            indexed,
            missing,
            orphaned,
        })
    }
}
