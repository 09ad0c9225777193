//! Backups: every table of a store as one self-describing, checksummed
//! stream ([`Store::export`]), and a new database made from one
//! ([`restore_backup`], [`Store::import`]).
//!
//! The stream (all integers little-endian; `docs/STORAGE.md`, "Backups"):
//!
//! ```text
//! header   "HVSBACKUP"  u32 backup format (1)  u64 store format  u32 tables
//! table    b'T'  u16 name length, name  u64 rows
//!          chunks: u32 rows (> 0)  u32 payload length  payload  u32 crc32(payload)
//!          u32 0 (end of the table)
//! trailer  b'E'  u32 tables, each: u16 name length, name  u64 rows
//!          u32 crc32 of every byte before it
//! payload  rows: u32 key length, key bytes, u32 value length, value bytes
//! ```
//!
//! Keys and values are redb's own encoding of the typed columns
//! (`Value::as_bytes`), so a row is restored bit for bit. Each chunk
//! carries its own CRC, checked before any of its rows is decoded, so a
//! damaged stream is refused without handing damaged bytes to redb; the
//! trailer's CRC covers the whole stream.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use redb::{
    Database, Key, MultimapTableHandle, ReadTransaction, ReadableTable, ReadableTableMetadata,
    TableDefinition, TableHandle, Value, WriteTransaction,
};

use crate::error::{Result, StorageError};
use crate::store::{
    AUDIT, BLOCK_NAMES, BLOCKS, CATALOG, CHANGES, Durability, FORMAT_VERSION, MESSAGES, META,
    SETTLED, SPACES, Store, StoreConfig, TOMBSTONES, VECTORS, contain,
};

const MAGIC: &[u8; 9] = b"HVSBACKUP";

/// The version of the stream's framing (not of the store's records, which
/// the header carries separately).
const BACKUP_FORMAT: u32 = 1;

/// Every table of the store, in the order a backup holds them. Export
/// refuses a database holding any other table, so a table added to the
/// store without being added here cannot be silently left out.
const TABLES: [&str; 11] = [
    "meta",
    "spaces",
    "vectors",
    "changes",
    "blocks",
    "block_names",
    "audit",
    "messages",
    "settled",
    "catalog",
    "tombstones",
];

/// Payload bytes a chunk is cut at when writing (a single larger row makes
/// a larger chunk).
const CHUNK_BYTES: usize = 1 << 20;

/// The largest chunk payload a reader accepts. Payloads are read as they
/// arrive, never allocated from the length field up front.
const MAX_CHUNK_BYTES: u32 = 1 << 30;

/// The longest table name a reader accepts.
const MAX_NAME: usize = 64;

/// Payload bytes an import writes per redb transaction.
const COMMIT_BYTES: u64 = 64 << 20;

/// Where an export or import is: reported after every chunk of rows; the
/// last report of each table has `rows_done == rows_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupProgress {
    /// The table being copied.
    pub table: String,
    /// Its rows copied so far.
    pub rows_done: u64,
    /// Its rows in all.
    pub rows_total: u64,
}

/// What an export wrote or an import restored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BackupSummary {
    /// Every table in the backup with its rows, in the backup's order.
    pub tables: Vec<(String, u64)>,
    /// Bytes of the backup stream.
    pub bytes: u64,
}

impl BackupSummary {
    /// The rows of `table` (0 if the backup has no such table).
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n)
    }
}

/// One row of one table: (table, key bytes, value bytes).
type RawRow = (String, Vec<u8>, Vec<u8>);

/// Something done to one table, whatever its key and value types.
trait TableVisitor {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        name: &'static str,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()>;
}

/// Calls `visitor` with the typed definition of the table `name`.
fn visit_table(name: &str, visitor: &mut impl TableVisitor) -> Result<()> {
    match name {
        "meta" => visitor.visit("meta", META),
        "spaces" => visitor.visit("spaces", SPACES),
        "vectors" => visitor.visit("vectors", VECTORS),
        "changes" => visitor.visit("changes", CHANGES),
        "blocks" => visitor.visit("blocks", BLOCKS),
        "block_names" => visitor.visit("block_names", BLOCK_NAMES),
        "audit" => visitor.visit("audit", AUDIT),
        "messages" => visitor.visit("messages", MESSAGES),
        "settled" => visitor.visit("settled", SETTLED),
        "catalog" => visitor.visit("catalog", CATALOG),
        "tombstones" => visitor.visit("tombstones", TOMBSTONES),
        other => Err(StorageError::Corrupt(format!(
            "table {other:?} is unknown to this build"
        ))),
    }
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("backup: {what}"))
}

