//! `hvs bench soak`: a steady load at a fixed rate, for a set time, against
//! a server in another process. Every interval it reports the throughput,
//! the send-to-receive latency of that interval, and the server's memory
//! and CPU, so a reader can see whether memory stays flat (or grows only
//! with the data kept) and whether latency holds.
//!
//! Messages carry a TTL and the recipients ack them, so the mailboxes do
//! not grow; every message is stored and indexed (searchable) until its
//! TTL passes, then purged from storage and the index, so once the first
//! TTL has passed the server's memory should level off. The growth of
//! resident memory per message received is the figure to watch. *Not in
//! graph* is how many stored message vectors wait in the indexes' fresh
//! buffers (searched exactly, each search slower) at the end of each
//! interval, from the server's `/metrics` (`hvs_index_fresh`): flat and
//! small when the graphs keep up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use hvs::runtime::Client;
use hvs::runtime::protocol::WireOutgoing;
use serde_json::json;
use tokio::sync::Mutex;

use crate::bench::{BenchDurability, histogram};
use crate::bench_tcp::ServeCommand;
use crate::procstat;

#[derive(Args, Debug)]
pub(crate) struct SoakArgs {
    /// Clients, each sending to the next.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Messages per second, over all clients.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Seconds per reported interval.
    #[arg(long, default_value_t = 30)]
    interval: u64,
    /// Storage durability of the server.
    #[arg(long, value_enum, default_value = "buffered")]
    durability: BenchDurability,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 128)]
    payload: usize,
    /// Time to live of each message, ms; 0 sends messages without one
    /// (then only a retention limit, see `--serve-arg`, bounds memory).
    #[arg(long, default_value_t = 60_000)]
    ttl_ms: u64,
    /// An argument for the `hvs serve` the bench starts, e.g.
    /// `--serve-arg=--max-messages --serve-arg=100000` (repeatable).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    serve_args: Vec<String>,
    /// `m` of each model's home namespace's graph, where its messages'
    /// vectors go (the contract's `hvs_binding.graph`; default the
    /// server's, 16).
    #[arg(long)]
    graph_m: Option<u32>,
    /// `ef_construction` of that graph (default the server's, 128).
    #[arg(long)]
    graph_ef_construction: Option<u32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: SoakArgs) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(args))
}

/// What the receivers share: counts and the current interval's latencies.
struct Shared {
    received: AtomicU64,
    latency: Mutex<Histogram<u64>>,
    base: Instant,
}

