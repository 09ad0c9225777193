//! Many models connecting at once: the directory takes the connects
//! waiting as one batch and their writes share commits
//! (`actors/src/directory/connect.rs`). Each connect must still be
//! answered as if it had come alone.

mod common;

use common::{build, contract};
use futures_util::future::join_all;
use hvs_runtime::{Durability, Error, Runtime, RuntimeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_connecting_at_once_are_each_connected_stored_and_back_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RuntimeConfig::file(dir.path().join("hvs.redb"), Durability::Buffered);
    let rt = Runtime::open(config()).await.unwrap();
    let ids: Vec<String> = (0..300).map(|i| format!("m{i}")).collect();
    let connects = join_all(ids.iter().map(|id| rt.connect_model(build(contract(id))))).await;
    for (id, c) in ids.iter().zip(&connects) {
        assert_eq!(c.as_ref().unwrap().id(), id.as_str());
    }
    let mut models = rt.models();
    models.sort();
    assert_eq!(models.len(), ids.len());
    assert!(models.iter().all(|(_, connected)| *connected));
    for id in &ids {
        assert_eq!(rt.namespace_info(id).await.unwrap().owner, *id);
    }
    // Connected for real: a message from the first reaches the last.
    rt.send_message("m0", "m299", "hello", None).await.unwrap();
    let got = rt.receive_messages("m299", 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message.from, "m0");
    drop(connects);
    rt.close().await.unwrap();

    // Every contract and home namespace was stored.
    let rt = Runtime::open(config()).await.unwrap();
    let models = rt.models();
    assert_eq!(models.len(), ids.len());
    assert!(models.iter().all(|(_, connected)| !connected));
    for id in &ids {
        assert_eq!(rt.namespace_info(id).await.unwrap().owner, *id);
    }
    rt.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_model_connecting_many_times_at_once_is_connected_once() {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    let connects = join_all((0..8).map(|_| rt.connect_model(build(contract("twin"))))).await;
    let ok = connects.iter().filter(|c| c.is_ok()).count();
    assert_eq!(ok, 1, "exactly one connect of the same model succeeds");
    for c in connects.iter().filter_map(|c| c.as_ref().err()) {
        assert!(
            matches!(c, Error::AlreadyConnected(id) if id == "twin"),
            "the others are refused as already connected: {c}"
        );
    }
    assert_eq!(rt.models(), vec![("twin".to_string(), true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_models_binding_one_home_namespace_at_once_both_connect_and_one_owns_it() {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    let bound = |id: &str| {
        let mut c = contract(id);
        c["hvs_binding"]["namespace"] = "shared-home".into();
        build(c)
    };
    let (a, b) = tokio::join!(rt.connect_model(bound("a")), rt.connect_model(bound("b")));
    a.unwrap();
    b.unwrap();
    // As one after the other: the first made it and owns it; the second
    // found it made (by the other model, whose home it is) and left it.
    let owner = rt.namespace_info("shared-home").await.unwrap().owner;
    assert!(owner == "a" || owner == "b", "owner {owner}");
    let names = rt
        .storage()
        .namespaces()
        .into_iter()
        .filter(|n| n.name == "shared-home")
        .count();
    assert_eq!(names, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_refused_in_a_batch_refuses_only_itself() {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    // In the store but not the registry (as a sync job leaves one), on
    // another manifold than the contract's H^2.
    rt.storage()
        .create_namespace(hvs_storage::SpaceConfig::new(
            "clash",
            hvs_storage::GeometrySpec::Euclidean { dim: 3 },
        ))
        .unwrap();
    let contracts = (0..20).map(|i| {
        let mut c = contract(&format!("m{i}"));
        if i == 7 {
            c["hvs_binding"]["namespace"] = "clash".into();
        }
        build(c)
    });
    let connects = join_all(contracts.map(|c| rt.connect_model(c))).await;
    for (i, c) in connects.iter().enumerate() {
        match (i, c) {
            (7, Err(Error::InvalidRequest(m))) => assert!(m.contains("another geometry"), "{m}"),
            (7, other) => panic!(
                "m7 binds a namespace of another geometry: {:?}",
                other.as_ref().map(|h| h.id())
            ),
            (_, c) => assert_eq!(c.as_ref().unwrap().id(), format!("m{i}")),
        }
    }
    let models = rt.models();
    assert_eq!(models.len(), 19);
    assert!(!models.iter().any(|(id, _)| id == "m7"));
}
