//! `hvs bench messaging --over tcp`: the same ring of models as the
//! in-process bench, but each model is a client of an `hvs serve` started
//! in another process, talking over loopback TCP. Each client keeps
//! `window` messages in flight, in `send_batch` requests of `--batch`
//! messages (or, with `--batch 1`, one pipelined `send` per message), and
//! receives through pushed deliveries, acking in batches. Reports
//! delivered-and-acked messages per second, send-to-receive latency, and
//! the server's CPU time and memory.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
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
use crate::nats_server::{NatsCluster, checked_binary};
use crate::procstat;

/// A free loopback port (bound and released; the server binds it next).
fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// How to start one `hvs serve`: its addresses, data and flags, the same
/// again after a restart (a failover group's members keep their addresses,
/// which the clients hold).
pub(crate) struct ServeCommand {
    pub(crate) listen: SocketAddr,
    pub(crate) admin: SocketAddr,
    data: PathBuf,
    args: Vec<String>,
    /// Where its stderr goes (appended), else this process's stderr.
    log: Option<PathBuf>,
}

impl ServeCommand {
    /// On free loopback ports, data in `data`, at `durability`.
    pub(crate) fn new(data: &Path, durability: BenchDurability) -> std::io::Result<Self> {
        Ok(ServeCommand {
            listen: free_port()?,
            admin: free_port()?,
            data: data.to_path_buf(),
            args: vec!["--durability".into(), durability.name()],
            log: None,
        })
    }

    /// The same, in failover group `group` on the NATS servers `urls` as
    /// instance `instance`, the feed stream at 3 replicas, logging to
    /// `dir/instance.log`.
    pub(crate) fn member(
        dir: &Path,
        instance: &str,
        urls: &[String],
        durability: BenchDurability,
        lease_ttl_ms: Option<u64>,
    ) -> std::io::Result<Self> {
        let mut c = ServeCommand::new(&dir.join(instance), durability)?;
        c.args.extend(["--nats".into(), urls.join(",")]);
        c.args.extend(["--instance".into(), instance.into()]);
        c.args.extend(["--group".into(), GROUP.into()]);
        c.args.extend(["--feed-replicas".into(), "3".into()]);
        if let Some(ttl) = lease_ttl_ms {
            c.args.extend(["--lease-ttl-ms".into(), ttl.to_string()]);
        }
        c.log = Some(dir.join(format!("{instance}.log")));
        Ok(c)
    }

    /// More arguments for `hvs serve`.
    pub(crate) fn extend_args(&mut self, more: impl IntoIterator<Item = String>) {
        self.args.extend(more);
    }

