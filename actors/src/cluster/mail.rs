//! Mail across instances (`docs/SEMANTICS.md`, "Across instances").
//!
//! - **Homes.** Which instance a model lives on is the key-value bucket
//!   [`HOMES`]: a model that connects here writes its key; every
//!   instance watches the bucket and keeps a copy ([`Mail::home`]).
//! - **Letters.** A letter for a model whose home is another instance is
//!   published to the stream [`STREAM`] (work-queue retention) on the
//!   recipient's subject `hvs.mail.<model>`, with the message id of the
//!   message, so a repeated publish is dropped by JetStream. At most
//!   `capacity` letters wait per recipient (`discard_new_per_subject`): a
//!   full remote mailbox refuses the publish, and the sender gets
//!   `mailbox_full` as from a local one. The sender is answered once
//!   JetStream holds the letter and the message is committed here.
//! - **Inboxes.** The home instance reads the recipient's subject with a
//!   durable consumer named after the model (`inbox.rs`), made anew by each
//!   instance that becomes the home, and hands each letter to the model's
//!   actor, which acks it to JetStream only when the model acks it
//!   (`letters.rs`). The stream keeps exactly the letters not yet acked:
//!   a restart or a move delivers them again, and nothing acked.
//! - **Moving.** When a model's home becomes another instance, the old
//!   home drops the letters it read from the stream (the new home reads
//!   them again) and forwards the letters of its own mailbox (sent here)
//!   to the stream, settling them here once JetStream holds them.
//!
//! JetStream keeps everything; nothing here replicates or agrees by
//! itself.

mod inbox;
mod letters;
mod send;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream::{self, kv, message::PublishMessage, stream};
use dashmap::DashMap;
use futures_util::StreamExt;
use futures_util::future::AbortHandle;
use hvs_mailbox::MailboxError;
use hvs_storage::MessageRecord;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

pub(crate) use letters::{RemoteLetters, ack_remote};

use super::{Cluster, subject_token};
use crate::error::{ActorError, Result};
use crate::model::ModelActor;
use crate::registry::{ModelEntry, Registry};

/// The key-value bucket of models' homes.
pub(crate) const HOMES: &str = "hvs_homes";
/// The stream of letters between instances.
pub(crate) const STREAM: &str = "HVS_MAIL";
/// How long a read letter may stay unacknowledged before JetStream offers
/// it again (to the same home: the mailbox keeps one copy per id).
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long a call waits for NATS before answering `cluster_unavailable`.
const PATIENCE: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The subject of the letters for `model`.
pub(crate) fn mail_subject(model: &str) -> String {
    format!("hvs.mail.{}", subject_token(model))
}

/// The durable consumer that reads `model`'s letters at its home.
fn consumer_name(model: &str) -> String {
    format!("hvs_mail_{}", subject_token(model))
}

/// A model id as a key of [`HOMES`] (keys allow letters, digits, `-`,
/// `_`, `=`, `/`, `.`): bytes other than letters, digits, `-` and `_` are
/// written `=xx` (hex).
fn home_key(model: &str) -> String {
    super::escape(model, '=')
}

/// A value of [`HOMES`].
#[derive(Debug, Serialize, Deserialize)]
struct Home {
    model: String,
    instance: String,
    at_ms: u64,
}

/// Where a recipient's letters go.
pub(crate) enum Recipient {
    /// Its mailbox is here.
    Local(Arc<ModelEntry>),
    /// Its home is another instance: through [`STREAM`].
    Remote,
}

/// One letter to publish, in the order asked.
struct Outgoing {
    to: String,
    subject: String,
    id: Uuid,
    payload: Vec<u8>,
    done: oneshot::Sender<Result<u64>>,
}

/// This instance's side of mail across instances. One per cluster.
pub(crate) struct Mail {
    /// The home this instance is: its name, or, in a failover group, the
    /// group's (its members hold the same mailboxes, so a model that moves
    /// between them does not move its mail).
    instance: String,
    /// In a failover group, this instance's role: only the primary reads
    /// and forwards mail (`docs/CLUSTER.md`).
    role: Option<watch::Receiver<super::Role>>,
    js: jetstream::Context,
    /// The bucket, once NATS answered.
    homes_kv: watch::Receiver<Option<kv::Store>>,
    /// Every model's home, as the bucket says (kept by a watch).
    homes: DashMap<String, String>,
    registry: Weak<Registry>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Models whose letters are read here, and how to stop reading.
    inboxes: Mutex<HashMap<String, AbortHandle>>,
    arbiter: ArbiterHandle,
    /// Letters waiting per recipient in the stream.
    capacity: usize,
}

