//! How long a namespace keeps its messages: JetStream's stream limits.

use serde::{Deserialize, Serialize};

/// What a namespace at one of its limits does with a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardPolicy {
    /// Make room: the oldest messages (lowest id) are removed (JetStream's
    /// `DiscardOld`, the default).
    #[default]
    Old,
    /// Refuse the new message with `namespace_full` (JetStream's
    /// `DiscardNew`); nothing stored is removed for it.
    New,
}

impl DiscardPolicy {
    /// `old` or `new`, as written in `hvs.toml` and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Old => "old",
            Self::New => "new",
        }
    }
}

/// The retention limits of a namespace's messages (the messages its models
/// send: a message is stored in its sender's namespace). `None` is no
/// limit. A message's size, for `max_bytes`, is [`message_bytes`] of it:
/// its payload plus 8 bytes per coordinate of its vector, as stored.
///
/// Vectors stored with `store_vector` are not messages and no limit here
/// touches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Messages older than this (from their `sent_ms`) are removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_ms: Option<u64>,
    /// Most messages the namespace holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_messages: Option<u64>,
    /// Most bytes of messages ([`message_bytes`]) the namespace holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// A message every recipient has settled (acked or dead-lettered) is
    /// removed this long after the last settlement; `None` keeps it until
    /// a limit (or its TTL) removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_acked_ms: Option<u64>,
    /// What a namespace at `max_messages` or `max_bytes` does with a new
    /// message.
    #[serde(default)]
    pub discard: DiscardPolicy,
}

impl Retention {
    /// Whether any of `max_age_ms`, `max_messages`, `max_bytes` is set: the
    /// store then keeps a ledger of the namespace's messages (about 40 bytes
    /// each).
    pub fn limited(&self) -> bool {
        self.max_age_ms.is_some() || self.max_messages.is_some() || self.max_bytes.is_some()
    }

    /// Why these limits cannot be used, if they cannot: a limit of 0 (no
    /// message could ever be kept; leave the limit out for none).
    pub fn problem(&self) -> Option<String> {
        [
            ("max_age_ms", self.max_age_ms),
            ("max_messages", self.max_messages),
            ("max_bytes", self.max_bytes),
        ]
        .into_iter()
        .find(|(_, v)| *v == Some(0))
        .map(|(name, _)| format!("{name} must be at least 1 (leave it out for no limit)"))
    }
}

/// A message's size as [`Retention::max_bytes`] counts it: its payload plus
/// 8 bytes per coordinate of its vector (the same as a sender's storage
/// quota counts).
pub fn message_bytes(payload_len: usize, vector_len: usize) -> u64 {
    (payload_len as u64).saturating_add((vector_len as u64).saturating_mul(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_refused_and_absent_ones_are_none() {
        assert!(Retention::default().problem().is_none());
        assert!(!Retention::default().limited());
        let r = Retention {
            max_messages: Some(0),
            ..Retention::default()
        };
        assert!(r.problem().unwrap().contains("max_messages"));
        let r = Retention {
            keep_acked_ms: Some(0),
            ..Retention::default()
        };
        assert!(r.problem().is_none() && !r.limited());
    }

    #[test]
    fn unknown_fields_and_policies_are_refused() {
        let ok: Retention =
            serde_json::from_str(r#"{"max_messages": 3, "discard": "new"}"#).unwrap();
        assert_eq!(ok.discard, DiscardPolicy::New);
        assert!(serde_json::from_str::<Retention>(r#"{"max_msgs": 3}"#).is_err());
        assert!(serde_json::from_str::<Retention>(r#"{"discard": "newest"}"#).is_err());
    }
}
