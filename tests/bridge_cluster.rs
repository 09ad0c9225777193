//! Federated bridges end to end (docs/BRIDGES.md): a routed 3-node
//! nats-server cluster and three real `hvs serve` processes, each offering
//! the capability `docs` and holding its own part of one namespace, driven
//! by the Rust client over the wire.
//!
//! - a federated search equals the exact answer over the union of the
//!   three instances' data (ids, order, distances);
//! - a stopped instance shows up in `missing`, and the answer is the exact
//!   one over the others' data, not an error;
//! - the bridge survives a restart of the instance that holds it.

mod support;

use std::collections::BTreeMap;

use hvs::Manifold;
use hvs::runtime::Client;
use hvs::runtime::GeometrySpec;
use hvs::runtime::protocol as p;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{Instance, Nats, eventually};

const NAMESPACE: &str = "fed";
const DIM: usize = 3;
const PER_INSTANCE: usize = 60;

/// A random point of the Poincaré ball B³ (radius below 0.9).
fn ball_point(rng: &mut StdRng) -> Vec<f64> {
    loop {
        let v: Vec<f64> = (0..DIM).map(|_| rng.random_range(-0.9..0.9)).collect();
        if v.iter().map(|x| x * x).sum::<f64>() < 0.81 {
            return v;
        }
    }
}

/// Every stored point, by instance then id.
type Points = BTreeMap<(String, String), Vec<f64>>;

/// The exact `k` nearest of `points` held by `instances`: (instance, id,
/// distance), nearest first, ties by instance and id as the bridge orders
/// them.
fn exact(points: &Points, instances: &[&str], q: &[f64], k: usize) -> Vec<(String, String, f64)> {
    let ball = GeometrySpec::Poincare {
        dim: DIM,
        curvature: 1.0,
    }
    .build()
    .unwrap();
    let mut all: Vec<_> = points
        .iter()
        .filter(|((i, _), _)| instances.contains(&i.as_str()))
        .map(|((i, id), v)| (i.clone(), id.clone(), ball.distance(q, v).unwrap()))
        .collect();
    all.sort_by(|a, b| a.2.total_cmp(&b.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all
}

fn got(hits: &p::BridgeHits) -> Vec<(String, String, f64)> {
    hits.hits
        .iter()
        .map(|h| (h.instance.clone(), h.id.clone(), h.distance))
        .collect()
}

fn assert_exact(hits: &p::BridgeHits, want: &[(String, String, f64)]) {
    let got = got(hits);
    assert_eq!(got.len(), want.len(), "{got:?}\nvs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g.0, &g.1), (&w.0, &w.1), "{got:?}\nvs {want:?}");
        assert!((g.2 - w.2).abs() <= 1e-12, "{} vs {}", g.2, w.2);
    }
}

async fn search(c: &Client, q: &[f64], k: usize) -> p::BridgeHits {
    let query = p::BridgeQuery {
        vector: q.to_vec(),
        k,
        filter: None,
    };
    c.bridge_search("near", query).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federated_search_equals_the_exact_answer_and_a_stopped_instance_is_missing() {
    let root = tempfile::tempdir().unwrap();
    let nats = Nats::start_cluster(root.path(), 3);
    let urls = Nats::urls(&nats);
    let names = ["a", "b", "c"];
    let mut instances: Vec<Instance> = names
        .iter()
        .map(|n| Instance::start_with(root.path(), n, &urls, &["--capability", "docs"]))
        .collect();

    // Each instance holds its own part of the namespace.
    let mut rng = StdRng::seed_from_u64(13);
    let mut points = Points::new();
    for (i, name) in names.iter().enumerate() {
        let c = instances[i].client("w", NAMESPACE, "poincare", DIM).await;
        let vectors: Vec<p::NewWireVector> = (0..PER_INSTANCE)
            .map(|_| p::NewWireVector {
                vector: ball_point(&mut rng),
                region: None,
                metadata: Default::default(),
            })
            .collect();
        let ids = c
            .batch_store_vectors(NAMESPACE, vectors.clone())
            .await
            .unwrap();
        for (id, v) in ids.into_iter().zip(vectors) {
            points.insert((name.to_string(), id), v.vector);
        }
    }

    // A federated bridge on a (the client is an operator: no tokens).
    let client = instances[0].client("w", NAMESPACE, "poincare", DIM).await;
    let spec = p::BridgeSpec {
        name: "near".into(),
        kind: p::BridgeKind::Federated {
            namespace: NAMESPACE.into(),
            capability: "docs".into(),
            timeout_ms: 2_000,
        },
    };
    client.bridge_create(spec.clone()).await.unwrap();
    let q0 = ball_point(&mut rng);
    eventually("every instance announced", || async {
        let hits = search(&client, &q0, 5).await;
        (hits.answered == names).then_some(())
    })
    .await;

    for _ in 0..8 {
        let q = ball_point(&mut rng);
        let hits = search(&client, &q, 15).await;
        assert_eq!(hits.answered, names);
        assert!(hits.missing.is_empty() && hits.refused.is_empty());
        assert_exact(&hits, &exact(&points, &names, &q, 15));
    }
    // k past everything: the whole union, in order.
    let q = ball_point(&mut rng);
    let all = search(&client, &q, 1_000).await;
    assert_eq!(all.hits.len(), 3 * PER_INSTANCE);
    assert_exact(&all, &exact(&points, &names, &q, 1_000));

    // c stops: a partial answer naming it, exact over a and b.
    instances[2].stop();
    for _ in 0..4 {
        let q = ball_point(&mut rng);
        let hits = search(&client, &q, 15).await;
        assert_eq!(hits.answered, ["a", "b"]);
        assert_eq!(hits.missing, ["c"]);
        assert_exact(&hits, &exact(&points, &["a", "b"], &q, 15));
    }
    let status = client.bridge_status("near").await.unwrap();
    assert_eq!(status.spec, spec);
    assert!(status.partial >= 4, "{status:?}");

    // a restarts: its bridge is back, and c is still missing.
    drop(client);
    instances[0].stop();
    instances[0].spawn();
    let client = instances[0].client("w", NAMESPACE, "poincare", DIM).await;
    let listed = client.bridge_list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].spec, spec);
    let q = ball_point(&mut rng);
    let hits = eventually("a answers again", || async {
        let hits = search(&client, &q, 15).await;
        (hits.answered == ["a", "b"]).then_some(hits)
    })
    .await;
    assert_eq!(hits.missing, ["c"]);
    assert_exact(&hits, &exact(&points, &["a", "b"], &q, 15));

    // Deleted, it is gone.
    client.bridge_delete("near").await.unwrap();
    let e = client.bridge_status("near").await.unwrap_err();
    assert_eq!(e.code(), "unknown_bridge");
}
