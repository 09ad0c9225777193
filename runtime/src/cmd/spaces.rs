//! Shared spaces, consensus and model state.

use super::Refusal;
use crate::protocol as p;
use crate::{ModelHandle, ModelState};

pub(super) async fn join(m: ModelHandle, a: p::Join) -> Result<p::Empty, Refusal> {
    let caps: Vec<&str> = a.capabilities.iter().map(String::as_str).collect();
    m.join(&a.space, &caps).await?;
    Ok(p::Empty {})
}

pub(super) async fn contribute(m: ModelHandle, a: p::Contribute) -> Result<p::IdArg, Refusal> {
    let id = m.contribute(&a.space, &a.key, a.vector, a.value).await?;
    Ok(p::IdArg { id: id.to_string() })
}

pub(super) async fn query_shared(
    m: ModelHandle,
    a: p::QueryShared,
) -> Result<p::SharedHits, Refusal> {
    let hits = m
        .query_shared(&a.space, a.vector, a.k)
        .await?
        .into_iter()
        .map(|h| p::WireSharedHit {
            id: h.id.to_string(),
            contributor: h.contributor,
            key: h.key,
            value: h.value,
            distance: h.distance,
            score: h.score,
            vector: a.with_vector.then_some(h.vector),
        })
        .collect();
    Ok(p::SharedHits { hits })
}

pub(super) async fn consensus(
    m: ModelHandle,
    a: p::ConsensusArgs,
) -> Result<p::WireConsensus, Refusal> {
    let r = m.consensus(&a.space, a.weights).await?;
    Ok(p::WireConsensus {
        mean: r.mean,
        contributions: r.contributions,
        contributors: r.contributors,
        iterations: r.iterations,
        converged: r.converged,
        gradient_norm: r.gradient_norm,
    })
}

pub(super) async fn register_state(
    m: ModelHandle,
    a: p::RegisterState,
) -> Result<p::Empty, Refusal> {
    m.register_state(a.schema).await?;
    Ok(p::Empty {})
}

pub(super) async fn update_state(
    m: ModelHandle,
    a: p::UpdateState,
) -> Result<p::StateVersion, Refusal> {
    Ok(p::StateVersion {
        version: m.update_state(a.state).await?,
    })
}

fn wire_state(s: ModelState, score: Option<f64>) -> p::WireState {
    p::WireState {
        model: s.model,
        state: s.state,
        version: s.version,
        score,
    }
}

pub(super) async fn get_state(
    m: ModelHandle,
    a: p::GetState,
) -> Result<Option<p::WireState>, Refusal> {
    Ok(m.get_state(&a.model).await?.map(|s| wire_state(s, None)))
}

pub(super) async fn find_similar_states(
    m: ModelHandle,
    a: p::SimilarStates,
) -> Result<p::States, Refusal> {
    let states = m
        .find_similar_states(&a.state, a.k)
        .await?
        .into_iter()
        .map(|(s, score)| wire_state(s, Some(score)))
        .collect();
    Ok(p::States { states })
}
