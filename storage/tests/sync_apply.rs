//! Applying one instance's change feed to another (`Store::apply_changes`):
//! stores in memory stand for instances, and a "job" reads one store's feed
//! from its own cursor and applies the namespace and vector changes to
//! another. A copy applies once and never echoes; two-way jobs fall
//! silent; each conflict strategy keeps exactly the version its rule
//! names, audited; `merge` and `geometric_mean` give the closed-form
//! midpoint on the hyperboloid and the sphere, the same bits on both
//! sides; stale versions and tombstones never bring old data back; and
//! three stores under random writes and syncs end up holding the same
//! records.

use std::collections::BTreeMap;

use hvs_storage::{
    ApplyOutcome, AuditAction, Change, ChangeBody, ChangeKind, Clock, ConflictStrategy,
    GeometrySpec, NewVector, SearchQuery, SpaceConfig, Store, StoreConfig, VectorRecord,
    VectorUpdate, hlc_millis,
};
use proptest::prelude::*;
use serde_json::json;
use uuid::Uuid;

const NS: &str = "notes";
const JOB: &str = "job-a-to-b";

fn h2() -> GeometrySpec {
    GeometrySpec::Hyperboloid {
        dim: 2,
        curvature: 1.0,
    }
}

fn s2() -> GeometrySpec {
    GeometrySpec::Sphere {
        dim: 2,
        curvature: 1.0,
    }
}

/// The point of H^2 at distance `r` from the origin, at angle `a`.
fn hyper(r: f64, a: f64) -> Vec<f64> {
    vec![r.cosh(), r.sinh() * a.cos(), r.sinh() * a.sin()]
}

/// The point of S^2 at polar angle `t`, azimuth `a`.
fn sphere(t: f64, a: f64) -> Vec<f64> {
    vec![t.sin() * a.cos(), t.sin() * a.sin(), t.cos()]
}

/// A store standing for one instance, with `NS` on `geometry`.
fn instance(geometry: GeometrySpec) -> Store {
    let s = Store::open(StoreConfig::memory()).unwrap();
    s.create_namespace(SpaceConfig::new(NS, geometry)).unwrap();
    s
}

/// The kinds of change a sync job applies.
fn synced(c: &Change) -> bool {
    matches!(
        c.kind,
        ChangeKind::CreateNamespace
            | ChangeKind::DeleteNamespace
            | ChangeKind::Insert
            | ChangeKind::Update
            | ChangeKind::Delete
    )
}

/// The changes of `from`'s feed after `*cursor` that sync applies; the
/// cursor moves past every change read.
fn read_feed(from: &Store, cursor: &mut u64) -> Vec<Change> {
    let mut out = Vec::new();
    loop {
        let page = from.changes_since(*cursor, 100).unwrap();
        let Some(last) = page.last() else {
            return out;
        };
        *cursor = last.seq;
        out.extend(page.into_iter().filter(synced));
    }
}

/// One run of a one-way job: `from`'s new changes applied to `to`.
fn sync(from: &Store, to: &Store, cursor: &mut u64, strategy: ConflictStrategy) -> Vec<String> {
    let changes = read_feed(from, cursor);
    let outcomes = to.apply_changes(JOB, strategy, changes).unwrap();
    outcomes.iter().map(label).collect()
}

/// An outcome as a comparable word.
fn label(o: &ApplyOutcome) -> String {
    match o {
        ApplyOutcome::Applied => "applied".into(),
        ApplyOutcome::Unchanged => "unchanged".into(),
        ApplyOutcome::Conflict(r) => format!("conflict:{}", r.name()),
        ApplyOutcome::Refused(e) => format!("refused:{}", e.code()),
    }
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}

/// Every record of `NS`, by id.
fn records(s: &Store) -> Vec<VectorRecord> {
    let mut r = s.iter_namespace(NS).unwrap();
    r.sort_by_key(|r| r.id);
    r
}

fn vector(s: &Store, id: Uuid) -> VectorRecord {
    s.retrieve_vector(id).unwrap().expect("the vector is here")
}

fn set(s: &Store, id: Uuid, data: Vec<f64>, side: &str) -> VectorRecord {
    let update = VectorUpdate {
        data: Some(data),
        region: Some(Some(format!("region-{side}"))),
        metadata: Some(serde_json::from_value(json!({ "side": side })).unwrap()),
        if_version: None,
    };
    s.update_vector(id, update).unwrap()
}

/// Waits until the wall clock has passed the millisecond of `hlc`, so
/// that any store's next write is later by the hybrid logical clock.
fn wait_past(hlc: u64) {
    let now_ms = || {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        t.unwrap().as_millis() as u64
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while now_ms() <= hlc_millis(hlc) {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock stands still"
        );
        std::thread::yield_now();
    }
}

