//! A search's `ef` and a namespace's `datatype` over the wire, through the
//! Rust client (docs/PROTOCOL.md, `search` and `create_namespace`): `ef`
//! reaches the store (its limits answer `invalid_query`) and changes no
//! result of a search it cannot make approximate; a namespace keeps the
//! datatype it was created with, and one its geometry cannot use is
//! refused with `invalid_datatype`; so are its graph settings (`graph`,
//! out of range: `invalid_graph`). Malformed values are in hostile.rs.

mod common;

use hvs_runtime::protocol as p;
use hvs_runtime::{
    Client, ClientConfig, Durability, GeometrySpec, Runtime, RuntimeConfig, Server, StoreConfig,
};
use hvs_storage::{Datatype, GraphSettings, MAX_EF};
use serde_json::json;

use common::{contract, loopback_server, loopback_server_of};

async fn connect(server: &Server, id: &str) -> Client {
    let config = ClientConfig::new(server.local_addr().to_string(), contract(id).to_string());
    Client::connect(config).await.unwrap()
}

/// A new namespace of R^3 holding `n` points.
async fn filled(c: &Client, name: &str, n: usize) {
    c.create_namespace(&create(name, e3(), None)).await.unwrap();
    c.batch_store_vectors(name, points(n)).await.unwrap();
}

fn e3() -> GeometrySpec {
    GeometrySpec::Euclidean { dim: 3 }
}

fn create(name: &str, geometry: GeometrySpec, datatype: Option<Datatype>) -> p::CreateNamespace {
    p::CreateNamespace {
        name: name.into(),
        visibility: "private".into(),
        geometry,
        retention: None,
        datatype,
        graph: None,
    }
}

/// `n` points of R^3 spread without ties (a fixed xorshift sequence).
fn points(n: usize) -> Vec<p::NewWireVector> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    (0..n)
        .map(|_| p::NewWireVector {
            vector: vec![next(), next(), next()],
            ..Default::default()
        })
        .collect()
}

