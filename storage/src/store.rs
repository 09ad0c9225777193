//! [`Store`]: the redb database, the group-commit writer and the indexes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use hvs_geometry::{AnyManifold, Manifold};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
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

/// The newest on-disk format this build reads and writes. A database with a
/// larger number is refused with [`StorageError::NewerFormat`].
pub const FORMAT_VERSION: u64 = 1;

/// The most results one search may ask for (`k + offset`).
pub const MAX_RESULTS: usize = 10_000;

/// Writes the group-commit writer takes into one transaction at most.
const MAX_GROUP: usize = 4096;

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
    /// For tests only: makes the file fail writes or syncs on demand
    /// (`tests/disk_faults.rs`). `None` in every real store.
    #[doc(hidden)]
    pub faults: Option<crate::disk::FaultSwitch>,
}

impl StoreConfig {
    /// A store with no disk.
    pub fn memory() -> Self {
        Self {
            path: None,
            durability: Durability::Memory,
            index: IndexParams::default(),
            faults: None,
        }
    }

    /// A store in the file `path`.
    pub fn file(path: impl Into<PathBuf>, durability: Durability) -> Self {
        Self {
            path: Some(path.into()),
            durability,
            index: IndexParams::default(),
            faults: None,
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
    /// find them through an overflow graph (`in_overflow`) or by scanning
    /// them exactly (`scanned_exactly`).
    pub unreachable: usize,
    /// Vectors whose graph node was loaded from the graph dump when the
    /// store was opened (0 when the graph was rebuilt instead).
    pub restored_from_dump: usize,
    /// Unreachable nodes that an overflow graph (a graph of their own,
    /// searched beside the main one) covers.
    pub in_overflow: usize,
    /// Unreachable nodes no graph covers: every search scans these exactly.
    pub scanned_exactly: usize,
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
    /// Expired messages removed (row, settlements, index entry) since the
    /// store opened.
    pub messages_purged: u64,
    /// Stored messages with a TTL, not purged yet (expired or not).
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

/// Threads the indexer merges fresh vectors on in the background: one, so
/// that writes, messages and searches keep the other cores (on this 2-core
/// machine a two-thread merge halved messaging throughput; the graph then
/// absorbs more slowly and the fresh buffer, scanned exactly, holds the
/// rest). `flush_index` and bulk loads use every core.
const BACKGROUND_THREADS: usize = 1;

/// How often an idle writer checks for expired blocks and messages to purge.
const PURGE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) struct Shared {
    /// Whether the store takes its own writes (`fence.rs`).
    pub(crate) fence: crate::fence::WriteFence,
    /// The database handle. The writer replaces it after the disk fails a
    /// commit (see `disk.rs`); readers take a clone for one read
    /// ([`Shared::begin_read`]), so a replacement waits for them.
    db: RwLock<Option<Arc<Database>>>,
    /// Test faults of the file (see [`StoreConfig::faults`]).
    faults: Option<crate::disk::FaultSwitch>,
    /// The number in `meta` of the last commit (each commit writes its
    /// own): after a failed commit, the reopened file shows whether it
    /// reached the file after all.
    last_commit: AtomicU64,
    durability: Durability,
    commits: AtomicU64,
    commit_requests: AtomicU64,
    commit_micros: AtomicU64,
    /// Messages, at `Memory` durability only (see `messages.rs`).
    pub(crate) memory_messages: Mutex<HashMap<Uuid, Arc<crate::messages::MessageRecord>>>,
    /// `(expires_ms, id)` of every stored message with a TTL: the writer
    /// purges them in this order once they expire, without scanning the
    /// table. Rebuilt from the table on open.
    message_expiries: Mutex<crate::messages::Expiries>,
    /// Expired messages purged since the store opened.
    messages_purged: AtomicU64,
    path: Option<PathBuf>,
    /// Where graph dumps go (durable stores only).
    dumps: Option<PathBuf>,
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

/// How long a reopen waits for the reads in flight on the old handle.
const READERS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The first and the longest wait before the file is reopened for writes
/// again after the disk took a probe but then failed the reopen or the
/// next commit.
const BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(100);
const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// What the writer thread keeps between groups.
#[derive(Default)]
struct WriterState {
    /// Set while writes are refused.
    refusing: Option<Refusing>,
    /// How long to wait before the next direct reopen if this one fails
    /// again; zero after a commit.
    backoff: std::time::Duration,
}

/// Why, and until when at least, writes are refused.
struct Refusing {
    /// The disk's error, as the refused callers hear it.
    reason: String,
    /// No direct reopen before this (the disk is probed at each group
    /// after it).
    retry_at: std::time::Instant,
    /// An overlay handle is in place, so reads go on.
    reads: bool,
}

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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Opens (or creates) a store: reads everything back and rebuilds the
    /// indexes. A newer format version, a corrupt or foreign file, or a file
    /// open in another process is a clear error.
    pub fn open(config: StoreConfig) -> Result<Store> {
        contain("opening the database", || Self::open_inner(config))
    }

    fn open_inner(config: StoreConfig) -> Result<Store> {
        let db = match (&config.durability, &config.path) {
            (Durability::Memory, _) => {
                Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?
            }
            (_, Some(p)) => crate::disk::open(p, config.faults.as_ref(), false)?,
            (_, None) => {
                return Err(StorageError::Io("a durable store needs a path".into()));
            }
        };
        let dumps = match (&config.durability, &config.path) {
            (Durability::Memory, _) | (_, None) => None,
            (_, Some(p)) => Some(crate::dump::dir_of(p)),
        };
        let shared = Arc::new(Shared {
            fence: crate::fence::WriteFence::default(),
            db: RwLock::new(Some(Arc::new(db))),
            faults: config.faults.clone(),
            last_commit: AtomicU64::new(0),
            durability: config.durability,
            commits: AtomicU64::new(0),
            commit_requests: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            memory_messages: Mutex::new(HashMap::new()),
            message_expiries: Mutex::new(Default::default()),
            messages_purged: AtomicU64::new(0),
            path: config.path.clone(),
            dumps,
            spaces: RwLock::new(HashMap::new()),
            index_params: config.index,
            last_seq: Mutex::new(0),
            last_audit: Mutex::new(0),
            last_hlc: Mutex::new(0),
            instance: AtomicU64::new(0),
            next_expiry: Mutex::new(None),
            blocks_index: SpaceIndex::new(
                hvs_geometry::Sphere::new(TEXT_DIM - 1, 1.0)
                    .map_err(StorageError::InvalidGeometry)?
                    .into(),
                config.index,
            )?,
            block_sections: Mutex::new(HashMap::new()),
            encoder: hvs_contracts::TextEncoder::new(TEXT_DIM)
                .ok_or_else(|| StorageError::Io("text encoder dimension".into()))?,
            // Work pending from the start: a loaded dump may leave vectors
            // in the fresh buffer.
            signal: (Mutex::new((true, false)), Condvar::new()),
        });
        shared.init_meta()?;
        shared.load()?;
        let (tx, rx) = mpsc::sync_channel::<Request>(MAX_GROUP);
        let group = if config.durability == Durability::Sync {
            1
        } else {
            MAX_GROUP
        };
        let durability = match config.durability {
            Durability::Memory => redb::Durability::None,
            _ => redb::Durability::Immediate,
        };
        let w = shared.clone();
        let writer = std::thread::Builder::new()
            .name("hvs-writer".into())
            .spawn(move || w.run_writer(rx, group, durability))
            .map_err(|e| StorageError::Io(e.to_string()))?;
        let i = shared.clone();
        let indexer = std::thread::Builder::new()
            .name("hvs-indexer".into())
            .spawn(move || i.run_indexer())
            .map_err(|e| StorageError::Io(e.to_string()))?;
        Ok(Store {
            shared,
            tx: Some(tx),
            threads: vec![writer, indexer],
        })
    }

    pub(crate) fn submit(&self, op: Op) -> Result<Reply> {
        let (reply, answer) = mpsc::sync_channel(1);
        let tx = self.tx.as_ref().ok_or(StorageError::Closed)?;
        tx.send(Request {
            op,
            reply: Replier::Wait(reply),
        })
        .map_err(|_| StorageError::Closed)?;
        answer.recv().map_err(|_| StorageError::Closed)?
    }

    /// Submits `op` without waiting: `done` runs on the writer thread after
    /// the commit (or at once, here, if the store is closed).
    pub(crate) fn submit_then(&self, op: Op, done: Box<dyn FnOnce(Result<Reply>) + Send>) {
        let Some(tx) = self.tx.as_ref() else {
            return done(Err(StorageError::Closed));
        };
        if let Err(mpsc::SendError(req)) = tx.send(Request {
            op,
            reply: Replier::Call(done),
        }) {
            req.reply.send(Err(StorageError::Closed));
        }
    }

    /// The durability this store was opened with.
    pub fn durability(&self) -> Durability {
        self.shared.durability
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
        if config.name.is_empty() || config.name.len() > 256 {
            return Err(StorageError::InvalidNamespaceName(config.name));
        }
        config
            .geometry
            .build()
            .map_err(StorageError::InvalidGeometry)?;
        if let Ok(s) = self.space(&config.name) {
            return if s.config == config {
                Ok(())
            } else {
                Err(StorageError::NamespaceExists(config.name))
            };
        }
        self.submit(Op::CreateSpace(config)).map(|_| ())
    }

    /// The configuration of a namespace.
    pub fn namespace(&self, name: &str) -> Result<SpaceConfig> {
        Ok(self.space(name)?.config.clone())
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

    /// Every vector of a namespace, oldest first (ids are time-ordered).
    pub fn iter_namespace(&self, namespace: &str) -> Result<Vec<VectorRecord>> {
        self.space(namespace)?;
        contain("reading a namespace", || self.iter_inner(namespace))
    }

    fn iter_inner(&self, namespace: &str) -> Result<Vec<VectorRecord>> {
        let txn = self.shared.begin_read()?;
        let table = txn.open_table(VECTORS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (_, v) = row?;
            let r: VectorRecord = decode(v.value(), "vector record")?;
            if r.namespace == namespace {
                out.push(r);
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
        })?;
        Ok(page(hits, q.offset, q.k))
    }

    /// Several searches; one result list each, in order.
    pub fn batch_search(&self, queries: &[SearchQuery]) -> Result<Vec<Vec<SearchHit>>> {
        queries.iter().map(|q| self.semantic_search(q)).collect()
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
        };
        Ok(page(space.index.range(&query, radius), q.offset, q.k))
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
                        in_overflow: s.index.overflow_len(),
                        scanned_exactly: s.index.scanned_exactly(),
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
            messages_expiring: lock(&self.shared.message_expiries).len(),
        })
    }

