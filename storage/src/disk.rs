//! The database file under redb, and what the store does when the disk
//! refuses a write.
//!
//! redb latches the first I/O error of a file (`CheckedBackend::io_failed`
//! in redb 4.5): every later transaction of that `Database`, reads of pages
//! not in its cache included, fails with `PreviousIo` until it is reopened.
//! And a writable open itself writes (the header's recovery flag, a repair
//! after a failed commit), so while the disk refuses writes the file cannot
//! be reopened for writing. [`DiskBackend`] is the file seen two ways:
//!
//! - **direct**: redb's own file backend, every read and write on the file;
//! - **overlay**: reads come from the file, writes go to pages in memory and
//!   never reach it. A `Database` opened this way serves reads of the last
//!   commit while the disk refuses writes; the store lets no write
//!   transaction through it, and drops it (and its pages) once the disk
//!   takes writes again and the file is reopened directly.
//!
//! [`FaultSwitch`] makes the direct backend fail writes or syncs on demand,
//! for tests.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, Database, StorageBackend};

use crate::error::{Result, StorageError};
use crate::store::lock;

/// Makes the store's file fail writes or syncs on demand, as a full or
/// failing disk does: for tests of what the store does then
/// (`tests/disk_faults.rs`). Not part of the supported API.
///
/// Clones share one switch. Pass it in [`crate::StoreConfig::faults`].
#[doc(hidden)]
#[derive(Debug, Clone, Default)]
pub struct FaultSwitch(Arc<Faults>);

#[derive(Debug, Default)]
struct Faults {
    writes: AtomicBool,
    syncs: AtomicBool,
    stall: AtomicBool,
}

impl FaultSwitch {
    /// A switch that fails nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// While on, every write to the file and every growth of it fails with
    /// `ENOSPC` ("No space left on device"), as on a full disk.
    pub fn fail_writes(&self, on: bool) {
        self.0.writes.store(on, Ordering::SeqCst);
    }

    /// While on, every fsync of the file fails with `EIO`: the writes
    /// before it reach the file (the page cache) but are not known durable.
    pub fn fail_syncs(&self, on: bool) {
        self.0.syncs.store(on, Ordering::SeqCst);
    }

    /// While on, every fsync of the file waits (as on a disk that stopped
    /// answering): the writer thread is held in its commit, and what is
    /// handed to it queues up.
    pub fn stall_syncs(&self, on: bool) {
        self.0.stall.store(on, Ordering::SeqCst);
    }

    /// Turns every fault off.
    pub fn heal(&self) {
        self.fail_writes(false);
        self.fail_syncs(false);
        self.stall_syncs(false);
    }

    fn write_fault(&self) -> io::Result<()> {
        if self.0.writes.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(28)) // ENOSPC
        } else {
            Ok(())
        }
    }

    fn sync_fault(&self) -> io::Result<()> {
        while self.0.stall.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if self.0.syncs.load(Ordering::SeqCst) {
            Err(io::Error::from_raw_os_error(5)) // EIO
        } else {
            Ok(())
        }
    }
}