fn io(e: std::io::Error) -> StorageError {
    StorageError::Io(e.to_string())
}

/// The output side: counts and checksums every byte written.
struct Sink<'a> {
    out: &'a mut dyn Write,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl Sink<'_> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).map_err(io)?;
        self.crc.update(b);
        self.bytes += b.len() as u64;
        Ok(())
    }

    fn put_name(&mut self, name: &str) -> Result<()> {
        self.put(&(name.len() as u16).to_le_bytes())?;
        self.put(name.as_bytes())
    }
}

/// The input side: counts and checksums every byte read; the end of the
/// input where more is due is [`StorageError::Corrupt`].
struct Source<R> {
    input: R,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<R: Read> Source<R> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0; N];
        self.input
            .read_exact(&mut buf)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => corrupt("truncated"),
                _ => io(e),
            })?;
        self.crc.update(&buf);
        self.bytes += N as u64;
        Ok(buf)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    /// `len` bytes, allocated as they arrive (a bogus length on a short
    /// input costs no more memory than the input has).
    fn take_vec(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        (&mut self.input)
            .take(len as u64)
            .read_to_end(&mut v)
            .map_err(io)?;
        if v.len() < len {
            return Err(corrupt("truncated"));
        }
        self.crc.update(&v);
        self.bytes += len as u64;
        Ok(v)
    }

    fn name(&mut self) -> Result<String> {
        let len = self.u16()? as usize;
        if len > MAX_NAME {
            return Err(corrupt(format!("a table name of {len} bytes")));
        }
        String::from_utf8(self.take_vec(len)?).map_err(|_| corrupt("a table name is not UTF-8"))
    }
}

/// Writes one table: its header, its rows in chunks, its end.
struct Exporter<'s, 'a> {
    txn: &'s ReadTransaction,
    sink: &'s mut Sink<'a>,
    progress: &'s mut dyn FnMut(BackupProgress),
    written: Vec<(String, u64)>,
}

impl TableVisitor for Exporter<'_, '_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        name: &'static str,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()> {
        let table = match self.txn.open_table(def) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let total = table.as_ref().map_or(Ok(0), |t| t.len())?;
        self.sink.put(b"T")?;
        self.sink.put_name(name)?;
        self.sink.put(&total.to_le_bytes())?;
        let mut chunk = Vec::with_capacity(CHUNK_BYTES + 64);
        let (mut in_chunk, mut done) = (0u32, 0u64);
        let mut reported = false;
        if let Some(t) = &table {
            for row in t.iter()? {
                let (k, v) = row?;
                let (k, v) = (k.value(), v.value());
                let (kb, vb) = (K::as_bytes(&k), V::as_bytes(&v));
                let (kb, vb) = (kb.as_ref(), vb.as_ref());
                let row_len = 8 + kb.len() + vb.len();
                if row_len > MAX_CHUNK_BYTES as usize {
                    return Err(StorageError::Io(format!(
                        "a row of {name} is {row_len} bytes, more than a backup chunk holds"
                    )));
                }
                if in_chunk > 0 && chunk.len() + row_len > CHUNK_BYTES {
                    done += u64::from(in_chunk);
                    self.flush(&mut chunk, &mut in_chunk)?;
                    self.report(name, done, total);
                    reported = true;
                }
                chunk.extend_from_slice(&(kb.len() as u32).to_le_bytes());
                chunk.extend_from_slice(kb);
                chunk.extend_from_slice(&(vb.len() as u32).to_le_bytes());
                chunk.extend_from_slice(vb);
                in_chunk += 1;
            }
        }
        if in_chunk > 0 {
            done += u64::from(in_chunk);
            self.flush(&mut chunk, &mut in_chunk)?;
            self.report(name, done, total);
            reported = true;
        }
        if done != total {
            return Err(StorageError::Io(format!(
                "table {name} reported {total} rows but held {done}"
            )));
        }
        if !reported {
            self.report(name, 0, 0);
        }
        self.sink.put(&0u32.to_le_bytes())?;
        self.written.push((name.to_string(), total));
        Ok(())
    }
}

