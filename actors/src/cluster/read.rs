//! Reading from a mirror of a failover group, with read repair
//! (`docs/CLUSTER.md`, "Reading from a mirror").
//!
//! Every member of a group answers `hvs.read.<instance>` (NATS
//! request/reply) for its own store while it is the primary: per asked id,
//! the vector as stored (with its version, hybrid clock and version
//! vector), its tombstone, or nothing. A mirror reading vectors for a
//! client reads its own copy, then asks the primary it follows; where the
//! primary's version differs, the mirror applies it to its store with
//! [`Store::mirror_changes`], the path its mirror job takes (so a version
//! older than the mirror's changes nothing), and answers what its store
//! then holds. A primary that does not answer within [`READ_TIMEOUT`]
//! leaves the mirror's copy as the answer.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hvs_storage::{
    ApplyOutcome, Change, ChangeBody, ChangeKind, Resolution, StorageError, Tombstone,
    VectorRecord, hlc_millis,
};
use hvs_types::ConflictStrategy;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Cluster, Role};
use crate::error::{ActorError, Result};
use crate::hub::ModelRef;
use crate::namespace::{AccessKind, blocking};

/// How long a mirror waits for the primary's versions before it answers
/// its own copy.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// The most ids asked in one request (bounds the answer's size).
const ASK_CHUNK: usize = 256;
/// The name repairs are applied (and any conflict audited) under.
const REPAIR_JOB: &str = "read-repair";

/// The subject on which `instance` answers reads of its store.
pub(crate) fn read_subject(instance: &str) -> String {
    format!("hvs.read.{instance}")
}

/// A mirror's question: the primary's versions of these vectors.
#[derive(Debug, Serialize, Deserialize)]
struct ReadAsk {
    ids: Vec<Uuid>,
}

/// One asked vector as the answering store holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PeerVersion {
    /// Stored: the record, with its version, clock and version vector.
    Live(VectorRecord),
    /// Deleted: its tombstone.
    Gone(Tombstone),
    /// Never stored there (or its tombstone is gone).
    Absent,
}

/// The answer: one version per asked id, in order, or why not.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ReadReply {
    Versions(Vec<PeerVersion>),
    Refused { code: String, message: String },
}

/// What read repair did since the instance started.
#[derive(Debug, Default)]
pub(crate) struct ReadGauge {
    /// Vectors whose copy here was replaced by the primary's on a read.
    repairs: AtomicU64,
    /// Reads answered from this copy because the primary did not answer
    /// in time (or refused: it is not the primary any more).
    unanswered: AtomicU64,
}

/// Read repair's counters (`/health`'s `cluster.group`, `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReadRepairStatus {
    /// Vectors a read on this mirror repaired with the primary's version.
    pub read_repairs: u64,
    /// Reads on this mirror answered from its own copy because the
    /// primary did not answer within 500 ms.
    pub read_repair_unanswered: u64,
}

/// Starts answering reads sent to this instance, for good.
pub(crate) fn start_serving(cluster: &Cluster) {
    cluster.arbiter().spawn(answer(cluster.clone()));
}

async fn answer(cluster: Cluster) {
    let subject = read_subject(cluster.instance());
    let serve = |c: Cluster, ask: ReadAsk| async move { serve(&c, ask).await };
    super::answer_requests(cluster, subject, "mirror's read", serve, |e| {
        refused("bad_request", e)
    })
    .await
}

fn refused(code: &str, message: String) -> ReadReply {
    ReadReply::Refused {
        code: code.into(),
        message,
    }
}

