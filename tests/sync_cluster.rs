//! Many instances on NATS JetStream (docs/SYNC.md), end to end: a real
//! `nats-server` with JetStream on a free loopback port and real
//! `hvs serve` processes on their own data directories, driven by the Rust
//! client over the wire.
//!
//! - three instances with two-way jobs converge after random writes,
//!   updates and deletes on all of them, and stop exchanging;
//! - SIGKILL of the source, of the target and of nats-server in the middle
//!   of a continuous job loses nothing the source acknowledged;
//! - a one-shot job catches up and stops; a paused job catches up after
//!   its pause;
//! - a conflict settled by `merge` on the hyperboloid ends with the
//!   geodesic midpoint on both sides;
//! - a namespace of another manifold is refused with `geometry_mismatch`.
//!
//! A machine without nats-server gets Debian's from
//! `scripts/install-nats.sh` (run here, and by `.ci/run`); if it cannot be
//! installed the tests fail rather than skip.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hvs::runtime::protocol as p;
use hvs::runtime::{Client, ClientError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use support::{Cluster, Instance, PATIENCE, eventually};

/// A point of the hyperboloid H² at radius `r`, angle `a`.
fn h2(r: f64, a: f64) -> Vec<f64> {
    vec![r.cosh(), r.sinh() * a.cos(), r.sinh() * a.sin()]
}

fn spec(name: &str, source: &str, strategy: p::ConflictStrategy, follow: bool) -> p::SyncSpec {
    p::SyncSpec {
        name: name.into(),
        source: source.into(),
        mode: p::SyncMode::Full,
        strategy,
        follow,
    }
}

/// Every vector of `namespace`, by id: (data, version, metadata).
type Snapshot = BTreeMap<String, (Vec<f64>, u64, serde_json::Value)>;

async fn snapshot(c: &Client, namespace: &str) -> Snapshot {
    support::scroll_all(c, namespace, true)
        .await
        .into_iter()
        .map(|v| {
            let meta = serde_json::to_value(&v.metadata).unwrap();
            (v.id, (v.vector.unwrap_or_default(), v.version, meta))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_with_two_way_jobs_converge_and_go_quiet() {
    let names = ["a", "b", "c"];
    let mut cluster = Cluster::start(&names);
    let mut clients = Vec::new();
    for i in 0..names.len() {
        clients.push(cluster.writer(i).await);
    }
    for (k, c) in clients.iter().enumerate() {
        for other in names.iter().filter(|o| **o != names[k]) {
            let s = spec(
                &format!("from-{other}"),
                other,
                p::ConflictStrategy::LastWriteWins,
                true,
            );
            let status = c.sync_create(s).await.unwrap();
            assert_eq!(status.spec.source, *other);
        }
        assert_eq!(c.sync_list().await.unwrap().len(), 2);
    }
    // Random writes, updates and deletes on all three, interleaved.
    let mut rng = StdRng::seed_from_u64(12);
    let mut ids: Vec<String> = Vec::new();
    for step in 0..400 {
        let k = rng.random_range(0..clients.len());
        let c = &clients[k];
        let roll = rng.random_range(0..10);
        if ids.is_empty() || roll < 6 {
            let v = c
                .store_vector(&p::StoreVector {
                    namespace: "shared".into(),
                    vector: h2(rng.random_range(0.0..3.0), rng.random_range(0.0..6.2)),
                    region: None,
                    metadata: [("step".to_string(), json!(step))].into_iter().collect(),
                })
                .await
                .unwrap();
            ids.push(v.id);
        } else if roll < 9 {
            let id = ids[rng.random_range(0..ids.len())].clone();
            let update = p::UpdateVector {
                id,
                vector: Some(h2(rng.random_range(0.0..3.0), rng.random_range(0.0..6.2))),
                metadata: Some([("updated".to_string(), json!(step))].into_iter().collect()),
                region: None,
                clear_region: false,
                if_version: None,
            };
            // Not there yet (or deleted) on this instance: refused, fine.
            match c.update_vector(update).await {
                Ok(_) => {}
                Err(ClientError::Server(e)) if e.code == "vector_not_found" => {}
                Err(e) => panic!("update: {e}"),
            }
        } else {
            let id = ids[rng.random_range(0..ids.len())].clone();
            c.delete_vector(&id).await.unwrap();
        }
    }
    // Convergence: the same vectors, versions and metadata everywhere.
    let converged = eventually("three equal snapshots", || async {
        let a = snapshot(&clients[0], "shared").await;
        let b = snapshot(&clients[1], "shared").await;
        let c = snapshot(&clients[2], "shared").await;
        (a == b && b == c).then_some(a)
    })
    .await;
    assert!(converged.len() > 100, "{} vectors", converged.len());
    // Quiet: the feeds stop growing (no change echoes back and forth).
    let quiet = eventually("quiet feeds", || async {
        let mut last = Vec::new();
        for c in &clients {
            let f = c.cluster_status().await.unwrap();
            if f.lag != 0 {
                return None;
            }
            last.push(f.last_change);
        }
        Some(last)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (c, before) in clients.iter().zip(&quiet) {
        let f = c.cluster_status().await.unwrap();
        assert_eq!(f.last_change, *before, "{} kept changing", f.instance);
    }
    for c in &clients {
        for job in c.sync_list().await.unwrap() {
            assert!(job.last_error.is_none(), "{job:?}");
            assert_eq!(job.refused, 0, "{job:?}");
        }
    }
    drop(clients);
    for i in &mut cluster.instances {
        i.stop();
    }
    let digests: Vec<String> = cluster.instances.iter().map(Instance::digest).collect();
    assert_eq!(digests[0], digests[1]);
    assert_eq!(digests[1], digests[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_source_target_and_nats_are_killed() {
    let mut cluster = Cluster::start(&["a", "b"]);
    let (wa, wb) = (cluster.writer(0).await, cluster.writer(1).await);
    wb.sync_create(spec(
        "from-a",
        "a",
        p::ConflictStrategy::LastWriteWins,
        true,
    ))
    .await
    .unwrap();
    let mut acknowledged = Vec::new();
    let mut rng = StdRng::seed_from_u64(7);
    let write = async |wa: &Client, n: usize, rng: &mut StdRng, acked: &mut Vec<String>| {
        for _ in 0..n {
            let v = p::StoreVector {
                namespace: "shared".into(),
                vector: h2(rng.random_range(0.0..2.0), rng.random_range(0.0..6.2)),
                region: None,
                metadata: Default::default(),
            };
            if let Ok(v) = wa.store_vector(&v).await {
                acked.push(v.id);
            }
        }
    };
    write(&wa, 200, &mut rng, &mut acknowledged).await;
    // The source dies and comes back: its feed resumes from what
    // JetStream acknowledged.
    cluster.instances[0].kill9();
    cluster.instances[0].spawn();
    write(&wa, 200, &mut rng, &mut acknowledged).await;
    // The target dies and comes back: its job resumes from its durable
    // consumer.
    cluster.instances[1].kill9();
    cluster.instances[1].spawn();
    write(&wa, 200, &mut rng, &mut acknowledged).await;
    // NATS dies: the source keeps serving; the feed catches up when NATS
    // returns (file storage keeps the stream and the consumer).
    cluster.nats.kill9();
    write(&wa, 200, &mut rng, &mut acknowledged).await;
    let lagging = wa.cluster_status().await.unwrap();
    assert!(!lagging.connected || lagging.lag > 0, "{lagging:?}");
    cluster.nats.spawn();
    write(&wa, 200, &mut rng, &mut acknowledged).await;
    assert!(
        acknowledged.len() >= 990,
        "{} acknowledged",
        acknowledged.len()
    );
    let began = Instant::now();
    loop {
        let on_b = snapshot(&wb, "shared").await;
        let missing = acknowledged
            .iter()
            .filter(|id| !on_b.contains_key(*id))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            began.elapsed() < PATIENCE,
            "{missing} acknowledged vectors missing on b; a's feed: {:?}; b's job: {:?}",
            wa.cluster_status().await,
            wb.sync_status("from-a").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let on_a = snapshot(&wa, "shared").await;
    let on_b = snapshot(&wb, "shared").await;
    assert_eq!(on_a, on_b);
    let job = wb.sync_status("from-a").await.unwrap();
    assert_eq!(job.state, p::SyncState::Running);
    assert_eq!(job.refused, 0, "{job:?}");
    // The faults are over, and no longer shown.
    assert_eq!(job.last_error, None, "{job:?}");
    let feed = wa.cluster_status().await.unwrap();
    assert!(
        feed.connected && feed.lag == 0 && feed.last_error.is_none(),
        "{feed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shot_jobs_finish_and_paused_jobs_catch_up() {
    let cluster = Cluster::start(&["a", "b"]);
    let (a, b) = (&cluster.instances[0], &cluster.instances[1]);
    let (wa, wb) = (cluster.writer(0).await, cluster.writer(1).await);
    let batch = |n: usize, from: usize| {
        (from..from + n)
            .map(|i| p::NewWireVector {
                vector: h2(1.0 + (i % 7) as f64 * 0.1, i as f64),
                region: None,
                metadata: [("i".to_string(), json!(i))].into_iter().collect(),
            })
            .collect::<Vec<_>>()
    };
    wa.batch_store_vectors("shared", batch(500, 0))
        .await
        .unwrap();
    // A namespace only a has, with its access list.
    let solo = a.client("solo-owner", "solo", "hyperboloid", 2).await;
    solo.batch_store_vectors("solo", batch(3, 0)).await.unwrap();
    let once = wb
        .sync_create(spec("once", "a", p::ConflictStrategy::LastWriteWins, false))
        .await
        .unwrap();
    assert!(!once.spec.follow);
    let done = eventually("the one-shot job to finish", || async {
        let s = wb.sync_status("once").await.unwrap();
        (s.state == p::SyncState::Done).then_some(s)
    })
    .await;
    assert_eq!(snapshot(&wb, "shared").await.len(), 500);
    assert!(done.applied >= 500, "{done:?}");
    // b knows the namespace it was brought, with a's access list: private
    // to its owner, who connects to b and reads it there.
    let e = wb.namespace_info("solo").await.unwrap_err();
    assert!(
        matches!(e, ClientError::Server(ref e) if e.code == "permission_denied"),
        "{e}"
    );
    let solo_b = b.client("solo-owner", "solo", "hyperboloid", 2).await;
    assert_eq!(
        solo_b.namespace_info("solo").await.unwrap().owner,
        "solo-owner"
    );
    assert_eq!(snapshot(&solo_b, "solo").await.len(), 3);
    // Finished: later writes do not arrive through it.
    wa.batch_store_vectors("shared", batch(10, 500))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(snapshot(&wb, "shared").await.len(), 500);
    assert_eq!(
        wb.sync_delete("once").await.unwrap().state,
        p::SyncState::Done
    );

    // A continuous job, paused while the source changes a lot.
    wb.sync_create(spec(
        "follow",
        "a",
        p::ConflictStrategy::LastWriteWins,
        true,
    ))
    .await
    .unwrap();
    eventually("the follower to catch up", || async {
        (snapshot(&wb, "shared").await.len() == 510).then_some(())
    })
    .await;
    let paused = wb.sync_pause("follow").await.unwrap();
    assert_eq!(paused.state, p::SyncState::Paused);
    let before = paused.applied;
    for k in 0..10 {
        wa.batch_store_vectors("shared", batch(300, 1000 + k * 300))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = wb.sync_status("follow").await.unwrap();
    assert_eq!(still.applied, before, "a paused job applies nothing");
    assert_eq!(snapshot(&wb, "shared").await.len(), 510);
    assert_eq!(
        wb.sync_resume("follow").await.unwrap().state,
        p::SyncState::Running
    );
    eventually("the resumed job to catch up", || async {
        let a = snapshot(&wa, "shared").await;
        (a.len() == 3510 && snapshot(&wb, "shared").await == a).then_some(())
    })
    .await;
    // Operators' errors are typed.
    let e = wb.sync_status("nope").await.unwrap_err();
    assert!(
        matches!(e, ClientError::Server(ref e) if e.code == "unknown_sync_job"),
        "{e}"
    );
    let e = wb
        .sync_create(spec("self", "b", p::ConflictStrategy::LastWriteWins, true))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Server(ref e) if e.code == "bad_request"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_conflict_ends_at_the_geodesic_midpoint_on_both_sides() {
    let cluster = Cluster::start(&["a", "b"]);
    let (wa, wb) = (cluster.writer(0).await, cluster.writer(1).await);
    for (c, other) in [(&wa, "b"), (&wb, "a")] {
        c.sync_create(spec("two-way", other, p::ConflictStrategy::Merge, true))
            .await
            .unwrap();
    }
    let v = wa
        .store_vector(&p::StoreVector {
            namespace: "shared".into(),
            vector: h2(1.0, 0.0),
            region: None,
            metadata: Default::default(),
        })
        .await
        .unwrap();
    eventually("the vector on b", || async {
        wb.retrieve_vector(&v.id).await.unwrap().map(drop)
    })
    .await;
    // Both sides change it while neither hears the other.
    wa.sync_pause("two-way").await.unwrap();
    wb.sync_pause("two-way").await.unwrap();
    let (x, y) = (h2(2.0, 0.5), h2(1.5, 2.5));
    for (c, point) in [(&wa, &x), (&wb, &y)] {
        c.update_vector(p::UpdateVector {
            id: v.id.clone(),
            vector: Some(point.clone()),
            metadata: None,
            region: None,
            clear_region: false,
            if_version: None,
        })
        .await
        .unwrap();
    }
    wa.sync_resume("two-way").await.unwrap();
    wb.sync_resume("two-way").await.unwrap();
    let (on_a, on_b) = eventually("the same version on both", || async {
        let ra = wa.retrieve_vector(&v.id).await.unwrap()?;
        let rb = wb.retrieve_vector(&v.id).await.unwrap()?;
        (ra.version == 3 && rb.version == 3).then_some((ra, rb))
    })
    .await;
    assert_eq!(on_a.vector, on_b.vector, "bit for bit the same point");
    // The hyperboloid's midpoint: (x + y) / sqrt(-<x+y, x+y>_L).
    let s: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p + q).collect();
    let norm = (s[0] * s[0] - s[1] * s[1] - s[2] * s[2]).sqrt();
    let got = on_a.vector.unwrap();
    for (g, w) in got.iter().zip(s.iter().map(|c| c / norm)) {
        assert!((g - w).abs() < 1e-12, "{got:?}");
    }
    let mut conflicts = wa.sync_conflicts("two-way", 0, 100).await.unwrap();
    conflicts.extend(wb.sync_conflicts("two-way", 0, 100).await.unwrap());
    assert!(!conflicts.is_empty());
    assert!(
        conflicts
            .iter()
            .all(|c| c.vector.as_deref() == Some(v.id.as_str()))
    );
    assert!(
        conflicts[0].detail.contains("merge combined"),
        "{conflicts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_of_another_manifold_is_refused() {
    let cluster = Cluster::start(&["a", "b"]);
    let (a, b) = (&cluster.instances[0], &cluster.instances[1]);
    // The same name: the hyperboloid H² at a, Euclidean R³ at b (three
    // coordinates on both sides).
    let ha = a.client("m", "space", "hyperboloid", 2).await;
    let eb = b.client("m", "space", "euclidean", 3).await;
    ha.store_vector(&p::StoreVector {
        namespace: "space".into(),
        vector: h2(1.0, 1.0),
        region: None,
        metadata: Default::default(),
    })
    .await
    .unwrap();
    eb.sync_create(spec(
        "from-a",
        "a",
        p::ConflictStrategy::LastWriteWins,
        true,
    ))
    .await
    .unwrap();
    let job = eventually("the refusal", || async {
        let s = eb.sync_status("from-a").await.unwrap();
        (s.refused >= 2).then_some(s)
    })
    .await;
    assert!(
        job.last_error
            .as_deref()
            .is_some_and(|e| e.contains("geometry_mismatch")),
        "{job:?}"
    );
    assert!(snapshot(&eb, "space").await.is_empty());
}

/// `GET path` on an admin port: the body.
fn admin_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: hvs\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_and_selective_jobs_copy_only_their_part() {
    let cluster = Cluster::start(&["a", "b", "c"]);
    let (a, b) = (&cluster.instances[0], &cluster.instances[1]);
    let (wa, wb, wc) = (
        cluster.writer(0).await,
        cluster.writer(1).await,
        cluster.writer(2).await,
    );
    // Another namespace of a's, which neither job names.
    let other = a.client("o", "other", "hyperboloid", 2).await;
    other
        .store_vector(&p::StoreVector {
            namespace: "other".into(),
            vector: h2(1.0, 1.0),
            region: Some("r1".into()),
            metadata: [("topic".to_string(), json!("cats"))].into_iter().collect(),
        })
        .await
        .unwrap();
    let mut ids = BTreeMap::new();
    for i in 0..40 {
        let region = if i % 2 == 0 { "r1" } else { "r2" };
        let topic = if i % 4 < 2 { "cats" } else { "dogs" };
        let v = wa
            .store_vector(&p::StoreVector {
                namespace: "shared".into(),
                vector: h2(0.5 + i as f64 * 0.01, i as f64),
                region: Some(region.into()),
                metadata: [("topic".to_string(), json!(topic))].into_iter().collect(),
            })
            .await
            .unwrap();
        ids.insert(v.id, (region, topic));
    }
    let partial = p::SyncSpec {
        name: "r1-only".into(),
        source: "a".into(),
        mode: p::SyncMode::Partial {
            namespaces: vec!["shared".into()],
            regions: vec!["r1".into()],
        },
        strategy: p::ConflictStrategy::LastWriteWins,
        follow: true,
    };
    wb.sync_create(partial).await.unwrap();
    let filter = hvs::runtime::Filter::Eq("topic".into(), json!("cats"));
    let selective = p::SyncSpec {
        name: "cats".into(),
        source: "a".into(),
        mode: p::SyncMode::Selective {
            filter,
            namespaces: vec![],
        },
        strategy: p::ConflictStrategy::LastWriteWins,
        follow: true,
    };
    wc.sync_create(selective).await.unwrap();
    let want = |keep: &dyn Fn(&str, &str) -> bool| -> Vec<String> {
        ids.iter()
            .filter(|(_, (r, t))| keep(r, t))
            .map(|(id, _)| id.clone())
            .collect()
    };
    let on_b = want(&|r, _| r == "r1");
    let on_c = want(&|_, t| t == "cats");
    eventually("b holds region r1, c holds the cats", || async {
        let b_ids: Vec<String> = snapshot(&wb, "shared").await.into_keys().collect();
        let c_ids: Vec<String> = snapshot(&wc, "shared").await.into_keys().collect();
        (b_ids == on_b && c_ids == on_c).then_some(())
    })
    .await;
    // The partial job names one namespace: `other` stays on a.
    let e = wb.count("other", None).await.unwrap_err();
    assert!(matches!(e, ClientError::Server(_)), "{e}");
    // A deletion reaches the copies that hold the vector.
    let gone = on_b.iter().find(|id| on_c.contains(id)).unwrap().clone();
    assert!(wa.delete_vector(&gone).await.unwrap());
    eventually("the deletion on b and c", || async {
        let b_has = wb.retrieve_vector(&gone).await.unwrap().is_some();
        let c_has = wc.retrieve_vector(&gone).await.unwrap().is_some();
        (!b_has && !c_has).then_some(())
    })
    .await;
    let b_job = wb.sync_status("r1-only").await.unwrap();
    assert!(b_job.skipped > 0, "{b_job:?}");
    assert_eq!(b_job.refused, 0, "{b_job:?}");
    // The lag and the jobs, on the admin pages.
    let health: serde_json::Value = serde_json::from_str(&admin_get(b.admin, "/health")).unwrap();
    let jobs = health["cluster"]["sync_jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["name"], "r1-only");
    assert_eq!(jobs[0]["source"], "a");
    assert_eq!(health["cluster"]["feed"]["instance"], "b");
    let metrics = admin_get(b.admin, "/metrics");
    assert!(
        metrics.contains("hvs_sync_applied{job=\"r1-only\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("hvs_feed_lag "), "{metrics}");
    let a_health: serde_json::Value = serde_json::from_str(&admin_get(a.admin, "/health")).unwrap();
    let feed = &a_health["cluster"]["feed"];
    assert_eq!(feed["stream"], "HVS_FEED_a");
    assert!(feed["published"].as_u64().unwrap() >= 40, "{feed}");
}
