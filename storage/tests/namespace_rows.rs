//! `iter_namespace` reads only its namespace's rows: every vector of the
//! namespace, oldest first, as of the last write answered, whether it looks
//! the rows up one by one (a namespace holding few of the table's rows) or
//! walks the table beside its ids (one holding many), in memory and after a
//! reopen.

use hvs_storage::{
    Durability, GeometrySpec, NewVector, SpaceConfig, Store, StoreConfig, VectorRecord,
    VectorUpdate,
};
use serde_json::json;
use uuid::Uuid;

fn h2() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    }
}

fn put(s: &Store, ns: &str, n: u64) -> Uuid {
    let r = n as f64 * 0.01;
    let mut v = NewVector::new(ns, vec![r.cosh(), r.sinh(), 0.0]);
    v.metadata = serde_json::from_value(json!({ "n": n })).unwrap();
    s.store_vector(v).unwrap().id
}

fn ids(records: &[VectorRecord]) -> Vec<Uuid> {
    records.iter().map(|r| r.id).collect()
}

/// `big` holds most of the table, `small` two rows among them (stored
/// between `big`'s, so either's walk passes the other's rows), `empty`
/// none; some of `big` deleted, one of `small` updated. Returns what each
/// must hold, oldest first.
fn fill(s: &Store) -> (Vec<Uuid>, Vec<Uuid>) {
    for ns in ["big", "small", "empty"] {
        s.create_namespace(SpaceConfig::new(ns, h2())).unwrap();
    }
    let (mut big, mut small) = (Vec::new(), Vec::new());
    for n in 0..60 {
        big.push(put(s, "big", n));
        if n == 20 || n == 40 {
            small.push(put(s, "small", n));
        }
    }
    for id in big.iter().step_by(7) {
        assert!(s.delete_vector(*id).unwrap());
    }
    big = big
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % 7 != 0)
        .map(|(_, id)| id)
        .collect();
    let update = VectorUpdate {
        metadata: Some(serde_json::from_value(json!({ "n": "updated" })).unwrap()),
        ..Default::default()
    };
    s.update_vector(small[1], update).unwrap();
    (big, small)
}

fn check(s: &Store, big: &[Uuid], small: &[Uuid]) {
    let b = s.iter_namespace("big").unwrap();
    assert_eq!(ids(&b), big);
    assert!(b.iter().all(|r| r.namespace == "big"));
    let sm = s.iter_namespace("small").unwrap();
    assert_eq!(ids(&sm), small);
    assert_eq!(sm[1].metadata["n"], json!("updated"));
    assert_eq!(sm[1].version, 2);
    assert!(s.iter_namespace("empty").unwrap().is_empty());
    assert!(s.iter_namespace("nowhere").is_err());
}

#[test]
fn iter_namespace_returns_its_own_rows_oldest_first_few_or_many() {
    let s = Store::open(StoreConfig::memory()).unwrap();
    let (big, small) = fill(&s);
    // Sanity of the setting: `small` is looked up, `big` walked.
    assert!(small.len() * 8 < big.len() + small.len());
    assert!(big.len() * 8 >= big.len() + small.len());
    check(&s, &big, &small);
}

#[test]
fn iter_namespace_reads_the_same_rows_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (big, small) = {
        let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
        let filled = fill(&s);
        s.close().unwrap();
        filled
    };
    let s = Store::open(StoreConfig::file(&path, Durability::Buffered)).unwrap();
    check(&s, &big, &small);
}
