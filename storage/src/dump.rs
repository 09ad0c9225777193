//! Graph dumps: a space's HNSW graph saved next to the database so that
//! reopening loads it instead of rebuilding it.
//!
//! A dump is only ever a cache. Its file is framed and checksummed, and on
//! load every vector it claims is compared, bit for bit, with the record in
//! redb (see `SpaceIndex::load_dump`); what does not match goes back through
//! the fresh buffer. A missing, damaged, foreign or stale dump therefore
//! costs time, never correctness.
//!
//! File layout (integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | g | the usearch graph, as `Index::save` wrote it |
//! | m | metadata, msgpack ([`DumpMeta`]) |
//! | 8 | `g` |
//! | 8 | `m` |
//! | 4 | CRC-32 of the `g + m` bytes before |
//! | 4 | dump format version |
//! | 8 | magic `HVSGRAPH` |
//!
//! The graph comes first so that it never has to be held in memory whole
//! (a graph of 1,000,000 × 512-d vectors is 1.6 GB): usearch writes it to
//! the file itself, the checksum is computed by reading it back in pieces,
//! and `Index::load` reads it from the start of the file and stops at its
//! end.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Result, StorageError};

const MAGIC: &[u8; 8] = b"HVSGRAPH";
/// 2: the graph first, the metadata after it (1 put a header and the
/// metadata first, and was written and read through one buffer in memory);
/// a dump of another version is not used (the graph is rebuilt once).
const DUMP_VERSION: u32 = 2;
const TRAILER: u64 = 8 + 8 + 4 + 4 + 8;
/// The piece of a graph read at a time for its checksum.
const CHUNK: usize = 1 << 20;

/// What a dump holds besides the graph.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DumpMeta {
    /// The namespace the graph belongs to.
    pub(crate) namespace: String,
    /// The manifold and HNSW parameters the graph was built with; a dump
    /// whose fingerprint differs from the space's is not used.
    pub(crate) fingerprint: String,
    /// The vector each graph key stood for when the dump was written.
    pub(crate) keys: Vec<(Uuid, u64)>,
    /// Keys that were unreachable by their own vector.
    pub(crate) unreachable: Vec<u64>,
    /// `(key, its anchor)` of the unreachable keys attached to one (absent
    /// from dumps written before anchors: those load loose).
    #[serde(default)]
    pub(crate) anchors: Vec<(u64, u64)>,
}

/// A checked dump: its metadata, and the file whose start is the graph
/// (for `Index::load`; graphs run to gigabytes and are not read here).
pub(crate) struct Dump {
    pub(crate) meta: DumpMeta,
    path: PathBuf,
}

impl Dump {
    /// The dump's file, which begins with the usearch graph.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// The folder of a database's graph dumps: `<database file>.graphs`.
pub(crate) fn dir_of(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".graphs");
    PathBuf::from(s)
}

/// The dump file of a namespace. Names may hold any characters and be long,
/// so the file is named by a hash; the name inside the dump is checked.
pub(crate) fn file_of(dir: &Path, namespace: &str) -> PathBuf {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in namespace.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    dir.join(format!("{h:016x}.graph"))
}

/// Removes the dumps in `dir` of namespaces not in `names` (best effort):
/// those of a namespace deleted just before a crash, or saved by a
/// `save_index` racing its deletion. They would only cost disk: a dump is
/// checked against the database before it is used.
pub(crate) fn remove_stale(dir: &Path, names: impl Iterator<Item = impl AsRef<str>>) {
    let keep: std::collections::HashSet<PathBuf> =
        names.map(|n| file_of(dir, n.as_ref())).collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_some_and(|x| x == "graph") && !keep.contains(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> StorageError + '_ {
    move |e| StorageError::Io(format!("{}: {e}", path.display()))
}

/// Where the graph of the dump `path` is written before [`finish`] makes it
/// a dump (its folder created).
pub(crate) fn start(path: &Path) -> Result<PathBuf> {
    let dir = path
        .parent()
        .ok_or_else(|| StorageError::Io(format!("{}: no parent folder", path.display())))?;
    std::fs::create_dir_all(dir).map_err(io_err(path))?;
    Ok(temp_of(path))
}

/// The file a dump is written as before it is renamed to `path`.
fn temp_of(path: &Path) -> PathBuf {
    path.with_extension("graph.tmp")
}

/// `path` as usearch takes a path: UTF-8, else an error (the dump is then
/// not written, or not loaded, and the graph rebuilt).
pub(crate) fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| StorageError::Io(format!("{}: not UTF-8", path.display())))
}

/// Feeds the next `len` bytes of `file` to `crc`, a piece at a time.
fn checksum(file: &mut File, mut len: u64, crc: &mut crc32fast::Hasher) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    while len > 0 {
        let n = usize::try_from(len).map_or(CHUNK, |l| l.min(CHUNK));
        file.read_exact(&mut buf[..n])?;
        crc.update(&buf[..n]);
        len -= n as u64;
    }
    Ok(())
}

