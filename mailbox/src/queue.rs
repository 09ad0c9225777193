//! The in-memory queue of one model's mailbox: [`Mailbox`] and the admission
//! [`Gauge`] it shares with senders. What it guarantees is written on
//! [`Mailbox`], where users of the crate read it.
//!
//! Time is passed in as `now_ms` (milliseconds since the Unix epoch) on every
//! call; the queue never reads a clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

use crate::error::MailboxError;

/// What happens when a message arrives at a full mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// The sender is refused with [`MailboxError::MailboxFull`] when it tries
    /// to reserve a slot.
    Refuse,
    /// The message is admitted and the oldest pending letter (or, if none is
    /// pending, the oldest in flight) becomes a dead letter
    /// ([`DeadReason::Overflow`]).
    DeadLetterOldest,
}

/// The settings of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxConfig {
    /// Most letters held, pending and in flight together; default 100 000.
    pub capacity: usize,
    /// What happens at capacity; default [`OverflowPolicy::Refuse`].
    pub overflow: OverflowPolicy,
    /// How long a delivered letter may go unacked before it is delivered
    /// again; default 30 000 ms.
    pub visibility_timeout_ms: u64,
    /// Deliveries before a letter is dead-lettered; default 5; 0 means
    /// unlimited.
    pub max_attempts: u32,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            overflow: OverflowPolicy::Refuse,
            visibility_timeout_ms: 30_000,
            max_attempts: 5,
        }
    }
}

/// One message in a mailbox. `M` is the body (the runtime uses an `Arc` of a
/// stored record); it is cloned on every delivery, so it should be cheap to
/// clone, as the rest of the letter is (`from` is shared, not copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter<M> {
    /// UUID v7 given by the sender; the mailbox delivers in id order.
    pub id: Uuid,
    /// The sending model.
    pub from: Arc<str>,
    /// When it was sent, in ms since the Unix epoch.
    pub sent_ms: u64,
    /// When it expires, if ever; a letter is dead at `now_ms >= expires_ms`.
    pub expires_ms: Option<u64>,
    /// The message itself.
    pub body: M,
}

impl<M> Letter<M> {
    fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| at <= now_ms)
    }
}

/// A letter handed out for processing; it must be acked before
/// `deadline_ms` or it is delivered again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<M> {
    /// The letter (a clone; the mailbox keeps its own until the ack).
    pub letter: Letter<M>,
    /// 1 on the first delivery, 2 on the second, …
    pub attempt: u32,
    /// Unacked at this time (ms since the Unix epoch), the letter is
    /// delivered again.
    pub deadline_ms: u64,
}

/// Why a letter left its mailbox without being acked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// It reached its `expires_ms`.
    Expired,
    /// It was delivered `max_attempts` times and never acked.
    MaxAttempts,
    /// It made room in a full mailbox under
    /// [`OverflowPolicy::DeadLetterOldest`].
    Overflow,
}

/// A letter that left its mailbox without being acked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<M> {
    /// The letter.
    pub letter: Letter<M>,
    /// Why it left.
    pub reason: DeadReason,
    /// How many times it had been delivered.
    pub attempts: u32,
}

/// What [`Mailbox::receive`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<M> {
    /// Letters to process, in id order; at most the `max` asked for.
    pub deliveries: Vec<Delivery<M>>,
    /// Letters met on the way that could not be delivered: expired, or out of
    /// attempts after a [`Mailbox::release`].
    pub dead: Vec<DeadLetter<M>>,
}

/// What [`Mailbox::ack`] did with each id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acked {
    /// Ids that were in flight and have now left the mailbox for good.
    pub acked: Vec<Uuid>,
    /// Ids that were not in flight: unknown, still pending, already acked or
    /// dead. Acking twice is not an error.
    pub unknown: Vec<Uuid>,
}

/// The largest value of either half of [`Gauge::state`].
const HALF: u64 = u32::MAX as u64;

/// Admission control of one mailbox, shared with senders (in an `Arc`) so a
/// sender can reserve a slot before its message is committed.
#[derive(Debug)]
pub struct Gauge {
    /// `held << 32 | reserved` in one word, so that admission checks their sum
    /// atomically: two counters could each be read before the other changed
    /// and let two senders take the last slot. Only the mailbox writes `held`;
    /// senders move `reserved`. Each half saturates at `u32::MAX`, far beyond
    /// what fits in memory.
    state: AtomicU64,
    capacity: usize,
    overflow: OverflowPolicy,
    owner: Arc<str>,
}

fn unpack(state: u64) -> (u64, u64) {
    (state >> 32, state & HALF)
}

fn pack(held: u64, reserved: u64) -> u64 {
    (held.min(HALF) << 32) | reserved.min(HALF)
}

impl Gauge {
    fn new(owner: Arc<str>, capacity: usize, overflow: OverflowPolicy) -> Self {
        Self {
            state: AtomicU64::new(0),
            capacity,
            overflow,
            owner,
        }
    }

    /// Reserves a slot for one letter, to be given to
    /// [`Mailbox::admit_reserved`] or handed back with [`Gauge::release`].
    ///
    /// Under [`OverflowPolicy::Refuse`] this fails with
    /// [`MailboxError::MailboxFull`] when held plus reserved letters reach the
    /// capacity; under [`OverflowPolicy::DeadLetterOldest`] it succeeds (unless
    /// `u32::MAX` reservations are outstanding).
    pub fn try_reserve(&self) -> Result<(), MailboxError> {
        let capacity = u64::try_from(self.capacity).unwrap_or(u64::MAX);
        let refuse = self.overflow == OverflowPolicy::Refuse;
        self.state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                let (held, reserved) = unpack(state);
                let full = refuse && held.saturating_add(reserved) >= capacity;
                (!full && reserved < HALF).then(|| pack(held, reserved + 1))
            })
            .map(|_| ())
            .map_err(|_| MailboxError::MailboxFull {
                owner: self.owner.to_string(),
                capacity: self.capacity,
            })
    }

    /// Hands back a reservation that will not be admitted (the commit
    /// failed, the sender gave up). Without an outstanding reservation it does
    /// nothing.
    pub fn release(&self) {
        self.settle(None, 1);
    }

    /// Letters held plus slots reserved.
    pub fn len(&self) -> usize {
        let (held, reserved) = unpack(self.state.load(Ordering::Acquire));
        usize::try_from(held + reserved).unwrap_or(usize::MAX)
    }

    /// Whether no letter is held and no slot reserved.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most letters the mailbox holds under [`OverflowPolicy::Refuse`].
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sets the held count (if given) and uses up `reservations`, in one step.
    fn settle(&self, held: Option<usize>, reservations: u64) {
        let held = held.map(|n| u64::try_from(n).unwrap_or(u64::MAX));
        // The closure always returns Some, so the update cannot fail.
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |state| {
                let (old_held, reserved) = unpack(state);
                Some(pack(
                    held.unwrap_or(old_held),
                    reserved.saturating_sub(reservations),
                ))
            });
    }

    #[cfg(test)]
    fn reserved(&self) -> usize {
        let (_, reserved) = unpack(self.state.load(Ordering::Acquire));
        usize::try_from(reserved).unwrap_or(usize::MAX)
    }
}

