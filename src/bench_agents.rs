//! `hvs bench agents`: many models in one process, each with its own
//! namespace, as an in-process simulation runs them (`examples/agents.rs`).
//! For each model count it reports what a model costs at rest (resident
//! memory), how long one takes to connect, and how many messages per second
//! the models deliver to each other on a ring once connected.
//!
//! Each count runs in a process of its own (this binary again, with one
//! `--models`), so the memory a run leaves with the allocator does not
//! blur the next run's figures.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use hvs::runtime::{ModelHandle, Outgoing, Runtime, VectorInput};
use hvs::storage::SearchQuery;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::bench::{BenchDurability, histogram};
use crate::procstat;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a model waits for a message it knows was sent.
const RECEIVE_DEADLINE: Duration = Duration::from_secs(30);
/// Searches made after the rounds, each in a random model's namespace.
const SEARCHES: usize = 1000;
/// How long the connected models are left idle while the CPU they use is
/// measured.
const IDLE: Duration = Duration::from_secs(2);

#[derive(Args, Debug)]
pub(crate) struct AgentsArgs {
    /// Model counts, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    models: Vec<usize>,
    /// Rounds: in each, every model sends one message to the next on a
    /// ring, then every model receives and acks the one it got.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    /// Models driven at once (tasks, each working through its share).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Models connecting at once, as a simulation starts its agents
    /// (1: one after another, each connect waiting for the one before).
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Storage durability.
    #[arg(long, value_enum, default_value = "memory")]
    durability: BenchDurability,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: AgentsArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.models.iter().any(|&n| n < 2) {
        return Err("every --models count must be at least 2 (a ring)".into());
    }
    let runs = match args.models.as_slice() {
        [n] => {
            let rt = crate::bench::runtime()?;
            vec![rt.block_on(run_one(&args, *n)).map_err(|e| e.to_string())?]
        }
        counts => counts
            .iter()
            .map(|&n| run_child(&args, n))
            .collect::<Result<_, _>>()?,
    };
    let report = json!({"durability": args.durability.name(), "runs": runs});
    if args.json {
        println!("{report}");
    } else {
        print_report(&report);
    }
    Ok(())
}

/// One count in a child process of this binary; its run's JSON.
fn run_child(args: &AgentsArgs, models: usize) -> Result<Value, Box<dyn std::error::Error>> {
    let out = std::process::Command::new(std::env::current_exe()?)
        .args(["bench", "agents", "--json"])
        .arg(format!("--models={models}"))
        .arg(format!("--rounds={}", args.rounds))
        .arg(format!("--concurrency={}", args.concurrency))
        .arg(format!(
            "--connect-concurrency={}",
            args.connect_concurrency
        ))
        .arg(format!("--durability={}", args.durability.name()))
        .stderr(std::process::Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("the run with {models} models failed ({})", out.status).into());
    }
    let report: Value = serde_json::from_slice(&out.stdout)?;
    report["runs"]
        .get(0)
        .cloned()
        .ok_or_else(|| format!("the run with {models} models reported nothing").into())
}

/// This process's resident memory, MiB.
fn rss_mib() -> Result<f64, BoxError> {
    procstat::rss_mib(std::process::id())
        .map(|(now, _)| now)
        .ok_or_else(|| "resident memory is read from /proc (Linux only)".into())
}

fn model_id(i: usize) -> String {
    format!("agent-{i}")
}