/// The `SyncConflict` entries of `s`'s audit log.
fn conflicts(s: &Store) -> Vec<hvs_storage::AuditEntry> {
    let log = s.audit_log(0, 10_000).unwrap();
    log.into_iter()
        .filter(|e| e.action == AuditAction::SyncConflict)
        .collect()
}

#[test]
fn a_copy_applies_once_and_a_second_delivery_changes_nothing() {
    let a = instance(h2());
    let b = Store::open(StoreConfig::memory()).unwrap();
    let mut v = NewVector::new(NS, hyper(0.5, 1.0));
    v.region = Some("r".into());
    v.metadata = serde_json::from_value(json!({"topic": "cats"})).unwrap();
    let x = a.store_vector(v).unwrap();
    let y = a.store_vector(NewVector::new(NS, hyper(1.0, 2.0))).unwrap();
    let z = a.store_vector(NewVector::new(NS, hyper(1.5, 3.0))).unwrap();
    set(&a, y.id, hyper(0.2, 0.3), "a");
    assert!(a.delete_vector(z.id).unwrap());

    let mut cursor = 0;
    let all = ["applied"; 6];
    assert_eq!(
        sync(&a, &b, &mut cursor, ConflictStrategy::LastWriteWins),
        all
    );
    assert_eq!(b.namespace(NS).unwrap(), a.namespace(NS).unwrap());
    assert_eq!(records(&b), records(&a), "records, clocks included");
    assert_eq!(vector(&b, x.id).clock, x.clock);
    assert_eq!(b.tombstone(z.id).unwrap(), a.tombstone(z.id).unwrap());
    assert!(b.tombstone(z.id).unwrap().is_some());
    // The copy's feed carries the same vector bodies; each change is
    // stamped with the copy's clock, which has moved past the body's.
    let bodies = |s: &Store| -> Vec<_> {
        let feed = s.changes_since(0, 100).unwrap();
        feed.into_iter()
            .filter(|c| c.kind != ChangeKind::CreateNamespace)
            .map(|c| (c.kind, c.id, c.version, c.body))
            .collect()
    };
    assert_eq!(bodies(&b), bodies(&a));
    for c in b.changes_since(0, 100).unwrap() {
        let body_hlc = match &c.body {
            Some(ChangeBody::Vector(r)) => r.hlc,
            Some(ChangeBody::Tombstone(t)) => t.hlc,
            _ => 0,
        };
        assert!(c.hlc >= body_hlc, "{c:?}");
    }
    // The copy's index holds what its rows hold.
    let hits = b
        .semantic_search(&SearchQuery::new(NS, x.data.clone(), 3))
        .unwrap();
    let mut found: Vec<Uuid> = hits.iter().map(|h| h.id).collect();
    found.sort();
    assert_eq!(found, [x.id, y.id]);
    assert!(b.verify_consistency().unwrap().consistent);

    let (last, audit) = (b.last_change(), b.audit_log(0, 100).unwrap());
    let again = read_feed(&a, &mut 0);
    let out = b
        .apply_changes(JOB, ConflictStrategy::LastWriteWins, again)
        .unwrap();
    assert_eq!(out.iter().map(label).collect::<Vec<_>>(), ["unchanged"; 6]);
    assert_eq!(b.last_change(), last, "a second delivery logs nothing");
    assert!(b.changes_since(last, 10).unwrap().is_empty());
    assert_eq!(b.audit_log(0, 100).unwrap(), audit);
    assert_eq!(records(&b), records(&a));
}

#[test]
fn a_deleted_namespace_is_deleted_at_the_copy() {
    let a = instance(h2());
    let b = Store::open(StoreConfig::memory()).unwrap();
    let x = a.store_vector(NewVector::new(NS, hyper(0.5, 1.0))).unwrap();
    let mut cursor = 0;
    sync(&a, &b, &mut cursor, ConflictStrategy::LastWriteWins);
    assert!(a.delete_namespace(NS).unwrap());
    let out = sync(&a, &b, &mut cursor, ConflictStrategy::LastWriteWins);
    assert_eq!(
        out,
        ["applied", "applied"],
        "the vector's delete, then the namespace's"
    );
    assert!(b.namespace(NS).is_err());
    assert!(b.retrieve_vector(x.id).unwrap().is_none());
    assert_eq!(b.tombstone(x.id).unwrap(), a.tombstone(x.id).unwrap());
}

