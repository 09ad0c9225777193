//! Messages between models in one process: order, acks, redelivery,
//! broadcast, capacity, TTL, rate limits, restarts.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{build, contract, eventually, h2};
use hvs_runtime::{
    BroadcastScope, Durability, Error, HubConfig, MailboxDefaults, Outgoing, Runtime,
    RuntimeConfig, VectorInput, Visibility,
};
use hvs_storage::{Filter, GeometrySpec, SearchQuery};
use serde_json::json;

async fn memory_runtime(ids: &[&str]) -> Runtime {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    for id in ids {
        rt.connect_model(build(contract(id))).await.unwrap();
    }
    rt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_senders_messages_arrive_in_order_and_an_ack_removes_them() {
    let rt = memory_runtime(&["a", "b", "c"]).await;
    let (a, b, c) = (
        rt.model("a").unwrap(),
        rt.model("b").unwrap(),
        rt.model("c").unwrap(),
    );
    let mut sent_a = Vec::new();
    let mut sent_b = Vec::new();
    for i in 0..50 {
        sent_a.push(
            a.send_message("c", Outgoing::text(format!("a{i}")))
                .await
                .unwrap(),
        );
        sent_b.push(
            b.send_message("c", Outgoing::text(format!("b{i}")))
                .await
                .unwrap(),
        );
    }
    let got = c.receive_messages(1000).await.unwrap();
    assert_eq!(got.len(), 100);
    let from = |who: &str| -> Vec<_> {
        got.iter()
            .filter(|d| d.message.from == who)
            .map(|d| d.message.id)
            .collect()
    };
    assert_eq!(from("a"), sent_a, "per-sender FIFO");
    assert_eq!(from("b"), sent_b, "per-sender FIFO");
    assert_eq!(got[3].message.payload, b"b1");
    assert!(got.iter().all(|d| d.attempt == 1));

    let ids: Vec<_> = got.iter().map(|d| d.message.id).collect();
    let report = c.ack(&ids).await.unwrap();
    assert_eq!(report.acked.len(), 100);
    assert!(
        c.ack(&ids[..1]).await.unwrap().unknown == ids[..1],
        "a second ack is not an error"
    );
    let (stats, dead) = c.mailbox().await.unwrap();
    assert_eq!((stats.pending, stats.in_flight), (0, 0));
    assert!(dead.is_empty());
    assert!(c.receive_messages(10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_searchable_by_its_vector_and_readable_by_its_parties() {
    let rt = memory_runtime(&["a", "b", "c"]).await;
    let a = rt.model("a").unwrap();
    let near = a
        .send_message(
            "b",
            Outgoing::text("near").with_vector(VectorInput::Point(h2(0.3, 0.0))),
        )
        .await
        .unwrap();
    a.send_message(
        "b",
        Outgoing::text("far").with_vector(VectorInput::Point(h2(3.0, 2.0))),
    )
    .await
    .unwrap();
    let mut q = SearchQuery::new("a", h2(0.25, 0.0), 1);
    q.filter = Some(Filter::Eq("hvs_kind".into(), json!("message")));
    let hits = a.semantic_search(q).await.unwrap();
    assert_eq!(hits[0].id, near);
    assert!((hits[0].distance - 0.05).abs() < 1e-9);
    let b = rt.model("b").unwrap();
    assert_eq!(b.get_message(near).await.unwrap().unwrap().payload, b"near");
    // c is neither party and a's namespace is private to a.
    let c = rt.model("c").unwrap();
    let err = c.get_message(near).await.unwrap_err();
    assert_eq!(err.code(), "permission_denied", "{err}");
    let report = rt.verify_consistency().await.unwrap();
    assert!(report.consistent, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_reaches_every_member_exactly_once() {
    let ids = ["m0", "m1", "m2", "m3", "m4", "m5"];
    let rt = memory_runtime(&ids).await;
    let m0 = rt.model("m0").unwrap();
    let report = m0
        .broadcast(
            Outgoing::text("all hands"),
            BroadcastScope {
                exclude: vec!["m5".into()],
                ..BroadcastScope::default()
            },
        )
        .await
        .unwrap();
    let mut r = report.recipients.clone();
    r.sort();
    assert_eq!(r, ["m1", "m2", "m3", "m4"]);
    for id in &ids[1..] {
        let got = rt.receive_messages(id, 100).await.unwrap();
        let want = usize::from(*id != "m5");
        assert_eq!(got.len(), want, "{id}");
        if want == 1 {
            assert_eq!(got[0].message.id, report.id);
        }
    }
    assert!(rt.receive_messages("m0", 10).await.unwrap().is_empty());

    // To a shared space's members only.
    rt.create_namespace(
        "team-x",
        "m0",
        Visibility::Shared,
        GeometrySpec::Hyperboloid {
            dim: 2,
            curvature: 1.0,
        },
    )
    .await
    .unwrap();
    for id in ["m0", "m2", "m3"] {
        rt.join(id, "team-x", &["planning"]).await.unwrap();
    }
    let report = m0
        .broadcast(
            Outgoing::text("team only"),
            BroadcastScope {
                namespace: Some("team-x".into()),
                ..BroadcastScope::default()
            },
        )
        .await
        .unwrap();
    let mut r = report.recipients.clone();
    r.sort();
    assert_eq!(r, ["m2", "m3"]);
    for id in &ids[1..] {
        let n = rt.receive_messages(id, 100).await.unwrap().len();
        assert_eq!(n, usize::from(*id == "m2" || *id == "m3"), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacked_message_comes_back_after_the_visibility_timeout() {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    let mut quick = contract("slow-reader");
    quick["communication_protocol"]["timeout_ms"] = json!(150);
    quick["communication_protocol"]["retry"]["max_attempts"] = json!(2);
    rt.connect_model(build(quick)).await.unwrap();
    rt.connect_model(build(contract("a"))).await.unwrap();
    let id = rt
        .send_message("a", "slow-reader", "work", None)
        .await
        .unwrap();
    let first = rt.receive_messages("slow-reader", 10).await.unwrap();
    assert_eq!((first[0].message.id, first[0].attempt), (id, 1));
    assert!(
        rt.receive_messages("slow-reader", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = eventually(Duration::from_secs(5), || async {
        let d = rt.receive_messages("slow-reader", 10).await.unwrap();
        (!d.is_empty()).then_some(d)
    })
    .await
    .expect("redelivered");
    assert_eq!((again[0].message.id, again[0].attempt), (id, 2));
    // Out of attempts: it becomes a dead letter.
    let dead = eventually(Duration::from_secs(5), || async {
        let d = rt
            .model("slow-reader")
            .unwrap()
            .dead_letters()
            .await
            .unwrap();
        (!d.is_empty()).then_some(d)
    })
    .await
    .expect("dead-lettered");
    assert_eq!((dead[0].id, dead[0].reason.as_str()), (id, "max_attempts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_pushed_to_a_live_stream() {
    let rt = memory_runtime(&["a", "b"]).await;
    let b = rt.model("b").unwrap();
    let mut stream = b.deliveries().await.unwrap();
    let id = rt.send_message("a", "b", "pushed", None).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.message.id, id);
    b.ack(&[id]).await.unwrap();
    b.disconnect().await.unwrap();
    assert!(
        stream.next().await.is_none(),
        "the stream ends on disconnect"
    );
    // The mailbox keeps collecting while b is away.
    rt.send_message("a", "b", "while away", None).await.unwrap();
    let b = rt.connect_model(build(contract("b"))).await.unwrap();
    let got = b.receive_messages(10).await.unwrap();
    assert_eq!(got[0].message.payload, b"while away");
}

/// A reader that stops does not make the push stream grow without bound:
/// past its window messages wait in the mailbox, pending, and arrive once
/// the reader takes what it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_leaves_the_rest_pending_in_its_mailbox() {
    let rt = memory_runtime(&["a", "b"]).await;
    let (a, b) = (rt.model("a").unwrap(), rt.model("b").unwrap());
    let mut stream = b.deliveries().await.unwrap();
    let n = 6000;
    let batch: Vec<(String, Outgoing)> = (0..n)
        .map(|i| ("b".to_string(), Outgoing::text(format!("m{i}"))))
        .collect();
    a.send_messages(batch).await.unwrap();
    let (stats, _) = b.mailbox().await.unwrap();
    assert!(stats.in_flight <= 4096, "{stats:?}");
    assert_eq!(stats.in_flight + stats.pending, n);
    assert!(stats.pending >= n - 4096, "{stats:?}");
    let mut got = Vec::new();
    while got.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the rest is pushed once there is room")
            .unwrap();
        got.push(d.message.id);
        if got.len() % 500 == 0 {
            b.ack(&got[got.len() - 500..]).await.unwrap();
        }
    }
    let payloads: std::collections::HashSet<_> = got.iter().collect();
    assert_eq!(payloads.len(), n, "each message once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_refuses_or_dead_letters_the_oldest_as_configured() {
    let mut config = RuntimeConfig::memory();
    config.hub = HubConfig {
        mailboxes: MailboxDefaults {
            capacity: 2,
            ..MailboxDefaults::default()
        },
        ..HubConfig::default()
    };
    let rt = Runtime::open(config.clone()).await.unwrap();
    for id in ["a", "b"] {
        rt.connect_model(build(contract(id))).await.unwrap();
    }
    rt.send_message("a", "b", "1", None).await.unwrap();
    rt.send_message("a", "b", "2", None).await.unwrap();
    let err = rt.send_message("a", "b", "3", None).await.unwrap_err();
    assert_eq!(err.code(), "mailbox_full", "{err}");
    assert!(err.is_validation());
    let got = rt.receive_messages("b", 1).await.unwrap();
    rt.ack("b", &[got[0].message.id]).await.unwrap();
    rt.send_message("a", "b", "3", None).await.unwrap();

    config.hub.mailboxes.overflow = hvs_runtime::OverflowPolicy::DeadLetterOldest;
    let rt = Runtime::open(config).await.unwrap();
    for id in ["a", "b"] {
        rt.connect_model(build(contract(id))).await.unwrap();
    }
    let first = rt.send_message("a", "b", "1", None).await.unwrap();
    for p in ["2", "3"] {
        rt.send_message("a", "b", p, None).await.unwrap();
    }
    let dead = eventually(Duration::from_secs(5), || async {
        let d = rt.model("b").unwrap().dead_letters().await.unwrap();
        (!d.is_empty()).then_some(d)
    })
    .await
    .unwrap();
    assert_eq!((dead[0].id, dead[0].reason.as_str()), (first, "overflow"));
    let got: Vec<_> = rt
        .receive_messages("b", 10)
        .await
        .unwrap()
        .iter()
        .map(|d| d.message.payload.clone())
        .collect();
    assert_eq!(got, [b"2".to_vec(), b"3".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_message_is_never_delivered() {
    let rt = memory_runtime(&["a", "b"]).await;
    let a = rt.model("a").unwrap();
    let short = Outgoing {
        ttl_ms: Some(1),
        ..Outgoing::text("stale soon")
    };
    let id = a.send_message("b", short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(rt.receive_messages("b", 10).await.unwrap().is_empty());
    let dead = rt.model("b").unwrap().dead_letters().await.unwrap();
    assert_eq!((dead[0].id, dead[0].reason.as_str()), (id, "expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_size_limits_refuse_past_their_budget_and_recover() {
    let rt = Runtime::open(RuntimeConfig::memory()).await.unwrap();
    let mut c = contract("limited");
    c["resource_limits"]["max_vectors_per_second"] = json!(5);
    rt.connect_model(build(c)).await.unwrap();
    rt.connect_model(build(contract("b"))).await.unwrap();
    for i in 0..5 {
        rt.send_message("limited", "b", format!("{i}"), None)
            .await
            .unwrap();
    }
    let err = rt
        .send_message("limited", "b", "6", None)
        .await
        .unwrap_err();
    let Error::Contract(hvs_contracts::ContractError::LimitExceeded {
        limit,
        value,
        retry_after,
    }) = &err
    else {
        panic!("expected a limit, got {err}");
    };
    assert_eq!(
        (*limit, *value),
        (hvs_contracts::Limit::VectorsPerSecond, 5)
    );
    let wait = retry_after.expect("a rate limit says when to retry");
    assert!(wait <= Duration::from_millis(200), "{wait:?}");
    tokio::time::sleep(wait).await;
    rt.send_message("limited", "b", "6", None).await.unwrap();
    assert_eq!(rt.receive_messages("b", 10).await.unwrap().len(), 6);

    let big = vec![b'x'; 5000];
    let err = rt
        .send_message("b", "limited", big, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max_message_size_bytes"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_sends_store_nothing() {
    let rt = memory_runtime(&["a", "b"]).await;
    let mut mute = contract("mute");
    mute["permissions"]["write_namespaces"] = json!(["elsewhere"]);
    mute["permissions"]["broadcast"] = json!(false);
    rt.connect_model(build(mute)).await.unwrap();
    let before = rt.storage().get_stats().unwrap();
    let err = rt.send_message("mute", "b", "hi", None).await.unwrap_err();
    assert_eq!(err.code(), "permission_denied", "{err}");
    let err = rt
        .broadcast("mute", "hi", BroadcastScope::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "permission_denied", "{err}");
    // A batch with one unknown recipient or one bad vector stores none.
    let a = rt.model("a").unwrap();
    let err = a
        .send_messages(vec![
            ("b".into(), Outgoing::text("ok")),
            ("nobody".into(), Outgoing::text("lost")),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_model");
    let err = a
        .send_messages(vec![
            ("b".into(), Outgoing::text("ok")),
            (
                "b".into(),
                Outgoing::text("nan").with_vector(VectorInput::Point(vec![f64::NAN; 3])),
            ),
        ])
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err}");
    assert_eq!(
        rt.storage().get_stats().unwrap().namespaces,
        before.namespaces
    );
    assert!(rt.receive_messages("b", 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_at_buffered_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hvs.redb");
    let mut sent = Vec::new();
    {
        let rt = Runtime::open(RuntimeConfig::file(&path, Durability::Buffered))
            .await
            .unwrap();
        for id in ["a", "b"] {
            rt.connect_model(build(contract(id))).await.unwrap();
        }
        for i in 0..20 {
            sent.push(
                rt.send_message("a", "b", format!("m{i}"), None)
                    .await
                    .unwrap(),
            );
        }
        // b handles the first five and acks them; two more are in flight.
        let got = rt.receive_messages("b", 7).await.unwrap();
        let acked: Vec<_> = got[..5].iter().map(|d| d.message.id).collect();
        rt.ack("b", &acked).await.unwrap();
        rt.close().await.unwrap();
    }
    let rt = Runtime::open(RuntimeConfig::file(&path, Durability::Buffered))
        .await
        .unwrap();
    let known: HashMap<_, _> = rt.models().into_iter().collect();
    assert_eq!(
        known.get("b"),
        Some(&false),
        "models come back disconnected"
    );
    let b = rt.connect_model(build(contract("b"))).await.unwrap();
    let got: Vec<_> = b
        .receive_messages(100)
        .await
        .unwrap()
        .iter()
        .map(|d| d.message.id)
        .collect();
    assert_eq!(
        got,
        sent[5..],
        "every unacked message, in order, and no acked one"
    );
    let report = rt.verify_consistency().await.unwrap();
    assert!(report.consistent && report.vectors >= 20, "{report:?}");
}
