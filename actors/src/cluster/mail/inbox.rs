//! Reading one model's letters at its home: a durable consumer on the
//! model's subject, made anew each time this instance starts reading (so
//! the stream hands over every letter not yet acked, wherever it was read
//! before), each letter handed to the model's actor.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures_util::StreamExt;
use hvs_storage::MessageRecord;

use super::letters::RemoteDeliver;
use super::{ACK_WAIT, MAX_BACKOFF, Mail, STREAM, consumer_name, mail_subject};
use crate::model::ModelActor;

/// Letters read and not yet acked, per model: JetStream hands out no more
/// until some are acked or dead.
const MAX_UNACKED: i64 = 4096;

pub(super) struct Inbox {
    pub(super) mail: Arc<Mail>,
    pub(super) model: String,
    pub(super) addr: Addr<ModelActor>,
}

impl Inbox {
    /// Reads while this instance is the model's home.
    pub(super) async fn run(self) {
        let mut backoff = Duration::from_millis(50);
        while self.mail.home(&self.model).as_deref() == Some(self.mail.instance.as_str()) {
            match self.read().await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(e) => {
                    tracing::warn!("mail for {:?}: {e}", self.model);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.mail.forget_inbox(&self.model);
    }

    /// One consumer's life: made anew, read until it fails.
    async fn read(&self) -> Result<(), String> {
        let stream = self
            .mail
            .js
            .get_stream(STREAM)
            .await
            .map_err(|e| format!("stream {STREAM}: {e}"))?;
        let name = consumer_name(&self.model);
        // Another instance's consumer (the model's former home), or ours
        // from before a restart: what it read and did not ack is read
        // again by the new one.
        let _ = stream.delete_consumer(&name).await;
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: mail_subject(&self.model),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait: ACK_WAIT,
                max_ack_pending: MAX_UNACKED,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("consumer {name}: {e}"))?;
        let mut letters = consumer
            .messages()
            .await
            .map_err(|e| format!("consumer {name}: {e}"))?;
        while let Some(letter) = letters.next().await {
            let letter = letter.map_err(|e| format!("consumer {name}: {e}"))?;
            match rmp_serde::from_slice::<MessageRecord>(&letter.payload) {
                Ok(record) => self.addr.do_send(RemoteDeliver {
                    record: Arc::new(record),
                    letter,
                }),
                Err(e) => {
                    tracing::error!("mail for {:?}: a letter cannot be read: {e}", self.model);
                    let _ = letter.ack_with(AckKind::Term).await;
                }
            }
        }
        Err(format!("consumer {name}: its messages ended"))
    }
}
