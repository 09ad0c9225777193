//! A failover group (`docs/CLUSTER.md`): instances that hold the same data,
//! one of which, the primary, takes writes while the others mirror it.
//! JetStream decides who the primary is; nothing here votes or elects:
//!
//! - The primary holds a lease, the key `<group>` of the key-value bucket
//!   [`LEASES`], whose entries expire [`ClusterConfig::lease_ttl`] after
//!   they are written. The holder rewrites it every quarter of that,
//!   compare-and-set on the revision it last wrote, and opens its store's
//!   write fence until the lease's deadline, measured from before each
//!   renewal on the monotonic clock (minus a margin). A holder that cannot
//!   renew in time (paused, cut off from NATS) stops taking writes at its
//!   deadline, before the entry expires and anyone else can take it.
//! - The revision with which the lease was taken is the group's epoch, the
//!   fencing token: the store's fence is held under it, every commit of
//!   the instance's own writes checks it first, and a new primary's is
//!   always larger than the last one's (JetStream revisions only grow).
//! - The others follow the primary with a mirror job (`mirror-<primary>`,
//!   [`SyncMode::Mirror`]). When the lease lapses, one of them creates the
//!   key again (create only succeeds on an absent key): the instance
//!   that was primary last (bucket [`GROUPS`], kept for good) if it is
//!   back, else the mirror of that primary that has applied the most of
//!   its feed (positions in bucket [`MEMBERS`]), else, after a grace, any
//!   mirror of it. An instance that never mirrored the last primary never
//!   takes its place (it would lose its data).
//! - A new primary first applies everything the old one's stream holds
//!   (so every write acknowledged at `quorum` is here), then stops
//!   following it, reloads its mailboxes and models from its store, and
//!   only then opens its fence.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use hvs_types::{ConflictStrategy, SyncMode, SyncSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Cluster, ClusterConfig, open_bucket, stream_name};
use crate::directory::Promote;

/// Bucket of leases, one key per group; entries expire after the TTL.
pub(crate) const LEASES: &str = "hvs_leases";
/// Bucket of each group's last primary and epoch, kept for good.
pub(crate) const GROUPS: &str = "hvs_groups";
/// Bucket of members' progress (`<group>.<instance>`), expiring.
pub(crate) const MEMBERS: &str = "hvs_members";
/// How much sooner than the lease's expiry its holder stops writing.
const MARGIN: Duration = Duration::from_millis(250);
/// How long a new primary waits for the old primary's stream to be applied
/// before it serves anyway (the stream unreachable, say).
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// This instance's part in its group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// Not yet known (starting, or NATS not reached yet): no writes.
    Joining,
    /// Following `primary`; writes go there.
    Mirror {
        /// The primary's instance name.
        primary: String,
        /// Where its clients connect.
        address: Option<String>,
    },
    /// Holding the lease, applying what the old primary's stream holds
    /// before taking writes.
    Promoting {
        /// The epoch it will write under.
        epoch: u64,
    },
    /// Taking writes under the lease of `epoch`.
    Primary {
        /// The fencing token: the lease's revision when it was taken.
        epoch: u64,
    },
}

/// The lease's value.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    instance: String,
    address: Option<String>,
    epoch: u64,
}

/// A group's last primary (bucket [`GROUPS`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LastPrimary {
    instance: String,
    epoch: u64,
}

/// A member's progress (bucket [`MEMBERS`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Member {
    instance: String,
    /// The primary it mirrors, if any.
    following: Option<String>,
    /// The last change of that primary's feed it applied.
    applied: u64,
}

/// The subject on which mirrors of `source` tell what they applied.
pub(crate) fn applied_subject(source: &str) -> String {
    format!("hvs.applied.{source}")
}

/// What a mirror applied of its source's feed.
pub(crate) struct AppliedNotice {
    pub(crate) mirror: String,
    pub(crate) change: u64,
}

impl AppliedNotice {
    pub(crate) fn encode(&self) -> Vec<u8> {
        format!("{} {}", self.mirror, self.change).into_bytes()
    }

    fn decode(b: &[u8]) -> Option<AppliedNotice> {
        let text = std::str::from_utf8(b).ok()?;
        let (mirror, change) = text.split_once(' ')?;
        Some(AppliedNotice {
            mirror: mirror.to_string(),
            change: change.parse().ok()?,
        })
    }
}

