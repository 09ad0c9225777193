//! `hvs bench vectors`: the vector database's two hot paths, batch store and
//! k-nearest search, driven by `--clients` models. Every client stores its
//! share of the vectors into one namespace (`batch_store_vectors`, `--batch`
//! vectors a request, `--window` requests in flight), the bench waits until
//! the index has absorbed them (`stats` shows no fresh vector), then every
//! client searches the same fixed query set, one search at a time.
//!
//! `--over inproc` runs the models in this process through the runtime's
//! API; `--over tcp` runs that first and then the same work against an
//! `hvs serve` in another process over loopback TCP, and prints the ratio.
//! Both go through the model's actor (permission checks, rate tokens,
//! quota), so the difference between them is the wire: encoding, framing,
//! the socket, the server's request path. `--no-inproc` runs the server
//! alone, for what one `hvs serve` holds (its resident memory once the
//! index has absorbed everything).
//!
//! The points are the storage bench's data sets (`storage/benches/large/
//! data.rs`, compiled in here): `--data taxonomy` a tree in H^12,
//! `--data clustered` a mixture of Gaussians in R^`--dim`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use hvs::runtime::protocol::{CreateNamespace, GrantArgs, NewWireVector};
use hvs::runtime::{
    Client, ClientConfig, GeometrySpec, Grant, ModelHandle, NamespaceOptions, NewVector, Runtime,
    SearchQuery, Visibility,
};
use hvs_geometry::{GeometryError, Hyperboloid, Manifold};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::bench::{BenchDurability, DIM, Over, histogram};
use crate::bench_tcp::ServeCommand;
use crate::procstat;
use hvs::storage::Datatype;

/// The namespace every client stores into and searches: created by the
/// first client (public, so everyone reads), the others granted writing.
const NAMESPACE: &str = "bench-vectors";

/// Distinct queries in the fixed query set.
const QUERY_SET: usize = 1000;

type BoxError = Box<dyn std::error::Error>;

/// The storage bench's data sets, the same points it indexes.
#[allow(dead_code)]
#[path = "../storage/benches/large/data.rs"]
mod data;

/// Which points are stored and searched.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DataSet {
    /// Points of H^12, a taxonomy of branching 8 (children 1–1.6 from their
    /// parent); queries 0.3 from stored points.
    Taxonomy,
    /// R^`--dim`: a mixture of 1,000 Gaussians, each in its own random
    /// 8–16-dimensional subspace, plus noise (the storage bench's
    /// `c128`/`c512`); queries new draws from the mixture.
    Clustered,
}

/// A namespace's `datatype` on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BenchDatatype {
    F64,
    F32,
    F16,
    I8,
}

