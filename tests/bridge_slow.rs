//! Slow bridges end to end (docs/BRIDGES.md): a nats-server and two real
//! `hvs serve` processes, `src` holding the namespaces and `dst` copying
//! them under a rate limit.
//!
//! - a copy created with `hvs bridge create slow` ends `done` with equal
//!   digests, and its average rate over the whole copy does not beat the
//!   limit (elapsed ≥ bytes / limit × 0.8);
//! - a copy whose target is killed (SIGKILL) mid-copy resumes from its
//!   cursor after the restart (the chunks fetched in all stay within one
//!   of the chunks the namespace makes), and one whose source is killed
//!   mid-copy waits for it and goes on; it ends with equal digests.

mod support;

use std::process::Command;
use std::time::Instant;

use hvs::runtime::Client;
use hvs::runtime::protocol as p;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{Cluster, eventually};

const DIM: usize = 8;
const LIMIT: u64 = 100_000;
const CHUNK: u32 = 100;

/// Stores `n` random points of R⁸ in `namespace` on `src`.
async fn fill(c: &Client, namespace: &str, n: usize, rng: &mut StdRng) {
    for start in (0..n).step_by(500) {
        let vectors: Vec<p::NewWireVector> = (start..n.min(start + 500))
            .map(|i| {
                let mut metadata = serde_json::Map::new();
                metadata.insert("i".into(), i.into());
                p::NewWireVector {
                    vector: (0..DIM).map(|_| rng.random_range(-1.0..1.0)).collect(),
                    region: None,
                    metadata: metadata.into_iter().collect(),
                }
            })
            .collect();
        c.batch_store_vectors(namespace, vectors).await.unwrap();
    }
}

async fn progress(c: &Client, name: &str) -> Option<(p::BridgeStatus, p::SlowProgress)> {
    let s = c.bridge_status(name).await.ok()?;
    let progress = s.slow.clone()?;
    Some((s, progress))
}

/// Polls until the bridge is no longer running; its status then.
async fn finished(c: &Client, name: &str) -> p::BridgeStatus {
    eventually(&format!("bridge {name} to finish"), || async {
        let (s, progress) = progress(c, name).await?;
        (progress.state != p::SlowState::Running).then_some(s)
    })
    .await
}