    /// Compares storage with the indexes.
    pub fn verify_consistency(&self) -> Result<ConsistencyReport> {
        contain("verifying", || self.shared.verify(false))
    }

    /// Makes the indexes agree with storage again: re-adds what is missing,
    /// drops what is orphaned, rebuilds graphs that hold stale nodes.
    pub fn repair_index(&self) -> Result<ConsistencyReport> {
        contain("repairing", || {
            self.shared.verify(true)?;
            self.shared.verify(false)
        })
    }

    /// Change-feed entries with `seq > after`, at most `limit`.
    pub fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>> {
        self.read_log(CHANGES, after, limit, "change")
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
    /// measure the graph alone, and after large imports.
    pub fn flush_index(&self) -> Result<()> {
        let spaces = self.shared.all_spaces();
        for s in spaces {
            while s.index.merge_fresh(MAX_GROUP, all_cores())? > 0 {}
            s.index.relink()?;
            s.index.rebuild_overflow()?;
        }
        while self
            .shared
            .blocks_index
            .merge_fresh(MAX_GROUP, all_cores())?
            > 0
        {}
        self.shared.blocks_index.relink()?;
        Ok(())
    }
}

/// Blocks (the NVM part of the specification). Every call names the actor
/// (a model id, an operator) that permissions are checked against and the
/// audit log records.
impl Store {
    /// Removes expired blocks from the file now and returns how many. The
    /// writer does this by itself within a second of the earliest expiry
    /// (each removal is in the audit log as [`AuditAction::Expire`] by
    /// `"hvs"`); expired blocks are invisible to every read before that.
    pub fn purge_expired_blocks(&self) -> Result<usize> {
        match self.submit(Op::PurgeExpired)? {
            Reply::Purged { count, .. } => Ok(count),
            _ => Err(StorageError::Io("unexpected reply to a purge".into())),
        }
    }