/// Makes the graph that `Index::save` wrote to [`start`]'s file a dump:
/// appends `meta` and the trailer, then replaces `path` atomically (fsync,
/// rename, fsync of the folder). A crash leaves either the old dump or the
/// new one.
pub(crate) fn finish(path: &Path, meta: &DumpMeta) -> Result<()> {
    let io = io_err(path);
    let tmp = temp_of(path);
    let meta = rmp_serde::to_vec_named(meta).map_err(|e| StorageError::Io(e.to_string()))?;
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .open(&tmp)
        .map_err(&io)?;
    let graph_len = f.metadata().map_err(&io)?.len();
    let mut crc = crc32fast::Hasher::new();
    checksum(&mut f, graph_len, &mut crc).map_err(&io)?;
    crc.update(&meta);
    let meta_len = meta.len() as u64;
    let mut tail = meta;
    tail.extend_from_slice(&graph_len.to_le_bytes());
    tail.extend_from_slice(&meta_len.to_le_bytes());
    tail.extend_from_slice(&crc.finalize().to_le_bytes());
    tail.extend_from_slice(&DUMP_VERSION.to_le_bytes());
    tail.extend_from_slice(MAGIC);
    f.write_all(&tail).map_err(&io)?;
    f.sync_all().map_err(&io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(&io)?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(&io)?;
    }
    Ok(())
}

/// Reads and checks a dump: `Ok(None)` if there is none, an error if it is
/// damaged or of another version (the caller rebuilds instead). The graph
/// is checksummed a piece at a time and left in the file.
pub(crate) fn read(path: &Path) -> Result<Option<Dump>> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let io = io_err(path);
    let bad = |why: &str| StorageError::Corrupt(format!("graph dump {}: {why}", path.display()));
    let len = f.metadata().map_err(&io)?.len();
    if len < TRAILER {
        return Err(bad("not a graph dump"));
    }
    let mut trailer = [0u8; TRAILER as usize];
    f.seek(SeekFrom::Start(len - TRAILER)).map_err(&io)?;
    f.read_exact(&mut trailer).map_err(&io)?;
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&trailer[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let u32_at = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&trailer[at..at + 4]);
        u32::from_le_bytes(b)
    };
    if &trailer[24..] != MAGIC {
        return Err(bad("not a graph dump"));
    }
    if u32_at(20) != DUMP_VERSION {
        return Err(bad("another dump version"));
    }
    let (graph_len, meta_len) = (u64_at(0), u64_at(8));
    if graph_len
        .checked_add(meta_len)
        .and_then(|b| b.checked_add(TRAILER))
        != Some(len)
    {
        return Err(bad("lengths do not add up to the file's"));
    }
    f.seek(SeekFrom::Start(0)).map_err(&io)?;
    let mut crc = crc32fast::Hasher::new();
    checksum(&mut f, graph_len, &mut crc).map_err(&io)?;
    let mut meta = vec![0u8; usize::try_from(meta_len).map_err(|_| bad("length"))?];
    f.read_exact(&mut meta).map_err(&io)?;
    crc.update(&meta);
    if crc.finalize() != u32_at(16) {
        return Err(bad("checksum mismatch"));
    }
    let meta: DumpMeta = rmp_serde::from_slice(&meta).map_err(|e| bad(&e.to_string()))?;
    Ok(Some(Dump {
        meta,
        path: path.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> DumpMeta {
        DumpMeta {
            namespace: "n".into(),
            fingerprint: "f".into(),
            keys: vec![(Uuid::now_v7(), 3)],
            unreachable: vec![3, 4],
            anchors: vec![(3, 5)],
        }
    }

    #[test]
    fn round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_of(&dir.path().join("graphs"), "space");
        assert!(read(&path).unwrap().is_none());
        let written = meta();
        std::fs::write(start(&path).unwrap(), b"graph bytes").unwrap();
        finish(&path, &written).unwrap();
        let d = read(&path).unwrap().unwrap();
        assert_eq!(d.meta.keys, written.keys);
        assert_eq!(d.meta.unreachable, vec![3, 4]);
        assert_eq!(d.meta.anchors, vec![(3, 5)]);
        assert_eq!(d.meta.namespace, "n");
        // The graph is where `Index::load` reads it: from the file's start.
        let mut bytes = std::fs::read(d.path()).unwrap();
        assert!(bytes.starts_with(b"graph bytes"));
        let n = bytes.len();
        // The graph, the metadata, both lengths, the checksum, the version,
        // the magic.
        for at in [0, 10, 11, 20, n - 32, n - 24, n - 16, n - 12, n - 8, n - 1] {
            bytes[at] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            assert!(read(&path).is_err(), "flipping byte {at} went unnoticed");
            bytes[at] ^= 0x40;
        }
        for cut in [n / 2, n - 1, 3] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(read(&path).is_err(), "cut at {cut} went unnoticed");
        }
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(&path).unwrap().is_some());
    }
}
