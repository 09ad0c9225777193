//! The server's operations: one wire request in, one wire answer out, each
//! a call on the connection's [`ModelHandle`]. `docs/PROTOCOL.md` lists
//! them with their arguments and answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use hvs_actors::{AccessKind, BroadcastScope, Grant, Outgoing, VectorInput, Visibility};
use hvs_storage::{Block, MessageRecord, NewVector, SearchQuery};
use uuid::Uuid;

use crate::protocol::{self as p, WireError, codes};
use crate::{Error, ModelHandle, Runtime};

/// What an operation answers with.
pub(crate) type Answer = Result<rmpv::Value, WireError>;

/// A running operation. Anything that must happen in the order requests
/// arrive (queueing a message) has happened when [`dispatch`] returns; the
/// future only waits for the outcome.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// Counts an operation reports for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Effects {
    /// Messages sent (each recipient of a broadcast counts once).
    pub(crate) sent: u64,
}

impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        let retry_after_ms = match &e {
            Error::Contract(hvs_contracts::ContractError::LimitExceeded {
                retry_after, ..
            }) => retry_after.map(|d| d.as_millis() as u64),
            _ => None,
        };
        WireError {
            code: e.code().to_string(),
            message: e.to_string(),
            retry_after_ms,
        }
    }
}

fn ready(a: Answer) -> Pending {
    Box::pin(std::future::ready(a))
}

fn uuid(s: &str) -> Result<Uuid, WireError> {
    Uuid::parse_str(s).map_err(|e| WireError::new(codes::BAD_REQUEST, format!("id {s:?}: {e}")))
}

fn uuids(ids: &[String]) -> Result<Vec<Uuid>, WireError> {
    ids.iter().map(|s| uuid(s)).collect()
}

pub(crate) fn outgoing(m: p::WireOutgoing) -> Result<(String, Outgoing), WireError> {
    let vector = match (m.vector, m.embedding) {
        (Some(_), Some(_)) => {
            return Err(WireError::new(
                codes::BAD_REQUEST,
                "give a vector or an embedding, not both",
            ));
        }
        (Some(v), None) => VectorInput::Point(v),
        (None, Some(e)) => VectorInput::Embedding(e),
        (None, None) => VectorInput::Text,
    };
    Ok((
        m.to,
        Outgoing {
            payload: m.payload,
            vector,
            metadata: m.metadata,
            ttl_ms: m.ttl_ms,
        },
    ))
}

/// One answer per message of a [`ModelHandle::send_each`], in order.
pub(crate) fn each_answer(
    outcome: Result<hvs_actors::EachOutcome, Error>,
    n: usize,
) -> Vec<Answer> {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            let e = WireError::from(e);
            return (0..n).map(|_| Err(e.clone())).collect();
        }
    };
    let stored = outcome.stored.map_err(WireError::from);
    let mut ids = stored.as_ref().ok().map(|v| v.iter());
    outcome
        .refused
        .into_iter()
        .map(|refused| match (refused, &stored) {
            (Some(e), _) => Err(WireError::from(e)),
            (None, Err(e)) => Err(e.clone()),
            (None, Ok(_)) => match ids.as_mut().and_then(Iterator::next) {
                Some(id) => p::value(&p::IdArg { id: id.to_string() }),
                None => Err(WireError::new(
                    codes::INTERNAL,
                    "a stored message has no id",
                )),
            },
        })
        .collect()
}

/// A stored message as the wire shows it.
pub(crate) fn wire_message(m: &MessageRecord) -> p::WireMessage {
    p::WireMessage {
        id: m.id.to_string(),
        from: m.from.clone(),
        to: m.to.clone(),
        namespace: m.namespace.clone(),
        payload: m.payload.clone(),
        vector: m.vector.clone(),
        metadata: m.metadata.clone(),
        sent_ms: m.sent_ms,
        expires_ms: m.expires_ms,
    }
}

/// A delivery as the wire shows it.
pub(crate) fn wire_delivery(d: &crate::Delivery) -> p::WireDelivery {
    p::WireDelivery {
        message: wire_message(&d.message),
        attempt: d.attempt,
        deadline_ms: d.deadline_ms,
    }
}

fn wire_block(b: Block) -> p::WireBlock {
    let class = match serde_json::to_value(&b.class) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    };
    p::WireBlock {
        id: b.id.to_string(),
        name: b.name,
        class,
        content: b.content,
        readonly: b.readonly,
        version: b.version,
        created_ms: b.created_ms,
        updated_ms: b.updated_ms,
        expires_ms: b.expires_ms,
    }
}

