//! `nats-server` child processes for the benchmarks that compare with or
//! run on NATS (`hvs bench messaging --nats`, `hvs bench sync`, `hvs bench
//! failover`): JetStream on free loopback ports, stores in temporary
//! directories; one server, or a routed cluster of several (so streams can
//! have as many replicas as there are nodes).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `nats-server` to start: `--nats-server`, else `nats-server` on PATH,
/// else Debian's /usr/sbin/nats-server.
pub(crate) fn nats_server_binary(arg: Option<&Path>) -> PathBuf {
    if let Some(p) = arg {
        return p.to_path_buf();
    }
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("nats-server"))
                .find(|c| c.is_file())
        })
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// Fails early, before any other work, if the nats-server `bin` does not run.
pub(crate) fn check(bin: &Path) -> Result<(), Error> {
    match Command::new(bin).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("{} --version failed: {}", bin.display(), out.status).into()),
        Err(e) => Err(format!(
            "cannot run {}: {e} (scripts/install-nats.sh installs Debian's nats-server; \
             or pass --nats-server PATH)",
            bin.display()
        )
        .into()),
    }
}

/// [`nats_server_binary`], once [`check`]ed.
pub(crate) fn checked_binary(arg: Option<&Path>) -> Result<PathBuf, Error> {
    let bin = nats_server_binary(arg);
    check(&bin)?;
    Ok(bin)
}

/// A nats-server with JetStream on a free loopback port, its store in a
/// temporary directory; stopped with SIGTERM (killed if dropped running).
pub(crate) struct NatsServer {
    child: Child,
    pub(crate) url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub(crate) fn start(bin: &Path) -> Result<Self, Error> {
        let port = free_port()?;
        NatsServer::spawn(bin, port, &[])
    }

    /// A nats-server on `port` with more flags (a cluster node's).
    fn spawn(bin: &Path, port: u16, extra: &[String]) -> Result<Self, Error> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("nats-server.log");
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("store"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {}: {e} (scripts/install-nats.sh installs Debian's nats-server; \
                     or pass --nats-server PATH)",
                    bin.display()
                )
            })?;
        let mut server = NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                return Err(format!("nats-server exited ({status}): {}", server.log_tail()).into());
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!(
                    "nats-server did not listen within 30 s: {}",
                    server.log_tail()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// SIGTERM, then whether it shut down cleanly and its exit code.
    /// nats-server 2.9 exits with status 1 after a SIGTERM even when its
    /// shutdown went well (0 only after SIGINT), so clean means: exited by
    /// itself (not killed by a signal), its log ending "Server Exiting..".
    pub(crate) fn stop(mut self) -> std::io::Result<(bool, Option<i32>)> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let status = self.child.wait()?;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let exiting = log
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("Server Exiting.."));
        Ok((status.code().is_some() && exiting, status.code()))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `count` nats-servers with JetStream routed into one cluster (named
/// `hvs`, nodes `n0`, `n1`, …), each on its own free loopback ports and
/// store; stopped with SIGTERM (killed if dropped running).
pub(crate) struct NatsCluster {
    pub(crate) nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub(crate) fn start(bin: &Path, count: usize) -> Result<Self, Error> {
        let routes: Vec<u16> = (0..count).map(|_| free_port()).collect::<Result<_, _>>()?;
        let all = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let nodes = (0..count)
            .map(|k| {
                let flags = [
                    "--server_name".to_string(),
                    format!("n{k}"),
                    "--cluster_name".into(),
                    "hvs".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[k]),
                    "--routes".into(),
                    all.clone(),
                ];
                NatsServer::spawn(bin, free_port()?, &flags)
            })
            .collect::<Result<_, _>>()?;
        Ok(NatsCluster { nodes })
    }

    /// Every node's url.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url.clone()).collect()
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(NatsServer::pid).collect()
    }

    /// Waits until the cluster's JetStream takes a stream with a replica
    /// on every node (its meta leader elected, every node known to it):
    /// until then creating one fails, and a bench would time that.
    pub(crate) async fn wait_ready(&self, patience: Duration) -> Result<(), Error> {
        const PROBE: &str = "HVS_BENCH_PROBE";
        let client = async_nats::connect(self.urls()).await?;
        let js = async_nats::jetstream::new(client);
        let config = async_nats::jetstream::stream::Config {
            name: PROBE.into(),
            subjects: vec!["hvs.bench.probe".into()],
            storage: async_nats::jetstream::stream::StorageType::Memory,
            num_replicas: self.nodes.len(),
            ..Default::default()
        };
        let start = Instant::now();
        loop {
            match js.create_stream(config.clone()).await {
                Ok(_) => {
                    js.delete_stream(PROBE).await?;
                    return Ok(());
                }
                Err(e) if start.elapsed() > patience => {
                    let tails: Vec<String> = self.nodes.iter().map(NatsServer::log_tail).collect();
                    return Err(format!(
                        "the NATS cluster took no {}-replica stream within {patience:?}: {e}\n{}",
                        self.nodes.len(),
                        tails.join("\n")
                    )
                    .into());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Stops every node; whether each shut down cleanly (see
    /// [`NatsServer::stop`]).
    pub(crate) fn stop(self) -> std::io::Result<Vec<bool>> {
        self.nodes
            .into_iter()
            .map(|n| n.stop().map(|(clean, _)| clean))
            .collect()
    }
}
