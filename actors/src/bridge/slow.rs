//! Slow bridges: a namespace of another instance copied here in chunks,
//! under a rate limit, resumable, checked by digest at the end.
//!
//! The source answers `hvs.bridge.<instance>.slow` (NATS request/reply,
//! msgpack): a [`SlowAsk::Chunk`] with the vectors after a cursor in id
//! order as they are stored (ids, versions, clocks and all), or a
//! [`SlowAsk::Digest`] of the namespace ([`Store::namespace_digest`]).
//! The target applies each chunk in one commit with
//! [`Store::apply_changes`] (a version already here changes nothing, so a
//! chunk applied twice changes nothing) and keeps its cursor in its bridge
//! record; a [`TokenBucket`] spaces the chunks so that the bytes received
//! hold the rate on average.
//!
//! The copy reads the source as it is when each chunk is asked for, not a
//! snapshot: a vector stored meanwhile with an id past the cursor is
//! copied; one updated or deleted behind the cursor is not, and the final
//! digests then differ (the bridge fails, saying both).

use std::time::{Duration, Instant};

use hvs_storage::{
    ApplyOutcome, Change, ChangeBody, ChangeKind, ConflictStrategy, NamespaceDigest, SpaceConfig,
    StorageError, Store, VectorRecord,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cluster::Cluster;
use crate::namespace::blocking;

/// How long the target waits for one answer of the source.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// Room left in a NATS message for the reply's framing.
const FRAMING: usize = 64 * 1024;
/// A chunk's vectors fill at most this many bytes, whatever the server allows.
const MAX_CHUNK_BYTES: usize = 8 << 20;

/// The subject `instance` answers slow bridges on.
fn subject(instance: &str) -> String {
    format!("hvs.bridge.{instance}.slow")
}

/// What a target asks its source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SlowAsk {
    /// At most `limit` vectors of `namespace` with an id after `after`.
    Chunk {
        namespace: String,
        after: Option<Uuid>,
        limit: u32,
    },
    /// The digest of `namespace`.
    Digest { namespace: String },
}

/// What the source answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SlowReply {
    /// The next vectors in id order, the namespace's configuration, and
    /// whether any follow them.
    Chunk {
        config: SpaceConfig,
        vectors: Vec<VectorRecord>,
        more: bool,
    },
    Digest(NamespaceDigest),
    Refused {
        code: String,
        message: String,
    },
}

/// Why a step of the copy did not go through.
#[derive(Debug)]
pub(super) enum StepError {
    /// Worth another try later: the source is unreachable or answered
    /// with a fault, or this store failed a write.
    Retry(String),
    /// The copy cannot go on: the source has no such namespace, the
    /// target refused a change, the digests differ.
    Fail(String),
}

impl StepError {
    fn refused(code: &str, message: &str) -> StepError {
        let text = format!("{code}: {message}");
        match code {
            "unknown_namespace" | "bad_request" => StepError::Fail(text),
            _ => StepError::Retry(text),
        }
    }
}

fn retry(what: &str, e: impl std::fmt::Display) -> StepError {
    StepError::Retry(format!("{what}: {e}"))
}

/// Starts answering slow bridges' asks sent to this instance, for good.
pub(crate) fn start_serving(cluster: &Cluster) {
    cluster.arbiter().spawn(answer(cluster.clone()));
}

async fn answer(cluster: Cluster) {
    let subject = subject(cluster.instance());
    let serve = |c: Cluster, ask: SlowAsk| async move { serve(&c, ask).await };
    crate::cluster::answer_requests(cluster, subject, "slow bridge ask", serve, |e| {
        refused("bad_request", e)
    })
    .await
}

fn refused(code: &str, message: String) -> SlowReply {
    SlowReply::Refused {
        code: code.into(),
        message,
    }
}

async fn serve(cluster: &Cluster, ask: SlowAsk) -> SlowReply {
    let store = cluster.store().clone();
    let budget = (cluster.nats().server_info().max_payload)
        .saturating_sub(FRAMING)
        .clamp(FRAMING, MAX_CHUNK_BYTES);
    let answered = blocking(move || {
        Ok(match ask {
            SlowAsk::Chunk {
                namespace,
                after,
                limit,
            } => chunk(&store, &namespace, after, limit, budget),
            SlowAsk::Digest { namespace } => {
                store.namespace_digest(&namespace).map(SlowReply::Digest)
            }
        })
    })
    .await;
    match answered {
        Ok(Ok(reply)) => reply,
        Ok(Err(StorageError::NamespaceNotFound(n))) => {
            refused("unknown_namespace", format!("no namespace {n:?} here"))
        }
        Ok(Err(e)) => refused(e.code(), e.to_string()),
        Err(e) => refused(e.code(), e.to_string()),
    }
}

