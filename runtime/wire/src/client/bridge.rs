//! Bridges (`docs/BRIDGES.md`): created, listed and deleted by operators;
//! searched by models with read access.

use super::{Client, ClientError};
use crate::protocol as p;

impl Client {
    /// Creates and starts a bridge on the server's instance (a slow bridge
    /// on the instance that receives the copy).
    pub async fn bridge_create(&self, spec: p::BridgeSpec) -> Result<p::BridgeStatus, ClientError> {
        self.request(p::Request::BridgeCreate(spec)).await
    }

    /// Every bridge's status, by name.
    pub async fn bridge_list(&self) -> Result<Vec<p::BridgeStatus>, ClientError> {
        let r: p::BridgeList = self.request(p::Request::BridgeList(p::Empty {})).await?;
        Ok(r.bridges)
    }

    /// One bridge's status.
    pub async fn bridge_status(&self, name: &str) -> Result<p::BridgeStatus, ClientError> {
        let a = p::NameArg { name: name.into() };
        self.request(p::Request::BridgeStatus(a)).await
    }

    /// Stops a bridge and forgets it; its status before.
    pub async fn bridge_delete(&self, name: &str) -> Result<p::BridgeStatus, ClientError> {
        let a = p::NameArg { name: name.into() };
        self.request(p::Request::BridgeDelete(a)).await
    }

    /// Searches through a federated or cross-manifold bridge.
    pub async fn bridge_search(
        &self,
        name: &str,
        query: p::BridgeQuery,
    ) -> Result<p::BridgeHits, ClientError> {
        let a = p::BridgeSearch {
            name: name.into(),
            vector: query.vector,
            k: query.k,
            filter: query.filter,
        };
        self.request(p::Request::BridgeSearch(a)).await
    }
}
