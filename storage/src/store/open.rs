//! Opening a store: the file's meta rows, reading spaces, vectors and
//! messages back, building each index (from its graph dump when there is a
//! usable one), and saving the dumps on close.

use super::*;
use crate::record::Datatype;

/// redb's page cache at `Memory` durability unless
/// [`StoreConfig::cache_bytes`] sets one. The database is in memory
/// already, so its cache only copies pages again: at redb's default of
/// 1 GiB it kept a second copy of every page written (about 4 KB a
/// connected model, `docs/BENCHMARKS.md`, "Agents in one process"). This
/// much keeps the pages read most, the B-trees' upper levels, without it.
const MEMORY_CACHE_BYTES: usize = 16 << 20;

/// A vector record's namespace and coordinates: what
/// [`Shared::stored_coords`] decodes of its row (the rest is skipped).
#[derive(serde::Deserialize)]
struct StoredPoint {
    namespace: String,
    data: Vec<f64>,
}

/// A message row's namespace and point, likewise.
#[derive(serde::Deserialize)]
struct StoredMessagePoint {
    namespace: String,
    vector: Vec<f64>,
}

impl Store {
    /// Opens (or creates) a store: reads everything back and loads each
    /// namespace's graph from its dump. A namespace without a usable dump
    /// is searched exactly (every result right, each search slower) while
    /// a background thread builds its graph on every core; the store
    /// answers at once either way. A newer format version, a corrupt or
    /// foreign file, or a file open in another process is a clear error.
    pub fn open(config: StoreConfig) -> Result<Store> {
        contain("opening the database", || Self::open_inner(config))
    }

    fn open_inner(config: StoreConfig) -> Result<Store> {
        let repaired = Arc::new(AtomicBool::new(false));
        let db = match (&config.durability, &config.path) {
            (Durability::Memory, _) => {
                crate::disk::builder(config.cache_bytes.or(Some(MEMORY_CACHE_BYTES)))
                    .create_with_backend(redb::backends::InMemoryBackend::new())?
            }
            (_, Some(p)) => crate::disk::open(
                p,
                config.faults.as_ref(),
                false,
                config.cache_bytes,
                &repaired,
            )?,
            (_, None) => {
                return Err(StorageError::Io("a durable store needs a path".into()));
            }
        };
        let dumps = match (&config.durability, &config.path) {
            (Durability::Memory, _) | (_, None) => None,
            (_, Some(p)) => Some(crate::dump::dir_of(p)),
        };
        let shared = Arc::new(Shared {
            me: std::sync::OnceLock::new(),
            fence: crate::fence::WriteFence::default(),
            db: RwLock::new(Some(Arc::new(db))),
            faults: config.faults.clone(),
            cache_bytes: config.cache_bytes,
            quick_repair: config.quick_repair,
            repaired,
            write_refusal: Mutex::new(None),
            last_commit: AtomicU64::new(0),
            durability: config.durability,
            commits: AtomicU64::new(0),
            commit_requests: AtomicU64::new(0),
            commit_micros: AtomicU64::new(0),
            kept_unsettled: Mutex::new(None),
            memory_messages: Mutex::new(HashMap::new()),
            message_expiries: Mutex::new(Default::default()),
            messages_purged: AtomicU64::new(0),
            retention: crate::retention::RetentionState::new(
                config.clock.clone(),
                config.retention,
            )?,
            path: config.path.clone(),
            dumps,
            checkpoint_every: config.checkpoint_every,
            feed_keep: config.feed_keep,
            built: (Mutex::new(false), Condvar::new()),
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
                crate::record::Datatype::F32,
            )?,
            block_sections: Mutex::new(HashMap::new()),
            encoder: hvs_contracts::TextEncoder::new(TEXT_DIM)
                .ok_or_else(|| StorageError::Io("text encoder dimension".into()))?,
            // Work pending from the start: a loaded dump may leave vectors
            // in the fresh buffer.
            signal: (Mutex::new((true, false)), Condvar::new()),
        });
        let _ = shared.me.set(Arc::downgrade(&shared));
        shared.init_meta()?;
        let unbuilt = shared.load(config.keep_unsettled)?;
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
        let b = shared.clone();
        let builder = std::thread::Builder::new()
            .name("hvs-index-build".into())
            .spawn(move || b.build_loaded(unbuilt))
            .map_err(|e| StorageError::Io(e.to_string()))?;
        Ok(Store {
            shared,
            tx: Some(tx),
            queue: super::queue::Queue::new(),
            threads: vec![writer, indexer, builder],
        })
    }
}

