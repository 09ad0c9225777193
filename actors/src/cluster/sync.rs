//! One actor per sync job: a durable JetStream consumer on the source's
//! feed stream, filtered to the job's namespaces, whose changes are
//! applied here in batches (one commit each) and acknowledged only after
//! that commit, so a job resumes where it stopped after any restart. The
//! store makes applying idempotent (by version vector), so a change
//! delivered twice is applied once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream::{self, consumer::PullConsumer};
use futures_util::StreamExt;
use hvs_storage::{ApplyOutcome, Change, ChangeBody, ChangeKind, Resolution, StorageError, Store};
use hvs_types::{SyncMode, SyncSpec, SyncState, SyncStatus};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::feed::decode_change;
use super::{JOBS, feed_subject, stream_name};
use crate::directory::{AdoptNamespace, Directory, ForgetNamespace};
use crate::error::{ActorError, Result};
use crate::namespace;

/// Changes fetched and applied per batch (one commit).
const BATCH: usize = 512;
/// How long one fetch waits for changes when there are none.
const FETCH_WAIT: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a running job's record (its counts) is written.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The durable consumer of job `job` of instance `instance`.
pub(crate) fn consumer_name(instance: &str, job: &str) -> String {
    format!("hvs_sync_{instance}_{job}")
}

/// What this instance keeps of a job (catalog kind [`JOBS`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub(crate) status: SyncStatus,
    /// Namespaces whose creation was refused (another manifold here):
    /// their vectors are refused too.
    #[serde(default)]
    pub(crate) refused_namespaces: BTreeSet<String>,
    /// The source's feed sequence number of the change at `position`
    /// (from its message id), to tell whether the stream still holds
    /// what was applied where it was.
    #[serde(default)]
    pub(crate) change: u64,
}

impl JobRecord {
    pub(crate) fn new(spec: SyncSpec) -> JobRecord {
        JobRecord {
            status: SyncStatus {
                spec,
                state: SyncState::Starting,
                applied: 0,
                unchanged: 0,
                skipped: 0,
                refused: 0,
                conflicts: Default::default(),
                position: 0,
                pending: 0,
                lag_ms: 0,
                last_error: None,
            },
            refused_namespaces: BTreeSet::new(),
            change: 0,
        }
    }
}

pub(crate) struct SyncActor {
    record: JobRecord,
    store: Arc<Store>,
    js: jetstream::Context,
    /// `true` while paused; the job's loop waits on it.
    paused: watch::Sender<bool>,
    /// The instance this job runs on (its consumer's name).
    instance: String,
    /// Held by the loop while it applies a batch (see [`Gate`]).
    gate: Gate,
    /// Connections to NATS made so far (the loop checks its consumer
    /// again after each reconnection).
    connections: Arc<AtomicU64>,
    directory: Addr<Directory>,
    /// When the record was last written.
    saved: std::time::Instant,
    /// `last_error` is a fault (NATS, the stream, this store), not a
    /// refusal: the next batch that goes through clears it.
    troubled: bool,
}

/// Held by a job's loop from its check of the pause flag through the
/// commit and acknowledgement of a batch: once a pause has set the flag
/// and then taken the gate, no batch is applied until the job resumes.
pub(crate) type Gate = Arc<tokio::sync::Mutex<()>>;

impl SyncActor {
    pub(crate) fn new(
        record: JobRecord,
        store: Arc<Store>,
        js: jetstream::Context,
        instance: String,
        gate: Gate,
        connections: Arc<AtomicU64>,
        directory: Addr<Directory>,
    ) -> SyncActor {
        let paused = record.status.state == SyncState::Paused;
        SyncActor {
            record,
            store,
            js,
            paused: watch::channel(paused).0,
            instance,
            gate,
            connections,
            directory,
            saved: std::time::Instant::now(),
            troubled: false,
        }
    }

    /// Writes the job's record, in the background (a lost write costs
    /// only counts: the position is JetStream's).
    fn save(&mut self) {
        self.saved = std::time::Instant::now();
        let Ok(bytes) = serde_json::to_vec(&self.record) else {
            return;
        };
        let name = &self.record.status.spec.name;
        self.store
            .catalog_put_then(JOBS, name, bytes, Box::new(|_| {}));
    }
}

