//! Publishing this instance's change feed to its JetStream stream: every
//! change once, in feed order, under the message id
//! `<instance>:<sequence>` (JetStream drops a repeat within its
//! deduplication window), resumed after a restart from the last sequence
//! JetStream acknowledged (kept in the store's `meta` table).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture};
use hvs_storage::{Change, ChangeBody, ChangeKind, Store};
use hvs_types::FeedStatus;

use super::{feed_subject, stream_name};

/// The `meta` key of the last change JetStream acknowledged (a trimmed
/// feed keeps every entry after it, `StoreConfig::feed_keep`).
pub(crate) const PUBLISHED: &str = hvs_storage::FEED_PUBLISHED;
/// Changes read and published per round.
const BATCH: usize = 1024;
/// How long an idle publisher waits before looking for new changes.
const IDLE: Duration = Duration::from_millis(2);
/// How often a busy publisher saves its position.
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between attempts while NATS does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the publisher shares with status readers and the connection.
pub(crate) struct FeedGauge {
    published: AtomicU64,
    /// The same position, for those who wait for it (`quorum` writes).
    published_watch: tokio::sync::watch::Sender<u64>,
    failing: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
    /// Connections (and reconnections) to NATS made so far.
    connections: Arc<AtomicU64>,
}

impl FeedGauge {
    pub(crate) fn new(connections: Arc<AtomicU64>) -> FeedGauge {
        FeedGauge {
            published: AtomicU64::new(0),
            published_watch: tokio::sync::watch::Sender::new(0),
            failing: AtomicBool::new(false),
            last_error: std::sync::Mutex::new(None),
            connections,
        }
    }

    pub(crate) fn status(&self, instance: &str, last_change: u64, connected: bool) -> FeedStatus {
        let published = self.published.load(Ordering::Relaxed);
        let last_error = if self.failing.load(Ordering::Relaxed) {
            self.last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        } else {
            None
        };
        FeedStatus {
            instance: instance.to_string(),
            stream: stream_name(instance),
            connected,
            published,
            last_change,
            lag: last_change.saturating_sub(published),
            last_error,
        }
    }

    fn set_published(&self, last: u64) {
        self.published.store(last, Ordering::Relaxed);
        self.published_watch.send_replace(last);
    }

    /// Follows the last change JetStream acknowledged.
    pub(crate) fn watch_published(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published_watch.subscribe()
    }

    fn fail(&self, e: String) {
        tracing::warn!("change feed: {e}");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
        self.failing.store(true, Ordering::Relaxed);
    }
}

pub(crate) struct FeedPublisher {
    pub(crate) store: Arc<Store>,
    pub(crate) js: jetstream::Context,
    pub(crate) instance: String,
    pub(crate) replicas: usize,
    pub(crate) gauge: Arc<FeedGauge>,
}

