//! What replication asks of the store: hybrid-logical-clock timestamps,
//! version vectors, tombstones, and how one version of a vector from
//! another instance meets the local one (`docs/SYNC.md`, "Conflicts").
//!
//! A vector's [`Clock`] says, per instance, the timestamp of that
//! instance's latest write the version includes. Two versions are in
//! conflict when neither clock covers the other: both sides changed the
//! vector since the last version they agreed on.

use hvs_geometry::{AnyManifold, FrechetOptions, Manifold};
use hvs_types::ConflictStrategy;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::VectorRecord;
pub use crate::writer::ApplyOutcome;

/// The next hybrid-logical-clock timestamp after `last`: milliseconds
/// since the epoch in the high 48 bits, a counter in the low 16, so it
/// follows the wall clock yet never repeats or goes back.
pub(crate) fn next_hlc(last: u64, now_ms: u64) -> u64 {
    (now_ms << 16).max(last.saturating_add(1))
}

/// The wall-clock milliseconds of a hybrid-logical-clock timestamp.
pub fn hlc_millis(hlc: u64) -> u64 {
    hlc >> 16
}

/// A version vector: `(instance, timestamp)` pairs sorted by instance.
/// Empty on versions written before the store kept clocks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Clock(Vec<(u64, u64)>);

/// How one version stands to another, by their clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// The same version.
    Same,
    /// Older: the other includes it.
    Before,
    /// Newer: it includes the other.
    After,
    /// Neither includes the other: a conflict.
    Concurrent,
}

impl Clock {
    /// `true` for a version written before clocks were kept.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `(instance, timestamp)` pairs, by instance.
    pub fn entries(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// This clock with `instance`'s entry set to `hlc`.
    pub(crate) fn with(&self, instance: u64, hlc: u64) -> Clock {
        let mut entries = self.0.clone();
        match entries.binary_search_by_key(&instance, |e| e.0) {
            Ok(i) => entries[i].1 = entries[i].1.max(hlc),
            Err(i) => entries.insert(i, (instance, hlc)),
        }
        Clock(entries)
    }

    /// The entry-wise maximum: a version that includes both.
    pub(crate) fn join(&self, other: &Clock) -> Clock {
        other.0.iter().fold(self.clone(), |c, &(i, t)| c.with(i, t))
    }

    fn get(&self, instance: u64) -> u64 {
        self.0
            .binary_search_by_key(&instance, |e| e.0)
            .map_or(0, |i| self.0[i].1)
    }

    /// How `self` stands to `other`.
    pub fn compare(&self, other: &Clock) -> Causality {
        let instances = self.0.iter().chain(&other.0).map(|e| e.0);
        let (mut older, mut newer) = (false, false);
        for i in instances {
            let (a, b) = (self.get(i), other.get(i));
            older |= a < b;
            newer |= a > b;
        }
        match (older, newer) {
            (false, false) => Causality::Same,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }
}

/// What stays of a deleted vector, so that a late copy of an older
/// version from another instance does not bring it back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The vector.
    pub id: Uuid,
    /// Its namespace.
    pub namespace: String,
    /// The deleted version's number plus one.
    pub version: u64,
    /// When it was deleted (hybrid logical clock).
    pub hlc: u64,
    /// The deleted version's clock, with the deleting instance's entry.
    pub clock: Clock,
}

/// One side's version of a vector: live, or deleted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Version {
    Live(VectorRecord),
    Gone(Tombstone),
}

impl Version {
    fn clock(&self) -> &Clock {
        match self {
            Self::Live(r) => &r.clock,
            Self::Gone(t) => &t.clock,
        }
    }

    fn hlc(&self) -> u64 {
        match self {
            Self::Live(r) => r.hlc,
            Self::Gone(t) => t.hlc,
        }
    }

    fn number(&self) -> u64 {
        match self {
            Self::Live(r) => r.version,
            Self::Gone(t) => t.version,
        }
    }

    /// A total order of versions that share a clock: number, timestamp,
    /// then the encoded version, the same on every instance.
    fn tiebreak(&self) -> (u64, u64, Vec<u8>) {
        let bytes = match self {
            Self::Live(r) => crate::record::encode(r),
            Self::Gone(t) => crate::record::encode(t),
        };
        (self.number(), self.hlc(), bytes.unwrap_or_default())
    }

