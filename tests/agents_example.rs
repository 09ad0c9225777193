//! Runs `examples/agents.rs` with a small swarm and checks its summary:
//! every message received and acked, every broadcast reaching every other
//! member, and the agents' beliefs closer together at the end.

use std::process::Command;

/// The summary line that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

/// The number that follows the word `label` in `line`.
fn field(line: &str, label: &str) -> f64 {
    let mut words = line.split_whitespace();
    words
        .by_ref()
        .find(|w| w.trim_end_matches(':') == label)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
    words
        .next()
        .and_then(|w| w.trim_end_matches([',', ';']).parse().ok())
        .unwrap_or_else(|| panic!("no number after {label:?} in {line:?}"))
}

#[test]
fn a_small_swarm_delivers_everything_and_converges() {
    let (agents, rounds) = (8.0, 3.0);
    // Examples have no CARGO_BIN_EXE_ variable: build and run it with cargo.
    let out = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "--example",
            "agents",
            "--",
            "--agents",
            "8",
            "--rounds",
            "3",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);

    let messages = line(&stdout, "messages:");
    let sent = field(messages, "sent");
    assert_eq!(sent, agents * rounds, "one message per agent per round");
    assert_eq!(field(messages, "received"), sent, "{messages}");
    assert_eq!(field(messages, "acked"), sent, "{messages}");

    let broadcasts = line(&stdout, "broadcasts:");
    let others = agents - 1.0;
    assert_eq!(field(broadcasts, "broadcasts"), rounds, "one per round");
    assert_eq!(field(broadcasts, "of"), others, "{broadcasts}");
    assert_eq!(field(broadcasts, "min"), others, "{broadcasts}");
    assert_eq!(field(broadcasts, "max"), others, "{broadcasts}");
    assert_eq!(field(broadcasts, "received"), rounds * others);
    assert_eq!(field(broadcasts, "acked"), rounds * others);

    let spread = line(&stdout, "spread:");
    let (start, end) = (field(spread, "start"), field(spread, "end"));
    assert!(end < start, "the beliefs did not draw together: {spread}");
}
