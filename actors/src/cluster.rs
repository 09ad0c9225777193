//! Many instances, on NATS JetStream (`docs/SYNC.md`): this instance's
//! change feed published to a stream of its own, and sync jobs
//! ([`SyncActor`](sync::SyncActor)s) that apply another instance's feed
//! here. JetStream keeps the log, the positions and the deduplication;
//! nothing here elects, replicates or agrees by itself.
//!
//! - `feed.rs`: the publisher of this instance's feed.
//! - `sync.rs`: one actor per sync job.
//! - `group.rs`: a failover group's lease, roles and promotion.
//! - `mail.rs`, `mail/`: mail between models on different instances.
//! - `read.rs`: reads from a mirror, with read repair from the primary.

mod feed;
mod group;
pub(crate) mod mail;
mod read;
mod sync;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream;
use hvs_storage::{AuditAction, AuditEntry, Store};
use hvs_types::{FeedStatus, SyncMode, SyncSpec, SyncStatus};

use crate::directory::Directory;
use crate::error::{ActorError, Result};
use feed::FeedGauge;
pub use group::{GroupStatus, Role};
pub use read::ReadRepairStatus;
use sync::{Control, GetStatus, JobRecord, SyncActor};

/// Catalog kind of sync jobs' records: local (`_`), never in the feed.
const JOBS: &str = "_sync_job";

/// How this instance joins the others.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterConfig {
    /// NATS servers (`nats://host:port`), any of one cluster.
    pub urls: Vec<String>,
    /// This instance's name: unique among the instances, letters, digits,
    /// `-` and `_`.
    pub instance: String,
    /// Replicas of this instance's feed stream (1, or 3 on a 3-node NATS
    /// cluster).
    pub replicas: usize,
    /// The failover group this instance belongs to (`docs/CLUSTER.md`):
    /// its instances hold the same data, and one of them, the primary,
    /// takes writes. `None`: no group, this instance takes writes alone.
    pub group: Option<String>,
    /// Where clients reach this instance's TCP server (`host:port`), as
    /// told to clients that follow the primary of a group.
    pub advertise: Option<String>,
    /// What this instance offers to federated queries (`docs/CLUSTER.md`).
    pub capabilities: Vec<String>,
    /// How long a group's lease lasts unless renewed, in ms (0: the
    /// default, 2,000). A primary that stops stops taking writes within
    /// this, and a mirror takes its place soon after.
    pub lease_ttl_ms: u64,
    /// When a write is answered, beyond this instance's own commit.
    pub replication: Replication,
}

impl ClusterConfig {
    /// The lease's time to live.
    pub fn lease_ttl(&self) -> Duration {
        match self.lease_ttl_ms {
            0 => Duration::from_secs(2),
            ms => Duration::from_millis(ms),
        }
    }
}

/// The durability levels beyond one instance (`docs/STORAGE.md`): when a
/// write is answered, after its commit here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Replication {
    /// Once committed here (at the store's own level).
    #[default]
    Local,
    /// Once a mirror of this instance has applied it (needs a group).
    Replicated,
    /// Once this instance's feed stream, with 3 replicas, holds it: a
    /// majority of the NATS nodes has it.
    Quorum,
}

/// How long a write waits for its replication before it is answered with
/// [`ActorError::NotReplicated`].
const REPLICATION_WAIT: Duration = Duration::from_secs(10);

/// The stream that holds `instance`'s feed.
pub fn stream_name(instance: &str) -> String {
    format!("HVS_FEED_{instance}")
}

/// The subject of `instance`'s changes to `namespace` (`None`: changes of
/// no namespace: blocks, catalog records). Bytes other than letters,
/// digits, `-` and `_` are written `~xx` (hex), so any namespace name is
/// one subject token.
pub fn feed_subject(instance: &str, namespace: Option<&str>) -> String {
    match namespace {
        None => format!("hvs.feed.{instance}.i"),
        Some(ns) => format!("hvs.feed.{instance}.n.{}", subject_token(ns)),
    }
}