impl Store {
    /// What [`Store::unsettled_messages`] returns. The first call after an
    /// open with [`StoreConfig::keep_unsettled`] hands over the messages
    /// that open read, when no commit came since (the table is then as the
    /// open read it), instead of reading and decoding every message row
    /// again; every other call reads the table. Either way the store keeps
    /// none of them afterwards.
    pub fn take_unsettled_messages(&self) -> Result<Vec<crate::messages::Unsettled>> {
        let kept = lock(&self.shared.kept_unsettled).take();
        match kept {
            // The writer counts a commit before it answers its callers or
            // applies it to memory: one not counted yet has been seen by
            // nobody, so the table as the open read it is still an answer.
            Some(kept) if self.shared.commits.load(Ordering::SeqCst) == 0 => Ok(kept),
            _ => self.unsettled_messages(),
        }
    }

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
    pub(super) fn init_meta(&self) -> Result<()> {
        let db = self.db()?;
        let mut txn = db.begin_write()?;
        txn.set_quick_repair(self.quick_repair);
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

    pub(super) fn make_space(&self, config: SpaceConfig) -> Result<Arc<Space>> {
        let m: AnyManifold = config
            .geometry
            .build()
            .map_err(StorageError::InvalidGeometry)?;
        let (retention, held) = self.retention_of(&config);
        let params = self.index_params.with_graph(config.graph);
        let mut index = SpaceIndex::new(m, params, config.datatype())?;
        if matches!(config.datatype(), Datatype::F16 | Datatype::I8)
            && let Some(me) = self.me.get().cloned()
        {
            let name = config.name.clone();
            index = index.with_records(Arc::new(move |ids: &[Uuid]| {
                me.upgrade()
                    .ok_or(StorageError::Closed)?
                    .stored_coords(&name, ids)
            }));
        }
        Ok(Arc::new(Space {
            index,
            config,
            restored: AtomicUsize::new(0),
            vectors: RwLock::new(BTreeSet::new()),
            retention,
            held,
        }))
    }

    /// The stored coordinates of the vectors or messages `ids` of the
    /// namespace `name`, in one read ([`crate::index::Records`]): `None`
    /// for an id that is not stored there.
    pub(crate) fn stored_coords(&self, name: &str, ids: &[Uuid]) -> Result<Vec<Option<Vec<f64>>>> {
        let txn = self.begin_read()?;
        let vectors = txn.open_table(VECTORS)?;
        let messages = match self.durability {
            Durability::Memory => None,
            _ => Some(txn.open_table(MESSAGES)?),
        };
        ids.iter()
            .map(|id| {
                if let Some(v) = vectors.get(id.as_u128())? {
                    let r = match crate::record::point_of(v.value()) {
                        Some((namespace, data)) => (namespace == name).then_some(data),
                        None => {
                            let r: StoredPoint = decode(v.value(), "vector record")?;
                            (r.namespace == name).then_some(r.data)
                        }
                    };
                    return Ok(r);
                }
                let Some(t) = &messages else {
                    let held = lock(&self.memory_messages);
                    return Ok(held
                        .get(id)
                        .filter(|m| m.namespace == name)
                        .map(|m| m.vector.clone()));
                };
                let Some(v) = t.get(id.as_u128())? else {
                    return Ok(None);
                };
                let m: StoredMessagePoint = decode(v.value(), "message")?;
                Ok((m.namespace == name).then_some(m.vector))
            })
            .collect()
    }

    /// Fills a space's index at open: from its graph dump when there is a
    /// usable one (verified against `entries`); otherwise with the entries
    /// alone, scanned exactly until the graph built in the background
    /// ([`Shared::build_loaded`]) takes over. Whether it needs that build.
    pub(super) fn build_index(&self, space: &Space, mut entries: Vec<Entry>) -> bool {
        let name = &space.config.name;
        if let Some(dir) = &self.dumps
            && let Ok(Some(dump)) = crate::dump::read(&crate::dump::file_of(dir, name))
            && dump.meta.namespace == *name
            && let Ok(kept) = space.index.load_dump(&dump, &mut entries)
        {
            space.restored.store(kept, Ordering::Relaxed);
            return false;
        }
        space.index.load_unbuilt(entries)
    }

    pub(super) fn save_index(&self) -> Result<()> {
        let Some(dir) = &self.dumps else {
            return Ok(());
        };
        let spaces = self.all_spaces();
        for s in spaces.iter().filter(|s| s.index.changed_since_dump()) {
            let path = crate::dump::file_of(dir, &s.config.name);
            let meta = s.index.dump(&s.config.name, &crate::dump::start(&path)?)?;
            crate::dump::finish(&path, &meta)?;
        }
        Ok(())
    }

    /// Reads spaces and vectors back and builds the indexes; with
    /// `keep_unsettled`, keeps the unsettled messages it reads
    /// ([`StoreConfig::keep_unsettled`]). The vector rows and the message
    /// rows are read and decoded on two threads (after a crash a start
    /// reads both tables whole before it serves), and the indexes are
    /// filled on two.
    pub(super) fn load(&self, keep_unsettled: bool) -> Result<Unbuilt> {
        let txn = self.begin_read()?;
        let mut spaces = HashMap::new();
        for row in txn.open_table(SPACES)?.iter()? {
            let (_, v) = row?;
            let config: SpaceConfig = decode(v.value(), "namespace")?;
            spaces.insert(config.name.clone(), self.make_space(config)?);
        }
        let (vectors, messages) = std::thread::scope(|s| {
            let vectors = s.spawn(|| self.vector_entries(&spaces));
            let messages = self.message_rows(&txn, &spaces, keep_unsettled);
            (joined(vectors.join()), messages)
        });
        let mut per_space = vectors??;
        let (message_entries, settling) = messages?;
        self.schedule_settled(&txn, settling)?;
        for (name, entries) in message_entries {
            if !spaces.contains_key(&name) {
                return Err(StorageError::Corrupt(format!(
                    "a message belongs to unknown namespace {name:?}"
                )));
            }
            per_space.entry(name).or_default().extend(entries);
        }
        let unbuilt_spaces = self.build_indexes(&spaces, per_space)?;
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
        let blocks = self.blocks_index.load_unbuilt(section_entries);
        *self.spaces.write().unwrap_or_else(|e| e.into_inner()) = spaces;
        Ok(Unbuilt {
            spaces: unbuilt_spaces,
            blocks,
        })
    }

    /// Every vector row's entry, per namespace; each id also goes into its
    /// namespace's id set.
    fn vector_entries(
        &self,
        spaces: &HashMap<String, Arc<Space>>,
    ) -> Result<HashMap<String, Vec<Entry>>> {
        let txn = self.begin_read()?;
        let mut per_space: HashMap<String, Vec<Entry>> = HashMap::new();
        for row in txn.open_table(VECTORS)?.iter()? {
            let (_, v) = row?;
            let r: VectorRecord = decode(v.value(), "vector record")?;
            let Some(space) = spaces.get(&r.namespace) else {
                return Err(StorageError::Corrupt(format!(
                    "vector {} belongs to unknown namespace {:?}",
                    r.id, r.namespace
                )));
            };
            space.write_vectors().insert(r.id);
            per_space
                .entry(r.namespace.clone())
                .or_default()
                .push(entry_of(r));
        }
        Ok(per_space)
    }

    /// Every message row's entry, per namespace (and the messages of
    /// namespaces that keep acked ones for a while, [`Settling`]); the
    /// expiries noted, and with `keep_unsettled` the unsettled messages
    /// kept.
    fn message_rows(
        &self,
        txn: &Reading,
        spaces: &HashMap<String, Arc<Space>>,
        keep_unsettled: bool,
    ) -> Result<(HashMap<String, Vec<Entry>>, crate::retention::Settling)> {
        let messages = txn.open_table(MESSAGES)?;
        // Memory durability stores no message rows.
        let keep = keep_unsettled && self.durability != Durability::Memory;
        let settled = match keep {
            true => crate::messages::settled_pairs(txn)?,
            false => Default::default(),
        };
        let mut unsettled = Vec::new();
        let rows = messages.iter()?.map(|row| {
            let (_, v) = row?;
            let m = Arc::new(decode::<crate::messages::MessageRecord>(
                v.value(),
                "message",
            )?);
            if keep {
                unsettled.extend(crate::messages::unsettled_of(&m, &settled));
            }
            Ok(m)
        });
        let (entries, expiries, settling) = crate::messages::message_entries(rows, spaces)?;
        if keep {
            *lock(&self.kept_unsettled) = Some(unsettled);
        }
        *lock(&self.message_expiries) = expiries;
        Ok((entries, settling))
    }

    /// Fills each space's index with its entries ([`Shared::build_index`]),
    /// the spaces shared out over two threads, largest first; the spaces
    /// that need their graph built.
    fn build_indexes(
        &self,
        spaces: &HashMap<String, Arc<Space>>,
        per_space: HashMap<String, Vec<Entry>>,
    ) -> Result<Vec<Arc<Space>>> {
        let mut work: Vec<(Arc<Space>, Vec<Entry>)> = per_space
            .into_iter()
            .map(|(name, entries)| (spaces[&name].clone(), entries))
            .collect();
        work.sort_by_key(|(_, entries)| std::cmp::Reverse(entries.len()));
        // Each next space to the thread with fewer entries so far.
        let (mut one, mut two) = (Vec::new(), Vec::new());
        let (mut n1, mut n2) = (0, 0);
        for w in work {
            if n1 <= n2 {
                n1 += w.1.len();
                one.push(w);
            } else {
                n2 += w.1.len();
                two.push(w);
            }
        }
        let fill = |work: Vec<(Arc<Space>, Vec<Entry>)>| -> Vec<Arc<Space>> {
            work.into_iter()
                .filter_map(|(space, entries)| self.build_index(&space, entries).then_some(space))
                .collect()
        };
        std::thread::scope(|s| {
            let other = s.spawn(|| fill(two));
            let mut unbuilt = fill(one);
            unbuilt.extend(joined(other.join())?);
            Ok(unbuilt)
        })
    }
}

/// A scoped thread's result; its panic as a typed error (the open's own
/// panics are contained likewise, `contain`).
fn joined<T>(r: std::thread::Result<T>) -> Result<T> {
    r.map_err(|_| StorageError::Io("a thread opening the database panicked".into()))
}

/// The indexes read at open without a usable graph dump: searched exactly
/// until their graphs are built.
#[derive(Default)]
pub(super) struct Unbuilt {
    spaces: Vec<Arc<Space>>,
    blocks: bool,
}

impl Shared {
    /// Builds, one index after the other on every core, the graphs of the
    /// indexes opened without a usable dump, so that the store serves at
    /// once after a crash (exact scans meanwhile) instead of after the
    /// build. Ends early when the store closes.
    fn build_loaded(&self, unbuilt: Unbuilt) {
        self.build_graphs(unbuilt);
        *lock(&self.built.0) = true;
        self.built.1.notify_all();
    }

    /// Waits until the graphs opened without a dump are built (or their
    /// build stopped because the store is closing).
    pub(super) fn wait_built(&self) {
        let mut built = lock(&self.built.0);
        while !*built {
            built = self.built.1.wait(built).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn build_graphs(&self, unbuilt: Unbuilt) {
        let stop = || lock(&self.signal.0).1;
        let indexes = unbuilt
            .spaces
            .iter()
            .map(|s| &s.index)
            .chain(unbuilt.blocks.then_some(&self.blocks_index));
        for index in indexes {
            if stop() {
                return;
            }
            if let Err(e) = index.build_loaded(&stop) {
                if !stop() {
                    tracing::warn!("building a graph after opening failed: {e}");
                }
                return;
            }
        }
    }
}
