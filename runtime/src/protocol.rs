//! The wire protocol: frames, requests, responses and pushes, as the server
//! and the Rust client see them. `docs/PROTOCOL.md` is the same thing for
//! someone writing a client in another language.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes of
//! msgpack. Every value is a msgpack map with named fields (rmp-serde's
//! `to_vec_named`), ids are UUID strings, vectors arrays of floats,
//! payloads `bin`.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use hvs_storage::{BlockContent, Filter, GeometrySpec, Metadata};

/// The protocol versions this build speaks; the handshake picks the highest
/// one both sides list.
pub const PROTOCOL_VERSIONS: &[u32] = &[1];

/// Default largest frame either side accepts (16 MiB).
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// What a client sends: a request id of its choosing (unique among its
/// requests in flight), the operation and its arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    pub id: u64,
    /// The operation's name (`send`, `search`, …).
    pub op: String,
    /// The operation's arguments (a map; may be absent when it takes none).
    #[serde(default = "nil")]
    pub args: rmpv::Value,
}

fn nil() -> rmpv::Value {
    rmpv::Value::Nil
}

/// What the server sends: a response (with the request's id) or a push.
/// Variants are tried in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerFrame {
    /// A refusal or failure of request `id` (`None`: a frame that could not
    /// be read far enough to find its id).
    Error {
        /// The request's id, when known.
        id: Option<u64>,
        /// What went wrong.
        error: WireError,
    },
    /// Something the server sends unasked.
    Push(Push),
    /// The answer to request `id`. (Last: an untagged `ok` of any value
    /// would also read an error frame.)
    Ok {
        /// The request's id.
        id: u64,
        /// The operation's result.
        ok: rmpv::Value,
    },
}

/// A server push.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "push", rename_all = "snake_case")]
pub enum Push {
    /// A message for this model (after `subscribe`).
    Delivery {
        /// The message.
        delivery: WireDelivery,
    },
    /// The server is about to close the connection.
    Closing {
        /// A stable code (`shutting_down`, `heartbeat_timeout`, `replaced`, …).
        code: String,
        /// Why, for people.
        reason: String,
    },
}

/// An error on the wire: a stable code, a message, and for rate limits
/// when to try again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// Stable, machine-readable (`permission_denied`, `rate_limited`, …).
    pub code: String,
    /// For people.
    pub message: String,
    /// Milliseconds until a retry can succeed (rate limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl WireError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// Codes of errors the protocol layer itself answers with.
pub mod codes {
    /// A frame that is not a msgpack request.
    pub const BAD_FRAME: &str = "bad_frame";
    /// A frame longer than the limit (the connection is closed).
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    /// An operation the server does not know.
    pub const UNKNOWN_OP: &str = "unknown_op";
    /// Arguments that do not fit the operation.
    pub const BAD_REQUEST: &str = "bad_request";
    /// A request before `hello`.
    pub const HANDSHAKE_REQUIRED: &str = "handshake_required";
    /// A second `hello`.
    pub const ALREADY_GREETED: &str = "already_greeted";
    /// No protocol version in common.
    pub const UNSUPPORTED_VERSION: &str = "unsupported_version";
    /// A contract the server cannot read.
    pub const INVALID_CONTRACT: &str = "invalid_contract";
    /// The server's connection limit is reached.
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    /// The server is shutting down.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// Nothing heard from the client within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: &str = "heartbeat_timeout";
    /// Another connection claimed the same model.
    pub const REPLACED: &str = "replaced";
    /// The server failed (a bug or a fault, not the request).
    pub const INTERNAL: &str = "internal";
}

/// `hello`'s arguments: the first request on a connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol versions the client speaks.
    pub versions: Vec<u32>,
    /// The model's contract, as the text of `model_contract_hvs.json`.
    pub contract: String,
    /// The operator's token (required when the server has a tokens file).
    #[serde(default)]
    pub token: Option<String>,
    /// The client's name and version, for logs.
    #[serde(default)]
    pub client: Option<String>,
}

