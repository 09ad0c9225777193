//! Sending, receiving, acks and the mailbox.

use hvs_actors::{BroadcastScope, EachOutcome, Outgoing, VectorInput};
use hvs_storage::MessageRecord;

use super::{Answer, Counts, Refusal, ids, uuid, uuids, wire_error};
use crate::protocol::{self as p, WireError};
use crate::{Error, ModelHandle};

impl Answer for p::Ids {
    /// `send_batch`'s answer: every message in it was accepted.
    fn counts(&self) -> Counts {
        Counts {
            sent: self.ids.len() as u64,
            delivered: 0,
        }
    }
}

impl Answer for p::BroadcastAnswer {
    fn counts(&self) -> Counts {
        Counts {
            sent: self.recipients.len() as u64,
            delivered: 0,
        }
    }
}

impl Answer for p::Deliveries {
    fn counts(&self) -> Counts {
        Counts {
            sent: 0,
            delivered: self.deliveries.len() as u64,
        }
    }
}

/// A wire message as the actors take it, with its recipient.
pub(crate) fn outgoing(m: p::WireOutgoing) -> Result<(String, Outgoing), Refusal> {
    let vector = match (m.vector, m.embedding) {
        (Some(_), Some(_)) => {
            return Err(Refusal::bad_request(
                "give a vector or an embedding, not both",
            ));
        }
        (Some(v), None) => VectorInput::Point(v),
        (None, Some(e)) => VectorInput::Embedding(e),
        (None, None) => VectorInput::Text,
    };
    Ok((
        m.to,
        Outgoing {
            payload: m.payload,
            vector,
            metadata: m.metadata,
            ttl_ms: m.ttl_ms,
        },
    ))
}

/// What one pipelined `send` of a batch came to.
pub(crate) type SendOutcome = Result<p::IdArg, WireError>;

/// A message for `send` and `send_batch`, which need a recipient.
pub(crate) fn addressed(m: p::WireOutgoing) -> Result<(String, Outgoing), Refusal> {
    if m.to.is_empty() {
        return Err(Refusal::bad_request("a message to send needs `to`"));
    }
    outgoing(m)
}

/// One answer per message of a [`ModelHandle::send_each`], in order.
pub(crate) fn send_answers(outcome: Result<EachOutcome, Error>, n: usize) -> Vec<SendOutcome> {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let e = wire_error(e);
            return (0..n).map(|_| Err(e.clone())).collect();
        }
    };
    let stored = outcome.stored.map_err(wire_error);
    let mut ids = stored.as_ref().ok().map(|v| v.iter());
    outcome
        .refused
        .into_iter()
        .map(|refused| match (refused, &stored) {
            (Some(e), _) => Err(wire_error(e)),
            (None, Err(e)) => Err(e.clone()),
            (None, Ok(_)) => match ids.as_mut().and_then(Iterator::next) {
                Some(id) => Ok(p::IdArg { id: id.to_string() }),
                None => Err(WireError::new(
                    p::codes::INTERNAL,
                    "a stored message has no id",
                )),
            },
        })
        .collect()
}

/// A stored message as the wire shows it.
pub(crate) fn wire_message(m: &MessageRecord) -> p::WireMessage {
    p::WireMessage {
        id: m.id.to_string(),
        from: m.from.clone(),
        to: m.to.clone(),
        namespace: m.namespace.clone(),
        payload: m.payload.clone(),
        vector: m.vector.clone(),
        metadata: m.metadata.clone(),
        sent_ms: m.sent_ms,
        expires_ms: m.expires_ms,
    }
}

/// A delivery as the wire shows it.
pub(crate) fn wire_delivery(d: &crate::Delivery) -> p::WireDelivery {
    p::WireDelivery {
        message: wire_message(&d.message),
        attempt: d.attempt,
        deadline_ms: d.deadline_ms,
    }
}

/// The frame pushing a delivery, encoded straight from the stored
/// message (see [`p::delivery_push_frame`]).
pub(crate) fn delivery_push(d: &crate::Delivery) -> Result<Vec<u8>, WireError> {
    let m = &d.message;
    let mut id = uuid::Uuid::encode_buffer();
    p::delivery_push_frame(&p::DeliveryRef {
        id: m.id.hyphenated().encode_lower(&mut id),
        from: &m.from,
        to: &m.to,
        namespace: &m.namespace,
        payload: &m.payload,
        vector: &m.vector,
        metadata: &m.metadata,
        sent_ms: m.sent_ms,
        expires_ms: m.expires_ms,
        attempt: d.attempt,
        deadline_ms: d.deadline_ms,
    })
}