#[test]
fn a_namespace_deletion_does_not_echo_between_two_way_jobs() {
    let a = instance(h2());
    let b = Store::open(StoreConfig::memory()).unwrap();
    a.store_vector(NewVector::new(NS, hyper(0.5, 1.0))).unwrap();
    let lww = ConflictStrategy::LastWriteWins;
    let (mut ab, mut ba) = (0, 0);
    sync(&a, &b, &mut ab, lww);
    sync(&b, &a, &mut ba, lww);
    assert!(a.delete_namespace(NS).unwrap());
    assert_eq!(sync(&a, &b, &mut ab, lww), ["applied", "applied"]);
    // b's copy of the vector's delete finds no namespace at a; b's copy of
    // the namespace's delete finds nothing to delete.
    let back = sync(&b, &a, &mut ba, lww);
    assert_eq!(back, ["refused:namespace_not_found", "unchanged"]);
    let lasts = (a.last_change(), b.last_change());
    assert!(sync(&a, &b, &mut ab, lww).is_empty());
    assert!(sync(&b, &a, &mut ba, lww).is_empty());
    assert_eq!((a.last_change(), b.last_change()), lasts);
    assert!(a.namespace(NS).is_err() && b.namespace(NS).is_err());
}

#[test]
fn marks_stay_out_of_the_feed() {
    let a = instance(h2());
    let last = a.last_change();
    assert_eq!(a.mark("test.cursor").unwrap(), None);
    a.set_mark("test.cursor", 42).unwrap();
    assert_eq!(a.mark("test.cursor").unwrap(), Some(42));
    assert_eq!(a.last_change(), last);
}

#[test]
fn two_way_jobs_converge_and_fall_silent() {
    let (a, b) = (instance(h2()), instance(h2()));
    for i in 0..3 {
        a.store_vector(NewVector::new(NS, hyper(0.1 * i as f64, 0.0)))
            .unwrap();
        b.store_vector(NewVector::new(NS, hyper(0.1 * i as f64, 1.0)))
            .unwrap();
    }
    let lww = ConflictStrategy::LastWriteWins;
    let (mut ab, mut ba) = (0, 0);
    // Round 1: each side's own changes; the other's echoes come back as
    // unchanged.
    let ns_and_3 = ["unchanged", "applied", "applied", "applied"];
    assert_eq!(sync(&a, &b, &mut ab, lww), ns_and_3);
    let mut echo = words(&ns_and_3);
    echo.extend(words(&["unchanged"; 3]));
    assert_eq!(sync(&b, &a, &mut ba, lww), echo);
    // Round 2: only b's copies of a's own writes, in a's feed, go back.
    let lasts = (a.last_change(), b.last_change());
    assert_eq!(sync(&a, &b, &mut ab, lww), ["unchanged"; 3]);
    assert!(sync(&b, &a, &mut ba, lww).is_empty());
    // Round 3 on: nothing.
    for _ in 0..3 {
        assert!(sync(&a, &b, &mut ab, lww).is_empty());
        assert!(sync(&b, &a, &mut ba, lww).is_empty());
    }
    assert_eq!((a.last_change(), b.last_change()), lasts);
    assert_eq!(records(&a).len(), 6);
    assert_eq!(records(&a), records(&b));
    assert!(conflicts(&a).is_empty() && conflicts(&b).is_empty());
}

/// Both sides after a hand-built conflict on vector `x`: `a` updated it
/// once (`a2`, version 2), `b` twice (`b2`, `b3`, version 3), and `a`'s
/// write is the later by the hybrid logical clock.
struct Conflict {
    a: Store,
    b: Store,
    x: Uuid,
    a2: VectorRecord,
    b2: VectorRecord,
    b3: VectorRecord,
    /// a → b and b → a cursors, past the conflict's base.
    ab: u64,
    ba: u64,
}

fn conflict(geometry: GeometrySpec, points: [Vec<f64>; 4]) -> Conflict {
    let [base, a_point, b2_point, b3_point] = points;
    let (a, b) = (instance(geometry.clone()), instance(geometry));
    let x = a.store_vector(NewVector::new(NS, base)).unwrap().id;
    let (mut ab, mut ba) = (0, 0);
    sync(&a, &b, &mut ab, ConflictStrategy::LastWriteWins);
    read_feed(&b, &mut ba);
    let b2 = set(&b, x, b2_point, "b");
    let b3 = set(&b, x, b3_point, "b");
    wait_past(b3.hlc);
    let a2 = set(&a, x, a_point, "a");
    assert!(a2.hlc > b3.hlc, "a's write is the later");
    assert_eq!((a2.version, b3.version), (2, 3));
    Conflict {
        a,
        b,
        x,
        a2,
        b2,
        b3,
        ab,
        ba,
    }
}

fn h2_conflict() -> Conflict {
    let points = [
        hyper(0.3, 0.0),
        hyper(1.0, 0.5),
        hyper(0.7, 2.0),
        hyper(1.2, 2.5),
    ];
    conflict(h2(), points)
}

