//! What is stored: spaces, vector records, changes, and their encoding.

pub(crate) use hvs_types::CompactMetadata;
pub use hvs_types::{
    Datatype, DiscardPolicy, GeometrySpec, GraphSettings, MAX_DIMENSION, Metadata, Retention,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Result, StorageError};
use crate::messages::Settled;
use crate::sync::{Clock, Tombstone};

/// Deepest nesting of arrays and objects accepted in metadata.
pub const MAX_METADATA_DEPTH: usize = 32;

/// What a space does with a vector that is not on its manifold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidPointPolicy {
    /// Refuse it with [`StorageError::InvalidVector`] (the default).
    #[default]
    Reject,
    /// Replace it by the manifold's `project` of it (finite input only).
    Project,
}

/// A namespace: a named space with one manifold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceConfig {
    /// The namespace's name.
    pub name: String,
    /// Its manifold.
    pub geometry: GeometrySpec,
    /// What happens to off-manifold vectors.
    #[serde(default)]
    pub on_invalid: InvalidPointPolicy,
    /// How long its messages are kept (`docs/SEMANTICS.md`, "Retention");
    /// `None`: the store's defaults ([`crate::StoreConfig::retention`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// What its search graph stores (docs/STORAGE.md, "Vector storage");
    /// `None`: [`Datatype::default_for`] its geometry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<Datatype>,
    /// How its search graph is built (docs/STORAGE.md, "Graph settings");
    /// `None`: the store's [`crate::IndexParams`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSettings>,
}

impl SpaceConfig {
    /// A space that rejects off-manifold vectors.
    pub fn new(name: impl Into<String>, geometry: GeometrySpec) -> Self {
        Self {
            name: name.into(),
            geometry,
            on_invalid: InvalidPointPolicy::Reject,
            retention: None,
            datatype: None,
            graph: None,
        }
    }

    /// The same space with its graph in `datatype`.
    pub fn with_datatype(mut self, datatype: Datatype) -> Self {
        self.datatype = Some(datatype);
        self
    }

    /// The datatype its graph uses: the one asked for, or the geometry's default.
    pub fn datatype(&self) -> Datatype {
        self.datatype
            .unwrap_or_else(|| Datatype::default_for(&self.geometry))
    }

    /// The same space with its graph built with these settings.
    pub fn with_graph(mut self, graph: GraphSettings) -> Self {
        self.graph = Some(graph);
        self
    }

    /// The same space with its own retention limits.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = Some(retention);
        self
    }
}

/// A stored vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorRecord {
    /// UUID v7: time-ordered.
    pub id: Uuid,
    /// The namespace it lives in.
    pub namespace: String,
    /// Coordinates, a point of the namespace's manifold.
    pub data: Vec<f64>,
    /// An optional region within the namespace.
    pub region: Option<String>,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// 1 when stored, +1 on each update.
    pub version: u64,
    /// Milliseconds since the Unix epoch of the last write.
    pub timestamp_ms: u64,
    /// Hybrid-logical-clock timestamp of the last write (0 on versions
    /// written before the store kept clocks).
    #[serde(default)]
    pub hlc: u64,
    /// Which instance's writes this version includes (`docs/SYNC.md`).
    #[serde(default, skip_serializing_if = "Clock::is_empty")]
    pub clock: Clock,
}

/// A vector to store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewVector {
    /// Target namespace.
    pub namespace: String,
    /// Coordinates.
    pub data: Vec<f64>,
    /// Optional region.
    pub region: Option<String>,
    /// Metadata.
    pub metadata: Metadata,
}

impl NewVector {
    /// A vector with no region and no metadata.
    pub fn new(namespace: impl Into<String>, data: Vec<f64>) -> Self {
        Self {
            namespace: namespace.into(),
            data,
            ..Self::default()
        }
    }
}

