//! The TCP server: model processes connect, present their contract and a
//! token, and then drive their model over the wire protocol
//! ([`crate::protocol`], `docs/PROTOCOL.md`).
//!
//! One tokio task reads each connection and one writes it. Requests are
//! read ahead up to `max_in_flight` per connection (then the reader waits:
//! backpressure through TCP, never an unbounded buffer) and answered as
//! they finish, matched by id. A model that stays silent past its
//! contract's heartbeat interval plus timeout is disconnected (its mailbox
//! keeps its messages). [`Server::shutdown`] stops accepting, lets the
//! requests in flight finish, tells each client it is closing and closes
//! the runtime (which writes the index dump).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Notify, Semaphore, mpsc, watch};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tracing::{debug, info, warn};

use crate::auth::TokenStore;
use crate::cmd::{self, Ctx, Route};
use crate::metrics::Metrics;
use crate::protocol::{self as p, Push, ServerFrame, WireError, codes};
use crate::{Contract, ModelHandle, Runtime};
use hvs_storage::AuditAction;

/// How the server listens and what it allows.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where models connect (TCP).
    pub listen: SocketAddr,
    /// Where `GET /health` and `GET /metrics` are served (`None`: nowhere).
    pub admin: Option<SocketAddr>,
    /// The largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Connections served at once; more are refused with an error frame.
    pub max_connections: usize,
    /// Requests read ahead per connection before the server stops reading.
    pub max_in_flight: usize,
    /// Time allowed for the `hello` frame after connecting.
    pub handshake_timeout: Duration,
    /// Heartbeat interval for contracts that do not set one.
    pub default_heartbeat: Duration,
    /// Where contracts' relative file names (an `mlp` encoder's weights)
    /// are resolved.
    pub contracts_dir: std::path::PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7411)),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 7412))),
            max_frame_bytes: p::DEFAULT_MAX_FRAME,
            max_connections: 1024,
            max_in_flight: 256,
            handshake_timeout: Duration::from_secs(10),
            default_heartbeat: Duration::from_secs(30),
            contracts_dir: ".".into(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding a socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Without tokens the server only listens on loopback.
    #[error(
        "refusing to listen on {0} without authentication: create a token (`hvs token create`) or listen on 127.0.0.1"
    )]
    NoAuthOnPublicAddress(SocketAddr),
    /// A limit that cannot be served (zero, or past what the protocol or
    /// tokio's semaphores can count).
    #[error("invalid server setting: {0}")]
    InvalidConfig(String),
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] crate::Error),
}

/// The largest `max_in_flight` and `max_connections` accepted.
pub const MAX_LIMIT: usize = 1 << 20;

impl ServerConfig {
    /// Checks the limits: each at least 1; in-flight and connections at
    /// most [`MAX_LIMIT`]; frames at most `u32::MAX` bytes (the length
    /// prefix is 32 bits).
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |what: &str, v: usize, max: usize| {
            (v == 0 || v > max).then(|| {
                ServerError::InvalidConfig(format!("{what} is {v}; it must be 1 to {max}"))
            })
        };
        let frame_max = u32::MAX as usize;
        match bad("max_frame_bytes", self.max_frame_bytes, frame_max)
            .or_else(|| bad("max_connections", self.max_connections, MAX_LIMIT))
            .or_else(|| bad("max_in_flight", self.max_in_flight, MAX_LIMIT))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// What every connection task shares.
struct Shared {
    runtime: Arc<Runtime>,
    config: ServerConfig,
    tokens: Option<TokenStore>,
    metrics: Metrics,
    /// Live sessions by model: closing one makes room for a reconnect.
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    shutdown: watch::Receiver<bool>,
    connections: AtomicU64,
}

/// One model's live connection.
struct Session {
    /// Told to close (another connection claimed the model).
    replaced: Notify,
    /// Set once the session's connection has ended and its model is
    /// disconnected.
    gone: Notify,
    ended: std::sync::atomic::AtomicBool,
    /// The connection may run operators' operations (sync jobs, the
    /// feed's status): no tokens are configured, or its token covers
    /// every namespace (`*`).
    operator: bool,
    /// The server's role in its failover group when the session opened
    /// (`None`: in no group): a session opened on the primary closes when
    /// the server stops being primary, one opened on a mirror (read-only)
    /// when the role changes at all.
    role: Option<hvs_actors::Role>,
    /// Why the session's writes are refused: its model connected while the
    /// store refused writes, so its contract is not stored (`None`: it was
    /// stored, or needed no write).
    read_only: Option<String>,
}

/// A running server.
pub struct Server {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
    admin: Option<crate::admin::Admin>,
    tasks: Arc<Semaphore>,
}

/// A server's ports, bound before its runtime is opened: models' connections
/// wait in the listen queue (their hello is answered once [`Bound::serve`]
/// starts serving), and the admin port answers `starting` meanwhile.
pub struct Bound {
    listener: TcpListener,
    local_addr: SocketAddr,
    admin: Option<crate::admin::Admin>,
    started: Instant,
    config: ServerConfig,
    tokens: Option<TokenStore>,
}

impl Bound {
    /// Where models connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/health` and `/metrics` are served.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr())
    }

