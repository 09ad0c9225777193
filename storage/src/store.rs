//! [`Store`]: the redb database, the group-commit writer and the indexes.

mod block_ops;
mod commit;
mod expiry;
mod indexer;
mod open;
mod queue;
mod recovery;
mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use hvs_geometry::{AnyManifold, Manifold};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use uuid::Uuid;

use crate::blocks::{
    AuditAction, AuditEntry, Block, BlockClass, BlockContent, BlockHit, BlockOptions, sections,
};
use crate::error::{Result, StorageError};
use crate::index::{Entry, IndexParams, Query, SpaceIndex, all_cores};
use crate::record::{
    Change, InvalidPointPolicy, NewVector, SpaceConfig, VectorRecord, VectorUpdate, check_metadata,
    decode, now_ms,
};
use crate::writer::{Applied, Op, OpOutcome, PURGE_BATCH, Positions, Reply, Tables};
use hvs_types::Filter;
pub use queue::{Slot, SlotWait};

/// The newest on-disk format this build reads and writes. A database with a
/// larger number is refused with [`StorageError::NewerFormat`].
pub const FORMAT_VERSION: u64 = 1;

/// The most results one search may ask for (`k + offset`).
pub const MAX_RESULTS: usize = 10_000;

/// The largest `ef` one search may ask for ([`SearchQuery::ef`]).
pub const MAX_EF: usize = 10_000;

/// The mark (`Store::set_mark`) where the cluster's feed publisher saves
/// how far it has published the change feed: trimming the feed
/// ([`StoreConfig::feed_keep`]) never passes it.
pub const FEED_PUBLISHED: &str = "cluster.published";

/// Change-feed rows one commit removes at most when the feed is trimmed,
/// and how far past [`StoreConfig::feed_keep`] the feed grows before it
/// is: trimming in steps costs each commit one lookup when nothing is
/// due.
pub const FEED_TRIM_STEP: u64 = 4096;

/// How often, by default, the graphs that changed are saved
/// ([`StoreConfig::checkpoint_every`]).
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Writes the group-commit writer takes into one transaction at most.
const MAX_GROUP: usize = 4096;

/// `iter_namespace` looks a namespace's rows up one by one when the table
/// holds more than this many rows per id of the namespace, and walks the
/// table otherwise: a lookup descends the B-tree from its root and cost
/// 4–8 steps of a walk (850–1,020 ns against 113–229 ns, in the vector
/// table of a 1 M + 1 M store, release build, 2026-12-06).
const WALKED_ROWS_PER_LOOKUP: u64 = 8;

pub(crate) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
pub(crate) const SPACES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("spaces");
pub(crate) const VECTORS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("vectors");
pub(crate) const CHANGES: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("changes");
pub(crate) const BLOCKS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("blocks");
pub(crate) const BLOCK_NAMES: TableDefinition<'_, &str, u128> = TableDefinition::new("block_names");
pub(crate) const AUDIT: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("audit");
pub(crate) const MESSAGES: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("messages");
pub(crate) const SETTLED: TableDefinition<'_, (u128, &str), &[u8]> =
    TableDefinition::new("settled");
pub(crate) const CATALOG: TableDefinition<'_, (&str, &str), &[u8]> =
    TableDefinition::new("catalog");
pub(crate) const TOMBSTONES: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("tombstones");
/// The `meta` key of this store's instance id (its entry in version
/// vectors), drawn at random when the file is created.
const INSTANCE: &str = "instance";

/// Coordinates of the text encoder's vectors for block sections.
const TEXT_DIM: usize = 256;

/// When a write's answer promises it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// No disk at all: the database lives in memory and is gone with the process.
    Memory,
    /// Group commit: writes that arrive while a commit is in flight share the
    /// next one (one fsync); each caller is answered only after the commit
    /// that holds its write. After the answer, a crash loses nothing.
    #[default]
    Buffered,
    /// One commit (one fsync) per write.
    Sync,
}

