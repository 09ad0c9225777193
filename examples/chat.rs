//! The chat demo: three model processes talk to each other through a real
//! `hvs serve`, in vectors.
//!
//! The orchestrator (this program without `--as`) starts `hvs serve` on free
//! loopback ports with a temporary data directory, then three model
//! processes, each with its contract from `examples/contracts/`
//! (`chat_planner.json`, `chat_scout.json`, `chat_critic.json`: the
//! hyperboloid H^64, each its own namespace, all reading `chat-*` and
//! writing their own namespace and the room `chat-room`). One of them is
//! `examples/python/chat_model.py` (the Python client) when a Python ≥ 3.9
//! with `msgpack` is found; the others — or all three with `--rust-only` —
//! are this program again, run with `--as MODEL`.
//!
//! Each model connects, opens its namespace to the other two for reading,
//! and joins the shared space `chat-room`, which `chat-planner` creates with
//! its own namespace's geometry (the same in the three contracts). Then they
//! hold a fixed conversation about getting supplies to a camp: each line is
//! sent to the other two (the first one as a broadcast to the room's
//! members), its vector the server's text encoder's reading of the text.
//! Turns are kept through HVS alone: a model speaks its line only after it
//! has received (and acked) the line before, and it waits for each line it
//! does not speak. Afterwards each model contributes the point of its own
//! proposal to the room (its belief); `chat-critic` searches the
//! conversation — the three namespaces, where the server indexed every
//! message's vector — with the vector of its question and prints the lines
//! nearest in meaning; `chat-planner` waits for the three beliefs and asks
//! the room for their consensus (the Fréchet mean) and the beliefs nearest
//! to it.
//!
//! The models report what they do as JSON lines on stdout; the orchestrator
//! prints the transcript and the figures from them, checks that every line
//! reached everyone once and in order, stops the server with SIGTERM and
//! exits non-zero if anything failed. Every wait has a deadline
//! (`--timeout`), so a stuck process fails the run instead of hanging it.
//!
//! Run: `cargo run --release --example chat` (`--rust-only`: three Rust
//! models; `--python-as chat-critic`: the Python process plays another
//! part; `--hvs-bin PATH` or `HVS_BIN`: the server binary; `--python PATH`
//! or `HVS_PYTHON`: the interpreter).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use hvs_runtime::protocol as p;
use hvs_runtime::{Client, ClientConfig, Filter};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

type BoxError = Box<dyn Error + Send + Sync>;

/// The shared space; every contract may write it.
const ROOM: &str = "chat-room";
/// The three models, in the order they are started. Each contract binds
/// the model to a namespace of the same name.
const MODELS: [&str; 3] = ["chat-planner", "chat-scout", "chat-critic"];
/// Creates the room and asks for the consensus.
const CREATOR: &str = "chat-planner";
/// Searches the conversation with the vector of its question.
const SEARCHER: &str = "chat-critic";
/// Lines the search shows.
const SEARCH_K: usize = 3;

/// The conversation: speaker, kind, text. `broadcast` goes to every member
/// of the room, `proposal` is the speaker's belief, `query` is the line
/// whose vector the search uses; the rest are sent to the other two.
const LINES: &[(&str, &str, &str)] = &[
    (
        "chat-planner",
        "broadcast",
        "Task for today: carry the supplies from the depot to the hill camp before dark.",
    ),
    (
        "chat-scout",
        "say",
        "The bridge on the north road is closed for repairs; the river ferry runs every hour.",
    ),
    (
        "chat-critic",
        "say",
        "A loaded cart on the ferry is slow. Is the south road through the forest open?",
    ),
    (
        "chat-scout",
        "say",
        "The forest road is open but muddy after the rain; the cart needs two hours there.",
    ),
    (
        "chat-planner",
        "proposal",
        "Proposal: take the forest road, leave the depot at noon, reach the hill camp by four.",
    ),
    (
        "chat-scout",
        "proposal",
        "Proposal: cross the river on the ferry at ten, then walk the short north path to camp.",
    ),
    (
        "chat-critic",
        "proposal",
        "Proposal: take the forest road but leave at eleven, an hour of margin before dark.",
    ),
    (
        "chat-critic",
        "query",
        "Before we settle: what did we say about the bridge, the river and the ferry?",
    ),
];

