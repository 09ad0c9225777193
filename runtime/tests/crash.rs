//! Killing the process: every send that was answered at `buffered`
//! durability is delivered after a restart, and every ack that was answered
//! stays acked.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{build, contract};
use hvs_runtime::{Durability, Outgoing, Runtime, RuntimeConfig};
use rand::{Rng, SeedableRng};
use uuid::Uuid;

const CHILD_ENV: &str = "HVS_RUNTIME_CRASH_CHILD_DB";

/// Not a test of its own: the body of the child process that
/// `answered_sends_and_acks_survive_sigkill` starts and kills. Without its
/// environment variable it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child_messenger() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = Runtime::open(RuntimeConfig::file(&path, Durability::Buffered))
        .await
        .unwrap();
    let a = rt.connect_model(build(contract("a"))).await.unwrap();
    let b = rt.connect_model(build(contract("b"))).await.unwrap();
    let receiver = tokio::spawn(async move {
        loop {
            let got = b.receive_messages(7).await.unwrap();
            let ids: Vec<Uuid> = got.iter().map(|d| d.message.id).collect();
            if !ids.is_empty() {
                b.ack(&ids).await.unwrap();
                let mut out = std::io::stdout().lock();
                for id in ids {
                    writeln!(out, "ACKED {id}").unwrap();
                }
                out.flush().unwrap();
            }
            tokio::task::yield_now().await;
        }
    });
    for i in 0u64.. {
        let batch = (0..10)
            .map(|j| ("b".to_string(), Outgoing::text(format!("m{i}-{j}"))))
            .collect();
        let ids = a.send_messages(batch).await.unwrap();
        let mut out = std::io::stdout().lock();
        for id in ids {
            writeln!(out, "SENT {id}").unwrap();
        }
        out.flush().unwrap();
        if receiver.is_finished() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_sends_and_acks_survive_sigkill() {
    let rounds: usize = std::env::var("HVS_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut rng = rand::rngs::StdRng::seed_from_u64(rounds as u64);
    for round in 0..rounds {
        let err = dir.path().join(format!("child-{round}.err"));
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash_child_messenger",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let kill_after = rng.random_range(10..3000);
        let (mut sent, mut acked) = (HashSet::new(), HashSet::new());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut record = |line: &str| {
            if let Some(id) = line.strip_prefix("SENT ") {
                sent.insert(id.parse::<Uuid>().unwrap());
            } else if let Some(id) = line.strip_prefix("ACKED ") {
                acked.insert(id.parse::<Uuid>().unwrap());
            }
        };
        let mut seen = 0;
        while seen < kill_after {
            match lines.next() {
                Some(Ok(line)) => {
                    record(&line);
                    seen += 1;
                }
                _ => break,
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Answers already in the pipe count too.
        for line in lines.map_while(Result::ok) {
            record(&line);
        }
        let _ = child.wait();
        assert!(
            !sent.is_empty(),
            "round {round}: the child sent nothing; it said:\n{}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );

        let rt = Runtime::open(RuntimeConfig::file(&path, Durability::Buffered))
            .await
            .unwrap();
        let b = rt.connect_model(build(contract("b"))).await.unwrap();
        let mut delivered = HashSet::new();
        loop {
            let got = b.receive_messages(10_000).await.unwrap();
            if got.is_empty() {
                break;
            }
            let ids: Vec<Uuid> = got.iter().map(|d| d.message.id).collect();
            b.ack(&ids).await.unwrap();
            delivered.extend(ids);
        }
        // An ack committed just before the kill may not have been printed:
        // what storage records as acked is not owed either.
        let settled: HashSet<Uuid> = rt
            .storage()
            .settlements_of("b")
            .unwrap()
            .into_iter()
            .map(|s| s.message)
            .collect();
        let lost: Vec<_> = sent
            .iter()
            .filter(|id| !delivered.contains(id) && !settled.contains(id))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} answered sends lost",
            lost.len(),
            sent.len()
        );
        let again: Vec<_> = acked.intersection(&delivered).collect();
        assert!(
            again.is_empty(),
            "round {round}: {} acked messages delivered again",
            again.len()
        );
        let report = rt.verify_consistency().await.unwrap();
        assert!(report.consistent, "round {round}: {report:?}");
        rt.close().await.unwrap();
    }
}
