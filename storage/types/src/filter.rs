//! Metadata filters for searches.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CompactMetadata, Metadata};

/// What a [`Filter`] reads of a vector's metadata: the value at a key.
pub trait MetadataLookup {
    /// The value at `key`, if any.
    fn lookup(&self, key: &str) -> Option<&Value>;
}

impl MetadataLookup for Metadata {
    fn lookup(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

impl MetadataLookup for CompactMetadata {
    fn lookup(&self, key: &str) -> Option<&Value> {
        self.get(key)
    }
}

/// A predicate on a vector's metadata, evaluated during the graph search.
///
/// A key that is absent never matches `Eq`, `In` or `Range`. Numbers compare
/// by value (`1` equals `1.0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Filter {
    /// `metadata[key] == value`.
    Eq(String, Value),
    /// `metadata[key]` is one of the values.
    In(String, Vec<Value>),
    /// `metadata[key]` is an array holding the value (or is the value).
    Contains(String, Value),
    /// `min <= metadata[key] <= max` for a numeric value (either bound optional).
    Range {
        /// The key.
        key: String,
        /// Inclusive lower bound.
        min: Option<f64>,
        /// Inclusive upper bound.
        max: Option<f64>,
    },
    /// All of these.
    And(Vec<Filter>),
    /// Any of these.
    Or(Vec<Filter>),
    /// Not this.
    Not(Box<Filter>),
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl Filter {
    /// Whether `metadata` satisfies the filter.
    pub fn matches(&self, metadata: &impl MetadataLookup) -> bool {
        match self {
            Self::Eq(k, v) => metadata.lookup(k).is_some_and(|x| same(x, v)),
            Self::In(k, vs) => metadata
                .lookup(k)
                .is_some_and(|x| vs.iter().any(|v| same(x, v))),
            Self::Contains(k, v) => metadata.lookup(k).is_some_and(|x| match x {
                Value::Array(items) => items.iter().any(|i| same(i, v)),
                x => same(x, v),
            }),
            Self::Range { key, min, max } => metadata
                .lookup(key)
                .and_then(Value::as_f64)
                .is_some_and(|x| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m)),
            Self::And(fs) => fs.iter().all(|f| f.matches(metadata)),
            Self::Or(fs) => fs.iter().any(|f| f.matches(metadata)),
            Self::Not(f) => !f.matches(metadata),
        }
    }

    /// Nesting depth, to bound the work of evaluating a filter sent by a peer.
    pub fn depth(&self) -> usize {
        match self {
            Self::And(fs) | Self::Or(fs) => 1 + fs.iter().map(Filter::depth).max().unwrap_or(0),
            Self::Not(f) => 1 + f.depth(),
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(v: Value) -> Metadata {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn filters_evaluate_as_documented() {
        let m = meta(json!({"topic": "cats", "n": 3, "w": 0.5}));
        assert!(Filter::Eq("topic".into(), json!("cats")).matches(&m));
        assert!(Filter::Eq("n".into(), json!(3.0)).matches(&m));
        assert!(!Filter::Eq("missing".into(), json!(null)).matches(&m));
        assert!(Filter::In("topic".into(), vec![json!("dogs"), json!("cats")]).matches(&m));
        let r = |min, max| Filter::Range {
            key: "w".into(),
            min,
            max,
        };
        assert!(r(Some(0.5), Some(0.5)).matches(&m));
        assert!(!r(Some(0.6), None).matches(&m));
        assert!(
            !Filter::Range {
                key: "topic".into(),
                min: None,
                max: None
            }
            .matches(&m)
        );
        let both = Filter::And(vec![r(None, Some(1.0)), Filter::Eq("n".into(), json!(3))]);
        assert!(both.matches(&m));
        assert!(!Filter::Not(Box::new(both.clone())).matches(&m));
        assert!(Filter::Or(vec![Filter::Eq("n".into(), json!(4)), both]).matches(&m));
    }

    #[test]
    fn compact_metadata_answers_every_filter_as_the_map_does() {
        let maps = [
            meta(json!({})),
            meta(json!({"n": 3})),
            meta(json!({"topic": "cats", "n": 3, "w": 0.5, "to": ["bob", "carol"], "a": null})),
            meta(json!({"zz": 1, "b": "x", "m": [1, 2], "n": 4.0})),
        ];
        let filters = [
            Filter::Eq("n".into(), json!(3)),
            Filter::Eq("a".into(), json!(null)),
            Filter::Eq("missing".into(), json!(null)),
            Filter::In("topic".into(), vec![json!("dogs"), json!("cats")]),
            Filter::Contains("to".into(), json!("carol")),
            Filter::Contains("m".into(), json!(2)),
            Filter::Range {
                key: "n".into(),
                min: Some(3.5),
                max: None,
            },
            Filter::Not(Box::new(Filter::Eq("b".into(), json!("x")))),
            Filter::Or(vec![
                Filter::Eq("zz".into(), json!(1)),
                Filter::Eq("w".into(), json!(0.5)),
            ]),
        ];
        for m in maps {
            let c = CompactMetadata::from(m.clone());
            assert_eq!(c.to_metadata(), m);
            assert_eq!(c.is_empty(), m.is_empty());
            for k in ["a", "b", "m", "n", "to", "topic", "w", "zz", "missing", ""] {
                assert_eq!(c.get(k), m.get(k), "{k} of {m:?}");
            }
            for f in &filters {
                assert_eq!(f.matches(&c), f.matches(&m), "{f:?} on {m:?}");
            }
        }
    }

    #[test]
    fn contains_looks_inside_arrays() {
        let m = meta(json!({"to": ["bob", "carol"], "from": "alice"}));
        assert!(Filter::Contains("to".into(), json!("carol")).matches(&m));
        assert!(!Filter::Contains("to".into(), json!("dave")).matches(&m));
        assert!(Filter::Contains("from".into(), json!("alice")).matches(&m));
        assert!(!Filter::Contains("missing".into(), json!("alice")).matches(&m));
        let wire: Filter = serde_json::from_value(json!({"contains": ["to", "bob"]})).unwrap();
        assert!(wire.matches(&m));
    }
}