pub(super) async fn send_batch(m: ModelHandle, a: p::SendBatch) -> Result<p::Ids, Refusal> {
    let msgs = a
        .messages
        .into_iter()
        .map(addressed)
        .collect::<Result<Vec<_>, _>>()?;
    let sent = m.send_messages(msgs).await?;
    Ok(p::Ids { ids: ids(sent) })
}

pub(super) async fn broadcast(
    m: ModelHandle,
    a: p::WireBroadcast,
) -> Result<p::BroadcastAnswer, Refusal> {
    let (_, out) = outgoing(a.message)?;
    let scope = BroadcastScope {
        namespace: a.namespace,
        exclude: a.exclude,
    };
    let r = m.broadcast(out, scope).await?;
    Ok(p::BroadcastAnswer {
        id: r.id.to_string(),
        recipients: r.recipients,
        refused: r.refused,
    })
}

pub(super) async fn receive(m: ModelHandle, a: p::Receive) -> Result<p::Deliveries, Refusal> {
    // Mailboxes live on the primary: a mirror's read session has none.
    m.check_mail_served()?;
    let got = m.receive_messages(a.max).await?;
    Ok(p::Deliveries {
        deliveries: got.iter().map(wire_delivery).collect(),
    })
}

pub(super) async fn ack(m: ModelHandle, a: p::Ids) -> Result<p::AckAnswer, Refusal> {
    m.check_mail_served()?;
    let r = m.ack(&uuids(&a.ids)?).await?;
    Ok(p::AckAnswer {
        acked: ids(r.acked),
        unknown: ids(r.unknown),
    })
}

pub(super) async fn release(m: ModelHandle, a: p::Ids) -> Result<p::Released, Refusal> {
    m.check_mail_served()?;
    let n = m.release(&uuids(&a.ids)?).await?;
    Ok(p::Released { released: n as u64 })
}

pub(super) async fn mailbox(m: ModelHandle) -> Result<p::MailboxAnswer, Refusal> {
    let (stats, dead) = m.mailbox().await?;
    let dead_letters = dead
        .into_iter()
        .map(|d| p::WireDeadLetter {
            id: d.id.to_string(),
            from: d.from,
            reason: d.reason,
            attempts: d.attempts,
        })
        .collect();
    Ok(p::MailboxAnswer {
        pending: stats.pending as u64,
        in_flight: stats.in_flight as u64,
        dead_lettered: stats.dead_lettered,
        dead_letters,
    })
}

pub(super) async fn get_message(
    m: ModelHandle,
    a: p::IdArg,
) -> Result<Option<p::WireMessage>, Refusal> {
    let r = m.get_message(uuid(&a.id)?).await?;
    Ok(r.map(|r| wire_message(&r)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_pushed_delivery_reads_as_the_delivery_receive_answers() {
        let mut metadata = hvs_storage::Metadata::new();
        metadata.insert("k".into(), serde_json::json!({"n": [1, 2.5, "x"]}));
        for expires_ms in [None, Some(1 << 40)] {
            let d = crate::Delivery {
                message: Arc::new(MessageRecord {
                    id: uuid::Uuid::now_v7(),
                    namespace: "a".into(),
                    from: "a".into(),
                    to: vec!["b".into(), "c".into()],
                    payload: vec![0, 1, 255],
                    vector: vec![1.5, -0.25, 3.0],
                    metadata: metadata.clone(),
                    sent_ms: 1_700_000_000_000,
                    expires_ms,
                }),
                attempt: 2,
                deadline_ms: 1_700_000_030_000,
            };
            let frame = delivery_push(&d).unwrap();
            assert_eq!(p::peek_frame(&frame), Some(p::FrameKind::Push));
            let p::Push::Delivery { delivery } = p::decode::<p::Push>(&frame).unwrap() else {
                panic!("not a delivery");
            };
            assert_eq!(delivery, wire_delivery(&d));
        }
    }
}
