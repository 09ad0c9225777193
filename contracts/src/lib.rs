//! `hvs-contracts`: the model contract, `model_contract_hvs.json`.
//!
//! This crate will own the contract's schema and validation (every problem
//! listed with its JSON path), permissions, resource limits (token buckets) and
//! the message→vector encoders a contract names. It depends only on
//! `hvs-geometry` and knows nothing of actors or storage.
//!
//! It holds no code yet: the contract work is tracked by the issue on the actor
//! runtime, and nothing here pretends to be done before that lands.
