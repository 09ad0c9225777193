//! The in-memory search index of one space: a usearch HNSW graph over the
//! manifold's own distance, plus an exact "fresh" buffer; or, while the
//! space is small, no graph at all.
//!
//! Invariants:
//! - `entries` holds exactly the vectors of the space that the store has
//!   committed (it is rebuilt from redb on open, and changed by the writer
//!   thread after each commit, in commit order).
//! - Until a space has held [`GRAPH_MIN`] vectors it is not `graphed`: it
//!   has no graph and an empty `fresh` buffer, and every search scans all of
//!   its entries exactly. A graph reserves memory for its nodes and for
//!   every thread that may search it (hundreds of KB), which a space of a
//!   few vectors does not need, and scanning those few is faster than a
//!   graph search. The upsert that reaches `GRAPH_MIN` makes it `graphed`
//!   and puts every key in `fresh`: the indexer thread then builds the graph
//!   from them in its batches, off the writer's path, while searches scan
//!   them exactly. A graphed space stays graphed when it shrinks (until a
//!   rebuild).
//! - In a graphed space, every key in `entries` is in the graph or in
//!   `fresh` (or both, briefly, while the indexer moves it). Searches scan
//!   `fresh` exactly, so a vector is searchable as soon as its write is
//!   answered. The graph itself is made by the first merge (or load).
//! - A graph node whose key is not in `entries` is stale; searches skip it,
//!   and the indexer removes any it creates by racing a delete.
//! - A key in `unreachable` is in the graph but was not found by a search
//!   for its own vector when last checked (HNSW can leave nodes without
//!   in-links, badly so on spread-out hyperbolic data where points near the
//!   origin are everyone's nearest neighbours). Such a node is re-inserted
//!   once; if still not found, it stays in `unreachable`, attached to the
//!   nearest node its search found (every search that finds that node
//!   proposes it) or, if none can take it, loose: in an overflow graph, or
//!   scanned exactly by every search, like `fresh`.
//! - `twins` holds a `(hash of its coordinates, key)` pair for every entry,
//!   and every graph search looks its query up there: a search for a stored
//!   vector's own coordinates finds it whatever the graph's links are at
//!   that moment (later inserts prune older nodes' in-links between the
//!   passes that re-check them). An entry whose node is being re-inserted
//!   holds its coordinates meanwhile, so its distance can be computed.
//! - An entry holds its coordinates: in an `f64` space always; in an `f32`
//!   space as `f32` until its node is in the graph (the graph's copy is the
//!   same); in an `f16` or `i8` space with a [`Records`] reader as `f32`
//!   until then too, but only to rank it and build its node: its distances
//!   are computed from its record, read back from the store.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, RwLock};

use hvs_geometry::{AnyManifold, Hyperboloid, Manifold};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};
use uuid::Uuid;

use crate::dump::{Dump, DumpMeta};
use crate::error::{Result, StorageError};
use crate::record::{CompactMetadata, Datatype, Metadata};
use hvs_types::Filter;

/// HNSW parameters of every space's graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexParams {
    /// Neighbours per node (`M`). Default 16.
    pub connectivity: usize,
    /// Candidate list size while inserting (`ef_construction`). Default 128.
    pub expansion_add: usize,
    /// Candidate list size while searching (`ef`). Default 64.
    pub expansion_search: usize,
}

impl Default for IndexParams {
    fn default() -> Self {
        Self {
            connectivity: 16,
            expansion_add: 128,
            expansion_search: 64,
        }
    }
}

impl IndexParams {
    /// These parameters with a namespace's own graph settings over them.
    pub fn with_graph(mut self, settings: Option<hvs_types::GraphSettings>) -> Self {
        if let Some(g) = settings {
            self.connectivity = g.m.map_or(self.connectivity, |m| m as usize);
            self.expansion_add = g.ef_construction.map_or(self.expansion_add, |e| e as usize);
        }
        self
    }
}

/// Graph operations that may run at once (usearch needs a reserved context
/// per concurrent caller; more callers wait for a permit).
const GRAPH_THREADS: usize = 32;

/// Vectors a space holds before it gets a graph; below this, searches scan
/// it exactly (see the module's invariants). A k=10 search over 250 points
/// of H^12 costs less that way than through a graph (148 µs against
/// 219 µs, docs/BENCHMARKS.md "Agents in one process"), and a graph's
/// reservation costs ~600 KB whatever it holds.
pub(crate) const GRAPH_MIN: usize = 256;

/// The `ef` of the search by which a node's reachability is checked:
/// fixed, so that how many nodes count as unreachable (and are scanned
/// exactly, or get an overflow graph) does not depend on the store's
/// default search `ef`, which each search may override.
const CHECK_EF: usize = 64;

/// The `ef`s tried first, each only for a node not found at the one
/// before, then [`CHECK_EF`]: a greedy descent (`ef` 1) costs a fraction
/// of a search at 16. In a pass over 200,000 clustered 128-d vectors it
/// found 45 % of the nodes (85 % by `ef` 16); over 100,000 spread H^12
/// points, about a fifth (docs/BENCHMARKS.md, "One reachability pass").
const QUICK_CHECK_EFS: [usize; 2] = [1, 16];

/// Nodes a new graph reserves room for (it doubles from there).
const GRAPH_FIRST_CAPACITY: usize = 1024;

/// Reads vectors' coordinates as stored (the records', in `f64`) for a
/// space whose graph keeps them only quantized (`f16`, `i8`): one answer
/// per id, `None` for an id not stored in the space (any more).
pub(crate) type Records = Arc<dyn Fn(&[Uuid]) -> Result<Vec<Option<Vec<f64>>>> + Send + Sync>;

/// An entry with its key.
type Keyed = (u64, Arc<Entry>);

/// A reachability pass run in steps ([`SpaceIndex::relink_step`]): the
/// keys of the nodes there were when it began, and how many are checked.
struct RelinkPass {
    keys: Vec<u64>,
    next: usize,
}

/// What a search ranks ([`SpaceIndex::candidates`]).
struct Candidates {
    /// Entries whose distances are still to be computed.
    entries: Vec<Keyed>,
    /// Whether they came through the graph (rather than as every matching
    /// entry).
    through_graph: bool,
    /// Candidates ranked already, `(key, distance, id)`: the nearest of an
    /// `f64` or `f32` graph's list and of the nodes attached to those it
    /// found ([`SpaceIndex::rank_list`]).
    ranked: Vec<(u64, f64, Uuid)>,
}

/// A vector as the index keeps it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) id: Uuid,
    /// Its coordinates; empty once its graph node holds them in a space
    /// whose entries give them up ([`SpaceIndex::strips`]: `f64`, `f32`,
    /// and `f16` or `i8` with [`Records`]); all but `f64` keep them in
    /// `data32` until then.
    pub(crate) data: Vec<f64>,
    /// Such a space's `f32` copy of them, until its graph node holds them;
    /// then empty too (see [`SpaceIndex::admit`], [`SpaceIndex::coords`]).
    data32: Box<[f32]>,
    pub(crate) region: Option<String>,
    /// Shared: many messages between the same two models carry the same.
    /// Compact: the index keeps one for every vector.
    pub(crate) metadata: Arc<CompactMetadata>,
    /// [`SpaceIndex::twin_hash`] of its coordinates, set when the index
    /// admits it (an entry can give its coordinates up; its twin pair must
    /// still be found to be removed).
    twin: u64,
}

impl Entry {
    pub(crate) fn new(
        id: Uuid,
        data: Vec<f64>,
        region: Option<String>,
        metadata: Arc<CompactMetadata>,
    ) -> Self {
        Self {
            id,
            data,
            data32: Box::default(),
            region,
            metadata,
            twin: 0,
        }
    }

    /// The same entry with coordinates `data` (the same coordinates, or
    /// none: its twin hash stays).
    fn with_data(&self, data: Vec<f64>) -> Self {
        Self {
            twin: self.twin,
            ..Self::new(self.id, data, self.region.clone(), self.metadata.clone())
        }
    }

    /// The same entry without its coordinates (its twin hash stays): its
    /// graph node holds them.
    fn without_coords(mut self) -> Self {
        self.data = Vec::new();
        self.data32 = Box::default();
        self
    }

    /// Whether it has given its coordinates up to its graph node.
    fn stripped(&self) -> bool {
        self.data.is_empty() && self.data32.is_empty()
    }

    /// Its own coordinates (converted into `buf` from `f32`); `None` if
    /// stripped.
    fn own_coords<'a>(&'a self, buf: &'a mut Vec<f64>) -> Option<&'a [f64]> {
        if !self.data.is_empty() {
            return Some(&self.data);
        }
        if self.data32.is_empty() {
            return None;
        }
        buf.clear();
        buf.extend(self.data32.iter().map(|x| f64::from(*x)));
        Some(buf)
    }
}

/// One result of a search, before it leaves the crate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hit {
    pub(crate) id: Uuid,
    pub(crate) distance: f64,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Arc<Entry>>,
    keys: HashMap<Uuid, u64>,
    /// `(hash of its coordinates, key)` of every entry (none in an
    /// overflow graph's index) ([`SpaceIndex::twin_hash`]): a search for a
    /// stored vector's own coordinates finds it here whatever the graph
    /// does. A pair goes with its entry (the entry keeps its hash).
    twins: BTreeSet<(u64, u64)>,
    next_key: u64,
    /// Whether new vectors go to the graph (through `fresh`), or the space
    /// is still scanned exactly ([`GRAPH_MIN`]).
    graphed: bool,
    /// Set between [`SpaceIndex::load_unbuilt`] and the end of
    /// [`SpaceIndex::build_loaded`]: the graph is being built from the
    /// entries loaded at open, so every search scans every entry exactly.
    building: bool,
}

impl State {
    /// Puts in many `(twin hash, key)` pairs at once: a B-tree built from
    /// one sorted run is far cheaper than from pairs one at a time in hash
    /// order (a start's whole load goes through here).
    fn add_twins(&mut self, pairs: Vec<(u64, u64)>) {
        let mut pairs: BTreeSet<(u64, u64)> = pairs.into_iter().collect();
        self.twins.append(&mut pairs);
    }
}

struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Permits {
    fn acquire(&self) -> PermitGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        PermitGuard(self)
    }
}

struct PermitGuard<'a>(&'a Permits);

impl Drop for PermitGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

/// Keys waiting for the graph, oldest first, and how many there are,
/// readable without the lock: the indexer asks every space on every pass,
/// and most (every space below [`GRAPH_MIN`]) have none.
#[derive(Default)]
struct FreshBuffer {
    keys: Mutex<VecDeque<u64>>,
    len: std::sync::atomic::AtomicUsize,
}

impl FreshBuffer {
    fn lock(&self) -> FreshGuard<'_> {
        FreshGuard {
            keys: self.keys.lock().unwrap_or_else(|e| e.into_inner()),
            len: &self.len,
        }
    }

    fn len(&self) -> usize {
        self.len.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Drops these keys (removed vectors) from the buffer, so that its
    /// length counts only vectors waiting for the graph. Keys are pushed in
    /// increasing order and only a prefix is ever drained, so the buffer is
    /// sorted: each key is found by bisection; the oldest go first under a
    /// retention limit, which makes their removal cheap.
    fn forget(&self, keys: &[u64]) {
        if keys.is_empty() || self.len() == 0 {
            return;
        }
        let mut f = self.lock();
        for k in keys {
            if let Ok(i) = f.binary_search(k) {
                f.remove(i);
            }
        }
    }
}

/// The locked keys; the count follows them when the lock is let go.
struct FreshGuard<'a> {
    keys: std::sync::MutexGuard<'a, VecDeque<u64>>,
    len: &'a std::sync::atomic::AtomicUsize,
}

impl std::ops::Deref for FreshGuard<'_> {
    type Target = VecDeque<u64>;
    fn deref(&self) -> &VecDeque<u64> {
        &self.keys
    }
}

impl std::ops::DerefMut for FreshGuard<'_> {
    fn deref_mut(&mut self) -> &mut VecDeque<u64> {
        &mut self.keys
    }
}

impl Drop for FreshGuard<'_> {
    fn drop(&mut self) {
        self.len
            .store(self.keys.len(), std::sync::atomic::Ordering::Release);
    }
}

/// The nearest nodes a missed node's own search found that are considered
/// as its anchor, nearest first.
const ANCHOR_CHOICES: usize = 8;

/// Nodes attached to one anchor at most: past it, an unreachable node
/// stays loose (an overflow graph or the exact scan covers it), so that a
/// search expands no anchor into more than this many candidates.
const ANCHOR_MAX: usize = 8;

/// The nodes a search for their own vector did not find, and how searches
/// find them instead.
///
/// Most such nodes lost their in-links to the pruning of their
/// neighbours' lists, which keeps a closer node instead: the node their
/// own search finds first. So each is **attached** to that node, its
/// anchor (a node found by that search and not unreachable itself, taking
/// at most [`ANCHOR_MAX`]), and every search that finds an anchor proposes
/// its attached nodes too; for the price of a map lookup per candidate
/// rather than a second graph search. The rest stay **loose**: an
/// overflow graph covers them, or the exact scan.
///
/// An anchor is chosen only among nodes not unreachable, and a node leaves
/// the set (found again, or removed) with its own attachment: so following
/// anchors never goes round in a circle. A node that is found again keeps
/// the nodes attached to it (it is still their nearest); a removed one's
/// become loose.
#[derive(Default)]
struct Unreachable {
    /// Each node, and its anchor if it has one.
    nodes: HashMap<u64, Option<u64>>,
    /// The nodes attached to each anchor.
    attached: HashMap<u64, Vec<u64>>,
    /// How many of `nodes` have an anchor.
    anchored: usize,
}