    /// Starts serving `runtime` on the bound ports (on the current tokio
    /// runtime): the connections that waited are accepted first.
    pub async fn serve(self, runtime: Runtime) -> Server {
        let Bound {
            listener,
            local_addr,
            admin,
            started,
            config,
            tokens,
        } = self;
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            runtime: Arc::new(runtime),
            tokens,
            metrics: Metrics::new(),
            sessions: Mutex::new(HashMap::new()),
            shutdown,
            connections: AtomicU64::new(0),
            config,
        });
        if let Some(a) = &admin {
            a.serve(crate::admin::Sources {
                runtime: shared.runtime.clone(),
                metrics: shared.metrics.clone(),
                handle: tokio::runtime::Handle::current(),
                listen: local_addr,
                started,
                auth: shared.tokens.is_some(),
            });
        }
        let admin_addr = admin.as_ref().map(|a| a.addr());
        // Connection tasks hold a permit each; shutdown waits for them all.
        let tasks = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
        let accept = tokio::spawn(accept_loop(listener, shared.clone(), tasks.clone()));
        info!(%local_addr, "serving");
        Server {
            shared,
            local_addr,
            admin_addr,
            stop,
            accept,
            admin,
            tasks,
        }
    }
}

impl Server {
    /// Binds the listener and the admin port without a runtime yet
    /// ([`Bound::serve`] starts serving one). `tokens`: the operator's
    /// tokens; without them only loopback addresses are allowed and any
    /// token is accepted.
    pub async fn bind(
        config: ServerConfig,
        tokens: Option<TokenStore>,
    ) -> Result<Bound, ServerError> {
        config.validate()?;
        if tokens.is_none() && !config.listen.ip().is_loopback() {
            return Err(ServerError::NoAuthOnPublicAddress(config.listen));
        }
        let started = Instant::now();
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let admin = match config.admin {
            Some(addr) => Some(
                crate::admin::Admin::bind(addr, local_addr, started)
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        info!(%local_addr, "listening");
        Ok(Bound {
            listener,
            local_addr,
            admin,
            started,
            config,
            tokens,
        })
    }

    /// Binds the listener (and the admin port) and starts serving `runtime`
    /// ([`Server::bind`], then [`Bound::serve`]).
    pub async fn start(
        runtime: Runtime,
        config: ServerConfig,
        tokens: Option<TokenStore>,
    ) -> Result<Server, ServerError> {
        Ok(Self::bind(config, tokens).await?.serve(runtime).await)
    }

    /// Where models connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/health` and `/metrics` are served.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The runtime served.
    pub fn runtime(&self) -> &Runtime {
        &self.shared.runtime
    }

    /// Stops accepting, lets every connection finish the requests it has
    /// read, tells each client it is closing, then closes the runtime
    /// (flushing storage and writing the index dump).
    pub async fn shutdown(self) -> crate::Result<()> {
        let _ = self.stop.send(true);
        self.accept.abort();
        let _ = self.accept.await;
        // Every connection task holds one permit; all of them back means
        // every connection has ended.
        let _all = self
            .tasks
            .acquire_many(Semaphore::MAX_PERMITS as u32)
            .await
            .map_err(|_| crate::Error::Stopped)?;
        drop(self.admin);
        // Tasks drop their handles before their permits; allow a moment
        // for any still unwinding.
        let mut shared = self.shared;
        for _ in 0..500 {
            match Arc::try_unwrap(shared) {
                Ok(Shared { runtime, .. }) => {
                    return match Arc::try_unwrap(runtime) {
                        Ok(rt) => rt.close().await,
                        Err(_) => Err(crate::Error::Stopped),
                    };
                }
                Err(s) => shared = s,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        warn!("shutdown: a task still holds the runtime; closing without the index dump");
        Err(crate::Error::Stopped)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tasks: Arc<Semaphore>) {
    let limit = shared.config.max_connections;
    let slots = Arc::new(Semaphore::new(limit));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: wait, go on.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(task) = tasks.clone().try_acquire_owned() else {
            continue;
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    shared.metrics.connection_opened();
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    serve(shared.clone(), stream, peer).await;
                    shared.connections.fetch_sub(1, Ordering::Relaxed);
                    shared.metrics.connection_closed();
                    // Shutdown unwraps `shared` once every permit is back.
                    drop(shared);
                    drop((slot, task));
                });
            }
            Err(_) => {
                shared.metrics.connection_refused();
                tokio::spawn(async move {
                    refuse(stream, limit).await;
                    drop(task);
                });
            }
        }
    }
}

/// Tells a connection past the limit why, then closes it.
async fn refuse(stream: TcpStream, limit: usize) {
    let mut w = FramedWrite::new(stream, LengthDelimitedCodec::new());
    let frame = ServerFrame::Error {
        id: None,
        error: WireError::new(
            codes::TOO_MANY_CONNECTIONS,
            format!("the server serves at most {limit} connections; try again later"),
        ),
    };
    if let Ok(bytes) = p::encode(&frame) {
        let _ = tokio::time::timeout(Duration::from_secs(1), w.send(Bytes::from(bytes))).await;
    }
}

fn frame(f: &ServerFrame) -> Bytes {
    match p::encode(f) {
        Ok(b) => Bytes::from(b),
        Err(e) => {
            // Only a value that cannot be encoded gets here; say so instead.
            let id = match f {
                ServerFrame::Ok { id, .. } => Some(*id),
                ServerFrame::Error { id, .. } => *id,
                ServerFrame::Push(_) => None,
            };
            Bytes::from(p::encode(&ServerFrame::Error { id, error: e }).unwrap_or_default())
        }
    }
}

fn error_frame(id: Option<u64>, error: WireError) -> Bytes {
    frame(&ServerFrame::Error { id, error })
}

async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(shared.config.max_frame_bytes)
        .new_codec();
    let (rd, wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, codec.clone());
    let mut writer = FramedWrite::new(wr, codec);
    // Answers and pushes go through a bounded queue to the writer task: a
    // client that stops reading stalls its own requests, nobody else's.
    let depth = shared.config.max_in_flight + 64;
    let (tx, mut rx) = mpsc::channel::<Bytes>(depth);
    let writer_task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if writer.feed(first).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if writer.feed(more).await.is_err() {
                    return;
                }
            }
            if SinkExt::<Bytes>::flush(&mut writer).await.is_err() {
                return;
            }
        }
        let _ = SinkExt::<Bytes>::close(&mut writer).await;
    });

    match handshake(&shared, &mut reader, &tx).await {
        Ok((model, session, heartbeat)) => {
            info!(%peer, model = model.id(), "model connected");
            let reason = session_loop(&shared, &mut reader, &tx, &model, &session, heartbeat).await;
            info!(%peer, model = model.id(), reason = reason.0, "model disconnected");
            let _ = model.disconnect().await;
            {
                let mut sessions = shared.sessions.lock().await;
                if sessions
                    .get(model.id())
                    .is_some_and(|s| Arc::ptr_eq(s, &session))
                {
                    sessions.remove(model.id());
                }
            }
            session.ended.store(true, Ordering::SeqCst);
            session.gone.notify_waiters();
            if let Some((code, text)) = reason.1 {
                let _ = tx
                    .send(frame(&ServerFrame::Push(Push::Closing {
                        code: code.into(),
                        reason: text,
                    })))
                    .await;
            }
        }
        Err((id, e)) => {
            debug!(%peer, code = %e.code, "handshake refused");
            shared.metrics.error(&e.code);
            let _ = tx.send(error_frame(id, e)).await;
        }
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer_task).await;
}

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, LengthDelimitedCodec>;

