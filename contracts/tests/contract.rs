//! Parsing, validation, warnings, round trips, the examples and the schema.

mod common;

use std::collections::BTreeSet;

use common::{example, example_files, examples_dir, remove, set};
use hvs_contracts::{Contract, ContractError, GeometryKind, Problem};
use hvs_geometry::Manifold;
use serde_json::{Value, json};

/// The example of the HVS specification, verbatim.
const SPEC_EXAMPLE: &str = r#"{
  "$schema": "https://hypersync.ai/schemas/model_contract_hvs_v1.json",
  "contract_version": "1.0.0",
  "model": {
    "id": "model-unique-id",
    "name": "Model Display Name",
    "version": "1.0.0",
    "type": "llm",
    "capabilities": ["text-generation", "embedding", "reasoning"]
  },
  "hvs_binding": {
    "hvs_id": "hvs-instance-id",
    "region": "region-name",
    "namespace": "model-namespace",
    "geometry": "hyperboloid",
    "dimension": 12
  },
  "vector_spec": {
    "input_dimension": 2048,
    "output_dimension": 12,
    "encoding": "geometric",
    "encoder": {
      "type": "mlp",
      "hidden_dims": [1024, 512, 256],
      "activation": "relu",
      "output_activation": "tanh"
    },
    "decoder": {
      "type": "mlp",
      "hidden_dims": [256, 512, 1024],
      "activation": "relu"
    }
  },
  "communication_protocol": {
    "message_format": "json",
    "encoding": "utf-8",
    "max_message_size_bytes": 1048576,
    "timeout_ms": 5000,
    "retry": {
      "max_attempts": 3,
      "backoff_ms": [100, 500, 2000]
    }
  },
  "permissions": {
    "read_namespaces": ["*"],
    "write_namespaces": ["model-namespace"],
    "broadcast": true,
    "query_other_models": true
  },
  "resource_limits": {
    "max_vectors_per_second": 1000,
    "max_storage_mb": 1024,
    "max_queries_per_second": 10000
  },
  "health_check": {
    "endpoint": "/health",
    "interval_seconds": 30,
    "timeout_seconds": 5
  }
}"#;

fn problems(v: &Value) -> Vec<Problem> {
    match Contract::from_value(v.clone()) {
        Err(ContractError::Invalid(p)) => p,
        other => panic!("expected an invalid contract, got {other:?}"),
    }
}

fn has(problems: &[Problem], path: &str, fragment: &str) -> bool {
    problems
        .iter()
        .any(|p| p.path == path && p.message.contains(fragment))
}

#[test]
fn the_spec_example_validates_verbatim_with_one_warning() {
    // The shipped file is the specification's text, byte for byte.
    let shipped = std::fs::read_to_string(examples_dir().join("spec_example.json")).unwrap();
    assert_eq!(shipped, format!("{SPEC_EXAMPLE}\n"));

    // Its mlp encoder names no weights file: valid, with that one warning.
    let c = Contract::from_json(SPEC_EXAMPLE).unwrap();
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].path, "vector_spec.encoder.weights");
    assert!(
        warnings[0].message.contains("encoder_unavailable"),
        "{warnings:?}"
    );

    assert_eq!(c.model.id, "model-unique-id");
    assert_eq!(c.model.kind, "llm");
    assert_eq!(c.model.capabilities.len(), 3);
    assert_eq!(c.hvs_binding.geometry, GeometryKind::Hyperboloid);
    assert_eq!(c.hvs_binding.dimension, 12);
    assert_eq!(c.vector_spec.input_dimension, 2048);
    let enc = c.vector_spec.encoder.as_ref().unwrap();
    assert_eq!(enc.hidden_dims.as_deref(), Some(&[1024, 512, 256][..]));
    assert_eq!(enc.weights, None);
    assert_eq!(c.vector_spec.decoder.as_ref().unwrap()["type"], "mlp");
    assert_eq!(c.communication_protocol.retry.backoff_ms, [100, 500, 2000]);
    assert_eq!(
        c.communication_protocol.retry.backoff(3),
        Some(std::time::Duration::from_millis(2000))
    );
    assert_eq!(c.communication_protocol.retry.backoff(4), None);
    assert!(c.permissions.broadcast && c.permissions.query_other_models);
    assert_eq!(c.resource_limits.max_queries_per_second, 10_000);
    assert_eq!(c.health_check.as_ref().unwrap().interval_seconds, 30);
    assert_eq!(
        c.schema.as_deref(),
        Some("https://hypersync.ai/schemas/model_contract_hvs_v1.json")
    );
    // Serialised and read back, it is still without weights.
    let again = Contract::from_json(&c.to_json_pretty()).unwrap();
    assert_eq!(again.warnings(), warnings);

    // A weights file that is named must exist: that is still an error.
    let mut v: Value = serde_json::from_str(SPEC_EXAMPLE).unwrap();
    set(&mut v, "vector_spec.encoder.weights", "absent.json".into());
    let named = Contract::from_value(v).unwrap();
    assert!(named.warnings().is_empty(), "{:?}", named.warnings());
    let err = named.encoder(&examples_dir()).unwrap_err();
    assert_eq!(err.code(), "invalid_contract");
    assert_eq!(err.problems()[0].path, "vector_spec.encoder.weights");
}

