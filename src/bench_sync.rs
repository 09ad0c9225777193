//! `hvs bench sync`: two instances in this process, `src` and `dst`, each a
//! runtime on its own database file (`buffered` durability), both on one
//! `nats-server` the bench starts (JetStream, file storage), as in
//! `docs/SYNC.md`: `src` publishes its change feed to `HVS_FEED_src`, and a
//! full sync job on `dst` applies it.
//!
//! 1. Catch-up. `src` stores `--vectors` points of H^12 (batches of 1,000
//!    into one namespace) and the bench waits until the feed is published
//!    (`feed_status().lag == 0`) and `src`'s index has absorbed the vectors
//!    (so its background work does not share the machine with what is
//!    timed). Then, one after the other (`--job-first` swaps them):
//!    JetStream's own mirror of the feed stream, timed from its creation
//!    until it holds as many messages as the feed stream (the anchor: what
//!    nats-server alone does with the same messages on this machine), then
//!    deleted; and a full, following sync job on `dst`, timed from its
//!    creation until `dst` holds every vector.
//! 2. Lag. With the job running (and `dst`'s index done absorbing), `src`
//!    stores `--rate` vectors a second, 100 every `100 / rate` seconds, for
//!    `--seconds`, each stamped in its metadata with the time it was handed
//!    to the store (`sent_ns`, ns since the epoch). A thread reads `dst`'s
//!    change feed every millisecond; per vector inserted there, now − sent
//!    goes to a histogram: the lag from a write on one instance to its
//!    commit on the other, publishing, JetStream and applying included. A
//!    core NATS subscriber on the feed's subjects times the first half,
//!    send → published.
//! 3. Where the time goes: the stores' commit counts and time inside
//!    commits over each phase, CPU by thread name (writers, indexers,
//!    actors, tokio), and, once both indexes are idle again, a pull
//!    consumer that does what the job does without applying (fetch 512,
//!    decode, acknowledge the last) over the whole feed stream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer::PullConsumer};
use clap::Args;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use hvs::runtime::{
    ClusterConfig, ConflictStrategy, Durability, GeometrySpec, NewVector, Runtime, RuntimeConfig,
    StoreConfig, SyncMode, SyncSpec, stream_name,
};
use hvs::storage::{Change, ChangeBody, ChangeKind, SpaceConfig, StorageError, Store};
use hvs_geometry::{Hyperboloid, Manifold};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::bench::{DIM, histogram};
use crate::nats_server::{NatsServer, nats_server_binary};
use crate::procstat;

type BoxError = Box<dyn std::error::Error>;

const SOURCE: &str = "src";
const TARGET: &str = "dst";
const JOB: &str = "bench";
const NAMESPACE: &str = "bench";
const MIRROR: &str = "BENCH_MIRROR";
/// Vectors per `batch_store_vectors` while filling the source.
const FILL_BATCH: usize = 1000;
/// Vectors per write at the steady rate.
const RATE_BATCH: u64 = 100;
/// What the job fetches per batch (`actors/src/cluster/sync.rs` `BATCH`),
/// for the fetch-only consumer.
const JOB_BATCH: usize = 512;
const JOB_FETCH_WAIT: Duration = Duration::from_millis(250);
/// How often the catch-up's end is looked for.
const POLL: Duration = Duration::from_millis(10);
/// How often the lag watcher reads the target's feed.
const WATCH_EVERY: Duration = Duration::from_millis(1);
/// The metadata key of a vector's send time.
const SENT: &str = "sent_ns";

/// The aims.
const AIM_CHANGES_PER_SECOND: f64 = 50_000.0;
const AIM_LAG_P99_MS: f64 = 100.0;