/// Reads `hello`, checks the version, the token and the contract, and
/// connects the model. Answers `hello` itself on success; a refusal carries
/// hello's id when it could be read.
async fn handshake(
    shared: &Arc<Shared>,
    reader: &mut Reader,
    tx: &mpsc::Sender<Bytes>,
) -> Result<(ModelHandle, Arc<Session>, Duration), (Option<u64>, WireError)> {
    let mut id = None;
    greet(shared, reader, tx, &mut id)
        .await
        .map_err(|e| (id, e))
}

async fn greet(
    shared: &Arc<Shared>,
    reader: &mut Reader,
    tx: &mpsc::Sender<Bytes>,
    hello_id: &mut Option<u64>,
) -> Result<(ModelHandle, Arc<Session>, Duration), WireError> {
    let first = match tokio::time::timeout(shared.config.handshake_timeout, reader.next()).await {
        Err(_) => {
            return Err(WireError::new(
                codes::HANDSHAKE_REQUIRED,
                "no hello within the handshake timeout",
            ));
        }
        Ok(None) => return Err(WireError::new(codes::BAD_FRAME, "closed before hello")),
        Ok(Some(Err(e))) => return Err(read_error(&e)),
        Ok(Some(Ok(bytes))) => bytes,
    };
    let frame = p::decode_request(&first).map_err(|(id, e)| {
        *hello_id = id;
        e
    })?;
    *hello_id = Some(frame.id);
    let id = frame.id;
    let p::Request::Hello(hello) = frame.request else {
        return Err(WireError::new(
            codes::HANDSHAKE_REQUIRED,
            format!(
                "the first request must be hello, not {:?}",
                frame.request.op()
            ),
        ));
    };
    let Some(version) = hello
        .versions
        .iter()
        .copied()
        .filter(|v| p::PROTOCOL_VERSIONS.contains(v))
        .max()
    else {
        return Err(WireError::new(
            codes::UNSUPPORTED_VERSION,
            format!(
                "this server speaks protocol versions {:?}; the client offered {:?}",
                p::PROTOCOL_VERSIONS,
                hello.versions
            ),
        ));
    };
    let contract = Contract::from_json(&hello.contract)
        .map_err(|e| WireError::new(codes::INVALID_CONTRACT, e.to_string()))?;
    let mut operator = true;
    if let Some(tokens) = &shared.tokens {
        let token = hello.token.as_deref().unwrap_or("");
        let admitted = tokens.admit(token, &contract);
        if let Ok(entry) = &admitted {
            operator = entry.namespaces.iter().any(|g| g == "*");
        }
        if let Err(e) = admitted {
            let err = WireError::new(e.code(), e.to_string());
            audit(
                shared,
                &contract.model.id,
                AuditAction::Connect,
                "connect",
                &err,
            )
            .await;
            return Err(err);
        }
    }
    let model_id = contract.model.id.clone();
    let (heartbeat, timeout) = match &contract.health_check {
        Some(hc) => (
            Duration::from_secs(hc.interval_seconds.max(1)),
            Duration::from_secs(hc.timeout_seconds.max(1)),
        ),
        None => (
            shared.config.default_heartbeat,
            shared.config.default_heartbeat,
        ),
    };
    let role = served_role(shared, hello.mirror_reads)?;
    let model = connect(shared, contract).await?;
    let read_only = model.read_only().map(str::to_string);
    let session = Arc::new(Session {
        replaced: Notify::new(),
        gone: Notify::new(),
        ended: std::sync::atomic::AtomicBool::new(false),
        operator,
        role: role.clone(),
        read_only: read_only.clone(),
    });
    shared
        .sessions
        .lock()
        .await
        .insert(model_id.clone(), session.clone());
    let welcome = p::Welcome {
        version,
        server: format!("hvs/{}", env!("CARGO_PKG_VERSION")),
        model: model_id,
        namespace: model.namespace().to_string(),
        heartbeat_interval_ms: heartbeat.as_millis() as u64,
        heartbeat_timeout_ms: (heartbeat + timeout).as_millis() as u64,
        max_frame_bytes: shared.config.max_frame_bytes as u64,
        max_in_flight: shared.config.max_in_flight as u64,
        role: mirror_of(role.as_ref()).map(|_| "mirror".to_string()),
        primary: mirror_of(role.as_ref()).flatten(),
        read_only: read_only.is_some() || mirror_of(role.as_ref()).is_some(),
        read_only_reason: read_only
            .or_else(|| mirror_of(role.as_ref()).map(|_| MIRROR_READS.to_string())),
    };
    let _ = tx
        .send(Bytes::from(p::ok_frame(id, &p::encode(&welcome)?)))
        .await;
    Ok((model, session, heartbeat + timeout))
}

