//! The indexer thread: moves fresh vectors into the graphs in the
//! background, and puts message vectors into their namespaces' indexes.

use super::*;

/// Threads the indexer merges fresh vectors on in the background: one, so
/// that writes, messages and searches keep the other cores (on this 2-core
/// machine a two-thread merge halved messaging throughput; the graph then
/// absorbs more slowly and the fresh buffer, scanned exactly, holds the
/// rest). `flush_index` and bulk loads use every core.
const BACKGROUND_THREADS: usize = 1;

/// Nodes a reachability pass checks between two of the indexer's merge
/// batches of a namespace ([`SpaceIndex::relink_step`]): a pass comes due
/// once as many vectors as the graph has nodes have been merged, so
/// checking twice the 256 a full batch merges ends each pass, while
/// batches are full, in half the time the next one takes to come due.
const RELINK_STEP: usize = 512;

/// How many fresh coordinates a namespace may hold while the indexer leaves
/// the cores to a burst of writes ([`Pace`]): 2^19, 4 MiB of `f64`, which
/// every search of that namespace scans exactly on top of its graph search
/// (about 40,000 H^12 vectors, 4,000 of 128-d, 1,000 of 512-d).
const DEFERRED_COORDS_MAX: usize = 1 << 19;

/// How often the indexer looks again while it leaves the cores to writes.
const YIELD_CHECK: std::time::Duration = std::time::Duration::from_millis(5);

/// How long no fresh vector may arrive before the indexer counts the writes
/// as paused: longer than the writer's groups take, since their vectors
/// reach the indexes a whole group at a time.
const WRITES_PAUSED: std::time::Duration = std::time::Duration::from_millis(50);