/// A change to a stored vector; `None` fields stay as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VectorUpdate {
    /// New coordinates.
    pub data: Option<Vec<f64>>,
    /// New region (`Some(None)` clears it).
    pub region: Option<Option<String>>,
    /// New metadata (replaces the old).
    pub metadata: Option<Metadata>,
    /// Compare and set: apply only if the stored version is this one,
    /// checked inside the commit (else [`StorageError::VersionConflict`]).
    pub if_version: Option<u64>,
}

/// The kind of a change-feed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A namespace was created (body: its configuration).
    CreateNamespace,
    /// A vector was stored (body: the record).
    Insert,
    /// A vector was updated (body: the record after the change).
    Update,
    /// A vector was deleted (body: its tombstone).
    Delete,
    /// A namespace was deleted (after one `Delete` per vector of it, in
    /// the same commit).
    DeleteNamespace,
    /// A message was stored (`id`: the message; the row is immutable, so
    /// the feed does not copy it).
    PutMessage,
    /// A message was settled for one recipient (body: the settlement).
    Settle,
    /// A message was removed by the store: its TTL passed, a retention
    /// limit discarded it, or `keep_acked` ran out after every recipient
    /// settled it (`id`: the message).
    ExpireMessage,
    /// A block was created or changed (body: the block after the change).
    PutBlock,
    /// A block was deleted or expired (`id`: the block).
    DeleteBlock,
    /// A catalog record (namespace grants, model profiles, model states,
    /// isolation policies) was written (body: kind, key, value).
    CatalogPut,
    /// A catalog record was removed (body: kind and key, no value).
    CatalogDelete,
}

/// What a change carries beyond its head: enough to apply it elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeBody {
    /// A new namespace's configuration.
    Namespace(SpaceConfig),
    /// A vector as the change left it.
    Vector(VectorRecord),
    /// A deleted vector's tombstone.
    Tombstone(Tombstone),
    /// A stored message: never in the stored feed (the row is immutable and
    /// read by id); the feed's publisher attaches it to a `PutMessage`.
    Message(Box<crate::MessageRecord>),
    /// A settlement.
    Settled(Settled),
    /// A block as the change left it.
    Block(Box<crate::Block>),
    /// A catalog record (`value: None` when removed).
    Catalog {
        /// The record's kind.
        kind: String,
        /// Its key.
        key: String,
        /// Its bytes.
        #[serde(with = "serde_bytes")]
        value: Option<Vec<u8>>,
    },
}

/// One entry of the change feed: a gapless, numbered log of every
/// committed mutation, from which other instances are kept in sync
/// (`docs/SYNC.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// The namespace (empty for blocks and catalog records, which belong to
    /// no namespace).
    pub namespace: String,
    /// The vector, message or block.
    pub id: Option<Uuid>,
    /// The vector's version after the change (0 for namespaces and others).
    pub version: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The hybrid-logical-clock timestamp of the commit's change (0 in
    /// entries written before the store kept clocks).
    #[serde(default)]
    pub hlc: u64,
    /// What to apply elsewhere (`None` in entries written before the feed
    /// carried bodies, and for kinds that need none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ChangeBody>,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| StorageError::Io(format!("encoding: {e}")))
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    // Stored metadata is at most MAX_METADATA_DEPTH deep; a damaged row
    // that claims more must not recurse until the stack overflows.
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_METADATA_DEPTH + 16);
    T::deserialize(&mut de).map_err(|e| StorageError::Corrupt(format!("{what}: {e}")))
}

