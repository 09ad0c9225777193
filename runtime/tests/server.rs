//! The server over real TCP: the Rust client drives every kind of
//! operation; bad frames, unknown ops, wrong versions, tokens, heartbeats,
//! connection limits and a graceful shutdown are checked from raw sockets.

mod common;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hvs_runtime::auth::TokenStore;
use hvs_runtime::protocol::{self as p, ServerFrame};
use hvs_runtime::{
    Client, ClientConfig, Durability, Runtime, RuntimeConfig, Server, ServerConfig, StoreConfig,
};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use common::{contract, h2};

fn local() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        ..ServerConfig::default()
    }
}

async fn start(config: ServerConfig, tokens: Option<TokenStore>) -> Server {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    Server::start(rt, config, tokens).await.unwrap()
}

fn text(id: &str) -> String {
    contract(id).to_string()
}

async fn client(server: &Server, id: &str) -> Client {
    Client::connect(ClientConfig::new(server.local_addr().to_string(), text(id)))
        .await
        .unwrap()
}

type Raw = Framed<TcpStream, LengthDelimitedCodec>;

async fn raw(server: &Server) -> Raw {
    let s = TcpStream::connect(server.local_addr()).await.unwrap();
    Framed::new(s, LengthDelimitedCodec::new())
}

async fn send_req(c: &mut Raw, id: u64, op: &str, args: serde_json::Value) {
    let args = p::value(&args).unwrap();
    let bytes = p::encode(&p::RawRequest {
        id,
        op: op.into(),
        args,
    })
    .unwrap();
    c.send(Bytes::from(bytes)).await.unwrap();
}

async fn next(c: &mut Raw) -> Option<ServerFrame> {
    match tokio::time::timeout(Duration::from_secs(10), c.next()).await {
        Ok(Some(Ok(b))) => Some(p::decode(&b).unwrap()),
        _ => None,
    }
}

async fn hello(c: &mut Raw, id: &str, versions: &[u32], token: Option<&str>) -> ServerFrame {
    send_req(
        c,
        0,
        "hello",
        json!({"versions": versions, "contract": text(id), "token": token}),
    )
    .await;
    next(c).await.expect("an answer to hello")
}