impl Actor for SyncActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.record.status.state == SyncState::Done {
            return;
        }
        let job = JobLoop {
            spec: self.record.status.spec.clone(),
            instance: self.instance.clone(),
            consumer_name: consumer_name(&self.instance, &self.record.status.spec.name),
            refused_namespaces: self.record.refused_namespaces.clone(),
            position: self.record.status.position,
            change: self.record.change,
            acked: 0,
            stale: false,
            store: self.store.clone(),
            js: self.js.clone(),
            paused: self.paused.subscribe(),
            gate: self.gate.clone(),
            connections: self.connections.clone(),
            directory: self.directory.clone(),
            actor: ctx.address(),
        };
        ctx.spawn(actix::fut::wrap_future(job.run()));
    }
}

/// The job's status.
pub(crate) struct GetStatus;

impl Message for GetStatus {
    type Result = SyncStatus;
}

impl Handler<GetStatus> for SyncActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.record.status.clone())
    }
}

/// An operator's command.
pub(crate) enum Control {
    /// Pause (`true`) or resume (`false`).
    Pause(bool),
    /// Stop for good (the job is being deleted).
    Stop,
}

impl Message for Control {
    type Result = Result<()>;
}

impl Handler<Control> for SyncActor {
    type Result = Result<()>;

    fn handle(&mut self, c: Control, ctx: &mut Context<Self>) -> Result<()> {
        let status = &mut self.record.status;
        match c {
            Control::Pause(p) => {
                if status.state == SyncState::Done {
                    return Err(ActorError::InvalidRequest(format!(
                        "sync job {:?} is a one-shot job that has finished",
                        status.spec.name
                    )));
                }
                status.state = if p {
                    SyncState::Paused
                } else {
                    SyncState::Running
                };
                self.paused.send_replace(p);
                self.save();
            }
            Control::Stop => ctx.stop(),
        }
        Ok(())
    }
}

/// What one batch did, from the job's loop.
#[derive(Default)]
struct Progress {
    applied: u64,
    unchanged: u64,
    skipped: u64,
    refused: u64,
    kept_target: u64,
    took_source: u64,
    combined: u64,
    position: u64,
    change: u64,
    pending: u64,
    lag_ms: u64,
    refused_namespaces: Vec<String>,
    error: Option<String>,
}

/// A report from the loop.
enum Report {
    Batch(Progress),
    /// Reached NATS and the source's stream (again).
    Started,
    /// Cannot go on for now (the loop retries).
    Trouble(String),
    /// A one-shot job caught up.
    Done,
}

impl Message for Report {
    type Result = ();
}

impl Handler<Report> for SyncActor {
    type Result = ();

    fn handle(&mut self, r: Report, _: &mut Context<Self>) {
        let paused = *self.paused.borrow();
        let s = &mut self.record.status;
        match r {
            Report::Started => {
                if self.troubled {
                    s.last_error = None;
                    self.troubled = false;
                }
                if s.state == SyncState::Starting {
                    s.state = if paused {
                        SyncState::Paused
                    } else {
                        SyncState::Running
                    };
                }
                return;
            }
            Report::Trouble(e) => {
                s.last_error = Some(e);
                self.troubled = true;
                return;
            }
            Report::Done => {
                s.state = SyncState::Done;
                self.save();
                return;
            }
            Report::Batch(p) => {
                s.applied += p.applied;
                s.unchanged += p.unchanged;
                s.skipped += p.skipped;
                s.refused += p.refused;
                s.conflicts.kept_target += p.kept_target;
                s.conflicts.took_source += p.took_source;
                s.conflicts.combined += p.combined;
                s.position = p.position;
                self.record.change = p.change;
                s.pending = p.pending;
                s.lag_ms = p.lag_ms;
                // A refusal stays until the next; a fault goes once a batch
                // went through.
                if p.error.is_some() {
                    s.last_error = p.error;
                } else if self.troubled {
                    s.last_error = None;
                }
                self.troubled = false;
                self.record.refused_namespaces.extend(p.refused_namespaces);
            }
        }
        // At most once a second: the counts are the job's, the position
        // JetStream's, so a record a little behind costs nothing.
        if self.saved.elapsed() >= SAVE_EVERY {
            self.save();
        }
    }
}

