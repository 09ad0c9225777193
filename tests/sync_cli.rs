//! End-to-end: `hvs sync …` against a real `hvs serve` without a cluster.
//! Every command reaches the server as the model `hvs-operator` and
//! reports the server's refusal as `error[no_cluster]` with exit 1; bad
//! usage is refused before connecting (exit 2); the operator rule holds
//! with tokens (no token: `unauthorized`; a token without `"*"`:
//! `permission_denied`; with it: through to `no_cluster`). Sync jobs
//! themselves are tested with a cluster in `tests/sync_cluster.rs`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `hvs` with no `HVS_*` settings from the environment that runs the
/// tests.
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

/// Exit code, stdout, stderr.
fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `hvs serve` on free loopback ports with its data in `data` (and its
/// tokens file there, if any); killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let (port, admin) = (free_port(), free_port());
        let addr = format!("127.0.0.1:{port}");
        let child = hvs()
            .current_dir(dir)
            .args(["serve", "--listen", &addr])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .args(["--data", dir.join("data").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no server on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn words(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

/// `hvs sync ARGS --server ADDR`.
fn sync(addr: &str, args: &[&str]) -> (i32, String, String) {
    run(hvs().arg("sync").args(args).args(["--server", addr]))
}

#[test]
fn every_command_reports_no_cluster_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    // Arguments split at spaces (the filter has none).
    let commands = [
        "list",
        "list --json",
        "status job",
        "pause job",
        "resume job",
        "delete job",
        "conflicts job --after 3 --limit 5",
        "create job --source b --full",
        "create job --source b --namespaces x,y --regions r --once",
        r#"create job --source b --filter {"eq":["topic","rust"]} --strategy keep_target"#,
    ];
    for args in commands {
        let (code, out, err) = sync(&server.addr, &words(args));
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.starts_with("error[no_cluster]: "), "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?}: {out}");
    }

    // The server comes from HVS_SERVER too.
    let (code, _, err) = run(hvs().args(["sync", "list"]).env("HVS_SERVER", &server.addr));
    assert_eq!(code, 1);
    assert!(err.contains("error[no_cluster]"), "{err}");
}

#[test]
fn bad_usage_exits_2_without_connecting() {
    // Nothing listens here: a command that got as far as connecting would
    // fail with exit 1 (connect_failed).
    let addr = format!("127.0.0.1:{}", free_port());
    let bad = [
        "",
        "status",
        "frobnicate",
        "create job --full",
        "create job --source b",
        "create job --source b --full --namespaces x",
        "create job --source b --regions r",
        r#"create job --source b --filter {"eq":["a",1]} --regions r"#,
        "create job --source b --filter {not-json",
        "create job --source b --full --strategy loudest",
        "conflicts job --limit -1",
    ];
    for args in bad {
        let (code, out, err) = sync(&addr, &words(args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
    }

    let (code, _, err) = sync(&addr, &["list"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("error[connect_failed]: "), "{err}");
}

#[test]
fn only_a_token_for_every_namespace_may_manage_sync_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = |namespaces: &str| {
        let (code, out, err) = run(hvs()
            .args(["token", "create", "--models", "hvs-operator"])
            .args(["--namespaces", namespaces])
            .args(["--data", data.to_str().unwrap()]));
        assert_eq!(code, 0, "{err}");
        out.trim().to_string()
    };
    let (everything, some) = (token("*"), token("hvs-*"));
    let server = Server::start(dir.path());

    let (code, _, err) = sync(&server.addr, &["list"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error[unauthorized]: "), "{err}");

    let (code, _, err) = sync(&server.addr, &["list", "--token", &some]);
    assert_eq!(code, 1);
    assert!(err.starts_with("error[permission_denied]: "), "{err}");

    let (code, _, err) = run(hvs()
        .args(["sync", "status", "job", "--server", &server.addr])
        .env("HVS_TOKEN", &everything));
    assert_eq!(code, 1);
    assert!(err.starts_with("error[no_cluster]: "), "{err}");
}