/// A held letter and how many times it has been delivered.
#[derive(Debug)]
struct Entry<M> {
    letter: Letter<M>,
    attempts: u32,
}

impl<M> Entry<M> {
    fn bury(self, reason: DeadReason) -> DeadLetter<M> {
        DeadLetter {
            letter: self.letter,
            reason,
            attempts: self.attempts,
        }
    }
}

#[derive(Debug)]
struct InFlight<M> {
    entry: Entry<M>,
    deadline_ms: u64,
}

/// The in-memory queue of one model: pending letters in id order, letters in
/// flight until acked, capacity, TTL and dead letters. Time is passed in as
/// `now_ms` on every call.
///
/// # Guarantees
/// - **Order.** Pending letters are handed out in id order. Ids are UUID v7,
///   which increase with send time within a sender, so each sender's letters
///   are delivered in the order sent (per-sender FIFO). Letters of different
///   senders interleave by id; nothing more is promised between senders.
/// - **At least once.** A delivered letter stays in the mailbox until acked.
///   If it is not acked before its deadline, [`Mailbox::tick`] puts it back,
///   first in line by id, and it is delivered again with the next attempt
///   number; after `max_attempts` deliveries it becomes a dead letter instead.
/// - **Expiry.** A letter is never handed out at or after its `expires_ms`; it
///   becomes a dead letter ([`DeadReason::Expired`]) whether pending or in
///   flight.
/// - **Capacity.** Under [`OverflowPolicy::Refuse`] a sender is refused by
///   [`Gauge::try_reserve`] once held plus reserved letters reach the
///   capacity; under [`OverflowPolicy::DeadLetterOldest`] every letter is
///   admitted and the oldest pending one is dead-lettered to make room.
/// - **Accounting.** After every call the gauge's held count equals
///   [`Mailbox::len`]; every letter leaves exactly once, by ack, as a dead
///   letter, or withdrawn ([`Mailbox::withdraw`]: its message was removed
///   from storage by a retention limit).
#[derive(Debug)]
pub struct Mailbox<M> {
    config: MailboxConfig,
    gauge: Arc<Gauge>,
    /// Waiting for delivery. `Uuid`'s order is byte order, which for v7 is
    /// send-time order.
    pending: BTreeMap<Uuid, Entry<M>>,
    /// Delivered, not yet acked. Ordered so that overflow can find the oldest.
    in_flight: BTreeMap<Uuid, InFlight<M>>,
    /// `(deadline_ms, id)` of exactly the letters in `in_flight`, so that
    /// `tick` touches only the due ones.
    deadlines: BTreeSet<(u64, Uuid)>,
    /// `(expires_ms, id)` of exactly the held letters (pending or in flight)
    /// that have an expiry.
    expiries: BTreeSet<(u64, Uuid)>,
}

impl<M: Clone> Mailbox<M> {
    /// An empty mailbox of the model `owner`.
    pub fn new(owner: impl Into<String>, config: MailboxConfig) -> Self {
        let owner: Arc<str> = Arc::from(owner.into());
        let gauge = Arc::new(Gauge::new(owner, config.capacity, config.overflow));
        Self {
            config,
            gauge,
            pending: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            expiries: BTreeSet::new(),
        }
    }

    /// The admission gauge, for senders.
    pub fn gauge(&self) -> Arc<Gauge> {
        Arc::clone(&self.gauge)
    }

    /// The settings this mailbox was made with.
    pub fn config(&self) -> &MailboxConfig {
        &self.config
    }

    /// The model this mailbox belongs to.
    pub fn owner(&self) -> &str {
        &self.gauge.owner
    }

    /// Admits a letter whose slot was reserved with [`Gauge::try_reserve`],
    /// using up the reservation, and returns the letters that died of it.
    ///
    /// Under [`OverflowPolicy::DeadLetterOldest`], if more than `capacity`
    /// letters are held afterwards, the oldest pending letter (lowest id; if
    /// none is pending, the oldest in flight) is returned as a dead letter
    /// ([`DeadReason::Overflow`]); that may be the new letter itself. A letter
    /// already expired at `now_ms` is returned at once as
    /// [`DeadReason::Expired`]. Admitting an id already held is a no-op that
    /// only releases the reservation (idempotent redelivery after recovery);
    /// ids that have left the mailbox are not remembered.
    pub fn admit_reserved(&mut self, letter: Letter<M>, now_ms: u64) -> Vec<DeadLetter<M>> {
        self.admit(letter, now_ms, 1)
    }

    /// Admits a letter without a reservation (when rebuilding after a
    /// restart), with the same handling as [`Mailbox::admit_reserved`]. It
    /// never refuses: under [`OverflowPolicy::Refuse`] the mailbox may then
    /// hold more than its capacity, and senders are refused until it drains.
    pub fn restore(&mut self, letter: Letter<M>, now_ms: u64) -> Vec<DeadLetter<M>> {
        self.admit(letter, now_ms, 0)
    }

    fn admit(&mut self, letter: Letter<M>, now_ms: u64, reservations: u64) -> Vec<DeadLetter<M>> {
        let mut dead = Vec::new();
        let id = letter.id;
        if self.pending.contains_key(&id) || self.in_flight.contains_key(&id) {
            // The held copy keeps its attempts and deadline.
        } else if letter.is_expired(now_ms) {
            dead.push(
                Entry {
                    letter,
                    attempts: 0,
                }
                .bury(DeadReason::Expired),
            );
        } else {
            if let Some(at) = letter.expires_ms {
                self.expiries.insert((at, id));
            }
            self.pending.insert(
                id,
                Entry {
                    letter,
                    attempts: 0,
                },
            );
            if self.config.overflow == OverflowPolicy::DeadLetterOldest {
                while self.len() > self.config.capacity {
                    match self.evict_oldest() {
                        Some(letter) => dead.push(letter),
                        None => break,
                    }
                }
            }
        }
        self.gauge.settle(Some(self.len()), reservations);
        dead
    }

    fn evict_oldest(&mut self) -> Option<DeadLetter<M>> {
        let entry = match self.pending.pop_first() {
            Some((_, entry)) => entry,
            None => {
                let id = *self.in_flight.keys().next()?;
                self.take_in_flight(id)?.entry
            }
        };
        self.forget_expiry(&entry.letter);
        Some(entry.bury(DeadReason::Overflow))
    }

