//! The indexer thread: moves fresh vectors into the graphs in the
//! background, and puts message vectors into their namespaces' indexes.

use super::*;

/// Threads the indexer merges fresh vectors on in the background: one, so
/// that writes, messages and searches keep the other cores (on this 2-core
/// machine a two-thread merge halved messaging throughput; the graph then
/// absorbs more slowly and the fresh buffer, scanned exactly, holds the
/// rest). `flush_index` and bulk loads use every core.
const BACKGROUND_THREADS: usize = 1;

impl Shared {
    /// Forgets a deleted namespace: its index, and its graph dump (a
    /// cache: one left behind by a crash or a concurrent `save_index` is
    /// checked against the database like any other).
    pub(super) fn drop_space(&self, name: &str) {
        self.spaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(dir) = &self.dumps {
            let _ = std::fs::remove_file(crate::dump::file_of(dir, name));
        }
    }

    /// Puts message vectors into their namespaces' indexes; whether the
    /// indexer has work from them.
    pub(crate) fn index_messages(&self, records: &[Arc<crate::messages::MessageRecord>]) -> bool {
        let mut per_space: HashMap<&str, Vec<Entry>> = HashMap::new();
        // Messages between the same models with no metadata of their own
        // share one index metadata.
        let mut shared: HashMap<(&str, &[String]), Arc<crate::record::Metadata>> = HashMap::new();
        for m in records {
            let metadata = if m.metadata.is_empty() {
                shared
                    .entry((&m.from, &m.to))
                    .or_insert_with(|| Arc::new(m.index_metadata()))
                    .clone()
            } else {
                Arc::new(m.index_metadata())
            };
            per_space
                .entry(&m.namespace)
                .or_default()
                .push(m.entry_with(metadata));
        }
        let spaces = self.spaces.read().unwrap_or_else(|e| e.into_inner());
        let mut work = false;
        for (name, entries) in per_space {
            if let Some(s) = spaces.get(name) {
                work |= s.index.upsert_all(entries);
            }
        }
        drop(spaces);
        // Namespaces without a graph (small ones) give the indexer nothing
        // to do: it is not woken to walk every namespace for them.
        if work && self.durability == Durability::Memory {
            let (m, cv) = &self.signal;
            lock(m).0 = true;
            cv.notify_one();
        }
        work
    }

    pub(super) fn run_indexer(&self) {
        let (m, cv) = &self.signal;
        let mut checkpoint = Checkpoint::new(self.dumps.as_ref().and(self.checkpoint_every));
        loop {
            {
                let mut g = lock(m);
                while !g.0 && !g.1 {
                    g = match checkpoint.wait() {
                        Some(d) => cv.wait_timeout(g, d).unwrap_or_else(|e| e.into_inner()).0,
                        None => cv.wait(g).unwrap_or_else(|e| e.into_inner()),
                    };
                    if !g.0 && !g.1 && checkpoint.due() {
                        drop(g);
                        checkpoint.save(self);
                        g = lock(m);
                    }
                }
                if g.1 {
                    return;
                }
                g.0 = false;
            }
            // Round robin: one small batch per index and pass, so every
            // namespace's fresh buffer (scanned by every search) shrinks
            // while the graphs catch up; an index someone else waits to
            // lock (a dump, a verify, a flush) is passed over until they
            // are done.
            loop {
                if lock(m).1 {
                    return;
                }
                let spaces = self.all_spaces();
                let indexes =
                    std::iter::once(&self.blocks_index).chain(spaces.iter().map(|s| &s.index));
                let (mut merged, mut skipped) = (false, false);
                for index in indexes {
                    if index.others_waiting() {
                        skipped |= index.fresh_len() > 0;
                        continue;
                    }
                    merged |= index
                        .merge_fresh(256, BACKGROUND_THREADS, true)
                        .is_ok_and(|n| n > 0);
                    // Inserts prune other nodes' links; re-check them all
                    // each time the graph doubles (amortised: a constant
                    // factor).
                    if index.relink_due() && !index.others_waiting() && !lock(m).1 {
                        let _ = index.relink_on(BACKGROUND_THREADS);
                    }
                }
                if checkpoint.due() {
                    checkpoint.save(self);
                }
                if !merged && !skipped {
                    break;
                }
                if !merged {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }
}

/// When the indexer next saves the graphs that changed
/// ([`StoreConfig::checkpoint_every`]): a crash then costs a reopen the
/// vectors indexed since the last save, not a whole build.
struct Checkpoint {
    every: Option<std::time::Duration>,
    last: std::time::Instant,
}

impl Checkpoint {
    fn new(every: Option<std::time::Duration>) -> Self {
        Self {
            every,
            last: std::time::Instant::now(),
        }
    }

    /// How long until the next save, if there is one to make.
    fn wait(&self) -> Option<std::time::Duration> {
        self.every.map(|e| e.saturating_sub(self.last.elapsed()))
    }

    fn due(&self) -> bool {
        self.wait().is_some_and(|d| d.is_zero())
    }

    /// Saves now. A failed save is retried at the next checkpoint: a dump
    /// is a cache, and one not written costs a reopen time, never data.
    fn save(&mut self, shared: &Shared) {
        self.last = std::time::Instant::now();
        if let Err(e) = shared.save_index() {
            tracing::warn!("saving the index checkpoint failed: {e}");
        }
    }
}