#[test]
fn the_spec_example_places_points_and_text_but_refuses_embeddings() {
    let c = Contract::load(&examples_dir().join("spec_example.json")).unwrap();
    let enc = c.encoder(&examples_dir()).unwrap();
    assert!(!enc.encoder().is_available());
    assert_eq!(enc.encoder().shape(), [2048, 12]);
    let m = c.manifold().unwrap();

    // A vector already in the output space (H^12, 13 coordinates) is taken.
    let mut point = m.origin();
    (point[0], point[1]) = (0.5f64.cosh(), 0.5f64.sinh());
    assert_eq!(enc.place_point(&point).unwrap(), point);
    m.check(&enc.encode_text("no vector at all").unwrap())
        .unwrap();

    // An embedding, of the right length or not, needs the missing weights.
    for len in [2048, 12, 0] {
        let err = enc.encode_embedding(&vec![0.1; len]).unwrap_err();
        assert!(
            matches!(
                err,
                ContractError::EncoderUnavailable { encoder: "mlp", .. }
            ),
            "{err:?}"
        );
        assert_eq!(err.code(), "encoder_unavailable");
        assert!(err.to_string().contains("no weights file"), "{err}");
        assert!(err.to_string().contains("`vector`"), "{err}");
    }
}

#[test]
fn every_mistake_is_listed_with_its_path() {
    let mut v = example("spec_example_with_weights.json");
    set(&mut v, "hvs_binding.geometry", "hyperbolic".into());
    set(&mut v, "model.id", "my model!".into());
    set(&mut v, "permissions.broadcast", "yes".into());
    set(&mut v, "resource_limits.max_queries_per_second", 0.into());
    set(&mut v, "health_check.timeout_seconds", 60.into());
    set(&mut v, "vector_spec.input_dimension", 1.5.into());
    set(&mut v, "model.capabilities", "reasoning".into());
    set(
        &mut v,
        "permissions.read_namespaces",
        json!(["ok", "bad\u{7}", ""]),
    );
    set(&mut v, "contract_version", "2.0.0".into());
    set(
        &mut v,
        "communication_protocol.max_message_size_bytes",
        (1u64 << 30).into(),
    );
    remove(&mut v, "communication_protocol.retry");
    let p = problems(&v);
    let text: Vec<String> = p.iter().map(ToString::to_string).collect();
    assert!(
        text.contains(
            &r#"hvs_binding.geometry: "hyperbolic" is not one of poincare, hyperboloid, euclidean, lorentzian, sphere, product"#
                .to_owned()
        ),
        "{text:#?}"
    );
    for (path, fragment) in [
        ("model.id", "is not an id"),
        (
            "permissions.broadcast",
            "expected true or false, got the string \"yes\"",
        ),
        (
            "resource_limits.max_queries_per_second",
            "must be at least 1, got 0",
        ),
        (
            "health_check.timeout_seconds",
            "must not exceed interval_seconds (30)",
        ),
        (
            "vector_spec.input_dimension",
            "expected a whole number, got the number 1.5",
        ),
        ("model.capabilities", "expected an array"),
        ("permissions.read_namespaces[1]", "control character"),
        ("permissions.read_namespaces[2]", "must not be empty"),
        ("contract_version", "is not supported"),
        (
            "communication_protocol.max_message_size_bytes",
            "between 1 and 67108864",
        ),
        ("communication_protocol.retry", "is required"),
    ] {
        assert!(
            has(&p, path, fragment),
            "no {path}: {fragment} in {text:#?}"
        );
    }
    assert_eq!(p.len(), 12, "{text:#?}");
}