    /// Starts it and waits until it listens.
    pub(crate) fn spawn(&self) -> Result<ServerProcess, Box<dyn std::error::Error>> {
        let stderr = match &self.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Stdio::inherit(),
        };
        let child = Command::new(std::env::current_exe()?)
            .args(["serve", "--listen", &self.listen.to_string()])
            .args(["--admin", &self.admin.to_string()])
            .arg("--data")
            .arg(&self.data)
            .args(["--max-in-flight", "4096"])
            .args(&self.args)
            .env_remove("HVS_TOKENS")
            .env_remove("HVS_CONFIG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        let mut server = ServerProcess { child };
        let start = Instant::now();
        while std::net::TcpStream::connect(self.listen).is_err() {
            if let Some(status) = server.child.try_wait()? {
                let log = self
                    .log
                    .as_ref()
                    .map_or(String::new(), |l| format!(" (its log: {})", l.display()));
                return Err(format!("hvs serve exited before listening: {status}{log}").into());
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err("the server did not start listening within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `GET path` of its admin endpoint, as JSON; `None` if it does not
    /// answer.
    pub(crate) fn admin_json(&self, path: &str) -> Option<serde_json::Value> {
        admin_json_at(self.admin, path)
    }

    /// Its role in its failover group (`primary`, `mirror`, …).
    pub(crate) fn role(&self) -> Option<String> {
        let h = self.admin_json("/health")?;
        h["cluster"]["group"]["role"]["role"]
            .as_str()
            .map(str::to_string)
    }
}

/// The failover group the benches start.
const GROUP: &str = "bench";
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The server process; stopped with SIGTERM when dropped.
pub(crate) struct ServerProcess {
    child: Child,
}

impl ServerProcess {
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

    /// SIGKILL, and reaped.
    pub(crate) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// A failover group of `hvs serve` processes (instances `s0`, `s1`, …) on
/// a NATS cluster, each restartable on its own addresses and data.
pub(crate) struct ServeGroup {
    pub(crate) commands: Vec<ServeCommand>,
    pub(crate) running: Vec<Option<ServerProcess>>,
    /// Where the members' data and logs are.
    pub(crate) dir: PathBuf,
}

impl ServeGroup {
    pub(crate) fn start(
        dir: &Path,
        count: usize,
        urls: &[String],
        durability: BenchDurability,
        lease_ttl_ms: Option<u64>,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        std::fs::create_dir_all(dir)?;
        let commands = (0..count)
            .map(|k| ServeCommand::member(dir, &format!("s{k}"), urls, durability, lease_ttl_ms))
            .collect::<Result<Vec<_>, _>>()?;
        let running = commands
            .iter()
            .map(|c| c.spawn().map(Some))
            .collect::<Result<_, _>>()?;
        Ok(ServeGroup {
            commands,
            running,
            dir: dir.to_path_buf(),
        })
    }

    /// Every member's client address, as `ClientConfig` takes them.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.commands.iter().map(|c| c.listen).collect()
    }

    /// Each running member's role (`None` for one stopped or silent).
    pub(crate) fn roles(&self) -> Vec<Option<String>> {
        self.commands
            .iter()
            .zip(&self.running)
            .map(|(c, r)| r.as_ref().and_then(|_| c.role()))
            .collect()
    }

    /// The member that says it is the primary, once exactly one does and
    /// every other running one is a mirror (so none is still joining).
    pub(crate) async fn settled_primary(&self, patience: Duration) -> Result<usize, String> {
        self.poll_roles(patience, "one primary and the rest mirrors", |roles| {
            let primaries: Vec<usize> = (0..roles.len())
                .filter(|&k| roles[k].as_deref() == Some("primary"))
                .collect();
            let settled = roles
                .iter()
                .all(|r| matches!(r.as_deref(), None | Some("primary" | "mirror")));
            (primaries.len() == 1 && settled).then(|| primaries[0])
        })
        .await
    }

    /// Polls the roles every 20 ms until `found` finds what it wants.
    pub(crate) async fn poll_roles<T>(
        &self,
        patience: Duration,
        what: &str,
        mut found: impl FnMut(&[Option<String>]) -> Option<T>,
    ) -> Result<T, String> {
        let start = Instant::now();
        loop {
            // Blocking reads of /health: other tasks move off this thread.
            let roles = tokio::task::block_in_place(|| self.roles());
            if let Some(t) = found(&roles) {
                return Ok(t);
            }
            if start.elapsed() > patience {
                return Err(format!(
                    "no {what} within {patience:?} (roles {roles:?}; logs in {})",
                    self.dir.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Each running member's vector count, from `/health`.
    pub(crate) fn vectors(&self) -> Vec<Option<u64>> {
        self.commands
            .iter()
            .zip(&self.running)
            .map(|(c, r)| {
                r.as_ref()
                    .and_then(|_| c.admin_json("/health"))
                    .and_then(|h| h["vectors"].as_u64())
            })
            .collect()
    }

    pub(crate) fn pid(&self, k: usize) -> Option<u32> {
        self.running[k].as_ref().map(ServerProcess::pid)
    }

    pub(crate) fn kill9(&mut self, k: usize) {
        if let Some(p) = self.running[k].take() {
            p.kill9();
        }
    }

    /// Starts member `k` again on its addresses and data.
    pub(crate) fn respawn(&mut self, k: usize) -> Result<(), Box<dyn std::error::Error>> {
        self.kill9(k);
        self.running[k] = Some(self.commands[k].spawn()?);
        Ok(())
    }

    /// SIGTERM to every member; whether each exited cleanly.
    pub(crate) fn stop(&mut self) -> std::io::Result<Vec<bool>> {
        self.running
            .iter_mut()
            .filter_map(Option::take)
            .map(|p| p.stop().map(|s| s.success()))
            .collect()
    }
}

/// CPU seconds a set of processes used since it started counting.
pub(crate) struct CpuOf {
    counted: Vec<(u32, f64)>,
}

impl CpuOf {
    pub(crate) fn start(pids: &[u32]) -> CpuOf {
        let counted = pids
            .iter()
            .filter_map(|&p| procstat::cpu_seconds(p).map(|c| (p, c)))
            .collect();
        CpuOf { counted }
    }

    /// Their CPU seconds since [`start`](Self::start) (`None` off Linux).
    pub(crate) fn seconds(&self) -> Option<f64> {
        self.counted.iter().try_fold(0.0, |sum, &(p, before)| {
            procstat::cpu_seconds(p).map(|now| sum + now - before)
        })
    }
}

/// The same for the failover group whose members are at `addrs`: each
/// client follows its primary.
pub(crate) async fn connect_following(
    addrs: &[SocketAddr],
    ids: &[String],
) -> Result<Vec<Client>, hvs::runtime::ClientError> {
    let mut clients = Vec::new();
    for id in ids {
        let c = Client::connect(following(addrs, contract(id).to_string())).await?;
        c.subscribe().await?;
        clients.push(c);
    }
    Ok(clients)
}

/// A client configuration for `addrs[0]`, following the primary of the
/// group the others make up with it (when there are others).
pub(crate) fn following(addrs: &[SocketAddr], contract: String) -> ClientConfig {
    let config = ClientConfig::new(addrs[0].to_string(), contract);
    if addrs.len() > 1 {
        config.with_servers(addrs[1..].iter().map(SocketAddr::to_string))
    } else {
        config
    }
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

/// Sends `count` messages to `to` with `window` messages in flight: in
/// `send_batch` requests of `batch` messages, `window / batch` of them in
/// flight, or, with `batch` 1, as one pipelined `send` per message.
#[allow(clippy::too_many_arguments)]
async fn send(
    client: Client,
    to: String,
    count: u64,
    window: usize,
    batch: usize,
    payload: usize,
    points: Arc<Vec<Vec<f64>>>,
    base: Instant,
) -> Result<(), String> {
    let batch = batch.clamp(1, window.max(1)) as u64;
    let in_flight = (window as u64 / batch).max(1) as usize;
    let message = move |k: u64| {
        let mut p = vec![0u8; payload.max(8)];
        p[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_le_bytes());
        WireOutgoing {
            to: to.clone(),
            payload: p,
            vector: Some(points[k as usize % points.len()].clone()),
            ..WireOutgoing::default()
        }
    };
    let mut results = futures_util::stream::iter(0..count.div_ceil(batch))
        .map(|r| {
            let mut ms: Vec<WireOutgoing> = (r * batch..count.min((r + 1) * batch))
                .map(&message)
                .collect();
            let c = client.clone();
            async move {
                match ms.len() {
                    1 => c.send_message(ms.remove(0)).await.map(drop),
                    _ => c.send_batch(ms).await.map(drop),
                }
            }
        })
        .buffer_unordered(in_flight);
    while let Some(r) = results.next().await {
        r.map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub(crate) fn run(args: MessagingArgs) -> Result<(), Box<dyn std::error::Error>> {
    let rt = crate::bench::runtime()?;
    // At quorum both sides run on one 3-node NATS cluster, kept between
    // them (each side's own streams on it).
    let cluster = if args.durability == BenchDurability::Quorum {
        let bin = checked_binary(args.nats_server.as_deref())?;
        let cluster = NatsCluster::start(&bin, 3)?;
        rt.block_on(cluster.wait_ready(Duration::from_secs(60)))?;
        Some(cluster)
    } else {
        None
    };
    let report = rt.block_on(run_async(&args, cluster.as_ref()))?;
    #[cfg(feature = "nats")]
    if args.nats {
        rt.block_on(crate::bench_nats::run(&args, &report, cluster.as_ref()))?;
    }
    #[cfg(not(feature = "nats"))]
    let _ = report;
    if let Some(c) = cluster {
        c.stop()?;
    }
    Ok(())
}

/// The servers of a run: one, or a failover group.
enum Servers {
    One(ServerProcess),
    Group(ServeGroup),
}

impl Servers {
    /// Whether every server shut down cleanly on SIGTERM.
    fn stop(self) -> std::io::Result<bool> {
        match self {
            Servers::One(s) => Ok(s.stop()?.success()),
            Servers::Group(mut g) => Ok(g.stop()?.into_iter().all(|clean| clean)),
        }
    }
}

/// Starts the server (or the group on `cluster`): the servers, their
/// addresses (the primary's first) and the primary's process id.
async fn start_servers(
    args: &MessagingArgs,
    data: &Path,
    cluster: Option<&NatsCluster>,
) -> Result<(Servers, Vec<SocketAddr>, u32), Box<dyn std::error::Error>> {
    let Some(cluster) = cluster else {
        let mut command = ServeCommand::new(data, args.durability)?;
        command.extend_args(args.serve_args.iter().cloned());
        let (server, addr) = (command.spawn()?, command.listen);
        let pid = server.pid();
        return Ok((Servers::One(server), vec![addr], pid));
    };
    let group = ServeGroup::start(
        data,
        args.instances.max(1),
        &cluster.urls(),
        args.durability,
        None,
    )?;
    let primary = group.settled_primary(Duration::from_secs(60)).await?;
    let mut addrs = group.addrs();
    addrs.rotate_left(primary);
    let pid = group.pid(primary).ok_or("the primary is not running")?;
    Ok((Servers::Group(group), addrs, pid))
}

/// The primary's change feed, read from its `/health` every 100 ms while
/// the load runs: how far the publisher trails the store.
struct FeedSampler {
    running: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(f64, u64, u64)>>,
}

impl FeedSampler {
    fn start(admin: SocketAddr, base: Instant) -> Self {
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let r = running.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while r.load(Ordering::Relaxed) {
                let read = tokio::task::spawn_blocking(move || admin_json_at(admin, "/health"));
                if let Ok(Some(h)) = read.await {
                    let feed = &h["cluster"]["feed"];
                    if let (Some(p), Some(l)) =
                        (feed["published"].as_u64(), feed["last_change"].as_u64())
                    {
                        samples.push((base.elapsed().as_secs_f64(), p, l));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            samples
        });
        FeedSampler { running, task }
    }

    /// Changes published over the samples, their rate, and the lag
    /// (changes stored, not yet acknowledged by the stream) seen.
    async fn finish(self, messages: u64) -> Result<serde_json::Value, tokio::task::JoinError> {
        self.running.store(false, Ordering::Relaxed);
        let samples = self.task.await?;
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return Ok(serde_json::Value::Null);
        };
        let published = last.1.saturating_sub(first.1);
        let secs = last.0 - first.0;
        let lags: Vec<u64> = samples.iter().map(|s| s.2.saturating_sub(s.1)).collect();
        Ok(json!({
            "samples": samples.len(),
            "changes_published": published,
            "changes_per_message": published as f64 / messages.max(1) as f64,
            "changes_published_per_second": published as f64 / secs.max(1e-9),
            "lag_changes_mean": lags.iter().sum::<u64>() as f64 / lags.len() as f64,
            "lag_changes_max": lags.iter().max(),
        }))
    }
}

/// `GET path` of the admin endpoint at `admin`, as JSON; `None` if it
/// does not answer.
pub(crate) fn admin_json_at(admin: SocketAddr, path: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&admin_get(admin, path)?).ok()
}

/// The body of `GET path` from an admin port.
fn admin_get(admin: SocketAddr, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&admin, ADMIN_TIMEOUT).ok()?;
    s.set_read_timeout(Some(ADMIN_TIMEOUT)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: hvs\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    Some(response.split_once("\r\n\r\n")?.1.to_string())
}

/// The vectors a server's indexes hold in their fresh buffers, waiting for
/// the graph (the sum of `hvs_index_fresh` over its namespaces, from its
/// `/metrics`).
pub(crate) fn waiting_for_graph(admin: SocketAddr) -> Option<u64> {
    let metrics = admin_get(admin, "/metrics")?;
    Some(
        metrics
            .lines()
            .filter(|l| l.starts_with("hvs_index_fresh{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

/// The mean size of a change in the primary's feed stream, in bytes.
async fn feed_bytes_per_change(
    cluster: &NatsCluster,
    instance: &str,
) -> Result<f64, Box<dyn std::error::Error>> {
    let js = async_nats::jetstream::new(async_nats::connect(cluster.urls()).await?);
    let mut stream = js.get_stream(hvs::runtime::stream_name(instance)).await?;
    let state = stream.info().await?.state.clone();
    Ok(state.bytes as f64 / state.messages.max(1) as f64)
}

async fn run_async(
    args: &MessagingArgs,
    cluster: Option<&NatsCluster>,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let models = args.models.max(2);
    let per_model = args.messages / models as u64;
    let total = per_model * models as u64;
    let tmp = tempfile::tempdir()?;
    let data = args.data.clone().unwrap_or_else(|| tmp.path().join("data"));
    let (servers, addrs, pid) = start_servers(args, &data, cluster).await?;
    let primary = match &servers {
        Servers::Group(g) => g
            .running
            .iter()
            .position(|r| r.as_ref().is_some_and(|r| r.pid() == pid)),
        Servers::One(_) => None,
    };

    let ids: Vec<String> = (0..models).map(|i| format!("bench-{i}")).collect();
    let clients = connect_following(&addrs, &ids).await?;
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
    // process's CPU: the clients'. At quorum also the mirrors' and the
    // NATS nodes' CPU, and the primary's feed.
    let watch = procstat::Watch::start(pid);
    let others = match (&servers, cluster) {
        (Servers::Group(g), Some(c)) => {
            let mirrors: Vec<u32> = (0..g.running.len())
                .filter(|&k| Some(k) != primary)
                .filter_map(|k| g.pid(k))
                .collect();
            let feed = FeedSampler::start(g.commands[primary.unwrap_or(0)].admin, base);
            Some((CpuOf::start(&mirrors), CpuOf::start(&c.pids()), feed))
        }
        _ => None,
    };
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
                args.batch(),
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
    let group = match (others, cluster) {
        (Some((mirrors, nats, feed)), Some(c)) => {
            let (mirrors, nats) = (mirrors.seconds(), nats.seconds());
            let mut feed = feed.finish(total).await?;
            let instance = format!("s{}", primary.unwrap_or(0));
            feed["bytes_per_change"] = feed_bytes_per_change(c, &instance).await?.into();
            let primary_cpu = server_figures["cpu_seconds"].as_f64();
            json!({
                "instances": args.instances.max(1),
                "nats_nodes": c.nodes.len(),
                "feed_replicas": 3,
                "mirrors_cpu_seconds": mirrors,
                "nats_cpu_seconds": nats,
                "all_servers_cpu_seconds": primary_cpu.zip(mirrors).zip(nats).map(|((p, m), n)| p + m + n),
                "feed": feed,
            })
        }
        _ => serde_json::Value::Null,
    };
    for c in &clients {
        let _ = c.close().await;
    }
    server_figures.insert("exit_clean".into(), servers.stop()?.into());
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let report = json!({
        "over": "tcp",
        "clients": models,
        "messages": total,
        "received": received,
        "durability": args.durability.name(),
        "window": args.window,
        "batch": args.batch(),
        "payload_bytes": args.payload,
        "seconds": secs,
        "sent_per_second": total as f64 / sent_secs,
        "delivered_and_acked_per_second": received as f64 / secs,
        "latency_ms": {"p50": q(&latency, 0.5), "p99": q(&latency, 0.99),
                       "p999": q(&latency, 0.999), "max": latency.max() as f64 / 1000.0},
        "clients_process": {"cpu_seconds": clients_cpu, "cpu_cores_busy": clients_cpu.map(|c| c / secs)},
        "server": server_figures,
        "group": group,
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
        "hvs over tcp: {} clients, {} messages of {} B + a point of H^{DIM}, {} durability, window {}, {} per request",
        r["clients"], r["messages"], r["payload_bytes"], r["durability"], r["window"], r["batch"]
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
    let g = &r["group"];
    if g.is_object() {
        println!(
            "  group of {} on {} NATS nodes (feed at {} replicas): mirrors {:.1} CPU s, NATS {:.1} CPU s, all servers {:.1} CPU s",
            g["instances"],
            g["nats_nodes"],
            g["feed_replicas"],
            f(&g["mirrors_cpu_seconds"]),
            f(&g["nats_cpu_seconds"]),
            f(&g["all_servers_cpu_seconds"])
        );
        let feed = &g["feed"];
        println!(
            "  primary's feed: {} changes published ({:.2} a message, {:.0} B each), {:.0} changes/s; changes stored but not yet in the stream: mean {:.0}, max {}",
            feed["changes_published"],
            f(&feed["changes_per_message"]),
            f(&feed["bytes_per_change"]),
            f(&feed["changes_published_per_second"]),
            f(&feed["lag_changes_mean"]),
            feed["lag_changes_max"]
        );
    }
}
