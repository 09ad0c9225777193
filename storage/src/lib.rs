//! `hvs-storage`: the durable truth of HVS.
//!
//! This crate will own the redb database (vectors, blocks, mailbox rows,
//! contracts, change feed, audit log), the in-memory geometry-aware HNSW index
//! per space (built on `usearch`, with `hnsw_rs` kept as the benchmark
//! reference), the durability levels `memory` / `buffered` / `sync`, recovery
//! and consistency checks. It knows nothing of actors or networking.
//!
//! It holds no code yet: the storage work is tracked by its own issue.
