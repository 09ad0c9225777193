//! The wire conformance scenario (`tests/conformance/scenario.json`, its
//! format in `tests/conformance/README.md`), run by the Rust client's
//! generic `Client::call` against a real `hvs serve` on loopback.
//!
//! The runner does not stop at the first step that fails: it reports every
//! step that did not get what it expected, and stops only when it cannot go
//! on (an unbound name, a malformed scenario, a lost connection).

use std::collections::HashMap;
use std::fmt;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hvs::runtime::protocol::WireError;
use hvs::runtime::{Client, ClientConfig, ClientError};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

const SCENARIO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/conformance/scenario.json"
);

#[test]
fn the_rust_client_runs_the_conformance_scenario() {
    if let Err(report) = conformance() {
        panic!("the conformance scenario failed:\n{report}");
    }
}

/// The runner's own rules, as the README states them.
#[test]
fn the_runner_follows_the_readme() {
    let none = Names::new();
    let m = |p: Json, a: Json| mismatch(&substitute(&p, &none)?, &substitute(&a, &none)?, "");
    assert_eq!(
        m(json!({"a": 1}), json!({"a": 1.0000000001, "b": 2})),
        Ok(None)
    );
    assert_eq!(m(json!({"a": null}), json!({})), Ok(None));
    assert_eq!(
        m(json!({"x": [0, {"y": 2}]}), json!({"x": [0, {"y": 3}]})),
        Ok(Some("x.1.y: expected 2, got 3".into()))
    );
    assert!(matches!(m(json!([1, 2]), json!([1, 2, 3])), Ok(Some(_))));
    assert!(matches!(
        m(json!({"$none": {"n": "x"}}), json!([{"n": "x"}])),
        Ok(Some(_))
    ));
    assert!(m(json!({"$none": {"$nope": 1}}), json!([1])).is_err());
    let text = substitute(&json!({"$text": "hi"}), &none);
    assert_eq!(
        text.and_then(|p| mismatch(&p, &Value::Bin(b"hi".to_vec()), "")),
        Ok(None)
    );
    let names = Names::from([
        ("a".into(), Value::from("conf-r-a")),
        ("n".into(), Value::Nil),
    ]);
    let got = substitute(&json!(["$a", "${a}-vec", "$n", "$$a"]), &names);
    let want = ["conf-r-a", "conf-r-a-vec"].map(Value::from);
    assert_eq!(
        got,
        Ok(Value::Array(
            [&want[..], &[Value::Nil, Value::from("$$a")]].concat()
        ))
    );
    assert!(substitute(&json!("$missing"), &names).is_err());
    let answer = substitute(&json!({"ids": ["x", "y"]}), &none);
    assert_eq!(
        answer.as_ref().map(|a| follow(a, "ids.1")),
        Ok(Ok(&Value::from("y")))
    );
    assert!(matches!(
        answer.as_ref().map(|a| follow(a, "ids.2")),
        Ok(Err(_))
    ));
}

/// Loads the scenario, starts the server and runs every step.
fn conformance() -> Result<(), String> {
    let scenario = load()?;
    let server = Server::start()?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("no tokio runtime: {e}"))?;
    let run = format!("{:08x}", rand::random::<u32>());
    runtime
        .block_on(run_scenario(&scenario, &run, &server.addr))
        .map_err(|report| format!("{report}\n--- the server's output ---\n{}", server.log()))
}

// ---------------------------------------------------------------- scenario

#[derive(Deserialize)]
struct Scenario {
    format: u32,
    contract: Json,
    models: Vec<String>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    #[serde(rename = "as")]
    model: String,
    op: String,
    #[serde(default)]
    args: Option<Json>,
    #[serde(default)]
    expect: Option<Json>,
    #[serde(default)]
    save: HashMap<String, String>,
    #[serde(default)]
    note: Option<String>,
}

fn load() -> Result<Scenario, String> {
    let text = std::fs::read_to_string(SCENARIO).map_err(|e| format!("{SCENARIO}: {e}"))?;
    let scenario: Scenario = serde_json::from_str(&text).map_err(|e| format!("{SCENARIO}: {e}"))?;
    if scenario.format != 1 {
        return Err(format!(
            "{SCENARIO}: format {}, this runner reads 1",
            scenario.format
        ));
    }
    Ok(scenario)
}

type Names = HashMap<String, Value>;