fn error_code(f: &ServerFrame) -> &str {
    match f {
        ServerFrame::Error { error, .. } => &error.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_message_search_share_and_agree_over_tcp() {
    let server = start(local(), None).await;
    let alice = client(&server, "alice").await;
    let bob = client(&server, "bob").await;
    let w = alice.welcome().await.unwrap();
    assert_eq!((w.version, w.model.as_str()), (1, "alice"));

    // A message with a vector, received and acked.
    let id = alice
        .send("bob", b"route clear".to_vec(), Some(h2(0.5, 1.0)))
        .await
        .unwrap();
    let got = bob.receive(10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.id, id);
    assert_eq!(got[0].message.payload, b"route clear");
    assert_eq!(got[0].message.from, "alice");
    assert_eq!(
        bob.ack(std::slice::from_ref(&id)).await.unwrap(),
        vec![id.clone()]
    );

    // Pushed deliveries after subscribe, in the order sent.
    bob.subscribe().await.unwrap();
    let ids = alice
        .send_batch(
            (0..5)
                .map(|i| p::WireOutgoing {
                    to: "bob".into(),
                    payload: format!("m{i}").into_bytes(),
                    ..Default::default()
                })
                .collect(),
        )
        .await
        .unwrap();
    let mut pushed = Vec::new();
    for _ in 0..5 {
        let d = tokio::time::timeout(Duration::from_secs(10), bob.next_delivery())
            .await
            .unwrap()
            .unwrap();
        pushed.push(d.message.id);
    }
    assert_eq!(pushed, ids);
    bob.ack(&ids).await.unwrap();

    // The message's vector is searchable in the sender's namespace.
    let hits = alice.search("alice", h2(0.5, 1.0), 1).await.unwrap();
    assert_eq!(hits[0].id, id);
    assert!(hits[0].distance < 1e-9);

    // Stored vectors, a shared space and its consensus.
    let ns = p::CreateNamespace {
        name: "team-room".into(),
        visibility: "shared".into(),
        geometry: hvs_runtime::GeometrySpec::Hyperboloid {
            dim: 2,
            curvature: 1.0,
        },
        retention: None,
        datatype: None,
        graph: None,
    };
    alice.create_namespace(&ns).await.unwrap();
    alice.join("team-room", &["planning"]).await.unwrap();
    bob.join("team-room", &["routing"]).await.unwrap();
    alice
        .contribute("team-room", "a", h2(0.4, 0.0), json!("east"))
        .await
        .unwrap();
    bob.contribute(
        "team-room",
        "b",
        h2(0.4, std::f64::consts::PI),
        json!("west"),
    )
    .await
    .unwrap();
    let c = bob.consensus("team-room", None).await.unwrap();
    assert_eq!((c.contributions, c.contributors), (2, 2));
    assert!(c.converged);
    // Two points symmetric about the origin: their mean is the origin.
    assert!((c.mean[0] - 1.0).abs() < 1e-6, "{:?}", c.mean);

    // Blocks: stored, found by meaning, read back by name.
    let b: p::WireBlock = alice
        .call(
            "store_block",
            &json!({"name": "notes", "content": {"text": "the bridge on the east road is closed"}}),
        )
        .await
        .unwrap();
    assert_eq!(b.name, "notes");
    #[derive(serde::Deserialize)]
    struct Hits {
        hits: Vec<p::WireBlockHit>,
    }
    let found: Hits = bob
        .call("query_blocks", &json!({"text": "bridge closed", "k": 3}))
        .await
        .unwrap();
    assert_eq!(found.hits[0].name, "notes");
    let again: Option<p::WireBlock> = bob
        .call("get_block", &json!({"name": "notes"}))
        .await
        .unwrap();
    assert_eq!(again.unwrap().id, b.id);

    // A refusal comes back typed, and the connection goes on.
    let err = bob
        .store_vector(&p::StoreVector {
            namespace: "alice".into(),
            vector: h2(0.1, 0.1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permission_denied");
    let stats = bob.stats().await.unwrap();
    assert_eq!(stats.connections, 2);
    assert!(stats.namespaces["alice"].vectors >= 6);

    // A broadcast to the one other connected model counts once.
    let b = bob
        .broadcast(p::WireBroadcast {
            message: p::WireOutgoing {
                payload: b"all hands".to_vec(),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(b.recipients, ["alice"]);

    // The admin pages.
    let admin = server.admin_addr().unwrap();
    let metrics = http_get(admin, "/metrics").await;
    assert!(metrics.contains("hvs_connections 2"), "{metrics}");
    assert!(metrics.contains("hvs_messages_in_total 7"), "{metrics}");
    assert!(
        metrics.contains("hvs_requests_total{op=\"send\"} 1"),
        "{metrics}"
    );
    let health = http_get(admin, "/health").await;
    assert!(health.contains("\"status\":\"ok\""), "{health}");

    alice.close().await.unwrap();
    bob.close().await.unwrap();
    server.shutdown().await.unwrap();
}

/// A server's ports are bound before its store opens: a client that
/// connects meanwhile is not refused, its hello is answered once the
/// runtime is handed over, and `/health` says `starting` (HTTP 503) until
/// then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connecting_while_the_store_opens_waits_for_its_welcome() {
    let bound = Server::bind(local(), None).await.unwrap();
    let admin = bound.admin_addr().unwrap();
    let health = http_get(admin, "/health").await;
    assert_eq!(status(&health), 503, "{health}");
    assert!(health.contains("\"status\":\"starting\""), "{health}");
    let metrics = http_get(admin, "/metrics").await;
    assert_eq!(status(&metrics), 503, "{metrics}");

    // Connected (the listen queue takes it) and its hello sent; no answer
    // while there is no runtime.
    let mut c = Framed::new(
        TcpStream::connect(bound.local_addr()).await.unwrap(),
        LengthDelimitedCodec::new(),
    );
    send_req(
        &mut c,
        0,
        "hello",
        json!({"versions": [1], "contract": text("early")}),
    )
    .await;
    let waited = tokio::time::timeout(Duration::from_millis(300), c.next()).await;
    assert!(waited.is_err(), "answered before the store opened");

    let server = bound
        .serve(Runtime::open(RuntimeConfig::memory()).await.unwrap())
        .await;
    assert!(matches!(
        next(&mut c).await,
        Some(ServerFrame::Ok { id: 0, .. })
    ));
    send_req(&mut c, 1, "ping", json!({})).await;
    assert!(matches!(
        next(&mut c).await,
        Some(ServerFrame::Ok { id: 1, .. })
    ));
    let health = http_get(admin, "/health").await;
    assert_eq!(status(&health), 200, "{health}");
    assert!(health.contains("\"status\":\"ok\""), "{health}");
    drop(c);
    server.shutdown().await.unwrap();
}

/// The status code of an HTTP answer.
fn status(answer: &str) -> u16 {
    let line = answer.lines().next().unwrap_or_default();
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_unknown_ops_and_wrong_versions_get_stable_codes() {
    let server = start(
        ServerConfig {
            max_frame_bytes: 64 * 1024,
            ..local()
        },
        None,
    )
    .await;
    // No common version: refused.
    let mut c = raw(&server).await;
    let f = hello(&mut c, "v", &[99], None).await;
    assert_eq!(error_code(&f), "unsupported_version");

    // Anything before hello: refused.
    let mut c = raw(&server).await;
    send_req(&mut c, 1, "ping", json!({})).await;
    assert_eq!(
        error_code(&next(&mut c).await.unwrap()),
        "handshake_required"
    );

    // An invalid contract: refused with the contract's problems.
    let mut c = raw(&server).await;
    send_req(
        &mut c,
        0,
        "hello",
        json!({"versions": [1], "contract": "{\"model\": 3}"}),
    )
    .await;
    assert_eq!(error_code(&next(&mut c).await.unwrap()), "invalid_contract");

    let mut c = raw(&server).await;
    assert!(matches!(
        hello(&mut c, "m", &[1, 2], None).await,
        ServerFrame::Ok { id: 0, .. }
    ));
    // Garbage of a correct length: answered, and the connection goes on.
    c.send(Bytes::from_static(b"\xc1\xc1\xc1")).await.unwrap();
    let f = next(&mut c).await.unwrap();
    assert!(matches!(&f, ServerFrame::Error { id: None, .. }));
    assert_eq!(error_code(&f), "bad_frame");
    send_req(&mut c, 2, "no_such_op", json!({})).await;
    let f = next(&mut c).await.unwrap();
    assert!(matches!(&f, ServerFrame::Error { id: Some(2), .. }));
    assert_eq!(error_code(&f), "unknown_op");
    send_req(&mut c, 3, "receive", json!({"max": "lots"})).await;
    assert_eq!(error_code(&next(&mut c).await.unwrap()), "bad_request");
    // A send to nobody is malformed, not a message to an unknown model.
    send_req(&mut c, 5, "send", json!({"payload": "hi"})).await;
    let f = next(&mut c).await.unwrap();
    assert!(matches!(&f, ServerFrame::Error { id: Some(5), .. }));
    assert_eq!(error_code(&f), "bad_request");
    send_req(&mut c, 4, "ping", json!({})).await;
    assert!(matches!(
        next(&mut c).await.unwrap(),
        ServerFrame::Ok { id: 4, .. }
    ));

    // A second connection is unaffected by what follows on the first.
    let other = client(&server, "other").await;
    // A frame over the limit: an error, then the connection is closed.
    let big = vec![0u8; 100 * 1024];
    c.send(Bytes::from(big)).await.unwrap();
    assert_eq!(error_code(&next(&mut c).await.unwrap()), "frame_too_large");
    assert!(
        next(&mut c).await.is_none(),
        "closed after an oversize frame"
    );
    other.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_admit_only_what_they_allow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let (_, token) = TokenStore::create(
        &path,
        "lab",
        vec!["lab-*".into()],
        vec!["lab-*".into(), "team-*".into()],
    )
    .unwrap();
    let tokens = TokenStore::load(&path).unwrap();
    let server = start(local(), Some(tokens)).await;

    // No token, a wrong token: unauthorized.
    let mut c = raw(&server).await;
    assert_eq!(
        error_code(&hello(&mut c, "lab-a", &[1], None).await),
        "unauthorized"
    );
    let mut c = raw(&server).await;
    let f = hello(&mut c, "lab-a", &[1], Some("hvs_0000")).await;
    assert_eq!(error_code(&f), "unauthorized");
    // A model the token does not name.
    let mut c = raw(&server).await;
    let f = hello(&mut c, "intruder", &[1], Some(&token)).await;
    assert_eq!(error_code(&f), "forbidden_claim");
    // The test contract reads "*": wider than the token's namespaces.
    let mut c = raw(&server).await;
    let f = hello(&mut c, "lab-a", &[1], Some(&token)).await;
    assert_eq!(error_code(&f), "forbidden_claim");
    // Within the token: admitted.
    let mut v = contract("lab-a");
    v["permissions"]["read_namespaces"] = json!(["lab-*", "team-*"]);
    let cfg = ClientConfig::new(server.local_addr().to_string(), v.to_string()).with_token(&token);
    let ok = Client::connect(cfg).await.unwrap();
    ok.ping().await.unwrap();
    // Refused connections are in the audit log with the model and reason.
    let log = server.runtime().storage().audit_log(0, 100).unwrap();
    assert!(
        log.iter()
            .any(|e| e.actor == "intruder" && e.outcome.contains("does not allow")),
        "{log:?}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_model_is_disconnected_and_its_messages_wait() {
    let server = start(local(), None).await;
    let mut v = contract("sleepy");
    v["health_check"] = json!({"endpoint": "/health", "interval_seconds": 1, "timeout_seconds": 1});
    let mut c = raw(&server).await;
    send_req(
        &mut c,
        0,
        "hello",
        json!({"versions": [1], "contract": v.to_string()}),
    )
    .await;
    let ServerFrame::Ok { ok, .. } = next(&mut c).await.unwrap() else {
        panic!("hello refused")
    };
    let w: p::Welcome = rmpv::ext::from_value(ok).unwrap();
    assert_eq!(
        (w.heartbeat_interval_ms, w.heartbeat_timeout_ms),
        (1000, 2000)
    );
    // Say nothing: after interval + timeout the server gives up.
    let f = next(&mut c).await.expect("a closing push");
    match f {
        ServerFrame::Push(p::Push::Closing { code, .. }) => assert_eq!(code, "heartbeat_timeout"),
        other => panic!("{other:?}"),
    }
    let rt = server.runtime();
    let connected = rt
        .models()
        .into_iter()
        .find(|(m, _)| m == "sleepy")
        .unwrap()
        .1;
    assert!(!connected);
    // A message for it waits in its mailbox; it gets it on reconnecting.
    let alice = client(&server, "alice").await;
    let id = alice
        .send("sleepy", b"wake up".to_vec(), None)
        .await
        .unwrap();
    let again = Client::connect(ClientConfig::new(
        server.local_addr().to_string(),
        v.to_string(),
    ))
    .await
    .unwrap();
    let got = again.receive(10).await.unwrap();
    assert_eq!(got[0].message.id, id);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused_politely() {
    let server = start(
        ServerConfig {
            max_connections: 2,
            ..local()
        },
        None,
    )
    .await;
    let a = client(&server, "a").await;
    let b = client(&server, "b").await;
    let mut c = raw(&server).await;
    let f = next(&mut c).await.expect("a refusal");
    assert_eq!(error_code(&f), "too_many_connections");
    a.ping().await.unwrap();
    b.ping().await.unwrap();
    // A place freed is a place taken.
    b.close().await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(d) = Client::connect(ClientConfig::new(
                server.local_addr().to_string(),
                text("d"),
            ))
            .await
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    d.ping().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_replaces_its_old_connection() {
    let server = start(local(), None).await;
    let first = client(&server, "twin").await;
    let second = client(&server, "twin").await;
    second.ping().await.unwrap();
    // The first connection was told and closed; its next call reconnects
    // (and so replaces the second in turn).
    let alice = client(&server, "alice").await;
    alice.send("twin", b"hi".to_vec(), None).await.unwrap();
    let got = first.receive(10).await.unwrap();
    assert_eq!(got.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_what_it_read_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hvs.redb");
    let rt = Runtime::open(RuntimeConfig {
        store: StoreConfig::file(&db, Durability::Buffered),
        ..RuntimeConfig::memory()
    })
    .await
    .unwrap();
    let server = Server::start(rt, local(), None).await.unwrap();
    let a = client(&server, "a").await;
    let _b = client(&server, "b").await;
    let sends: Vec<_> = (0..200)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move { a.send("b", format!("{i}").into_bytes(), None).await })
        })
        .collect();
    let mut answered = Vec::new();
    for s in sends {
        if let Ok(id) = s.await.unwrap() {
            answered.push(id);
        }
    }
    server.shutdown().await.unwrap();
    // Reopened: every answered send is in b's mailbox.
    let rt = Runtime::open(RuntimeConfig {
        store: StoreConfig::file(&db, Durability::Buffered),
        ..RuntimeConfig::memory()
    })
    .await
    .unwrap();
    let b = rt
        .connect_model(common::build(contract("b")))
        .await
        .unwrap();
    let got = b.receive_messages(1000).await.unwrap();
    let ids: std::collections::HashSet<String> =
        got.iter().map(|d| d.message.id.to_string()).collect();
    assert_eq!(answered.len(), 200);
    assert!(answered.iter().all(|id| ids.contains(id)));
    rt.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_keep_their_order_and_are_refused_one_by_one() {
    let server = start(local(), None).await;
    let b = client(&server, "b").await;
    let mut c = raw(&server).await;
    assert!(matches!(
        hello(&mut c, "a", &[1], None).await,
        ServerFrame::Ok { .. }
    ));
    // Twenty sends in one write (the server batches what has arrived);
    // the seventh names a model that does not exist.
    for i in 0..20u64 {
        let to = if i == 6 { "nobody" } else { "b" };
        let args = p::value(&json!({"to": to, "payload": format!("m{i}")})).unwrap();
        let bytes = p::encode(&p::RawRequest {
            id: 100 + i,
            op: "send".into(),
            args,
        })
        .unwrap();
        c.feed(Bytes::from(bytes)).await.unwrap();
    }
    SinkExt::<Bytes>::flush(&mut c).await.unwrap();
    let mut ok = std::collections::BTreeMap::new();
    let mut refused = Vec::new();
    for _ in 0..20 {
        match next(&mut c).await.unwrap() {
            ServerFrame::Ok { id, ok: v } => {
                let r: p::IdArg = rmpv::ext::from_value(v).unwrap();
                ok.insert(id, r.id);
            }
            ServerFrame::Error { id, error } => refused.push((id, error.code)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, vec![(Some(106), "unknown_model".to_string())]);
    assert_eq!(ok.len(), 19);
    let got = b.receive(100).await.unwrap();
    let payloads: Vec<String> = got
        .iter()
        .map(|d| String::from_utf8(d.message.payload.clone()).unwrap())
        .collect();
    let expected: Vec<String> = (0..20)
        .filter(|i| *i != 6)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(payloads, expected, "per-sender FIFO");
    let ids: Vec<String> = got.iter().map(|d| d.message.id.clone()).collect();
    assert_eq!(ids, ok.values().cloned().collect::<Vec<_>>());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_reconnects_after_the_server_restarts() {
    let server = start(local(), None).await;
    let addr = server.local_addr();
    let c = client(&server, "phoenix").await;
    c.subscribe().await.unwrap();
    c.ping().await.unwrap();
    server.shutdown().await.unwrap();
    // Nothing listens: a typed error, not a hang or a panic.
    let err = c.ping().await.unwrap_err();
    assert!(
        matches!(err.code(), "connect_failed" | "connection_lost"),
        "{err}"
    );
    let server = start(
        ServerConfig {
            listen: addr,
            ..local()
        },
        None,
    )
    .await;
    // The next call reconnects, says hello again and resubscribes.
    c.ping().await.unwrap();
    let other = client(&server, "other").await;
    let id = other.send("phoenix", b"back".to_vec(), None).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), c.next_delivery())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.message.id, id);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_frame_that_stalls_frees_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(local(), None).await;
    let mut v = contract("staller");
    v["health_check"] = json!({"endpoint": "/health", "interval_seconds": 1, "timeout_seconds": 1});
    let mut c = raw(&server).await;
    send_req(
        &mut c,
        0,
        "hello",
        json!({"versions": [1], "contract": v.to_string()}),
    )
    .await;
    assert!(matches!(
        next(&mut c).await.unwrap(),
        ServerFrame::Ok { .. }
    ));
    // A length that promises 100 bytes, then 10 of them, then nothing.
    let mut s = c.into_inner();
    s.write_all(&100u32.to_be_bytes()).await.unwrap();
    s.write_all(&[0x82; 10]).await.unwrap();
    // The server gives up after the heartbeat timeout and closes.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the server still holds the stalled connection"
    );
    let frame: ServerFrame = p::decode(&rest[4..]).unwrap();
    match frame {
        ServerFrame::Push(p::Push::Closing { code, .. }) => assert_eq!(code, "heartbeat_timeout"),
        other => panic!("{other:?}"),
    }
    let connected = server
        .runtime()
        .models()
        .into_iter()
        .find(|(m, _)| m == "staller")
        .unwrap()
        .1;
    assert!(!connected);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_that_cannot_be_served_are_refused_at_start() {
    for config in [
        ServerConfig {
            max_in_flight: 0,
            ..local()
        },
        ServerConfig {
            max_connections: usize::MAX,
            ..local()
        },
        ServerConfig {
            max_frame_bytes: 0,
            ..local()
        },
    ] {
        let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
        match Server::start(rt, config, None).await {
            Err(hvs_runtime::ServerError::InvalidConfig(_)) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("started with an impossible limit"),
        }
    }
}
