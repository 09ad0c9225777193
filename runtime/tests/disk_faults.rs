//! A server whose disk fails writes: a `send` is refused with
//! `write_failed` over the wire and leaves no message behind, `search` and
//! `receive` go on, and `send` works again once the disk takes writes.

mod common;

use hvs_runtime::{
    Client, ClientConfig, Durability, Runtime, RuntimeConfig, Server, ServerConfig, StoreConfig,
};
use hvs_storage::{FaultSwitch, SearchQuery, Store};

use common::{contract, h2};

async fn client(server: &Server, id: &str) -> Client {
    let config = ClientConfig::new(server.local_addr().to_string(), contract(id).to_string());
    Client::connect(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_refuses_sends_over_the_wire_and_serves_searches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hvs.redb");
    let faults = FaultSwitch::new();
    let mut config = RuntimeConfig::file(&path, Durability::Buffered);
    config.store.faults = Some(faults.clone());
    let rt = Runtime::open(config).await.unwrap();
    let listen = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let server = Server::start(rt, listen, None).await.unwrap();
    let alice = client(&server, "alice").await;
    let bob = client(&server, "bob").await;

    let before = alice
        .send("bob", b"before".to_vec(), Some(h2(0.5, 1.0)))
        .await
        .unwrap();

    faults.fail_writes(true);
    for _ in 0..2 {
        let err = alice
            .send("bob", b"refused".to_vec(), Some(h2(0.9, 2.0)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "write_failed", "{err:?}");
    }
    // Reads go on: the stored message is found, the refused one is not.
    let hits = alice.search("alice", h2(0.5, 1.0), 1).await.unwrap();
    assert_eq!(hits[0].id, before);
    let near = alice.search("alice", h2(0.9, 2.0), 1).await.unwrap();
    assert_eq!(near[0].id, before, "the refused message is not stored");
    assert!(near[0].distance > 0.1);
    // Bob's mailbox holds only what was stored.
    let got = bob.receive(10).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|d| d.message.id.as_str()).collect();
    assert_eq!(ids, vec![before.as_str()]);

    faults.heal();
    let after = alice
        .send("bob", b"after".to_vec(), Some(h2(0.7, 3.0)))
        .await
        .unwrap();
    let got = bob.receive(10).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|d| d.message.id.as_str()).collect();
    assert_eq!(ids, vec![after.as_str()]);
    let hits = alice.search("alice", h2(0.7, 3.0), 1).await.unwrap();
    assert_eq!(hits[0].id, after);

    alice.close().await.unwrap();
    bob.close().await.unwrap();
    server.shutdown().await.unwrap();

    // In the file: both acknowledged messages, not the refused ones.
    let store = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    for id in [&before, &after] {
        let id = uuid::Uuid::parse_str(id).unwrap();
        assert!(store.get_message(id).unwrap().is_some());
    }
    let near = store
        .semantic_search(&SearchQuery::new("alice", h2(0.9, 2.0), 1))
        .unwrap();
    assert!(near[0].distance > 0.1, "the refused message is not stored");
    assert!(store.verify_consistency().unwrap().consistent);
}