/// Runs a → b, b → a, a → b; answers their outcomes.
fn exchange(c: &mut Conflict, strategy: ConflictStrategy) -> [Vec<String>; 3] {
    let first = sync(&c.a, &c.b, &mut c.ab, strategy);
    let second = sync(&c.b, &c.a, &mut c.ba, strategy);
    let third = sync(&c.a, &c.b, &mut c.ab, strategy);
    [first, second, third]
}

/// The audit log of `s` names one conflict on `x` per resolution given,
/// settled as said, under the job's name.
fn assert_audited(s: &Store, x: Uuid, strategy: ConflictStrategy, resolutions: &[&str]) {
    let entries = conflicts(s);
    assert_eq!(entries.len(), resolutions.len(), "{entries:?}");
    for (e, r) in entries.iter().zip(resolutions) {
        assert_eq!(
            (e.actor.as_str(), e.block, e.name.as_deref()),
            (JOB, Some(x), Some(NS))
        );
        let tail = format!("{} {r}", strategy.name());
        assert!(e.outcome.ends_with(&tail), "{} vs {tail}", e.outcome);
    }
}

#[test]
fn last_write_wins_keeps_the_later_write() {
    let mut c = h2_conflict();
    let s = ConflictStrategy::LastWriteWins;
    let [one, two, three] = exchange(&mut c, s);
    assert_eq!(one, ["conflict:took_source"]);
    // b's two updates lose to a2; then b's copy of a2 is a2.
    assert_eq!(
        two,
        ["conflict:kept_target", "conflict:kept_target", "unchanged"]
    );
    assert!(three.is_empty());
    assert_eq!(vector(&c.a, c.x), c.a2);
    assert_eq!(
        vector(&c.b, c.x),
        c.a2,
        "b holds a's version, clock included"
    );
    assert_audited(&c.b, c.x, s, &["took_source"]);
    assert_audited(&c.a, c.x, s, &["kept_target", "kept_target"]);
}

#[test]
fn highest_version_keeps_the_higher_version() {
    let mut c = h2_conflict();
    let s = ConflictStrategy::HighestVersion;
    let [one, two, three] = exchange(&mut c, s);
    assert_eq!(one, ["conflict:kept_target"]);
    // b2 ties a2 at version 2 and is the earlier write; b3 wins.
    assert_eq!(two, ["conflict:kept_target", "conflict:took_source"]);
    assert_eq!(three, ["unchanged"], "a's copy of b3");
    assert_eq!(vector(&c.b, c.x), c.b3);
    assert_eq!(vector(&c.a, c.x), c.b3);
    assert_audited(&c.b, c.x, s, &["kept_target"]);
    assert_audited(&c.a, c.x, s, &["kept_target", "took_source"]);
}

#[test]
fn keep_target_changes_nothing_but_the_audit_log() {
    let mut c = h2_conflict();
    let s = ConflictStrategy::KeepTarget;
    let lasts = (c.a.last_change(), c.b.last_change());
    let [one, two, three] = exchange(&mut c, s);
    assert_eq!(one, ["conflict:kept_target"]);
    assert_eq!(two, ["conflict:kept_target", "conflict:kept_target"]);
    assert!(three.is_empty());
    assert_eq!(vector(&c.a, c.x), c.a2);
    assert_eq!(vector(&c.b, c.x), c.b3);
    assert_eq!((c.a.last_change(), c.b.last_change()), lasts);
    assert_audited(&c.b, c.x, s, &["kept_target"]);
    assert_audited(&c.a, c.x, s, &["kept_target", "kept_target"]);
}

#[test]
fn merge_converges_when_one_side_wrote_twice() {
    for s in [ConflictStrategy::Merge, ConflictStrategy::GeometricMean] {
        let mut c = h2_conflict();
        let first = sync(&c.a, &c.b, &mut c.ab, s);
        let second = sync(&c.b, &c.a, &mut c.ba, s);
        // b combines b3 with a2; a combines b2 with a2, then that with b3:
        // two combinations of the same three writes, with the same clock
        // but (the midpoint being no associative operation) other points.
        // Which of them both keep depends on their bits; that they keep
        // the same one does not.
        assert_eq!(first, ["conflict:combined"], "{s:?}");
        assert_eq!(second.len(), 3, "{s:?}");
        assert_eq!(second[..2], ["conflict:combined"; 2], "{s:?}");
        let mut quiet = false;
        for _ in 0..3 {
            let lasts = (c.a.last_change(), c.b.last_change());
            sync(&c.a, &c.b, &mut c.ab, s);
            sync(&c.b, &c.a, &mut c.ba, s);
            quiet = (c.a.last_change(), c.b.last_change()) == lasts;
            if quiet {
                break;
            }
        }
        assert!(quiet, "{s:?}: the jobs fall silent");
        let (on_a, on_b) = (vector(&c.a, c.x), vector(&c.b, c.x));
        assert_eq!(on_a.clock, on_b.clock, "{s:?}");
        assert_eq!(on_a, on_b, "{s:?}: both sides end with one record");
        let clock = joined(&[&c.a2.clock, &c.b2.clock, &c.b3.clock]);
        assert_eq!(on_a.clock.entries(), clock.as_slice(), "{s:?}");
    }
}

