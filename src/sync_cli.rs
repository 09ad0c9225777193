//! `hvs sync create|list|status|pause|resume|delete|conflicts`: an
//! operator manages the sync jobs of a running server (`docs/SYNC.md`)
//! over the wire, with the Rust client.
//!
//! The CLI connects as the model `hvs-operator`, with a minimal contract
//! made here (its home namespace `hvs-operator`, Euclidean, 3-d): like any
//! model, that model and its namespace then appear on the instance. The
//! sync operations are operators' operations: a server with tokens admits
//! them only from a connection whose token covers the model
//! `hvs-operator` and whose namespaces include `"*"` (`--token`,
//! `HVS_TOKEN`); a server without tokens admits anyone on loopback.
//!
//! Output: one line per job (`name source=… mode=… state=… applied=…
//! conflicts=… pending=… lag_ms=… last_error=…`) or per conflict; `--json`
//! prints the server's answer as JSON instead. Exit codes: 0, 1 with
//! `error[code]: message` when the server refuses or cannot be reached
//! (`no_cluster` on an instance without a cluster, `unknown_sync_job`,
//! `bad_request`, `permission_denied`, `connect_failed`, …), 2 for bad
//! usage (clap's own errors).

use std::process::ExitCode;

use clap::{ArgGroup, Args, Subcommand};
use hvs::runtime::protocol::{ConflictStrategy, SyncConflict, SyncMode, SyncSpec, SyncStatus};
use hvs::runtime::{Client, ClientConfig, ClientError};
use hvs::storage::Filter;
use serde_json::json;

/// The model the CLI connects as.
const OPERATOR_MODEL: &str = "hvs-operator";

/// `hvs sync …`: which server, as whom, and what to do.
#[derive(Args)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    options: SyncOptions,
    #[command(subcommand)]
    command: SyncCommand,
}

/// Options every `hvs sync` command takes (before or after its name).
#[derive(Args)]
pub(crate) struct SyncOptions {
    /// The server's model port.
    #[arg(
        long,
        env = "HVS_SERVER",
        default_value = "127.0.0.1:7411",
        value_name = "ADDR",
        global = true
    )]
    pub(crate) server: String,
    /// The operator's token: it must admit the model `hvs-operator` and
    /// its namespaces must include "*" (not needed when the server has no
    /// tokens file).
    #[arg(long, env = "HVS_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// Print the server's answer as JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Create and start a sync job: copy another instance's changes into
    /// this one.
    Create(CreateArgs),
    /// Every sync job on the instance, one line each.
    List,
    /// One job's status.
    Status {
        /// The job's name.
        name: String,
    },
    /// Pause a job; it resumes where it stopped.
    Pause {
        /// The job's name.
        name: String,
    },
    /// Resume a paused job.
    Resume {
        /// The job's name.
        name: String,
    },
    /// Stop a job and forget it (prints its status before).
    Delete {
        /// The job's name.
        name: String,
    },
    /// The conflicts a job met, oldest first, from the audit log.
    Conflicts {
        /// The job's name.
        name: String,
        /// Only those after this audit sequence number (to page).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many (the server answers at most 10,000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// `hvs sync create`: exactly one mode, `--full`, `--namespaces` (with
/// `--regions`) or `--filter` (with `--namespaces`).
#[derive(Args)]
#[command(group(
    ArgGroup::new("mode")
        .required(true)
        .multiple(true)
        .args(["full", "namespaces", "filter"])
))]
struct CreateArgs {
    /// The job's name on this instance (letters, digits, `-` and `_`).
    name: String,
    /// The source instance (its `[cluster] instance` name).
    #[arg(long, value_name = "INSTANCE")]
    source: String,
    /// Copy every namespace of the source, deletions included.
    #[arg(long, conflicts_with_all = ["namespaces", "regions", "filter"])]
    full: bool,
    /// Copy these namespaces (comma-separated); with `--filter`, copy only
    /// within them.
    #[arg(long, value_delimiter = ',', value_name = "NS,…")]
    namespaces: Vec<String>,
    /// With `--namespaces`: only vectors of these regions (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "R,…",
        requires = "namespaces",
        conflicts_with = "filter"
    )]
    regions: Vec<String>,
    /// Copy only vectors whose metadata matches this filter, in search's
    /// filter language as JSON: '{"eq": ["topic", "rust"]}'.
    #[arg(long, value_name = "JSON", value_parser = parse_filter)]
    filter: Option<Filter>,
    /// How conflicts are settled: last_write_wins, highest_version, merge,
    /// geometric_mean or keep_target.
    #[arg(long, default_value = "last_write_wins", value_parser = parse_strategy)]
    strategy: ConflictStrategy,
    /// Catch up with what the source's feed holds, then stop (one-shot)
    /// instead of following it.
    #[arg(long)]
    once: bool,
}