impl BenchDatatype {
    fn datatype(self) -> Datatype {
        match self {
            Self::F64 => Datatype::F64,
            Self::F32 => Datatype::F32,
            Self::F16 => Datatype::F16,
            Self::I8 => Datatype::I8,
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct VectorsArgs {
    /// `inproc`: in this process only. `tcp`: the same work in this process
    /// first, then against an `hvs serve` in another process over loopback
    /// TCP, and the TCP / in-process ratios.
    #[arg(long, value_enum, default_value = "inproc")]
    over: Over,
    /// Vectors stored in all.
    #[arg(long, default_value_t = 1_000_000)]
    vectors: usize,
    /// Which points: `taxonomy` (H^12) or `clustered` (R^`--dim`).
    #[arg(long, value_enum, default_value = "taxonomy")]
    data: DataSet,
    /// Dimension of `--data clustered`.
    #[arg(long, default_value_t = 512)]
    dim: usize,
    /// The namespace's `datatype` (what its graph stores); absent: its
    /// geometry's default (`f64` for H^12, `f32` for R^n).
    #[arg(long, value_enum)]
    datatype: Option<BenchDatatype>,
    /// With `--over tcp`: the server alone, without the in-process run
    /// first (and so without the ratios).
    #[arg(long)]
    no_inproc: bool,
    /// An argument for the `hvs serve` the bench starts, e.g.
    /// `--serve-arg=--cache-mb --serve-arg=256` (repeatable).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    serve_args: Vec<String>,
    /// Models (connections, over TCP) storing and searching at once.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Vectors per `batch_store_vectors` request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Batches each client has in flight.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Searches in all, split evenly over the clients; each client has one
    /// search in flight. They cycle through a fixed set of 1,000 queries.
    #[arg(long, default_value_t = 50_000)]
    queries: usize,
    /// Nearest neighbours per search.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Storage durability.
    #[arg(long, value_enum, default_value = "buffered")]
    durability: BenchDurability,
    /// After the store, wait at most this many seconds for the index to
    /// absorb every vector before searching.
    #[arg(long, default_value_t = 1800)]
    absorb_wait: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// The stored points: `f64` rows, or `f32` rows one after another (half
/// the bench's own memory for 1,000,000 × 512-d).
enum Points {
    Rows(Vec<Vec<f64>>),
    Flat(data::Flat),
}

impl Points {
    fn len(&self) -> usize {
        match self {
            Self::Rows(r) => r.len(),
            Self::Flat(f) => f.len(),
        }
    }

    fn point(&self, i: usize) -> Vec<f64> {
        match self {
            Self::Rows(r) => r[i].clone(),
            Self::Flat(f) => f.point(i),
        }
    }
}

/// What both sides store and search: the same points, the same queries.
struct Workload {
    geometry: GeometrySpec,
    points: Points,
    queries: Vec<Vec<f64>>,
}

impl Workload {
    fn generate(args: &VectorsArgs) -> Result<Self, GeometryError> {
        let n = args.vectors.max(1);
        match args.data {
            DataSet::Taxonomy => Self::taxonomy(n),
            DataSet::Clustered => {
                let dim = args.dim.max(1);
                let (base, queries) = data::clustered(7, n, QUERY_SET, dim);
                Ok(Self {
                    geometry: GeometrySpec::Euclidean { dim },
                    queries: (0..queries.len()).map(|i| queries.point(i)).collect(),
                    points: Points::Flat(base),
                })
            }
        }
    }

    /// `n` points of a tree of branching 8 in H^12 (children 1–1.6 from their
    /// parent in random directions), and queries 0.3 from stored points: the
    /// taxonomy data of the storage bench (`storage/benches/large.rs`). Its
    /// own copy of `data::taxonomy`: it stops at `n` points (that one
    /// completes the last level, 2.4 M points for 1 M) and returns the
    /// geometry's errors where that one unwraps.
    fn taxonomy(n: usize) -> Result<Self, GeometryError> {
        let h = Hyperboloid::new(DIM, 1.0)?;
        let mut rng = StdRng::seed_from_u64(7);
        let mut level = vec![h.origin()];
        let mut points = level.clone();
        while points.len() < n {
            let mut next = Vec::new();
            'level: for p in &level {
                for _ in 0..8 {
                    if points.len() + next.len() >= n {
                        break 'level;
                    }
                    let len = rng.random_range(1.0..1.6);
                    next.push(jitter(&h, &mut rng, p, len)?);
                }
            }
            points.extend(next.iter().cloned());
            level = next;
        }
        points.truncate(n);
        let queries = (0..QUERY_SET)
            .map(|i| jitter(&h, &mut rng, &points[(i * 7919) % points.len()], 0.3))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            geometry: h12(),
            points: Points::Rows(points),
            queries,
        })
    }

    /// Describes the points, e.g. "points of H^12".
    fn describe(&self) -> String {
        match &self.geometry {
            GeometrySpec::Euclidean { dim } => format!("clustered points of R^{dim}"),
            _ => format!("points of H^{DIM}"),
        }
    }

    fn batches(&self, size: usize) -> usize {
        self.points.len().div_ceil(size)
    }

    /// Batch `b`'s points with their index as metadata (`{"n": i}`).
    fn batch(
        &self,
        b: usize,
        size: usize,
    ) -> impl Iterator<Item = (Vec<f64>, hvs::storage::Metadata)> {
        let start = b * size;
        let end = (start + size).min(self.points.len());
        (start..end).map(|i| {
            let metadata = [("n".to_string(), json!(i))].into_iter().collect();
            (self.points.point(i), metadata)
        })
    }
}

/// A point `len` from `p` in a random direction.
fn jitter(
    h: &Hyperboloid,
    rng: &mut StdRng,
    p: &[f64],
    len: f64,
) -> Result<Vec<f64>, GeometryError> {
    let w: Vec<f64> = (0..=DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
    let t = h.project_tangent(p, &w)?;
    let n = h.norm(p, &t)?.max(1e-12);
    h.exp(p, &t.iter().map(|a| a * len / n).collect::<Vec<_>>())
}

fn h12() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: DIM,
        curvature: 1.0,
    }
}

