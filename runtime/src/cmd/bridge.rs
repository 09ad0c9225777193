//! Bridges (`docs/BRIDGES.md`): managed by operators; searched by models
//! with read access to the namespaces searched here, or by operators.

use std::sync::Arc;

use super::{Answer, Refusal};
use crate::protocol::{self as p, BridgeHits, BridgeStatus};
use crate::{ModelHandle, Runtime};

/// The runtime if the connection may run operators' operations.
type Operator = Result<Arc<Runtime>, Refusal>;

impl Answer for BridgeStatus {}
impl Answer for p::BridgeList {}
impl Answer for BridgeHits {}

pub(super) async fn create(rt: Operator, spec: p::BridgeSpec) -> Result<BridgeStatus, Refusal> {
    Ok(rt?.bridge_create(spec).await?)
}

pub(super) async fn list(rt: Operator) -> Result<p::BridgeList, Refusal> {
    let bridges = rt?.bridge_list().await?;
    Ok(p::BridgeList { bridges })
}

pub(super) async fn status(rt: Operator, a: p::NameArg) -> Result<BridgeStatus, Refusal> {
    Ok(rt?.bridge_status(&a.name).await?)
}

pub(super) async fn delete(rt: Operator, a: p::NameArg) -> Result<BridgeStatus, Refusal> {
    Ok(rt?.bridge_delete(&a.name).await?)
}

/// As the operator when the connection is one, else as its model.
pub(super) async fn search(
    rt: Arc<Runtime>,
    model: ModelHandle,
    operator: bool,
    a: p::BridgeSearch,
) -> Result<BridgeHits, Refusal> {
    let name = a.name.clone();
    let caller = (!operator).then(|| model.id().to_string());
    Ok(rt
        .bridge_search(&name, a.query(), caller.as_deref())
        .await?)
}