fn ids(hits: &[p::WireHit]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

/// Searches `namespace` from a few points with each `ef`, alone and in a
/// batch, and compares the hits with an exact search's.
async fn assert_like_exact(c: &Client, namespace: &str, efs: &[usize]) {
    for q in [[0.0, 0.0, 0.0], [0.7, -0.2, 0.4], [-1.0, 1.0, 0.5]] {
        let mut s = p::Search::new(namespace, q.to_vec(), 5);
        s.offset = 2;
        s.exact = true;
        let exact = c.search_with(&s).await.unwrap();
        assert_eq!(exact.len(), 5);
        s.exact = false;
        let with_ef: Vec<p::Search> = efs
            .iter()
            .map(|&ef| p::Search {
                ef: Some(ef),
                ..s.clone()
            })
            .collect();
        for one in &with_ef {
            let hits = c.search_with(one).await.unwrap();
            assert_eq!(ids(&hits), ids(&exact), "ef {:?} from {q:?}", one.ef);
        }
        let batch = c.batch_search(with_ef).await.unwrap();
        for (hits, ef) in batch.iter().zip(efs) {
            assert_eq!(ids(hits), ids(&exact), "batch, ef {ef} from {q:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_with_ef_finds_what_an_exact_search_finds() {
    let server = loopback_server().await;
    let a = connect(&server, "alice").await;
    // Below the graph's threshold every search scans: each ef, even one
    // under k + offset, answers the exact hits.
    filled(&a, "team-small", 40).await;
    assert_like_exact(&a, "team-small", &[1, 7, 64, MAX_EF]).await;
    // Over it (storage's GRAPH_MIN, 256), an ef above the namespace's size
    // keeps every vector the graph search reaches, graph built or not yet:
    // still the exact hits.
    filled(&a, "team-graphed", 300).await;
    assert_like_exact(&a, "team-graphed", &[1_000, MAX_EF]).await;
    // The limits travel as invalid_query, alone and in a batch.
    for ef in [0, MAX_EF + 1] {
        let mut s = p::Search::new("team-small", vec![0.0; 3], 3);
        s.ef = Some(ef);
        let e = a.search_with(&s).await.unwrap_err();
        assert_eq!(e.code(), "invalid_query", "ef {ef}");
        let e = a
            .batch_search(vec![p::Search::new("team-small", vec![0.0; 3], 3), s])
            .await
            .unwrap_err();
        assert_eq!(e.code(), "invalid_query", "batch, ef {ef}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_keeps_the_datatype_it_was_created_with() {
    let server = loopback_server().await;
    let a = connect(&server, "alice").await;
    let half = a
        .create_namespace(&create("team-half", e3(), Some(Datatype::F16)))
        .await
        .unwrap();
    assert_eq!(half.datatype, Datatype::F16);
    assert_eq!(
        a.namespace_info("team-half").await.unwrap().datatype,
        Datatype::F16
    );
    // Without one: the geometry's default (f32 for R^n, f64 for the home
    // namespace on H^2).
    let plain = a
        .create_namespace(&create("team-plain", e3(), None))
        .await
        .unwrap();
    assert_eq!(plain.datatype, Datatype::F32);
    let listed: Vec<(String, Datatype)> = a
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.name, n.datatype))
        .collect();
    for want in [
        ("alice", Datatype::F64),
        ("team-half", Datatype::F16),
        ("team-plain", Datatype::F32),
    ] {
        assert!(
            listed.contains(&(want.0.to_string(), want.1)),
            "{want:?} in {listed:?}"
        );
    }
    // The records keep their f64 coordinates whatever the graph stores.
    let v = a
        .store_vector(&p::StoreVector {
            namespace: "team-half".into(),
            vector: vec![0.1, 1e-7, 70_000.0],
            ..Default::default()
        })
        .await
        .unwrap();
    let back = a.retrieve_vector(&v.id).await.unwrap().expect("stored");
    assert_eq!(back.vector.as_deref(), Some(&[0.1, 1e-7, 70_000.0][..]));
    // i8 is for spheres only: refused on R^3, and nothing is created.
    let sphere = GeometrySpec::Sphere {
        dim: 2,
        curvature: 1.0,
    };
    let bytes = a
        .create_namespace(&create("team-bytes", sphere, Some(Datatype::I8)))
        .await
        .unwrap();
    assert_eq!(bytes.datatype, Datatype::I8);
    let e = a
        .create_namespace(&create("team-flat-bytes", e3(), Some(Datatype::I8)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_datatype");
    let e = a.namespace_info("team-flat-bytes").await.unwrap_err();
    assert_eq!(e.code(), "unknown_namespace");
    // Written as the wire writes it.
    let raw: serde_json::Value = a
        .call(
            "create_namespace",
            &json!({"name": "team-raw", "geometry": {"kind": "euclidean", "dim": 2}, "datatype": "f16"}),
        )
        .await
        .unwrap();
    assert_eq!(raw["datatype"], json!("f16"));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_s_datatype_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        store: StoreConfig::file(dir.path().join("hvs.redb"), Durability::Buffered),
        ..RuntimeConfig::memory()
    };
    let rt = Runtime::open(config.clone()).await.unwrap();
    let server = loopback_server_of(rt).await;
    let a = connect(&server, "alice").await;
    a.create_namespace(&create("team-half", e3(), Some(Datatype::F16)))
        .await
        .unwrap();
    let small = GraphSettings {
        m: Some(8),
        ef_construction: Some(32),
    };
    a.create_namespace(&p::CreateNamespace {
        graph: Some(small),
        ..create("team-small", e3(), None)
    })
    .await
    .unwrap();
    server.shutdown().await.unwrap();
    // Reopened, the namespaces' catalog rows still say f16, and m 8.
    let rt = Runtime::open(config).await.unwrap();
    let server = loopback_server_of(rt).await;
    let a = connect(&server, "alice").await;
    let info = a.namespace_info("team-half").await.unwrap();
    assert_eq!(info.datatype, Datatype::F16);
    assert_eq!(info.graph, None);
    let info = a.namespace_info("team-small").await.unwrap();
    assert_eq!(info.graph, Some(small));
    server.shutdown().await.unwrap();
}

/// A namespace created with its own graph settings says so in every
/// answer about it, and its graph (built with them) answers as the exact
/// scan does; settings the wire leaves out are absent, not filled in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_s_graph_settings_are_kept_and_its_graph_answers() {
    let server = loopback_server().await;
    let a = connect(&server, "alice").await;
    let small = GraphSettings {
        m: Some(6),
        ef_construction: None,
    };
    let ns = a
        .create_namespace(&p::CreateNamespace {
            graph: Some(small),
            ..create("team-small", e3(), None)
        })
        .await
        .unwrap();
    assert_eq!(ns.graph, Some(small));
    assert_eq!(
        a.namespace_info("team-small").await.unwrap().graph,
        Some(small)
    );
    // Past the 256 vectors at which a namespace gets its graph.
    a.batch_store_vectors("team-small", points(400))
        .await
        .unwrap();
    assert_like_exact(&a, "team-small", &[1_000]).await;
    let raw: serde_json::Value = a
        .call(
            "create_namespace",
            &json!({"name": "team-raw", "geometry": {"kind": "euclidean", "dim": 2}, "graph": {"ef_construction": 40}}),
        )
        .await
        .unwrap();
    assert_eq!(raw["graph"], json!({"ef_construction": 40}));
    filled(&a, "team-plain", 10).await;
    let raw: serde_json::Value = a
        .call("namespace_info", &json!({"name": "team-plain"}))
        .await
        .unwrap();
    assert!(raw.get("graph").is_none(), "{raw}");
    server.shutdown().await.unwrap();
}

/// A contract's `hvs_binding.graph` builds the model's home namespace's
/// graph with those settings when its first connect creates it; without
/// it the home namespace has the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_s_graph_settings_build_its_home_namespace() {
    let server = loopback_server().await;
    let mut c = contract("carol");
    c["hvs_binding"]["graph"] = json!({"m": 8, "ef_construction": 32});
    let home = c["hvs_binding"]["namespace"].as_str().unwrap().to_string();
    let config = ClientConfig::new(server.local_addr().to_string(), c.to_string());
    let carol = Client::connect(config).await.unwrap();
    let info = carol.namespace_info(&home).await.unwrap();
    let small = GraphSettings {
        m: Some(8),
        ef_construction: Some(32),
    };
    assert_eq!(info.graph, Some(small));
    let alice = connect(&server, "alice").await;
    let home = contract("alice")["hvs_binding"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(alice.namespace_info(&home).await.unwrap().graph, None);
    server.shutdown().await.unwrap();
}
