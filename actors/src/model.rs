//! One actor per known model: it sends on the model's behalf (permission,
//! rate limit, encoding, storage) and owns the model's mailbox (admission,
//! delivery, acks, redelivery, dead letters, the push stream).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use hvs_mailbox::{DeadLetter, DeadReason, Mailbox, letter_of};
use hvs_storage::{Discarded, MessageRecord, Metadata, Settled, Settlement, Store};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::admission::Admission;
use crate::error::{ActorError, Result};
use crate::registry::{MAILBOX_CAPACITY, Profile, Registry};

/// Dead letters a mailbox remembers for [`dead_letters`](crate::ModelRef::dead_letters).
const DEAD_LETTERS_KEPT: usize = 1024;

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where a message's vector comes from.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum VectorInput {
    /// No vector: the built-in text encoder reads the payload (as UTF-8).
    #[default]
    Text,
    /// A point of the sender's space (projected onto its manifold).
    Point(Vec<f64>),
    /// An embedding of the contract's `input_dimension`, put through the
    /// contract's encoder.
    Embedding(Vec<f64>),
}

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outgoing {
    /// The payload, opaque bytes.
    pub payload: Vec<u8>,
    /// Where its vector comes from.
    pub vector: VectorInput,
    /// Searchable metadata.
    pub metadata: Metadata,
    /// Time to live: after this many milliseconds it is no longer delivered.
    pub ttl_ms: Option<u64>,
}

impl Outgoing {
    /// A text message whose vector the text encoder makes.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            payload: text.into().into_bytes(),
            ..Self::default()
        }
    }

    /// The same message with a vector.
    pub fn with_vector(mut self, vector: VectorInput) -> Self {
        self.vector = vector;
        self
    }
}

/// A message handed to its recipient. Ack it (by `message.id`) before
/// `deadline_ms`, or it is delivered again.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The stored message.
    pub message: Arc<MessageRecord>,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u32,
    /// When it is delivered again unless acked (ms since the Unix epoch).
    pub deadline_ms: u64,
}

/// What a broadcast reached.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastReport {
    /// The message's id (one message, many recipients).
    pub id: Uuid,
    /// Recipients it was queued for.
    pub recipients: Vec<String>,
    /// Recipients that refused it, with the error code (a full mailbox).
    pub refused: Vec<(String, String)>,
}

/// The outcome of an ack.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AckReport {
    /// Messages acked now (gone from the mailbox for good).
    pub acked: Vec<Uuid>,
    /// Ids that were not in flight: unknown, not yet received, or acked
    /// before (acking twice is not an error).
    pub unknown: Vec<Uuid>,
}

/// A message that left a mailbox without being acked.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterInfo {
    /// The message.
    pub id: Uuid,
    /// Its sender.
    pub from: String,
    /// `expired`, `max_attempts` or `overflow`.
    pub reason: String,
    /// Deliveries it had.
    pub attempts: u32,
}

/// A mailbox's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxStats {
    /// Waiting to be received.
    pub pending: usize,
    /// Received, not acked yet.
    pub in_flight: usize,
    /// Dead letters since the process started.
    pub dead_lettered: u64,
    /// Letters taken out since the process started because a retention
    /// limit discarded their message (not dead letters).
    pub discarded: u64,
}

/// Deliveries a push stream holds before the model's reader takes them;
/// past this, messages wait in the mailbox, so a reader that stops costs
/// the server no more than this.
pub(crate) const PUSH_WINDOW: usize = 4096;

pub(crate) struct ModelActor {
    pub(crate) profile: Arc<Profile>,
    pub(crate) mailbox: Mailbox<Arc<MessageRecord>>,
    pub(crate) store: Arc<Store>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) subscriber: Option<mpsc::Sender<Delivery>>,
    pub(crate) dead: VecDeque<DeadLetterInfo>,
    pub(crate) dead_count: u64,
    /// Letters taken out because retention discarded their message.
    pub(crate) withdrawn: u64,
    pub(crate) tick: Duration,
    /// When the next tick is set for, ms since the Unix epoch (see
    /// [`ModelActor::arm_tick`]).
    pub(crate) tick_at: Option<u64>,
    /// Letters read from the cluster's mail stream, and whether the model
    /// lives on another instance (`cluster/mail`).
    pub(crate) remote: crate::cluster::mail::RemoteLetters,
}

impl Actor for ModelActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.arm_tick(ctx);
    }
}

