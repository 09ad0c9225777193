//! A swarm of agents that agree on a point through HVS, all in one process.
//!
//! N agents (default 32) connect to an in-memory runtime, each with its own
//! contract and namespace on the hyperboloid H^3, and join a shared space
//! `swarm-plan` that agent 0 owns. Each agent starts with a belief, a point
//! of H^3 drawn from a seeded generator, far from the others. Every round:
//!
//! - each agent sends its right-hand neighbour on a ring a message whose
//!   vector is a point near its belief;
//! - each agent receives and acks what it got, and moves its belief to the
//!   Fréchet mean of its own point and the points it heard (a geodesic
//!   midpoint with one neighbour);
//! - agent 0 broadcasts a round announcement to the shared space's members,
//!   who receive and ack it.
//!
//! Before the first round and after the last, every agent contributes its
//! belief to the shared space (the same key, so the last replaces the
//! first) and the runtime computes the space's consensus, the Fréchet mean
//! of the contributions. The summary shows the spread — the mean distance
//! of the beliefs from the consensus — going down, the three contributions
//! nearest the final consensus, and the message rate.
//!
//! Run: `cargo run --release --example agents -- --agents 32 --rounds 10`
//! (`--seed S` changes the starting beliefs).

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hvs_geometry::{FrechetOptions, Hyperboloid, Manifold};
use hvs_runtime::{
    BroadcastScope, Contract, Delivery, GeometrySpec, ModelHandle, Outgoing, Runtime,
    RuntimeConfig, VectorInput, Visibility,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

type BoxError = Box<dyn Error + Send + Sync>;

/// Intrinsic dimension of every agent's space and of the shared space.
const DIM: usize = 3;
/// The shared space; every contract may write `swarm-*`.
const SPACE: &str = "swarm-plan";
/// Every agent's region: one network, so no isolation policy applies.
const NETWORK: &str = "swarm";
/// How far from its belief an agent's message point lies.
const JITTER: f64 = 0.02;
/// How long an agent waits for a message it knows was sent.
const RECEIVE_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(about = "N agents on a ring agree on a point of H^3 through HVS")]
struct Args {
    /// Agents on the ring (each costs ~20 KB and ~0.2 ms to connect; see
    /// `hvs bench agents` in docs/BENCHMARKS.md).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    agents: u32,
    /// Rounds of messages.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rounds: u32,
    /// Seed of the starting beliefs and the message jitter.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// A contract on H^3 (identity encoder) writing its own namespace and the
/// `swarm-*` spaces, reading everything, with limits no simulation reaches.
fn contract(id: &str) -> Value {
    json!({
        "contract_version": "1.0.0",
        "model": {"id": id, "name": id, "version": "0.1.0", "type": "agent",
                  "capabilities": ["planning"]},
        "hvs_binding": {"hvs_id": "hvs-agents", "region": NETWORK, "namespace": id,
                        "geometry": "hyperboloid", "dimension": DIM},
        "vector_spec": {"input_dimension": DIM, "output_dimension": DIM,
                        "encoding": "geometric", "encoder": {"type": "identity"}},
        "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
            "max_message_size_bytes": 4096, "timeout_ms": 30000,
            "retry": {"max_attempts": 5, "backoff_ms": [10]}},
        "permissions": {"read_namespaces": ["*"], "write_namespaces": [id, "swarm-*"],
                        "broadcast": true, "query_other_models": true},
        "resource_limits": {"max_vectors_per_second": 1_000_000, "max_storage_mb": 4096,
                            "max_queries_per_second": 1_000_000}
    })
}

fn agent_id(i: usize) -> String {
    format!("agent-{i:02}")
}

