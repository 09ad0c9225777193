//! `hvs-mailbox`: durable per-model queues for HVS.
//!
//! Every model has a mailbox. It delivers each sender's messages in the order
//! sent, at least once: a delivered letter stays until the receiver acks it
//! and is delivered again if no ack comes before its visibility timeout. A
//! mailbox has a capacity and an overflow policy, letters may carry a TTL,
//! and letters that cannot be delivered (expired, out of attempts, pushed out
//! by overflow) come back as dead letters. The crate knows nothing of actors
//! or networking.
//!
//! [`Mailbox`] is the in-memory queue. Messages themselves are stored by
//! `hvs-storage` (one row each, acks and dead letters as settlement rows);
//! after a restart [`recover_letters`] reads back what each recipient has not
//! settled and [`Mailbox::restore`] refills its queue. Time is always passed in as milliseconds since the Unix epoch, so
//! the queue never reads a clock.
//!
//! ```
//! use hvs_mailbox::{Letter, Mailbox, MailboxConfig, MailboxError};
//! use uuid::Uuid;
//!
//! # fn main() -> Result<(), MailboxError> {
//! let config = MailboxConfig { capacity: 2, ..MailboxConfig::default() };
//! let mut inbox: Mailbox<&str> = Mailbox::new("agent-7", config);
//! let gauge = inbox.gauge(); // shared with senders
//! let now = 1_700_000_000_000;
//!
//! // A sender reserves a slot, commits its message, then the letter is admitted.
//! for body in ["plan", "route"] {
//!     gauge.try_reserve()?;
//!     let letter = Letter { id: Uuid::now_v7(), from: "agent-3".into(), sent_ms: now,
//!                           expires_ms: None, body };
//!     inbox.admit_reserved(letter, now);
//! }
//! // Full: under the default policy the next sender is refused.
//! assert_eq!(gauge.try_reserve().unwrap_err().code(), "mailbox_full");
//!
//! // The receiver gets the letters in send order and acks the first.
//! let received = inbox.receive(10, now);
//! let bodies: Vec<&str> = received.deliveries.iter().map(|d| d.letter.body).collect();
//! assert_eq!(bodies, ["plan", "route"]);
//! let first = received.deliveries[0].letter.id;
//! assert_eq!(inbox.ack(&[first]).acked, [first]);
//! gauge.try_reserve()?; // room again
//! gauge.release();
//!
//! // The unacked one is delivered again after the visibility timeout.
//! let later = now + inbox.config().visibility_timeout_ms;
//! assert!(inbox.tick(later).is_empty());
//! let again = inbox.receive(10, later);
//! assert_eq!((again.deliveries[0].letter.body, again.deliveries[0].attempt), ("route", 2));
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Mailbox`], its [`Gauge`] and the types it hands out ([`Letter`],
//!   [`Delivery`], [`DeadLetter`], [`Received`], [`Acked`]) (`queue.rs`),
//!   whose docs state the ordering and delivery guarantees.
//! - [`recover_letters`], [`letter_of`] (`durable.rs`): stored messages as
//!   letters again after a restart.
//! - [`MailboxError`] (`error.rs`).
//!
//! The guarantees are written down in `docs/SEMANTICS.md`.

mod durable;
mod error;
mod queue;

pub use durable::{StoredLetter, letter_of, recover_letters};
pub use error::MailboxError;
pub use queue::{
    Acked, DeadLetter, DeadReason, Delivery, Gauge, Letter, Mailbox, MailboxConfig, OverflowPolicy,
    Received,
};