fn visibility(s: &str) -> Result<Visibility, WireError> {
    match s {
        "private" => Ok(Visibility::Private),
        "shared" => Ok(Visibility::Shared),
        "public" => Ok(Visibility::Public),
        other => Err(WireError::new(
            codes::BAD_REQUEST,
            format!("visibility {other:?} is not one of private, shared, public"),
        )),
    }
}

fn visibility_name(v: Visibility) -> &'static str {
    match v {
        Visibility::Private => "private",
        Visibility::Shared => "shared",
        Visibility::Public => "public",
    }
}

fn wire_namespace(n: crate::NamespaceInfo) -> p::WireNamespace {
    p::WireNamespace {
        name: n.name,
        owner: n.owner,
        visibility: visibility_name(n.visibility).into(),
        network: n.network,
        geometry: n.geometry,
        grants: n
            .grants
            .into_iter()
            .map(|(m, g)| {
                (
                    m,
                    p::WireGrant {
                        read: g.read,
                        write: g.write,
                    },
                )
            })
            .collect(),
        members: n.members,
    }
}

/// Reads the arguments of `op` from its request frame and starts it. Returns the operation's
/// future (already dispatched where order matters) and what it will count.
pub(crate) fn dispatch(
    runtime: &Arc<Runtime>,
    model: &ModelHandle,
    op: &str,
    args: &[u8],
) -> (Pending, Effects) {
    match start(runtime, model, op, args) {
        Ok(x) => x,
        Err(e) => (ready(Err(e)), Effects::default()),
    }
}

/// Wraps an async call returning a serialisable value.
fn later<T, F>(f: F) -> Pending
where
    T: serde::Serialize,
    F: Future<Output = Result<T, WireError>> + Send + 'static,
{
    Box::pin(async move { p::value(&f.await?) })
}

