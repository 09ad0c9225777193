//! `hvs bench failover`: the primary of a failover group SIGKILLed again
//! and again under a steady load, as issue 13 asks, timed.
//!
//! The bench starts a routed cluster of 3 nats-servers and a group of 3
//! `hvs serve` processes (this executable) on it at `--durability quorum
//! --feed-replicas 3` (docs/CLUSTER.md), each on free loopback ports and
//! its own data directory. `--writers` clients, each a model following the
//! group's primary (`ClientConfig::with_servers`), store vectors into their
//! own namespace one after the other and send every second one's tag to a
//! receiving model, which receives and acks as it goes. `--kills` times, at
//! a random moment `--min-gap-ms`..`--max-gap-ms` after the group settled
//! (one primary, the others mirrors), the primary is SIGKILLed; once a
//! write was accepted again (by the new primary) the killed instance is
//! started again on its data, and rejoins as a mirror.
//!
//! Reported: writes and sends acknowledged; lost ones, checked at the end
//! on the primary (every acknowledged vector id held in its namespace,
//! every acknowledged send delivered to the receiver), which must be none;
//! duplicates (a vector tag held twice: a write resent after its answer
//! was lost; a send delivered under two ids, or one id delivered twice);
//! per kill the time from the SIGKILL to the first write acknowledged after
//! it, and to the new primary showing in `/health`; throughput over the
//! whole run and outside the failovers; latency of each acknowledged
//! operation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use hvs::runtime::protocol as p;
use hvs::runtime::{Client, ClientError};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::bench::{BenchDurability, contract, histogram};
use crate::bench_tcp::{ServeGroup, following};
use crate::nats_server::{NatsCluster, checked_binary};

type BoxError = Box<dyn std::error::Error>;

/// Instances in the group and nodes in the NATS cluster.
const INSTANCES: usize = 3;
const NATS_NODES: usize = 3;
/// The model every writer sends to.
const RECEIVER: &str = "r";
/// How long any wait for the group (a primary, a write) may take.
const PATIENCE: Duration = Duration::from_secs(90);
/// How long the receiver may take, after the load, to see every send.
const DRAIN: Duration = Duration::from_secs(120);
/// The issue's aim for the failover time's median.
const AIM_FAILOVER_P50_MS: f64 = 3000.0;

#[derive(Args, Debug)]
pub(crate) struct FailoverArgs {
    /// SIGKILLs of the primary.
    #[arg(long, default_value_t = 10)]
    kills: usize,
    /// Clients writing, each a model storing vectors into its own
    /// namespace (one request at a time) and sending every second tag.
    #[arg(long, default_value_t = 4)]
    writers: usize,
    /// The group's lease TTL in ms (`hvs serve --lease-ttl-ms`; default
    /// the server's, 2000).
    #[arg(long)]
    lease_ttl_ms: Option<u64>,
    /// Least time from the group settling to the next kill, in ms.
    #[arg(long, default_value_t = 1000)]
    min_gap_ms: u64,
    /// Most time from the group settling to the next kill, in ms.
    #[arg(long, default_value_t = 4000)]
    max_gap_ms: u64,
    /// Seed of the kill moments.
    #[arg(long, default_value_t = 13)]
    seed: u64,
    /// The nats-server to start (default: `nats-server` on PATH, else
    /// /usr/sbin/nats-server).
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: FailoverArgs) -> Result<(), BoxError> {
    let bin = checked_binary(args.nats_server.as_deref())?;
    let rt = crate::bench::runtime()?;
    let cluster = NatsCluster::start(&bin, NATS_NODES)?;
    rt.block_on(cluster.wait_ready(Duration::from_secs(60)))?;
    let report = rt.block_on(measure(&args, &cluster))?;
    cluster.stop()?;
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    let lost = report["lost"]["vectors"].as_u64().unwrap_or(0)
        + report["lost"]["sends"].as_u64().unwrap_or(0);
    if lost > 0 {
        return Err(format!("{lost} acknowledged writes or sends were lost").into());
    }
    Ok(())
}

/// Progress on stderr, so that stdout holds only the report.
fn note(what: impl std::fmt::Display) {
    eprintln!("[bench failover] {what}");
}

