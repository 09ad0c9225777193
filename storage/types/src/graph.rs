//! A namespace's own settings for its search graph.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// How a namespace's HNSW graph is built (`graph` in `create_namespace`,
/// as Qdrant's `hnsw_config` and hnswlib's `M` and `ef_construction`);
/// each setting left out is the server's (16 and 128). A smaller graph
/// builds faster and finds fewer of the true nearest at a given search
/// `ef` (docs/STORAGE.md, "Graph settings").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphSettings {
    /// Links a node keeps to its neighbours (HNSW's `M`; the bottom layer
    /// keeps `2 M`): [`GraphSettings::M`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<u32>,
    /// Candidates an insert considers for its links (`ef_construction`):
    /// [`GraphSettings::EF_CONSTRUCTION`], and at least `m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<u32>,
}

impl GraphSettings {
    /// The `m` a namespace may ask for.
    pub const M: RangeInclusive<u32> = 4..=64;
    /// The `ef_construction` a namespace may ask for.
    pub const EF_CONSTRUCTION: RangeInclusive<u32> = 8..=1024;

    /// Why these settings cannot be used, if they cannot.
    pub fn problem(&self) -> Option<String> {
        let out = |name: &str, v: u32, r: &RangeInclusive<u32>| {
            (!r.contains(&v)).then(|| format!("{name} {v} is not in {}..={}", r.start(), r.end()))
        };
        if let Some(p) = self.m.and_then(|m| out("m", m, &Self::M)) {
            return Some(p);
        }
        if let Some(p) = self
            .ef_construction
            .and_then(|e| out("ef_construction", e, &Self::EF_CONSTRUCTION))
        {
            return Some(p);
        }
        match (self.m, self.ef_construction) {
            (Some(m), Some(e)) if e < m => Some(format!("ef_construction {e} is less than m {m}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_say_which() {
        let s = |m, e| GraphSettings {
            m,
            ef_construction: e,
        };
        assert_eq!(s(None, None).problem(), None);
        assert_eq!(s(Some(4), Some(8)).problem(), None);
        assert_eq!(s(Some(64), Some(1024)).problem(), None);
        assert!(s(Some(3), None).problem().unwrap().starts_with("m 3"));
        assert!(s(Some(65), None).problem().unwrap().starts_with("m 65"));
        let e = s(None, Some(2000)).problem().unwrap();
        assert!(e.starts_with("ef_construction 2000"), "{e}");
        let e = s(Some(32), Some(16)).problem().unwrap();
        assert_eq!(e, "ef_construction 16 is less than m 32");
    }
}
