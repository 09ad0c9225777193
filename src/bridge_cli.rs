//! `hvs bridge create|list|status|delete|search`: an operator manages the
//! bridges of a running server (`docs/BRIDGES.md`) over the wire, with the
//! Rust client, connecting as the model `hvs-operator` (as `hvs sync`
//! does; see `sync_cli.rs` for the contract and the token it needs).
//!
//! Output: one line per bridge (`name kind=… … searches=… carried=…
//! last_error=…`, with `state=… chunks=… vectors=… bytes=… rate=…
//! cursor=… digest_match=…` for a slow bridge), or one line per hit then `answered=… missing=…`;
//! `--json` prints the server's answer as JSON instead. Exit codes: 0, 1
//! with `error[code]: message` when the server refuses or cannot be
//! reached (`unknown_bridge`, `no_cluster`, `unknown_namespace`,
//! `bad_request`, `permission_denied`, `connect_failed`, …), 2 for bad
//! usage (clap's own errors).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use hvs::runtime::ClientError;
use hvs::runtime::protocol::{
    BridgeHits, BridgeIsolation, BridgeKind, BridgeQuery, BridgeSpec, BridgeStatus, SlowProgress,
};
use serde_json::json;

/// `hvs bridge …`: which server, as whom, and what to do.
#[derive(Args)]
pub(crate) struct BridgeArgs {
    #[command(flatten)]
    options: crate::sync_cli::SyncOptions,
    #[command(subcommand)]
    command: BridgeCommand,
}

#[derive(Subcommand)]
enum BridgeCommand {
    /// Create and start a bridge.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Every bridge on the instance, one line each.
    List,
    /// One bridge's status.
    Status {
        /// The bridge's name.
        name: String,
    },
    /// Stop a bridge and forget it (prints its status before).
    Delete {
        /// The bridge's name.
        name: String,
    },
    /// Search through a federated or cross-manifold bridge.
    Search {
        /// The bridge's name.
        name: String,
        /// The query point, comma-separated coordinates.
        #[arg(
            long,
            value_delimiter = ',',
            allow_hyphen_values = true,
            required = true
        )]
        vector: Vec<f64>,
        /// How many hits.
        #[arg(long, default_value_t = 10)]
        k: usize,
    },
}

#[derive(Subcommand)]
enum CreateCommand {
    /// Networks of this instance under one isolation policy between every
    /// pair of them.
    Shared {
        /// The bridge's name (letters, digits, `-` and `_`).
        name: String,
        /// The networks (models' regions), comma-separated, at least two.
        #[arg(long, value_delimiter = ',', required = true)]
        networks: Vec<String>,
        /// strict, shared or federated.
        #[arg(long, value_parser = parse_policy)]
        policy: BridgeIsolation,
    },
    /// A search of a namespace sent to every instance with a capability.
    Federated {
        /// The bridge's name.
        name: String,
        /// The namespace searched on every instance.
        #[arg(long)]
        namespace: String,
        /// Instances started with `--capability` this answer.
        #[arg(long)]
        capability: String,
        /// How long to wait for the instances' answers.
        #[arg(long, default_value_t = 2_000)]
        timeout_ms: u64,
    },
    /// Vectors of one namespace carried into a namespace of another
    /// geometry, and queries carried across.
    CrossManifold {
        /// The bridge's name.
        name: String,
        /// The source namespace.
        #[arg(long)]
        from: String,
        /// The target namespace.
        #[arg(long)]
        to: String,
    },
    /// A namespace of another instance copied here in chunks under a rate
    /// limit, resumable, checked by digest at the end.
    Slow {
        /// The bridge's name.
        name: String,
        /// The instance copied from (its `--instance` name).
        #[arg(long)]
        source: String,
        /// The namespace copied.
        #[arg(long)]
        namespace: String,
        /// The namespace written here (default: the same name).
        #[arg(long)]
        target: Option<String>,
        /// The average rate, in bytes per second of chunks received.
        #[arg(long)]
        bytes_per_second: u64,
        /// Vectors per chunk.
        #[arg(long, default_value_t = 256)]
        chunk_vectors: u32,
    },
}

