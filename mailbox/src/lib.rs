//! `hvs-mailbox`: durable per-model queues on top of `hvs-storage`.
//!
//! This crate will own per-sender FIFO ordering, at-least-once delivery with
//! `ack` and redelivery after a visibility timeout, bounded capacity with an
//! overflow policy, per-message TTL and dead letters. It knows nothing of
//! actors or networking.
//!
//! It holds no code yet: the mailbox work is tracked by the issue on the actor
//! runtime.