impl CreateArgs {
    fn spec(self) -> SyncSpec {
        let mode = match (self.full, self.filter) {
            (true, _) => SyncMode::Full,
            (false, Some(filter)) => SyncMode::Selective {
                filter,
                namespaces: self.namespaces,
            },
            (false, None) => SyncMode::Partial {
                namespaces: self.namespaces,
                regions: self.regions,
            },
        };
        SyncSpec {
            name: self.name,
            source: self.source,
            mode,
            strategy: self.strategy,
            follow: !self.once,
        }
    }
}

fn parse_strategy(s: &str) -> Result<ConflictStrategy, String> {
    s.parse()
}

fn parse_filter(s: &str) -> Result<Filter, String> {
    serde_json::from_str(s).map_err(|e| format!("not a filter: {e}"))
}

/// Runs a `hvs sync` command (clap has already refused bad usage with
/// exit 2): 0, or 1 with `error[code]: message`.
pub(crate) fn run(args: SyncArgs) -> ExitCode {
    let json = args.options.json;
    run_command(execute(args.options, args.command), |a: Answer| {
        a.print(json)
    })
}

/// Runs an operator's command (`hvs sync`, `hvs bridge`) to its end and
/// prints its answer: 0, or 1 with `error[code]: message`.
pub(crate) fn run_command<A>(
    work: impl std::future::Future<Output = Result<A, ClientError>>,
    print: impl FnOnce(A),
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error[internal]: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(answer) => {
            print(answer);
            ExitCode::SUCCESS
        }
        Err(e) => {
            let message = match &e {
                ClientError::Server(w) => w.message.clone(),
                other => other.to_string(),
            };
            eprintln!("error[{}]: {message}", e.code());
            ExitCode::FAILURE
        }
    }
}

/// What the server answered.
enum Answer {
    Job(Box<SyncStatus>),
    Jobs(Vec<SyncStatus>),
    Conflicts(Vec<SyncConflict>),
}

async fn execute(options: SyncOptions, command: SyncCommand) -> Result<Answer, ClientError> {
    let client = connect(options).await?;
    let answer = match command {
        SyncCommand::Create(a) => client.sync_create(a.spec()).await.map(Answer::job),
        SyncCommand::List => client.sync_list().await.map(Answer::Jobs),
        SyncCommand::Status { name } => client.sync_status(&name).await.map(Answer::job),
        SyncCommand::Pause { name } => client.sync_pause(&name).await.map(Answer::job),
        SyncCommand::Resume { name } => client.sync_resume(&name).await.map(Answer::job),
        SyncCommand::Delete { name } => client.sync_delete(&name).await.map(Answer::job),
        SyncCommand::Conflicts { name, after, limit } => client
            .sync_conflicts(&name, after, limit)
            .await
            .map(Answer::Conflicts),
    };
    // The answer stands whether or not the goodbye is heard.
    let _ = client.close().await;
    answer
}

/// Connects as the operator's model, for one command.
pub(crate) async fn connect(options: SyncOptions) -> Result<Client, ClientError> {
    let mut config = ClientConfig::new(options.server, operator_contract());
    config.token = options.token;
    // One request and done: a dropped connection is reported, not retried.
    config.reconnect = false;
    Client::connect(config).await
}

/// The contract of the model the CLI connects as: the least a contract
/// must say, writing only its own namespace.
pub(crate) fn operator_contract() -> String {
    json!({
        "contract_version": "1.0.0",
        "model": {"id": OPERATOR_MODEL, "name": "HVS operator (hvs sync)", "version": "1",
                  "type": "operator", "capabilities": []},
        "hvs_binding": {"hvs_id": "hvs", "region": OPERATOR_MODEL, "namespace": OPERATOR_MODEL,
                        "geometry": "euclidean", "dimension": 3},
        "vector_spec": {"input_dimension": 3, "output_dimension": 3,
                        "encoding": "geometric", "encoder": {"type": "identity"}},
        "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
            "max_message_size_bytes": 65_536, "timeout_ms": 30_000,
            "retry": {"max_attempts": 1, "backoff_ms": [100]}},
        "permissions": {"read_namespaces": [OPERATOR_MODEL], "write_namespaces": [OPERATOR_MODEL],
                        "broadcast": false, "query_other_models": false},
        "resource_limits": {"max_vectors_per_second": 10, "max_storage_mb": 1,
                            "max_queries_per_second": 10}
    })
    .to_string()
}

impl Answer {
    fn job(status: SyncStatus) -> Answer {
        Answer::Job(Box::new(status))
    }

    fn print(&self, json: bool) {
        if json {
            let value = match self {
                Answer::Job(s) => serde_json::to_value(s),
                Answer::Jobs(jobs) => serde_json::to_value(json!({ "jobs": jobs })),
                Answer::Conflicts(c) => serde_json::to_value(json!({ "conflicts": c })),
            };
            println!("{}", value.unwrap_or_default());
            return;
        }
        match self {
            Answer::Job(s) => println!("{}", job_line(s)),
            Answer::Jobs(jobs) if jobs.is_empty() => eprintln!("no sync jobs"),
            Answer::Jobs(jobs) => jobs.iter().for_each(|s| println!("{}", job_line(s))),
            Answer::Conflicts(c) if c.is_empty() => eprintln!("no conflicts"),
            Answer::Conflicts(c) => c.iter().for_each(|c| println!("{}", conflict_line(c))),
        }
    }
}

