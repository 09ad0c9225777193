//! `hvs bench messaging --over tcp`: the same ring of models as the
//! in-process bench, but each model is a client of an `hvs serve` started
//! in another process, talking over loopback TCP. Each client keeps
//! `window` `send` requests in flight (one message per request, pipelined)
//! and receives through pushed deliveries, acking in batches. Reports
//! delivered-and-acked messages per second, send-to-receive latency, and
//! the server's CPU time and memory.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use hvs::runtime::protocol::WireOutgoing;
use hvs::runtime::{Client, ClientConfig};
use serde_json::json;

use crate::bench::{BenchDurability, DIM, MessagingArgs, contract, histogram};
use crate::procstat;

/// A free loopback port (bound and released; the server binds it next).
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// The server process; stopped with SIGTERM when dropped.
pub(crate) struct ServerProcess {
    child: Child,
}

impl ServerProcess {
    pub(crate) fn start(
        data: &std::path::Path,
        durability: BenchDurability,
    ) -> Result<(Self, SocketAddr), Box<dyn std::error::Error>> {
        let (listen, admin) = (free_port()?, free_port()?);
        let durability = format!("{durability:?}").to_lowercase();
        let child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", &listen.to_string()])
            .args(["--admin", &admin.to_string()])
            .args([
                "--data",
                &data.to_string_lossy(),
                "--durability",
                &durability,
            ])
            .args(["--max-in-flight", "4096"])
            .env_remove("HVS_TOKENS")
            .env_remove("HVS_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        let server = ServerProcess { child };
        let start = Instant::now();
        while std::net::TcpStream::connect(listen).is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                return Err("the server did not start listening within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok((server, listen))
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status (a clean shutdown is status 0).
    pub(crate) fn stop(mut self) -> std::io::Result<std::process::ExitStatus> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One client per model id (with the bench's contract), each subscribed
/// to its pushed deliveries.
pub(crate) async fn connect_subscribed(
    addr: SocketAddr,
    ids: &[String],
) -> Result<Vec<Client>, hvs::runtime::ClientError> {
    let mut clients = Vec::new();
    for id in ids {
        let config = ClientConfig::new(addr.to_string(), contract(id).to_string());
        let c = Client::connect(config).await?;
        c.subscribe().await?;
        clients.push(c);
    }
    Ok(clients)
}

struct Received {
    latency_us: Histogram<u64>,
    received: u64,
}

/// Takes pushed deliveries until `expected` first deliveries arrived,
/// acking them in batches.
async fn receive(
    client: Client,
    expected: u64,
    base: Instant,
    acked: Arc<AtomicU64>,
) -> Result<Received, String> {
    let mut latency_us = histogram();
    let mut received = 0;
    let mut ids = Vec::with_capacity(1024);
    while received < expected {
        let Some(first) = client.next_delivery().await else {
            return Err("the delivery stream ended".into());
        };
        let mut batch = vec![first];
        while batch.len() < 1024 {
            match client.try_next_delivery() {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        let now = base.elapsed().as_nanos() as u64;
        for d in batch {
            // A redelivery carries the id of a message counted already.
            if d.attempt != 1 {
                continue;
            }
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(&d.message.payload[..8]);
            let sent = u64::from_le_bytes(stamp);
            let _ = latency_us.record((now.saturating_sub(sent) / 1000).max(1));
            ids.push(d.message.id);
            received += 1;
        }
        let n = ids.len() as u64;
        client
            .ack(&std::mem::take(&mut ids))
            .await
            .map_err(|e| e.to_string())?;
        acked.fetch_add(n, Ordering::Relaxed);
    }
    Ok(Received {
        latency_us,
        received,
    })
}

/// Sends `count` messages to `to`, `window` requests in flight.
async fn send(
    client: Client,
    to: String,
    count: u64,
    window: usize,
    payload: usize,
    points: Arc<Vec<Vec<f64>>>,
    base: Instant,
) -> Result<(), String> {
    let mut results = futures_util::stream::iter(0..count)
        .map(|k| {
            let mut p = vec![0u8; payload.max(8)];
            p[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
            let m = WireOutgoing {
                to: to.clone(),
                payload: p,
                vector: Some(points[k as usize % points.len()].clone()),
                ..WireOutgoing::default()
            };
            let c = client.clone();
            async move { c.send_message(m).await }
        })
        .buffer_unordered(window.max(1));
    while let Some(r) = results.next().await {
        r.map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub(crate) fn run(args: MessagingArgs) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(run_async(&args))?;
    #[cfg(feature = "nats")]
    if args.nats {
        rt.block_on(crate::bench_nats::run(&args, &report))?;
    }
    #[cfg(not(feature = "nats"))]
    let _ = report;
    Ok(())
}

async fn run_async(args: &MessagingArgs) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let models = args.models.max(2);
    let per_model = args.messages / models as u64;
    let total = per_model * models as u64;
    let tmp = tempfile::tempdir()?;
    let data = args.data.clone().unwrap_or_else(|| tmp.path().join("data"));
    let (server, addr) = ServerProcess::start(&data, args.durability)?;
    let pid = server.pid();

    let ids: Vec<String> = (0..models).map(|i| format!("bench-{i}")).collect();
    let clients = crate::bench_tcp::connect_subscribed(addr, &ids).await?;
    let points = Arc::new(crate::bench::points()?);

    let base = Instant::now();
    // Bumped by the receivers as their acks are answered; shown on stderr.
    let acked = Arc::new(AtomicU64::new(0));
    let receivers: Vec<_> = clients
        .iter()
        .map(|c| tokio::spawn(receive(c.clone(), per_model, base, acked.clone())))
        .collect();
    let watched = acked.clone();
    let progress = crate::progress::Counter::start("delivered and acked", "msgs", move || {
        (watched.load(Ordering::Relaxed), total)
    });
    // Server CPU and memory (sampled while the load runs), and this
    // process's CPU: the clients'.
    let watch = procstat::Watch::start(pid);
    let start = Instant::now();
    let senders: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| {
            tokio::spawn(send(
                c.clone(),
                ids[(i + 1) % models].clone(),
                per_model,
                args.window,
                args.payload,
                points.clone(),
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
    progress.finish();
    let mut server_figures = watch.finish(secs).await?;
    let clients_cpu = server_figures["clients_cpu_seconds"].as_f64();
    for c in &clients {
        let _ = c.close().await;
    }
    let status = server.stop()?;
    server_figures.insert("exit_clean".into(), status.success().into());
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let report = json!({
        "over": "tcp",
        "clients": models,
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
        "clients_process": {"cpu_seconds": clients_cpu, "cpu_cores_busy": clients_cpu.map(|c| c / secs)},
        "server": server_figures,
    });
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(report)
}

fn print_report(r: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "hvs over tcp: {} clients, {} messages of {} B + a point of H^{DIM}, {} durability, window {}",
        r["clients"], r["messages"], r["payload_bytes"], r["durability"], r["window"]
    );
    println!(
        "  delivered and acked: {:.0} msgs/s ({:.2} s; sends answered at {:.0} msgs/s)",
        f(&r["delivered_and_acked_per_second"]),
        f(&r["seconds"]),
        f(&r["sent_per_second"])
    );
    crate::bench::print_latency(&r["latency_ms"]);
    let s = &r["server"];
    println!(
        "  server: {:.1} CPU s ({:.2} cores busy), RSS peak {:.0} MiB, clean exit: {}",
        f(&s["cpu_seconds"]),
        f(&s["cpu_cores_busy"]),
        f(&s["rss_mib_peak"]),
        s["exit_clean"]
    );
    let c = &r["clients_process"];
    println!(
        "  clients (this process): {:.1} CPU s ({:.2} cores busy)",
        f(&c["cpu_seconds"]),
        f(&c["cpu_cores_busy"])
    );
}