/// How to open a [`Store`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreConfig {
    /// The database file (ignored, and may be `None`, at [`Durability::Memory`]).
    pub path: Option<PathBuf>,
    /// The durability level.
    pub durability: Durability,
    /// HNSW parameters.
    pub index: IndexParams,
    /// How often the indexer saves the graphs that changed
    /// ([`Store::save_index`]), so that a reopen after a crash loads them
    /// and indexes only what came after; `None`: only on close. Ignored at
    /// [`Durability::Memory`]. Default [`CHECKPOINT_EVERY`].
    pub checkpoint_every: Option<std::time::Duration>,
    /// Change-feed entries kept: once its oldest entries lie more than
    /// this many and [`FEED_TRIM_STEP`] more below its last, a commit
    /// removes up to that step of its oldest rows, never one above the cluster publisher's saved position
    /// ([`FEED_PUBLISHED`]) nor the last. A read of trimmed entries is
    /// [`StorageError::FeedTrimmed`]. `None` (the default): the feed is
    /// kept for good.
    pub feed_keep: Option<u64>,
    /// redb's page cache, in bytes: records read and written recently stay
    /// in memory up to this much (part of the process's resident memory).
    /// `None`: 256 MiB for a database file; at [`Durability::Memory`],
    /// whose database is in memory already, 16 MiB.
    pub cache_bytes: Option<usize>,
    /// For tests only: makes the file fail writes or syncs on demand
    /// (`tests/disk_faults.rs`). `None` in every real store.
    #[doc(hidden)]
    pub faults: Option<crate::disk::FaultSwitch>,
    /// The retention of every namespace that sets none of its own
    /// ([`SpaceConfig::retention`]); default: no limits, acked messages
    /// kept (`docs/SEMANTICS.md`, "Retention").
    pub retention: crate::record::Retention,
    /// The time expiry and retention read; default the system clock.
    pub clock: crate::retention::StoreClock,
    /// Whether the open keeps the unsettled messages it reads, for the
    /// first [`Store::take_unsettled_messages`] to hand over instead of
    /// reading and decoding every message row a second time. Set it when
    /// that call follows the open at once (the actors' hub restoring the
    /// mailboxes does): until it comes, the store holds those records.
    /// Default `false`.
    pub keep_unsettled: bool,
    /// redb's quick-repair: every commit also saves the allocator state,
    /// in two phases (two syncs instead of one), so that an open after a
    /// crash loads that state instead of walking the whole file to repair
    /// it (seconds at millions of records). Faster restarts for slower
    /// commits: docs/STORAGE.md, "A server restarted after a crash". Default `false`.
    pub quick_repair: bool,
}

impl StoreConfig {
    /// A store with no disk.
    pub fn memory() -> Self {
        Self {
            path: None,
            durability: Durability::Memory,
            index: IndexParams::default(),
            checkpoint_every: Some(CHECKPOINT_EVERY),
            feed_keep: None,
            cache_bytes: None,
            faults: None,
            retention: Default::default(),
            clock: Default::default(),
            keep_unsettled: false,
            quick_repair: false,
        }
    }

    /// A store in the file `path`.
    pub fn file(path: impl Into<PathBuf>, durability: Durability) -> Self {
        Self {
            path: Some(path.into()),
            durability,
            index: IndexParams::default(),
            checkpoint_every: Some(CHECKPOINT_EVERY),
            feed_keep: None,
            cache_bytes: None,
            faults: None,
            retention: Default::default(),
            clock: Default::default(),
            keep_unsettled: false,
            quick_repair: false,
        }
    }
}

/// A search by meaning.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The namespace searched.
    pub namespace: String,
    /// The query point (checked against the namespace's manifold).
    pub vector: Vec<f64>,
    /// How many results.
    pub k: usize,
    /// Results to skip first (pagination).
    pub offset: usize,
    /// Only vectors whose metadata matches.
    pub filter: Option<Filter>,
    /// Only vectors of this region.
    pub region: Option<String>,
    /// Scan every vector instead of searching the graph (the reference).
    pub exact: bool,
    /// Candidates the graph search keeps (HNSW's `ef`, hnswlib's `ef` and
    /// Qdrant's `hnsw_ef`): more is slower and finds more of the true
    /// nearest. At least `k + offset` is used, at most [`MAX_EF`]. `None`:
    /// the store's `index.expansion_search` (64 by default).
    pub ef: Option<usize>,
}

impl SearchQuery {
    /// The `k` nearest vectors of `namespace` to `vector`.
    pub fn new(namespace: impl Into<String>, vector: Vec<f64>, k: usize) -> Self {
        Self {
            namespace: namespace.into(),
            vector,
            k,
            offset: 0,
            filter: None,
            region: None,
            exact: false,
            ef: None,
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    /// The vector's id.
    pub id: Uuid,
    /// Geodesic distance from the query, computed in `f64` by the geometry crate.
    pub distance: f64,
    /// `1 / (1 + distance)`: 1 for the query point itself, falling towards 0.
    pub score: f64,
    /// Position in the full result list, from 0 (so `offset` shows here).
    pub rank: usize,
}

/// The state of one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceStats {
    /// Vectors stored.
    pub vectors: usize,
    /// Vectors in the HNSW graph.
    pub in_graph: usize,
    /// Vectors waiting in the exact fresh buffer.
    pub fresh: usize,
    /// Graph nodes a search for their own vector did not reach. Searches
    /// find them through the node they are attached to (`attached`), an
    /// overflow graph (`in_overflow`) or by scanning them exactly
    /// (`scanned_exactly`).
    pub unreachable: usize,
    /// Vectors whose graph node was loaded from the graph dump when the
    /// store was opened (0 when the graph was rebuilt instead).
    pub restored_from_dump: usize,
    /// Unreachable nodes attached to a reachable node (the nearest their own
    /// search found): every search that finds that node proposes them.
    pub attached: usize,
    /// Unreachable nodes that an overflow graph (a graph of their own,
    /// searched beside the main one) covers.
    pub in_overflow: usize,
    /// Unreachable nodes no graph covers: every search scans these exactly.
    pub scanned_exactly: usize,
    /// The graph is being built after the open (no usable graph dump:
    /// the store was not closed cleanly before a checkpoint). Until it is
    /// done every search of the namespace scans its vectors exactly, and
    /// `in_graph` counts the nodes added so far.
    pub building: bool,
}

/// What [`Store::get_stats`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Per namespace.
    pub namespaces: BTreeMap<String, NamespaceStats>,
    /// Size of the database file (0 in memory).
    pub bytes_on_disk: u64,
    /// Last change-feed sequence number.
    pub last_change: u64,
    /// Transactions the writer has committed since the store opened.
    pub commits: u64,
    /// Requests those commits carried (`commit_requests / commits` is the
    /// mean group size).
    pub commit_requests: u64,
    /// Time spent inside those commits (applying and committing), in µs.
    pub commit_micros: u64,
    /// Messages removed (row, settlements, index entry) since the store
    /// opened because their TTL passed or, once every recipient settled
    /// them, their `keep_acked` did.
    pub messages_purged: u64,
    /// Messages a retention limit (`max_age_ms`, `max_messages`,
    /// `max_bytes`) removed since the store opened.
    pub messages_discarded: u64,
    /// Removals scheduled and not done yet (expired or not): one per
    /// stored message with a TTL, one per message settled by every
    /// recipient in a namespace with `keep_acked_ms`.
    pub messages_expiring: usize,
}

