//! A server whose store refuses writes after a disk fault, seen from
//! outside: `/health` says `degraded` with the store's reason and
//! `/metrics` has `hvs_store_writable 0` until the store takes writes
//! again; a model connecting meanwhile, whose contract must be stored,
//! connects read-only (its welcome says so and why), reads, searches and
//! receives, has its writes refused with `write_failed`, and is stored
//! normally when it connects again after the fault.

mod common;

use std::net::SocketAddr;

use hvs_runtime::protocol as p;
use hvs_runtime::{
    Client, ClientConfig, Durability, Runtime, RuntimeConfig, Server, ServerConfig, StoreConfig,
};
use hvs_storage::{FaultSwitch, Store};
use serde_json::Value;

use common::{contract, h2};

/// A server on a file whose disk `faults` can fail, with its admin port;
/// and its store, to look at what reached it.
async fn start(path: &std::path::Path, faults: &FaultSwitch) -> (Server, std::sync::Arc<Store>) {
    let mut config = RuntimeConfig::file(path, Durability::Buffered);
    config.store.faults = Some(faults.clone());
    let rt = Runtime::open(config).await.unwrap();
    let store = rt.storage().clone();
    let listen = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    };
    (Server::start(rt, listen, None).await.unwrap(), store)
}

async fn connect(server: &Server, contract: &Value) -> Client {
    let config = ClientConfig::new(server.local_addr().to_string(), contract.to_string());
    Client::connect(config).await.unwrap()
}

/// The body of `GET path` on the admin port.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (_, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    body.to_string()
}

async fn health(server: &Server) -> Value {
    let body = http_get(server.admin_addr().unwrap(), "/health").await;
    serde_json::from_str(&body).unwrap()
}

async fn metrics(server: &Server) -> String {
    http_get(server.admin_addr().unwrap(), "/metrics").await
}

/// Checks that `/health` and `/metrics` show a store taking writes;
/// returns the health page.
async fn assert_healthy(server: &Server) -> Value {
    let h = health(server).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["reason"], Value::Null, "{h}");
    assert_eq!(h["store_writable"], true, "{h}");
    let text = metrics(server).await;
    assert!(text.contains("\nhvs_store_writable 1\n"), "{text}");
    h
}