#[test]
fn cross_field_rules_are_checked() {
    let mut v = example("spec_example_with_weights.json");
    set(&mut v, "vector_spec.output_dimension", 13.into());
    set(&mut v, "hvs_binding.curvature", (-1.0).into());
    set(&mut v, "hvs_binding.factors", json!([]));
    set(
        &mut v,
        "vector_spec.encoder.weights",
        "../outside.json".into(),
    );
    set(&mut v, "permissions.write_namespaces", json!([]));
    set(&mut v, "hvs_binding.namespace", "team-*".into());
    let p = problems(&v);
    for (path, fragment) in [
        (
            "vector_spec.output_dimension",
            "must equal hvs_binding.dimension (12)",
        ),
        ("hvs_binding.curvature", "must be > 0"),
        (
            "hvs_binding.factors",
            "only allowed when geometry is \"product\"",
        ),
        (
            "vector_spec.encoder.weights",
            "inside the contract's directory",
        ),
        ("permissions.write_namespaces", "at least one"),
        ("hvs_binding.namespace", "is a pattern"),
    ] {
        assert!(has(&p, path, fragment), "no {path}: {fragment} in {p:#?}");
    }

    // The identity encoder (also the default) needs input = output.
    let mut v = example("rust_agent.json");
    set(&mut v, "vector_spec.input_dimension", 17.into());
    assert!(has(
        &problems(&v),
        "vector_spec.input_dimension",
        "identity encoder"
    ));
    remove(&mut v, "vector_spec.encoder");
    assert!(has(
        &problems(&v),
        "vector_spec.input_dimension",
        "(the default)"
    ));

    // Products: factors required, dimensions add up, no nesting, no
    // top-level curvature; euclidean takes no curvature.
    let mut v = example("product_space_model.json");
    set(&mut v, "hvs_binding.dimension", 12.into());
    set(&mut v, "vector_spec.output_dimension", 12.into());
    set(&mut v, "hvs_binding.curvature", 1.0.into());
    set(&mut v, "hvs_binding.factors.1.weight", 0.into());
    assert!(has(
        &problems(&v),
        "hvs_binding.curvature",
        "set it per factor"
    ));
    assert!(has(
        &problems(&v),
        "hvs_binding.factors[1].weight",
        "must be > 0"
    ));
    let mut v = example("product_space_model.json");
    set(&mut v, "hvs_binding.factors.0.geometry", "product".into());
    set(&mut v, "hvs_binding.factors.1.geometry", "euclidean".into());
    set(&mut v, "hvs_binding.factors.1.curvature", 2.into());
    let p = problems(&v);
    assert!(has(
        &p,
        "hvs_binding.factors[0].geometry",
        "cannot be a product"
    ));
    assert!(has(&p, "hvs_binding.factors[1].curvature", "flat"));
    let mut v = example("product_space_model.json");
    set(&mut v, "hvs_binding.dimension", 12.into());
    assert!(has(&problems(&v), "hvs_binding.dimension", "add up to 11"));
    remove(&mut v, "hvs_binding.factors");
    assert!(has(&problems(&v), "hvs_binding.factors", "is required"));

    // Projections are capped in size.
    let mut v = example("random_projection_model.json");
    set(&mut v, "vector_spec.input_dimension", 65_536.into());
    set(&mut v, "hvs_binding.dimension", 65_536.into());
    set(&mut v, "vector_spec.output_dimension", 65_536.into());
    assert!(has(
        &problems(&v),
        "vector_spec.encoder",
        "the most is 16777216"
    ));
}