/// What [`Store::verify_consistency`] finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyReport {
    /// Storage and index agree.
    pub consistent: bool,
    /// Vectors in storage.
    pub vectors: usize,
    /// Vectors in the index and reachable (graph or fresh buffer).
    pub indexed: usize,
    /// Stored vectors the index cannot return.
    pub missing: usize,
    /// Index entries with no stored vector.
    pub orphaned: usize,
}

pub(crate) struct Space {
    pub(crate) config: SpaceConfig,
    pub(crate) index: SpaceIndex,
    /// Vectors whose graph node came from the dump at open.
    restored: AtomicUsize,
    /// Ids of the namespace's stored vectors (not messages), in id order:
    /// the rows as of the last commit applied. Only the writer changes it,
    /// after each commit, beside the index (see `Shared::apply`), so every
    /// id the index holds is a vector here or a message.
    pub(crate) vectors: RwLock<BTreeSet<Uuid>>,
    /// Its retention: its own, or the store's defaults.
    pub(crate) retention: crate::record::Retention,
    /// Its messages, when `retention` has a limit (`retention.rs`).
    pub(crate) held: Option<Mutex<crate::retention::Held>>,
}

impl Space {
    /// The ids of the stored vectors, in order.
    pub(crate) fn vector_ids(&self) -> Vec<Uuid> {
        self.read_vectors().iter().copied().collect()
    }

    /// Up to `n` vector ids after `after` (from the first without), in order.
    pub(crate) fn vector_ids_after(&self, after: Option<Uuid>, n: usize) -> Vec<Uuid> {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let set = self.read_vectors();
        set.range((from, Bound::Unbounded))
            .take(n)
            .copied()
            .collect()
    }

    /// Messages whose vectors the index holds: every entry that is not a
    /// stored vector is one.
    pub(crate) fn message_count(&self) -> usize {
        let vectors = self.read_vectors().len();
        self.index.len().saturating_sub(vectors)
    }

