//! `hvs bench messaging --over tcp --nats`: after the run against `hvs
//! serve`, the same load against a real message broker doing the closest
//! job, `nats-server`, driven from this process through async-nats: the
//! same clients, messages, window and payload, a fresh server in another
//! process for each run, its CPU time and memory read from `/proc`.
//!
//! - core pub/sub: client i publishes to `bench.<(i+1)%n>` and subscribes
//!   to `bench.<i>` (the ring of the HVS run). A publisher keeps at most
//!   `window` messages outstanding, published and not yet received by its
//!   peer: the receiver releases the publisher's permits. Counted: messages
//!   received by the subscriber; latency is publish→receive, from the 8-byte
//!   timestamp at the head of the payload. Nothing is stored or acked: core
//!   NATS delivers at most once from memory.
//! - JetStream: one file-storage stream over `js.>`; client i publishes to
//!   `js.<i>` with publish-with-ack, `window` acks outstanding. Counted:
//!   publishes acked by the server (stored in the stream); latency is
//!   publish→ack. Then, with the publishers done, each client drains its
//!   subject through a pull consumer, acking every message (explicit acks):
//!   counted as delivered-and-acked per second, without latency (the
//!   messages waited in the stream).
//!
//! Each message body is the HVS run's payload followed by the same point of
//! H^12 (13 little-endian f64), so both systems carry the same bytes.
//!
//! At `--durability quorum` the HVS group ran on a 3-node NATS cluster,
//! and the NATS runs go to that cluster: JetStream (no core run) with its
//! stream at 3 replicas, the clients spread over the nodes; then the
//! pattern of the HVS feed publisher alone (`actors/src/cluster/feed.rs`):
//! one publisher, rounds of 1,024 publishes with message ids, each round's
//! acks awaited before the next, bodies the size of the HVS run's mean feed
//! change, to a 3-replica stream; what bounds a `quorum` write.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use hvs_geometry::{Hyperboloid, Manifold};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::bench::{DIM, MessagingArgs, histogram};
use crate::bench_tcp::CpuOf;
use crate::nats_server::{NatsCluster, NatsServer, nats_server_binary};
use crate::procstat;

type Error = Box<dyn std::error::Error>;

/// A receiver that sees nothing for this long gives up: core NATS dropped
/// messages (it never redelivers).
const IDLE: Duration = Duration::from_secs(30);

/// Fails early, before the HVS run, if the nats-server to start does not run.
pub(crate) fn check(args: &MessagingArgs) -> Result<(), Error> {
    crate::nats_server::check(&nats_server_binary(args.nats_server.as_deref()))
}

/// What was counted, for the side-by-side table.
const CORE_WHAT: &str =
    "messages received by the subscribing peer (core pub/sub: at most once, from memory, no ack)";
const JS_WHAT: &str =
    "publishes acked by the server (JetStream file-storage stream, publish-with-ack)";
const JS_R3_WHAT: &str = "publishes acked by the server (JetStream file-storage stream at 3 replicas on 3 routed nodes, publish-with-ack)";
const FEED_WHAT: &str = "publishes acked, by one publisher in rounds of 1,024 awaited whole (the HVS feed publisher's pattern; 3-replica file stream; latency is per round)";
/// Changes the feed publisher reads and publishes per round
/// (`actors/src/cluster/feed.rs` `BATCH`).
const FEED_BATCH: usize = 1024;

/// The nats-servers a run goes to: one fresh server, or the nodes of the
/// cluster the HVS group ran on (its streams then with a replica on every
/// node, its clients spread over the nodes).
struct Brokers {
    urls: Vec<String>,
    pids: Vec<u32>,
}

impl Brokers {
    fn of_server(s: &NatsServer) -> Self {
        Brokers {
            urls: vec![s.url.clone()],
            pids: vec![s.pid()],
        }
    }

    fn of_cluster(c: &NatsCluster) -> Self {
        Brokers {
            urls: c.urls(),
            pids: c.pids(),
        }
    }

    /// The node client `i` connects to.
    fn url(&self, i: usize) -> &str {
        &self.urls[i % self.urls.len()]
    }

    fn replicas(&self) -> usize {
        self.urls.len()
    }

