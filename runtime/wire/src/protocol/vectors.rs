//! Namespaces, vectors and search.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use hvs_types::{Datatype, Filter, GeometrySpec, GraphSettings, Metadata, Retention};

/// Arguments naming one thing (`namespace_info`, `get_block`, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NameArg {
    /// The name.
    pub name: String,
}

/// `create_namespace`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateNamespace {
    /// Its name.
    pub name: String,
    /// `private` (default), `shared` or `public`.
    #[serde(default = "default_visibility")]
    pub visibility: String,
    /// Its manifold, e.g. `{"kind": "hyperboloid", "dim": 12, "curvature": 1.0}`.
    pub geometry: GeometrySpec,
    /// How long its messages are kept, e.g. `{"max_messages": 1000,
    /// "discard": "new"}` (`docs/PROTOCOL.md`); absent: the server's
    /// defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// What its search graph stores: `f64`, `f32`, `f16` or `i8`
    /// (`docs/STORAGE.md`, "Vector storage"); absent: its geometry's
    /// default ([`Datatype::default_for`]). One its geometry cannot use is
    /// refused with `invalid_datatype`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datatype: Option<Datatype>,
    /// How its search graph is built, e.g. `{"m": 8, "ef_construction":
    /// 64}` (`docs/STORAGE.md`, "Graph settings"); absent, or a setting
    /// left out: the server's (16 and 128). Out of range is refused with
    /// `invalid_graph`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSettings>,
}

fn default_visibility() -> String {
    "private".into()
}

/// `grant_access`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantArgs {
    /// A namespace the caller owns.
    pub namespace: String,
    /// The grantee.
    pub model: String,
    /// May read.
    #[serde(default)]
    pub read: bool,
    /// May write.
    #[serde(default)]
    pub write: bool,
}

/// `check_access`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckAccess {
    /// The namespace.
    pub namespace: String,
    /// `read` or `write`.
    pub kind: String,
}

/// `check_access`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessAnswer {
    /// Whether the caller may.
    pub allowed: bool,
    /// If not, the refusal's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// If not, which rule refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A namespace's access list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireNamespace {
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// `private`, `shared` or `public`.
    pub visibility: String,
    /// The network (its owner's region).
    pub network: String,
    /// Its manifold.
    pub geometry: GeometrySpec,
    /// Grants by model: `{"read": bool, "write": bool}`.
    pub grants: BTreeMap<String, WireGrant>,
    /// Members and their declared capabilities.
    pub members: BTreeMap<String, Vec<String>>,
    /// The retention it was created with; absent: the server's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// What its search graph stores: the one it was created with, or its
    /// geometry's default.
    pub datatype: Datatype,
    /// The graph settings it was created with; absent: the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<GraphSettings>,
}

/// One grant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireGrant {
    /// May read.
    pub read: bool,
    /// May write.
    pub write: bool,
}

/// One namespace in `list_namespaces`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireNamespaceSummary {
    /// Its name.
    pub name: String,
    /// Its owner.
    pub owner: String,
    /// `private`, `shared` or `public`.
    pub visibility: String,
    /// Its manifold.
    pub geometry: GeometrySpec,
    /// What its search graph stores (as in [`WireNamespace`]).
    pub datatype: Datatype,
    /// Vectors stored in it.
    pub vectors: u64,
}

/// `list_namespaces`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceList {
    /// The namespaces the caller may read, by name.
    pub namespaces: Vec<WireNamespaceSummary>,
}

/// `{deleted: bool}` (`delete_vector`, `delete_namespace`, `delete_block`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// Whether it was there.
    pub deleted: bool,
}

/// `store_vector`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreVector {
    /// The namespace.
    pub namespace: String,
    /// The point (must lie on the namespace's manifold).
    pub vector: Vec<f64>,
    /// An optional region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Metadata.
    #[serde(
        default,
        skip_serializing_if = "Metadata::is_empty",
        deserialize_with = "super::finite_metadata"
    )]
    pub metadata: Metadata,
}

/// One vector of `batch_store_vectors`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewWireVector {
    /// The point.
    pub vector: Vec<f64>,
    /// An optional region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Metadata.
    #[serde(
        default,
        skip_serializing_if = "Metadata::is_empty",
        deserialize_with = "super::finite_metadata"
    )]
    pub metadata: Metadata,
}

/// `batch_store_vectors`' arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchStoreVectors {
    /// The namespace of all of them.
    pub namespace: String,
    /// The vectors, stored all or none.
    pub vectors: Vec<NewWireVector>,
}

/// A stored vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireVector {
    /// Its id.
    pub id: String,
    /// Its namespace.
    pub namespace: String,
    /// The point (left out unless asked for, in `scroll`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f64>>,
    /// Its region.
    pub region: Option<String>,
    /// Its metadata.
    pub metadata: Metadata,
    /// 1, +1 per update.
    pub version: u64,
    /// Last write, ms since the epoch.
    pub timestamp_ms: u64,
}

