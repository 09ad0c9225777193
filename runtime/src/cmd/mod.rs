//! The server's operations: a [`Request`] in, its typed answer out, each a
//! small function of the connection's [`ModelHandle`] (one file per area,
//! as mini-redis's `cmd/`). [`route`] is the one place requests are
//! dispatched; what belongs to the connection itself (the handshake,
//! `bye`, pushes, the batching of pipelined sends) goes back to the
//! session. `docs/PROTOCOL.md` lists every operation.

mod blocks;
mod bridge;
mod messages;
mod session;
mod spaces;
mod sync;
mod vectors;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use crate::protocol::{self as p, Request, WireError, WireOutgoing};
use crate::{Error, ModelHandle, Runtime};

pub(crate) use messages::{addressed, delivery_push, send_answers};

/// An answer encoded for its frame, and what it counts for metrics.
pub(crate) struct Reply {
    /// The msgpack of the `ok` value.
    pub(crate) body: Vec<u8>,
    /// What the operation did.
    pub(crate) counts: Counts,
}

/// What an answered operation counts for the metrics.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    /// Messages accepted (each recipient of a broadcast counts once).
    pub(crate) sent: u64,
    /// Messages handed to the caller.
    pub(crate) delivered: u64,
}

/// An operation's answer: serialised once into its frame, after telling
/// what it counts.
pub(crate) trait Answer: Serialize {
    /// What this answer counts (nothing, for most).
    fn counts(&self) -> Counts {
        Counts::default()
    }
}

impl<T: Answer> Answer for Option<T> {}

/// A running operation.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<Reply, WireError>> + Send>>;

fn run<T, F>(f: F) -> Pending
where
    T: Answer,
    F: Future<Output = Result<T, Refusal>> + Send + 'static,
{
    Box::pin(async move {
        let answer = f.await.map_err(|r| r.0)?;
        let counts = answer.counts();
        Ok(Reply {
            body: p::encode(&answer)?,
            counts,
        })
    })
}

/// Where a request goes.
pub(crate) enum Route {
    /// `hello` again.
    Hello,
    /// `bye`: disconnect and close.
    Bye,
    /// Start pushing deliveries.
    Subscribe,
    /// Stop pushing.
    Unsubscribe,
    /// A message to send, batched with the sends pipelined behind it.
    Send(WireOutgoing),
    /// Anything else, running.
    Run(Pending),
}

/// What an operation may use besides the model.
pub(crate) struct Ctx<'a> {
    pub(crate) runtime: &'a Arc<Runtime>,
    pub(crate) model: &'a ModelHandle,
    /// Open connections now (for `stats`).
    pub(crate) connections: u64,
    /// Whether the connection may run operators' operations.
    pub(crate) operator: bool,
}

impl Ctx<'_> {
    /// The runtime, for an operators' operation: refused with
    /// `permission_denied` unless the connection's token covers every
    /// namespace.
    fn operator(&self) -> Result<Arc<Runtime>, Refusal> {
        if self.operator {
            Ok(self.runtime.clone())
        } else {
            Err(Refusal(WireError::new(
                "permission_denied",
                format!(
                    "{:?} may not manage sync jobs or bridges: that needs a token whose namespaces include \"*\"",
                    self.model.id()
                ),
            )))
        }
    }
}