/// The role a session is opened under (`None`: in no group). A member
/// that is not the primary serves a session only as a mirror, and only to
/// a client that asked for reads from a mirror (`Hello::mirror_reads`);
/// others are refused with `not_primary`, naming the primary, as before.
/// (The connect that follows writes nothing on a mirror, or is refused by
/// its fence with `not_primary`.)
fn served_role(shared: &Shared, mirror_reads: bool) -> Result<Option<hvs_actors::Role>, WireError> {
    use hvs_actors::Role;
    let role = shared.runtime.role();
    let primary = match &role {
        None | Some(Role::Primary { .. }) => return Ok(role),
        Some(Role::Mirror { .. }) if mirror_reads => return Ok(role),
        Some(Role::Mirror { address, .. }) => address.clone(),
        Some(_) => None,
    };
    let mut e = WireError::new(
        codes::NOT_PRIMARY,
        "this server is not its group's primary: connect to the primary (or ask for reads from a mirror)",
    );
    e.primary = primary;
    Err(e)
}

/// Why a session on a mirror is read-only, as its welcome says.
const MIRROR_READS: &str =
    "this server is a mirror of its failover group: writes go to the primary";

/// On a mirror, where its primary is (`None`: not a mirror).
fn mirror_of(role: Option<&hvs_actors::Role>) -> Option<Option<String>> {
    match role {
        Some(hvs_actors::Role::Mirror { address, .. }) => Some(address.clone()),
        _ => None,
    }
}

