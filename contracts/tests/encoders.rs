//! The encoders: JL projections, MLPs and their weights files, text, and the
//! map of every encoder onto every geometry.

mod common;

use std::path::Path;

use common::{contract_json, example, examples_dir, set};
use hvs_contracts::{Activation, Contract, ContractError, DenseLayer, Encoder};
use hvs_geometry::{GeometryError, Manifold};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn write_weights(dir: &Path, name: &str, layers: Value) {
    std::fs::write(dir.join(name), json!({ "layers": layers }).to_string()).unwrap();
}

/// A weights file of random layers of the given widths.
fn random_mlp(dir: &Path, widths: &[usize], rng: &mut StdRng) {
    let layers: Vec<Value> = widths
        .windows(2)
        .map(|w| {
            let weights: Vec<Vec<f64>> = (0..w[1])
                .map(|_| (0..w[0]).map(|_| rng.random_range(-1.0..1.0)).collect())
                .collect();
            let bias: Vec<f64> = (0..w[1]).map(|_| rng.random_range(-0.1..0.1)).collect();
            json!({ "weights": weights, "bias": bias })
        })
        .collect();
    write_weights(dir, "mlp.json", Value::Array(layers));
}

fn invalid_at_weights(err: ContractError) -> String {
    let p = err.problems();
    assert!(!p.is_empty(), "expected an invalid contract, got {err}");
    assert!(
        p.iter().all(|p| p.path == "vector_spec.encoder.weights"),
        "{p:?}"
    );
    err.to_string()
}

#[test]
fn random_projection_is_deterministic_and_roughly_preserves_distances() {
    let a = Encoder::random_projection(512, 256, 42);
    assert_eq!(a, Encoder::random_projection(512, 256, 42));
    assert_ne!(a, Encoder::random_projection(512, 256, 43));

    let mut rng = StdRng::seed_from_u64(7);
    let points: Vec<Vec<f64>> = (0..40)
        .map(|_| (0..512).map(|_| rng.random_range(-1.0..1.0)).collect())
        .collect();
    let projected: Vec<Vec<f64>> = points.iter().map(|p| a.apply(p).unwrap()).collect();
    let (mut lo, mut hi) = (f64::INFINITY, 0.0_f64);
    for i in 0..points.len() {
        for j in 0..i {
            let r = distance(&projected[i], &projected[j]) / distance(&points[i], &points[j]);
            (lo, hi) = (lo.min(r), hi.max(r));
        }
        let r = distance(&projected[i], &[0.0; 256]) / distance(&points[i], &[0.0; 512]);
        (lo, hi) = (lo.min(r), hi.max(r));
    }
    // For k = 256 one ratio has a standard deviation of about 0.045; 820
    // ratios stay well within ±25%.
    assert!(lo > 0.75 && hi < 1.25, "distance ratios in [{lo}, {hi}]");
}

#[test]
fn the_default_seed_comes_from_the_model_id() {
    let mut v = contract_json("hyperboloid", 8, "random_projection", 64);
    let one = Contract::from_value(v.clone()).unwrap();
    let same = Contract::from_value(v.clone()).unwrap();
    set(&mut v, "model.id", "another-model".into());
    let other = Contract::from_value(v.clone()).unwrap();
    assert_eq!(one.projection_seed(), same.projection_seed());
    assert_ne!(one.projection_seed(), other.projection_seed());
    set(&mut v, "vector_spec.encoder.seed", 99.into());
    assert_eq!(Contract::from_value(v).unwrap().projection_seed(), 99);

    let e = vec![0.5; 64];
    let p = one
        .encoder(Path::new("."))
        .unwrap()
        .encode_embedding(&e)
        .unwrap();
    let q = same
        .encoder(Path::new("."))
        .unwrap()
        .encode_embedding(&e)
        .unwrap();
    let r = other
        .encoder(Path::new("."))
        .unwrap()
        .encode_embedding(&e)
        .unwrap();
    assert_eq!(p, q);
    assert_ne!(p, r);
}