/// The closed-form midpoint of two points of H^2 (curvature -1):
/// `(x + y) / sqrt(-<x + y, x + y>_L)`.
fn hyperboloid_midpoint(x: &[f64], y: &[f64]) -> Vec<f64> {
    let s: Vec<f64> = x.iter().zip(y).map(|(a, b)| a + b).collect();
    let minkowski = -s[0] * s[0] + s[1] * s[1] + s[2] * s[2];
    let n = (-minkowski).sqrt();
    s.iter().map(|v| v / n).collect()
}

/// The closed-form midpoint of two points of S^2: `(x + y) / |x + y|`.
fn sphere_midpoint(x: &[f64], y: &[f64]) -> Vec<f64> {
    let s: Vec<f64> = x.iter().zip(y).map(|(a, b)| a + b).collect();
    let n = s.iter().map(|v| v * v).sum::<f64>().sqrt();
    s.iter().map(|v| v / n).collect()
}

/// The entry-wise maximum of version vectors.
fn joined(clocks: &[&Clock]) -> Vec<(u64, u64)> {
    let mut entries = BTreeMap::<u64, u64>::new();
    for &(i, t) in clocks.iter().flat_map(|c| c.entries()) {
        let e = entries.entry(i).or_default();
        *e = (*e).max(t);
    }
    entries.into_iter().collect()
}

fn assert_close(got: &[f64], want: &[f64]) {
    let scale = want.iter().fold(1.0_f64, |m, v| m.max(v.abs()));
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-12 * scale, "{got:?} vs {want:?}");
    }
}

/// One update on each side (a's the later), then the exchange: both
/// sides combine the same two versions into the same bits.
fn combine_case(
    geometry: GeometrySpec,
    strategy: ConflictStrategy,
    points: [Vec<f64>; 3],
    midpoint: fn(&[f64], &[f64]) -> Vec<f64>,
) {
    let [base, a_point, b_point] = points;
    let (a, b) = (instance(geometry.clone()), instance(geometry));
    let x = a.store_vector(NewVector::new(NS, base)).unwrap().id;
    let (mut ab, mut ba) = (0, 0);
    sync(&a, &b, &mut ab, strategy);
    read_feed(&b, &mut ba);
    let b2 = set(&b, x, b_point, "b");
    wait_past(b2.hlc);
    let a2 = set(&a, x, a_point, "a");

    assert_eq!(sync(&a, &b, &mut ab, strategy), ["conflict:combined"]);
    let second = sync(&b, &a, &mut ba, strategy);
    assert_eq!(
        second,
        ["conflict:combined", "unchanged"],
        "b2, then b's combination"
    );
    let lasts = (a.last_change(), b.last_change());
    assert_eq!(
        sync(&a, &b, &mut ab, strategy),
        ["unchanged"],
        "a's combination"
    );
    assert!(sync(&b, &a, &mut ba, strategy).is_empty(), "no ping-pong");
    assert_eq!((a.last_change(), b.last_change()), lasts);

    let (on_a, on_b) = (vector(&a, x), vector(&b, x));
    assert_eq!(on_a, on_b, "the same record, bit for bit");
    let bits = |r: &VectorRecord| r.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&on_a), bits(&on_b));
    assert_close(&on_a.data, &midpoint(&a2.data, &b2.data));
    let clock = joined(&[&a2.clock, &b2.clock]);
    assert_eq!(on_a.clock.entries(), clock.as_slice());
    assert_eq!(
        (on_a.version, on_a.hlc),
        (3, a2.hlc),
        "max + 1; the later's clock"
    );
    assert_eq!((&on_a.region, &on_a.metadata), (&a2.region, &a2.metadata));
    assert_eq!(conflicts(&a).len(), 1);
    assert_eq!(conflicts(&b).len(), 1);
}

#[test]
fn merge_takes_the_geodesic_midpoint_on_the_hyperboloid() {
    let points = [hyper(0.3, 0.0), hyper(1.0, 0.5), hyper(2.0, 2.0)];
    combine_case(h2(), ConflictStrategy::Merge, points, hyperboloid_midpoint);
}

#[test]
fn geometric_mean_takes_the_frechet_mean_on_the_hyperboloid() {
    let points = [hyper(0.3, 0.0), hyper(1.0, 0.5), hyper(2.0, 2.0)];
    combine_case(
        h2(),
        ConflictStrategy::GeometricMean,
        points,
        hyperboloid_midpoint,
    );
}