    /// Hands out up to `max` pending letters in id order, moving them in
    /// flight with deadline `now_ms + visibility_timeout_ms` and the next
    /// attempt number.
    ///
    /// Letters met on the way whose `expires_ms <= now_ms`, or that were
    /// released after their last allowed attempt, are not handed out; they
    /// leave as dead letters in [`Received::dead`].
    pub fn receive(&mut self, max: usize, now_ms: u64) -> Received<M> {
        let mut deliveries = Vec::with_capacity(max.min(self.pending.len()));
        let mut dead = Vec::new();
        while deliveries.len() < max {
            let Some((id, entry)) = self.pending.pop_first() else {
                break;
            };
            let reason = if entry.letter.is_expired(now_ms) {
                Some(DeadReason::Expired)
            } else if self.out_of_attempts(entry.attempts) {
                Some(DeadReason::MaxAttempts)
            } else {
                None
            };
            if let Some(reason) = reason {
                self.forget_expiry(&entry.letter);
                dead.push(entry.bury(reason));
                continue;
            }
            let attempts = entry.attempts.saturating_add(1);
            let deadline_ms = now_ms.saturating_add(self.config.visibility_timeout_ms);
            deliveries.push(Delivery {
                letter: entry.letter.clone(),
                attempt: attempts,
                deadline_ms,
            });
            self.deadlines.insert((deadline_ms, id));
            let entry = Entry {
                letter: entry.letter,
                attempts,
            };
            self.in_flight.insert(id, InFlight { entry, deadline_ms });
        }
        self.sync_gauge();
        Received { deliveries, dead }
    }

    /// Acks in-flight letters: they leave the mailbox for good. Ids not in
    /// flight (unknown, pending, already acked or dead) are reported in
    /// [`Acked::unknown`]; acking twice is not an error.
    pub fn ack(&mut self, ids: &[Uuid]) -> Acked {
        let mut acked = Acked::default();
        for &id in ids {
            match self.take_in_flight(id) {
                Some(flight) => {
                    self.forget_expiry(&flight.entry.letter);
                    acked.acked.push(id);
                }
                None => acked.unknown.push(id),
            }
        }
        self.sync_gauge();
        acked
    }

    /// Gives in-flight letters back for immediate redelivery (a negative
    /// ack) and returns how many were in flight. The delivery counts as an
    /// attempt: a letter that has had its `max_attempts` is not delivered
    /// again but dead-lettered by the next [`Mailbox::receive`] that reaches
    /// it.
    pub fn release(&mut self, ids: &[Uuid]) -> usize {
        let mut released = 0;
        for &id in ids {
            if let Some(flight) = self.take_in_flight(id) {
                self.pending.insert(id, flight.entry);
                released += 1;
            }
        }
        self.sync_gauge();
        released
    }

