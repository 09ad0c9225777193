//! Validation of a contract as a JSON document, before it is typed, so that
//! every problem — a wrong type as much as a bad value — is found in one
//! pass and reported with its JSON path.

use std::ops::RangeInclusive;
use std::path::{Component, Path};

use serde_json::{Map, Value};

use crate::contract::{Activation, EncoderKind, GeometryKind};
use crate::error::Problem;

/// The largest dimension of a space or an embedding.
pub const MAX_DIMENSION: u64 = 65_536;
/// The largest `max_message_size_bytes`: 64 MiB.
pub const MAX_MESSAGE_SIZE: u64 = 64 << 20;
/// The most entries a random projection's matrix may have (128 MiB of `f64`).
pub const MAX_PROJECTION_ENTRIES: u64 = 1 << 24;
/// The longest namespace name or other text field, in bytes.
const MAX_TEXT_BYTES: usize = 255;
/// The longest id, in bytes.
const MAX_ID_BYTES: usize = 128;
/// The most entries in any list of a contract.
const MAX_LIST: usize = 1024;
/// The most factors of a product space.
const MAX_FACTORS: usize = 16;
/// An hour in milliseconds: the longest timeout or backoff.
const HOUR_MS: u64 = 3_600_000;
/// A day in seconds: the longest health-check interval.
const DAY_S: u64 = 86_400;

const MESSAGE_FORMATS: [&str; 2] = ["json", "msgpack"];
const TEXT_ENCODINGS: [&str; 1] = ["utf-8"];
const VECTOR_ENCODINGS: [&str; 1] = ["geometric"];