    /// Creates a block. Names are unique; a cache block needs a TTL.
    pub fn create_block(
        &self,
        actor: &str,
        name: &str,
        class: BlockClass,
        content: BlockContent,
        options: BlockOptions,
    ) -> Result<Block> {
        if name.is_empty() || name.len() > 256 {
            return Err(StorageError::InvalidBlock(format!(
                "name {name:?} must be 1 to 256 bytes"
            )));
        }
        if class == BlockClass::Cache && options.ttl_ms.is_none() {
            return Err(StorageError::InvalidBlock(
                "a cache block needs a ttl".into(),
            ));
        }
        if let BlockContent::Json(v) = &content {
            let mut m = crate::record::Metadata::new();
            m.insert("content".into(), v.clone());
            check_metadata(&m).map_err(|e| StorageError::InvalidBlock(e.to_string()))?;
        }
        let now = now_ms();
        let block = Block {
            id: Uuid::now_v7(),
            name: name.to_string(),
            owner: actor.to_string(),
            class,
            content,
            readonly: options.readonly,
            permissions: options.permissions,
            version: 1,
            created_ms: now,
            updated_ms: now,
            expires_ms: options.ttl_ms.map(|t| now.saturating_add(t)),
            history_limit: options.history,
            history: Vec::new(),
        };
        match self.submit(Op::CreateBlock {
            actor: actor.to_string(),
            block,
        })? {
            Reply::Block(b) => Ok(*b),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    fn read_block(&self, actor: &str, b: Option<Block>) -> Result<Option<Block>> {
        let Some(b) = b.filter(|b| !b.expired(now_ms())) else {
            return Ok(None);
        };
        if b.readable_by(actor) {
            return Ok(Some(b));
        }
        let e = StorageError::PermissionDenied {
            actor: actor.to_string(),
            action: "read",
            block: b.name.clone(),
        };
        self.submit(Op::Audit {
            actor: actor.to_string(),
            action: AuditAction::ReadBlock,
            block: Some(b.id),
            name: Some(b.name),
            outcome: format!("refused: {e}"),
        })?;
        Err(e)
    }

    fn load_block(&self, id: Uuid) -> Result<Option<Block>> {
        contain("reading a block", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(BLOCKS)?;
            let b = t.get(id.as_u128())?;
            b.map(|b| decode(b.value(), "block")).transpose()
        })
    }

    /// Records a refused attempt in the audit log (`action` is
    /// [`AuditAction::Connect`] or [`AuditAction::Request`]; `what` names it
    /// and `reason` says why it was refused). Answered once committed.
    pub fn audit_refusal(
        &self,
        actor: &str,
        action: AuditAction,
        what: &str,
        reason: &str,
    ) -> Result<()> {
        self.submit(Op::Audit {
            actor: actor.to_string(),
            action,
            block: None,
            name: Some(what.to_string()),
            outcome: format!("refused: {reason}"),
        })
        .map(|_| ())
    }

    /// The block `id` (`None` if absent or expired).
    pub fn get_block(&self, actor: &str, id: Uuid) -> Result<Option<Block>> {
        let b = self.load_block(id)?;
        self.read_block(actor, b)
    }

    /// The block named `name` (`None` if absent or expired).
    pub fn get_block_by_name(&self, actor: &str, name: &str) -> Result<Option<Block>> {
        let id = contain("reading a block", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(BLOCK_NAMES)?;
            Ok(t.get(name)?.map(|v| v.value()))
        })?;
        match id {
            Some(id) => self.get_block(actor, Uuid::from_u128(id)),
            None => Ok(None),
        }
    }