    /// Moves in-flight letters whose deadline is at or before `now_ms` back
    /// to pending (first in line again, in id order), and returns as dead
    /// letters those that had their `max_attempts`
    /// ([`DeadReason::MaxAttempts`]) and every held letter whose `expires_ms`
    /// is at or before `now_ms` ([`DeadReason::Expired`]).
    pub fn tick(&mut self, now_ms: u64) -> Vec<DeadLetter<M>> {
        let mut dead = Vec::new();
        while let Some(&(at, id)) = self.expiries.first() {
            if at > now_ms {
                break;
            }
            self.expiries.pop_first();
            let entry = match self.pending.remove(&id) {
                Some(entry) => Some(entry),
                None => self.take_in_flight(id).map(|flight| flight.entry),
            };
            if let Some(entry) = entry {
                dead.push(entry.bury(DeadReason::Expired));
            }
        }
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now_ms {
                break;
            }
            self.deadlines.pop_first();
            let Some(flight) = self.in_flight.remove(&id) else {
                continue;
            };
            if self.out_of_attempts(flight.entry.attempts) {
                self.forget_expiry(&flight.entry.letter);
                dead.push(flight.entry.bury(DeadReason::MaxAttempts));
            } else {
                self.pending.insert(id, flight.entry);
            }
        }
        self.sync_gauge();
        dead
    }

    /// Takes these letters out, pending or in flight, without acking or
    /// dead-lettering them: their message is gone from storage (a retention
    /// limit discarded it, `docs/SEMANTICS.md`, "Retention"), so they are
    /// never delivered again and an ack of them finds nothing. Returns how
    /// many were held; ids not held are ignored.
    pub fn withdraw(&mut self, ids: &[Uuid]) -> usize {
        let mut withdrawn = 0;
        for &id in ids {
            let entry = match self.pending.remove(&id) {
                Some(entry) => Some(entry),
                None => self.take_in_flight(id).map(|flight| flight.entry),
            };
            if let Some(entry) = entry {
                self.forget_expiry(&entry.letter);
                withdrawn += 1;
            }
        }
        self.sync_gauge();
        withdrawn
    }

    /// Takes every held letter out, pending and in flight, in id order,
    /// without acking or dead-lettering any: the mailbox's owner moved to
    /// another instance, which takes them over (`docs/SEMANTICS.md`,
    /// "Across instances"). The gauge's held count drops to zero.
    pub fn drain(&mut self) -> Vec<Letter<M>> {
        let mut all: BTreeMap<Uuid, Letter<M>> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(id, e)| (id, e.letter))
            .collect();
        all.extend(
            std::mem::take(&mut self.in_flight)
                .into_iter()
                .map(|(id, f)| (id, f.entry.letter)),
        );
        self.deadlines.clear();
        self.expiries.clear();
        self.sync_gauge();
        all.into_values().collect()
    }

    /// The earliest in-flight deadline or held letter's expiry, when
    /// [`Mailbox::tick`] next has work; `None` if it has none.
    pub fn next_due_ms(&self) -> Option<u64> {
        let deadline = self.deadlines.first().map(|&(at, _)| at);
        let expiry = self.expiries.first().map(|&(at, _)| at);
        deadline.into_iter().chain(expiry).min()
    }

    /// Letters waiting for delivery.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Letters delivered and not yet acked.
    pub fn in_flight_len(&self) -> usize {
        self.in_flight.len()
    }

    /// Letters held: pending plus in flight.
    pub fn len(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }

    /// Whether no letter is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_empty()
    }

    fn out_of_attempts(&self, attempts: u32) -> bool {
        self.config.max_attempts != 0 && attempts >= self.config.max_attempts
    }

    /// Removes an in-flight letter and its deadline; its expiry stays indexed.
    fn take_in_flight(&mut self, id: Uuid) -> Option<InFlight<M>> {
        let flight = self.in_flight.remove(&id)?;
        self.deadlines.remove(&(flight.deadline_ms, id));
        Some(flight)
    }

    fn forget_expiry(&mut self, letter: &Letter<M>) {
        if let Some(at) = letter.expires_ms {
            self.expiries.remove(&(at, letter.id));
        }
    }

    fn sync_gauge(&self) {
        self.gauge.settle(Some(self.len()), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn letter(n: u128, from: &str) -> Letter<u128> {
        Letter {
            id: id(n),
            from: from.into(),
            sent_ms: T0,
            expires_ms: None,
            body: n,
        }
    }

    fn expiring(n: u128, expires_ms: u64) -> Letter<u128> {
        Letter {
            expires_ms: Some(expires_ms),
            ..letter(n, "a")
        }
    }

    fn config(capacity: usize, overflow: OverflowPolicy) -> MailboxConfig {
        MailboxConfig {
            capacity,
            overflow,
            visibility_timeout_ms: 100,
            max_attempts: 3,
        }
    }

    fn mailbox(config: MailboxConfig) -> Mailbox<u128> {
        Mailbox::new("model-b", config)
    }

    /// Admits through a reservation, as a sender would.
    fn send(mb: &mut Mailbox<u128>, letter: Letter<u128>, now_ms: u64) -> Vec<DeadLetter<u128>> {
        mb.gauge().try_reserve().unwrap();
        mb.admit_reserved(letter, now_ms)
    }

    fn ids_of(deliveries: &[Delivery<u128>]) -> Vec<Uuid> {
        deliveries.iter().map(|d| d.letter.id).collect()
    }

    #[test]
    fn drain_takes_every_held_letter_in_id_order_and_empties_the_gauge() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, letter(3, "a"), T0);
        send(&mut mb, expiring(1, T0 + 50), T0);
        send(&mut mb, letter(2, "b"), T0);
        assert_eq!(ids_of(&mb.receive(1, T0).deliveries), [id(1)]);
        let drained: Vec<Uuid> = mb.drain().iter().map(|l| l.id).collect();
        assert_eq!(drained, [id(1), id(2), id(3)]);
        assert!(mb.is_empty());
        assert_eq!(mb.gauge().len(), 0);
        assert!(mb.tick(T0 + 1_000).is_empty());
        assert_eq!(mb.next_due_ms(), None);
    }

    fn dead_ids(dead: &[DeadLetter<u128>]) -> Vec<(Uuid, DeadReason)> {
        dead.iter().map(|d| (d.letter.id, d.reason)).collect()
    }

    /// The internal indexes describe exactly the held letters, and the gauge
    /// counts them.
    fn check_invariants<M: Clone>(mb: &Mailbox<M>) {
        assert_eq!(mb.gauge.len(), mb.len() + mb.gauge.reserved());
        for id in mb.pending.keys() {
            assert!(!mb.in_flight.contains_key(id), "{id} pending and in flight");
        }
        let deadlines: BTreeSet<_> = mb
            .in_flight
            .iter()
            .map(|(id, f)| (f.deadline_ms, *id))
            .collect();
        assert_eq!(deadlines, mb.deadlines);
        let expiries: BTreeSet<_> = mb
            .pending
            .values()
            .chain(mb.in_flight.values().map(|f| &f.entry))
            .filter_map(|e| e.letter.expires_ms.map(|at| (at, e.letter.id)))
            .collect();
        assert_eq!(expiries, mb.expiries);
    }

    #[test]
    fn default_config_is_as_documented() {
        let c = MailboxConfig::default();
        assert_eq!(c.capacity, 100_000);
        assert_eq!(c.overflow, OverflowPolicy::Refuse);
        assert_eq!(c.visibility_timeout_ms, 30_000);
        assert_eq!(c.max_attempts, 5);
    }

    #[test]
    fn each_senders_letters_are_delivered_in_send_order_when_senders_interleave() {
        let mut mb = mailbox(MailboxConfig::default());
        // Three senders; ids increase with send time. Letters arrive out of
        // send order (as they would over different connections).
        let sent = [
            (1, "a"),
            (2, "b"),
            (3, "a"),
            (4, "c"),
            (5, "b"),
            (6, "a"),
            (7, "c"),
        ];
        for &(n, from) in [6, 2, 7, 1, 4, 3, 5].iter().map(|&n| &sent[n - 1]) {
            send(&mut mb, letter(n, from), T0);
        }
        // Receive in small batches: order must hold across calls too.
        let mut got = Vec::new();
        loop {
            let r = mb.receive(2, T0);
            if r.deliveries.is_empty() {
                break;
            }
            got.extend(r.deliveries);
        }
        for sender in ["a", "b", "c"] {
            let theirs: Vec<u128> = got
                .iter()
                .filter(|d| &*d.letter.from == sender)
                .map(|d| d.letter.body)
                .collect();
            let sent_by: Vec<u128> = sent
                .iter()
                .filter(|(_, f)| *f == sender)
                .map(|(n, _)| *n)
                .collect();
            assert_eq!(theirs, sent_by, "sender {sender}");
        }
        assert_eq!(got.len(), sent.len());
        check_invariants(&mb);
    }

    #[test]
    fn receive_hands_out_at_most_max() {
        let mut mb = mailbox(MailboxConfig::default());
        for n in 1..=5 {
            send(&mut mb, letter(n, "a"), T0);
        }
        assert!(mb.receive(0, T0).deliveries.is_empty());
        assert_eq!(mb.pending_len(), 5);

        let first = mb.receive(2, T0);
        assert_eq!(ids_of(&first.deliveries), [id(1), id(2)]);
        assert_eq!((mb.pending_len(), mb.in_flight_len()), (3, 2));

        let rest = mb.receive(usize::MAX, T0);
        assert_eq!(ids_of(&rest.deliveries), [id(3), id(4), id(5)]);
        assert!(mb.receive(10, T0).deliveries.is_empty());
        check_invariants(&mb);
    }

    #[test]
    fn a_delivery_carries_attempt_one_and_the_visibility_deadline() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, letter(1, "a"), T0);
        let d = &mb.receive(1, T0 + 5).deliveries[0];
        assert_eq!(d.letter, letter(1, "a"));
        assert_eq!((d.attempt, d.deadline_ms), (1, T0 + 5 + 100));
    }

    #[test]
    fn an_unacked_letter_comes_back_after_the_visibility_timeout_first_in_line() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, letter(1, "a"), T0);
        let deadline = mb.receive(1, T0).deliveries[0].deadline_ms;
        // Newer letters arrive while the first is in flight.
        send(&mut mb, letter(2, "a"), T0 + 10);
        send(&mut mb, letter(3, "b"), T0 + 20);

        // Not yet due: nothing moves, and the letter is not handed out again.
        assert!(mb.tick(deadline - 1).is_empty());
        assert_eq!(mb.in_flight_len(), 1);
        assert_eq!(ids_of(&mb.receive(1, deadline - 1).deliveries), [id(2)]);

        // Due at the deadline itself: it returns ahead of the newer letter 3.
        assert!(mb.tick(deadline).is_empty());
        let again = mb.receive(1, deadline);
        assert_eq!(ids_of(&again.deliveries), [id(1)]);
        assert_eq!(again.deliveries[0].attempt, 2);
        assert_eq!(again.deliveries[0].deadline_ms, deadline + 100);
        check_invariants(&mb);
    }

    #[test]
    fn ack_removes_a_letter_for_good_and_a_second_ack_reports_it_unknown() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, letter(1, "a"), T0);
        send(&mut mb, letter(2, "a"), T0);
        mb.receive(1, T0);

        let first = mb.ack(&[id(1)]);
        assert_eq!(
            first,
            Acked {
                acked: vec![id(1)],
                unknown: vec![]
            }
        );
        assert_eq!(mb.len(), 1);
        // Again, plus a pending id and an id never seen: none is in flight.
        let second = mb.ack(&[id(1), id(2), id(99)]);
        assert_eq!(
            second,
            Acked {
                acked: vec![],
                unknown: vec![id(1), id(2), id(99)]
            }
        );
        assert_eq!(
            mb.pending_len(),
            1,
            "acking a pending letter leaves it pending"
        );

        // Long after the deadline it does not come back.
        assert!(mb.tick(T0 + 1_000_000).is_empty());
        assert_eq!(ids_of(&mb.receive(10, T0 + 1_000_000).deliveries), [id(2)]);
        check_invariants(&mb);
    }

    #[test]
    fn a_letter_never_acked_is_dead_lettered_after_max_attempts() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, letter(1, "a"), T0);
        let mut now = T0;
        for attempt in 1..=3 {
            let r = mb.receive(1, now);
            assert_eq!(r.deliveries[0].attempt, attempt);
            now = r.deliveries[0].deadline_ms;
            let dead = mb.tick(now);
            if attempt < 3 {
                assert!(dead.is_empty(), "attempt {attempt}");
            } else {
                assert_eq!(dead_ids(&dead), [(id(1), DeadReason::MaxAttempts)]);
                assert_eq!(dead[0].attempts, 3);
                assert_eq!(dead[0].letter, letter(1, "a"));
            }
        }
        assert!(mb.is_empty());
        assert_eq!(mb.gauge().len(), 0);
        assert!(mb.receive(1, now).deliveries.is_empty());
    }

    #[test]
    fn max_attempts_zero_redelivers_without_limit() {
        let mut mb = mailbox(MailboxConfig {
            max_attempts: 0,
            ..config(10, OverflowPolicy::Refuse)
        });
        send(&mut mb, letter(1, "a"), T0);
        let mut now = T0;
        for attempt in 1..=50 {
            let r = mb.receive(1, now);
            assert_eq!(r.deliveries[0].attempt, attempt);
            now = r.deliveries[0].deadline_ms;
            assert!(mb.tick(now).is_empty());
        }
    }

    #[test]
    fn a_released_letter_is_receivable_at_once_and_the_release_counts_as_an_attempt() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, letter(1, "a"), T0);
        send(&mut mb, letter(2, "a"), T0);
        mb.receive(2, T0);

        assert_eq!(mb.release(&[id(1), id(1), id(99)]), 1);
        assert_eq!((mb.pending_len(), mb.in_flight_len()), (1, 1));
        // Same instant, no tick needed.
        let r = mb.receive(10, T0);
        assert_eq!(ids_of(&r.deliveries), [id(1)]);
        assert_eq!(r.deliveries[0].attempt, 2);
        check_invariants(&mb);
    }

    #[test]
    fn a_letter_released_after_its_last_attempt_is_dead_lettered_not_delivered() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, letter(1, "a"), T0);
        send(&mut mb, letter(2, "a"), T0);
        for _ in 0..3 {
            mb.receive(1, T0);
            assert_eq!(mb.release(&[id(1)]), 1);
        }
        let r = mb.receive(1, T0);
        assert_eq!(dead_ids(&r.dead), [(id(1), DeadReason::MaxAttempts)]);
        assert_eq!(r.dead[0].attempts, 3);
        // The slot it freed is filled by the next letter.
        assert_eq!(ids_of(&r.deliveries), [id(2)]);
        assert_eq!(mb.gauge().len(), 1);
        check_invariants(&mb);
    }

    #[test]
    fn withdrawn_letters_leave_pending_or_in_flight_without_a_dead_letter() {
        let mut mb = Mailbox::new("m", MailboxConfig::default());
        send(&mut mb, letter(1, "a"), T0);
        send(&mut mb, expiring(2, T0 + 50), T0);
        send(&mut mb, letter(3, "a"), T0);
        let r = mb.receive(1, T0);
        assert_eq!(r.deliveries[0].letter.id, id(1));
        assert_eq!(mb.withdraw(&[id(1), id(2), id(9)]), 2);
        assert_eq!((mb.len(), mb.gauge().len()), (1, 1));
        assert_eq!(mb.next_due_ms(), None, "no deadline or expiry is left");
        // Neither comes back: not by a tick past the deadline, not as dead.
        assert!(mb.tick(T0 + 100_000).is_empty());
        assert_eq!(mb.ack(&[id(1)]).unknown, vec![id(1)]);
        let r = mb.receive(10, T0 + 100_000);
        let ids: Vec<Uuid> = r.deliveries.iter().map(|d| d.letter.id).collect();
        assert_eq!((ids, r.dead.len()), (vec![id(3)], 0));
    }

    #[test]
    fn an_expired_pending_letter_is_dead_lettered_by_tick_and_never_delivered() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, expiring(1, T0 + 50), T0);
        send(&mut mb, letter(2, "a"), T0);
        assert_eq!(mb.next_due_ms(), Some(T0 + 50));
        assert!(mb.tick(T0 + 49).is_empty());

        let dead = mb.tick(T0 + 50);
        assert_eq!(dead_ids(&dead), [(id(1), DeadReason::Expired)]);
        assert_eq!(dead[0].attempts, 0);
        assert_eq!(ids_of(&mb.receive(10, T0 + 50).deliveries), [id(2)]);
        assert_eq!(mb.gauge().len(), 1);
        check_invariants(&mb);
    }

    #[test]
    fn an_expired_in_flight_letter_is_dead_lettered_by_tick_and_cannot_be_acked() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, expiring(1, T0 + 50), T0);
        assert_eq!(mb.receive(1, T0).deliveries.len(), 1);
        // The expiry comes before the visibility deadline.
        assert_eq!(mb.next_due_ms(), Some(T0 + 50));

        let dead = mb.tick(T0 + 50);
        assert_eq!(dead_ids(&dead), [(id(1), DeadReason::Expired)]);
        assert_eq!(dead[0].attempts, 1);
        assert!(mb.is_empty());
        assert_eq!(mb.next_due_ms(), None);
        assert_eq!(mb.ack(&[id(1)]).unknown, [id(1)]);
        // Nor does it come back at its old deadline.
        assert!(mb.tick(T0 + 1_000).is_empty());
        assert!(mb.receive(10, T0 + 1_000).deliveries.is_empty());
        check_invariants(&mb);
    }

    #[test]
    fn receive_never_hands_out_an_expired_letter_and_returns_it_dead() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        send(&mut mb, expiring(1, T0 + 50), T0);
        send(&mut mb, expiring(2, T0 + 60), T0);
        send(&mut mb, letter(3, "a"), T0);
        // Expiry at exactly now counts as expired; 2 is still live.
        let r = mb.receive(2, T0 + 50);
        assert_eq!(dead_ids(&r.dead), [(id(1), DeadReason::Expired)]);
        assert_eq!(ids_of(&r.deliveries), [id(2), id(3)]);
        assert_eq!(mb.gauge().len(), 2);
        check_invariants(&mb);
    }

    #[test]
    fn a_letter_expired_on_arrival_is_dead_at_once_and_frees_its_reservation() {
        let mut mb = mailbox(config(1, OverflowPolicy::Refuse));
        let dead = send(&mut mb, expiring(1, T0), T0);
        assert_eq!(dead_ids(&dead), [(id(1), DeadReason::Expired)]);
        assert!(mb.is_empty());
        assert_eq!(mb.gauge().len(), 0);
        assert!(mb.gauge().try_reserve().is_ok());
    }

    #[test]
    fn refuse_policy_refuses_at_capacity_and_admits_again_after_an_ack() {
        let mut mb = mailbox(config(2, OverflowPolicy::Refuse));
        let gauge = mb.gauge();
        send(&mut mb, letter(1, "a"), T0);
        send(&mut mb, letter(2, "a"), T0);

        let err = gauge.try_reserve().unwrap_err();
        assert!(
            matches!(&err, MailboxError::MailboxFull { owner, capacity: 2 } if owner == "model-b"),
            "{err:?}"
        );
        assert_eq!(err.code(), "mailbox_full");
        assert_eq!(
            err.to_string(),
            "the mailbox of model-b is full (2 letters)"
        );
        assert_eq!(gauge.len(), 2);

        // In flight still counts against capacity.
        mb.receive(1, T0);
        assert!(gauge.try_reserve().is_err());
        assert_eq!(mb.ack(&[id(1)]).acked, [id(1)]);
        assert!(gauge.try_reserve().is_ok());
        assert!(mb.admit_reserved(letter(3, "a"), T0).is_empty());
        assert_eq!(mb.len(), 2);
        check_invariants(&mb);
    }

    #[test]
    fn reservations_count_against_capacity_until_admitted_or_released() {
        let mb = mailbox(config(2, OverflowPolicy::Refuse));
        let gauge = mb.gauge();
        assert_eq!(gauge.capacity(), 2);
        assert!(gauge.is_empty());
        gauge.try_reserve().unwrap();
        assert!(!gauge.is_empty());
        gauge.try_reserve().unwrap();
        assert_eq!(gauge.len(), 2);
        assert!(gauge.try_reserve().is_err());
        gauge.release();
        assert_eq!(gauge.len(), 1);
        assert!(gauge.try_reserve().is_ok());
    }

    #[test]
    fn a_gauge_release_without_a_reservation_changes_nothing() {
        let mut mb = mailbox(config(2, OverflowPolicy::Refuse));
        let gauge = mb.gauge();
        send(&mut mb, letter(1, "a"), T0);
        send(&mut mb, letter(2, "a"), T0);
        gauge.release();
        assert_eq!(gauge.len(), 2);
        assert!(gauge.try_reserve().is_err());
    }

    #[test]
    fn dead_letter_oldest_admits_every_letter_and_evicts_the_oldest_pending() {
        let mut mb = mailbox(config(3, OverflowPolicy::DeadLetterOldest));
        let gauge = mb.gauge();
        for n in 1..=3 {
            assert!(send(&mut mb, letter(n, "a"), T0).is_empty());
        }
        // Letter 1 is in flight, so the oldest *pending* letter is 2.
        mb.receive(1, T0);
        let dead = send(&mut mb, letter(4, "a"), T0);
        assert_eq!(dead_ids(&dead), [(id(2), DeadReason::Overflow)]);
        assert_eq!(dead[0].attempts, 0);
        assert_eq!((mb.pending_len(), mb.in_flight_len()), (2, 1));
        assert_eq!(gauge.len(), 3);
        // Reservations never fail under this policy.
        for _ in 0..10 {
            gauge.try_reserve().unwrap();
        }
        for _ in 0..10 {
            gauge.release();
        }
        assert_eq!(ids_of(&mb.receive(10, T0).deliveries), [id(3), id(4)]);
        check_invariants(&mb);
    }

    #[test]
    fn dead_letter_oldest_evicts_the_newcomer_when_everything_else_is_in_flight() {
        let mut mb = mailbox(config(2, OverflowPolicy::DeadLetterOldest));
        send(&mut mb, letter(1, "a"), T0);
        send(&mut mb, letter(2, "a"), T0);
        mb.receive(2, T0);
        // The newcomer is the only pending letter, so the oldest pending one;
        // letters being processed are left alone.
        let dead = send(&mut mb, letter(3, "a"), T0);
        assert_eq!(dead_ids(&dead), [(id(3), DeadReason::Overflow)]);
        assert_eq!(mb.in_flight_len(), 2);

        // Also when it is older than them (restored after a restart).
        let dead = mb.restore(letter(0, "a"), T0);
        assert_eq!(dead_ids(&dead), [(id(0), DeadReason::Overflow)]);

        let mut mb = mailbox(config(0, OverflowPolicy::DeadLetterOldest));
        let dead = send(&mut mb, letter(1, "a"), T0);
        assert_eq!(dead_ids(&dead), [(id(1), DeadReason::Overflow)]);
        assert!(mb.is_empty());
        assert_eq!(mb.gauge().len(), 0);
        check_invariants(&mb);
    }

    #[test]
    fn eviction_with_nothing_pending_takes_the_oldest_in_flight_out_of_every_index() {
        // Through admission the newcomer is always pending, so this branch
        // only guards a mailbox already over capacity; drive it directly.
        let mut mb = mailbox(config(2, OverflowPolicy::DeadLetterOldest));
        send(&mut mb, expiring(2, T0 + 500), T0);
        mb.receive(1, T0);
        mb.restore(letter(1, "a"), T0);
        mb.receive(1, T0);
        let dead = mb.evict_oldest().into_iter().collect::<Vec<_>>();
        assert_eq!(dead_ids(&dead), [(id(1), DeadReason::Overflow)]);
        assert_eq!(dead[0].attempts, 1);
        let dead = mb.evict_oldest().into_iter().collect::<Vec<_>>();
        assert_eq!(dead_ids(&dead), [(id(2), DeadReason::Overflow)]);
        assert!(mb.evict_oldest().is_none());
        mb.sync_gauge();
        assert_eq!(mb.next_due_ms(), None);
        assert_eq!(mb.ack(&[id(1), id(2)]).unknown, [id(1), id(2)]);
        check_invariants(&mb);
    }

    #[test]
    fn restore_never_refuses_even_past_capacity() {
        let mut mb = mailbox(config(2, OverflowPolicy::Refuse));
        for n in 1..=3 {
            assert!(mb.restore(letter(n, "a"), T0).is_empty());
        }
        assert_eq!(mb.len(), 3);
        assert_eq!(mb.gauge().len(), 3);
        assert!(mb.gauge().try_reserve().is_err());
        // Drains below capacity before senders are admitted again.
        mb.receive(2, T0);
        mb.ack(&[id(1)]);
        assert!(mb.gauge().try_reserve().is_err());
        mb.ack(&[id(2)]);
        assert!(mb.gauge().try_reserve().is_ok());
    }

    #[test]
    fn admitting_an_id_already_held_is_a_no_op_that_frees_the_reservation() {
        let mut mb = mailbox(config(3, OverflowPolicy::Refuse));
        send(&mut mb, letter(1, "a"), T0);
        send(&mut mb, letter(2, "a"), T0);
        let first = mb.receive(1, T0).deliveries[0].clone();

        // Again while pending, while in flight, and through restore.
        let mut changed_body = letter(2, "a");
        changed_body.body = 42;
        assert!(send(&mut mb, changed_body, T0 + 10).is_empty());
        assert!(send(&mut mb, letter(1, "a"), T0 + 10).is_empty());
        assert!(mb.restore(letter(1, "a"), T0 + 10).is_empty());

        assert_eq!((mb.pending_len(), mb.in_flight_len()), (1, 1));
        assert_eq!(mb.gauge().len(), 2);
        assert_eq!(mb.gauge.reserved(), 0);
        // The in-flight copy keeps its deadline and attempt; the pending copy
        // its body.
        assert!(mb.tick(first.deadline_ms - 1).is_empty());
        assert_eq!(mb.in_flight_len(), 1);
        let r = mb.receive(10, first.deadline_ms - 1);
        assert_eq!(r.deliveries.len(), 1);
        assert_eq!(r.deliveries[0].letter.body, 2);
        check_invariants(&mb);
    }

    #[test]
    fn next_due_ms_is_the_earliest_deadline_or_expiry() {
        let mut mb = mailbox(config(10, OverflowPolicy::Refuse));
        assert_eq!(mb.next_due_ms(), None);
        send(&mut mb, letter(1, "a"), T0);
        assert_eq!(
            mb.next_due_ms(),
            None,
            "a pending letter without TTL is never due"
        );
        mb.receive(1, T0);
        assert_eq!(mb.next_due_ms(), Some(T0 + 100));
        send(&mut mb, expiring(2, T0 + 40), T0);
        assert_eq!(mb.next_due_ms(), Some(T0 + 40));
        mb.tick(T0 + 40);
        assert_eq!(mb.next_due_ms(), Some(T0 + 100));
        mb.ack(&[id(1)]);
        assert_eq!(mb.next_due_ms(), None);
    }

    #[test]
    fn gauge_len_equals_pending_plus_in_flight_after_every_operation() {
        let mut mb = mailbox(MailboxConfig {
            max_attempts: 2,
            ..config(4, OverflowPolicy::DeadLetterOldest)
        });
        let gauge = mb.gauge();
        let check = |mb: &Mailbox<u128>| {
            assert_eq!(gauge.len(), mb.pending_len() + mb.in_flight_len());
            assert_eq!(mb.len(), mb.pending_len() + mb.in_flight_len());
            assert_eq!(mb.is_empty(), mb.pending_len() + mb.in_flight_len() == 0);
            check_invariants(mb);
        };
        for n in 1..=6 {
            send(&mut mb, expiring(n, T0 + 300 + n as u64 * 100), T0);
            check(&mb);
        }
        mb.restore(letter(7, "b"), T0);
        check(&mb);
        mb.receive(2, T0);
        check(&mb);
        mb.release(&[id(4)]);
        check(&mb);
        mb.ack(&[id(3), id(4), id(5)]);
        check(&mb);
        mb.tick(T0 + 100);
        check(&mb);
        mb.receive(10, T0 + 100);
        check(&mb);
        mb.tick(T0 + 200);
        check(&mb);
        mb.receive(10, T0 + 200);
        check(&mb);
        mb.tick(T0 + 1_000);
        check(&mb);
        assert!(mb.is_empty());
    }

    #[test]
    fn huge_times_and_limits_do_not_overflow() {
        let mut mb = mailbox(MailboxConfig {
            capacity: usize::MAX,
            overflow: OverflowPolicy::Refuse,
            visibility_timeout_ms: u64::MAX,
            max_attempts: u32::MAX,
        });
        send(&mut mb, expiring(1, u64::MAX), u64::MAX - 1);
        let d = &mb.receive(usize::MAX, u64::MAX - 1).deliveries[0];
        assert_eq!(d.deadline_ms, u64::MAX);
        assert_eq!(mb.next_due_ms(), Some(u64::MAX));
        let dead = mb.tick(u64::MAX);
        assert_eq!(dead_ids(&dead), [(id(1), DeadReason::Expired)]);
        check_invariants(&mb);
    }

    mod properties {
        use proptest::prelude::*;
        use proptest::sample::Index;

        use super::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// Reserve, then admit (or, if `abandon`, release the slot).
            Send {
                ttl: Option<u64>,
                abandon: bool,
            },
            Restore {
                ttl: Option<u64>,
            },
            /// Admit again an id that was admitted before, if still held.
            Resend(Index),
            Receive(usize),
            Ack(Vec<Index>),
            Release(Vec<Index>),
            Tick,
            Advance(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            let ttl = prop::option::of(0u64..120);
            prop_oneof![
                4 => (ttl.clone(), prop::bool::weighted(0.1))
                    .prop_map(|(ttl, abandon)| Op::Send { ttl, abandon }),
                1 => ttl.prop_map(|ttl| Op::Restore { ttl }),
                1 => any::<Index>().prop_map(Op::Resend),
                3 => (0usize..4).prop_map(Op::Receive),
                3 => prop::collection::vec(any::<Index>(), 0..4).prop_map(Op::Ack),
                1 => prop::collection::vec(any::<Index>(), 0..3).prop_map(Op::Release),
                2 => Just(Op::Tick),
                3 => (0u64..60).prop_map(Op::Advance),
            ]
        }

        fn config() -> impl Strategy<Value = MailboxConfig> {
            (
                0usize..6,
                prop_oneof![
                    Just(OverflowPolicy::Refuse),
                    Just(OverflowPolicy::DeadLetterOldest)
                ],
                0u64..50,
                0u32..4,
            )
                .prop_map(
                    |(capacity, overflow, visibility_timeout_ms, max_attempts)| MailboxConfig {
                        capacity,
                        overflow,
                        visibility_timeout_ms,
                        max_attempts,
                    },
                )
        }

        /// What the test knows of every id it admitted.
        #[derive(Default)]
        struct Ledger {
            admitted: Vec<Uuid>,
            acked: BTreeSet<Uuid>,
            dead: BTreeSet<Uuid>,
        }

        impl Ledger {
            fn bury(&mut self, dead: &[DeadLetter<u128>], now: u64, config: &MailboxConfig) {
                for d in dead {
                    assert!(self.dead.insert(d.letter.id), "{} dead twice", d.letter.id);
                    match d.reason {
                        DeadReason::Expired => {
                            assert!(d.letter.expires_ms.is_some_and(|at| at <= now))
                        }
                        DeadReason::MaxAttempts => {
                            assert!(config.max_attempts != 0);
                            assert_eq!(d.attempts, config.max_attempts);
                        }
                        DeadReason::Overflow => {
                            assert_eq!(config.overflow, OverflowPolicy::DeadLetterOldest)
                        }
                    }
                }
            }

            fn pick(&self, index: &Index) -> Option<Uuid> {
                (!self.admitted.is_empty()).then(|| *index.get(&self.admitted))
            }
        }

        fn check(mb: &Mailbox<u128>, ledger: &Ledger) {
            check_invariants(mb);
            assert_eq!(mb.gauge().len(), mb.pending_len() + mb.in_flight_len());
            for id in &ledger.admitted {
                let held = mb.pending.contains_key(id) || mb.in_flight.contains_key(id);
                let places =
                    [held, ledger.acked.contains(id), ledger.dead.contains(id)].map(usize::from);
                assert_eq!(
                    places.iter().sum::<usize>(),
                    1,
                    "{id}: held/acked/dead {places:?}"
                );
            }
            assert_eq!(
                mb.len(),
                ledger.admitted.len() - ledger.acked.len() - ledger.dead.len()
            );
        }

        /// An overflow evicted the oldest pending letter: none older is left
        /// pending.
        fn oldest_went_first(
            mb: &Mailbox<u128>,
            dead: &[DeadLetter<u128>],
        ) -> Result<(), TestCaseError> {
            for d in dead.iter().filter(|d| d.reason == DeadReason::Overflow) {
                let oldest = mb.pending.keys().next();
                prop_assert!(
                    oldest.is_none_or(|&id| id > d.letter.id),
                    "evicted {}",
                    d.letter.id
                );
            }
            Ok(())
        }

        /// Applies `ops` to a fresh mailbox, checking after each that every
        /// admitted letter is accounted for exactly once.
        fn run(config: MailboxConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
            let mut mb: Mailbox<u128> = Mailbox::new("model-p", config.clone());
            let gauge = mb.gauge();
            let mut ledger = Ledger::default();
            let mut next_id = 1u128;
            let mut now = T0;
            for op in ops {
                match op {
                    Op::Send { ttl, abandon } => match gauge.try_reserve() {
                        Ok(()) if abandon => gauge.release(),
                        Ok(()) => {
                            let l = Letter {
                                expires_ms: ttl.map(|t| now + t),
                                ..letter(next_id, "s")
                            };
                            next_id += 1;
                            ledger.admitted.push(l.id);
                            let dead = mb.admit_reserved(l, now);
                            ledger.bury(&dead, now, &config);
                            oldest_went_first(&mb, &dead)?;
                        }
                        Err(MailboxError::MailboxFull { capacity, .. }) => {
                            prop_assert_eq!(config.overflow, OverflowPolicy::Refuse);
                            prop_assert_eq!(capacity, config.capacity);
                            prop_assert!(mb.len() >= config.capacity);
                        }
                    },
                    Op::Restore { ttl } => {
                        let l = Letter {
                            expires_ms: ttl.map(|t| now + t),
                            ..letter(next_id, "r")
                        };
                        next_id += 1;
                        ledger.admitted.push(l.id);
                        let dead = mb.restore(l, now);
                        ledger.bury(&dead, now, &config);
                        oldest_went_first(&mb, &dead)?;
                    }
                    Op::Resend(index) => {
                        let held = |id: &Uuid| {
                            mb.pending.contains_key(id) || mb.in_flight.contains_key(id)
                        };
                        if let Some(id) = ledger.pick(&index).filter(held) {
                            let before = (mb.pending_len(), mb.in_flight_len());
                            let copy = Letter {
                                id,
                                ..letter(0, "s")
                            };
                            // Under Refuse a full mailbox refuses the
                            // reservation; recovery restores instead.
                            let dead = match gauge.try_reserve() {
                                Ok(()) => mb.admit_reserved(copy, now),
                                Err(_) => mb.restore(copy, now),
                            };
                            prop_assert!(dead.is_empty());
                            prop_assert_eq!((mb.pending_len(), mb.in_flight_len()), before);
                        }
                    }
                    Op::Receive(max) => {
                        let r = mb.receive(max, now);
                        prop_assert!(r.deliveries.len() <= max);
                        prop_assert!(r.dead.iter().all(|d| d.reason != DeadReason::Overflow));
                        ledger.bury(&r.dead, now, &config);
                        for pair in r.deliveries.windows(2) {
                            prop_assert!(pair[0].letter.id < pair[1].letter.id);
                        }
                        for d in &r.deliveries {
                            prop_assert!(!d.letter.is_expired(now), "expired letter handed out");
                            prop_assert!(
                                config.max_attempts == 0 || d.attempt <= config.max_attempts
                            );
                            prop_assert_eq!(d.deadline_ms, now + config.visibility_timeout_ms);
                        }
                        if let (Some(last), Some(waiting)) =
                            (r.deliveries.last(), mb.pending.keys().next())
                        {
                            prop_assert!(
                                last.letter.id < *waiting,
                                "a newer letter was handed out first"
                            );
                        }
                    }
                    Op::Ack(indexes) => {
                        let ids: Vec<Uuid> =
                            indexes.iter().filter_map(|i| ledger.pick(i)).collect();
                        let in_flight: BTreeSet<Uuid> = mb.in_flight.keys().copied().collect();
                        let acked = mb.ack(&ids);
                        prop_assert_eq!(acked.acked.len() + acked.unknown.len(), ids.len());
                        for id in &acked.acked {
                            prop_assert!(in_flight.contains(id));
                            prop_assert!(ledger.acked.insert(*id), "acked twice");
                        }
                    }
                    Op::Release(indexes) => {
                        let ids: Vec<Uuid> =
                            indexes.iter().filter_map(|i| ledger.pick(i)).collect();
                        let before = mb.in_flight_len();
                        let released = mb.release(&ids);
                        prop_assert_eq!(mb.in_flight_len(), before - released);
                    }
                    Op::Tick => {
                        let dead = mb.tick(now);
                        prop_assert!(dead.iter().all(|d| d.reason != DeadReason::Overflow));
                        ledger.bury(&dead, now, &config);
                        prop_assert!(mb.next_due_ms().is_none_or(|due| due > now));
                    }
                    Op::Advance(ms) => now += ms,
                }
                check(&mb, &ledger);
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn random_operations_keep_every_letter_accounted_for(
                config in config(),
                ops in prop::collection::vec(op(), 0..120),
            ) {
                run(config, ops)?;
            }
        }
    }
}