impl PartialEq for FaultSwitch {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// redb's page cache for a database file unless
/// [`crate::StoreConfig::cache_bytes`] sets one (redb's own default is
/// 1 GiB). The cache is part of the process's resident memory, and the
/// operating system's page cache holds the file besides: at 256 MiB a
/// server with 1,000,000 × 512-d vectors held 1,054 MiB less, messaging
/// was as fast, and searches over the wire (which read each hit's record)
/// answered 5 % fewer a second in one pair at 1,000,000 H^12 vectors
/// (docs/BENCHMARKS.md, "1 M × 512-d in `hvs serve`").
pub(crate) const FILE_CACHE_BYTES: usize = 256 << 20;

/// Opens the database file: directly, or (`overlay`) with its writes kept
/// in memory (see the module documentation). Sets `repaired` if redb had
/// to repair the file by walking all of it.
pub(crate) fn open(
    path: &Path,
    faults: Option<&FaultSwitch>,
    overlay: bool,
    cache_bytes: Option<usize>,
    repaired: &Arc<AtomicBool>,
) -> Result<Database> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(!overlay)
        .truncate(false)
        .open(path);
    // A file system remounted read-only after errors still reads.
    let opened = match opened {
        Err(_) if overlay => OpenOptions::new().read(true).open(path),
        other => other,
    };
    let file = opened.map_err(|e| StorageError::from(redb::DatabaseError::from(e)))?;
    let file = FileBackend::new(file)?;
    let overlay = if overlay {
        let len = file.len().map_err(|e| StorageError::Io(e.to_string()))?;
        Some(Mutex::new(Overlay {
            chunks: HashMap::new(),
            len,
            file_len: len,
            zero_from: len,
        }))
    } else {
        None
    };
    let backend = DiskBackend {
        file,
        faults: faults.cloned(),
        overlay,
    };
    let mut b = builder(Some(cache_bytes.unwrap_or(FILE_CACHE_BYTES)));
    let flag = repaired.clone();
    b.set_repair_callback(move |session| {
        // Called once before the walk (progress 0) and as it goes.
        if !flag.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                progress = session.progress(),
                "the database was not closed cleanly: repairing it (every page is read)"
            );
        }
    });
    Ok(b.create_with_backend(backend)?)
}

/// A database builder with the page cache [`crate::StoreConfig::cache_bytes`] asks for.
pub(crate) fn builder(cache_bytes: Option<usize>) -> redb::Builder {
    let mut b = Database::builder();
    if let Some(bytes) = cache_bytes {
        b.set_cache_size(bytes);
    }
    b
}

/// Whether the disk takes a write now: the fault switch, then a small file
/// beside the database written, synced and removed. A full disk refuses
/// it; a disk that takes it may still refuse a larger commit, which the
/// writer then retries later and later.
pub(crate) fn probe(path: &Path, faults: Option<&FaultSwitch>) -> io::Result<()> {
    if let Some(f) = faults {
        f.write_fault()?;
        f.sync_fault()?;
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".probe");
    let probe = PathBuf::from(name);
    let written = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&probe)?;
        f.write_all(&[0u8; 4096])?;
        f.sync_data()
    })();
    let _ = std::fs::remove_file(&probe);
    match written {
        // A directory the store may not create files in says nothing of
        // the disk: let the reopen try.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Ok(()),
        other => other,
    }
}

/// The database file under redb (see the module documentation).
#[derive(Debug)]
struct DiskBackend {
    file: FileBackend,
    faults: Option<FaultSwitch>,
    overlay: Option<Mutex<Overlay>>,
}

/// Pages of the overlay.
const CHUNK: u64 = 4096;

/// Writes kept in memory over a file that is not written.
struct Overlay {
    /// Written chunks, by index (`offset / CHUNK`), each `CHUNK` bytes.
    chunks: HashMap<u64, Box<[u8]>>,
    /// The length redb sees.
    len: u64,
    /// The file's length (it does not change).
    file_len: u64,
    /// File bytes at or past this offset read as zeros: the overlay was
    /// shrunk below them.
    zero_from: u64,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("chunks", &self.chunks.len())
            .field("len", &self.len)
            .finish()
    }
}

impl Overlay {
    /// Bytes of the file under the overlay, from `offset`.
    fn read_base(&self, file: &FileBackend, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = offset + out.len() as u64;
        let limit = self.zero_from.min(self.file_len).min(end);
        let from_file = limit.saturating_sub(offset) as usize;
        if from_file > 0 {
            file.read(offset, &mut out[..from_file])?;
        }
        out[from_file..].fill(0);
        Ok(())
    }

    fn read(&self, file: &FileBackend, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|e| *e <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        let mut at = offset;
        while at < end {
            let c = at / CHUNK;
            let stop = end.min((c + 1) * CHUNK);
            let dst = &mut out[(at - offset) as usize..(stop - offset) as usize];
            match self.chunks.get(&c) {
                Some(chunk) => {
                    let from = (at - c * CHUNK) as usize;
                    dst.copy_from_slice(&chunk[from..from + dst.len()]);
                }
                None => self.read_base(file, at, dst)?,
            }
            at = stop;
        }
        Ok(())
    }