#[test]
fn merge_takes_the_geodesic_midpoint_on_the_sphere() {
    let points = [sphere(0.3, 0.0), sphere(1.0, 0.5), sphere(2.0, 2.0)];
    combine_case(s2(), ConflictStrategy::Merge, points, sphere_midpoint);
}

#[test]
fn geometric_mean_takes_the_frechet_mean_on_the_sphere() {
    let points = [sphere(0.3, 0.0), sphere(1.0, 0.5), sphere(2.0, 2.0)];
    combine_case(
        s2(),
        ConflictStrategy::GeometricMean,
        points,
        sphere_midpoint,
    );
}

/// a deletes `x` and b updates it after both had it; `delete_later` says
/// whose write is the later. Answers a, b, x, b's update and the a → b and
/// b → a cursors.
fn delete_vs_update(delete_later: bool) -> (Store, Store, Uuid, VectorRecord, [u64; 2]) {
    let (a, b) = (instance(h2()), instance(h2()));
    let x = a
        .store_vector(NewVector::new(NS, hyper(0.3, 0.0)))
        .unwrap()
        .id;
    let (mut ab, mut ba) = (0, 0);
    sync(&a, &b, &mut ab, ConflictStrategy::LastWriteWins);
    read_feed(&b, &mut ba);
    let update = if delete_later {
        let u = set(&b, x, hyper(1.0, 1.0), "b");
        wait_past(u.hlc);
        assert!(a.delete_vector(x).unwrap());
        u
    } else {
        assert!(a.delete_vector(x).unwrap());
        wait_past(a.tombstone(x).unwrap().unwrap().hlc);
        set(&b, x, hyper(1.0, 1.0), "b")
    };
    (a, b, x, update, [ab, ba])
}

#[test]
fn a_later_delete_beats_an_update_under_every_combining_strategy() {
    for s in [ConflictStrategy::Merge, ConflictStrategy::GeometricMean] {
        let (a, b, x, _, [mut ab, mut ba]) = delete_vs_update(true);
        assert_eq!(sync(&a, &b, &mut ab, s), ["conflict:took_source"], "{s:?}");
        assert!(b.retrieve_vector(x).unwrap().is_none());
        let tomb = a.tombstone(x).unwrap().expect("a's tombstone");
        assert_eq!(b.tombstone(x).unwrap(), Some(tomb.clone()));
        assert_eq!(tomb.version, 2);
        // b's update, then b's copy of the tombstone.
        let back = sync(&b, &a, &mut ba, s);
        assert_eq!(back, ["conflict:kept_target", "unchanged"], "{s:?}");
        assert!(sync(&a, &b, &mut ab, s).is_empty());
        assert!(a.retrieve_vector(x).unwrap().is_none());
        assert_eq!(a.tombstone(x).unwrap(), Some(tomb));
        assert_audited(&b, x, s, &["took_source"]);
        assert_audited(&a, x, s, &["kept_target"]);
    }
}

#[test]
fn a_later_update_beats_a_delete_under_every_combining_strategy() {
    for s in [ConflictStrategy::Merge, ConflictStrategy::GeometricMean] {
        let (a, b, x, update, [mut ab, mut ba]) = delete_vs_update(false);
        assert_eq!(sync(&a, &b, &mut ab, s), ["conflict:kept_target"], "{s:?}");
        assert_eq!(vector(&b, x), update);
        assert_eq!(sync(&b, &a, &mut ba, s), ["conflict:took_source"], "{s:?}");
        assert_eq!(vector(&a, x), update, "back on a, b's version");
        assert_eq!(a.tombstone(x).unwrap(), None, "the tombstone is gone");
        assert_eq!(sync(&a, &b, &mut ab, s), ["unchanged"]);
        assert_audited(&b, x, s, &["kept_target"]);
        assert_audited(&a, x, s, &["took_source"]);
    }
}

#[test]
fn a_late_older_version_changes_nothing() {
    let (a, b) = (instance(h2()), instance(h2()));
    let x = a
        .store_vector(NewVector::new(NS, hyper(0.3, 0.0)))
        .unwrap()
        .id;
    set(&a, x, hyper(0.4, 0.0), "a");
    let v3 = set(&a, x, hyper(0.5, 0.0), "a");
    let y = a
        .store_vector(NewVector::new(NS, hyper(0.6, 0.0)))
        .unwrap()
        .id;
    assert!(a.delete_vector(y).unwrap());
    let feed = read_feed(&a, &mut 0);
    let find = |kind, id, version| {
        let c = feed
            .iter()
            .find(|c| c.kind == kind && c.id == Some(id) && c.version == version);
        c.cloned().unwrap()
    };
    let newest = vec![
        find(ChangeKind::Update, x, 3),
        find(ChangeKind::Delete, y, 2),
    ];
    let out = b.apply_changes(JOB, ConflictStrategy::LastWriteWins, newest);
    assert_eq!(
        out.unwrap().iter().map(label).collect::<Vec<_>>(),
        ["applied"; 2]
    );
    let last = b.last_change();
    for s in ConflictStrategy::ALL {
        let stale = vec![
            find(ChangeKind::Update, x, 2),
            find(ChangeKind::Insert, x, 1),
            find(ChangeKind::Insert, y, 1),
        ];
        let out = b.apply_changes(JOB, s, stale).unwrap();
        assert_eq!(
            out.iter().map(label).collect::<Vec<_>>(),
            ["unchanged"; 3],
            "{s:?}"
        );
    }
    assert_eq!(b.last_change(), last);
    assert_eq!(vector(&b, x), v3);
    assert!(b.retrieve_vector(y).unwrap().is_none(), "no resurrection");
    assert!(conflicts(&b).is_empty());
}