impl Exporter<'_, '_> {
    fn flush(&mut self, chunk: &mut Vec<u8>, rows: &mut u32) -> Result<()> {
        self.sink.put(&rows.to_le_bytes())?;
        self.sink.put(&(chunk.len() as u32).to_le_bytes())?;
        self.sink.put(chunk)?;
        self.sink.put(&crc32fast::hash(chunk).to_le_bytes())?;
        chunk.clear();
        *rows = 0;
        Ok(())
    }

    fn report(&mut self, table: &str, rows_done: u64, rows_total: u64) {
        (self.progress)(BackupProgress {
            table: table.to_string(),
            rows_done,
            rows_total,
        });
    }
}

/// Decodes `bytes` as a `T`, refusing anything that does not encode back
/// to exactly the same bytes. redb's decoders assume well-formed input
/// and panic on other; chunk CRCs keep damaged bytes away from them, and
/// the guard turns a crafted stream's panic into [`StorageError::Corrupt`].
fn exact<'a, T: Value + 'a>(bytes: &'a [u8], table: &str) -> Result<T::SelfType<'a>> {
    let bad = || corrupt(format!("a malformed row in table {table}"));
    if T::fixed_width().is_some_and(|w| w != bytes.len()) {
        return Err(bad());
    }
    let v = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::from_bytes(bytes)))
        .map_err(|_| bad())?;
    if T::as_bytes(&v).as_ref() != bytes {
        return Err(bad());
    }
    Ok(v)
}

/// Writes one chunk's rows into a table of the new database.
struct Importer<'s> {
    txn: &'s WriteTransaction,
    rows: &'s [(&'s [u8], &'s [u8])],
}

impl TableVisitor for Importer<'_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        name: &'static str,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()> {
        let mut table = self.txn.open_table(def)?;
        for (k, v) in self.rows {
            let (k, v) = (exact::<K>(k, name)?, exact::<V>(v, name)?);
            if table.insert(k, v)?.is_some() {
                return Err(corrupt(format!("a key repeated in table {name}")));
            }
        }
        Ok(())
    }
}

/// Creates every table (empty) in a write transaction.
struct Creator<'s>(&'s WriteTransaction);

impl TableVisitor for Creator<'_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        _: &'static str,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()> {
        self.0.open_table(def)?;
        Ok(())
    }
}

/// Reads every row of every table.
struct Dumper<'s> {
    txn: &'s ReadTransaction,
    rows: Vec<RawRow>,
    counts: Vec<(String, u64)>,
    with_rows: bool,
}

impl TableVisitor for Dumper<'_> {
    fn visit<K: Key + 'static, V: Value + 'static>(
        &mut self,
        name: &'static str,
        def: TableDefinition<'static, K, V>,
    ) -> Result<()> {
        let table = match self.txn.open_table(def) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                self.counts.push((name.to_string(), 0));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        self.counts.push((name.to_string(), table.len()?));
        if self.with_rows {
            for row in table.iter()? {
                let (k, v) = row?;
                let (k, v) = (k.value(), v.value());
                self.rows.push((
                    name.to_string(),
                    K::as_bytes(&k).as_ref().to_vec(),
                    V::as_bytes(&v).as_ref().to_vec(),
                ));
            }
        }
        Ok(())
    }
}

/// The rows of one chunk's payload, checked to fill it exactly.
fn split_rows(payload: &[u8], count: u32) -> Result<Vec<(&[u8], &[u8])>> {
    fn field<'p>(rest: &mut &'p [u8]) -> Result<&'p [u8]> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("a row overruns its chunk"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return Err(corrupt("a row overruns its chunk"));
        }
        let (f, tail) = tail.split_at(len);
        *rest = tail;
        Ok(f)
    }
    let mut rest = payload;
    let mut rows = Vec::new();
    for _ in 0..count {
        let k = field(&mut rest)?;
        let v = field(&mut rest)?;
        rows.push((k, v));
    }
    if !rest.is_empty() {
        return Err(corrupt("a chunk holds more than its rows"));
    }
    Ok(rows)
}

