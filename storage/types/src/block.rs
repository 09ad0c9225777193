//! [`BlockContent`]: what a block holds.

use serde::{Deserialize, Serialize};

/// A block's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockContent {
    /// Raw bytes (not searchable).
    Bytes(#[serde(with = "serde_bytes_compat")] Vec<u8>),
    /// Text (searchable; markdown for documentation blocks).
    Text(String),
    /// A JSON value (searchable through its JSON text).
    Json(serde_json::Value),
}

impl BlockContent {
    /// The text that search sees, if any.
    pub fn searchable_text(&self) -> Option<String> {
        match self {
            Self::Bytes(_) => None,
            Self::Text(t) => Some(t.clone()),
            Self::Json(v) => Some(v.to_string()),
        }
    }
}

/// msgpack stores `Vec<u8>` as an array of integers by default; as `bin` it is
/// a quarter of the size.
mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = a.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}
