//! `hvs-contracts`: the model contract, `model_contract_hvs.json` — how a
//! model binds to HVS, what it may do, how much, and how its messages
//! become points of its space.
//!
//! A contract is validated as a whole: every problem is listed with its
//! JSON path, unknown fields are kept and reported as warnings. From a valid
//! contract come the space's manifold, the model's [`Permissions`]
//! (namespace globs), its [`RateLimiter`] (token buckets, a storage quota,
//! a message-size cap) and its [`MessageEncoder`], which turns a message —
//! a point, an embedding or bare text — into a point of the manifold.
//! `docs/CONTRACTS.md` describes the format; `examples/contracts/` holds
//! valid contracts and `contracts/schema/model_contract_hvs.schema.json` a
//! JSON Schema for editors.
//!
//! ```
//! use std::path::Path;
//! use std::time::{Duration, Instant};
//! use hvs_contracts::{Contract, ContractError, Limit};
//! use hvs_geometry::Manifold;
//!
//! # fn main() -> Result<(), ContractError> {
//! let contract = Contract::from_json(r#"{
//!   "contract_version": "1.0.0",
//!   "model": {"id": "agent-7", "name": "Agent 7", "version": "0.1.0",
//!             "type": "agent", "capabilities": ["planning"]},
//!   "hvs_binding": {"hvs_id": "hvs-local", "region": "local",
//!                   "namespace": "agent-7", "geometry": "hyperboloid", "dimension": 8},
//!   "vector_spec": {"input_dimension": 32, "output_dimension": 8, "encoding": "geometric",
//!                   "encoder": {"type": "random_projection", "seed": 7}},
//!   "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
//!       "max_message_size_bytes": 65536, "timeout_ms": 1000,
//!       "retry": {"max_attempts": 2, "backoff_ms": [50, 200]}},
//!   "permissions": {"read_namespaces": ["*"], "write_namespaces": ["agent-7", "team-*"],
//!                   "broadcast": false, "query_other_models": true},
//!   "resource_limits": {"max_vectors_per_second": 100, "max_storage_mb": 64,
//!                       "max_queries_per_second": 1000}
//! }"#)?;
//! assert!(contract.warnings().is_empty());
//!
//! // The space: 8 intrinsic dimensions, points with 9 coordinates.
//! let space = contract.manifold()?;
//! assert_eq!((space.dim(), space.ambient_dim()), (8, 9));
//!
//! // Messages become points, from an embedding or from text alone.
//! let encoder = contract.encoder(Path::new("."))?;
//! let p = encoder.encode_embedding(&[0.1; 32])?;
//! let q = encoder.encode_text("plan the route through the hierarchy")?;
//! assert!(space.check(&p).is_ok() && space.check(&q).is_ok());
//!
//! // Permissions are globs; limits are token buckets with a given clock.
//! assert!(contract.permissions.can_write("team-blue"));
//! assert!(!contract.permissions.can_write("other"));
//! let t0 = Instant::now();
//! let limiter = contract.rate_limiter(t0);
//! limiter.acquire_vectors(100, t0)?;
//! match limiter.acquire_vectors(1, t0) {
//!     Err(ContractError::LimitExceeded { limit, retry_after, .. }) => {
//!         assert_eq!(limit, Limit::VectorsPerSecond);
//!         assert_eq!(retry_after, Some(Duration::from_millis(10)));
//!     }
//!     other => panic!("expected a refusal, got {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Contract`] and its sections (`contract.rs`); validation of the JSON
//!   document, every problem with its path (`validate.rs`).
//! - [`Permissions`] and [`glob_match`] (`permissions.rs`).
//! - [`RateLimiter`] (`limits.rs`): GCRA token buckets on one atomic word.
//! - [`Encoder`], [`MessageEncoder`], [`DenseLayer`] (`encoder.rs`): the
//!   identity, random-projection and MLP encoders and the map onto the
//!   manifold.
//! - [`TextEncoder`] (`text.rs`): the built-in deterministic text encoder.
//! - [`ContractError`], [`Problem`], [`Limit`] (`error.rs`).

mod contract;
mod encoder;
mod error;
mod limits;
mod permissions;
mod text;
mod validate;

pub use contract::{
    Activation, CommunicationProtocol, Contract, EncoderKind, EncoderSpec, Extra, Factor,
    GeometryKind, HealthCheck, HvsBinding, ModelInfo, ResourceLimits, RetryPolicy, VectorSpec,
};
pub use encoder::{DenseLayer, Encoder, HYPERBOLIC_RADIUS, MessageEncoder};
pub use error::{ContractError, Limit, Problem};
pub use limits::RateLimiter;
pub use permissions::{Permissions, glob_match};
pub use text::TextEncoder;
pub use validate::{MAX_DIMENSION, MAX_MESSAGE_SIZE, MAX_PROJECTION_ENTRIES};