#[test]
fn syntax_errors_give_line_and_column() {
    match Contract::from_json("{\n  \"model\": {,\n}") {
        Err(ContractError::Json { line, column, .. }) => assert_eq!((line, column), (2, 13)),
        other => panic!("{other:?}"),
    }
    let err = Contract::from_json("[1, 2]").unwrap_err();
    assert_eq!(
        err.problems(),
        [Problem::new("$", "expected a JSON object, got an array")]
    );
}

#[test]
fn unknown_fields_are_warned_about_and_kept() {
    let mut v = example("product_space_model.json");
    set(&mut v, "x_vendor", json!({"tier": "gold", "tags": [1, 2]}));
    set(&mut v, "model.license", "MIT".into());
    set(&mut v, "hvs_binding.factors.0.note", "the hierarchy".into());
    set(&mut v, "vector_spec.encoder.dropout", 0.1.into());
    set(&mut v, "communication_protocol.retry.jitter", true.into());
    set(&mut v, "resource_limits.max_gpus", 2.into());
    let c = Contract::from_value(v.clone()).unwrap();
    let paths: BTreeSet<String> = c.warnings().into_iter().map(|w| w.path).collect();
    let want: BTreeSet<String> = [
        "x_vendor",
        "model.license",
        "hvs_binding.factors[0].note",
        "vector_spec.encoder.dropout",
        "communication_protocol.retry.jitter",
        "resource_limits.max_gpus",
    ]
    .map(String::from)
    .into();
    assert_eq!(paths, want);

    // Serialising writes them back: the document survives a round trip.
    let again: Value = serde_json::from_str(&c.to_json_pretty()).unwrap();
    assert_eq!(again, v);
    assert_eq!(Contract::from_value(again).unwrap(), c);
    c.validate().unwrap();
}

#[test]
fn a_model_that_cannot_write_its_own_namespace_is_warned_about() {
    let mut v = example("rust_agent.json");
    set(&mut v, "permissions.write_namespaces", json!(["agents-*"]));
    let w = Contract::from_value(v).unwrap().warnings();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].path, "permissions.write_namespaces");
    assert!(w[0].message.contains("\"rust-agent-1\""), "{}", w[0]);
}

#[test]
fn contracts_edited_in_code_are_validated_by_the_same_rules() {
    let mut c = Contract::from_value(example("rust_agent.json")).unwrap();
    c.hvs_binding.dimension = 0;
    c.model.id = String::new();
    let err = c.validate().unwrap_err();
    let paths: Vec<&str> = err.problems().iter().map(|p| p.path.as_str()).collect();
    assert!(
        paths.contains(&"hvs_binding.dimension") && paths.contains(&"model.id"),
        "{err}"
    );
    assert!(
        c.manifold().is_err(),
        "a zero-dimensional space is refused, not built"
    );
}

#[test]
fn every_example_validates_clean_and_encodes() {
    let files = example_files();
    assert!(files.len() >= 5, "{files:?}");
    // The specification's example names no weights file: it has its own
    // tests above (one warning, embeddings refused).
    let verbatim = examples_dir().join("spec_example.json");
    assert!(files.contains(&verbatim));
    for file in files.into_iter().filter(|f| *f != verbatim) {
        let c = Contract::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            c.warnings().is_empty(),
            "{}: {:?}",
            file.display(),
            c.warnings()
        );
        let enc = c
            .encoder(&examples_dir())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let m = c.manifold().unwrap();
        let p = enc.encode_text("a message with no vector").unwrap();
        m.check(&p).unwrap();
        let e = vec![0.3; c.vector_spec.input_dimension];
        m.check(&enc.encode_embedding(&e).unwrap()).unwrap();
        m.check(&enc.place_point(&m.origin()).unwrap()).unwrap();
    }
}

