//! JSON-like values read from msgpack with every number finite: msgpack
//! carries NaN and infinities, JSON cannot, and serde_json would turn them
//! into `nil` without a word.

use serde::Deserialize;

/// Reads JSON-like metadata, refusing non-finite numbers (msgpack can carry
/// NaN and infinities; JSON cannot, and they would come back as `nil`).
pub(crate) fn finite_metadata<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<hvs_types::Metadata, D::Error> {
    let map: std::collections::BTreeMap<String, FiniteJson> = Deserialize::deserialize(d)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// [`finite_metadata`], optional.
pub(crate) fn finite_metadata_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<hvs_types::Metadata>, D::Error> {
    let map: Option<std::collections::BTreeMap<String, FiniteJson>> = Deserialize::deserialize(d)?;
    Ok(map.map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect()))
}

/// Reads any JSON-like value, refusing non-finite numbers.
pub(crate) fn finite_json<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Value, D::Error> {
    FiniteJson::deserialize(d).map(|v| v.0)
}

/// A JSON value read from msgpack, with every number finite.
struct FiniteJson(serde_json::Value);

impl<'de> Deserialize<'de> for FiniteJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FiniteVisitor).map(FiniteJson)
    }
}

struct FiniteVisitor;

impl<'de> serde::de::Visitor<'de> for FiniteVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON-like value (nil, bool, finite number, string, array, map)")
    }

    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<serde_json::Value, E> {
        serde_json::Number::from_f64(v)
            .map(serde_json::Value::Number)
            .ok_or_else(|| E::custom(format!("metadata number {v} is not finite")))
    }

    fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(v.into())
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<serde_json::Value, E> {
        // JSON has no bytes; UTF-8 bytes read as a string (as payloads do).
        std::str::from_utf8(v)
            .map(Into::into)
            .map_err(|_| E::custom("metadata holds bytes that are not UTF-8 text"))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<serde_json::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(FiniteJson(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<serde_json::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some((k, FiniteJson(v))) = map.next_entry::<String, FiniteJson>()? {
            out.insert(k, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}
