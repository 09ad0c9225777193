//! The vector database over the wire, through the Rust client: read back,
//! correct, forget, page through and count what a model stored, hits with
//! their data, and the permissions around namespaces and blocks.

mod common;

use std::collections::BTreeSet;

use hvs_runtime::protocol::{self as p};
use hvs_runtime::{
    BlockContent, Client, ClientConfig, ClientError, Filter, GeometrySpec, Runtime, RuntimeConfig,
    Server, ServerConfig,
};
use serde_json::json;

use common::{contract, h2};

async fn start() -> Server {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: None,
        ..ServerConfig::default()
    };
    Server::start(rt, config, None).await.unwrap()
}

async fn connect(server: &Server, contract: serde_json::Value) -> Client {
    let config = ClientConfig::new(server.local_addr().to_string(), contract.to_string());
    Client::connect(config).await.unwrap()
}

fn code(e: ClientError) -> String {
    e.code().to_string()
}

fn point(ns: &str, r: f64, tag: &str) -> p::StoreVector {
    p::StoreVector {
        namespace: ns.into(),
        vector: h2(r, 0.3),
        region: Some("north".into()),
        metadata: [("tag".to_string(), json!(tag))].into_iter().collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_reads_back_corrects_and_forgets_what_it_stored() {
    let server = start().await;
    let a = connect(&server, contract("alice")).await;

    let v = a.store_vector(&point("alice", 0.5, "first")).await.unwrap();
    let got = a.retrieve_vector(&v.id).await.unwrap().expect("stored");
    assert_eq!(got, v);
    assert_eq!(got.vector.as_deref(), Some(&h2(0.5, 0.3)[..]));

    // An update with the right version goes through, one version on.
    let mut meta = p::UpdateVector {
        id: v.id.clone(),
        metadata: Some([("tag".to_string(), json!("fixed"))].into_iter().collect()),
        if_version: Some(1),
        ..p::UpdateVector::default()
    };
    let u = a.update_vector(meta.clone()).await.unwrap();
    assert_eq!((u.version, &u.metadata["tag"]), (2, &json!("fixed")));
    assert_eq!(u.region.as_deref(), Some("north"), "region kept");
    // The same compare-and-set again is refused with the current version.
    let e = a.update_vector(meta.clone()).await.unwrap_err();
    match e {
        ClientError::Server(w) => {
            assert_eq!(w.code, "version_conflict");
            assert_eq!(w.current_version, Some(2));
        }
        other => panic!("expected version_conflict, got {other}"),
    }
    meta.if_version = None;
    meta.clear_region = true;
    meta.vector = Some(h2(0.7, 0.3));
    let u = a.update_vector(meta).await.unwrap();
    assert_eq!((u.version, u.region.as_deref()), (3, None));

    let w = a
        .store_vector(&point("alice", 1.0, "second"))
        .await
        .unwrap();
    let found = a
        .retrieve_vectors(&[v.id.clone(), w.id.clone(), uuid_nil()], false)
        .await
        .unwrap();
    let ids: Vec<&str> = found.vectors.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, [v.id.as_str(), w.id.as_str()]);
    assert!(found.vectors.iter().all(|x| x.vector.is_none()));
    assert_eq!(found.missing, [uuid_nil()]);

    assert!(a.delete_vector(&v.id).await.unwrap());
    assert!(!a.delete_vector(&v.id).await.unwrap());
    assert_eq!(a.retrieve_vector(&v.id).await.unwrap(), None);
    let gone = a
        .delete_vectors(&[w.id.clone(), v.id.clone()])
        .await
        .unwrap();
    assert_eq!((gone.deleted, gone.missing), (vec![w.id], vec![v.id]));
    let missing = a
        .update_vector(p::UpdateVector {
            id: uuid_nil(),
            vector: Some(h2(0.1, 0.0)),
            ..p::UpdateVector::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(missing), "vector_not_found");
}

fn uuid_nil() -> String {
    "00000000-0000-0000-0000-000000000000".into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_carry_their_data_and_batches_ranges_counts_and_scrolls_work() {
    let server = start().await;
    let a = connect(&server, contract("alice")).await;
    let new = (0..30)
        .map(|i| p::NewWireVector {
            vector: h2(0.1 * i as f64, 0.0),
            region: None,
            metadata: [
                ("i".to_string(), json!(i)),
                ("even".to_string(), json!(i % 2 == 0)),
            ]
            .into_iter()
            .collect(),
        })
        .collect();
    let ids = a.batch_store_vectors("alice", new).await.unwrap();
    assert_eq!(ids.len(), 30);

    let hits = a.search("alice", h2(0.0, 0.0), 3).await.unwrap();
    assert_eq!(hits[0].id, ids[0]);
    assert_eq!(hits[1].metadata["i"], json!(1));
    assert!(hits[0].vector.is_none());
    let mut s = p::Search::new("alice", h2(0.0, 0.0), 2);
    s.with_vector = true;
    s.filter = Some(Filter::Eq("even".into(), json!(false)));
    let hits = a.search_with(&s).await.unwrap();
    assert_eq!(hits[0].metadata["i"], json!(1));
    assert_eq!(hits[0].vector.as_deref(), Some(&h2(0.1, 0.0)[..]));

    let near = a
        .range_search(p::RangeSearch {
            namespace: "alice".into(),
            vector: h2(0.0, 0.0),
            radius: 0.45,
            limit: 100,
            filter: None,
            region: None,
            with_vector: false,
        })
        .await
        .unwrap();
    let got: Vec<i64> = near
        .iter()
        .map(|h| h.metadata["i"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [0, 1, 2, 3, 4]);

    let batch = a
        .batch_search(vec![
            p::Search::new("alice", h2(0.0, 0.0), 1),
            p::Search::new("alice", h2(2.9, 0.0), 1),
        ])
        .await
        .unwrap();
    assert_eq!(
        (batch[0][0].id.as_str(), batch[1][0].id.as_str()),
        (ids[0].as_str(), ids[29].as_str())
    );

    let even = Filter::Eq("even".into(), json!(true));
    assert_eq!(a.count("alice", None).await.unwrap(), 30);
    assert_eq!(a.count("alice", Some(even.clone())).await.unwrap(), 15);

    // Page through in id order while vectors come and go: every vector
    // present for the whole scroll is seen exactly once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = a
            .scroll(p::Scroll {
                namespace: "alice".into(),
                after: after.clone(),
                limit: 7,
                filter: None,
                with_vector: false,
            })
            .await
            .unwrap();
        seen.extend(page.vectors.iter().map(|v| v.id.clone()));
        a.store_vector(&point("alice", 2.0, "late")).await.unwrap();
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no vector twice");
    assert!(
        ids.iter().all(|id| unique.contains(id)),
        "every early vector once"
    );
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "id order");

    assert_eq!(a.delete_by_filter("alice", even).await.unwrap(), 15);
    assert_eq!(
        a.count("alice", Some(Filter::Eq("even".into(), json!(true))))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_are_listed_by_who_may_read_and_deleted_by_their_owner() {
    let server = start().await;
    let a = connect(&server, contract("alice")).await;
    let b = connect(&server, contract("bob")).await;
    let geometry = GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    };
    let create = |name: &str, vis: &str| p::CreateNamespace {
        name: name.into(),
        visibility: vis.into(),
        geometry: geometry.clone(),
        retention: None,
        datatype: None,
        graph: None,
    };
    a.create_namespace(&create("team-a", "private"))
        .await
        .unwrap();
    a.create_namespace(&create("team-open", "public"))
        .await
        .unwrap();
    a.store_vector(&point("team-a", 0.2, "x")).await.unwrap();

    let names = |l: Vec<p::WireNamespaceSummary>| -> Vec<String> {
        l.into_iter().map(|n| n.name).collect()
    };
    let mine = a.list_namespaces().await.unwrap();
    assert_eq!(mine.iter().find(|n| n.name == "team-a").unwrap().vectors, 1);
    assert!(names(mine).contains(&"team-open".to_string()));
    let theirs = names(b.list_namespaces().await.unwrap());
    assert!(theirs.contains(&"team-open".to_string()));
    assert!(!theirs.contains(&"team-a".to_string()), "{theirs:?}");

    // Only the owner deletes; a home namespace is never deleted.
    assert_eq!(
        code(b.delete_namespace("team-a").await.unwrap_err()),
        "permission_denied"
    );
    assert_eq!(
        code(a.delete_namespace("alice").await.unwrap_err()),
        "bad_request"
    );
    assert!(a.delete_namespace("team-a").await.unwrap());
    assert!(!a.delete_namespace("team-a").await.unwrap());
    assert_eq!(
        code(a.count("team-a", None).await.unwrap_err()),
        "unknown_namespace"
    );
    // The name is free again.
    a.create_namespace(&create("team-a", "private"))
        .await
        .unwrap();
    assert_eq!(a.count("team-a", None).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_creates_only_namespaces_its_contract_writes_and_keeps_its_own() {
    let server = start().await;
    let mut greedy = contract("mallory");
    greedy["permissions"]["write_namespaces"] = json!(["mallory", "team-*", "carol"]);
    let m = connect(&server, greedy).await;
    let geometry = GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    };
    let create = |name: &str| p::CreateNamespace {
        name: name.into(),
        visibility: "private".into(),
        geometry: geometry.clone(),
        retention: None,
        datatype: None,
        graph: None,
    };
    // Outside the contract's write_namespaces: refused.
    let e = m.create_namespace(&create("elsewhere")).await.unwrap_err();
    assert_eq!(code(e), "permission_denied");
    // A connected model's home: refused.
    let _b = connect(&server, contract("bob")).await;
    let mut bobs = contract("x");
    bobs["permissions"]["write_namespaces"] = json!(["*"]);
    let x = connect(&server, bobs).await;
    assert_eq!(
        code(x.create_namespace(&create("bob")).await.unwrap_err()),
        "permission_denied"
    );
    // Taken before its model ever connected: the model still connects and
    // the namespace is its own.
    m.create_namespace(&create("carol")).await.unwrap();
    let c = connect(&server, contract("carol")).await;
    let v = c.store_vector(&point("carol", 0.3, "mine")).await.unwrap();
    assert_eq!(v.namespace, "carol");
    let info = c.namespace_info("carol").await.unwrap();
    assert_eq!(info.owner, "carol");
    let e = m
        .store_vector(&point("carol", 0.3, "squat"))
        .await
        .unwrap_err();
    assert_eq!(code(e), "permission_denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_belong_to_their_owner_unless_it_shares_them() {
    let server = start().await;
    let a = connect(&server, contract("alice")).await;
    let b = connect(&server, contract("bob")).await;
    let store = |name: &str, readonly: bool, write: Option<Vec<String>>| p::StoreBlock {
        name: name.into(),
        content: BlockContent::Text("the plan".into()),
        persist: true,
        readonly,
        read: None,
        write,
    };
    let blk = a.store_block(store("plan", false, None)).await.unwrap();
    assert_eq!((blk.owner.as_str(), blk.write.len()), ("alice", 0));
    // Bob reads, but neither changes nor deletes it.
    assert!(b.get_block("plan").await.unwrap().is_some());
    let upd = p::UpdateBlock {
        name: "plan".into(),
        content: Some(BlockContent::Text("bob's plan".into())),
        ..p::UpdateBlock::default()
    };
    assert_eq!(
        code(b.update_block(upd.clone()).await.unwrap_err()),
        "permission_denied"
    );
    assert_eq!(
        code(b.delete_block("plan").await.unwrap_err()),
        "permission_denied"
    );
    // Alice lets bob write; bob still may not change who may.
    let share = p::UpdateBlock {
        name: "plan".into(),
        write: Some(vec!["bob".into()]),
        ..p::UpdateBlock::default()
    };
    a.update_block(share.clone()).await.unwrap();
    assert_eq!(b.update_block(upd).await.unwrap().version, 2);
    assert_eq!(
        code(b.update_block(share).await.unwrap_err()),
        "permission_denied"
    );

    // Read-only from the start.
    a.store_block(store("law", true, None)).await.unwrap();
    let e = a
        .update_block(p::UpdateBlock {
            name: "law".into(),
            content: Some(BlockContent::Text("changed".into())),
            ..p::UpdateBlock::default()
        })
        .await
        .unwrap_err();
    assert_eq!(code(e), "read_only_block");

    // Deleting what is not there answers false, as PROTOCOL.md says.
    assert!(!a.delete_block("nothing").await.unwrap());
    let names: Vec<String> = a
        .list_blocks(Some("shared_knowledge"))
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["law", "plan"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_finite_metadata_is_refused() {
    let server = start().await;
    let a = connect(&server, contract("alice")).await;
    let v = point("alice", 0.2, "x");
    let args = json!({"namespace": "alice", "vector": v.vector, "metadata": {"score": f64::NAN}});
    // serde_json cannot hold NaN: send it as msgpack by hand.
    let mut raw = p::value(&args).unwrap();
    if let rmpv::Value::Map(m) = &mut raw {
        for (k, val) in m.iter_mut() {
            if k.as_str() == Some("metadata") {
                *val = rmpv::Value::Map(vec![("score".into(), rmpv::Value::F64(f64::NAN))]);
            }
        }
    }
    let e = a
        .call::<_, p::WireVector>("store_vector", &raw)
        .await
        .unwrap_err();
    assert_eq!(code(e), "bad_request");
    assert_eq!(a.count("alice", None).await.unwrap(), 0);
}

/// PROTOCOL.md's example: `{"eq": ["from", "alice"]}` finds what alice
/// said, for the model she said it to, without a grant on her namespace;
/// what she said to others stays hidden.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_searches_the_messages_it_received_without_a_grant() {
    let server = start().await;
    let alice = connect(&server, contract("alice")).await;
    let bob = connect(&server, contract("bob")).await;
    let _carol = connect(&server, contract("carol")).await;
    let to_bob = alice
        .send("bob", b"for bob".to_vec(), Some(h2(0.2, 0.0)))
        .await
        .unwrap();
    alice
        .send("carol", b"for carol".to_vec(), Some(h2(0.2, 0.1)))
        .await
        .unwrap();
    let mut s = p::Search::new("alice", h2(0.2, 0.0), 10);
    s.filter = Some(Filter::Eq("from".into(), json!("alice")));
    let hits = bob.search_with(&s).await.unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, [to_bob.as_str()]);
    assert_eq!(hits[0].metadata["hvs_kind"], json!("message"));
    // Nothing else of alice's private namespace shows.
    alice
        .store_vector(&point("alice", 0.2, "private"))
        .await
        .unwrap();
    let all = bob
        .search_with(&p::Search::new("alice", h2(0.2, 0.0), 10))
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    // The sender finds both.
    assert_eq!(alice.search_with(&s).await.unwrap().len(), 2);
}

/// Every operation on vectors checks the namespace the vector lives in, by
/// id too: another model's private vectors cannot be read, counted, paged
/// through, changed or deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_by_id_and_by_namespace_keep_their_namespaces_rules() {
    let server = start().await;
    let alice = connect(&server, contract("alice")).await;
    let bob = connect(&server, contract("bob")).await;
    let v = alice
        .store_vector(&point("alice", 0.4, "secret"))
        .await
        .unwrap();
    let denied = |r: Result<(), ClientError>| match r {
        Err(e) => assert_eq!(e.code(), "permission_denied"),
        Ok(()) => panic!("allowed"),
    };
    denied(bob.retrieve_vector(&v.id).await.map(drop));
    denied(
        bob.retrieve_vectors(std::slice::from_ref(&v.id), true)
            .await
            .map(drop),
    );
    denied(
        bob.update_vector(p::UpdateVector {
            id: v.id.clone(),
            vector: Some(h2(0.1, 0.0)),
            ..p::UpdateVector::default()
        })
        .await
        .map(drop),
    );
    denied(bob.delete_vector(&v.id).await.map(drop));
    denied(
        bob.delete_vectors(std::slice::from_ref(&v.id))
            .await
            .map(drop),
    );
    let all = Filter::Eq("tag".into(), json!("secret"));
    denied(bob.delete_by_filter("alice", all).await.map(drop));
    denied(bob.count("alice", None).await.map(drop));
    let scroll = p::Scroll {
        namespace: "alice".into(),
        after: None,
        limit: 10,
        filter: None,
        with_vector: false,
    };
    denied(bob.scroll(scroll).await.map(drop));
    // Nothing changed.
    assert_eq!(alice.retrieve_vector(&v.id).await.unwrap(), Some(v));
}