/// `hello`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The version chosen.
    pub version: u32,
    /// The server's name and version.
    pub server: String,
    /// The model this connection acts as.
    pub model: String,
    /// Its home namespace.
    pub namespace: String,
    /// Send something (a `ping` if nothing else) at least this often.
    pub heartbeat_interval_ms: u64,
    /// Silent this long, the model is marked disconnected.
    pub heartbeat_timeout_ms: u64,
    /// The largest frame the server accepts.
    pub max_frame_bytes: u64,
    /// Requests the server reads ahead per connection before it waits.
    pub max_in_flight: u64,
}

/// `ping`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// The server's clock, ms since the Unix epoch.
    pub now_ms: u64,
}

/// A message to send (`send`, `send_batch`, `broadcast`). At most one of
/// `vector` (a point of the sender's space, projected onto it) and
/// `embedding` (run through the contract's encoder); neither: the text
/// encoder reads the payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireOutgoing {
    /// The recipient (`send`, `send_batch`; ignored by `broadcast`).
    #[serde(default)]
    pub to: String,
    /// The payload.
    #[serde(default, with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// A point of the sender's space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f64>>,
    /// An embedding for the contract's encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f64>>,
    /// Searchable metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
    /// Time to live in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// `send_batch`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendBatch {
    /// The messages, each with its `to`.
    pub messages: Vec<WireOutgoing>,
}

/// `broadcast`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireBroadcast {
    /// The message (its `to` is ignored).
    #[serde(flatten)]
    pub message: WireOutgoing,
    /// Only the members of this namespace (default: every connected model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Models left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// A stored message as its recipient sees it (`receive`, pushes,
/// `get_message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// Its id (UUID v7); ack by it; a redelivery carries the same id.
    pub id: String,
    /// The sender.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The namespace whose index holds its vector.
    pub namespace: String,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Its point.
    pub vector: Vec<f64>,
    /// The sender's metadata.
    pub metadata: Metadata,
    /// When it was sent (ms since the epoch).
    pub sent_ms: u64,
    /// When it stops being delivered, if ever.
    pub expires_ms: Option<u64>,
}

/// A message handed to its recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireDelivery {
    /// The message.
    #[serde(flatten)]
    pub message: WireMessage,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u32,
    /// Ack before this (ms since the epoch) or it is delivered again.
    pub deadline_ms: u64,
}

/// Arguments naming nothing but a count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Receive {
    /// At most this many (default 100).
    #[serde(default = "default_receive")]
    pub max: usize,
}

fn default_receive() -> usize {
    100
}

/// Arguments naming message ids (`ack`, `release`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ids {
    /// The ids.
    pub ids: Vec<String>,
}

/// Arguments naming one id (`get_message`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdArg {
    /// The id.
    pub id: String,
}

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
}

/// One grant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireGrant {
    /// May read.
    pub read: bool,
    /// May write.
    pub write: bool,
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
}

/// A stored vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireVector {
    /// Its id.
    pub id: String,
    /// Its namespace.
    pub namespace: String,
    /// The point.
    pub vector: Vec<f64>,
    /// Its region.
    pub region: Option<String>,
    /// Its metadata.
    pub metadata: Metadata,
    /// 1, +1 per update.
    pub version: u64,
    /// Last write, ms since the epoch.
    pub timestamp_ms: u64,
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
}

fn default_k() -> usize {
    10
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
}

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
    #[serde(default)]
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
    pub schema: serde_json::Value,
}

/// `update_state`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateState {
    /// The new state.
    pub state: serde_json::Value,
}

/// `get_state`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GetState {
    /// Whose state.
    pub model: String,
}

/// `find_similar_states`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarStates {
    /// The state to compare with.
    pub state: serde_json::Value,
    /// How many (default 10).
    #[serde(default = "default_k")]
    pub k: usize,
}

