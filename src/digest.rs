//! `hvs inspect --digest`: an order-independent digest of a data
//! directory's namespaces, vectors and blocks, so two instances that were
//! synchronised can be compared by one line each.
//!
//! Every row is hashed alone (SHA-256 of its fields, framed as [`Row`]
//! says); a kind's digest is the SHA-256 of its row hashes sorted, so it
//! does not depend on the order rows were written or are read in; the
//! overall digest is the SHA-256 of the kinds' lines. What a row covers,
//! and what it leaves out (clocks, timestamps, messages, …), is written down
//! in `docs/STORAGE.md`, "Digests"; `tests/digest_cli.rs` checks it.

use std::io::{self, BufReader, Read};

use hvs::storage::{
    Block, BlockContent, DigestRow as Row, SpaceConfig, StorageError, Store, VectorRecord,
};
use serde_json::{Value, json};

use sha2::{Digest, Sha256};

/// The kinds of row a digest covers, in the order they are printed and
/// combined.
const KINDS: [&str; 3] = ["namespaces", "vectors", "blocks"];

/// The digest of one kind of row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KindDigest {
    /// How many rows it covers.
    rows: u64,
    /// SHA-256 of the rows' hashes in ascending order.
    sha256: [u8; 32],
}

impl KindDigest {
    /// Combines row hashes in any order: sorting them first makes the
    /// result depend on the set of rows alone.
    fn of(mut hashes: Vec<[u8; 32]>) -> Self {
        hashes.sort_unstable();
        let mut h = Sha256::new();
        for row in &hashes {
            h.update(row);
        }
        Self {
            rows: hashes.len() as u64,
            sha256: h.finalize().into(),
        }
    }
}

/// The digest of a data directory: one [`KindDigest`] per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DataDigest {
    kinds: [KindDigest; 3],
}

impl DataDigest {
    /// `(kind, rows, hex digest)` per kind, in [`KINDS`] order.
    fn lines(&self) -> impl Iterator<Item = (&'static str, u64, String)> + '_ {
        KINDS
            .iter()
            .zip(&self.kinds)
            .map(|(k, d)| (*k, d.rows, hex(&d.sha256)))
    }

    /// SHA-256 of the text `"{kind} {rows} {hex}\n"` for each kind in
    /// order: computable from the printed lines alone.
    fn overall(&self) -> String {
        let mut h = Sha256::new();
        for (kind, rows, digest) in self.lines() {
            h.update(format!("{kind} {rows} {digest}\n"));
        }
        hex(&h.finalize().into())
    }

    /// The lines `hvs inspect --digest` prints: the label padded to 12
    /// columns, as the rest of `inspect`'s report.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for (kind, rows, digest) in self.lines() {
            out.push_str(&format!("{kind:<11} {rows} {digest}\n"));
        }
        out.push_str(&format!("{:<11} {}\n", "digest", self.overall()));
        out
    }

    /// What `hvs inspect --digest --json` prints.
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({ "digest": self.overall() });
        for (kind, rows, digest) in self.lines() {
            v[kind] = json!({ "rows": rows, "digest": digest });
        }
        v
    }
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest of everything `store` holds: namespaces, the vectors of each
/// (messages are not vectors and are not read), and the blocks that have
/// not expired by `now_ms`.
pub(crate) fn digest_store(store: &Store, now_ms: u64) -> Result<DataDigest, StorageError> {
    let namespaces = store.namespaces();
    let mut vectors = Vec::new();
    for ns in &namespaces {
        // Read from the rows, not the index: the digest is of what is stored.
        vectors.extend(store.iter_namespace(&ns.name)?.iter().map(vector_row));
    }
    let mut blocks = Vec::new();
    each_block(store, &mut |b| {
        // Expired blocks are gone for every read, purged from the file or not.
        if b.expires_ms.is_none_or(|t| now_ms < t) {
            blocks.push(block_row(&b));
        }
    })?;
    Ok(DataDigest {
        kinds: [
            KindDigest::of(namespaces.iter().map(namespace_row).collect()),
            KindDigest::of(vectors),
            KindDigest::of(blocks),
        ],
    })
}