impl CreateCommand {
    fn spec(self) -> BridgeSpec {
        let (name, kind) = match self {
            Self::Shared {
                name,
                networks,
                policy,
            } => (name, BridgeKind::Shared { networks, policy }),
            Self::Federated {
                name,
                namespace,
                capability,
                timeout_ms,
            } => (
                name,
                BridgeKind::Federated {
                    namespace,
                    capability,
                    timeout_ms,
                },
            ),
            Self::CrossManifold { name, from, to } => {
                (name, BridgeKind::CrossManifold { from, to })
            }
            Self::Slow {
                name,
                source,
                namespace,
                target,
                bytes_per_second,
                chunk_vectors,
            } => (
                name,
                BridgeKind::Slow {
                    source,
                    namespace,
                    target,
                    bytes_per_second,
                    chunk_vectors,
                },
            ),
        };
        BridgeSpec { name, kind }
    }
}

fn parse_policy(s: &str) -> Result<BridgeIsolation, String> {
    s.parse()
}

/// Runs a `hvs bridge` command (clap has already refused bad usage with
/// exit 2): 0, or 1 with `error[code]: message`.
pub(crate) fn run(args: BridgeArgs) -> ExitCode {
    let json = args.options.json;
    crate::sync_cli::run_command(execute(args.options, args.command), |a: Answer| {
        a.print(json)
    })
}

/// What the server answered.
enum Answer {
    One(Box<BridgeStatus>),
    All(Vec<BridgeStatus>),
    Hits(BridgeHits),
}

async fn execute(
    options: crate::sync_cli::SyncOptions,
    command: BridgeCommand,
) -> Result<Answer, ClientError> {
    let client = crate::sync_cli::connect(options).await?;
    let one = |s: BridgeStatus| Answer::One(Box::new(s));
    let answer = match command {
        BridgeCommand::Create(c) => client.bridge_create(c.spec()).await.map(one),
        BridgeCommand::List => client.bridge_list().await.map(Answer::All),
        BridgeCommand::Status { name } => client.bridge_status(&name).await.map(one),
        BridgeCommand::Delete { name } => client.bridge_delete(&name).await.map(one),
        BridgeCommand::Search { name, vector, k } => {
            let query = BridgeQuery {
                vector,
                k,
                filter: None,
            };
            client.bridge_search(&name, query).await.map(Answer::Hits)
        }
    };
    // The answer stands whether or not the goodbye is heard.
    let _ = client.close().await;
    answer
}