#[derive(Args, Debug)]
pub(crate) struct SyncArgs {
    /// Vectors the source stores before the catch-up (points of H^12).
    #[arg(long, default_value_t = 1_000_000)]
    vectors: usize,
    /// Vectors a second the source writes during the lag measurement
    /// (batches of 100).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Seconds of writing at that rate.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Run the sync job's catch-up before JetStream's mirror (default: the
    /// mirror first).
    #[arg(long)]
    job_first: bool,
    /// Wait at most this many seconds for an instance's index to absorb
    /// its vectors before the next phase.
    #[arg(long, default_value_t = 1800)]
    absorb_wait: u64,
    /// The nats-server to start (default: `nats-server` on PATH, else
    /// /usr/sbin/nats-server).
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: SyncArgs) -> Result<(), BoxError> {
    let bin = nats_server_binary(args.nats_server.as_deref());
    crate::nats_server::check(&bin)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = NatsServer::start(&bin)?;
    let mut report = rt.block_on(measure(&args, &server))?;
    let (clean, _) = server.stop()?;
    report["nats_server_exit_clean"] = clean.into();
    report["nats_server_version"] = nats_version(&bin).into();
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}

fn nats_version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Progress on stderr, so that stdout holds only the report.
fn note(what: impl std::fmt::Display) {
    eprintln!("[bench sync] {what}");
}

async fn open_instance(dir: &Path, instance: &str, url: &str) -> Result<Runtime, BoxError> {
    let config = RuntimeConfig {
        store: StoreConfig::file(dir.join(format!("{instance}.redb")), Durability::Buffered),
        cluster: Some(ClusterConfig {
            urls: vec![url.to_string()],
            instance: instance.into(),
            replicas: 1,
            ..ClusterConfig::default()
        }),
        ..RuntimeConfig::memory()
    };
    Ok(Runtime::open(config).await?)
}