#[test]
fn an_mlp_computes_the_hand_checked_output() {
    let dir = tempfile::tempdir().unwrap();
    write_weights(
        dir.path(),
        "mlp.json",
        json!([
            { "weights": [[1, -1], [0.5, 2], [-1, 0]], "bias": [0, -1, 0.5] },
            { "weights": [[1, 2, 3], [0, -1, 1]], "bias": [0.25, 0] }
        ]),
    );
    // x = (1, 2): layer 1 gives relu(-1, 3.5, -0.5) = (0, 3.5, 0); layer 2
    // gives (3.5·2 + 0.25, -3.5) = (7.25, -3.5).
    let mut v = contract_json("euclidean", 2, "mlp", 2);
    set(&mut v, "vector_spec.encoder.hidden_dims", json!([3]));
    let c = Contract::from_value(v.clone()).unwrap();
    let enc = c.encoder(dir.path()).unwrap();
    assert_eq!(enc.encoder().shape(), [2, 3, 2]);
    assert_eq!(enc.encoder().apply(&[1.0, 2.0]).unwrap(), [7.25, -3.5]);
    // Euclidean space is unbounded and exp0 is the identity: the point is
    // the network's output.
    assert_eq!(enc.encode_embedding(&[1.0, 2.0]).unwrap(), [7.25, -3.5]);

    set(
        &mut v,
        "vector_spec.encoder.output_activation",
        "tanh".into(),
    );
    set(&mut v, "vector_spec.encoder.activation", "identity".into());
    let enc = Contract::from_value(v)
        .unwrap()
        .encoder(dir.path())
        .unwrap();
    // Without relu: (-1, 3.5, -0.5) → (-1 + 7 - 1.5 + 0.25, -3.5 - 0.5).
    let out = enc.encoder().apply(&[1.0, 2.0]).unwrap();
    let want = [4.75_f64.tanh(), (-4.0_f64).tanh()];
    assert!(distance(&out, &want) < 1e-15, "{out:?}");

    // The same network built in code.
    let layers = vec![
        DenseLayer {
            weights: vec![vec![1.0, -1.0], vec![0.5, 2.0], vec![-1.0, 0.0]],
            bias: vec![0.0, -1.0, 0.5],
        },
        DenseLayer {
            weights: vec![vec![1.0, 2.0, 3.0], vec![0.0, -1.0, 1.0]],
            bias: vec![0.25, 0.0],
        },
    ];
    let e = Encoder::mlp(layers, Activation::Relu, Activation::Identity).unwrap();
    assert_eq!(e.apply(&[1.0, 2.0]).unwrap(), [7.25, -3.5]);
}

#[test]
fn missing_or_misshaped_weights_are_invalid_with_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = contract_json("euclidean", 2, "mlp", 2);
    set(&mut v, "vector_spec.encoder.hidden_dims", json!([3]));
    let c = Contract::from_value(v.clone()).unwrap();

    let msg = invalid_at_weights(c.encoder(dir.path()).unwrap_err());
    assert!(
        msg.contains("cannot read") && msg.contains("mlp.json"),
        "{msg}"
    );

    std::fs::write(dir.path().join("mlp.json"), "{\"layers\": [").unwrap();
    let msg = invalid_at_weights(c.encoder(dir.path()).unwrap_err());
    assert!(msg.contains("is not a weights file"), "{msg}");

    // Consistent on its own, but 3 inputs and 4 hidden units.
    write_weights(
        dir.path(),
        "mlp.json",
        json!([
            { "weights": [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]], "bias": [0, 0, 0, 0] },
            { "weights": [[1, 1, 1, 1], [1, 1, 1, 1]], "bias": [0, 0] }
        ]),
    );
    let msg = invalid_at_weights(c.encoder(dir.path()).unwrap_err());
    assert!(
        msg.contains("found layer widths [3, 4, 2], expected [2, 3, 2]"),
        "{msg}"
    );
    // Without hidden_dims only the ends are compared.
    let mut loose = v.clone();
    common::remove(&mut loose, "vector_spec.encoder.hidden_dims");
    let loose = Contract::from_value(loose).unwrap();
    let msg = invalid_at_weights(loose.encoder(dir.path()).unwrap_err());
    assert!(
        msg.contains("found layer widths [3, 4, 2], expected [2, …, 2]"),
        "{msg}"
    );

    // Broken inside: a ragged row, a short bias, layers that do not chain.
    write_weights(
        dir.path(),
        "mlp.json",
        json!([
            { "weights": [[1, 1], [1]], "bias": [0] },
            { "weights": [[1, 1, 1]], "bias": [0, 0] }
        ]),
    );
    let err = c.encoder(dir.path()).unwrap_err();
    let msg = invalid_at_weights(err);
    for fragment in [
        "layers[0].weights[1]: has 1 columns, expected 2",
        "layers[0].bias: has 1 entries, expected 2",
        "layers[1].weights: has 3 columns, expected 2 (the outputs of layers[0])",
    ] {
        assert!(msg.contains(fragment), "{fragment} not in {msg}");
    }

    write_weights(dir.path(), "mlp.json", json!([]));
    let msg = invalid_at_weights(c.encoder(dir.path()).unwrap_err());
    assert!(
        msg.contains("layers: must have at least one layer"),
        "{msg}"
    );

    // Absolute paths and escapes are refused when the contract is read.
    for bad in ["/etc/passwd", "../mlp.json", "a/../../b.json"] {
        set(&mut v, "vector_spec.encoder.weights", bad.into());
        let err = Contract::from_value(v.clone()).unwrap_err();
        assert_eq!(err.problems().len(), 1, "{err}");
        assert_eq!(err.problems()[0].path, "vector_spec.encoder.weights");
    }
}