#[test]
fn a_namespace_of_another_geometry_is_refused_and_nothing_changes() {
    let a = instance(h2());
    let b = instance(s2());
    let mine = b
        .store_vector(NewVector::new(NS, sphere(0.5, 0.5)))
        .unwrap();
    a.store_vector(NewVector::new(NS, hyper(0.5, 0.5))).unwrap();
    let (last, before) = (b.last_change(), records(&b));
    let out = sync(&a, &b, &mut 0, ConflictStrategy::LastWriteWins);
    assert_eq!(out[0], "refused:geometry_mismatch");
    // The hyperboloid's point is no point of the sphere.
    assert!(out[1].starts_with("refused:"), "{out:?}");
    assert_eq!(b.namespace(NS).unwrap().geometry, s2());
    assert_eq!(records(&b), before);
    assert_eq!(vector(&b, mine.id), mine);
    assert_eq!(b.last_change(), last);
    let changes = read_feed(&a, &mut 0);
    let out = b
        .apply_changes(JOB, ConflictStrategy::LastWriteWins, changes)
        .unwrap();
    match &out[0] {
        ApplyOutcome::Refused(e) => {
            assert_eq!(e.code(), "geometry_mismatch");
            assert!(e.is_validation());
        }
        other => panic!("{other:?}"),
    }
}

/// A change carrying `body`, as another instance's feed would.
fn change(kind: ChangeKind, id: Uuid, hlc: u64, body: hvs_storage::ChangeBody) -> Change {
    Change {
        seq: 1,
        kind,
        namespace: NS.into(),
        id: Some(id),
        version: 0,
        timestamp_ms: 1,
        hlc,
        body: Some(body),
    }
}

fn clock(entries: &[(u64, u64)]) -> Clock {
    serde_json::from_value(json!(entries)).unwrap()
}

/// Three versions of one vector, all stamped at `H` (two instances can
/// stamp the same millisecond): `early`, written by instance 3; `merged`,
/// a combination that includes it (which keeps the later write's stamp);
/// and a deletion by instance 2, concurrent with both. Whatever the order
/// they arrive in, the store ends with the same one, and a second delivery
/// changes nothing. (Ranked by stamp and then the clocks' entries read as
/// a list, the deletion would beat `merged` and lose to `early`, which
/// `merged` includes: the three would replace one another forever.)
#[test]
fn versions_arriving_in_any_order_end_the_same() {
    const H: u64 = 1000;
    let id = Uuid::now_v7();
    let record = |data, version, entries: &[(u64, u64)]| VectorRecord {
        id,
        namespace: NS.into(),
        data,
        region: None,
        metadata: Default::default(),
        version,
        timestamp_ms: 1,
        hlc: H,
        clock: clock(entries),
    };
    let early = record(hyper(0.5, 0.0), 1, &[(3, H)]);
    let merged = record(hyper(0.7, 1.0), 3, &[(1, 10), (2, 20), (3, H)]);
    let deleted = hvs_storage::Tombstone {
        id,
        namespace: NS.into(),
        version: 2,
        hlc: H,
        clock: clock(&[(2, H), (3, 5)]),
    };
    use hvs_storage::ChangeBody::{Tombstone, Vector};
    let changes = [
        change(ChangeKind::Insert, id, H, Vector(early)),
        change(ChangeKind::Update, id, H, Vector(merged.clone())),
        change(ChangeKind::Delete, id, H, Tombstone(deleted)),
    ];
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let s = instance(h2());
        for i in order {
            s.apply_changes(JOB, ConflictStrategy::Merge, vec![changes[i].clone()])
                .unwrap();
        }
        assert_eq!(
            s.retrieve_vector(id).unwrap(),
            Some(merged.clone()),
            "{order:?}"
        );
        let last = s.last_change();
        let again = s.apply_changes(JOB, ConflictStrategy::Merge, changes.to_vec());
        let again: Vec<String> = again.unwrap().iter().map(label).collect();
        assert_eq!(again, ["unchanged", "unchanged", "conflict:kept_target"]);
        assert_eq!(s.last_change(), last, "{order:?}");
    }
}

