//! Sending to models on other instances. A send with such a recipient is
//! admitted as any other (permission, rate, quota, local mailboxes'
//! slots), then its remote letters are published to the stream in order;
//! only once JetStream has answered for each is the message stored here
//! and the sender answered. Meanwhile the sender's actor handles nothing
//! else, so the sender's later sends keep their order behind it.

use std::collections::HashSet;
use std::sync::Arc;

use actix::fut::{self, ActorFutureExt, LocalBoxActorFuture, WrapFuture};
use actix::prelude::*;
use hvs_storage::MessageRecord;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{Mail, Recipient};
use crate::admission::Admission;
use crate::error::{ActorError, Result};
use crate::model::{BroadcastReport, EachOutcome, ModelActor, Outgoing, now_ms, size_of};

/// JetStream's answers for a send's remote letters, in the order published.
type Answers = Vec<Result<u64>>;
/// What to do once JetStream has answered: store and answer the sender.
type Finish<R> = Box<
    dyn FnOnce(&mut ModelActor, &mut Context<ModelActor>, Answers) -> ResponseFuture<Result<R>>,
>;
/// A send admitted, its remote letters queued for publishing.
struct Admitted<R> {
    answers: Vec<oneshot::Receiver<Result<u64>>>,
    finish: Finish<R>,
}

