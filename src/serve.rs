//! `hvs serve` and `hvs status`.
//!
//! Settings come from, strongest first: flags, `HVS_*` environment
//! variables, the config file (`hvs.toml` in the current directory, or
//! `--config FILE`), then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use hvs::runtime::auth::TokenStore;
use hvs::runtime::{
    ClusterConfig, Durability, Replication, Runtime, RuntimeConfig, Server, ServerConfig,
};
use hvs::storage::{DiscardPolicy, Retention};
use serde::Deserialize;

/// `hvs serve`'s options.
#[derive(Args, Debug, Default)]
pub(crate) struct ServeArgs {
    /// Where models connect [default: 127.0.0.1:7411].
    #[arg(long, env = "HVS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Where /health and /metrics are served [default: 127.0.0.1:7412].
    #[arg(long, env = "HVS_ADMIN")]
    admin: Option<SocketAddr>,
    /// The data directory [default: ./hvs-data].
    #[arg(long, env = "HVS_DATA")]
    data: Option<PathBuf>,
    /// memory, buffered, sync, or, in a cluster, replicated (answered once
    /// a mirror applied the write) or quorum (once a 3-replica stream
    /// holds it) [default: buffered]. See docs/STORAGE.md.
    #[arg(long, env = "HVS_DURABILITY")]
    durability: Option<String>,
    /// The operator's tokens file [default: DATA/tokens.json if it
    /// exists]; without one, the server accepts any model and listens on
    /// loopback only.
    #[arg(long, env = "HVS_TOKENS")]
    tokens: Option<PathBuf>,
    /// The largest frame accepted, in bytes [default: 16 MiB].
    #[arg(long, env = "HVS_MAX_FRAME_BYTES")]
    max_frame_bytes: Option<usize>,
    /// Connections served at once [default: 1024].
    #[arg(long, env = "HVS_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Requests read ahead per connection [default: 256].
    #[arg(long, env = "HVS_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// The config file [default: ./hvs.toml if it exists].
    #[arg(long, env = "HVS_CONFIG")]
    config: Option<PathBuf>,
    /// NATS servers to join other instances through, comma-separated
    /// (`nats://127.0.0.1:4222`); with `--instance` (docs/SYNC.md).
    #[arg(long, env = "HVS_NATS", value_delimiter = ',')]
    nats: Option<Vec<String>>,
    /// This instance's name among the others (letters, digits, - and _).
    #[arg(long, env = "HVS_INSTANCE")]
    instance: Option<String>,
    /// Replicas of this instance's feed stream [default: 1].
    #[arg(long, env = "HVS_FEED_REPLICAS")]
    feed_replicas: Option<usize>,
    /// The failover group this instance is in (docs/CLUSTER.md): one of
    /// its instances, the primary, takes writes; the others mirror it.
    #[arg(long, env = "HVS_GROUP")]
    group: Option<String>,
    /// The address clients reach this server at, as told to clients
    /// following a group's primary [default: the listen address].
    #[arg(long, env = "HVS_ADVERTISE")]
    advertise: Option<String>,
    /// What this instance offers federated queries, comma-separated
    /// (docs/CLUSTER.md).
    #[arg(long = "capability", env = "HVS_CAPABILITIES", value_delimiter = ',')]
    capabilities: Option<Vec<String>>,
    /// How long a failover group's lease lasts unless renewed, in ms
    /// [default: 2000]: a stopped primary is replaced about this long after.
    #[arg(long, env = "HVS_LEASE_TTL_MS")]
    lease_ttl_ms: Option<u64>,
    /// Retention of namespaces created without their own (docs/SEMANTICS.md,
    /// "Retention"): messages older than this many ms are removed
    /// [default: no limit].
    #[arg(long, env = "HVS_MAX_AGE_MS")]
    max_age_ms: Option<u64>,
    /// Most messages a namespace holds [default: no limit].
    #[arg(long, env = "HVS_MAX_MESSAGES")]
    max_messages: Option<u64>,
    /// Most bytes of messages (payload + 8 per coordinate) a namespace
    /// holds [default: no limit].
    #[arg(long, env = "HVS_MAX_BYTES")]
    max_bytes: Option<u64>,
    /// A message every recipient settled is removed this many ms after
    /// the last settlement [default: kept until a limit removes it].
    #[arg(long, env = "HVS_KEEP_ACKED_MS")]
    keep_acked_ms: Option<u64>,
    /// At max_messages or max_bytes: `old` drops the oldest messages,
    /// `new` refuses the new one with `namespace_full` [default: old].
    #[arg(long, env = "HVS_DISCARD")]
    discard: Option<String>,
    /// Letters a model's mailbox holds before senders are refused with
    /// `mailbox_full` (in a cluster, also per model in the mail stream)
    /// [default: 100000].
    #[arg(long, env = "HVS_MAILBOX_CAPACITY")]
    mailbox_capacity: Option<usize>,
    /// Seconds between graph checkpoints: the search graphs that changed
    /// are saved beside the database, so a restart after a crash loads
    /// them and indexes only what came after; 0: only on a clean stop
    /// [default: 60]. See docs/STORAGE.md.
    #[arg(long, env = "HVS_CHECKPOINT_SECS")]
    checkpoint_secs: Option<u64>,
    /// Megabytes of the database's page cache (records read and written
    /// recently, kept in memory) [default: 256; 16 at `memory`
    /// durability, whose database is in memory already]. See
    /// docs/STORAGE.md.
    #[arg(long, env = "HVS_CACHE_MB")]
    cache_mb: Option<usize>,
    /// Every commit also saves the database's allocator state (two syncs
    /// instead of one), so that a start after a crash loads it instead of
    /// reading the whole file to repair it [default: off]. See
    /// docs/STORAGE.md, "A server restarted after a crash". `--quick-repair
    /// false` turns off what `hvs.toml` turned on.
    #[arg(long, env = "HVS_QUICK_REPAIR", num_args = 0..=1, default_missing_value = "true")]
    quick_repair: Option<bool>,
    /// Change-feed entries to keep: older ones are removed as the feed
    /// grows (never past what the cluster's publisher has published)
    /// [default: all, for good]. See docs/STORAGE.md, "Ordering and the
    /// change feed".
    #[arg(long, env = "HVS_FEED_KEEP")]
    feed_keep: Option<u64>,
}