    /// Replaces a block's content (version + 1, the old content into its
    /// history). Read-only blocks answer [`StorageError::ReadOnlyBlock`] and
    /// stay unchanged; every refusal is audited.
    pub fn update_block(&self, actor: &str, id: Uuid, content: BlockContent) -> Result<Block> {
        match self.submit(Op::UpdateBlock {
            actor: actor.to_string(),
            id,
            content,
        })? {
            Reply::Block(b) => Ok(*b),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// Deletes a block; `false` if there was none.
    pub fn delete_block(&self, actor: &str, id: Uuid) -> Result<bool> {
        match self.submit(Op::DeleteBlock {
            actor: actor.to_string(),
            id,
        })? {
            Reply::Deleted(d) => Ok(d),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// Replaces the permissions of a block: only its owner may (for a
    /// block written before owners existed, its writers), whatever the
    /// lists say, read-only or not; anyone else is refused with
    /// [`StorageError::PermissionDenied`], audited. Version and history
    /// (the content's) stay as they are.
    pub fn set_block_permissions(
        &self,
        actor: &str,
        id: Uuid,
        permissions: crate::blocks::BlockPermissions,
    ) -> Result<Block> {
        let op = Op::SetBlockPermissions {
            actor: actor.to_string(),
            id,
            permissions,
        };
        match self.submit(op)? {
            Reply::Block(b) => Ok(*b),
            _ => Err(StorageError::Io("unexpected writer reply".into())),
        }
    }

    /// The live blocks `actor` may read (its own and those the read lists
    /// name it in), of one class or all, by name.
    pub fn list_blocks(&self, actor: &str, class: Option<&BlockClass>) -> Result<Vec<Block>> {
        contain("listing blocks", || {
            let txn = self.shared.begin_read()?;
            let t = txn.open_table(BLOCKS)?;
            let now = now_ms();
            let mut out = Vec::new();
            for row in t.iter()? {
                let (_, v) = row?;
                let b: Block = decode(v.value(), "block")?;
                if !b.expired(now) && b.readable_by(actor) && class.is_none_or(|c| *c == b.class) {
                    out.push(b);
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    /// Audit entries with `seq > after`, at most `limit`.
    pub fn audit_log(&self, after: u64, limit: usize) -> Result<Vec<AuditEntry>> {
        self.read_log(AUDIT, after, limit, "audit entry")
    }

    /// The block sections nearest in meaning to `text` (the built-in text
    /// encoder on both sides) that `actor` may read, best first. A
    /// documentation block is found by its section, not only as a whole.
    pub fn semantic_query(
        &self,
        actor: &str,
        text: &str,
        k: usize,
        class: Option<&BlockClass>,
    ) -> Result<Vec<BlockHit>> {
        if k > MAX_RESULTS {
            return Err(StorageError::InvalidQuery(format!(
                "k = {k} exceeds {MAX_RESULTS}"
            )));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        let q = self.shared.encoder.encode(text);
        let filter = class.map(|c| Filter::Eq("class".into(), serde_json::json!(c.label())));
        let mut want = k.saturating_mul(4).max(16);
        loop {
            let hits = self.shared.blocks_index.search(&Query {
                vector: &q,
                want,
                filter: filter.as_ref(),
                region: None,
                exact: false,
            })?;
            let exhausted = hits.len() < want;
            let mut out = Vec::new();
            let mut blocks: HashMap<Uuid, Option<Block>> = HashMap::new();
            let now = now_ms();
            for h in hits {
                let Some(meta) = self.shared.blocks_index.metadata_of(h.id) else {
                    continue;
                };
                let Some(bid) = meta
                    .get("block")
                    .and_then(|v| v.as_str())
                    .and_then(|s| Uuid::parse_str(s).ok())
                else {
                    continue;
                };
                let b = match blocks.entry(bid) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(self.load_block(bid)?),
                };
                let Some(b) = b else {
                    continue;
                };
                if b.expired(now) || !b.readable_by(actor) {
                    continue;
                }
                out.push(BlockHit {
                    block_id: bid,
                    name: b.name.clone(),
                    section: meta
                        .get("heading")
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    text: meta
                        .get("text")
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string(),
                    distance: h.distance,
                    score: 1.0 / (1.0 + h.distance),
                    rank: out.len(),
                });
                if out.len() == k {
                    return Ok(out);
                }
            }
            if exhausted || want >= MAX_RESULTS {
                return Ok(out);
            }
            want = want.saturating_mul(4).min(MAX_RESULTS);
        }
    }
}

impl Store {
    /// Saves every namespace's graph next to the database (in
    /// `<file>.graphs/`), so that the next open loads it instead of
    /// rebuilding it. [`Store::close`] and dropping the store do this too;
    /// call it to bound the work of a reopen after a crash. Nothing at
    /// [`Durability::Memory`]. A dump is a cache: the next open checks every
    /// vector in it against the database.
    pub fn save_index(&self) -> Result<()> {
        self.shared.save_index()
    }

    /// Stops the writer and indexer threads, then saves the graphs
    /// ([`Store::save_index`]). Every write already answered is durable at
    /// `buffered` and `sync` whether or not this is called; it only makes
    /// the next open faster.
    pub fn close(mut self) -> Result<()> {
        self.stop();
        self.shared.save_index()
    }

    fn stop(&mut self) {
        self.tx.take();
        {
            let (m, cv) = &self.shared.signal;
            lock(m).1 = true;
            cv.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
            // Best effort: a dump that is not written costs the next open
            // time, never data.
            let _ = self.shared.save_index();
        }
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

    fn init_meta(&self) -> Result<()> {
        let db = self.db()?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let last = meta.get(LAST_COMMIT)?.map_or(0, |v| v.value());
            self.last_commit.store(last, Ordering::Relaxed);
            let found = meta.get("format_version")?.map(|v| v.value());
            match found {
                Some(v) if v > FORMAT_VERSION => {
                    return Err(StorageError::NewerFormat {
                        found: v as u32,
                        supported: FORMAT_VERSION as u32,
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("format_version", FORMAT_VERSION)?;
                }
            }
            let found = meta.get(INSTANCE)?.map(|v| v.value());
            let instance = match found {
                Some(i) => i,
                None => {
                    // The random half of a UUID v7: 62 random bits.
                    let i = Uuid::now_v7().as_u64_pair().1;
                    meta.insert(INSTANCE, i)?;
                    i
                }
            };
            self.instance.store(instance, Ordering::Relaxed);
            txn.open_table(SPACES)?;
            txn.open_table(VECTORS)?;
            txn.open_table(CHANGES)?;
            txn.open_table(BLOCKS)?;
            txn.open_table(BLOCK_NAMES)?;
            txn.open_table(AUDIT)?;
            txn.open_table(MESSAGES)?;
            txn.open_table(SETTLED)?;
            txn.open_table(CATALOG)?;
            txn.open_table(TOMBSTONES)?;
        }
        txn.commit()?;
        Ok(())
    }

    fn make_space(&self, config: SpaceConfig) -> Result<Arc<Space>> {
        let m: AnyManifold = config
            .geometry
            .build()
            .map_err(StorageError::InvalidGeometry)?;
        Ok(Arc::new(Space {
            index: SpaceIndex::new(m, self.index_params)?,
            config,
            restored: AtomicUsize::new(0),
            vectors: RwLock::new(BTreeSet::new()),
        }))
    }

    /// Builds a space's index at open: from its graph dump when there is a
    /// usable one (verified against `entries`), from scratch otherwise.
    fn build_index(&self, space: &Space, mut entries: Vec<Entry>) -> Result<()> {
        let name = &space.config.name;
        if let Some(dir) = &self.dumps
            && let Ok(Some(dump)) = crate::dump::read(&crate::dump::file_of(dir, name))
            && dump.meta.namespace == *name
            && let Ok(kept) = space.index.load_dump(&dump, &mut entries)
        {
            space.restored.store(kept, Ordering::Relaxed);
            return Ok(());
        }
        space.index.bulk_load(entries)
    }

    fn save_index(&self) -> Result<()> {
        let Some(dir) = &self.dumps else {
            return Ok(());
        };
        let spaces = self.all_spaces();
        for s in spaces.iter().filter(|s| s.index.changed_since_dump()) {
            let (meta, graph) = s.index.dump(&s.config.name)?;
            crate::dump::write(&crate::dump::file_of(dir, &s.config.name), &meta, &graph)?;
        }
        Ok(())
    }

    /// Reads spaces and vectors back and builds the indexes.
    fn load(&self) -> Result<()> {
        let txn = self.begin_read()?;
        let mut spaces = HashMap::new();
        for row in txn.open_table(SPACES)?.iter()? {
            let (_, v) = row?;
            let config: SpaceConfig = decode(v.value(), "namespace")?;
            spaces.insert(config.name.clone(), self.make_space(config)?);
        }
        let mut per_space: HashMap<String, Vec<Entry>> = HashMap::new();
        for row in txn.open_table(VECTORS)?.iter()? {
            let (_, v) = row?;
            let r: VectorRecord = decode(v.value(), "vector record")?;
            if !spaces.contains_key(&r.namespace) {
                return Err(StorageError::Corrupt(format!(
                    "vector {} belongs to unknown namespace {:?}",
                    r.id, r.namespace
                )));
            }
            spaces[&r.namespace].write_vectors().insert(r.id);
            per_space
                .entry(r.namespace.clone())
                .or_default()
                .push(entry_of(r));
        }
        let messages = txn.open_table(MESSAGES)?;
        let rows = messages.iter()?.map(|row| {
            let (_, v) = row?;
            decode::<crate::messages::MessageRecord>(v.value(), "message")
        });
        let (message_entries, expiries) = crate::messages::message_entries(rows)?;
        *lock(&self.message_expiries) = expiries;
        for (name, entries) in message_entries {
            if !spaces.contains_key(&name) {
                return Err(StorageError::Corrupt(format!(
                    "a message belongs to unknown namespace {name:?}"
                )));
            }
            per_space.entry(name).or_default().extend(entries);
        }
        for (name, entries) in per_space {
            self.build_index(&spaces[&name], entries)?;
        }
        if let Some(dir) = &self.dumps {
            crate::dump::remove_stale(dir, spaces.keys());
        }
        let changes = txn.open_table(CHANGES)?;
        *lock(&self.last_seq) = changes.last()?.map_or(0, |(k, _)| k.value());
        *lock(&self.last_hlc) = last_hlc(&changes)?;
        *lock(&self.last_audit) = txn.open_table(AUDIT)?.last()?.map_or(0, |(k, _)| k.value());
        let mut section_entries = Vec::new();
        for row in txn.open_table(BLOCKS)?.iter()? {
            let (_, v) = row?;
            let b: Block = decode(v.value(), "block")?;
            self.note_expiry(b.expires_ms);
            section_entries.extend(self.section_entries(&b));
        }
        self.blocks_index.bulk_load(section_entries)?;
        *self.spaces.write().unwrap_or_else(|e| e.into_inner()) = spaces;
        Ok(())
    }

    fn run_writer(&self, rx: Receiver<Request>, group: usize, durability: redb::Durability) {
        let mut state = WriterState::default();
        // More expired messages are due than the last purge took: go on
        // at once instead of waiting for a request or the next check.
        let mut backlog = false;
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
            let now = now_ms();
            if lock(&self.next_expiry).is_some_and(|t| now >= t) {
                batch.push(Request {
                    op: Op::PurgeExpired,
                    reply: Replier::Nobody,
                });
            }
            let due = self.due_messages(now);
            let full = due.len() == PURGE_BATCH;
            let head = due.first().copied();
            backlog = false;
            if self.durability == Durability::Memory {
                self.purge_memory_messages(&due);
                backlog = full;
            } else if !due.is_empty() {
                batch.push(Request {
                    op: Op::PurgeMessages(due),
                    reply: Replier::Nobody,
                });
            }
            if batch.is_empty() {
                continue;
            }
            while batch.len() < group {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.commit_group(batch, durability, &mut state);
            // A purge that committed took its messages out of the set; one
            // that failed left them (and is retried at the next check).
            if self.durability != Durability::Memory && full {
                let first = lock(&self.message_expiries).first().copied();
                backlog = first != head && first.is_some_and(|(t, _)| t <= now_ms());
            }
        }
    }

    /// The earliest expired messages, at most [`PURGE_BATCH`].
    fn due_messages(&self, now: u64) -> Vec<(u64, Uuid)> {
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
    fn purge_memory_messages(&self, due: &[(u64, Uuid)]) {
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
    fn forget_messages(
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

    /// One transaction for the whole group; each caller is answered after
    /// the commit (with its own error if its operation was refused).
    ///
    /// If the disk fails the commit, every caller hears
    /// [`StorageError::WriteFailed`], nothing of the group is applied to
    /// memory, and writes are refused (reads go on, on a reopened handle)
    /// until the disk takes writes again: see [`Shared::recover`].
    fn commit_group(
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
            let positions = Positions {
                seq: seq_before,
                audit_seq: audit_before,
                hlc: *lock(&self.last_hlc),
                instance: self.instance.load(Ordering::Relaxed),
            };
            let mut tables = Tables::open(&txn, positions, &self.spaces)?;
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
    fn finish(&self, batch: Vec<Request>, results: Vec<OpOutcome>, failed: Option<&str>) {
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
    }

    /// The current database handle.
    pub(crate) fn db(&self) -> Result<Arc<Database>> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| {
                StorageError::Io(
                    "the database file could not be reopened after a disk fault".into(),
                )
            })
    }

    /// A read transaction, holding the handle it reads until it ends.
    pub(crate) fn begin_read(&self) -> Result<Reading> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        Ok(Reading { txn, _db: db })
    }

    /// Whether the handle refuses write transactions after a failed commit:
    /// redb latches an I/O error, and discards its allocator state on a
    /// failed commit, until the database is reopened.
    fn latched(&self) -> bool {
        self.db().map_or(true, |db| db.begin_write().is_err())
    }

    /// After the disk failed a commit: starts refusing writes, and reopens
    /// the file over an overlay so that reads go on (see `disk.rs`).
    /// Returns the last commit number the file holds, if it could be read.
    fn recover(&self, reason: &str, state: &mut WriterState) -> Option<u64> {
        state.refusing = Some(Refusing {
            reason: reason.to_string(),
            retry_at: std::time::Instant::now() + state.backoff,
            reads: false,
        });
        state.backoff = (state.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.reopen_for_reads(state)
    }

    /// Reopens the file over an overlay, for reads while writes are
    /// refused; the last commit number it holds.
    fn reopen_for_reads(&self, state: &mut WriterState) -> Option<u64> {
        self.reopen(true).ok()?;
        if let Some(r) = state.refusing.as_mut() {
            r.reads = true;
        }
        self.reload_positions().ok()
    }

    /// Whether writes may go to the file: `true` unless they are being
    /// refused and the disk still does not take them. Once it does, the
    /// file is reopened directly and writes resume.
    fn writable(&self, state: &mut WriterState) -> bool {
        let Some(refusing) = &state.refusing else {
            return true;
        };
        let reads = refusing.reads;
        let disk_ok = std::time::Instant::now() >= refusing.retry_at
            && self
                .path
                .as_ref()
                .is_some_and(|p| crate::disk::probe(p, self.faults.as_ref()).is_ok());
        if !disk_ok {
            if !reads {
                self.reopen_for_reads(state);
            }
            return false;
        }
        if self.reopen(false).is_ok() && self.reload_positions().is_ok() {
            state.refusing = None;
            return true;
        }
        // The disk took the probe but not the reopen: back to reads only,
        // and the next attempt later.
        if let Some(r) = state.refusing.as_mut() {
            r.retry_at = std::time::Instant::now() + state.backoff;
            r.reads = false;
        }
        state.backoff = (state.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.reopen_for_reads(state);
        false
    }

    /// Replaces the database handle with a new one on the file (`overlay`:
    /// see `disk.rs`). Waits for the reads in flight on the old handle (up
    /// to [`READERS_WAIT`]); reads that start meanwhile wait for the new one.
    fn reopen(&self, overlay: bool) -> Result<()> {
        let path = self
            .path
            .as_ref()
            .ok_or_else(|| StorageError::Io("a store in memory has no file to reopen".into()))?;
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        let deadline = std::time::Instant::now() + READERS_WAIT;
        while slot.as_ref().is_some_and(|db| Arc::strong_count(db) > 1) {
            if std::time::Instant::now() > deadline {
                return Err(StorageError::Io(
                    "reads held the database handle too long to reopen it".into(),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Closing a latched handle writes nothing; closing an overlay
        // writes only to its memory.
        drop(slot.take());
        let db = contain("reopening the database", || {
            crate::disk::open(path, self.faults.as_ref(), overlay)
        })?;
        *slot = Some(Arc::new(db));
        Ok(())
    }

    /// Reads the change-feed and audit positions and the last commit
    /// number back from the file (a failed commit may have reached it);
    /// returns the commit number.
    fn reload_positions(&self) -> Result<u64> {
        contain("reading positions", || {
            let txn = self.begin_read()?;
            let changes = txn.open_table(CHANGES)?;
            let seq = changes.last()?.map_or(0, |(k, _)| k.value());
            *lock(&self.last_hlc) = last_hlc(&changes)?;
            let audit = txn.open_table(AUDIT)?.last()?.map_or(0, |(k, _)| k.value());
            let commit = txn
                .open_table(META)?
                .get(LAST_COMMIT)?
                .map_or(0, |v| v.value());
            *lock(&self.last_seq) = seq;
            *lock(&self.last_audit) = audit;
            self.last_commit.store(commit, Ordering::Relaxed);
            Ok(commit)
        })
    }

    /// Remembers the earliest time a block expires.
    fn note_expiry(&self, at: Option<u64>) {
        if let Some(t) = at {
            let mut next = lock(&self.next_expiry);
            *next = Some(next.map_or(t, |n| n.min(t)));
        }
    }

    /// Applies a committed change to memory; `true` if the indexer has work.
    fn apply(&self, a: Applied) -> bool {
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
                if let Some(s) = space {
                    let id = r.id;
                    s.index.upsert(entry_of(r));
                    s.write_vectors().insert(id);
                }
                true
            }
            Applied::IndexBlock(b) => {
                self.unindex_block(b.id);
                for e in self.section_entries(&b) {
                    self.blocks_index.upsert(e);
                }
                true
            }
            Applied::IndexMessages(records) => {
                self.index_messages(&records);
                self.note_message_expiries(&records);
                true
            }
            Applied::MessagesPurged {
                due,
                removed,
                count,
            } => {
                self.forget_messages(&due, removed, count);
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

    /// Forgets a deleted namespace: its index, and its graph dump (a
    /// cache: one left behind by a crash or a concurrent `save_index` is
    /// checked against the database like any other).
    fn drop_space(&self, name: &str) {
        self.spaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if let Some(dir) = &self.dumps {
            let _ = std::fs::remove_file(crate::dump::file_of(dir, name));
        }
    }

    /// Puts message vectors into their namespaces' indexes.
    pub(crate) fn index_messages(&self, records: &[Arc<crate::messages::MessageRecord>]) {
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
        for (name, entries) in per_space {
            if let Some(s) = spaces.get(name) {
                s.index.upsert_all(entries);
            }
        }
        drop(spaces);
        if self.durability == Durability::Memory {
            let (m, cv) = &self.signal;
            lock(m).0 = true;
            cv.notify_one();
        }
    }

    fn run_indexer(&self) {
        let (m, cv) = &self.signal;
        loop {
            {
                let mut g = lock(m);
                while !g.0 && !g.1 {
                    g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
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
                        .merge_fresh(256, BACKGROUND_THREADS)
                        .is_ok_and(|n| n > 0);
                    // Inserts prune other nodes' links; re-check them all
                    // each time the graph doubles (amortised: a constant
                    // factor).
                    if index.relink_due() && !index.others_waiting() && !lock(m).1 {
                        let _ = index.relink_on(BACKGROUND_THREADS);
                    }
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

    /// Index entries for a block's sections (remembered for unindexing).
    fn section_entries(&self, b: &Block) -> Vec<Entry> {
        let mut out = Vec::new();
        for (i, sec) in sections(b).into_iter().enumerate() {
            let mut metadata = crate::record::Metadata::new();
            metadata.insert("block".into(), serde_json::json!(b.id.to_string()));
            metadata.insert("section".into(), serde_json::json!(i));
            metadata.insert("heading".into(), serde_json::json!(sec.heading));
            metadata.insert("class".into(), serde_json::json!(b.class.label()));
            metadata.insert("text".into(), serde_json::json!(sec.text));
            out.push(Entry {
                id: Uuid::now_v7(),
                data: self.encoder.encode(&sec.text),
                region: None,
                metadata: Arc::new(metadata),
            });
        }
        lock(&self.block_sections).insert(b.id, out.iter().map(|e| e.id).collect());
        out
    }

    fn unindex_block(&self, id: Uuid) {
        if let Some(ids) = lock(&self.block_sections).remove(&id) {
            for s in ids {
                self.blocks_index.remove(s);
            }
        }
    }

    fn verify(&self, repair: bool) -> Result<ConsistencyReport> {
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
                metadata: e.metadata.as_ref().clone(),
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
                    space.index.rebuild()?;
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

/// The clock of the last change in the feed (0 if none carries one): the
/// largest the store gave out, as every change carries the clock of its
/// commit (see `Tables::log`).
fn last_hlc(changes: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64> {
    /// The part of a change the clock needs.
    #[derive(serde::Deserialize)]
    struct Stamp {
        #[serde(default)]
        hlc: u64,
    }
    match changes.last()? {
        Some((_, v)) => Ok(decode::<Stamp>(v.value(), "change")?.hlc),
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
    Entry {
        id: r.id,
        data: r.data,
        region: r.region,
        metadata: Arc::new(r.metadata),
    }
}
