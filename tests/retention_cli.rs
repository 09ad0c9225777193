//! Retention end to end (`docs/SEMANTICS.md`, "Retention"): `hvs serve`
//! with a default retention in `hvs.toml` refuses the send past it with
//! `namespace_full` over TCP; a namespace created over the wire with its
//! own retention keeps to that instead, and says so in `namespace_info`.

mod support;

use std::process::{Command, Stdio};

use hvs::runtime::protocol as p;
use hvs::runtime::{Client, ClientConfig, ClientError};
use hvs::storage::{DiscardPolicy, Retention};
use serde_json::json;
use support::{Reaped, free_port, wait_listening};

/// A model on E^3 (identity encoder) whose messages live in `namespace`,
/// which may also create `team-*`.
fn contract(id: &str, namespace: &str) -> String {
    json!({
        "contract_version": "1.0.0",
        "model": {"id": id, "name": id, "version": "1", "type": "test", "capabilities": []},
        "hvs_binding": {"hvs_id": "t", "region": "lab", "namespace": namespace,
                        "geometry": "euclidean", "dimension": 3},
        "vector_spec": {"input_dimension": 3, "output_dimension": 3,
                        "encoding": "geometric", "encoder": {"type": "identity"}},
        "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
            "max_message_size_bytes": 1 << 20, "timeout_ms": 10_000,
            "retry": {"max_attempts": 3, "backoff_ms": [20]}},
        "permissions": {"read_namespaces": ["*"], "write_namespaces": [namespace, "team-*"],
                        "broadcast": true, "query_other_models": true},
        "resource_limits": {"max_vectors_per_second": 1_000_000u64, "max_storage_mb": 1024,
                            "max_queries_per_second": 1_000_000u64}
    })
    .to_string()
}

async fn send(c: &Client, to: &str, k: usize) -> Result<String, ClientError> {
    c.send(
        to,
        format!("m{k}").into_bytes(),
        Some(vec![k as f64, 0.0, 1.0]),
    )
    .await
}

fn code(e: ClientError) -> String {
    match e {
        ClientError::Server(e) => e.code,
        other => panic!("not a refusal from the server: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_from_hvs_toml_and_a_namespace_of_its_own_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("hvs.toml"),
        "[retention]\nmax_messages = 2\ndiscard = \"new\"\n",
    )
    .unwrap();
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_hvs"))
            .current_dir(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--data", dir.path().join("data").to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, "hvs serve", &mut child.0);
    let addr = format!("127.0.0.1:{port}");
    let connect =
        |id: &str, ns: &str| Client::connect(ClientConfig::new(addr.clone(), contract(id, ns)));
    let a = connect("a", "ns-a").await.unwrap();
    let b = connect("b", "ns-b").await.unwrap();

    // ns-a has no retention of its own: hvs.toml's (2 messages, discard
    // new) holds, and the third send is refused with a typed error.
    send(&a, "b", 0).await.unwrap();
    send(&a, "b", 1).await.unwrap();
    assert_eq!(code(send(&a, "b", 2).await.unwrap_err()), "namespace_full");
    assert_eq!(a.namespace_info("ns-a").await.unwrap().retention, None);

    // A namespace made over the wire with its own retention; c, whose
    // messages live there, connects after and keeps to that instead.
    let own = Retention {
        max_messages: Some(3),
        discard: DiscardPolicy::Old,
        ..Retention::default()
    };
    let made = a
        .create_namespace(&p::CreateNamespace {
            name: "team-c".into(),
            visibility: "public".into(),
            geometry: serde_json::from_value(json!({"kind": "euclidean", "dim": 3})).unwrap(),
            retention: Some(own),
            datatype: None,
            graph: None,
        })
        .await
        .unwrap();
    assert_eq!(made.retention, Some(own));
    let c = connect("c", "team-c").await.unwrap();
    for k in 10..14 {
        send(&c, "b", k).await.unwrap();
    }
    assert_eq!(
        c.namespace_info("team-c").await.unwrap().retention,
        Some(own)
    );
    // b holds a's two and c's newest three (the oldest was discarded, and
    // its letter left b's mailbox).
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + support::PATIENCE;
    while got.len() < 5 {
        assert!(std::time::Instant::now() < deadline, "got {got:?}");
        got.extend(
            b.receive(10)
                .await
                .unwrap()
                .into_iter()
                .map(|d| d.message.payload),
        );
    }
    let got: Vec<String> = got
        .into_iter()
        .map(|p| String::from_utf8(p).unwrap())
        .collect();
    assert_eq!(got, ["m0", "m1", "m11", "m12", "m13"]);

    // Limits of 0 are refused over the wire with a typed error.
    let zero = a
        .create_namespace(&p::CreateNamespace {
            name: "team-zero".into(),
            visibility: "public".into(),
            geometry: serde_json::from_value(json!({"kind": "euclidean", "dim": 3})).unwrap(),
            retention: Some(Retention {
                max_bytes: Some(0),
                ..Retention::default()
            }),
            datatype: None,
            graph: None,
        })
        .await
        .unwrap_err();
    assert_eq!(code(zero), "invalid_retention");
}