    fn watch(&self) -> BrokersWatch {
        BrokersWatch {
            first: procstat::Watch::start(self.pids[0]),
            all: CpuOf::start(&self.pids),
            nodes: self.pids.len(),
        }
    }
}

/// The first node's figures (as for one server), its CPU replaced by all
/// the nodes' together.
struct BrokersWatch {
    first: procstat::Watch,
    all: CpuOf,
    nodes: usize,
}

impl BrokersWatch {
    async fn finish(self, secs: f64) -> Result<serde_json::Map<String, Value>, Error> {
        let mut m = self.first.finish(secs).await?;
        if self.nodes > 1 {
            let cpu = self.all.seconds();
            m.insert("nodes".into(), self.nodes.into());
            m.insert("cpu_seconds_first_node".into(), m["cpu_seconds"].clone());
            m.insert("cpu_seconds".into(), cpu.into());
            m.insert("cpu_cores_busy".into(), cpu.map(|c| c / secs).into());
        }
        Ok(m)
    }
}
const JS_CONSUME_WHAT: &str = "stored messages delivered to a pull consumer per subject and acked one by one (explicit acks), after the publishes";

/// The load shared by both runs.
struct Load {
    clients: usize,
    per_client: u64,
    window: usize,
    /// Payload (at least the 8-byte timestamp), then the point's bytes.
    payload: usize,
    points: Arc<Vec<Vec<u8>>>,
}

impl Load {
    fn new(args: &MessagingArgs) -> Result<Self, Error> {
        let clients = args.models.max(2);
        let h = Hyperboloid::new(DIM, 1.0)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let points = (0..4096)
            .map(|_| {
                let v: Vec<f64> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
                h.exp0(&v)
                    .map(|p| p.iter().flat_map(|x| x.to_le_bytes()).collect())
            })
            .collect::<Result<_, _>>()?;
        Ok(Load {
            clients,
            per_client: args.messages / clients as u64,
            window: args.window.max(1),
            payload: args.payload.max(8),
            points: Arc::new(points),
        })
    }

    fn total(&self) -> u64 {
        self.per_client * self.clients as u64
    }

    fn body_bytes(&self) -> usize {
        self.payload + (DIM + 1) * 8
    }
}

/// Message `k`'s body, stamped with nanoseconds since `base`.
fn body(payload: usize, points: &[Vec<u8>], k: u64, base: Instant) -> Vec<u8> {
    let point = &points[k as usize % points.len()];
    let mut b = vec![0u8; payload + point.len()];
    b[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
    b[payload..].copy_from_slice(point);
    b
}

async fn connect(url: &str, load: &Load) -> Result<async_nats::Client, Error> {
    Ok(async_nats::ConnectOptions::new()
        // Never the bottleneck: a publisher has at most `window` in flight.
        .subscription_capacity(load.window * 2 + 1024)
        .connect(url)
        .await?)
}

struct Received {
    latency_us: Histogram<u64>,
    received: u64,
}

/// Takes `expected` messages, each releasing one of its publisher's permits.
async fn core_receive(
    mut sub: async_nats::Subscriber,
    permits: Arc<Semaphore>,
    expected: u64,
    base: Instant,
) -> Result<Received, String> {
    let mut latency_us = histogram();
    let mut received = 0;
    while received < expected {
        let m = match tokio::time::timeout(IDLE, sub.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                permits.close();
                return Err("a subscription ended".into());
            }
            Err(_) => {
                permits.close();
                return Err(format!(
                    "a subscriber received nothing for {IDLE:?} after {received} of {expected} \
                     messages: core NATS dropped some"
                ));
            }
        };
        let now = base.elapsed().as_nanos() as u64;
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&m.payload[..8]);
        let sent = u64::from_le_bytes(stamp);
        let _ = latency_us.record((now.saturating_sub(sent) / 1000).max(1));
        received += 1;
        permits.add_permits(1);
    }
    Ok(Received {
        latency_us,
        received,
    })
}

/// Publishes `count` messages to `subject`, taking a permit for each.
async fn core_send(
    client: async_nats::Client,
    subject: async_nats::Subject,
    permits: Arc<Semaphore>,
    count: u64,
    payload: usize,
    points: Arc<Vec<Vec<u8>>>,
    base: Instant,
) -> Result<(), String> {
    for k in 0..count {
        permits
            .acquire()
            .await
            .map_err(|_| "the peer stopped receiving".to_string())?
            .forget();
        client
            .publish(subject.clone(), body(payload, &points, k, base).into())
            .await
            .map_err(|e| e.to_string())?;
    }
    client.flush().await.map_err(|e| e.to_string())
}