/// Starts mail across instances for `cluster`: creates (in the
/// background, retrying while NATS does not answer) the bucket and the
/// stream, watches the bucket, and publishes letters in order.
pub(crate) fn start(cluster: &Cluster, registry: &Arc<Registry>, capacity: usize) -> Arc<Mail> {
    let (kv_tx, kv_rx) = watch::channel(None);
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let home = match &cluster.config().group {
        Some(g) => format!("group:{g}"),
        None => cluster.instance().to_string(),
    };
    let mail = Arc::new(Mail {
        instance: home,
        role: cluster.watch_role(),
        js: cluster.jetstream().clone(),
        homes_kv: kv_rx,
        homes: DashMap::new(),
        registry: Arc::downgrade(registry),
        outbox: out_tx,
        inboxes: Mutex::new(HashMap::new()),
        arbiter: cluster.arbiter().clone(),
        capacity,
    });
    let _ = registry.mail.set(mail.clone());
    let replicas = cluster.config().replicas.max(1);
    let m = mail.clone();
    cluster.arbiter().spawn(async move {
        let store = m.set_up(replicas).await;
        let _ = kv_tx.send(Some(store.clone()));
        m.watch_homes(store).await;
    });
    if let Some(mut role) = cluster.watch_role() {
        // A primary that steps down stops reading: the new primary reads
        // its models' mail once they connect there.
        let m = Arc::downgrade(&mail);
        cluster.arbiter().spawn(async move {
            while role.changed().await.is_ok() {
                let primary = matches!(*role.borrow(), super::Role::Primary { .. });
                match m.upgrade() {
                    Some(m) if !primary => m.stop_all_inboxes(),
                    Some(_) => {}
                    None => return,
                }
            }
        });
    }
    let js = mail.js.clone();
    let cap = capacity;
    cluster
        .arbiter()
        .spawn(async move { publish_in_order(js, out_rx, cap).await });
    mail
}