/// Connects every model, runs the steps in order, closes every model.
/// `Err` holds the report of every step that failed.
async fn run_scenario(scenario: &Scenario, run: &str, addr: &str) -> Result<(), String> {
    let model_id = |name: &str| format!("conf-{run}-{name}");
    let mut clients = HashMap::new();
    for name in &scenario.models {
        let names = Names::from([
            ("model".to_string(), Value::Str(model_id(name))),
            ("run".to_string(), Value::Str(run.to_string())),
        ]);
        let contract = serde_json::to_string(&substitute(&scenario.contract, &names)?)
            .map_err(|e| format!("the contract of {name}: {e}"))?;
        let client = Client::connect(ClientConfig::new(addr, contract))
            .await
            .map_err(|e| format!("{name} cannot connect: {e}"))?;
        clients.insert(name.clone(), client);
    }

    let mut names = Names::from([("run".to_string(), Value::Str(run.to_string()))]);
    for name in &scenario.models {
        names.insert(name.clone(), Value::Str(model_id(name)));
    }
    let mut failures = Vec::new();
    let mut note = "";
    for (i, step) in scenario.steps.iter().enumerate() {
        note = step.note.as_deref().unwrap_or(note);
        let report =
            |why: String| format!("step {i} ({} as {}; {note}): {why}", step.op, step.model);
        match run_step(step, &clients, &mut names).await {
            Ok(None) => {}
            Ok(Some(why)) => failures.push(report(why)),
            Err(why) => {
                failures.push(report(format!("{why} (the run stops here)")));
                break;
            }
        }
    }

    for (name, client) in &clients {
        if let Err(e) = client.close().await {
            failures.push(format!("closing {name}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        let total = scenario.steps.len();
        Err(format!(
            "{} failure(s) in {total} steps:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}

/// One step: `Ok(None)` when it got what it expected, `Ok(Some(why))` when
/// not, `Err(why)` when the run cannot go on.
async fn run_step(
    step: &Step,
    clients: &HashMap<String, Client>,
    names: &mut Names,
) -> Result<Option<String>, String> {
    let client = clients
        .get(&step.model)
        .ok_or_else(|| format!("no model named {:?}", step.model))?;
    let args = match &step.args {
        Some(args) => substitute(args, names)?,
        None => Value::Map(Vec::new()),
    };
    let outcome = match client.call::<Value, Value>(&step.op, &args).await {
        Ok(answer) => Ok(answer),
        Err(ClientError::Server(e)) => Err(error_map(e)),
        Err(e) => return Err(format!("no answer: {e}")),
    };
    let expect = step
        .expect
        .as_ref()
        .map(|e| substitute(e, names))
        .transpose()?;
    let mut why = check(expect.as_ref(), &outcome)?;
    if let Ok(answer) = &outcome {
        for (name, path) in &step.save {
            match follow(answer, path) {
                Ok(v) => {
                    names.insert(name.clone(), v.clone());
                }
                Err(e) => why = why.or(Some(format!("save {name}: {e}"))),
            }
        }
    }
    Ok(why)
}

/// An error answer as the map a pattern matches: `code`, `message`, and
/// the optional fields when present.
fn error_map(e: WireError) -> Value {
    let mut m = vec![
        (Value::from("code"), Value::Str(e.code)),
        (Value::from("message"), Value::Str(e.message)),
    ];
    if let Some(ms) = e.retry_after_ms {
        m.push((Value::from("retry_after_ms"), Value::Int(ms.into())));
    }
    if let Some(v) = e.current_version {
        m.push((Value::from("current_version"), Value::Int(v.into())));
    }
    Value::Map(m)
}

// ------------------------------------------------------- names and paths

/// The JSON of the scenario as a wire value, with `"$name"` replaced by
/// the bound value and `${name}` inside a string by its text (map keys are
/// left alone).
fn substitute(json: &Json, names: &Names) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i.into()),
            (None, Some(u)) => Value::Int(u.into()),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => match s.strip_prefix('$').filter(|n| is_name(n)) {
            Some(name) => lookup(names, name)?.clone(),
            None => Value::Str(interpolate(s, names)?),
        },
        Json::Array(a) => Value::Array(
            a.iter()
                .map(|j| substitute(j, names))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(m) => Value::Map(
            m.iter()
                .map(|(k, j)| Ok((Value::from(k.as_str()), substitute(j, names)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn lookup<'a>(names: &'a Names, name: &str) -> Result<&'a Value, String> {
    names
        .get(name)
        .ok_or_else(|| format!("the name {name:?} is not bound"))
}

/// Every `${name}` in `s` replaced by the text of its value.
fn interpolate(s: &str, names: &Names) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}').filter(|&end| is_name(&after[..end])) {
            Some(end) => {
                out.push_str(&text_of(lookup(names, &after[..end])?)?);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn text_of(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        other => Err(format!("cannot put {other} inside a string")),
    }
}

/// The value at a dotted path of keys (a number indexes an array); `""` is
/// the whole answer.
fn follow<'a>(answer: &'a Value, path: &str) -> Result<&'a Value, String> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(answer, |v, part| {
            let next = match v {
                Value::Array(a) => part.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => v.get(part),
            };
            next.ok_or_else(|| format!("no {path:?} in the answer {answer}"))
        })
}

// ------------------------------------------------------------ expectations

/// Whether an outcome (`Ok(answer)` or `Err(error map)`) is what `expect`
/// says: `Ok(None)` if so, `Ok(Some(why))` if not, `Err` for a malformed
/// expectation.
fn check(expect: Option<&Value>, outcome: &Result<Value, Value>) -> Result<Option<String>, String> {
    let Some(expect) = expect else {
        return Ok(outcome
            .as_ref()
            .err()
            .map(|e| format!("expected ok, got the error {e}")));
    };
    if let Some(want) = expect.get("error") {
        let pattern = match want {
            Value::Str(_) => Value::Map(vec![(Value::from("code"), want.clone())]),
            _ => want.clone(),
        };
        return match outcome {
            Ok(answer) => Ok(Some(format!("expected the error {want}, got ok {answer}"))),
            Err(error) => mismatch(&pattern, error, "error"),
        };
    }
    let Some(pattern) = expect.get("ok") else {
        return Err(format!(
            "an expectation is {{\"ok\": …}} or {{\"error\": …}}, not {expect}"
        ));
    };
    match outcome {
        Ok(answer) => mismatch(pattern, answer, ""),
        Err(error) => Ok(Some(format!("expected ok, got the error {error}"))),
    }
}

/// `Ok(None)` when `actual` (at path `at`) matches `pattern`, else where
/// and how not; `Err` for an unknown matcher.
fn mismatch(pattern: &Value, actual: &Value, at: &str) -> Result<Option<String>, String> {
    let here = if at.is_empty() { "the answer" } else { at };
    let differs = |what: String| Ok(Some(format!("{here}: expected {what}, got {actual}")));
    if let Some((name, arg)) = pattern.matcher() {
        return matcher(name, arg, actual, here);
    }
    match (pattern, actual) {
        (Value::Map(fields), Value::Map(_)) => {
            for (key, p) in fields {
                let key = key.as_str().unwrap_or_default();
                let at = if at.is_empty() {
                    key.to_string()
                } else {
                    format!("{at}.{key}")
                };
                let why = match actual.get(key) {
                    Some(a) => mismatch(p, a, &at)?,
                    None if *p == Value::Nil => None,
                    None => Some(format!("{at}: expected {p}, the key is absent")),
                };
                if why.is_some() {
                    return Ok(why);
                }
            }
            Ok(None)
        }
        (Value::Array(ps), Value::Array(als)) if ps.len() == als.len() => {
            for (i, (p, a)) in ps.iter().zip(als).enumerate() {
                let at = if at.is_empty() {
                    i.to_string()
                } else {
                    format!("{at}.{i}")
                };
                if let Some(why) = mismatch(p, a, &at)? {
                    return Ok(Some(why));
                }
            }
            Ok(None)
        }
        (Value::Array(ps), _) => differs(format!("{} elements {pattern}", ps.len())),
        (Value::Map(_), _) => differs(format!("a map {pattern}")),
        (Value::Int(_) | Value::Float(_), _) => match (pattern.as_f64(), actual.as_f64()) {
            (Some(p), Some(a)) if (a - p).abs() <= 1e-6 * p.abs().max(1.0) => Ok(None),
            _ => differs(pattern.to_string()),
        },
        _ if pattern == actual => Ok(None),
        _ => differs(pattern.to_string()),
    }
}

/// `{"$type": t}`, `{"$len": n}`, `{"$contains": p}`, `{"$none": p}`,
/// `{"$text": s}`.
fn matcher(name: &str, arg: &Value, actual: &Value, here: &str) -> Result<Option<String>, String> {
    let ok = match name {
        "$type" => {
            let t = arg.as_str().unwrap_or_default();
            match (t, actual) {
                ("string", Value::Str(_)) | ("int", Value::Int(_)) | ("bool", Value::Bool(_)) => {
                    true
                }
                ("number", Value::Int(_) | Value::Float(_)) => true,
                ("array", Value::Array(_)) | ("map", Value::Map(_)) | ("bin", Value::Bin(_)) => {
                    true
                }
                ("string" | "int" | "bool" | "number" | "array" | "map" | "bin", _) => false,
                _ => return Err(format!("unknown $type {arg}")),
            }
        }
        "$len" => match actual {
            Value::Array(a) => arg.as_f64() == Some(a.len() as f64),
            Value::Map(m) => arg.as_f64() == Some(m.len() as f64),
            _ => false,
        },
        "$contains" | "$none" => {
            let Value::Array(elements) = actual else {
                return Ok(Some(format!("{here}: expected an array, got {actual}")));
            };
            let mut found = false;
            for a in elements {
                found |= mismatch(arg, a, "")?.is_none();
            }
            found == (name == "$contains")
        }
        "$text" => match actual {
            Value::Bin(b) => Some(String::from_utf8_lossy(b).as_ref()) == arg.as_str(),
            Value::Str(s) => Some(s.as_str()) == arg.as_str(),
            _ => false,
        },
        _ => return Err(format!("unknown matcher {name}")),
    };
    Ok((!ok).then(|| format!("{here}: expected {{{name}: {arg}}}, got {actual}")))
}

// ------------------------------------------------------------ wire values

/// A msgpack value as the wire carries it: `bin` apart from `str`, every
/// integer an `Int`. (The root package does not depend on `rmpv`, so the
/// runner reads answers into this through `Client::call`'s `T`.)
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

impl Value {
    fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A map whose only key starts with `$`: a matcher's name and argument.
    fn matcher(&self) -> Option<(&str, &Value)> {
        match self {
            Value::Map(m) if m.len() == 1 => {
                let (k, v) = &m[0];
                k.as_str().filter(|k| k.starts_with('$')).map(|k| (k, v))
            }
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, items: Vec<String>, open, close| {
            write!(f, "{open}{}{close}", items.join(", "))
        };
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bin(b) => write!(f, "bin {:?}", String::from_utf8_lossy(b)),
            Value::Array(a) => list(f, a.iter().map(ToString::to_string).collect(), "[", "]"),
            Value::Map(m) => list(
                f,
                m.iter().map(|(k, v)| format!("{k}: {v}")).collect(),
                "{",
                "}",
            ),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Nil => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => match i64::try_from(*i) {
                Ok(i) => s.serialize_i64(i),
                Err(_) => s.serialize_u64(u64::try_from(*i).map_err(serde::ser::Error::custom)?),
            },
            Value::Float(x) => s.serialize_f64(*x),
            Value::Str(v) => s.serialize_str(v),
            Value::Bin(b) => s.serialize_bytes(b),
            Value::Array(a) => s.collect_seq(a),
            Value::Map(m) => s.collect_map(m.iter().map(|(k, v)| (k, v))),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a msgpack value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i.into()))
    }
    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        Ok(Value::Int(u.into()))
    }
    fn visit_f64<E: de::Error>(self, x: f64) -> Result<Value, E> {
        Ok(Value::Float(x))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::from(s))
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Value, E> {
        Ok(Value::Bin(b.to_vec()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = map.next_entry()? {
            out.push(entry);
        }
        Ok(Value::Map(out))
    }
}

// ------------------------------------------------------------------ server

/// `hvs serve` on free loopback ports with a fresh data directory and
/// default settings; killed when dropped.
struct Server {
    child: Child,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Result<Server, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
        let (port, admin) = (free_port()?, free_port()?);
        let log = dir.path().join("server.log");
        let out = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        // cwd the temporary directory (no stray hvs.toml), no HVS_* settings.
        let mut command = Command::new(env!("CARGO_BIN_EXE_hvs"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("HVS_") {
                command.env_remove(key);
            }
        }
        let child = command
            .current_dir(dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin", &format!("127.0.0.1:{admin}")])
            .arg("--data")
            .arg(dir.path().join("data"))
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start hvs serve: {e}"))?;
        let mut server = Server {
            child,
            addr: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        server.wait_listening()?;
        Ok(server)
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let start = Instant::now();
        while TcpStream::connect(&self.addr).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("hvs serve exited with {status}:\n{}", self.log()));
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "hvs serve does not listen after 60 s:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The last lines the server wrote.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}