impl Answer {
    fn print(&self, json: bool) {
        if json {
            let value = match self {
                Answer::One(s) => serde_json::to_value(s),
                Answer::All(b) => serde_json::to_value(json!({ "bridges": b })),
                Answer::Hits(h) => serde_json::to_value(h),
            };
            println!("{}", value.unwrap_or_default());
            return;
        }
        match self {
            Answer::One(s) => println!("{}", bridge_line(s)),
            Answer::All(b) if b.is_empty() => eprintln!("no bridges"),
            Answer::All(b) => b.iter().for_each(|s| println!("{}", bridge_line(s))),
            Answer::Hits(h) => {
                for hit in &h.hits {
                    println!(
                        "{}  instance={}  namespace={}  distance={}",
                        hit.id, hit.instance, hit.namespace, hit.distance
                    );
                }
                let refused: Vec<String> = h
                    .refused
                    .iter()
                    .map(|r| format!("{}({})", r.instance, r.code))
                    .collect();
                println!(
                    "answered={}  missing={}  refused={}",
                    list(&h.answered),
                    list(&h.missing),
                    list(&refused)
                );
            }
        }
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// What a bridge connects, in a few words without spaces.
fn kind_text(kind: &BridgeKind) -> String {
    match kind {
        BridgeKind::Shared { networks, policy } => {
            format!(
                "shared  networks={}  policy={}",
                networks.join(","),
                policy.name()
            )
        }
        BridgeKind::Federated {
            namespace,
            capability,
            timeout_ms,
        } => format!(
            "federated  namespace={namespace}  capability={capability}  timeout_ms={timeout_ms}"
        ),
        BridgeKind::CrossManifold { from, to } => {
            format!("cross_manifold  from={from}  to={to}")
        }
        BridgeKind::Slow {
            source,
            namespace,
            target,
            bytes_per_second,
            chunk_vectors,
        } => format!(
            "slow  source={source}  namespace={namespace}  target={}  \
             bytes_per_second={bytes_per_second}  chunk_vectors={chunk_vectors}",
            target.as_deref().unwrap_or(namespace)
        ),
    }
}

/// One bridge as `name kind=… …`; `last_error` quoted.
fn bridge_line(s: &BridgeStatus) -> String {
    let last_error = s
        .last_error
        .as_deref()
        .map_or_else(|| "-".to_string(), |e| format!("{e:?}"));
    format!(
        "{}  kind={}  searches={}  partial={}  carried={}  refused={}  position={}{}  \
         last_error={last_error}",
        s.spec.name,
        kind_text(&s.spec.kind),
        s.searches,
        s.partial,
        s.carried,
        s.refused,
        s.position,
        s.slow.as_ref().map(progress_text).unwrap_or_default(),
    )
}

/// A slow bridge's progress, `  state=… chunks=… …` (`-` for what is not
/// known yet).
fn progress_text(p: &SlowProgress) -> String {
    let or_dash = |o: Option<&str>| o.unwrap_or("-").to_string();
    format!(
        "  state={}  chunks={}  vectors={}  bytes={}  rate={}B/s  cursor={}  \
         digest_match={}  source_digest={}  target_digest={}",
        p.state.name(),
        p.chunks,
        p.vectors,
        p.bytes,
        p.bytes_per_second,
        or_dash(p.cursor.as_deref()),
        p.digest_match.map_or("-".to_string(), |m| m.to_string()),
        or_dash(p.source_digest.as_deref()),
        or_dash(p.target_digest.as_deref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_is_one_line_of_fields() {
        let s = BridgeStatus {
            spec: BridgeSpec {
                name: "nets".into(),
                kind: BridgeKind::Shared {
                    networks: vec!["lab".into(), "ops".into()],
                    policy: BridgeIsolation::Strict,
                },
            },
            searches: 0,
            partial: 0,
            carried: 0,
            refused: 0,
            position: 0,
            last_error: None,
            slow: None,
        };
        assert_eq!(
            bridge_line(&s),
            "nets  kind=shared  networks=lab,ops  policy=strict  searches=0  partial=0  \
             carried=0  refused=0  position=0  last_error=-"
        );
    }

    #[test]
    fn a_slow_bridge_shows_its_progress() {
        let s = BridgeStatus {
            spec: BridgeSpec {
                name: "copy".into(),
                kind: BridgeKind::Slow {
                    source: "a".into(),
                    namespace: "docs".into(),
                    target: None,
                    bytes_per_second: 1000,
                    chunk_vectors: 10,
                },
            },
            searches: 0,
            partial: 0,
            carried: 5,
            refused: 0,
            position: 0,
            last_error: None,
            slow: Some(SlowProgress {
                chunks: 1,
                vectors: 5,
                bytes: 300,
                ..SlowProgress::default()
            }),
        };
        assert_eq!(
            bridge_line(&s),
            "copy  kind=slow  source=a  namespace=docs  target=docs  bytes_per_second=1000  \
             chunk_vectors=10  searches=0  partial=0  carried=5  refused=0  position=0  \
             state=running  chunks=1  vectors=5  bytes=300  rate=0B/s  cursor=-  \
             digest_match=-  source_digest=-  target_digest=-  last_error=-"
        );
    }
}
