//! Bridges (`docs/BRIDGES.md`): the runtime's verbs for them.

use hvs_types::{BridgeHits, BridgeQuery, BridgeSpec, BridgeStatus};

use crate::{Result, Runtime};

impl Runtime {
    /// Creates and starts a bridge: shared (an isolation policy between
    /// networks of this instance), federated (needs a cluster),
    /// cross-manifold, or slow (a namespace of another instance copied
    /// here under a rate limit; needs a cluster).
    pub async fn bridge_create(&self, spec: BridgeSpec) -> Result<BridgeStatus> {
        self.hub.create_bridge(spec).await
    }

    /// Every bridge's status, by name.
    pub async fn bridge_list(&self) -> Result<Vec<BridgeStatus>> {
        self.hub.list_bridges().await
    }

    /// One bridge's status.
    pub async fn bridge_status(&self, name: &str) -> Result<BridgeStatus> {
        self.hub.bridge_status(name).await
    }

    /// Stops a bridge and forgets it (its status before).
    pub async fn bridge_delete(&self, name: &str) -> Result<BridgeStatus> {
        self.hub.delete_bridge(name).await
    }

    /// Searches through a federated or cross-manifold bridge, as `model`
    /// (read access to the namespaces searched here is checked) or as the
    /// operator (`None`).
    pub async fn bridge_search(
        &self,
        name: &str,
        query: BridgeQuery,
        model: Option<&str>,
    ) -> Result<BridgeHits> {
        self.hub.bridge_search(name, query, model).await
    }
}
