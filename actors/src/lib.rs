//! `hvs-actors`: the actix actors of HVS and the handles that drive them.
//!
//! A [`Hub`] runs a directory actor, one actor per known model (its
//! contract, rate limits and mailbox) and one per namespace (its access
//! list, shared-space work and consensus; started at the namespace's
//! first request, so an idle model's home namespace runs none), spread
//! over one arbiter per core. Storage calls that wait (commits, searches, means) run on tokio's
//! blocking pool, never on an actor's thread. Nothing above this crate
//! names an actix type: [`Hub`] and [`ModelRef`] speak in plain types and
//! futures.
//!
//! ```
//! use std::path::Path;
//! use std::sync::Arc;
//! use hvs_actors::{Hub, HubConfig, Outgoing};
//! use hvs_contracts::Contract;
//! use hvs_storage::{Store, StoreConfig};
//!
//! # fn contract(id: &str) -> Contract {
//! #     let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"),
//! #         "/../examples/contracts/text_chat_model.json")).unwrap();
//! #     let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
//! #     v["model"]["id"] = id.into();
//! #     v["hvs_binding"]["namespace"] = id.into();
//! #     v["permissions"]["write_namespaces"] = serde_json::json!([id]);
//! #     Contract::from_value(v).unwrap()
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), hvs_actors::ActorError> {
//! let store = Arc::new(Store::open(StoreConfig::memory())?);
//! let hub = Hub::start(store, HubConfig::default())?;
//! let alice = hub.connect_model(contract("alice"), Path::new(".")).await?;
//! let bob = hub.connect_model(contract("bob"), Path::new(".")).await?;
//!
//! let id = alice.send_message("bob", Outgoing::text("the route is clear")).await?;
//! let got = bob.receive_messages(10).await?;
//! assert_eq!(got[0].message.id, id);
//! assert_eq!(got[0].message.payload, b"the route is clear");
//! bob.ack(&[id]).await?;
//! hub.shutdown();
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Hub`], [`ModelRef`] (`hub.rs`): the handles.
//! - `directory.rs`: the directory actor — connects models, creates
//!   namespaces, restores both after a restart.
//! - `model.rs`: the model actor — sending ([`Outgoing`], [`VectorInput`]),
//!   the mailbox, [`Delivery`], acks, dead letters.
//! - `namespace.rs`: the namespace actor — access ([`Visibility`],
//!   [`Grant`], [`AccessKind`]), shared spaces, [`ConsensusReport`].
//! - `registry.rs`: what every actor may look up; [`IsolationPolicy`].
//! - [`Cluster`] (`cluster.rs`, `cluster/`): many instances on NATS
//!   JetStream — the change feed's publisher and one `SyncActor` per sync
//!   job (`docs/SYNC.md`).
//! - `bridge.rs`, `bridge/`: one `BridgeActor` per bridge — shared,
//!   federated (over NATS request/reply), cross-manifold
//!   (`docs/BRIDGES.md`); driven through [`Hub::create_bridge`].
//! - [`ActorError`] (`error.rs`).
//!
//! The delivery guarantees are written down in `docs/SEMANTICS.md`.

mod admission;
mod blocks;
mod bridge;
mod cluster;
mod directory;
mod error;
mod hub;
mod model;
mod namespace;
mod registry;
mod state;
mod vectors;

pub use blocks::BlockSettings;
pub use cluster::{
    Cluster, ClusterConfig, GroupStatus, ReadRepairStatus, Replication, Role, feed_subject,
    replication_name, stream_name,
};
pub use directory::MailboxDefaults;
pub use error::{ActorError, Result};
pub use hub::{
    BroadcastScope, DeliveryStream, Hub, HubConfig, ModelRef, ModelState, STATES_NAMESPACE,
};
pub use hvs_mailbox::OverflowPolicy;
pub use model::{
    AckReport, BroadcastReport, DeadLetterInfo, Delivery, EachOutcome, MailboxStats, Outgoing,
    VectorInput,
};
pub use namespace::{
    AccessKind, ConsensusReport, Grant, NamespaceInfo, NamespaceOptions, SharedHit, Visibility,
};
pub use registry::IsolationPolicy;
pub use vectors::RecordHits;