/// The job's work, spawned in its actor's context (and so stopped with it).
struct JobLoop {
    spec: SyncSpec,
    /// The instance the job runs on.
    instance: String,
    consumer_name: String,
    refused_namespaces: BTreeSet<String>,
    /// The stream sequence and the source's change sequence of the last
    /// change applied and acknowledged.
    position: u64,
    change: u64,
    /// The consumer sequence of the last delivery acknowledged: the next
    /// batch must start right after it.
    acked: u64,
    /// The consumer holds deliveries that were not applied: make it anew.
    stale: bool,
    store: Arc<Store>,
    js: jetstream::Context,
    paused: watch::Receiver<bool>,
    gate: Gate,
    connections: Arc<AtomicU64>,
    /// Told of namespaces brought here and deleted.
    directory: Addr<Directory>,
    actor: Addr<SyncActor>,
}

impl JobLoop {
    async fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        let mut consumer: Option<PullConsumer> = None;
        let mut connections = self.connections.load(Ordering::SeqCst);
        loop {
            if self.paused.wait_for(|p| !*p).await.is_err() {
                return;
            }
            let now = self.connections.load(Ordering::SeqCst);
            if now != connections || self.stale {
                connections = now;
                self.stale = false;
                consumer = None;
            }
            // Found (or made) again after any fault: a nats-server that
            // lost the consumer gets it back, delivering from the start
            // (applying is idempotent).
            let c = match &consumer {
                Some(c) => c.clone(),
                None => match self.consumer().await {
                    Ok((c, acked)) => {
                        self.actor.do_send(Report::Started);
                        self.acked = acked;
                        consumer = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        self.actor.do_send(Report::Trouble(e));
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            match self.batch(&c).await {
                Ok(true) => backoff = Duration::from_millis(50),
                Ok(false) if !self.spec.follow => match caught_up(&c).await {
                    Ok(true) => {
                        self.actor.do_send(Report::Done);
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => self.actor.do_send(Report::Trouble(e)),
                },
                Ok(false) => {}
                Err(e) => {
                    consumer = None;
                    self.actor.do_send(Report::Trouble(e));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The job's durable consumer on the source's stream, and the
    /// consumer sequence of the last delivery acknowledged.
    ///
    /// Acknowledging a batch acknowledges every delivery before it
    /// (`AckPolicy::All`), so every delivery must have been applied. A
    /// consumer that holds deliveries nobody acknowledged (a batch in
    /// flight when this instance or the connection died) is made anew,
    /// delivering from the job's position.
    ///
    /// A nats-server killed may also lose the last messages it had
    /// acknowledged (its file store writes behind its acknowledgements)
    /// while the consumer's position survives; the source then publishes
    /// those changes again under new stream sequence numbers, which the
    /// consumer would skip (nats-server issue 5412). If the stream no
    /// longer holds, at the job's position, the change applied there, the
    /// consumer is made anew from the first change after the last applied.
    async fn consumer(&self) -> std::result::Result<(PullConsumer, u64), String> {
        use jetstream::consumer::DeliverPolicy;
        let stream_name = stream_name(&self.spec.source);
        let stream = self
            .js
            .get_stream(&stream_name)
            .await
            .map_err(|e| format!("the source's stream {stream_name}: {e}"))?;
        let existing: Option<PullConsumer> = stream.get_consumer(&self.consumer_name).await.ok();
        let after_position = if self.position == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: self.position + 1,
            }
        };
        let deliver = if self.position > 0 && !self.still_holds(&stream).await? {
            let start = self.first_after(&stream).await?;
            tracing::warn!(
                "sync job {}: the stream {stream_name} was rewritten below position {}; \
                 delivering again from {start}",
                self.spec.name,
                self.position
            );
            DeliverPolicy::ByStartSequence {
                start_sequence: start,
            }
        } else if let Some(mut c) = existing {
            let info = c
                .info()
                .await
                .map_err(|e| format!("the job's consumer {}: {e}", self.consumer_name))?;
            if info.num_ack_pending == 0 {
                let acked = info.ack_floor.consumer_sequence;
                return Ok((c, acked));
            }
            after_position
        } else {
            after_position
        };
        match stream.delete_consumer(&self.consumer_name).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("not found") => {}
            Err(e) => return Err(format!("replacing the job's consumer: {e}")),
        }
        let config = jetstream::consumer::pull::Config {
            durable_name: Some(self.consumer_name.clone()),
            filter_subject: self.filter_subject(),
            ack_policy: jetstream::consumer::AckPolicy::All,
            deliver_policy: deliver,
            max_ack_pending: -1,
            ..Default::default()
        };
        let c = stream
            .create_consumer(config)
            .await
            .map_err(|e| format!("the job's consumer {}: {e}", self.consumer_name))?;
        Ok((c, 0))
    }

    /// Whether the stream holds, at the job's position, the change applied
    /// from there.
    async fn still_holds(
        &self,
        stream: &jetstream::stream::Stream,
    ) -> std::result::Result<bool, String> {
        Ok(change_at(stream, self.position).await? == Some(self.change))
    }

    /// The stream sequence of the first change after the last one applied
    /// (the source's change sequence numbers grow along its stream), or
    /// the stream's end if there is none yet.
    async fn first_after(
        &self,
        stream: &jetstream::stream::Stream,
    ) -> std::result::Result<u64, String> {
        let mut stream = stream.clone();
        let state = stream
            .info()
            .await
            .map_err(|e| format!("reading the source's stream: {e}"))?
            .state
            .clone();
        let (mut lo, mut hi) = (state.first_sequence.max(1), state.last_sequence + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match change_at(&stream, mid).await? {
                Some(c) if c <= self.change => lo = mid + 1,
                _ => hi = mid,
            }
        }
        Ok(lo)
    }

    /// One namespace's subject when the job names exactly one; else every
    /// namespace's (the rest is filtered here).
    fn filter_subject(&self) -> String {
        let namespaces = match &self.spec.mode {
            // A mirror takes changes of no namespace too (contracts,
            // blocks, isolation policies).
            SyncMode::Mirror => return format!("hvs.feed.{}.>", self.spec.source),
            SyncMode::Full => &[][..],
            SyncMode::Partial { namespaces, .. } | SyncMode::Selective { namespaces, .. } => {
                &namespaces[..]
            }
        };
        match namespaces {
            [one] => feed_subject(&self.spec.source, Some(one)),
            _ => format!("hvs.feed.{}.n.>", self.spec.source),
        }
    }

    /// Fetches, applies and acknowledges one batch; `false` if there was
    /// nothing to fetch.
    async fn batch(&mut self, consumer: &PullConsumer) -> std::result::Result<bool, String> {
        let mut messages = consumer
            .fetch()
            .max_messages(BATCH)
            .expires(FETCH_WAIT)
            .messages()
            .await
            .map_err(|e| format!("fetching: {e}"))?;
        let mut batch = Vec::new();
        while let Some(m) = messages.next().await {
            batch.push(m.map_err(|e| format!("fetching: {e}"))?);
        }
        let Some(last) = batch.last() else {
            return Ok(false);
        };
        // Every delivery since the last acknowledgement is in this batch,
        // or acknowledging it would acknowledge a change never applied.
        let mut expected = self.acked;
        for m in &batch {
            let seq = m.info().map_or(0, |i| i.consumer_sequence);
            if seq != expected + 1 {
                return Err(format!(
                    "delivery {seq} came after {expected}: a delivery went astray; \
                     delivering again from the job's position"
                ));
            }
            expected = seq;
        }
        let gate = self.gate.clone();
        let _applying = gate.lock().await;
        if *self.paused.borrow() {
            // Paused while fetching: the batch comes again on resuming,
            // from a consumer made anew at the job's position.
            self.stale = true;
            return Ok(false);
        }
        let info = last
            .info()
            .map_err(|e| format!("a message without metadata: {e}"))?;
        let change = message_change(last.headers.as_ref());
        let (position, pending) = (info.stream_sequence, info.pending);
        let published_ns = info.published.unix_timestamp_nanos();
        let mut progress = Progress::default();
        let mut changes = Vec::with_capacity(batch.len());
        for m in &batch {
            let c = match decode_change(&m.payload) {
                Ok(c) => c,
                Err(e) => {
                    progress.refused += 1;
                    progress.error = Some(e);
                    continue;
                }
            };
            if !self.in_scope(&c)? {
                progress.skipped += 1;
            } else if let Some(e) = self.screen(&c) {
                progress.refused += 1;
                progress.error = Some(e);
            } else {
                changes.push(c);
            }
        }
        // On a fault of this store the batch comes again, from a consumer
        // made anew at the job's position.
        let outcomes = self.apply(&changes).await?;
        for (c, o) in changes.iter().zip(outcomes) {
            if matches!(o, ApplyOutcome::Applied) {
                self.tell_directory(c).await?;
            }
            progress.count(c, o);
        }
        for ns in &progress.refused_namespaces {
            self.refused_namespaces.insert(ns.clone());
        }
        // Acknowledging the last acknowledges the batch (`AckPolicy::All`);
        // if the acknowledgement is lost, the batch comes again and applies
        // as unchanged.
        last.double_ack()
            .await
            .map_err(|e| format!("acknowledging: {e}"))?;
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        progress.position = position;
        progress.change = change;
        self.acked = expected;
        self.position = position;
        self.change = change;
        progress.pending = pending;
        progress.lag_ms = ((now_ns - published_ns).max(0) / 1_000_000) as u64;
        self.actor.do_send(Report::Batch(progress));
        if self.spec.mode == SyncMode::Mirror {
            // Told to the source, whose `replicated` writes wait for a
            // mirror to hold them (`group.rs`); a lost notice only delays
            // them until the next.
            let notice = super::group::AppliedNotice {
                mirror: self.instance.clone(),
                change,
            };
            let _ = self
                .js
                .client()
                .publish(
                    super::group::applied_subject(&self.spec.source),
                    notice.encode().into(),
                )
                .await;
        }
        Ok(true)
    }

    /// Applies `changes` in one commit; on a fault of this store, every
    /// message of the batch is handed back for redelivery.
    async fn apply(&self, changes: &[Change]) -> std::result::Result<Vec<ApplyOutcome>, String> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let (store, job, strategy) = (
            self.store.clone(),
            self.spec.name.clone(),
            self.spec.strategy,
        );
        let changes = changes.to_vec();
        let mirror = self.spec.mode == SyncMode::Mirror;
        let applied = tokio::task::spawn_blocking(move || {
            if mirror {
                store.mirror_changes(&job, strategy, changes)
            } else {
                store.apply_changes(&job, strategy, changes)
            }
        });
        match applied.await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(e)) => Err(format!("applying: {e}")),
            Err(_) => Err("applying: the store's task ended".into()),
        }
    }

    /// Why change `c` is refused before it is applied, if it is: a
    /// namespace that has another manifold here is never written to. Its
    /// creation is passed on (and refused by the store with
    /// `geometry_mismatch`, counted and reported); its vectors stop here.
    fn screen(&mut self, c: &Change) -> Option<String> {
        if let Some(ChangeBody::Namespace(config)) = &c.body
            && let Ok(local) = self.store.namespace(&config.name)
            && local.geometry != config.geometry
        {
            self.refused_namespaces.insert(config.name.clone());
            return None;
        }
        if c.kind == ChangeKind::DeleteNamespace && self.refused_namespaces.remove(&c.namespace) {
            return Some(format!(
                "change {}: namespace {:?} has another manifold here and is not deleted \
                 (geometry_mismatch)",
                c.seq, c.namespace
            ));
        }
        self.refused_namespaces.contains(&c.namespace).then(|| {
            format!(
                "change {}: namespace {:?} has another manifold here (geometry_mismatch)",
                c.seq, c.namespace
            )
        })
    }

    /// Tells the directory of a namespace this job's change `c` brought
    /// (its access list) or deleted, so models here reach it as there.
    async fn tell_directory(&self, c: &Change) -> std::result::Result<(), String> {
        let lost = |e: MailboxError| format!("the directory: {e}");
        match (&c.kind, &c.body) {
            (ChangeKind::CatalogPut, Some(ChangeBody::Catalog { kind, value, .. }))
                if kind == namespace::CATALOG_KIND =>
            {
                let bytes = value.as_deref().unwrap_or_default();
                match serde_json::from_slice::<namespace::NamespaceInfo>(bytes) {
                    Ok(info) => self
                        .directory
                        .send(AdoptNamespace(info))
                        .await
                        .map_err(lost),
                    Err(e) => Err(format!("change {}: an unreadable access list: {e}", c.seq)),
                }
            }
            (ChangeKind::DeleteNamespace, _) => self
                .directory
                .send(ForgetNamespace(c.namespace.clone()))
                .await
                .map_err(lost)?
                .map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    /// Whether the job copies change `c` here.
    fn in_scope(&self, c: &Change) -> std::result::Result<bool, String> {
        if self.spec.mode == SyncMode::Mirror {
            return Ok(true);
        }
        let vector = matches!(
            c.kind,
            ChangeKind::Insert | ChangeKind::Update | ChangeKind::Delete
        );
        // A namespace's creation, deletion and catalog records (its access
        // list) go wherever its vectors go.
        let namespace_change = matches!(
            c.kind,
            ChangeKind::CreateNamespace | ChangeKind::DeleteNamespace
        ) || (c.kind == ChangeKind::CatalogPut && !c.namespace.is_empty());
        if !(vector || namespace_change) {
            return Ok(false);
        }
        let named =
            |namespaces: &[String]| namespaces.is_empty() || namespaces.contains(&c.namespace);
        let here = |id| -> std::result::Result<bool, String> {
            let known = self.store.retrieve_vector(id).map(|r| r.is_some());
            let gone = self.store.tombstone(id).map(|t| t.is_some());
            Ok(known.map_err(|e| e.to_string())? || gone.map_err(|e| e.to_string())?)
        };
        Ok(match (&self.spec.mode, &c.body) {
            (SyncMode::Full, _) => true,
            (SyncMode::Partial { namespaces, .. }, _) if !named(namespaces) => false,
            (SyncMode::Selective { namespaces, .. }, _) if !named(namespaces) => false,
            (_, _) if namespace_change => true,
            (SyncMode::Partial { regions, .. }, Some(ChangeBody::Vector(r))) => {
                regions.is_empty() || r.region.as_ref().is_some_and(|g| regions.contains(g))
            }
            (SyncMode::Selective { filter, .. }, Some(ChangeBody::Vector(r))) => {
                filter.matches(&r.metadata)
            }
            // A deletion reaches a partial or selective copy only if the
            // vector is (or was) here.
            (_, Some(ChangeBody::Tombstone(t))) => here(t.id)?,
            _ => false,
        })
    }
}

impl Progress {
    fn count(&mut self, c: &Change, o: ApplyOutcome) {
        match o {
            ApplyOutcome::Applied => self.applied += 1,
            ApplyOutcome::Unchanged => self.unchanged += 1,
            ApplyOutcome::Conflict(r) => match r {
                Resolution::KeptTarget => self.kept_target += 1,
                Resolution::TookSource => self.took_source += 1,
                Resolution::Combined => self.combined += 1,
            },
            ApplyOutcome::Refused(e) => {
                self.refused += 1;
                if matches!(e, StorageError::GeometryMismatch { .. }) {
                    self.refused_namespaces.push(c.namespace.clone());
                }
                self.error = Some(format!("change {}: {} ({})", c.seq, e, e.code()));
            }
        }
    }
}

/// The source's change sequence number in a message's id
/// (`<instance>:<sequence>`), 0 if it has none.
fn message_change(headers: Option<&async_nats::HeaderMap>) -> u64 {
    headers
        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
        .and_then(|id| {
            id.as_str()
                .rsplit_once(':')
                .and_then(|(_, s)| s.parse().ok())
        })
        .unwrap_or(0)
}

/// The change sequence number of the stream's message `seq`; `None` if
/// the stream holds no such message.
async fn change_at(
    stream: &jetstream::stream::Stream,
    seq: u64,
) -> std::result::Result<Option<u64>, String> {
    match stream.get_raw_message(seq).await {
        Ok(m) => Ok(Some(message_change(Some(&m.headers)))),
        Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(format!("reading the source's stream at {seq}: {e}")),
    }
}

/// Whether a one-shot job has everything its source's stream held.
async fn caught_up(consumer: &PullConsumer) -> std::result::Result<bool, String> {
    let mut consumer = consumer.clone();
    let info = consumer
        .info()
        .await
        .map_err(|e| format!("the job's consumer: {e}"))?;
    Ok(info.num_pending == 0 && info.num_ack_pending == 0)
}
