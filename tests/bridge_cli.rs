//! Shared and cross-manifold bridges end to end (docs/BRIDGES.md), on one
//! real `hvs serve` without a cluster, created and deleted with
//! `hvs bridge …` and checked with the Rust client:
//!
//! - a shared bridge sets its policy between its networks (a strict one
//!   refuses reads across them) and deleting it puts the old one back;
//! - a cross-manifold bridge from a Poincaré ball to a hyperboloid carries
//!   the stored vectors, then follows new writes and deletions; a query in
//!   the ball's coordinates through it equals the exact answer in the ball
//!   (the map is an isometry); it is still there after a restart;
//! - refusals: a federated bridge without a cluster (`no_cluster`), an
//!   unknown bridge (`unknown_bridge`), bad usage (exit 2).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hvs::Manifold;
mod support;

use hvs::runtime::protocol as p;
use hvs::runtime::{Client, ClientConfig, GeometrySpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

fn hvs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hvs"));
    for var in [
        "HVS_SERVER",
        "HVS_TOKEN",
        "HVS_TOKENS",
        "HVS_CONFIG",
        "HVS_NATS",
        "HVS_INSTANCE",
    ] {
        c.env_remove(var);
    }
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `hvs serve` on free loopback ports, restartable on its data; killed
/// when dropped.
struct Server {
    child: Option<Child>,
    dir: PathBuf,
    addr: String,
    admin: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let mut s = Server {
            child: None,
            dir: dir.to_path_buf(),
            addr: format!("127.0.0.1:{}", free_port()),
            admin: free_port(),
        };
        s.spawn();
        s
    }

    /// Starts `hvs serve` on the data and waits until it listens. Ports
    /// were free when picked, not reserved: if another process took one
    /// meanwhile (a client's ephemeral port, say), the server exits and
    /// this picks new ones. Any other early exit fails with its log.
    fn spawn(&mut self) {
        let log = self.dir.join("serve.log");
        for _ in 0..5 {
            let mut child = hvs()
                .current_dir(&self.dir)
                .args(["serve", "--listen", &self.addr])
                .args(["--admin", &format!("127.0.0.1:{}", self.admin)])
                .args(["--data", self.dir.join("data").to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let start = Instant::now();
            while std::net::TcpStream::connect(&self.addr).is_err() {
                if let Some(status) = child.try_wait().unwrap() {
                    let said = std::fs::read_to_string(&log).unwrap_or_default();
                    assert!(
                        said.contains("in use"),
                        "hvs serve exited ({status}) before listening: {said}"
                    );
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(120), "no server");
                std::thread::sleep(Duration::from_millis(20));
            }
            if child.try_wait().unwrap().is_none() {
                self.child = Some(child);
                return;
            }
            self.addr = format!("127.0.0.1:{}", free_port());
            self.admin = free_port();
        }
        panic!("no free ports for hvs serve in five tries");
    }

    /// SIGTERM and the clean exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            assert!(c.wait().unwrap().success());
        }
    }

    /// `hvs bridge ARGS --server ADDR`: exit code, stdout, stderr.
    fn bridge(&self, args: &[&str]) -> (i32, String, String) {
        let out = hvs()
            .arg("bridge")
            .args(args)
            .args(["--server", &self.addr])
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// `hvs bridge ARGS --json`, which must succeed.
    fn bridge_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.bridge(&all);
        assert_eq!(code, 0, "hvs bridge {args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    }

    async fn client(&self, model: &str, region: &str, geometry: &str, dim: usize) -> Client {
        let contract = contract(model, region, geometry, dim);
        Client::connect(ClientConfig::new(self.addr.clone(), contract))
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A model whose home namespace is its id, in network `region`, reading
/// everything.
fn contract(id: &str, region: &str, geometry: &str, dim: usize) -> String {
    support::contract_in(id, region, id, geometry, dim)
}

/// Polls until `check` answers `Some` (90 s at most).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let began = Instant::now();
    loop {
        if let Some(t) = check().await {
            return t;
        }
        assert!(
            began.elapsed() < Duration::from_secs(90),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_bridge_sets_the_policy_between_its_networks_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let lab = server.client("lab-model", "lab", "euclidean", 2).await;
    let ops = server.client("ops-model", "ops", "euclidean", 2).await;
    ops.grant_access(p::GrantArgs {
        namespace: "ops-model".into(),
        model: "lab-model".into(),
        read: true,
        write: false,
    })
    .await
    .unwrap();
    // Before: the default policy (shared) lets lab read ops.
    lab.search("ops-model", vec![0.0, 0.0], 1).await.unwrap();

    let made = server.bridge_json(&[
        "create",
        "shared",
        "walls",
        "--networks",
        "lab,ops",
        "--policy",
        "strict",
    ]);
    assert_eq!(made["spec"]["kind"]["policy"], "strict");
    let e = lab
        .search("ops-model", vec![0.0, 0.0], 1)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "permission_denied");
    // A second bridge over the same pair is refused.
    let (code, _, err) = server.bridge(&[
        "create",
        "shared",
        "again",
        "--networks",
        "ops,lab",
        "--policy",
        "federated",
    ]);
    assert_eq!(
        (code, err.contains("error[bad_request]")),
        (1, true),
        "{err}"
    );

    let (code, out, _) = server.bridge(&["list"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("walls  kind=shared  networks=lab,ops  policy=strict"),
        "{out}"
    );
    server.bridge_json(&["delete", "walls"]);
    lab.search("ops-model", vec![0.0, 0.0], 1).await.unwrap();
}

/// A random point of the Poincaré ball B² (radius below 0.9).
fn ball_point(rng: &mut StdRng) -> Vec<f64> {
    loop {
        let v = vec![rng.random_range(-0.9..0.9), rng.random_range(-0.9..0.9)];
        if v[0] * v[0] + v[1] * v[1] < 0.81 {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_manifold_bridge_carries_vectors_and_queries_between_geometries() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path());
    let ball = server.client("ball", "net", "poincare", 2).await;
    let hyper = server.client("hyper", "net", "hyperboloid", 2).await;
    let mut rng = StdRng::seed_from_u64(7);
    let points: Vec<Vec<f64>> = (0..50).map(|_| ball_point(&mut rng)).collect();
    let wire: Vec<p::NewWireVector> = points
        .iter()
        .map(|v| p::NewWireVector {
            vector: v.clone(),
            region: None,
            metadata: [("n".to_string(), json!(1))].into_iter().collect(),
        })
        .collect();
    let mut ids = ball.batch_store_vectors("ball", wire).await.unwrap();

    server.bridge_json(&[
        "create",
        "cross-manifold",
        "b2h",
        "--from",
        "ball",
        "--to",
        "hyper",
    ]);
    let carried = |n: u64| {
        let server = &server;
        move || async move {
            let s = server.bridge_json(&["status", "b2h"]);
            (s["carried"] == n).then_some(())
        }
    };
    eventually("the first copy", carried(50)).await;
    assert_eq!(hyper.count("hyper", None).await.unwrap(), 50);
    // Each copy is the isometric image of its source, with its metadata.
    let first = hyper
        .search(
            "hyper",
            hvs::geometry::poincare_to_hyperboloid(&points[0], 1.0).unwrap(),
            1,
        )
        .await
        .unwrap();
    assert!(first[0].distance < 1e-9, "{first:?}");
    assert_eq!(first[0].metadata["hvs.source"], json!(ids[0]));
    assert_eq!(first[0].metadata["n"], json!(1));

    // New writes and deletions follow.
    let extra = ball_point(&mut rng);
    let id = ball
        .store_vector(&p::StoreVector {
            namespace: "ball".into(),
            vector: extra.clone(),
            region: None,
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .id;
    ids.push(id);
    ball.delete_vector(&ids[1]).await.unwrap();
    let copies = |source: &str| {
        let f = json!({"eq": ["hvs.source", source]});
        let filter: hvs::runtime::Filter = serde_json::from_value(f).unwrap();
        let hyper = &hyper;
        async move { hyper.count("hyper", Some(filter)).await.unwrap() }
    };
    eventually("the new vector carried, the deleted one gone", || async {
        let done = copies(&ids[50]).await == 1 && copies(&ids[1]).await == 0;
        done.then_some(())
    })
    .await;
    assert_eq!(hyper.count("hyper", None).await.unwrap(), 50);

    // A query in the ball's coordinates equals the exact answer in the ball.
    let b2 = GeometrySpec::Poincare {
        dim: 2,
        curvature: 1.0,
    }
    .build()
    .unwrap();
    let mut live: Vec<(String, Vec<f64>)> = ids
        .iter()
        .zip(points.iter().chain([&extra]))
        .filter(|(i, _)| **i != ids[1])
        .map(|(i, v)| (i.clone(), v.clone()))
        .collect();
    for _ in 0..5 {
        let q = ball_point(&mut rng);
        let query = p::BridgeQuery {
            vector: q.clone(),
            k: 5,
            filter: None,
        };
        let hits = ball.bridge_search("b2h", query).await.unwrap();
        live.sort_by(|a, b| {
            b2.distance(&q, &a.1)
                .unwrap()
                .total_cmp(&b2.distance(&q, &b.1).unwrap())
        });
        let want: Vec<serde_json::Value> = live.iter().take(5).map(|(i, _)| json!(i)).collect();
        let got: Vec<serde_json::Value> = hits
            .hits
            .iter()
            .map(|h| h.metadata["hvs.source"].clone())
            .collect();
        assert_eq!(got, want);
        for (h, (_, v)) in hits.hits.iter().zip(&live) {
            assert!((h.distance - b2.distance(&q, v).unwrap()).abs() < 1e-9);
            assert!(b2.distance(&h.vector, v).unwrap() < 1e-9);
            assert_eq!(h.namespace, "hyper");
        }
    }

    // After a restart the bridge is back and follows again.
    drop((ball, hyper));
    server.stop();
    server.spawn();
    let (code, out, _) = server.bridge(&["list"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("b2h  kind=cross_manifold  from=ball  to=hyper"),
        "{out}"
    );
    let ball = server.client("ball", "net", "poincare", 2).await;
    let hyper = server.client("hyper", "net", "hyperboloid", 2).await;
    ball.store_vector(&p::StoreVector {
        namespace: "ball".into(),
        vector: vec![0.1, 0.2],
        region: None,
        metadata: Default::default(),
    })
    .await
    .unwrap();
    eventually("a write after the restart carried", || async {
        (hyper.count("hyper", None).await.unwrap() == 51).then_some(())
    })
    .await;
    server.bridge_json(&["delete", "b2h"]);
}

#[test]
fn refusals_name_their_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (code, _, err) = server.bridge(&[
        "create",
        "federated",
        "f",
        "--namespace",
        "x",
        "--capability",
        "c",
    ]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error[no_cluster]"), "{err}");
    let (code, _, err) = server.bridge(&["status", "nope"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error[unknown_bridge]"), "{err}");
    let (code, _, err) = server.bridge(&[
        "create",
        "cross-manifold",
        "x",
        "--from",
        "nowhere",
        "--to",
        "else",
    ]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error[unknown_namespace]"), "{err}");
    let (code, _, _) = server.bridge(&[
        "create",
        "shared",
        "s",
        "--networks",
        "a,b",
        "--policy",
        "loose",
    ]);
    assert_eq!(code, 2);
    let (code, _, err) = server.bridge(&[
        "create",
        "shared",
        "s",
        "--networks",
        "a",
        "--policy",
        "strict",
    ]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error[bad_request]"), "{err}");
}