fn reason_of(r: &DeadReason) -> &'static str {
    match r {
        DeadReason::Expired => "expired",
        DeadReason::MaxAttempts => "max_attempts",
        DeadReason::Overflow => "overflow",
    }
}

/// What a message costs its sender's storage quota: payload and vector.
pub(crate) fn size_of(record: &MessageRecord) -> u64 {
    (record.payload.len() + 8 * record.vector.len()) as u64
}

/// Hands stored messages to their recipients' actors, one message per
/// recipient actor, except to recipients living on other instances
/// (`elsewhere`), whose letters went to the cluster's mail stream.
fn hand_over(registry: &Registry, stored: &[Arc<MessageRecord>], elsewhere: &HashSet<String>) {
    let mut per: HashMap<&str, Vec<Arc<MessageRecord>>> = HashMap::new();
    for m in stored {
        for to in m.to.iter().filter(|to| !elsewhere.contains(*to)) {
            per.entry(to.as_str()).or_default().push(m.clone());
        }
    }
    for (to, ms) in per {
        if let Ok(e) = registry.model(to) {
            e.addr.do_send(Deliver(ms));
        }
    }
}

impl ModelActor {
    pub(crate) fn own_write_check(&self) -> Result<()> {
        let p = &self.profile;
        if p.contract.permissions.can_write(&p.namespace) {
            Ok(())
        } else {
            Err(ActorError::PermissionDenied {
                model: p.id.clone(),
                action: "write",
                namespace: p.namespace.clone(),
                reason: "the contract's write_namespaces do not include the model's own namespace, where its messages are stored".into(),
            })
        }
    }

    /// The record of an outgoing message: its vector made, its size checked.
    pub(crate) fn record(&self, out: Outgoing, to: Vec<String>, now: u64) -> Result<MessageRecord> {
        let p = &self.profile;
        p.limiter.check_message_size(out.payload.len() as u64)?;
        let vector = match &out.vector {
            VectorInput::Text => p
                .encoder
                .encode_text(&String::from_utf8_lossy(&out.payload))?,
            VectorInput::Point(x) => p.encoder.place_point(x)?,
            VectorInput::Embedding(e) => p.encoder.encode_embedding(e)?,
        };
        Ok(MessageRecord {
            id: Uuid::now_v7(),
            namespace: p.namespace.clone(),
            from: p.id.clone(),
            to,
            payload: out.payload,
            vector,
            metadata: out.metadata,
            sent_ms: now,
            expires_ms: out.ttl_ms.map(|t| now.saturating_add(t)),
        })
    }

