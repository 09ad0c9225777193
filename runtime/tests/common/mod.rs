//! Contracts and helpers shared by the runtime's tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use hvs_contracts::Contract;
use serde_json::Value;

#[path = "../../../contracts/tests/support/h2_agent.rs"]
mod h2_agent;

/// A contract for a model on H^2 (identity encoder), writing its own
/// namespace and `team-*`, reading everything, in network `region`.
pub(crate) fn contract(id: &str) -> Value {
    h2_agent::h2_agent(id, h2_agent::roomy(), 4096)
}

/// A server of an in-memory runtime on a free loopback port, without an
/// admin listener.
pub(crate) async fn loopback_server() -> hvs_runtime::Server {
    let rt = hvs_runtime::Runtime::open(hvs_runtime::RuntimeConfig::memory())
        .await
        .unwrap();
    loopback_server_of(rt).await
}

/// A server of `rt` on a free loopback port, without an admin listener.
pub(crate) async fn loopback_server_of(rt: hvs_runtime::Runtime) -> hvs_runtime::Server {
    let config = hvs_runtime::ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin: None,
        ..hvs_runtime::ServerConfig::default()
    };
    hvs_runtime::Server::start(rt, config, None).await.unwrap()
}

pub(crate) fn build(v: Value) -> Contract {
    Contract::from_value(v).expect("test contract is valid")
}

/// A point of H^2 at distance `r` from the origin, at angle `a`.
pub(crate) fn h2(r: f64, a: f64) -> Vec<f64> {
    vec![r.cosh(), r.sinh() * a.cos(), r.sinh() * a.sin()]
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(t) = f().await {
            return Some(t);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
