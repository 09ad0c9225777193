//! Shared spaces, consensus and model state.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// `join`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Join {
    /// The shared space (a namespace).
    pub space: String,
    /// What the model declares it can do.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// `contribute`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribute {
    /// The shared space.
    pub space: String,
    /// The contribution's key (a later one with the same key replaces it).
    pub key: String,
    /// Its point.
    pub vector: Vec<f64>,
    /// Any value.
    #[serde(default, deserialize_with = "super::finite_json")]
    pub value: serde_json::Value,
}

/// `query_shared`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryShared {
    /// The shared space.
    pub space: String,
    /// The query point.
    pub vector: Vec<f64>,
    /// How many (default 10).
    #[serde(default = "default_k")]
    pub k: usize,
    /// Hits carry their coordinates.
    #[serde(default)]
    pub with_vector: bool,
}

fn default_k() -> usize {
    10
}

/// A contribution found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireSharedHit {
    /// Its vector's id.
    pub id: String,
    /// Who contributed it.
    pub contributor: String,
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: serde_json::Value,
    /// Distance from the query.
    pub distance: f64,
    /// `1 / (1 + distance)`.
    pub score: f64,
    /// Its point, when asked for (`with_vector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f64>>,
}

/// `query_shared`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedHits {
    /// Nearest first.
    pub hits: Vec<WireSharedHit>,
}

/// `consensus`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsensusArgs {
    /// The shared space.
    pub space: String,
    /// Weight per contributor (default 1 each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<HashMap<String, f64>>,
}

/// The consensus point and its convergence report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireConsensus {
    /// The weighted Fréchet mean, a point of the space's manifold.
    pub mean: Vec<f64>,
    /// Contributions averaged.
    pub contributions: usize,
    /// Distinct contributors.
    pub contributors: usize,
    /// Iterations taken.
    pub iterations: usize,
    /// Whether it converged.
    pub converged: bool,
    /// Gradient norm at the answer.
    pub gradient_norm: f64,
}

/// A model's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireState {
    /// The model.
    pub model: String,
    /// The state.
    pub state: serde_json::Value,
    /// Its version.
    pub version: u64,
    /// Similarity to the query (`find_similar_states` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// `register_state`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterState {
    /// A JSON schema-like description of the state.
    #[serde(deserialize_with = "super::finite_json")]
    pub schema: serde_json::Value,
}

/// `update_state`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateState {
    /// The new state.
    #[serde(deserialize_with = "super::finite_json")]
    pub state: serde_json::Value,
}

/// `update_state`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StateVersion {
    /// The state's version now.
    pub version: u64,
}

/// `get_state`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetState {
    /// Whose state.
    pub model: String,
}

/// `find_similar_states`' arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarStates {
    /// The state to compare with.
    #[serde(deserialize_with = "super::finite_json")]
    pub state: serde_json::Value,
    /// How many (default 10).
    #[serde(default = "default_k")]
    pub k: usize,
}

/// `find_similar_states`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct States {
    /// Most similar first.
    pub states: Vec<WireState>,
}
