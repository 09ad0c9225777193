//! The `hvs` command line.
//!
//! `hvs serve` runs the server and `hvs status` asks a running one how it
//! is; `hvs token` manages the operator's tokens; `hvs inspect`, `export`
//! and `import` work on a data directory; `hvs bench` measures;
//! `hvs geometry distance|mean|transform` compute on points given as JSON
//! arrays and print JSON, so scripts can check their own embeddings against
//! HVS's math; `hvs contract validate FILE` lists every problem of a
//! model contract with its JSON path; and `hvs sync` manages a running
//! server's sync jobs.

mod bench;
mod bench_agents;
mod bench_failover;
#[cfg(feature = "nats")]
mod bench_nats;
mod bench_restart;
mod bench_soak;
mod bench_sync;
mod bench_tcp;
mod bench_vectors;
mod bridge_cli;
mod data;
mod digest;
mod nats_server;
mod procstat;
mod progress;
mod serve;
mod sync_cli;
mod token;

/// The message path allocates a few small objects per message on every
/// core; mimalloc's per-thread heaps serve that far faster than glibc's
/// malloc (see docs/BENCHMARKS.md, messaging). Built without transparent
/// huge pages (the `no_thp` feature): with them, each region mimalloc
/// gives back and takes again was zeroed 2 MiB at a time on its next
/// touch, a third of the storage writer's time (docs/BENCHMARKS.md,
/// "Huge pages"). `MIMALLOC_ALLOW_THP=1` turns them back on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hvs::contracts::{Contract, ContractError};
use hvs::geometry::{
    AnyManifold, DeSitter, Euclidean, FrechetOptions, GeometryError, Hyperboloid, Manifold,
    PoincareBall, Sphere, transform,
};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "hvs",
    version,
    about = "HVS: a runtime through which AI models talk in vectors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server: models connect over TCP with their contracts.
    // Boxed: its many options would make every other command as large.
    Serve(Box<serve::ServeArgs>),
    /// Asks a running server how it is (its admin /health page).
    Status(serve::StatusArgs),
    /// Geometry on the command line: points are JSON arrays of numbers.
    #[command(subcommand)]
    Geometry(GeometryCommand),
    /// Model contracts (`model_contract_hvs.json`).
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Operator tokens: which models and namespaces a connecting model may
    /// claim (only hashes are stored).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// A data directory: namespaces, counts, index health; or, with
    /// `--digest`, a digest of its contents to compare with another's.
    Inspect(data::InspectArgs),
    /// Write a backup of a data directory (every table, checksummed).
    Export(data::ExportArgs),
    /// Make a new data directory's database from a backup.
    Import(data::ImportArgs),
    /// Rebuild every namespace's search index from the stored vectors.
    ///
    /// Storage has no separate "rebuild" call: a namespace's graph is built
    /// afresh from the stored vectors when the database is opened without
    /// its graph dump. So the dumps (`DIR/hvs.redb.graphs/`, a cache) are set
    /// aside and the database opened, which rebuilds every graph; then
    /// `repair_index` re-adds what is missing and drops what is orphaned,
    /// `flush_index` merges the fresh buffers, re-links unreachable nodes
    /// and rebuilds the overflow graphs, consistency is verified, and the
    /// close writes new dumps. A running server holds the database: stop it
    /// first. Exit 1 if the index still disagrees with storage.
    Reindex(data::ReindexArgs),
    /// Sync jobs of a running server (operators only; `docs/SYNC.md`):
    /// create, list, status, pause, resume, delete, conflicts. Connects as
    /// the model `hvs-operator`.
    Sync(sync_cli::SyncArgs),
    /// Bridges of a running server (operators only; `docs/BRIDGES.md`):
    /// create shared|federated|cross-manifold, list, status, delete,
    /// search. Connects as the model `hvs-operator`.
    Bridge(bridge_cli::BridgeArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// N models in one process, each sending to the next: messages per
    /// second delivered and acked, latency, index absorption, search under
    /// load.
    Messaging(bench::MessagingArgs),
    /// A steady load at a fixed rate for a set time against a server
    /// process: throughput, latency and the server's memory per interval.
    Soak(bench_soak::SoakArgs),
    /// Batch store of H^12 vectors into one namespace, then k-nearest
    /// search QPS from many clients; `--over tcp` runs the same work in
    /// this process and against a server process, side by side.
    Vectors(bench_vectors::VectorsArgs),
    /// Two instances in this process on a local nats-server: how fast a
    /// sync job catches up (beside JetStream's own mirror of the feed) and
    /// how far behind it stays at a steady write rate.
    Sync(bench_sync::SyncArgs),
    /// A failover group of three servers at quorum on a 3-node NATS
    /// cluster, its primary SIGKILLed again and again under writes and
    /// sends: failover times, throughput, and nothing acknowledged lost.
    Failover(bench_failover::FailoverArgs),
    /// Many models in one process, each with its own namespace (1k, 10k,
    /// 100k by default): memory per model at rest, connect time per model,
    /// messages per second delivered on a ring.
    Agents(bench_agents::AgentsArgs),
    /// A server with many stored messages and vectors SIGKILLed and
    /// restarted, with and without a graph checkpoint: time to listen, to
    /// the first answer, and until searches run at graph speed again.
    Restart(bench_restart::RestartArgs),
}