/// The vectors after `after`, at most `limit` (1 to 10,000) and at most
/// `budget` bytes encoded (at least one).
fn chunk(
    store: &Store,
    namespace: &str,
    after: Option<Uuid>,
    limit: u32,
    budget: usize,
) -> hvs_storage::Result<SlowReply> {
    let config = store.namespace(namespace)?;
    let limit = (limit as usize).clamp(1, hvs_storage::MAX_RESULTS);
    let (mut vectors, next) = store.scroll(namespace, after, limit, None)?;
    let mut used = 0;
    let mut fits = vectors.len();
    for (i, r) in vectors.iter().enumerate() {
        used += rmp_serde::to_vec_named(r).map_or(budget, |b| b.len());
        if used > budget && i > 0 {
            fits = i;
            break;
        }
    }
    let trimmed = fits < vectors.len();
    vectors.truncate(fits);
    Ok(SlowReply::Chunk {
        config,
        vectors,
        more: next.is_some() || trimmed,
    })
}

/// A chunk as the target received it.
pub(super) struct Chunk {
    config: SpaceConfig,
    vectors: Vec<VectorRecord>,
    /// Whether vectors follow it.
    pub(super) more: bool,
    /// Its size on the wire.
    pub(super) bytes: u64,
}

impl Chunk {
    /// How many vectors it holds.
    pub(super) fn len(&self) -> u64 {
        self.vectors.len() as u64
    }

    /// The last id it holds (the cursor after it).
    pub(super) fn last(&self) -> Option<Uuid> {
        self.vectors.last().map(|r| r.id)
    }
}

/// The target's side of one slow bridge.
#[derive(Debug, Clone)]
pub(super) struct Copier {
    pub(super) source: String,
    pub(super) namespace: String,
    pub(super) target: String,
}

impl Copier {
    async fn ask(&self, cluster: &Cluster, ask: &SlowAsk) -> Result<(SlowReply, u64), StepError> {
        let bytes = rmp_serde::to_vec_named(ask).map_err(|e| StepError::Fail(e.to_string()))?;
        let asked = cluster.nats().request(subject(&self.source), bytes.into());
        let message = match tokio::time::timeout(ASK_TIMEOUT, asked).await {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return Err(retry(&format!("asking instance {:?}", self.source), e)),
            Err(_) => {
                let e = format!("no answer in {} s", ASK_TIMEOUT.as_secs());
                return Err(retry(&format!("asking instance {:?}", self.source), e));
            }
        };
        let size = message.payload.len() as u64;
        match rmp_serde::from_slice::<SlowReply>(&message.payload) {
            Ok(SlowReply::Refused { code, message }) => Err(StepError::refused(&code, &message)),
            Ok(reply) => Ok((reply, size)),
            Err(e) => Err(retry("reading the source's answer", e)),
        }
    }

    /// The chunk after `after`, of at most `limit` vectors.
    pub(super) async fn fetch(
        &self,
        cluster: &Cluster,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Chunk, StepError> {
        let ask = SlowAsk::Chunk {
            namespace: self.namespace.clone(),
            after,
            limit,
        };
        match self.ask(cluster, &ask).await? {
            (
                SlowReply::Chunk {
                    config,
                    vectors,
                    more,
                },
                bytes,
            ) => Ok(Chunk {
                config,
                vectors,
                more,
                bytes,
            }),
            _ => Err(StepError::Retry("the source answered no chunk".into())),
        }
    }

    /// Applies `chunk` here in one commit, the target namespace's creation
    /// first (unchanged if it exists with the same geometry); answers how
    /// many vectors were written. Any change refused fails the copy.
    pub(super) fn apply(&self, store: &Store, chunk: &Chunk) -> Result<u64, StepError> {
        let mut changes = Vec::with_capacity(chunk.vectors.len() + 1);
        changes.push(Change {
            seq: 0,
            kind: ChangeKind::CreateNamespace,
            namespace: self.target.clone(),
            id: None,
            version: 0,
            timestamp_ms: 0,
            hlc: 0,
            body: Some(ChangeBody::Namespace(SpaceConfig {
                name: self.target.clone(),
                ..chunk.config.clone()
            })),
        });
        for r in &chunk.vectors {
            changes.push(Change {
                seq: 0,
                kind: ChangeKind::Insert,
                namespace: self.target.clone(),
                id: Some(r.id),
                version: r.version,
                timestamp_ms: r.timestamp_ms,
                hlc: r.hlc,
                body: Some(ChangeBody::Vector(VectorRecord {
                    namespace: self.target.clone(),
                    ..r.clone()
                })),
            });
        }
        let job = format!("bridge:{}", self.source);
        let outcomes = store
            .apply_changes(&job, ConflictStrategy::LastWriteWins, changes)
            .map_err(|e| retry("applying a chunk", e))?;
        let mut written = 0;
        // The first outcome is the namespace's creation, not a vector.
        for (i, o) in outcomes.into_iter().enumerate() {
            match o {
                ApplyOutcome::Applied | ApplyOutcome::Conflict(_) if i > 0 => written += 1,
                ApplyOutcome::Refused(e) => {
                    return Err(StepError::Fail(format!("{}: {e}", e.code())));
                }
                _ => {}
            }
        }
        Ok(written)
    }

    /// The source's digest of its namespace.
    pub(super) async fn source_digest(
        &self,
        cluster: &Cluster,
    ) -> Result<NamespaceDigest, StepError> {
        let ask = SlowAsk::Digest {
            namespace: self.namespace.clone(),
        };
        match self.ask(cluster, &ask).await? {
            (SlowReply::Digest(d), _) => Ok(d),
            _ => Err(StepError::Retry("the source answered no digest".into())),
        }
    }
}

/// Spaces chunks so that the bytes received hold `rate` per second on
/// average: each chunk's bytes are taken from the bucket once received,
/// which may leave it in debt; the next chunk is asked for once the debt
/// is paid back. The bucket starts empty and holds at most one second's
/// bytes, so after a pause (the source unreachable, say) at most that much
/// goes at once.
#[derive(Debug, Clone)]
pub(super) struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// An empty bucket filling at `rate` bytes per second (at least 1).
    pub(super) fn new(rate: u64, now: Instant) -> TokenBucket {
        let rate = rate.max(1) as f64;
        TokenBucket {
            rate,
            capacity: rate,
            tokens: 0.0,
            at: now,
        }
    }