fn start(
    runtime: &Arc<Runtime>,
    model: &ModelHandle,
    op: &str,
    args: &[u8],
) -> Result<(Pending, Effects), WireError> {
    let m = model.clone();
    let none = Effects::default();
    let pending: Pending = match op {
        "ping" => ready(p::value(&p::Pong { now_ms: now_ms() })),
        "send" => {
            let (to, out) = outgoing(p::args_of(args)?)?;
            let sent = m.send_message(&to, out);
            let f = later(async move {
                let id = sent.await?;
                Ok(p::IdArg { id: id.to_string() })
            });
            return Ok((f, Effects { sent: 1 }));
        }
        "send_batch" => {
            let batch: p::SendBatch = p::args_of(args)?;
            let n = batch.messages.len() as u64;
            let msgs = batch
                .messages
                .into_iter()
                .map(outgoing)
                .collect::<Result<Vec<_>, _>>()?;
            let sent = m.send_messages(msgs);
            let f = later(async move {
                let ids = sent.await?;
                Ok(p::Ids {
                    ids: ids.iter().map(Uuid::to_string).collect(),
                })
            });
            return Ok((f, Effects { sent: n }));
        }
        "broadcast" => {
            let b: p::WireBroadcast = p::args_of(args)?;
            let (_, out) = outgoing(b.message)?;
            let scope = BroadcastScope {
                namespace: b.namespace,
                exclude: b.exclude,
            };
            later(async move {
                let r = m.broadcast(out, scope).await?;
                Ok(rmpv_map(vec![
                    ("id", r.id.to_string().into()),
                    (
                        "recipients",
                        rmpv::Value::Array(r.recipients.into_iter().map(Into::into).collect()),
                    ),
                    (
                        "refused",
                        rmpv::Value::Array(
                            r.refused
                                .into_iter()
                                .map(|(m, c)| rmpv::Value::Array(vec![m.into(), c.into()]))
                                .collect(),
                        ),
                    ),
                ]))
            })
        }
        "receive" => {
            let r: p::Receive = p::args_of(args)?;
            later(async move {
                let got = m.receive_messages(r.max).await?;
                let deliveries: Vec<p::WireDelivery> = got.iter().map(wire_delivery).collect();
                Ok(rmpv_map(vec![("deliveries", p::value(&deliveries)?)]))
            })
        }
        "ack" => {
            let ids = uuids(&p::args_of::<p::Ids>(args)?.ids)?;
            later(async move {
                let r = m.ack(&ids).await?;
                let s = |v: Vec<Uuid>| -> Vec<String> { v.iter().map(Uuid::to_string).collect() };
                Ok(rmpv_map(vec![
                    ("acked", p::value(&s(r.acked))?),
                    ("unknown", p::value(&s(r.unknown))?),
                ]))
            })
        }
        "release" => {
            let ids = uuids(&p::args_of::<p::Ids>(args)?.ids)?;
            later(async move {
                let n = m.release(&ids).await?;
                Ok(rmpv_map(vec![("released", (n as u64).into())]))
            })
        }
        "mailbox" => later(async move {
            let (stats, dead) = m.mailbox().await?;
            let dead: Vec<rmpv::Value> = dead
                .into_iter()
                .map(|d| {
                    rmpv_map(vec![
                        ("id", d.id.to_string().into()),
                        ("from", d.from.into()),
                        ("reason", d.reason.into()),
                        ("attempts", d.attempts.into()),
                    ])
                })
                .collect();
            Ok(rmpv_map(vec![
                ("pending", (stats.pending as u64).into()),
                ("in_flight", (stats.in_flight as u64).into()),
                ("dead_lettered", stats.dead_lettered.into()),
                ("dead_letters", rmpv::Value::Array(dead)),
            ]))
        }),
        "get_message" => {
            let id = uuid(&p::args_of::<p::IdArg>(args)?.id)?;
            later(async move {
                let r = m.get_message(id).await?;
                Ok(r.map(|r| wire_message(&r)))
            })
        }
        "create_namespace" => {
            let c: p::CreateNamespace = p::args_of(args)?;
            let vis = visibility(&c.visibility)?;
            later(async move {
                let info = m.create_namespace(&c.name, vis, c.geometry).await?;
                Ok(wire_namespace(info))
            })
        }
        "namespace_info" => {
            let n: p::NameArg = p::args_of(args)?;
            later(async move { Ok(wire_namespace(m.namespace_info(&n.name).await?)) })
        }
        "grant_access" => {
            let g: p::GrantArgs = p::args_of(args)?;
            later(async move {
                let grant = Grant {
                    read: g.read,
                    write: g.write,
                };
                m.grant_access(&g.namespace, &g.model, grant).await?;
                Ok(rmpv_map(vec![]))
            })
        }
        "check_access" => {
            let c: p::CheckAccess = p::args_of(args)?;
            let kind = match c.kind.as_str() {
                "read" => AccessKind::Read,
                "write" => AccessKind::Write,
                other => {
                    return Err(WireError::new(
                        codes::BAD_REQUEST,
                        format!("kind {other:?} is not read or write"),
                    ));
                }
            };
            later(async move {
                Ok(match m.check_access(&c.namespace, kind).await {
                    Ok(()) => p::AccessAnswer {
                        allowed: true,
                        code: None,
                        reason: None,
                    },
                    Err(e) if e.is_validation() => p::AccessAnswer {
                        allowed: false,
                        code: Some(e.code().into()),
                        reason: Some(e.to_string()),
                    },
                    Err(e) => return Err(e.into()),
                })
            })
        }
        "store_vector" => {
            let s: p::StoreVector = p::args_of(args)?;
            later(async move {
                let r = m
                    .store_vector(NewVector {
                        namespace: s.namespace,
                        data: s.vector,
                        region: s.region,
                        metadata: s.metadata,
                    })
                    .await?;
                Ok(p::WireVector {
                    id: r.id.to_string(),
                    namespace: r.namespace,
                    vector: r.data,
                    region: r.region,
                    metadata: r.metadata,
                    version: r.version,
                    timestamp_ms: r.timestamp_ms,
                })
            })
        }
        "search" => {
            let s: p::Search = p::args_of(args)?;
            later(async move {
                let hits = m
                    .semantic_search(SearchQuery {
                        namespace: s.namespace,
                        vector: s.vector,
                        k: s.k,
                        offset: s.offset,
                        filter: s.filter,
                        region: s.region,
                        exact: s.exact,
                    })
                    .await?;
                let hits: Vec<p::WireHit> = hits
                    .into_iter()
                    .map(|h| p::WireHit {
                        id: h.id.to_string(),
                        distance: h.distance,
                        score: h.score,
                        rank: h.rank,
                    })
                    .collect();
                Ok(rmpv_map(vec![("hits", p::value(&hits)?)]))
            })
        }
        "join" => {
            let j: p::Join = p::args_of(args)?;
            later(async move {
                let caps: Vec<&str> = j.capabilities.iter().map(String::as_str).collect();
                m.join(&j.space, &caps).await?;
                Ok(rmpv_map(vec![]))
            })
        }
        "contribute" => {
            let c: p::Contribute = p::args_of(args)?;
            later(async move {
                let id = m.contribute(&c.space, &c.key, c.vector, c.value).await?;
                Ok(p::IdArg { id: id.to_string() })
            })
        }
        "query_shared" => {
            let q: p::QueryShared = p::args_of(args)?;
            later(async move {
                let hits: Vec<p::WireSharedHit> = m
                    .query_shared(&q.space, q.vector, q.k)
                    .await?
                    .into_iter()
                    .map(|h| p::WireSharedHit {
                        id: h.id.to_string(),
                        contributor: h.contributor,
                        key: h.key,
                        value: h.value,
                        distance: h.distance,
                        score: h.score,
                    })
                    .collect();
                Ok(rmpv_map(vec![("hits", p::value(&hits)?)]))
            })
        }
        "consensus" => {
            let c: p::ConsensusArgs = p::args_of(args)?;
            later(async move {
                let r = m.consensus(&c.space, c.weights).await?;
                Ok(p::WireConsensus {
                    mean: r.mean,
                    contributions: r.contributions,
                    contributors: r.contributors,
                    iterations: r.iterations,
                    converged: r.converged,
                    gradient_norm: r.gradient_norm,
                })
            })
        }
        "register_state" => {
            let r: p::RegisterState = p::args_of(args)?;
            later(async move {
                m.register_state(r.schema).await?;
                Ok(rmpv_map(vec![]))
            })
        }
        "update_state" => {
            let u: p::UpdateState = p::args_of(args)?;
            later(async move {
                let version = m.update_state(u.state).await?;
                Ok(rmpv_map(vec![("version", version.into())]))
            })
        }
        "get_state" => {
            let g: p::GetState = p::args_of(args)?;
            later(async move {
                Ok(m.get_state(&g.model).await?.map(|s| p::WireState {
                    model: s.model,
                    state: s.state,
                    version: s.version,
                    score: None,
                }))
            })
        }
        "find_similar_states" => {
            let q: p::SimilarStates = p::args_of(args)?;
            later(async move {
                let found: Vec<p::WireState> = m
                    .find_similar_states(&q.state, q.k)
                    .await?
                    .into_iter()
                    .map(|(s, score)| p::WireState {
                        model: s.model,
                        state: s.state,
                        version: s.version,
                        score: Some(score),
                    })
                    .collect();
                Ok(rmpv_map(vec![("states", p::value(&found)?)]))
            })
        }
        "store_block" => {
            let b: p::StoreBlock = p::args_of(args)?;
            later(async move { Ok(wire_block(m.store(&b.name, b.content, b.persist).await?)) })
        }
        "query_blocks" => {
            let q: p::QueryBlocks = p::args_of(args)?;
            later(async move {
                let hits: Vec<p::WireBlockHit> = m
                    .query(&q.text, q.k)
                    .await?
                    .into_iter()
                    .map(|h| p::WireBlockHit {
                        block_id: h.block_id.to_string(),
                        name: h.name,
                        section: h.section,
                        text: h.text,
                        distance: h.distance,
                        score: h.score,
                        rank: h.rank,
                    })
                    .collect();
                Ok(rmpv_map(vec![("hits", p::value(&hits)?)]))
            })
        }
        "get_block" => {
            let n: p::NameArg = p::args_of(args)?;
            let store = runtime.storage().clone();
            later(async move {
                let actor = m.id().to_string();
                let b = blocking(move || store.get_block_by_name(&actor, &n.name)).await?;
                Ok(b.map(wire_block))
            })
        }
        "update_block" => {
            let u: p::UpdateBlock = p::args_of(args)?;
            let store = runtime.storage().clone();
            later(async move {
                let actor = m.id().to_string();
                let b = blocking(move || {
                    let id = block_id(&store, &actor, &u.name)?;
                    store.update_block(&actor, id, u.content)
                })
                .await?;
                Ok(wire_block(b))
            })
        }
        "delete_block" => {
            let n: p::NameArg = p::args_of(args)?;
            let store = runtime.storage().clone();
            later(async move {
                let actor = m.id().to_string();
                let deleted = blocking(move || {
                    let id = block_id(&store, &actor, &n.name)?;
                    store.delete_block(&actor, id)
                })
                .await?;
                Ok(rmpv_map(vec![("deleted", deleted.into())]))
            })
        }
        other => {
            return Err(WireError::new(
                codes::UNKNOWN_OP,
                format!("unknown operation {other:?}"),
            ));
        }
    };
    Ok((pending, none))
}

/// The id of the block named `name`, or a `not_found`-style storage error.
fn block_id(
    store: &hvs_storage::Store,
    actor: &str,
    name: &str,
) -> Result<Uuid, hvs_storage::StorageError> {
    match store.get_block_by_name(actor, name)? {
        Some(b) => Ok(b.id),
        None => Err(hvs_storage::StorageError::BlockNotFound(name.to_string())),
    }
}

/// Runs a storage call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, hvs_storage::StorageError> + Send + 'static,
) -> Result<T, WireError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| WireError::new(codes::INTERNAL, e.to_string()))?
        .map_err(|e| Error::from(e).into())
}

/// A msgpack map from string keys.
pub(crate) fn rmpv_map(pairs: Vec<(&str, rmpv::Value)>) -> rmpv::Value {
    rmpv::Value::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