/// What the group's task shares with the rest of the instance.
pub(crate) struct GroupGauge {
    role: watch::Sender<Role>,
    /// The highest change of this instance's feed any mirror applied.
    mirrored: watch::Sender<u64>,
    /// Lease renewals that failed (NATS unreachable, say).
    pub(crate) renew_failures: std::sync::atomic::AtomicU64,
    /// Times this instance became primary.
    pub(crate) promotions: std::sync::atomic::AtomicU64,
    /// Per mirror, the last change it applied.
    mirrors: Mutex<HashMap<String, u64>>,
}

impl GroupGauge {
    pub(crate) fn new() -> GroupGauge {
        GroupGauge {
            role: watch::Sender::new(Role::Joining),
            mirrored: watch::Sender::new(0),
            renew_failures: Default::default(),
            promotions: Default::default(),
            mirrors: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    pub(crate) fn watch_role(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    pub(crate) fn watch_mirrored(&self) -> watch::Receiver<u64> {
        self.mirrored.subscribe()
    }

    fn set_role(&self, role: Role) {
        self.role.send_if_modified(|r| {
            let changed = *r != role;
            if changed {
                tracing::info!("group role: {role:?}");
                *r = role;
            }
            changed
        });
    }

    fn note_applied(&self, n: AppliedNotice) {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        let seen = mirrors.entry(n.mirror).or_insert(0);
        *seen = (*seen).max(n.change);
        let best = mirrors.values().copied().max().unwrap_or(0);
        self.mirrored.send_if_modified(|m| {
            let more = best > *m;
            *m = (*m).max(best);
            more
        });
    }
}

/// What an operator sees of a member (`/health`, `/metrics`,
/// `cluster_status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    /// The group.
    pub group: String,
    /// This instance's role now.
    pub role: Role,
    /// Times this instance became the primary since it started.
    pub promotions: u64,
    /// Lease renewals that failed since it started.
    pub lease_renew_failures: u64,
    /// The last change of this instance's feed a mirror told it applied.
    pub mirrored: u64,
}

impl GroupGauge {
    pub(crate) fn status(&self, group: &str) -> GroupStatus {
        GroupStatus {
            group: group.to_string(),
            role: self.role(),
            promotions: self.promotions.load(Ordering::Relaxed),
            lease_renew_failures: self.renew_failures.load(Ordering::Relaxed),
            mirrored: *self.mirrored.borrow(),
        }
    }
}

/// The task that keeps this instance's role in `group`.
pub(crate) struct GroupMember {
    pub(crate) cluster: Cluster,
    pub(crate) group: String,
    pub(crate) gauge: Arc<GroupGauge>,
    /// The lease's revision this instance last wrote.
    revision: u64,
    /// The primary this instance mirrors (its job `mirror-<primary>`).
    following: Option<String>,
}

/// The buckets, opened (or made) once NATS answers.
struct Buckets {
    leases: kv::Store,
    groups: kv::Store,
    members: kv::Store,
}

/// The name of the job that mirrors `primary`.
fn mirror_job(primary: &str) -> String {
    format!("mirror-{primary}")
}

impl GroupMember {
    pub(crate) fn new(cluster: Cluster, group: String, gauge: Arc<GroupGauge>) -> GroupMember {
        GroupMember {
            cluster,
            group,
            gauge,
            revision: 0,
            following: None,
        }
    }

    fn config(&self) -> &ClusterConfig {
        self.cluster.config()
    }

    fn me(&self) -> &str {
        self.cluster.instance()
    }

    fn ttl(&self) -> Duration {
        self.config().lease_ttl()
    }

    /// Keeps the role until the instance stops.
    pub(crate) async fn run(mut self) {
        self.cluster.store().fence().close(None);
        self.following = self.cluster.mirrored_primary();
        self.listen_applied();
        let buckets = loop {
            match self.open_buckets().await {
                Ok(b) => break b,
                Err(e) => {
                    tracing::warn!("group {}: opening its buckets: {e}", self.group);
                    tokio::time::sleep(self.ttl() / 4).await;
                }
            }
        };
        let mut lapsed_since: Option<Instant> = None;
        loop {
            let outcome = match self.gauge.role() {
                Role::Primary { epoch } => self.renew(&buckets, epoch).await.map(|sent| {
                    self.hold(epoch, sent);
                }),
                _ => self.watch_lease(&buckets, &mut lapsed_since).await,
            };
            if let Err(e) = outcome {
                tracing::warn!("group {}: {e}", self.group);
            }
            self.report_progress(&buckets).await;
            tokio::time::sleep(self.ttl() / 4).await;
        }
    }

    async fn open_buckets(&self) -> Result<Buckets, String> {
        let js = self.cluster.jetstream();
        let replicas = self.config().replicas;
        Ok(Buckets {
            leases: open_bucket(js, LEASES, self.ttl(), replicas).await?,
            groups: open_bucket(js, GROUPS, Duration::ZERO, replicas).await?,
            members: open_bucket(js, MEMBERS, self.ttl() * 4, replicas).await?,
        })
    }

    /// Counts what mirrors tell they applied of this instance's feed.
    fn listen_applied(&self) {
        let (client, subject, gauge) = (
            self.cluster.nats().clone(),
            applied_subject(self.me()),
            self.gauge.clone(),
        );
        self.cluster.arbiter().spawn(async move {
            let mut sub = match client.subscribe(subject).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("group: mirrors' progress cannot be heard: {e}");
                    return;
                }
            };
            while let Some(m) = sub.next().await {
                if let Some(n) = AppliedNotice::decode(&m.payload) {
                    gauge.note_applied(n);
                }
            }
        });
    }

