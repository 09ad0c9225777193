//! `hvs bench messaging`: N models in one process, each sending to the next
//! (a ring), every message carrying a point of H^12, stored, indexed and
//! delivered through the push stream, acked in batches. Reports delivered
//! and acked messages per second, send-to-receive latency, how fast the
//! index absorbs the message vectors, search latency under the load, and
//! where the writer's time went.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use hvs::runtime::{
    DeliveryStream, Durability, HubConfig, MailboxDefaults, ModelHandle, Outgoing, Runtime,
    RuntimeConfig, VectorInput,
};
use hvs::storage::{SearchQuery, Store};
use hvs_geometry::{Hyperboloid, Manifold};
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Intrinsic dimension of the messages' space.
pub(crate) const DIM: usize = 12;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub(crate) enum BenchDurability {
    Memory,
    Buffered,
    Sync,
    /// Over TCP only: a failover group of `hvs serve` on a 3-node NATS
    /// cluster, each write answered once the 3-replica feed stream holds
    /// it (docs/STORAGE.md).
    Quorum,
}

impl BenchDurability {
    /// The configuration of a runtime in this process at this level
    /// (`quorum` needs a cluster of servers: `--over tcp`).
    pub(crate) fn runtime_config(self, path: &std::path::Path) -> Result<RuntimeConfig, String> {
        match self {
            BenchDurability::Memory => Ok(RuntimeConfig::memory()),
            BenchDurability::Buffered => Ok(RuntimeConfig::file(path, Durability::Buffered)),
            BenchDurability::Sync => Ok(RuntimeConfig::file(path, Durability::Sync)),
            BenchDurability::Quorum => {
                Err("durability quorum runs a group of servers: add `--over tcp`".into())
            }
        }
    }

    /// The name `hvs serve --durability` takes.
    pub(crate) fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

/// Where the models run.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub(crate) enum Over {
    /// In this process, through the runtime's API.
    Inproc,
    /// As clients of an `hvs serve` in another process, over loopback TCP.
    Tcp,
}

#[derive(Args, Debug)]
pub(crate) struct MessagingArgs {
    /// In this process, or over TCP against a server in another process.
    #[arg(long, value_enum, default_value = "inproc")]
    pub(crate) over: Over,
    /// Models (clients, over TCP), each sending to the next.
    #[arg(long, visible_alias = "clients", default_value_t = 16)]
    pub(crate) models: usize,
    /// Messages in all (split evenly over the models).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) messages: u64,
    /// Storage durability. `quorum` (with `--over tcp`) starts a 3-node
    /// NATS cluster and a failover group of `--instances` servers on it,
    /// their feed streams at 3 replicas; the clients follow the primary.
    #[arg(long, value_enum, default_value = "memory")]
    pub(crate) durability: BenchDurability,
    /// With `--durability quorum`: servers in the failover group (the
    /// primary and its mirrors, which apply everything it writes).
    #[arg(long, default_value_t = 3)]
    pub(crate) instances: usize,
    /// Messages a sender has outstanding: it sends a batch this big and
    /// waits for its answer before the next.
    #[arg(long, default_value_t = 1000)]
    pub(crate) window: usize,
    /// With `--over tcp`: messages per `send_batch` request, `window /
    /// batch` requests in flight (default: a quarter of the window); 1
    /// sends each message as its own `send`, `window` of them pipelined.
    #[arg(long)]
    pub(crate) batch: Option<usize>,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 128)]
    pub(crate) payload: usize,
    /// Database file for durable runs (default: a temporary directory).
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// After the load, wait at most this many seconds for the index to
    /// absorb every message vector.
    #[arg(long, default_value_t = 120)]
    pub(crate) absorb_wait: u64,
    /// Milliseconds between the searches made while the load runs (0: none).
    #[arg(long, default_value_t = 100)]
    pub(crate) search_every_ms: u64,
    /// Over TCP, one server: an argument for the `hvs serve` the bench
    /// starts, e.g. `--serve-arg=--cache-mb --serve-arg=256` (repeatable).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub(crate) serve_args: Vec<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// With `--over tcp`: then run the same load against nats-server (core
    /// pub/sub; JetStream publishes with acks, then drained by pull
    /// consumers) and print them side by side with the HVS run. With
    /// `--durability quorum`: JetStream alone, to a 3-replica stream on the
    /// same NATS cluster, and the feed publisher's pattern (one publisher,
    /// batches of 1,024 awaited whole).
    #[arg(long)]
    pub(crate) nats: bool,
    /// The nats-server `--nats` starts (default: `nats-server` on PATH, else
    /// /usr/sbin/nats-server).
    #[arg(long, value_name = "PATH")]
    pub(crate) nats_server: Option<PathBuf>,
}