impl Unreachable {
    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes no anchor covers.
    fn loose(&self) -> impl Iterator<Item = u64> + '_ {
        self.nodes
            .iter()
            .filter(|(_, a)| a.is_none())
            .map(|(k, _)| *k)
    }

    fn loose_len(&self) -> usize {
        self.nodes.len() - self.anchored
    }

    /// `key` was missed; `near`, live nodes its search found instead,
    /// nearest first. It keeps its anchor if it has one, else takes the
    /// first of `near` that can be one. Whether anything changed.
    fn missed(&mut self, key: u64, near: &[u64]) -> bool {
        let known = match self.nodes.get(&key) {
            Some(Some(_)) => return false,
            Some(None) => true,
            None => false,
        };
        let anchor = near
            .iter()
            .copied()
            .find(|a| !self.nodes.contains_key(a) && self.has_room(key, *a));
        self.insert(key, anchor);
        !known || anchor.is_some()
    }

    /// Whether `anchor` can take `key`.
    fn has_room(&self, key: u64, anchor: u64) -> bool {
        anchor != key && self.attached.get(&anchor).map_or(0, Vec::len) < ANCHOR_MAX
    }

    /// Records `key`, attached to `anchor` if given.
    fn insert(&mut self, key: u64, anchor: Option<u64>) {
        if let Some(a) = anchor {
            self.attached.entry(a).or_default().push(key);
            self.anchored += 1;
        }
        self.nodes.insert(key, anchor);
    }

    /// `key` as a graph dump recorded it: attached to `anchor` (unreachable
    /// itself or not, as it may have become since), if that can take it.
    fn restore(&mut self, key: u64, anchor: Option<u64>) {
        let anchor = anchor.filter(|a| self.has_room(key, *a));
        self.insert(key, anchor);
    }

    /// `key` is found again: it leaves the set, and its anchor.
    fn found(&mut self, key: u64) -> bool {
        let Some(anchor) = self.nodes.remove(&key) else {
            return false;
        };
        if let Some(a) = anchor {
            self.anchored -= 1;
            if let Some(list) = self.attached.get_mut(&a) {
                list.retain(|k| *k != key);
                if list.is_empty() {
                    self.attached.remove(&a);
                }
            }
        }
        true
    }

    /// `key` is no longer in the graph: as [`found`](Self::found), and the
    /// nodes attached to it become loose.
    fn removed(&mut self, key: u64) -> bool {
        let mut changed = self.found(key);
        for k in self.attached.remove(&key).unwrap_or_default() {
            if let Some(a) = self.nodes.get_mut(&k) {
                *a = None;
                self.anchored -= 1;
                changed = true;
            }
        }
        changed
    }

    fn clear(&mut self) {
        *self = Self::default();
    }

    /// Appends to `out` the nodes attached to `found`'s (distinct keys,
    /// nearest first), and to those in turn, until `budget` are added
    /// (finishing the node at which it is reached). Each node comes at most
    /// once, as attachments never go round in a circle (and if a damaged
    /// dump's did, the count of attached nodes still ends the walk).
    fn expand(&self, found: &[u64], budget: usize, out: &mut Vec<u64>) {
        if self.attached.is_empty() {
            return;
        }
        let start = out.len();
        for k in found {
            if out.len() - start >= budget {
                break;
            }
            let Some(list) = self.attached.get(k) else {
                continue;
            };
            let mut i = out.len();
            out.extend_from_slice(list);
            while i < out.len() && out.len() - start <= self.anchored {
                if let Some(list) = self.attached.get(&out[i]) {
                    out.extend_from_slice(list);
                }
                i += 1;
            }
        }
    }

    /// `(node, anchor)` of every attached node, for a graph dump.
    fn anchors(&self) -> Vec<(u64, u64)> {
        self.nodes
            .iter()
            .filter_map(|(k, a)| Some((*k, (*a)?)))
            .collect()
    }
}

/// The unreachable keys not covered by `overflow`, as searches scan them.
struct Uncovered {
    overflow: Option<Arc<Overflow>>,
    keys: Arc<[u64]>,
}

/// A search request inside the crate.
pub(crate) struct Query<'a> {
    pub(crate) vector: &'a [f64],
    pub(crate) want: usize,
    pub(crate) filter: Option<&'a Filter>,
    pub(crate) region: Option<&'a str>,
    pub(crate) exact: bool,
    /// The graph search's candidate list (at least `want`); `None`: the
    /// index's `expansion_search`.
    pub(crate) ef: Option<usize>,
}

pub(crate) struct SpaceIndex {
    manifold: AnyManifold,
    /// The manifold and HNSW parameters, as a graph dump records them.
    fingerprint: String,
    /// `None` until the space is graphed and the first merge or load makes it.
    graph: RwLock<Option<Index>>,
    state: RwLock<State>,
    /// Keys waiting for the graph, oldest first (pushed at the back, merged
    /// from the front).
    fresh: FreshBuffer,
    unreachable: Mutex<Unreachable>,
    /// The loose unreachable keys no overflow graph covers, as every search scans
    /// them; `None` after either changes, until a search asks again. Keeps
    /// a search's cost from growing with the unreachable set.
    uncovered: Mutex<Option<Uncovered>>,
    /// Vectors merged into the graph since the last full reachability pass.
    since_relink: std::sync::atomic::AtomicUsize,
    /// The reachability pass the indexer runs in steps, while one is under
    /// way ([`SpaceIndex::relink_step`]).
    relinking: Mutex<Option<RelinkPass>>,
    /// One merger at a time (the indexer thread, or `flush_index`).
    merging: Mutex<()>,
    /// Threads waiting for `merging`; the indexer steps aside for them
    /// (a mutex is not fair: re-locking at once, it would starve them).
    merge_waiters: std::sync::atomic::AtomicUsize,
    permits: Permits,
    params: IndexParams,
    /// What the graph stores its vectors as.
    datatype: Datatype,
    /// Whether anything a graph dump holds has changed since the last dump
    /// (or since the dump this index was loaded from).
    changed: std::sync::atomic::AtomicBool,
    /// A second graph over the loose unreachable nodes, searched beside this one.
    overflow: RwLock<Option<Arc<Overflow>>>,
    /// 0 for a space's graph, 1 for its overflow graph, and so on.
    depth: usize,
    /// Keys [`SpaceIndex::twin_hash`] (per index, so that nobody can choose
    /// vectors whose hashes collide).
    twin_hasher: RandomState,
    /// Where an `f16` or `i8` space reads the coordinates its entries gave
    /// up to the graph; without it they keep them ([`SpaceIndex::strips`]).
    records: Option<Records>,
    /// The graph's coordinates of the nodes a check is re-inserting, held
    /// aside while each is out of the graph ([`SpaceIndex::node_coords`]);
    /// a few at a time (one per checking thread).
    held: Mutex<Vec<(u64, Vec<f64>)>>,
}

/// Overflow graphs below a space's graph at most. Each level has always
/// shrunk on real data (three sufficed for 50,000 spread H^12 points), but
/// duplicate points never become reachable — a search for one of them can
/// return any of its twins — so without a limit they would nest graphs
/// until the stack ran out. What is left at the last level is scanned
/// exactly.
const MAX_OVERFLOW_DEPTH: usize = 4;

/// Loose unreachable nodes scanned exactly by every search until there are
/// this many; past it they get a graph of their own. Scanning one costs a
/// distance in `f64` (and a read of its coordinates from the graph, where
/// entries give them up): with 851 of them scanned, a search of 200,000 clustered
/// 128-d vectors at `ef` 16 took 243 µs; with them in an overflow graph,
/// 90 µs (an ad-hoc example run, not a committed bench; 2-core VM under
/// load, 2026-12-06).
const OVERFLOW_MIN: usize = 64;

/// A node's coordinates held aside in [`SpaceIndex::held`] while a check
/// re-inserts it; let go when dropped.
struct Held<'a> {
    list: &'a Mutex<Vec<(u64, Vec<f64>)>>,
    key: u64,
}

impl<'a> Held<'a> {
    fn new(list: &'a Mutex<Vec<(u64, Vec<f64>)>>, key: u64, data: &[f64]) -> Self {
        let mut l = list.lock().unwrap_or_else(|e| e.into_inner());
        l.push((key, data.to_vec()));
        Held { list, key }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut l = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = l.iter().position(|(k, _)| *k == self.key) {
            l.swap_remove(i);
        }
    }
}

/// A graph over (a snapshot of) a space's loose unreachable nodes, those
/// no anchor takes ([`Unreachable`]).
///
/// On spread-out hyperbolic data a fifth or more of the nodes can end up
/// without in-links (the points near the origin are everyone's nearest
/// neighbours, and HNSW's pruning keeps those links). Scanning them exactly
/// costs a full scan of a fifth of the space per query. Built by themselves,
/// the same nodes form a much better graph (measured on 50,000 spread H^12
/// points: 18,813 unreachable; 2,084 of those are unreachable in their own
/// graph; 293 in the next; 0 in the one after). So an overflow is itself a
/// [`SpaceIndex`], with its own overflow. It shares the entries (`Arc`) and is
/// never changed after it is built; the space rebuilds it when the
/// unreachable nodes it does not cover grow past a quarter of those it does.
/// It only proposes candidates: the space maps them back to its own current
/// entries and computes their distances itself.
struct Overflow {
    index: SpaceIndex,
    /// The space's keys it covers.
    keys: HashSet<u64>,
}

fn index_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Index(e.to_string())
}

/// Reads poisoned locks through: every writer leaves the state consistent
/// between statements, so a panic elsewhere does not invalidate it.
macro_rules! read {
    ($l:expr) => {
        $l.read().unwrap_or_else(|e| e.into_inner())
    };
}
macro_rules! write {
    ($l:expr) => {
        $l.write().unwrap_or_else(|e| e.into_inner())
    };
}

impl SpaceIndex {
    /// An index with no vectors and no graph (it costs a few hundred bytes
    /// until it holds [`GRAPH_MIN`] vectors).
    pub(crate) fn new(
        manifold: AnyManifold,
        params: IndexParams,
        datatype: Datatype,
    ) -> Result<Self> {
        Ok(Self {
            fingerprint: format!("{manifold:?} {params:?} {datatype:?}"),
            datatype,
            manifold,
            graph: RwLock::new(None),
            state: RwLock::new(State::default()),
            fresh: FreshBuffer::default(),
            unreachable: Mutex::new(Unreachable::default()),
            uncovered: Mutex::new(None),
            since_relink: std::sync::atomic::AtomicUsize::new(0),
            relinking: Mutex::new(None),
            merging: Mutex::new(()),
            merge_waiters: std::sync::atomic::AtomicUsize::new(0),
            held: Mutex::new(Vec::new()),
            permits: Permits {
                free: Mutex::new(GRAPH_THREADS),
                cv: Condvar::new(),
            },
            params,
            changed: std::sync::atomic::AtomicBool::new(true),
            overflow: RwLock::new(None),
            depth: 0,
            twin_hasher: RandomState::new(),
            records: None,
        })
    }

    /// The index with `records` to read stored coordinates from: in an
    /// `f16` or `i8` space its entries then give theirs up to the graph,
    /// and distances are computed from the records (docs/STORAGE.md,
    /// "Vector storage"). Other spaces never read them.
    pub(crate) fn with_records(mut self, records: Records) -> Self {
        self.records = Some(records);
        self
    }

    /// An empty graph with room for `capacity` nodes and every permitted
    /// thread.
    fn new_graph(&self, capacity: usize) -> Result<Index> {
        let options = IndexOptions {
            dimensions: self.manifold.ambient_dim(),
            metric: MetricKind::L2sq,
            quantization: match self.datatype {
                Datatype::F64 => ScalarKind::F64,
                Datatype::F32 => ScalarKind::F32,
                Datatype::F16 => ScalarKind::F16,
                Datatype::I8 => ScalarKind::I8,
            },
            connectivity: self.params.connectivity,
            expansion_add: self.params.expansion_add,
            // Every search asks for `max(want, ef)` results, which is its
            // candidate list: usearch's own ef only sets a floor.
            expansion_search: 1,
            multi: false,
        };
        let mut graph = Index::new(&options).map_err(index_err)?;
        Self::configure(&mut graph, &self.manifold, self.datatype);
        graph
            .reserve_capacity_and_threads(capacity, GRAPH_THREADS)
            .map_err(index_err)?;
        Ok(graph)
    }

    /// The parameters its graph is built and searched with.
    pub(crate) fn params(&self) -> IndexParams {
        self.params
    }