impl ModelActor {
    /// The cluster's mail, when one of `recipients` needs it: its home is
    /// another instance, or this instance does not know it.
    pub(crate) fn mail_for<'a>(
        &self,
        recipients: impl IntoIterator<Item = &'a str>,
    ) -> Option<Arc<Mail>> {
        let mail = self.registry.mail.get()?;
        recipients
            .into_iter()
            .any(|to| mail.is_elsewhere(to) || self.registry.model(to).is_err())
            .then(|| mail.clone())
    }

    /// Looks up the homes of recipients not known here, admits the send
    /// (`admit`), waits for JetStream's answers and finishes, all while the
    /// actor handles nothing else.
    fn across<R: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        mail: Arc<Mail>,
        recipients: Vec<String>,
        admit: impl FnOnce(&mut Self, &Arc<Mail>) -> Result<Admitted<R>> + 'static,
    ) -> ResponseFuture<Result<R>> {
        let unknown: Vec<String> = recipients
            .into_iter()
            .filter(|to| mail.home(to).is_none() && self.registry.model(to).is_err())
            .collect();
        let (tx, rx) = oneshot::channel();
        let m = mail.clone();
        let looked_up = async move { m.look_up(unknown).await };
        ctx.wait(looked_up.into_actor(self).then(
            move |(), act, _| -> LocalBoxActorFuture<Self, ()> {
                let admitted = match admit(act, &mail) {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return fut::ready(()).boxed_local();
                    }
                };
                let answers = admitted.answers;
                let collect = async move {
                    let mut out = Vec::with_capacity(answers.len());
                    for a in answers {
                        out.push(a.await.unwrap_or(Err(ActorError::Stopped)));
                    }
                    out
                };
                collect
                    .into_actor(act)
                    .map(move |answers, act, ctx| {
                        let answer = (admitted.finish)(act, ctx, answers);
                        actix::spawn(async move {
                            let _ = tx.send(answer.await);
                        });
                    })
                    .boxed_local()
            },
        ));
        Box::pin(async move { rx.await.map_err(|_| ActorError::Stopped)? })
    }

    /// [`Post`](crate::model::Post) with recipients elsewhere: all or none.
    pub(crate) fn post_across(
        &mut self,
        ctx: &mut Context<Self>,
        mail: Arc<Mail>,
        messages: Vec<(String, Outgoing)>,
    ) -> ResponseFuture<Result<Vec<Uuid>>> {
        let names = messages.iter().map(|(to, _)| to.clone()).collect();
        self.across(ctx, mail, names, move |act, mail| {
            act.own_write_check()?;
            let mut admission = Admission::new(act.profile.clone());
            admission.take_vectors(messages.len() as u64)?;
            let now = now_ms();
            let (mut records, mut remote) = (Vec::new(), HashSet::new());
            for (to, out) in messages {
                let route = act.registry.recipient(&to)?;
                let record = act.record(out, vec![to.clone()], now)?;
                admission.charge(size_of(&record))?;
                match route {
                    Recipient::Local(e) => admission.reserve(&e.gauge)?,
                    Recipient::Remote => {
                        remote.insert(to);
                    }
                }
                records.push(record);
            }
            let answers = publish_remote(mail, &records, &remote);
            let mail = mail.clone();
            let finish: Finish<Vec<Uuid>> = Box::new(move |act, ctx, answers| {
                let (mut sequences, mut refused) = (Vec::new(), None);
                for a in answers {
                    match a {
                        Ok(seq) => sequences.push(seq),
                        Err(e) => refused = refused.or(Some(e)),
                    }
                }
                if let Some(e) = refused {
                    mail.retract(sequences);
                    return Box::pin(std::future::ready(Err(e)));
                }
                let stored = act.store_across(ctx, records, admission, remote);
                Box::pin(async move { Ok(stored.await?.iter().map(|m| m.id).collect()) })
            });
            Ok(Admitted { answers, finish })
        })
    }

    /// [`PostEach`](crate::model::PostEach) with recipients elsewhere: each
    /// accepted or refused on its own, a full remote mailbox included.
    pub(crate) fn post_each_across(
        &mut self,
        ctx: &mut Context<Self>,
        mail: Arc<Mail>,
        messages: Vec<(String, Outgoing)>,
    ) -> ResponseFuture<Result<EachOutcome>> {
        let names = messages.iter().map(|(to, _)| to.clone()).collect();
        self.across(ctx, mail, names, move |act, mail| {
            act.own_write_check()?;
            let now = now_ms();
            // Per message: its refusal so far, or its record, admission and
            // whether its letter went to the stream.
            let mut each: Vec<std::result::Result<(MessageRecord, Admission, bool), ActorError>> =
                Vec::new();
            let mut answers = Vec::new();
            for (to, out) in messages {
                let one = (|| -> Result<(MessageRecord, Admission, bool)> {
                    let mut admission = Admission::new(act.profile.clone());
                    admission.take_vectors(1)?;
                    let route = act.registry.recipient(&to)?;
                    let record = act.record(out, vec![to.clone()], now)?;
                    admission.charge(size_of(&record))?;
                    let remote = match route {
                        Recipient::Local(e) => {
                            admission.reserve(&e.gauge)?;
                            false
                        }
                        Recipient::Remote => true,
                    };
                    Ok((record, admission, remote))
                })();
                if let Ok((record, _, true)) = &one {
                    answers.push(mail.publish(&record.to[0], record));
                }
                each.push(one);
            }
            let finish: Finish<EachOutcome> = Box::new(move |act, ctx, answers| {
                let mut answers = answers.into_iter();
                let mut remote = HashSet::new();
                let each: Vec<_> = each
                    .into_iter()
                    .map(|one| {
                        one.and_then(|(record, admission, is_remote)| {
                            if is_remote {
                                answers.next().unwrap_or(Err(ActorError::Stopped))?;
                                remote.insert(record.to[0].clone());
                            }
                            Ok((record, admission))
                        })
                    })
                    .collect();
                let (refused, records, admitted) = act.gather(each);
                if records.is_empty() {
                    return Box::pin(std::future::ready(Ok(EachOutcome {
                        refused,
                        stored: Ok(Vec::new()),
                    })));
                }
                let stored = act.store_across(ctx, records, admitted, remote);
                Box::pin(async move {
                    let stored = stored.await.map(|s| s.iter().map(|m| m.id).collect());
                    Ok(EachOutcome { refused, stored })
                })
            });
            Ok(Admitted { answers, finish })
        })
    }

    /// [`Broadcast`](crate::model::Broadcast) with recipients elsewhere: a
    /// full remote mailbox is listed in `refused`, as a local one.
    pub(crate) fn broadcast_across(
        &mut self,
        ctx: &mut Context<Self>,
        mail: Arc<Mail>,
        message: Outgoing,
        recipients: Vec<String>,
    ) -> ResponseFuture<Result<BroadcastReport>> {
        let names = recipients.clone();
        self.across(ctx, mail, names, move |act, mail| {
            act.broadcast_check()?;
            let mut admission = Admission::new(act.profile.clone());
            admission.take_vectors(1)?;
            let (mut local, mut remote, mut refused) = (Vec::new(), Vec::new(), Vec::new());
            for to in recipients {
                match act.registry.recipient(&to) {
                    Ok(Recipient::Local(e)) => match admission.reserve(&e.gauge) {
                        Ok(()) => local.push(to),
                        Err(err) => refused.push((to, err.code().to_string())),
                    },
                    Ok(Recipient::Remote) => remote.push(to),
                    Err(err) => refused.push((to, err.code().to_string())),
                }
            }
            let all: Vec<String> = local.iter().chain(&remote).cloned().collect();
            let mut record = act.record(message, all, now_ms())?;
            admission.charge(size_of(&record))?;
            let answers = remote.iter().map(|to| mail.publish(to, &record)).collect();
            let finish: Finish<BroadcastReport> = Box::new(move |act, ctx, answers| {
                let mut reached = HashSet::new();
                for (to, a) in remote.into_iter().zip(answers) {
                    match a {
                        Ok(_) => {
                            reached.insert(to);
                        }
                        Err(e) => refused.push((to, e.code().to_string())),
                    }
                }
                record
                    .to
                    .retain(|to| local.contains(to) || reached.contains(to));
                let report = BroadcastReport {
                    id: record.id,
                    recipients: record.to.clone(),
                    refused,
                };
                let stored = act.store_across(ctx, vec![record], admission, reached);
                Box::pin(async move {
                    stored.await?;
                    Ok(report)
                })
            });
            Ok(Admitted { answers, finish })
        })
    }

    /// Stores messages whose letters for `remote` recipients JetStream
    /// holds: hands them over to the local recipients, and settles them
    /// here for the remote ones (so a restart does not put them in a
    /// mailbox here).
    fn store_across(
        &self,
        ctx: &mut Context<Self>,
        records: Vec<MessageRecord>,
        admission: Admission,
        remote: HashSet<String>,
    ) -> impl std::future::Future<Output = Result<Vec<Arc<MessageRecord>>>> + 'static {
        let pairs: Vec<(Uuid, String)> = records
            .iter()
            .flat_map(|r| {
                r.to.iter()
                    .filter(|to| remote.contains(*to))
                    .map(|to| (r.id, to.clone()))
            })
            .collect();
        let rx = self.store_and_hand_over_except(ctx, records, admission, remote);
        let store = self.store.clone();
        async move {
            let stored = rx.await.map_err(|_| ActorError::Stopped)??;
            let now = now_ms();
            let settled = pairs
                .into_iter()
                .map(|(message, recipient)| hvs_storage::Settled {
                    message,
                    recipient,
                    settlement: hvs_storage::Settlement::Acked,
                    at_ms: now,
                })
                .collect();
            store.settle_messages(
                settled,
                Box::new(|r| {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "settling letters sent elsewhere failed");
                    }
                }),
            );
            Ok(stored)
        }
    }
}

/// Queues the letters of `records` for their `remote` recipients, in order.
fn publish_remote(
    mail: &Mail,
    records: &[MessageRecord],
    remote: &HashSet<String>,
) -> Vec<oneshot::Receiver<Result<u64>>> {
    records
        .iter()
        .flat_map(|r| {
            r.to.iter()
                .filter(|to| remote.contains(*to))
                .map(move |to| mail.publish(to, r))
        })
        .collect()
}