    /// The `last_write_wins` order: timestamp, then the clock's entries,
    /// so that every instance ranks two versions the same way. A combined
    /// version keeps the later write's timestamp, so it can share one with
    /// a version it includes; the sum of the entries (greater for a clock
    /// that covers another) then ranks it later, keeping this order in line
    /// with the clocks. Without it a tombstone could rank between a version
    /// and its combination, and the three would take turns forever.
    fn recency(&self) -> (u64, u128, &[(u64, u64)]) {
        let entries = self.clock().entries();
        let sum = entries.iter().map(|e| u128::from(e.1)).sum();
        (self.hlc(), sum, entries)
    }
}

/// What applying a remote version does, before any conflict is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The local side has it already, or something newer.
    Keep,
    /// The remote version is newer: write it.
    Take,
    /// Both changed: settle by the strategy.
    Conflict,
}

/// Where `remote` stands to `local` (`None`: never seen here).
pub(crate) fn decide(local: Option<&Version>, remote: &Version) -> Decision {
    let Some(local) = local else {
        return Decision::Take;
    };
    match remote.clock().compare(local.clock()) {
        // Two instances that combined the same writes in different orders
        // (`merge`, `geometric_mean`) hold versions with one clock but other
        // points: every instance keeps the greater by `tiebreak`, so that all
        // end with the same one.
        Causality::Same if remote != local && remote.tiebreak() > local.tiebreak() => {
            Decision::Take
        }
        Causality::Same | Causality::Before => Decision::Keep,
        Causality::After => Decision::Take,
        Causality::Concurrent => Decision::Conflict,
    }
}

/// How a conflict was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The target's version stayed.
    KeptTarget,
    /// The source's version replaced it.
    TookSource,
    /// A new version made of both (`merge`, `geometric_mean`).
    Combined,
}

impl Resolution {
    /// The name used in counts and the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Self::KeptTarget => "kept_target",
            Self::TookSource => "took_source",
            Self::Combined => "combined",
        }
    }
}

/// Settles a conflict between `local` and `remote` by `strategy`: how,
/// and the version to write (`None`: keep the local one). Every instance
/// that settles the same two versions by the same strategy writes the
/// same version, bit for bit, so two-way jobs converge.
pub(crate) fn resolve(
    strategy: ConflictStrategy,
    local: &Version,
    remote: &Version,
    manifold: &AnyManifold,
) -> (Resolution, Option<Version>) {
    let latest = |remote_wins: bool| {
        if remote_wins {
            (Resolution::TookSource, Some(remote.clone()))
        } else {
            (Resolution::KeptTarget, None)
        }
    };
    let lww = || latest(remote.recency() > local.recency());
    match strategy {
        ConflictStrategy::KeepTarget => (Resolution::KeptTarget, None),
        ConflictStrategy::LastWriteWins => lww(),
        ConflictStrategy::HighestVersion => {
            latest((remote.number(), remote.recency()) > (local.number(), local.recency()))
        }
        ConflictStrategy::Merge | ConflictStrategy::GeometricMean => {
            match combine(strategy, local, remote, manifold) {
                Some(r) => (Resolution::Combined, Some(Version::Live(r))),
                // A deletion on either side, or two points with no unique
                // midpoint (antipodes of a sphere): the latest write wins.
                None => lww(),
            }
        }
    }
}

/// The version made of two live versions: the midpoint (or the Fréchet
/// mean) of their points, taken in `recency` order so that both sides
/// compute the same bits; the rest from the later one.
fn combine(
    strategy: ConflictStrategy,
    local: &Version,
    remote: &Version,
    manifold: &AnyManifold,
) -> Option<VectorRecord> {
    let (Version::Live(a), Version::Live(b)) = (local, remote) else {
        return None;
    };
    let (early, late) = if remote.recency() > local.recency() {
        (a, b)
    } else {
        (b, a)
    };
    let data = match strategy {
        ConflictStrategy::Merge => manifold.geodesic(&early.data, &late.data, 0.5).ok()?,
        _ => {
            let points = [early.data.as_slice(), late.data.as_slice()];
            let mean = manifold
                .frechet_mean(&points, None, &FrechetOptions::default())
                .ok()?;
            // A mean that missed its tolerance is no answer to write.
            mean.converged.then_some(mean.mean)?
        }
    };
    manifold.check(&data).ok()?;
    Some(VectorRecord {
        data,
        version: a.version.max(b.version) + 1,
        hlc: late.hlc,
        clock: a.clock.join(&b.clock),
        timestamp_ms: a.timestamp_ms.max(b.timestamp_ms),
        ..late.clone()
    })
}

