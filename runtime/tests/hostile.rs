//! Bad input over the wire, one case per row of docs/SECURITY.md: each gets
//! a typed error with a stable code, nothing is half-written, and the
//! connection (and the server) go on.

mod common;

use hvs_runtime::protocol as p;
use hvs_runtime::{
    Client, ClientConfig, GeometrySpec, IsolationPolicy, Runtime, RuntimeConfig, Server,
    ServerConfig,
};
use hvs_storage::{BlockClass, BlockContent, BlockOptions};
use serde_json::{Value, json};

use common::{contract, h2};

async fn server() -> Server {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: None,
        ..ServerConfig::default()
    };
    Server::start(rt, config, None).await.unwrap()
}

async fn connect(server: &Server, c: Value) -> Client {
    Client::connect(ClientConfig::new(
        server.local_addr().to_string(),
        c.to_string(),
    ))
    .await
    .unwrap()
}

/// The error code of a call that must fail.
async fn refused(c: &Client, op: &str, args: Value) -> String {
    match c.call::<_, rmpv::Value>(op, &args).await {
        Ok(v) => panic!("{op} {args} was accepted: {v:?}"),
        Err(e) => e.code().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_that_are_not_points_are_refused() {
    let s = server().await;
    let a = connect(&s, contract("a")).await;
    let _b = connect(&s, contract("b")).await;
    // NaN in a message's vector.
    // (json! would turn NaN into null: the typed arguments keep it.)
    let nan = p::WireOutgoing {
        to: "b".into(),
        payload: b"x".to_vec(),
        vector: Some(vec![1.0, f64::NAN, 0.0]),
        ..Default::default()
    };
    let err = a.send_message(nan).await.unwrap_err();
    assert_eq!(err.code(), "non_finite");
    // Off the hyperboloid, in a stored vector (only messages are projected).
    let code = refused(
        &a,
        "store_vector",
        json!({"namespace": "a", "vector": [5.0, 0.0, 0.0]}),
    )
    .await;
    assert_eq!(code, "off_manifold");
    // The wrong dimension, in a search and a contribution.
    let code = refused(
        &a,
        "search",
        json!({"namespace": "a", "vector": [1.0, 0.0], "k": 3}),
    )
    .await;
    assert_eq!(code, "dimension_mismatch");
    // Infinity in a search.
    let err = a
        .search("a", vec![f64::INFINITY, 0.0, 0.0], 3)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "non_finite");
    // Nothing of it was stored, and the connection goes on.
    let stats = a.stats().await.unwrap();
    assert_eq!(stats.namespaces["a"].vectors, 0);
    a.ping().await.unwrap();
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_sizes_and_limits_are_refused_or_bounded() {
    let s = server().await;
    let a = connect(&s, contract("a")).await;
    let b = connect(&s, contract("b")).await;
    a.store_vector(&p::StoreVector {
        namespace: "a".into(),
        vector: h2(0.3, 0.3),
        ..Default::default()
    })
    .await
    .unwrap();
    // A huge k is refused; a negative one is not a number of results.
    let code = refused(
        &a,
        "search",
        json!({"namespace": "a", "vector": h2(0.0, 0.0), "k": 1_000_000_000_000u64}),
    )
    .await;
    assert_eq!(code, "invalid_query");
    let code = refused(
        &a,
        "search",
        json!({"namespace": "a", "vector": h2(0.0, 0.0), "k": -1}),
    )
    .await;
    assert_eq!(code, "bad_request");
    // Asking for 2^64-1 messages returns what there is.
    let got: Value = a.call("receive", &json!({"max": u64::MAX})).await.unwrap();
    assert_eq!(got["deliveries"], json!([]));
    // A TTL at the end of time: accepted, and the message still arrives.
    let id: p::IdArg = a
        .call(
            "send",
            &json!({"to": "b", "payload": "forever", "ttl_ms": u64::MAX}),
        )
        .await
        .unwrap();
    let got = b.receive(10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.id, id.id);
    assert_eq!(got[0].message.expires_ms, Some(u64::MAX));
    // Namespaces of no, absurd or negative size or curvature.
    for geometry in [
        json!({"kind": "hyperboloid", "dim": 0, "curvature": 1.0}),
        json!({"kind": "hyperboloid", "dim": 4_000_000_000u64, "curvature": 1.0}),
        json!({"kind": "poincare", "dim": 2, "curvature": -1.0}),
        json!({"kind": "sphere", "dim": 2, "curvature": 0.0}),
    ] {
        let code = refused(
            &a,
            "create_namespace",
            json!({"name": "team-odd", "geometry": geometry}),
        )
        .await;
        assert!(
            ["invalid_geometry", "invalid_dimension", "invalid_curvature"].contains(&code.as_str()),
            "{geometry}: {code}"
        );
    }
    // Retention with a key the server does not know, or a limit of 0; a
    // datatype the server does not know, or H^2 cannot use.
    for (option, expected) in [
        (json!({"retention": {"max_mesages": 10}}), "bad_request"),
        (
            json!({"retention": {"max_messages": 10, "discard": "sometimes"}}),
            "bad_request",
        ),
        (
            json!({"retention": {"max_messages": 0}}),
            "invalid_retention",
        ),
        (json!({"datatype": "f8"}), "bad_request"),
        (json!({"datatype": 16}), "bad_request"),
        (json!({"datatype": "f16"}), "invalid_datatype"),
        (json!({"graph": {"M": 8}}), "bad_request"),
        (json!({"graph": {"m": -1}}), "bad_request"),
        (json!({"graph": {"m": "8"}}), "bad_request"),
        (json!({"graph": 8}), "bad_request"),
        (json!({"graph": {"m": 2}}), "invalid_graph"),
        (json!({"graph": {"ef_construction": 5000}}), "invalid_graph"),
        (
            json!({"graph": {"m": 32, "ef_construction": 16}}),
            "invalid_graph",
        ),
    ] {
        let mut args = option.clone();
        args["name"] = json!("team-kept");
        args["geometry"] = json!({"kind": "hyperboloid", "dim": 2, "curvature": 1.0});
        let code = refused(&a, "create_namespace", args).await;
        assert_eq!(code, expected, "{option}");
    }
    // A search's ef out of 1..=10,000, or not a count.
    for (ef, expected) in [
        (json!(0), "invalid_query"),
        (json!(10_001), "invalid_query"),
        (json!(-1), "bad_request"),
        (json!("many"), "bad_request"),
    ] {
        let search = json!({"namespace": "a", "vector": h2(0.0, 0.0), "k": 1, "ef": ef});
        let code = refused(&a, "search", search.clone()).await;
        assert_eq!(code, expected, "{ef}");
        let code = refused(&a, "batch_search", json!({"searches": [search]})).await;
        assert_eq!(code, expected, "batch, {ef}");
    }
    // Metadata nested past the decoder's limit.
    let mut deep = json!("leaf");
    for _ in 0..200 {
        deep = json!([deep]);
    }
    let code = refused(
        &a,
        "send",
        json!({"to": "b", "payload": "x", "metadata": {"k": deep}}),
    )
    .await;
    assert_eq!(code, "bad_request");
    // A payload over the contract's max_message_size_bytes (4096 here).
    let code = refused(&a, "send", json!({"to": "b", "payload": "x".repeat(5000)})).await;
    assert_eq!(code, "limit_exceeded");
    a.ping().await.unwrap();
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_namespaces_read_only_blocks_and_isolation_hold_over_the_wire() {
    let s = server().await;
    let owner = connect(&s, contract("owner")).await;
    let other = connect(&s, contract("other")).await;
    owner
        .store_vector(&p::StoreVector {
            namespace: "owner".into(),
            vector: h2(0.2, 0.1),
            ..Default::default()
        })
        .await
        .unwrap();
    // Another model's private namespace: no reading, no writing, even
    // though the test contract's read_namespaces is "*".
    let code = refused(
        &other,
        "search",
        json!({"namespace": "owner", "vector": h2(0.0, 0.0), "k": 1}),
    )
    .await;
    assert_eq!(code, "permission_denied");
    let code = refused(
        &other,
        "store_vector",
        json!({"namespace": "owner", "vector": h2(0.1, 0.0)}),
    )
    .await;
    assert_eq!(code, "permission_denied");
    // A model cannot grant itself access to what it does not own.
    let code = refused(
        &other,
        "grant_access",
        json!({"namespace": "owner", "model": "other", "read": true}),
    )
    .await;
    assert_eq!(code, "permission_denied");

    // A read-only block (the operator's) cannot be updated or deleted over
    // the wire; it is unchanged after.
    s.runtime()
        .storage()
        .create_block(
            "operator",
            "house-rules",
            BlockClass::SharedKnowledge,
            BlockContent::Text("be kind".into()),
            BlockOptions {
                readonly: true,
                ..BlockOptions::default()
            },
        )
        .unwrap();
    let code = refused(
        &other,
        "update_block",
        json!({"name": "house-rules", "content": {"text": "be loud"}}),
    )
    .await;
    assert_eq!(code, "read_only_block");
    let code = refused(&other, "delete_block", json!({"name": "house-rules"})).await;
    assert_eq!(code, "read_only_block");
    let b: p::WireBlock = owner
        .call("get_block", &json!({"name": "house-rules"}))
        .await
        .unwrap();
    assert_eq!(b.content, BlockContent::Text("be kind".into()));
    assert_eq!(b.version, 1);

    // Strict isolation between two networks: a shared namespace of one is
    // closed to the other.
    let mut east = contract("east-1");
    east["hvs_binding"]["region"] = json!("east");
    let mut west = contract("west-1");
    west["hvs_binding"]["region"] = json!("west");
    let (east, west) = (connect(&s, east).await, connect(&s, west).await);
    east.create_namespace(&p::CreateNamespace {
        name: "team-east".into(),
        visibility: "shared".into(),
        geometry: GeometrySpec::Hyperboloid {
            dim: 2,
            curvature: 1.0,
        },
        retention: None,
        datatype: None,
        graph: None,
    })
    .await
    .unwrap();
    s.runtime()
        .set_isolation("east", "west", IsolationPolicy::Strict)
        .await
        .unwrap();
    let code = refused(
        &west,
        "store_vector",
        json!({"namespace": "team-east", "vector": h2(0.1, 0.0)}),
    )
    .await;
    assert_eq!(code, "permission_denied");
    let code = refused(
        &west,
        "search",
        json!({"namespace": "team-east", "vector": h2(0.0, 0.0), "k": 1}),
    )
    .await;
    assert_eq!(code, "permission_denied");

    // Every refusal above is in the audit log, with who and why: the server
    // writes the audit entry before it answers, so no waiting.
    let log = s.runtime().storage().audit_log(0, 1000).unwrap();
    let by = |actor: &str| {
        log.iter()
            .filter(|e| e.actor == actor && e.outcome.starts_with("refused"))
            .count()
    };
    assert!(by("other") >= 3, "{log:?}");
    assert!(by("west-1") >= 2, "{log:?}");
    assert!(
        log.iter()
            .any(|e| e.actor == "other" && e.outcome.contains("read-only")),
        "{log:?}"
    );
    s.shutdown().await.unwrap();
}