/// Dispatches a request: the one `match` over every operation.
pub(crate) fn route(ctx: &Ctx<'_>, request: Request) -> Route {
    use Request as R;
    let m = ctx.model.clone();
    let pending = match request {
        R::Hello(_) => return Route::Hello,
        R::Bye(_) => return Route::Bye,
        R::Subscribe(_) => return Route::Subscribe,
        R::Unsubscribe(_) => return Route::Unsubscribe,
        R::Send(out) => return Route::Send(out),
        R::Ping(_) => run(session::ping()),
        R::Stats(_) => run(session::stats(ctx.runtime.clone(), m, ctx.connections)),
        R::SendBatch(a) => run(messages::send_batch(m, a)),
        R::Broadcast(a) => run(messages::broadcast(m, a)),
        R::Receive(a) => run(messages::receive(m, a)),
        R::Ack(a) => run(messages::ack(m, a)),
        R::Release(a) => run(messages::release(m, a)),
        R::Mailbox(_) => run(messages::mailbox(m)),
        R::GetMessage(a) => run(messages::get_message(m, a)),
        R::CreateNamespace(a) => run(vectors::create_namespace(m, a)),
        R::NamespaceInfo(a) => run(vectors::namespace_info(m, a)),
        R::ListNamespaces(_) => run(vectors::list_namespaces(m)),
        R::DeleteNamespace(a) => run(vectors::delete_namespace(m, a)),
        R::GrantAccess(a) => run(vectors::grant_access(m, a)),
        R::CheckAccess(a) => run(vectors::check_access(m, a)),
        R::StoreVector(a) => run(vectors::store_vector(m, a)),
        R::BatchStoreVectors(a) => run(vectors::batch_store_vectors(m, a)),
        R::RetrieveVector(a) => run(vectors::retrieve_vector(m, a)),
        R::RetrieveVectors(a) => run(vectors::retrieve_vectors(m, a)),
        R::UpdateVector(a) => run(vectors::update_vector(m, a)),
        R::DeleteVector(a) => run(vectors::delete_vector(m, a)),
        R::DeleteVectors(a) => run(vectors::delete_vectors(m, a)),
        R::DeleteByFilter(a) => run(vectors::delete_by_filter(m, a)),
        R::Search(a) => run(vectors::search(m, a)),
        R::RangeSearch(a) => run(vectors::range_search(m, a)),
        R::BatchSearch(a) => run(vectors::batch_search(m, a)),
        R::Count(a) => run(vectors::count(m, a)),
        R::Scroll(a) => run(vectors::scroll(m, a)),
        R::Join(a) => run(spaces::join(m, a)),
        R::Contribute(a) => run(spaces::contribute(m, a)),
        R::QueryShared(a) => run(spaces::query_shared(m, a)),
        R::Consensus(a) => run(spaces::consensus(m, a)),
        R::RegisterState(a) => run(spaces::register_state(m, a)),
        R::UpdateState(a) => run(spaces::update_state(m, a)),
        R::GetState(a) => run(spaces::get_state(m, a)),
        R::FindSimilarStates(a) => run(spaces::find_similar_states(m, a)),
        R::StoreBlock(a) => run(blocks::store_block(m, a)),
        R::QueryBlocks(a) => run(blocks::query_blocks(m, a)),
        R::GetBlock(a) => run(blocks::get_block(m, a)),
        R::UpdateBlock(a) => run(blocks::update_block(m, a)),
        R::DeleteBlock(a) => run(blocks::delete_block(m, a)),
        R::ListBlocks(a) => run(blocks::list_blocks(m, a)),
        R::SyncCreate(a) => run(sync::create(ctx.operator(), a)),
        R::SyncList(_) => run(sync::list(ctx.operator())),
        R::SyncStatus(a) => run(sync::status(ctx.operator(), a)),
        R::SyncPause(a) => run(sync::pause(ctx.operator(), a, true)),
        R::SyncResume(a) => run(sync::pause(ctx.operator(), a, false)),
        R::SyncDelete(a) => run(sync::delete(ctx.operator(), a)),
        R::SyncConflicts(a) => run(sync::conflicts(ctx.operator(), a)),
        R::ClusterStatus(_) => run(sync::cluster_status(ctx.operator())),
        R::BridgeCreate(a) => run(bridge::create(ctx.operator(), a)),
        R::BridgeList(_) => run(bridge::list(ctx.operator())),
        R::BridgeStatus(a) => run(bridge::status(ctx.operator(), a)),
        R::BridgeDelete(a) => run(bridge::delete(ctx.operator(), a)),
        R::BridgeSearch(a) => run(bridge::search(ctx.runtime.clone(), m, ctx.operator, a)),
    };
    Route::Run(pending)
}

/// Why an operation was not done: the error its answer carries.
pub(crate) struct Refusal(pub(crate) WireError);

impl Refusal {
    /// Malformed arguments.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self(WireError::bad_request(message))
    }
}

impl From<WireError> for Refusal {
    fn from(e: WireError) -> Self {
        Self(e)
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Self(wire_error(e))
    }
}

/// An error of the runtime as the wire carries it: its stable code, its
/// message, and what the code needs (when to retry, the current version).
pub(crate) fn wire_error(e: Error) -> WireError {
    let retry_after_ms = match &e {
        Error::Contract(hvs_contracts::ContractError::LimitExceeded { retry_after, .. }) => {
            retry_after.map(|d| d.as_millis() as u64)
        }
        _ => None,
    };
    let current_version = match &e {
        Error::Storage(hvs_storage::StorageError::VersionConflict { current, .. }) => {
            Some(*current)
        }
        _ => None,
    };
    let primary = match &e {
        Error::Storage(hvs_storage::StorageError::NotPrimary { primary }) => primary.clone(),
        _ => None,
    };
    WireError {
        code: e.code().to_string(),
        message: e.to_string(),
        retry_after_ms,
        current_version,
        primary,
    }
}

fn uuid(s: &str) -> Result<Uuid, WireError> {
    Uuid::parse_str(s).map_err(|e| WireError::bad_request(format!("id {s:?}: {e}")))
}

fn uuids(ids: &[String]) -> Result<Vec<Uuid>, WireError> {
    ids.iter().map(|s| uuid(s)).collect()
}

fn ids(ids: impl IntoIterator<Item = Uuid>) -> Vec<String> {
    ids.into_iter().map(|id| id.to_string()).collect()
}

/// Answer types that count nothing.
macro_rules! plain_answers {
    ($($t:ty),* $(,)?) => { $( impl Answer for $t {} )* };
}

plain_answers!(
    p::Empty,
    p::Pong,
    p::WireStats,
    p::IdArg,
    p::AckAnswer,
    p::Released,
    p::MailboxAnswer,
    p::WireMessage,
    p::WireNamespace,
    p::NamespaceList,
    p::AccessAnswer,
    p::Deleted,
    p::WireVector,
    p::VectorsFound,
    p::DeletedIds,
    p::DeletedCount,
    p::Hits,
    p::BatchHits,
    p::Counted,
    p::ScrollPage,
    p::SharedHits,
    p::WireConsensus,
    p::StateVersion,
    p::WireState,
    p::States,
    p::WireBlock,
    p::BlockList,
    p::BlockHits,
);

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