/// This store's versions of the asked vectors; refused unless this
/// instance is the primary (a deposed primary's file may hold writes the
/// group never confirmed: they must not spread through repairs).
async fn serve(cluster: &Cluster, ask: ReadAsk) -> ReadReply {
    if !matches!(cluster.role(), Some(Role::Primary { .. })) {
        return refused("not_primary", "this instance is not the primary".into());
    }
    if ask.ids.len() > ASK_CHUNK {
        return refused(
            "bad_request",
            format!("at most {ASK_CHUNK} ids per read, not {}", ask.ids.len()),
        );
    }
    let store = cluster.store().clone();
    let read = blocking(move || {
        let records = store.batch_retrieve_vectors(&ask.ids)?;
        let mut out = Vec::with_capacity(records.len());
        for (id, r) in ask.ids.iter().zip(records) {
            out.push(match r {
                Some(r) => PeerVersion::Live(r),
                None => store
                    .tombstone(*id)?
                    .map_or(PeerVersion::Absent, PeerVersion::Gone),
            });
        }
        Ok(out)
    })
    .await;
    match read {
        Ok(versions) => ReadReply::Versions(versions),
        Err(e) => refused(e.code(), e.to_string()),
    }
}

/// The change that brings `version` here, as the primary's feed would
/// carry it (`None`: nothing to apply).
fn change_of(version: PeerVersion) -> Option<Change> {
    let (kind, namespace, id, number, timestamp_ms, hlc, body) = match version {
        PeerVersion::Live(r) => (
            ChangeKind::Update,
            r.namespace.clone(),
            r.id,
            r.version,
            r.timestamp_ms,
            r.hlc,
            ChangeBody::Vector(r),
        ),
        PeerVersion::Gone(t) => (
            ChangeKind::Delete,
            t.namespace.clone(),
            t.id,
            t.version,
            hlc_millis(t.hlc),
            t.hlc,
            ChangeBody::Tombstone(t),
        ),
        PeerVersion::Absent => return None,
    };
    Some(Change {
        seq: 0,
        kind,
        namespace,
        id: Some(id),
        version: number,
        timestamp_ms,
        hlc,
        body: Some(body),
    })
}

/// Whether the primary's `theirs` should be offered to this store, whose
/// copy is `mine`: it differs from what this mirror would answer. (Which
/// of two versions is newer is the store's to decide, by their clocks.)
fn differs(mine: Option<&VectorRecord>, theirs: &PeerVersion) -> bool {
    match (mine, theirs) {
        (Some(m), PeerVersion::Live(t)) => m != t,
        (None, PeerVersion::Live(_)) => true,
        (Some(_), PeerVersion::Gone(_)) => true,
        // Absent here either way; or the primary lacks what this mirror
        // holds (nothing a mirror may do about it).
        (None, PeerVersion::Gone(_)) | (_, PeerVersion::Absent) => false,
    }
}

