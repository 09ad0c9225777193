//! `hvs-wire`: the HVS wire protocol ([`protocol`]) and the Rust client
//! ([`Client`]) for model processes, apart from the server so that a client
//! links no database, index or actor system. `docs/PROTOCOL.md` is the same
//! protocol for someone writing a client in another language.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hvs_wire::ClientError> {
//! use hvs_wire::{Client, ClientConfig};
//! let contract = std::fs::read_to_string("examples/contracts/rust_agent.json").unwrap();
//! let client = Client::connect(ClientConfig::new("127.0.0.1:7411", contract)).await?;
//! let id = client.send("planner", b"hello".to_vec(), None).await?;
//! # let _ = id; Ok(()) }
//! ```
//!
//! # Layout
//! - [`protocol`]: frames, [`protocol::Request`] and every answer type.
//! - [`client`]: [`Client`], one connection acting as one model.

pub mod client;
pub mod protocol;

pub use client::{Client, ClientConfig, ClientError};
pub use hvs_types::{BlockContent, Datatype, Filter, GeometrySpec, Metadata};