/// What `hvs.toml` may set (the same names as the flags, with `_`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    data: Option<PathBuf>,
    durability: Option<String>,
    tokens: Option<PathBuf>,
    max_frame_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_in_flight: Option<usize>,
    mailbox_capacity: Option<usize>,
    checkpoint_secs: Option<u64>,
    cache_mb: Option<usize>,
    quick_repair: Option<bool>,
    feed_keep: Option<u64>,
    cluster: Option<ClusterSection>,
    retention: Option<RetentionSection>,
}

/// `[cluster]` in `hvs.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterSection {
    nats: Option<Vec<String>>,
    instance: Option<String>,
    feed_replicas: Option<usize>,
    group: Option<String>,
    advertise: Option<String>,
    capabilities: Option<Vec<String>>,
    lease_ttl_ms: Option<u64>,
}

/// `[retention]` in `hvs.toml`: the store's default retention.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    max_age_ms: Option<u64>,
    max_messages: Option<u64>,
    max_bytes: Option<u64>,
    keep_acked_ms: Option<u64>,
    discard: Option<String>,
}

/// The default retention from the flags (each stronger) and the file.
fn retention(args: &ServeArgs, file: Option<RetentionSection>) -> Result<Retention, String> {
    let file = file.unwrap_or_default();
    let discard = match args.discard.as_deref().or(file.discard.as_deref()) {
        None | Some("old") => DiscardPolicy::Old,
        Some("new") => DiscardPolicy::New,
        Some(other) => return Err(format!("discard {other:?} is not old or new")),
    };
    let r = Retention {
        max_age_ms: args.max_age_ms.or(file.max_age_ms),
        max_messages: args.max_messages.or(file.max_messages),
        max_bytes: args.max_bytes.or(file.max_bytes),
        keep_acked_ms: args.keep_acked_ms.or(file.keep_acked_ms),
        discard,
    };
    match r.problem() {
        Some(p) => Err(format!("retention: {p}")),
        None => Ok(r),
    }
}

