//! Sync jobs and the change feed: operators' operations (`docs/SYNC.md`).

use std::sync::Arc;

use super::{Answer, Refusal};
use crate::Runtime;
use crate::protocol::{self as p, FeedStatus, SyncStatus};

/// The runtime if the connection may run operators' operations.
type Operator = Result<Arc<Runtime>, Refusal>;

impl Answer for SyncStatus {}
impl Answer for p::SyncJobs {}
impl Answer for p::SyncConflictList {}
impl Answer for FeedStatus {}

/// The most conflicts one `sync_conflicts` answers.
const MAX_CONFLICTS: usize = 10_000;

pub(super) async fn create(rt: Operator, spec: p::SyncSpec) -> Result<SyncStatus, Refusal> {
    Ok(rt?.sync_create(spec).await?)
}

pub(super) async fn list(rt: Operator) -> Result<p::SyncJobs, Refusal> {
    let jobs = rt?.sync_list().await?;
    Ok(p::SyncJobs { jobs })
}

pub(super) async fn status(rt: Operator, a: p::NameArg) -> Result<SyncStatus, Refusal> {
    Ok(rt?.sync_status(&a.name).await?)
}

pub(super) async fn pause(
    rt: Operator,
    a: p::NameArg,
    paused: bool,
) -> Result<SyncStatus, Refusal> {
    let rt = rt?;
    Ok(if paused {
        rt.sync_pause(&a.name).await?
    } else {
        rt.sync_resume(&a.name).await?
    })
}

pub(super) async fn delete(rt: Operator, a: p::NameArg) -> Result<SyncStatus, Refusal> {
    Ok(rt?.sync_delete(&a.name).await?)
}

pub(super) async fn conflicts(
    rt: Operator,
    a: p::SyncConflicts,
) -> Result<p::SyncConflictList, Refusal> {
    let limit = a.limit.min(MAX_CONFLICTS);
    let entries = rt?.sync_conflicts(&a.name, a.after, limit).await?;
    let conflicts = entries
        .into_iter()
        .map(|e| p::SyncConflict {
            seq: e.seq,
            at_ms: e.at_ms,
            vector: e.block.map(|id| id.to_string()),
            namespace: e.name,
            detail: e.outcome,
        })
        .collect();
    Ok(p::SyncConflictList { conflicts })
}

pub(super) async fn cluster_status(rt: Operator) -> Result<FeedStatus, Refusal> {
    Ok(rt?.feed_status()?)
}
