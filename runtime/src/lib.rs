//! `hvs-runtime`: the in-process API, configuration, server and clients.
//!
//! This crate will own `Runtime` and `ModelHandle` (the in-process API), the
//! configuration, the TCP server and its wire protocol, the Rust client,
//! metrics and tracing set-up.
//!
//! It holds no code yet: the in-process API arrives with the actor runtime
//! issue, the server and clients with the network issue.