/// A vector row's namespace and coordinates, read straight off its
/// MessagePack: [`encode`] writes a [`VectorRecord`] as a map whose first
/// fields are `id` (16 bytes), `namespace` and `data` (an array of
/// `f64`s), in that order. `None` for a row laid out in any other way (the
/// caller decodes it whole then). Decoding the coordinates through serde
/// took a third of an `f16` search (docs/BENCHMARKS.md, "Quantized
/// namespaces read their records").
pub(crate) fn point_of(bytes: &[u8]) -> Option<(&str, Vec<f64>)> {
    use rmp::decode::{read_array_len, read_bin_len, read_f64, read_map_len, read_str_from_slice};
    let mut rd = bytes;
    read_map_len(&mut rd).ok()?;
    let field = |rd: &mut &[u8], name: &str| -> Option<()> {
        let (key, rest) = read_str_from_slice(*rd).ok()?;
        *rd = rest;
        (key == name).then_some(())
    };
    field(&mut rd, "id")?;
    let len = read_bin_len(&mut rd).ok()? as usize;
    rd = rd.get(len..)?;
    field(&mut rd, "namespace")?;
    let (namespace, rest) = read_str_from_slice(rd).ok()?;
    rd = rest;
    field(&mut rd, "data")?;
    let n = read_array_len(&mut rd).ok()? as usize;
    // Each `f64` takes 9 bytes: a longer claim is a damaged row.
    if n > rd.len() / 9 {
        return None;
    }
    let data = (0..n)
        .map(|_| read_f64(&mut rd).ok())
        .collect::<Option<Vec<f64>>>()?;
    Some((namespace, data))
}

/// Decodes `bytes` as each kind of stored row (vector record, message,
/// block, namespace) and drops the results: for fuzzing and property tests
/// of the stored-record decoder. Never panics.
#[doc(hidden)]
pub fn decode_stored_rows(bytes: &[u8]) {
    let _ = try_decode_stored_rows(bytes);
    let _ = point_of(bytes);
}

/// What decoding `bytes` as each kind of stored row answers (vector
/// record, message, block, namespace, settlement, change, tombstone, in
/// that order), the decoded value dropped: for tests that a damaged row is
/// refused with [`StorageError::Corrupt`].
#[doc(hidden)]
pub fn try_decode_stored_rows(bytes: &[u8]) -> [Result<()>; 7] {
    [
        decode::<VectorRecord>(bytes, "vector record").map(drop),
        decode::<crate::MessageRecord>(bytes, "message").map(drop),
        decode::<crate::Block>(bytes, "block").map(drop),
        decode::<SpaceConfig>(bytes, "namespace").map(drop),
        decode::<(crate::Settlement, u64)>(bytes, "settlement").map(drop),
        decode_change_row(bytes).map(drop),
        decode::<Tombstone>(bytes, "tombstone").map(drop),
    ]
}

/// Reads a change-feed entry: a row of the `changes` table, or a change
/// another instance published (`docs/SYNC.md`). Bytes that are not one
/// are [`StorageError::Corrupt`], never a panic (metadata nested deeper
/// than [`MAX_METADATA_DEPTH`] included); the `stored_record` fuzz target
/// runs it.
pub fn decode_change(bytes: &[u8]) -> Result<Change> {
    decode(bytes, "change")
}

/// Reads a row of the `changes` table: one entry (a msgpack map), or the
/// entries one write operation made, in order (an array of them; the row
/// is keyed by the last one's number).
pub(crate) fn decode_change_row(bytes: &[u8]) -> Result<Vec<Change>> {
    match bytes.first() {
        Some(0x90..=0x9f | 0xdc | 0xdd) => decode(bytes, "change"),
        _ => Ok(vec![decode_change(bytes)?]),
    }
}