    fn lock_merging(&self) -> std::sync::MutexGuard<'_, ()> {
        use std::sync::atomic::Ordering::SeqCst;
        self.merge_waiters.fetch_add(1, SeqCst);
        let g = self.merging.lock().unwrap_or_else(|e| e.into_inner());
        self.merge_waiters.fetch_sub(1, SeqCst);
        g
    }

    /// Whether a thread waits to merge, dump, relink or verify: the
    /// background indexer lets it go first.
    pub(crate) fn others_waiting(&self) -> bool {
        self.merge_waiters.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    fn mark_changed(&self) {
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether anything a graph dump holds has changed since the last dump
    /// or the dump this index was loaded from. A space without a graph has
    /// nothing to dump: it is scanned exactly after a reopen too.
    pub(crate) fn changed_since_dump(&self) -> bool {
        let st = read!(self.state);
        self.changed.load(std::sync::atomic::Ordering::Relaxed) && st.graphed && !st.building
    }

    /// What the graph ranks by: any strictly increasing function of the
    /// manifold's distance gives the same graph and the same search, so it
    /// is the cheapest such function (results are re-ranked by the exact
    /// `f64` distance afterwards). Euclidean distance and the sphere's (a
    /// monotone function of the chord) rank like squared Euclidean distance:
    /// in an `f32` graph HVS's own kernel ([`crate::kernel`], summed in
    /// `f32`), in the others usearch's. The hyperboloid ranks by
    /// [`hyperboloid_rank`], the Poincaré ball by [`poincare_rank`], the
    /// others by the distance itself. usearch calls the metric once per
    /// pair of vectors, millions of times a second while it inserts, so the
    /// hyperbolic ranks sum on four independent accumulators ([`dot4`]): one
    /// running sum is a chain of dependent adds that the compiler may not
    /// reorder. The search ef is a floor of 1: each search sets its own. (A
    /// loaded graph forgets a custom metric and keeps the dumped ef, so this
    /// runs after every load too.)
    fn configure(graph: &mut Index, manifold: &AnyManifold, datatype: Datatype) {
        graph.change_expansion_search(1);
        let dims = manifold.ambient_dim();
        match manifold {
            AnyManifold::Euclidean(_) | AnyManifold::Sphere(_) => {
                if datatype == Datatype::F32 {
                    let l2sq = crate::kernel::l2sq_f32();
                    graph.change_metric::<f32>(Box::new(move |a, b| {
                        let (x, y) = metric_args(dims, a, b);
                        l2sq(x, y)
                    }));
                }
            }
            AnyManifold::Hyperboloid(h) => {
                let h = *h;
                graph.change_metric::<f64>(Box::new(move |a, b| {
                    let (x, y) = metric_args(dims, a, b);
                    hyperboloid_rank(&h, x, y)
                }));
            }
            AnyManifold::PoincareBall(p) => {
                let c = p.c();
                graph.change_metric::<f64>(Box::new(move |a, b| {
                    let (x, y) = metric_args(dims, a, b);
                    poincare_rank(c, x, y)
                }));
            }
            m => {
                let m = m.clone();
                graph.change_metric::<f64>(Box::new(move |a, b| {
                    let (x, y) = metric_args(dims, a, b);
                    m.distance_unchecked(x, y) as f32
                }));
            }
        }
    }

    pub(crate) fn manifold(&self) -> &AnyManifold {
        &self.manifold
    }

    /// Adds or replaces the vector `entry.id`; it goes to the fresh buffer
    /// of a graphed space. Whether the indexer has work (the space is graphed).
    pub(crate) fn upsert(&self, entry: Entry) -> bool {
        self.upsert_all(std::iter::once(entry))
    }

    /// [`upsert`](Self::upsert) for many entries, taking the locks once.
    pub(crate) fn upsert_all(&self, entries: impl IntoIterator<Item = Entry>) -> bool {
        self.mark_changed();
        let mut replaced = Vec::new();
        {
            let mut st = write!(self.state);
            let mut fresh = self.fresh.lock();
            for entry in entries {
                let entry = self.admit(entry);
                let key = st.next_key;
                st.next_key += 1;
                if let Some(k) = st.keys.insert(entry.id, key) {
                    self.forget(&mut st, k);
                    replaced.push(k);
                }
                if let Some(h) = self.entry_twin(&entry) {
                    st.twins.insert((h, key));
                }
                st.entries.insert(key, Arc::new(entry));
                if st.graphed {
                    fresh.push_back(key);
                }
            }
            if !st.graphed && st.entries.len() >= GRAPH_MIN {
                // The indexer builds the graph from all of them, oldest first.
                st.graphed = true;
                let mut keys: Vec<u64> = st.entries.keys().copied().collect();
                keys.sort_unstable();
                fresh.extend(keys);
            }
        }
        // A replaced vector's old key no longer waits for the graph.
        self.fresh.forget(&replaced);
        for k in replaced {
            self.change_unreachable(|u| u.removed(k));
            self.remove_from_graph(k);
        }
        read!(self.state).graphed
    }

    /// The unreachable keys, to read.
    fn lock_unreachable(&self) -> std::sync::MutexGuard<'_, Unreachable> {
        self.unreachable.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `change` to the unreachable set; if it says it changed
    /// anything, searches recompute what they scan (their copy is dropped
    /// before the set's lock is let go).
    fn change_unreachable(&self, change: impl FnOnce(&mut Unreachable) -> bool) -> bool {
        let mut u = self.lock_unreachable();
        let changed = change(&mut u);
        if changed {
            *self.uncovered.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        changed
    }

    fn set_overflow(&self, overflow: Option<Arc<Overflow>>) {
        *write!(self.overflow) = overflow;
    }

    /// The loose unreachable keys that `overflow` does not cover: computed once
    /// after each change of either, then shared by every search. (Locks:
    /// the unreachable keys, then the copy, as
    /// [`change_unreachable`](Self::change_unreachable) takes them.)
    fn uncovered(&self, overflow: Option<&Arc<Overflow>>) -> Arc<[u64]> {
        let u = self.lock_unreachable();
        let mut cached = self.uncovered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.as_ref()
            && c.overflow.as_ref().map(Arc::as_ptr) == overflow.map(Arc::as_ptr)
        {
            return c.keys.clone();
        }
        let keys: Arc<[u64]> = match overflow {
            Some(o) => u.loose().filter(|k| !o.keys.contains(k)).collect(),
            None => u.loose().collect(),
        };
        *cached = Some(Uncovered {
            overflow: overflow.cloned(),
            keys: keys.clone(),
        });
        keys
    }

    /// Whether a search for the key's own vector finds it; if not, the node
    /// is re-inserted once, and if still not found, recorded as unreachable
    /// (attached to the nearest node that search found, if one can take
    /// it: [`Unreachable`]).
    fn ensure_reachable(&self, key: u64, entry: &Entry) -> Result<()> {
        let mut own = Vec::new();
        let missed = match entry.own_coords(&mut own) {
            Some(data) => self.check_node(key, data)?,
            None => {
                // Its node's coordinates: in an `f64` or `f32` graph its own (exact
                // in `f64`); in an `f16` or `i8` one rounded, which finds
                // the node as well (the search ranks by the same copy), and
                // a re-insert puts the same copy back: no record is read.
                let mut data = vec![0.0; self.manifold.ambient_dim()];
                {
                    let _p = self.permits.acquire();
                    let g = read!(self.graph);
                    if !g
                        .as_ref()
                        .is_some_and(|g| g.get(key, &mut data).is_ok_and(|n| n == 1))
                    {
                        return Ok(());
                    }
                }
                self.check_node(key, &data)?
            }
        };
        // A change makes every search recompute the keys it scans exactly.
        // An anchor is a live node: the state's lock, held until it is
        // recorded, keeps a removal from coming between (a removal takes
        // it first, then dissolves the anchor's attachments). Locks: the
        // state's, then the unreachable set's, as everywhere.
        let changed = match &missed {
            Some(near) => {
                let st = read!(self.state);
                let live: Vec<u64> = near
                    .iter()
                    .copied()
                    .filter(|k| st.entries.contains_key(k))
                    .collect();
                self.change_unreachable(|u| u.missed(key, &live))
            }
            None => self.change_unreachable(|u| u.found(key)),
        };
        if changed {
            self.mark_changed();
        }
        Ok(())
    }

    /// Whether a search for `data`, the node `key`'s vector, finds it; if
    /// not, re-inserts the node and searches again. `None` when found
    /// (either time); else the nodes the last search found instead,
    /// nearest first. In a space whose entries give their coordinates up
    /// to their nodes ([`SpaceIndex::strips`]) the node's are held aside
    /// while it is out of the graph, so that searches that took its entry
    /// without them can read them meanwhile ([`SpaceIndex::node_coords`]).
    fn check_node(&self, key: u64, data: &[f64]) -> Result<Option<Vec<u64>>> {
        // Found among the nearest (a twin may rank first): at small `ef`s
        // first, which cost less ([`QUICK_CHECK_EFS`]), then at
        // [`CHECK_EF`]. A node gone from the graph (removed meanwhile)
        // counts as found: nothing is left to check.
        // `None` when found; else the nodes found instead, nearest first.
        let look = || -> Result<Option<Vec<u64>>> {
            let _p = self.permits.acquire();
            let g = read!(self.graph);
            let Some(g) = g.as_ref().filter(|g| g.contains(key)) else {
                return Ok(None);
            };
            let mut near = Vec::new();
            for ef in QUICK_CHECK_EFS.into_iter().chain([CHECK_EF]) {
                let found = g.search(data, ef).map_err(index_err)?;
                if found.keys.contains(&key) {
                    return Ok(None);
                }
                near = found.keys;
            }
            near.truncate(ANCHOR_CHOICES);
            Ok(Some(near))
        };
        if look()?.is_none() {
            return Ok(None);
        }
        self.mark_changed();
        // Held from before the node leaves the graph until it is back.
        let _held = self.strips().then(|| Held::new(&self.held, key, data));
        let added = {
            let _p = self.permits.acquire();
            let g = read!(self.graph);
            match g.as_ref() {
                Some(g) => {
                    let _ = g.remove(key);
                    g.add(key, data).map_err(index_err)
                }
                None => Ok(()),
            }
        };
        drop(_held);
        added?;
        // A delete may have raced the re-insert: undo it if so (as in
        // `merge_fresh`).
        if !read!(self.state).entries.contains_key(&key) {
            self.remove_from_graph(key);
        }
        look()
    }

    /// [`SpaceIndex::node_coords`] as `f32` (an `f16` or `i8` graph's
    /// copy, converted by usearch), into `buf` (of the ambient dimension);
    /// `wide` is scratch for a node held aside.
    fn node_coords32(&self, graph: &Index, key: u64, buf: &mut [f32], wide: &mut Vec<f64>) -> bool {
        if graph.get(key, buf).is_ok_and(|n| n == 1) {
            return true;
        }
        let found = self.node_coords(graph, key, wide);
        for (x, w) in buf.iter_mut().zip(wide.iter()) {
            *x = *w as f32;
        }
        found
    }

    /// The graph's coordinates of node `key` into `buf` (resized to the
    /// ambient dimension); whether it has any. A node a check is
    /// re-inserting ([`SpaceIndex::check_node`]) is out of the graph for a
    /// moment, its coordinates held aside until it is back: looked up
    /// there, and, if the re-insert ended meanwhile, in the graph again.
    fn node_coords(&self, graph: &Index, key: u64, buf: &mut Vec<f64>) -> bool {
        buf.resize(self.manifold.ambient_dim(), 0.0);
        let get = |buf: &mut Vec<f64>| graph.get(key, buf).is_ok_and(|n| n == 1);
        if get(buf) {
            return true;
        }
        let held = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, data)| buf.copy_from_slice(data))
            .is_some();
        held || get(buf)
    }

    /// Checks every graph node's reachability on all cores; returns how
    /// many remain unreachable.
    pub(crate) fn relink(&self) -> Result<usize> {
        self.relink_on(all_cores())
    }

    /// [`relink`](Self::relink) on up to `threads` threads (a pass under
    /// way in steps is dropped: this one checks every node).
    pub(crate) fn relink_on(&self, threads: usize) -> Result<usize> {
        let _one = self.lock_merging();
        *self.relinking.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.since_relink
            .store(0, std::sync::atomic::Ordering::Relaxed);
        if read!(self.graph).is_none() {
            return Ok(0);
        }
        let items: Vec<(u64, Arc<Entry>)> = read!(self.state)
            .entries
            .iter()
            .map(|(k, e)| (*k, e.clone()))
            .collect();
        self.check_reachable(&items, threads)?;
        self.refresh_overflow()?;
        Ok(self.lock_unreachable().len())
    }

    /// Rebuilds the overflow graph over every loose unreachable node now (or
    /// drops it when there are few), whatever the earlier graph covered: a
    /// flush ends with the overflow that the graph as it now is calls for,
    /// not one built part-way through the merges.
    pub(crate) fn rebuild_overflow(&self) -> Result<()> {
        let _one = self.lock_merging();
        if self.depth >= MAX_OVERFLOW_DEPTH {
            return Ok(());
        }
        if self.lock_unreachable().loose_len() < OVERFLOW_MIN {
            self.set_overflow(None);
            return Ok(());
        }
        self.build_overflow()
    }

    /// Builds a new overflow graph when the loose unreachable nodes the
    /// current one does not cover are too many to scan exactly; drops it
    /// when there are few loose ones left.
    fn refresh_overflow(&self) -> Result<()> {
        if self.depth >= MAX_OVERFLOW_DEPTH {
            return Ok(());
        }
        let covered = read!(self.overflow).as_ref().map_or(0, |o| o.keys.len());
        let (total, uncovered) = {
            let u = self.lock_unreachable();
            let uncovered = match read!(self.overflow).as_ref() {
                Some(o) => u.loose().filter(|k| !o.keys.contains(k)).count(),
                None => u.loose_len(),
            };
            (u.loose_len(), uncovered)
        };
        if total < OVERFLOW_MIN {
            self.set_overflow(None);
            return Ok(());
        }
        if uncovered < OVERFLOW_MIN.max(covered / 4) {
            return Ok(());
        }
        self.build_overflow()
    }

    /// The cheap form of [`refresh_overflow`](Self::refresh_overflow) for
    /// the indexer's every batch: rebuilds only when the loose unreachable
    /// nodes outnumber the covered ones by the same margin (so at least
    /// that many are uncovered); the full reachability pass counts exactly.
    fn grow_overflow(&self) -> Result<()> {
        if self.depth >= MAX_OVERFLOW_DEPTH {
            return Ok(());
        }
        let covered = read!(self.overflow).as_ref().map_or(0, |o| o.keys.len());
        let total = self.lock_unreachable().loose_len();
        if total >= OVERFLOW_MIN && total >= covered + OVERFLOW_MIN.max(covered / 4) {
            self.build_overflow()?;
        }
        Ok(())
    }

    fn build_overflow(&self) -> Result<()> {
        let loose: Vec<u64> = self.lock_unreachable().loose().collect();
        let entries: Vec<(u64, Arc<Entry>)> = {
            let st = read!(self.state);
            let g = read!(self.graph);
            loose
                .iter()
                .filter_map(|k| {
                    let e = self.with_coords(g.as_ref(), *k, st.entries.get(k)?)?;
                    Some((*k, e))
                })
                .collect()
        };
        let mut index = SpaceIndex::new(self.manifold.clone(), self.params, self.datatype)?;
        index.depth = self.depth + 1;
        // No records: its entries (a few of the space's) keep their
        // coordinates, so that its searches, which only propose keys, read
        // none.
        let keys = entries.iter().map(|(k, _)| *k).collect();
        // A graph whatever the count: it is built to be one.
        index.bulk_load_shared(entries.into_iter().map(|(_, e)| e).collect(), true)?;
        self.set_overflow(Some(Arc::new(Overflow { index, keys })));
        Ok(())
    }

    /// Unreachable nodes no overflow graph covers, here and in the overflow
    /// graphs: what searches scan exactly besides the fresh buffer.
    pub(crate) fn scanned_exactly(&self) -> usize {
        let u = self.lock_unreachable();
        match read!(self.overflow).as_ref() {
            Some(o) => {
                u.loose().filter(|k| !o.keys.contains(k)).count() + o.index.scanned_exactly()
            }
            None => u.loose_len(),
        }
    }

    /// Unreachable nodes attached to an anchor ([`Unreachable`]).
    pub(crate) fn attached_len(&self) -> usize {
        self.lock_unreachable().anchored
    }

    /// Nodes in overflow graphs (all levels).
    pub(crate) fn overflow_len(&self) -> usize {
        read!(self.overflow)
            .as_ref()
            .map_or(0, |o| o.keys.len() + o.index.overflow_len())
    }

    /// Checks each node, re-inserting the ones not found (and recording
    /// those still not found as unreachable). A re-insert can prune other
    /// nodes' links, and the nodes checked before it are not checked
    /// again: a second pass over them found few nodes lost that way and
    /// cost a sixth of a build (docs/STORAGE.md, "Every stored point"); the
    /// next pass checks them.
    fn check_reachable(&self, items: &[(u64, Arc<Entry>)], threads: usize) -> Result<()> {
        in_threads(threads, items, |(k, e)| {
            if read!(self.state).entries.contains_key(k) {
                self.ensure_reachable(*k, e)?;
            }
            Ok(())
        })
    }

    /// Whether a reachability pass is due ([`SpaceIndex::relink_due`]) or
    /// under way in steps: the indexer then calls
    /// [`SpaceIndex::relink_step`].
    pub(crate) fn relink_pending(&self) -> bool {
        self.relink_due()
            || self
                .relinking
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
    }

    /// The next `step` nodes of the reachability pass under way, checked
    /// on up to `threads` threads (a pass starts, over the nodes there are
    /// then, when [`SpaceIndex::relink_due`]); whether the pass is still
    /// under way after them. The indexer runs a pass so, between its merge
    /// batches: a pass over a large graph in one go kept it from merging
    /// for as long, and under a retention limit, whose removals counted as
    /// changes too, passes came due so often that it merged nothing at
    /// all (docs/BENCHMARKS.md, "Reachability passes in steps").
    pub(crate) fn relink_step(&self, step: usize, threads: usize) -> Result<bool> {
        let _one = self.lock_merging();
        let items: Vec<(u64, Arc<Entry>)>;
        let done;
        {
            let mut pass = self.relinking.lock().unwrap_or_else(|e| e.into_inner());
            if pass.is_none() {
                if !self.relink_due() || read!(self.graph).is_none() {
                    return Ok(false);
                }
                self.since_relink
                    .store(0, std::sync::atomic::Ordering::Relaxed);
                let keys = read!(self.state).entries.keys().copied().collect();
                *pass = Some(RelinkPass { keys, next: 0 });
            }
            let Some(p) = pass.as_mut() else {
                return Ok(false);
            };
            let end = (p.next + step).min(p.keys.len());
            let st = read!(self.state);
            items = p.keys[p.next..end]
                .iter()
                .filter_map(|k| Some((*k, st.entries.get(k)?.clone())))
                .collect();
            drop(st);
            p.next = end;
            done = end == p.keys.len();
            if done {
                *pass = None;
            }
        }
        self.check_reachable(&items, threads)?;
        if done {
            self.refresh_overflow()?;
        }
        Ok(!done)
    }

    /// Whether the graph has changed enough since the last reachability
    /// pass that older nodes may have lost their in-links: inserts since
    /// then reach its size (or 256). That keeps the passes' total work at
    /// about one check per insert.
    pub(crate) fn relink_due(&self) -> bool {
        let changed = self.since_relink.load(std::sync::atomic::Ordering::Relaxed);
        // The cheap test first: asked of every space on every pass.
        changed >= 256 && changed >= self.graph_len()
    }

    pub(crate) fn unreachable_len(&self) -> usize {
        self.lock_unreachable().len()
    }

    /// Removes the vector `id`; `false` if it was not indexed.
    pub(crate) fn remove(&self, id: Uuid) -> bool {
        let key = {
            let mut st = write!(self.state);
            let Some(key) = st.keys.remove(&id) else {
                return false;
            };
            self.forget(&mut st, key);
            key
        };
        self.fresh.forget(&[key]);
        self.mark_changed();
        self.change_unreachable(|u| u.removed(key));
        self.remove_from_graph(key);
        true
    }

    /// Removes many vectors, taking the entries' lock once; how many were
    /// indexed.
    pub(crate) fn remove_all(&self, ids: &[Uuid]) -> usize {
        let keys: Vec<u64> = {
            let mut st = write!(self.state);
            ids.iter()
                .filter_map(|id| {
                    let key = st.keys.remove(id)?;
                    self.forget(&mut st, key);
                    Some(key)
                })
                .collect()
        };
        if keys.is_empty() {
            return 0;
        }
        self.fresh.forget(&keys);
        self.mark_changed();
        self.change_unreachable(|u| keys.iter().fold(false, |c, k| u.removed(*k) | c));
        for &k in &keys {
            self.remove_from_graph(k);
        }
        keys.len()
    }

    fn remove_from_graph(&self, key: u64) {
        let _p = self.permits.acquire();
        let g = read!(self.graph);
        if let Some(g) = g.as_ref()
            && g.contains(key)
        {
            // A failed removal leaves an orphan, which searches skip and
            // repair_index clears. A removed node keeps its links: usearch
            // only marks its key free, and searches still pass through it
            // (they leave it out of their answers). The insert that later
            // reuses its slot relinks it, and counts as a change then; the
            // removal itself does not count towards the next pass.
            let _ = g.remove(key);
        }
    }

    /// Adds many entries at once (on open) and, if the space then holds
    /// [`GRAPH_MIN`] vectors or more, builds its graph on all cores.
    pub(crate) fn bulk_load(&self, entries: Vec<Entry>) -> Result<()> {
        let entries = entries.into_iter().map(|e| Arc::new(self.admit(e)));
        self.bulk_load_shared(entries.collect(), false)
    }

    /// [`SpaceIndex::bulk_load`] of entries shared with another index; with
    /// `graph`, a graph however few they are.
    fn bulk_load_shared(&self, entries: Vec<Arc<Entry>>, graph: bool) -> Result<()> {
        if self.insert_loaded(entries, graph, false) {
            self.build_graph(&|| false)?;
        }
        Ok(())
    }

    /// Adds the entries read at open without building their graph: until
    /// [`SpaceIndex::build_loaded`] has, every search scans them exactly.
    /// Whether the space needs that build.
    pub(crate) fn load_unbuilt(&self, entries: Vec<Entry>) -> bool {
        let entries = entries.into_iter().map(|e| Arc::new(self.admit(e)));
        self.insert_loaded(entries.collect(), false, true)
    }

    /// Builds the graph of the entries [`SpaceIndex::load_unbuilt`] added,
    /// on every core, then lets searches use it. Writes made meanwhile go
    /// through the fresh buffer as usual. `stop` ends the build early (the
    /// store is closing): the space is then scanned exactly until closed.
    pub(crate) fn build_loaded(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<()> {
        self.build_graph(stop)?;
        write!(self.state).building = false;
        Ok(())
    }

    /// Puts entries in; whether the space (now) needs a graph built.
    fn insert_loaded(&self, entries: Vec<Arc<Entry>>, graph: bool, building: bool) -> bool {
        self.mark_changed();
        let mut st = write!(self.state);
        st.entries.reserve(entries.len());
        st.keys.reserve(entries.len());
        let mut twins = Vec::with_capacity(entries.len());
        for e in entries {
            let key = st.next_key;
            st.next_key += 1;
            st.keys.insert(e.id, key);
            if let Some(h) = self.entry_twin(&e) {
                twins.push((h, key));
            }
            st.entries.insert(key, e);
        }
        st.add_twins(twins);
        st.graphed |= graph || st.entries.len() >= GRAPH_MIN;
        st.building = building && st.graphed;
        st.graphed
    }

    /// Adds every entry to the graph on all cores, then checks that each is
    /// found by a search for its own vector.
    fn build_graph(&self, stop: &(dyn Fn() -> bool + Sync)) -> Result<()> {
        // Entries the indexer merged meanwhile (from writes during a
        // background build) are in the graph already.
        let items: Vec<(u64, Arc<Entry>)> = {
            let st = read!(self.state);
            let g = read!(self.graph);
            st.entries
                .iter()
                .filter(|(k, e)| !e.stripped() && !g.as_ref().is_some_and(|g| g.contains(**k)))
                .map(|(k, e)| (*k, e.clone()))
                .collect()
        };
        self.ensure_capacity(items.len())?;
        in_parallel(&items, |(k, e)| {
            if stop() {
                return Err(StorageError::Closed);
            }
            let _p = self.permits.acquire();
            self.add_entry(*k, e)
        })?;
        self.relink()?;
        self.strip(items.iter().map(|(k, _)| *k));
        Ok(())
    }

    /// An entry as this index keeps it: its twin hash set; in a space whose
    /// entries give their coordinates up ([`SpaceIndex::strips`]) and
    /// whose graph is not `f64`, its coordinates as `f32` (half the memory
    /// while it waits in the fresh buffer; an `f64` space keeps them as
    /// they are until its graph holds them). In an `f32` space that is what the graph holds, so that
    /// every distance is computed from the same coordinates, whether the
    /// entry or the graph gives them; in an `f16` or `i8` one the copy only
    /// ranks it and goes to the graph: its distances are its record's.
    fn admit(&self, mut entry: Entry) -> Entry {
        if !entry.data.is_empty() {
            entry.twin = self.twin_hash(entry.data.iter().copied());
        }
        if self.strips() && self.datatype != Datatype::F64 && !entry.data.is_empty() {
            entry.data32 = entry.data.iter().map(|x| *x as f32).collect();
            entry.data = Vec::new();
        }
        entry
    }

    /// A hash of the coordinates `v` as this index keeps them
    /// ([`admit`](Self::admit)): a stored vector's and a query of the same
    /// coordinates' are equal.
    fn twin_hash(&self, v: impl IntoIterator<Item = f64>) -> u64 {
        let round = self.datatype == Datatype::F32;
        let mut h = self.twin_hasher.build_hasher();
        for x in v {
            let x = if round { f64::from(x as f32) } else { x };
            // `-0.0 + 0.0` is `+0.0`: equal coordinates, equal hash.
            h.write_u64((x + 0.0).to_bits());
        }
        h.finish()
    }

    /// An admitted entry's [`twin_hash`](Self::twin_hash) (`None` in an
    /// overflow graph's index: the space's own index looks the query's
    /// twins up, so its overflow graphs need not).
    fn entry_twin(&self, e: &Entry) -> Option<u64> {
        (self.depth == 0).then_some(e.twin)
    }

    /// Removes the entry `key` and its twin pair (the caller holds the
    /// state's write lock).
    fn forget(&self, st: &mut State, key: u64) {
        let Some(e) = st.entries.remove(&key) else {
            return;
        };
        if let Some(h) = self.entry_twin(&e) {
            st.twins.remove(&(h, key));
        }
    }

    /// Whether entries give up their coordinates once their graph node
    /// holds them: in an `f64` or `f32` space the graph's copy is exact
    /// for what is searched (the coordinates themselves; in `f32` those
    /// searched), so keeping a second one would double the memory of
    /// every vector; in an `f16` or `i8` space with [`Records`] to read
    /// them back from (the graph's copy is rounded). docs/STORAGE.md,
    /// "Vector storage".
    fn strips(&self) -> bool {
        match self.datatype {
            Datatype::F64 | Datatype::F32 => true,
            Datatype::F16 | Datatype::I8 => self.records.is_some(),
        }
    }

    /// Whether a stripped entry's coordinates are read from the records
    /// (else from its graph node).
    fn reads_records(&self) -> bool {
        matches!(self.datatype, Datatype::F16 | Datatype::I8)
    }

    /// The stored coordinates of the vector `id` ([`Records`]); `None` if
    /// it is not stored or cannot be read.
    fn stored(&self, id: Uuid) -> Option<Vec<f64>> {
        let read = self.records.as_ref()?;
        read(&[id]).ok()?.pop().flatten()
    }

    /// Whether the entry's coordinates are its record's ([`Records`]): in
    /// an `f16` or `i8` space that reads them, an entry without its `f64`
    /// ones (it holds an `f32` copy while fresh, then none).
    fn reads_record_of(&self, e: &Entry) -> bool {
        self.reads_records() && self.records.is_some() && e.data.is_empty()
    }

    /// The coordinates of the entry `key`: its own `f64` ones, or else its
    /// record's ([`SpaceIndex::reads_record_of`]), or else its own `f32` copy
    /// or its graph node's (converted from `f32`). `None` if it has none
    /// and neither has them.
    fn coords<'a>(
        &self,
        graph: Option<&Index>,
        key: u64,
        entry: &'a Entry,
        buf: &'a mut Vec<f64>,
    ) -> Option<&'a [f64]> {
        if self.reads_record_of(entry) {
            *buf = self.stored(entry.id)?;
            return Some(&buf[..]);
        }
        if !entry.stripped() {
            return entry.own_coords(buf);
        }
        self.node_coords(graph?, key, buf).then_some(&buf[..])
    }

    /// How many of a graph search's best-ranked candidates hold its
    /// nearest `want` (the rank is an `f32`; in an `f16` or `i8` graph to
    /// the recall measured): those re-ranked from the graph's list, and
    /// those whose records an `f16` search reads.
    fn graph_list(want: usize) -> usize {
        2 * want + 8
    }

    /// How many of an `f64` or `f32` graph's best-ranked candidates hold
    /// its nearest `want`: its rank orders them as the exact distance
    /// does but for the rounding of an `f32`, which can swap near ties
    /// only (eight places of margin for them).
    fn exact_list(want: usize) -> usize {
        want + 8
    }

    /// Candidates rows to read from the [`Records`] at a time.
    const RECORDS_AT_ONCE: usize = 1024;

    /// `(key, distance to v, id)` of each candidate whose coordinates can
    /// be had (an entry removed meanwhile is left out), in no set order.
    /// Entries whose coordinates are their records'
    /// ([`SpaceIndex::reads_record_of`]) are read from the records,
    /// [`Self::RECORDS_AT_ONCE`] at a time; if more than `screen` of them
    /// have an `f32` copy or are in an `f16` graph, only the `screen`
    /// nearest by that copy (or the graph's) are read, the others left
    /// out. Those only in an `i8` graph are all read (its list was cut to
    /// the `screen` it ranked best: [`SpaceIndex::candidates`]).
    fn distances(
        &self,
        graph: Option<&Index>,
        v: &[f64],
        candidates: &[(u64, Arc<Entry>)],
        screen: usize,
    ) -> Result<Vec<(u64, f64, Uuid)>> {
        let mut out = Vec::with_capacity(candidates.len());
        let mut buf = Vec::new();
        let mut stored: Vec<(u64, &Entry)> = Vec::new();
        // Candidates only an `i8` graph's copy ranks: read whatever `screen`.
        let mut rough: Vec<(u64, Uuid)> = Vec::new();
        for (k, e) in candidates {
            if !self.reads_record_of(e) {
                if let Some(x) = self.coords(graph, *k, e, &mut buf) {
                    out.push((*k, self.manifold.distance_unchecked(v, x), e.id));
                }
            } else if e.data32.is_empty() && self.datatype == Datatype::I8 {
                rough.push((*k, e.id));
            } else {
                stored.push((*k, e));
            }
        }
        let mut stored: Vec<(u64, Uuid)> = if stored.len() > screen {
            // Squared Euclidean distance to the entry's `f32` copy or the
            // graph's: the graph's own rank for the Euclidean space and
            // the sphere, summed in `f32` by the kernel an `f32` graph
            // ranks by (a screen: the records decide).
            let l2sq = crate::kernel::l2sq_f32();
            let query: Vec<f32> = v.iter().map(|x| *x as f32).collect();
            let mut node = vec![0.0f32; query.len()];
            let mut ranked: Vec<(f32, u64, Uuid)> = Vec::with_capacity(stored.len());
            for (k, e) in &stored {
                if !e.data32.is_empty() {
                    ranked.push((l2sq(&query, &e.data32), *k, e.id));
                } else if let Some(g) = graph
                    && self.node_coords32(g, *k, &mut node, &mut buf)
                {
                    ranked.push((l2sq(&query, &node), *k, e.id));
                }
            }
            if ranked.len() > screen {
                ranked
                    .select_nth_unstable_by(screen, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                ranked.truncate(screen);
            }
            ranked.into_iter().map(|(_, k, id)| (k, id)).collect()
        } else {
            stored.into_iter().map(|(k, e)| (k, e.id)).collect()
        };
        stored.extend(rough);
        if let Some(read) = self.records.as_ref() {
            let dims = self.manifold.ambient_dim();
            for part in stored.chunks(Self::RECORDS_AT_ONCE) {
                let ids: Vec<Uuid> = part.iter().map(|(_, id)| *id).collect();
                for ((k, id), x) in part.iter().zip(read(&ids)?) {
                    if let Some(x) = x.filter(|x| x.len() == dims) {
                        out.push((*k, self.manifold.distance_unchecked(v, &x), *id));
                    }
                }
            }
        }
        Ok(out)
    }

    /// `entry` with its coordinates (read from `graph` if it gave them up).
    fn with_coords(
        &self,
        graph: Option<&Index>,
        key: u64,
        entry: &Arc<Entry>,
    ) -> Option<Arc<Entry>> {
        if !entry.stripped() {
            return Some(entry.clone());
        }
        let mut buf = Vec::new();
        let data = self.coords(graph, key, entry, &mut buf)?.to_vec();
        Some(Arc::new(entry.with_data(data)))
    }

    /// Drops the coordinates of these entries where the graph holds their
    /// node, if this space's entries give them up ([`SpaceIndex::strips`]).
    fn strip(&self, keys: impl Iterator<Item = u64>) {
        if !self.strips() {
            return;
        }
        let mut st = write!(self.state);
        let g = read!(self.graph);
        let Some(g) = g.as_ref() else {
            return;
        };
        for k in keys {
            if let Some(e) = st.entries.get_mut(&k)
                && !e.stripped()
                && g.contains(k)
            {
                *e = Arc::new(e.with_data(Vec::new()));
            }
        }
    }

    /// Adds one node to the graph. usearch's first insert into an empty
    /// graph counts the node before it stores the node's vector, so a
    /// search running beside it starts from a null vector (undefined
    /// behaviour, seen as an abort in CI): that insert runs under the write
    /// lock, with no search beside it. Every later insert shares the read
    /// lock with searches, which usearch supports.
    fn add_node<T: usearch::VectorType>(&self, key: u64, data: &[T]) -> Result<()> {
        {
            let g = read!(self.graph);
            if let Some(g) = g.as_ref()
                && g.size() > 0
            {
                return g.add(key, data).map_err(index_err);
            }
        }
        match write!(self.graph).as_ref() {
            Some(g) => g.add(key, data).map_err(index_err),
            None => Err(index_err("a node added before the graph was made")),
        }
    }

    /// [`add_node`](Self::add_node) with the entry's own coordinates, as
    /// it holds them.
    fn add_entry(&self, key: u64, e: &Entry) -> Result<()> {
        if e.data32.is_empty() {
            self.add_node(key, &e.data)
        } else {
            self.add_node(key, &e.data32)
        }
    }

    /// Makes the graph if there is none yet, with room for `extra` more
    /// nodes.
    fn ensure_capacity(&self, extra: usize) -> Result<()> {
        let (size, capacity) = read!(self.graph)
            .as_ref()
            .map_or((0, 0), |g| (g.size(), g.capacity()));
        let need = size + extra;
        if need <= capacity {
            return Ok(());
        }
        let mut new_cap = capacity.max(GRAPH_FIRST_CAPACITY);
        while new_cap < need {
            new_cap *= 2;
        }
        let mut g = write!(self.graph);
        match g.as_ref() {
            // Grown meanwhile by another caller: reserving less is a no-op.
            Some(g) => g
                .reserve_capacity_and_threads(new_cap, GRAPH_THREADS)
                .map_err(index_err),
            None => {
                *g = Some(self.new_graph(new_cap)?);
                Ok(())
            }
        }
    }

    /// Writes the graph to the file `graph_to` (usearch writes it there
    /// itself: it is never held in memory twice) and answers what a dump
    /// needs to trust it later. Runs beside searches and writes; anything
    /// that changes meanwhile is caught by the verification in
    /// [`SpaceIndex::load_dump`].
    pub(crate) fn dump(&self, namespace: &str, graph_to: &Path) -> Result<DumpMeta> {
        let graph_to = crate::dump::utf8(graph_to)?;
        let _one = self.lock_merging();
        // Cleared before the snapshot: a change made meanwhile marks it again.
        self.changed
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let keys: Vec<(Uuid, u64)> = read!(self.state)
            .keys
            .iter()
            .map(|(u, k)| (*u, *k))
            .collect();
        let (unreachable, anchors) = {
            let u = self.lock_unreachable();
            (u.nodes.keys().copied().collect(), u.anchors())
        };
        let g = write!(self.graph);
        // Graphed but not merged into yet: an empty graph, every key fresh
        // when loaded.
        let empty;
        let g = match g.as_ref() {
            Some(g) => g,
            None => {
                empty = self.new_graph(0)?;
                &empty
            }
        };
        g.save(graph_to).map_err(index_err)?;
        Ok(DumpMeta {
            namespace: namespace.to_owned(),
            fingerprint: self.fingerprint.clone(),
            keys,
            unreachable,
            anchors,
        })
    }

    /// Loads a dumped graph for `entries` (everything storage holds for this
    /// space), trusting it only where it agrees with storage: an entry keeps
    /// its graph node if the dump names that node for the entry's id and the
    /// node's stored coordinates equal the entry's bit for bit; every other
    /// entry goes to the fresh buffer, and every other node is removed.
    /// Returns how many entries kept their node. On error the index and
    /// `entries` are unchanged and the caller builds from scratch instead;
    /// so for a space of fewer than [`GRAPH_MIN`] vectors, which is
    /// scanned exactly rather than given back a graph.
    pub(crate) fn load_dump(&self, dump: &Dump, entries: &mut Vec<Entry>) -> Result<usize> {
        if entries.len() < GRAPH_MIN {
            return Err(index_err(format!(
                "{} vectors are scanned exactly, without the dumped graph",
                entries.len()
            )));
        }
        let _one = self.lock_merging();
        let meta = &dump.meta;
        if meta.fingerprint != self.fingerprint {
            return Err(StorageError::Corrupt(format!(
                "graph dump built for {}, not {}",
                meta.fingerprint, self.fingerprint
            )));
        }
        let mut st = write!(self.state);
        let mut slot = write!(self.graph);
        let dims = self.manifold.ambient_dim();
        let mut g = self.new_graph(0)?;
        g.load(crate::dump::utf8(dump.path())?).map_err(index_err)?;
        if g.dimensions() != dims {
            return Err(index_err("graph dump of another dimension"));
        }
        Self::configure(&mut g, &self.manifold, self.datatype);
        g.reserve_capacity_and_threads(g.size().max(GRAPH_FIRST_CAPACITY), GRAPH_THREADS)
            .map_err(index_err)?;
        st.graphed = true;
        let dumped: HashMap<Uuid, u64> = meta.keys.iter().copied().collect();
        let mut fresh = self.fresh.lock();
        st.next_key = dumped.values().max().map_or(0, |k| k + 1);
        let mut kept: HashSet<u64> = HashSet::with_capacity(entries.len());
        st.keys.reserve(entries.len());
        st.entries.reserve(entries.len());
        let mut twins = Vec::with_capacity(entries.len());
        let mut coords = vec![0.0f64; dims];
        let mut pending = Vec::new();
        for e in entries.drain(..) {
            let node = dumped.get(&e.id).copied().filter(|k| {
                g.contains(*k)
                    && g.get(*k, &mut coords).is_ok_and(|n| n == 1)
                    && self.datatype_holds(&coords, &e.data)
            });
            let e = self.admit(e);
            match node {
                Some(k) => {
                    kept.insert(k);
                    st.keys.insert(e.id, k);
                    if let Some(h) = self.entry_twin(&e) {
                        twins.push((h, k));
                    }
                    // Its node holds its coordinates (just checked): it
                    // gives them up at once ([`SpaceIndex::strip`]).
                    let e = match self.strips() {
                        true => e.without_coords(),
                        false => e,
                    };
                    st.entries.insert(k, Arc::new(e));
                }
                None => pending.push(e),
            }
        }
        for e in pending {
            let k = st.next_key;
            st.next_key += 1;
            st.keys.insert(e.id, k);
            if let Some(h) = self.entry_twin(&e) {
                twins.push((h, k));
            }
            st.entries.insert(k, Arc::new(e));
            fresh.push_back(k);
        }
        st.add_twins(twins);
        let mut dropped = 0;
        for k in dumped.values().filter(|k| !kept.contains(k)) {
            if g.contains(*k) {
                let _ = g.remove(*k);
                dropped += 1;
            }
        }
        // Each to its dumped anchor if that node is kept; else loose.
        let anchors: HashMap<u64, u64> = meta.anchors.iter().copied().collect();
        self.change_unreachable(|u| {
            u.clear();
            for k in meta.unreachable.iter().filter(|k| kept.contains(k)) {
                u.restore(*k, anchors.get(k).copied().filter(|a| kept.contains(a)));
            }
            true
        });
        // Exactly as dumped: the next close need not write it again.
        self.changed.store(
            !fresh.is_empty() || dropped > 0,
            std::sync::atomic::Ordering::Relaxed,
        );
        *slot = Some(g);
        drop((slot, st, fresh));
        drop(_one);
        if dropped > 0 {
            // Removed nodes took links with them; the dumped unreachable set
            // no longer describes this graph.
            self.relink()?;
        } else {
            self.refresh_overflow()?;
        }
        Ok(kept.len())
    }

    /// Whether `stored`, a graph node's coordinates as the graph gives them
    /// back, is what the graph makes of `data`: bit for bit in `f64` and
    /// `f32` (the rounding is Rust's and usearch's alike); within the
    /// format's rounding in `f16` and `i8`, whose conversions are
    /// usearch's own. A vector changed by less than that rounding would
    /// have the same node anyway.
    fn datatype_holds(&self, stored: &[f64], data: &[f64]) -> bool {
        let pairs = stored.iter().zip(data);
        match self.datatype {
            Datatype::F64 => pairs.into_iter().all(|(a, b)| a.to_bits() == b.to_bits()),
            Datatype::F32 => pairs
                .into_iter()
                .all(|(a, b)| a.to_bits() == f64::from(*b as f32).to_bits()),
            // Half precision keeps 11 significant bits (subnormals below 2^-14).
            Datatype::F16 => pairs
                .into_iter()
                .all(|(a, b)| (a - b).abs() <= b.abs() * 2f64.powi(-10) + 2f64.powi(-24)),
            // Scaled by the vector's norm into [-127, 127], then truncated.
            Datatype::I8 => {
                let norm = data.iter().map(|x| x * x).sum::<f64>().sqrt();
                norm > 0.0
                    && pairs
                        .into_iter()
                        .all(|(a, b)| (a - b / norm).abs() <= 1.0 / 127.0 + 1e-9)
            }
        }
    }

    /// Moves up to `max` fresh vectors into the graph on up to `threads`
    /// threads; returns how many were moved. With `check`, each is looked
    /// up by its own vector (re-inserted, or marked unreachable, if not
    /// found); without, the caller runs a pass over the whole graph next.
    pub(crate) fn merge_fresh(&self, max: usize, threads: usize, check: bool) -> Result<usize> {
        // The indexer asks every space on every pass: one with nothing
        // fresh (every space below `GRAPH_MIN`) answers without waiting
        // for a merger.
        if self.fresh_len() == 0 {
            return Ok(0);
        }
        let _one = self.lock_merging();
        let batch: Vec<u64> = {
            let f = self.fresh.lock();
            f.iter().take(max).copied().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        self.mark_changed();
        self.ensure_capacity(batch.len())?;
        in_threads(threads, &batch, |key| {
            let entry = read!(self.state).entries.get(key).cloned();
            // An entry without coordinates is in the graph already.
            if let Some(e) = entry.filter(|e| !e.stripped()) {
                {
                    let _p = self.permits.acquire();
                    if !read!(self.graph).as_ref().is_some_and(|g| g.contains(*key)) {
                        self.add_entry(*key, &e)?;
                    }
                }
                // A delete may have raced the add: undo it if so. (Locks are
                // taken state first, graph second, everywhere.)
                if !read!(self.state).entries.contains_key(key) {
                    self.remove_from_graph(*key);
                }
            }
            Ok(())
        })?;
        let added: Vec<(u64, Arc<Entry>)> = {
            let st = read!(self.state);
            batch
                .iter()
                .filter_map(|k| st.entries.get(k).map(|e| (*k, e.clone())))
                .collect()
        };
        // Each new node; the passes over the whole graph
        // ([`SpaceIndex::relink_due`], `flush_index`) check again.
        if check {
            self.check_reachable(&added, threads)?;
        }
        self.strip(batch.iter().copied());
        self.grow_overflow()?;
        self.since_relink
            .fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
        // Keys are only pushed at the back (or all cleared), so the batch's
        // keys still present are a prefix: drop it without scanning the rest.
        let done: HashSet<u64> = batch.iter().copied().collect();
        let mut f = self.fresh.lock();
        let n = f.iter().take_while(|k| done.contains(k)).count();
        f.drain(..n);
        Ok(batch.len())
    }

    pub(crate) fn fresh_len(&self) -> usize {
        self.fresh.len()
    }

    /// The coordinates of the fresh vectors: what a search scans exactly
    /// on top of its graph search.
    pub(crate) fn fresh_coords(&self) -> usize {
        self.fresh_len() * self.manifold.ambient_dim()
    }

    pub(crate) fn graph_len(&self) -> usize {
        read!(self.graph).as_ref().map_or(0, Index::size)
    }

    /// Whether the graph of the entries read at open is being built
    /// ([`SpaceIndex::load_unbuilt`]): until it is, searches scan exactly.
    pub(crate) fn building(&self) -> bool {
        read!(self.state).building
    }

    pub(crate) fn len(&self) -> usize {
        read!(self.state).entries.len()
    }

    /// The metadata of the entry `id`.
    pub(crate) fn metadata_of(&self, id: Uuid) -> Option<Metadata> {
        let st = read!(self.state);
        st.keys
            .get(&id)
            .and_then(|k| st.entries.get(k))
            .map(|e| e.metadata.to_metadata())
    }

    /// How many of `ids` are entries whose metadata matches `filter`
    /// (one look at the entries for all of them).
    pub(crate) fn count_matching<'a>(
        &self,
        ids: impl Iterator<Item = &'a Uuid>,
        filter: &Filter,
    ) -> usize {
        let st = read!(self.state);
        ids.filter_map(|id| st.keys.get(id).and_then(|k| st.entries.get(k)))
            .filter(|e| filter.matches(e.metadata.as_ref()))
            .count()
    }

    pub(crate) fn ids(&self) -> HashSet<Uuid> {
        read!(self.state).keys.keys().copied().collect()
    }

    /// Ids whose key is neither in the graph nor in the fresh buffer.
    pub(crate) fn unreachable_ids(&self) -> Vec<Uuid> {
        // Excluding merges and relinks (which remove and re-add a node to
        // re-link it) and holding the entries still (no upsert between the
        // two looks) keeps a node in transit from counting as unreachable.
        // Lock order as everywhere: state, then fresh, then graph.
        let _one = self.lock_merging();
        let st = read!(self.state);
        let fresh: HashSet<u64> = self.fresh.lock().iter().copied().collect();
        if !st.graphed || st.building {
            // Every search scans every entry.
            return Vec::new();
        }
        let g = read!(self.graph);
        let in_graph = |k: u64| g.as_ref().is_some_and(|g| g.contains(k));
        st.entries
            .iter()
            .filter(|(k, _)| !fresh.contains(k) && !in_graph(**k))
            .map(|(_, e)| e.id)
            .collect()
    }

    /// Graph nodes whose key no vector has (left by a removal that failed
    /// or raced the indexer); searches skip them.
    pub(crate) fn stale_graph_nodes(&self) -> usize {
        // With merges excluded and the entries fixed, nodes are only added
        // by nobody and removed by writes finishing a delete; count until the
        // graph's size holds still across the count.
        let _one = self.lock_merging();
        let st = read!(self.state);
        let g = read!(self.graph);
        let Some(g) = g.as_ref() else {
            return 0;
        };
        loop {
            let before = g.size();
            let live = st.entries.keys().filter(|k| g.contains(**k)).count();
            if g.size() == before {
                return before.saturating_sub(live);
            }
        }
    }

    /// Rebuilds the graph from the entries (drops every orphan node); a
    /// space of fewer than [`GRAPH_MIN`] entries is left without one. An
    /// `f64` or `f32` space's entries get their coordinates back from the old graph,
    /// or from `stored` (the records) where it lost them.
    pub(crate) fn rebuild(&self, stored: &dyn Fn(Uuid) -> Option<Vec<f64>>) -> Result<()> {
        let entries: Vec<Entry> = {
            let mut st = write!(self.state);
            let old = std::mem::take(&mut *st);
            st.next_key = old.next_key;
            let g = read!(self.graph);
            old.entries
                .into_iter()
                .filter_map(|(k, e)| {
                    let e = self
                        .with_coords(g.as_ref(), k, &e)
                        .or_else(|| Some(Arc::new(e.with_data(stored(e.id)?))))?;
                    Some(Arc::try_unwrap(e).unwrap_or_else(|a| (*a).clone()))
                })
                .collect()
        };
        self.fresh.lock().clear();
        self.change_unreachable(|u| {
            u.clear();
            true
        });
        self.set_overflow(None);
        *write!(self.graph) = None;
        self.bulk_load(entries)
    }

    /// The `want` nearest matching vectors, sorted by exact distance.
    pub(crate) fn search(&self, q: &Query<'_>) -> Result<Vec<Hit>> {
        if q.want == 0 {
            return Ok(Vec::new());
        }
        // Locks: state, then graph, as everywhere. The graph's is held for
        // the whole search (entries of an `f64` or `f32` space read their
        // coordinates from it); the state's only while the candidates are
        // found: the distances (the bulk of an exact scan of a large fresh
        // buffer) are computed after it is let go, so that writes do not
        // wait for them.
        let st = read!(self.state);
        let graph = read!(self.graph);
        let found = self.candidates(q, &st, graph.as_ref())?;
        drop(st);
        // A graph search reads only the records of the candidates nearest
        // by their `f32` copy or an `f16` graph's, as many as the graph's
        // own list contributes (below); an `i8` graph's candidates all
        // (its list is cut to as many); an exact scan every one.
        let screen = if found.through_graph {
            Self::graph_list(q.want)
        } else {
            usize::MAX
        };
        let (entries, mut found) = (found.entries, found.ranked);
        found.extend(self.distances(graph.as_ref(), q.vector, &entries, screen)?);
        // The `want` nearest, sorted by distance, ties by key (so the same
        // candidates always give the same answer, however they were found).
        let order =
            |a: &(u64, f64, Uuid), b: &(u64, f64, Uuid)| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0));
        if found.len() > q.want {
            found.select_nth_unstable_by(q.want - 1, order);
            found.truncate(q.want);
        }
        found.sort_by(order);
        Ok(found
            .into_iter()
            .map(|(_, distance, id)| Hit { id, distance })
            .collect())
    }

    /// The matching entries a search computes distances for, each once:
    /// every one in an exact search or a space without a usable graph;
    /// else the graph's nearest (and the overflow graph's), the fresh
    /// buffer, the unreachable nodes no overflow graph covers, and the
    /// query's twins; an `f64` or `f32` graph's nearest come already
    /// ranked ([`SpaceIndex::rank_list`]).
    fn candidates(&self, q: &Query<'_>, st: &State, graph: Option<&Index>) -> Result<Candidates> {
        let matches = |e: &Entry| {
            q.region.is_none_or(|r| e.region.as_deref() == Some(r))
                && q.filter.is_none_or(|f| f.matches(e.metadata.as_ref()))
        };
        let all = |st: &State| {
            st.entries
                .iter()
                .filter(|(_, e)| matches(e))
                .map(|(k, e)| (*k, e.clone()))
                .collect()
        };
        let scan = |st: &State| Candidates {
            entries: all(st),
            through_graph: false,
            ranked: Vec::new(),
        };
        if q.exact || !st.graphed || st.building {
            return Ok(scan(st));
        }
        let mut keys: Vec<u64> = Vec::new();
        let mut ranked = Vec::new();
        // The keys `ranked` was chosen from, sorted (to look them up).
        let mut listed: Vec<u64> = Vec::new();
        // Snapshot the exactly-scanned sets *before* the graph search: the
        // indexer adds a key to the graph before it leaves `fresh`, so a
        // key missing from this snapshot is already in the graph.
        keys.extend(self.fresh.lock().iter().copied());
        let overflow = read!(self.overflow).clone();
        keys.extend(self.uncovered(overflow.as_ref()).iter().copied());
        // The overflow graph proposes candidates among the unreachable
        // nodes it covers; their distances come from this space's entries.
        if let Some(o) = &overflow {
            // At the smallest candidate list that can hold the answer: the
            // overflow graph holds few nodes (those the main graph's
            // searches miss), and a search of it at the query's `ef`
            // costs nearly a scan of them (a quarter of a 128-d query at
            // ef 16 in the large bench).
            let proposed = o.index.search(&Query {
                ef: Some(q.want),
                ..*q
            })?;
            keys.extend(proposed.iter().filter_map(|h| st.keys.get(&h.id).copied()));
        }
        // No graph yet: every key is fresh.
        if let Some(g) = graph {
            let _p = self.permits.acquire();
            // usearch keeps `max(its ef, wanted)` candidates and its own
            // ef is 1: asking for `ef` results is a search at `ef`.
            let ef = q.ef.unwrap_or(self.params.expansion_search).max(q.want);
            let found = if q.filter.is_none() && q.region.is_none() {
                g.search(q.vector, ef)
            } else {
                g.filtered_search(q.vector, ef, |k| {
                    st.entries.get(&k).is_some_and(|e| matches(e))
                })
            }
            .map_err(index_err)?;
            // Unreachable nodes attached to the nodes found, nearest first
            // (a lookup each): an attached node is near the query when its
            // anchor is. At most `ef` of them: on spread H^12 the points
            // near the origin are found by every search and anchor
            // thousands, and taking all made a query at `ef` 128 take
            // 1.8-1.9x as long (docs/BENCHMARKS.md).
            let mut attached = Vec::new();
            self.lock_unreachable()
                .expand(&found.keys, found.keys.len(), &mut attached);
            // Candidates come sorted by the rank metric. In `f64` and
            // `f32` graphs it orders them as the exact distance does, but
            // for rounding (it is an `f32`): the first `exact_list(want)`
            // hold the nearest `want`, ranked here from their nodes with
            // the attached ones (nodes of the graph too). In `f16` and
            // `i8` graphs the first `graph_list(want)` do, to the recall
            // measured (each candidate re-ranked costs a record read:
            // docs/BENCHMARKS.md, "Quantized namespaces read their
            // records", "`i8` re-ranks the graph's best").
            if self.reads_records() {
                keys.extend(attached);
                keys.extend(found.keys.into_iter().take(Self::graph_list(q.want)));
            } else {
                let mut list = found.keys;
                list.truncate(Self::exact_list(q.want));
                list.extend(attached);
                (ranked, listed) = self.rank_list(g, q, st, list, matches);
            }
        }
        // A stored vector's own coordinates find it whatever the graph's
        // links: later inserts can prune an older node's in-links between
        // reachability passes. Its twins with the lowest keys, as ties rank.
        // (An overflow graph's index keeps none: the space's looks them up.)
        if self.depth == 0 {
            let h = self.twin_hash(q.vector.iter().copied());
            keys.extend(
                st.twins
                    .range((h, 0)..=(h, u64::MAX))
                    .map(|(_, k)| *k)
                    .take(q.want),
            );
        }
        // A key can come twice (from the graph and the fresh buffer while
        // the indexer moves it, say). One of the graph's list was ranked
        // already: in the answer if among its nearest `want`, else not.
        keys.sort_unstable();
        keys.dedup();
        let out: Vec<(u64, Arc<Entry>)> = keys
            .into_iter()
            .filter(|k| listed.binary_search(k).is_err())
            .filter_map(|k| Some((k, st.entries.get(&k).filter(|e| matches(e))?.clone())))
            .collect();
        // A selective filter can starve the graph search: when fewer than
        // `want` came back but more may exist, scan the matches exactly.
        let count = out.len() + ranked.len();
        if count < q.want && st.entries.len() > count {
            return Ok(scan(st));
        }
        Ok(Candidates {
            entries: out,
            through_graph: true,
            ranked,
        })
    }

    /// The nearest `want` of `list` (nodes of an `f64` or `f32` graph: the
    /// best-ranked of its list and the nodes attached to those it found)
    /// that are entries matching the query, with their exact distances
    /// (from their nodes' coordinates, as the answer gives them) and ids;
    /// and, in order, the keys of `list` that had coordinates. Only the
    /// nearest are looked up among the entries: any of those keys farther
    /// than `want` of them that match is not in the answer (the profile of
    /// a 128-d query at 200,000 vectors had a lookup and a reference count
    /// taken for each of `2 want + 8` candidates at 7 % of the query).
    fn rank_list(
        &self,
        g: &Index,
        q: &Query<'_>,
        st: &State,
        mut list: Vec<u64>,
        matches: impl Fn(&Entry) -> bool,
    ) -> (Vec<(u64, f64, Uuid)>, Vec<u64>) {
        list.sort_unstable();
        list.dedup();
        let mut buf = Vec::new();
        let mut near: Vec<(u64, f64)> = Vec::with_capacity(list.len());
        list.retain(|k| {
            let found = self.node_coords(g, *k, &mut buf);
            if found {
                near.push((*k, self.manifold.distance_unchecked(q.vector, &buf)));
            }
            found
        });
        near.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let ranked = near
            .into_iter()
            .filter_map(|(k, d)| Some((k, d, st.entries.get(&k).filter(|e| matches(e))?.id)))
            .take(q.want)
            .collect();
        (ranked, list)
    }

    /// Every matching vector within `radius`, sorted by distance (exact).
    pub(crate) fn range(&self, q: &Query<'_>, radius: f64) -> Result<Vec<Hit>> {
        let st = read!(self.state);
        let graph = read!(self.graph);
        let candidates: Vec<(u64, Arc<Entry>)> = st
            .entries
            .iter()
            .filter(|(_, e)| {
                q.region.is_none_or(|r| e.region.as_deref() == Some(r))
                    && q.filter.is_none_or(|f| f.matches(e.metadata.as_ref()))
            })
            .map(|(k, e)| (*k, e.clone()))
            .collect();
        drop(st);
        let mut out: Vec<Hit> = self
            .distances(graph.as_ref(), q.vector, &candidates, usize::MAX)?
            .into_iter()
            .filter(|(_, distance, _)| *distance <= radius)
            .map(|(_, distance, id)| Hit { id, distance })
            .collect();
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        Ok(out)
    }
}