/// Every problem of `root` as a contract; empty when it is valid.
pub(crate) fn check(root: &Value) -> Vec<Problem> {
    let mut c = Checker::default();
    let Some(root) = root.as_object() else {
        c.report(
            "$",
            format!("expected a JSON object, got {}", describe(root)),
        );
        return c.problems;
    };
    c.string(root, "", "$schema", false);
    if let Some(v) = c.string(root, "", "contract_version", true) {
        c.contract_version("contract_version", v);
    }
    if let Some(m) = c.object(root, "", "model", true) {
        c.model(m);
    }
    let space = c
        .object(root, "", "hvs_binding", true)
        .and_then(|b| c.hvs_binding(b));
    if let Some(v) = c.object(root, "", "vector_spec", true) {
        c.vector_spec(v, space);
    }
    if let Some(p) = c.object(root, "", "communication_protocol", true) {
        c.communication_protocol(p);
    }
    if let Some(p) = c.object(root, "", "permissions", true) {
        c.permissions(p);
    }
    if let Some(l) = c.object(root, "", "resource_limits", true) {
        c.resource_limits(l);
    }
    if let Some(h) = c.object(root, "", "health_check", false) {
        c.health_check(h);
    }
    c.problems
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn report(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    // ---- the sections ----

    fn contract_version(&mut self, path: &str, v: &str) {
        let parts: Vec<&str> = v.split('.').collect();
        let numeric =
            |p: &&str| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
        if parts.len() != 3 || !parts.iter().all(numeric) {
            self.report(
                path,
                format!("{v:?} is not a version of the form MAJOR.MINOR.PATCH"),
            );
        } else if parts[0].parse::<u32>() != Ok(1) {
            self.report(
                path,
                format!("{v:?} is not supported: this HVS reads contract version 1.x.y"),
            );
        }
    }

    fn model(&mut self, m: &Map<String, Value>) {
        let p = "model";
        if let Some(id) = self.string(m, p, "id", true) {
            self.id("model.id", id);
        }
        for key in ["name", "version", "type"] {
            if let Some(s) = self.string(m, p, key, true) {
                self.text(&join(p, key), s);
            }
        }
        if let Some(caps) = self.array(m, p, "capabilities", true) {
            for (i, v) in caps.iter().enumerate() {
                let at = format!("model.capabilities[{i}]");
                if let Some(s) = self.as_string(&at, v) {
                    self.text(&at, s);
                }
            }
        }
    }

    /// Checks `hvs_binding`; answers the space's dimension when it is valid.
    fn hvs_binding(&mut self, b: &Map<String, Value>) -> Option<u64> {
        let p = "hvs_binding";
        for key in ["hvs_id", "region"] {
            if let Some(s) = self.string(b, p, key, true) {
                self.id(&join(p, key), s);
            }
        }
        if let Some(ns) = self.string(b, p, "namespace", true) {
            self.namespace("hvs_binding.namespace", ns);
        }
        let geometry = self
            .string(b, p, "geometry", true)
            .and_then(|g| self.geometry("hvs_binding.geometry", g));
        let dim = self.uint(b, p, "dimension", true, 1..=MAX_DIMENSION);
        self.curvature(b, p, geometry);
        if let Some(g) = self.object(b, p, "graph", false) {
            self.graph(g);
        }
        let has_factors = b.contains_key("factors");
        match geometry {
            Some(GeometryKind::Product) => {
                let total = self.factors(b)?;
                if let Some(d) = dim.filter(|&d| d != total) {
                    self.report(
                        "hvs_binding.dimension",
                        format!("is {d}, but the factors' dimensions add up to {total}"),
                    );
                    return None;
                }
            }
            Some(_) if has_factors => self.report(
                "hvs_binding.factors",
                "is only allowed when geometry is \"product\"",
            ),
            _ => {}
        }
        geometry.and(dim)
    }

    /// Checks `hvs_binding.graph`: `m` and `ef_construction`, each
    /// optional, in their ranges ([`hvs_types::GraphSettings`]).
    fn graph(&mut self, g: &Map<String, Value>) {
        use hvs_types::GraphSettings;
        let p = "hvs_binding.graph";
        for key in g.keys().filter(|k| *k != "m" && *k != "ef_construction") {
            self.report(join(p, key), "unknown key (m and ef_construction only)");
        }
        let range = |r: RangeInclusive<u32>| u64::from(*r.start())..=u64::from(*r.end());
        let m = self.uint(g, p, "m", false, range(GraphSettings::M));
        let ef = self.uint(
            g,
            p,
            "ef_construction",
            false,
            range(GraphSettings::EF_CONSTRUCTION),
        );
        if let (Some(m), Some(ef)) = (m, ef)
            && ef < m
        {
            self.report(
                join(p, "ef_construction"),
                format!("is {ef}, less than m ({m})"),
            );
        }
    }

    /// Checks a product's factors; answers the sum of their dimensions when
    /// they are all valid.
    fn factors(&mut self, b: &Map<String, Value>) -> Option<u64> {
        let list = self.array(b, "hvs_binding", "factors", true)?;
        if list.is_empty() || list.len() > MAX_FACTORS {
            self.report(
                "hvs_binding.factors",
                format!(
                    "a product needs 1 to {MAX_FACTORS} factors, got {}",
                    list.len()
                ),
            );
            return None;
        }
        let mut total = Some(0);
        for (i, v) in list.iter().enumerate() {
            let p = format!("hvs_binding.factors[{i}]");
            let Some(f) = self.as_object(&p, v) else {
                total = None;
                continue;
            };
            let g = self.string(f, &p, "geometry", true).and_then(|g| {
                let at = join(&p, "geometry");
                match self.geometry(&at, g) {
                    Some(GeometryKind::Product) => {
                        self.report(at, "a factor cannot be a product; list its factors instead");
                        None
                    }
                    other => other,
                }
            });
            let d = self.uint(f, &p, "dimension", true, 1..=MAX_DIMENSION);
            self.curvature(f, &p, g);
            if let Some(w) = self.number(f, &p, "weight", false)
                && !(w > 0.0 && w.is_finite())
            {
                self.report(join(&p, "weight"), format!("must be > 0, got {w}"));
            }
            total = total.zip(d).map(|(t, d)| t + d);
        }
        total
    }

    /// The optional `curvature` of a binding or factor of geometry `g`.
    fn curvature(&mut self, obj: &Map<String, Value>, p: &str, g: Option<GeometryKind>) {
        let Some(c) = self.number(obj, p, "curvature", false) else {
            return;
        };
        let at = join(p, "curvature");
        match g {
            Some(GeometryKind::Euclidean) => {
                self.report(at, "euclidean space is flat: remove curvature")
            }
            Some(GeometryKind::Product) => self.report(
                at,
                "a product has no single curvature: set it per factor (hvs_binding.factors[i].curvature)",
            ),
            _ if !(c > 0.0 && c.is_finite()) => {
                self.report(at, format!("must be > 0, got {c}"))
            }
            _ => {}
        }
    }

    fn vector_spec(&mut self, v: &Map<String, Value>, space: Option<u64>) {
        let p = "vector_spec";
        let input = self.uint(v, p, "input_dimension", true, 1..=MAX_DIMENSION);
        let output = self.uint(v, p, "output_dimension", true, 1..=MAX_DIMENSION);
        if let (Some(o), Some(d)) = (output, space)
            && o != d
        {
            self.report(
                "vector_spec.output_dimension",
                format!("is {o}, but must equal hvs_binding.dimension ({d})"),
            );
        }
        if let Some(s) = self.string(v, p, "encoding", true) {
            self.one_of_str("vector_spec.encoding", s, &VECTOR_ENCODINGS);
        }
        let kind = match self.object(v, p, "encoder", false) {
            Some(e) => self.encoder(e),
            None => Some(EncoderKind::Identity),
        };
        match (kind, input, space) {
            (Some(EncoderKind::Identity), Some(i), Some(d)) if i != d => self.report(
                "vector_spec.input_dimension",
                format!(
                    "is {i}, but the identity encoder (the default) needs it to equal hvs_binding.dimension ({d})"
                ),
            ),
            (Some(EncoderKind::RandomProjection), Some(i), Some(d))
                if i * d > MAX_PROJECTION_ENTRIES =>
            {
                self.report(
                    "vector_spec.encoder",
                    format!(
                        "a random projection from {i} to {d} dimensions has {} entries; the most is {MAX_PROJECTION_ENTRIES}",
                        i * d
                    ),
                )
            }
            _ => {}
        }
        if let Some(d) = self.object(v, p, "decoder", false) {
            self.string(d, "vector_spec.decoder", "type", true);
        }
    }

    /// Checks `vector_spec.encoder`; answers its kind when that is valid.
    fn encoder(&mut self, e: &Map<String, Value>) -> Option<EncoderKind> {
        let p = "vector_spec.encoder";
        let kind = self.string(e, p, "type", true).and_then(|t| {
            self.one_of(
                "vector_spec.encoder.type",
                t,
                &EncoderKind::ALL,
                EncoderKind::as_str,
            )
        });
        self.uint(e, p, "seed", false, 0..=u64::MAX);
        // Optional even for `mlp`: without it the encoder refuses embeddings
        // (a warning, see `Contract::warnings`), as in the specification's
        // own example.
        let weights = self.string(e, p, "weights", false);
        if let Some(w) = weights {
            self.weights_path("vector_spec.encoder.weights", w);
        }
        if let Some(dims) = self.array(e, p, "hidden_dims", false) {
            for (i, v) in dims.iter().enumerate() {
                self.as_uint(&format!("{p}.hidden_dims[{i}]"), v, 1..=MAX_DIMENSION);
            }
        }
        for key in ["activation", "output_activation"] {
            if let Some(a) = self.string(e, p, key, false) {
                self.one_of(&join(p, key), a, &Activation::ALL, Activation::as_str);
            }
        }
        kind
    }

    fn communication_protocol(&mut self, c: &Map<String, Value>) {
        let p = "communication_protocol";
        if let Some(s) = self.string(c, p, "message_format", true) {
            self.one_of_str(&join(p, "message_format"), s, &MESSAGE_FORMATS);
        }
        if let Some(s) = self.string(c, p, "encoding", true) {
            self.one_of_str(&join(p, "encoding"), s, &TEXT_ENCODINGS);
        }
        self.uint(c, p, "max_message_size_bytes", true, 1..=MAX_MESSAGE_SIZE);
        self.uint(c, p, "timeout_ms", true, 1..=HOUR_MS);
        if let Some(r) = self.object(c, p, "retry", true) {
            let p = "communication_protocol.retry";
            self.uint(r, p, "max_attempts", true, 0..=100);
            if let Some(list) = self.array(r, p, "backoff_ms", true) {
                for (i, v) in list.iter().enumerate() {
                    self.as_uint(&format!("{p}.backoff_ms[{i}]"), v, 0..=HOUR_MS);
                }
            }
        }
    }

    fn permissions(&mut self, perms: &Map<String, Value>) {
        let p = "permissions";
        for key in ["read_namespaces", "write_namespaces"] {
            let Some(list) = self.array(perms, p, key, true) else {
                continue;
            };
            if key == "write_namespaces" && list.is_empty() {
                self.report(join(p, key), "must list at least one namespace pattern");
            }
            for (i, v) in list.iter().enumerate() {
                let at = format!("{p}.{key}[{i}]");
                if let Some(s) = self.as_string(&at, v) {
                    self.text(&at, s);
                }
            }
        }
        self.boolean(perms, p, "broadcast");
        self.boolean(perms, p, "query_other_models");
    }

    fn resource_limits(&mut self, l: &Map<String, Value>) {
        let p = "resource_limits";
        self.uint(l, p, "max_vectors_per_second", true, 1..=u64::MAX);
        // Kept below 2^44 MiB so that the quota in bytes fits in a u64.
        self.uint(l, p, "max_storage_mb", true, 1..=u64::MAX >> 20);
        self.uint(l, p, "max_queries_per_second", true, 1..=u64::MAX);
    }

    fn health_check(&mut self, h: &Map<String, Value>) {
        let p = "health_check";
        if let Some(s) = self.string(h, p, "endpoint", true) {
            self.text("health_check.endpoint", s);
        }
        let interval = self.uint(h, p, "interval_seconds", true, 1..=DAY_S);
        let timeout = self.uint(h, p, "timeout_seconds", true, 1..=DAY_S);
        if let (Some(i), Some(t)) = (interval, timeout)
            && t > i
        {
            self.report(
                "health_check.timeout_seconds",
                format!("is {t}, but must not exceed interval_seconds ({i})"),
            );
        }
    }

    // ---- value rules ----

    fn id(&mut self, path: &str, s: &str) {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        let ok = !s.is_empty()
            && s.len() <= MAX_ID_BYTES
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.chars().all(ok_char);
        if !ok {
            self.report(
                path,
                format!(
                    "{s:?} is not an id: 1 to {MAX_ID_BYTES} of A-Z a-z 0-9 . _ -, starting with a letter or digit"
                ),
            );
        }
    }

    /// Free text: non-empty, at most 255 bytes, no control characters.
    fn text(&mut self, path: &str, s: &str) {
        if s.trim().is_empty() {
            self.report(path, "must not be empty");
        } else if s.len() > MAX_TEXT_BYTES {
            self.report(
                path,
                format!("is {} bytes long; the most is {MAX_TEXT_BYTES}", s.len()),
            );
        } else if let Some(c) = s.chars().find(|c| c.is_control()) {
            self.report(path, format!("contains the control character {c:?}"));
        }
    }

    /// A concrete namespace name: text without the glob characters `*`, `?`.
    fn namespace(&mut self, path: &str, s: &str) {
        let before = self.problems.len();
        self.text(path, s);
        if self.problems.len() == before && s.contains(['*', '?']) {
            self.report(
                path,
                format!("{s:?} is a pattern; a namespace name cannot contain * or ?"),
            );
        }
    }

    fn weights_path(&mut self, path: &str, s: &str) {
        let p = Path::new(s);
        if s.is_empty() {
            self.report(path, "must not be empty");
        } else if p.is_absolute() || p.has_root() {
            self.report(
                path,
                format!("{s:?} must be a path relative to the contract's directory"),
            );
        } else if p
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            self.report(
                path,
                format!("{s:?} must stay inside the contract's directory (no ..)"),
            );
        }
    }

    fn geometry(&mut self, path: &str, s: &str) -> Option<GeometryKind> {
        self.one_of(path, s, &GeometryKind::ALL, GeometryKind::as_str)
    }

    fn one_of<T: Copy>(
        &mut self,
        path: &str,
        s: &str,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Option<T> {
        let found = all.iter().copied().find(|&t| name(t) == s);
        if found.is_none() {
            let names: Vec<&str> = all.iter().map(|&t| name(t)).collect();
            self.report(path, format!("{s:?} is not one of {}", names.join(", ")));
        }
        found
    }

    fn one_of_str(&mut self, path: &str, s: &str, all: &[&'static str]) {
        self.one_of(path, s, all, |t| t);
    }

    // ---- types ----

    /// The field `key` of `obj`; reports it missing when `required`.
    fn field<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<(String, &'a Value)> {
        let at = join(path, key);
        match obj.get(key) {
            Some(v) => Some((at, v)),
            None => {
                if required {
                    self.report(at, "is required");
                }
                None
            }
        }
    }

    fn object<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a Map<String, Value>> {
        let (at, v) = self.field(obj, path, key, required)?;
        self.as_object(&at, v)
    }

    fn string<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a str> {
        let (at, v) = self.field(obj, path, key, required)?;
        self.as_string(&at, v)
    }

    fn array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<&'a [Value]> {
        let (at, v) = self.field(obj, path, key, required)?;
        match v {
            Value::Array(a) if a.len() <= MAX_LIST => Some(a),
            Value::Array(a) => {
                self.report(
                    at,
                    format!("has {} entries; the most is {MAX_LIST}", a.len()),
                );
                None
            }
            other => self.wrong_type(&at, "an array", other),
        }
    }

    fn uint(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let (at, v) = self.field(obj, path, key, required)?;
        self.as_uint(&at, v, range)
    }

    fn number(
        &mut self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
        required: bool,
    ) -> Option<f64> {
        let (at, v) = self.field(obj, path, key, required)?;
        match v.as_f64() {
            Some(x) => Some(x),
            None => self.wrong_type(&at, "a number", v),
        }
    }

    fn boolean(&mut self, obj: &Map<String, Value>, path: &str, key: &str) -> Option<bool> {
        let (at, v) = self.field(obj, path, key, true)?;
        match v {
            Value::Bool(b) => Some(*b),
            other => self.wrong_type(&at, "true or false", other),
        }
    }

    fn as_object<'a>(&mut self, at: &str, v: &'a Value) -> Option<&'a Map<String, Value>> {
        match v {
            Value::Object(o) => Some(o),
            other => self.wrong_type(at, "an object", other),
        }
    }

    fn as_string<'a>(&mut self, at: &str, v: &'a Value) -> Option<&'a str> {
        match v {
            Value::String(s) => Some(s),
            other => self.wrong_type(at, "a string", other),
        }
    }

    fn as_uint(&mut self, at: &str, v: &Value, range: RangeInclusive<u64>) -> Option<u64> {
        let (lo, hi) = (*range.start(), *range.end());
        let Value::Number(n) = v else {
            return self.wrong_type(at, "a whole number", v);
        };
        match n.as_u64() {
            Some(x) if range.contains(&x) => Some(x),
            Some(_) => self.out_of_range(at, lo, hi, n),
            None if n.is_i64() => self.out_of_range(at, lo, hi, n),
            None => self.wrong_type(at, "a whole number", v),
        }
    }

    fn out_of_range<T>(&mut self, at: &str, lo: u64, hi: u64, n: &serde_json::Number) -> Option<T> {
        let message = if hi == u64::MAX {
            format!("must be at least {lo}, got {n}")
        } else {
            format!("must be between {lo} and {hi}, got {n}")
        };
        self.report(at, message);
        None
    }

    fn wrong_type<T>(&mut self, at: &str, expected: &str, got: &Value) -> Option<T> {
        self.report(at, format!("expected {expected}, got {}", describe(got)));
        None
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A short description of a JSON value for error messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}
