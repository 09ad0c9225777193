//! The actors' own rules, through `Hub` and `ModelRef`: what a refused
//! send costs (nothing), who may create and delete namespaces, and that a
//! disconnected handle refuses every call.

use std::path::Path;
use std::sync::Arc;

use hvs_actors::{
    AccessKind, ActorError, BroadcastScope, Hub, HubConfig, MailboxDefaults, ModelRef, Outgoing,
    VectorInput, Visibility,
};
use hvs_contracts::Contract;
use hvs_storage::{GeometrySpec, NewVector, SearchQuery, Store, StoreConfig};
use serde_json::json;

mod common;
use common::{contract, roomy};

fn hub(capacity: usize) -> Hub {
    let store = Arc::new(Store::open(StoreConfig::memory()).unwrap());
    let config = HubConfig {
        arbiters: 1,
        mailboxes: MailboxDefaults {
            capacity,
            ..MailboxDefaults::default()
        },
        ..HubConfig::default()
    };
    Hub::start(store, config).unwrap()
}

async fn connect(hub: &Hub, c: Contract) -> ModelRef {
    hub.connect_model(c, Path::new(".")).await.unwrap()
}

fn point() -> VectorInput {
    VectorInput::Point(vec![1.0, 0.0, 0.0])
}

fn message(bytes: usize) -> Outgoing {
    Outgoing {
        payload: vec![7; bytes],
        vector: point(),
        metadata: Default::default(),
        ttl_ms: None,
    }
}

/// The case: with a 1 MiB quota and a full mailbox, a refused
/// 400 kB send must not keep its quota charge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_refused_by_a_full_mailbox_gives_back_its_quota() {
    let hub = hub(1);
    let limits = json!({"max_vectors_per_second": 1000, "max_storage_mb": 1,
                        "max_queries_per_second": 1000});
    let a = connect(&hub, contract("a", limits, 500_000)).await;
    let b = connect(&hub, contract("b", roomy(), 4096)).await;

    let first = a.send_message("b", message(400_000)).await.unwrap();
    let full = a.send_message("b", message(400_000)).await.unwrap_err();
    assert_eq!(full.code(), "mailbox_full");
    let got = b.receive_messages(10).await.unwrap();
    b.ack(&[got[0].message.id]).await.unwrap();
    assert_eq!(got[0].message.id, first);
    // 400 kB + 400 kB is within 1 MiB: the refused send cost nothing.
    a.send_message("b", message(400_000)).await.unwrap();
    // And a third would pass the quota.
    b.ack(&[b.receive_messages(1).await.unwrap()[0].message.id])
        .await
        .unwrap();
    let over = a.send_message("b", message(400_000)).await.unwrap_err();
    assert_eq!(over.code(), "limit_exceeded");
    hub.shutdown();
}

/// Rate tokens taken by a send that is then refused come back, in a batch
/// (one refused among accepted ones) and in a broadcast alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sends_give_back_their_rate_tokens() {
    let hub = hub(100);
    let limits = json!({"max_vectors_per_second": 2, "max_storage_mb": 16,
                        "max_queries_per_second": 1000});
    let a = connect(&hub, contract("a", limits, 4096)).await;
    let _b = connect(&hub, contract("b", roomy(), 4096)).await;
    for _ in 0..5 {
        let e = a.send_message("nobody", message(1)).await.unwrap_err();
        assert_eq!(e.code(), "unknown_model");
    }
    let each = a
        .send_each(vec![
            ("nobody".into(), message(1)),
            ("b".into(), message(1)),
            ("nobody".into(), message(1)),
        ])
        .await
        .unwrap();
    assert_eq!(each.stored.unwrap().len(), 1);
    // One token of the two per second is left after all that.
    a.send_message("b", message(1)).await.unwrap();
    let e = a.send_message("b", message(1)).await.unwrap_err();
    assert_eq!(e.code(), "limit_exceeded");
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_created_where_the_contract_writes_and_deleted_by_their_owner() {
    let hub = hub(100);
    let a = connect(&hub, contract("a", roomy(), 4096)).await;
    let b = connect(&hub, contract("b", roomy(), 4096)).await;
    let h2 = GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    };
    let e = a
        .create_namespace("elsewhere", Visibility::Private, h2.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "permission_denied");
    a.create_namespace("team-x", Visibility::Public, h2.clone())
        .await
        .unwrap();
    a.store_vector(NewVector::new("team-x", vec![1.0, 0.0, 0.0]))
        .await
        .unwrap();
    let e = b.delete_namespace("team-x").await.unwrap_err();
    assert_eq!(e.code(), "permission_denied");
    assert!(matches!(
        a.delete_namespace("a").await.unwrap_err(),
        ActorError::InvalidRequest(_)
    ));
    assert!(a.delete_namespace("team-x").await.unwrap());
    assert_eq!(
        a.count("team-x", None).await.unwrap_err().code(),
        "unknown_namespace"
    );
    hub.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnected_handle_refuses_every_call() {
    let hub = hub(100);
    let a = connect(&hub, contract("a", roomy(), 4096)).await;
    let id = a.send_message("a", message(1)).await.unwrap();
    a.disconnect().await.unwrap();
    let gone = |r: Result<(), ActorError>| {
        assert!(
            matches!(r, Err(ActorError::Disconnected(_))),
            "answered after disconnect: {r:?}"
        )
    };
    gone(a.get_message(id).await.map(drop));
    gone(a.query("anything", 1).await.map(drop));
    gone(a.find_similar_states(&json!({"x": 1}), 1).await.map(drop));
    gone(a.get_state("a").await.map(drop));
    gone(a.namespace_info("a").await.map(drop));
    gone(a.check_access("a", AccessKind::Read).await);
    gone(a.mailbox().await.map(drop));
    gone(a.dead_letters().await.map(drop));
    gone(a.count("a", None).await.map(drop));
    gone(
        a.search_records(SearchQuery::new("a", vec![1.0, 0.0, 0.0], 1))
            .await
            .map(drop),
    );
    gone(
        a.broadcast(message(1), BroadcastScope::default())
            .await
            .map(drop),
    );
    gone(a.list_namespaces().await.map(drop));
    gone(a.get_block("x").await.map(drop));
    hub.shutdown();
}

/// A namespace deletion that stopped between its two commits (the vectors
/// gone from storage, the access list still in the catalog) is finished at
/// the next start: the name is free and nothing refers to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_cut_short_is_finished_at_the_next_start() {
    let store = Arc::new(Store::open(StoreConfig::memory()).unwrap());
    let config = HubConfig {
        arbiters: 1,
        ..HubConfig::default()
    };
    let h2 = GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    };
    let hub = Hub::start(store.clone(), config.clone()).unwrap();
    let a = connect(&hub, contract("a", roomy(), 4096)).await;
    a.create_namespace("team-x", Visibility::Private, h2.clone())
        .await
        .unwrap();
    hub.shutdown();
    // The first of the deletion's two commits, alone.
    assert!(store.delete_namespace("team-x").unwrap());

    let hub = Hub::start(store, config).unwrap();
    let a = connect(&hub, contract("a", roomy(), 4096)).await;
    let names: Vec<String> = a
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n.name)
        .collect();
    assert!(!names.contains(&"team-x".to_string()), "{names:?}");
    a.create_namespace("team-x", Visibility::Private, h2)
        .await
        .unwrap();
    hub.shutdown();
}