#[derive(Subcommand)]
enum ContractCommand {
    /// Check a contract: every problem with its JSON path (exit 2 if any),
    /// then warnings (unknown fields kept, unusual permissions). An `mlp`
    /// encoder's weights file is loaded and checked too.
    Validate {
        /// The contract file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum GeometryCommand {
    /// Geodesic distance between two points.
    Distance {
        #[command(flatten)]
        space: Space,
        /// First point, e.g. '[1.5430806348152437, 1.1752011936438014, 0]'.
        x: String,
        /// Second point.
        y: String,
    },
    /// Weighted Fréchet mean of points, with its convergence report.
    Mean {
        #[command(flatten)]
        space: Space,
        /// The points: a JSON array of arrays.
        points: String,
        /// Weights: a JSON array, one per point (default: equal).
        #[arg(long)]
        weights: Option<String>,
    },
    /// Map Euclidean coordinates onto the manifold by exp at the origin.
    Exp0 {
        #[command(flatten)]
        space: Space,
        /// Intrinsic coordinates (as many as the dimension).
        v: String,
    },
    /// Move a point from one manifold to another of the same dimension.
    Transform {
        #[command(flatten)]
        space: Space,
        /// Target manifold kind.
        #[arg(long)]
        to: Kind,
        /// Target curvature parameter (default: the source's).
        #[arg(long)]
        to_curvature: Option<f64>,
        /// The point.
        x: String,
    },
}

#[derive(Args)]
struct Space {
    /// Manifold kind.
    #[arg(long, short)]
    manifold: Kind,
    /// Intrinsic dimension n.
    #[arg(long, short)]
    dim: usize,
    /// Curvature parameter c > 0 (ignored for euclidean).
    #[arg(long, short, default_value_t = 1.0)]
    curvature: f64,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Euclidean,
    Poincare,
    Hyperboloid,
    Sphere,
    DeSitter,
}

fn build(kind: Kind, dim: usize, c: f64) -> Result<AnyManifold, GeometryError> {
    Ok(match kind {
        Kind::Euclidean => Euclidean::new(dim)?.into(),
        Kind::Poincare => PoincareBall::new(dim, c)?.into(),
        Kind::Hyperboloid => Hyperboloid::new(dim, c)?.into(),
        Kind::Sphere => Sphere::new(dim, c)?.into(),
        Kind::DeSitter => DeSitter::new(dim, c)?.into(),
    })
}

/// What can go wrong: the user's JSON, or the math refusing the input.
enum Failure {
    Json(String),
    Geometry(GeometryError),
}

impl From<GeometryError> for Failure {
    fn from(e: GeometryError) -> Self {
        Self::Geometry(e)
    }
}

fn parse<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, Failure> {
    serde_json::from_str(text).map_err(|e| Failure::Json(format!("{what}: {e}")))
}

fn run(cmd: GeometryCommand) -> Result<serde_json::Value, Failure> {
    match cmd {
        GeometryCommand::Distance { space, x, y } => {
            let m = build(space.manifold, space.dim, space.curvature)?;
            let (x, y): (Vec<f64>, Vec<f64>) = (parse("x", &x)?, parse("y", &y)?);
            Ok(json!({ "distance": m.distance(&x, &y)? }))
        }
        GeometryCommand::Mean {
            space,
            points,
            weights,
        } => {
            let m = build(space.manifold, space.dim, space.curvature)?;
            let points: Vec<Vec<f64>> = parse("points", &points)?;
            let weights: Option<Vec<f64>> = weights.map(|w| parse("weights", &w)).transpose()?;
            let refs: Vec<&[f64]> = points.iter().map(Vec::as_slice).collect();
            let r = m.frechet_mean(&refs, weights.as_deref(), &FrechetOptions::default())?;
            Ok(json!({
                "mean": r.mean,
                "iterations": r.iterations,
                "converged": r.converged,
                "gradient_norm": r.gradient_norm,
                "variance": r.variance,
            }))
        }
        GeometryCommand::Exp0 { space, v } => {
            let m = build(space.manifold, space.dim, space.curvature)?;
            let v: Vec<f64> = parse("v", &v)?;
            Ok(json!({ "point": m.exp0(&v)? }))
        }
        GeometryCommand::Transform {
            space,
            to,
            to_curvature,
            x,
        } => {
            let from = build(space.manifold, space.dim, space.curvature)?;
            let to = build(to, space.dim, to_curvature.unwrap_or(space.curvature))?;
            let x: Vec<f64> = parse("x", &x)?;
            Ok(json!({ "point": transform(&x, &from, &to)? }))
        }
    }
}

/// Validates a contract file, printing what a user needs to fix it.
fn validate_contract(file: &std::path::Path) -> ExitCode {
    let checked = Contract::load(file).and_then(|c| {
        let dir = file.parent().unwrap_or(std::path::Path::new("."));
        c.encoder(dir).map(|_| c)
    });
    match checked {
        Ok(c) => {
            println!(
                "ok: {} ({}, {} {}-d, namespace {:?})",
                file.display(),
                c.model.id,
                c.hvs_binding.geometry.as_str(),
                c.hvs_binding.dimension,
                c.hvs_binding.namespace,
            );
            for w in c.warnings() {
                println!("warning: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(ContractError::Invalid(problems)) => {
            for p in &problems {
                eprintln!("error[invalid_contract]: {p}");
            }
            eprintln!("{}: {} problem(s)", file.display(), problems.len());
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error[{}]: {}: {e}", e.code(), file.display());
            ExitCode::from(2)
        }
    }
}

fn bench(cmd: BenchCommand) -> ExitCode {
    let done = match cmd {
        BenchCommand::Messaging(args) => bench::run(args),
        BenchCommand::Soak(args) => bench_soak::run(args),
        BenchCommand::Vectors(args) => bench_vectors::run(args),
        BenchCommand::Sync(args) => bench_sync::run(args),
        BenchCommand::Failover(args) => bench_failover::run(args),
        BenchCommand::Agents(args) => bench_agents::run(args),
        BenchCommand::Restart(args) => bench_restart::run(args),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cmd = match Cli::parse().command {
        Command::Serve(args) => return serve::serve(*args),
        Command::Status(args) => return serve::status(args),
        Command::Inspect(args) => return data::inspect(args),
        Command::Export(args) => return data::export(args),
        Command::Import(args) => return data::import(args),
        Command::Reindex(args) => return data::reindex(args),
        Command::Sync(args) => return sync_cli::run(args),
        Command::Bridge(args) => return bridge_cli::run(args),
        Command::Token(cmd) => return token::run(cmd),
        Command::Geometry(cmd) => cmd,
        Command::Contract(ContractCommand::Validate { file }) => return validate_contract(&file),
        Command::Bench(cmd) => return bench(cmd),
    };
    match run(cmd) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(Failure::Json(e)) => {
            eprintln!("error[invalid_json]: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Geometry(e)) => {
            eprintln!("error[{}]: {e}", e.code());
            ExitCode::from(2)
        }
    }
}