/// What the writers were told was done.
#[derive(Default)]
struct Ledger {
    /// Acknowledged vector ids, by namespace (= writer model).
    vectors: BTreeMap<String, BTreeSet<String>>,
    /// Acknowledged sends: message id → tag.
    sends: BTreeMap<String, String>,
    /// When each acknowledged operation was answered.
    times: Vec<Instant>,
    /// Each acknowledged operation's latency, µs.
    latency_us: Option<Histogram<u64>>,
    /// Operations refused or failed past the client's failover timeout.
    failures: Vec<String>,
}

/// An acknowledged operation.
enum Done {
    /// A vector stored: namespace, id.
    Stored(String, String),
    /// A message sent: id, tag.
    Sent(String, String),
}

impl Ledger {
    /// Notes an operation begun at `began` and answered now.
    fn note(
        &mut self,
        began: Instant,
        answer: Result<Done, ClientError>,
        what: impl FnOnce() -> String,
    ) {
        let now = Instant::now();
        match answer {
            Ok(Done::Stored(namespace, id)) => {
                self.vectors.entry(namespace).or_default().insert(id);
            }
            Ok(Done::Sent(id, tag)) => {
                self.sends.insert(id, tag);
            }
            Err(e) => {
                self.failures.push(format!("{}: {e}", what()));
                return;
            }
        }
        self.times.push(now);
        let h = self.latency_us.get_or_insert_with(histogram);
        let _ = h.record(((now - began).as_micros() as u64).max(1));
    }

    /// The first acknowledgement answered after `t`.
    fn first_after(&self, t: Instant) -> Option<Instant> {
        self.times
            .iter()
            .rev()
            .take_while(|a| **a > t)
            .last()
            .copied()
    }
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// Deliveries per message id.
    by_id: HashMap<String, u32>,
    /// Message ids per tag (a send carried out twice has two).
    by_tag: HashMap<String, BTreeSet<String>>,
}

/// A client of `model` following the group's primary.
async fn follower(addrs: &[SocketAddr], model: &str) -> Result<Client, ClientError> {
    let mut config = following(addrs, contract(model).to_string());
    config.failover_timeout = Duration::from_secs(60);
    config.request_timeout = Duration::from_secs(20);
    Client::connect(config).await
}