async fn run_one(args: &AgentsArgs, models: usize) -> Result<Value, BoxError> {
    let tmp = tempfile::tempdir()?;
    let config = args
        .durability
        .runtime_config(&tmp.path().join("agents.redb"))?;
    let points = Arc::new(crate::bench::points()?);
    let contracts: Vec<hvs::contracts::Contract> = (0..models)
        .map(|i| hvs::contracts::Contract::from_value(crate::bench::contract(&model_id(i))))
        .collect::<Result<_, _>>()?;
    let rss_base = rss_mib()?;
    let rt = Runtime::open(config).await?;

    let (handles, connect_us, connect_secs) =
        connect_all(&rt, contracts, args.connect_concurrency).await?;
    let rss_after_connects = rss_mib()?;
    let idle_cores = idle_cores_busy().await?;
    // At rest: after the idle phase, by when the allocator has given back
    // what the connects freed (right after them it still holds it).
    let rss_at_rest = rss_mib()?;

    let handles = Arc::new(handles);
    let delivered = Arc::new(AtomicU64::new(0));
    let watched = delivered.clone();
    let total = models as u64 * u64::from(args.rounds);
    let progress = crate::progress::Counter::start(
        format!("{models} models: delivered and acked"),
        "msgs",
        move || (watched.load(Ordering::Relaxed), total),
    );
    let start = Instant::now();
    for round in 0..args.rounds {
        run_round(&handles, args.concurrency, round, &points, &delivered).await?;
    }
    let secs = start.elapsed().as_secs_f64();
    progress.finish();
    let rss_after = rss_mib()?;
    let search_us = search_some(&rt, models, &points).await?;
    drop(handles);
    rt.close().await?;

    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p);
    let delivered = delivered.load(Ordering::Relaxed);
    Ok(json!({
        "models": models,
        "rounds": args.rounds,
        "rss_mib_before_open": rss_base,
        "rss_mib_after_connects": rss_after_connects,
        "rss_mib_at_rest": rss_at_rest,
        "rss_bytes_per_model_at_rest": (rss_at_rest - rss_base) * 1024.0 * 1024.0 / models as f64,
        "idle_cores_busy": idle_cores,
        "connect_concurrency": args.connect_concurrency,
        "connect_us": {"mean": connect_us.mean(), "p50": q(&connect_us, 0.5),
                       "p99": q(&connect_us, 0.99), "max": connect_us.max(),
                       "total_s": connect_secs,
                       "per_model": connect_secs * 1e6 / models as f64},
        "delivered": delivered,
        "rounds_seconds": secs,
        "delivered_per_second": delivered as f64 / secs.max(1e-9),
        "rss_mib_after_rounds": rss_after,
        "search_us": {"count": search_us.len(), "mean": search_us.mean(),
                      "p99": q(&search_us, 0.99)},
    }))
}

/// Cores this process keeps busy while every model sits idle (timers,
/// background threads), over [`IDLE`].
async fn idle_cores_busy() -> Result<f64, BoxError> {
    let cpu = || {
        procstat::cpu_seconds(std::process::id())
            .ok_or_else(|| BoxError::from("CPU time is read from /proc (Linux only)"))
    };
    let before = cpu()?;
    tokio::time::sleep(IDLE).await;
    Ok((cpu()? - before) / IDLE.as_secs_f64())
}