/// The bench's contract, also allowed to write the shared namespace.
fn contract(id: &str) -> Value {
    let mut c = crate::bench::contract(id);
    c["permissions"]["write_namespaces"] = json!([id, NAMESPACE]);
    c
}

fn ids(clients: usize) -> Vec<String> {
    (0..clients).map(|i| format!("bench-{i}")).collect()
}

/// What a phase measured: its wall time and every request's latency.
struct Phase {
    secs: f64,
    latency_us: Histogram<u64>,
    /// Results counted by the requests (vectors stored, hits found).
    counted: u64,
}

/// Runs `clients` tasks at once; task `c` runs `op(c, j)` for each `j` of
/// `items(c)`, `window` at a time. `op` answers what it counted.
async fn drive<Op, Fut>(
    clients: usize,
    window: usize,
    items: impl Fn(usize) -> Vec<usize>,
    done: Arc<AtomicU64>,
    op: Op,
) -> Result<Phase, String>
where
    Op: Fn(usize, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (op, done, items) = (op.clone(), done.clone(), items(c));
            tokio::spawn(async move {
                let mut latency_us = histogram();
                let mut counted = 0;
                let mut answers = futures_util::stream::iter(items)
                    .map(|j| {
                        let request = op(c, j);
                        async move {
                            let t = Instant::now();
                            let n = request.await?;
                            Ok::<_, String>((n, t.elapsed()))
                        }
                    })
                    .buffer_unordered(window.max(1));
                while let Some(answer) = answers.next().await {
                    let (n, took) = answer?;
                    let _ = latency_us.record((took.as_micros() as u64).max(1));
                    counted += n;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, String>((latency_us, counted))
            })
        })
        .collect();
    let mut phase = Phase {
        secs: 0.0,
        latency_us: histogram(),
        counted: 0,
    };
    for t in tasks {
        let (latency_us, counted) = t.await.map_err(|e| e.to_string())??;
        phase
            .latency_us
            .add(&latency_us)
            .map_err(|e| e.to_string())?;
        phase.counted += counted;
    }
    phase.secs = start.elapsed().as_secs_f64();
    Ok(phase)
}

/// What differs between the sides: how a request is made, how the index is
/// watched, which process does the work. The rest of the bench is shared.
trait Side {
    /// Stores batch `b` as client `c`; how many were stored.
    fn store(
        &self,
        c: usize,
        b: usize,
    ) -> impl Future<Output = Result<u64, String>> + Send + 'static + use<Self>;
    /// Searches query `q` as client `c`; how many hits.
    fn search(
        &self,
        c: usize,
        q: usize,
    ) -> impl Future<Output = Result<u64, String>> + Send + 'static + use<Self>;
    /// Vectors not yet in the index's graph (searched exactly meanwhile).
    fn fresh(&self) -> impl Future<Output = Result<usize, String>> + Send;
    /// The process that stores and searches (watched for CPU and memory).
    fn pid(&self) -> u32;
}

