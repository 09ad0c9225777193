//! `hvs-actors`: the actix actors of HVS.
//!
//! This crate will own the directory, one actor per connected model, per
//! namespace/space, per bridge and per sync job, and the messages between
//! them. Nothing above this crate names an actix type.
//!
//! It holds no code yet: the actor work is tracked by its own issue.
