//! Mail across instances (docs/SEMANTICS.md, "Across instances"), end to
//! end: a real `nats-server` with JetStream and real `hvs serve` processes
//! joined by `--nats`/`--instance`, driven by the Rust client.
//!
//! - a model on A sends to a model on B: delivered in order, acked, an
//!   unacked letter comes back after the visibility timeout, one that
//!   expires unread becomes a dead letter; a model unknown everywhere
//!   stays `unknown_model`;
//! - a broadcast to a namespace whose members live on A and B reaches all;
//! - a full remote mailbox refuses with `mailbox_full`, as a local one;
//! - a model that moves from B to C takes its mailbox (nothing pending
//!   lost, nothing acked delivered again);
//! - SIGKILL of the recipient's instance (on a 3-node NATS cluster, R3)
//!   loses nothing answered: the model reconnects elsewhere, and the killed instance, restarted,
//!   forwards the letters sent on it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use hvs::runtime::protocol as p;
use hvs::runtime::{Client, ClientConfig, ClientError};
use serde_json::json;
use support::{Instance, Nats, PATIENCE, eventually};

/// A contract whose visibility timeout is `timeout_ms`.
fn contract(id: &str, timeout_ms: u64) -> String {
    json!({
        "contract_version": "1.0.0",
        "model": {"id": id, "name": id, "version": "1", "type": "test", "capabilities": []},
        "hvs_binding": {"hvs_id": "mail", "region": "mail", "namespace": id,
                        "geometry": "euclidean", "dimension": 3},
        "vector_spec": {"input_dimension": 3, "output_dimension": 3,
                        "encoding": "geometric", "encoder": {"type": "identity"}},
        "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
            "max_message_size_bytes": 1 << 20, "timeout_ms": timeout_ms,
            "retry": {"max_attempts": 100, "backoff_ms": [20]}},
        "permissions": {"read_namespaces": ["*"], "write_namespaces": ["*"],
                        "broadcast": true, "query_other_models": true},
        "resource_limits": {"max_vectors_per_second": 1_000_000_000u64,
                            "max_storage_mb": 1_000_000,
                            "max_queries_per_second": 1_000_000_000u64}
    })
    .to_string()
}

async fn model(i: &Instance, id: &str, timeout_ms: u64) -> Client {
    let config = ClientConfig::new(i.addr(), contract(id, timeout_ms));
    Client::connect(config).await.unwrap()
}

async fn send(c: &Client, to: &str, text: &str) -> Result<String, ClientError> {
    c.send(to, text.as_bytes().to_vec(), Some(vec![0.1, 0.2, 0.3]))
        .await
}

fn text(d: &p::WireDelivery) -> String {
    String::from_utf8(d.message.payload.clone()).unwrap()
}