#[derive(Parser)]
#[command(about = "Three model processes hold a conversation through `hvs serve`")]
struct Args {
    /// Three Rust models, even when a Python with msgpack is available.
    #[arg(long)]
    rust_only: bool,
    /// The model the Python process plays.
    #[arg(long, default_value = "chat-scout", value_parser = MODELS)]
    python_as: String,
    /// The `hvs` binary [default: `hvs` beside this example's directory,
    /// built first when cargo runs the example].
    #[arg(long, env = "HVS_BIN")]
    hvs_bin: Option<PathBuf>,
    /// The Python interpreter [default: `python3`, else
    /// `target/python-venv/bin/python`, whichever imports msgpack].
    #[arg(long, env = "HVS_PYTHON")]
    python: Option<PathBuf>,
    /// Seconds the models may take in all; a model waits at most half of
    /// it for any one thing (a line, the room, the beliefs).
    #[arg(long, default_value_t = 120)]
    timeout: u64,

    /// Run as this model (the orchestrator starts the model processes so).
    #[arg(long = "as", hide = true, requires_all = ["server", "contract", "script"])]
    as_model: Option<String>,
    /// The server's address (model mode).
    #[arg(long, hide = true)]
    server: Option<String>,
    /// The contract file (model mode).
    #[arg(long, hide = true)]
    contract: Option<PathBuf>,
    /// The script file the orchestrator wrote (model mode).
    #[arg(long, hide = true)]
    script: Option<PathBuf>,
}

/// What the orchestrator hands every model process, as JSON (read by
/// `chat_model.py` too).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Script {
    room: String,
    models: Vec<String>,
    creator: String,
    searcher: String,
    consensus: String,
    search_k: usize,
    /// How long a model waits for one thing (a line, the room, the beliefs).
    step_timeout_s: f64,
    lines: Vec<Line>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    speaker: String,
    /// `say`, `broadcast`, `proposal` or `query`.
    kind: String,
    text: String,
}