/// Connects the contract's model, closing an older connection of the same
/// model first (a client that reconnects before the server noticed the
/// old connection die).
async fn connect(shared: &Arc<Shared>, contract: Contract) -> Result<ModelHandle, WireError> {
    let dir = shared.config.contracts_dir.clone();
    // A session that just ended (closed by the server: shutting down, not
    // the primary any more) may not have disconnected its model yet: a
    // client reconnecting at once waits for that, up to about a second.
    let (mut ending, mut takeovers) = (0, 0);
    while takeovers < 2 {
        match shared
            .runtime
            .connect_model_in(contract.clone(), &dir)
            .await
        {
            Ok(m) => return Ok(m),
            Err(crate::Error::AlreadyConnected(id)) => {
                let old = shared.sessions.lock().await.get(&id).cloned();
                let Some(old) = old else {
                    if ending < 20 {
                        ending += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    return Err(cmd::wire_error(crate::Error::AlreadyConnected(id)));
                };
                takeovers += 1;
                let gone = old.gone.notified();
                old.replaced.notify_waiters();
                if !old.ended.load(Ordering::SeqCst) {
                    let _ = tokio::time::timeout(Duration::from_secs(5), gone).await;
                }
            }
            Err(e) => return Err(cmd::wire_error(e)),
        }
    }
    Err(WireError::new(
        "already_connected",
        format!(
            "model {:?} is connected on another connection",
            contract.model.id
        ),
    ))
}

fn read_error(e: &std::io::Error) -> WireError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        WireError::new(codes::FRAME_TOO_LARGE, e.to_string())
    } else {
        WireError::new(codes::BAD_FRAME, e.to_string())
    }
}