/// One job as `name source=… mode=… …`: values without spaces, except
/// `last_error`, which is quoted.
fn job_line(s: &SyncStatus) -> String {
    let state = serde_json::to_value(s.state)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let last_error = s
        .last_error
        .as_deref()
        .map_or_else(|| "-".to_string(), |e| format!("{e:?}"));
    format!(
        "{}  source={}  mode={}  strategy={}  follow={}  state={state}  applied={}  conflicts={}  \
         pending={}  lag_ms={}  last_error={last_error}",
        s.spec.name,
        s.spec.source,
        mode_text(&s.spec.mode),
        s.spec.strategy.name(),
        s.spec.follow,
        s.applied,
        s.conflicts.total(),
        s.pending,
        s.lag_ms,
    )
}

/// `full`, `partial[a,b]`, `partial[a]/regions[r]`, `selective{filter}` or
/// `selective{filter}[a,b]`.
fn mode_text(mode: &SyncMode) -> String {
    match mode {
        SyncMode::Full => "full".into(),
        SyncMode::Mirror => "mirror".into(),
        SyncMode::Partial {
            namespaces,
            regions,
        } if regions.is_empty() => format!("partial[{}]", namespaces.join(",")),
        SyncMode::Partial {
            namespaces,
            regions,
        } => format!(
            "partial[{}]/regions[{}]",
            namespaces.join(","),
            regions.join(",")
        ),
        SyncMode::Selective { filter, namespaces } => {
            let filter = serde_json::to_string(filter).unwrap_or_default();
            if namespaces.is_empty() {
                format!("selective{filter}")
            } else {
                format!("selective{filter}[{}]", namespaces.join(","))
            }
        }
    }
}

fn conflict_line(c: &SyncConflict) -> String {
    format!(
        "{}  at_ms={}  namespace={}  vector={}  {}",
        c.seq,
        c.at_ms,
        c.namespace.as_deref().unwrap_or("-"),
        c.vector.as_deref().unwrap_or("-"),
        c.detail
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvs::runtime::protocol::{ConflictCounts, SyncState};

    fn status(mode: SyncMode, last_error: Option<&str>) -> SyncStatus {
        SyncStatus {
            spec: SyncSpec {
                name: "from-a".into(),
                source: "a".into(),
                mode,
                strategy: ConflictStrategy::Merge,
                follow: false,
            },
            state: SyncState::Paused,
            applied: 7,
            unchanged: 1,
            skipped: 2,
            refused: 1,
            conflicts: ConflictCounts {
                kept_target: 1,
                took_source: 2,
                combined: 3,
            },
            position: 11,
            pending: 4,
            lag_ms: 25,
            last_error: last_error.map(String::from),
        }
    }

    #[test]
    fn a_job_is_one_line_of_fields() {
        let partial = SyncMode::Partial {
            namespaces: vec!["x".into(), "y".into()],
            regions: vec!["r".into()],
        };
        assert_eq!(
            job_line(&status(partial, Some("change 9: no (geometry_mismatch)"))),
            "from-a  source=a  mode=partial[x,y]/regions[r]  strategy=merge  follow=false  \
             state=paused  applied=7  conflicts=6  pending=4  lag_ms=25  \
             last_error=\"change 9: no (geometry_mismatch)\""
        );
        let line = job_line(&status(SyncMode::Full, None));
        assert!(line.contains("  mode=full  "), "{line}");
        assert!(line.ends_with("  last_error=-"), "{line}");
    }

    #[test]
    fn modes_read_back_their_scope() {
        let filter: Filter = serde_json::from_str(r#"{"eq": ["topic", "rust"]}"#).unwrap();
        let selective = |namespaces: Vec<String>| SyncMode::Selective {
            filter: filter.clone(),
            namespaces,
        };
        assert_eq!(
            mode_text(&selective(vec![])),
            r#"selective{"eq":["topic","rust"]}"#
        );
        assert_eq!(
            mode_text(&selective(vec!["x".into()])),
            r#"selective{"eq":["topic","rust"]}[x]"#
        );
        let partial = SyncMode::Partial {
            namespaces: vec!["x".into()],
            regions: vec![],
        };
        assert_eq!(mode_text(&partial), "partial[x]");
    }

    #[test]
    fn create_builds_the_spec_of_its_mode() {
        let args = CreateArgs {
            name: "j".into(),
            source: "b".into(),
            full: false,
            namespaces: vec!["x".into()],
            regions: vec!["r".into()],
            filter: None,
            strategy: ConflictStrategy::KeepTarget,
            once: true,
        };
        let spec = args.spec();
        assert_eq!(spec.mode.name(), "partial");
        assert_eq!(spec.strategy, ConflictStrategy::KeepTarget);
        assert!(!spec.follow);
    }
}