#[test]
fn the_spec_examples_mlp_loads_from_its_directory() {
    let c = Contract::from_value(example("spec_example_with_weights.json")).unwrap();
    let enc = c.encoder(&examples_dir()).unwrap();
    assert_eq!(enc.encoder().shape(), [64, 32, 16, 12]);
    // tanh output: each coordinate in (-1, 1).
    let t = enc.encoder().apply(&[1.0; 64]).unwrap();
    assert!(t.iter().all(|x| x.abs() < 1.0), "{t:?}");
    c.manifold()
        .unwrap()
        .check(&enc.encode_embedding(&[1.0; 64]).unwrap())
        .unwrap();
}

#[test]
fn text_only_messages_land_on_the_manifold() {
    for (geometry, dim) in [
        ("hyperboloid", 12),
        ("hyperboloid", 128),
        ("poincare", 8),
        ("poincare", 64),
        ("sphere", 256),
        ("euclidean", 3),
        ("lorentzian", 4),
        ("product", 11),
        ("sphere", 1),
    ] {
        let c = Contract::from_value(contract_json(geometry, dim, "identity", dim)).unwrap();
        let m = c.manifold().unwrap();
        let enc = c.encoder(Path::new(".")).unwrap();
        let a = enc
            .encode_text("hyperbolic space embeds hierarchies")
            .unwrap();
        m.check(&a).unwrap();
        assert_eq!(a.len(), m.ambient_dim());
        // Deterministic, and similar texts land nearer than unrelated ones.
        assert_eq!(
            a,
            enc.encode_text("hyperbolic space embeds hierarchies")
                .unwrap()
        );
        m.check(&enc.encode_text("").unwrap()).unwrap();
        // Lexical similarity needs room: in a dozen coordinates the hashed
        // words collide.
        if dim >= 64 {
            let near = enc
                .encode_text("hierarchies embed in hyperbolic space")
                .unwrap();
            let far = enc.encode_text("the cat sat on the mat").unwrap();
            assert!(
                m.distance(&a, &near).unwrap() < m.distance(&a, &far).unwrap(),
                "{geometry}"
            );
        }
    }
}

