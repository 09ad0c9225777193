//! Processes for end-to-end tests of many instances: real `nats-server`s
//! (one, or a routed cluster of three) with JetStream on free loopback
//! ports, and real `hvs serve` processes on their own data directories.
//! Included by the tests that need it (`mod support;`): not every test
//! uses every helper.
#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hvs::runtime::{Client, ClientConfig};
use serde_json::json;

/// How long any wait for convergence may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(90);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_listening(port: u16, what: &str, child: &mut Child) {
    if let Err(why) = listening(port, child) {
        panic!("{what}: {why}");
    }
}

/// Waits until `port` takes connections, or says why it never will.
fn listening(port: u16, child: &mut Child) -> Result<(), String> {
    let began = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited before listening: {status}"));
        }
        if began.elapsed() > PATIENCE {
            return Err("does not listen".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Debian's nats-server, installed by `scripts/install-nats.sh` (once,
/// here, if the machine lacks it: `cargo test` sets up what it needs).
pub fn nats_binary() -> PathBuf {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let find = || {
        let on_path = Command::new("sh")
            .args(["-c", "command -v nats-server"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let bin = on_path.map_or_else(|| PathBuf::from("/usr/sbin/nats-server"), PathBuf::from);
        bin.exists().then_some(bin)
    };
    let found = FOUND.get_or_init(|| {
        find().or_else(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install-nats.sh");
            let installed = Command::new("sh").arg(script).status();
            assert!(
                installed.is_ok_and(|s| s.success()),
                "nats-server is missing and scripts/install-nats.sh could not install it"
            );
            find()
        })
    });
    found
        .clone()
        .expect("scripts/install-nats.sh ran, yet no nats-server is found")
}

/// A nats-server with JetStream (file storage), restartable on its port
/// and store.
pub struct Nats {
    pub dir: PathBuf,
    pub port: u16,
    /// Cluster flags (`--cluster`, `--routes`, …), empty for a lone server.
    pub cluster_args: Vec<String>,
    pub child: Option<Child>,
}

impl Nats {
    pub fn start(dir: &Path) -> Nats {
        let mut n = Nats {
            dir: dir.join("nats"),
            port: free_port(),
            cluster_args: Vec::new(),
            child: None,
        };
        n.spawn();
        n
    }

    /// `count` nats-servers with JetStream, routed into one cluster
    /// named `hvs` (so streams can have up to `count` replicas), each in
    /// `dir/nats-<k>`.
    pub fn start_cluster(dir: &Path, count: usize) -> Vec<Nats> {
        let routes: Vec<u16> = (0..count).map(|_| free_port()).collect();
        let all = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes: Vec<Nats> = (0..count)
            .map(|k| Nats {
                dir: dir.join(format!("nats-{k}")),
                port: free_port(),
                cluster_args: vec![
                    "--server_name".into(),
                    format!("n{k}"),
                    "--cluster_name".into(),
                    "hvs".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[k]),
                    "--routes".into(),
                    all.clone(),
                ],
                child: None,
            })
            .collect();
        for n in &mut nodes {
            n.spawn();
        }
        nodes
    }

    /// Every node's url, comma-separated (as `--nats` takes them).
    pub fn urls(nodes: &[Nats]) -> String {
        nodes.iter().map(Nats::url).collect::<Vec<_>>().join(",")
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn spawn(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("log"))
            .unwrap();
        let mut child = Command::new(nats_binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.join("store"))
            .args(&self.cluster_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_listening(self.port, "nats-server", &mut child);
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One `hvs serve` in the cluster, restartable on its data and ports.
pub struct Instance {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
    pub admin: u16,
    /// The NATS urls, comma-separated.
    pub nats: String,
    /// More `hvs serve` arguments.
    pub extra: Vec<String>,
    pub child: Option<Child>,
    pub starts: usize,
}

impl Instance {
    pub fn start(root: &Path, name: &str, nats: &Nats) -> Instance {
        Instance::start_with(root, name, &nats.url(), &[])
    }

    /// An instance on the NATS servers `nats` (comma-separated urls),
    /// with more `hvs serve` arguments.
    pub fn start_with(root: &Path, name: &str, nats: &str, extra: &[&str]) -> Instance {
        let mut i = Instance {
            name: name.to_string(),
            dir: root.join(name),
            port: free_port(),
            admin: free_port(),
            nats: nats.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            starts: 0,
        };
        i.spawn();
        i
    }

    /// The address clients connect to.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn spawn(&mut self) {
        std::fs::create_dir_all(&self.dir).unwrap();
        // A first start may find a port taken meanwhile (a free port is
        // only free when asked): it tries again on others. A restart keeps
        // its ports, which clients know.
        for attempt in 0.. {
            let n = self.starts;
            self.starts += 1;
            let mut child = self.command(n).spawn().unwrap();
            match listening(self.port, &mut child) {
                Ok(()) => {
                    self.child = Some(child);
                    return;
                }
                Err(why) => {
                    let log = std::fs::read_to_string(self.dir.join(format!("serve-{n}.err")))
                        .unwrap_or_default();
                    let in_use = log.contains("in use");
                    if n == 0 && in_use && attempt < 3 {
                        (self.port, self.admin) = (free_port(), free_port());
                        self.starts = 0;
                        continue;
                    }
                    panic!("hvs serve {}: {why}; its log:\n{log}", self.name);
                }
            }
        }
    }

    fn command(&self, n: usize) -> Command {
        let out = std::fs::File::create(self.dir.join(format!("serve-{n}.out"))).unwrap();
        let err = std::fs::File::create(self.dir.join(format!("serve-{n}.err"))).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_hvs"));
        c.current_dir(&self.dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--admin", &format!("127.0.0.1:{}", self.admin)])
            .args(["--data", self.data().to_str().unwrap()])
            .args(if self.extra.iter().any(|a| a == "--durability") {
                &[][..]
            } else {
                &["--durability", "buffered"][..]
            })
            .args(["--nats", &self.nats, "--instance", &self.name])
            .args(&self.extra)
            .stdout(out)
            .stderr(err);
        c
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, …) to the running server.
    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args([format!("-{signal}"), c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -{signal} {}", self.name);
        }
    }

    /// `GET path` of its admin endpoint, as JSON.
    pub fn admin_json(&self, path: &str) -> Option<serde_json::Value> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.admin)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: hvs\r\n\r\n").ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        serde_json::from_str(body.split_once("\r\n\r\n")?.1).ok()
    }

    /// Its role in its failover group (`primary`, `mirror`, …), from
    /// `/health`; `None` if it does not answer.
    pub fn role(&self) -> Option<String> {
        let h = self.admin_json("/health")?;
        h["cluster"]["group"]["role"]["role"]
            .as_str()
            .map(str::to_string)
    }

    /// SIGTERM, and the clean exit the server promises.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let status = c.wait().unwrap();
            assert!(status.success(), "{} stopped with {status}", self.name);
        }
    }

    pub async fn client(&self, model: &str, namespace: &str, geometry: &str, dim: usize) -> Client {
        let contract = contract(model, namespace, geometry, dim);
        let config = ClientConfig::new(format!("127.0.0.1:{}", self.port), contract);
        Client::connect(config).await.unwrap()
    }

    /// `hvs inspect --digest` of the stopped instance's data.
    pub fn digest(&self) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_hvs"))
            .args(["inspect", "--digest", "--data"])
            .arg(self.data())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "inspect --digest: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill9();
        // A failing test shows what each server logged (HVS_LOG sets how
        // much; warnings by default).
        if std::thread::panicking() {
            for n in 0..self.starts {
                let log = std::fs::read_to_string(self.dir.join(format!("serve-{n}.err")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- {} (start {n}), last lines of its log:", self.name);
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A nats-server and instances named `names`, in one temporary directory
/// (removed last, once every process is gone).
pub struct Cluster {
    pub instances: Vec<Instance>,
    pub nats: Nats,
    pub _root: tempfile::TempDir,
}

impl Cluster {
    pub fn start(names: &[&str]) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let nats = Nats::start(root.path());
        let instances = names
            .iter()
            .map(|n| Instance::start(root.path(), n, &nats))
            .collect();
        Cluster {
            instances,
            nats,
            _root: root,
        }
    }

    /// The model `w` on instance `i`, writing its namespace `shared` (H²).
    pub async fn writer(&self, i: usize) -> Client {
        self.instances[i]
            .client("w", "shared", "hyperboloid", 2)
            .await
    }
}

pub fn contract(id: &str, namespace: &str, geometry: &str, dim: usize) -> String {
    contract_in(id, "sync", namespace, geometry, dim)
}

/// The same contract, in network (region) `region`.
pub fn contract_in(id: &str, region: &str, namespace: &str, geometry: &str, dim: usize) -> String {
    json!({
        "contract_version": "1.0.0",
        "model": {"id": id, "name": id, "version": "1", "type": "test", "capabilities": []},
        "hvs_binding": {"hvs_id": "sync", "region": region, "namespace": namespace,
                        "geometry": geometry, "dimension": dim},
        "vector_spec": {"input_dimension": dim, "output_dimension": dim,
                        "encoding": "geometric", "encoder": {"type": "identity"}},
        "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
            "max_message_size_bytes": 1 << 20, "timeout_ms": 10_000,
            "retry": {"max_attempts": 100, "backoff_ms": [20]}},
        "permissions": {"read_namespaces": ["*"], "write_namespaces": [namespace],
                        "broadcast": true, "query_other_models": true},
        "resource_limits": {"max_vectors_per_second": 1_000_000_000u64,
                            "max_storage_mb": 1_000_000,
                            "max_queries_per_second": 1_000_000_000u64}
    })
    .to_string()
}

/// Every vector of `namespace` (with coordinates when `with_vector`),
/// page by page in id order.
pub async fn scroll_all(
    c: &Client,
    namespace: &str,
    with_vector: bool,
) -> Vec<hvs::runtime::protocol::WireVector> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .scroll(hvs::runtime::protocol::Scroll {
                namespace: namespace.into(),
                after: after.clone(),
                limit: 1000,
                filter: None,
                with_vector,
            })
            .await
            .unwrap();
        out.extend(page.vectors);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// Polls `check` until it answers `Some`, or fails after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let began = Instant::now();
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(began.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
