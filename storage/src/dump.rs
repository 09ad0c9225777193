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
//! | 8 | magic `HVSGRAPH` |
//! | 4 | dump format version |
//! | 4 | CRC-32 of everything after this header |
//! | 8 | length `m` of the metadata |
//! | m | metadata, msgpack ([`DumpMeta`]) |
//! | rest | the usearch graph, as `Index::save_to_buffer` wrote it |

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Result, StorageError};

const MAGIC: &[u8; 8] = b"HVSGRAPH";
const DUMP_VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 4 + 8;

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

/// A dump as read from its file: the metadata, and the graph's bytes left in
/// the file's buffer (graphs run to hundreds of MB; they are not copied).
pub(crate) struct Dump {
    pub(crate) meta: DumpMeta,
    bytes: Vec<u8>,
    graph_at: usize,
}

impl Dump {
    /// The usearch graph, as `Index::save_to_buffer` wrote it.
    pub(crate) fn graph(&self) -> &[u8] {
        &self.bytes[self.graph_at..]
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

/// Writes a dump atomically: a temporary file, fsync, rename, fsync of the
/// folder. A crash leaves either the old dump or the new one.
pub(crate) fn write(path: &Path, meta: &DumpMeta, graph: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| StorageError::Io(format!("{}: {e}", path.display()));
    let meta = rmp_serde::to_vec_named(meta).map_err(|e| StorageError::Io(e.to_string()))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&(meta.len() as u64).to_le_bytes());
    crc.update(&meta);
    crc.update(graph);
    let dir = path
        .parent()
        .ok_or_else(|| StorageError::Io(format!("{}: no parent folder", path.display())))?;
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("graph.tmp");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
        f.write_all(MAGIC).map_err(io)?;
        f.write_all(&DUMP_VERSION.to_le_bytes()).map_err(io)?;
        f.write_all(&crc.finalize().to_le_bytes()).map_err(io)?;
        f.write_all(&(meta.len() as u64).to_le_bytes())
            .map_err(io)?;
        f.write_all(&meta).map_err(io)?;
        f.write_all(graph).map_err(io)?;
        f.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Reads and checks a dump: `Ok(None)` if there is none, an error if it is
/// damaged or of another version (the caller rebuilds instead).
pub(crate) fn read(path: &Path) -> Result<Option<Dump>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::Io(format!("{}: {e}", path.display()))),
    };
    let bad = |why: &str| StorageError::Corrupt(format!("graph dump {}: {why}", path.display()));
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(bad("not a graph dump"));
    }
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if word(8) != DUMP_VERSION {
        return Err(bad("another dump version"));
    }
    if crc32fast::hash(&bytes[16..]) != word(12) {
        return Err(bad("checksum mismatch"));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&bytes[16..24]);
    let meta_len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| bad("length"))?;
    let meta_end = HEADER
        .checked_add(meta_len)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| bad("metadata length past the end"))?;
    let meta: DumpMeta =
        rmp_serde::from_slice(&bytes[HEADER..meta_end]).map_err(|e| bad(&e.to_string()))?;
    Ok(Some(Dump {
        meta,
        bytes,
        graph_at: meta_end,
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
        let path = file_of(dir.path(), "space");
        assert!(read(&path).unwrap().is_none());
        let written = meta();
        write(&path, &written, b"graph bytes").unwrap();
        let d = read(&path).unwrap().unwrap();
        assert_eq!(d.meta.keys, written.keys);
        assert_eq!(d.meta.unreachable, vec![3, 4]);
        assert_eq!(d.meta.anchors, vec![(3, 5)]);
        assert_eq!(d.meta.namespace, "n");
        assert_eq!(d.graph(), b"graph bytes");
        let mut bytes = std::fs::read(&path).unwrap();
        for at in [0, 9, 13, 17, 30, bytes.len() - 1] {
            bytes[at] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            assert!(read(&path).is_err(), "flipping byte {at} went unnoticed");
            bytes[at] ^= 0x40;
        }
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read(&path).is_err());
    }
}