/// Store, absorb, search: the figures of one side.
async fn measure<S: Side + Clone + Send + Sync + 'static>(
    args: &VectorsArgs,
    work: &Arc<Workload>,
    side: S,
    label: &str,
) -> Result<Value, String> {
    let (clients, batches) = (args.clients.max(1), work.batches(args.batch.max(1)));
    let done = Arc::new(AtomicU64::new(0));
    let watched = done.clone();
    let progress =
        crate::progress::Counter::start(format!("{label}: stored"), "batches", move || {
            (watched.load(Ordering::Relaxed), batches as u64)
        });
    let watch = procstat::Watch::start(side.pid());
    let s = side.clone();
    let store = drive(
        clients,
        args.window,
        |c| (c..batches).step_by(clients).collect(),
        done,
        move |c, b| s.store(c, b),
    )
    .await?;
    let store_process = watch.finish(store.secs).await.map_err(|e| e.to_string())?;
    progress.finish();

    let spinner = crate::progress::Spinner::start(format!("{label}: waiting for the index"));
    let absorb_start = Instant::now();
    let mut fresh = side.fresh().await?;
    while fresh > 0 && absorb_start.elapsed() < Duration::from_secs(args.absorb_wait) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        fresh = side.fresh().await?;
    }
    let absorb_secs = absorb_start.elapsed().as_secs_f64();
    // What the process holds with every vector stored and in its graph
    // (in process, the bench's own data and clients too).
    let settled_rss = procstat::rss_mib(side.pid()).map(|(now, _)| now);
    spinner.finish();

    let per_client = args.queries / clients;
    let done = Arc::new(AtomicU64::new(0));
    let watched = done.clone();
    let total = (per_client * clients) as u64;
    let progress =
        crate::progress::Counter::start(format!("{label}: searched"), "queries", move || {
            (watched.load(Ordering::Relaxed), total)
        });
    let watch = procstat::Watch::start(side.pid());
    let nq = work.queries.len();
    let s = side.clone();
    let search = drive(
        clients,
        1,
        |c| {
            (0..per_client)
                .map(|j| (c * nq / clients + j) % nq)
                .collect()
        },
        done,
        move |c, q| s.search(c, q),
    )
    .await?;
    let search_process = watch.finish(search.secs).await.map_err(|e| e.to_string())?;
    progress.finish();

    let ms = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let searches = search.latency_us.len();
    Ok(json!({
        "store": {
            "vectors": store.counted,
            "seconds": store.secs,
            "vectors_per_second": store.counted as f64 / store.secs,
            "batch_latency_ms": {"p50": ms(&store.latency_us, 0.5), "p99": ms(&store.latency_us, 0.99),
                                 "max": store.latency_us.max() as f64 / 1000.0},
            "process": store_process,
        },
        "absorb": {"seconds": absorb_secs, "fresh_left": fresh, "rss_mib": settled_rss},
        "search": {
            "queries": searches,
            "seconds": search.secs,
            "queries_per_second": searches as f64 / search.secs,
            "hits_per_query": search.counted as f64 / searches.max(1) as f64,
            "latency_ms": {"p50": ms(&search.latency_us, 0.5), "p99": ms(&search.latency_us, 0.99),
                           "p999": ms(&search.latency_us, 0.999),
                           "max": search.latency_us.max() as f64 / 1000.0},
            "process": search_process,
        },
    }))
}

/// Models in this process, through the runtime's API.
#[derive(Clone)]
struct InProcess {
    models: Arc<Vec<ModelHandle>>,
    runtime: Arc<Runtime>,
    work: Arc<Workload>,
    batch: usize,
    k: usize,
}

impl Side for InProcess {
    fn store(
        &self,
        c: usize,
        b: usize,
    ) -> impl Future<Output = Result<u64, String>> + Send + 'static + use<> {
        let vectors: Vec<NewVector> = self
            .work
            .batch(b, self.batch)
            .map(|(data, metadata)| NewVector {
                namespace: NAMESPACE.into(),
                data,
                region: None,
                metadata,
            })
            .collect();
        let model = self.models[c].clone();
        async move {
            let stored = model.batch_store_vectors(NAMESPACE, vectors).await;
            stored.map(|r| r.len() as u64).map_err(|e| e.to_string())
        }
    }

    fn search(
        &self,
        c: usize,
        q: usize,
    ) -> impl Future<Output = Result<u64, String>> + Send + 'static + use<> {
        let query = SearchQuery::new(NAMESPACE, self.work.queries[q].clone(), self.k);
        let model = self.models[c].clone();
        async move {
            let hits = model.search_records(query).await;
            hits.map(|h| h.len() as u64).map_err(|e| e.to_string())
        }
    }

    async fn fresh(&self) -> Result<usize, String> {
        let stats = self
            .runtime
            .storage()
            .get_stats()
            .map_err(|e| e.to_string())?;
        Ok(stats.namespaces.values().map(|n| n.fresh).sum())
    }

    fn pid(&self) -> u32 {
        std::process::id()
    }
}