impl FeedPublisher {
    /// Publishes until the store closes.
    pub(crate) async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        let mut published = match self.read_mark().await {
            Ok(p) => p,
            Err(e) => {
                self.gauge
                    .fail(format!("reading the published position: {e}"));
                return;
            }
        };
        self.gauge.set_published(published);
        // Whether to compare the position with what the stream holds: at
        // the start, after every fault and after every reconnection. A nats-server killed may lose the
        // last messages it acknowledged (its file store flushes behind its
        // acknowledgements); they are published again.
        let mut check = true;
        let (mut saved, mut saved_at) = (published, std::time::Instant::now());
        let mut connections = self.gauge.connections.load(Ordering::SeqCst);
        loop {
            let now = self.gauge.connections.load(Ordering::SeqCst);
            if now != connections {
                connections = now;
                check = true;
            }
            let round = async {
                if check {
                    self.ensure_stream().await?;
                    let held = self.stream_holds().await?;
                    if held < published {
                        tracing::warn!(
                            "change feed: the stream holds changes to {held} only, not to {published}: publishing again from {held}"
                        );
                        self.write_mark(held).await?;
                        published = held;
                        self.gauge.set_published(held);
                    }
                    check = false;
                }
                self.publish_round(published).await
            };
            let outcome = match round.await {
                // The position is saved at most once a second and when the
                // feed runs dry: a commit per round would double a busy
                // instance's commits. After a restart the few changes past
                // the saved position are published again, and JetStream
                // drops them as repeats (or they apply as unchanged).
                Ok(Some(last)) if saved_at.elapsed() >= SAVE_EVERY => {
                    self.write_mark(last).await.map(|()| {
                        (saved, saved_at) = (last, std::time::Instant::now());
                        Some(last)
                    })
                }
                Ok(None) if saved < published => self.write_mark(published).await.map(|()| {
                    saved = published;
                    None
                }),
                other => other,
            };
            match outcome {
                Ok(Some(last)) => {
                    published = last;
                    self.gauge.set_published(last);
                    self.gauge.failing.store(false, Ordering::Relaxed);
                    backoff = Duration::from_millis(50);
                }
                Ok(None) => tokio::time::sleep(IDLE).await,
                Err(Fault::Closed) => return,
                Err(Fault::Other(e)) => {
                    check = true;
                    self.gauge.fail(e);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn read_mark(&self) -> hvs_storage::Result<u64> {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || store.mark(PUBLISHED));
        match read.await {
            Ok(r) => Ok(r?.unwrap_or(0)),
            Err(_) => Err(hvs_storage::StorageError::Closed),
        }
    }

    /// Creates this instance's stream unless it exists.
    async fn ensure_stream(&self) -> Result<(), Fault> {
        let config = jetstream::stream::Config {
            name: stream_name(&self.instance),
            subjects: vec![format!("hvs.feed.{}.>", self.instance)],
            storage: jetstream::stream::StorageType::File,
            num_replicas: self.replicas.max(1),
            ..Default::default()
        };
        self.js
            .get_or_create_stream(config)
            .await
            .map(drop)
            .map_err(|e| Fault::Other(format!("creating the stream: {e}")))
    }

    /// The feed sequence number of the last change the stream holds (from
    /// its message id), 0 if it holds none.
    async fn stream_holds(&self) -> Result<u64, Fault> {
        let fault = |what: &str, e: &dyn std::fmt::Display| Fault::Other(format!("{what}: {e}"));
        let mut stream = self
            .js
            .get_stream(stream_name(&self.instance))
            .await
            .map_err(|e| fault("reading the stream", &e))?;
        let last = stream
            .info()
            .await
            .map_err(|e| fault("reading the stream", &e))?
            .state
            .last_sequence;
        if last == 0 {
            return Ok(0);
        }
        let m = stream
            .get_raw_message(last)
            .await
            .map_err(|e| fault("reading the stream's last change", &e))?;
        let id = m
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        id.rsplit_once(':')
            .and_then(|(_, seq)| seq.parse().ok())
            .ok_or_else(|| Fault::Other(format!("the stream's last message has id {id:?}")))
    }

    /// Publishes the changes after `from` (one batch) and waits for their
    /// acknowledgements; the last one acknowledged, or `None`
    /// when there was nothing to publish.
    async fn publish_round(&self, from: u64) -> Result<Option<u64>, Fault> {
        let changes = self.read_changes(from).await?;
        if changes.is_empty() {
            return Ok(None);
        }
        let mut acks: Vec<(u64, PublishAckFuture)> = Vec::with_capacity(changes.len());
        let mut failure = None;
        for c in changes {
            let seq = c.seq;
            match self.publish(c).await {
                Ok(ack) => acks.push((seq, ack)),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Only an unbroken run of acknowledgements moves the position: a
        // change after a failed one is published again next round (and
        // dropped by JetStream as a repeat if it was stored).
        let mut last = from;
        for (seq, ack) in acks {
            match ack.await {
                Ok(_) => last = seq,
                Err(e) => {
                    failure.get_or_insert_with(|| Fault::Other(format!("change {seq}: {e}")));
                    break;
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(Some(last)),
        }
    }

    async fn read_changes(&self, from: u64) -> Result<Vec<Change>, Fault> {
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            let mut changes = store.changes_since(from, BATCH)?;
            for c in &mut changes {
                attach_message(&store, c)?;
            }
            Ok::<_, hvs_storage::StorageError>(changes)
        });
        read.await
            .map_err(|_| Fault::Closed)?
            .map_err(Fault::storage)
    }

    async fn write_mark(&self, last: u64) -> Result<(), Fault> {
        let store = self.store.clone();
        let write = tokio::task::spawn_blocking(move || store.set_mark(PUBLISHED, last));
        write
            .await
            .map_err(|_| Fault::Closed)?
            .map_err(Fault::storage)
    }

    async fn publish(&self, c: Change) -> Result<PublishAckFuture, Fault> {
        let namespace = (!c.namespace.is_empty()).then_some(c.namespace.as_str());
        let subject = feed_subject(&self.instance, namespace);
        let id = format!("{}:{}", self.instance, c.seq);
        let payload = rmp_serde::to_vec_named(&c)
            .map_err(|e| Fault::Other(format!("encoding change {}: {e}", c.seq)))?;
        let message = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(id);
        self.js
            .send_publish(subject, message)
            .await
            .map_err(|e| Fault::Other(format!("publishing change {}: {e}", c.seq)))
    }
}

/// A `PutMessage` change carries the message's row on the wire.
fn attach_message(store: &Store, c: &mut Change) -> hvs_storage::Result<()> {
    if c.kind == ChangeKind::PutMessage
        && c.body.is_none()
        && let Some(id) = c.id
        && let Some(m) = store.get_message(id)?
    {
        c.body = Some(ChangeBody::Message(Box::new((*m).clone())));
    }
    // A message purged (expired) since: its `ExpireMessage` follows.
    Ok(())
}

/// Why a round stopped.
enum Fault {
    /// The store is closed: the instance is stopping.
    Closed,
    Other(String),
}

impl Fault {
    fn storage(e: hvs_storage::StorageError) -> Fault {
        match e {
            hvs_storage::StorageError::Closed => Fault::Closed,
            e => Fault::Other(e.to_string()),
        }
    }
}

/// Reads a change published by [`FeedPublisher`].
pub(crate) fn decode_change(payload: &[u8]) -> Result<Change, String> {
    hvs_storage::decode_change(payload).map_err(|e| format!("an unreadable change: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvs_storage::{GeometrySpec, SpaceConfig};

    #[test]
    fn a_published_change_reads_back_and_garbage_is_refused() {
        let c = Change {
            seq: 7,
            kind: ChangeKind::CreateNamespace,
            namespace: "n".into(),
            id: None,
            version: 0,
            timestamp_ms: 1,
            hlc: 2 << 16,
            body: Some(ChangeBody::Namespace(SpaceConfig::new(
                "n",
                GeometrySpec::Euclidean { dim: 3 },
            ))),
        };
        let bytes = rmp_serde::to_vec_named(&c).unwrap();
        assert_eq!(decode_change(&bytes).unwrap(), c);
        for garbage in [
            &b""[..],
            b"\xff\x00",
            b"\x91\x91\x91",
            &bytes[..bytes.len() - 1],
        ] {
            assert!(decode_change(garbage).is_err());
        }
    }
}
