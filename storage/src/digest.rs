//! The digest of one namespace's vectors, independent of the namespace's
//! name and of the order rows were written in: two instances holding the
//! same vectors (ids, versions, coordinates, region, metadata) under any
//! names have the same digest. A slow bridge compares the source's and the
//! target's at the end of a copy (`docs/BRIDGES.md`).
//!
//! Each vector is hashed alone (SHA-256 of id, region, metadata as
//! canonical JSON, coordinates as their exact bits, version; every
//! variable-length field framed by its length), the row hashes sorted and
//! hashed together after the namespace's geometry. Timestamps, hybrid
//! clocks and version vectors are left out: they say when and where a
//! version was written, not what it is (as `hvs inspect --digest`, whose
//! vector row is this one plus the namespace's name).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::record::VectorRecord;
use crate::store::{MAX_RESULTS, Store};

/// What [`Store::namespace_digest`] answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceDigest {
    /// How many vectors it covers.
    pub vectors: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

impl Store {
    /// The digest of `namespace`'s vectors (not messages) as of the last
    /// write answered, read page by page in id order
    /// ([`StorageError::NamespaceNotFound`](crate::StorageError) if absent).
    pub fn namespace_digest(&self, namespace: &str) -> Result<NamespaceDigest> {
        let config = self.namespace(namespace)?;
        let mut rows = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self.scroll(namespace, after, MAX_RESULTS, None)?;
            rows.extend(page.iter().map(vector_row));
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        rows.sort_unstable();
        let mut h = Sha256::new();
        h.update(DigestRow::new().json(&to_value(&config.geometry)).finish());
        for row in &rows {
            h.update(row);
        }
        let sha256: [u8; 32] = h.finalize().into();
        Ok(NamespaceDigest {
            vectors: rows.len() as u64,
            sha256: sha256.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

fn vector_row(r: &VectorRecord) -> [u8; 32] {
    let metadata = Value::Object(r.metadata.clone().into_iter().collect());
    DigestRow::new()
        .fixed(r.id.as_bytes())
        .optional(r.region.as_deref())
        .json(&metadata)
        .floats(&r.data)
        .number(r.version)
        .finish()
}

fn to_value(v: &impl Serialize) -> Value {
    // Plain data (no maps with non-string keys): its JSON form exists.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// One row being hashed, framed so that two different rows never hash
/// the same bytes: every variable-length field is its length (u64
/// little-endian) then its bytes; numbers are u64 little-endian,
/// coordinates their IEEE-754 bits as u64 little-endian; JSON is
/// canonical (no whitespace, every object's keys in byte order at every
/// depth, numbers as serde_json writes them). Shared with
/// `hvs inspect --digest`.
pub struct DigestRow(Sha256);

impl Default for DigestRow {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestRow {
    /// An empty row.
    pub fn new() -> Self {
        Self(Sha256::new())
    }

    /// Bytes of a length fixed by the field (an id, a tag).
    pub fn fixed(mut self, b: &[u8]) -> Self {
        self.0.update(b);
        self
    }

    /// A number.
    pub fn number(self, n: u64) -> Self {
        self.fixed(&n.to_le_bytes())
    }

    /// Bytes of any length.
    pub fn bytes(self, b: &[u8]) -> Self {
        self.number(b.len() as u64).fixed(b)
    }

    /// Text.
    pub fn text(self, s: &str) -> Self {
        self.bytes(s.as_bytes())
    }

    /// `0` for none, `1` and the text for some.
    pub fn optional(self, s: Option<&str>) -> Self {
        match s {
            None => self.fixed(&[0]),
            Some(s) => self.fixed(&[1]).text(s),
        }
    }

    /// Coordinates, exactly.
    pub fn floats(self, xs: &[f64]) -> Self {
        xs.iter().fold(self.number(xs.len() as u64), |row, x| {
            row.number(x.to_bits())
        })
    }

    /// A JSON value, canonically.
    pub fn json(self, v: &Value) -> Self {
        let mut text = String::new();
        canonical_json(v, &mut text);
        self.text(&text)
    }

    /// The row's SHA-256.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// `v` without whitespace, every object's keys in byte order at every depth.
fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{Value, canonical_json};
    use crate::{GeometrySpec, NewVector, SpaceConfig, Store, StoreConfig};

    #[test]
    fn canonical_json_orders_keys_at_every_depth() {
        let a: Value =
            serde_json::from_str(r#"{"b": {"y": 1, "x": [2.5, "s"]}, "a": null}"#).unwrap();
        let mut out = String::new();
        canonical_json(&a, &mut out);
        assert_eq!(out, r#"{"a":null,"b":{"x":[2.5,"s"],"y":1}}"#);
    }

    fn store_with(names: &[&str]) -> Store {
        let store = Store::open(StoreConfig::memory()).unwrap();
        for n in names {
            let g = GeometrySpec::Euclidean { dim: 2 };
            store.create_namespace(SpaceConfig::new(*n, g)).unwrap();
        }
        store
    }

    #[test]
    fn the_digest_follows_the_vectors_not_the_name_or_the_order() {
        let a = store_with(&["a"]);
        let stored: Vec<_> = (0..30)
            .map(|i| {
                let mut v = NewVector::new("a", vec![i as f64, 0.5]);
                v.metadata.insert("i".into(), i.into());
                a.store_vector(v).unwrap()
            })
            .collect();
        let b = store_with(&["b"]);
        // The same vectors, renamed, applied in reverse order.
        let changes = stored
            .iter()
            .rev()
            .map(|r| crate::Change {
                seq: 0,
                kind: crate::ChangeKind::Insert,
                namespace: "b".into(),
                id: Some(r.id),
                version: r.version,
                timestamp_ms: r.timestamp_ms,
                hlc: r.hlc,
                body: Some(crate::ChangeBody::Vector(crate::VectorRecord {
                    namespace: "b".into(),
                    ..r.clone()
                })),
            })
            .collect();
        b.apply_changes("t", Default::default(), changes).unwrap();
        let (da, db) = (
            a.namespace_digest("a").unwrap(),
            b.namespace_digest("b").unwrap(),
        );
        assert_eq!(da, db);
        assert_eq!(da.vectors, 30);
        b.delete_vector(stored[3].id).unwrap();
        assert_ne!(b.namespace_digest("b").unwrap(), da);
        assert!(a.namespace_digest("nope").is_err());
    }
}