    /// Messages admitted one by one, put together: each one's refusal
    /// (`None` if admitted), the records admitted, and their admissions
    /// as one.
    pub(crate) fn gather(
        &self,
        each: impl IntoIterator<Item = Result<(MessageRecord, Admission)>>,
    ) -> (Vec<Option<ActorError>>, Vec<MessageRecord>, Admission) {
        let (mut refused, mut records) = (Vec::new(), Vec::new());
        let mut admitted = Admission::new(self.profile.clone());
        for one in each {
            match one {
                Ok((record, admission)) => {
                    records.push(record);
                    admitted.absorb(admission);
                    refused.push(None);
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        (refused, records, admitted)
    }

    /// Stores `records` (admitted: tokens, quota and mailbox slots held)
    /// and, once committed, hands them to their recipients; the answer
    /// comes after the commit. A failed write gives the admission back.
    fn store_and_hand_over(
        &self,
        ctx: &mut Context<Self>,
        records: Vec<MessageRecord>,
        admission: Admission,
    ) -> oneshot::Receiver<Result<Vec<Arc<MessageRecord>>>> {
        self.store_and_hand_over_except(ctx, records, admission, HashSet::new())
    }

    /// [`store_and_hand_over`](Self::store_and_hand_over), handing nothing
    /// to the recipients in `elsewhere` (their letters are in the cluster's
    /// mail stream).
    ///
    /// If the writer's queue is full, this model takes no other request
    /// until the write has its place in it (`ctx.wait`): its senders wait,
    /// its thread serves the other models meanwhile.
    pub(crate) fn store_and_hand_over_except(
        &self,
        ctx: &mut Context<Self>,
        records: Vec<MessageRecord>,
        admission: Admission,
        elsewhere: HashSet<String>,
    ) -> oneshot::Receiver<Result<Vec<Arc<MessageRecord>>>> {
        let (tx, rx) = oneshot::channel();
        let registry = self.registry.clone();
        let done: hvs_storage::Completion<Vec<Arc<MessageRecord>>> = Box::new(move |r| {
            let answer = match r {
                Ok(stored) => {
                    admission.commit();
                    hand_over(&registry, &stored, &elsewhere);
                    Ok(stored)
                }
                Err(e) => Err(e.into()),
            };
            let _ = tx.send(answer);
        });
        match self.store.try_slot() {
            Some(slot) => self.store.append_messages_in(slot, records, done),
            None => {
                let (store, turn) = (self.store.clone(), self.store.slot());
                ctx.wait(actix::fut::wrap_future(async move {
                    store.append_messages_in(turn.await, records, done);
                }));
            }
        }
        rx
    }

    /// Records settlements; failures are logged (the message stays
    /// unsettled and comes back after a restart: at-least-once).
    fn settle(&self, settled: Vec<Settled>) {
        self.store.settle_messages(
            settled,
            Box::new(|r| {
                if let Err(e) = r {
                    tracing::warn!(error = %e, "recording settlements failed");
                }
            }),
        );
    }

    pub(crate) fn bury(&mut self, dead: Vec<DeadLetter<Arc<MessageRecord>>>) {
        if dead.is_empty() {
            return;
        }
        let now = now_ms();
        let mut settled = Vec::with_capacity(dead.len());
        for d in dead {
            let reason = reason_of(&d.reason);
            // Read from the cluster's mail stream: settled there.
            if !self.remote.bury(d.letter.id) {
                settled.push(Settled {
                    message: d.letter.id,
                    recipient: self.profile.id.clone(),
                    settlement: Settlement::DeadLettered {
                        reason: reason.into(),
                    },
                    at_ms: now,
                });
            }
            self.dead_count += 1;
            if self.dead.len() == DEAD_LETTERS_KEPT {
                self.dead.pop_front();
            }
            self.dead.push_back(DeadLetterInfo {
                id: d.letter.id,
                from: d.letter.from.to_string(),
                reason: reason.into(),
                attempts: d.attempts,
            });
        }
        self.settle(settled);
    }

    fn deliveries(&mut self, max: usize) -> Vec<Delivery> {
        let r = self.mailbox.receive(max, now_ms());
        self.bury(r.dead);
        r.deliveries
            .into_iter()
            .map(|d| Delivery {
                message: d.letter.body,
                attempt: d.attempt,
                deadline_ms: d.deadline_ms,
            })
            .collect()
    }

    /// Pushes what is pending to the live subscriber, if there is one, as
    /// far as its stream has room: the stream holds at most
    /// [`PUSH_WINDOW`] deliveries, the rest waits in the mailbox (pending,
    /// not in flight) until the reader makes room; the next arrival or
    /// tick pushes again.
    pub(crate) fn push(&mut self) {
        let room = match &self.subscriber {
            Some(sub) if sub.is_closed() => {
                self.subscriber = None;
                return;
            }
            Some(sub) => sub.capacity(),
            None => return,
        };
        if room == 0 || self.mailbox.pending_len() == 0 {
            return;
        }
        let ds = self.deliveries(room);
        let Some(sub) = &self.subscriber else { return };
        let mut unsent = Vec::new();
        for d in ds {
            if let Err(e) = sub.try_send(d) {
                let d = match e {
                    mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => d,
                };
                unsent.push(d.message.id);
            }
        }
        if !unsent.is_empty() {
            if sub.is_closed() {
                self.subscriber = None;
            }
            self.mailbox.release(&unsent);
        }
    }

    /// Sets the timer for the next tick, when there is one to make: at the
    /// mailbox's earliest in-flight deadline or letter expiry; every
    /// `tick` while letters wait for a push stream that had no room, or
    /// for forwarding to the model's instance elsewhere; never for a model
    /// with nothing due. A timer per model every 100 ms cost 100,000 models
    /// a million wake-ups a second, idle or not. Called by every handler
    /// that adds letters, takes them in flight, or sets a push stream.
    pub(crate) fn arm_tick(&mut self, ctx: &mut Context<Self>) {
        if self.mailbox.is_empty() {
            return;
        }
        let now = now_ms();
        let waiting =
            self.remote.away() || (self.subscriber.is_some() && self.mailbox.pending_len() > 0);
        let due = if waiting {
            Some(now.saturating_add(self.tick.as_millis() as u64))
        } else {
            self.mailbox.next_due_ms()
        };
        let Some(due) = due else { return };
        // One set for no later is enough; one set for later fires too, and
        // finds nothing due.
        if self.tick_at.is_some_and(|at| at <= due) {
            return;
        }
        self.tick_at = Some(due);
        let wait = Duration::from_millis(due.saturating_sub(now));
        ctx.run_later(wait, move |act, ctx| {
            if act.tick_at == Some(due) {
                act.tick_at = None;
            }
            act.on_tick(ctx);
            act.arm_tick(ctx);
        });
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.remote.away() {
            self.forward(ctx);
            return;
        }
        let dead = self.mailbox.tick(now_ms());
        self.bury(dead);
        self.push();
    }
}

/// Sends messages, one recipient each, all or none.
#[derive(Message)]
#[rtype(result = "Result<Vec<Uuid>>")]
pub(crate) struct Post(pub(crate) Vec<(String, Outgoing)>);

impl Handler<Post> for ModelActor {
    type Result = ResponseFuture<Result<Vec<Uuid>>>;

    fn handle(&mut self, msg: Post, ctx: &mut Self::Context) -> Self::Result {
        if let Some(mail) = self.mail_for(msg.0.iter().map(|(to, _)| to.as_str())) {
            return self.post_across(ctx, mail, msg.0);
        }
        let prepared = (|| -> Result<_> {
            self.own_write_check()?;
            let mut admission = Admission::new(self.profile.clone());
            admission.take_vectors(msg.0.len() as u64)?;
            let now = now_ms();
            let mut records = Vec::with_capacity(msg.0.len());
            for (to, out) in msg.0 {
                let recipient = self.registry.model(&to)?;
                let record = self.record(out, vec![to], now)?;
                admission.charge(size_of(&record))?;
                admission.reserve(&recipient.gauge)?;
                records.push(record);
            }
            Ok((records, admission))
        })();
        let rx =
            prepared.map(|(records, admission)| self.store_and_hand_over(ctx, records, admission));
        Box::pin(async move {
            let stored = rx?.await.map_err(|_| ActorError::Stopped)??;
            Ok(stored.iter().map(|m| m.id).collect())
        })
    }
}

/// Sends many messages, each accepted or refused on its own (a refused one
/// does not hold the others back); the accepted ones are stored together.
/// A server answering pipelined `send` requests batches them this way.
#[derive(Message)]
#[rtype(result = "Result<EachOutcome>")]
pub(crate) struct PostEach(pub(crate) Vec<(String, Outgoing)>);

/// What [`PostEach`] did with each message.
#[derive(Debug)]
pub struct EachOutcome {
    /// Per message, in order: `None` if accepted, else why it was refused.
    pub refused: Vec<Option<ActorError>>,
    /// The ids of the accepted messages, in order, once stored; or why
    /// none of them was stored.
    pub stored: Result<Vec<Uuid>>,
}

impl Handler<PostEach> for ModelActor {
    type Result = ResponseFuture<Result<EachOutcome>>;

    fn handle(&mut self, msg: PostEach, ctx: &mut Self::Context) -> Self::Result {
        if let Some(mail) = self.mail_for(msg.0.iter().map(|(to, _)| to.as_str())) {
            return self.post_each_across(ctx, mail, msg.0);
        }
        if let Err(e) = self.own_write_check() {
            return Box::pin(std::future::ready(Err(e)));
        }
        let now = now_ms();
        // Each message is admitted on its own: a refused one gives back
        // what it took and does not hold the others back.
        let each: Vec<_> = msg
            .0
            .into_iter()
            .map(|(to, out)| -> Result<(MessageRecord, Admission)> {
                let mut admission = Admission::new(self.profile.clone());
                admission.take_vectors(1)?;
                let recipient = self.registry.model(&to)?;
                let record = self.record(out, vec![to], now)?;
                admission.charge(size_of(&record))?;
                admission.reserve(&recipient.gauge)?;
                Ok((record, admission))
            })
            .collect();
        let (refused, records, admitted) = self.gather(each);
        if records.is_empty() {
            return Box::pin(std::future::ready(Ok(EachOutcome {
                refused,
                stored: Ok(Vec::new()),
            })));
        }
        let rx = self.store_and_hand_over(ctx, records, admitted);
        Box::pin(async move {
            let stored = match rx.await {
                Ok(Ok(stored)) => Ok(stored.iter().map(|m| m.id).collect()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ActorError::Stopped),
            };
            Ok(EachOutcome { refused, stored })
        })
    }
}

/// Sends one message to many recipients: one stored message; a recipient
/// whose mailbox refuses is reported, not fatal.
#[derive(Message)]
#[rtype(result = "Result<BroadcastReport>")]
pub(crate) struct Broadcast {
    pub(crate) message: Outgoing,
    pub(crate) recipients: Vec<String>,
}

impl ModelActor {
    /// Whether the contract lets the model broadcast (and write its own
    /// namespace, where the message is stored).
    pub(crate) fn broadcast_check(&self) -> Result<()> {
        if !self.profile.contract.permissions.broadcast {
            return Err(ActorError::PermissionDenied {
                model: self.profile.id.clone(),
                action: "broadcast",
                namespace: self.profile.namespace.clone(),
                reason: "the contract's permissions.broadcast is false".into(),
            });
        }
        self.own_write_check()
    }
}

impl Handler<Broadcast> for ModelActor {
    type Result = ResponseFuture<Result<BroadcastReport>>;

    fn handle(&mut self, msg: Broadcast, ctx: &mut Self::Context) -> Self::Result {
        if let Some(mail) = self.mail_for(msg.recipients.iter().map(String::as_str)) {
            return self.broadcast_across(ctx, mail, msg.message, msg.recipients);
        }
        let prepared = (|| -> Result<_> {
            self.broadcast_check()?;
            let mut admission = Admission::new(self.profile.clone());
            admission.take_vectors(1)?;
            let (mut recipients, mut refused) = (Vec::new(), Vec::new());
            for to in msg.recipients {
                let Ok(e) = self.registry.model(&to) else {
                    refused.push((to, "unknown_model".to_string()));
                    continue;
                };
                match admission.reserve(&e.gauge) {
                    Ok(()) => recipients.push(to),
                    Err(err) => refused.push((to, err.code().to_string())),
                }
            }
            let record = self.record(msg.message, recipients.clone(), now_ms())?;
            admission.charge(size_of(&record))?;
            let id = record.id;
            let rx = self.store_and_hand_over(ctx, vec![record], admission);
            Ok((
                rx,
                BroadcastReport {
                    id,
                    recipients,
                    refused,
                },
            ))
        })();
        Box::pin(async move {
            let (rx, report) = prepared?;
            rx.await.map_err(|_| ActorError::Stopped)??;
            Ok(report)
        })
    }
}

/// Stored messages for this model (from their senders, after the commit).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Deliver(pub(crate) Vec<Arc<MessageRecord>>);

impl Handler<Deliver> for ModelActor {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        let now = now_ms();
        let mut dead = Vec::new();
        for m in &msg.0 {
            dead.extend(self.mailbox.admit_reserved(letter_of(m), now));
        }
        self.bury(dead);
        self.push();
        self.arm_tick(ctx);
    }
}

/// Hands the messages retention discarded to their recipients' actors,
/// which take their letters out ([`Withdraw`]). Runs on the storage writer
/// thread (`Store::on_discard`): it only sends.
pub(crate) fn withdraw_discarded(registry: &Registry, discarded: &[Discarded]) {
    let mut per: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for d in discarded {
        for to in &d.recipients {
            per.entry(to.as_str()).or_default().push(d.id);
        }
    }
    for (to, ids) in per {
        if let Ok(e) = registry.model(to) {
            e.addr.do_send(Withdraw(ids));
        }
    }
}

/// Messages a retention limit removed from storage: their letters leave
/// the mailbox, pending or in flight, never delivered again and not dead
/// letters (`docs/SEMANTICS.md`, "Retention"). Sent after the hand-over
/// of any of them ([`Deliver`]), so it finds them.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Withdraw(pub(crate) Vec<Uuid>);

impl Handler<Withdraw> for ModelActor {
    type Result = ();

    fn handle(&mut self, msg: Withdraw, _: &mut Self::Context) {
        self.withdrawn += self.mailbox.withdraw(&msg.0) as u64;
    }
}

/// Up to `max` pending messages, now in flight.
#[derive(Message)]
#[rtype(result = "Vec<Delivery>")]
pub(crate) struct Receive(pub(crate) usize);

impl Handler<Receive> for ModelActor {
    type Result = MessageResult<Receive>;

    fn handle(&mut self, msg: Receive, ctx: &mut Self::Context) -> Self::Result {
        let delivered = self.deliveries(msg.0);
        self.arm_tick(ctx);
        MessageResult(delivered)
    }
}

/// Acks in-flight messages; answered once the acks are committed.
#[derive(Message)]
#[rtype(result = "Result<AckReport>")]
pub(crate) struct Ack(pub(crate) Vec<Uuid>);

impl Handler<Ack> for ModelActor {
    type Result = ResponseFuture<Result<AckReport>>;

    fn handle(&mut self, msg: Ack, _: &mut Self::Context) -> Self::Result {
        let r = self.mailbox.ack(&msg.0);
        let report = AckReport {
            acked: r.acked,
            unknown: r.unknown,
        };
        // Letters read from the cluster's mail stream are settled there.
        let remote = self.remote.take_acked(&report.acked);
        let from_stream: HashSet<Uuid> = remote.iter().map(|(id, _)| *id).collect();
        let local: Vec<Uuid> = report
            .acked
            .iter()
            .filter(|id| !from_stream.contains(*id))
            .copied()
            .collect();
        let remote = crate::cluster::mail::ack_remote(remote);
        // Nothing outlives the process at memory durability: no
        // settlements, unless retention removes settled messages.
        if !self.store.keeps_settlements() {
            return Box::pin(async move {
                remote.await?;
                Ok(report)
            });
        }
        let now = now_ms();
        let settled = local
            .iter()
            .map(|id| Settled {
                message: *id,
                recipient: self.profile.id.clone(),
                settlement: Settlement::Acked,
                at_ms: now,
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        self.store.settle_messages(
            settled,
            Box::new(move |res| {
                let _ = tx.send(res);
            }),
        );
        Box::pin(async move {
            remote.await?;
            rx.await.map_err(|_| ActorError::Stopped)??;
            Ok(report)
        })
    }
}

/// Gives in-flight messages back for immediate redelivery.
#[derive(Message)]
#[rtype(result = "usize")]
pub(crate) struct Release(pub(crate) Vec<Uuid>);

impl Handler<Release> for ModelActor {
    type Result = usize;

    fn handle(&mut self, msg: Release, ctx: &mut Self::Context) -> usize {
        let n = self.mailbox.release(&msg.0);
        self.push();
        self.arm_tick(ctx);
        n
    }
}

/// Starts pushing deliveries to a new stream (replacing any other).
#[derive(Message)]
#[rtype(result = "mpsc::Receiver<Delivery>")]
pub(crate) struct Subscribe;

impl Handler<Subscribe> for ModelActor {
    type Result = MessageResult<Subscribe>;

    fn handle(&mut self, _: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = mpsc::channel(PUSH_WINDOW);
        self.subscriber = Some(tx);
        self.push();
        self.arm_tick(ctx);
        MessageResult(rx)
    }
}

/// Drops the push stream (the model disconnected); its mailbox keeps
/// collecting.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unsubscribe;

impl Handler<Unsubscribe> for ModelActor {
    type Result = ();

    fn handle(&mut self, _: Unsubscribe, _: &mut Self::Context) {
        self.subscriber = None;
    }
}

/// Stops the actor (its mailbox is reloaded from storage by a successor:
/// a mirror promoted to primary, `directory.rs`).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Retire;

impl Handler<Retire> for ModelActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// The mailbox's counts and its latest dead letters.
#[derive(Message)]
#[rtype(result = "(MailboxStats, Vec<DeadLetterInfo>)")]
pub(crate) struct Inspect;

impl Handler<Inspect> for ModelActor {
    type Result = MessageResult<Inspect>;

    fn handle(&mut self, _: Inspect, _: &mut Self::Context) -> Self::Result {
        MessageResult((
            MailboxStats {
                pending: self.mailbox.pending_len(),
                in_flight: self.mailbox.in_flight_len(),
                dead_lettered: self.dead_count,
                discarded: self.withdrawn,
            },
            self.dead.iter().cloned().collect(),
        ))
    }
}

/// The model connected again, perhaps with a changed contract.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Reprofile(pub(crate) Arc<Profile>);

impl Handler<Reprofile> for ModelActor {
    type Result = ();

    fn handle(&mut self, msg: Reprofile, _: &mut Self::Context) {
        self.profile = msg.0;
    }
}
