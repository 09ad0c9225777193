//! `hvs serve` as a user runs it: it says where it listens, `hvs status`
//! reaches it, flags beat `hvs.toml`, and SIGTERM stops it cleanly (exit 0)
//! with what it stored still there.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn hvs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hvs"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no server on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_reports_status_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (port, admin, file_port) = (free_port(), free_port(), free_port());
    // The config file names one port, the flag another: the flag wins.
    std::fs::write(
        dir.path().join("hvs.toml"),
        format!("listen = \"127.0.0.1:{file_port}\"\ndurability = \"sync\"\nmax_connections = 7\n"),
    )
    .unwrap();
    let mut child = hvs()
        .current_dir(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--data", data.to_str().unwrap()])
        .env("HVS_DURABILITY", "buffered")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("stop:") {
        assert!(out.read_line(&mut banner).unwrap() > 0, "{banner}");
    }
    assert!(
        banner.contains(&format!("listening on 127.0.0.1:{port}")),
        "{banner}"
    );
    assert!(banner.contains("config:     hvs.toml"), "{banner}");
    // The environment beats the file.
    assert!(banner.contains("Buffered durability"), "{banner}");
    assert!(banner.contains("auth:       none"), "{banner}");
    wait_for(port);

    let status = hvs()
        .args(["status", "--admin", &format!("127.0.0.1:{admin}"), "--json"])
        .output()
        .unwrap();
    assert!(status.status.success());
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["listen"], format!("127.0.0.1:{port}"));
    assert_eq!(v["durability"], "buffered");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let code = child.wait().unwrap();
    assert!(code.success(), "exit status {code:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(rest.contains("stopped cleanly"), "{rest}");
    assert!(data.join("hvs.redb").exists());
}

#[test]
fn status_without_a_server_says_so() {
    let out = hvs()
        .args(["status", "--admin", &format!("127.0.0.1:{}", free_port())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no HVS server answers"));
}

#[test]
fn serve_refuses_a_public_address_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = hvs()
        .args(["serve", "--listen", "0.0.0.0:0", "--admin", "127.0.0.1:0"])
        .args(["--data", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without authentication"), "{err}");
    assert!(!Path::new(&dir.path().join("tokens.json")).exists());
}