/// Runs `f` on every item, split over the machine's cores (graph inserts
/// and searches from several threads at once are safe in usearch).
fn in_parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    in_threads(all_cores(), items, f)
}

/// The machine's cores.
pub(crate) fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `f` over `items` on up to `threads` threads.
fn in_threads<T: Sync>(
    threads: usize,
    items: &[T],
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    if threads < 2 || items.len() < 2 * threads {
        return items.iter().try_for_each(&f);
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| s.spawn(move || part.iter().try_for_each(f)))
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| StorageError::Index("an index thread panicked".into()))?
        })
    })
}

/// The two vectors usearch passes to a custom metric.
#[allow(unsafe_code)]
fn metric_args<'a, T>(dims: usize, a: *const T, b: *const T) -> (&'a [T], &'a [T]) {
    // SAFETY: usearch calls the metric with pointers to two vectors of the
    // index's `dimensions` (= `dims`) scalars of the index's scalar kind
    // (`T`, as `change_metric::<T>` was given), both alive for the
    // duration of the call, which is as long as the slices are used.
    unsafe {
        (
            std::slice::from_raw_parts(a, dims),
            std::slice::from_raw_parts(b, dims),
        )
    }
}

/// `-c<x,y>_L - 1` (= `cosh(√c d) - 1`), one dot product; far from the
/// origin (`c x_0 y_0 > 1e6`), where that dot product cancels, the
/// geometry crate's exact form of the same quantity instead.
fn hyperboloid_rank(h: &Hyperboloid, x: &[f64], y: &[f64]) -> f32 {
    let c = h.c();
    let tt = c * x[0] * y[0];
    if tt > 1e6 {
        return h.cosh_distance_minus_one(x, y) as f32;
    }
    let ss = dot4(&x[1..], &y[1..]);
    (tt - c * ss - 1.0).max(0.0) as f32
}