fn script(timeout: u64) -> Script {
    Script {
        room: ROOM.into(),
        models: MODELS.iter().map(|m| m.to_string()).collect(),
        creator: CREATOR.into(),
        searcher: SEARCHER.into(),
        consensus: CREATOR.into(),
        search_k: SEARCH_K,
        // Shorter than the whole run's: a stuck model is reported by the
        // models waiting for it before the orchestrator gives up.
        step_timeout_s: (timeout as f64 / 2.0).max(1.0),
        lines: LINES
            .iter()
            .map(|(speaker, kind, text)| Line {
                speaker: speaker.to_string(),
                kind: kind.to_string(),
                text: text.to_string(),
            })
            .collect(),
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(me) = args.as_model.clone() {
        let (Some(server), Some(contract), Some(script)) =
            (args.server, args.contract, args.script)
        else {
            unreachable!("clap requires them");
        };
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("[{me}] no runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        return match rt.block_on(run_model(&me, &server, &contract, &script)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("[{me}] failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match orchestrate(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chat: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// A model process (`--as MODEL`).
// ---------------------------------------------------------------------------

/// One event for the orchestrator: a JSON line on stdout (line-buffered).
fn emit(event: Value) {
    println!("{event}");
}

/// What a model counted.
#[derive(Default)]
struct Tally {
    sent: usize,
    received: usize,
    acked: usize,
    duplicates: usize,
    unexpected: usize,
}

async fn namespace_info(client: &Client, name: &str) -> Result<p::WireNamespace, BoxError> {
    let name = p::NameArg { name: name.into() };
    Ok(client.call("namespace_info", &name).await?)
}

async fn get_message(client: &Client, id: &str) -> Result<p::WireMessage, BoxError> {
    let arg = p::IdArg { id: id.into() };
    let m: Option<p::WireMessage> = client.call("get_message", &arg).await?;
    m.ok_or_else(|| format!("message {id} not found").into())
}

/// The script line number a message carries in its metadata.
fn line_of(m: &p::WireMessage) -> Option<usize> {
    m.metadata
        .get("line")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
}

async fn run_model(me: &str, server: &str, contract: &Path, script: &Path) -> Result<(), BoxError> {
    let script: Script = serde_json::from_str(&std::fs::read_to_string(script)?)?;
    let step = Duration::from_secs_f64(script.step_timeout_s);
    let room = script.room.as_str();
    let others: Vec<String> = script.models.iter().filter(|m| *m != me).cloned().collect();
    let poll = Duration::from_millis(20);

    let client = Client::connect(ClientConfig::new(
        server,
        std::fs::read_to_string(contract)?,
    ))
    .await?;
    let welcome = client.welcome().await?;
    if welcome.model != me {
        return Err(format!("the contract is for {:?}, not {me:?}", welcome.model).into());
    }
    let own = namespace_info(&client, &welcome.namespace).await?;
    if me == script.creator {
        // The room has the geometry of the creator's own namespace, which
        // the three contracts share: every belief is a point of it.
        client
            .create_namespace(&p::CreateNamespace {
                name: room.into(),
                visibility: "shared".into(),
                geometry: own.geometry.clone(),
                retention: None,
                datatype: None,
                graph: None,
            })
            .await?;
    }
    // Model namespaces are private: let the others search what we say.
    for other in &others {
        let grant = p::GrantArgs {
            namespace: welcome.namespace.clone(),
            model: other.clone(),
            read: true,
            write: false,
        };
        let _: serde::de::IgnoredAny = client.call("grant_access", &grant).await?;
    }
    // The creator may not have made the room yet.
    let deadline = Instant::now() + step;
    loop {
        match client.join(room, &["chat"]).await {
            Ok(()) => break,
            Err(e) if e.code() == "unknown_namespace" && Instant::now() < deadline => {
                tokio::time::sleep(poll).await;
            }
            Err(e) => return Err(format!("joining {room}: {e}").into()),
        }
    }
    // Nobody speaks before everyone is in the room (and so connected).
    let info = loop {
        let info = namespace_info(&client, room).await?;
        if script.models.iter().all(|m| info.members.contains_key(m)) {
            break info;
        }
        if Instant::now() > deadline {
            let joined: Vec<_> = info.members.keys().collect();
            return Err(format!("only {joined:?} joined {room} within {step:?}").into());
        }
        tokio::time::sleep(poll).await;
    };
    if info.geometry != own.geometry {
        return Err(format!(
            "{room} has the geometry {:?}, this model {:?}",
            info.geometry, own.geometry
        )
        .into());
    }
    emit(
        json!({"event": "ready", "model": me, "lang": "rust", "server": welcome.server,
                "namespace": welcome.namespace, "geometry": own.geometry,
                "room_owner": info.owner, "room_visibility": info.visibility}),
    );

    let mut tally = Tally::default();
    let mut waiting: HashMap<usize, p::WireDelivery> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut mine: HashMap<usize, String> = HashMap::new();
    for (i, line) in script.lines.iter().enumerate() {
        let n = i + 1;
        let metadata: BTreeMap<String, Value> =
            BTreeMap::from([("line".into(), json!(n)), ("kind".into(), json!(line.kind))]);
        if line.speaker == me {
            // No vector: the server's text encoder reads the payload.
            let message = p::WireOutgoing {
                payload: line.text.clone().into_bytes(),
                metadata,
                ..p::WireOutgoing::default()
            };
            if line.kind == "broadcast" {
                let r = client
                    .broadcast(p::WireBroadcast {
                        message,
                        namespace: Some(room.into()),
                        exclude: vec![],
                    })
                    .await?;
                tally.sent += 1;
                emit(
                    json!({"event": "said", "model": me, "line": n, "ids": [r.id],
                            "to": r.recipients, "refused": r.refused, "broadcast": true}),
                );
                mine.insert(n, r.id);
            } else {
                let batch = others
                    .iter()
                    .map(|o| p::WireOutgoing {
                        to: o.clone(),
                        ..message.clone()
                    })
                    .collect();
                let ids = client.send_batch(batch).await?;
                tally.sent += ids.len();
                emit(json!({"event": "said", "model": me, "line": n, "ids": ids,
                            "to": others, "broadcast": false}));
                mine.insert(n, ids[0].clone());
            }
            continue;
        }
        // Someone else's line: receive until it is there.
        let deadline = Instant::now() + step;
        let d = loop {
            if let Some(d) = waiting.remove(&n) {
                break d;
            }
            let got = client.receive(100).await?;
            if got.is_empty() {
                if Instant::now() > deadline {
                    return Err(
                        format!("waited {step:?} for line {n} from {}", line.speaker).into(),
                    );
                }
                tokio::time::sleep(poll).await;
                continue;
            }
            let ids: Vec<String> = got.iter().map(|d| d.message.id.clone()).collect();
            tally.acked += client.ack(&ids).await?.len();
            for d in got {
                if !seen.insert(d.message.id.clone()) {
                    tally.duplicates += 1;
                    continue;
                }
                tally.received += 1;
                match line_of(&d.message) {
                    Some(l) => {
                        waiting.insert(l, d);
                    }
                    None => tally.unexpected += 1,
                }
            }
        };
        let text = String::from_utf8_lossy(&d.message.payload);
        if d.message.from != line.speaker || text != line.text {
            return Err(format!(
                "line {n} came from {} as {text:?}, expected {} with {:?}",
                d.message.from, line.speaker, line.text
            )
            .into());
        }
        emit(
            json!({"event": "heard", "model": me, "line": n, "id": d.message.id,
                    "from": d.message.from, "attempt": d.attempt}),
        );
    }
    if !waiting.is_empty() {
        let extra: Vec<_> = waiting.keys().collect();
        return Err(format!("lines {extra:?} came more than once").into());
    }

    // The belief: the point of this model's proposal, as the server encoded it.
    if let Some((n, line)) = (1..)
        .zip(&script.lines)
        .find(|(_, l)| l.speaker == me && l.kind == "proposal")
    {
        let point = get_message(&client, &mine[&n]).await?.vector;
        let value = json!({"line": n, "text": line.text});
        let id = client.contribute(room, "belief", point, value).await?;
        emit(json!({"event": "belief", "model": me, "line": n, "id": id}));
    }

    if me == script.searcher {
        search(&client, me, &script, &mine).await?;
    }
    if me == script.consensus {
        consensus(&client, me, &script, step).await?;
    }

    emit(
        json!({"event": "done", "model": me, "sent": tally.sent, "received": tally.received,
                "acked": tally.acked, "duplicates": tally.duplicates,
                "unexpected": tally.unexpected}),
    );
    client.close().await?;
    Ok(())
}

/// Searches the three namespaces (where the server indexed each message's
/// vector) with the vector of this model's question, and reports the lines
/// nearest in meaning — the question itself left out. A line sent to two
/// models is two messages with one vector: kept once.
async fn search(
    client: &Client,
    me: &str,
    script: &Script,
    mine: &HashMap<usize, String>,
) -> Result<(), BoxError> {
    let Some((q, query)) = (1..)
        .zip(&script.lines)
        .find(|(_, l)| l.speaker == me && l.kind == "query")
    else {
        return Err("the searcher has no query line".into());
    };
    let vector = get_message(client, &mine[&q]).await?.vector;
    let mut best: BTreeMap<usize, (f64, p::WireMessage)> = BTreeMap::new();
    for namespace in &script.models {
        let hits = client
            .search_with(&p::Search {
                namespace: namespace.clone(),
                vector: vector.clone(),
                k: 2 * script.search_k + 2,
                offset: 0,
                filter: Some(Filter::Eq("hvs_kind".into(), json!("message"))),
                region: None,
                exact: false,
                ef: None,
                with_vector: false,
            })
            .await?;
        for hit in hits {
            let m = get_message(client, &hit.id).await?;
            let Some(n) = line_of(&m) else { continue };
            if n == q || best.get(&n).is_some_and(|(d, _)| *d <= hit.distance) {
                continue;
            }
            best.insert(n, (hit.distance, m));
        }
    }
    let mut hits: Vec<_> = best.into_iter().collect();
    hits.sort_by(|a, b| a.1.0.total_cmp(&b.1.0));
    hits.truncate(script.search_k);
    let hits: Vec<Value> = hits
        .into_iter()
        .map(|(n, (distance, m))| {
            json!({"line": n, "from": m.from, "id": m.id, "distance": distance,
                   "text": String::from_utf8_lossy(&m.payload)})
        })
        .collect();
    emit(
        json!({"event": "search", "model": me, "query_line": q, "query": query.text,
                "namespaces": script.models, "hits": hits}),
    );
    Ok(())
}

/// Waits for every model's belief, then asks the room for their consensus
/// and the beliefs nearest to it.
async fn consensus(
    client: &Client,
    me: &str,
    script: &Script,
    step: Duration,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + step;
    let c = loop {
        let last = match client.consensus(&script.room, None).await {
            Ok(c) if c.contributors >= script.models.len() => break c,
            Ok(c) => format!("{} of {} beliefs", c.contributors, script.models.len()),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            return Err(format!("no consensus within {step:?}: {last}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    #[derive(Deserialize)]
    struct Hits {
        hits: Vec<p::WireSharedHit>,
    }
    let query = p::QueryShared {
        space: script.room.clone(),
        vector: c.mean.clone(),
        k: script.models.len(),
        with_vector: false,
    };
    let nearest: Hits = client.call("query_shared", &query).await?;
    let nearest: Vec<Value> = nearest
        .hits
        .iter()
        .map(|h| json!({"contributor": h.contributor, "value": h.value, "distance": h.distance}))
        .collect();
    emit(json!({"event": "consensus", "model": me, "mean": c.mean,
                "contributions": c.contributions, "contributors": c.contributors,
                "iterations": c.iterations, "converged": c.converged,
                "gradient_norm": c.gradient_norm, "nearest": nearest}));
    Ok(())
}

// ---------------------------------------------------------------------------
// The orchestrator.
// ---------------------------------------------------------------------------

/// A process this program started, killed if still running when dropped
/// (a failed run leaves nothing behind).
struct Proc {
    name: String,
    child: Child,
    status: Option<std::process::ExitStatus>,
}

impl Proc {
    fn poll(&mut self) -> Option<std::process::ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.poll().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `hvs` binary: `--hvs-bin`/`HVS_BIN` if given; otherwise `hvs` in
/// the directory above this example's (`target/release/examples/chat` →
/// `target/release/hvs`). `cargo run --example chat` builds the example,
/// not the package's binaries, so that file may be missing or older than
/// the sources. When cargo started us (it sets `CARGO`), we have that cargo
/// build `--bin hvs` in our profile first: a no-op when it is up to date,
/// and then the server always matches the client compiled into this
/// example. Without cargo we take the file as it is, and say how to build
/// it when it is missing.
fn find_hvs(args: &Args) -> Result<PathBuf, BoxError> {
    if let Some(bin) = &args.hvs_bin {
        // Absolute: the server runs in its temporary directory.
        return match bin.is_file() {
            true => Ok(std::fs::canonicalize(bin)?),
            false => Err(format!("HVS_BIN/--hvs-bin {} is not a file", bin.display()).into()),
        };
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot tell where this example lives")?;
    let bin = profile_dir.join(format!("hvs{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "--bin", "hvs", "--manifest-path"]);
        build.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(other) => {
                build.args(["--profile", other]);
            }
        }
        eprintln!("chat: cargo build --bin hvs (so the server matches this example) …");
        let status = build.status()?;
        if !status.success() {
            return Err(format!("cargo build --bin hvs failed ({status})").into());
        }
    }
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "no server binary at {}: build it with `cargo build --release --bin hvs` \
             (or `cargo build --bin hvs` for a debug example), or name one with HVS_BIN",
            bin.display()
        )
        .into())
    }
}

/// A Python (≥ 3.9) that imports msgpack: `--python`/`HVS_PYTHON` if
/// given, else `python3`, else the virtual environment that
/// `examples/python/run_tests.sh` makes. The client package itself comes
/// from the source tree (`PYTHONPATH`).
fn find_python(args: &Args, repo: &Path) -> Result<PathBuf, String> {
    let candidates = match &args.python {
        Some(p) => vec![p.clone()],
        None => vec![
            PathBuf::from("python3"),
            repo.join("target/python-venv/bin/python"),
        ],
    };
    let check = "import sys, msgpack; sys.exit(sys.version_info < (3, 9))";
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-c", check])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(c.clone());
        }
    }
    let names: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
    Err(format!(
        "no Python >= 3.9 with msgpack ({} tried; `pip install msgpack` or \
         examples/python/run_tests.sh makes one)",
        names.join(", ")
    ))
}

/// Starts `hvs serve` on free loopback ports with its data and log in
/// `dir`; returns it once it accepts connections.
fn start_server(hvs: &Path, dir: &Path) -> Result<(Proc, String), BoxError> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let admin = format!("127.0.0.1:{}", free_port()?);
    let log = File::create(dir.join("server.log"))?;
    let mut cmd = Command::new(hvs);
    cmd.args([
        "serve",
        "--listen",
        &addr,
        "--admin",
        &admin,
        "--durability",
        "buffered",
    ])
    .arg("--data")
    .arg(dir.join("data"))
    // No stray hvs.toml, and no HVS_* variable, configures it.
    .current_dir(dir)
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HVS_") {
            cmd.env_remove(k);
        }
    }
    let mut server = Proc {
        name: "hvs serve".into(),
        child: cmd.spawn()?,
        status: None,
    };
    let start = Instant::now();
    while TcpStream::connect(&addr).is_err() {
        if let Some(status) = server.poll() {
            return Err(format!("the server exited ({status}):\n{}", server_log(dir)).into());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "the server did not listen within 60 s:\n{}",
                server_log(dir)
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((server, addr))
}

fn server_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// SIGTERM, then the exit code (killed after 30 s).
fn stop_server(server: &mut Proc) -> Result<Option<i32>, BoxError> {
    let pid = server.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
    if !sent.success() {
        return Err(format!("kill -TERM {pid} failed").into());
    }
    let start = Instant::now();
    loop {
        if let Some(status) = server.poll() {
            return Ok(status.code());
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err("the server did not stop within 30 s of SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last 8 hex digits of a message id (UUID v7: the first ones are the
/// clock, the same for every message of the run).
fn short(id: &str) -> String {
    format!("…{}", &id[id.len().saturating_sub(8)..])
}

fn orchestrate(args: &Args) -> Result<bool, BoxError> {
    let started = Instant::now();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hvs = find_hvs(args)?;
    let python = match args.rust_only {
        true => Err("--rust-only".to_string()),
        false => find_python(args, repo),
    };
    let dir = tempfile::Builder::new().prefix("hvs-chat-").tempdir()?;
    let script = script(args.timeout);
    let script_path = dir.path().join("script.json");
    std::fs::write(&script_path, serde_json::to_vec_pretty(&script)?)?;

    let server_start = Instant::now();
    let (mut server, addr) = start_server(&hvs, dir.path())?;
    let server_ready = server_start.elapsed();

    // The models, each reporting on its stdout through a reader thread.
    let (tx, rx) = mpsc::channel::<(usize, Option<String>)>();
    let mut models: Vec<Proc> = Vec::new();
    let mut langs: Vec<&str> = Vec::new();
    let conversation = Instant::now();
    for (i, model) in MODELS.iter().enumerate() {
        let contract = repo
            .join("examples/contracts")
            .join(format!("{}.json", model.replace('-', "_")));
        let (mut cmd, lang) = match &python {
            Ok(py) if *model == args.python_as => {
                let mut cmd = Command::new(py);
                let pkg = repo.join("examples/python");
                let path = match std::env::var_os("PYTHONPATH") {
                    Some(old) => std::env::join_paths(
                        std::iter::once(pkg.clone()).chain(std::env::split_paths(&old)),
                    )?,
                    None => pkg.clone().into_os_string(),
                };
                cmd.arg(pkg.join("chat_model.py"))
                    .env("PYTHONPATH", path)
                    .env("PYTHONUNBUFFERED", "1")
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                (cmd, "python")
            }
            _ => (Command::new(std::env::current_exe()?), "rust"),
        };
        cmd.args(["--as", model, "--server", &addr])
            .arg("--contract")
            .arg(&contract)
            .arg("--script")
            .arg(&script_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                match line {
                    Ok(l) => {
                        let _ = tx.send((i, Some(l)));
                    }
                    Err(_) => break,
                }
            }
            let _ = tx.send((i, None));
        });
        models.push(Proc {
            name: model.to_string(),
            child,
            status: None,
        });
        langs.push(lang);
    }
    drop(tx);

    // Collect events until every model has exited, one fails, or time is up.
    let mut failures: Vec<String> = Vec::new();
    let mut events: Vec<Value> = Vec::new();
    let mut open = vec![true; models.len()];
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((i, Some(l))) => match serde_json::from_str::<Value>(&l) {
                Ok(v) if v.get("event").is_some() => events.push(v),
                _ => eprintln!("[{}] {l}", models[i].name),
            },
            Ok((i, None)) => open[i] = false,
            Err(_) => {}
        }
        let mut done = true;
        for m in &mut models {
            match m.poll() {
                Some(s) if !s.success() => failures.push(format!("{} exited with {s}", m.name)),
                Some(_) => {}
                None => done = false,
            }
        }
        if !failures.is_empty() {
            break;
        }
        if done && open.iter().all(|o| !o) {
            break;
        }
        if Instant::now() > deadline {
            let running: Vec<&str> = models
                .iter_mut()
                .filter_map(|m| m.poll().is_none().then_some(m.name.as_str()))
                .collect();
            failures.push(format!(
                "timed out after {} s; still running: {running:?}",
                args.timeout
            ));
            break;
        }
    }
    // Whatever else is still running (after a failure) is stopped now.
    for m in &mut models {
        if m.poll().is_none() {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
    }
    let talk = conversation.elapsed();
    let server_exit = stop_server(&mut server);

    report(ReportInput {
        script: &script,
        events: &events,
        langs: &langs,
        python: &python,
        python_as: &args.python_as,
        addr: &addr,
        dir: dir.path(),
        server_ready,
        talk,
        total: started.elapsed(),
        server_exit,
        failures,
    })
}

struct ReportInput<'a> {
    script: &'a Script,
    events: &'a [Value],
    langs: &'a [&'a str],
    python: &'a Result<PathBuf, String>,
    python_as: &'a str,
    addr: &'a str,
    dir: &'a Path,
    server_ready: Duration,
    talk: Duration,
    total: Duration,
    server_exit: Result<Option<i32>, BoxError>,
    failures: Vec<String>,
}

fn find<'a>(events: &'a [Value], kind: &str, model: Option<&str>) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && model.is_none_or(|m| e["model"] == m))
        .collect()
}

fn num(v: &Value) -> usize {
    v.as_u64().unwrap_or(0) as usize
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Prints the transcript and the figures, checks them; `Ok(true)` when all
/// is well.
fn report(r: ReportInput<'_>) -> Result<bool, BoxError> {
    let ReportInput { script, events, .. } = r;
    let mut failures = r.failures;
    let models = &script.models;

    println!("HVS chat demo");
    let ready = find(events, "ready", None);
    let server = ready
        .first()
        .and_then(|e| e["server"].as_str())
        .unwrap_or("?");
    println!(
        "  server   {server} on {}, data in {} (listening after {:.2} s)",
        r.addr,
        r.dir.display(),
        r.server_ready.as_secs_f64()
    );
    let who: Vec<String> = models
        .iter()
        .zip(r.langs)
        .map(|(m, l)| format!("{m} ({l})"))
        .collect();
    println!("  models   {}", who.join(", "));
    match r.python {
        Ok(py) => {
            let py = py.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(py);
            println!("  python   {} plays {}", py.display(), r.python_as)
        }
        Err(why) => println!("  python   not used: {why}"),
    }
    if let Some(e) = ready.iter().find(|e| e["model"] == script.creator.as_str()) {
        let g = &e["geometry"];
        println!(
            "  room     {} ({}), {} H^{} (curvature {}), created by {}, joined by {} models",
            script.room,
            e["room_visibility"].as_str().unwrap_or("?"),
            g["kind"].as_str().unwrap_or("?"),
            g["dim"],
            g["curvature"],
            e["room_owner"].as_str().unwrap_or("?"),
            ready.len()
        );
    }
    if ready.len() != models.len() {
        failures.push(format!(
            "{} of {} models got ready",
            ready.len(),
            models.len()
        ));
    }

    // The transcript, with the checks of each line.
    println!("\nTranscript");
    let mut expected_deliveries: HashMap<&str, usize> = HashMap::new();
    let mut last_id = String::new();
    let mut broadcasts: Vec<Vec<String>> = Vec::new();
    let mut unsaid: Vec<usize> = Vec::new();
    for (n, line) in (1..).zip(&script.lines) {
        let others: Vec<&str> = models
            .iter()
            .map(String::as_str)
            .filter(|m| *m != line.speaker)
            .collect();
        for o in &others {
            *expected_deliveries.entry(*o).or_default() += 1;
        }
        let said: Vec<_> = find(events, "said", Some(line.speaker.as_str()))
            .into_iter()
            .filter(|e| num(&e["line"]) == n)
            .collect();
        let heard: Vec<String> = find(events, "heard", None)
            .into_iter()
            .filter(|e| num(&e["line"]) == n)
            .filter_map(|e| e["model"].as_str().map(String::from))
            .collect();
        let Some(s) = said.first() else {
            println!("  [{n}] {} — never said", line.speaker);
            unsaid.push(n);
            continue;
        };
        let ids = strings(&s["ids"]);
        let to = strings(&s["to"]);
        let shown: Vec<String> = ids.iter().map(|i| short(i)).collect();
        let how = if s["broadcast"] == true {
            broadcasts.push(to.clone());
            format!("{} (broadcast to {})", script.room, to.join(", "))
        } else {
            to.join(", ")
        };
        println!("  [{n}] {} -> {how}  {}", line.speaker, shown.join(" "));
        println!("      {}", line.text);
        let mut want: Vec<&str> = others.clone();
        let mut got: Vec<&str> = heard.iter().map(String::as_str).collect();
        want.sort_unstable();
        got.sort_unstable();
        if got != want {
            failures.push(format!("line {n} was heard by {got:?}, not {want:?}"));
        }
        let mut sorted_to: Vec<&str> = to.iter().map(String::as_str).collect();
        sorted_to.sort_unstable();
        if sorted_to != want {
            failures.push(format!("line {n} went to {sorted_to:?}, not {want:?}"));
        }
        // UUID v7 ids are the server's clock: they rise with the turns.
        for id in &ids {
            if *id <= last_id {
                failures.push(format!("line {n}'s id {id} is not after {last_id}"));
            }
            last_id = id.clone();
        }
    }

    if !unsaid.is_empty() {
        failures.push(format!("lines {unsaid:?} were never said"));
    }

    let search = find(events, "search", None);
    let mut distances: Vec<f64> = Vec::new();
    match search.first() {
        None => failures.push("no search result".into()),
        Some(s) => {
            println!(
                "\nSearch by meaning: {} searched {} with the vector of line {}",
                s["model"].as_str().unwrap_or("?"),
                strings(&s["namespaces"]).join(", "),
                s["query_line"]
            );
            println!("  query   {}", s["query"].as_str().unwrap_or("?"));
            for (i, h) in s["hits"].as_array().into_iter().flatten().enumerate() {
                let d = h["distance"].as_f64().unwrap_or(f64::NAN);
                distances.push(d);
                println!(
                    "  {}.  [{}] {:<13} distance {d:.4}  {}",
                    i + 1,
                    h["line"],
                    h["from"].as_str().unwrap_or("?"),
                    h["text"].as_str().unwrap_or("?")
                );
            }
            if distances.is_empty() {
                failures.push("the search returned no hits".into());
            }
        }
    }

    let consensus = find(events, "consensus", None);
    let mut beliefs = find(events, "belief", None);
    beliefs.sort_by_key(|e| num(&e["line"]));
    match consensus.first() {
        None => failures.push("no consensus".into()),
        Some(c) => {
            println!(
                "\nConsensus in {} (asked by {}): the Fréchet mean of the beliefs",
                script.room,
                c["model"].as_str().unwrap_or("?")
            );
            let b: Vec<String> = beliefs
                .iter()
                .map(|e| format!("{} [{}]", e["model"].as_str().unwrap_or("?"), e["line"]))
                .collect();
            println!("  beliefs    {}", b.join(", "));
            let mean: Vec<f64> = c["mean"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            let head: Vec<String> = mean.iter().take(4).map(|x| format!("{x:.4}")).collect();
            println!(
                "  mean       ({}, …) {} coordinates, {:.4} from the origin",
                head.join(", "),
                mean.len(),
                mean.first().map_or(f64::NAN, |x0| x0.max(1.0).acosh())
            );
            println!(
                "  converged  {} after {} iterations (gradient norm {:.1e}); \
                 {} contributions from {} models",
                c["converged"],
                c["iterations"],
                c["gradient_norm"].as_f64().unwrap_or(f64::NAN),
                c["contributions"],
                c["contributors"]
            );
            let near: Vec<String> = c["nearest"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    format!(
                        "{} [{}] {:.4}",
                        h["contributor"].as_str().unwrap_or("?"),
                        h["value"]["line"],
                        h["distance"].as_f64().unwrap_or(f64::NAN)
                    )
                })
                .collect();
            println!("  nearest    {}", near.join(", "));
            if let Some(h) = c["nearest"].get(0) {
                println!(
                    "  closest    {}",
                    h["value"]["text"].as_str().unwrap_or("?")
                );
            }
            if c["converged"] != true {
                failures.push("the consensus did not converge".into());
            }
            if num(&c["contributors"]) != models.len() {
                failures.push(format!(
                    "{} contributors, not {}",
                    c["contributors"],
                    models.len()
                ));
            }
        }
    }

    // The figures.
    let (mut sent, mut received, mut acked, mut duplicates, mut unexpected) = (0, 0, 0, 0, 0);
    for m in models {
        let Some(d) = find(events, "done", Some(m.as_str())).into_iter().next() else {
            failures.push(format!("{m} did not finish"));
            continue;
        };
        sent += num(&d["sent"]);
        received += num(&d["received"]);
        acked += num(&d["acked"]);
        duplicates += num(&d["duplicates"]);
        unexpected += num(&d["unexpected"]);
        let want = expected_deliveries.get(m.as_str()).copied().unwrap_or(0);
        if num(&d["received"]) != want {
            failures.push(format!(
                "{m} received {} messages, not {want}",
                d["received"]
            ));
        }
    }
    let expected: usize = expected_deliveries.values().sum();
    let direct = sent.saturating_sub(broadcasts.len());
    println!("\nFigures");
    println!(
        "  messages:   sent {sent} ({direct} direct, {} broadcast), deliveries expected {expected}, \
         received {received}, acked {acked}, duplicates {duplicates}, other {unexpected}",
        broadcasts.len()
    );
    for b in &broadcasts {
        println!("  broadcast:  recipients {} ({})", b.len(), b.join(", "));
    }
    let shown: Vec<String> = distances.iter().map(|d| format!("{d:.4}")).collect();
    println!(
        "  search:     hits {}, distances {}",
        distances.len(),
        shown.join(" ")
    );
    if let Some(c) = consensus.first() {
        println!(
            "  consensus:  converged {}, iterations {}, contributors {}",
            c["converged"], c["iterations"], c["contributors"]
        );
    }
    println!(
        "  elapsed:    {:.2} s in all (server listening after {:.2} s, models {:.2} s)",
        r.total.as_secs_f64(),
        r.server_ready.as_secs_f64(),
        r.talk.as_secs_f64()
    );
    if received != expected || acked != received {
        failures.push(format!(
            "{received} received and {acked} acked of {expected} deliveries"
        ));
    }
    match &r.server_exit {
        Ok(code) => {
            let code = code.map_or("none (killed by a signal)".into(), |c| c.to_string());
            println!("  server:     stopped by SIGTERM, exit code {code}");
            if code != "0" {
                failures.push(format!("the server exited with {code}"));
            }
        }
        Err(e) => {
            println!("  server:     {e}");
            failures.push(e.to_string());
        }
    }
    if failures.is_empty() {
        println!("\nresult: ok");
        Ok(true)
    } else {
        println!("\nresult: FAILED");
        for f in &failures {
            println!("  - {f}");
        }
        eprintln!("--- server log ---\n{}", server_log(r.dir));
        Ok(false)
    }
}