/// Serves requests until the client leaves, goes silent, is replaced or
/// the server shuts down. Returns why, and what to tell the client.
async fn session_loop(
    shared: &Arc<Shared>,
    reader: &mut Reader,
    tx: &mpsc::Sender<Bytes>,
    model: &ModelHandle,
    session: &Arc<Session>,
    silence: Duration,
) -> (&'static str, Option<(&'static str, String)>) {
    let in_flight = Arc::new(Semaphore::new(shared.config.max_in_flight));
    let mut shutdown = shared.shutdown.clone();
    let mut push: Option<tokio::task::JoinHandle<()>> = None;
    let replaced = session.replaced.notified();
    tokio::pin!(replaced);
    let mut role = shared.runtime.watch_role();
    // A frame read ahead while gathering a batch of sends, to be served next.
    let mut carry: Option<Result<BytesMut, std::io::Error>> = None;
    let end = loop {
        let next = match carry.take() {
            Some(item) => Ok(Some(item)),
            None => tokio::select! {
                r = tokio::time::timeout(silence, reader.next()) => r,
                _ = &mut replaced => break ("replaced", Some((codes::REPLACED, "another connection claimed this model".to_string()))),
                _ = role_left(&mut role, session.role.as_ref()) => break ("not primary", Some((codes::NOT_PRIMARY, "this server is not its group's primary (any more), or no longer the mirror this session was opened on: reconnect to the primary".to_string()))),
                _ = shutdown.changed() => break ("shutdown", Some((codes::SHUTTING_DOWN, "the server is shutting down".to_string()))),
            },
        };
        let bytes = match next {
            Err(_) => {
                break (
                    "heartbeat timeout",
                    Some((
                        codes::HEARTBEAT_TIMEOUT,
                        format!("nothing heard for {} ms", silence.as_millis()),
                    )),
                );
            }
            Ok(None) => break ("closed by client", None),
            Ok(Some(Err(e))) => {
                let err = read_error(&e);
                shared.metrics.error(&err.code);
                let _ = tx.send(error_frame(None, err)).await;
                break ("unreadable frame", None);
            }
            Ok(Some(Ok(b))) => b,
        };
        let (id, request) = match p::decode_request(&bytes) {
            Ok(f) => (f.id, f.request),
            Err((id, e)) => {
                // The frame's length was right, so the next frame starts
                // where it should: answer and go on.
                if tx.send(respond(shared, id, "?", Err(e))).await.is_err() {
                    break ("writer gone", None);
                }
                continue;
            }
        };
        let op = request.op();
        if let Some(reason) = &session.read_only
            && (op == "send" || WRITES.contains(&op))
        {
            let e = read_only_refusal(reason);
            if tx
                .send(respond(shared, Some(id), op, Err(e)))
                .await
                .is_err()
            {
                break ("writer gone", None);
            }
            continue;
        }
        let ctx = Ctx {
            runtime: &shared.runtime,
            model,
            connections: shared.connections.load(Ordering::Relaxed),
            operator: session.operator,
        };
        let pending = match cmd::route(&ctx, request) {
            Route::Run(pending) => pending,
            Route::Send(first) => {
                let batch = gather_sends(reader, &mut carry, id, first, shared);
                let Ok(permit) = in_flight
                    .clone()
                    .acquire_many_owned(batch.len() as u32)
                    .await
                else {
                    break ("stopped", None);
                };
                serve_sends(shared, tx, model, batch, permit).await;
                continue;
            }
            Route::Hello => {
                let e = WireError::new(codes::ALREADY_GREETED, "hello was already sent");
                let _ = tx.send(respond(shared, Some(id), op, Err(e))).await;
                continue;
            }
            Route::Bye => {
                let _ = model.disconnect().await;
                let _ = tx.send(empty_ok(shared, id, op)).await;
                break ("bye", None);
            }
            Route::Subscribe => {
                if let Some(old) = push.take() {
                    old.abort();
                }
                // Mailboxes live on the primary: a mirror's read session
                // has none to push.
                let answer = match model.check_mail_served() {
                    Err(e) => Err(cmd::wire_error(e)),
                    Ok(()) => model.deliveries().await.map_err(cmd::wire_error),
                };
                let answer = match answer {
                    Ok(stream) => {
                        let metrics = shared.metrics.clone();
                        push = Some(tokio::spawn(push_loop(stream, tx.clone(), metrics)));
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                let reply = match answer {
                    Ok(()) => empty_ok(shared, id, op),
                    Err(e) => respond(shared, Some(id), op, Err(e)),
                };
                let _ = tx.send(reply).await;
                continue;
            }
            Route::Unsubscribe => {
                if let Some(old) = push.take() {
                    old.abort();
                }
                let _ = tx.send(empty_ok(shared, id, op)).await;
                continue;
            }
        };
        // Read no further than max_in_flight requests ahead.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break ("stopped", None);
        };
        let (tx, shared2) = (tx.clone(), shared.clone());
        let model_id = model.id().to_string();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut answer = pending.await;
            if answer.is_ok() && WRITES.contains(&op) {
                answer = confirm(&shared2).await.and(answer);
            }
            if op == "search" {
                shared2.metrics.search(started.elapsed());
            }
            if let Err(e) = &answer
                && REFUSALS_AUDITED.contains(&e.code.as_str())
            {
                audit(&shared2, &model_id, AuditAction::Request, op, e).await;
            }
            let _ = tx.send(respond(&shared2, Some(id), op, answer)).await;
            // `shared` before the permit: shutdown unwraps it once every
            // permit is back.
            drop(shared2);
            drop(permit);
        });
    };
    if let Some(p) = push.take() {
        p.abort();
    }
    // Let the requests already read finish before the connection closes.
    let _ = in_flight
        .acquire_many(shared.config.max_in_flight as u32)
        .await;
    end
}

