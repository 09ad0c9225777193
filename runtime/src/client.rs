//! The Rust client of the wire protocol: one connection to an HVS server
//! acting as one model, with pipelined requests (call from many tasks at
//! once), pushed deliveries, heartbeats, and reconnection.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hvs_runtime::ClientError> {
//! use hvs_runtime::{Client, ClientConfig};
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
        }
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
            self.call_on(&c, "subscribe", rmpv::Value::Nil).await?;
        }
        Ok(c)
    }

    async fn open(&self) -> Result<Conn, ClientError> {
        let cfg = &self.inner.config;
        let stream = TcpStream::connect(&cfg.addr)
            .await
            .map_err(|e| ClientError::Connect {
                addr: cfg.addr.clone(),
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
        let hello = p::Request {
            id: 0,
            op: "hello".into(),
            args: p::value(&p::Hello {
                versions: p::PROTOCOL_VERSIONS.to_vec(),
                contract: cfg.contract.clone(),
                token: cfg.token.clone(),
                client: Some(format!("hvs-runtime/{}", env!("CARGO_PKG_VERSION"))),
            })
            .map_err(ClientError::Server)?,
        };
        let bytes = p::encode(&hello).map_err(ClientError::Server)?;
        writer
            .send(Bytes::from(bytes))
            .await
            .map_err(|e| ClientError::ConnectionLost(e.to_string()))?;
        let welcome = match tokio::time::timeout(cfg.request_timeout, reader.next()).await {
            Err(_) => return Err(ClientError::Timeout(cfg.request_timeout)),
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
                let head: FrameHead = match p::decode(&b) {
                    Ok(h) => h,
                    Err(e) => break format!("unreadable frame: {e}"),
                };
                match head {
                    FrameHead { push: Some(_), .. } => match p::decode::<Push>(&b) {
                        Ok(Push::Delivery { delivery }) => {
                            let _ = pushes.send(delivery);
                        }
                        Ok(Push::Closing { code, reason }) => break format!("{code}: {reason}"),
                        Err(e) => break format!("unreadable push: {e}"),
                    },
                    FrameHead {
                        id: Some(id),
                        error: Some(error),
                        ..
                    } => answer(&w, id, Err(ClientError::Server(error))),
                    FrameHead {
                        id: None,
                        error: Some(error),
                        ..
                    } => tracing::warn!(%error, "the server could not read a request"),
                    FrameHead {
                        id: Some(id),
                        error: None,
                        ..
                    } => answer(&w, id, Ok(b.freeze())),
                    FrameHead { id: None, .. } => break "a frame with no id".to_string(),
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
                let ping = p::Request {
                    id: n,
                    op: "ping".into(),
                    args: rmpv::Value::Nil,
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

    async fn call_on(&self, c: &Conn, op: &str, args: rmpv::Value) -> Result<Bytes, ClientError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        c.waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let req = p::Request {
            id,
            op: op.into(),
            args,
        };
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

    /// Any operation by name, with arguments and answer of your types (see
    /// `docs/PROTOCOL.md`). The typed methods below are this.
    pub async fn call<A: Serialize, T: DeserializeOwned>(
        &self,
        op: &str,
        args: &A,
    ) -> Result<T, ClientError> {
        let args = p::value(args).map_err(ClientError::Server)?;
        let c = self.conn().await?;
        let frame = self.call_on(&c, op, args).await?;
        p::decode::<OkOnly<T>>(&frame)
            .map(|o| o.ok)
            .map_err(|e| ClientError::Protocol(format!("{op}: {e}")))
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
        let r: p::IdArg = self.call("send", &message).await?;
        Ok(r.id)
    }

    /// Sends many messages, all or none; returns their ids in order.
    pub async fn send_batch(
        &self,
        messages: Vec<p::WireOutgoing>,
    ) -> Result<Vec<String>, ClientError> {
        let r: p::Ids = self.call("send_batch", &p::SendBatch { messages }).await?;
        Ok(r.ids)
    }

    /// Broadcasts to every connected model or a namespace's members.
    pub async fn broadcast(&self, b: p::WireBroadcast) -> Result<BroadcastAnswer, ClientError> {
        self.call("broadcast", &b).await
    }

    /// Up to `max` waiting messages; ack each before its deadline.
    pub async fn receive(&self, max: usize) -> Result<Vec<p::WireDelivery>, ClientError> {
        #[derive(serde::Deserialize)]
        struct R {
            deliveries: Vec<p::WireDelivery>,
        }
        let r: R = self.call("receive", &p::Receive { max }).await?;
        Ok(r.deliveries)
    }

    /// Asks the server to push each message as it arrives; read them with
    /// [`next_delivery`](Self::next_delivery). Kept across reconnects.
    pub async fn subscribe(&self) -> Result<(), ClientError> {
        self.inner.subscribed.store(true, Ordering::SeqCst);
        let _: rmpv::Value = self.call("subscribe", &Empty {}).await?;
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
        #[derive(serde::Deserialize)]
        struct R {
            acked: Vec<String>,
        }
        let r: R = self.call("ack", &p::Ids { ids: ids.to_vec() }).await?;
        Ok(r.acked)
    }

    /// Creates a namespace this model owns.
    pub async fn create_namespace(
        &self,
        args: &p::CreateNamespace,
    ) -> Result<p::WireNamespace, ClientError> {
        self.call("create_namespace", args).await
    }

    /// Stores a vector.
    pub async fn store_vector(&self, v: &p::StoreVector) -> Result<p::WireVector, ClientError> {
        self.call("store_vector", v).await
    }

    /// The `k` nearest vectors of `namespace` to `vector`.
    pub async fn search(
        &self,
        namespace: &str,
        vector: Vec<f64>,
        k: usize,
    ) -> Result<Vec<p::WireHit>, ClientError> {
        self.search_with(&p::Search {
            namespace: namespace.into(),
            vector,
            k,
            offset: 0,
            filter: None,
            region: None,
            exact: false,
        })
        .await
    }

    /// A search with every option (offset, filter, region, exact).
    pub async fn search_with(&self, s: &p::Search) -> Result<Vec<p::WireHit>, ClientError> {
        #[derive(serde::Deserialize)]
        struct R {
            hits: Vec<p::WireHit>,
        }
        let r: R = self.call("search", s).await?;
        Ok(r.hits)
    }

    /// Joins a shared space.
    pub async fn join(&self, space: &str, capabilities: &[&str]) -> Result<(), ClientError> {
        let _: rmpv::Value = self
            .call(
                "join",
                &p::Join {
                    space: space.into(),
                    capabilities: capabilities.iter().map(|c| c.to_string()).collect(),
                },
            )
            .await?;
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
        let r: p::IdArg = self
            .call(
                "contribute",
                &p::Contribute {
                    space: space.into(),
                    key: key.into(),
                    vector,
                    value,
                },
            )
            .await?;
        Ok(r.id)
    }

    /// The weighted Fréchet mean of a shared space's contributions.
    pub async fn consensus(
        &self,
        space: &str,
        weights: Option<HashMap<String, f64>>,
    ) -> Result<p::WireConsensus, ClientError> {
        self.call(
            "consensus",
            &p::ConsensusArgs {
                space: space.into(),
                weights,
            },
        )
        .await
    }

    /// Server, storage and mailbox figures.
    pub async fn stats(&self) -> Result<p::WireStats, ClientError> {
        self.call("stats", &Empty {}).await
    }

    /// Round trip to the server.
    pub async fn ping(&self) -> Result<p::Pong, ClientError> {
        self.call("ping", &Empty {}).await
    }

    /// Says goodbye (the model is marked disconnected; its mailbox keeps
    /// its messages) and closes the connection.
    pub async fn close(&self) -> Result<(), ClientError> {
        let c = self.conn().await?;
        let r = self.call_on(&c, "bye", rmpv::Value::Nil).await.map(|_| ());
        self.inner.closed.store(true, Ordering::SeqCst);
        c.alive.store(false, Ordering::SeqCst);
        *self.inner.conn.lock().await = None;
        r
    }
}

/// `broadcast`'s answer.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct BroadcastAnswer {
    /// The message id.
    pub id: String,
    /// Who it was queued for.
    pub recipients: Vec<String>,
    /// Who refused it, with the code.
    pub refused: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Empty {}

fn answer(w: &Waiters, id: u64, r: Result<Bytes, ClientError>) {
    let waiter = w.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    if let Some(waiter) = waiter {
        let _ = waiter.send(r);
    }
}