async fn core(load: &Load, brokers: &Brokers) -> Result<Value, Error> {
    let n = load.clients;
    let mut clients = Vec::new();
    let mut subs = Vec::new();
    for i in 0..n {
        let c = connect(brokers.url(i), load).await?;
        subs.push(c.subscribe(format!("bench.{i}")).await?);
        // The server has the subscription once it answers the flush's ping.
        c.flush().await?;
        clients.push(c);
    }
    let version = clients[0].server_info().version;
    let permits: Vec<Arc<Semaphore>> = (0..n)
        .map(|_| Arc::new(Semaphore::new(load.window)))
        .collect();
    let base = Instant::now();
    // Subscriber j hears publisher j-1.
    let receivers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(j, sub)| {
            let p = permits[(j + n - 1) % n].clone();
            tokio::spawn(core_receive(sub, p, load.per_client, base))
        })
        .collect();
    let watch = brokers.watch();
    let start = Instant::now();
    let senders: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(core_send(
                c.clone(),
                format!("bench.{}", (i + 1) % n).into(),
                permits[i].clone(),
                load.per_client,
                load.payload,
                load.points.clone(),
                base,
            ))
        })
        .collect();
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
    let server_stats = watch.finish(secs).await?;
    drop(clients);
    Ok(report(
        "nats-core",
        CORE_WHAT,
        &version,
        load,
        secs,
        received,
        Some(load.total() as f64 / sent_secs),
        &latency,
        server_stats,
        json!({"received": received}),
    ))
}

/// Publishes `count` messages to `subject`, `window` acks outstanding;
/// the publish→ack latencies.
async fn js_send(
    js: jetstream::Context,
    subject: async_nats::Subject,
    count: u64,
    window: usize,
    payload: usize,
    points: Arc<Vec<Vec<u8>>>,
    base: Instant,
) -> Result<Histogram<u64>, String> {
    let mut latency_us = histogram();
    let mut acks = futures_util::stream::iter(0..count)
        .map(|k| {
            let (js, subject) = (js.clone(), subject.clone());
            let b = body(payload, &points, k, base);
            async move {
                let t = Instant::now();
                js.publish(subject, b.into()).await?.await?;
                Ok::<_, jetstream::context::PublishError>(t.elapsed())
            }
        })
        .buffer_unordered(window);
    while let Some(r) = acks.next().await {
        let d = r.map_err(|e| e.to_string())?;
        let _ = latency_us.record((d.as_micros() as u64).max(1));
    }
    Ok(latency_us)
}

async fn jetstream_run(load: &Load, brokers: &Brokers) -> Result<Value, Error> {
    let n = load.clients;
    let mut contexts = Vec::new();
    for i in 0..n {
        let c = connect(brokers.url(i), load).await?;
        contexts.push(
            jetstream::context::ContextBuilder::new()
                .max_ack_inflight(load.window)
                .timeout(Duration::from_secs(60))
                .build(c),
        );
    }
    let version = contexts[0].client().server_info().version;
    let mut stream = contexts[0]
        .create_stream(jetstream::stream::Config {
            name: "BENCH".into(),
            subjects: vec!["js.>".into()],
            storage: jetstream::stream::StorageType::File,
            num_replicas: brokers.replicas(),
            ..Default::default()
        })
        .await?;
    let base = Instant::now();
    let watch = brokers.watch();
    let start = Instant::now();
    let senders: Vec<_> = contexts
        .iter()
        .enumerate()
        .map(|(i, js)| {
            tokio::spawn(js_send(
                js.clone(),
                format!("js.{i}").into(),
                load.per_client,
                load.window,
                load.payload,
                load.points.clone(),
                base,
            ))
        })
        .collect();
    let mut latency = histogram();
    for s in senders {
        latency.add(&s.await??)?;
    }
    let acked = latency.len();
    let secs = start.elapsed().as_secs_f64();
    let server_stats = watch.finish(secs).await?;
    let stored = stream.info().await?.state.messages;

    let mut consumers = Vec::new();
    for i in 0..n {
        consumers.push(
            stream
                .create_consumer(jetstream::consumer::pull::Config {
                    durable_name: Some(format!("bench-{i}")),
                    filter_subject: format!("js.{i}"),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ..Default::default()
                })
                .await?,
        );
    }
    let watch = brokers.watch();
    let start = Instant::now();
    let drains: Vec<_> = consumers
        .into_iter()
        .map(|c| tokio::spawn(js_consume(c, load.per_client)))
        .collect();
    let mut consumed = 0;
    for d in drains {
        consumed += d.await??;
    }
    let consume_secs = start.elapsed().as_secs_f64();
    let consume_server = watch.finish(consume_secs).await?;
    drop(contexts);
    let consume = json!({
        "what": JS_CONSUME_WHAT,
        "delivered_and_acked": consumed,
        "seconds": consume_secs,
        "per_second": consumed as f64 / consume_secs,
        "server": consume_server,
    });
    let what = if brokers.replicas() > 1 {
        JS_R3_WHAT
    } else {
        JS_WHAT
    };
    Ok(report(
        "nats-jetstream",
        what,
        &version,
        load,
        secs,
        acked,
        None,
        &latency,
        server_stats,
        json!({"acked": acked, "stored_in_stream": stored, "storage": "file",
               "replicas": brokers.replicas(), "consume": consume}),
    ))
}