impl Store {
    /// Writes a backup of the whole store to `out`: every table, from one
    /// read transaction (a consistent snapshot; writes go on meanwhile),
    /// each row as redb's exact key and value bytes, checksummed
    /// (the format is in `docs/STORAGE.md`, "Backups"). `progress` hears
    /// after every chunk of rows.
    ///
    /// At [`Durability::Memory`] messages and settlements live outside the
    /// database and are not in the backup: it holds namespaces, vectors,
    /// blocks, the change feed, the audit log and the catalog.
    ///
    /// Refuses (with [`StorageError::Corrupt`]) a database holding a table
    /// this build does not know, rather than leave it out.
    pub fn export(
        &self,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(BackupProgress),
    ) -> Result<BackupSummary> {
        contain("exporting a backup", || {
            let txn = self.shared.begin_read()?;
            for t in txn.list_tables()? {
                if !TABLES.contains(&t.name()) {
                    return Err(StorageError::Corrupt(format!(
                        "the database holds table {:?}, unknown to this build's backup",
                        t.name()
                    )));
                }
            }
            if let Some(t) = txn.list_multimap_tables()?.next() {
                return Err(StorageError::Corrupt(format!(
                    "the database holds multimap table {:?}, unknown to this build's backup",
                    t.name()
                )));
            }
            let format = match txn.open_table(META) {
                Ok(t) => t.get("format_version")?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            }
            .unwrap_or(FORMAT_VERSION);
            let mut sink = Sink {
                out,
                crc: crc32fast::Hasher::new(),
                bytes: 0,
            };
            sink.put(MAGIC)?;
            sink.put(&BACKUP_FORMAT.to_le_bytes())?;
            sink.put(&format.to_le_bytes())?;
            sink.put(&(TABLES.len() as u32).to_le_bytes())?;
            let mut exporter = Exporter {
                txn: &txn,
                sink: &mut sink,
                progress,
                written: Vec::new(),
            };
            for name in TABLES {
                visit_table(name, &mut exporter)?;
            }
            let tables = exporter.written;
            sink.put(b"E")?;
            sink.put(&(tables.len() as u32).to_le_bytes())?;
            for (name, rows) in &tables {
                sink.put_name(name)?;
                sink.put(&rows.to_le_bytes())?;
            }
            let crc = sink.crc.clone().finalize();
            sink.put(&crc.to_le_bytes())?;
            sink.out.flush().map_err(io)?;
            Ok(BackupSummary {
                tables,
                bytes: sink.bytes,
            })
        })
    }

    /// Makes a new database at `config.path` from a backup written by
    /// [`Store::export`] ([`restore_backup`]), then opens it as [`Store::open`]
    /// does, rebuilding the indexes from the rows.
    ///
    /// The target needs a file: `config.durability` must be
    /// [`Durability::Buffered`] or [`Durability::Sync`] (else
    /// [`StorageError::Io`], and nothing is read).
    pub fn import(
        config: StoreConfig,
        input: &mut dyn Read,
        progress: &mut dyn FnMut(BackupProgress),
    ) -> Result<(Store, BackupSummary)> {
        let path = match (&config.durability, &config.path) {
            (Durability::Memory, _) => {
                return Err(StorageError::Io(
                    "an import writes a file: use buffered or sync durability".into(),
                ));
            }
            (_, None) => return Err(StorageError::Io("an import needs a path".into())),
            (_, Some(p)) => p.clone(),
        };
        let summary = restore_backup(&path, input, progress)?;
        let store = Store::open(config)?;
        Ok((store, summary))
    }

    /// Rows of every table, from one read transaction, in the order a
    /// backup holds them. Cheap: no row is read.
    pub fn table_rows(&self) -> Result<Vec<(String, u64)>> {
        contain("counting rows", || {
            let txn = self.shared.begin_read()?;
            let mut d = Dumper {
                txn: &txn,
                rows: Vec::new(),
                counts: Vec::new(),
                with_rows: false,
            };
            for name in TABLES {
                visit_table(name, &mut d)?;
            }
            Ok(d.counts)
        })
    }