fn assert_refused(result: Result<impl std::fmt::Debug, hvs_runtime::ClientError>, what: &str) {
    let err = result.expect_err(what);
    assert_eq!(err.code(), "write_failed", "{what}: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_show_a_store_refusing_writes_until_it_takes_them_again() {
    let dir = tempfile::tempdir().unwrap();
    let faults = FaultSwitch::new();
    let (server, _) = start(&dir.path().join("hvs.redb"), &faults).await;
    let alice = connect(&server, &contract("alice")).await;
    alice
        .send("alice", b"before".to_vec(), Some(h2(0.5, 1.0)))
        .await
        .unwrap();
    let ok = assert_healthy(&server).await;

    faults.fail_writes(true);
    assert_refused(
        alice
            .send("alice", b"refused".to_vec(), Some(h2(0.9, 2.0)))
            .await,
        "a send on a full disk",
    );
    let degraded = health(&server).await;
    assert_eq!(degraded["status"], "degraded", "{degraded}");
    assert_eq!(degraded["store_writable"], false, "{degraded}");
    let reason = degraded["reason"].as_str().unwrap();
    assert!(reason.starts_with("writes are refused"), "{reason}");
    // The disk's own error, as the fault switch makes it (ENOSPC).
    assert!(reason.contains("os error 28"), "{reason}");
    let text = metrics(&server).await;
    assert!(text.contains("\nhvs_store_writable 0\n"), "{text}");
    // Reads go on, and the page still counts what is stored.
    assert_eq!(degraded["vectors"], ok["vectors"], "{degraded}");

    // The store finds the disk healed at its next write.
    faults.heal();
    alice
        .send("alice", b"after".to_vec(), Some(h2(0.7, 3.0)))
        .await
        .unwrap();
    assert_healthy(&server).await;

    alice.close().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_connecting_during_a_disk_fault_reads_but_cannot_write_until_it_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hvs.redb");
    let faults = FaultSwitch::new();
    let (server, store) = start(&path, &faults).await;

    // Before the fault: a public namespace with a vector in it, and a
    // message waiting for bob, who then leaves.
    let alice = connect(&server, &contract("alice")).await;
    alice
        .create_namespace(&p::CreateNamespace {
            name: "team-a".into(),
            visibility: "public".into(),
            geometry: hvs_runtime::GeometrySpec::Hyperboloid {
                dim: 2,
                curvature: 1.0,
            },
            retention: None,
            datatype: None,
            graph: None,
        })
        .await
        .unwrap();
    let stored = alice
        .store_vector(&p::StoreVector {
            namespace: "team-a".into(),
            vector: h2(0.4, 0.5),
            ..p::StoreVector::default()
        })
        .await
        .unwrap();
    let bob = connect(&server, &contract("bob")).await;
    assert!(!bob.welcome().await.unwrap().read_only);
    bob.close().await.unwrap();
    let waiting = alice
        .send("bob", b"hello bob".to_vec(), Some(h2(0.3, 1.0)))
        .await
        .unwrap();

    faults.fail_writes(true);
    // Carol is new: her home namespace and contract must be stored. Bob
    // comes back with a changed contract, which must be stored too.
    let carol = connect(&server, &contract("carol")).await;
    let mut changed = contract("bob");
    changed["model"]["version"] = "0.2.0".into();
    let bob = connect(&server, &changed).await;
    for (who, client) in [("carol", &carol), ("bob", &bob)] {
        let welcome = client.welcome().await.unwrap();
        assert!(welcome.read_only, "{who}: {welcome:?}");
        let reason = welcome.read_only_reason.unwrap_or_default();
        assert!(reason.contains("os error 28"), "{who}: {reason}");
        assert_eq!(welcome.role, None, "{who}");
    }
    // Nothing of carol's registration is stored, nor bob's new contract.
    assert!(store.namespace("carol").is_err());
    let contracts = store.catalog_list("model").unwrap();
    assert!(!contracts.iter().any(|(id, _)| id == "carol"));
    let bob_stored: Value =
        serde_json::from_slice(&contracts.iter().find(|(id, _)| id == "bob").unwrap().1).unwrap();
    assert_eq!(bob_stored["contract"]["model"]["version"], "0.1.0");

    // They read, search and receive.
    for client in [&carol, &bob] {
        let hits = client.search("team-a", h2(0.4, 0.5), 1).await.unwrap();
        assert_eq!(hits[0].id, stored.id);
        assert!(client.retrieve_vector(&stored.id).await.unwrap().is_some());
    }
    let got = bob.receive(10).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|d| d.message.id.as_str()).collect();
    assert_eq!(ids, vec![waiting.as_str()]);

    // Their writes are refused, with the session's reason...
    for (who, client) in [("carol", &carol), ("bob", &bob)] {
        let sent = client
            .send("alice", b"x".to_vec(), Some(h2(0.2, 0.1)))
            .await;
        assert_refused(sent, who);
        let v = p::StoreVector {
            namespace: "team-a".into(),
            vector: h2(0.2, 0.2),
            ..p::StoreVector::default()
        };
        assert_refused(client.store_vector(&v).await, who);
    }
    // ...and still once the store takes writes again (alice's write shows
    // it does): their contracts are not stored until they connect again.
    faults.heal();
    alice
        .send("alice", b"after".to_vec(), Some(h2(0.7, 3.0)))
        .await
        .unwrap();
    let err = carol
        .send("alice", b"x".to_vec(), Some(h2(0.2, 0.1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "write_failed");
    assert!(err.to_string().contains("connect again"), "{err}");

    carol.close().await.unwrap();
    bob.close().await.unwrap();
    let carol = connect(&server, &contract("carol")).await;
    let bob = connect(&server, &changed).await;
    for client in [&carol, &bob] {
        let welcome = client.welcome().await.unwrap();
        assert!(!welcome.read_only, "{welcome:?}");
        assert_eq!(welcome.read_only_reason, None);
        client
            .send("alice", b"now".to_vec(), Some(h2(0.2, 0.3)))
            .await
            .unwrap();
    }
    let v = p::StoreVector {
        namespace: "carol".into(),
        vector: h2(0.6, 0.6),
        ..p::StoreVector::default()
    };
    carol.store_vector(&v).await.unwrap();

    for c in [alice, bob, carol] {
        c.close().await.unwrap();
    }
    server.shutdown().await.unwrap();
    drop(store);

    // In the file: carol's namespace and contract, bob's new contract.
    let store = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    assert!(store.namespace("carol").is_ok());
    let contracts = store.catalog_list("model").unwrap();
    assert!(contracts.iter().any(|(id, _)| id == "carol"));
    let bob_stored: Value =
        serde_json::from_slice(&contracts.iter().find(|(id, _)| id == "bob").unwrap().1).unwrap();
    assert_eq!(bob_stored["contract"]["model"]["version"], "0.2.0");
    assert!(store.verify_consistency().unwrap().consistent);
}
