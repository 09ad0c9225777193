//! Crash under load, over the network: `hvs serve` at `buffered` durability
//! is killed with SIGKILL at random moments while clients send messages,
//! store vectors and store blocks over TCP, and restarted on the same data
//! directory and port each time; the clients reconnect and carry on. Then:
//! every send answered `ok` is delivered (at least once, duplicates under the
//! same id), every vector and block answered `ok` is there, the server stops
//! cleanly, and `hvs inspect` finds the index consistent with storage.
//!
//! `HVS_SERVER_CRASH_ROUNDS` sets the number of kills (3 by default, for CI;
//! 20 for the full run), `HVS_SERVER_CRASH_SEED` the random seed.
//!
//! Each restart prints how long the server took to listen, to answer a new
//! client's hello, and to answer that client's first search (figures, not
//! assertions: `hvs bench restart` measures restarts at scale).
//!
//! A second test starts the server with graph checkpoints every second and
//! finds one written while it runs, then SIGKILLs it and finds every vector
//! again.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hvs::geometry::{Hyperboloid, Manifold};
use hvs::runtime::protocol as p;
use hvs::runtime::{Client, ClientConfig, ClientError};
use hvs::storage::BlockContent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Points live on H^DIM.
const DIM: usize = 2;
const SENDERS: usize = 3;
/// Concurrent send loops per sender (its requests in flight at once, with
/// the vector and block loops).
const SEND_LOOPS: usize = 3;
/// One receiver pulls (`receive` + `ack`), the other is pushed to
/// (`subscribe` + `next_delivery` + `ack`).
const PULL: &str = "sink-pull";
const PUSH: &str = "sink-push";
/// The model that measures each restart's first answers (it searches its
/// own, empty namespace: the others are private to their models).
const PROBE: &str = "probe";

/// The bench's contract (`src/bench.rs`), on H^DIM, with a visibility
/// timeout short enough that a lost push comes back well within the drain.
fn contract(id: &str) -> String {
    json!({
        "contract_version": "1.0.0",
        "model": {"id": id, "name": id, "version": "1", "type": "bench", "capabilities": []},
        "hvs_binding": {"hvs_id": "crash", "region": "crash", "namespace": id,
                        "geometry": "hyperboloid", "dimension": DIM},
        "vector_spec": {"input_dimension": DIM, "output_dimension": DIM,
                        "encoding": "geometric", "encoder": {"type": "identity"}},
        "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
            "max_message_size_bytes": 1 << 20, "timeout_ms": 10_000,
            "retry": {"max_attempts": 100, "backoff_ms": [10]}},
        "permissions": {"read_namespaces": ["*"], "write_namespaces": [id],
                        "broadcast": true, "query_other_models": true},
        "resource_limits": {"max_vectors_per_second": 1_000_000_000u64,
                            "max_storage_mb": 1_000_000,
                            "max_queries_per_second": 1_000_000_000u64}
    })
    .to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server process, started again and again on one data directory and
/// one pair of ports.
struct Server {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    admin: u16,
    child: Option<Child>,
    starts: usize,
    /// When the running server was spawned.
    spawned: Option<Instant>,
    /// Flags added to every start.
    extra: Vec<String>,
}