async fn receive(client: Client, shared: Arc<Shared>) {
    while let Some(first) = client.next_delivery().await {
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match client.try_next_delivery() {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        let now = shared.base.elapsed().as_nanos() as u64;
        let mut ids = Vec::with_capacity(batch.len());
        let firsts = batch.iter().filter(|d| d.attempt == 1).count();
        {
            let mut h = shared.latency.lock().await;
            for d in &batch {
                if d.attempt == 1 && d.message.payload.len() >= 8 {
                    let mut stamp = [0u8; 8];
                    stamp.copy_from_slice(&d.message.payload[..8]);
                    let sent = u64::from_le_bytes(stamp);
                    let _ = h.record((now.saturating_sub(sent) / 1000).max(1));
                }
                ids.push(d.message.id.clone());
            }
        }
        // Redeliveries are not counted again.
        shared.received.fetch_add(firsts as u64, Ordering::Relaxed);
        if client.ack(&ids).await.is_err() {
            return;
        }
    }
}

/// Sends at `rate` messages per second until `until`; returns how many.
#[allow(clippy::too_many_arguments)]
async fn send(
    client: Client,
    to: String,
    rate: f64,
    until: Instant,
    payload: usize,
    ttl_ms: u64,
    points: Arc<Vec<Vec<f64>>>,
    base: Instant,
    errors: Arc<AtomicU64>,
) -> u64 {
    let start = Instant::now();
    let mut k = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        // Paced: message k leaves at start + k / rate, while that is
        // before `until`.
        let due = start + Duration::from_secs_f64(k as f64 / rate);
        if due >= until {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let mut p = vec![0u8; payload.max(8)];
        p[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        let m = WireOutgoing {
            to: to.clone(),
            payload: p,
            vector: Some(points[k as usize % points.len()].clone()),
            ttl_ms: (ttl_ms > 0).then_some(ttl_ms),
            ..WireOutgoing::default()
        };
        let (c, e) = (client.clone(), errors.clone());
        tasks.spawn(async move {
            if c.send_message(m).await.is_err() {
                e.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Reap finished sends so the set stays small.
        while tasks.try_join_next().is_some() {}
        k += 1;
    }
    while tasks.join_next().await.is_some() {}
    k
}

async fn run_async(args: SoakArgs) -> Result<(), Box<dyn std::error::Error>> {
    let clients_n = args.clients.max(2);
    let tmp = tempfile::tempdir()?;
    let mut command = ServeCommand::new(&tmp.path().join("data"), args.durability)?;
    command.extend_args(args.serve_args.iter().cloned());
    let (server, addr, admin) = (command.spawn()?, command.listen, command.admin);
    let pid = server.pid();
    let ids: Vec<String> = (0..clients_n).map(|i| format!("soak-{i}")).collect();
    let mut clients = Vec::new();
    for id in &ids {
        let mut contract = crate::bench::contract(id);
        let mut graph = serde_json::Map::new();
        if let Some(m) = args.graph_m {
            graph.insert("m".into(), m.into());
        }
        if let Some(e) = args.graph_ef_construction {
            graph.insert("ef_construction".into(), e.into());
        }
        if !graph.is_empty() {
            contract["hvs_binding"]["graph"] = graph.into();
        }
        let c = Client::connect(crate::bench_tcp::following(&[addr], contract.to_string())).await?;
        c.subscribe().await?;
        clients.push(c);
    }
    let points = Arc::new(crate::bench::points()?);
    let shared = Arc::new(Shared {
        received: AtomicU64::new(0),
        latency: Mutex::new(histogram()),
        base: Instant::now(),
    });
    let receivers: Vec<_> = clients
        .iter()
        .map(|c| tokio::spawn(receive(c.clone(), shared.clone())))
        .collect();
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let per_client = args.rate as f64 / clients_n as f64;
    let senders: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(send(
                c.clone(),
                ids[(i + 1) % clients_n].clone(),
                per_client,
                until,
                args.payload,
                args.ttl_ms,
                points.clone(),
                shared.base,
                errors.clone(),
            ))
        })
        .collect();

    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let mut rows = Vec::new();
    let mut last_received = 0;
    let mut last_cpu = procstat::cpu_seconds(pid);
    let interval = Duration::from_secs(args.interval.max(1));
    let mut next = start + interval;
    if !args.json {
        println!(
            "soak: {} clients, {} msgs/s for {} s, {} durability, TTL {} ms, graph m {} ef_construction {}; a row per {} s",
            clients_n,
            args.rate,
            args.seconds,
            format!("{:?}", args.durability).to_lowercase(),
            args.ttl_ms,
            args.graph_m
                .map_or("16 (server's)".into(), |m| m.to_string()),
            args.graph_ef_construction
                .map_or("128 (server's)".into(), |e| e.to_string()),
            interval.as_secs()
        );
        println!(
            "{:>6} {:>10} {:>9} {:>9} {:>9} {:>10} {:>8} {:>10} {:>12}",
            "t s",
            "msgs/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "RSS MiB",
            "CPU",
            "CPU µs/msg",
            "not in graph"
        );
    }
    while next <= until + Duration::from_millis(1) {
        tokio::time::sleep_until(next.into()).await;
        let received = shared.received.load(Ordering::Relaxed);
        let lat = {
            let mut h = shared.latency.lock().await;
            let snapshot = h.clone();
            h.reset();
            snapshot
        };
        let cpu = procstat::cpu_seconds(pid);
        let busy = match (last_cpu, cpu) {
            (Some(a), Some(b)) => Some((b - a) / interval.as_secs_f64()),
            _ => None,
        };
        // The server's CPU for the interval over the messages delivered in
        // it: what each message costs the server, all threads counted.
        let per_message = match (last_cpu, cpu) {
            (Some(a), Some(b)) if received > last_received => {
                Some((b - a) * 1e6 / (received - last_received) as f64)
            }
            _ => None,
        };
        last_cpu = cpu;
        let rss = procstat::rss_mib(pid).map(|(now, _)| now);
        let waiting =
            tokio::task::spawn_blocking(move || crate::bench_tcp::waiting_for_graph(admin))
                .await
                .ok()
                .flatten();
        let row = json!({
            "t_s": start.elapsed().as_secs_f64().round(),
            "msgs_per_s": (received - last_received) as f64 / interval.as_secs_f64(),
            "p50_ms": q(&lat, 0.5), "p99_ms": q(&lat, 0.99), "max_ms": lat.max() as f64 / 1000.0,
            "server_rss_mib": rss, "server_cores_busy": busy,
            "server_cpu_us_per_msg": per_message, "received_total": received,
            "vectors_not_in_graph": waiting,
        });
        if !args.json {
            let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
            println!(
                "{:>6.0} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>10.0} {:>8.2} {:>10.1} {:>12.0}",
                f(&row["t_s"]),
                f(&row["msgs_per_s"]),
                f(&row["p50_ms"]),
                f(&row["p99_ms"]),
                f(&row["max_ms"]),
                f(&row["server_rss_mib"]),
                f(&row["server_cores_busy"]),
                f(&row["server_cpu_us_per_msg"]),
                f(&row["vectors_not_in_graph"]),
            );
        }
        last_received = received;
        rows.push(row);
        next += interval;
    }
    let mut sent = 0;
    for s in senders {
        sent += s.await?;
    }
    // Let the last deliveries arrive, then stop.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let received = shared.received.load(Ordering::Relaxed);
    for c in &clients {
        let _ = c.close().await;
    }
    for r in receivers {
        r.abort();
    }
    let status = server.stop()?;
    let rss: Vec<f64> = rows
        .iter()
        .filter_map(|r| r["server_rss_mib"].as_f64())
        .collect();
    let p99: Vec<f64> = rows.iter().filter_map(|r| r["p99_ms"].as_f64()).collect();
    // Growth after the first interval (warm-up), per message received.
    let (first_rss, last_rss) = (
        rss.first().copied().unwrap_or(0.0),
        rss.last().copied().unwrap_or(0.0),
    );
    let first_received = rows
        .first()
        .and_then(|r| r["received_total"].as_f64())
        .unwrap_or(0.0);
    let grown_per_msg = if received as f64 > first_received {
        (last_rss - first_rss) * 1024.0 * 1024.0 / (received as f64 - first_received)
    } else {
        0.0
    };
    let summary = json!({
        "clients": clients_n, "rate": args.rate, "seconds": args.seconds,
        "durability": format!("{:?}", args.durability).to_lowercase(),
        "graph_m": args.graph_m, "graph_ef_construction": args.graph_ef_construction,
        "sent": sent, "received": received, "send_errors": errors.load(Ordering::Relaxed),
        "rss_mib_first_interval": first_rss, "rss_mib_last_interval": last_rss,
        "rss_bytes_per_message_after_first_interval": grown_per_msg,
        "p99_ms_min": p99.iter().copied().fold(f64::INFINITY, f64::min),
        "p99_ms_max": p99.iter().copied().fold(0.0, f64::max),
        "server_exit_clean": status.success(),
        "intervals": rows,
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "received {} of {} sent at {} msgs/s; {} send errors; server exit clean: {}",
            received,
            sent,
            args.rate,
            summary["send_errors"],
            status.success()
        );
        let leave = if args.ttl_ms == 0 {
            "without a TTL, messages leave only by the server's retention limits"
        } else {
            "messages stay stored and indexed until their TTL passes"
        };
        println!(
            "server RSS {:.0} MiB after the first interval, {:.0} MiB at the end: {:.0} bytes per message received since ({leave})",
            first_rss, last_rss, grown_per_msg
        );
        println!(
            "p99 per interval between {:.2} and {:.2} ms",
            summary["p99_ms_min"].as_f64().unwrap_or(f64::NAN),
            summary["p99_ms_max"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "not in graph: message vectors waiting in the fresh buffers (searched exactly) \
             at the end of each interval, from the server's /metrics"
        );
    }
    Ok(())
}