/// The most pipelined `send` requests served as one batch.
const SEND_BATCH: usize = 512;

/// Pipelined sends that have already arrived behind the first go to the
/// actor as one batch: one actor message and one storage write for all of
/// them, each still accepted or refused on its own. The first frame that is
/// not a send is carried over to be served next (read again then: once per
/// batch, not per request).
fn gather_sends(
    reader: &mut Reader,
    carry: &mut Option<Result<BytesMut, std::io::Error>>,
    id: u64,
    first: p::WireOutgoing,
    shared: &Shared,
) -> Vec<(u64, p::WireOutgoing)> {
    let mut batch = vec![(id, first)];
    while batch.len() < SEND_BATCH.min(shared.config.max_in_flight) {
        match reader.next().now_or_never() {
            Some(Some(Ok(b))) => match p::decode_request(&b) {
                Ok(p::RequestFrame {
                    id,
                    request: p::Request::Send(m),
                }) => batch.push((id, m)),
                _ => {
                    *carry = Some(Ok(b));
                    break;
                }
            },
            Some(Some(Err(e))) => {
                *carry = Some(Err(e));
                break;
            }
            _ => break,
        }
    }
    batch
}

/// Sends a batch of pipelined sends and answers each, in order, when the
/// batch is stored; the permit holds their places in flight until then.
async fn serve_sends(
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<Bytes>,
    model: &ModelHandle,
    batch: Vec<(u64, p::WireOutgoing)>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut ids = Vec::with_capacity(batch.len());
    let mut messages = Vec::with_capacity(batch.len());
    for (id, m) in batch {
        match cmd::addressed(m) {
            Ok(m) => {
                ids.push(id);
                messages.push(m);
            }
            Err(cmd::Refusal(e)) => {
                let _ = tx.send(respond(shared, Some(id), "send", Err(e))).await;
            }
        }
    }
    let sent = model.send_each(messages);
    let (tx, shared) = (tx.clone(), shared.clone());
    tokio::spawn(async move {
        let mut answers = cmd::send_answers(sent.await, ids.len());
        if answers.iter().any(Result::is_ok)
            && let Err(e) = confirm(&shared).await
        {
            for a in answers.iter_mut().filter(|a| a.is_ok()) {
                *a = Err(e.clone());
            }
        }
        for (id, answer) in ids.into_iter().zip(answers) {
            let reply = answer.and_then(|ok| {
                Ok(cmd::Reply {
                    body: p::encode(&ok)?,
                    counts: cmd::Counts {
                        sent: 1,
                        delivered: 0,
                    },
                })
            });
            if tx
                .send(respond(&shared, Some(id), "send", reply))
                .await
                .is_err()
            {
                break;
            }
        }
        drop(shared);
        drop(permit);
    });
}

/// Resolves once this server left the role a session was `opened` under:
/// for a session opened on the primary, once it is not the primary; for
/// one opened on a mirror, once its role changed at all (a promoted mirror
/// replaces its model actors). Never outside a group.
async fn role_left(
    role: &mut Option<tokio::sync::watch::Receiver<hvs_actors::Role>>,
    opened: Option<&hvs_actors::Role>,
) {
    match (role, opened) {
        (Some(r), Some(opened @ hvs_actors::Role::Mirror { .. })) => {
            let _ = r.wait_for(|r| r != opened).await;
        }
        (Some(r), _) => {
            let _ = r
                .wait_for(|r| !matches!(r, hvs_actors::Role::Primary { .. }))
                .await;
        }
        (None, _) => std::future::pending().await,
    }
}

