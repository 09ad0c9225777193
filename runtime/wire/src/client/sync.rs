//! Sync jobs and the change feed (operators only: the connection's token
//! must cover every namespace; `docs/SYNC.md`).

use super::{Client, ClientError};
use crate::protocol as p;

impl Client {
    /// Creates and starts a sync job on the server's instance.
    pub async fn sync_create(&self, spec: p::SyncSpec) -> Result<p::SyncStatus, ClientError> {
        self.request(p::Request::SyncCreate(spec)).await
    }

    /// Every sync job's status, by name.
    pub async fn sync_list(&self) -> Result<Vec<p::SyncStatus>, ClientError> {
        let r: p::SyncJobs = self.request(p::Request::SyncList(p::Empty {})).await?;
        Ok(r.jobs)
    }

    /// One sync job's status.
    pub async fn sync_status(&self, name: &str) -> Result<p::SyncStatus, ClientError> {
        self.request(p::Request::SyncStatus(name_arg(name))).await
    }

    /// Pauses a sync job; it resumes where it stopped.
    pub async fn sync_pause(&self, name: &str) -> Result<p::SyncStatus, ClientError> {
        self.request(p::Request::SyncPause(name_arg(name))).await
    }

    /// Resumes a paused sync job.
    pub async fn sync_resume(&self, name: &str) -> Result<p::SyncStatus, ClientError> {
        self.request(p::Request::SyncResume(name_arg(name))).await
    }

    /// Stops a sync job and forgets it; its status before.
    pub async fn sync_delete(&self, name: &str) -> Result<p::SyncStatus, ClientError> {
        self.request(p::Request::SyncDelete(name_arg(name))).await
    }

    /// The conflicts a sync job met, oldest first: those after audit
    /// sequence `after`, at most `limit`.
    pub async fn sync_conflicts(
        &self,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<p::SyncConflict>, ClientError> {
        let args = p::SyncConflicts {
            name: name.into(),
            after,
            limit,
        };
        let r: p::SyncConflictList = self.request(p::Request::SyncConflicts(args)).await?;
        Ok(r.conflicts)
    }

    /// How far the instance's change feed is published.
    pub async fn cluster_status(&self) -> Result<p::FeedStatus, ClientError> {
        self.request(p::Request::ClusterStatus(p::Empty {})).await
    }
}

fn name_arg(name: &str) -> p::NameArg {
    p::NameArg { name: name.into() }
}