#[test]
fn the_binding_dimension_is_intrinsic() {
    let load = |name: &str| {
        Contract::from_value(example(name))
            .unwrap()
            .manifold()
            .unwrap()
    };
    let h = load("spec_example_with_weights.json");
    assert_eq!(
        (h.name(), h.dim(), h.ambient_dim()),
        ("hyperboloid", 12, 13)
    );
    let p = load("product_space_model.json");
    assert_eq!((p.dim(), p.ambient_dim()), (11, 7 + 6));
    let d = load("lorentzian_planner.json");
    assert_eq!((d.name(), d.dim(), d.ambient_dim()), ("de_sitter", 4, 5));
    let b = load("rust_agent.json");
    assert_eq!((b.name(), b.dim(), b.ambient_dim()), ("poincare", 16, 16));
}

#[test]
fn a_missing_contract_file_is_an_io_error() {
    let err = Contract::load(&examples_dir().join("no-such-contract.json")).unwrap_err();
    assert!(matches!(err, ContractError::Io { .. }), "{err}");
    assert_eq!(err.code(), "io");
}

#[test]
fn the_schema_is_json_and_requires_what_the_validator_requires() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/model_contract_hvs.schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );

    // Remove each field of the fullest example in turn (top level and one
    // level down): the validator says "is required" exactly for the fields
    // the schema lists as required.
    let full = example("spec_example_with_weights.json");
    let required_in = |s: &Value| -> BTreeSet<String> {
        s["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut sections = vec![(String::new(), &schema)];
    for (key, sub) in schema["properties"].as_object().unwrap() {
        if sub.get("required").is_some() {
            sections.push((key.clone(), sub));
        }
    }
    let mut checked = 0;
    for (section, s) in sections {
        let object = if section.is_empty() {
            &full
        } else {
            &full[&section]
        };
        let required = required_in(s);
        for key in object.as_object().unwrap().keys() {
            let path = if section.is_empty() {
                key.clone()
            } else {
                format!("{section}.{key}")
            };
            let mut v = full.clone();
            remove(&mut v, &path);
            let said_required = match Contract::from_value(v) {
                Ok(_) => false,
                Err(e) => e
                    .problems()
                    .contains(&Problem::new(path.clone(), "is required")),
            };
            assert_eq!(said_required, required.contains(key), "{path}");
            checked += 1;
        }
        // And the example has every field the schema requires.
        for key in &required {
            assert!(object.get(key).is_some(), "{section}.{key}");
        }
    }
    assert!(checked >= 39, "{checked}");
}

/// `hvs_binding.graph` (docs/CONTRACTS.md): `m` and `ef_construction`,
/// each optional, within their ranges; anything else is refused by path.
#[test]
fn the_home_namespace_s_graph_settings_are_checked() {
    let mut v = example("rust_agent.json");
    set(
        &mut v,
        "hvs_binding.graph",
        serde_json::json!({"m": 8, "ef_construction": 32}),
    );
    let c = Contract::from_value(v.clone()).expect("valid");
    let graph = c.hvs_binding.graph.expect("kept");
    assert_eq!((graph.m, graph.ef_construction), (Some(8), Some(32)));
    set(&mut v, "hvs_binding.graph", serde_json::json!({"m": 12}));
    let c = Contract::from_value(v.clone()).expect("valid");
    assert_eq!(c.hvs_binding.graph.unwrap().ef_construction, None);
    for (graph, path, fragment) in [
        (serde_json::json!({"m": 2}), "hvs_binding.graph.m", "4"),
        (
            serde_json::json!({"ef_construction": 4096}),
            "hvs_binding.graph.ef_construction",
            "1024",
        ),
        (
            serde_json::json!({"m": 32, "ef_construction": 16}),
            "hvs_binding.graph.ef_construction",
            "less than m",
        ),
        (
            serde_json::json!({"M": 8}),
            "hvs_binding.graph.M",
            "unknown key",
        ),
        (serde_json::json!(8), "hvs_binding.graph", "an object"),
    ] {
        set(&mut v, "hvs_binding.graph", graph.clone());
        assert!(
            has(&problems(&v), path, fragment),
            "{graph}: {:?}",
            problems(&v)
        );
    }
}