/// Name, geometry and what the namespace does with off-manifold points.
fn namespace_row(c: &SpaceConfig) -> [u8; 32] {
    Row::new()
        .text(&c.name)
        .json(&to_value(&c.geometry))
        .json(&to_value(&c.on_invalid))
        .finish()
}

/// Id, namespace, region, metadata, coordinates (exact bits) and version;
/// never `timestamp_ms`, `hlc` or `clock`, which say when and where a
/// version was written, not what it is.
fn vector_row(r: &VectorRecord) -> [u8; 32] {
    let metadata = Value::Object(r.metadata.clone().into_iter().collect());
    Row::new()
        .fixed(r.id.as_bytes())
        .text(&r.namespace)
        .optional(r.region.as_deref())
        .json(&metadata)
        .floats(&r.data)
        .number(r.version)
        .finish()
}

/// Id, name, class, content and version; not the owner, permissions,
/// read-only flag, history or any time.
fn block_row(b: &Block) -> [u8; 32] {
    let row = Row::new()
        .fixed(b.id.as_bytes())
        .text(&b.name)
        .json(&to_value(&b.class));
    let row = match &b.content {
        BlockContent::Bytes(bytes) => row.fixed(&[0]).bytes(bytes),
        BlockContent::Text(t) => row.fixed(&[1]).text(t),
        BlockContent::Json(v) => row.fixed(&[2]).json(v),
    };
    row.number(b.version).finish()
}

fn to_value(v: &impl serde::Serialize) -> Value {
    // These types are plain data (no maps with non-string keys): their
    // JSON form always exists.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Calls `on_block` with every stored block, whoever may read it.
///
/// `Store::list_blocks` answers only the blocks one actor may read, so a
/// block whose read list names neither `"*"` nor the asker would be left
/// out of the digest unseen. The backup stream of `Store::export` holds
/// every row of every table (format: `docs/STORAGE.md`, "Backups"): it is
/// piped to this thread, its `blocks` table decoded and the rest skipped.
fn each_block(store: &Store, on_block: &mut dyn FnMut(Block)) -> Result<(), StorageError> {
    let (reader, mut writer) = io::pipe().map_err(io_error)?;
    std::thread::scope(|s| {
        // The writer is dropped when the export returns, which ends the stream.
        let exporter = s.spawn(move || store.export(&mut writer, &mut |_| {}));
        let mut input = BufReader::with_capacity(1 << 20, reader);
        let read = read_blocks(&mut input, on_block);
        // Drained to the end even after a bad row, so the export finishes
        // rather than failing on a closed pipe: an error of its own is then
        // the cause, and reported first.
        let drained = io::copy(&mut input, &mut io::sink()).map_err(io_error);
        let exported = exporter
            .join()
            .unwrap_or_else(|_| Err(StorageError::Io("the export thread panicked".into())));
        exported?;
        read.and(drained.map(drop))
    })
}

fn io_error(e: io::Error) -> StorageError {
    StorageError::Io(format!("reading the store's backup stream: {e}"))
}

fn corrupt(what: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("backup stream: {what}"))
}

/// Reads a backup stream up to its trailer, decoding the rows of `blocks`.
fn read_blocks(input: &mut impl Read, on_block: &mut dyn FnMut(Block)) -> Result<(), StorageError> {
    let magic: [u8; 9] = take(input)?;
    if &magic != b"HVSBACKUP" {
        return Err(corrupt("no HVSBACKUP header"));
    }
    let format = u32::from_le_bytes(take(input)?);
    if format != 1 {
        return Err(corrupt(format!(
            "backup format {format}; this build reads 1"
        )));
    }
    let _store_format: [u8; 8] = take(input)?;
    let _tables: [u8; 4] = take(input)?;
    loop {
        match take::<1>(input)? {
            [b'T'] => {
                let name_len = u16::from_le_bytes(take(input)?);
                let mut name = vec![0; usize::from(name_len)];
                input.read_exact(&mut name).map_err(io_error)?;
                let _rows: [u8; 8] = take(input)?;
                read_table(input, name == b"blocks", on_block)?;
            }
            // The trailer: counts and a checksum, nothing the digest needs.
            [b'E'] => return Ok(()),
            [t] => return Err(corrupt(format!("unexpected tag {t:#04x}"))),
        }
    }
}