/// Refuses metadata nested deeper than [`MAX_METADATA_DEPTH`] (which would
/// make decoding recurse without bound).
pub(crate) fn check_metadata(m: &Metadata) -> Result<()> {
    fn depth(v: &serde_json::Value, d: usize) -> Result<()> {
        if d > MAX_METADATA_DEPTH {
            return Err(StorageError::InvalidMetadata(format!(
                "nested deeper than {MAX_METADATA_DEPTH} levels"
            )));
        }
        match v {
            serde_json::Value::Array(a) => a.iter().try_for_each(|x| depth(x, d + 1)),
            serde_json::Value::Object(o) => o.values().try_for_each(|x| depth(x, d + 1)),
            _ => Ok(()),
        }
    }
    m.values().try_for_each(|v| depth(v, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_msgpack() {
        let mut metadata = Metadata::new();
        metadata.insert("topic".into(), serde_json::json!("cats"));
        metadata.insert("score".into(), serde_json::json!(0.5));
        metadata.insert("tags".into(), serde_json::json!(["a", {"b": [1, 2]}]));
        let r = VectorRecord {
            id: Uuid::now_v7(),
            namespace: "ns".into(),
            data: vec![1.0, -2.5, 3e-300],
            region: Some("r1".into()),
            metadata,
            version: 3,
            timestamp_ms: 42,
            hlc: 42 << 16,
            clock: Clock::default().with(7, 42 << 16),
        };
        let back: VectorRecord = decode(&encode(&r).unwrap(), "record").unwrap();
        assert_eq!(back, r);
    }

    /// `point_of` reads what a whole decode reads, bit for bit, from any
    /// record; from any cut or other row it answers `None` or a prefix's
    /// reading, never a panic.
    #[test]
    fn a_rows_point_reads_as_the_whole_record_does() {
        let mut metadata = Metadata::new();
        metadata.insert("n".into(), serde_json::json!(7));
        for (i, data) in [
            vec![],
            vec![0.0, -0.0, 1.5],
            (0..512).map(|i| (i as f64).sin() * 1e-300).collect(),
            vec![f64::MAX, f64::MIN_POSITIVE, -1e300],
        ]
        .into_iter()
        .enumerate()
        {
            let r = VectorRecord {
                id: Uuid::now_v7(),
                namespace: "n".repeat(i * 20),
                data,
                region: (i % 2 == 0).then(|| "r".into()),
                metadata: metadata.clone(),
                version: 1,
                timestamp_ms: 1,
                hlc: 0,
                clock: Clock::default(),
            };
            let bytes = encode(&r).unwrap();
            let (namespace, data) = point_of(&bytes).unwrap();
            assert_eq!(namespace, r.namespace);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&data), bits(&r.data));
            for cut in 0..bytes.len() {
                if let Some((_, d)) = point_of(&bytes[..cut]) {
                    assert_eq!(bits(&d), bits(&r.data), "cut at {cut}");
                }
            }
        }
        let other = encode(&Tombstone {
            id: Uuid::now_v7(),
            namespace: "n".into(),
            version: 2,
            hlc: 0,
            clock: Clock::default(),
        })
        .unwrap();
        assert_eq!(point_of(&other), None);
    }

    #[test]
    fn garbage_bytes_are_a_corrupt_error() {
        for bytes in [&b""[..], b"\xff\xff\xff", b"\x93\x01\x02"] {
            assert!(matches!(
                decode::<VectorRecord>(bytes, "record"),
                Err(StorageError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn geometry_specs_build_and_serialize() {
        let g = GeometrySpec::Product {
            components: vec![
                (
                    GeometrySpec::Hyperboloid {
                        dim: 2,
                        curvature: 1.0,
                    },
                    1.0,
                ),
                (
                    GeometrySpec::Sphere {
                        dim: 2,
                        curvature: 1.0,
                    },
                    0.5,
                ),
            ],
        };
        let json = serde_json::to_string(&g).unwrap();
        assert!(json.contains("\"kind\":\"product\""));
        let back: GeometrySpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, g);
        use hvs_geometry::Manifold;
        assert_eq!(g.build().unwrap().ambient_dim(), 6);
        assert!(
            GeometrySpec::Poincare {
                dim: 2,
                curvature: -1.0
            }
            .build()
            .is_err()
        );
    }

    #[test]
    fn deep_metadata_is_refused() {
        let mut v = serde_json::json!(1);
        for _ in 0..40 {
            v = serde_json::json!([v]);
        }
        let mut m = Metadata::new();
        m.insert("deep".into(), v);
        assert!(matches!(
            check_metadata(&m),
            Err(StorageError::InvalidMetadata(_))
        ));
    }
}
