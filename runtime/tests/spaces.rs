//! Namespaces and their access lists, isolation between networks, shared
//! spaces and consensus, model state, blocks.

mod common;

use std::collections::HashMap;

use common::{build, contract, h2};
use hvs_geometry::{FrechetOptions, Hyperboloid, Manifold};
use hvs_runtime::{
    AccessKind, Durability, Grant, IsolationPolicy, Runtime, RuntimeConfig, Visibility,
};
use hvs_storage::{BlockContent, GeometrySpec, NewVector, SearchQuery};
use serde_json::json;

fn h2_space() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    }
}

async fn runtime_with(contracts: Vec<serde_json::Value>) -> Runtime {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    for c in contracts {
        rt.connect_model(build(c)).await.unwrap();
    }
    rt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_write_permission_is_refused_and_nothing_is_stored() {
    let mut reader = contract("reader");
    reader["permissions"]["write_namespaces"] = json!(["reader"]);
    let rt = runtime_with(vec![contract("owner"), reader]).await;
    rt.create_namespace("team-a", "owner", Visibility::Public, h2_space())
        .await
        .unwrap();
    let reader = rt.model("reader").unwrap();
    // The contract refuses: team-a is not in its write_namespaces.
    let err = reader
        .store_vector(NewVector::new("team-a", h2(0.5, 0.0)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permission_denied", "{err}");
    assert!(err.to_string().contains("write_namespaces"), "{err}");
    // The contract allows, the access list refuses: public means read-only.
    let other = rt.model("owner").unwrap();
    rt.connect_model(build(contract("writer"))).await.unwrap();
    let writer = rt.model("writer").unwrap();
    let err = writer
        .store_vector(NewVector::new("team-a", h2(0.5, 0.0)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("public"), "{err}");
    assert_eq!(
        rt.storage().get_stats().unwrap().namespaces["team-a"].vectors,
        0
    );
    // Reading a public namespace is allowed; the owner writes.
    other
        .store_vector(NewVector::new("team-a", h2(0.5, 0.0)))
        .await
        .unwrap();
    let hits = reader
        .semantic_search(SearchQuery::new("team-a", h2(0.4, 0.0), 1))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    // A grant opens writing.
    rt.grant_access(
        "team-a",
        "writer",
        Grant {
            read: true,
            write: true,
        },
    )
    .await
    .unwrap();
    writer
        .store_vector(NewVector::new("team-a", h2(0.7, 1.0)))
        .await
        .unwrap();
    assert_eq!(
        rt.storage().get_stats().unwrap().namespaces["team-a"].vectors,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_namespace_is_closed_to_others_until_its_owner_grants_access() {
    let rt = runtime_with(vec![contract("alice"), contract("bob")]).await;
    let alice = rt.model("alice").unwrap();
    let bob = rt.model("bob").unwrap();
    alice
        .store_vector(NewVector::new("alice", h2(1.0, 0.0)))
        .await
        .unwrap();
    let q = SearchQuery::new("alice", h2(1.0, 0.0), 1);
    let err = bob.semantic_search(q.clone()).await.unwrap_err();
    assert!(err.to_string().contains("private"), "{err}");
    assert!(
        rt.check_access("bob", "alice", AccessKind::Read)
            .await
            .is_err()
    );
    // Only the owner grants.
    let err = bob
        .grant_access(
            "alice",
            "bob",
            Grant {
                read: true,
                write: false,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permission_denied");
    alice
        .grant_access(
            "alice",
            "bob",
            Grant {
                read: true,
                write: false,
            },
        )
        .await
        .unwrap();
    rt.check_access("bob", "alice", AccessKind::Read)
        .await
        .unwrap();
    assert_eq!(bob.semantic_search(q).await.unwrap().len(), 1);
    assert!(
        rt.check_access("bob", "alice", AccessKind::Write)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_policies_between_networks_hold_on_every_read_and_write() {
    let mut east = contract("east");
    east["hvs_binding"]["region"] = json!("east");
    let mut west = contract("west");
    west["hvs_binding"]["region"] = json!("west");
    west["permissions"]["write_namespaces"] = json!(["west", "team-*"]);
    let rt = runtime_with(vec![east, west]).await;
    rt.create_namespace("team-east", "east", Visibility::Shared, h2_space())
        .await
        .unwrap();
    let west = rt.model("west").unwrap();
    // The default policy is shared: read across, no writes.
    rt.check_access("west", "team-east", AccessKind::Read)
        .await
        .unwrap();
    let err = west.join("team-east", &["x"]).await;
    assert!(err.is_ok(), "joining needs read access only");
    let err = west
        .contribute("team-east", "k", h2(0.1, 0.0), json!(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");

    rt.set_isolation("east", "west", IsolationPolicy::Strict)
        .await
        .unwrap();
    let err = west
        .query_shared("team-east", h2(0.0, 0.0), 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("strictly isolated"), "{err}");

    rt.set_isolation("west", "east", IsolationPolicy::Federated)
        .await
        .unwrap();
    west.contribute("team-east", "k", h2(0.1, 0.0), json!(1))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consensus_is_the_weighted_frechet_mean_of_the_contributions() {
    let ids = ["p", "q", "r"];
    let rt = runtime_with(ids.iter().map(|i| contract(i)).collect()).await;
    rt.create_namespace("team-mean", "p", Visibility::Shared, h2_space())
        .await
        .unwrap();
    let points = [h2(1.0, 0.0), h2(2.0, 2.0), h2(0.5, 4.0)];
    for (id, p) in ids.iter().zip(&points) {
        // Writing before joining is refused.
        assert!(
            rt.contribute(id, "team-mean", "belief", p.clone(), json!(id))
                .await
                .is_err()
                || *id == "p"
        );
        rt.join(id, "team-mean", &["planning"]).await.unwrap();
        rt.contribute(id, "team-mean", "belief", p.clone(), json!({"by": id}))
            .await
            .unwrap();
    }
    // Contributing again under the same key replaces the earlier one.
    rt.contribute(
        "r",
        "team-mean",
        "belief",
        points[2].clone(),
        json!({"by": "r"}),
    )
    .await
    .unwrap();

    let m = Hyperboloid::new(2, 1.0).unwrap();
    let refs: Vec<&[f64]> = points.iter().map(|p| p.as_slice()).collect();
    let want = m
        .frechet_mean(&refs, None, &FrechetOptions::default())
        .unwrap();
    let got = rt.consensus("team-mean", None).await.unwrap();
    assert_eq!((got.contributions, got.contributors), (3, 3));
    assert!(got.converged);
    assert!(m.distance(&got.mean, &want.mean).unwrap() < 1e-9);

    let weights: HashMap<String, f64> = [("q".to_string(), 10.0)].into();
    let weighted = rt.consensus("team-mean", Some(weights)).await.unwrap();
    let wts = [1.0, 10.0, 1.0];
    let want_w = m
        .frechet_mean(&refs, Some(&wts), &FrechetOptions::default())
        .unwrap();
    assert!(m.distance(&weighted.mean, &want_w.mean).unwrap() < 1e-9);
    assert!(
        m.distance(&weighted.mean, &points[1]).unwrap()
            < m.distance(&got.mean, &points[1]).unwrap()
    );

    let hits = rt
        .query_shared("p", "team-mean", points[1].clone(), 2)
        .await
        .unwrap();
    assert_eq!(hits[0].contributor, "q");
    assert_eq!(
        (hits[0].key.as_str(), &hits[0].value),
        ("belief", &json!({"by": "q"}))
    );
    assert!(hits[0].distance < 1e-9 && hits.len() == 2);

    rt.create_namespace("team-empty", "p", Visibility::Shared, h2_space())
        .await
        .unwrap();
    let err = rt.consensus("team-empty", None).await.unwrap_err();
    assert_eq!(err.code(), "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_state_is_versioned_and_found_by_similarity() {
    let rt = runtime_with(vec![contract("s1"), contract("s2"), contract("s3")]).await;
    let err = rt
        .update_state("s1", json!({"task": "x"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("register_state"), "{err}");
    for id in ["s1", "s2", "s3"] {
        rt.register_state(id, json!({"task": "string"}))
            .await
            .unwrap();
    }
    assert_eq!(
        rt.update_state("s1", json!({"task": "map the river delta"}))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        rt.update_state(
            "s1",
            json!({"task": "map the river delta and its channels"})
        )
        .await
        .unwrap(),
        2
    );
    rt.update_state("s2", json!({"task": "translate poetry into french"}))
        .await
        .unwrap();
    rt.update_state("s3", json!({"task": "map the mountain passes"}))
        .await
        .unwrap();
    let s = rt.get_state("s2", "s1").await.unwrap().unwrap();
    assert_eq!(s.version, 2);
    assert_eq!(
        s.state,
        json!({"task": "map the river delta and its channels"})
    );
    assert!(rt.get_state("s1", "nobody").await.unwrap().is_none());
    let similar = rt
        .find_similar_states(
            "s2",
            &json!({"task": "map the river delta and its channels"}),
            2,
        )
        .await
        .unwrap();
    assert_eq!(similar[0].0.model, "s1");
    assert!(similar[0].1 > similar[1].1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_blocks_are_found_by_meaning_and_everything_stays_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hvs.redb");
    {
        let rt = Runtime::open(RuntimeConfig::file(&path, Durability::Buffered))
            .await
            .unwrap();
        rt.connect_model(build(contract("nvm"))).await.unwrap();
        rt.store(
            "nvm",
            "rivers",
            BlockContent::Text("The river delta floods every spring.".into()),
            true,
        )
        .await
        .unwrap();
        rt.store(
            "nvm",
            "scratch",
            BlockContent::Text("Compilers parse tokens into syntax trees.".into()),
            false,
        )
        .await
        .unwrap();
        let hits = rt
            .query("nvm", "when does the delta flood", 1)
            .await
            .unwrap();
        assert_eq!(hits[0].name, "rivers");
        rt.close().await.unwrap();
    }
    let rt = Runtime::open(RuntimeConfig::file(&path, Durability::Buffered))
        .await
        .unwrap();
    rt.connect_model(build(contract("nvm"))).await.unwrap();
    let hits = rt.query("nvm", "syntax trees and tokens", 1).await.unwrap();
    assert_eq!(hits[0].name, "scratch");
    let report = rt.verify_consistency().await.unwrap();
    assert!(report.consistent, "{report:?}");
}

/// Far out, where hierarchies put their leaves (radius 20 on H^2: the
/// coordinates are 2.4e8 and nearby points differ in their ninth digit),
/// the consensus is still the geometry's mean of the contributions, and
/// says it converged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consensus_far_from_the_origin_is_the_geometrys_mean() {
    let ids = ["p", "q", "r"];
    let rt = runtime_with(ids.iter().map(|i| contract(i)).collect()).await;
    rt.create_namespace("team-deep", "p", Visibility::Shared, h2_space())
        .await
        .unwrap();
    let points = [h2(20.0, 0.0), h2(20.5, 3e-9), h2(19.5, -4e-9)];
    for (id, p) in ids.iter().zip(&points) {
        rt.join(id, "team-deep", &[]).await.unwrap();
        rt.contribute(id, "team-deep", "leaf", p.clone(), json!(id))
            .await
            .unwrap();
    }
    let m = Hyperboloid::new(2, 1.0).unwrap();
    let refs: Vec<&[f64]> = points.iter().map(|p| p.as_slice()).collect();
    let want = m
        .frechet_mean(&refs, None, &FrechetOptions::default())
        .unwrap();
    assert!(want.converged);
    let got = rt.consensus("team-deep", None).await.unwrap();
    assert!(got.converged);
    let origin = m.exp0(&[0.0, 0.0]).unwrap();
    let radius = m.distance(&origin, &got.mean).unwrap();
    assert!((19.5..20.5).contains(&radius), "mean at radius {radius}");
    assert!(m.distance(&got.mean, &want.mean).unwrap() < 1e-6);
    // Each point is about one unit from the others: the mean is near all.
    for p in &points {
        assert!(m.distance(&got.mean, p).unwrap() < 1.0);
    }
    rt.close().await.unwrap();
}