pub(crate) fn subject_token(name: &str) -> String {
    escape(name, '~')
}

/// `name` with bytes other than letters, digits, `-` and `_` written
/// `<marker>xx` (hex): one subject token, or one key-value key.
pub(crate) fn escape(name: &str, marker: char) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("{marker}{b:02x}"));
        }
    }
    out
}

/// Answers the requests sent to `subject`, for good: each read as `Q`
/// (msgpack) and served by `serve` (one that cannot be read, by
/// `unreadable` with the reason), each answer written as msgpack to the
/// request's reply subject. `what` names them in the log.
pub(crate) async fn answer_requests<Q, R, F, Fut>(
    cluster: Cluster,
    subject: String,
    what: &'static str,
    serve: F,
    unreadable: fn(String) -> R,
) where
    Q: serde::de::DeserializeOwned + 'static,
    R: serde::Serialize + 'static,
    F: Fn(Cluster, Q) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    use futures_util::StreamExt;
    let mut subscription = loop {
        match cluster.nats().subscribe(subject.clone()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!("subscribing to {subject}: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    while let Some(message) = subscription.next().await {
        let Some(reply) = message.reply.clone() else {
            continue;
        };
        let (cluster, serve) = (cluster.clone(), serve.clone());
        actix::spawn(async move {
            let answer = match rmp_serde::from_slice::<Q>(&message.payload) {
                Ok(q) => serve(cluster.clone(), q).await,
                Err(e) => unreadable(format!("{what}: {e}")),
            };
            let bytes = match rmp_serde::to_vec_named(&answer) {
                Ok(b) => b,
                Err(e) => return tracing::error!("{what}, answer: {e}"),
            };
            if let Err(e) = cluster.nats().publish(reply, bytes.into()).await {
                tracing::debug!("answering a {what}: {e}");
            }
        });
    }
}

/// Opens the key-value bucket `bucket` (one value per key, entries
/// expiring after `max_age`, none if zero), making it if it is missing.
/// Made as its stream by hand: async-nats 0.51's `create_key_value` first
/// reads the account's info, which it cannot parse from nats-server 2.9
/// (Debian's), and the stream is what a bucket is.
pub(crate) async fn open_bucket(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Duration,
    replicas: usize,
) -> std::result::Result<jetstream::kv::Store, String> {
    if let Ok(kv) = js.get_key_value(bucket).await {
        return Ok(kv);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| format!("bucket {bucket}: {e}"))?;
    js.get_key_value(bucket)
        .await
        .map_err(|e| format!("bucket {bucket}: {e}"))
}

/// A name usable as an instance or job name (and so in subjects and
/// consumer names).
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ActorError::InvalidRequest(format!(
            "{what} {name:?}: 1 to 64 letters, digits, '-' or '_'"
        )))
    }
}

/// This instance's part in the cluster: the feed's publisher and the sync
/// jobs. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<ClusterInner>,
}

struct ClusterInner {
    config: ClusterConfig,
    store: Arc<Store>,
    js: jetstream::Context,
    client: async_nats::Client,
    feed: Arc<FeedGauge>,
    /// Connections to NATS made so far.
    connections: Arc<AtomicU64>,
    arbiter: ArbiterHandle,
    /// Told of the namespaces jobs bring and delete.
    directory: Addr<Directory>,
    /// The failover group's state, if this instance is in one.
    group: Option<Arc<group::GroupGauge>>,
    /// Read repair's counters (a mirror's reads).
    reads: read::ReadGauge,
    jobs: Mutex<BTreeMap<String, Job>>,
}

/// A running job: its actor, and the gate its loop applies batches under.
#[derive(Clone)]
struct Job {
    addr: Addr<SyncActor>,
    gate: sync::Gate,
}