/// The feed publisher's pattern: one publisher, `load.total()` bodies of
/// `bytes` bytes in rounds of [`FEED_BATCH`], each with a message id, each
/// round's acks awaited before the next. Latency is per round.
async fn feed_pattern(load: &Load, brokers: &Brokers, bytes: usize) -> Result<Value, Error> {
    let client = async_nats::connect(brokers.url(0)).await?;
    let version = client.server_info().version;
    // As the instances build theirs (`actors/src/cluster.rs`).
    let js = jetstream::context::ContextBuilder::new()
        .timeout(Duration::from_secs(5))
        .build(client);
    let mut stream = js
        .create_stream(jetstream::stream::Config {
            name: "BENCH_FEED".into(),
            subjects: vec!["jsf.>".into()],
            storage: jetstream::stream::StorageType::File,
            num_replicas: brokers.replicas(),
            ..Default::default()
        })
        .await?;
    let total = load.total();
    let watch = brokers.watch();
    let start = Instant::now();
    let mut rounds = histogram();
    let mut seq = 0u64;
    while seq < total {
        let t = Instant::now();
        let mut acks = Vec::with_capacity(FEED_BATCH);
        for _ in 0..FEED_BATCH.min((total - seq) as usize) {
            seq += 1;
            let m = jetstream::message::PublishMessage::build()
                .payload(vec![(seq % 251) as u8; bytes].into())
                .message_id(format!("bench:{seq}"));
            acks.push(js.send_publish("jsf.bench", m).await?);
        }
        for a in acks {
            a.await?;
        }
        let _ = rounds.record((t.elapsed().as_micros() as u64).max(1));
    }
    let secs = start.elapsed().as_secs_f64();
    let server_stats = watch.finish(secs).await?;
    let stored = stream.info().await?.state.messages;
    let r = report(
        "nats-jetstream-feed-pattern",
        FEED_WHAT,
        &version,
        load,
        secs,
        total,
        None,
        &rounds,
        server_stats,
        json!({"acked": total, "stored_in_stream": stored, "storage": "file",
               "replicas": brokers.replicas(), "rounds": rounds.len(),
               "round_size": FEED_BATCH}),
    );
    // Bodies of the feed's size, not the HVS run's messages.
    let mut r = r;
    r["payload_bytes"] = bytes.into();
    Ok(r)
}

/// Takes `expected` messages from a pull consumer, acking each.
async fn js_consume(
    consumer: jetstream::consumer::PullConsumer,
    expected: u64,
) -> Result<u64, String> {
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    let mut taken = 0;
    while taken < expected {
        let m = match tokio::time::timeout(IDLE, messages.next()).await {
            Ok(Some(m)) => m.map_err(|e| e.to_string())?,
            Ok(None) => return Err("a pull consumer's message stream ended".into()),
            Err(_) => {
                return Err(format!(
                    "a pull consumer received nothing for {IDLE:?} after {taken} of {expected} messages"
                ));
            }
        };
        m.ack().await.map_err(|e| e.to_string())?;
        taken += 1;
    }
    Ok(taken)
}

