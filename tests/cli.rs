//! End-to-end tests of the `hvs` binary.

use std::process::Command;

fn hvs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hvs"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn distance_on_the_hyperboloid() {
    // (cosh 1, sinh 1, 0) is one unit from the origin (1, 0, 0).
    let x = format!("[{}, {}, 0]", 1f64.cosh(), 1f64.sinh());
    let (code, out, _) = hvs(&[
        "geometry",
        "distance",
        "-m",
        "hyperboloid",
        "-d",
        "2",
        &x,
        "[1,0,0]",
    ]);
    assert_eq!(code, 0);
    let d = json(&out)["distance"].as_f64().unwrap();
    assert!((d - 1.0).abs() < 1e-12);
}

#[test]
fn weighted_mean_with_report() {
    let (code, out, _) = hvs(&[
        "geometry",
        "mean",
        "-m",
        "euclidean",
        "-d",
        "2",
        "[[0,0],[4,2]]",
        "--weights",
        "[3,1]",
    ]);
    assert_eq!(code, 0);
    let v = json(&out);
    assert_eq!(v["mean"], serde_json::json!([1.0, 0.5]));
    assert_eq!(v["converged"], true);
}

#[test]
fn transform_poincare_to_hyperboloid() {
    let (code, out, _) = hvs(&[
        "geometry",
        "transform",
        "-m",
        "poincare",
        "-d",
        "2",
        "--to",
        "hyperboloid",
        "[0.5,0]",
    ]);
    assert_eq!(code, 0);
    let p: Vec<f64> = serde_json::from_value(json(&out)["point"].clone()).unwrap();
    let want = [5.0 / 3.0, 4.0 / 3.0, 0.0];
    assert!(
        p.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-14),
        "{p:?}"
    );
}

#[test]
fn bad_input_exits_2_with_a_stable_code() {
    let (code, out, err) = hvs(&[
        "geometry", "distance", "-m", "poincare", "-d", "2", "[1,0]", "[0,0]",
    ]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.starts_with("error[off_manifold]"), "{err}");
    let (code, _, err) = hvs(&[
        "geometry", "distance", "-m", "sphere", "-d", "2", "[1,0", "[0,0,1]",
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("error[invalid_json]"), "{err}");
    let (code, _, err) = hvs(&[
        "geometry",
        "exp0",
        "-m",
        "hyperboloid",
        "-d",
        "2",
        "[1,2,3]",
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("error[dimension_mismatch]"), "{err}");
}

#[test]
fn every_shipped_contract_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/contracts");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name.ends_with(".weights.json") {
            continue;
        }
        let (code, out, err) = hvs(&["contract", "validate", path.to_str().unwrap()]);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(out.starts_with("ok: "), "{name}: {out}");
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn the_specifications_example_contract_validates_with_a_warning() {
    // Run from the repository root, as README.md shows it.
    let out = Command::new(env!("CARGO_BIN_EXE_hvs"))
        .args([
            "contract",
            "validate",
            "examples/contracts/spec_example.json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("ok: examples/contracts/spec_example.json (model-unique-id"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: vector_spec.encoder.weights: is absent"),
        "{stdout}"
    );
    assert!(stdout.contains("encoder_unavailable"), "{stdout}");
}

#[test]
fn a_bad_contract_lists_every_problem_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/contracts/text_chat_model.json");
    let mut c = json(&std::fs::read_to_string(spec).unwrap());
    c["hvs_binding"]["geometry"] = "hyperbolic".into();
    c["resource_limits"]["max_queries_per_second"] = (-5).into();
    c["model"]["surprise"] = true.into();
    std::fs::write(&path, c.to_string()).unwrap();
    let (code, _, err) = hvs(&["contract", "validate", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("hvs_binding.geometry: \"hyperbolic\" is not one of"),
        "{err}"
    );
    assert!(
        err.contains("resource_limits.max_queries_per_second"),
        "{err}"
    );
    std::fs::write(&path, "{ not json").unwrap();
    let (code, _, err) = hvs(&["contract", "validate", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error[contract_json]") && err.contains("line"),
        "{err}"
    );
}
