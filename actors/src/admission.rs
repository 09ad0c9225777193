//! [`Admission`]: what a write holds until it commits — the sender's rate
//! tokens, its storage quota and the recipients' mailbox slots — and gives
//! back unless it commits (the pattern of redb's `Drop for
//! WriteTransaction`). A send, a batch, a broadcast and a vector write all
//! go through one, so a refusal at any step, or a failed write, costs the
//! caller nothing.

use std::sync::Arc;
use std::time::Instant;

use hvs_mailbox::Gauge;

use crate::error::{ActorError, Result};
use crate::registry::Profile;

/// Reservations for one write. Dropped without [`commit`](Self::commit),
/// everything is given back.
pub(crate) struct Admission {
    profile: Arc<Profile>,
    vectors: u64,
    bytes: u64,
    slots: Vec<Arc<Gauge>>,
}

impl Admission {
    /// Nothing held yet, for `profile`'s model.
    pub(crate) fn new(profile: Arc<Profile>) -> Self {
        Self {
            profile,
            vectors: 0,
            bytes: 0,
            slots: Vec::new(),
        }
    }

    /// Takes `n` tokens of the vectors-per-second budget.
    pub(crate) fn take_vectors(&mut self, n: u64) -> Result<()> {
        self.profile.limiter.acquire_vectors(n, Instant::now())?;
        self.vectors += n;
        Ok(())
    }

    /// Charges `bytes` to the storage quota.
    pub(crate) fn charge(&mut self, bytes: u64) -> Result<()> {
        self.profile.charge_storage(bytes)?;
        self.bytes += bytes;
        Ok(())
    }

    /// Reserves a slot in a recipient's mailbox.
    pub(crate) fn reserve(&mut self, mailbox: &Arc<Gauge>) -> Result<()> {
        mailbox.try_reserve().map_err(ActorError::from)?;
        self.slots.push(mailbox.clone());
        Ok(())
    }

    /// Takes over what `other` holds (the accepted messages of a batch).
    pub(crate) fn absorb(&mut self, mut other: Admission) {
        self.vectors += std::mem::take(&mut other.vectors);
        self.bytes += std::mem::take(&mut other.bytes);
        self.slots.append(&mut other.slots);
    }

    /// The write committed: the tokens and the quota are spent, and each
    /// mailbox slot now holds its message.
    pub(crate) fn commit(mut self) {
        self.vectors = 0;
        self.bytes = 0;
        self.slots.clear();
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        for slot in self.slots.drain(..) {
            slot.release();
        }
        if self.bytes > 0 {
            self.profile.refund_storage(self.bytes);
        }
        if self.vectors > 0 {
            self.profile.limiter.release_vectors(self.vectors);
        }
    }
}