/// `store_block`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreBlock {
    /// A unique name.
    pub name: String,
    /// `{"text": "..."}`, `{"json": any}` or `{"bytes": bin}`.
    pub content: BlockContent,
    /// Kept as shared knowledge (default) or, when false, a cache block
    /// that expires.
    #[serde(default = "default_true")]
    pub persist: bool,
}

fn default_true() -> bool {
    true
}

/// `update_block`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateBlock {
    /// The block's name.
    pub name: String,
    /// The new content.
    pub content: BlockContent,
}

/// `query_blocks`'s arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryBlocks {
    /// What to look for, in words.
    pub text: String,
    /// How many (default 10).
    #[serde(default = "default_k")]
    pub k: usize,
}

/// A block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireBlock {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its class (`shared_knowledge`, `cache`, …).
    pub class: String,
    /// Its content.
    pub content: BlockContent,
    /// Updates and deletes are refused.
    pub readonly: bool,
    /// 1, +1 per update.
    pub version: u64,
    /// Created, ms since the epoch.
    pub created_ms: u64,
    /// Last updated.
    pub updated_ms: u64,
    /// When it expires, if it does.
    pub expires_ms: Option<u64>,
}

/// A section of a block found by `query_blocks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireBlockHit {
    /// The block's id.
    pub block_id: String,
    /// Its name.
    pub name: String,
    /// The section's heading, if any.
    pub section: Option<String>,
    /// The section's text.
    pub text: String,
    /// Distance.
    pub distance: f64,
    /// `1 / (1 + distance)`.
    pub score: f64,
    /// Position from 0.
    pub rank: usize,
}

/// `stats`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireStats {
    /// Per namespace: vectors, in_graph, fresh, unreachable.
    pub namespaces: BTreeMap<String, WireNamespaceStats>,
    /// Database file size.
    pub bytes_on_disk: u64,
    /// Last change-feed number.
    pub last_change: u64,
    /// Commits since the server started.
    pub commits: u64,
    /// Requests those commits carried.
    pub commit_requests: u64,
    /// Open connections.
    pub connections: u64,
    /// Known models and whether each is connected.
    pub models: BTreeMap<String, bool>,
    /// The caller's mailbox: waiting, in flight.
    pub mailbox_pending: usize,
    /// Received and not acked.
    pub mailbox_in_flight: usize,
}

/// One namespace in [`WireStats`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WireNamespaceStats {
    /// Vectors stored.
    pub vectors: usize,
    /// In the HNSW graph.
    pub in_graph: usize,
    /// In the exact fresh buffer.
    pub fresh: usize,
    /// Graph nodes found only by the overflow graph or exact scan.
    pub unreachable: usize,
}

/// Encodes a value as msgpack with named fields (a map per struct).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    rmp_serde::to_vec_named(value).map_err(|e| WireError::new(codes::INTERNAL, e.to_string()))
}

/// The deepest nesting a frame may have. rmp-serde's own default (1024)
/// overflows a 2 MiB thread stack when every level is a JSON value in
/// metadata; no request needs more than a few levels.
pub const MAX_DEPTH: usize = 64;

fn from_slice<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, rmp_serde::decode::Error> {
    from_slice_to(bytes, MAX_DEPTH)
}

fn from_slice_to<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    depth: usize,
) -> Result<T, rmp_serde::decode::Error> {
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(depth);
    T::deserialize(&mut de)
}

/// Reads a request's id and operation. The arguments are skipped, not
/// built, so a deeper limit is safe here: a request whose arguments nest
/// too deep still has its id read, and its refusal (`bad_request`) reaches
/// the caller.
pub fn decode_head(bytes: &[u8]) -> Result<RequestHead, WireError> {
    from_slice_to(bytes, 1024).map_err(|e| WireError::new(codes::BAD_FRAME, e.to_string()))
}

/// Decodes one frame's msgpack. Nesting is limited to [`MAX_DEPTH`], and
/// lengths inside cannot exceed the frame, which is bounded.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, WireError> {
    from_slice(bytes).map_err(|e| WireError::new(codes::BAD_FRAME, e.to_string()))
}

