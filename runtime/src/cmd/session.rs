//! `ping` and `stats`.

use std::sync::Arc;

use super::{Refusal, wire_error};
use crate::protocol::{self as p, WireError};
use crate::{ModelHandle, Runtime};

pub(super) async fn ping() -> Result<p::Pong, Refusal> {
    Ok(p::Pong {
        now_ms: super::now_ms(),
    })
}

pub(super) async fn stats(
    runtime: Arc<Runtime>,
    model: ModelHandle,
    connections: u64,
) -> Result<p::WireStats, Refusal> {
    let store = runtime.storage().clone();
    let s = tokio::task::spawn_blocking(move || store.get_stats())
        .await
        .map_err(|e| WireError::new(p::codes::INTERNAL, e.to_string()))?
        .map_err(|e| wire_error(crate::Error::from(e)))?;
    let (mb, _) = model.mailbox().await?;
    let namespaces = s
        .namespaces
        .into_iter()
        .map(|(n, st)| {
            let stats = p::WireNamespaceStats {
                vectors: st.vectors,
                in_graph: st.in_graph,
                fresh: st.fresh,
                unreachable: st.unreachable,
                building: st.building,
            };
            (n, stats)
        })
        .collect();
    Ok(p::WireStats {
        namespaces,
        bytes_on_disk: s.bytes_on_disk,
        last_change: s.last_change,
        commits: s.commits,
        commit_requests: s.commit_requests,
        connections,
        models: runtime.models().into_iter().collect(),
        mailbox_pending: mb.pending,
        mailbox_in_flight: mb.in_flight,
    })
}
