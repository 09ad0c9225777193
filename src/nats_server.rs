//! A `nats-server` child process for the benchmarks that compare with or
//! run on NATS (`hvs bench messaging --nats`, `hvs bench sync`): JetStream
//! on a free loopback port, its store in a temporary directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error>;

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
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = dir.path().join("nats-server.log");
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path().join("store"))
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
