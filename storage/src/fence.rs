//! The write fence of a failover group's member (`docs/CLUSTER.md`): the
//! store takes its own writes (from models and the API) only while the
//! fence is open. A store outside any group is always open; a member of a
//! group is open only while it holds the group's lease, and only until the
//! lease's deadline, measured on this machine's monotonic clock from
//! before the renewal that granted it. So an instance stopped (a long
//! pause, SIGSTOP) past its lease refuses writes the moment it runs again,
//! before it learns that another took the lease. Changes applied from
//! another instance's feed (sync jobs, mirrors) are not its own writes and
//! pass.

use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Result, StorageError};

/// Whether the store may take its own writes, and under which lease.
#[derive(Debug)]
pub struct WriteFence {
    gate: Mutex<Gate>,
}

#[derive(Debug, Clone)]
enum Gate {
    /// Not in a group: always open.
    Open,
    /// Holding the lease of revision `token` until `until`.
    Held { token: u64, until: Instant },
    /// Not the primary; writes go to `primary`, if known.
    Closed { primary: Option<String> },
}

impl Default for WriteFence {
    fn default() -> Self {
        Self {
            gate: Mutex::new(Gate::Open),
        }
    }
}

impl WriteFence {
    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens the fence under the lease of revision `token`, until `until`.
    pub fn hold(&self, token: u64, until: Instant) {
        *self.gate() = Gate::Held { token, until };
    }

    /// Closes the fence: writes go to `primary` (its address), if known.
    pub fn close(&self, primary: Option<String>) {
        *self.gate() = Gate::Closed { primary };
    }

    /// The lease revision writes are taken under now (`Ok(None)` outside
    /// a group), or the refusal a write gets.
    pub fn check(&self, now: Instant) -> Result<Option<u64>> {
        match &*self.gate() {
            Gate::Open => Ok(None),
            Gate::Held { token, until } if now < *until => Ok(Some(*token)),
            Gate::Held { .. } => Err(StorageError::NotPrimary { primary: None }),
            Gate::Closed { primary } => Err(StorageError::NotPrimary {
                primary: primary.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lease_opens_the_fence_until_its_deadline_only() {
        let f = WriteFence::default();
        let now = Instant::now();
        assert_eq!(f.check(now).unwrap(), None);
        f.close(Some("10.0.0.2:7411".into()));
        match f.check(now) {
            Err(StorageError::NotPrimary { primary }) => {
                assert_eq!(primary.as_deref(), Some("10.0.0.2:7411"))
            }
            other => panic!("{other:?}"),
        }
        f.hold(7, now + Duration::from_secs(2));
        assert_eq!(f.check(now).unwrap(), Some(7));
        assert_eq!(f.check(now + Duration::from_millis(1999)).unwrap(), Some(7));
        assert!(matches!(
            f.check(now + Duration::from_secs(2)),
            Err(StorageError::NotPrimary { primary: None })
        ));
    }
}
