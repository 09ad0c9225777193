//! Sending, receiving, acks and the mailbox.

use serde::{Deserialize, Serialize};

use hvs_types::Metadata;

/// A message to send (`send`, `send_batch`, `broadcast`). At most one of
/// `vector` (a point of the sender's space, projected onto it) and
/// `embedding` (run through the contract's encoder); neither: the text
/// encoder reads the payload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireOutgoing {
    /// The recipient (`send`, `send_batch`; ignored by `broadcast`).
    #[serde(default)]
    pub to: String,
    /// The payload.
    #[serde(default, with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// A point of the sender's space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f64>>,
    /// An embedding for the contract's encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f64>>,
    /// Searchable metadata.
    #[serde(
        default,
        skip_serializing_if = "Metadata::is_empty",
        deserialize_with = "super::finite_metadata"
    )]
    pub metadata: Metadata,
    /// Time to live in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

/// `send_batch`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendBatch {
    /// The messages, each with its `to`.
    pub messages: Vec<WireOutgoing>,
}

/// `broadcast`'s arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireBroadcast {
    /// The message (its `to` is ignored).
    #[serde(flatten)]
    pub message: WireOutgoing,
    /// Only the members of this namespace (default: every connected model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Models left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// `broadcast`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastAnswer {
    /// The message id.
    pub id: String,
    /// Who it was queued for.
    pub recipients: Vec<String>,
    /// Who refused it, with the code.
    pub refused: Vec<(String, String)>,
}

/// A stored message as its recipient sees it (`receive`, pushes,
/// `get_message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMessage {
    /// Its id (UUID v7); ack by it; a redelivery carries the same id.
    pub id: String,
    /// The sender.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The namespace whose index holds its vector.
    pub namespace: String,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// Its point.
    pub vector: Vec<f64>,
    /// The sender's metadata.
    pub metadata: Metadata,
    /// When it was sent (ms since the epoch).
    pub sent_ms: u64,
    /// When it stops being delivered, if ever.
    pub expires_ms: Option<u64>,
}

/// A message handed to its recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireDelivery {
    /// The message.
    #[serde(flatten)]
    pub message: WireMessage,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u32,
    /// Ack before this (ms since the epoch) or it is delivered again.
    pub deadline_ms: u64,
}

/// A delivery borrowed from where the server holds it: the fields of a
/// [`WireDelivery`], for [`delivery_push_frame`].
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRef<'a> {
    /// The message's id, as its UUID string.
    pub id: &'a str,
    /// The sender.
    pub from: &'a str,
    /// The recipients.
    pub to: &'a [String],
    /// The namespace whose index holds its vector.
    pub namespace: &'a str,
    /// The payload.
    pub payload: &'a [u8],
    /// Its point.
    pub vector: &'a [f64],
    /// The sender's metadata.
    pub metadata: &'a Metadata,
    /// When it was sent (ms since the epoch).
    pub sent_ms: u64,
    /// When it stops being delivered, if ever.
    pub expires_ms: Option<u64>,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u32,
    /// Ack before this (ms since the epoch) or it is delivered again.
    pub deadline_ms: u64,
}

/// The frame pushing a delivery, `{push: "delivery", delivery: {…}}`,
/// written straight from the borrowed message: what a client decodes as
/// [`Push::Delivery`](super::Push::Delivery), without the message being
/// copied into a [`WireDelivery`] first. `push` is the first key, as
/// [`peek_frame`](super::peek_frame) expects.
pub fn delivery_push_frame(d: &DeliveryRef<'_>) -> Result<Vec<u8>, super::WireError> {
    use rmp::encode as w;
    let mut out = Vec::with_capacity(d.payload.len() + 9 * d.vector.len() + 192);
    // Writing into a Vec cannot fail; only the metadata's encoding can.
    let _ = w::write_map_len(&mut out, 2);
    let _ = w::write_str(&mut out, "push");
    let _ = w::write_str(&mut out, "delivery");
    let _ = w::write_str(&mut out, "delivery");
    let _ = w::write_map_len(&mut out, 11);
    for (key, value) in [("id", d.id), ("from", d.from)] {
        let _ = w::write_str(&mut out, key);
        let _ = w::write_str(&mut out, value);
    }
    let _ = w::write_str(&mut out, "to");
    let _ = w::write_array_len(&mut out, d.to.len() as u32);
    for to in d.to {
        let _ = w::write_str(&mut out, to);
    }
    let _ = w::write_str(&mut out, "namespace");
    let _ = w::write_str(&mut out, d.namespace);
    let _ = w::write_str(&mut out, "payload");
    let _ = w::write_bin(&mut out, d.payload);
    let _ = w::write_str(&mut out, "vector");
    let _ = w::write_array_len(&mut out, d.vector.len() as u32);
    for x in d.vector {
        let _ = w::write_f64(&mut out, *x);
    }
    let _ = w::write_str(&mut out, "metadata");
    rmp_serde::encode::write_named(&mut out, d.metadata)
        .map_err(|e| super::WireError::new(super::codes::INTERNAL, e.to_string()))?;
    let _ = w::write_str(&mut out, "sent_ms");
    let _ = w::write_uint(&mut out, d.sent_ms);
    let _ = w::write_str(&mut out, "expires_ms");
    match d.expires_ms {
        Some(t) => {
            let _ = w::write_uint(&mut out, t);
        }
        None => {
            let _ = w::write_nil(&mut out);
        }
    }
    let _ = w::write_str(&mut out, "attempt");
    let _ = w::write_uint(&mut out, u64::from(d.attempt));
    let _ = w::write_str(&mut out, "deadline_ms");
    let _ = w::write_uint(&mut out, d.deadline_ms);
    Ok(out)
}

/// `receive`'s arguments.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Receive {
    /// At most this many (default 100).
    #[serde(default = "default_receive")]
    pub max: usize,
}

fn default_receive() -> usize {
    100
}

/// `receive`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deliveries {
    /// The messages handed over, oldest first.
    pub deliveries: Vec<WireDelivery>,
}

/// Ids (`ack`, `release`, `delete_vectors`; `send_batch`'s answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ids {
    /// The ids.
    pub ids: Vec<String>,
}

/// One id (`get_message`, `delete_vector`; `send`'s answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IdArg {
    /// The id.
    pub id: String,
}

/// `ack`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckAnswer {
    /// Acked now.
    pub acked: Vec<String>,
    /// Not in flight for this model (acked before, or never received).
    pub unknown: Vec<String>,
}

/// `release`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Released {
    /// Messages handed back.
    pub released: u64,
}

/// `mailbox`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailboxAnswer {
    /// Waiting.
    pub pending: u64,
    /// Received and not acked.
    pub in_flight: u64,
    /// Dead-lettered since the process started.
    pub dead_lettered: u64,
    /// The latest dead letters, oldest first.
    pub dead_letters: Vec<WireDeadLetter>,
}

/// A message that will not be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireDeadLetter {
    /// The message.
    pub id: String,
    /// Its sender.
    pub from: String,
    /// Why (`expired`, `max_attempts`, `overflow`, …).
    pub reason: String,
    /// Deliveries tried.
    pub attempts: u32,
}
