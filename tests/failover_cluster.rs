//! Failover groups (docs/CLUSTER.md), end to end: real `nats-server`s and
//! real `hvs serve` processes in one group, driven by the Rust client
//! following the primary.
//!
//! - on a routed cluster of three NATS nodes, with three instances at
//!   `quorum`: the primary is SIGKILLed at random moments under a steady
//!   load of vector writes and sends, a mirror takes over each time, and
//!   no write or send that was acknowledged is lost (duplicates are
//!   counted, not forbidden: a client retries what it did not hear
//!   answered); then one NATS node is killed and writes go on; then a
//!   mirror is stopped while writes go on, and catches up when back;
//! - split brain, at `replicated`: a primary paused (SIGSTOP) until its
//!   mirror took its lease, then resumed, takes no write, and follows the
//!   new primary, which holds every write the old one acknowledged.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hvs::runtime::protocol as p;
use hvs::runtime::{Client, ClientConfig};
use rand::{Rng, SeedableRng};
use serde_json::json;
use support::{Instance, Nats, contract, eventually};

const NS: &str = "ha";

/// The index of the instance that says it is the primary, once exactly
/// one does.
async fn primary(instances: &[Instance]) -> usize {
    eventually("one primary", || async {
        let roles: Vec<Option<String>> = instances
            .iter()
            .map(|i| if i.child.is_some() { i.role() } else { None })
            .collect();
        let primaries: Vec<usize> = (0..roles.len())
            .filter(|&k| roles[k].as_deref() == Some("primary"))
            .collect();
        (primaries.len() == 1).then(|| primaries[0])
    })
    .await
}

/// A client of model `model` (home namespace `NS`, E²) following the
/// group's primary among `instances`.
async fn follower(instances: &[Instance], model: &str) -> Client {
    follower_in(instances, model, NS).await
}

/// The same, with home namespace `namespace`.
async fn follower_in(instances: &[Instance], model: &str, namespace: &str) -> Client {
    let addrs: Vec<String> = instances.iter().map(Instance::addr).collect();
    let contract = contract(model, namespace, "euclidean", 2);
    let mut config =
        ClientConfig::new(addrs[0].clone(), contract).with_servers(addrs[1..].to_vec());
    config.failover_timeout = Duration::from_secs(120);
    config.request_timeout = Duration::from_secs(20);
    Client::connect(config).await.unwrap()
}

/// The two tests run one at a time: each has NATS raft groups and three
/// servers of its own, and a starved raft group misses its leases.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn group_args(extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["--group", "g", "--lease-ttl-ms", "2000"];
    args.extend_from_slice(extra);
    args
}

/// What the writers were told was done, and when.
#[derive(Default)]
struct Acked {
    /// By namespace.
    vectors: BTreeMap<String, BTreeSet<String>>,
    messages: BTreeSet<String>,
    /// When each acknowledged write was answered.
    times: Vec<Instant>,
}

/// Writes vectors (and, for `sender`, sends to `r`) until `stop`.
async fn write_until(
    c: Client,
    model: String,
    acked: Arc<Mutex<Acked>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut k = 0u64;
    while !*stop.borrow() {
        k += 1;
        let v = p::StoreVector {
            namespace: model.clone(),
            vector: vec![k as f64, 1.0],
            region: None,
            metadata: [("k".to_string(), json!(format!("{model}-{k}")))]
                .into_iter()
                .collect(),
        };
        match c.store_vector(&v).await {
            Ok(v) => {
                let mut a = acked.lock().unwrap();
                a.vectors.entry(model.clone()).or_default().insert(v.id);
                a.times.push(Instant::now());
            }
            Err(e) => panic!("{model}: a write failed past the failover timeout: {e}"),
        }
        if k.is_multiple_of(2) {
            match c.send("r", format!("{model}-{k}").into_bytes(), None).await {
                Ok(id) => {
                    let mut a = acked.lock().unwrap();
                    a.messages.insert(id);
                    a.times.push(Instant::now());
                }
                Err(e) => panic!("{model}: a send failed past the failover timeout: {e}"),
            }
        }
    }
}

