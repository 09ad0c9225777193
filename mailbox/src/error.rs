//! The one error type of the mailbox crate.

/// Everything the mailbox crate can refuse.
///
/// [`MailboxError::code`] gives a stable code that can travel on the wire.
/// [`MailboxFull`](MailboxError::MailboxFull) is back-pressure, not a fault:
/// the sender should retry later or give up, and nothing needs fixing.
// Only Debug: variants wrapping other crates' errors (storage, I/O) are to
// come, and those are rarely Clone or Eq.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailboxError {
    /// The mailbox holds (or has reserved) `capacity` letters and its
    /// overflow policy is [`Refuse`](crate::OverflowPolicy::Refuse).
    #[error("the mailbox of {owner} is full ({capacity} letters)")]
    MailboxFull {
        /// The model whose mailbox refused.
        owner: String,
        /// Its capacity, in letters.
        capacity: usize,
    },
}

impl MailboxError {
    /// A stable, machine-readable snake_case code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MailboxFull { .. } => "mailbox_full",
        }
    }
}
