//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use serde_json::Value;

/// `examples/contracts/` at the repository root.
pub fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/contracts")
}

/// The example contracts (not their weights files), by file name.
pub fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/contracts exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".json") && !name.ends_with(".weights.json")
        })
        .collect();
    files.sort();
    files
}

/// An example contract as a JSON value.
pub fn example(name: &str) -> Value {
    let text = std::fs::read_to_string(examples_dir().join(name)).expect("example exists");
    serde_json::from_str(&text).expect("example is JSON")
}

/// The value at a dotted path (`hvs_binding.geometry`), for editing.
pub fn at<'a>(v: &'a mut Value, path: &str) -> &'a mut Value {
    path.split('.')
        .fold(v, |v, key| match key.parse::<usize>() {
            Ok(i) if v.is_array() => &mut v[i],
            _ => &mut v[key],
        })
}

/// Sets the value at a dotted path.
pub fn set(v: &mut Value, path: &str, new: Value) {
    *at(v, path) = new;
}

/// Removes the key at a dotted path.
pub fn remove(v: &mut Value, path: &str) {
    let (parent, key) = path.rsplit_once('.').map_or(("", path), |(p, k)| (p, k));
    let obj = if parent.is_empty() { v } else { at(v, parent) };
    obj.as_object_mut().expect("an object").remove(key);
}

/// A valid contract for `geometry` in `dim` dimensions with an encoder of
/// `kind` from `input` coordinates (an `mlp` reads `mlp.json`).
pub fn contract_json(geometry: &str, dim: usize, kind: &str, input: usize) -> Value {
    let mut v = example("rust_agent.json");
    set(&mut v, "hvs_binding.geometry", geometry.into());
    set(&mut v, "hvs_binding.dimension", dim.into());
    remove(&mut v, "hvs_binding.curvature");
    set(&mut v, "vector_spec.output_dimension", dim.into());
    set(&mut v, "vector_spec.input_dimension", input.into());
    let mut encoder = serde_json::json!({ "type": kind });
    if kind == "mlp" {
        encoder["weights"] = "mlp.json".into();
    }
    set(&mut v, "vector_spec.encoder", encoder);
    if geometry == "product" {
        // dim = a hyperboloid of dim / 2 and a sphere of the rest.
        set(
            &mut v,
            "hvs_binding.factors",
            serde_json::json!([
                { "geometry": "hyperboloid", "dimension": dim / 2 },
                { "geometry": "sphere", "dimension": dim - dim / 2, "weight": 2.0 }
            ]),
        );
    }
    v
}