    pub(crate) fn read_vectors(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<Uuid>> {
        self.vectors.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Compares the ids in memory with the namespace's rows: how many rows
    /// are not listed (a scroll would miss them) and how many listed ids
    /// have no row; with `repair`, the rows' ids replace the list.
    fn verify_ids(&self, rows: BTreeSet<Uuid>, repair: bool) -> (usize, usize) {
        let listed = self.read_vectors();
        let unlisted = rows.difference(&listed).count();
        let unstored = listed.difference(&rows).count();
        drop(listed);
        if repair && unlisted + unstored > 0 {
            *self.write_vectors() = rows;
        }
        (unlisted, unstored)
    }

    pub(crate) fn write_vectors(&self) -> std::sync::RwLockWriteGuard<'_, BTreeSet<Uuid>> {
        self.vectors.write().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: Replier,
    /// Its place in the writer's queue (none for what the writer makes
    /// itself): given up when the writer takes the request.
    pub(crate) slot: Option<Slot>,
}

/// Who hears a request's answer: a caller blocked on a channel, a callback
/// run on the writer thread after the commit, or nobody.
pub(crate) enum Replier {
    Wait(SyncSender<Result<Reply>>),
    Call(Box<dyn FnOnce(Result<Reply>) + Send>),
    Nobody,
}

impl Replier {
    fn send(self, answer: Result<Reply>) {
        match self {
            Replier::Wait(tx) => {
                let _ = tx.send(answer);
            }
            Replier::Call(f) => f(answer),
            Replier::Nobody => {}
        }
    }
}

pub(crate) struct Shared {
    /// This store itself, for what its spaces' indexes read back from it
    /// ([`crate::index::Records`]); set once, right after it is made.
    me: std::sync::OnceLock<std::sync::Weak<Shared>>,
    /// Whether the store takes its own writes (`fence.rs`).
    pub(crate) fence: crate::fence::WriteFence,
    /// The database handle. The writer replaces it after the disk fails a
    /// commit (see `disk.rs`); readers take a clone for one read
    /// ([`Shared::begin_read`]), so a replacement waits for them.
    db: RwLock<Option<Arc<Database>>>,
    /// Test faults of the file (see [`StoreConfig::faults`]).
    faults: Option<crate::disk::FaultSwitch>,
    /// [`StoreConfig::cache_bytes`], for reopening the file.
    cache_bytes: Option<usize>,
    /// [`StoreConfig::quick_repair`], for every write transaction.
    quick_repair: bool,
    /// Set when an open of the file had to repair it by walking all of it
    /// ([`Store::repaired_on_open`]).
    repaired: Arc<AtomicBool>,
    /// Why writes are refused, while they are (the writer's
    /// `WriterState::refusing`, for [`Store::write_refusal`]).
    write_refusal: Mutex<Option<String>>,
    /// The number in `meta` of the last commit (each commit writes its
    /// own): after a failed commit, the reopened file shows whether it
    /// reached the file after all.
    last_commit: AtomicU64,
    durability: Durability,
    commits: AtomicU64,
    commit_requests: AtomicU64,
    commit_micros: AtomicU64,
    /// The unsettled messages the open read, with
    /// [`StoreConfig::keep_unsettled`], until the first
    /// [`Store::take_unsettled_messages`] takes them.
    kept_unsettled: Mutex<Option<Vec<crate::messages::Unsettled>>>,
    /// Messages, at `Memory` durability only (see `messages.rs`).
    pub(crate) memory_messages: Mutex<HashMap<Uuid, Arc<crate::messages::MessageRecord>>>,
    /// `(expires_ms, id)` of every stored message with a TTL, and
    /// `(settled + keep_acked_ms, id)` of every message all its recipients
    /// settled in a namespace with `keep_acked_ms`: the writer purges them
    /// in this order once due, without scanning the table. Rebuilt from
    /// the tables on open.
    message_expiries: Mutex<crate::messages::Expiries>,
    /// Expired messages purged since the store opened.
    messages_purged: AtomicU64,
    /// Retention's clock, defaults, ledgers' undo log and counters.
    pub(crate) retention: crate::retention::RetentionState,
    path: Option<PathBuf>,
    /// Where graph dumps go (durable stores only).
    dumps: Option<PathBuf>,
    /// How often the indexer saves changed graphs ([`StoreConfig::checkpoint_every`]).
    checkpoint_every: Option<std::time::Duration>,
    /// [`StoreConfig::feed_keep`].
    pub(crate) feed_keep: Option<u64>,
    /// Whether the graphs of the indexes opened without a usable dump are
    /// built (`Shared::build_loaded`); what must see whole graphs waits.
    built: (Mutex<bool>, Condvar),
    spaces: RwLock<HashMap<String, Arc<Space>>>,
    index_params: IndexParams,
    pub(crate) last_seq: Mutex<u64>,
    last_audit: Mutex<u64>,
    /// The last hybrid-logical-clock timestamp given out.
    last_hlc: Mutex<u64>,
    /// This store's instance id (see [`INSTANCE`]).
    pub(crate) instance: AtomicU64,
    /// The earliest expiry among stored blocks: the writer purges expired
    /// blocks from the file once it has passed.
    next_expiry: Mutex<Option<u64>>,
    /// Sections of searchable blocks, on the text encoder's sphere.
    blocks_index: SpaceIndex,
    /// The index entries of each block's sections.
    block_sections: Mutex<HashMap<Uuid, Vec<Uuid>>>,
    encoder: hvs_contracts::TextEncoder,
    /// Wakes the indexer: (pending work, shutting down).
    signal: (Mutex<(bool, bool)>, Condvar),
}

/// The durable store of vectors, with one search index per namespace.
///
/// `Store` is `Send + Sync`; every method takes `&self`. Writes go through one
/// writer thread that commits in groups (see [`Durability`]); a second
/// thread moves freshly written vectors into the HNSW graphs.
pub struct Store {
    pub(crate) shared: Arc<Shared>,
    tx: Option<SyncSender<Request>>,
    /// Places in the writer's queue (`store/queue.rs`).
    queue: Arc<queue::Queue>,
    threads: Vec<JoinHandle<()>>,
}

/// A read transaction and the database handle it reads: the handle is
/// not closed (or replaced, see [`Shared::begin_read`]) while it lives.
pub(crate) struct Reading {
    // Dropped first: fields drop in order.
    txn: redb::ReadTransaction,
    _db: Arc<Database>,
}

impl std::ops::Deref for Reading {
    type Target = redb::ReadTransaction;

    fn deref(&self) -> &redb::ReadTransaction {
        &self.txn
    }
}

/// The `meta` key of the last commit's number.
pub(crate) const LAST_COMMIT: &str = "last_commit";

/// Runs `f`, turning a panic inside it into [`StorageError::Corrupt`].
///
/// redb asserts its on-disk invariants with panics ("Malformed allocator
/// state"); a damaged file must be an error to the caller, never a crash,
/// so every path that reads pages from the file runs under this guard.
pub(crate) fn contain<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(StorageError::Corrupt(format!("{what}: {msg}")))
    })
}