/// The operations that write: answered only once their write is
/// replicated as the cluster's durability level says (`confirm`); with
/// `send`, refused in a read-only session (`read_only_refusal`).
const WRITES: &[&str] = &[
    "send_batch",
    "broadcast",
    "create_namespace",
    "delete_namespace",
    "grant_access",
    "join",
    "store_vector",
    "batch_store_vectors",
    "update_vector",
    "delete_vector",
    "delete_vectors",
    "delete_by_filter",
    "contribute",
    "register_state",
    "update_state",
    "store_block",
    "update_block",
    "delete_block",
];

/// The answer to a write in a session whose model connected read-only
/// (`Session::read_only`): `write_failed`, as the store's own refusals,
/// for the session's whole life, even once the store takes writes again
/// (its contract is not stored until it connects again).
fn read_only_refusal(reason: &str) -> WireError {
    WireError::new(
        "write_failed",
        format!(
            "this session is read-only: its model connected while the store refused writes \
             ({reason}), so its contract is not stored; connect again to write"
        ),
    )
}

/// Waits for the replication of every write committed so far
/// (`replicated`, `quorum`; at once otherwise).
async fn confirm(shared: &Shared) -> Result<(), WireError> {
    shared
        .runtime
        .confirm_replicated()
        .await
        .map_err(cmd::wire_error)
}

/// Refusals written to the audit log here: a model reaching for what its
/// contract or a namespace's access list does not allow. (Storage audits
/// refused block reads and writes itself.)
const REFUSALS_AUDITED: &[&str] = &["permission_denied"];

/// Records a refused attempt in the audit log (a failure to record is
/// logged, not answered: the refusal stands either way).
async fn audit(shared: &Shared, model: &str, action: AuditAction, what: &str, e: &WireError) {
    let store = shared.runtime.storage().clone();
    let (model, what, reason) = (model.to_string(), what.to_string(), e.to_string());
    let r =
        tokio::task::spawn_blocking(move || store.audit_refusal(&model, action, &what, &reason))
            .await;
    if !matches!(r, Ok(Ok(()))) {
        warn!("could not record a refusal in the audit log");
    }
}

/// The frame answering request `id`, counted in the metrics (requests by
/// operation, errors by code, messages sent and delivered).
fn respond(
    shared: &Shared,
    id: Option<u64>,
    op: &str,
    answer: Result<cmd::Reply, WireError>,
) -> Bytes {
    match answer {
        Ok(reply) => {
            shared.metrics.request(op);
            shared.metrics.sent(reply.counts.sent);
            shared.metrics.delivered(reply.counts.delivered);
            match id {
                Some(id) => Bytes::from(p::ok_frame(id, &reply.body)),
                None => error_frame(
                    None,
                    WireError::new(codes::INTERNAL, "an answer without id"),
                ),
            }
        }
        Err(e) => {
            if id.is_some() {
                shared.metrics.request(op);
            }
            shared.metrics.error(&e.code);
            error_frame(id, e)
        }
    }
}

/// `{}` answering request `id`.
fn empty_ok(shared: &Shared, id: u64, op: &str) -> Bytes {
    let body = p::encode(&p::Empty {}).unwrap_or_else(|_| vec![0x80]);
    respond(
        shared,
        Some(id),
        op,
        Ok(cmd::Reply {
            body,
            counts: cmd::Counts::default(),
        }),
    )
}

/// Forwards pushed deliveries to the writer; stops when the stream ends or
/// the connection's queue is gone. A client that stops reading fills its
/// queue and this waits: undelivered messages stay in the mailbox.
async fn push_loop(mut stream: crate::DeliveryStream, tx: mpsc::Sender<Bytes>, metrics: Metrics) {
    while let Some(d) = stream.next().await {
        let f = match cmd::delivery_push(&d) {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => error_frame(None, e),
        };
        if tx.send(f).await.is_err() {
            return;
        }
        metrics.delivered(1);
    }
}