/// `hvs bridge …` against `server`; its stdout.
fn cli(server: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hvs"))
        .env_remove("HVS_TOKEN")
        .args(["bridge", "--server", server])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hvs bridge {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_copy_holds_its_rate_resumes_after_either_side_is_killed_and_ends_with_equal_digests()
 {
    let mut cluster = Cluster::start(&["src", "dst"]);
    let mut rng = StdRng::seed_from_u64(13);
    let source = cluster.instances[0]
        .client("w", "small", "euclidean", DIM)
        .await;
    fill(&source, "small", 1_000, &mut rng).await;
    let big = cluster.instances[0]
        .client("v", "docs", "euclidean", DIM)
        .await;
    fill(&big, "docs", 3_000, &mut rng).await;
    drop((source, big));

    // 1. An undisturbed copy, made with the CLI: done, digests equal, and
    //    the average rate over the copy within the limit.
    let dst = cluster.instances[1].addr();
    let began = Instant::now();
    let line = cli(
        &dst,
        &[
            "create",
            "slow",
            "first",
            "--source",
            "src",
            "--namespace",
            "small",
            "--target",
            "small-copy",
            "--bytes-per-second",
            &LIMIT.to_string(),
            "--chunk-vectors",
            &CHUNK.to_string(),
        ],
    );
    assert!(
        line.contains("kind=slow") && line.contains("state=running"),
        "{line}"
    );
    let client = cluster.instances[1]
        .client("ops", "ops", "euclidean", DIM)
        .await;
    let status = finished(&client, "first").await;
    let elapsed = began.elapsed().as_secs_f64();
    let done = status.slow.clone().unwrap();
    assert_eq!(done.state, p::SlowState::Done, "{status:?}");
    assert_eq!(done.digest_match, Some(true));
    assert_eq!(done.source_digest, done.target_digest);
    assert_eq!((done.chunks, done.vectors), (10, 1_000), "{done:?}");
    assert_eq!(status.carried, 1_000);
    let floor = done.bytes as f64 / LIMIT as f64 * 0.8;
    assert!(
        elapsed >= floor,
        "{} bytes in {elapsed:.2} s at a limit of {LIMIT} B/s",
        done.bytes
    );
    eprintln!(
        "first: {} bytes in {elapsed:.2} s = {:.0} B/s (limit {LIMIT}); reported {} B/s",
        done.bytes,
        done.bytes as f64 / elapsed,
        done.bytes_per_second
    );
    let json = cli(&dst, &["status", "first", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["slow"]["state"], "done");

    // 2. A copy of 30 chunks; the target is killed mid-copy.
    let spec = p::BridgeSpec {
        name: "second".into(),
        kind: p::BridgeKind::Slow {
            source: "src".into(),
            namespace: "docs".into(),
            target: None,
            bytes_per_second: LIMIT,
            chunk_vectors: CHUNK,
        },
    };
    client.bridge_create(spec).await.unwrap();
    let before = eventually("a few chunks", || async {
        let (_, p) = progress(&client, "second").await?;
        (p.chunks >= 5).then_some(p)
    })
    .await;
    assert!(
        before.chunks < 25,
        "the copy went too fast to interrupt: {before:?}"
    );
    drop(client);
    cluster.instances[1].kill9();
    cluster.instances[1].spawn();
    let client = cluster.instances[1]
        .client("ops", "ops", "euclidean", DIM)
        .await;
    let (_, resumed) = progress(&client, "second").await.unwrap();
    assert!(
        resumed.chunks >= before.chunks && resumed.cursor.is_some(),
        "restarted from scratch: {resumed:?} after {before:?}"
    );

    // The source is killed mid-copy: the target waits, then goes on.
    let at = resumed.chunks;
    eventually("more chunks after the restart", || async {
        let (_, p) = progress(&client, "second").await?;
        (p.chunks >= at + 3).then_some(())
    })
    .await;
    cluster.instances[0].kill9();
    eventually("the target to miss its source", || async {
        let (s, _) = progress(&client, "second").await?;
        s.last_error.is_some().then_some(())
    })
    .await;
    cluster.instances[0].spawn();

    let status = finished(&client, "second").await;
    let done = status.slow.clone().unwrap();
    assert_eq!(done.state, p::SlowState::Done, "{status:?}");
    assert_eq!(done.digest_match, Some(true));
    assert_eq!(done.source_digest, done.target_digest);
    // 30 chunks make the namespace; the target's kill may have cost the
    // one chunk applied but not yet recorded, no more.
    assert!(
        (30..=31).contains(&done.chunks),
        "chunks fetched: {}",
        done.chunks
    );
    assert!((3_000..=3_000 + u64::from(CHUNK)).contains(&done.vectors));
    assert_eq!(status.last_error, None);
    eprintln!(
        "second: {} chunks, {} bytes, {} B/s over the time it ran",
        done.chunks, done.bytes, done.bytes_per_second
    );

    // Deleted, it is gone; what it copied stays.
    client.bridge_delete("second").await.unwrap();
    let e = client.bridge_status("second").await.unwrap_err();
    assert_eq!(e.code(), "unknown_bridge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bridges_refuse_what_cannot_be_copied() {
    let cluster = Cluster::start(&["src", "dst"]);
    let client = cluster.instances[1]
        .client("ops", "ops", "euclidean", DIM)
        .await;
    let slow = |name: &str, source: &str, namespace: &str, rate: u64| p::BridgeSpec {
        name: name.into(),
        kind: p::BridgeKind::Slow {
            source: source.into(),
            namespace: namespace.into(),
            target: None,
            bytes_per_second: rate,
            chunk_vectors: CHUNK,
        },
    };
    for (spec, code) in [
        (slow("self", "dst", "x", 10), "bad_request"),
        (slow("zero", "src", "x", 0), "bad_request"),
        (slow("bad", "no such", "x", 10), "bad_request"),
    ] {
        let e = client.bridge_create(spec).await.unwrap_err();
        assert_eq!(e.code(), code);
    }
    // A namespace the source lacks: the bridge fails, saying so.
    client
        .bridge_create(slow("missing", "src", "nothing", 1_000))
        .await
        .unwrap();
    let status = finished(&client, "missing").await;
    assert_eq!(status.slow.unwrap().state, p::SlowState::Failed);
    let why = status.last_error.unwrap();
    assert!(why.starts_with("unknown_namespace"), "{why}");
}