/// A request's id and operation, read without its arguments (which the
/// operation then reads from the same frame with [`args_of`]).
#[derive(Debug, Clone, Deserialize)]
pub struct RequestHead {
    /// The request's id.
    pub id: u64,
    /// The operation.
    pub op: String,
}

/// Reads the `args` of a request frame as `T`, straight from the frame's
/// bytes. Absent or nil arguments read as an empty map, so operations
/// whose arguments all have defaults need none.
pub fn args_of<T: serde::de::DeserializeOwned>(frame: &[u8]) -> Result<T, WireError> {
    #[derive(Deserialize)]
    struct Only<T> {
        #[serde(default = "Option::default")]
        args: Option<T>,
    }
    let bad = |e: rmp_serde::decode::Error| WireError::new(codes::BAD_REQUEST, e.to_string());
    match from_slice::<Only<T>>(frame).map_err(bad)? {
        Only { args: Some(a) } => Ok(a),
        // 0x80: an empty msgpack map.
        Only { args: None } => from_slice(&[0x80]).map_err(bad),
    }
}

/// Turns a result into the `ok` value of a response.
pub fn value<T: Serialize>(v: &T) -> Result<rmpv::Value, WireError> {
    // rmpv's own serializer writes structs as arrays; go through bytes to
    // keep the field names.
    let bytes = encode(v)?;
    rmpv::decode::read_value(&mut bytes.as_slice())
        .map_err(|e| WireError::new(codes::INTERNAL, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_and_absent_args_read_as_defaults() {
        let r = Request {
            id: 7,
            op: "receive".into(),
            args: rmpv::Value::Nil,
        };
        let bytes = encode(&r).unwrap();
        let back: RequestHead = decode(&bytes).unwrap();
        assert_eq!((back.id, back.op.as_str()), (7, "receive"));
        let rc: Receive = args_of(&bytes).unwrap();
        assert_eq!(rc.max, 100);
    }

    #[test]
    fn responses_and_pushes_are_told_apart() {
        let frames = [
            ServerFrame::Ok {
                id: 1,
                ok: rmpv::Value::Nil,
            },
            ServerFrame::Error {
                id: Some(2),
                error: WireError::new("x", "y"),
            },
            ServerFrame::Push(Push::Closing {
                code: "shutting_down".into(),
                reason: "bye".into(),
            }),
        ];
        for f in frames {
            let back: ServerFrame = decode(&encode(&f).unwrap()).unwrap();
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&f),
                "{f:?}"
            );
        }
    }

    /// PROTOCOL.md promises both: a `str` payload is read as its UTF-8
    /// bytes, and integers are accepted where floats are expected.
    #[test]
    fn a_text_payload_and_integer_coordinates_are_accepted() {
        let r = Request {
            id: 1,
            op: "send".into(),
            args: rmpv::Value::Map(vec![
                ("to".into(), "b".into()),
                ("payload".into(), "héllo".into()),
                (
                    "vector".into(),
                    rmpv::Value::Array(vec![1.into(), 0.into(), 0.5.into()]),
                ),
            ]),
        };
        let m: WireOutgoing = args_of(&encode(&r).unwrap()).unwrap();
        assert_eq!(m.payload, "héllo".as_bytes());
        assert_eq!(m.vector, Some(vec![1.0, 0.0, 0.5]));
    }

    #[test]
    fn wrong_arguments_are_a_bad_request_not_a_panic() {
        let r = Request {
            id: 1,
            op: "receive".into(),
            args: rmpv::Value::Map(vec![("max".into(), "many".into())]),
        };
        let bytes = encode(&r).unwrap();
        assert_eq!(
            args_of::<Receive>(&bytes).unwrap_err().code,
            codes::BAD_REQUEST
        );
        assert_eq!(
            decode::<RequestHead>(b"\xc1").unwrap_err().code,
            codes::BAD_FRAME
        );
    }
}
