//! The Rust client of the wire protocol: one connection to an HVS server
//! acting as one model, with pipelined requests (call from many tasks at
//! once), pushed deliveries, heartbeats, and reconnection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hvs_wire::ClientError> {
//! use hvs_wire::{Client, ClientConfig};
//! let contract = std::fs::read_to_string("examples/contracts/rust_agent.json").unwrap();
//! let client = Client::connect(ClientConfig::new("127.0.0.1:7411", contract)).await?;
//! let id = client.send("planner", b"hello".to_vec(), None).await?;
//! for d in client.receive(10).await? {
//!     client.ack(&[d.message.id.clone()]).await?;
//! }
//! # let _ = id; Ok(()) }
//! ```
//!
//! A request whose connection drops before its answer fails with
//! [`ClientError::ConnectionLost`]: the server may or may not have done it.
//! The next call reconnects (when [`ClientConfig::reconnect`] is set),
//! presenting the same contract and token, and subscribes again if the
//! client was subscribed.
//!
//! Given the other servers of a failover group
//! ([`ClientConfig::with_servers`]), the client follows the group's
//! primary: see [`ClientConfig::servers`].

mod bridge;
mod sync;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::protocol::{self as p, Push, WireError};

/// How to reach the server and as whom.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the server.
    pub addr: String,
    /// The model's contract, the text of `model_contract_hvs.json`.
    pub contract: String,
    /// The operator's token, if the server asks for one.
    pub token: Option<String>,
    /// Reconnect on the next call after the connection drops.
    pub reconnect: bool,
    /// How long a request may wait for its answer.
    pub request_timeout: Duration,
    /// The largest frame accepted from the server.
    pub max_frame_bytes: usize,
    /// The other servers of a failover group (`docs/CLUSTER.md`). With
    /// any, the client follows the group's primary: it connects to the
    /// server that takes its hello (trying the primary a `not_primary`
    /// answer names first), and a request that meets a lost connection,
    /// `not_primary` or `not_replicated` is sent again, to the primary,
    /// (or `cluster_unavailable`) for up to `failover_timeout`; so a write
    /// may be carried out twice.
    pub servers: Vec<String>,
    /// How long a request may keep looking for the primary.
    pub failover_timeout: Duration,
    /// Accept a read-only session on a mirror of a failover group
    /// (`docs/CLUSTER.md`, "Reading from a mirror"); off by default, so
    /// that a mirror refuses the hello and a following client moves on to
    /// the primary.
    pub mirror_reads: bool,
}

impl ClientConfig {
    /// A client for `addr` acting with `contract` (no token, reconnecting,
    /// 30 s request timeout).
    pub fn new(addr: impl Into<String>, contract: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            contract: contract.into(),
            token: None,
            reconnect: true,
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: p::DEFAULT_MAX_FRAME,
            servers: Vec::new(),
            failover_timeout: Duration::from_secs(30),
            mirror_reads: false,
        }
    }

    /// The same, accepting a read-only session if `addr` is a mirror of a
    /// failover group (see [`ClientConfig::mirror_reads`]).
    pub fn with_mirror_reads(mut self) -> Self {
        self.mirror_reads = true;
        self
    }

    /// The same, following the primary of the failover group that
    /// `servers` (with `addr`) make up.
    pub fn with_servers<S: Into<String>>(mut self, servers: impl IntoIterator<Item = S>) -> Self {
        self.servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// The same with a token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an error (its stable code is in
    /// [`WireError::code`]).
    #[error("server refused: {0}")]
    Server(WireError),
    /// Connecting failed.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The connection dropped before the answer came: the request may or
    /// may not have been carried out.
    #[error("the connection was lost before the answer: {0}")]
    ConnectionLost(String),
    /// No answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The server sent something this client cannot read.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    /// A stable code: the server's for [`ClientError::Server`], else the
    /// kind's.
    pub fn code(&self) -> &str {
        match self {
            Self::Server(e) => &e.code,
            Self::Connect { .. } => "connect_failed",
            Self::ConnectionLost(_) => "connection_lost",
            Self::Timeout(_) => "timeout",
            Self::Protocol(_) => "protocol",
            Self::Closed => "closed",
        }
    }
}

/// Each waiter gets its answer frame whole and reads `ok` as its own type.
type Waiters = Arc<StdMutex<HashMap<u64, oneshot::Sender<Result<Bytes, ClientError>>>>>;