impl Mail {
    /// Creates the bucket and the stream (or finds them), retrying until
    /// NATS answers.
    async fn set_up(&self, replicas: usize) -> kv::Store {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.try_set_up(replicas).await {
                Ok(store) => return store,
                Err(e) => {
                    tracing::warn!("mail across instances: setting up: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn try_set_up(&self, replicas: usize) -> Result<kv::Store, String> {
        let capacity = i64::try_from(self.capacity).unwrap_or(i64::MAX);
        self.js
            .get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec!["hvs.mail.>".into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                max_messages_per_subject: capacity,
                discard: stream::DiscardPolicy::New,
                discard_new_per_subject: true,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("stream {STREAM}: {e}"))?;
        if let Ok(store) = self.js.get_key_value(HOMES).await {
            return Ok(store);
        }
        // The bucket's stream is made here with the settings
        // `create_key_value` would use: that call first reads the account's
        // info, which async-nats 0.51 cannot parse from nats-server 2.9.
        self.js
            .get_or_create_stream(stream::Config {
                name: format!("KV_{HOMES}"),
                subjects: vec![format!("$KV.{HOMES}.>")],
                max_messages_per_subject: 1,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("bucket {HOMES}: {e}"))?;
        self.js
            .get_key_value(HOMES)
            .await
            .map_err(|e| format!("bucket {HOMES}: {e}"))
    }

    /// The bucket, or `cluster_unavailable` after [`PATIENCE`].
    async fn homes_kv(&self) -> Result<kv::Store> {
        let mut rx = self.homes_kv.clone();
        let waited = tokio::time::timeout(PATIENCE, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(store)) => store.clone().ok_or(ActorError::Stopped),
            _ => Err(ActorError::ClusterUnavailable(format!(
                "the bucket {HOMES} is not reachable"
            ))),
        }
    }

    /// Follows the bucket for good: its current values first, then each
    /// change.
    async fn watch_homes(self: &Arc<Self>, store: kv::Store) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match store.watch_with_history(">").await {
                Ok(mut entries) => {
                    while let Some(entry) = entries.next().await {
                        match entry {
                            Ok(e) if e.operation == kv::Operation::Put => {
                                backoff = Duration::from_millis(50);
                                self.on_home(&e.value);
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!("mail across instances: watching homes: {e}");
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("mail across instances: watching homes: {e}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// A model's home as the bucket says it now.
    fn on_home(self: &Arc<Self>, value: &[u8]) {
        let Ok(home) = serde_json::from_slice::<Home>(value) else {
            tracing::warn!("mail across instances: a home entry cannot be read");
            return;
        };
        self.homes.insert(home.model.clone(), home.instance.clone());
        let Some(entry) = self
            .registry
            .upgrade()
            .and_then(|r| r.model(&home.model).ok())
        else {
            return;
        };
        if home.instance == self.instance {
            // In a group the primary starts reading when the model
            // connects to it (`claim`).
            if self.role.is_none() {
                entry.addr.do_send(letters::ComeHome);
                self.start_inbox(&home.model, entry.addr.clone());
            }
        } else if self.is_primary() {
            self.stop_inbox(&home.model);
            entry.addr.do_send(letters::MoveAway);
        }
    }

    /// Whether this instance reads and forwards mail: outside a group,
    /// always; in one, while it is the primary.
    fn is_primary(&self) -> bool {
        self.role
            .as_ref()
            .is_none_or(|r| matches!(*r.borrow(), super::Role::Primary { .. }))
    }

    fn stop_all_inboxes(&self) {
        let all: Vec<_> = self
            .inboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, h) in all {
            h.abort();
        }
    }

    /// The instance `model` lives on, as last heard.
    pub(crate) fn home(&self, model: &str) -> Option<String> {
        self.homes.get(model).map(|h| h.value().clone())
    }

    /// Whether `model` lives on another instance.
    pub(crate) fn is_elsewhere(&self, model: &str) -> bool {
        self.homes.get(model).is_some_and(|h| *h != self.instance)
    }

    /// Makes this instance `model`'s home: writes the bucket, then reads
    /// the model's letters here. A bucket NATS does not answer is written
    /// later, in the background (until then senders elsewhere do not know
    /// the model lives here).
    pub(crate) async fn claim(self: &Arc<Self>, model: &str, addr: Addr<ModelActor>) {
        self.homes.insert(model.to_string(), self.instance.clone());
        addr.do_send(letters::ComeHome);
        match self.write_home(model).await {
            Ok(()) => self.start_inbox(model, addr),
            Err(e) => {
                tracing::warn!("mail across instances: claiming {model:?}: {e}; retrying");
                let (m, model) = (self.clone(), model.to_string());
                self.arbiter.spawn(async move {
                    let mut backoff = Duration::from_millis(100);
                    while m.home(&model).as_deref() == Some(m.instance.as_str()) {
                        if m.write_home(&model).await.is_ok() {
                            m.start_inbox(&model, addr);
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                });
            }
        }
    }

    async fn write_home(&self, model: &str) -> Result<()> {
        let store = self.homes_kv().await?;
        let home = Home {
            model: model.to_string(),
            instance: self.instance.clone(),
            at_ms: crate::model::now_ms(),
        };
        let bytes =
            serde_json::to_vec(&home).map_err(|e| ActorError::InvalidRequest(e.to_string()))?;
        tokio::time::timeout(PATIENCE, store.put(home_key(model), bytes.into()))
            .await
            .map_err(|_| ActorError::ClusterUnavailable("writing a home timed out".into()))?
            .map_err(|e| ActorError::ClusterUnavailable(format!("writing a home: {e}")))?;
        Ok(())
    }

    /// Looks up in the bucket the homes of `models` this instance has not
    /// heard of (a model that connected elsewhere a moment ago).
    pub(crate) async fn look_up(&self, models: Vec<String>) {
        if models.is_empty() {
            return;
        }
        let Ok(store) = self.homes_kv().await else {
            return;
        };
        for model in models {
            let got = tokio::time::timeout(PATIENCE, store.get(home_key(&model))).await;
            if let Ok(Ok(Some(value))) = got
                && let Ok(home) = serde_json::from_slice::<Home>(&value)
            {
                self.homes.entry(home.model).or_insert(home.instance);
            }
        }
    }

    /// Queues `record` for `to` on the stream, after every letter queued
    /// before it; answers with its stream sequence once JetStream holds it.
    pub(crate) fn publish(
        &self,
        to: &str,
        record: &MessageRecord,
    ) -> oneshot::Receiver<Result<u64>> {
        let (done, rx) = oneshot::channel();
        match rmp_serde::to_vec_named(record) {
            Ok(bytes) => {
                let letter = Outgoing {
                    to: to.to_string(),
                    subject: mail_subject(to),
                    id: record.id,
                    payload: bytes,
                    done,
                };
                if let Err(mpsc::error::SendError(l)) = self.outbox.send(letter) {
                    let _ = l.done.send(Err(ActorError::Stopped));
                }
            }
            Err(e) => {
                let _ = done.send(Err(ActorError::InvalidRequest(format!("a letter: {e}"))));
            }
        }
        rx
    }

    /// Takes back letters published for a send refused as a whole (a batch
    /// is all or nothing). A home that read one already may deliver it.
    pub(crate) fn retract(&self, sequences: Vec<u64>) {
        if sequences.is_empty() {
            return;
        }
        let js = self.js.clone();
        self.arbiter.spawn(async move {
            let Ok(mut stream) = js.get_stream(STREAM).await else {
                return;
            };
            for seq in sequences {
                if let Err(e) = stream.delete_message(seq).await {
                    tracing::warn!("mail across instances: retracting letter {seq}: {e}");
                }
            }
            let _ = stream.info().await;
        });
    }

    /// Reads `model`'s letters here (unless already).
    fn start_inbox(self: &Arc<Self>, model: &str, addr: Addr<ModelActor>) {
        let mut inboxes = self.inboxes.lock().unwrap_or_else(|e| e.into_inner());
        if inboxes.contains_key(model) {
            return;
        }
        let (handle, registration) = AbortHandle::new_pair();
        inboxes.insert(model.to_string(), handle);
        let reader = inbox::Inbox {
            mail: self.clone(),
            model: model.to_string(),
            addr,
        };
        self.arbiter.spawn(async move {
            let _ = futures_util::future::Abortable::new(reader.run(), registration).await;
        });
    }

    /// Stops reading `model`'s letters here.
    fn stop_inbox(&self, model: &str) {
        let handle = self
            .inboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(model);
        if let Some(h) = handle {
            h.abort();
        }
    }

    /// An inbox that ended by itself (its model moved away).
    fn forget_inbox(&self, model: &str) {
        self.inboxes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(model);
    }
}

impl Registry {
    /// Where a letter for `to` goes: its mailbox here, or the stream when
    /// its home is another instance; `unknown_model` when neither this
    /// instance nor the bucket knows it.
    pub(crate) fn recipient(&self, to: &str) -> Result<Recipient> {
        if self.mail.get().is_some_and(|m| m.is_elsewhere(to)) {
            return Ok(Recipient::Remote);
        }
        self.model(to).map(Recipient::Local)
    }
}

/// Publishes letters one after another, as queued (so the stream holds
/// each sender's letters in the order sent), answering each when
/// JetStream acknowledges it.
async fn publish_in_order(
    js: jetstream::Context,
    mut letters: mpsc::UnboundedReceiver<Outgoing>,
    capacity: usize,
) {
    while let Some(l) = letters.recv().await {
        let publish = PublishMessage::build()
            .payload(l.payload.into())
            .message_id(l.id.to_string());
        match js.send_publish(l.subject, publish).await {
            Ok(ack) => {
                actix::spawn(async move {
                    let answer = ack
                        .await
                        .map(|a| a.sequence)
                        .map_err(|e| refusal(&e.to_string(), &l.to, capacity));
                    let _ = l.done.send(answer);
                });
            }
            Err(e) => {
                let _ = l.done.send(Err(refusal(&e.to_string(), &l.to, capacity)));
            }
        }
    }
}

/// JetStream's refusal of a letter as the sender sees it: a full mailbox
/// (the recipient's subject holds `capacity` letters) or a fault.
fn refusal(error: &str, to: &str, capacity: usize) -> ActorError {
    if error.contains("maximum messages per subject") {
        ActorError::Mailbox(MailboxError::MailboxFull {
            owner: to.to_string(),
            capacity,
        })
    } else {
        ActorError::ClusterUnavailable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_model_id_is_one_subject_token_and_one_key() {
        assert_eq!(mail_subject("bob"), "hvs.mail.bob");
        assert_eq!(mail_subject("a.b c"), "hvs.mail.a~2eb~20c");
        assert_eq!(consumer_name("a.b"), "hvs_mail_a~2eb");
        assert_eq!(home_key("a.b/c~"), "a=2eb=2fc=7e");
        assert_eq!(home_key("agent-7_x"), "agent-7_x");
    }

    #[test]
    fn a_full_subject_is_mailbox_full_and_anything_else_a_fault() {
        let full = refusal("maximum messages per subject exceeded", "bob", 3);
        assert_eq!(full.code(), "mailbox_full");
        assert_eq!(refusal("timed out", "bob", 3).code(), "cluster_unavailable");
    }
}