/// The settings a server starts with, resolved.
struct Settings {
    server: ServerConfig,
    data: PathBuf,
    durability: Durability,
    tokens: Option<PathBuf>,
    config_file: Option<PathBuf>,
    cluster: Option<ClusterConfig>,
    retention: Retention,
    mailbox_capacity: Option<usize>,
    /// How often changed graphs are saved; `None`: only on a clean stop.
    checkpoint_every: Option<std::time::Duration>,
    /// The database's page cache; `None`: the store's default (256 MiB; 16 at `memory`).
    cache_bytes: Option<usize>,
    /// redb's quick-repair on every commit.
    quick_repair: bool,
    /// Change-feed entries kept; `None`: all.
    feed_keep: Option<u64>,
}

/// The store's level, and the cluster's (`replicated` and `quorum`
/// commit at `buffered` here, then wait for the cluster).
fn durability(s: &str) -> Result<(Durability, Replication), String> {
    match s {
        "memory" => Ok((Durability::Memory, Replication::Local)),
        "buffered" => Ok((Durability::Buffered, Replication::Local)),
        "sync" => Ok((Durability::Sync, Replication::Local)),
        "replicated" => Ok((Durability::Buffered, Replication::Replicated)),
        "quorum" => Ok((Durability::Buffered, Replication::Quorum)),
        other => Err(format!(
            "durability {other:?} is not one of memory, buffered, sync, replicated, quorum"
        )),
    }
}

fn resolve(args: ServeArgs) -> Result<Settings, String> {
    let (file, config_file) = match &args.config {
        Some(path) => (read_config(path)?, Some(path.clone())),
        None if Path::new("hvs.toml").exists() => (
            read_config(Path::new("hvs.toml"))?,
            Some(PathBuf::from("hvs.toml")),
        ),
        None => (FileConfig::default(), None),
    };
    let defaults = ServerConfig::default();
    let retention = retention(&args, file.retention)?;
    let data = args
        .data
        .or(file.data)
        .unwrap_or_else(|| PathBuf::from("hvs-data"));
    let (durability, replication) = durability(
        args.durability
            .or(file.durability)
            .as_deref()
            .unwrap_or("buffered"),
    )?;
    let tokens = args.tokens.or(file.tokens).or_else(|| {
        let p = TokenStore::default_path(&data);
        p.exists().then_some(p)
    });
    let server = ServerConfig {
        listen: args.listen.or(file.listen).unwrap_or(defaults.listen),
        admin: Some(args.admin.or(file.admin).unwrap_or_else(|| {
            defaults
                .admin
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7412)))
        })),
        max_frame_bytes: args
            .max_frame_bytes
            .or(file.max_frame_bytes)
            .unwrap_or(defaults.max_frame_bytes),
        max_connections: args
            .max_connections
            .or(file.max_connections)
            .unwrap_or(defaults.max_connections),
        max_in_flight: args
            .max_in_flight
            .or(file.max_in_flight)
            .unwrap_or(defaults.max_in_flight),
        ..defaults
    };
    let section = file.cluster.unwrap_or_default();
    let cluster = cluster(ClusterSection {
        nats: args.nats.or(section.nats),
        instance: args.instance.or(section.instance),
        feed_replicas: args.feed_replicas.or(section.feed_replicas),
        group: args.group.or(section.group),
        advertise: args
            .advertise
            .or(section.advertise)
            .or_else(|| Some(server.listen.to_string())),
        capabilities: args.capabilities.or(section.capabilities),
        lease_ttl_ms: args.lease_ttl_ms.or(section.lease_ttl_ms),
    })?;
    let cluster = match (cluster, replication) {
        (Some(c), r) => Some(ClusterConfig {
            replication: r,
            ..c
        }),
        (None, Replication::Local) => None,
        (None, _) => {
            return Err(
                "durability replicated and quorum need a cluster (--nats, --instance)".into(),
            );
        }
    };
    Ok(Settings {
        server,
        data,
        durability,
        tokens,
        config_file,
        cluster,
        retention,
        mailbox_capacity: args.mailbox_capacity.or(file.mailbox_capacity),
        checkpoint_every: checkpoint_every(args.checkpoint_secs.or(file.checkpoint_secs)),
        cache_bytes: args
            .cache_mb
            .or(file.cache_mb)
            .map(|mb| mb.saturating_mul(1 << 20)),
        quick_repair: args.quick_repair.or(file.quick_repair).unwrap_or(false),
        feed_keep: args.feed_keep.or(file.feed_keep),
    })
}

