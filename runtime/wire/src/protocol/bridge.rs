//! Bridges (`docs/BRIDGES.md`): managing them is an operators' operation
//! (the connection's token covers every namespace); searching through one
//! is open to a model with read access to the namespaces it searches here.

use serde::{Deserialize, Serialize};

pub use hvs_types::{
    BridgeHit, BridgeHits, BridgeIsolation, BridgeKind, BridgeQuery, BridgeSpec, BridgeStatus,
    InstanceRefusal, SlowProgress, SlowState,
};

/// `bridge_search`'s arguments: the bridge's name and a [`BridgeQuery`]'s
/// fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeSearch {
    /// The bridge.
    pub name: String,
    /// The query point.
    pub vector: Vec<f64>,
    /// How many hits (default 10).
    #[serde(default = "default_k")]
    pub k: usize,
    /// Only vectors whose metadata matches.
    #[serde(default)]
    pub filter: Option<hvs_types::Filter>,
}

fn default_k() -> usize {
    10
}

impl BridgeSearch {
    /// The query it carries.
    pub fn query(self) -> BridgeQuery {
        BridgeQuery {
            vector: self.vector,
            k: self.k,
            filter: self.filter,
        }
    }
}

/// `bridge_list`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BridgeList {
    /// Every bridge on this instance, by name.
    pub bridges: Vec<BridgeStatus>,
}