impl Server {
    /// A server on fresh loopback ports, keeping its data in `dir/data`
    /// and its output in `dir`; `extra` goes on its command line.
    fn new(dir: &Path, extra: Vec<String>) -> Self {
        Server {
            dir: dir.to_path_buf(),
            data: dir.join("data"),
            port: free_port(),
            admin: free_port(),
            child: None,
            starts: 0,
            spawned: None,
            extra,
        }
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        let n = self.starts;
        self.starts += 1;
        let out = std::fs::File::create(self.dir.join(format!("server-{n}.out"))).unwrap();
        let err = std::fs::File::create(self.dir.join(format!("server-{n}.err"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hvs"))
            .current_dir(&self.dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--admin", &format!("127.0.0.1:{}", self.admin)])
            .args(["--data", self.data.to_str().unwrap()])
            .args(["--durability", "buffered"])
            .args(&self.extra)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.spawned = Some(Instant::now());
    }

    /// What start number `n` wrote to stderr.
    fn stderr_of(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("server-{n}.err"))).unwrap_or_default()
    }

    /// Starts the server and waits until it listens. It must: a data
    /// directory left unopenable by a kill fails here.
    fn start(&mut self) -> Duration {
        self.spawn();
        let began = self.spawned.expect("just spawned");
        let n = self.starts - 1;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "start {n} of the server exited with {status} before listening; \
                     the data directory did not open. Its stderr:\n{}",
                    self.stderr_of(n)
                );
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return began.elapsed();
            }
            assert!(
                began.elapsed() < Duration::from_secs(180),
                "start {n} of the server is not listening after 180 s; its stderr:\n{}",
                self.stderr_of(n)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, then reap it.
    fn kill9(&mut self) {
        let mut child = self.child.take().expect("a running server");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, and the exit status.
    fn term(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("a running server");
        let killed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        child.wait().unwrap()
    }
}

impl Server {
    /// Starts the server, then polls until a new client of `model` is
    /// welcomed and its first search is answered. Not from an async task:
    /// it blocks on the test's runtime.
    fn start_and_probe(&mut self, model: &str) -> StartTimes {
        let listen = self.start();
        let spawned = self.spawned.expect("just spawned");
        let addr = format!("127.0.0.1:{}", self.port);
        let (hello, first_search) = tokio::runtime::Handle::current().block_on(first_answers(
            addr,
            model.to_string(),
            spawned,
        ));
        StartTimes {
            listen,
            hello,
            first_search,
        }
    }
}

/// What one start took, from the spawn: until the server listened, until a
/// new client's hello was answered, until its first search was.
#[derive(Debug, Clone, Copy)]
struct StartTimes {
    listen: Duration,
    hello: Duration,
    first_search: Duration,
}

/// Polls until a new client of `model` is welcomed and its first search
/// (of its own namespace) is answered: the times since `spawned`. A server
/// that listens but answers neither within 180 s fails the test, and so
/// does an error other than a refused or lost connection.
async fn first_answers(addr: String, model: String, spawned: Instant) -> (Duration, Duration) {
    let origin = Hyperboloid::new(DIM, 1.0).unwrap().origin();
    loop {
        let attempt = async {
            let c = Client::connect(ClientConfig::new(addr.as_str(), contract(&model))).await?;
            let hello = spawned.elapsed();
            c.search(&model, origin.clone(), 10).await?;
            let first_search = spawned.elapsed();
            let _ = c.close().await;
            Ok::<_, ClientError>((hello, first_search))
        };
        match attempt.await {
            Ok(times) => return times,
            Err(e) => assert!(
                matches!(e.code(), "connect_failed" | "connection_lost")
                    && spawned.elapsed() < Duration::from_secs(180),
                "no hello and search answered by the listening server: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A send answered `ok`.
#[derive(Debug, Clone)]
struct Sent {
    from: String,
    to: String,
    /// Server kills seen when the answer came.
    epoch: usize,
}

/// A vector answered `ok`.
#[derive(Debug, Clone)]
struct Stored {
    namespace: String,
    id: String,
    point: Vec<f64>,
    epoch: usize,
}

#[derive(Default)]
struct Log {
    sent: HashMap<String, Sent>,
    vectors: Vec<Stored>,
    blocks: Vec<(String, String, usize)>,
    /// Ids answered twice: a bug of its own.
    reused_ids: Vec<String>,
    /// Errors other than a lost or refused connection.
    unexpected: Vec<String>,
}

struct Shared {
    log: Mutex<Log>,
    /// Message id → how many times it was delivered.
    received: Mutex<HashMap<String, u32>>,
    /// How many times the server was killed so far.
    epoch: AtomicUsize,
    stop_load: AtomicBool,
    stop_receivers: AtomicBool,
    /// Calls that failed because the server was away (their outcome unknown
    /// when the connection dropped before the answer).
    transient: AtomicU64,
    /// Of those, calls that waited for the whole request timeout.
    timeouts: AtomicU64,
    unknown_sends: AtomicU64,
}

impl Shared {
    fn epoch(&self) -> usize {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Notes a failed call; true when it is the server being away, which is
    /// expected here.
    fn failed(&self, what: &str, e: &ClientError) -> bool {
        match e.code() {
            "connection_lost" | "connect_failed" | "timeout" | "shutting_down" => {
                self.transient.fetch_add(1, Ordering::Relaxed);
                if e.code() == "timeout" {
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            _ => {
                let note = format!("{what} at epoch {}: {} ({e})", self.epoch(), e.code());
                self.log.lock().unwrap().unexpected.push(note);
                false
            }
        }
    }

    fn record_deliveries(&self, ds: &[p::WireDelivery]) {
        let mut r = self.received.lock().unwrap();
        for d in ds {
            *r.entry(d.message.id.clone()).or_insert(0) += 1;
        }
    }
}

/// The pause after a call that failed because the server was away.
const BACKOFF: Duration = Duration::from_millis(20);

fn random_point(h: &Hyperboloid, rng: &mut StdRng) -> Vec<f64> {
    let v: Vec<f64> = (0..DIM).map(|_| rng.random_range(-2.0..2.0)).collect();
    h.exp0(&v).unwrap()
}

async fn connect(addr: &str, id: &str) -> Client {
    let mut config = ClientConfig::new(addr, contract(id));
    config.request_timeout = Duration::from_secs(20);
    Client::connect(config).await.unwrap()
}

async fn send_loop(c: Client, me: String, loop_no: usize, shared: Arc<Shared>, seed: u64) {
    let h = Hyperboloid::new(DIM, 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while !shared.stop_load.load(Ordering::SeqCst) {
        let to = if rng.random_bool(0.5) { PULL } else { PUSH };
        let message = p::WireOutgoing {
            to: to.into(),
            payload: format!("{me}/{loop_no}/{n}").into_bytes(),
            vector: Some(random_point(&h, &mut rng)),
            ..p::WireOutgoing::default()
        };
        n += 1;
        match c.send_message(message).await {
            Ok(id) => {
                let sent = Sent {
                    from: me.clone(),
                    to: to.into(),
                    epoch: shared.epoch(),
                };
                let mut log = shared.log.lock().unwrap();
                if log.sent.insert(id.clone(), sent).is_some() {
                    log.reused_ids.push(id);
                }
            }
            Err(e) => {
                if e.code() == "connection_lost" || e.code() == "timeout" {
                    shared.unknown_sends.fetch_add(1, Ordering::Relaxed);
                }
                shared.failed("send", &e);
                tokio::time::sleep(BACKOFF).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..=5))).await;
    }
}

async fn vector_loop(c: Client, me: String, shared: Arc<Shared>, seed: u64) {
    let h = Hyperboloid::new(DIM, 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    while !shared.stop_load.load(Ordering::SeqCst) {
        let point = random_point(&h, &mut rng);
        let v = p::StoreVector {
            namespace: me.clone(),
            vector: point.clone(),
            region: None,
            metadata: [("kind".to_string(), json!("crash-vector"))].into(),
        };
        match c.store_vector(&v).await {
            Ok(w) => {
                let stored = Stored {
                    namespace: me.clone(),
                    id: w.id,
                    point,
                    epoch: shared.epoch(),
                };
                shared.log.lock().unwrap().vectors.push(stored);
            }
            Err(e) => {
                shared.failed("store_vector", &e);
                tokio::time::sleep(BACKOFF).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(2..=10))).await;
    }
}

async fn block_loop(c: Client, me: String, shared: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    while !shared.stop_load.load(Ordering::SeqCst) {
        // A new name for every attempt: a store whose answer was lost may
        // have happened, and the name would then be taken.
        let name = format!("{me}-block-{n}");
        let text = format!(
            "note {n} of {me}: the server may die at any moment ({})",
            rng.random::<u32>()
        );
        n += 1;
        let args = p::StoreBlock {
            name: name.clone(),
            content: BlockContent::Text(text.clone()),
            persist: true,
            readonly: false,
            read: None,
            write: None,
        };
        match c.call::<_, p::WireBlock>("store_block", &args).await {
            Ok(_) => {
                let epoch = shared.epoch();
                shared.log.lock().unwrap().blocks.push((name, text, epoch));
            }
            Err(e) => {
                shared.failed("store_block", &e);
                tokio::time::sleep(BACKOFF).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(5..=25))).await;
    }
}

/// Pulls, records, acks.
async fn pull_loop(c: Client, shared: Arc<Shared>) {
    while !shared.stop_receivers.load(Ordering::SeqCst) {
        match c.receive(200).await {
            Ok(ds) if ds.is_empty() => tokio::time::sleep(Duration::from_millis(5)).await,
            Ok(ds) => {
                shared.record_deliveries(&ds);
                let ids: Vec<String> = ds.into_iter().map(|d| d.message.id).collect();
                // A lost ack means a redelivery, which is allowed.
                if let Err(e) = c.ack(&ids).await {
                    shared.failed("ack (pull)", &e);
                }
            }
            Err(e) => {
                shared.failed("receive", &e);
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
}

/// Subscribed: takes pushed deliveries, records, acks. With nothing pushed
/// for a while it pings, which reconnects (and subscribes again) after the
/// server came back.
async fn push_loop(c: Client, shared: Arc<Shared>) {
    while !shared.stop_receivers.load(Ordering::SeqCst) {
        let first = tokio::select! {
            d = c.next_delivery() => d,
            () = tokio::time::sleep(Duration::from_millis(200)) => None,
        };
        let Some(first) = first else {
            if let Err(e) = c.ping().await {
                shared.failed("ping (push)", &e);
                tokio::time::sleep(BACKOFF).await;
            }
            continue;
        };
        let mut ds = vec![first];
        while ds.len() < 500
            && let Some(d) = c.try_next_delivery()
        {
            ds.push(d);
        }
        shared.record_deliveries(&ds);
        let ids: Vec<String> = ds.into_iter().map(|d| d.message.id).collect();
        if let Err(e) = c.ack(&ids).await {
            shared.failed("ack (push)", &e);
        }
    }
}

fn inspect(data: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hvs"))
        .args(["inspect", "--data", data.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hvs inspect failed on the data directory: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_work_survives_sigkill_of_the_server_under_load() {
    let rounds: usize = std::env::var("HVS_SERVER_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("HVS_SERVER_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("crash_server: {rounds} rounds, seed {seed}");
    let began = Instant::now();

    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::new(dir.path(), Vec::new());
    let data = server.data.clone();
    server.start();
    let addr = format!("127.0.0.1:{}", server.port);

    let shared = Arc::new(Shared {
        log: Mutex::new(Log::default()),
        received: Mutex::new(HashMap::new()),
        epoch: AtomicUsize::new(0),
        stop_load: AtomicBool::new(false),
        stop_receivers: AtomicBool::new(false),
        transient: AtomicU64::new(0),
        timeouts: AtomicU64::new(0),
        unknown_sends: AtomicU64::new(0),
    });

    // Receivers first: a send to a model the server never saw is refused.
    let pull = connect(&addr, PULL).await;
    let push = connect(&addr, PUSH).await;
    push.subscribe().await.unwrap();
    let receivers = vec![
        tokio::spawn(pull_loop(pull.clone(), shared.clone())),
        tokio::spawn(push_loop(push.clone(), shared.clone())),
    ];

    let mut senders = Vec::new();
    let mut load = Vec::new();
    for s in 0..SENDERS {
        let me = format!("sender-{s}");
        let c = connect(&addr, &me).await;
        let base = seed.wrapping_add(1000 * s as u64);
        for l in 0..SEND_LOOPS {
            load.push(tokio::spawn(send_loop(
                c.clone(),
                me.clone(),
                l,
                shared.clone(),
                base + l as u64,
            )));
        }
        load.push(tokio::spawn(vector_loop(
            c.clone(),
            me.clone(),
            shared.clone(),
            base + 100,
        )));
        load.push(tokio::spawn(block_loop(
            c.clone(),
            me.clone(),
            shared.clone(),
            base + 200,
        )));
        senders.push((me, c));
    }

    // The killer: a random 200–800 ms of load, SIGKILL, restart on the same
    // data and port. Every fourth restart (the second, the sixth, …) is
    // itself killed a moment after it started (most likely while it opens
    // the data), then started again.
    // Halfway, one clean restart (SIGTERM), so that later kills find graph
    // dumps on disk that are stale by the time the server dies.
    let killer_shared = shared.clone();
    let killer = tokio::task::spawn_blocking(move || {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let mut restarts = Vec::new();
        let mut startup_kills = 0;
        for round in 0..rounds {
            std::thread::sleep(Duration::from_millis(rng.random_range(200..=800)));
            if round == rounds / 2 && rounds > 1 {
                let status = server.term();
                assert!(
                    status.success(),
                    "the clean stop exited with {status}; stderr:\n{}",
                    server.stderr_of(server.starts - 1)
                );
                restarts.push(server.start_and_probe(PROBE));
                std::thread::sleep(Duration::from_millis(rng.random_range(200..=800)));
            }
            server.kill9();
            killer_shared.epoch.fetch_add(1, Ordering::SeqCst);
            if round % 4 == 1 {
                server.spawn();
                std::thread::sleep(Duration::from_millis(rng.random_range(0..=150)));
                server.kill9();
                startup_kills += 1;
            }
            restarts.push(server.start_and_probe(PROBE));
        }
        (server, restarts, startup_kills)
    });
    let (mut server, restarts, startup_kills) = match killer.await {
        Ok(r) => r,
        Err(e) => {
            shared.stop_load.store(true, Ordering::SeqCst);
            shared.stop_receivers.store(true, Ordering::SeqCst);
            std::panic::resume_unwind(e.into_panic());
        }
    };
    let load_time = began.elapsed();
    // The first restart followed a kill under load: the file was not
    // closed, and without quick-repair the open repairs it (and says so).
    assert!(
        server.stderr_of(1).contains(REPAIR_WARNING),
        "no repair after the first SIGKILL; stderr:\n{}",
        server.stderr_of(1)
    );

    // Stop the load, then let the receivers drain.
    shared.stop_load.store(true, Ordering::SeqCst);
    for t in load {
        t.await.unwrap();
    }
    let acked: HashMap<String, Sent> = shared.log.lock().unwrap().sent.clone();
    let drain_began = Instant::now();
    let sinks = [(PULL, pull.clone()), (PUSH, push.clone())];
    // Drained: every acknowledged send received, and nothing left pending
    // or in flight in either mailbox (a redelivery owed after a lost ack
    // has come too).
    let (missing, left) = loop {
        let missing: Vec<String> = {
            let r = shared.received.lock().unwrap();
            acked
                .keys()
                .filter(|id| !r.contains_key(*id))
                .cloned()
                .collect()
        };
        let mut left = Vec::new();
        if missing.is_empty() {
            for (who, c) in &sinks {
                match c.call::<_, serde_json::Value>("mailbox", &json!({})).await {
                    Ok(mb) if mb["pending"] == 0 && mb["in_flight"] == 0 => {}
                    Ok(mb) => left.push(format!("{who}: {mb}")),
                    Err(e) => left.push(format!("{who}: {e}")),
                }
            }
        }
        let drained = missing.is_empty() && left.is_empty();
        if drained || drain_began.elapsed() > Duration::from_secs(180) {
            break (missing, left);
        }
        assert!(
            receivers.iter().all(|r| !r.is_finished()),
            "a receiver stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let drain_time = drain_began.elapsed();

    // Evidence for any acknowledged send that never came: is it stored, and
    // what do the recipients' mailboxes say?
    let mut evidence = String::new();
    if !missing.is_empty() {
        let by_id: HashMap<&str, &Client> =
            senders.iter().map(|(me, c)| (me.as_str(), c)).collect();
        for id in missing.iter().take(20) {
            let s = &acked[id];
            let stored: Result<Option<p::WireMessage>, _> = by_id[s.from.as_str()]
                .call("get_message", &p::IdArg { id: id.clone() })
                .await;
            evidence += &format!(
                "  {id}: {} -> {}, answered in epoch {}, stored now: {:?}\n",
                s.from,
                s.to,
                s.epoch,
                stored.map(|m| m.is_some())
            );
        }
        for (who, c) in &sinks {
            let mb: Result<serde_json::Value, _> = c.call("mailbox", &json!({})).await;
            evidence += &format!("  mailbox of {who}: {mb:?}\n");
        }
    }
    shared.stop_receivers.store(true, Ordering::SeqCst);
    for r in receivers {
        r.await.unwrap();
    }

    // Every acknowledged vector, by an exact scan (and, for the record, by
    // the graph); every acknowledged block, by name.
    let log = std::mem::take(&mut *shared.log.lock().unwrap());
    let by_ns: HashMap<String, Client> = senders.iter().cloned().collect();
    let mut lost_vectors = Vec::new();
    let mut missed_by_graph = Vec::new();
    for v in &log.vectors {
        let c = &by_ns[&v.namespace];
        let mut search = p::Search {
            namespace: v.namespace.clone(),
            vector: v.point.clone(),
            k: 3,
            offset: 0,
            filter: None,
            region: None,
            exact: true,
            ef: None,
            with_vector: false,
        };
        let found = |hits: &[p::WireHit]| hits.iter().any(|h| h.id == v.id && h.distance < 1e-6);
        let exact = c.search_with(&search).await.unwrap();
        if !found(&exact) {
            lost_vectors.push(format!(
                "  {} in {} (answered in epoch {}): exact search gave {exact:?}",
                v.id, v.namespace, v.epoch
            ));
        }
        search.exact = false;
        let graph = c.search_with(&search).await.unwrap();
        if !found(&graph) {
            // For the record (the storage layer promises every stored point
            // is found by its own vector): is it still missed a moment later?
            tokio::time::sleep(Duration::from_millis(500)).await;
            let again = found(&c.search_with(&search).await.unwrap());
            let stats = c
                .stats()
                .await
                .map(|s| s.namespaces.get(&v.namespace).cloned());
            missed_by_graph.push(format!(
                "  {} in {} (answered in epoch {}): graph search gave {graph:?}; \
                 found 0.5 s later: {again}; namespace stats {stats:?}",
                v.id, v.namespace, v.epoch
            ));
        }
    }
    let mut lost_blocks = Vec::new();
    let reader = &senders[0].1;
    for (name, text, epoch) in &log.blocks {
        let got: Option<p::WireBlock> = reader
            .call("get_block", &p::NameArg { name: name.clone() })
            .await
            .unwrap();
        match got {
            Some(b) if b.content == BlockContent::Text(text.clone()) => {}
            other => lost_blocks.push(format!(
                "  {name} (answered in epoch {epoch}): get_block gave {other:?}"
            )),
        }
    }

    // A clean stop, then the data directory as `hvs inspect` sees it.
    drop((senders, by_ns, sinks, pull, push));
    let status = server.term();
    let last_start = server.starts - 1;
    assert!(
        status.success(),
        "the final SIGTERM exited with {status}; stderr:\n{}",
        server.stderr_of(last_start)
    );
    let report = inspect(&data);

    let received = shared.received.lock().unwrap().clone();
    let deliveries: u64 = received.values().map(|&n| u64::from(n)).sum();
    let duplicates = deliveries - received.len() as u64;
    let unasked = received
        .keys()
        .filter(|id| !acked.contains_key(*id))
        .count();
    let max_restart = restarts.iter().map(|t| t.listen).max().unwrap_or_default();
    println!(
        "crash_server: {rounds} kills under load (+{startup_kills} during startup, 1 clean restart), \
         {} server starts, restarts took up to {max_restart:?}; load ran {load_time:?}, drain {drain_time:?}\n\
         crash_server: {} sends acknowledged, {} with lost answers; {} distinct messages received \
         in {deliveries} deliveries ({duplicates} duplicates; {unasked} from sends whose answer was lost)\n\
         crash_server: {} vectors and {} blocks acknowledged; {} calls failed while the server was away ({} timed out); \
         {} vectors not found by the graph search\n\
         crash_server: inspect: {}, messages {}",
        server.starts,
        acked.len(),
        shared.unknown_sends.load(Ordering::Relaxed),
        received.len(),
        log.vectors.len(),
        log.blocks.len(),
        shared.transient.load(Ordering::Relaxed),
        shared.timeouts.load(Ordering::Relaxed),
        missed_by_graph.len(),
        report["consistency"],
        report["messages"],
    );
    for m in &missed_by_graph {
        println!("crash_server: graph miss:{m}");
    }
    for (k, t) in restarts.iter().enumerate() {
        println!(
            "crash_server: restart {k}: listening after {:?}, hello answered after {:?}, \
             first search answered after {:?} (from the spawn)",
            t.listen, t.hello, t.first_search
        );
    }

    assert!(
        log.unexpected.is_empty(),
        "calls failed unexpectedly:\n{}",
        log.unexpected.join("\n")
    );
    assert!(
        log.reused_ids.is_empty(),
        "ids answered to two sends: {:?}",
        log.reused_ids
    );
    assert!(
        acked.len() > 10 && !log.vectors.is_empty() && !log.blocks.is_empty(),
        "too little load to mean anything"
    );
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged sends never delivered (after {drain_time:?} of draining); \
         the first:\n{evidence}",
        missing.len(),
        acked.len()
    );
    assert!(
        lost_vectors.is_empty(),
        "{} of {} acknowledged vectors lost:\n{}",
        lost_vectors.len(),
        log.vectors.len(),
        lost_vectors.join("\n")
    );
    assert!(
        lost_blocks.is_empty(),
        "{} of {} acknowledged blocks lost:\n{}",
        lost_blocks.len(),
        log.blocks.len(),
        lost_blocks.join("\n")
    );
    assert!(
        left.is_empty(),
        "messages still waiting after {drain_time:?} of draining: {left:?}"
    );
    assert_eq!(
        report["messages"]["unsettled"], 0,
        "stored messages neither acked nor dead-lettered: {}",
        report["messages"]
    );
    assert_eq!(
        report["consistency"]["consistent"], true,
        "the index disagrees with storage: {}",
        report["consistency"]
    );
}

/// Graph dump files (`*.graph`) in the data directory's dump folder.
fn graph_dumps(data: &Path) -> usize {
    std::fs::read_dir(data.join("hvs.redb.graphs")).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "graph"))
            .count()
    })
}

/// What `hvs serve` logs when it opens a file that needs a full repair.
const REPAIR_WARNING: &str = "the database was not closed cleanly";

/// `--checkpoint-secs 1` (over `checkpoint_secs = 3600` in `hvs.toml`: the
/// flag wins) makes the running server save its graph without being
/// stopped; after SIGKILL it serves every vector again. (`cache_mb` in
/// `hvs.toml`, a smaller page cache, changes none of that; with
/// `quick_repair`, the restart loads the allocator state instead of
/// repairing the file.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphs_are_checkpointed_while_the_server_runs() {
    const NS: &str = "checkpointed";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hvs.toml"),
        "checkpoint_secs = 3600\ncache_mb = 64\nquick_repair = true\n",
    )
    .unwrap();
    let mut server = Server::new(dir.path(), vec!["--checkpoint-secs".into(), "1".into()]);
    let data = server.data.clone();
    server.start();
    let addr = format!("127.0.0.1:{}", server.port);
    let c = connect(&addr, NS).await;
    let h = Hyperboloid::new(DIM, 1.0).unwrap();
    let mut rng = StdRng::seed_from_u64(14);
    // Enough for a graph: a namespace of a few vectors is scanned exactly
    // and has none to save.
    let points: Vec<Vec<f64>> = (0..1000).map(|_| random_point(&h, &mut rng)).collect();
    let vectors = points
        .iter()
        .map(|v| p::NewWireVector {
            vector: v.clone(),
            region: None,
            metadata: Default::default(),
        })
        .collect();
    let ids = c.batch_store_vectors(NS, vectors).await.unwrap();
    let _ = c.close().await;

    let began = Instant::now();
    while graph_dumps(&data) == 0 {
        assert!(
            began.elapsed() < Duration::from_secs(120),
            "no graph checkpoint within 120 s of the store; stderr:\n{}",
            server.stderr_of(0)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill9();
    let listen = server.start();
    let spawned = server.spawned.unwrap();
    let (hello, first_search) = first_answers(addr.clone(), NS.into(), spawned).await;
    println!(
        "crash_server: checkpointed restart: listening after {listen:?}, hello answered after \
         {hello:?}, first search answered after {first_search:?} (from the spawn)"
    );

    assert!(
        !server.stderr_of(1).contains(REPAIR_WARNING),
        "repaired with quick_repair on; stderr:\n{}",
        server.stderr_of(1)
    );
    let c = connect(&addr, NS).await;
    for (id, point) in ids.iter().zip(&points).step_by(50) {
        let hits = c.search(NS, point.clone(), 3).await.unwrap();
        assert!(
            hits.iter().any(|hit| &hit.id == id && hit.distance < 1e-6),
            "{id} not found by its own vector after the restart: {hits:?}"
        );
    }
    let stats = c.stats().await.unwrap();
    assert_eq!(stats.namespaces[NS].vectors, points.len(), "{stats:?}");
    let _ = c.close().await;
    let status = server.term();
    assert!(status.success(), "the SIGTERM exited with {status}");
}
