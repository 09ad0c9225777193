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
use crate::nats_server::{NatsServer, nats_server_binary};
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

async fn core(load: &Load, server: &NatsServer) -> Result<Value, Error> {
    let n = load.clients;
    let mut clients = Vec::new();
    let mut subs = Vec::new();
    for i in 0..n {
        let c = connect(&server.url, load).await?;
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
    let watch = procstat::Watch::start(server.pid());
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

async fn jetstream_run(load: &Load, server: &NatsServer) -> Result<Value, Error> {
    let n = load.clients;
    let mut contexts = Vec::new();
    for _ in 0..n {
        let c = connect(&server.url, load).await?;
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
            ..Default::default()
        })
        .await?;
    let base = Instant::now();
    let watch = procstat::Watch::start(server.pid());
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
    let watch = procstat::Watch::start(server.pid());
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
    Ok(report(
        "nats-jetstream",
        JS_WHAT,
        &version,
        load,
        secs,
        acked,
        None,
        &latency,
        server_stats,
        json!({"acked": acked, "stored_in_stream": stored, "storage": "file",
               "consume": consume}),
    ))
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
    which: impl AsyncFnOnce(&Load, &NatsServer) -> Result<Value, Error>,
) -> Result<Value, Error> {
    let server = NatsServer::start(bin)?;
    let mut r = which(load, &server).await?;
    let (clean, code) = server.stop()?;
    r["server"]["exit_clean"] = clean.into();
    r["server"]["exit_code"] = code.into();
    Ok(r)
}

/// The NATS runs with the HVS run's load, printed after `hvs` (the HVS
/// run's report) and side by side with it.
pub(crate) async fn run(args: &MessagingArgs, hvs: &Value) -> Result<(), Error> {
    let bin = nats_server_binary(args.nats_server.as_deref());
    let load = Load::new(args)?;
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
    let what = if r["system"] == "nats-core" {
        "publish→receive"
    } else {
        "publish→ack"
    };
    println!(
        "  {what} latency: p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms, max {:.2} ms",
        f(&l["p50"]),
        f(&l["p99"]),
        f(&l["p999"]),
        f(&l["max"])
    );
    println!(
        "  server: {:.1} CPU s ({:.2} cores busy), RSS peak {:.0} MiB, clean exit: {}",
        f(&s["cpu_seconds"]),
        f(&s["cpu_cores_busy"]),
        f(&s["rss_mib_peak"]),
        s["exit_clean"]
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
            Some("nats-jetstream") => {
                row(
                    "nats jetstream (file)",
                    "publishes acked (stored)",
                    &r["per_second"],
                    l,
                    s,
                );
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
            _ => row(
                &format!("hvs ({})", r["durability"].as_str().unwrap_or("?")),
                "delivered to and acked by the peer",
                &r["delivered_and_acked_per_second"],
                l,
                s,
            ),
        }
    }
}