/// Every delivery `c` gets, in order, until it holds `n` distinct
/// messages (polled with a deadline).
async fn receive_in_order(
    c: &Client,
    n: usize,
    seen: &mut BTreeSet<String>,
) -> Vec<p::WireDelivery> {
    let began = Instant::now();
    let mut out = Vec::new();
    loop {
        for d in c.receive(1000).await.unwrap() {
            seen.insert(d.message.id.clone());
            out.push(d);
        }
        if seen.len() >= n {
            return out;
        }
        assert!(
            began.elapsed() < PATIENCE,
            "timed out waiting for {n} messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `c` receives until it holds `n` distinct messages, by id.
async fn receive_all(c: &Client, n: usize) -> BTreeMap<String, p::WireDelivery> {
    let got = receive_in_order(c, n, &mut BTreeSet::new()).await;
    got.into_iter().map(|d| (d.message.id.clone(), d)).collect()
}

fn start(root: &Path, nats: &Nats, names: &[&str], extra: &[&str]) -> Vec<Instance> {
    names
        .iter()
        .map(|n| Instance::start_with(root, n, &nats.url(), extra))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_on_a_sends_to_a_model_on_b_in_order_with_acks_and_redelivery() {
    let root = tempfile::tempdir().unwrap();
    let nats = Nats::start(root.path());
    let at = start(root.path(), &nats, &["a", "b"], &[]);
    let x = model(&at[0], "x", 10_000).await;
    let y = model(&at[1], "y", 1_500).await;

    // Unknown on every instance: refused as on one.
    let err = send(&x, "nobody", "hello").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Server(e) if e.code == "unknown_model"),
        "{err}"
    );

    let n = 200;
    let mut sent = Vec::new();
    for k in 0..n {
        sent.push(send(&x, "y", &format!("{k}")).await.unwrap());
    }
    // Per-sender FIFO: y receives x's messages in the order sent.
    let order: Vec<String> = receive_in_order(&y, n, &mut BTreeSet::new())
        .await
        .into_iter()
        .map(|d| {
            assert_eq!(d.attempt, 1, "a first delivery");
            assert_eq!(d.message.from, "x");
            d.message.id
        })
        .collect();
    assert_eq!(order, sent, "delivered in the order sent, each once");

    // Ack all but the last: it comes back after the visibility timeout.
    let acked = y.ack(&sent[..n - 1]).await.unwrap();
    assert_eq!(acked.len(), n - 1);
    let again = eventually("the unacked message again", || async {
        let got = y.receive(10).await.unwrap();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message.id, sent[n - 1]);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(text(&again[0]), format!("{}", n - 1));
    assert_eq!(
        y.ack(std::slice::from_ref(&sent[n - 1]))
            .await
            .unwrap()
            .len(),
        1
    );
    let mailbox = y.mailbox().await.unwrap();
    assert_eq!((mailbox.pending, mailbox.in_flight), (0, 0));

    // A letter that expires unread is never delivered: it becomes a dead
    // letter (`expired`) at the recipient's home, as on one instance.
    let short = x
        .send_message(p::WireOutgoing {
            to: "y".into(),
            payload: b"soon gone".to_vec(),
            vector: Some(vec![0.1, 0.2, 0.3]),
            ttl_ms: Some(300),
            ..Default::default()
        })
        .await
        .unwrap();
    let reason = eventually("the expired letter dead", || async {
        let m = y.mailbox().await.unwrap();
        m.dead_letters
            .iter()
            .find(|d| d.id == short)
            .map(|d| d.reason.clone())
    })
    .await;
    assert_eq!(reason, "expired");
    assert!(y.receive(10).await.unwrap().is_empty());

    // The sender's instance keeps the conversation's record.
    let kept = x.get_message(&sent[0]).await.unwrap().unwrap();
    assert_eq!(kept.to, ["y"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_members_on_both_instances() {
    let root = tempfile::tempdir().unwrap();
    let nats = Nats::start(root.path());
    let at = start(root.path(), &nats, &["a", "b"], &[]);
    let x = model(&at[0], "x", 10_000).await;
    x.create_namespace(&p::CreateNamespace {
        name: "room".into(),
        visibility: "public".into(),
        geometry: serde_json::from_value(json!({"kind": "euclidean", "dim": 3})).unwrap(),
        retention: None,
        datatype: None,
        graph: None,
    })
    .await
    .unwrap();
    // z joins on A and stays; y joins on A, then moves to B.
    let z = model(&at[0], "z", 10_000).await;
    z.join("room", &[]).await.unwrap();
    let y_on_a = model(&at[0], "y", 10_000).await;
    y_on_a.join("room", &[]).await.unwrap();
    y_on_a.close().await.unwrap();
    let y = model(&at[1], "y", 10_000).await;

    // If A has not heard yet that y moved, y's letter goes to its mailbox
    // on A and is forwarded from there: either way it reaches y on B.
    let answer = x
        .broadcast(p::WireBroadcast {
            message: p::WireOutgoing {
                payload: b"all hands".to_vec(),
                vector: Some(vec![0.0, 0.0, 1.0]),
                ..Default::default()
            },
            namespace: Some("room".into()),
            exclude: Vec::new(),
        })
        .await
        .unwrap();
    let mut reached = answer.recipients.clone();
    reached.sort();
    assert_eq!(reached, ["y", "z"]);
    assert!(answer.refused.is_empty(), "{:?}", answer.refused);
    for c in [&y, &z] {
        let got = receive_all(c, 1).await;
        let d = got.get(&answer.id).expect("the broadcast");
        assert_eq!(text(d), "all hands");
        c.ack(std::slice::from_ref(&answer.id)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_remote_mailbox_refuses_as_a_local_one() {
    let root = tempfile::tempdir().unwrap();
    let nats = Nats::start(root.path());
    let at = start(
        root.path(),
        &nats,
        &["a", "b"],
        &["--mailbox-capacity", "5"],
    );
    let x = model(&at[0], "x", 10_000).await;
    let y = model(&at[1], "y", 10_000).await;
    let v = model(&at[1], "v", 10_000).await;
    let mut sent = Vec::new();
    for k in 0..5 {
        sent.push(send(&x, "y", &format!("{k}")).await.unwrap());
    }
    let remote = send(&x, "y", "one too many").await.unwrap_err();
    let ClientError::Server(remote) = remote else {
        panic!("{remote}")
    };
    assert_eq!(remote.code, "mailbox_full", "{}", remote.message);
    // The same mailbox, full, refuses a sender on its own instance alike
    // (once B has read the five letters into it).
    receive_all(&y, 5).await;
    let local = send(&v, "y", "local").await.unwrap_err();
    let ClientError::Server(local) = local else {
        panic!("{local}")
    };
    assert_eq!(local.code, remote.code);
    // Acks make room for both.
    assert_eq!(y.ack(&sent).await.unwrap().len(), 5);
    let id = send(&x, "y", "room again").await.unwrap();
    let got = receive_all(&y, 1).await;
    assert!(got.contains_key(&id));
    send(&v, "y", "local again").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_moves_takes_its_mailbox_and_nothing_acked_comes_again() {
    let root = tempfile::tempdir().unwrap();
    let nats = Nats::start(root.path());
    let at = start(root.path(), &nats, &["a", "b", "c"], &[]);
    let x = model(&at[0], "x", 10_000).await;
    let v = model(&at[1], "v", 10_000).await;
    let y = model(&at[1], "y", 60_000).await;
    let mut from_x = Vec::new();
    for k in 0..50 {
        from_x.push(send(&x, "y", &format!("x{k}")).await.unwrap());
    }
    let mut from_v = Vec::new();
    for k in 0..10 {
        from_v.push(send(&v, "y", &format!("v{k}")).await.unwrap());
    }
    // On B: every message received, the first 10 of x's and 3 of v's acked;
    // the rest stay in flight (their deadline is a minute away).
    receive_all(&y, 60).await;
    let acked: Vec<String> = from_x[..10].iter().chain(&from_v[..3]).cloned().collect();
    assert_eq!(y.ack(&acked).await.unwrap().len(), acked.len());
    y.close().await.unwrap();

    let y = model(&at[2], "y", 60_000).await;
    let got = receive_all(&y, 47).await;
    let expected: BTreeSet<String> = from_x[10..].iter().chain(&from_v[3..]).cloned().collect();
    let ids: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(ids, expected, "every pending message, and none acked");
    // Each sender's messages in the order sent (ids are time-ordered per
    // sender, and the mailbox hands out by id).
    for d in got.values() {
        assert!(acked.iter().all(|a| *a != d.message.id));
    }
    let all: Vec<String> = expected.into_iter().collect();
    assert_eq!(y.ack(&all).await.unwrap().len(), all.len());
    let mailbox = y.mailbox().await.unwrap();
    assert_eq!((mailbox.pending, mailbox.in_flight), (0, 0));
    // New mail follows the model to C, from A and from B.
    let a = send(&x, "y", "to c from a").await.unwrap();
    let b = send(&v, "y", "to c from b").await.unwrap();
    let got = receive_all(&y, 2).await;
    assert!(got.contains_key(&a) && got.contains_key(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_recipients_instance_loses_nothing_answered() {
    // On a routed 3-node NATS cluster, the stream and the bucket with 3
    // replicas, each instance on its own node.
    let root = tempfile::tempdir().unwrap();
    let nodes = Nats::start_cluster(root.path(), 3);
    let mut at: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .zip(&nodes)
        .map(|(n, node)| {
            Instance::start_with(root.path(), n, &node.url(), &["--feed-replicas", "3"])
        })
        .collect();
    let x = model(&at[0], "x", 10_000).await;
    let v = model(&at[1], "v", 10_000).await;
    let y = model(&at[1], "y", 60_000).await;
    let mut from_x = Vec::new();
    for k in 0..30 {
        from_x.push(send(&x, "y", &format!("x{k}")).await.unwrap());
    }
    let mut from_v = Vec::new();
    for k in 0..10 {
        from_v.push(send(&v, "y", &format!("v{k}")).await.unwrap());
    }
    receive_all(&y, 40).await;
    let acked: Vec<String> = from_x[..5].iter().chain(&from_v[..5]).cloned().collect();
    assert_eq!(y.ack(&acked).await.unwrap().len(), acked.len());
    // More letters wait on B, unread.
    for k in 30..40 {
        from_x.push(send(&x, "y", &format!("x{k}")).await.unwrap());
    }
    at[1].kill9();
    drop((v, y));

    // y comes back on C: the letters from A arrive at once (the stream
    // holds them), those sent on B when B is back and forwards them.
    let y = model(&at[2], "y", 60_000).await;
    let got = receive_all(&y, 35).await;
    let remote: BTreeSet<String> = from_x[5..].iter().cloned().collect();
    assert!(remote.iter().all(|id| got.contains_key(id)));
    at[1].spawn();
    let expected: BTreeSet<String> = remote.iter().chain(&from_v[5..]).cloned().collect();
    let mut ids: BTreeSet<String> = got.keys().cloned().collect();
    receive_in_order(&y, expected.len(), &mut ids).await;
    assert_eq!(ids, expected, "every answered send, none acked");
    let all: Vec<String> = ids.into_iter().collect();
    assert_eq!(y.ack(&all).await.unwrap().len(), all.len());
}