/// `checkpoint_secs` as the store takes it: 0 means only on a clean stop.
fn checkpoint_every(secs: Option<u64>) -> Option<std::time::Duration> {
    match secs {
        None => Some(hvs::storage::CHECKPOINT_EVERY),
        Some(0) => None,
        Some(s) => Some(std::time::Duration::from_secs(s)),
    }
}

/// The cluster settings: none, or NATS urls and an instance name together.
fn cluster(s: ClusterSection) -> Result<Option<ClusterConfig>, String> {
    match (s.nats, s.instance) {
        (None, None) => Ok(None),
        (Some(urls), Some(instance)) if !urls.is_empty() => Ok(Some(ClusterConfig {
            urls,
            instance,
            replicas: s.feed_replicas.unwrap_or(1),
            group: s.group,
            advertise: s.advertise,
            capabilities: s.capabilities.unwrap_or_default(),
            lease_ttl_ms: s.lease_ttl_ms.unwrap_or(0),
            replication: Replication::Local,
        })),
        _ => Err(
            "a cluster needs both NATS urls (--nats, HVS_NATS, [cluster] nats) \
                  and an instance name (--instance, HVS_INSTANCE, [cluster] instance)"
                .into(),
        ),
    }
}

fn read_config(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the server until Ctrl-C or SIGTERM, then shuts it down cleanly.
/// Its log goes to stderr, at the level `HVS_LOG` sets (a `tracing`
/// filter such as `info` or `hvs_actors=debug`; `warn` by default).
pub(crate) fn serve(args: ServeArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HVS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let settings = match resolve(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error[invalid_config]: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(s: Settings) -> Result<(), String> {
    std::fs::create_dir_all(&s.data).map_err(|e| format!("{}: {e}", s.data.display()))?;
    let tokens = match &s.tokens {
        Some(path) => Some(TokenStore::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let db = s.data.join("hvs.redb");
    let mut store = match s.durability {
        Durability::Memory => hvs::runtime::StoreConfig::memory(),
        d => hvs::runtime::StoreConfig::file(&db, d),
    };
    store.checkpoint_every = s.checkpoint_every;
    store.cache_bytes = s.cache_bytes;
    store.quick_repair = s.quick_repair;
    store.feed_keep = s.feed_keep;
    let cluster = s.cluster.clone();
    let mut config = RuntimeConfig {
        store,
        cluster,
        ..RuntimeConfig::memory()
    };
    config.store.retention = s.retention;
    if let Some(capacity) = s.mailbox_capacity {
        config.hub.mailboxes.capacity = capacity.max(1);
    }
    let auth = tokens
        .as_ref()
        .map(|t| (t.path().to_path_buf(), t.list().len()));
    // The ports first: a client that connects while the store opens waits
    // for its welcome instead of being refused, and `/health` says
    // `starting`.
    let bound = Server::bind(s.server, tokens)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "hvs {} opening {} (connections to {} wait for it)",
        env!("CARGO_PKG_VERSION"),
        db.display(),
        bound.local_addr()
    );
    let runtime = Runtime::open(config)
        .await
        .map_err(|e| format!("opening {}: {e}", db.display()))?;
    let server = bound.serve(runtime).await;
    let addr = server.local_addr();
    println!("hvs {} listening on {addr}", env!("CARGO_PKG_VERSION"));
    if let Some(c) = &s.config_file {
        println!("  config:     {}", c.display());
    }
    println!(
        "  data:       {} ({:?} durability)",
        s.data.display(),
        s.durability
    );
    match &auth {
        Some((path, n)) => println!("  auth:       {n} token(s) from {}", path.display()),
        None => println!(
            "  auth:       none (no tokens file): any model may connect, so the server listens on loopback only; `hvs token create` to add one"
        ),
    }
    if let Some(a) = server.admin_addr() {
        println!("  admin:      http://{a}/health  http://{a}/metrics");
    }
    if let Some(c) = &s.cluster {
        println!(
            "  cluster:    instance {:?}, feed on stream {} via {}",
            c.instance,
            hvs::runtime::stream_name(&c.instance),
            c.urls.join(",")
        );
    }
    println!(
        "  connect:    a model presents its contract: python3 -c \"import hvs_client; hvs_client.connect('contract.json', address='{addr}')\""
    );
    println!("  stop:       Ctrl-C (finishes in-flight work, flushes, exits 0)");
    wait_for_signal().await;
    println!("hvs: stopping: no new connections; finishing in-flight work");
    server.shutdown().await.map_err(|e| e.to_string())?;
    println!("hvs: stopped cleanly");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `hvs status`'s options.
#[derive(Args, Debug)]
pub(crate) struct StatusArgs {
    /// The server's admin address.
    #[arg(long, env = "HVS_ADMIN", default_value = "127.0.0.1:7412")]
    admin: SocketAddr,
    /// Print the server's JSON as it is.
    #[arg(long)]
    json: bool,
}

/// Asks a running server how it is (its `/health` page).
pub(crate) fn status(args: StatusArgs) -> ExitCode {
    match fetch_health(args.admin) {
        Ok(v) if args.json => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(v) => {
            println!(
                "hvs {} at {}: {}",
                v["version"].as_str().unwrap_or("?"),
                v["listen"].as_str().unwrap_or("?"),
                v["status"].as_str().unwrap_or("?")
            );
            if let Some(reason) = v["reason"].as_str() {
                println!("  {reason}");
            }
            if v["status"] == "starting" {
                println!("  up {} s", v["uptime_seconds"]);
                return ExitCode::SUCCESS;
            }
            println!(
                "  up {} s, {} durability, auth {}",
                v["uptime_seconds"],
                v["durability"].as_str().unwrap_or("?"),
                if v["auth"].as_bool() == Some(true) {
                    "on"
                } else {
                    "off"
                }
            );
            println!(
                "  {} connection(s), {} of {} model(s) connected",
                v["connections"], v["models_connected"], v["models"]
            );
            println!(
                "  {} namespace(s), {} vector(s)",
                v["namespaces"], v["vectors"]
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: no HVS server answers at {}: {e}", args.admin);
            ExitCode::FAILURE
        }
    }
}

/// `GET /health` with a plain HTTP/1.0 request: the admin page is one
/// small JSON document, not worth an HTTP client crate.
fn fetch_health(addr: SocketAddr) -> Result<serde_json::Value, String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(5);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: hvs\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body);
    let (head, json) = text.split_once("\r\n\r\n").ok_or("not an HTTP response")?;
    // 503 while the server is starting (its body says so).
    let code = head.split(' ').nth(1);
    let ok = head.starts_with("HTTP/1.") && matches!(code, Some("200" | "503"));
    if !ok || (code == Some("503") && !json.contains("\"starting\"")) {
        return Err(format!(
            "unexpected answer: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    serde_json::from_str(json).map_err(|e| e.to_string())
}