    fn write(&mut self, file: &FileBackend, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past u64"))?;
        let mut at = offset;
        while at < end {
            let c = at / CHUNK;
            let stop = end.min((c + 1) * CHUNK);
            let mut chunk = match self.chunks.remove(&c) {
                Some(chunk) => chunk,
                None => {
                    let mut chunk = vec![0u8; CHUNK as usize].into_boxed_slice();
                    self.read_base(file, c * CHUNK, &mut chunk)?;
                    chunk
                }
            };
            let from = (at - c * CHUNK) as usize;
            let src = &data[(at - offset) as usize..(stop - offset) as usize];
            chunk[from..from + src.len()].copy_from_slice(src);
            self.chunks.insert(c, chunk);
            at = stop;
        }
        self.len = self.len.max(end);
        Ok(())
    }

    fn set_len(&mut self, len: u64) {
        if len < self.len {
            self.chunks.retain(|c, _| c * CHUNK < len);
            if let Some(chunk) = self.chunks.get_mut(&(len / CHUNK)) {
                chunk[(len % CHUNK) as usize..].fill(0);
            }
            self.zero_from = self.zero_from.min(len);
        }
        self.len = len;
    }
}

impl StorageBackend for DiskBackend {
    fn len(&self) -> io::Result<u64> {
        match &self.overlay {
            Some(o) => Ok(lock(o).len),
            None => self.file.len(),
        }
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        match &self.overlay {
            Some(o) => lock(o).read(&self.file, offset, out),
            None => self.file.read(offset, out),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        match &self.overlay {
            Some(o) => {
                lock(o).set_len(len);
                Ok(())
            }
            None => {
                if let Some(f) = &self.faults
                    && len > self.file.len()?
                {
                    f.write_fault()?;
                }
                self.file.set_len(len)
            }
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        match &self.overlay {
            Some(_) => Ok(()),
            None => {
                if let Some(f) = &self.faults {
                    f.sync_fault()?;
                }
                self.file.sync_data()
            }
        }
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        match &self.overlay {
            Some(o) => lock(o).write(&self.file, offset, data),
            None => {
                if let Some(f) = &self.faults {
                    f.write_fault()?;
                }
                self.file.write(offset, data)
            }
        }
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The overlay reads like a file written in place, and leaves the file
    /// as it was.
    #[test]
    fn the_overlay_reads_its_writes_over_an_untouched_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let base: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &base).unwrap();
        let file = FileBackend::new(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap(),
        )
        .unwrap();
        let len = base.len() as u64;
        let backend = DiskBackend {
            file,
            faults: None,
            overlay: Some(Mutex::new(Overlay {
                chunks: HashMap::new(),
                len,
                file_len: len,
                zero_from: len,
            })),
        };
        let mut model = base.clone();
        let check = |b: &DiskBackend, model: &[u8]| {
            assert_eq!(b.len().unwrap(), model.len() as u64);
            let mut all = vec![0u8; model.len()];
            b.read(0, &mut all).unwrap();
            assert_eq!(&all, model);
            let mut part = vec![0u8; 5000.min(model.len() - 3000)];
            b.read(3000, &mut part).unwrap();
            assert_eq!(&part[..], &model[3000..3000 + part.len()]);
        };
        backend.write(4090, &[7u8; 20]).unwrap();
        model[4090..4110].fill(7);
        check(&backend, &model);
        backend.set_len(6000).unwrap();
        model.truncate(6000);
        check(&backend, &model);
        backend.set_len(12_000).unwrap();
        model.resize(12_000, 0);
        check(&backend, &model);
        backend.write(11_000, &[9u8; 1000]).unwrap();
        model[11_000..12_000].fill(9);
        check(&backend, &model);
        backend.write(12_000, &[1u8; 10]).unwrap();
        model.extend([1u8; 10]);
        check(&backend, &model);
        let mut past = [0u8; 2];
        assert!(backend.read(12_009, &mut past).is_err());
        backend.sync_data().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), base);
    }
}