/// Stores vectors (and sends every second tag to [`RECEIVER`]) until
/// `stop`; gives its client back.
async fn write_until(
    c: Client,
    model: String,
    points: Arc<Vec<Vec<f64>>>,
    ledger: Arc<Mutex<Ledger>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Client {
    let mut k = 0usize;
    while !*stop.borrow() {
        k += 1;
        let tag = format!("{model}-{k}");
        let point = points[k % points.len()].clone();
        let v = p::StoreVector {
            namespace: model.clone(),
            vector: point.clone(),
            region: None,
            metadata: [("k".to_string(), json!(tag))].into_iter().collect(),
        };
        let began = Instant::now();
        let stored = c.store_vector(&v).await;
        ledger.lock().unwrap_or_else(|e| e.into_inner()).note(
            began,
            stored.map(|v| Done::Stored(model.clone(), v.id)),
            || format!("{model} store {k}"),
        );
        if k.is_multiple_of(2) {
            let began = Instant::now();
            let sent = c
                .send(RECEIVER, tag.clone().into_bytes(), Some(point))
                .await;
            ledger.lock().unwrap_or_else(|e| e.into_inner()).note(
                began,
                sent.map(|id| Done::Sent(id, tag)),
                || format!("{model} send {k}"),
            );
        }
    }
    c
}

/// Receives and acks until `stop`, noting every delivery.
async fn receive_until(
    c: Client,
    seen: Arc<Mutex<Seen>>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Client {
    while !*stop.borrow() {
        // An error is past the failover timeout: try again.
        let got = c.receive(500).await.unwrap_or_default();
        if got.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let ids: Vec<String> = got.iter().map(|d| d.message.id.clone()).collect();
        {
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            for d in &got {
                *s.by_id.entry(d.message.id.clone()).or_default() += 1;
                let tag = String::from_utf8_lossy(&d.message.payload).into_owned();
                s.by_tag
                    .entry(tag)
                    .or_default()
                    .insert(d.message.id.clone());
            }
        }
        // Not acked (the answer lost in a failover): delivered again later.
        let _ = c.ack(&ids).await;
    }
    c
}

/// One kill: whom, and how long until the group wrote again.
struct Round {
    killed: usize,
    new_primary: usize,
    /// From the SIGKILL to the first write acknowledged after it.
    to_first_write: Duration,
    /// From the SIGKILL to the new primary showing in `/health`.
    to_primary_seen: Duration,
    /// From the restart of the killed instance to its saying it is a
    /// mirror (not that it caught up).
    rejoined: Option<Duration>,
}

async fn measure(args: &FailoverArgs, cluster: &NatsCluster) -> Result<Value, BoxError> {
    let dir = tempfile::tempdir()?;
    let mut group = ServeGroup::start(
        dir.path(),
        INSTANCES,
        &cluster.urls(),
        BenchDurability::Quorum,
        args.lease_ttl_ms,
    )?;
    group.settled_primary(PATIENCE).await?;
    let addrs = group.addrs();
    let points = Arc::new(crate::bench::points()?);

    // The receiver is known to the group before anyone sends to it.
    let receiver = follower(&addrs, RECEIVER).await?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop_writing, writing) = tokio::sync::watch::channel(false);
    let (stop_receiving, receiving) = tokio::sync::watch::channel(false);
    let receiver = tokio::spawn(receive_until(receiver, seen.clone(), receiving));
    let mut writers = Vec::new();
    for w in 0..args.writers.max(1) {
        let model = format!("w{w}");
        let c = follower(&addrs, &model).await?;
        writers.push(tokio::spawn(write_until(
            c,
            model,
            points.clone(),
            ledger.clone(),
            writing.clone(),
        )));
    }
    note(format!(
        "{} writers on a group of {INSTANCES} at quorum; {} kills",
        args.writers.max(1),
        args.kills
    ));

    let start = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut rounds = Vec::new();
    for round in 0..args.kills {
        let gap = rng.random_range(args.min_gap_ms..=args.max_gap_ms.max(args.min_gap_ms));
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let r = kill_once(&mut group, &ledger).await?;
        note(format!(
            "kill {}: s{} → s{}, first write {:.0} ms after the kill (primary seen at {:.0} ms), s{} restarted, a mirror {:.1} s later",
            round + 1,
            r.killed,
            r.new_primary,
            r.to_first_write.as_secs_f64() * 1000.0,
            r.to_primary_seen.as_secs_f64() * 1000.0,
            r.killed,
            r.rejoined.map_or(f64::NAN, |d| d.as_secs_f64())
        ));
        rounds.push(r);
    }
    // A last stretch with every instance back.
    tokio::time::sleep(Duration::from_millis(args.min_gap_ms)).await;
    stop_writing.send(true)?;
    let mut clients = Vec::new();
    for w in writers {
        clients.push(w.await?);
    }
    let secs = start.elapsed().as_secs_f64();
    let primary = group.settled_primary(PATIENCE).await?;
    note(format!(
        "load over after {secs:.1} s; checking on s{primary}"
    ));

    let in_step = mirrors_in_step(&group).await;
    let ledger = std::mem::take(&mut *ledger.lock().unwrap_or_else(|e| e.into_inner()));
    let vectors = check_vectors(&clients, &ledger).await?;
    let drained = Instant::now();
    let all_seen = || {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        ledger.sends.keys().all(|id| s.by_id.contains_key(id))
    };
    while !all_seen() && drained.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_receiving.send(true)?;
    let receiver = receiver.await?;
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    for c in clients.iter().chain([&receiver]) {
        let _ = c.close().await;
    }
    let clean = group.stop()?;
    Ok(report(
        args, &ledger, &seen, &rounds, vectors, secs, clean, in_step,
    ))
}

/// Waits until every member holds as many vectors as every other (the
/// mirrors caught up with the primary once the load stopped): how long it
/// took, or `None` if they still differ after [`PATIENCE`]; and the counts.
async fn mirrors_in_step(group: &ServeGroup) -> (Option<f64>, Vec<Option<u64>>) {
    let began = Instant::now();
    loop {
        let counts = tokio::task::block_in_place(|| group.vectors());
        let first = counts[0];
        if first.is_some() && counts.iter().all(|c| *c == first) {
            return (Some(began.elapsed().as_secs_f64()), counts);
        }
        if began.elapsed() > PATIENCE {
            return (None, counts);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Kills the settled group's primary, waits for a new one and a write
/// acknowledged after the kill, and starts the killed one again.
async fn kill_once(group: &mut ServeGroup, ledger: &Mutex<Ledger>) -> Result<Round, BoxError> {
    let old = group.settled_primary(PATIENCE).await?;
    let killed = Instant::now();
    group.kill9(old);
    // Answers read after the process is gone come from another instance.
    let dead = Instant::now();
    let new_primary = group
        .poll_roles(PATIENCE, "new primary", |roles| {
            roles.iter().position(|r| r.as_deref() == Some("primary"))
        })
        .await?;
    let to_primary_seen = killed.elapsed();
    let began = Instant::now();
    let first = loop {
        let first = ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_after(dead);
        if let Some(t) = first {
            break t;
        }
        if began.elapsed() > PATIENCE {
            return Err(format!("no write acknowledged within {PATIENCE:?} of the kill").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    group.respawn(old)?;
    let restarted = Instant::now();
    let rejoined = group
        .poll_roles(PATIENCE, "the killed instance back as a mirror", |roles| {
            (roles[old].as_deref() == Some("mirror")).then_some(())
        })
        .await
        .ok()
        .map(|()| restarted.elapsed());
    Ok(Round {
        killed: old,
        new_primary,
        to_first_write: first - killed,
        to_primary_seen,
        rejoined,
    })
}

/// What the primary holds of each writer's namespace: acknowledged ids
/// missing, and tags held more than once.
struct VectorCheck {
    lost: Vec<String>,
    duplicated: usize,
    held: usize,
}

async fn check_vectors(clients: &[Client], ledger: &Ledger) -> Result<VectorCheck, BoxError> {
    let mut check = VectorCheck {
        lost: Vec::new(),
        duplicated: 0,
        held: 0,
    };
    for (c, (model, acked)) in clients.iter().zip(&ledger.vectors) {
        let mut ids = BTreeSet::new();
        let mut tags: HashMap<String, usize> = HashMap::new();
        let mut after = None;
        loop {
            let page = c
                .scroll(p::Scroll {
                    namespace: model.clone(),
                    after: after.clone(),
                    limit: 1000,
                    filter: None,
                    with_vector: false,
                })
                .await?;
            for v in page.vectors {
                let tag = v.metadata.get("k").map(|t| t.to_string());
                *tags.entry(tag.unwrap_or_default()).or_default() += 1;
                ids.insert(v.id);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        check.held += ids.len();
        check.lost.extend(acked.difference(&ids).cloned());
        check.duplicated += tags.values().map(|n| n - 1).sum::<usize>();
    }
    Ok(check)
}

/// The middle of `xs` (the mean of the two middle ones for an even count).
fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[allow(clippy::too_many_arguments)]
fn report(
    args: &FailoverArgs,
    ledger: &Ledger,
    seen: &Seen,
    rounds: &[Round],
    vectors: VectorCheck,
    secs: f64,
    exit_clean: Vec<bool>,
    in_step: (Option<f64>, Vec<Option<u64>>),
) -> Value {
    let acked_vectors: usize = ledger.vectors.values().map(BTreeSet::len).sum();
    let acked = ledger.times.len();
    let lost_sends: Vec<&String> = ledger
        .sends
        .keys()
        .filter(|id| !seen.by_id.contains_key(*id))
        .collect();
    let redelivered = seen.by_id.values().filter(|n| **n > 1).count();
    let resent = seen.by_tag.values().filter(|ids| ids.len() > 1).count();
    let failover: Vec<f64> = rounds.iter().map(|r| ms(r.to_first_write)).collect();
    let seen_ms: Vec<f64> = rounds.iter().map(|r| ms(r.to_primary_seen)).collect();
    // Throughput outside the windows from a kill to the first write after
    // (which hold no acknowledgement but their last).
    let outage: f64 = failover.iter().sum::<f64>() / 1000.0;
    let latency = ledger.latency_us.clone().unwrap_or_else(histogram);
    let q = |p: f64| latency.value_at_quantile(p) as f64 / 1000.0;
    let max = |xs: &[f64]| xs.iter().copied().fold(f64::NAN, f64::max);
    json!({
        "bench": "failover",
        "instances": INSTANCES,
        "nats_nodes": NATS_NODES,
        "durability": "quorum",
        "feed_replicas": 3,
        "lease_ttl_ms": args.lease_ttl_ms,
        "writers": args.writers.max(1),
        "kills": rounds.len(),
        "seconds": secs,
        "acknowledged": {"vectors": acked_vectors, "sends": ledger.sends.len(), "total": acked},
        "failed": {"count": ledger.failures.len(),
                   "first": ledger.failures.iter().take(5).collect::<Vec<_>>()},
        "lost": {"vectors": vectors.lost.len(), "sends": lost_sends.len(),
                 "vector_ids": vectors.lost.iter().take(10).collect::<Vec<_>>(),
                 "send_ids": lost_sends.iter().take(10).collect::<Vec<_>>()},
        "duplicates": {"vectors_held_twice": vectors.duplicated,
                       "vectors_held": vectors.held,
                       "sends_carried_out_twice": resent,
                       "messages_delivered_again": redelivered,
                       "deliveries": seen.by_id.values().map(|n| *n as u64).sum::<u64>()},
        "failover_ms": {"p50": median(&failover), "max": max(&failover),
                        "min": failover.iter().copied().fold(f64::NAN, f64::min),
                        "each": failover, "aim_p50": AIM_FAILOVER_P50_MS},
        "new_primary_seen_ms": {"p50": median(&seen_ms), "max": max(&seen_ms), "each": seen_ms},
        "rejoined_as_mirror_s": rounds.iter().map(|r| r.rejoined.map(|d| d.as_secs_f64())).collect::<Vec<_>>(),
        "rounds": rounds.iter().map(|r| json!({"killed": format!("s{}", r.killed),
            "new_primary": format!("s{}", r.new_primary)})).collect::<Vec<_>>(),
        "throughput": {"acknowledged_per_second": acked as f64 / secs,
                       "outside_failovers_per_second": acked as f64 / (secs - outage).max(1e-9),
                       "seconds_in_failovers": outage},
        "latency_ms": {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999),
                       "max": latency.max() as f64 / 1000.0},
        "mirrors_in_step_after_s": in_step.0,
        "vectors_per_instance": in_step.1,
        "servers_exit_clean": exit_clean,
    })
}

fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "failover: {} hvs serve at quorum (feed at {} replicas) on {} NATS nodes, lease TTL {}, {} writers, {} kills of the primary, {:.1} s",
        r["instances"],
        r["feed_replicas"],
        r["nats_nodes"],
        r["lease_ttl_ms"]
            .as_u64()
            .map_or("2000 ms (the server's default)".to_string(), |t| format!(
                "{t} ms"
            )),
        r["writers"],
        r["kills"],
        f(&r["seconds"])
    );
    let a = &r["acknowledged"];
    println!(
        "  acknowledged: {} vector writes and {} sends; failed (past the client's failover timeout): {}",
        a["vectors"], a["sends"], r["failed"]["count"]
    );
    let l = &r["lost"];
    println!(
        "  lost: {} vectors, {} sends (checked on the primary at the end)",
        l["vectors"], l["sends"]
    );
    let d = &r["duplicates"];
    println!(
        "  duplicates: {} vectors held twice (of {} held), {} sends carried out twice, {} messages delivered again ({} deliveries)",
        d["vectors_held_twice"],
        d["vectors_held"],
        d["sends_carried_out_twice"],
        d["messages_delivered_again"],
        d["deliveries"]
    );
    let fo = &r["failover_ms"];
    println!(
        "  kill → first write acknowledged: p50 {:.0} ms, max {:.0} ms, min {:.0} ms (aim: p50 < {:.0} ms)",
        f(&fo["p50"]),
        f(&fo["max"]),
        f(&fo["min"]),
        f(&fo["aim_p50"])
    );
    let each: Vec<String> = fo["each"]
        .as_array()
        .map(|v| v.iter().map(|x| format!("{:.0}", f(x))).collect())
        .unwrap_or_default();
    println!("    each (ms): {}", each.join(", "));
    let s = &r["new_primary_seen_ms"];
    println!(
        "  kill → new primary in /health: p50 {:.0} ms, max {:.0} ms",
        f(&s["p50"]),
        f(&s["max"])
    );
    println!(
        "  after the load: every instance holds the same vectors {} ({:?})",
        r["mirrors_in_step_after_s"]
            .as_f64()
            .map_or("NOT within 90 s".to_string(), |s| format!("{s:.1} s later")),
        r["vectors_per_instance"]
    );
    let t = &r["throughput"];
    println!(
        "  throughput: {:.0} acknowledged operations/s over the run, {:.0}/s outside the {:.1} s of failovers",
        f(&t["acknowledged_per_second"]),
        f(&t["outside_failovers_per_second"]),
        f(&t["seconds_in_failovers"])
    );
    let l = &r["latency_ms"];
    println!(
        "  latency of an acknowledged write or send: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.0} ms",
        f(&l["p50"]),
        f(&l["p99"]),
        f(&l["p999"]),
        f(&l["max"])
    );
}
