//! Many instances (`docs/SYNC.md`): the runtime's side of the change feed
//! and of sync jobs, in the specification's vocabulary (`sync_full`,
//! `sync_partial`, `sync_selective`).

use hvs_actors::{Cluster, ClusterConfig, GroupStatus, ReadRepairStatus, Role};
use hvs_storage::AuditEntry;
use hvs_types::{ConflictStrategy, FeedStatus, Filter, SyncMode, SyncSpec, SyncStatus};

use crate::{Result, Runtime};

impl Runtime {
    /// Joins the other instances on NATS JetStream (done by
    /// [`Runtime::open`] when its configuration has a cluster).
    pub async fn join_cluster(&self, config: ClusterConfig) -> Result<()> {
        self.hub.join_cluster(config).await.map(drop)
    }

    fn cluster(&self) -> Result<&Cluster> {
        self.hub.cluster()
    }

    /// This instance's name in its cluster, if it is in one.
    pub fn instance(&self) -> Option<&str> {
        self.hub.cluster().ok().map(Cluster::instance)
    }

    /// This instance's role in its failover group (`None`: in none).
    pub fn role(&self) -> Option<Role> {
        self.hub.cluster().ok().and_then(Cluster::role)
    }

    /// This instance's part in its failover group (`None`: in none).
    pub fn group_status(&self) -> Option<GroupStatus> {
        self.hub.cluster().ok().and_then(Cluster::group_status)
    }

    /// Read repair's counters on a mirror (`None`: in no group).
    pub fn read_repair_status(&self) -> Option<ReadRepairStatus> {
        let cluster = self.hub.cluster().ok()?;
        cluster.role()?;
        Some(cluster.read_repair_status())
    }

    /// Follows this instance's role in its failover group (`None`: in
    /// none, or in no cluster).
    pub fn watch_role(&self) -> Option<tokio::sync::watch::Receiver<Role>> {
        self.hub.cluster().ok().and_then(Cluster::watch_role)
    }

    /// Waits until every write committed so far is replicated as the
    /// cluster's durability level says (`replicated`, `quorum`; at once
    /// without a cluster or at a local level): the server answers a
    /// write only after this (`docs/CLUSTER.md`).
    pub async fn confirm_replicated(&self) -> Result<()> {
        match self.hub.cluster() {
            Ok(c) => c.wait_replicated(self.storage().last_change()).await,
            Err(_) => Ok(()),
        }
    }

    /// How far this instance's change feed is published.
    pub fn feed_status(&self) -> Result<FeedStatus> {
        Ok(self.cluster()?.feed_status())
    }

    /// Creates and starts a sync job.
    pub async fn sync_create(&self, spec: SyncSpec) -> Result<SyncStatus> {
        self.cluster()?.create_job(spec).await
    }

    /// Copies every namespace of `source` here (deletions included).
    pub async fn sync_full(
        &self,
        name: &str,
        source: &str,
        strategy: ConflictStrategy,
        follow: bool,
    ) -> Result<SyncStatus> {
        self.sync_create(spec(name, source, SyncMode::Full, strategy, follow))
            .await
    }

    /// Copies the named namespaces of `source` here (only vectors of
    /// `regions`, if any are named).
    pub async fn sync_partial(
        &self,
        name: &str,
        source: &str,
        namespaces: Vec<String>,
        regions: Vec<String>,
        strategy: ConflictStrategy,
        follow: bool,
    ) -> Result<SyncStatus> {
        let mode = SyncMode::Partial {
            namespaces,
            regions,
        };
        self.sync_create(spec(name, source, mode, strategy, follow))
            .await
    }

    /// Copies the vectors of `source` whose metadata `filter` matches.
    pub async fn sync_selective(
        &self,
        name: &str,
        source: &str,
        filter: Filter,
        strategy: ConflictStrategy,
        follow: bool,
    ) -> Result<SyncStatus> {
        let mode = SyncMode::Selective {
            filter,
            namespaces: Vec::new(),
        };
        self.sync_create(spec(name, source, mode, strategy, follow))
            .await
    }

    /// Every sync job's status, by name.
    pub async fn sync_list(&self) -> Result<Vec<SyncStatus>> {
        self.cluster()?.list_jobs().await
    }

    /// One sync job's status.
    pub async fn sync_status(&self, name: &str) -> Result<SyncStatus> {
        self.cluster()?.job_status(name).await
    }

    /// Pauses a sync job; it resumes where it stopped.
    pub async fn sync_pause(&self, name: &str) -> Result<SyncStatus> {
        self.cluster()?.pause_job(name, true).await
    }

    /// Resumes a paused sync job.
    pub async fn sync_resume(&self, name: &str) -> Result<SyncStatus> {
        self.cluster()?.pause_job(name, false).await
    }

    /// Stops a sync job and forgets it (its status before).
    pub async fn sync_delete(&self, name: &str) -> Result<SyncStatus> {
        self.cluster()?.delete_job(name).await
    }

    /// The conflicts a job met, oldest first, from the audit log.
    pub async fn sync_conflicts(
        &self,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let cluster = self.cluster()?;
        cluster.job_status(name).await?;
        cluster.job_conflicts(name, after, limit).await
    }
}

fn spec(
    name: &str,
    source: &str,
    mode: SyncMode,
    strategy: ConflictStrategy,
    follow: bool,
) -> SyncSpec {
    SyncSpec {
        name: name.to_string(),
        source: source.to_string(),
        mode,
        strategy,
        follow,
    }
}