/// The longest the indexer leaves the cores to writes at a time; then it
/// merges for [`JUDGE_AFTER`] and judges again, so a load it could absorb
/// after all is never left out of the graphs for longer.
const YIELD_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// How long the indexer merges before it judges whether writes outpace it:
/// long enough that a few writer groups landing in one short pass do not
/// count as a burst.
const JUDGE_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

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
        let mut shared: HashMap<(&str, &[String]), Arc<crate::record::CompactMetadata>> =
            HashMap::new();
        for m in records {
            let metadata = if m.metadata.is_empty() {
                shared
                    .entry((&m.from, &m.to))
                    .or_insert_with(|| Arc::new(m.index_metadata().into()))
                    .clone()
            } else {
                Arc::new(m.index_metadata().into())
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
            let mut pace = Pace::default();
            loop {
                if lock(m).1 {
                    return;
                }
                let spaces = self.all_spaces();
                let indexes =
                    || std::iter::once(&self.blocks_index).chain(spaces.iter().map(|s| &s.index));
                let fresh_before: usize = indexes().map(|i| i.fresh_len()).sum();
                let over_cap = indexes().any(|i| i.fresh_coords() > DEFERRED_COORDS_MAX);
                if pace.hold(fresh_before, over_cap, std::time::Instant::now()) {
                    if checkpoint.due() {
                        checkpoint.save(self);
                    }
                    std::thread::sleep(YIELD_CHECK);
                    continue;
                }
                let (mut merged, mut skipped, mut relinking) = (0, false, false);
                let mut merging = std::time::Duration::ZERO;
                for index in indexes() {
                    if index.others_waiting() {
                        skipped |= index.fresh_len() > 0;
                        continue;
                    }
                    let began = std::time::Instant::now();
                    merged += index
                        .merge_fresh(256, BACKGROUND_THREADS, true)
                        .unwrap_or(0);
                    merging += began.elapsed();
                    // Inserts prune other nodes' links; re-check them all
                    // once the inserts reach the graph's size (amortised:
                    // about a check per insert), in steps between the
                    // merge batches.
                    if index.relink_pending() && !index.others_waiting() && !lock(m).1 {
                        relinking |= index
                            .relink_step(RELINK_STEP, BACKGROUND_THREADS)
                            .unwrap_or(false);
                    }
                }
                if merged > 0 {
                    let after = indexes().map(|i| i.fresh_len()).sum();
                    let now = std::time::Instant::now();
                    pace.passed(fresh_before, after, merged, merging, now);
                }
                if checkpoint.due() {
                    checkpoint.save(self);
                }
                if merged == 0 && !skipped && !relinking {
                    break;
                }
                if merged == 0 && !relinking {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    }
}

/// Writes first while they outpace the graph. The indexer judges after
/// every [`JUDGE_AFTER`] spent merging: when fresh vectors arrived at least
/// twice as fast (per second of the time since the last judgement) as it
/// merged them (per second spent merging: relink passes and waits do not
/// count), writes are coming much faster than one thread puts vectors into
/// graphs (a burst), and merging on would slow the burst and still fall
/// behind. It then leaves the cores to the writes until they pause (no
/// fresh vector added for [`WRITES_PAUSED`]), a namespace's fresh buffer
/// passes [`DEFERRED_COORDS_MAX`] coordinates, or [`YIELD_MAX`] has passed,
/// and merges again. A load arriving less than twice as fast as the indexer
/// merges never makes it wait. (docs/STORAGE.md, "Threads".)
#[derive(Debug, Default)]
struct Pace {
    /// Since the last judgement: when it began and the fresh vectors then.
    since: Option<(std::time::Instant, usize)>,
    /// What the indexer merged since, and the time it spent merging.
    merged: usize,
    merging: std::time::Duration,
    yielding: Option<Yield>,
}

/// While the indexer yields: since when, the fresh vectors at its last look,
/// and when they last grew.
#[derive(Debug, Clone, Copy)]
struct Yield {
    since: std::time::Instant,
    seen: usize,
    grew: std::time::Instant,
}

impl Pace {
    /// Whether to leave this look to the writes, given the fresh vectors of
    /// all namespaces, whether one namespace holds more than the cap, and
    /// the time.
    fn hold(&mut self, fresh: usize, over_cap: bool, now: std::time::Instant) -> bool {
        let Some(y) = self.yielding else {
            return false;
        };
        let grew = if fresh > y.seen { now } else { y.grew };
        let elapsed = |t: std::time::Instant| now.saturating_duration_since(t);
        if over_cap || elapsed(grew) >= WRITES_PAUSED || elapsed(y.since) >= YIELD_MAX {
            self.yielding = None;
            return false;
        }
        self.yielding = Some(Yield {
            seen: fresh,
            grew,
            ..y
        });
        true
    }

    /// After a pass that merged: the fresh vectors before and after it, how
    /// many it merged, the time it spent merging, and the time.
    fn passed(
        &mut self,
        before: usize,
        after: usize,
        merged: usize,
        merging: std::time::Duration,
        now: std::time::Instant,
    ) {
        let began = now.checked_sub(merging).unwrap_or(now);
        let (began, start) = *self.since.get_or_insert((began, before));
        self.merged += merged;
        self.merging += merging;
        if self.merging < JUDGE_AFTER {
            return;
        }
        let arrived = (after + self.merged).saturating_sub(start) as f64;
        let wall = now.saturating_duration_since(began).as_secs_f64();
        let outpaced = arrived * self.merging.as_secs_f64() >= 2.0 * self.merged as f64 * wall;
        self.since = None;
        self.merged = 0;
        self.merging = std::time::Duration::ZERO;
        if outpaced {
            self.yielding = Some(Yield {
                since: now,
                seen: after,
                grew: now,
            });
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

#[cfg(test)]
mod tests {
    use super::{JUDGE_AFTER, Pace, WRITES_PAUSED, YIELD_MAX};
    use std::time::{Duration, Instant};

    const PASS: Duration = Duration::from_millis(50);

    /// Passes of 50 ms merging 1,000 each, with `arrived` new fresh vectors
    /// during each; whether the indexer yields after them.
    fn passes(pace: &mut Pace, t: Instant, fresh: &mut usize, arrived: &[usize]) -> bool {
        let mut yields = false;
        for (i, a) in arrived.iter().enumerate() {
            let now = t + PASS * (i as u32 + 1);
            assert!(!pace.hold(*fresh, false, now - PASS), "pass {i}");
            let before = *fresh;
            *fresh = before + a - 1_000;
            pace.passed(before, *fresh, 1_000, PASS, now);
            yields = pace.hold(*fresh, false, now);
            if yields {
                assert_eq!(i + 1, (JUDGE_AFTER.as_millis() / PASS.as_millis()) as usize);
                break;
            }
        }
        yields
    }

    #[test]
    fn the_indexer_keeps_merging_a_load_it_can_nearly_absorb() {
        let (mut pace, t, mut fresh) = (Pace::default(), Instant::now(), 50_000);
        // 1.9 times its merges arrive: the buffer grows, the indexer merges on.
        let steady = vec![1_900; 40];
        assert!(!passes(&mut pace, t, &mut fresh, &steady));
        // Groups of writes make single passes look like a burst (4,000
        // arriving during one pass), but not a whole judgement's worth.
        let lumpy: Vec<usize> = (0..40)
            .map(|i| if i % 4 == 0 { 4_000 } else { 1_000 })
            .collect();
        assert!(!passes(&mut pace, t, &mut fresh, &lumpy));
    }

    #[test]
    fn time_not_spent_merging_does_not_count_against_the_indexer() {
        // Passes of 50 ms merging 1,000 each, but each took 100 ms of wall
        // time (a relink pass, or waiting for the cores): 2,500 arriving per
        // pass, more than twice the merges, is 25,000/s against 20,000/s
        // merged.
        let (mut pace, t, mut fresh) = (Pace::default(), Instant::now(), 10_000);
        for i in 0..20u32 {
            let now = t + 2 * PASS * (i + 1);
            assert!(!pace.hold(fresh, false, now - 2 * PASS), "pass {i}");
            let before = fresh;
            fresh += 1_500;
            pace.passed(before, fresh, 1_000, PASS, now);
        }
        assert!(!pace.hold(fresh, false, t + 2 * PASS * 21));
    }

    #[test]
    fn the_indexer_leaves_a_burst_the_cores_until_it_pauses() {
        let (mut pace, t, mut fresh) = (Pace::default(), Instant::now(), 0);
        assert!(passes(&mut pace, t, &mut fresh, &[5_000; 20]));
        let t = t + JUDGE_AFTER;
        let at = |ms| t + Duration::from_millis(ms);
        // The burst goes on, a writer's group at a time: the indexer holds
        // back while fresh vectors keep coming.
        assert!(
            pace.hold(fresh, false, at(30)),
            "a gap between groups is no pause"
        );
        assert!(pace.hold(fresh + 2_000, false, at(45)));
        assert!(pace.hold(fresh + 2_000, false, at(90)));
        assert!(pace.hold(fresh + 9_000, false, at(100)));
        // The writes pause: nothing added for WRITES_PAUSED.
        let paused = 100 + WRITES_PAUSED.as_millis() as u64;
        assert!(pace.hold(fresh + 9_000, false, at(paused - 1)));
        assert!(!pace.hold(fresh + 9_000, false, at(paused)));
        // It merges again, and judges anew after JUDGE_AFTER.
        let mut fresh = fresh + 9_000;
        assert!(!passes(&mut pace, at(paused), &mut fresh, &[1_500; 20]));
    }

    #[test]
    fn a_burst_that_never_pauses_still_gets_merged_every_yield_max() {
        let (mut pace, t, mut fresh) = (Pace::default(), Instant::now(), 0);
        assert!(passes(&mut pace, t, &mut fresh, &[3_000; 20]));
        let t = t + JUDGE_AFTER;
        let max = YIELD_MAX.as_millis() as u64;
        let mut ms = 0;
        while ms < max {
            fresh += 100;
            assert!(pace.hold(fresh, false, t + Duration::from_millis(ms)));
            ms += 10;
        }
        assert!(!pace.hold(fresh + 100, false, t + Duration::from_millis(ms)));
    }

    #[test]
    fn a_namespace_at_the_cap_ends_the_wait() {
        let (mut pace, t, mut fresh) = (Pace::default(), Instant::now(), 0);
        assert!(passes(&mut pace, t, &mut fresh, &[3_000; 20]));
        assert!(!pace.hold(fresh + 10, true, t + JUDGE_AFTER));
    }
}