/// `|x-y|^2 / ((1 - c|x|^2)(1 - c|y|^2))` (= `(cosh(√c d) - 1) / 2c`).
fn poincare_rank(c: f64, x: &[f64], y: &[f64]) -> f32 {
    let (xx, yy, dd) = (dot4(x, x), dot4(y, y), dot4_diff(x, y));
    (dd / ((1.0 - c * xx).max(f64::MIN_POSITIVE) * (1.0 - c * yy).max(f64::MIN_POSITIVE))) as f32
}

/// `Σ a_i b_i` over four interleaved partial sums.
fn dot4(a: &[f64], b: &[f64]) -> f64 {
    sum4(a, b, |p, q| p * q)
}

/// `Σ (a_i - b_i)^2` over four interleaved partial sums.
fn dot4_diff(a: &[f64], b: &[f64]) -> f64 {
    sum4(a, b, |p, q| (p - q) * (p - q))
}

#[inline(always)]
fn sum4(a: &[f64], b: &[f64], term: impl Fn(f64, f64) -> f64) -> f64 {
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let mut tail = 0.0;
    for (p, q) in ca.remainder().iter().zip(cb.remainder()) {
        tail += term(*p, *q);
    }
    let mut acc = [0.0; 4];
    for (p, q) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += term(p[i], q[i]);
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvs_geometry::PoincareBall;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// The graph is only as good as its rank: on random pairs near and far
    /// from the origin, each custom rank is the closed form of the exact
    /// distance it stands for, to `f32` rounding.
    #[test]
    fn the_ranks_are_the_closed_forms_of_the_exact_distance() {
        let mut rng = StdRng::seed_from_u64(7);
        for c in [0.25, 1.0, 4.0] {
            let h = Hyperboloid::new(12, c).unwrap();
            let ball = PoincareBall::new(12, c).unwrap();
            for _ in 0..2_000 {
                // Spatial parts out to radius ~20 (far: `c x_0 y_0 > 1e6`).
                let scale = 10f64.powf(rng.random_range(-3.0..4.0)) / c.sqrt();
                let lift = |rng: &mut StdRng| {
                    let xs: Vec<f64> = (0..12)
                        .map(|_| scale * rng.random_range(-1.0..1.0))
                        .collect();
                    let x0 = (1.0 / c + dot4(&xs, &xs)).sqrt();
                    std::iter::once(x0).chain(xs).collect::<Vec<f64>>()
                };
                let (x, y) = (lift(&mut rng), lift(&mut rng));
                let d = h.distance_unchecked(&x, &y);
                let want = 2.0 * (c.sqrt() * d / 2.0).sinh().powi(2);
                let got = f64::from(hyperboloid_rank(&h, &x, &y));
                assert!(
                    (got - want).abs() <= 1e-6 * want + 1e-12,
                    "hyperboloid c = {c}: {got} against {want} (d = {d})"
                );
                // The ball, well inside its boundary.
                let inside = |rng: &mut StdRng| -> Vec<f64> {
                    let r = rng.random_range(0.0..0.99) / c.sqrt() / 12f64.sqrt();
                    (0..12).map(|_| r * rng.random_range(-1.0..1.0)).collect()
                };
                let (p, q) = (inside(&mut rng), inside(&mut rng));
                let d = ball.distance_unchecked(&p, &q);
                let want = 2.0 * (c.sqrt() * d / 2.0).sinh().powi(2) / (2.0 * c);
                let got = f64::from(poincare_rank(c, &p, &q));
                assert!(
                    (got - want).abs() <= 1e-5 * want + 1e-12,
                    "ball c = {c}: {got} against {want} (d = {d})"
                );
            }
        }
    }

    /// An `f32` index of R^4, as the small tests below use.
    fn e4_index() -> SpaceIndex {
        SpaceIndex::new(
            AnyManifold::Euclidean(hvs_geometry::Euclidean::new(4).unwrap()),
            IndexParams::default(),
            Datatype::F32,
        )
        .unwrap()
    }

    /// Distinct points of R^4 whose coordinates `f32` holds exactly.
    fn e4_point(i: usize) -> Vec<f64> {
        vec![i as f64, 1.0, (i % 7) as f64, 3.0]
    }

    /// The id and distance of a graph search's nearest hit to `v`.
    fn nearest(index: &SpaceIndex, v: &[f64]) -> Option<(Uuid, f64)> {
        let q = Query {
            vector: v,
            want: 1,
            filter: None,
            region: None,
            exact: false,
            ef: None,
        };
        index
            .search(&q)
            .unwrap()
            .first()
            .map(|h| (h.id, h.distance))
    }

    /// While a check re-inserts a node, the node is out of the graph and an
    /// entry that gave its coordinates up to it reads them from the copy
    /// held aside: a search for its own vector finds it then (and would
    /// not without the copy), and again once the node is back.
    #[test]
    fn a_node_out_of_the_graph_for_its_re_insert_is_found_by_its_held_coordinates() {
        let index = e4_index();
        let n = GRAPH_MIN + 100;
        let id = |i: usize| Uuid::from_u128(i as u128);
        index.upsert_all((0..n).map(|i| Entry::new(id(i), e4_point(i), None, Arc::default())));
        while index.merge_fresh(64, 1, false).unwrap() > 0 {}
        let find = |i: usize| nearest(&index, &e4_point(i));
        let i = 123;
        let key = read!(index.state).keys[&id(i)];
        assert!(read!(index.state).entries[&key].stripped());
        assert_eq!(find(i), Some((id(i), 0.0)));

        // What `check_node` does around its re-insert.
        let held = Held::new(&index.held, key, &e4_point(i));
        assert!(read!(index.graph).as_ref().unwrap().remove(key).is_ok());
        assert_eq!(find(i), Some((id(i), 0.0)), "found by its held copy");
        drop(held);
        assert_ne!(find(i), Some((id(i), 0.0)), "nothing else gives them");
        read!(index.graph)
            .as_ref()
            .unwrap()
            .add(key, &e4_point(i))
            .unwrap();
        assert_eq!(find(i), Some((id(i), 0.0)), "back in the graph");
    }

    /// A graph search ranks the best of the graph's list from the nodes
    /// and looks up only the nearest among the entries: nodes whose
    /// entries are gone (a removal racing the search) or do not match the
    /// query are passed over for the next ones, and the answer is the
    /// exact scan's.
    #[test]
    fn a_graph_search_passes_over_nodes_without_a_matching_entry() {
        let index = e4_index();
        let n = GRAPH_MIN + 100;
        let id = |i: usize| Uuid::from_u128(i as u128);
        let region = |i: usize| Some(if i.is_multiple_of(3) { "a" } else { "b" }.to_string());
        index.upsert_all((0..n).map(|i| Entry::new(id(i), e4_point(i), region(i), Arc::default())));
        while index.merge_fresh(64, 1, false).unwrap() > 0 {}
        // The entries of the three nearest to the query leave the index
        // while their nodes stay in the graph.
        let at = 100;
        let gone = [99, 100, 101];
        {
            let mut st = write!(index.state);
            for i in gone {
                let key = st.keys[&id(i)];
                st.entries.remove(&key);
            }
        }
        let search = |want: usize, region: Option<&str>, exact: bool| {
            index
                .search(&Query {
                    vector: &e4_point(at),
                    want,
                    filter: None,
                    region,
                    exact,
                    ef: None,
                })
                .unwrap()
        };
        for (want, region) in [(1, None), (5, None), (10, None), (5, Some("a"))] {
            let hits = search(want, region, false);
            assert_eq!(hits.len(), want);
            assert!(hits.iter().all(|h| !gone.iter().any(|i| h.id == id(*i))));
            assert_eq!(
                hits,
                search(want, region, true),
                "want {want}, region {region:?}"
            );
        }
    }

    /// A reachability pass run in steps comes due with the changes, checks
    /// the nodes there were when it began a step at a time (skipping those
    /// removed meanwhile, while merges go on between the steps), and ends.
    #[test]
    fn a_reachability_pass_in_steps_checks_every_node_and_ends() {
        let index = e4_index();
        let id = |i: usize| Uuid::from_u128(i as u128);
        let n = GRAPH_MIN + 744;
        index.upsert_all((0..n).map(|i| Entry::new(id(i), e4_point(i), None, Arc::default())));
        while index.merge_fresh(256, 1, true).unwrap() > 0 {}
        // Every node merged since the graph began counts as a change.
        assert!(index.relink_pending());
        let mut steps = 0;
        while index.relink_step(100, 1).unwrap() {
            steps += 1;
            if steps == 2 {
                // A removal and a merge between two steps.
                assert!(index.remove(id(999)));
                index.upsert(Entry::new(id(n), e4_point(n), None, Arc::default()));
                assert_eq!(index.merge_fresh(256, 1, true).unwrap(), 1);
            }
        }
        assert_eq!(steps, n.div_ceil(100) - 1, "the last step ends the pass");
        assert!(
            !index.relink_pending(),
            "one insert since, not the graph's size"
        );
        assert!(!index.relink_step(100, 1).unwrap(), "nothing due");
        assert_eq!(index.graph_len(), n);
        for i in (0..=n).filter(|i| *i != 999) {
            assert_eq!(nearest(&index, &e4_point(i)).map(|h| h.0), Some(id(i)));
        }
    }

    /// Entries read at open wait for their graph's build: `building` says
    /// so (searches scan them exactly meanwhile, and find them all), and
    /// stops saying so once the build is done.
    #[test]
    fn a_graph_built_after_the_open_says_so_until_it_is_done() {
        let index = e4_index();
        let n = GRAPH_MIN + 100;
        let entries = (0..n)
            .map(|i| {
                Entry::new(
                    Uuid::from_u128(i as u128),
                    e4_point(i),
                    None,
                    Arc::default(),
                )
            })
            .collect();
        assert!(!index.building(), "nothing loaded yet");
        assert!(index.load_unbuilt(entries), "the space needs its graph");
        assert!(index.building());
        let find = |i: usize| nearest(&index, &e4_point(i)).unwrap().0;
        assert!((0..n).all(|i| find(i) == Uuid::from_u128(i as u128)));
        index.build_loaded(&|| false).unwrap();
        assert!(!index.building());
        assert_eq!(index.graph_len(), n);
        assert!((0..n).all(|i| find(i) == Uuid::from_u128(i as u128)));
    }

    /// The fresh buffer counts vectors waiting for the graph: a removed or
    /// replaced one leaves it at once, not when the indexer passes its key,
    /// and the merge that follows takes the rest.
    #[test]
    fn removed_and_replaced_vectors_leave_the_fresh_buffer() {
        let index = e4_index();
        let entry = |id: Uuid, x: f64| Entry::new(id, vec![x, 1.0, 2.0, 3.0], None, Arc::default());
        let ids: Vec<Uuid> = (0..GRAPH_MIN as u128 + 100).map(Uuid::from_u128).collect();
        index.upsert_all(ids.iter().enumerate().map(|(i, id)| entry(*id, i as f64)));
        assert_eq!(index.fresh_len(), ids.len());
        // The oldest (as a retention limit discards), one in the middle,
        // the newest; then one replaced by a new version of itself.
        assert!(index.remove(ids[0]));
        assert_eq!(index.remove_all(&[ids[1], ids[150], ids[ids.len() - 1]]), 3);
        assert_eq!(index.fresh_len(), ids.len() - 4);
        index.upsert(entry(ids[7], -1.0));
        assert_eq!(
            index.fresh_len(),
            ids.len() - 4,
            "the old key left, the new one came"
        );
        while index.merge_fresh(64, 1, false).unwrap() > 0 {}
        assert_eq!(index.fresh_len(), 0);
        assert_eq!(index.graph_len(), ids.len() - 4);
        assert_eq!(index.len(), ids.len() - 4);
    }

    /// An `f16` or `i8` space that can read its records gives its
    /// entries' coordinates up once their nodes are in the graph, and
    /// still computes every distance from the records (not from the
    /// graph's rounded copy), for searches graph and exact, ranges, a
    /// stored vector's own point, replaced and removed vectors; each entry
    /// keeps exactly one twin pair.
    #[test]
    fn quantized_spaces_hold_no_coordinates_and_answer_from_the_records() {
        use hvs_geometry::{Euclidean, Sphere};
        let mut rng = StdRng::seed_from_u64(11);
        for (datatype, manifold) in [
            (
                Datatype::F16,
                AnyManifold::Euclidean(Euclidean::new(8).unwrap()),
            ),
            (
                Datatype::I8,
                AnyManifold::Sphere(Sphere::new(7, 1.0).unwrap()),
            ),
        ] {
            let point = |rng: &mut StdRng| -> Vec<f64> {
                let v: Vec<f64> = (0..8).map(|_| rng.random_range(-1.0..1.0)).collect();
                match datatype {
                    Datatype::I8 => {
                        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                        v.iter().map(|x| x / n).collect()
                    }
                    _ => v,
                }
            };
            let records: Arc<Mutex<HashMap<Uuid, Vec<f64>>>> = Arc::default();
            let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (held, counted) = (records.clone(), reads.clone());
            let index = SpaceIndex::new(manifold.clone(), IndexParams::default(), datatype)
                .unwrap()
                .with_records(Arc::new(move |ids: &[Uuid]| {
                    counted.fetch_add(ids.len(), std::sync::atomic::Ordering::Relaxed);
                    let held = held.lock().unwrap();
                    Ok(ids.iter().map(|id| held.get(id).cloned()).collect())
                }));
            let store = |id: Uuid, data: Vec<f64>| {
                records.lock().unwrap().insert(id, data.clone());
                Entry::new(id, data, None, Arc::default())
            };
            let n = GRAPH_MIN + 200;
            let ids: Vec<Uuid> = (0..n as u128).map(Uuid::from_u128).collect();
            // Every stored vector by its exact distance to `q`.
            let brute = |held: &HashMap<Uuid, Vec<f64>>, q: &[f64]| -> Vec<Hit> {
                let mut all: Vec<Hit> = held
                    .iter()
                    .map(|(id, x)| Hit {
                        id: *id,
                        distance: manifold.distance_unchecked(q, x),
                    })
                    .collect();
                all.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
                all
            };
            let search = |index: &SpaceIndex, q: &[f64], exact: bool, ef: Option<usize>| {
                let query = Query {
                    vector: q,
                    want: 10,
                    filter: None,
                    region: None,
                    exact,
                    ef,
                };
                index.search(&query).unwrap()
            };
            index.upsert_all(ids.iter().map(|id| store(*id, point(&mut rng))));
            // Fresh, they hold an `f32` copy, not their `f64` coordinates,
            // and answer with their records' distances all the same.
            assert!(
                read!(index.state)
                    .entries
                    .values()
                    .all(|e| e.data.is_empty())
            );
            let q = point(&mut rng);
            let want = brute(&records.lock().unwrap(), &q);
            assert_eq!(
                search(&index, &q, false, None),
                want[..10],
                "{datatype:?} fresh"
            );
            while index.merge_fresh(128, 1, true).unwrap() > 0 {}
            assert_eq!(index.graph_len(), n);
            let stripped = |index: &SpaceIndex| {
                read!(index.state)
                    .entries
                    .values()
                    .filter(|e| e.stripped())
                    .count()
            };
            assert_eq!(stripped(&index), n, "{datatype:?}");
            // Replaced (its new coordinates stored first, as the writer
            // commits before the index hears of it) and removed.
            index.upsert(store(ids[3], point(&mut rng)));
            records.lock().unwrap().remove(&ids[5]);
            assert!(index.remove(ids[5]));
            while index.merge_fresh(128, 1, true).unwrap() > 0 {}
            // A full reachability pass checks stripped nodes by the
            // graph's copy and leaves them stripped.
            index.relink().unwrap();
            let live = records.lock().unwrap().clone();
            assert_eq!(stripped(&index), live.len());
            let st = read!(index.state);
            assert_eq!(st.twins.len(), st.entries.len(), "{datatype:?}");
            drop(st);
            for i in 0..20 {
                // Some queries are stored vectors' own points.
                let q = match i % 4 {
                    0 => live[&ids[3 + i]].clone(),
                    _ => point(&mut rng),
                };
                let want = brute(&live, &q);
                for exact in [false, true] {
                    let got = search(&index, &q, exact, Some(n));
                    // Distances bit for bit the records' own; ids as the
                    // exact ranking has them.
                    assert_eq!(got, want[..10].to_vec(), "{datatype:?} exact {exact}");
                }
                let radius = want[20].distance;
                let query = Query {
                    vector: &q,
                    want: 0,
                    filter: None,
                    region: None,
                    exact: true,
                    ef: None,
                };
                assert_eq!(index.range(&query, radius).unwrap(), want[..21].to_vec());
                // Screened: of every entry as a candidate, only the 28
                // nearest by the `f16` graph's copy are read, and they hold
                // the nearest 10 (with their records' distances).
                let all: Vec<(u64, Arc<Entry>)> = read!(index.state)
                    .entries
                    .iter()
                    .map(|(k, e)| (*k, e.clone()))
                    .collect();
                let before = reads.load(std::sync::atomic::Ordering::Relaxed);
                let g = read!(index.graph);
                let mut got = index.distances(g.as_ref(), &q, &all, 28).unwrap();
                drop(g);
                // (An `i8` graph's copy ranks too roughly: all are read.)
                let expected = match datatype {
                    Datatype::I8 => live.len(),
                    _ => 28,
                };
                let read = reads.load(std::sync::atomic::Ordering::Relaxed) - before;
                assert_eq!(read, expected, "{datatype:?}");
                got.sort_by(|a, b| a.1.total_cmp(&b.1));
                let got: Vec<Hit> = got
                    .into_iter()
                    .map(|(_, distance, id)| Hit { id, distance })
                    .collect();
                assert_eq!(got[..10], want[..10], "{datatype:?}");
            }
        }
    }

    /// An `f64` space (the hyperboloid's) keeps a vector's coordinates in
    /// its entry only until its graph node holds them (as they are, not as
    /// an `f32` copy); then searches, exact scans and `range_search` read
    /// them from the node and still answer the stored coordinates' own
    /// distances, bit for bit, near the origin and far from it; replaced
    /// and removed vectors too; and so after a reopen from its graph dump.
    #[test]
    fn f64_spaces_keep_coordinates_only_in_their_graph() {
        let h = Hyperboloid::new(4, 1.0).unwrap();
        let manifold = AnyManifold::Hyperboloid(h);
        let mut rng = StdRng::seed_from_u64(12);
        // Spatial parts from 0.1 to 1,000 in scale: radii up to about 8.
        let point = |rng: &mut StdRng| -> Vec<f64> {
            let scale = 10f64.powi(rng.random_range(-1..4));
            let mut v: Vec<f64> = (0..5).map(|_| rng.random_range(-scale..scale)).collect();
            v[0] = 0.0;
            h.project(&v).unwrap()
        };
        let index =
            SpaceIndex::new(manifold.clone(), IndexParams::default(), Datatype::F64).unwrap();
        let n = GRAPH_MIN + 200;
        let ids: Vec<Uuid> = (0..n as u128).map(Uuid::from_u128).collect();
        let mut live: HashMap<Uuid, Vec<f64>> =
            ids.iter().map(|id| (*id, point(&mut rng))).collect();
        let entry = |id: Uuid, x: &[f64]| Entry::new(id, x.to_vec(), None, Arc::default());
        index.upsert_all(ids.iter().map(|id| entry(*id, &live[id])));
        let held = |index: &SpaceIndex| -> (usize, usize) {
            let st = read!(index.state);
            let own = st.entries.values().filter(|e| e.data.len() == 5).count();
            assert!(st.entries.values().all(|e| e.data32.is_empty()));
            (own, st.entries.len())
        };
        assert_eq!(
            held(&index),
            (n, n),
            "fresh entries keep their f64 coordinates"
        );
        while index.merge_fresh(128, 1, true).unwrap() > 0 {}
        assert_eq!(index.graph_len(), n);
        assert_eq!(held(&index), (0, n), "in the graph, none");
        let replaced = point(&mut rng);
        live.insert(ids[3], replaced.clone());
        index.upsert(entry(ids[3], &replaced));
        live.remove(&ids[5]);
        assert!(index.remove(ids[5]));
        while index.merge_fresh(128, 1, true).unwrap() > 0 {}
        index.relink().unwrap();
        assert_eq!(held(&index), (0, n - 1));
        // As the store reopens it: from its graph dump, entries read from
        // the records.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.graph");
        let meta = index
            .dump("n", &crate::dump::start(&path).unwrap())
            .unwrap();
        crate::dump::finish(&path, &meta).unwrap();
        let dump = crate::dump::read(&path).unwrap().unwrap();
        let reopened =
            SpaceIndex::new(manifold.clone(), IndexParams::default(), Datatype::F64).unwrap();
        let mut entries: Vec<Entry> = live.iter().map(|(id, x)| entry(*id, x)).collect();
        assert_eq!(reopened.load_dump(&dump, &mut entries).unwrap(), n - 1);
        assert_eq!(held(&reopened), (0, n - 1), "loaded from its dump, none");
        for (i, index) in (0..40).map(|i| (i, if i < 20 { &index } else { &reopened })) {
            let q = match i % 4 {
                0 => live[&ids[3 + i % 20]].clone(),
                _ => point(&mut rng),
            };
            let mut want: Vec<Hit> = live
                .iter()
                .map(|(id, x)| Hit {
                    id: *id,
                    distance: manifold.distance_unchecked(&q, x),
                })
                .collect();
            want.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
            let mut query = Query {
                vector: &q,
                want: 10,
                filter: None,
                region: None,
                exact: true,
                ef: None,
            };
            assert_eq!(index.search(&query).unwrap(), want[..10].to_vec());
            for hit in index
                .search(&Query {
                    exact: false,
                    ..query
                })
                .unwrap()
            {
                assert_eq!(
                    hit.distance.to_bits(),
                    manifold.distance_unchecked(&q, &live[&hit.id]).to_bits()
                );
            }
            query.want = 0;
            let radius = want[20].distance;
            assert_eq!(index.range(&query, radius).unwrap(), want[..21].to_vec());
        }
    }

    #[test]
    fn four_way_sums_take_every_element() {
        for n in 0..11 {
            let a: Vec<f64> = (0..n).map(|i| i as f64 + 1.0).collect();
            let b: Vec<f64> = (0..n).map(|i| 2.0 * i as f64 - 3.0).collect();
            let dot: f64 = a.iter().zip(&b).map(|(p, q)| p * q).sum();
            let diff: f64 = a.iter().zip(&b).map(|(p, q)| (p - q) * (p - q)).sum();
            assert_eq!(dot4(&a, &b), dot);
            assert_eq!(dot4_diff(&a, &b), diff);
        }
    }

    /// Searches expand what they find into the unreachable nodes attached
    /// to it: a node takes the nearest candidate that is not unreachable
    /// and has room, keeps it until found or removed, and a removed anchor
    /// leaves its nodes loose for an overflow graph or the scan.
    #[test]
    fn unreachable_nodes_attach_to_their_nearest_reachable_node() {
        let mut u = Unreachable::default();
        let expanded = |u: &Unreachable, found: &[u64]| {
            let mut out = Vec::new();
            u.expand(found, usize::MAX, &mut out);
            out.sort_unstable();
            out
        };
        // 1 attaches to 10; 2 cannot take 1 (unreachable), so takes 11.
        assert!(u.missed(1, &[10, 11]));
        assert!(u.missed(2, &[1, 11]));
        assert_eq!(expanded(&u, &[10, 11]), vec![1, 2]);
        assert_eq!(expanded(&u, &[12]), Vec::<u64>::new());
        // Missed again: it keeps its anchor, nothing changes.
        assert!(!u.missed(1, &[11]));
        assert_eq!(u.loose_len(), 0);
        // No candidate at all: loose; loose again is no change.
        assert!(u.missed(3, &[]));
        assert!(!u.missed(3, &[2]));
        assert_eq!(u.loose().collect::<Vec<_>>(), vec![3]);
        // An anchor that becomes unreachable keeps its nodes: found
        // through the node it attaches to in turn.
        assert!(u.missed(10, &[20]));
        assert_eq!(expanded(&u, &[20]), vec![1, 10]);
        // Found again: it leaves its anchor, and keeps its own nodes.
        assert!(u.found(10));
        assert_eq!(expanded(&u, &[20]), Vec::<u64>::new());
        assert_eq!(expanded(&u, &[10]), vec![1]);
        assert!(!u.found(10));
        // Removed: its nodes are loose.
        assert!(u.removed(10));
        assert_eq!(expanded(&u, &[10]), Vec::<u64>::new());
        let mut loose: Vec<u64> = u.loose().collect();
        loose.sort_unstable();
        assert_eq!(loose, vec![1, 3]);
        assert_eq!((u.len(), u.anchored), (3, 1));
        // An anchor takes at most ANCHOR_MAX; the next goes to the next
        // candidate, or stays loose.
        for k in 100..100 + ANCHOR_MAX as u64 {
            u.missed(k, &[50]);
        }
        u.missed(200, &[50, 51]);
        u.missed(201, &[50]);
        assert_eq!(expanded(&u, &[50]).len(), ANCHOR_MAX);
        assert_eq!(expanded(&u, &[51]), vec![200]);
        // A budget stops the walk after the node at which it is reached.
        let mut out = Vec::new();
        u.expand(&[50, 51], 1, &mut out);
        assert_eq!(out.len(), ANCHOR_MAX);
        u.expand(&[51, 50], 1, &mut out);
        assert_eq!(out[ANCHOR_MAX..], [200]);
        assert!(u.loose().any(|k| k == 201));
        let mut anchors = u.anchors();
        anchors.sort_unstable();
        assert_eq!(anchors.len(), u.anchored);
        assert!(anchors.contains(&(200, 51)) && anchors.contains(&(2, 11)));
    }
}