/// Sends a request with its place in the queue (so the channel has room).
fn hand_over(
    tx: &SyncSender<Request>,
    slot: Slot,
    op: Op,
    done: Box<dyn FnOnce(Result<Reply>) + Send>,
) {
    let req = Request {
        op,
        reply: Replier::Call(done),
        slot: Some(slot),
    };
    if let Err(mpsc::SendError(req)) = tx.send(req) {
        req.reply.send(Err(StorageError::Closed));
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Hands `op` to the writer and waits for its commit, on this thread
    /// (which also waits for a place in the writer's queue if it is full).
    pub(crate) fn submit(&self, op: Op) -> Result<Reply> {
        let (reply, answer) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or(StorageError::Closed)?;
        let slot = self.queue.take_blocking();
        tx.send(Request {
            op,
            reply: Replier::Wait(reply),
            slot: Some(slot),
        })
        .map_err(|_| StorageError::Closed)?;
        answer.recv().map_err(|_| StorageError::Closed)?
    }

    /// Submits `op` without waiting: `done` runs on the writer thread after
    /// the commit (or at once, here, if the store is closed). If the
    /// writer's queue is full, `op` waits in line for a place; this thread
    /// goes on.
    pub(crate) fn submit_then(&self, op: Op, done: Box<dyn FnOnce(Result<Reply>) + Send>) {
        let Some(tx) = self.tx.clone() else {
            return done(Err(StorageError::Closed));
        };
        self.queue.when_free(Box::new(move |slot| {
            hand_over(&tx, slot, op, done);
            None
        }));
    }

    /// [`Store::submit_then`] with a place already taken: never waits.
    pub(crate) fn submit_in(
        &self,
        slot: Slot,
        op: Op,
        done: Box<dyn FnOnce(Result<Reply>) + Send>,
    ) {
        match &self.tx {
            Some(tx) => hand_over(tx, slot, op, done),
            None => done(Err(StorageError::Closed)),
        }
    }

    /// Whether opening the file had to repair it by walking all of it: it
    /// was not closed cleanly (a crash, a SIGKILL) and its last commit was
    /// not made with [`StoreConfig::quick_repair`].
    pub fn repaired_on_open(&self) -> bool {
        self.shared.repaired.load(Ordering::Relaxed)
    }

    /// The durability this store was opened with.
    pub fn durability(&self) -> Durability {
        self.shared.durability
    }

    /// Why the store refuses writes, while it does: the disk's error after
    /// it failed a commit (see "When the disk fails" in `docs/STORAGE.md`).
    /// `None` when writes are taken; it turns `None` again once the disk
    /// takes writes again (the writer probes it before each write, and
    /// about once a second while idle).
    pub fn write_refusal(&self) -> Option<String> {
        lock(&self.shared.write_refusal).clone()
    }

    pub(crate) fn space(&self, name: &str) -> Result<Arc<Space>> {
        self.shared
            .spaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| StorageError::NamespaceNotFound(name.to_string()))
    }

    /// Creates a namespace. Creating one that exists with the same
    /// configuration is a no-op; with another, [`StorageError::NamespaceExists`].
    pub fn create_namespace(&self, config: SpaceConfig) -> Result<()> {
        match self.namespace_to_create(config)? {
            Some(config) => self.submit(Op::CreateSpace(config)).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Checks a namespace to create: `None` if it exists with this very
    /// configuration (nothing to do), [`StorageError::NamespaceExists`]
    /// with another.
    pub(crate) fn namespace_to_create(&self, config: SpaceConfig) -> Result<Option<SpaceConfig>> {
        if config.name.is_empty() || config.name.len() > 256 {
            return Err(StorageError::InvalidNamespaceName(config.name));
        }
        if let Some(p) = config.retention.as_ref().and_then(|r| r.problem()) {
            return Err(StorageError::InvalidRetention(p));
        }
        if let Some(p) = config.datatype.and_then(|d| d.problem(&config.geometry)) {
            return Err(StorageError::InvalidDatatype(p));
        }
        if let Some(p) = config.graph.and_then(|g| g.problem()) {
            return Err(StorageError::InvalidGraph(p));
        }
        config
            .geometry
            .build()
            .map_err(StorageError::InvalidGeometry)?;
        match self.space(&config.name) {
            Ok(s) if s.config == config => Ok(None),
            Ok(_) => Err(StorageError::NamespaceExists(config.name)),
            Err(_) => Ok(Some(config)),
        }
    }

    /// The configuration of a namespace.
    pub fn namespace(&self, name: &str) -> Result<SpaceConfig> {
        Ok(self.space(name)?.config.clone())
    }

    /// The parameters a namespace's graph is built with: its own settings
    /// ([`SpaceConfig::graph`]) over the store's ([`StoreConfig::index`]).
    pub fn graph_params(&self, name: &str) -> Result<IndexParams> {
        Ok(self.space(name)?.index.params())
    }

    /// All namespaces, by name.
    pub fn namespaces(&self) -> Vec<SpaceConfig> {
        let mut v: Vec<SpaceConfig> = self
            .shared
            .spaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|s| s.config.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Checks (or projects, as the space says) a point of `space`.
    pub(crate) fn admit(space: &Space, data: Vec<f64>) -> Result<Vec<f64>> {
        let m = space.index.manifold();
        let invalid = |source| StorageError::InvalidVector {
            namespace: space.config.name.clone(),
            source,
        };
        match m.check(&data) {
            Ok(()) => Ok(data),
            Err(e) => match space.config.on_invalid {
                InvalidPointPolicy::Reject => Err(invalid(e)),
                InvalidPointPolicy::Project => {
                    let p = m.project(&data).map_err(invalid)?;
                    m.check(&p).map_err(invalid)?;
                    Ok(p)
                }
            },
        }
    }

    fn build_record(&self, v: NewVector) -> Result<VectorRecord> {
        let space = self.space(&v.namespace)?;
        check_metadata(&v.metadata)?;
        let data = Self::admit(&space, v.data)?;
        Ok(VectorRecord {
            id: Uuid::now_v7(),
            namespace: v.namespace,
            data,
            region: v.region,
            metadata: v.metadata,
            version: 1,
            timestamp_ms: now_ms(),
            // The writer stamps the clock when it commits.
            hlc: 0,
            clock: Default::default(),
        })
    }

    /// Stores a vector; answered after its commit, searchable at once.
    pub fn store_vector(&self, v: NewVector) -> Result<VectorRecord> {
        let mut r = self.batch_store_vectors(vec![v])?;
        r.pop()
            .ok_or_else(|| StorageError::Io("empty batch reply".into()))
    }

    /// Stores many vectors in one transaction: all of them, or (on any
    /// invalid vector) none.
    pub fn batch_store_vectors(&self, vs: Vec<NewVector>) -> Result<Vec<VectorRecord>> {
        let records = vs
            .into_iter()
            .map(|v| self.build_record(v))
            .collect::<Result<Vec<_>>>()?;
        if records.is_empty() {
            return Ok(records);
        }
        match self.submit(Op::Insert(records))? {
            Reply::Records(r) => Ok(r),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// The vector `id`, if stored.
    pub fn retrieve_vector(&self, id: Uuid) -> Result<Option<VectorRecord>> {
        contain("reading a vector", || self.retrieve_inner(id))
    }

    fn retrieve_inner(&self, id: Uuid) -> Result<Option<VectorRecord>> {
        let txn = self.shared.begin_read()?;
        let table = match txn.open_table(VECTORS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let bytes = table.get(id.as_u128())?;
        bytes
            .map(|b| decode(b.value(), "vector record"))
            .transpose()
    }

    /// Many vectors at once, in the order asked (`None` where absent).
    pub fn batch_retrieve_vectors(&self, ids: &[Uuid]) -> Result<Vec<Option<VectorRecord>>> {
        let txn = self.shared.begin_read()?;
        let table = txn.open_table(VECTORS)?;
        ids.iter()
            .map(|id| {
                table
                    .get(id.as_u128())?
                    .map(|b| decode(b.value(), "vector record"))
                    .transpose()
            })
            .collect()
    }

    /// Changes a vector; its version grows by one. A missing vector is
    /// [`StorageError::VectorNotFound`]; with `update.if_version` set, a
    /// stored version other than it is [`StorageError::VersionConflict`],
    /// checked inside the commit (so of two updates conditioned on the
    /// same version, one wins).
    pub fn update_vector(&self, id: Uuid, mut update: VectorUpdate) -> Result<VectorRecord> {
        let current = self
            .retrieve_vector(id)?
            .ok_or(StorageError::VectorNotFound(id))?;
        let space = self.space(&current.namespace)?;
        if let Some(data) = update.data.take() {
            update.data = Some(Self::admit(&space, data)?);
        }
        if let Some(m) = &update.metadata {
            check_metadata(m)?;
        }
        match self.submit(Op::Update { id, update })? {
            Reply::Records(mut r) => r.pop().ok_or(StorageError::VectorNotFound(id)),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// Deletes a vector; `false` if there was none.
    pub fn delete_vector(&self, id: Uuid) -> Result<bool> {
        match self.submit(Op::Delete(id))? {
            Reply::Deleted(d) => Ok(d),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// Every vector of a namespace, oldest first (ids are time-ordered), as
    /// of the last write answered. Only the namespace's own rows are read
    /// and decoded (its ids are in memory), so a small namespace costs what
    /// it holds, not the whole table.
    pub fn iter_namespace(&self, namespace: &str) -> Result<Vec<VectorRecord>> {
        let space = self.space(namespace)?;
        contain("reading a namespace", || self.iter_inner(&space))
    }

    /// Looks each id up when the namespace holds few of the table's rows
    /// ([`WALKED_ROWS_PER_LOOKUP`]); otherwise walks the rows between its
    /// first and last id beside its ids (both in the same order: a `Uuid`
    /// orders as its big-endian `u128`), decoding only its own.
    fn iter_inner(&self, space: &Space) -> Result<Vec<VectorRecord>> {
        let txn = self.shared.begin_read()?;
        let table = txn.open_table(VECTORS)?;
        let ids = space.vector_ids();
        let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
            return Ok(Vec::new());
        };
        let name = &space.config.name;
        let mut out = Vec::with_capacity(ids.len());
        let mut keep = |bytes: &[u8]| -> Result<()> {
            let r: VectorRecord = decode(bytes, "vector record")?;
            // An id the writer has just moved or reused elsewhere is not ours.
            if r.namespace == *name {
                out.push(r);
            }
            Ok(())
        };
        if (ids.len() as u64).saturating_mul(WALKED_ROWS_PER_LOOKUP) < table.len()? {
            for id in &ids {
                // Absent: deleted since the ids were read.
                if let Some(v) = table.get(id.as_u128())? {
                    keep(v.value())?;
                }
            }
            return Ok(out);
        }
        let mut wanted = ids.iter().map(|id| id.as_u128()).peekable();
        for row in table.range(first.as_u128()..=last.as_u128())? {
            let (k, v) = row?;
            let key = k.value();
            while wanted.next_if(|&w| w < key).is_some() {}
            if wanted.next_if_eq(&key).is_some() {
                keep(v.value())?;
            }
        }
        Ok(out)
    }

    fn prepare_query(&self, q: &SearchQuery) -> Result<(Arc<Space>, Vec<f64>)> {
        let space = self.space(&q.namespace)?;
        if q.k.saturating_add(q.offset) > MAX_RESULTS {
            return Err(StorageError::InvalidQuery(format!(
                "k + offset = {} exceeds the limit of {MAX_RESULTS}",
                q.k.saturating_add(q.offset)
            )));
        }
        if let Some(ef) = q.ef
            && !(1..=MAX_EF).contains(&ef)
        {
            return Err(StorageError::InvalidQuery(format!(
                "ef = {ef} is outside 1..={MAX_EF}"
            )));
        }
        crate::vectors::check_filter(q.filter.as_ref())?;
        let v = Self::admit(&space, q.vector.clone())?;
        Ok((space, v))
    }

    /// The `k` vectors nearest to the query (after skipping `offset`),
    /// sorted by distance. When `k + offset` matching vectors exist, that
    /// many are found: the graph search is completed by an exact scan of
    /// the fresh buffer, and by an exact scan of every match when a
    /// selective filter starves the graph.
    pub fn semantic_search(&self, q: &SearchQuery) -> Result<Vec<SearchHit>> {
        let (space, v) = self.prepare_query(q)?;
        let hits = space.index.search(&Query {
            vector: &v,
            want: q.k + q.offset,
            filter: q.filter.as_ref(),
            region: q.region.as_deref(),
            exact: q.exact,
            ef: q.ef,
        })?;
        Ok(page(hits, q.offset, q.k))
    }

    /// Several searches; one result list each, in order. They run on every
    /// core, each query on one thread; the first error (in query order) is
    /// the answer.
    pub fn batch_search(&self, queries: &[SearchQuery]) -> Result<Vec<Vec<SearchHit>>> {
        let threads = all_cores().min(queries.len());
        if threads < 2 {
            return queries.iter().map(|q| self.semantic_search(q)).collect();
        }
        let parts: Vec<Vec<Result<Vec<SearchHit>>>> = std::thread::scope(|s| {
            let handles: Vec<_> = queries
                .chunks(queries.len().div_ceil(threads))
                .map(|part| s.spawn(move || part.iter().map(|q| self.semantic_search(q)).collect()))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(StorageError::Index("a search thread panicked".into()))]
                    })
                })
                .collect()
        });
        parts.into_iter().flatten().collect()
    }

    /// Every matching vector within `radius` of the query (exact scan),
    /// sorted by distance; `k` and `offset` of the query page through them.
    pub fn range_search(&self, q: &SearchQuery, radius: f64) -> Result<Vec<SearchHit>> {
        if !(radius.is_finite() && radius >= 0.0) {
            return Err(StorageError::InvalidQuery(format!(
                "radius {radius} is not >= 0"
            )));
        }
        let (space, v) = self.prepare_query(q)?;
        let query = Query {
            vector: &v,
            want: 0,
            filter: q.filter.as_ref(),
            region: q.region.as_deref(),
            exact: true,
            ef: None,
        };
        Ok(page(space.index.range(&query, radius)?, q.offset, q.k))
    }

    /// Counts per namespace, bytes on disk, the change feed's position.
    pub fn get_stats(&self) -> Result<Stats> {
        let spaces = self.shared.spaces.read().unwrap_or_else(|e| e.into_inner());
        let namespaces = spaces
            .iter()
            .map(|(n, s)| {
                (
                    n.clone(),
                    NamespaceStats {
                        vectors: s.index.len(),
                        in_graph: s.index.graph_len(),
                        fresh: s.index.fresh_len(),
                        unreachable: s.index.unreachable_len(),
                        restored_from_dump: s.restored.load(Ordering::Relaxed),
                        attached: s.index.attached_len(),
                        in_overflow: s.index.overflow_len(),
                        scanned_exactly: s.index.scanned_exactly(),
                        building: s.index.building(),
                    },
                )
            })
            .collect();
        let bytes_on_disk = match &self.shared.path {
            Some(p) => std::fs::metadata(p).map(|m| m.len()).unwrap_or(0),
            None => 0,
        };
        Ok(Stats {
            namespaces,
            bytes_on_disk,
            last_change: *lock(&self.shared.last_seq),
            commits: self.shared.commits.load(Ordering::Relaxed),
            commit_requests: self.shared.commit_requests.load(Ordering::Relaxed),
            commit_micros: self.shared.commit_micros.load(Ordering::Relaxed),
            messages_purged: self.shared.messages_purged.load(Ordering::Relaxed),
            messages_discarded: self.shared.retention.discarded.load(Ordering::Relaxed),
            messages_expiring: lock(&self.shared.message_expiries).len(),
        })
    }

    /// Compares storage with the indexes.
    pub fn verify_consistency(&self) -> Result<ConsistencyReport> {
        self.shared.wait_built();
        contain("verifying", || self.shared.verify(false))
    }

    /// Makes the indexes agree with storage again: re-adds what is missing,
    /// drops what is orphaned, rebuilds graphs that hold stale nodes.
    pub fn repair_index(&self) -> Result<ConsistencyReport> {
        self.shared.wait_built();
        contain("repairing", || {
            self.shared.verify(true)?;
            self.shared.verify(false)
        })
    }

    /// Change-feed entries with `seq > after`, at most `limit`.
    /// [`StorageError::FeedTrimmed`] if entries after `after` were trimmed
    /// ([`StoreConfig::feed_keep`]).
    pub fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>> {
        contain("change", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(CHANGES)?;
            // Trimmed entries are asked for only if `after` lies before the
            // first row's number (its last entry's): a reader near the end
            // of the feed decodes nothing here.
            if let Some((k, v)) = t.first()?
                && after < k.value()
            {
                let first = crate::record::decode_change_row(v.value())?
                    .first()
                    .map_or(0, |c| c.seq);
                if after.saturating_add(1) < first {
                    return Err(StorageError::FeedTrimmed { first });
                }
            }
            let mut out = Vec::new();
            // A row is keyed by its last entry's number: the first row
            // past `after` may begin before it.
            for row in t.range(after.saturating_add(1)..)? {
                let (_, v) = row?;
                let entries = crate::record::decode_change_row(v.value())?;
                out.extend(entries.into_iter().filter(|c| c.seq > after));
                if out.len() >= limit {
                    out.truncate(limit);
                    break;
                }
            }
            Ok(out)
        })
    }

    /// Entries with `seq > after` of a sequence-numbered table.
    fn read_log<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<'_, u64, &[u8]>,
        after: u64,
        limit: usize,
        what: &str,
    ) -> Result<Vec<T>> {
        contain(what, || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(table)?;
            let mut out = Vec::new();
            for row in t.range(after.saturating_add(1)..)?.take(limit) {
                let (_, v) = row?;
                out.push(decode(v.value(), what)?);
            }
            Ok(out)
        })
    }

    /// Moves every fresh vector into its graph now, then checks that every
    /// graph node is reached by a search for its own vector (re-inserting,
    /// or scanning exactly, those that are not), and builds the overflow
    /// graph over the nodes that are not. For benchmarks and tests that
    /// measure the graph alone, and after large imports. Waits first for
    /// the graphs being built after the open (see [`Store::open`]).
    pub fn flush_index(&self) -> Result<()> {
        self.shared.wait_built();
        let spaces = self.shared.all_spaces();
        for s in spaces {
            // Unchecked: the pass that follows checks every node.
            while s.index.merge_fresh(MAX_GROUP, all_cores(), false)? > 0 {}
            s.index.relink()?;
            s.index.rebuild_overflow()?;
        }
        while self
            .shared
            .blocks_index
            .merge_fresh(MAX_GROUP, all_cores(), false)?
            > 0
        {}
        self.shared.blocks_index.relink()?;
        Ok(())
    }
}

impl Shared {
    /// Every namespace, as of now.
    fn all_spaces(&self) -> Vec<Arc<Space>> {
        self.spaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// The clock of the last change in the feed (0 if none carries one): the
/// largest the store gave out, as every change carries the clock of its
/// commit (see `Tables::log`).
fn last_hlc(changes: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64> {
    match changes.last()? {
        Some((_, v)) => {
            let row = crate::record::decode_change_row(v.value())?;
            Ok(row.last().map_or(0, |c| c.hlc))
        }
        None => Ok(0),
    }
}

/// Ranks `k` hits after skipping `offset`, with their scores.
fn page(hits: Vec<crate::index::Hit>, offset: usize, k: usize) -> Vec<SearchHit> {
    hits.into_iter()
        .enumerate()
        .skip(offset)
        .take(k)
        .map(|(rank, h)| SearchHit {
            id: h.id,
            distance: h.distance,
            score: 1.0 / (1.0 + h.distance),
            rank,
        })
        .collect()
}

fn entry_of(r: VectorRecord) -> Entry {
    Entry::new(r.id, r.data, r.region, Arc::new(r.metadata.into()))
}