// ---- Three instances under random writes and syncs -------------------

#[derive(Debug, Clone)]
enum Step {
    Insert {
        at: usize,
        r: f64,
        a: f64,
    },
    Update {
        at: usize,
        pick: usize,
        r: f64,
        a: f64,
    },
    Delete {
        at: usize,
        pick: usize,
    },
    Sync {
        from: usize,
        to: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let store = 0..3usize;
    let (r, a) = (0.0..2.0f64, 0.0..std::f64::consts::TAU);
    prop_oneof![
        3 => (store.clone(), r.clone(), a.clone()).prop_map(|(at, r, a)| Step::Insert { at, r, a }),
        4 => (store.clone(), any::<usize>(), r, a)
            .prop_map(|(at, pick, r, a)| Step::Update { at, pick, r, a }),
        1 => (store.clone(), any::<usize>()).prop_map(|(at, pick)| Step::Delete { at, pick }),
        3 => (store.clone(), store).prop_map(|(from, to)| Step::Sync { from, to }),
    ]
}

/// Three instances and each job's cursor (`cursors[from][to]`).
struct Mesh {
    stores: Vec<Store>,
    cursors: [[u64; 3]; 3],
    strategy: ConflictStrategy,
}

impl Mesh {
    fn new(strategy: ConflictStrategy) -> Self {
        let stores = (0..3).map(|_| instance(h2())).collect();
        Mesh {
            stores,
            cursors: [[0; 3]; 3],
            strategy,
        }
    }

    /// The `pick`-th live vector of store `at`, if it holds any.
    fn pick(&self, at: usize, pick: usize) -> Option<Uuid> {
        let live = records(&self.stores[at]);
        (!live.is_empty()).then(|| live[pick % live.len()].id)
    }

    fn run(&mut self, step: &Step) {
        match *step {
            Step::Insert { at, r, a } => {
                let v = NewVector::new(NS, hyper(r, a));
                self.stores[at].store_vector(v).unwrap();
            }
            Step::Update { at, pick, r, a } => {
                if let Some(id) = self.pick(at, pick) {
                    set(&self.stores[at], id, hyper(r, a), &at.to_string());
                }
            }
            Step::Delete { at, pick } => {
                if let Some(id) = self.pick(at, pick) {
                    assert!(self.stores[at].delete_vector(id).unwrap());
                }
            }
            Step::Sync { from, to } if from != to => self.sync(from, to),
            Step::Sync { .. } => {}
        }
    }

    fn sync(&mut self, from: usize, to: usize) {
        let (f, t) = (&self.stores[from], &self.stores[to]);
        for o in sync(f, t, &mut self.cursors[from][to], self.strategy) {
            assert!(!o.starts_with("refused"), "{o}");
        }
    }

    /// Runs every job until a whole round writes nothing.
    fn settle(&mut self) {
        // Clocks only grow and no write is new, so a handful of rounds
        // settles any history; a bound keeps a ping-pong from running away.
        for round in 1.. {
            let before: Vec<u64> = self.stores.iter().map(Store::last_change).collect();
            for (from, to) in [(0, 1), (1, 2), (2, 0), (1, 0), (2, 1), (0, 2)] {
                self.sync(from, to);
            }
            let after: Vec<u64> = self.stores.iter().map(Store::last_change).collect();
            if after == before {
                return;
            }
            assert!(round < 8, "the jobs never fell silent");
        }
    }
}

/// Whether the index agrees with the rows, polled for a while: the
/// background indexer may be moving a node when the check looks.
fn index_agrees(s: &Store) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !s.verify_consistency().unwrap().consistent {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

fn converges(strategy: ConflictStrategy, steps: &[Step]) -> Result<(), TestCaseError> {
    let mut mesh = Mesh::new(strategy);
    for s in steps {
        mesh.run(s);
    }
    mesh.settle();
    for s in &mesh.stores {
        prop_assert!(index_agrees(s), "{:?}", s.verify_consistency());
    }
    let all: Vec<Vec<VectorRecord>> = mesh.stores.iter().map(records).collect();
    prop_assert_eq!(&all[0], &all[1]);
    prop_assert_eq!(&all[1], &all[2]);
    Ok(())
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        // No regression files written into the crate.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn three_instances_converge_under_last_write_wins(steps in prop::collection::vec(step(), 1..40)) {
        converges(ConflictStrategy::LastWriteWins, &steps)?;
    }

    #[test]
    fn three_instances_converge_under_merge(steps in prop::collection::vec(step(), 1..40)) {
        converges(ConflictStrategy::Merge, &steps)?;
    }
}