async fn run_inproc(args: &VectorsArgs, work: &Arc<Workload>) -> Result<Value, BoxError> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("bench.redb");
    let config = args.durability.runtime_config(&path)?;
    let runtime = Runtime::open(config).await?;
    let mut models = Vec::new();
    for id in ids(args.clients.max(1)) {
        let c = hvs::contracts::Contract::from_value(contract(&id))?;
        models.push(runtime.connect_model(c).await?);
    }
    let options = NamespaceOptions {
        datatype: args.datatype.map(BenchDatatype::datatype),
        ..NamespaceOptions::default()
    };
    let geometry = work.geometry.clone();
    models[0]
        .create_namespace_with(NAMESPACE, Visibility::Public, geometry, options)
        .await?;
    for m in &models[1..] {
        let grant = Grant {
            read: true,
            write: true,
        };
        models[0].grant_access(NAMESPACE, m.id(), grant).await?;
    }
    let runtime = Arc::new(runtime);
    let side = InProcess {
        models: Arc::new(models),
        runtime: runtime.clone(),
        work: work.clone(),
        batch: args.batch.max(1),
        k: args.k,
    };
    let report = measure(args, work, side, "in process").await?;
    // The side's clones went with `measure`: the runtime is ours again.
    let runtime = Arc::try_unwrap(runtime).map_err(|_| "the runtime is still shared")?;
    runtime.close().await?;
    Ok(report)
}

/// Clients of a server in another process.
#[derive(Clone)]
struct OverTcp {
    clients: Arc<Vec<Client>>,
    server_pid: u32,
    work: Arc<Workload>,
    batch: usize,
    k: usize,
}

impl Side for OverTcp {
    fn store(
        &self,
        c: usize,
        b: usize,
    ) -> impl Future<Output = Result<u64, String>> + Send + 'static + use<> {
        let vectors: Vec<NewWireVector> = self
            .work
            .batch(b, self.batch)
            .map(|(vector, metadata)| NewWireVector {
                vector,
                region: None,
                metadata,
            })
            .collect();
        let client = self.clients[c].clone();
        async move {
            let stored = client.batch_store_vectors(NAMESPACE, vectors).await;
            stored
                .map(|ids| ids.len() as u64)
                .map_err(|e| e.to_string())
        }
    }

    fn search(
        &self,
        c: usize,
        q: usize,
    ) -> impl Future<Output = Result<u64, String>> + Send + 'static + use<> {
        let query = self.work.queries[q].clone();
        let (client, k) = (self.clients[c].clone(), self.k);
        async move {
            let hits = client.search(NAMESPACE, query, k).await;
            hits.map(|h| h.len() as u64).map_err(|e| e.to_string())
        }
    }

    async fn fresh(&self) -> Result<usize, String> {
        let stats = self.clients[0].stats().await.map_err(|e| e.to_string())?;
        Ok(stats.namespaces.values().map(|n| n.fresh).sum())
    }

    fn pid(&self) -> u32 {
        self.server_pid
    }
}

async fn run_tcp(args: &VectorsArgs, work: &Arc<Workload>) -> Result<Value, BoxError> {
    let tmp = tempfile::tempdir()?;
    let mut command = ServeCommand::new(&tmp.path().join("data"), args.durability)?;
    command.extend_args(args.serve_args.iter().cloned());
    let (server, addr) = (command.spawn()?, command.listen);
    let mut clients = Vec::new();
    for id in ids(args.clients.max(1)) {
        let config = ClientConfig::new(addr.to_string(), contract(&id).to_string());
        clients.push(Client::connect(config).await?);
    }
    let create = CreateNamespace {
        name: NAMESPACE.into(),
        visibility: "public".into(),
        geometry: work.geometry.clone(),
        retention: None,
        datatype: args.datatype.map(BenchDatatype::datatype),
        graph: None,
    };
    clients[0].create_namespace(&create).await?;
    for id in &ids(clients.len())[1..] {
        let grant = GrantArgs {
            namespace: NAMESPACE.into(),
            model: id.clone(),
            read: true,
            write: true,
        };
        clients[0].grant_access(grant).await?;
    }
    let clients = Arc::new(clients);
    let side = OverTcp {
        clients: clients.clone(),
        server_pid: server.pid(),
        work: work.clone(),
        batch: args.batch.max(1),
        k: args.k,
    };
    let mut report = measure(args, work, side, "over tcp").await?;
    for c in clients.iter() {
        let _ = c.close().await;
    }
    let status = server.stop()?;
    report["server_exit_clean"] = status.success().into();
    Ok(report)
}

