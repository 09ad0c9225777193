//! The specification's example contract (`examples/contracts/spec_example.json`,
//! byte for byte) connects and sends, in one process and over TCP: its `mlp`
//! encoder names no weights file, so a point of its space (`vector`) and
//! text are taken and an `embedding` is refused with `encoder_unavailable`.

mod common;

use std::path::{Path, PathBuf};

use hvs_runtime::protocol::WireOutgoing;
use hvs_runtime::{
    Client, ClientConfig, Contract, Outgoing, Runtime, RuntimeConfig, Server, ServerConfig,
    VectorInput,
};
use serde_json::Value;

use common::build;

fn spec_example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/contracts/spec_example.json")
}

fn spec_example_text() -> String {
    std::fs::read_to_string(spec_example_path()).unwrap()
}

/// A second model in the same network and space, to send to: the example
/// with another id and namespace.
fn peer() -> Value {
    let mut v: Value = serde_json::from_str(&spec_example_text()).unwrap();
    v["model"]["id"] = "spec-peer".into();
    v["hvs_binding"]["namespace"] = "spec-peer".into();
    v["permissions"]["write_namespaces"] = serde_json::json!(["spec-peer"]);
    v
}

/// A point of the example's space, H^12 (13 coordinates), at distance `r`
/// from the origin.
fn h12(r: f64) -> Vec<f64> {
    let mut p = vec![0.0; 13];
    (p[0], p[1]) = (r.cosh(), r.sinh());
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_example_connects_sends_vectors_and_refuses_embeddings() {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    let me = rt.connect_model_file(spec_example_path()).await.unwrap();
    assert_eq!(me.id(), "model-unique-id");
    let contract = Contract::load(&spec_example_path()).unwrap();
    assert_eq!(contract.warnings()[0].path, "vector_spec.encoder.weights");
    let peer = rt.connect_model(build(peer())).await.unwrap();

    let by_vector = me
        .send_message(
            "spec-peer",
            Outgoing::text("a point").with_vector(VectorInput::Point(h12(0.5))),
        )
        .await
        .unwrap();
    let by_text = me
        .send_message("spec-peer", Outgoing::text("text alone"))
        .await
        .unwrap();

    for len in [2048, 12] {
        let err = me
            .send_message(
                "spec-peer",
                Outgoing::text("an embedding").with_vector(VectorInput::Embedding(vec![0.1; len])),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "encoder_unavailable", "{err}");
        assert!(err.is_validation(), "{err}");
        assert!(err.to_string().contains("no weights file"), "{err}");
    }

    let got = peer.receive_messages(10).await.unwrap();
    let ids: Vec<_> = got.iter().map(|d| d.message.id).collect();
    assert_eq!(ids, [by_vector, by_text], "the refused sends left nothing");
    assert!(got.iter().all(|d| d.message.from == "model-unique-id"));
    rt.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_the_spec_example_sends_vectors_and_embeddings_get_a_typed_refusal() {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..ServerConfig::default()
    };
    let server = Server::start(rt, config, None).await.unwrap();
    let addr = server.local_addr().to_string();
    let me = Client::connect(ClientConfig::new(addr.clone(), spec_example_text()))
        .await
        .unwrap();
    let peer = Client::connect(ClientConfig::new(addr, peer().to_string()))
        .await
        .unwrap();

    me.send("spec-peer", b"a point".to_vec(), Some(h12(0.5)))
        .await
        .unwrap();
    let err = me
        .send_message(WireOutgoing {
            to: "spec-peer".into(),
            payload: b"an embedding".to_vec(),
            embedding: Some(vec![0.1; 2048]),
            ..WireOutgoing::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "encoder_unavailable", "{err}");
    assert!(err.to_string().contains("no weights file"), "{err}");

    let got = peer.receive(10).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    me.close().await.unwrap();
    peer.close().await.unwrap();
    server.shutdown().await.unwrap();
}