impl crate::Store {
    /// This store's instance id: its entry in version vectors, drawn at
    /// random when the file was created (a copy of the file shares it).
    pub fn instance_id(&self) -> u64 {
        self.shared
            .instance
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The fence that decides whether this store takes its own writes
    /// (`docs/CLUSTER.md`); open unless a failover group closes it.
    pub fn fence(&self) -> &crate::WriteFence {
        &self.shared.fence
    }

    /// The sequence number of the last committed change (0 if none).
    pub fn last_change(&self) -> u64 {
        *crate::store::lock(&self.shared.last_seq)
    }

    /// Applies changes read from another instance's feed, in order, in one
    /// commit: one outcome each. A version already here or older than the
    /// one here changes nothing; a conflict is settled by `strategy` and
    /// audited under `job`'s name. Namespace and vector changes apply, and
    /// a namespace's catalog records (written with
    /// [`Store::catalog_put_in`](crate::Store::catalog_put_in)) when none
    /// of that key is here; any other is [`ApplyOutcome::Refused`].
    pub fn apply_changes(
        &self,
        job: &str,
        strategy: ConflictStrategy,
        changes: Vec<crate::Change>,
    ) -> crate::Result<Vec<ApplyOutcome>> {
        self.apply_remote(job, strategy, changes, false)
    }

    /// As [`Store::apply_changes`], for a mirror of the source: messages,
    /// settlements, expiries, blocks and every catalog record (kinds not
    /// beginning with `_`) apply too, as the source left them, so that the
    /// mirror can take the source's place (`docs/CLUSTER.md`).
    pub fn mirror_changes(
        &self,
        job: &str,
        strategy: ConflictStrategy,
        changes: Vec<crate::Change>,
    ) -> crate::Result<Vec<ApplyOutcome>> {
        self.apply_remote(job, strategy, changes, true)
    }

    fn apply_remote(
        &self,
        job: &str,
        strategy: ConflictStrategy,
        changes: Vec<crate::Change>,
        mirror: bool,
    ) -> crate::Result<Vec<ApplyOutcome>> {
        let op = crate::writer::Op::ApplyRemote {
            job: job.to_string(),
            strategy,
            changes,
            mirror,
        };
        match self.submit(op)? {
            crate::writer::Reply::Outcomes(o) => Ok(o),
            _ => Err(crate::StorageError::Io("unexpected reply".into())),
        }
    }

    /// The tombstone of deleted vector `id`, if this store deleted (or
    /// heard of the deletion of) it.
    pub fn tombstone(&self, id: Uuid) -> crate::Result<Option<Tombstone>> {
        let txn = self.shared.begin_read()?;
        let table = txn.open_table(crate::store::TOMBSTONES)?;
        let row = table.get(id.as_u128())?;
        row.map(|v| crate::record::decode(v.value(), "tombstone"))
            .transpose()
    }

    /// Sets the number `key` in the `meta` table, in its own commit: a
    /// position a layer above keeps (never in the change feed). Keys are
    /// the caller's; use a prefix of your own.
    pub fn set_mark(&self, key: &str, value: u64) -> crate::Result<()> {
        let op = crate::writer::Op::SetMark {
            key: key.to_string(),
            value,
        };
        self.submit(op).map(drop)
    }

    /// The number `key` in the `meta` table, if set.
    pub fn mark(&self, key: &str) -> crate::Result<Option<u64>> {
        let txn = self.shared.begin_read()?;
        let table = txn.open_table(crate::store::META)?;
        Ok(table.get(key)?.map(|v| v.value()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(entries: &[(u64, u64)]) -> Clock {
        entries
            .iter()
            .fold(Clock::default(), |c, &(i, t)| c.with(i, t))
    }

    #[test]
    fn clocks_order_versions_and_find_conflicts() {
        let a = clock(&[(1, 10)]);
        let b = a.with(2, 20);
        assert_eq!(a.compare(&a), Causality::Same);
        assert_eq!(a.compare(&b), Causality::Before);
        assert_eq!(b.compare(&a), Causality::After);
        let c = a.with(1, 11);
        assert_eq!(b.compare(&c), Causality::Concurrent);
        let j = b.join(&c);
        assert_eq!(j.entries(), &[(1, 11), (2, 20)]);
        assert_eq!(j.compare(&b), Causality::After);
        assert_eq!(Clock::default().compare(&a), Causality::Before);
    }

    #[test]
    fn the_clock_never_goes_back() {
        assert_eq!(next_hlc(0, 5), 5 << 16);
        let later = next_hlc(7 << 16, 5);
        assert_eq!(later, (7 << 16) + 1);
        assert_eq!(hlc_millis(later), 7);
    }
}
