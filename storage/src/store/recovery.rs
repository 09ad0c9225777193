//! The database handle, and what happens after the disk fails a commit:
//! writes are refused, reads go on, and the file is reopened for writes
//! once the disk takes them again.

use super::*;

/// How long a reopen waits for the reads in flight on the old handle.
const READERS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The first and the longest wait before the file is reopened for writes
/// again after the disk took a probe but then failed the reopen or the
/// next commit.
const BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(100);
const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// What the writer thread keeps between groups.
#[derive(Default)]
pub(super) struct WriterState {
    /// Set while writes are refused.
    pub(super) refusing: Option<Refusing>,
    /// How long to wait before the next direct reopen if this one fails
    /// again; zero after a commit.
    pub(super) backoff: std::time::Duration,
}

/// Why, and until when at least, writes are refused.
pub(super) struct Refusing {
    /// The disk's error, as the refused callers hear it.
    pub(super) reason: String,
    /// No direct reopen before this (the disk is probed at each group
    /// after it).
    retry_at: std::time::Instant,
    /// An overlay handle is in place, so reads go on.
    reads: bool,
}

impl Shared {
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
    pub(super) fn latched(&self) -> bool {
        self.db().map_or(true, |db| db.begin_write().is_err())
    }

    /// After the disk failed a commit: starts refusing writes, and reopens
    /// the file over an overlay so that reads go on (see `disk.rs`).
    /// Returns the last commit number the file holds, if it could be read.
    pub(super) fn recover(&self, reason: &str, state: &mut WriterState) -> Option<u64> {
        state.refusing = Some(Refusing {
            reason: reason.to_string(),
            retry_at: std::time::Instant::now() + state.backoff,
            reads: false,
        });
        *lock(&self.write_refusal) = Some(reason.to_string());
        state.backoff = (state.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.reopen_for_reads(state)
    }

    /// Reopens the file over an overlay, for reads while writes are
    /// refused; the last commit number it holds.
    pub(super) fn reopen_for_reads(&self, state: &mut WriterState) -> Option<u64> {
        self.reopen(true).ok()?;
        if let Some(r) = state.refusing.as_mut() {
            r.reads = true;
        }
        self.reload_positions().ok()
    }

    /// Whether writes may go to the file: `true` unless they are being
    /// refused and the disk still does not take them. Once it does, the
    /// file is reopened directly and writes resume.
    pub(super) fn writable(&self, state: &mut WriterState) -> bool {
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
            *lock(&self.write_refusal) = None;
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
    pub(super) fn reopen(&self, overlay: bool) -> Result<()> {
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
            crate::disk::open(
                path,
                self.faults.as_ref(),
                overlay,
                self.cache_bytes,
                &self.repaired,
            )
        })?;
        *slot = Some(Arc::new(db));
        Ok(())
    }

    /// Reads the change-feed and audit positions and the last commit
    /// number back from the file (a failed commit may have reached it);
    /// returns the commit number.
    pub(super) fn reload_positions(&self) -> Result<u64> {
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
}