    /// Every row of every table as `(table, key bytes, value bytes)`,
    /// sorted: for tests that compare two stores row for row.
    #[doc(hidden)]
    pub fn raw_rows(&self) -> Result<Vec<RawRow>> {
        contain("reading every row", || {
            let txn = self.shared.begin_read()?;
            let mut d = Dumper {
                txn: &txn,
                rows: Vec::new(),
                counts: Vec::new(),
                with_rows: true,
            };
            for name in TABLES {
                visit_table(name, &mut d)?;
            }
            d.rows.sort();
            Ok(d.rows)
        })
    }
}

/// Writes a new database file at `path` from a backup written by
/// [`Store::export`], without opening it (no index is built: see
/// [`Store::import`] for both steps).
///
/// The database is written to a temporary file beside `path` and moved
/// into place only once the whole backup has been read and every checksum
/// verified: a truncated, damaged or foreign backup is
/// [`StorageError::Corrupt`] and leaves nothing at `path`. A non-empty file
/// at `path` is [`StorageError::DatabaseExists`] (an empty one is
/// replaced). A backup of a newer store format is
/// [`StorageError::NewerFormat`].
pub fn restore_backup(
    path: &Path,
    input: &mut dyn Read,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<BackupSummary> {
    refuse_existing(path)?;
    let temp = TempDb::create(path)?;
    let summary = contain("importing a backup", || {
        let file = temp.file()?;
        write_database(file, &mut BufReader::new(input), progress)
    })?;
    temp.persist(path)?;
    Ok(summary)
}

/// [`StorageError::DatabaseExists`] if a non-empty file is at `path`; an
/// empty one (a database never written) is removed.
fn refuse_existing(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > 0 || !m.is_file() => {
            Err(StorageError::DatabaseExists(path.display().to_string()))
        }
        Ok(_) => std::fs::remove_file(path).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// The file an import writes, beside its target; removed unless persisted.
struct TempDb {
    path: PathBuf,
    file: Option<File>,
    kept: bool,
}

impl TempDb {
    fn create(target: &Path) -> Result<TempDb> {
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "hvs.redb".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = dir.join(format!(".{name}.import-{}-{nanos}.tmp", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io)?;
        Ok(TempDb {
            path,
            file: Some(file),
            kept: false,
        })
    }

    fn file(&self) -> Result<File> {
        self.file
            .as_ref()
            .ok_or_else(|| StorageError::Io("the import file is gone".into()))?
            .try_clone()
            .map_err(io)
    }

    /// Moves the file to `target`, never over an existing file.
    fn persist(mut self, target: &Path) -> Result<()> {
        self.file.take();
        // A hard link refuses an existing target atomically; where links
        // are not supported, a rename after a last check.
        match std::fs::hard_link(&self.path, target) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StorageError::DatabaseExists(target.display().to_string()));
            }
            Err(_) => {
                refuse_existing(target)?;
                std::fs::rename(&self.path, target).map_err(io)?;
                self.kept = true;
            }
        }
        if !self.kept {
            std::fs::remove_file(&self.path).map_err(io)?;
            self.kept = true;
        }
        // The new name is durable only once its directory is.
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if !self.kept {
            self.file.take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reads a whole backup from `input` into a new database in `file`.
fn write_database(
    file: File,
    input: &mut impl Read,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<BackupSummary> {
    let mut src = Source {
        input,
        crc: crc32fast::Hasher::new(),
        bytes: 0,
    };
    let magic: [u8; 9] = src.take().map_err(|_| corrupt("not an HVS backup"))?;
    if &magic != MAGIC {
        return Err(corrupt("not an HVS backup"));
    }
    let version = src.u32()?;
    if version != BACKUP_FORMAT {
        return Err(corrupt(format!(
            "backup format {version}, this build reads {BACKUP_FORMAT}"
        )));
    }
    let format = src.u64()?;
    if format > FORMAT_VERSION {
        return Err(StorageError::NewerFormat {
            found: format.min(u64::from(u32::MAX)) as u32,
            supported: FORMAT_VERSION as u32,
        });
    }
    let count = src.u32()?;
    if count as usize > TABLES.len() {
        return Err(corrupt(format!("{count} tables")));
    }
    let db = Database::builder().create_with_backend(redb::backends::FileBackend::new(file)?)?;
    // Each transaction is committed durably (one fsync per COMMIT_BYTES):
    // non-durable commits would keep their pages pending until a durable
    // one, and a failed import is deleted anyway.
    let mut txn = db.begin_write()?;
    // Every table exists in the new file, even one the backup lacks (an
    // older store's), as `Store::open` would make it.
    for name in TABLES {
        visit_table(name, &mut Creator(&txn))?;
    }
    let mut tables: Vec<(String, u64)> = Vec::new();
    let mut pending = 0u64;
    for _ in 0..count {
        if src.u8()? != b'T' {
            return Err(corrupt("a table header is missing"));
        }
        let name = src.name()?;
        if !TABLES.contains(&name.as_str()) {
            return Err(corrupt(format!("table {name:?} is unknown to this build")));
        }
        if tables.iter().any(|(t, _)| *t == name) {
            return Err(corrupt(format!("table {name:?} appears twice")));
        }
        let total = src.u64()?;
        let mut done = 0u64;
        let mut reported = false;
        loop {
            let rows = src.u32()?;
            if rows == 0 {
                break;
            }
            let len = src.u32()?;
            if len > MAX_CHUNK_BYTES {
                return Err(corrupt(format!("a chunk of {len} bytes")));
            }
            let payload = src.take_vec(len as usize)?;
            let crc = src.u32()?;
            if crc32fast::hash(&payload) != crc {
                return Err(corrupt(format!(
                    "a chunk of table {name} fails its checksum"
                )));
            }
            done += u64::from(rows);
            if done > total {
                return Err(corrupt(format!(
                    "table {name} holds more rows than it says"
                )));
            }
            let rows = split_rows(&payload, rows)?;
            visit_table(
                &name,
                &mut Importer {
                    txn: &txn,
                    rows: &rows,
                },
            )?;
            pending += u64::from(len);
            if pending >= COMMIT_BYTES {
                txn.commit()?;
                txn = db.begin_write()?;
                pending = 0;
            }
            progress(BackupProgress {
                table: name.clone(),
                rows_done: done,
                rows_total: total,
            });
            reported = true;
        }
        if done != total {
            return Err(corrupt(format!(
                "table {name} says {total} rows and holds {done}"
            )));
        }
        if !reported {
            progress(BackupProgress {
                table: name.clone(),
                rows_done: 0,
                rows_total: 0,
            });
        }
        tables.push((name, total));
    }
    if src.u8()? != b'E' {
        return Err(corrupt("the trailer is missing"));
    }
    if src.u32()? != count {
        return Err(corrupt("the trailer's table count differs"));
    }
    for (name, rows) in &tables {
        if src.name()? != *name || src.u64()? != *rows {
            return Err(corrupt("the trailer's row counts differ"));
        }
    }
    let computed = src.crc.clone().finalize();
    let bytes = src.bytes + 4;
    if src.u32()? != computed {
        return Err(corrupt("the checksum differs"));
    }
    let mut extra = [0u8; 1];
    if src.input.read(&mut extra).map_err(io)? != 0 {
        return Err(corrupt("data after the end"));
    }
    txn.commit()?;
    drop(db);
    Ok(BackupSummary { tables, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_has_exactly_the_tables_a_backup_knows() {
        let s = Store::open(StoreConfig::memory()).unwrap();
        let txn = s.shared.begin_read().unwrap();
        let mut names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        names.sort();
        let mut known: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
        known.sort();
        assert_eq!(names, known);
    }

    #[test]
    fn split_rows_refuses_overruns_and_leftovers() {
        let mut p = Vec::new();
        for f in [&b"k"[..], b"value"] {
            p.extend_from_slice(&(f.len() as u32).to_le_bytes());
            p.extend_from_slice(f);
        }
        assert_eq!(split_rows(&p, 1).unwrap(), vec![(&b"k"[..], &b"value"[..])]);
        assert!(split_rows(&p, 2).is_err());
        assert!(split_rows(&p, 0).is_err());
        p.truncate(p.len() - 1);
        assert!(split_rows(&p, 1).is_err());
    }

    /// A backup of `tables` with every checksum right, whatever the rows.
    type Rows = Vec<(Vec<u8>, Vec<u8>)>;

    fn craft(tables: &[(&str, Rows)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut sink = Sink {
            out: &mut out,
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        };
        sink.put(MAGIC).unwrap();
        sink.put(&BACKUP_FORMAT.to_le_bytes()).unwrap();
        sink.put(&FORMAT_VERSION.to_le_bytes()).unwrap();
        sink.put(&(tables.len() as u32).to_le_bytes()).unwrap();
        for (name, rows) in tables {
            sink.put(b"T").unwrap();
            sink.put_name(name).unwrap();
            sink.put(&(rows.len() as u64).to_le_bytes()).unwrap();
            let mut chunk = Vec::new();
            for (k, v) in rows {
                chunk.extend_from_slice(&(k.len() as u32).to_le_bytes());
                chunk.extend_from_slice(k);
                chunk.extend_from_slice(&(v.len() as u32).to_le_bytes());
                chunk.extend_from_slice(v);
            }
            if !rows.is_empty() {
                sink.put(&(rows.len() as u32).to_le_bytes()).unwrap();
                sink.put(&(chunk.len() as u32).to_le_bytes()).unwrap();
                sink.put(&chunk).unwrap();
                sink.put(&crc32fast::hash(&chunk).to_le_bytes()).unwrap();
            }
            sink.put(&0u32.to_le_bytes()).unwrap();
        }
        sink.put(b"E").unwrap();
        sink.put(&(tables.len() as u32).to_le_bytes()).unwrap();
        for (name, rows) in tables {
            sink.put_name(name).unwrap();
            sink.put(&(rows.len() as u64).to_le_bytes()).unwrap();
        }
        let crc = sink.crc.clone().finalize();
        sink.put(&crc.to_le_bytes()).unwrap();
        out
    }

    fn import_bytes(dir: &Path, bytes: &[u8]) -> Result<(Store, BackupSummary)> {
        Store::import(
            StoreConfig::file(dir.join("db"), Durability::Buffered),
            &mut &bytes[..],
            &mut |_| {},
        )
    }

    #[test]
    fn well_checksummed_but_malformed_rows_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let row = |k: &[u8], v: &[u8]| (k.to_vec(), v.to_vec());
        let cases = [
            (
                "a short key",
                vec![("vectors", vec![row(&[1, 2, 3], b"x")])],
            ),
            (
                "a key twice",
                vec![("catalog", vec![row(b"\x01ab", b"1"), row(b"\x01ab", b"2")])],
            ),
            (
                "a key not UTF-8",
                vec![("block_names", vec![row(&[0xff], &[0; 16])])],
            ),
            (
                "a short value",
                vec![("meta", vec![row(b"format_version", &[1])])],
            ),
            ("an unknown table", vec![("secrets", vec![])]),
            ("a table twice", vec![("meta", vec![]), ("meta", vec![])]),
        ];
        for (what, tables) in cases {
            let err = import_bytes(dir.path(), &craft(&tables)).err();
            assert!(
                matches!(err, Some(StorageError::Corrupt(_))),
                "{what}: {err:?}"
            );
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{what}");
        }
        // The same framing with good rows imports; missing tables are made.
        let (s, summary) = import_bytes(
            dir.path(),
            &craft(&[("catalog", vec![row(b"\x01ab", b"1")])]),
        )
        .unwrap();
        assert_eq!(summary.tables, vec![("catalog".to_string(), 1)]);
        assert_eq!(
            s.catalog_list("a").unwrap(),
            vec![("b".into(), b"1".to_vec())]
        );
        assert_eq!(s.table_rows().unwrap().len(), TABLES.len());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]
        #[test]
        fn arbitrary_rows_never_panic(
            table in proptest::sample::select(TABLES.to_vec()),
            rows in proptest::collection::vec(
                (proptest::collection::vec(proptest::num::u8::ANY, 0..24),
                 proptest::collection::vec(proptest::num::u8::ANY, 0..24)),
                0..4,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            // Any outcome but a panic: most are refused, some are rows.
            let _ = import_bytes(dir.path(), &craft(&[(table, rows)]));
        }
    }

    #[test]
    fn exact_refuses_bytes_that_do_not_round_trip() {
        assert!(exact::<u64>(&[1, 2, 3], "t").is_err());
        assert_eq!(exact::<u64>(&7u64.to_le_bytes(), "t").unwrap(), 7);
        assert!(exact::<u128>(&[0; 8], "t").is_err());
        assert_eq!(exact::<&str>(b"abc", "t").unwrap(), "abc");
    }
}
