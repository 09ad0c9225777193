//! `hvs bench restart`: how soon a server is back after SIGKILL with many
//! stored messages and vectors.
//!
//! For each server binary (`--server-bin`, repeatable, so an older build can
//! run beside this one), on a fresh data directory at `buffered` durability:
//!
//! 1. **Fill.** `--vectors` points of H^12 go into one namespace in batches
//!    (`batch_store_vectors`), and `--messages` messages, each with its own
//!    point, go from several senders (`send_batch`) to recipients that
//!    registered and left, so every message stays stored and pending. The
//!    fill server saves no graph checkpoint (`--checkpoint-secs 0`).
//! 2. **crash**: SIGKILL right after the fill (no graph dump on disk), then
//!    a restart, measured (below), until every graph holds every vector.
//! 3. **checkpoint** (binaries that take `--checkpoint-secs`): the restarted
//!    server writes a checkpoint (`<file>.graphs/`, polled for); SIGKILL,
//!    then a restart, measured.
//! 4. **clean**: SIGTERM (the graphs are saved on close), then a restart,
//!    measured: the time a full checkpoint takes to load.
//!
//! A restart is measured from the moment `hvs serve` is spawned: when it
//! accepts a TCP connection, when a hello is answered, when the first
//! search (k = 10, through the graph when there is one) is answered; then,
//! every `--sample-ms` (or, while searches are slow, after a pause as long
//! as the sample took: the samples keep at most half a core busy), the p50
//! of `--queries` searches and the namespaces' `in_graph`/`vectors`/`fresh`/`building`
//! (the `stats` request). **Graph speed** is
//! reached at the first sample whose p50 is within 2× the reference: the
//! p50 of 50 searches on the same server settled (every vector in its
//! graph), measured before its second stop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use futures_util::StreamExt;
use hvs::geometry::{Hyperboloid, Manifold};
use hvs::runtime::protocol::{NewWireVector, WireOutgoing, WireStats};
use hvs::runtime::{Client, ClientConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::bench::{DIM, contract};

type BoxError = Box<dyn std::error::Error>;

/// The namespace (and model) the vectors go to and the searches read.
const VECTORS: &str = "restart-vectors";
/// Searches of the settled server whose p50 is the reference.
const REFERENCE_QUERIES: usize = 50;
/// How far above the reference p50 a search may be and count as at graph
/// speed.
const GRAPH_SPEED_FACTOR: f64 = 2.0;
/// Samples in a row with every vector in a graph before a restart counts
/// as settled.
const SETTLED_SAMPLES: usize = 4;

#[derive(Args, Debug)]
pub(crate) struct RestartArgs {
    /// Messages stored and left pending (split over the senders).
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Vectors stored in one namespace.
    #[arg(long, default_value_t = 1_000_000)]
    vectors: u64,
    /// Clients sending the messages, each its own model.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Models the messages go to (registered, then disconnected).
    #[arg(long, default_value_t = 4)]
    recipients: usize,
    /// Messages per `send_batch`, vectors per `batch_store_vectors`.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Batches each client has in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 128)]
    payload: usize,
    /// `--checkpoint-secs` of the restarted servers (binaries that take
    /// it); the fill server runs with 0 (no checkpoint before the crash).
    #[arg(long, default_value_t = 10)]
    checkpoint_secs: u64,
    /// Searches per sample after a restart (their p50 is the sample's).
    #[arg(long, default_value_t = 5)]
    queries: usize,
    /// Milliseconds between the starts of two samples.
    #[arg(long, default_value_t = 500)]
    sample_ms: u64,
    /// Longest wait, in seconds, for a server to listen, to settle, or to
    /// write its checkpoint.
    #[arg(long, default_value_t = 3600)]
    patience: u64,
    /// A server binary to measure, as PATH or LABEL=PATH; repeat it to
    /// measure several in one run, one after the other [default: this
    /// executable].
    #[arg(long = "server-bin", value_name = "[LABEL=]PATH")]
    server_bins: Vec<String>,
    /// Where the data directories go [default: the system's temporary
    /// directory]; each is removed after its binary's run.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep each binary's data directory (and its server log) instead of
    /// removing it, to start a server on it again by hand (e.g. under a
    /// profiler); the path is printed on stderr.
    #[arg(long)]
    keep_data: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: RestartArgs) -> Result<(), BoxError> {
    let rt = crate::bench::runtime()?;
    let bins = binaries(&args.server_bins)?;
    let mut servers = Vec::new();
    for (label, bin) in &bins {
        servers.push(rt.block_on(measure_binary(&args, label, bin))?);
    }
    let report = json!({
        "messages": args.messages - args.messages % args.senders.max(1) as u64,
        "vectors": args.vectors,
        "geometry": format!("H^{DIM}"),
        "senders": args.senders.max(1),
        "recipients": args.recipients.max(1),
        "durability": "buffered",
        "checkpoint_secs": args.checkpoint_secs,
        "graph_speed": format!(
            "p50 of {} searches (k = 10) within {GRAPH_SPEED_FACTOR}x the p50 of {REFERENCE_QUERIES} on the settled server",
            args.queries
        ),
        "servers": servers,
    });
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}

/// `--server-bin` values as (label, path); this executable if none.
fn binaries(given: &[String]) -> Result<Vec<(String, PathBuf)>, BoxError> {
    if given.is_empty() {
        return Ok(vec![("this".into(), std::env::current_exe()?)]);
    }
    given
        .iter()
        .map(|g| {
            let (label, path) = g.split_once('=').unwrap_or((g, g));
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(format!("--server-bin {g}: no such file").into());
            }
            Ok((label.to_string(), path))
        })
        .collect()
}

