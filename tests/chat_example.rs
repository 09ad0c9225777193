//! Runs `examples/chat.rs` against the `hvs` binary of this build and
//! checks its transcript: every line said in order and heard by the two
//! other models, the broadcast reaching both, the search returning lines,
//! the consensus converging over the three beliefs, and the server stopping
//! cleanly on SIGTERM.
//!
//! The example runs one Python model when it finds a Python with msgpack
//! (`python3`, or the venv `examples/python/run_tests.sh` makes), three
//! Rust models otherwise. When the first run used Python, the test runs the
//! example again with `--rust-only`, so the Rust-only path is always
//! checked and the Python path whenever it can be.

use std::process::Command;
use std::time::Instant;

/// Speaker and a piece of the text of each line of the example's script.
const LINES: [(&str, &str); 8] = [
    ("chat-planner", "Task for today"),
    ("chat-scout", "The bridge on the north road is closed"),
    ("chat-critic", "A loaded cart on the ferry is slow"),
    ("chat-scout", "The forest road is open but muddy"),
    (
        "chat-planner",
        "Proposal: take the forest road, leave the depot at noon",
    ),
    ("chat-scout", "Proposal: cross the river on the ferry"),
    (
        "chat-critic",
        "Proposal: take the forest road but leave at eleven",
    ),
    ("chat-critic", "Before we settle"),
];

/// The trimmed line that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

/// The word that follows the word `label` in `line`, without a trailing
/// comma or semicolon.
fn word<'a>(line: &'a str, label: &str) -> &'a str {
    let mut words = line.split_whitespace();
    words
        .by_ref()
        .find(|w| w.trim_end_matches(':') == label)
        .unwrap_or_else(|| panic!("no {label:?} in {line:?}"));
    words
        .next()
        .map(|w| w.trim_end_matches([',', ';']))
        .unwrap_or_else(|| panic!("nothing after {label:?} in {line:?}"))
}

fn number(line: &str, label: &str) -> f64 {
    let w = word(line, label);
    w.parse()
        .unwrap_or_else(|_| panic!("{w:?} after {label:?} in {line:?} is not a number"))
}

/// Runs the example with `args`; its stdout.
fn run_example(args: &[&str]) -> String {
    // Examples have no CARGO_BIN_EXE_ variable: build and run it with
    // cargo; the server binary is this build's.
    let start = Instant::now();
    let out = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "chat", "--"])
        .args(args)
        .env("HVS_BIN", env!("CARGO_BIN_EXE_hvs"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    eprintln!("chat {args:?}: {:.1} s", start.elapsed().as_secs_f64());
    stdout
}

/// The checks on one run's output.
fn check(out: &str) {
    // The transcript: each line once, in order, from its speaker, with its
    // text on the next line.
    let mut at = out.find("Transcript").expect("no transcript");
    for (n, (speaker, text)) in (1..).zip(LINES) {
        let head = format!("[{n}] {speaker} -> ");
        let found = out[at..]
            .find(&head)
            .unwrap_or_else(|| panic!("no {head:?} after the line before in:\n{out}"));
        at += found + head.len();
        let next = out[at..].lines().nth(1).unwrap_or_default();
        assert!(next.contains(text), "line {n} reads {next:?}, not {text:?}");
        assert_eq!(out.matches(&head).count(), 1, "{head:?} more than once");
    }
    let first = line(out, "[1] ");
    assert!(first.contains("(broadcast to "), "{first}");

    let broadcast = line(out, "broadcast:");
    assert_eq!(number(broadcast, "recipients"), 2.0, "{broadcast}");

    let messages = line(out, "messages:");
    let expected = number(messages, "expected");
    assert_eq!(expected, 16.0, "{messages}");
    assert_eq!(number(messages, "sent"), 15.0, "{messages}");
    assert_eq!(number(messages, "received"), expected, "{messages}");
    assert_eq!(number(messages, "acked"), expected, "{messages}");

    let search = line(out, "search:");
    assert!(number(search, "hits") >= 1.0, "{search}");
    // The hits are lines of the conversation, nearest first.
    let hit = line(out, "1.  [");
    assert!(hit.contains("distance"), "{hit}");

    let consensus = line(out, "consensus:");
    assert_eq!(word(consensus, "converged"), "true", "{consensus}");
    assert_eq!(number(consensus, "contributors"), 3.0, "{consensus}");

    let server = line(out, "server:");
    assert!(
        server.contains("stopped by SIGTERM, exit code 0"),
        "{server}"
    );
    assert!(out.contains("\nresult: ok"), "{out}");
}

#[test]
fn the_chat_demo_talks_searches_and_agrees() {
    let out = run_example(&[]);
    check(&out);
    let models = line(&out, "models ");
    if models.contains("(python)") {
        let rust = run_example(&["--rust-only"]);
        check(&rust);
        let models = line(&rust, "models ");
        assert!(!models.contains("(python)"), "{models}");
    } else {
        eprintln!("chat: no Python with msgpack here, so only the Rust models ran");
    }
}