impl Cluster {
    /// Connects to NATS (in the background: an unreachable NATS delays the
    /// feed, never the instance), starts publishing the feed, and restarts
    /// every sync job this instance records.
    pub(crate) async fn start(
        store: Arc<Store>,
        config: ClusterConfig,
        arbiter: ArbiterHandle,
        directory: Addr<Directory>,
    ) -> Result<Cluster> {
        check_name("instance name", &config.instance)?;
        if let Some(g) = &config.group {
            check_name("group name", g)?;
            // At `memory` durability messages bypass the store's writer,
            // and so its fence: a mirror could take sends.
            if store.durability() == hvs_storage::Durability::Memory {
                return Err(ActorError::InvalidRequest(
                    "a failover group needs a durable store (buffered, sync, replicated or quorum), not memory".into(),
                ));
            }
        }
        match (config.replication, &config.group, config.replicas) {
            (Replication::Replicated, None, _) => {
                return Err(ActorError::InvalidRequest(
                    "replicated durability needs a failover group (a mirror to wait for)".into(),
                ));
            }
            (Replication::Quorum, _, r) if r < 3 => {
                return Err(ActorError::InvalidRequest(format!(
                    "quorum durability needs a feed stream of 3 replicas, not {r}"
                )));
            }
            _ => {}
        }
        if config.urls.is_empty() {
            return Err(ActorError::InvalidRequest(
                "[cluster] needs at least one NATS url".into(),
            ));
        }
        let connections = Arc::new(AtomicU64::new(0));
        let counted = connections.clone();
        let client = async_nats::ConnectOptions::new()
            .name(format!("hvs {}", config.instance))
            .event_callback(move |event| {
                let counted = counted.clone();
                async move {
                    if let async_nats::Event::Connected = event {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(config.urls.clone())
            .await
            .map_err(|e| ActorError::InvalidRequest(format!("NATS urls: {e}")))?;
        let js = jetstream::context::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client.clone());
        let feed = Arc::new(FeedGauge::new(connections.clone()));
        let group = config
            .group
            .as_ref()
            .map(|_| Arc::new(group::GroupGauge::new()));
        if group.is_some() {
            // No writes of its own until it holds the group's lease.
            store.fence().close(None);
        }
        let cluster = Cluster {
            inner: Arc::new(ClusterInner {
                config,
                store,
                js,
                client,
                feed,
                connections,
                arbiter,
                directory,
                group,
                reads: read::ReadGauge::default(),
                jobs: Mutex::new(BTreeMap::new()),
            }),
        };
        cluster.start_feed();
        crate::bridge::start_federation(&cluster);
        for (_, bytes) in cluster.inner.store.catalog_list(JOBS)? {
            match serde_json::from_slice::<JobRecord>(&bytes) {
                Ok(record) => cluster.start_job(record),
                Err(e) => tracing::error!("a sync job's record cannot be read: {e}"),
            }
        }
        if let (Some(name), Some(gauge)) = (&cluster.inner.config.group, &cluster.inner.group) {
            read::start_serving(&cluster);
            let member = group::GroupMember::new(cluster.clone(), name.clone(), gauge.clone());
            cluster.inner.arbiter.spawn(member.run());
        }
        Ok(cluster)
    }

    /// This instance's name.
    pub fn instance(&self) -> &str {
        &self.inner.config.instance
    }

    /// How this instance joined.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The connection to NATS (for request/reply between instances).
    pub(crate) fn nats(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// JetStream on that connection.
    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// This instance's store.
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// The directory (told of what jobs and promotions bring).
    pub(crate) fn directory(&self) -> &Addr<Directory> {
        &self.inner.directory
    }

    /// The primary this instance mirrors, from its mirror job, if any.
    pub(crate) fn mirrored_primary(&self) -> Option<String> {
        self.jobs()
            .keys()
            .find_map(|name| name.strip_prefix("mirror-").map(str::to_string))
    }

    /// This instance's role in its failover group (`None`: in none).
    pub fn role(&self) -> Option<Role> {
        self.inner.group.as_ref().map(|g| g.role())
    }

    /// This instance's part in its failover group (`None`: in none).
    pub fn group_status(&self) -> Option<GroupStatus> {
        let name = self.inner.config.group.as_deref()?;
        self.inner.group.as_ref().map(|g| g.status(name))
    }

    /// Follows the role (`None`: in no group).
    pub fn watch_role(&self) -> Option<tokio::sync::watch::Receiver<Role>> {
        self.inner.group.as_ref().map(|g| g.watch_role())
    }

    /// Waits until the changes up to `seq` of this instance's feed are
    /// replicated as its [`Replication`] level says; at once for `Local`.
    /// Refused with [`ActorError::NotReplicated`] after 10 s, and with the
    /// store's `not_primary` if the lease lapsed meanwhile (the write may
    /// survive, or not: the caller retries).
    pub async fn wait_replicated(&self, seq: u64) -> Result<()> {
        let mut watch = match self.inner.config.replication {
            Replication::Local => return Ok(()),
            Replication::Quorum => self.inner.feed.watch_published(),
            Replication::Replicated => match &self.inner.group {
                Some(g) => g.watch_mirrored(),
                None => return Ok(()),
            },
        };
        let level = self.inner.config.replication;
        tokio::time::timeout(REPLICATION_WAIT, watch.wait_for(|p| *p >= seq))
            .await
            .map_err(|_| ActorError::NotReplicated {
                level: replication_name(level),
                waited_ms: REPLICATION_WAIT.as_millis() as u64,
            })?
            .map_err(|_| ActorError::Stopped)?;
        if self.inner.group.is_some() {
            self.inner
                .store
                .fence()
                .check(std::time::Instant::now())
                .map_err(ActorError::from)?;
        }
        Ok(())
    }

    /// The arbiter cluster actors and tasks run on.
    pub(crate) fn arbiter(&self) -> &ArbiterHandle {
        &self.inner.arbiter
    }

    fn start_feed(&self) {
        let publisher = feed::FeedPublisher {
            store: self.inner.store.clone(),
            js: self.inner.js.clone(),
            instance: self.inner.config.instance.clone(),
            replicas: self.inner.config.replicas,
            gauge: self.inner.feed.clone(),
        };
        self.inner.arbiter.spawn(publisher.run());
    }

    /// The feed's publishing: how far it is, and whether NATS answers.
    pub fn feed_status(&self) -> FeedStatus {
        let connected =
            self.inner.client.connection_state() == async_nats::connection::State::Connected;
        self.inner.feed.status(
            &self.inner.config.instance,
            self.inner.store.last_change(),
            connected,
        )
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Job>> {
        self.inner.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_job(&self, record: JobRecord) {
        let name = record.status.spec.name.clone();
        let gate = sync::Gate::default();
        let actor = SyncActor::new(
            record,
            self.inner.store.clone(),
            self.inner.js.clone(),
            self.inner.config.instance.clone(),
            gate.clone(),
            self.inner.connections.clone(),
            self.inner.directory.clone(),
        );
        let addr = SyncActor::start_in_arbiter(&self.inner.arbiter, move |_| actor);
        self.jobs().insert(name, Job { addr, gate });
    }

    /// Creates and starts a sync job (`sync_full`, `sync_partial`,
    /// `sync_selective`).
    pub async fn create_job(&self, spec: SyncSpec) -> Result<SyncStatus> {
        check_name("sync job name", &spec.name)?;
        check_name("source instance", &spec.source)?;
        if spec.source == self.inner.config.instance {
            return Err(ActorError::InvalidRequest(format!(
                "a sync job copies another instance into this one; {:?} is this one",
                spec.source
            )));
        }
        check_mode(&spec.mode)?;
        if self.jobs().contains_key(&spec.name) {
            return Err(ActorError::InvalidRequest(format!(
                "a sync job named {:?} exists already",
                spec.name
            )));
        }
        let record = JobRecord::new(spec);
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| ActorError::InvalidRequest(format!("sync job: {e}")))?;
        let name = record.status.spec.name.clone();
        let store = self.inner.store.clone();
        crate::namespace::blocking(move || Ok(store.catalog_put(JOBS, &name, bytes)?)).await?;
        let status = record.status.clone();
        self.start_job(record);
        Ok(status)
    }

    fn job(&self, name: &str) -> Result<Job> {
        self.jobs()
            .get(name)
            .cloned()
            .ok_or_else(|| ActorError::UnknownSyncJob(name.to_string()))
    }

    /// One job's status.
    pub async fn job_status(&self, name: &str) -> Result<SyncStatus> {
        Ok(self.job(name)?.addr.send(GetStatus).await?)
    }

    /// Every job's status, by name.
    pub async fn list_jobs(&self) -> Result<Vec<SyncStatus>> {
        let addrs: Vec<_> = self.jobs().values().map(|j| j.addr.clone()).collect();
        let mut out = Vec::with_capacity(addrs.len());
        for a in addrs {
            out.push(a.send(GetStatus).await?);
        }
        Ok(out)
    }

    /// Pauses (`true`) or resumes a job; its status after. Once a pause
    /// is answered, the job applies nothing more until resumed (a batch
    /// being applied finishes first).
    pub async fn pause_job(&self, name: &str, paused: bool) -> Result<SyncStatus> {
        let job = self.job(name)?;
        job.addr.send(Control::Pause(paused)).await??;
        drop(job.gate.lock().await);
        Ok(job.addr.send(GetStatus).await?)
    }

    /// Stops a job and forgets it: its record here and its durable consumer
    /// on the source's stream.
    pub async fn delete_job(&self, name: &str) -> Result<SyncStatus> {
        let job = self.job(name)?.addr;
        let status = job.send(GetStatus).await?;
        job.send(Control::Stop).await??;
        self.jobs().remove(name);
        let store = self.inner.store.clone();
        let key = name.to_string();
        crate::namespace::blocking(move || Ok(store.catalog_delete(JOBS, &key)?)).await?;
        let stream = stream_name(&status.spec.source);
        let consumer = sync::consumer_name(self.instance(), name);
        if let Err(e) = self
            .inner
            .js
            .delete_consumer_from_stream(&consumer, &stream)
            .await
        {
            tracing::warn!("sync job {name}: its consumer {consumer} stays on {stream}: {e}");
        }
        Ok(status)
    }

    /// The conflicts job `name` met, oldest first, from the audit log
    /// (after audit sequence `after`, at most `limit`).
    pub async fn job_conflicts(
        &self,
        name: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let store = self.inner.store.clone();
        let name = name.to_string();
        crate::namespace::blocking(move || {
            let mut out = Vec::new();
            let mut from = after;
            while out.len() < limit {
                let page = store.audit_log(from, 1024)?;
                let Some(last) = page.last() else { break };
                from = last.seq;
                out.extend(
                    page.into_iter()
                        .filter(|e| e.action == AuditAction::SyncConflict && e.actor == name),
                );
            }
            out.truncate(limit);
            Ok(out)
        })
        .await
    }
}

/// `replicated` or `quorum`, as the docs name them.
pub fn replication_name(r: Replication) -> &'static str {
    match r {
        Replication::Local => "local",
        Replication::Replicated => "replicated",
        Replication::Quorum => "quorum",
    }
}

/// Refuses a mode that names nothing.
fn check_mode(mode: &SyncMode) -> Result<()> {
    match mode {
        SyncMode::Partial { namespaces, .. } if namespaces.is_empty() => Err(
            ActorError::InvalidRequest("a partial sync names at least one namespace".into()),
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_namespace_is_one_subject_token() {
        assert_eq!(feed_subject("a", Some("docs")), "hvs.feed.a.n.docs");
        assert_eq!(
            feed_subject("a", Some("hvs.states")),
            "hvs.feed.a.n.hvs~2estates"
        );
        assert_eq!(
            feed_subject("a", Some("x y>*~")),
            "hvs.feed.a.n.x~20y~3e~2a~7e"
        );
        assert_eq!(feed_subject("b", None), "hvs.feed.b.i");
        assert!(check_name("job", "nightly-2_x").is_ok());
        assert!(check_name("job", "a.b").is_err());
        assert!(check_name("job", "").is_err());
    }
}