/// Whether `bin serve` takes `--checkpoint-secs` (older builds do not:
/// they save graphs only on a clean stop).
fn takes_checkpoint_secs(bin: &Path) -> Result<bool, BoxError> {
    let help = Command::new(bin).args(["serve", "--help"]).output()?;
    Ok(String::from_utf8_lossy(&help.stdout).contains("--checkpoint-secs"))
}

/// How one binary is started on one data directory, every time on the
/// same addresses.
struct Launch {
    bin: PathBuf,
    data: PathBuf,
    listen: SocketAddr,
    admin: SocketAddr,
    mailbox_capacity: u64,
    checkpoints: bool,
    /// Its stderr, appended to over every start.
    log: PathBuf,
}

/// A started server.
struct Running {
    child: Child,
    spawned: Instant,
}

impl Launch {
    /// Spawns `hvs serve`; `checkpoint_secs` is passed only to a binary
    /// that takes it.
    fn spawn(&self, checkpoint_secs: u64) -> Result<Running, BoxError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .args(["--listen", &self.listen.to_string()])
            .args(["--admin", &self.admin.to_string()])
            .arg("--data")
            .arg(&self.data)
            .args(["--durability", "buffered", "--max-in-flight", "4096"])
            .args(["--mailbox-capacity", &self.mailbox_capacity.to_string()]);
        if self.checkpoints {
            cmd.args(["--checkpoint-secs", &checkpoint_secs.to_string()]);
        }
        let spawned = Instant::now();
        let child = cmd
            .env_remove("HVS_TOKENS")
            .env_remove("HVS_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        Ok(Running { child, spawned })
    }