#[allow(clippy::too_many_arguments)]
fn report(
    system: &str,
    what: &str,
    version: &str,
    load: &Load,
    secs: f64,
    counted: u64,
    sent_per_second: Option<f64>,
    latency: &Histogram<u64>,
    mut server: serde_json::Map<String, Value>,
    extra: Value,
) -> Value {
    let q = |p: f64| latency.value_at_quantile(p) as f64 / 1000.0;
    server.insert("version".into(), version.into());
    let mut r = json!({
        "system": system,
        "what": what,
        "over": "tcp",
        "clients": load.clients,
        "messages": load.total(),
        "window": load.window,
        "payload_bytes": load.body_bytes(),
        "seconds": secs,
        "sent_per_second": sent_per_second,
        "per_second": counted as f64 / secs,
        "latency_ms": {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999),
                       "max": latency.max() as f64 / 1000.0},
        "server": server,
    });
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    r
}

/// Starts a fresh nats-server, runs `which` against it, stops it.
async fn with_server(
    bin: &Path,
    load: &Load,
    which: impl AsyncFnOnce(&Load, &Brokers) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let server = NatsServer::start(bin)?;
    let mut r = which(load, &Brokers::of_server(&server)).await?;
    let (clean, code) = server.stop()?;
    r["server"]["exit_clean"] = clean.into();
    r["server"]["exit_code"] = code.into();
    Ok(r)
}

/// The NATS runs with the HVS run's load, printed after `hvs` (the HVS
/// run's report) and side by side with it: on fresh servers, or on
/// `cluster`, the one the HVS group at `quorum` ran on.
pub(crate) async fn run(
    args: &MessagingArgs,
    hvs: &Value,
    cluster: Option<&NatsCluster>,
) -> Result<(), Error> {
    let bin = nats_server_binary(args.nats_server.as_deref());
    let load = Load::new(args)?;
    if let Some(cluster) = cluster {
        return run_on_cluster(args, hvs, &load, &Brokers::of_cluster(cluster)).await;
    }
    let core = with_server(&bin, &load, core).await?;
    if !args.json {
        print_report(&core);
    }
    let js = with_server(&bin, &load, jetstream_run).await?;
    if args.json {
        println!("{core}");
        println!("{js}");
    } else {
        print_report(&js);
        print_table(&[hvs, &core, &js]);
    }
    Ok(())
}

/// JetStream at 3 replicas, then the feed publisher's pattern, on the
/// cluster the HVS group ran on.
async fn run_on_cluster(
    args: &MessagingArgs,
    hvs: &Value,
    load: &Load,
    brokers: &Brokers,
) -> Result<(), Error> {
    let js = jetstream_run(load, brokers).await?;
    if !args.json {
        print_report(&js);
    }
    let bytes = hvs["group"]["feed"]["bytes_per_change"]
        .as_f64()
        .map_or(load.body_bytes(), |b| b.round() as usize);
    let feed = feed_pattern(load, brokers, bytes).await?;
    if args.json {
        println!("{js}");
        println!("{feed}");
    } else {
        print_report(&feed);
        print_table(&[hvs, &js, &feed]);
        let rate = |r: &Value| r["per_second"].as_f64().unwrap_or(f64::NAN);
        println!(
            "\nhvs at quorum / jetstream R3 publish: {:.2}",
            hvs["delivered_and_acked_per_second"]
                .as_f64()
                .unwrap_or(f64::NAN)
                / rate(&js)
        );
    }
    Ok(())
}

fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let s = &r["server"];
    println!(
        "{} (nats-server {}) over tcp: {} clients, {} messages of {} B, window {}",
        r["system"].as_str().unwrap_or(""),
        s["version"].as_str().unwrap_or("?"),
        r["clients"],
        r["messages"],
        r["payload_bytes"],
        r["window"]
    );
    println!("  counted: {}", r["what"].as_str().unwrap_or(""));
    let extra = if r["sent_per_second"].is_number() {
        format!("published at {:.0} msgs/s", f(&r["sent_per_second"]))
    } else {
        format!("{} stored in the stream", r["stored_in_stream"])
    };
    println!(
        "  {:.0} msgs/s ({:.2} s; {extra})",
        f(&r["per_second"]),
        f(&r["seconds"])
    );
    let l = &r["latency_ms"];
    let what = match r["system"].as_str() {
        Some("nats-core") => "publish→receive",
        Some("nats-jetstream-feed-pattern") => "round (1,024 publishes→their acks)",
        _ => "publish→ack",
    };
    println!(
        "  {what} latency: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
        f(&l["p50"]),
        f(&l["p99"]),
        f(&l["p999"]),
        f(&l["max"])
    );
    // On a cluster: every node's CPU, the first node's memory; the nodes
    // stop after the last run.
    let (nodes, exit) = match s["nodes"].as_u64() {
        Some(n) => (format!(" ({n} nodes)"), String::new()),
        None => (String::new(), format!(", clean exit: {}", s["exit_clean"])),
    };
    println!(
        "  server{nodes}: {:.1} CPU s ({:.2} cores busy), RSS peak {:.0} MiB{exit}",
        f(&s["cpu_seconds"]),
        f(&s["cpu_cores_busy"]),
        f(&s["rss_mib_peak"]),
    );
    let c = &r["consume"];
    if c.is_object() {
        println!(
            "  then consumed: {:.0} msgs/s ({} in {:.2} s): {}",
            f(&c["per_second"]),
            c["delivered_and_acked"],
            f(&c["seconds"]),
            c["what"].as_str().unwrap_or("")
        );
        println!(
            "  server while consumed: {:.1} CPU s ({:.2} cores busy), RSS peak {:.0} MiB",
            f(&c["server"]["cpu_seconds"]),
            f(&c["server"]["cpu_cores_busy"]),
            f(&c["server"]["rss_mib_peak"])
        );
    }
}

/// One line per system: what is counted, the rate, latency, server cost.
fn print_table(reports: &[&Value]) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let ms = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    println!();
    println!(
        "{:<23} {:<40} {:>9} {:>8} {:>8} {:>8} {:>7} {:>8} {:>9}",
        "system",
        "counted",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "CPU s",
        "RSS MiB",
        "client s"
    );
    let row = |system: &str, what: &str, rate: &Value, l: &Value, s: &Value| {
        println!(
            "{:<23} {:<40} {:>9.0} {:>8} {:>8} {:>8} {:>7.1} {:>8.0} {:>9.1}",
            system,
            what,
            f(rate),
            ms(&l["p50"]),
            ms(&l["p99"]),
            ms(&l["p999"]),
            f(&s["cpu_seconds"]),
            f(&s["rss_mib_peak"]),
            f(&s["clients_cpu_seconds"])
        );
    };
    for r in reports {
        let (l, s) = (&r["latency_ms"], &r["server"]);
        match r["system"].as_str() {
            Some("nats-core") => row(
                "nats core pub/sub",
                "received by the peer (at most once)",
                &r["per_second"],
                l,
                s,
            ),
            Some("nats-jetstream-feed-pattern") => row(
                "jetstream R3, 1 pub",
                "rounds of 1,024 acked (feed's way)",
                &r["per_second"],
                l,
                s,
            ),
            Some("nats-jetstream") => {
                let system = if r["replicas"].as_u64().unwrap_or(1) > 1 {
                    "nats jetstream R3"
                } else {
                    "nats jetstream (file)"
                };
                row(system, "publishes acked (stored)", &r["per_second"], l, s);
                let c = &r["consume"];
                if c.is_object() {
                    row(
                        "nats jetstream consume",
                        "then pulled and acked (explicit)",
                        &c["per_second"],
                        &Value::Null,
                        &c["server"],
                    );
                }
            }
            _ => {
                // At quorum: every server's CPU, the group's and NATS's.
                let mut s = s.clone();
                if let Some(all) = r["group"]["all_servers_cpu_seconds"].as_f64() {
                    s["cpu_seconds"] = all.into();
                }
                row(
                    &format!("hvs ({})", r["durability"].as_str().unwrap_or("?")),
                    "delivered to and acked by the peer",
                    &r["delivered_and_acked_per_second"],
                    l,
                    &s,
                )
            }
        }
    }
}