    /// Takes `bytes` received at `now`; answers how long to wait before
    /// asking for more.
    pub(super) fn take(&mut self, bytes: u64, now: Instant) -> Duration {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + earned).min(self.capacity) - bytes as f64;
        self.at = now;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_holds_the_rate_and_bursts_a_second_at_most() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000, t0);
        assert_eq!(b.take(500, t0), Duration::from_millis(500));
        // Asked again once the wait is over: the same again.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(b.take(500, t1), Duration::from_millis(500));
        // After a long pause, one second's worth goes at once, no more.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.take(600, t2), Duration::ZERO);
        assert_eq!(b.take(400, t2), Duration::ZERO);
        assert_eq!(b.take(250, t2), Duration::from_millis(250));
    }

    #[test]
    fn waiting_as_told_never_beats_the_rate() {
        // Chunks of uneven sizes, each asked for when the last wait ends
        // plus a fetch time: the bytes received by any moment are at most
        // what the rate allows since the start.
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10_000, t0);
        let mut now = t0;
        let mut total = 0u64;
        for i in 0..200u64 {
            now += Duration::from_millis(i % 7);
            let bytes = 1_000 + (i * 7919) % 30_000;
            total += bytes;
            now += b.take(bytes, now);
            let allowed = now.duration_since(t0).as_secs_f64() * 10_000.0;
            assert!(total as f64 <= allowed + 1.0, "{total} > {allowed}");
        }
    }

    #[test]
    fn asks_and_replies_round_trip_in_msgpack() {
        let ask = SlowAsk::Chunk {
            namespace: "n".into(),
            after: Some(Uuid::now_v7()),
            limit: 3,
        };
        let back: SlowAsk = rmp_serde::from_slice(&rmp_serde::to_vec_named(&ask).unwrap()).unwrap();
        assert!(matches!(back, SlowAsk::Chunk { limit: 3, .. }));
        let reply = refused("unknown_namespace", "no".into());
        let bytes = rmp_serde::to_vec_named(&reply).unwrap();
        assert!(matches!(
            rmp_serde::from_slice::<SlowReply>(&bytes).unwrap(),
            SlowReply::Refused { .. }
        ));
        assert!(matches!(
            StepError::refused("unknown_namespace", "x"),
            StepError::Fail(_)
        ));
        assert!(matches!(StepError::refused("io", "x"), StepError::Retry(_)));
    }

    #[test]
    fn a_chunk_applied_twice_changes_nothing_the_second_time() {
        use hvs_storage::{GeometrySpec, NewVector, StoreConfig};
        let source = Store::open(StoreConfig::memory()).unwrap();
        let g = GeometrySpec::Euclidean { dim: 2 };
        source.create_namespace(SpaceConfig::new("a", g)).unwrap();
        for i in 0..10 {
            source
                .store_vector(NewVector::new("a", vec![i as f64, 1.0]))
                .unwrap();
        }
        let Ok(SlowReply::Chunk {
            config,
            vectors,
            more,
        }) = chunk(&source, "a", None, 4, 1 << 20)
        else {
            panic!("no chunk")
        };
        assert!(more);
        assert_eq!(vectors.len(), 4);
        let c = Chunk {
            config,
            vectors,
            more,
            bytes: 0,
        };
        let target = Store::open(StoreConfig::memory()).unwrap();
        let copier = Copier {
            source: "s".into(),
            namespace: "a".into(),
            target: "b".into(),
        };
        assert_eq!(copier.apply(&target, &c).ok(), Some(4));
        assert_eq!(copier.apply(&target, &c).ok(), Some(0));
        assert_eq!(target.count("b", None).unwrap(), 4);
        // The byte budget trims a chunk, never below one vector.
        let Ok(SlowReply::Chunk { vectors, more, .. }) = chunk(&source, "a", None, 10, 1) else {
            panic!("no chunk")
        };
        assert_eq!((vectors.len(), more), (1, true));
    }
}
