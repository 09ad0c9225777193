//! `hvs-contracts`: the model contract, `model_contract_hvs.json`, and the
//! encoders a contract names.
//!
//! What exists so far is the built-in deterministic text encoder,
//! [`TextEncoder`], used wherever text must become a vector (documentation
//! sections in storage now; text-only messages with the actor runtime).
//! The contract's schema, validation, permissions and rate limits arrive with
//! the actor-runtime issue.
//!
//! ```
//! let e = hvs_contracts::TextEncoder::default();
//! let v = e.encode("Hyperbolic space embeds hierarchies");
//! assert_eq!(v.len(), 256);
//! ```

mod text;

pub use text::TextEncoder;