#[test]
fn every_encoder_lands_on_every_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    for geometry in [
        "hyperboloid",
        "poincare",
        "sphere",
        "euclidean",
        "lorentzian",
        "product",
    ] {
        for kind in ["identity", "random_projection", "mlp"] {
            let dim = 10;
            let input = if kind == "identity" { dim } else { 24 };
            random_mlp(dir.path(), &[input, 16, dim], &mut rng);
            let c = Contract::from_value(contract_json(geometry, dim, kind, input)).unwrap();
            let m = c.manifold().unwrap();
            let enc = c.encoder(dir.path()).unwrap();
            for scale in [0.0, 1e-3, 1.0, 30.0, 1e6] {
                let e: Vec<f64> = (0..input)
                    .map(|_| scale * rng.random_range(-1.0..1.0))
                    .collect();
                let p = enc
                    .encode_embedding(&e)
                    .unwrap_or_else(|err| panic!("{geometry}/{kind} at {scale}: {err}"));
                m.check(&p)
                    .unwrap_or_else(|err| panic!("{geometry}/{kind} at {scale}: {err}"));
                if geometry != "lorentzian" {
                    // The radius bound: never past 8 (hyperbolic) or a
                    // quarter great circle (sphere), for any input.
                    let r = m.distance(&m.origin(), &p).unwrap();
                    let bound = match geometry {
                        "hyperboloid" | "poincare" => 8.0,
                        "sphere" => std::f64::consts::FRAC_PI_2,
                        "product" => (64.0 + 2.0 * std::f64::consts::FRAC_PI_2.powi(2)).sqrt(),
                        _ => f64::INFINITY,
                    };
                    assert!(r <= bound + 1e-9, "{geometry}/{kind}: radius {r}");
                }
            }
        }
    }
}

#[test]
fn small_tangent_vectors_keep_their_length() {
    // The bound is ρ tanh(r/ρ): the identity to first order near the origin.
    let c = Contract::from_value(contract_json("hyperboloid", 4, "identity", 4)).unwrap();
    let m = c.manifold().unwrap();
    let enc = c.encoder(Path::new(".")).unwrap();
    let p = enc.encode_embedding(&[0.1, 0.0, 0.0, 0.0]).unwrap();
    assert!((m.distance(&m.origin(), &p).unwrap() - 0.1).abs() < 1e-4);
}

#[test]
fn bad_inputs_are_typed_errors() {
    let c = Contract::from_value(contract_json("hyperboloid", 4, "random_projection", 6)).unwrap();
    let enc = c.encoder(Path::new(".")).unwrap();
    assert!(matches!(
        enc.encode_embedding(&[1.0; 5]),
        Err(ContractError::DimensionMismatch {
            what: "embedding",
            expected: 6,
            got: 5
        })
    ));
    let err = enc
        .encode_embedding(&[1.0, f64::NAN, 0.0, 0.0, 0.0, 0.0])
        .unwrap_err();
    assert!(
        matches!(err, ContractError::NonFinite { index: 1, .. }),
        "{err}"
    );
    assert_eq!(err.code(), "non_finite");
    assert!(matches!(
        enc.place_tangent(&[1.0; 3]),
        Err(ContractError::DimensionMismatch {
            expected: 4,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        enc.place_tangent(&[f64::INFINITY, 0.0, 0.0, 0.0]),
        Err(ContractError::NonFinite { index: 0, .. })
    ));

    // A point: wrong length or NaN is refused; a point off the hyperboloid
    // is projected onto it.
    let err = enc.place_point(&[1.0; 4]).unwrap_err();
    assert!(
        matches!(
            err,
            ContractError::Geometry(GeometryError::DimensionMismatch {
                expected: 5,
                got: 4
            })
        ),
        "{err}"
    );
    assert_eq!(err.code(), "dimension_mismatch");
    assert!(matches!(
        enc.place_point(&[1.0, f64::NAN, 0.0, 0.0, 0.0]),
        Err(ContractError::Geometry(GeometryError::NonFinite { .. }))
    ));
    let m = c.manifold().unwrap();
    let p = enc.place_point(&[7.0, 0.5, 0.0, 0.0, 0.0]).unwrap();
    m.check(&p).unwrap();
    assert_eq!(
        enc.place_point(&p).unwrap(),
        p,
        "points on the manifold stay put"
    );

    // An encoder whose output is not the space's dimension is refused.
    let err = hvs_contracts::MessageEncoder::new(m, Encoder::identity(3)).unwrap_err();
    assert!(matches!(
        err,
        ContractError::DimensionMismatch {
            expected: 4,
            got: 3,
            ..
        }
    ));

    // An MLP that overflows reports a non-finite output, not NaN.
    let big = vec![DenseLayer {
        weights: vec![vec![1e300, 1e300]],
        bias: vec![0.0],
    }];
    let e = Encoder::mlp(big, Activation::Relu, Activation::Identity).unwrap();
    assert!(matches!(
        e.apply(&[1e10, 1e10]),
        Err(ContractError::NonFinite {
            what: "encoder output",
            ..
        })
    ));
}