impl MessagingArgs {
    /// Messages per request over TCP (see `--batch`), within the window.
    pub(crate) fn batch(&self) -> usize {
        let window = self.window.max(1);
        self.batch.unwrap_or(window / 4).clamp(1, window)
    }
}

/// The benches' tokio runtime: two workers, as many as the machine the
/// figures in docs/BENCHMARKS.md come from has cores.
pub(crate) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

pub(crate) fn contract(id: &str) -> serde_json::Value {
    json!({
        "contract_version": "1.0.0",
        "model": {"id": id, "name": id, "version": "1", "type": "bench", "capabilities": []},
        "hvs_binding": {"hvs_id": "bench", "region": "bench", "namespace": id,
                        "geometry": "hyperboloid", "dimension": DIM},
        "vector_spec": {"input_dimension": DIM, "output_dimension": DIM,
                        "encoding": "geometric", "encoder": {"type": "identity"}},
        "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
            "max_message_size_bytes": 1 << 20, "timeout_ms": 60_000,
            "retry": {"max_attempts": 100, "backoff_ms": [10]}},
        "permissions": {"read_namespaces": ["*"], "write_namespaces": [id],
                        "broadcast": true, "query_other_models": true},
        "resource_limits": {"max_vectors_per_second": 1_000_000_000u64,
                            "max_storage_mb": 1_000_000,
                            "max_queries_per_second": 1_000_000_000u64}
    })
}

/// 4,096 random points of H^12 (a fixed seed), for the messages' vectors.
pub(crate) fn points() -> Result<Vec<Vec<f64>>, hvs_geometry::GeometryError> {
    let h = Hyperboloid::new(DIM, 1.0)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    (0..4096)
        .map(|_| {
            let v: Vec<f64> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
            h.exp0(&v)
        })
        .collect()
}

/// Prints a report's `latency_ms` line.
pub(crate) fn print_latency(l: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "  send→receive latency: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
        f(&l["p50"]),
        f(&l["p99"]),
        f(&l["p999"]),
        f(&l["max"])
    );
}

pub(crate) fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// What one receiver saw.
struct Received {
    latency_us: Histogram<u64>,
    received: u64,
}

