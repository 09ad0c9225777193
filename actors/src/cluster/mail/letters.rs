//! The model actor's side of mail across instances: letters read from the
//! stream join its mailbox like any other (order, visibility timeout,
//! attempts, TTL) and are acknowledged to JetStream when the model acks
//! them, terminated when they die; when the model's home moves away its
//! mailbox goes with it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use async_nats::jetstream::{self, AckKind};
use hvs_mailbox::{DeadLetter, StoredLetter, letter_of};
use hvs_storage::{MessageRecord, Settled, Settlement};
use uuid::Uuid;

use crate::error::{ActorError, Result};
use crate::model::{ModelActor, now_ms};

/// Remote letters settled lately that a model remembers, so a letter
/// JetStream offers again as it is being settled is not delivered again.
const SETTLED_KEPT: usize = 4096;

/// What a model actor holds of mail across instances.
#[derive(Default)]
pub(crate) struct RemoteLetters {
    /// The JetStream message of each held letter read from the stream (the
    /// latest delivery, the one to ack).
    held: HashMap<Uuid, jetstream::Message>,
    /// Letters from the stream settled lately, oldest first.
    settled: VecDeque<Uuid>,
    settled_set: HashSet<Uuid>,
    /// The model's home is another instance: whatever this mailbox holds
    /// is forwarded there.
    away: bool,
}

impl RemoteLetters {
    fn remember(&mut self, id: Uuid) {
        if self.settled_set.insert(id) {
            self.settled.push_back(id);
        }
        if self.settled.len() > SETTLED_KEPT
            && let Some(old) = self.settled.pop_front()
        {
            self.settled_set.remove(&old);
        }
    }

    /// Takes out the letters among `ids` read from the stream (acked by
    /// the model): their acknowledgements to JetStream, to await.
    pub(crate) fn take_acked(&mut self, ids: &[Uuid]) -> Vec<(Uuid, jetstream::Message)> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(m) = self.held.remove(id) {
                self.remember(*id);
                out.push((*id, m));
            }
        }
        out
    }

    /// Settles a dead letter read from the stream (JetStream stops
    /// offering it); `false` if it was not read from the stream.
    pub(crate) fn bury(&mut self, id: Uuid) -> bool {
        let Some(m) = self.held.remove(&id) else {
            return false;
        };
        self.remember(id);
        actix::spawn(async move {
            if let Err(e) = m.ack_with(AckKind::Term).await {
                tracing::warn!("mail: terminating dead letter {id}: {e}");
            }
        });
        true
    }

    /// Whether the model lives on another instance.
    pub(crate) fn away(&self) -> bool {
        self.away
    }
}

/// Acknowledges to JetStream letters the model acked; fails if JetStream
/// did not confirm each (the letter may then come again: at least once).
pub(crate) async fn ack_remote(acked: Vec<(Uuid, jetstream::Message)>) -> Result<()> {
    for (id, m) in acked {
        m.double_ack()
            .await
            .map_err(|e| ActorError::ClusterUnavailable(format!("acking {id}: {e}")))?;
    }
    Ok(())
}

/// A letter read from the stream for this model.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RemoteDeliver {
    pub(crate) record: Arc<MessageRecord>,
    pub(crate) letter: jetstream::Message,
}

impl Handler<RemoteDeliver> for ModelActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteDeliver, ctx: &mut Self::Context) {
        let id = msg.record.id;
        if self.remote.settled_set.contains(&id) {
            // Settled as JetStream offered it again: settle again.
            actix::spawn(async move {
                let _ = msg.letter.ack().await;
            });
            return;
        }
        if self.remote.away {
            // Read before this instance learnt the model left; its new
            // home reads it again.
            actix::spawn(async move {
                let _ = msg.letter.ack_with(AckKind::Nak(None)).await;
            });
            return;
        }
        self.remote.held.insert(id, msg.letter);
        let dead = self.mailbox.restore(letter_of(&msg.record), now_ms());
        self.bury(dead);
        self.push();
        self.arm_tick(ctx);
    }
}

/// The model's home is now this instance.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ComeHome;

impl Handler<ComeHome> for ModelActor {
    type Result = ();

    fn handle(&mut self, _: ComeHome, _: &mut Self::Context) {
        self.remote.away = false;
    }
}

/// The model's home is now another instance: its mailbox goes there.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct MoveAway;

impl Handler<MoveAway> for ModelActor {
    type Result = ();

    fn handle(&mut self, _: MoveAway, ctx: &mut Self::Context) {
        self.remote.away = true;
        self.forward(ctx);
    }
}

impl ModelActor {
    /// Empties the mailbox of a model that lives elsewhere: letters read
    /// from the stream are given back to it (the new home reads them
    /// again); letters sent here are published to the stream, then settled
    /// here; those JetStream refused come back to the mailbox and are
    /// tried again on a later tick.
    pub(crate) fn forward(&mut self, ctx: &mut Context<Self>) {
        if self.mailbox.is_empty() {
            return;
        }
        let Some(mail) = self.registry.mail.get().cloned() else {
            return;
        };
        let mut local: Vec<StoredLetter> = Vec::new();
        for l in self.mailbox.drain() {
            match self.remote.held.remove(&l.id) {
                Some(m) => {
                    actix::spawn(async move {
                        let _ = m.ack_with(AckKind::Nak(None)).await;
                    });
                }
                None => local.push(l),
            }
        }
        if local.is_empty() {
            return;
        }
        let model = self.profile.id.clone();
        let published: Vec<_> = local
            .iter()
            .map(|l| mail.publish(&model, &l.body))
            .collect();
        let work = async move {
            let mut results = Vec::with_capacity(published.len());
            for p in published {
                results.push(matches!(p.await, Ok(Ok(_))));
            }
            results
        };
        ctx.spawn(work.into_actor(self).map(move |results, act, ctx| {
            let now = now_ms();
            let mut settled = Vec::new();
            let mut back: Vec<DeadLetter<_>> = Vec::new();
            for (letter, ok) in local.into_iter().zip(results) {
                if ok {
                    settled.push(Settled {
                        message: letter.id,
                        recipient: act.profile.id.clone(),
                        settlement: Settlement::Acked,
                        at_ms: now,
                    });
                } else {
                    back.extend(act.mailbox.restore(letter, now));
                }
            }
            if !settled.is_empty() {
                act.store.settle_messages(
                    settled,
                    Box::new(|r| {
                        if let Err(e) = r {
                            tracing::warn!(error = %e, "recording forwarded letters failed");
                        }
                    }),
                );
            }
            act.bury(back);
            // Those that came back are tried again on a tick.
            act.arm_tick(ctx);
        }));
    }
}