/// Reads one table's chunks, up to its end marker; decodes their rows as
/// blocks if `blocks`, skips them otherwise.
fn read_table(
    input: &mut impl Read,
    blocks: bool,
    on_block: &mut dyn FnMut(Block),
) -> Result<(), StorageError> {
    loop {
        if u32::from_le_bytes(take(input)?) == 0 {
            return Ok(());
        }
        let len = u64::from(u32::from_le_bytes(take(input)?));
        if blocks {
            let mut payload = Vec::new();
            input
                .by_ref()
                .take(len)
                .read_to_end(&mut payload)
                .map_err(io_error)?;
            if payload.len() as u64 != len {
                return Err(corrupt("a chunk ends early"));
            }
            decode_blocks(&payload, on_block)?;
        } else if io::copy(&mut input.by_ref().take(len), &mut io::sink()).map_err(io_error)? != len
        {
            return Err(corrupt("a chunk ends early"));
        }
        // The chunk's CRC: the stream comes straight from the store.
        let _crc: [u8; 4] = take(input)?;
    }
}

/// Decodes a chunk's rows (`u32` key length, key, `u32` value length,
/// value): a block's value is its stored record.
fn decode_blocks(mut payload: &[u8], on_block: &mut dyn FnMut(Block)) -> Result<(), StorageError> {
    while !payload.is_empty() {
        let _key = field(&mut payload)?;
        let value = field(&mut payload)?;
        let block: Block =
            rmp_serde::from_slice(value).map_err(|e| corrupt(format!("a block: {e}")))?;
        on_block(block);
    }
    Ok(())
}

/// A `u32`-length-prefixed field at the front of `payload`, which moves past it.
fn field<'a>(payload: &mut &'a [u8]) -> Result<&'a [u8], StorageError> {
    let short = || corrupt("a row ends early");
    let (len, rest) = payload.split_first_chunk::<4>().ok_or_else(short)?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err(short());
    }
    let (value, rest) = rest.split_at(len);
    *payload = rest;
    Ok(value)
}

fn take<const N: usize>(input: &mut impl Read) -> Result<[u8; N], StorageError> {
    let mut buf = [0; N];
    input.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt("the stream ends early"),
        _ => io_error(e),
    })?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: u8) -> [u8; 32] {
        Row::new().fixed(&[i]).finish()
    }

    #[test]
    fn a_kind_digest_does_not_depend_on_row_order() {
        let rows: Vec<[u8; 32]> = (0..50).map(row).collect();
        let mut shuffled = rows.clone();
        shuffled.reverse();
        shuffled.swap(3, 17);
        assert_eq!(KindDigest::of(rows.clone()), KindDigest::of(shuffled));
        assert_ne!(KindDigest::of(rows[1..].to_vec()), KindDigest::of(rows));
    }

    #[test]
    fn fields_are_framed_so_they_cannot_run_together() {
        let ab_c = Row::new().text("ab").text("c").finish();
        let a_bc = Row::new().text("a").text("bc").finish();
        assert_ne!(ab_c, a_bc);
        let none = Row::new().optional(None).text("x").finish();
        let empty = Row::new().optional(Some("")).text("x").finish();
        assert_ne!(none, empty);
        assert_ne!(
            Row::new().floats(&[0.0]).finish(),
            Row::new().floats(&[-0.0]).finish(),
            "coordinates are compared bit for bit"
        );
    }

    #[test]
    fn the_overall_digest_is_that_of_the_printed_lines() {
        let d = DataDigest {
            kinds: [
                KindDigest::of(vec![]),
                KindDigest::of(vec![row(1)]),
                KindDigest::of(vec![]),
            ],
        };
        let text = d.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        let canonical: String = lines[..3]
            .iter()
            .map(|l| format!("{}\n", l.split_whitespace().collect::<Vec<_>>().join(" ")))
            .collect();
        assert_eq!(
            lines[3],
            format!("digest      {}", hex(&Sha256::digest(canonical).into()))
        );
        assert_eq!(d.to_json()["vectors"]["rows"], 1);
    }
}