async fn measure(args: &SyncArgs, server: &NatsServer) -> Result<Value, BoxError> {
    let dir = tempfile::tempdir()?;
    let source = open_instance(dir.path(), SOURCE, &server.url).await?;
    let target = open_instance(dir.path(), TARGET, &server.url).await?;
    let js = jetstream::new(async_nats::connect(&server.url).await?);
    let n = args.vectors.max(1);

    note(format!("source: storing {n} vectors"));
    let fill = fill_source(source.storage().clone(), n).await?;
    note(format!("source: stored in {:.1} s", fill.secs));
    let published = wait_published(&source, fill.start).await?;
    note(format!(
        "source: feed published {:.1} s after the first store",
        published["seconds_from_first_store"]
    ));
    let source_absorb = wait_absorbed(source.storage(), args.absorb_wait).await?;
    note(format!(
        "source: index absorbed {:.1} s later",
        source_absorb["seconds"]
    ));
    let feed_messages = stream_messages(&js, &stream_name(SOURCE)).await?;

    let (job, mirror) = if args.job_first {
        let job = catch_up(&target, n, server).await?;
        (job, mirror(&js, feed_messages, server).await?)
    } else {
        let mirror = mirror(&js, feed_messages, server).await?;
        (catch_up(&target, n, server).await?, mirror)
    };
    let target_absorb = wait_absorbed(target.storage(), args.absorb_wait).await?;
    note(format!(
        "target: index absorbed {:.1} s after the catch-up",
        target_absorb["seconds"]
    ));
    let target_published = wait_published(&target, Instant::now()).await?;

    note(format!(
        "lag: {} vectors/s for {} s",
        args.rate, args.seconds
    ));
    let lag = steady_lag(&source, &target, args, server).await?;

    let absorb_after_lag = json!({
        "source": wait_absorbed(source.storage(), args.absorb_wait).await?,
        "target": wait_absorbed(target.storage(), args.absorb_wait).await?,
    });
    note("fetch only: the job's fetch, decode and acknowledge, without applying");
    let fetch_only = fetch_only(&js, server).await?;

    target.sync_delete(JOB).await?;
    note("closing the instances");
    target.close().await?;
    source.close().await?;

    let catch_up_rate = job["changes_per_second"].as_f64().unwrap_or(0.0);
    let lag_p99 = lag["lag_ms"]["p99"].as_f64().unwrap_or(f64::INFINITY);
    Ok(json!({
        "vectors": n,
        "dimension": DIM,
        "durability": "buffered",
        "first": if args.job_first { "job" } else { "mirror" },
        "fill": {
            "vectors": n,
            "batch": FILL_BATCH,
            "seconds": fill.secs,
            "vectors_per_second": n as f64 / fill.secs,
        },
        "publish": published,
        "source_absorb": source_absorb,
        "feed_stream_messages": feed_messages,
        "mirror": mirror,
        "job": job,
        "target_absorb": target_absorb,
        "target_feed_published": target_published,
        "lag": lag,
        "absorb_after_lag": absorb_after_lag,
        "fetch_only": fetch_only,
        "aims": {
            "catch_up_changes_per_second": AIM_CHANGES_PER_SECOND,
            "catch_up_met": catch_up_rate >= AIM_CHANGES_PER_SECOND,
            "lag_p99_ms": AIM_LAG_P99_MS,
            "lag_met": lag_p99 < AIM_LAG_P99_MS,
        },
    }))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Random points of H^12 (exp at the origin of a tangent vector in
/// [-1, 1]^12), each one distinct.
struct Points {
    h: Hyperboloid,
    rng: StdRng,
}

impl Points {
    fn new(seed: u64) -> Result<Self, BoxError> {
        Ok(Self {
            h: Hyperboloid::new(DIM, 1.0)?,
            rng: StdRng::seed_from_u64(seed),
        })
    }

    fn batch(
        &mut self,
        size: usize,
        metadata: impl Fn(usize) -> hvs::storage::Metadata,
    ) -> Result<Vec<NewVector>, BoxError> {
        (0..size)
            .map(|i| {
                let v: Vec<f64> = (0..DIM).map(|_| self.rng.random_range(-1.0..1.0)).collect();
                Ok(NewVector {
                    namespace: NAMESPACE.into(),
                    data: self.h.exp0(&v)?,
                    region: None,
                    metadata: metadata(i),
                })
            })
            .collect()
    }
}

struct Fill {
    start: Instant,
    secs: f64,
}

/// The namespace and `n` vectors (metadata `{"n": i}`) on the source.
async fn fill_source(store: Arc<Store>, n: usize) -> Result<Fill, BoxError> {
    let filled = tokio::task::spawn_blocking(move || -> Result<Fill, String> {
        let h12 = GeometrySpec::Hyperboloid {
            dim: DIM,
            curvature: 1.0,
        };
        store
            .create_namespace(SpaceConfig::new(NAMESPACE, h12))
            .map_err(|e| e.to_string())?;
        let mut points = Points::new(7).map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut stored = 0;
        while stored < n {
            let size = FILL_BATCH.min(n - stored);
            let first = stored;
            let batch = points
                .batch(size, |i| {
                    [("n".to_string(), json!(first + i))].into_iter().collect()
                })
                .map_err(|e| e.to_string())?;
            store
                .batch_store_vectors(batch)
                .map_err(|e| e.to_string())?;
            stored += size;
        }
        Ok(Fill {
            start,
            secs: start.elapsed().as_secs_f64(),
        })
    });
    Ok(filled.await??)
}

/// Waits until every change of `rt` is acknowledged by JetStream; how long
/// since `since`, and the store's commits meanwhile.
async fn wait_published(rt: &Runtime, since: Instant) -> Result<Value, BoxError> {
    let waited = Instant::now();
    loop {
        let f = rt.feed_status()?;
        if f.lag == 0 && f.published == f.last_change {
            return Ok(json!({
                "changes": f.published,
                "seconds_from_first_store": since.elapsed().as_secs_f64(),
                "waited_seconds": waited.elapsed().as_secs_f64(),
            }));
        }
        if let Some(e) = f.last_error
            && waited.elapsed() > Duration::from_secs(60)
        {
            return Err(format!("the feed of {:?} is not published: {e}", f.instance).into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (at most `cap` seconds) until no vector of `store` is fresh.
async fn wait_absorbed(store: &Arc<Store>, cap: u64) -> Result<Value, BoxError> {
    let start = Instant::now();
    let fresh = || -> Result<usize, StorageError> {
        Ok(store
            .get_stats()?
            .namespaces
            .values()
            .map(|n| n.fresh)
            .sum())
    };
    let mut left = fresh()?;
    while left > 0 && start.elapsed() < Duration::from_secs(cap) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = fresh()?;
    }
    Ok(json!({"seconds": start.elapsed().as_secs_f64(), "fresh_left": left}))
}

async fn stream_messages(js: &jetstream::Context, name: &str) -> Result<u64, BoxError> {
    Ok(js.get_stream(name).await?.info().await?.state.messages)
}

/// The commit counters of a store, to subtract.
struct Commits {
    commits: u64,
    requests: u64,
    micros: u64,
}

impl Commits {
    fn read(store: &Store) -> Result<Self, StorageError> {
        let s = store.get_stats()?;
        Ok(Self {
            commits: s.commits,
            requests: s.commit_requests,
            micros: s.commit_micros,
        })
    }

    /// What the store committed since `self`.
    fn since(&self, store: &Store) -> Result<Value, StorageError> {
        let now = Self::read(store)?;
        Ok(json!({
            "commits": now.commits - self.commits,
            "requests": now.requests - self.requests,
            "seconds_in_commits": (now.micros - self.micros) as f64 / 1e6,
        }))
    }
}

/// Seconds this process's threads have run and waited to run (ready, on
/// the run queue: the machine's cores were busy) so far, summed by thread
/// name, from `/proc/self/task/*/schedstat`. `hvs-writer` and
/// `hvs-indexer` are the two stores' writers and indexers;
/// `tokio-rt-worker` the tokio workers and blocking pool; the actors run on
/// `actix-rt|system` threads.
struct ThreadsCpu(BTreeMap<String, (f64, f64)>);

impl ThreadsCpu {
    fn read() -> Self {
        let mut by_name = BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return Self(by_name);
        };
        for t in tasks.flatten() {
            let read = |f: &str| std::fs::read_to_string(t.path().join(f));
            let (Ok(name), Ok(stat)) = (read("comm"), read("schedstat")) else {
                continue;
            };
            if let Some((cpu, wait)) = run_and_wait(&stat) {
                let e = by_name.entry(name.trim().to_string()).or_insert((0.0, 0.0));
                e.0 += cpu;
                e.1 += wait;
            }
        }
        Self(by_name)
    }

    /// CPU seconds and run-queue seconds by thread name since `self`
    /// (threads that ended in between are not counted).
    fn since(&self) -> (Value, Value) {
        let (mut cpu, mut wait) = (Map::new(), Map::new());
        for (name, (c, w)) in Self::read().0 {
            let (c0, w0) = self.0.get(&name).copied().unwrap_or((0.0, 0.0));
            if c - c0 > 0.0 {
                cpu.insert(name.clone(), json!(c - c0));
                wait.insert(name, json!(w - w0));
            }
        }
        (Value::Object(cpu), Value::Object(wait))
    }
}

/// Seconds on a CPU and waiting on the run queue, from a `schedstat` line
/// (nanoseconds).
fn run_and_wait(schedstat: &str) -> Option<(f64, f64)> {
    let mut f = schedstat.split_whitespace();
    let cpu: u64 = f.next()?.parse().ok()?;
    let wait: u64 = f.next()?.parse().ok()?;
    Some((cpu as f64 / 1e9, wait as f64 / 1e9))
}

/// JetStream's mirror of the source's feed stream, from its creation until
/// it holds `messages`; deleted afterwards.
async fn mirror(
    js: &jetstream::Context,
    messages: u64,
    server: &NatsServer,
) -> Result<Value, BoxError> {
    note(format!("mirror: {messages} messages"));
    let config = jetstream::stream::Config {
        name: MIRROR.into(),
        mirror: Some(jetstream::stream::Source {
            name: stream_name(SOURCE),
            ..Default::default()
        }),
        storage: jetstream::stream::StorageType::File,
        ..Default::default()
    };
    let watch = procstat::Watch::start(server.pid());
    let start = Instant::now();
    let mut stream = js.create_stream(config).await?;
    let mut held = 0;
    while held < messages {
        tokio::time::sleep(POLL).await;
        held = stream.info().await?.state.messages;
    }
    let secs = start.elapsed().as_secs_f64();
    let process = watch.finish(secs).await?;
    js.delete_stream(MIRROR).await?;
    note(format!("mirror: {secs:.2} s"));
    Ok(json!({
        "messages": held,
        "seconds": secs,
        "messages_per_second": held as f64 / secs,
        "process": process,
    }))
}

/// The vectors of the namespace on `store` (0 before it exists).
fn held(store: &Store) -> Result<usize, StorageError> {
    match store.count(NAMESPACE, None) {
        Err(StorageError::NamespaceNotFound(_)) => Ok(0),
        r => r,
    }
}

/// A full, following sync job on the target, from its creation until the
/// target holds all `n` vectors.
async fn catch_up(target: &Runtime, n: usize, server: &NatsServer) -> Result<Value, BoxError> {
    note(format!("sync job: catching up {n} vectors"));
    let store = target.storage();
    let before = Commits::read(store)?;
    let threads = ThreadsCpu::read();
    let watch = procstat::Watch::start(server.pid());
    let start = Instant::now();
    target
        .sync_create(SyncSpec {
            name: JOB.into(),
            source: SOURCE.into(),
            mode: SyncMode::Full,
            strategy: ConflictStrategy::LastWriteWins,
            follow: true,
        })
        .await?;
    let mut last_report = Instant::now();
    while held(store)? < n {
        tokio::time::sleep(POLL).await;
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            note(format!("sync job: {} held", held(store)?));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let process = watch.finish(secs).await?;
    let (threads, threads_waiting) = threads.since();
    let commits = before.since(store)?;
    let status = target.sync_status(JOB).await?;
    let feed = target.feed_status()?;
    note(format!("sync job: {secs:.2} s"));
    Ok(json!({
        "changes": n,
        "seconds": secs,
        "changes_per_second": n as f64 / secs,
        "status": serde_json::to_value(&status)?,
        "target_store": commits,
        "target_feed_lag_at_end": feed.lag,
        "process": process,
        "threads_cpu_seconds": threads,
        "threads_runqueue_seconds": threads_waiting,
    }))
}

/// What the lag watcher saw.
struct Watched {
    lag_us: Histogram<u64>,
    seen: u64,
}

/// Reads the target's feed every millisecond from `after` until it has seen
/// `expected` stamped inserts (once the writer has set it) or `deadline`
/// after that.
fn watch_lag(
    store: Arc<Store>,
    mut after: u64,
    expected: Arc<AtomicU64>,
    deadline: Duration,
) -> Result<Watched, String> {
    let mut w = Watched {
        lag_us: histogram(),
        seen: 0,
    };
    let mut writer_done: Option<Instant> = None;
    loop {
        let changes: Vec<Change> = store
            .changes_since(after, 10_000)
            .map_err(|e| e.to_string())?;
        let now = now_ns();
        for c in &changes {
            after = c.seq;
            if c.kind != ChangeKind::Insert {
                continue;
            }
            let Some(ChangeBody::Vector(r)) = &c.body else {
                continue;
            };
            if let Some(sent) = r.metadata.get(SENT).and_then(Value::as_u64) {
                let lag = now.saturating_sub(sent) / 1000;
                w.lag_us.saturating_record(lag.max(1));
                w.seen += 1;
            }
        }
        let want = expected.load(Ordering::Acquire);
        if want != u64::MAX {
            if w.seen >= want {
                return Ok(w);
            }
            let since = *writer_done.get_or_insert_with(Instant::now);
            if since.elapsed() > deadline {
                return Ok(w);
            }
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

/// p50, p99, p999, max and mean of a µs histogram, in ms.
fn percentiles_ms(h: &Histogram<u64>) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "mean": h.mean() / 1000.0,
    })
}

/// Listens on the source's feed subjects (core NATS: every message as
/// nats-server receives it from the publisher) until `stop`; per stamped
/// vector, now − sent: the source's half of the lag (its commit and its
/// publisher).
async fn watch_published(
    client: async_nats::Client,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<Watched, String> {
    let subject = format!("hvs.feed.{SOURCE}.n.>");
    let mut sub = client.subscribe(subject).await.map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;
    let mut w = Watched {
        lag_us: histogram(),
        seen: 0,
    };
    loop {
        let m = tokio::select! {
            m = sub.next() => m,
            _ = &mut stop => break,
        };
        let Some(m) = m else { break };
        let now = now_ns();
        if let Ok(c) = rmp_serde::from_slice::<Change>(&m.payload)
            && let Some(ChangeBody::Vector(r)) = &c.body
            && let Some(sent) = r.metadata.get(SENT).and_then(Value::as_u64)
        {
            w.lag_us
                .saturating_record((now.saturating_sub(sent) / 1000).max(1));
            w.seen += 1;
        }
    }
    Ok(w)
}

/// What the writer did.
struct Written {
    sent: u64,
    secs: f64,
    /// The latest a batch was handed to the store after its due time.
    late_max: Duration,
}

/// Stores `total` vectors on `store`, `RATE_BATCH` every `interval`, each
/// stamped with its send time.
fn write_steadily(store: Arc<Store>, total: u64, interval: Duration) -> Result<Written, String> {
    let mut points = Points::new(11).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut sent = 0;
    let mut late_max = Duration::ZERO;
    let mut k = 0u32;
    while sent < total {
        let due = start + interval * k;
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else {
            late_max = late_max.max(now - due);
        }
        let size = RATE_BATCH.min(total - sent) as usize;
        let stamp = now_ns();
        let batch = points
            .batch(size, |_| {
                [(SENT.to_string(), json!(stamp))].into_iter().collect()
            })
            .map_err(|e| e.to_string())?;
        store
            .batch_store_vectors(batch)
            .map_err(|e| e.to_string())?;
        sent += size as u64;
        k += 1;
    }
    Ok(Written {
        sent,
        secs: start.elapsed().as_secs_f64(),
        late_max,
    })
}

/// The source writes at `--rate` for `--seconds` while the job runs; the
/// lag of every vector from its send to its commit on the target.
async fn steady_lag(
    source: &Runtime,
    target: &Runtime,
    args: &SyncArgs,
    server: &NatsServer,
) -> Result<Value, BoxError> {
    let rate = args.rate.max(1);
    let total = rate * args.seconds.max(1);
    let interval = Duration::from_secs_f64(RATE_BATCH as f64 / rate as f64);
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let (src, dst) = (source.storage().clone(), target.storage().clone());
    let (src_before, dst_before) = (Commits::read(&src)?, Commits::read(&dst)?);
    let listener = async_nats::ConnectOptions::new()
        .subscription_capacity(1 << 20)
        .connect(&server.url)
        .await?;
    let (stop_listening, stop) = tokio::sync::oneshot::channel();
    let published = tokio::spawn(watch_published(listener, stop));
    let threads = ThreadsCpu::read();
    let watch = procstat::Watch::start(server.pid());
    let start = Instant::now();
    let watcher = {
        let (dst, expected, after) = (dst.clone(), expected.clone(), dst.last_change());
        std::thread::Builder::new()
            .name("bench-watcher".into())
            .spawn(move || watch_lag(dst, after, expected, Duration::from_secs(60)))?
    };
    let writer = {
        let src = src.clone();
        std::thread::Builder::new()
            .name("bench-writer".into())
            .spawn(move || write_steadily(src, total, interval))?
    };
    let written = tokio::task::spawn_blocking(move || writer.join())
        .await?
        .map_err(|_| "the writer panicked")??;
    expected.store(written.sent, Ordering::Release);
    let watched = tokio::task::spawn_blocking(move || watcher.join())
        .await?
        .map_err(|_| "the watcher panicked")??;
    let secs = start.elapsed().as_secs_f64();
    let process = watch.finish(secs).await?;
    let (threads, threads_waiting) = threads.since();
    let _ = stop_listening.send(());
    let published = published.await??;
    let fresh = |s: &Store| -> Result<usize, StorageError> {
        Ok(s.get_stats()?.namespaces.values().map(|n| n.fresh).sum())
    };
    let status = target.sync_status(JOB).await?;
    let lag = percentiles_ms(&watched.lag_us);
    note(format!(
        "lag: p50 {} ms, p99 {} ms, max {} ms",
        lag["p50"], lag["p99"], lag["max"]
    ));
    Ok(json!({
        "rate_asked": rate,
        "seconds_asked": args.seconds.max(1),
        "batch": RATE_BATCH,
        "sent": written.sent,
        "write_seconds": written.secs,
        "achieved_rate": written.sent as f64 / written.secs,
        "writer_late_max_ms": written.late_max.as_secs_f64() * 1000.0,
        "received": watched.seen,
        "lag_ms": lag,
        "published_seen": published.seen,
        "published_lag_ms": percentiles_ms(&published.lag_us),
        "job_status": serde_json::to_value(&status)?,
        "source_store": src_before.since(&src)?,
        "target_store": dst_before.since(&dst)?,
        "fresh_at_end": {"source": fresh(&src)?, "target": fresh(&dst)?},
        "process": process,
        "threads_cpu_seconds": threads,
        "threads_runqueue_seconds": threads_waiting,
    }))
}

/// A pull consumer on the whole feed stream doing what the sync job does
/// per batch except applying: fetch up to 512 (no wait, expiring after
/// 250 ms), decode every change, acknowledge the last (double ack).
async fn fetch_only(js: &jetstream::Context, server: &NatsServer) -> Result<Value, BoxError> {
    let stream = js.get_stream(stream_name(SOURCE)).await?;
    let consumer: PullConsumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("bench_fetch_only".into()),
            filter_subject: format!("hvs.feed.{SOURCE}.n.>"),
            ack_policy: jetstream::consumer::AckPolicy::All,
            max_ack_pending: -1,
            ..Default::default()
        })
        .await?;
    let threads = ThreadsCpu::read();
    let watch = procstat::Watch::start(server.pid());
    let start = Instant::now();
    let (mut received, mut batches, mut bytes) = (0u64, 0u64, 0u64);
    // At the last acknowledgement: the empty fetch that ends the loop
    // waits out its expiry, which is not the consumer's work.
    let mut secs = 0.0;
    loop {
        let mut messages = consumer
            .fetch()
            .max_messages(JOB_BATCH)
            .expires(JOB_FETCH_WAIT)
            .messages()
            .await?;
        let mut batch = Vec::with_capacity(JOB_BATCH);
        while let Some(m) = messages.next().await {
            batch.push(m.map_err(|e| format!("fetching: {e}"))?);
        }
        let Some(last) = batch.last() else {
            let mut c = consumer.clone();
            if c.info().await?.num_pending == 0 {
                break;
            }
            continue;
        };
        for m in &batch {
            let _: Change = rmp_serde::from_slice(&m.payload)?;
            bytes += m.payload.len() as u64;
        }
        last.double_ack()
            .await
            .map_err(|e| format!("acknowledging: {e}"))?;
        received += batch.len() as u64;
        batches += 1;
        secs = start.elapsed().as_secs_f64();
    }
    let process = watch.finish(secs).await?;
    let (threads, threads_waiting) = threads.since();
    stream.delete_consumer("bench_fetch_only").await?;
    Ok(json!({
        "messages": received,
        "batches": batches,
        "payload_bytes_mean": bytes as f64 / received.max(1) as f64,
        "seconds": secs,
        "messages_per_second": received as f64 / secs,
        "process": process,
        "threads_cpu_seconds": threads,
        "threads_runqueue_seconds": threads_waiting,
    }))
}

fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let empty = Map::new();
    let cpu = |v: &Value| {
        let p = v["process"].as_object().unwrap_or(&empty);
        let get = |k: &str| p.get(k).map_or(f64::NAN, f);
        format!(
            "nats-server {:.1} CPU s, hvs {:.1}, machine {:.1}",
            get("cpu_seconds"),
            get("clients_cpu_seconds"),
            get("machine_cpu_seconds")
        )
    };
    let threads = |v: &Value| {
        let t = v["threads_cpu_seconds"].as_object().unwrap_or(&empty);
        let mut by_cpu: Vec<(&String, f64)> = t.iter().map(|(n, s)| (n, f(s))).collect();
        by_cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = by_cpu
            .iter()
            .take(6)
            .map(|(name, secs)| format!("{name} {secs:.1}"))
            .collect();
        let w = &v["threads_runqueue_seconds"];
        format!(
            "hvs threads, CPU s: {}; waiting for a core: writers {:.1} s, indexers {:.1} s",
            top.join(", "),
            f(&w["hvs-writer"]),
            f(&w["hvs-indexer"])
        )
    };
    let commits = |v: &Value| {
        format!(
            "{} commits ({} requests, {:.2} s inside)",
            v["commits"],
            v["requests"],
            f(&v["seconds_in_commits"])
        )
    };
    println!(
        "sync: {} points of H^{DIM}, {} durability, instances src and dst in this process, {}",
        r["vectors"],
        r["durability"].as_str().unwrap_or(""),
        r["nats_server_version"].as_str().unwrap_or("nats-server"),
    );
    let (fill, publish) = (&r["fill"], &r["publish"]);
    println!(
        "  source: stored in {:.1} s ({:.0} vectors/s, batches of {}); feed published {:.1} s after the first store; index absorbed {:.1} s after that",
        f(&fill["seconds"]),
        f(&fill["vectors_per_second"]),
        fill["batch"],
        f(&publish["seconds_from_first_store"]),
        f(&r["source_absorb"]["seconds"]),
    );
    println!("  catch-up ({} first):", r["first"].as_str().unwrap_or(""));
    let (m, j) = (&r["mirror"], &r["job"]);
    println!(
        "    JetStream mirror: {} messages in {:.2} s = {:.0} messages/s ({})",
        m["messages"],
        f(&m["seconds"]),
        f(&m["messages_per_second"]),
        cpu(m)
    );
    println!(
        "    sync job:         {} vectors in {:.2} s = {:.0} changes/s ({}; target store {})",
        j["changes"],
        f(&j["seconds"]),
        f(&j["changes_per_second"]),
        cpu(j),
        commits(&j["target_store"])
    );
    println!("      {}", threads(j));
    let fo = &r["fetch_only"];
    println!(
        "    fetch only (the job's loop without applying): {} messages in {:.2} s = {:.0} messages/s ({} batches; {})",
        fo["messages"],
        f(&fo["seconds"]),
        f(&fo["messages_per_second"]),
        fo["batches"],
        cpu(fo)
    );
    println!(
        "  target index absorbed {:.1} s after the catch-up",
        f(&r["target_absorb"]["seconds"])
    );
    let l = &r["lag"];
    println!(
        "  lag at {} vectors/s asked for {} s: {:.0} achieved ({} sent, {} seen on the target); p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms, max {:.1} ms ({})",
        l["rate_asked"],
        l["seconds_asked"],
        f(&l["achieved_rate"]),
        l["sent"],
        l["received"],
        f(&l["lag_ms"]["p50"]),
        f(&l["lag_ms"]["p99"]),
        f(&l["lag_ms"]["p999"]),
        f(&l["lag_ms"]["max"]),
        cpu(l)
    );
    println!(
        "    of which send→published (seen on the feed subjects, {} vectors): p50 {:.1} ms, p99 {:.1} ms, p999 {:.1} ms, max {:.1} ms",
        l["published_seen"],
        f(&l["published_lag_ms"]["p50"]),
        f(&l["published_lag_ms"]["p99"]),
        f(&l["published_lag_ms"]["p999"]),
        f(&l["published_lag_ms"]["max"]),
    );
    println!(
        "    source store {}; target store {}; fresh (not yet indexed) at the end: source {}, target {}",
        commits(&l["source_store"]),
        commits(&l["target_store"]),
        l["fresh_at_end"]["source"],
        l["fresh_at_end"]["target"]
    );
    println!("    {}", threads(l));
    let a = &r["aims"];
    let met = |b: &Value| {
        if b.as_bool() == Some(true) {
            "met"
        } else {
            "MISSED"
        }
    };
    println!(
        "  aims: ≥ {:.0} changes/s catching up: {}; p99 lag < {:.0} ms: {}",
        f(&a["catch_up_changes_per_second"]),
        met(&a["catch_up_met"]),
        f(&a["lag_p99_ms"]),
        met(&a["lag_met"])
    );
}