pub(crate) fn run(args: VectorsArgs) -> Result<(), BoxError> {
    let rt = crate::bench::runtime()?;
    if args.no_inproc && args.over != Over::Tcp {
        return Err("--no-inproc needs --over tcp".into());
    }
    let spinner = crate::progress::Spinner::start(format!("generating {} points", args.vectors));
    let work = Arc::new(Workload::generate(&args)?);
    spinner.finish();
    let inproc = if args.no_inproc {
        Value::Null
    } else {
        rt.block_on(run_inproc(&args, &work))?
    };
    let tcp = match args.over {
        Over::Inproc => None,
        Over::Tcp => Some(rt.block_on(run_tcp(&args, &work))?),
    };
    let mut report = json!({
        "vectors": work.points.len(),
        "data": work.describe(),
        "geometry": work.geometry,
        "datatype": args.datatype.map(|d| d.datatype().name()),
        "clients": args.clients.max(1),
        "batch": args.batch.max(1),
        "window": args.window.max(1),
        "queries": args.queries / args.clients.max(1) * args.clients.max(1),
        "distinct_queries": work.queries.len(),
        "k": args.k,
        "durability": format!("{:?}", args.durability).to_lowercase(),
        "inproc": inproc,
    });
    if let Some(tcp) = tcp {
        if !args.no_inproc {
            let ratio = |phase: &str, key: &str| {
                let f = |r: &Value| r[phase][key].as_f64().unwrap_or(f64::NAN);
                f(&tcp) / f(&report["inproc"])
            };
            report["tcp_over_inproc"] = json!({
                "store": ratio("store", "vectors_per_second"),
                "search": ratio("search", "queries_per_second"),
            });
        }
        report["tcp"] = tcp;
    }
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}

fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "vectors: {} {} in one namespace ({} graph), {} clients, batches of {} ({} in flight per client), {} durability; then {} searches (k={}, {} distinct), one in flight per client",
        r["vectors"],
        r["data"].as_str().unwrap_or(""),
        r["datatype"].as_str().unwrap_or("default"),
        r["clients"],
        r["batch"],
        r["window"],
        r["durability"].as_str().unwrap_or(""),
        r["queries"],
        r["k"],
        r["distinct_queries"],
    );
    for (key, name) in [("inproc", "in process"), ("tcp", "over tcp")] {
        let s = &r[key];
        if s.is_null() {
            continue;
        }
        // Over TCP the bench process is the clients; in process it is
        // everything. Others: what the rest of the machine used meanwhile.
        let cpu = |p: &Map<String, Value>| -> String {
            let get = |k: &str| p.get(k).map_or(f64::NAN, f);
            let (bench, clients) = (get("cpu_seconds"), get("clients_cpu_seconds"));
            let ours = if key == "tcp" { bench + clients } else { bench };
            let others = get("machine_cpu_seconds") - ours;
            if key == "tcp" {
                format!("server {bench:.1} CPU s, clients {clients:.1}, others {others:.1}")
            } else {
                format!("{bench:.1} CPU s, others {others:.1}")
            }
        };
        let empty = Map::new();
        let process = |phase: &str| s[phase]["process"].as_object().unwrap_or(&empty).clone();
        let (st, se) = (&s["store"], &s["search"]);
        println!("  {name}:");
        println!(
            "    store: {} vectors in {:.2} s = {:.0} vectors/s (batch p50 {:.1} ms, p99 {:.1} ms; {})",
            st["vectors"],
            f(&st["seconds"]),
            f(&st["vectors_per_second"]),
            f(&st["batch_latency_ms"]["p50"]),
            f(&st["batch_latency_ms"]["p99"]),
            cpu(&process("store")),
        );
        println!(
            "    index absorbed the rest {:.1} s later ({} fresh left); resident then {:.0} MiB ({})",
            f(&s["absorb"]["seconds"]),
            s["absorb"]["fresh_left"],
            f(&s["absorb"]["rss_mib"]),
            if key == "tcp" {
                "the server"
            } else {
                "this process, its data included"
            },
        );
        println!(
            "    search: {:.0} queries/s (p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms; {:.1} hits each; {})",
            f(&se["queries_per_second"]),
            f(&se["latency_ms"]["p50"]),
            f(&se["latency_ms"]["p99"]),
            f(&se["latency_ms"]["p999"]),
            f(&se["hits_per_query"]),
            cpu(&process("search")),
        );
    }
    let ratio = &r["tcp_over_inproc"];
    if !ratio.is_null() {
        println!(
            "  over tcp / in process: store {:.0} %, search {:.0} %",
            100.0 * f(&ratio["store"]),
            100.0 * f(&ratio["search"])
        );
    }
}
