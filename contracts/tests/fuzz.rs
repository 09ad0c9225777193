//! Property tests: no input makes the parser, the validator, the encoders
//! or the glob matcher panic.

mod common;

use common::{example, example_files, examples_dir};
use hvs_contracts::{Contract, glob_match};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6..1e6_f64).prop_map(Value::from),
        prop_oneof![Just(0.0), Just(-0.0), Just(1e308), Just(5e-324)].prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("hyperboloid"),
            Just("product"),
            Just("mlp"),
            Just("random_projection"),
            Just("*"),
            Just("../x"),
            Just("")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path (as key/index steps) of a JSON tree.
fn paths(v: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Value::from(k.as_str()));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(Value::from(i));
                out.push(prefix.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

/// Replaces (or, with `new` = None, removes) the node at `path`.
fn edit(v: &mut Value, path: &[Value], new: Option<Value>) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut node = v;
    for step in parent {
        node = match step {
            Value::String(k) => &mut node[k.as_str()],
            _ => &mut node[step.as_u64().unwrap_or(0) as usize],
        };
    }
    match (node, last, new) {
        (Value::Object(m), Value::String(k), Some(n)) => {
            m.insert(k.clone(), n);
        }
        (Value::Object(m), Value::String(k), None) => {
            m.remove(k);
        }
        (Value::Array(a), i, Some(n)) => a[i.as_u64().unwrap_or(0) as usize] = n,
        (Value::Array(a), i, None) => {
            a.remove(i.as_u64().unwrap_or(0) as usize);
        }
        _ => {}
    }
}

/// Whatever the contract, building and using its encoder does not panic.
fn exercise(c: &Contract) {
    let _ = c.warnings();
    let _ = c.validate();
    let _ = c.to_json_pretty();
    if let Ok(enc) = c.encoder(&examples_dir()) {
        let _ = enc.encode_text("some text");
        let _ = enc.encode_embedding(&vec![0.5; c.vector_spec.input_dimension]);
    }
}

/// A reference matcher: the obvious recursion.
fn glob_reference(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| glob_reference(rest, &t[i..])),
        Some((&c, rest)) => t
            .split_first()
            .is_some_and(|(&tc, tr)| (c == '?' || c == tc) && glob_reference(rest, tr)),
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Contract::from_slice(&bytes);
    }

    #[test]
    fn json_ish_text_never_panics(text in "[{}\\[\\]\":,0-9a-z_. \\-eE$\\\\]{0,300}") {
        let _ = Contract::from_json(&text);
    }

    #[test]
    fn truncated_examples_never_panic(which in any::<Index>(), cut in any::<Index>()) {
        let files = example_files();
        let text = std::fs::read(which.get(&files)).unwrap();
        let _ = Contract::from_slice(&text[..cut.index(text.len() + 1)]);
    }

    #[test]
    fn any_field_replaced_by_any_value_never_panics(
        which in any::<Index>(),
        at in any::<Index>(),
        new in prop::option::weighted(0.85, json_value()),
    ) {
        let names = ["spec_example.json", "spec_example_with_weights.json",
                     "product_space_model.json", "rust_agent.json",
                     "random_projection_model.json", "lorentzian_planner.json"];
        let mut v = example(names[which.index(names.len())]);
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        edit(&mut v, &all[at.index(all.len())], new);
        match Contract::from_value(v.clone()) {
            Ok(c) => exercise(&c),
            // Every refusal comes from the validator, with a path; none
            // from serde disagreeing with it (reported at `$`).
            Err(e) => prop_assert!(
                !e.problems().is_empty() && e.problems().iter().all(|p| p.path != "$"),
                "{e}"
            ),
        }
    }

    #[test]
    fn globs_agree_with_the_reference(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
        let (pc, tc): (Vec<char>, Vec<char>) = (p.chars().collect(), t.chars().collect());
        prop_assert_eq!(glob_match(&p, &t), glob_reference(&pc, &tc));
    }

    #[test]
    fn globs_never_panic_on_any_text(p in "\\PC{0,16}", t in "\\PC{0,16}") {
        let _ = glob_match(&p, &t);
    }
}