    fn lease_value(&self, epoch: u64) -> Vec<u8> {
        let lease = Lease {
            instance: self.me().to_string(),
            address: self.config().advertise.clone(),
            epoch,
        };
        serde_json::to_vec(&lease).unwrap_or_default()
    }

    /// Rewrites the lease (compare-and-set on the revision last written);
    /// when the rewrite was sent. On a refusal this instance steps down.
    async fn renew(&mut self, b: &Buckets, epoch: u64) -> Result<Instant, String> {
        let sent = Instant::now();
        let value = self.lease_value(epoch);
        // Bounded by half the lease: a renewal answered later is of no use
        // (the fence closes at its deadline anyway), and the next is due.
        let update = b.leases.update(&self.group, value.into(), self.revision);
        let e = match tokio::time::timeout(self.ttl() / 2, update).await {
            Ok(Ok(r)) => {
                self.revision = r;
                return Ok(sent);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in time".to_string(),
        };
        self.gauge.renew_failures.fetch_add(1, Ordering::Relaxed);
        // Another holds it, or it lapsed: step down. (A NATS that does not
        // answer leaves the fence to close at its deadline; a renewal that
        // went through unanswered shows here as another revision, and the
        // lease is taken back as this instance's own.)
        let current = tokio::time::timeout(self.ttl() / 2, b.leases.entry(&self.group)).await;
        if let Ok(Ok(current)) = current
            && current.as_ref().is_none_or(|c| c.revision != self.revision)
        {
            tracing::warn!("group {}: lost the lease ({e})", self.group);
            self.cluster.store().fence().close(None);
            self.gauge.set_role(Role::Joining);
        }
        Err(format!("renewing the lease: {e}"))
    }

    /// Opens the fence until the deadline of a lease renewed at `sent`.
    fn hold(&self, epoch: u64, sent: Instant) {
        let until = sent + self.ttl().saturating_sub(MARGIN);
        self.cluster.store().fence().hold(epoch, until);
    }

    /// A non-primary's round: follow whoever holds the lease, or take it
    /// when it lapsed and this instance is the one to.
    async fn watch_lease(
        &mut self,
        b: &Buckets,
        lapsed_since: &mut Option<Instant>,
    ) -> Result<(), String> {
        let entry = self
            .bounded("reading the lease", b.leases.entry(&self.group))
            .await?
            .filter(|e| e.operation == kv::Operation::Put);
        if let Some(e) = entry {
            *lapsed_since = None;
            let lease: Lease = serde_json::from_slice(&e.value)
                .map_err(|err| format!("an unreadable lease: {err}"))?;
            if lease.instance == self.me() {
                // Its own lease: from before a restart within the TTL, or
                // taken by a create whose answer was lost.
                let sent = Instant::now();
                let value = self.lease_value(lease.epoch);
                let update = b.leases.update(&self.group, value.into(), e.revision);
                self.revision = self.bounded("taking back the lease", update).await?;
                let epoch = if lease.epoch == 0 {
                    e.revision
                } else {
                    lease.epoch
                };
                let last = self.last_primary(b).await?;
                return self.take_over(b, epoch, last, sent).await;
            }
            self.cluster.store().fence().close(lease.address.clone());
            self.follow(&lease.instance).await?;
            self.gauge.set_role(Role::Mirror {
                primary: lease.instance,
                address: lease.address,
            });
            return Ok(());
        }
        let since = *lapsed_since.get_or_insert_with(Instant::now);
        let last = self.last_primary(b).await?;
        if !self.may_take(b, last.as_ref(), since.elapsed()).await? {
            return Ok(());
        }
        let sent = Instant::now();
        let create = b.leases.create(&self.group, self.lease_value(0).into());
        let Ok(revision) = self.bounded("taking the lease", create).await else {
            return Ok(()); // another took it first (or the answer was lost)
        };
        self.revision = revision;
        self.take_over(b, revision, last, sent).await
    }

    /// The group's last primary, as recorded.
    async fn last_primary(&self, b: &Buckets) -> Result<Option<LastPrimary>, String> {
        Ok(self
            .bounded("reading the group", b.groups.get(&self.group))
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Records this instance as the group's primary under `epoch`, then
    /// promotes it (after applying what the last primary's stream holds).
    async fn take_over(
        &mut self,
        b: &Buckets,
        epoch: u64,
        last: Option<LastPrimary>,
        sent: Instant,
    ) -> Result<(), String> {
        let record = LastPrimary {
            instance: self.me().to_string(),
            epoch,
        };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        self.bounded(
            "recording the new primary",
            b.groups.put(&self.group, bytes.into()),
        )
        .await?;
        let old = last.map(|l| l.instance).filter(|i| i != self.me());
        self.promote(b, epoch, old, sent).await
    }

    /// A NATS operation, bounded by the lease's TTL (at least a second): a
    /// starved JetStream must not stall the group's loop.
    async fn bounded<T, E: std::fmt::Display>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(self.ttl().max(Duration::from_secs(1)), f).await {
            Ok(Ok(t)) => Ok(t),
            Ok(Err(e)) => Err(format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no answer in time")),
        }
    }

    /// Whether this instance is the one to take a lapsed lease: the last
    /// primary itself, else the mirror of it that applied the most (ties
    /// to the smaller name); after a grace of two TTLs, any mirror of it.
    async fn may_take(
        &self,
        b: &Buckets,
        last: Option<&LastPrimary>,
        waited: Duration,
    ) -> Result<bool, String> {
        let Some(last) = last else { return Ok(true) };
        if last.instance == self.me() {
            return Ok(true);
        }
        if self.following.as_deref() != Some(last.instance.as_str()) {
            return Ok(false);
        }
        if waited > self.ttl() * 2 {
            return Ok(true);
        }
        let mine = self.position(&last.instance).await;
        let members = self.bounded("listing members", self.members(b)).await?;
        for other in members {
            let ahead =
                other.applied > mine || (other.applied == mine && *other.instance < *self.me());
            if other.instance != self.me()
                && other.following.as_deref() == Some(last.instance.as_str())
                && ahead
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn members(&self, b: &Buckets) -> Result<Vec<Member>, String> {
        let prefix = format!("{}.", self.group);
        let mut keys = b
            .members
            .keys()
            .await
            .map_err(|e| format!("listing members: {e}"))?;
        let mut out = Vec::new();
        while let Some(k) = keys.next().await {
            let Ok(k) = k else { continue };
            if !k.starts_with(&prefix) {
                continue;
            }
            if let Ok(Some(v)) = b.members.get(&k).await
                && let Ok(m) = serde_json::from_slice::<Member>(&v)
            {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// How far this instance's mirror job of `primary` is (its stream
    /// position; 0 without one).
    async fn position(&self, primary: &str) -> u64 {
        self.cluster
            .job_status(&mirror_job(primary))
            .await
            .map_or(0, |s| s.position)
    }

    /// Mirrors `primary` (and no one else).
    async fn follow(&mut self, primary: &str) -> Result<(), String> {
        if self.following.as_deref() == Some(primary) {
            return Ok(());
        }
        if let Some(old) = self.following.take() {
            let _ = self.cluster.delete_job(&mirror_job(&old)).await;
        }
        let spec = SyncSpec {
            name: mirror_job(primary),
            source: primary.to_string(),
            mode: SyncMode::Mirror,
            strategy: ConflictStrategy::LastWriteWins,
            follow: true,
        };
        if self.cluster.job_status(&spec.name).await.is_err() {
            self.cluster
                .create_job(spec)
                .await
                .map_err(|e| format!("mirroring {primary}: {e}"))?;
        }
        self.following = Some(primary.to_string());
        Ok(())
    }

    /// Becomes the primary under `epoch`: applies what `old`'s stream
    /// holds (renewing the lease meanwhile), stops following, reloads the
    /// mailboxes and models, and opens the fence.
    async fn promote(
        &mut self,
        b: &Buckets,
        epoch: u64,
        old: Option<String>,
        mut sent: Instant,
    ) -> Result<(), String> {
        self.gauge.set_role(Role::Promoting { epoch });
        let began = Instant::now();
        if let Some(old) = &old {
            let target = self.stream_end(old, began).await;
            let mut renewed = Instant::now();
            while began.elapsed() < DRAIN_LIMIT {
                if self.position(old).await >= target {
                    break;
                }
                if renewed.elapsed() >= self.ttl() / 4 {
                    sent = self.renew(b, epoch).await?;
                    renewed = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let reached = self.position(old).await;
            if reached < target {
                tracing::error!(
                    "group {}: serving before applying all of {old}'s stream ({reached} of {target})",
                    self.group
                );
            }
        }
        if let Some(f) = self.following.take() {
            let _ = self.cluster.delete_job(&mirror_job(&f)).await;
        }
        self.cluster
            .directory()
            .send(Promote)
            .await
            .map_err(|e| format!("reloading the directory: {e}"))?
            .map_err(|e| format!("reloading the directory: {e}"))?;
        if sent.elapsed() >= self.ttl() / 4 {
            sent = self.renew(b, epoch).await?;
        }
        self.hold(epoch, sent);
        self.gauge.promotions.fetch_add(1, Ordering::Relaxed);
        self.gauge.set_role(Role::Primary { epoch });
        tracing::info!(
            "group {}: primary under epoch {epoch} ({} ms to promote)",
            self.group,
            began.elapsed().as_millis()
        );
        Ok(())
    }

    /// The last sequence `instance`'s stream holds (0 if it cannot be read).
    async fn stream_end(&self, instance: &str, began: Instant) -> u64 {
        while began.elapsed() < DRAIN_LIMIT {
            if let Ok(mut s) = self
                .cluster
                .jetstream()
                .get_stream(stream_name(instance))
                .await
                && let Ok(info) = s.info().await
            {
                return info.state.last_sequence;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        0
    }

    /// Writes this member's progress for the others to rank by.
    async fn report_progress(&self, b: &Buckets) {
        let applied = match &self.following {
            Some(p) => self.position(p).await,
            None => 0,
        };
        let member = Member {
            instance: self.me().to_string(),
            following: self.following.clone(),
            applied,
        };
        let key = format!("{}.{}", self.group, self.me());
        let bytes = serde_json::to_vec(&member).unwrap_or_default();
        let put = self.bounded("reporting progress", b.members.put(key, bytes.into()));
        if let Err(e) = put.await {
            tracing::debug!("group {}: reporting progress: {e}", self.group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirrors_notice_reads_back_and_garbage_is_ignored() {
        let n = AppliedNotice {
            mirror: "b".into(),
            change: 42,
        };
        let back = AppliedNotice::decode(&n.encode()).unwrap();
        assert_eq!((back.mirror.as_str(), back.change), ("b", 42));
        for bad in [&b""[..], b"b", b"b x", b"\xff 1"] {
            assert!(AppliedNotice::decode(bad).is_none());
        }
        let g = GroupGauge::new();
        g.note_applied(AppliedNotice {
            mirror: "b".into(),
            change: 5,
        });
        g.note_applied(AppliedNotice {
            mirror: "c".into(),
            change: 3,
        });
        g.note_applied(AppliedNotice {
            mirror: "b".into(),
            change: 4,
        });
        assert_eq!(*g.watch_mirrored().borrow(), 5);
    }
}