async fn receive(
    handle: ModelHandle,
    mut stream: DeliveryStream,
    expected: u64,
    base: Instant,
    acked: Arc<AtomicU64>,
) -> Result<Received, hvs::runtime::Error> {
    let mut latency_us = histogram();
    let mut received = 0;
    let mut ids = Vec::with_capacity(4096);
    while received < expected {
        let Some(first) = stream.next().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match stream.try_next() {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        let now = base.elapsed().as_nanos() as u64;
        for d in &batch {
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(&d.message.payload[..8]);
            let sent = u64::from_le_bytes(stamp);
            let _ = latency_us.record((now.saturating_sub(sent) / 1000).max(1));
            ids.push(d.message.id);
        }
        received += batch.len() as u64;
        handle.ack(&ids).await?;
        acked.fetch_add(ids.len() as u64, Ordering::Relaxed);
        ids.clear();
    }
    Ok(Received {
        latency_us,
        received,
    })
}

async fn send(
    handle: ModelHandle,
    to: String,
    count: u64,
    window: usize,
    payload: usize,
    points: Arc<Vec<Vec<f64>>>,
    base: Instant,
) -> Result<(), hvs::runtime::Error> {
    let mut sent = 0u64;
    let mut k = 0usize;
    while sent < count {
        let n = window.min((count - sent) as usize);
        let stamp = (base.elapsed().as_nanos() as u64).to_le_bytes();
        let batch = (0..n)
            .map(|_| {
                let mut p = vec![0u8; payload.max(8)];
                p[..8].copy_from_slice(&stamp);
                k = (k + 1) % points.len();
                let m = Outgoing {
                    payload: p,
                    vector: VectorInput::Point(points[k].clone()),
                    ..Outgoing::default()
                };
                (to.clone(), m)
            })
            .collect();
        handle.send_messages(batch).await?;
        sent += n as u64;
    }
    Ok(())
}

/// Searches a random model's namespace every `every` while the load runs.
async fn search_while(
    store: Arc<Store>,
    namespaces: Vec<String>,
    points: Arc<Vec<Vec<f64>>>,
    running: Arc<AtomicBool>,
    every: Duration,
) -> Histogram<u64> {
    let mut h = histogram();
    if every.is_zero() {
        return h;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    while running.load(Ordering::Relaxed) {
        let ns = namespaces[rng.random_range(0..namespaces.len())].clone();
        let q = SearchQuery::new(ns, points[rng.random_range(0..points.len())].clone(), 10);
        let s = store.clone();
        let t = Instant::now();
        if tokio::task::spawn_blocking(move || s.semantic_search(&q))
            .await
            .is_ok_and(|r| r.is_ok())
        {
            let _ = h.record((t.elapsed().as_micros() as u64).max(1));
        }
        tokio::time::sleep(every).await;
    }
    h
}

/// Vectors in graphs and in fresh buffers, over every namespace.
fn index_counts(store: &Store) -> (usize, usize) {
    store.get_stats().map_or((0, 0), |s| {
        s.namespaces
            .values()
            .fold((0, 0), |(g, f), n| (g + n.in_graph, f + n.fresh))
    })
}

pub(crate) fn run(args: MessagingArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.durability == BenchDurability::Quorum && args.over != Over::Tcp {
        return Err("durability quorum runs a group of servers: add `--over tcp`".into());
    }
    if args.nats && args.over != Over::Tcp {
        return Err("--nats compares against hvs over tcp: add `--over tcp`".into());
    }
    if args.nats && !cfg!(feature = "nats") {
        return Err(
            "built without the `nats` feature: cargo run --release --features nats -- \
                    bench messaging --over tcp … --nats"
                .into(),
        );
    }
    #[cfg(feature = "nats")]
    if args.nats {
        crate::bench_nats::check(&args)?;
    }
    if args.over == Over::Tcp {
        return crate::bench_tcp::run(args);
    }
    let rt = crate::bench::runtime()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: MessagingArgs) -> Result<(), Box<dyn std::error::Error>> {
    let models = args.models.max(2);
    let per_model = args.messages / models as u64;
    let total = per_model * models as u64;
    let tmp = tempfile::tempdir()?;
    let path = args
        .data
        .clone()
        .unwrap_or_else(|| tmp.path().join("bench.redb"));
    let mut config = args.durability.runtime_config(&path)?;
    config.hub = HubConfig {
        mailboxes: MailboxDefaults {
            capacity: 1 << 22,
            ..MailboxDefaults::default()
        },
        ..HubConfig::default()
    };
    let rt = Runtime::open(config).await?;
    let ids: Vec<String> = (0..models).map(|i| format!("bench-{i}")).collect();
    let mut handles = Vec::new();
    for id in &ids {
        let c = hvs::contracts::Contract::from_value(contract(id))?;
        handles.push(rt.connect_model(c).await?);
    }
    let points = Arc::new(crate::bench::points()?);

    let base = Instant::now();
    // Bumped by the receivers as their acks are answered; shown on stderr.
    let acked = Arc::new(AtomicU64::new(0));
    let mut receivers = Vec::new();
    for handle in &handles {
        let stream = handle.deliveries().await?;
        receivers.push(tokio::spawn(receive(
            handle.clone(),
            stream,
            per_model,
            base,
            acked.clone(),
        )));
    }
    let running = Arc::new(AtomicBool::new(true));
    let searcher = tokio::spawn(search_while(
        rt.storage().clone(),
        ids.clone(),
        points.clone(),
        running.clone(),
        Duration::from_millis(args.search_every_ms),
    ));
    let store = rt.storage().clone();
    let before = store.get_stats()?;
    let sampler_running = running.clone();
    let sampler_store = store.clone();
    let sampler = tokio::spawn(async move {
        let mut max_fresh = 0;
        while sampler_running.load(Ordering::Relaxed) {
            max_fresh = max_fresh.max(index_counts(&sampler_store).1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        max_fresh
    });

    let watched = acked.clone();
    let progress = crate::progress::Counter::start("delivered and acked", "msgs", move || {
        (watched.load(Ordering::Relaxed), total)
    });
    let start = Instant::now();
    let mut senders = Vec::new();
    for (i, handle) in handles.iter().enumerate() {
        let to = ids[(i + 1) % models].clone();
        senders.push(tokio::spawn(send(
            handle.clone(),
            to,
            per_model,
            args.window,
            args.payload,
            points.clone(),
            base,
        )));
    }
    for s in senders {
        s.await??;
    }
    let sent_secs = start.elapsed().as_secs_f64();
    let mut latency = histogram();
    let mut received = 0;
    for r in receivers {
        let r = r.await??;
        latency.add(&r.latency_us)?;
        received += r.received;
    }
    let secs = start.elapsed().as_secs_f64();
    progress.finish();
    running.store(false, Ordering::Relaxed);
    let search = searcher.await?;
    let max_fresh = sampler.await?;
    let (in_graph_at_end, fresh_at_end) = index_counts(&store);

    let watched = store.clone();
    let absorbing = (fresh_at_end > 0).then(|| {
        crate::progress::Counter::start("absorbed into the index", "vectors", move || {
            crate::progress::in_graphs(&watched)
        })
    });
    let absorb_start = Instant::now();
    let mut fresh = fresh_at_end;
    while fresh > 0 && absorb_start.elapsed() < Duration::from_secs(args.absorb_wait) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        fresh = index_counts(&store).1;
    }
    let absorb_secs = absorb_start.elapsed().as_secs_f64();
    drop(absorbing);
    let (in_graph_final, _) = index_counts(&store);
    let after = store.get_stats()?;
    let commits = after.commits - before.commits;
    let commit_requests = after.commit_requests - before.commit_requests;
    let commit_ms = (after.commit_micros - before.commit_micros) as f64 / 1000.0;
    let absorbed_rate = in_graph_final as f64 / (secs + absorb_secs);
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;

    let report = json!({
        "models": models,
        "messages": total,
        "received": received,
        "durability": format!("{:?}", args.durability).to_lowercase(),
        "window": args.window,
        "payload_bytes": args.payload,
        "seconds": secs,
        "sent_per_second": total as f64 / sent_secs,
        "delivered_and_acked_per_second": received as f64 / secs,
        "latency_ms": {"p50": q(&latency, 0.5), "p99": q(&latency, 0.99),
                       "p999": q(&latency, 0.999), "max": latency.max() as f64 / 1000.0},
        "index": {"in_graph_at_end_of_load": in_graph_at_end, "fresh_at_end_of_load": fresh_at_end,
                  "max_fresh_during_load": max_fresh, "seconds_to_absorb_after_load": absorb_secs,
                  "fresh_left": fresh, "absorbed_per_second": absorbed_rate},
        "search_during_load_ms": {"count": search.len(), "p50": q(&search, 0.5),
                                  "p99": q(&search, 0.99), "max": search.max() as f64 / 1000.0},
        "writer": {"commits": commits, "requests": commit_requests,
                   "mean_group": if commits > 0 { commit_requests as f64 / commits as f64 } else { 0.0 },
                   "commit_ms_total": commit_ms},
    });
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    rt.close().await?;
    Ok(())
}

fn print_report(r: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    println!(
        "messaging: {} models, {} messages of {} bytes + a point of H^12, {} durability, window {}",
        r["models"],
        r["messages"],
        r["payload_bytes"],
        r["durability"].as_str().unwrap_or(""),
        r["window"]
    );
    println!(
        "  delivered and acked: {} in {:.2} s = {:.0} msgs/s (sending alone: {:.0} msgs/s)",
        r["received"],
        f(&r["seconds"]),
        f(&r["delivered_and_acked_per_second"]),
        f(&r["sent_per_second"])
    );
    crate::bench::print_latency(&r["latency_ms"]);
    let i = &r["index"];
    println!(
        "  index: {} in graphs and {} fresh (exact-scanned) at the end of the load, at most {} fresh; all absorbed {:.1} s later ({} left), {:.0} vectors/s overall",
        i["in_graph_at_end_of_load"],
        i["fresh_at_end_of_load"],
        i["max_fresh_during_load"],
        f(&i["seconds_to_absorb_after_load"]),
        i["fresh_left"],
        f(&i["absorbed_per_second"])
    );
    let s = &r["search_during_load_ms"];
    println!(
        "  search (k=10) during the load: {} queries, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        s["count"],
        f(&s["p50"]),
        f(&s["p99"]),
        f(&s["max"])
    );
    let w = &r["writer"];
    println!(
        "  writer: {} commits carrying {} requests (mean group {:.1}), {:.0} ms inside commits",
        w["commits"],
        w["requests"],
        f(&w["mean_group"]),
        f(&w["commit_ms_total"])
    );
}