    /// Waits until the server accepts a connection; the time since spawn.
    async fn await_listen(&self, r: &mut Running, patience: Duration) -> Result<f64, BoxError> {
        loop {
            if tokio::net::TcpStream::connect(self.listen).await.is_ok() {
                return Ok(r.spawned.elapsed().as_secs_f64());
            }
            if let Some(status) = r.child.try_wait()? {
                let log = self.log.display();
                return Err(
                    format!("hvs serve exited before listening: {status} (log: {log})").into(),
                );
            }
            if r.spawned.elapsed() > patience {
                return Err(format!("hvs serve not listening after {patience:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn client_config(&self, id: &str) -> ClientConfig {
        let mut config = ClientConfig::new(self.listen.to_string(), contract(id).to_string());
        // An exact scan of a million vectors on a busy machine is slow.
        config.request_timeout = Duration::from_secs(300);
        config
    }

    fn graphs_dir(&self) -> PathBuf {
        self.data.join("hvs.redb.graphs")
    }
}

impl Running {
    fn kill9(mut self) -> Result<(), BoxError> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM; whether it then exited cleanly, and how long that took.
    fn term(mut self) -> Result<(bool, f64), BoxError> {
        let began = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        Ok((status.success(), began.elapsed().as_secs_f64()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `n` points of H^DIM from `seed`: exp at the origin of a random tangent
/// vector, so every vector and message has a point of its own.
fn points_from(seed: u64, n: usize) -> Result<Vec<Vec<f64>>, BoxError> {
    let space = Hyperboloid::new(DIM, 1.0)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let tangent: Vec<f64> = (0..DIM).map(|_| rng.random_range(-1.5..1.5)).collect();
        out.push(space.exp0(&tangent)?);
    }
    Ok(out)
}

/// Every run of one binary: the fill, then each restart.
async fn measure_binary(args: &RestartArgs, label: &str, bin: &Path) -> Result<Value, BoxError> {
    let work = match &args.work_dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let launch = Launch {
        bin: bin.to_path_buf(),
        data: work.path().join("data"),
        listen: free_port()?,
        admin: free_port()?,
        // Every message may wait in one mailbox.
        mailbox_capacity: args.messages.max(1),
        checkpoints: takes_checkpoint_secs(bin)?,
        log: work.path().join("serve.log"),
    };
    let patience = Duration::from_secs(args.patience);
    eprintln!(
        "{label}: {} (checkpoints: {})",
        bin.display(),
        launch.checkpoints
    );
    let mut server = launch.spawn(0)?;
    launch.await_listen(&mut server, patience).await?;
    let fill = fill(&launch, args).await?;
    let db_bytes = std::fs::metadata(launch.data.join("hvs.redb"))?.len();
    server.kill9()?;
    let mut restarts = Vec::new();
    let crash = restart(&launch, args, "crash", None).await?;
    restarts.push(crash.figures);
    let mut server = crash.server;
    let reference = reference_p50(&launch).await?;
    if launch.checkpoints {
        let written = await_checkpoint(&launch, args, crash.spawned_at).await?;
        server.kill9()?;
        let mut next = restart(&launch, args, "checkpoint", Some(reference)).await?;
        next.figures["checkpoint_written_s"] = written.into();
        restarts.push(next.figures);
        server = next.server;
    }
    let (clean, stop_s) = server.term()?;
    let mut next = restart(&launch, args, "clean", Some(reference)).await?;
    next.figures["previous_stop"] = json!({"clean": clean, "seconds": stop_s});
    restarts.push(next.figures);
    let (final_clean, _) = next.server.term()?;
    if args.keep_data {
        eprintln!("{label}: data kept in {}", work.keep().display());
    }
    for r in &mut restarts {
        graph_speed(r, reference);
    }
    Ok(json!({
        "label": label,
        "binary": bin.display().to_string(),
        "takes_checkpoint_secs": launch.checkpoints,
        "fill": fill,
        "database_bytes": db_bytes,
        "graph_dumps_bytes": dir_bytes(&launch.graphs_dir()),
        "reference_p50_ms": reference,
        "restarts": restarts,
        "final_exit_clean": final_clean,
    }))
}

fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// Stores the vectors and the pending messages; their rates.
async fn fill(launch: &Launch, args: &RestartArgs) -> Result<Value, BoxError> {
    let recipients: Vec<String> = (0..args.recipients.max(1))
        .map(|i| format!("restart-inbox-{i}"))
        .collect();
    // A send to a model the server never saw is refused: register each,
    // then leave, so that what is sent to it stays pending.
    for id in &recipients {
        Client::connect(launch.client_config(id))
            .await?
            .close()
            .await?;
    }
    let done = Arc::new(AtomicU64::new(0));
    let total = args.vectors + args.messages;
    let watched = done.clone();
    let progress = crate::progress::Counter::start("stored", "vectors and messages", move || {
        (watched.load(Ordering::Relaxed), total)
    });
    let start = Instant::now();
    let vectors = tokio::spawn(store_vectors(
        Client::connect(launch.client_config(VECTORS)).await?,
        args.vectors,
        args.batch.max(1),
        args.window,
        done.clone(),
    ));
    let senders = args.senders.max(1);
    let per_sender = args.messages / senders as u64;
    let mut sends = Vec::new();
    for s in 0..senders {
        let client = Client::connect(launch.client_config(&format!("restart-sender-{s}"))).await?;
        let plan = SendPlan {
            sender: s as u64,
            count: per_sender,
            batch: args.batch.max(1),
            window: args.window,
            payload: args.payload,
            recipients: recipients.clone(),
        };
        sends.push(tokio::spawn(send_messages(client, plan, done.clone())));
    }
    let vectors_s = vectors.await??;
    for s in sends {
        s.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    progress.finish();
    Ok(json!({
        "seconds": secs,
        "vectors_seconds": vectors_s,
        "stored_per_second": (args.vectors + per_sender * senders as u64) as f64 / secs,
    }))
}

/// Stores `count` vectors into [`VECTORS`] in batches; the time it took.
async fn store_vectors(
    client: Client,
    count: u64,
    batch: usize,
    window: usize,
    done: Arc<AtomicU64>,
) -> Result<f64, String> {
    let start = Instant::now();
    let batches = count.div_ceil(batch as u64);
    let mut answers = futures_util::stream::iter(0..batches)
        .map(|b| {
            let n = (count - b * batch as u64).min(batch as u64) as usize;
            let client = client.clone();
            async move {
                let vectors = points_from(b, n)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .map(|vector| NewWireVector {
                        vector,
                        region: None,
                        metadata: Default::default(),
                    })
                    .collect();
                client
                    .batch_store_vectors(VECTORS, vectors)
                    .await
                    .map(|ids| ids.len() as u64)
                    .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(window.max(1));
    while let Some(stored) = answers.next().await {
        done.fetch_add(stored?, Ordering::Relaxed);
    }
    let _ = client.close().await;
    Ok(start.elapsed().as_secs_f64())
}

/// What one sender sends.
struct SendPlan {
    sender: u64,
    count: u64,
    batch: usize,
    window: usize,
    payload: usize,
    /// Its messages go to these in turn.
    recipients: Vec<String>,
}

/// Sends the plan's messages in batches, to the recipients in turn.
async fn send_messages(client: Client, plan: SendPlan, done: Arc<AtomicU64>) -> Result<(), String> {
    let plan = Arc::new(plan);
    let batches = plan.count.div_ceil(plan.batch as u64);
    let mut answers = futures_util::stream::iter(0..batches)
        .map(|b| {
            let (client, plan) = (client.clone(), plan.clone());
            async move {
                let n = (plan.count - b * plan.batch as u64).min(plan.batch as u64) as usize;
                // Seeds apart from the vectors' (which start at 0).
                let seed = (plan.sender + 1) << 40 | b;
                let to = &plan.recipients;
                let messages = points_from(seed, n)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .enumerate()
                    .map(|(i, point)| WireOutgoing {
                        to: to[i % to.len()].clone(),
                        payload: vec![b'm'; plan.payload],
                        vector: Some(point),
                        ..WireOutgoing::default()
                    })
                    .collect();
                client
                    .send_batch(messages)
                    .await
                    .map(|ids| ids.len() as u64)
                    .map_err(|e| e.to_string())
            }
        })
        .buffer_unordered(plan.window.max(1));
    while let Some(sent) = answers.next().await {
        done.fetch_add(sent?, Ordering::Relaxed);
    }
    let _ = client.close().await;
    Ok(())
}

/// The searches' query points (apart from every stored point's seed).
fn queries() -> Result<Vec<Vec<f64>>, BoxError> {
    points_from(u64::MAX, 100)
}

/// A restarted server and what was measured of it.
struct Restarted {
    server: Running,
    figures: Value,
    /// When it was spawned.
    spawned_at: SystemTime,
}

/// Starts the server again and measures it until it settles: every vector
/// in a graph for [`SETTLED_SAMPLES`] samples and, when a reference p50 is
/// known, the last sample within [`GRAPH_SPEED_FACTOR`] of it.
async fn restart(
    launch: &Launch,
    args: &RestartArgs,
    mode: &str,
    reference: Option<f64>,
) -> Result<Restarted, BoxError> {
    eprintln!("restart ({mode}) ...");
    let patience = Duration::from_secs(args.patience);
    let spawned_at = SystemTime::now();
    let mut server = launch.spawn(args.checkpoint_secs)?;
    let listen_s = launch.await_listen(&mut server, patience).await?;
    let client = Client::connect(launch.client_config(VECTORS)).await?;
    let hello_s = server.spawned.elapsed().as_secs_f64();
    let queries = queries()?;
    let first = Instant::now();
    client.search(VECTORS, queries[0].clone(), 10).await?;
    let first_search_ms = first.elapsed().as_secs_f64() * 1000.0;
    let first_search_s = server.spawned.elapsed().as_secs_f64();
    let mut samples: Vec<Value> = Vec::new();
    let mut in_graph_run = 0;
    let every = Duration::from_millis(args.sample_ms.max(1));
    let mut due = Instant::now();
    loop {
        tokio::time::sleep_until(due.into()).await;
        let began = Instant::now();
        let k = samples.len() * args.queries.max(1);
        let p50 = search_p50(&client, &queries, k, args.queries.max(1)).await?;
        let stats = client.stats().await?;
        // At most half of one core for the samples, whose exact scans
        // would otherwise take the CPU the graph is built with.
        due = (due + every).max(Instant::now() + began.elapsed());
        let all_in_graph = all_in_graph(&stats);
        in_graph_run = if all_in_graph { in_graph_run + 1 } else { 0 };
        let v = stats.namespaces.get(VECTORS);
        samples.push(json!({
            "t_s": server.spawned.elapsed().as_secs_f64(),
            "p50_ms": p50,
            "in_graph": v.map(|v| v.in_graph),
            "vectors": v.map(|v| v.vectors),
            "fresh_all": stats.namespaces.values().map(|n| n.fresh).sum::<usize>(),
            "all_in_graph": all_in_graph,
        }));
        let fast = reference.is_none_or(|r| p50 <= GRAPH_SPEED_FACTOR * r);
        if in_graph_run >= SETTLED_SAMPLES && fast {
            break;
        }
        if server.spawned.elapsed() > patience {
            eprintln!("restart ({mode}): not settled after {patience:?}; stopping the samples");
            break;
        }
    }
    let rss = crate::procstat::rss_mib(server.child.id()).map(|(now, _)| now);
    let _ = client.close().await;
    let figures = json!({
        "mode": mode,
        "listen_s": listen_s,
        "hello_s": hello_s,
        "first_search_s": first_search_s,
        "first_search_ms": first_search_ms,
        "server_rss_mib_settled": rss,
        "samples": samples,
    });
    Ok(Restarted {
        server,
        figures,
        spawned_at,
    })
}

/// Whether every namespace's vectors are all in its graph.
fn all_in_graph(stats: &WireStats) -> bool {
    stats
        .namespaces
        .values()
        .all(|n| n.in_graph >= n.vectors && n.fresh == 0 && !n.building)
}

/// The p50, in ms, of `n` searches one after the other (queries from
/// `from` on, cycling).
async fn search_p50(
    client: &Client,
    queries: &[Vec<f64>],
    from: usize,
    n: usize,
) -> Result<f64, BoxError> {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let q = queries[(from + i) % queries.len()].clone();
        let t = Instant::now();
        client.search(VECTORS, q, 10).await?;
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    Ok(took[took.len() / 2])
}

/// The p50 of [`REFERENCE_QUERIES`] searches of the settled server.
async fn reference_p50(launch: &Launch) -> Result<f64, BoxError> {
    let client = Client::connect(launch.client_config(VECTORS)).await?;
    let p50 = search_p50(&client, &queries()?, 0, REFERENCE_QUERIES).await?;
    let _ = client.close().await;
    Ok(p50)
}

/// Waits until the settled server spawned at `spawned_at` has saved a
/// graph dump of every namespace that has a graph; how long that took from
/// the call. Nothing is written to it after the fill, and a graph being
/// built after opening is not saved until it is whole, so each dump it
/// wrote holds its namespace's every vector.
async fn await_checkpoint(
    launch: &Launch,
    args: &RestartArgs,
    spawned_at: SystemTime,
) -> Result<f64, BoxError> {
    let client = Client::connect(launch.client_config(VECTORS)).await?;
    let graphed = client
        .stats()
        .await?
        .namespaces
        .values()
        .filter(|n| n.in_graph > 0)
        .count();
    let _ = client.close().await;
    let began = Instant::now();
    let patience = Duration::from_secs(args.patience);
    while dumps_since(&launch.graphs_dir(), spawned_at) < graphed {
        if began.elapsed() > patience {
            return Err(format!("no checkpoint of {graphed} graphs within {patience:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(began.elapsed().as_secs_f64())
}

/// Graph dumps in `dir` written at or after `since`; none while one is
/// still being written (a `.graph.tmp`).
fn dumps_since(dir: &Path, since: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    if entries
        .iter()
        .any(|p| p.extension().is_some_and(|x| x == "tmp"))
    {
        return 0;
    }
    entries
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "graph"))
        .filter_map(|p| p.metadata().and_then(|m| m.modified()).ok())
        .filter(|&t| t >= since)
        .count()
}

/// Adds to a restart's figures when its searches reached graph speed and
/// when every vector was in a graph (seconds since spawn).
fn graph_speed(r: &mut Value, reference: f64) {
    let samples = r["samples"].as_array().cloned().unwrap_or_default();
    let first =
        |ok: &dyn Fn(&Value) -> bool| samples.iter().find(|s| ok(s)).map(|s| s["t_s"].clone());
    let fast = |s: &Value| {
        s["p50_ms"]
            .as_f64()
            .is_some_and(|p| p <= GRAPH_SPEED_FACTOR * reference)
    };
    r["graph_speed_s"] = first(&fast).unwrap_or(Value::Null);
    r["all_in_graph_s"] = first(&|s| s["all_in_graph"] == true).unwrap_or(Value::Null);
    r["first_sample_p50_ms"] = samples.first().map_or(Value::Null, |s| s["p50_ms"].clone());
}

fn print_report(r: &Value) {
    println!(
        "restart: {} pending messages ({} senders to {} recipients), {} vectors in one namespace, {}; buffered; restarted servers checkpoint every {} s",
        r["messages"],
        r["senders"],
        r["recipients"],
        r["vectors"],
        r["geometry"].as_str().unwrap_or("?"),
        r["checkpoint_secs"]
    );
    println!("graph speed: {}", r["graph_speed"].as_str().unwrap_or("?"));
    let f = |v: &Value| v.as_f64().map_or("-".to_string(), |x| format!("{x:.2}"));
    for s in r["servers"].as_array().into_iter().flatten() {
        println!(
            "{} ({}): fill {} s; database {:.0} MiB, graph dumps {:.0} MiB; reference p50 {} ms",
            s["label"].as_str().unwrap_or("?"),
            s["binary"].as_str().unwrap_or("?"),
            f(&s["fill"]["seconds"]),
            s["database_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            s["graph_dumps_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            f(&s["reference_p50_ms"]),
        );
        println!(
            "  {:<11} {:>9} {:>9} {:>11} {:>13} {:>13} {:>14} {:>17}",
            "mode",
            "listen s",
            "hello s",
            "1st search s",
            "1st search ms",
            "graph speed s",
            "all in graph s",
            "1st sample p50 ms"
        );
        for m in s["restarts"].as_array().into_iter().flatten() {
            println!(
                "  {:<11} {:>9} {:>9} {:>11} {:>13} {:>13} {:>14} {:>17}",
                m["mode"].as_str().unwrap_or("?"),
                f(&m["listen_s"]),
                f(&m["hello_s"]),
                f(&m["first_search_s"]),
                f(&m["first_search_ms"]),
                f(&m["graph_speed_s"]),
                f(&m["all_in_graph_s"]),
                f(&m["first_sample_p50_ms"]),
            );
        }
    }
}