fn yes() -> bool {
    true
}

/// `retrieve_vector`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrieveVector {
    /// The vector's id.
    pub id: String,
    /// With its coordinates (default true).
    #[serde(default = "yes")]
    pub with_vector: bool,
}

/// `retrieve_vectors`' arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrieveVectors {
    /// The ids.
    pub ids: Vec<String>,
    /// With their coordinates (default true).
    #[serde(default = "yes")]
    pub with_vector: bool,
}

/// `retrieve_vectors`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorsFound {
    /// The vectors found, in the order asked.
    pub vectors: Vec<WireVector>,
    /// The ids not found (or not readable by the caller).
    pub missing: Vec<String>,
}

/// `update_vector`'s arguments: what is given changes, the rest stays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateVector {
    /// The vector's id.
    pub id: String,
    /// New coordinates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f64>>,
    /// New metadata (replaces the old whole).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::finite_metadata_opt"
    )]
    pub metadata: Option<Metadata>,
    /// New region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Remove the region.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_region: bool,
    /// Only if the vector's version is this (else `version_conflict`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_version: Option<u64>,
}

/// `delete_vectors`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedIds {
    /// Deleted now.
    pub deleted: Vec<String>,
    /// Not there (or not the caller's to delete: see the error codes).
    pub missing: Vec<String>,
}

/// `delete_by_filter`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteByFilter {
    /// The namespace.
    pub namespace: String,
    /// Which vectors (required: there is no delete-all by accident).
    pub filter: Filter,
}

/// `delete_by_filter`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeletedCount {
    /// How many were deleted.
    pub deleted: u64,
}

/// `search`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// The namespace.
    pub namespace: String,
    /// The query point.
    pub vector: Vec<f64>,
    /// How many (default 10).
    #[serde(default = "default_k")]
    pub k: usize,
    /// Skip this many first.
    #[serde(default)]
    pub offset: usize,
    /// Only vectors whose metadata matches (see PROTOCOL.md, filters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Only vectors of this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Scan exactly instead of searching the graph.
    #[serde(default)]
    pub exact: bool,
    /// Candidates the graph search keeps (HNSW's `ef`): 1 to 10,000 (else
    /// `invalid_query`), at least `k + offset` is used; absent: the
    /// store's `IndexParams::expansion_search` (64 by default). Exact searches
    /// ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef: Option<usize>,
    /// Hits carry their coordinates.
    #[serde(default)]
    pub with_vector: bool,
}

impl Search {
    /// The `k` nearest to `vector` in `namespace`, every option at its
    /// default.
    pub fn new(namespace: impl Into<String>, vector: Vec<f64>, k: usize) -> Self {
        Self {
            namespace: namespace.into(),
            vector,
            k,
            offset: 0,
            filter: None,
            region: None,
            exact: false,
            ef: None,
            with_vector: false,
        }
    }
}

fn default_k() -> usize {
    10
}

/// `range_search`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangeSearch {
    /// The namespace.
    pub namespace: String,
    /// The centre.
    pub vector: Vec<f64>,
    /// Every vector at most this far (geodesic distance).
    pub radius: f64,
    /// At most this many, nearest first (default 100).
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Only vectors whose metadata matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Only vectors of this region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Hits carry their coordinates.
    #[serde(default)]
    pub with_vector: bool,
}

fn default_limit() -> usize {
    100
}

/// `batch_search`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSearch {
    /// The searches, answered in order.
    pub searches: Vec<Search>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireHit {
    /// The vector's id.
    pub id: String,
    /// Geodesic distance from the query.
    pub distance: f64,
    /// `1 / (1 + distance)`.
    pub score: f64,
    /// Position in the full result list, from 0.
    pub rank: usize,
    /// The vector's region.
    #[serde(default)]
    pub region: Option<String>,
    /// The vector's metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// Its coordinates, when asked for (`with_vector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f64>>,
}

/// `search`'s and `range_search`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hits {
    /// Nearest first.
    pub hits: Vec<WireHit>,
}

/// `batch_search`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchHits {
    /// One list of hits per search, in order.
    pub results: Vec<Vec<WireHit>>,
}

/// `count`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Count {
    /// The namespace.
    pub namespace: String,
    /// Only vectors whose metadata matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
}

/// `count`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    /// How many.
    pub count: u64,
}

/// `scroll`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scroll {
    /// The namespace.
    pub namespace: String,
    /// Start after this id (the previous page's `next`); absent: from the
    /// first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// At most this many (default 100).
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Only vectors whose metadata matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Vectors carry their coordinates.
    #[serde(default)]
    pub with_vector: bool,
}

/// `scroll`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrollPage {
    /// The page, in id order.
    pub vectors: Vec<WireVector>,
    /// Pass as `after` for the next page; `nil` when there is none.
    pub next: Option<String>,
}