/// A point at distance 1 to 3 from the origin in a uniformly random
/// direction.
fn random_belief(h: &Hyperboloid, rng: &mut StdRng) -> Result<Vec<f64>, BoxError> {
    loop {
        let v: Vec<f64> = (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect();
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if (0.1..=1.0).contains(&n) {
            let r = rng.random_range(1.0..3.0);
            let v: Vec<f64> = v.iter().map(|a| a * r / n).collect();
            return Ok(h.exp0(&v)?);
        }
    }
}

/// A point at distance `JITTER` from `x` in a random direction.
fn near(h: &Hyperboloid, x: &[f64], rng: &mut StdRng) -> Result<Vec<f64>, BoxError> {
    let noise: Vec<f64> = (0..h.ambient_dim())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let v = h.project_tangent(x, &noise)?;
    let n = h.norm(x, &v)?;
    if n < 1e-9 {
        return Ok(x.to_vec());
    }
    let v: Vec<f64> = v.iter().map(|a| a * JITTER / n).collect();
    Ok(h.exp(x, &v)?)
}

/// Mean distance of `beliefs` from `center`.
fn spread(h: &Hyperboloid, beliefs: &[Vec<f64>], center: &[f64]) -> Result<f64, BoxError> {
    let mut sum = 0.0;
    for b in beliefs {
        sum += h.distance(b, center)?;
    }
    Ok(sum / beliefs.len() as f64)
}

/// Receives until `want` messages arrived. The sender was answered after
/// the hand-over, so they are normally there at the first call; polling
/// with a deadline covers the rest.
async fn receive_exactly(agent: &ModelHandle, want: usize) -> Result<Vec<Delivery>, BoxError> {
    let start = Instant::now();
    let mut got = Vec::with_capacity(want);
    while got.len() < want {
        got.extend(agent.receive_messages(want - got.len()).await?);
        if got.len() < want {
            if start.elapsed() > RECEIVE_DEADLINE {
                return Err(format!(
                    "{} waited {RECEIVE_DEADLINE:?} for {want} messages and got {}",
                    agent.id(),
                    got.len()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    Ok(got)
}

/// What one agent did.
#[derive(Default)]
struct Tally {
    sent: usize,
    received: usize,
    acked: usize,
    announcements_received: usize,
    announcements_acked: usize,
    /// Recipients of each broadcast this agent made.
    broadcast_reach: Vec<usize>,
}

/// One agent's life: `rounds` rounds in step with the others, then its
/// final belief contributed to the shared space.
async fn run_agent(
    index: usize,
    agents: usize,
    rounds: u32,
    handle: ModelHandle,
    mut belief: Vec<f64>,
    barrier: Arc<Barrier>,
    seed: u64,
) -> Result<(Vec<f64>, Tally), BoxError> {
    let h = Hyperboloid::new(DIM, 1.0)?;
    let mut rng = StdRng::seed_from_u64(seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9));
    let neighbour = agent_id((index + 1) % agents);
    let mut tally = Tally::default();
    for round in 1..=rounds {
        let point = near(&h, &belief, &mut rng)?;
        let message = Outgoing::text(format!("round {round}: my belief"))
            .with_vector(VectorInput::Point(point));
        handle.send_message(&neighbour, message).await?;
        tally.sent += 1;
        barrier.wait().await;

        // The ring: exactly one message, from the left-hand neighbour.
        let heard = receive_exactly(&handle, 1).await?;
        tally.received += heard.len();
        let ids: Vec<_> = heard.iter().map(|d| d.message.id).collect();
        tally.acked += handle.ack(&ids).await?.acked.len();
        let mut points: Vec<&[f64]> = vec![&belief];
        points.extend(heard.iter().map(|d| d.message.vector.as_slice()));
        belief = h
            .frechet_mean(&points, None, &FrechetOptions::default())?
            .mean;

        if index == 0 {
            let scope = BroadcastScope {
                namespace: Some(SPACE.into()),
                ..BroadcastScope::default()
            };
            let report = handle
                .broadcast(Outgoing::text(format!("round {round} done")), scope)
                .await?;
            tally.broadcast_reach.push(report.recipients.len());
        }
        barrier.wait().await;

        if index != 0 {
            let news = receive_exactly(&handle, 1).await?;
            tally.announcements_received += news.len();
            let ids: Vec<_> = news.iter().map(|d| d.message.id).collect();
            tally.announcements_acked += handle.ack(&ids).await?.acked.len();
        }
        // Nobody sends the next round's message into a mailbox still
        // waiting for this round's announcement.
        barrier.wait().await;
    }
    let value = json!({"agent": index, "round": rounds});
    handle
        .contribute(SPACE, "belief", belief.clone(), value)
        .await?;
    Ok((belief, tally))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let (n, rounds) = (args.agents as usize, args.rounds);
    let started = Instant::now();
    let h = Hyperboloid::new(DIM, 1.0)?;
    let mut rng = StdRng::seed_from_u64(args.seed);

    let rt = Runtime::open(RuntimeConfig::memory()).await?;
    // All at once: the runtime takes connects that arrive together as one
    // batch and stores them in shared commits (docs/SEMANTICS.md).
    let contracts = (0..n)
        .map(|i| Contract::from_value(contract(&agent_id(i))))
        .collect::<Result<Vec<_>, _>>()?;
    let handles =
        futures_util::future::try_join_all(contracts.into_iter().map(|c| rt.connect_model(c)))
            .await?;
    let geometry = GeometrySpec::Hyperboloid {
        dim: DIM,
        curvature: 1.0,
    };
    rt.create_namespace(SPACE, handles[0].id(), Visibility::Shared, geometry)
        .await?;
    let mut members = 0;
    for a in &handles {
        a.join(SPACE, &["planning"]).await?;
        members += 1;
    }

    let beliefs: Vec<Vec<f64>> = (0..n)
        .map(|_| random_belief(&h, &mut rng))
        .collect::<Result<_, _>>()?;
    for (i, (a, b)) in handles.iter().zip(&beliefs).enumerate() {
        let value = json!({"agent": i, "round": 0});
        a.contribute(SPACE, "belief", b.clone(), value).await?;
    }
    let start = rt.consensus(SPACE, None).await?;
    let spread_start = spread(&h, &beliefs, &start.mean)?;

    let rounds_started = Instant::now();
    let barrier = Arc::new(Barrier::new(n));
    let mut tasks = JoinSet::new();
    for (i, (a, b)) in handles.iter().zip(beliefs).enumerate() {
        let (a, barrier) = (a.clone(), barrier.clone());
        tasks.spawn(async move {
            let r = run_agent(i, n, rounds, a, b, barrier, args.seed).await;
            (i, r)
        });
    }
    let mut finals: Vec<Option<Vec<f64>>> = vec![None; n];
    let mut total = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined?;
        // An agent that fails would leave the others at a barrier forever.
        let (belief, t) = match result {
            Ok(r) => r,
            Err(e) => {
                tasks.abort_all();
                return Err(format!("{}: {e}", agent_id(i)).into());
            }
        };
        finals[i] = Some(belief);
        total.sent += t.sent;
        total.received += t.received;
        total.acked += t.acked;
        total.announcements_received += t.announcements_received;
        total.announcements_acked += t.announcements_acked;
        total.broadcast_reach.extend(t.broadcast_reach);
    }
    let rounds_elapsed = rounds_started.elapsed();
    let finals: Vec<Vec<f64>> = finals.into_iter().flatten().collect();

    let end = rt.consensus(SPACE, None).await?;
    let spread_end = spread(&h, &finals, &end.mean)?;
    let nearest = rt
        .query_shared(handles[n - 1].id(), SPACE, end.mean.clone(), 3)
        .await?;
    drop(handles);
    rt.close().await?;
    let elapsed = started.elapsed();

    let reach_min = total.broadcast_reach.iter().min().copied().unwrap_or(0);
    let reach_max = total.broadcast_reach.iter().max().copied().unwrap_or(0);
    let deliveries = total.received + total.announcements_received;
    let point: Vec<String> = end.mean.iter().map(|x| format!("{x:+.4}")).collect();
    println!(
        "HVS agents: {n} agents on H^{DIM} in network {NETWORK:?}, ring topology, {rounds} rounds, seed {}",
        args.seed
    );
    println!(
        "shared space: {SPACE} (shared, owner {}), {members} members",
        agent_id(0)
    );
    println!(
        "messages: sent {} received {} acked {}",
        total.sent, total.received, total.acked
    );
    println!(
        "broadcasts: {} reached min {reach_min} max {reach_max} of {} other members; received {} acked {}",
        total.broadcast_reach.len(),
        n - 1,
        total.announcements_received,
        total.announcements_acked
    );
    println!(
        "consensus before: {} contributions, iterations {}, converged {}, variance {:.6}",
        start.contributions, start.iterations, start.converged, start.variance
    );
    println!(
        "consensus after: {} contributions from {} agents, iterations {}, converged {}, variance {:.6}, gradient {:.1e}",
        end.contributions,
        end.contributors,
        end.iterations,
        end.converged,
        end.variance,
        end.gradient_norm
    );
    println!(
        "consensus point (hyperboloid coordinates): [{}]",
        point.join(", ")
    );
    println!(
        "spread: start {spread_start:.4} end {spread_end:.4} (mean distance of the beliefs from the consensus)"
    );
    println!("nearest contributions to the consensus:");
    for hit in &nearest {
        println!(
            "  {} key {:?} distance {:.4} value {}",
            hit.contributor, hit.key, hit.distance, hit.value
        );
    }
    println!(
        "time: {:.3} s in all, {:.3} s of rounds, {:.0} messages/s ({deliveries} deliveries)",
        elapsed.as_secs_f64(),
        rounds_elapsed.as_secs_f64(),
        deliveries as f64 / rounds_elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}