impl Cluster {
    /// Read repair: on a mirror, asks the primary it follows for its
    /// versions of `ids` (whose copies here are `mine`) and applies those
    /// that differ. The ids repaired (their copy here is now the
    /// primary's); none when this instance is not a mirror, or the primary
    /// did not answer within [`READ_TIMEOUT`].
    pub(crate) async fn repair_reads(
        &self,
        ids: &[Uuid],
        mine: &[Option<VectorRecord>],
    ) -> Vec<Uuid> {
        let Some(Role::Mirror { primary, .. }) = self.role() else {
            return Vec::new();
        };
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut changes = Vec::new();
        for (asked, copies) in ids.chunks(ASK_CHUNK).zip(mine.chunks(ASK_CHUNK)) {
            let versions = match self.ask_versions(&primary, asked, deadline).await {
                Ok(v) if v.len() == asked.len() => v,
                Ok(v) => {
                    tracing::warn!(
                        "read repair: {primary} answered {} versions for {} ids",
                        v.len(),
                        asked.len()
                    );
                    self.inner.reads.unanswered.fetch_add(1, Ordering::Relaxed);
                    return Vec::new();
                }
                Err(e) => {
                    tracing::debug!("read repair: asking {primary}: {e}");
                    self.inner.reads.unanswered.fetch_add(1, Ordering::Relaxed);
                    return Vec::new();
                }
            };
            for (copy, theirs) in copies.iter().zip(versions) {
                if differs(copy.as_ref(), &theirs) {
                    changes.extend(change_of(theirs));
                }
            }
        }
        if changes.is_empty() {
            return Vec::new();
        }
        let offered: Vec<Uuid> = changes.iter().filter_map(|c| c.id).collect();
        let store = self.store().clone();
        let applied = blocking(move || {
            Ok(store.mirror_changes(REPAIR_JOB, ConflictStrategy::LastWriteWins, changes)?)
        })
        .await;
        let outcomes = match applied {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("read repair: applying the primary's versions: {e}");
                return Vec::new();
            }
        };
        let repaired: Vec<Uuid> = offered
            .into_iter()
            .zip(outcomes)
            .filter(|(_, o)| {
                matches!(
                    o,
                    ApplyOutcome::Applied
                        | ApplyOutcome::Conflict(Resolution::TookSource | Resolution::Combined)
                )
            })
            .map(|(id, _)| id)
            .collect();
        self.inner
            .reads
            .repairs
            .fetch_add(repaired.len() as u64, Ordering::Relaxed);
        repaired
    }

    /// The primary's versions of `ids`, asked on NATS before `deadline`.
    async fn ask_versions(
        &self,
        primary: &str,
        ids: &[Uuid],
        deadline: Instant,
    ) -> std::result::Result<Vec<PeerVersion>, String> {
        let bytes =
            rmp_serde::to_vec_named(&ReadAsk { ids: ids.to_vec() }).map_err(|e| e.to_string())?;
        let asked = self.nats().request(read_subject(primary), bytes.into());
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, asked).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no answer in {} ms", READ_TIMEOUT.as_millis())),
        };
        match rmp_serde::from_slice::<ReadReply>(&message.payload) {
            Ok(ReadReply::Versions(v)) => Ok(v),
            Ok(ReadReply::Refused { code, message }) => Err(format!("{code}: {message}")),
            Err(e) => Err(format!("an unreadable answer: {e}")),
        }
    }

    /// Read repair's counters since the instance started.
    pub fn read_repair_status(&self) -> ReadRepairStatus {
        ReadRepairStatus {
            read_repairs: self.inner.reads.repairs.load(Ordering::Relaxed),
            read_repair_unanswered: self.inner.reads.unanswered.load(Ordering::Relaxed),
        }
    }
}

impl ModelRef {
    /// Records by id, as [`ModelRef::retrieve_vectors`]; on a mirror of a
    /// failover group, after read repair: where the primary holds another
    /// version than this mirror's copy, the copy is repaired first and the
    /// answer is the repaired copy (the mirror's own copy if the primary
    /// does not answer within 500 ms).
    pub async fn read_vectors(&self, ids: &[Uuid]) -> Result<Vec<Option<VectorRecord>>> {
        let mut found = self.retrieve_vectors(ids).await?;
        let Ok(cluster) = self.hub.cluster() else {
            return Ok(found);
        };
        let repaired = cluster.repair_reads(ids, &found).await;
        if repaired.is_empty() {
            return Ok(found);
        }
        let checked: BTreeSet<String> = found
            .iter()
            .flatten()
            .map(|r| r.namespace.clone())
            .collect();
        let store = self.hub.inner.store.clone();
        let asked = repaired.clone();
        let now = blocking(move || Ok(store.batch_retrieve_vectors(&asked)?)).await?;
        for (id, record) in repaired.iter().zip(now) {
            for (slot, _) in found.iter_mut().zip(ids).filter(|(_, i)| *i == id) {
                *slot = record.clone();
            }
        }
        let unchecked: BTreeSet<String> = found
            .iter()
            .flatten()
            .map(|r| r.namespace.clone())
            .filter(|ns| !checked.contains(ns))
            .collect();
        for ns in unchecked {
            self.check_access(&ns, AccessKind::Read).await?;
        }
        Ok(found)
    }

    /// Refused with `not_primary` on a member of a failover group that is
    /// not its primary: mailboxes are served by the primary alone
    /// (`receive`, `subscribe`, `ack`, `release`).
    pub fn check_mail_served(&self) -> Result<()> {
        match self.hub.cluster().ok().and_then(Cluster::role) {
            None | Some(Role::Primary { .. }) => Ok(()),
            Some(Role::Mirror { address, .. }) => {
                Err(ActorError::Storage(StorageError::NotPrimary {
                    primary: address,
                }))
            }
            Some(_) => Err(ActorError::Storage(StorageError::NotPrimary {
                primary: None,
            })),
        }
    }
}