/// Every vector id of `namespace` the primary holds.
async fn held(c: &Client, namespace: &str) -> BTreeSet<String> {
    support::scroll_all(c, namespace, false)
        .await
        .into_iter()
        .map(|v| v.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_loses_nothing_acknowledged_at_quorum() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let mut nats = Nats::start_cluster(root.path(), 3);
    let urls = Nats::urls(&nats);
    let args = group_args(&["--durability", "quorum", "--feed-replicas", "3"]);
    let mut instances: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .map(|n| Instance::start_with(root.path(), n, &urls, &args))
        .collect();
    primary(&instances).await;
    // The receiver is known to the group before anyone sends to it.
    let receiver = follower_in(&instances, "r", "r").await;
    let acked = Arc::new(Mutex::new(Acked::default()));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for model in ["w1", "w2"] {
        // Each writes its own home namespace.
        let c = follower_in(&instances, model, model).await;
        let (a, s) = (acked.clone(), stop.clone());
        writers.push(tokio::spawn(write_until(c, model.to_string(), a, s)));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut failovers = Vec::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        let old = primary(&instances).await;
        let before = acked.lock().unwrap().times.len();
        let killed = Instant::now();
        instances[old].kill9();
        // The first write answered after the kill.
        let back = eventually("a write after the kill", || async {
            let a = acked.lock().unwrap();
            a.times[before..].iter().find(|t| **t > killed).copied()
        })
        .await;
        failovers.push(back - killed);
        let new = primary(&instances).await;
        assert_ne!(
            new, old,
            "round {round}: the killed instance is not primary"
        );
        instances[old].spawn();
    }
    // One NATS node goes: the other two still hold a majority.
    nats[2].kill9();
    let before = acked.lock().unwrap().times.len();
    eventually("writes with a NATS node down", || async {
        (acked.lock().unwrap().times.len() > before + 20).then_some(())
    })
    .await;
    // A mirror cut off (stopped) while writes go on, then back: it
    // catches up.
    let current = primary(&instances).await;
    let cut = (current + 1) % instances.len();
    instances[cut].kill9();
    let before = acked.lock().unwrap().times.len();
    eventually("writes with a mirror gone", || async {
        (acked.lock().unwrap().times.len() > before + 20).then_some(())
    })
    .await;
    instances[cut].spawn();
    stop_tx.send(true).unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked_vectors = acked
        .lock()
        .unwrap()
        .vectors
        .values()
        .map(BTreeSet::len)
        .sum::<usize>();
    eventually("the mirror back in step", || async {
        let h = instances[cut].admin_json("/health")?;
        let jobs = h["cluster"]["sync_jobs"].as_array()?.clone();
        let caught_up = h["cluster"]["group"]["role"]["role"] == "mirror"
            && jobs.len() == 1
            && jobs[0]["pending"] == 0
            && jobs[0]["last_error"].is_null();
        let held = h["vectors"].as_u64()? as usize;
        (caught_up && held >= acked_vectors).then_some(())
    })
    .await;
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    eprintln!(
        "{} vectors and {} sends acknowledged; kill → first write: {:?}",
        acked.vectors.values().map(BTreeSet::len).sum::<usize>(),
        acked.messages.len(),
        failovers
    );
    for (model, ids) in &acked.vectors {
        let checker = follower_in(&instances, model, model).await;
        let here = held(&checker, model).await;
        let lost: Vec<_> = ids.difference(&here).collect();
        assert!(
            lost.is_empty(),
            "acknowledged vectors of {model} lost: {lost:?}"
        );
    }
    // Every acknowledged send reaches `r` (some perhaps twice).
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let began = Instant::now();
    while !acked.messages.iter().all(|m| got.contains_key(m)) {
        assert!(
            began.elapsed() < support::PATIENCE,
            "acknowledged sends never delivered: {:?}",
            acked
                .messages
                .iter()
                .filter(|m| !got.contains_key(*m))
                .collect::<Vec<_>>()
        );
        for d in receiver.receive(500).await.unwrap_or_default() {
            *got.entry(d.message.id.clone()).or_default() += 1;
            let _ = receiver.ack(&[d.message.id]).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = got.values().filter(|n| **n > 1).count();
    eprintln!("deliveries seen twice: {again}");
    drop(nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_primary_takes_no_write_once_its_lease_is_gone() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let nats = Nats::start(root.path());
    // `replicated`: a write is answered once a mirror applied it (so a
    // third instance mirrors the new primary once the old one is paused).
    let args = group_args(&["--durability", "replicated"]);
    let mut instances: Vec<Instance> = ["a", "b", "c"]
        .iter()
        .map(|n| Instance::start_with(root.path(), n, &nats.url(), &args))
        .collect();
    let old = primary(&instances).await;
    // A client held on the old primary itself, not following the group.
    let stale = Client::connect(ClientConfig::new(
        instances[old].addr(),
        contract("w", NS, "euclidean", 2),
    ))
    .await
    .unwrap();
    let point = |x: f64, tag: &str| p::StoreVector {
        namespace: NS.into(),
        vector: vec![x, 0.0],
        region: None,
        metadata: [("tag".to_string(), json!(tag))].into_iter().collect(),
    };
    stale.store_vector(&point(1.0, "before")).await.unwrap();

    instances[old].signal("STOP");
    eventually("a mirror takes the lease", || async {
        (0..instances.len())
            .find(|&k| k != old && instances[k].role().as_deref() == Some("primary"))
    })
    .await;
    let current = follower(&instances, "w").await;
    current.store_vector(&point(2.0, "after")).await.unwrap();

    instances[old].signal("CONT");
    // Refused one way or another: `not_primary` from the fence, the
    // session closed (`not_primary` push), or, when the client reconnects
    // to the old primary meanwhile, its hello refused. Below, the old
    // primary's own file shows the write is nowhere.
    if let Ok(v) = stale.store_vector(&point(3.0, "stale")).await {
        panic!("the paused primary took a write after losing its lease: {v:?}");
    }
    // It follows the new primary, and its store holds no stale write.
    eventually("the old primary mirrors the new one", || async {
        (instances[old].role().as_deref() == Some("mirror")).then_some(())
    })
    .await;
    let tags = |c: Client| async move {
        let page = c
            .scroll(p::Scroll {
                namespace: NS.into(),
                after: None,
                limit: 100,
                filter: None,
                with_vector: false,
            })
            .await
            .unwrap();
        page.vectors
            .iter()
            .map(|v| {
                v.metadata
                    .get("tag")
                    .and_then(|t| t.as_str())
                    .unwrap_or("")
                    .to_string()
            })
            .collect::<BTreeSet<_>>()
    };
    let on_new = tags(current).await;
    assert!(
        on_new.contains("before") && on_new.contains("after"),
        "{on_new:?}"
    );
    assert!(!on_new.contains("stale"));
    // The old primary's own file, opened alone.
    instances[old].stop();
    instances[old].extra.clear();
    instances[old].nats = String::new();
    let alone = standalone(&instances[old].data(), root.path()).await;
    let on_old = tags(alone.1).await;
    assert!(!on_old.contains("stale"), "{on_old:?}");
    assert!(
        on_old.contains("after"),
        "it mirrored the new primary: {on_old:?}"
    );
    drop(alone.0);
}

/// `hvs serve` on `data` with no cluster, and a client of it.
async fn standalone(data: &Path, root: &Path) -> (support::Reaped, Client) {
    let port = support::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hvs"))
        .current_dir(root)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin", &format!("127.0.0.1:{}", support::free_port())])
        .arg("--data")
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    support::wait_listening(port, "hvs serve alone", &mut child);
    let c = Client::connect(ClientConfig::new(
        format!("127.0.0.1:{port}"),
        contract("w", NS, "euclidean", 2),
    ))
    .await
    .unwrap();
    (support::Reaped(child), c)
}