/// Connects the models, `concurrency` at a time (each of that many tasks
/// working through its share, one connect after another); each connect's
/// time in µs, and the seconds until every model was connected.
async fn connect_all(
    rt: &Runtime,
    contracts: Vec<hvs::contracts::Contract>,
    concurrency: usize,
) -> Result<(Vec<ModelHandle>, Histogram<u64>, f64), BoxError> {
    let models = contracts.len();
    let connected = Arc::new(AtomicU64::new(0));
    let watched = connected.clone();
    let progress = crate::progress::Counter::start(
        format!("{models} models: connected"),
        "models",
        move || (watched.load(Ordering::Relaxed), models as u64),
    );
    let workers = concurrency.clamp(1, models);
    let mut shares: Vec<Vec<(usize, hvs::contracts::Contract)>> = vec![Vec::new(); workers];
    for (i, c) in contracts.into_iter().enumerate() {
        shares[i % workers].push((i, c));
    }
    // One histogram for all the tasks: one each held 64 × 330 KB, which
    // the allocator kept after they were freed and the memory at rest
    // counted.
    let us = std::sync::Mutex::new(histogram());
    let start = Instant::now();
    let tasks = shares.into_iter().map(|share| {
        let (connected, us) = (&connected, &us);
        async move {
            let mut out = Vec::with_capacity(share.len());
            for (i, contract) in share {
                let t = Instant::now();
                out.push((i, rt.connect_model(contract).await?));
                let took = (t.elapsed().as_micros() as u64).max(1);
                us.lock().unwrap_or_else(|e| e.into_inner()).record(took)?;
                connected.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, BoxError>(out)
        }
    });
    let done = futures_util::future::join_all(tasks).await;
    let secs = start.elapsed().as_secs_f64();
    progress.finish();
    let mut slots: Vec<Option<ModelHandle>> = (0..models).map(|_| None).collect();
    for out in done {
        for (i, handle) in out? {
            slots[i] = Some(handle);
        }
    }
    let handles = slots
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or("a model's connect did not answer")?;
    Ok((
        handles,
        us.into_inner().unwrap_or_else(|e| e.into_inner()),
        secs,
    ))
}

/// One round: every model sends to the next on the ring; once every send
/// is answered, every model receives its one message and acks it.
async fn run_round(
    handles: &Arc<Vec<ModelHandle>>,
    concurrency: usize,
    round: u32,
    points: &Arc<Vec<Vec<f64>>>,
    delivered: &Arc<AtomicU64>,
) -> Result<(), BoxError> {
    let workers = concurrency.clamp(1, handles.len());
    let mut sends = JoinSet::new();
    for w in 0..workers {
        let (handles, points) = (handles.clone(), points.clone());
        sends.spawn(async move {
            let n = handles.len();
            for i in (w..n).step_by(workers) {
                let k = (i + round as usize) % points.len();
                let message = Outgoing {
                    payload: format!("round {round}").into_bytes(),
                    vector: VectorInput::Point(points[k].clone()),
                    ..Outgoing::default()
                };
                handles[i]
                    .send_message(&model_id((i + 1) % n), message)
                    .await?;
            }
            Ok::<_, BoxError>(())
        });
    }
    join_all(sends).await?;
    let mut receives = JoinSet::new();
    for w in 0..workers {
        let (handles, delivered) = (handles.clone(), delivered.clone());
        receives.spawn(async move {
            for i in (w..handles.len()).step_by(workers) {
                receive_one(&handles[i]).await?;
                delivered.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, BoxError>(())
        });
    }
    join_all(receives).await
}

async fn join_all(mut set: JoinSet<Result<(), BoxError>>) -> Result<(), BoxError> {
    while let Some(r) = set.join_next().await {
        if let Err(e) = r? {
            set.abort_all();
            return Err(e);
        }
    }
    Ok(())
}

/// Receives the one message a model was sent this round, and acks it. The
/// send was answered after the hand-over, so it is normally there at the
/// first call; polling with a deadline covers the rest.
async fn receive_one(handle: &ModelHandle) -> Result<(), BoxError> {
    let start = Instant::now();
    loop {
        let got = handle.receive_messages(1).await?;
        if let Some(d) = got.first() {
            let acked = handle.ack(&[d.message.id]).await?.acked.len();
            if acked != 1 {
                return Err(format!("{}: an ack of 1 message acked {acked}", handle.id()).into());
            }
            return Ok(());
        }
        if start.elapsed() > RECEIVE_DEADLINE {
            return Err(format!(
                "{} waited {RECEIVE_DEADLINE:?} for its message",
                handle.id()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// k=10 searches in random models' namespaces (each holds the vectors of
/// the messages its model sent); each one's time in µs.
async fn search_some(
    rt: &Runtime,
    models: usize,
    points: &[Vec<f64>],
) -> Result<Histogram<u64>, BoxError> {
    let store = rt.storage().clone();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let queries: Vec<SearchQuery> = (0..SEARCHES)
        .map(|_| {
            let ns = model_id(rng.random_range(0..models));
            SearchQuery::new(ns, points[rng.random_range(0..points.len())].clone(), 10)
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut us = histogram();
        for q in &queries {
            let t = Instant::now();
            store.semantic_search(q)?;
            us.record((t.elapsed().as_micros() as u64).max(1))?;
        }
        Ok(us)
    })
    .await?
}

fn print_report(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "agents: models in one process, each with its own namespace, {} durability; \
         rounds of one message per model around a ring (a point of H^12 each)",
        r["durability"].as_str().unwrap_or("")
    );
    println!(
        "{:>8} {:>6} {:>9} {:>9} {:>10} {:>13} {:>11} {:>9} {:>10} {:>10} {:>10}",
        "models",
        "rounds",
        "RSS MiB",
        "KB/model",
        "idle CPU",
        "µs per model",
        "connect µs",
        "p99 µs",
        "msgs/s",
        "RSS after",
        "search µs"
    );
    for run in r["runs"].as_array().into_iter().flatten() {
        println!(
            "{:>8} {:>6} {:>9.0} {:>9.1} {:>10.2} {:>13.1} {:>11.0} {:>9.0} {:>10.0} {:>10.0} {:>10.0}",
            f(&run["models"]),
            f(&run["rounds"]),
            f(&run["rss_mib_at_rest"]),
            f(&run["rss_bytes_per_model_at_rest"]) / 1024.0,
            f(&run["idle_cores_busy"]),
            f(&run["connect_us"]["per_model"]),
            f(&run["connect_us"]["mean"]),
            f(&run["connect_us"]["p99"]),
            f(&run["delivered_per_second"]),
            f(&run["rss_mib_after_rounds"]),
            f(&run["search_us"]["mean"]),
        );
    }
    println!(
        "  RSS MiB: the process's resident memory with every model connected, after {}s \
         idle; KB/model: its growth since before the runtime opened, per model; idle CPU: \
         cores busy in those seconds; µs per model: the time until every model was connected, over \
         the models ({} connecting at once); connect µs: mean of one connect, from its \
         call to its answer (p99 beside it); msgs/s: delivered and acked during the rounds; \
         RSS after: at the end of the rounds; search µs: mean of {SEARCHES} k=10 searches in \
         random models' namespaces",
        IDLE.as_secs(),
        r["runs"][0]["connect_concurrency"]
    );
}