/// What the reader needs of a frame to route it; `ok` is left for the
/// caller to read as its type.
#[derive(serde::Deserialize)]
struct FrameHead {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    error: Option<WireError>,
    #[serde(default)]
    push: Option<String>,
}

/// A response's `ok`, read as `T`.
#[derive(serde::Deserialize)]
struct OkOnly<T> {
    ok: T,
}

/// One live connection.
struct Conn {
    tx: mpsc::Sender<Bytes>,
    waiters: Waiters,
    alive: Arc<AtomicBool>,
    welcome: p::Welcome,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A connected model. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    conn: Mutex<Option<Arc<Conn>>>,
    next_id: AtomicU64,
    pushes_tx: mpsc::UnboundedSender<p::WireDelivery>,
    pushes_rx: Mutex<mpsc::UnboundedReceiver<p::WireDelivery>>,
    subscribed: AtomicBool,
    closed: AtomicBool,
    /// The server to try first: the last that took the hello, or the
    /// primary a `not_primary` answer named.
    hint: StdMutex<Option<String>>,
}

impl Client {
    /// Connects and says hello; fails if the server refuses the contract or
    /// the token.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let (pushes_tx, pushes_rx) = mpsc::unbounded_channel();
        let client = Client {
            inner: Arc::new(Inner {
                config,
                conn: Mutex::new(None),
                next_id: AtomicU64::new(1),
                pushes_tx,
                pushes_rx: Mutex::new(pushes_rx),
                subscribed: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                hint: StdMutex::new(None),
            }),
        };
        client.conn().await?;
        Ok(client)
    }

    /// What the server said at the handshake (version, model, heartbeat).
    pub async fn welcome(&self) -> Result<p::Welcome, ClientError> {
        Ok(self.conn().await?.welcome.clone())
    }

    /// The live connection, reconnecting if it dropped.
    async fn conn(&self) -> Result<Arc<Conn>, ClientError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ClientError::Closed);
        }
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            if c.alive.load(Ordering::SeqCst) {
                return Ok(c.clone());
            }
            if !self.inner.config.reconnect {
                return Err(ClientError::ConnectionLost(
                    "the connection is closed".into(),
                ));
            }
        }
        let c = Arc::new(self.open().await?);
        *slot = Some(c.clone());
        drop(slot);
        if self.inner.subscribed.load(Ordering::SeqCst) {
            self.call_on(&c, frame_of(p::Request::Subscribe(p::Empty {})))
                .await?;
        }
        Ok(c)
    }

    /// A new connection: to `addr`, or, with other servers configured, to
    /// whichever of them is the primary now (within the failover timeout).
    async fn open(&self) -> Result<Conn, ClientError> {
        let cfg = &self.inner.config;
        if cfg.servers.is_empty() {
            return self.open_at(&cfg.addr).await;
        }
        let began = std::time::Instant::now();
        loop {
            let mut last = None;
            for addr in self.candidates() {
                match self.open_at(&addr).await {
                    Ok(c) => {
                        self.set_hint(&addr);
                        return Ok(c);
                    }
                    Err(e) if is_failover(&e) => {
                        let named = primary_named(&e).filter(|p| *p != addr);
                        last = Some(e);
                        if let Some(p) = named {
                            self.set_hint(&p);
                            break;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            if began.elapsed() >= cfg.failover_timeout {
                return Err(last.unwrap_or(ClientError::Closed));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The servers to try, the hinted one first.
    fn candidates(&self) -> Vec<String> {
        let cfg = &self.inner.config;
        let hint = self
            .inner
            .hint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out: Vec<String> = Vec::with_capacity(cfg.servers.len() + 2);
        for a in hint.iter().chain([&cfg.addr]).chain(&cfg.servers) {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    fn set_hint(&self, addr: &str) {
        *self.inner.hint.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr.to_string());
    }

    /// Whether a failed request is sent again (to the primary).
    fn retries(&self, e: &ClientError, began: std::time::Instant) -> bool {
        let cfg = &self.inner.config;
        !cfg.servers.is_empty() && began.elapsed() < cfg.failover_timeout && is_failover(e)
    }

    /// Sends a request, again after a failover if it must (see
    /// [`ClientConfig::servers`]); its answer frame.
    async fn call_following<R: Serialize>(
        &self,
        frame: impl Fn(u64) -> R,
    ) -> Result<Bytes, ClientError> {
        let began = std::time::Instant::now();
        loop {
            let c = self.conn().await?;
            match self.call_on(&c, &frame).await {
                Err(e) if self.retries(&e, began) => {
                    c.alive.store(false, Ordering::SeqCst);
                    if let Some(p) = primary_named(&e) {
                        self.set_hint(&p);
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                other => return other,
            }
        }
    }

    async fn open_at(&self, addr: &str) -> Result<Conn, ClientError> {
        let cfg = &self.inner.config;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| ClientError::Connect {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        let _ = stream.set_nodelay(true);
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(cfg.max_frame_bytes)
            .new_codec();
        let (rd, wr) = stream.into_split();
        let mut reader = FramedRead::new(rd, codec.clone());
        let mut writer = FramedWrite::new(wr, codec);

        // The handshake, before anything else runs on the connection.
        let hello = p::RequestFrame {
            id: 0,
            request: p::Request::Hello(p::Hello {
                versions: p::PROTOCOL_VERSIONS.to_vec(),
                contract: cfg.contract.clone(),
                token: cfg.token.clone(),
                client: Some(format!("hvs-runtime/{}", env!("CARGO_PKG_VERSION"))),
                mirror_reads: cfg.mirror_reads,
            }),
        };
        let bytes = p::encode(&hello).map_err(ClientError::Server)?;
        writer
            .send(Bytes::from(bytes))
            .await
            .map_err(|e| ClientError::ConnectionLost(e.to_string()))?;
        // Following a group, a server that does not greet soon (paused,
        // say) is passed over for the next.
        let greeting = if cfg.servers.is_empty() {
            cfg.request_timeout
        } else {
            cfg.request_timeout.min(HELLO_WAIT)
        };
        let welcome = match tokio::time::timeout(greeting, reader.next()).await {
            Err(_) => return Err(ClientError::Timeout(greeting)),
            Ok(None) => return Err(ClientError::ConnectionLost("closed at hello".into())),
            Ok(Some(Err(e))) => return Err(ClientError::ConnectionLost(e.to_string())),
            Ok(Some(Ok(b))) => match p::decode::<FrameHead>(&b) {
                Ok(FrameHead {
                    error: Some(error), ..
                }) => return Err(ClientError::Server(error)),
                Ok(FrameHead { push: Some(_), .. }) => {
                    return Err(ClientError::Protocol("a push before the welcome".into()));
                }
                Ok(_) => {
                    p::decode::<OkOnly<p::Welcome>>(&b)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?
                        .ok
                }
                Err(e) => return Err(ClientError::Protocol(e.to_string())),
            },
        };

        let waiters: Waiters = Arc::new(StdMutex::new(HashMap::new()));
        let alive = Arc::new(AtomicBool::new(true));
        let (tx, mut rx) = mpsc::channel::<Bytes>(1024);
        let writer_alive = alive.clone();
        let write_task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut ok = writer.feed(first).await.is_ok();
                while ok && let Ok(more) = rx.try_recv() {
                    ok = writer.feed(more).await.is_ok();
                }
                if !ok || SinkExt::<Bytes>::flush(&mut writer).await.is_err() {
                    break;
                }
            }
            writer_alive.store(false, Ordering::SeqCst);
        });
        let (w, a, pushes) = (waiters.clone(), alive.clone(), self.inner.pushes_tx.clone());
        let read_task = tokio::spawn(async move {
            let why = loop {
                let b = match reader.next().await {
                    None => break "the server closed the connection".to_string(),
                    Some(Err(e)) => break e.to_string(),
                    Some(Ok(b)) => b,
                };
                if let Err(why) = route_frame(b.freeze(), &w, &pushes) {
                    break why;
                }
            };
            a.store(false, Ordering::SeqCst);
            let left: Vec<_> = w
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain()
                .collect();
            for (_, waiter) in left {
                let _ = waiter.send(Err(ClientError::ConnectionLost(why.clone())));
            }
        });
        // Heartbeats: a ping every interval keeps the model connected.
        let (ping_tx, ping_alive) = (tx.clone(), alive.clone());
        let interval = Duration::from_millis(welcome.heartbeat_interval_ms.max(100));
        let ping_task = tokio::spawn(async move {
            let mut n = u64::MAX;
            loop {
                tokio::time::sleep(interval).await;
                if !ping_alive.load(Ordering::SeqCst) {
                    return;
                }
                // Ping ids count down from the top; nobody waits for them.
                n -= 1;
                let ping = p::RequestFrame {
                    id: n,
                    request: p::Request::Ping(p::Empty {}),
                };
                let Ok(bytes) = p::encode(&ping) else { return };
                if ping_tx.send(Bytes::from(bytes)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Conn {
            tx,
            waiters,
            alive,
            welcome,
            tasks: vec![write_task, read_task, ping_task],
        })
    }

    async fn call_on<R: Serialize>(
        &self,
        c: &Conn,
        frame: impl FnOnce(u64) -> R,
    ) -> Result<Bytes, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        c.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let req = frame(id);
        let bytes = p::encode(&req).map_err(ClientError::Server)?;
        if c.tx.send(Bytes::from(bytes)).await.is_err() {
            c.waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            c.alive.store(false, Ordering::SeqCst);
            return Err(ClientError::ConnectionLost("the writer stopped".into()));
        }
        let timeout = self.inner.config.request_timeout;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(ClientError::ConnectionLost("the reader stopped".into())),
            Err(_) => {
                c.waiters
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                Err(ClientError::Timeout(timeout))
            }
        }
    }

    /// Any operation, with its answer read as `T` (the typed methods below
    /// are this; the answer types are in [`crate::protocol`]).
    pub async fn request<T: DeserializeOwned>(
        &self,
        request: p::Request,
    ) -> Result<T, ClientError> {
        let op = request.op();
        let frame = self
            .call_following(|id| p::RequestFrame {
                id,
                request: request.clone(),
            })
            .await?;
        p::decode::<OkOnly<T>>(&frame)
            .map(|o| o.ok)
            .map_err(|e| ClientError::Protocol(format!("{op}: {e}")))
    }

    /// Any operation by name, with arguments and answer of your own types
    /// (for operations this client does not know yet).
    pub async fn call<A: Serialize, T: DeserializeOwned>(
        &self,
        op: &str,
        args: &A,
    ) -> Result<T, ClientError> {
        let args = p::value(args).map_err(ClientError::Server)?;
        let op = op.to_string();
        let frame = self
            .call_following(|id| p::RawRequest {
                id,
                op: op.clone(),
                args: args.clone(),
            })
            .await?;
        p::decode::<OkOnly<T>>(&frame)
            .map(|o| o.ok)
            .map_err(|e| ClientError::Protocol(format!("{op}: {e}")))
    }

    /// Round trip to the server.
    pub async fn ping(&self) -> Result<p::Pong, ClientError> {
        self.request(p::Request::Ping(p::Empty {})).await
    }

    /// Server, storage and mailbox figures.
    pub async fn stats(&self) -> Result<p::WireStats, ClientError> {
        self.request(p::Request::Stats(p::Empty {})).await
    }

    /// Sends `payload` to `to`; its vector is `vector` (a point of this
    /// model's space) or, when `None`, the text encoder's reading of the
    /// payload. Returns the message id.
    pub async fn send(
        &self,
        to: &str,
        payload: Vec<u8>,
        vector: Option<Vec<f64>>,
    ) -> Result<String, ClientError> {
        self.send_message(p::WireOutgoing {
            to: to.into(),
            payload,
            vector,
            ..p::WireOutgoing::default()
        })
        .await
    }

    /// Sends a message with every option (embedding, metadata, TTL).
    pub async fn send_message(&self, message: p::WireOutgoing) -> Result<String, ClientError> {
        let r: p::IdArg = self.request(p::Request::Send(message)).await?;
        Ok(r.id)
    }

    /// Sends many messages, all or none; returns their ids in order.
    pub async fn send_batch(
        &self,
        messages: Vec<p::WireOutgoing>,
    ) -> Result<Vec<String>, ClientError> {
        let r: p::Ids = self
            .request(p::Request::SendBatch(p::SendBatch { messages }))
            .await?;
        Ok(r.ids)
    }

    /// Broadcasts to every connected model or a namespace's members.
    pub async fn broadcast(&self, b: p::WireBroadcast) -> Result<p::BroadcastAnswer, ClientError> {
        self.request(p::Request::Broadcast(b)).await
    }

    /// Up to `max` waiting messages; ack each before its deadline.
    pub async fn receive(&self, max: usize) -> Result<Vec<p::WireDelivery>, ClientError> {
        let r: p::Deliveries = self
            .request(p::Request::Receive(p::Receive { max }))
            .await?;
        Ok(r.deliveries)
    }

    /// Asks the server to push each message as it arrives; read them with
    /// [`next_delivery`](Self::next_delivery). Kept across reconnects.
    pub async fn subscribe(&self) -> Result<(), ClientError> {
        self.inner.subscribed.store(true, Ordering::SeqCst);
        let _: p::Empty = self.request(p::Request::Subscribe(p::Empty {})).await?;
        Ok(())
    }

    /// Stops the pushes.
    pub async fn unsubscribe(&self) -> Result<(), ClientError> {
        self.inner.subscribed.store(false, Ordering::SeqCst);
        let _: p::Empty = self.request(p::Request::Unsubscribe(p::Empty {})).await?;
        Ok(())
    }

    /// The next pushed delivery (after [`subscribe`](Self::subscribe));
    /// `None` once the client is dropped.
    pub async fn next_delivery(&self) -> Option<p::WireDelivery> {
        self.inner.pushes_rx.lock().await.recv().await
    }

    /// A pushed delivery that has already arrived, without waiting (`None`
    /// also while another task is waiting in
    /// [`next_delivery`](Self::next_delivery)).
    pub fn try_next_delivery(&self) -> Option<p::WireDelivery> {
        self.inner.pushes_rx.try_lock().ok()?.try_recv().ok()
    }

    /// Acknowledges messages by id; returns the ids acked now.
    pub async fn ack(&self, ids: &[String]) -> Result<Vec<String>, ClientError> {
        let r: p::AckAnswer = self
            .request(p::Request::Ack(p::Ids { ids: ids.to_vec() }))
            .await?;
        Ok(r.acked)
    }

    /// Gives received messages back for redelivery now; returns how many.
    pub async fn release(&self, ids: &[String]) -> Result<u64, ClientError> {
        let r: p::Released = self
            .request(p::Request::Release(p::Ids { ids: ids.to_vec() }))
            .await?;
        Ok(r.released)
    }

    /// The mailbox's counts and latest dead letters.
    pub async fn mailbox(&self) -> Result<p::MailboxAnswer, ClientError> {
        self.request(p::Request::Mailbox(p::Empty {})).await
    }

    /// A message this model sent or received (or whose namespace it reads).
    pub async fn get_message(&self, id: &str) -> Result<Option<p::WireMessage>, ClientError> {
        self.request(p::Request::GetMessage(p::IdArg { id: id.into() }))
            .await
    }

    /// Creates a namespace this model owns (with its own retention and
    /// datatype if `args` give them).
    pub async fn create_namespace(
        &self,
        args: &p::CreateNamespace,
    ) -> Result<p::WireNamespace, ClientError> {
        self.request(p::Request::CreateNamespace(args.clone()))
            .await
    }

    /// A namespace's access list.
    pub async fn namespace_info(&self, name: &str) -> Result<p::WireNamespace, ClientError> {
        self.request(p::Request::NamespaceInfo(p::NameArg { name: name.into() }))
            .await
    }

    /// The namespaces this model may read.
    pub async fn list_namespaces(&self) -> Result<Vec<p::WireNamespaceSummary>, ClientError> {
        let r: p::NamespaceList = self
            .request(p::Request::ListNamespaces(p::Empty {}))
            .await?;
        Ok(r.namespaces)
    }

    /// Deletes a namespace this model owns, with its vectors.
    pub async fn delete_namespace(&self, name: &str) -> Result<bool, ClientError> {
        let r: p::Deleted = self
            .request(p::Request::DeleteNamespace(p::NameArg {
                name: name.into(),
            }))
            .await?;
        Ok(r.deleted)
    }

    /// Grants another model access to a namespace this model owns.
    pub async fn grant_access(&self, args: p::GrantArgs) -> Result<(), ClientError> {
        let _: p::Empty = self.request(p::Request::GrantAccess(args)).await?;
        Ok(())
    }

    /// Whether this model may `kind` (`read` or `write`) a namespace.
    pub async fn check_access(
        &self,
        namespace: &str,
        kind: &str,
    ) -> Result<p::AccessAnswer, ClientError> {
        let args = p::CheckAccess {
            namespace: namespace.into(),
            kind: kind.into(),
        };
        self.request(p::Request::CheckAccess(args)).await
    }

    /// Stores a vector.
    pub async fn store_vector(&self, v: &p::StoreVector) -> Result<p::WireVector, ClientError> {
        self.request(p::Request::StoreVector(v.clone())).await
    }

    /// Stores many vectors in one namespace, all or none; their ids in order.
    pub async fn batch_store_vectors(
        &self,
        namespace: &str,
        vectors: Vec<p::NewWireVector>,
    ) -> Result<Vec<String>, ClientError> {
        let args = p::BatchStoreVectors {
            namespace: namespace.into(),
            vectors,
        };
        let r: p::Ids = self.request(p::Request::BatchStoreVectors(args)).await?;
        Ok(r.ids)
    }

    /// A stored vector with its coordinates, or `None`.
    pub async fn retrieve_vector(&self, id: &str) -> Result<Option<p::WireVector>, ClientError> {
        let args = p::RetrieveVector {
            id: id.into(),
            with_vector: true,
        };
        self.request(p::Request::RetrieveVector(args)).await
    }

    /// Many stored vectors, and the ids not found.
    pub async fn retrieve_vectors(
        &self,
        ids: &[String],
        with_vector: bool,
    ) -> Result<p::VectorsFound, ClientError> {
        let args = p::RetrieveVectors {
            ids: ids.to_vec(),
            with_vector,
        };
        self.request(p::Request::RetrieveVectors(args)).await
    }

    /// Changes a vector (see [`p::UpdateVector`]; `if_version` makes it a
    /// compare-and-set refused with `version_conflict`).
    pub async fn update_vector(&self, u: p::UpdateVector) -> Result<p::WireVector, ClientError> {
        self.request(p::Request::UpdateVector(u)).await
    }

    /// Deletes a vector; `false` if it was not there.
    pub async fn delete_vector(&self, id: &str) -> Result<bool, ClientError> {
        let r: p::Deleted = self
            .request(p::Request::DeleteVector(p::IdArg { id: id.into() }))
            .await?;
        Ok(r.deleted)
    }

    /// Deletes vectors: which were deleted and which were not there.
    pub async fn delete_vectors(&self, ids: &[String]) -> Result<p::DeletedIds, ClientError> {
        self.request(p::Request::DeleteVectors(p::Ids { ids: ids.to_vec() }))
            .await
    }

    /// Deletes every vector of `namespace` the filter matches; how many.
    pub async fn delete_by_filter(
        &self,
        namespace: &str,
        filter: crate::Filter,
    ) -> Result<u64, ClientError> {
        let args = p::DeleteByFilter {
            namespace: namespace.into(),
            filter,
        };
        let r: p::DeletedCount = self.request(p::Request::DeleteByFilter(args)).await?;
        Ok(r.deleted)
    }

    /// The `k` nearest vectors of `namespace` to `vector`.
    pub async fn search(
        &self,
        namespace: &str,
        vector: Vec<f64>,
        k: usize,
    ) -> Result<Vec<p::WireHit>, ClientError> {
        self.search_with(&p::Search::new(namespace, vector, k))
            .await
    }

    /// A search with every option (offset, filter, region, exact, ef,
    /// with_vector).
    pub async fn search_with(&self, s: &p::Search) -> Result<Vec<p::WireHit>, ClientError> {
        let r: p::Hits = self.request(p::Request::Search(s.clone())).await?;
        Ok(r.hits)
    }

    /// Every vector within a radius, nearest first.
    pub async fn range_search(&self, s: p::RangeSearch) -> Result<Vec<p::WireHit>, ClientError> {
        let r: p::Hits = self.request(p::Request::RangeSearch(s)).await?;
        Ok(r.hits)
    }

    /// Many searches in one request, answered in order.
    pub async fn batch_search(
        &self,
        searches: Vec<p::Search>,
    ) -> Result<Vec<Vec<p::WireHit>>, ClientError> {
        let r: p::BatchHits = self
            .request(p::Request::BatchSearch(p::BatchSearch { searches }))
            .await?;
        Ok(r.results)
    }

    /// How many vectors `namespace` holds (that `filter` matches).
    pub async fn count(
        &self,
        namespace: &str,
        filter: Option<crate::Filter>,
    ) -> Result<u64, ClientError> {
        let args = p::Count {
            namespace: namespace.into(),
            filter,
        };
        let r: p::Counted = self.request(p::Request::Count(args)).await?;
        Ok(r.count)
    }

    /// One page of a namespace in id order; pass its `next` as `after`.
    pub async fn scroll(&self, s: p::Scroll) -> Result<p::ScrollPage, ClientError> {
        self.request(p::Request::Scroll(s)).await
    }

    /// Joins a shared space.
    pub async fn join(&self, space: &str, capabilities: &[&str]) -> Result<(), ClientError> {
        let args = p::Join {
            space: space.into(),
            capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
        };
        let _: p::Empty = self.request(p::Request::Join(args)).await?;
        Ok(())
    }

    /// Contributes a point (and a value) to a shared space.
    pub async fn contribute(
        &self,
        space: &str,
        key: &str,
        vector: Vec<f64>,
        value: serde_json::Value,
    ) -> Result<String, ClientError> {
        let args = p::Contribute {
            space: space.into(),
            key: key.into(),
            vector,
            value,
        };
        let r: p::IdArg = self.request(p::Request::Contribute(args)).await?;
        Ok(r.id)
    }

    /// The `k` contributions nearest to `vector`.
    pub async fn query_shared(
        &self,
        q: p::QueryShared,
    ) -> Result<Vec<p::WireSharedHit>, ClientError> {
        let r: p::SharedHits = self.request(p::Request::QueryShared(q)).await?;
        Ok(r.hits)
    }

    /// The weighted Fréchet mean of a shared space's contributions.
    pub async fn consensus(
        &self,
        space: &str,
        weights: Option<HashMap<String, f64>>,
    ) -> Result<p::WireConsensus, ClientError> {
        let args = p::ConsensusArgs {
            space: space.into(),
            weights,
        };
        self.request(p::Request::Consensus(args)).await
    }

    /// Registers the schema of this model's state.
    pub async fn register_state(&self, schema: serde_json::Value) -> Result<(), ClientError> {
        let args = p::RegisterState { schema };
        let _: p::Empty = self.request(p::Request::RegisterState(args)).await?;
        Ok(())
    }

    /// Replaces this model's state; its version now.
    pub async fn update_state(&self, state: serde_json::Value) -> Result<u64, ClientError> {
        let args = p::UpdateState { state };
        let r: p::StateVersion = self.request(p::Request::UpdateState(args)).await?;
        Ok(r.version)
    }

    /// A model's state, if it has one.
    pub async fn get_state(&self, model: &str) -> Result<Option<p::WireState>, ClientError> {
        let args = p::GetState {
            model: model.into(),
        };
        self.request(p::Request::GetState(args)).await
    }

    /// The models whose states are most similar to `state`.
    pub async fn find_similar_states(
        &self,
        state: serde_json::Value,
        k: usize,
    ) -> Result<Vec<p::WireState>, ClientError> {
        let args = p::SimilarStates { state, k };
        let r: p::States = self.request(p::Request::FindSimilarStates(args)).await?;
        Ok(r.states)
    }

    /// Stores a block owned by this model.
    pub async fn store_block(&self, b: p::StoreBlock) -> Result<p::WireBlock, ClientError> {
        self.request(p::Request::StoreBlock(b)).await
    }

    /// Block sections nearest in meaning to `text`.
    pub async fn query_blocks(
        &self,
        text: &str,
        k: usize,
    ) -> Result<Vec<p::WireBlockHit>, ClientError> {
        let args = p::QueryBlocks {
            text: text.into(),
            k,
        };
        let r: p::BlockHits = self.request(p::Request::QueryBlocks(args)).await?;
        Ok(r.hits)
    }

    /// A block by name, if this model may read it.
    pub async fn get_block(&self, name: &str) -> Result<Option<p::WireBlock>, ClientError> {
        self.request(p::Request::GetBlock(p::NameArg { name: name.into() }))
            .await
    }

    /// Changes a block's content and/or permissions.
    pub async fn update_block(&self, u: p::UpdateBlock) -> Result<p::WireBlock, ClientError> {
        self.request(p::Request::UpdateBlock(u)).await
    }

    /// Deletes a block; `false` when there was none.
    pub async fn delete_block(&self, name: &str) -> Result<bool, ClientError> {
        let r: p::Deleted = self
            .request(p::Request::DeleteBlock(p::NameArg { name: name.into() }))
            .await?;
        Ok(r.deleted)
    }

    /// The blocks this model may read (of one class).
    pub async fn list_blocks(&self, class: Option<&str>) -> Result<Vec<p::WireBlock>, ClientError> {
        let args = p::ListBlocks {
            class: class.map(Into::into),
        };
        let r: p::BlockList = self.request(p::Request::ListBlocks(args)).await?;
        Ok(r.blocks)
    }

    /// Says goodbye (the model is marked disconnected; its mailbox keeps
    /// its messages) and closes the connection.
    pub async fn close(&self) -> Result<(), ClientError> {
        let c = self.conn().await?;
        let r = self
            .call_on(&c, frame_of(p::Request::Bye(p::Empty {})))
            .await
            .map(|_| ());
        self.inner.closed.store(true, Ordering::SeqCst);
        c.alive.store(false, Ordering::SeqCst);
        *self.inner.conn.lock().await = None;
        r
    }
}

/// A request frame with the id the client picks.
/// How long a client following a group waits for a server's welcome.
const HELLO_WAIT: Duration = Duration::from_secs(5);

/// A failure after which a client following a group's primary tries
/// again: the connection lost or refused, no answer in time, the server
/// not (or no longer) the primary, a write not confirmed replicated, or
/// NATS not answering the server (a node lost, a leader being elected).
fn is_failover(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } | ClientError::ConnectionLost(_) | ClientError::Timeout(_) => {
            true
        }
        ClientError::Server(w) => {
            matches!(
                w.code.as_str(),
                p::codes::NOT_PRIMARY | "not_replicated" | "shutting_down"
            )
        }
        _ => false,
    }
}

/// The primary a `not_primary` answer names.
fn primary_named(e: &ClientError) -> Option<String> {
    match e {
        ClientError::Server(w) if w.code == p::codes::NOT_PRIMARY => w.primary.clone(),
        _ => None,
    }
}

fn frame_of(request: p::Request) -> impl FnOnce(u64) -> p::RequestFrame {
    move |id| p::RequestFrame { id, request }
}

/// Routes one frame from the server: an answer to its waiter, a push to the
/// deliveries. `Err`: the connection is over, and why.
fn route_frame(
    b: Bytes,
    w: &Waiters,
    pushes: &mpsc::UnboundedSender<p::WireDelivery>,
) -> Result<(), String> {
    #[derive(serde::Deserialize)]
    struct ErrorOnly {
        error: WireError,
    }
    let kind = match p::peek_frame(&b) {
        Some(k) => k,
        // Keys in another order than this server writes them.
        None => match p::decode::<FrameHead>(&b) {
            Ok(FrameHead { push: Some(_), .. }) => p::FrameKind::Push,
            Ok(FrameHead {
                id, error: Some(_), ..
            }) => p::FrameKind::Error(id),
            Ok(FrameHead { id: Some(id), .. }) => p::FrameKind::Ok(id),
            Ok(_) => return Err("a frame with no id".into()),
            Err(e) => return Err(format!("unreadable frame: {e}")),
        },
    };
    match kind {
        p::FrameKind::Ok(id) => answer(w, id, Ok(b)),
        p::FrameKind::Error(id) => {
            let error = p::decode::<ErrorOnly>(&b)
                .map_err(|e| format!("unreadable error: {e}"))?
                .error;
            match id {
                Some(id) => answer(w, id, Err(ClientError::Server(error))),
                None => tracing::warn!(%error, "the server could not read a request"),
            }
        }
        p::FrameKind::Push => match p::decode::<Push>(&b) {
            Ok(Push::Delivery { delivery }) => {
                let _ = pushes.send(delivery);
            }
            Ok(Push::Closing { code, reason }) => return Err(format!("{code}: {reason}")),
            Err(e) => return Err(format!("unreadable push: {e}")),
        },
    }
    Ok(())
}

fn answer(w: &Waiters, id: u64, r: Result<Bytes, ClientError>) {
    let waiter = w.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    if let Some(waiter) = waiter {
        let _ = waiter.send(r);
    }
}
