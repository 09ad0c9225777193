//! Permissions (globs) and resource limits (token buckets with an injected
//! clock: no sleeping, no wall-clock assertions).

mod common;

use std::time::{Duration, Instant};

use common::{example, set};
use hvs_contracts::{Contract, ContractError, Limit, RateLimiter};
use serde_json::json;

fn contract(vectors: u64, queries: u64) -> Contract {
    let mut v = example("rust_agent.json");
    set(
        &mut v,
        "resource_limits.max_vectors_per_second",
        vectors.into(),
    );
    set(
        &mut v,
        "resource_limits.max_queries_per_second",
        queries.into(),
    );
    Contract::from_value(v).unwrap()
}

/// The refusal's limit and retry time, or a panic if it was allowed.
fn refusal(r: Result<(), ContractError>) -> (Limit, u64, Option<Duration>) {
    match r {
        Err(ContractError::LimitExceeded {
            limit,
            value,
            retry_after,
        }) => (limit, value, retry_after),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn buckets_refuse_past_the_budget_and_recover_on_time() {
    let t0 = Instant::now();
    let limiter = contract(10, 1000).rate_limiter(t0);

    // A full second's budget at once, then nothing.
    for _ in 0..10 {
        limiter.acquire_vectors(1, t0).unwrap();
    }
    let (limit, value, retry) = refusal(limiter.acquire_vectors(1, t0));
    assert_eq!(
        (limit, value, retry),
        (Limit::VectorsPerSecond, 10, Some(100 * MS))
    );

    // One token every 100 ms: just before, still refused, with the rest of
    // the wait; at the time given, allowed.
    assert_eq!(
        refusal(limiter.acquire_vectors(1, t0 + 99 * MS)).2,
        Some(MS)
    );
    limiter.acquire_vectors(1, t0 + 100 * MS).unwrap();
    assert_eq!(
        refusal(limiter.acquire_vectors(1, t0 + 100 * MS)).2,
        Some(100 * MS)
    );

    // Three at once need three tokens' time.
    assert_eq!(
        refusal(limiter.acquire_vectors(3, t0 + 100 * MS)).2,
        Some(300 * MS)
    );
    limiter.acquire_vectors(3, t0 + 400 * MS).unwrap();

    // After a quiet second the bucket is full again, and no fuller.
    let later = t0 + Duration::from_secs(5);
    limiter.acquire_vectors(10, later).unwrap();
    assert!(limiter.acquire_vectors(1, later).is_err());

    // Refusals take nothing: the queries bucket is untouched by all this.
    limiter.acquire_queries(1000, t0).unwrap();
    let (limit, value, retry) = refusal(limiter.acquire_queries(1, t0));
    assert_eq!(
        (limit, value, retry),
        (Limit::QueriesPerSecond, 1000, Some(MS))
    );
}

#[test]
fn a_request_larger_than_the_bucket_can_never_pass() {
    let t0 = Instant::now();
    let limiter = contract(10, 10).rate_limiter(t0);
    let (_, _, retry) = refusal(limiter.acquire_vectors(11, t0 + Duration::from_secs(60)));
    assert_eq!(retry, None);
    let err = limiter.acquire_vectors(11, t0).unwrap_err();
    assert_eq!(err.code(), "limit_exceeded");
    let text = err.to_string();
    assert!(
        text.contains("resource_limits.max_vectors_per_second = 10")
            && text.contains("cannot succeed"),
        "{text}"
    );
    // And a refused oversized request took nothing.
    limiter.acquire_vectors(10, t0).unwrap();
}

#[test]
fn a_clock_that_goes_backwards_is_harmless() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(10);
    let limiter = contract(2, 2).rate_limiter(t1);
    limiter.acquire_vectors(2, t1).unwrap();
    assert_eq!(refusal(limiter.acquire_vectors(1, t0)).2, Some(500 * MS));
}

#[test]
fn buckets_are_exact_under_contention() {
    let t0 = Instant::now();
    let limiter = contract(1000, 1000).rate_limiter(t0);
    let allowed: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let limiter: &RateLimiter = &limiter;
                s.spawn(move || {
                    (0..500)
                        .filter(|_| limiter.acquire_vectors(1, t0).is_ok())
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(allowed, 1000);
}

#[test]
fn storage_quota_and_message_size() {
    let t0 = Instant::now();
    let c = contract(10, 10); // max_storage_mb 128, max_message_size_bytes 65536
    let limiter = c.rate_limiter(t0);
    let quota = 128 << 20;
    limiter.check_storage(quota - 10, 10).unwrap();
    let (limit, value, retry) = refusal(limiter.check_storage(quota - 10, 11));
    assert_eq!((limit, value, retry), (Limit::StorageMb, 128, None));
    assert!(
        limiter.check_storage(u64::MAX, u64::MAX).is_err(),
        "no overflow"
    );

    limiter.check_message_size(65_536).unwrap();
    let (limit, value, retry) = refusal(limiter.check_message_size(65_537));
    assert_eq!(
        (limit, value, retry),
        (Limit::MessageSizeBytes, 65_536, None)
    );
    assert_eq!(
        limit.field(),
        "communication_protocol.max_message_size_bytes"
    );
}

#[test]
fn namespace_permissions_are_globs() {
    let mut v = example("rust_agent.json");
    set(&mut v, "permissions.read_namespaces", json!(["*"]));
    set(
        &mut v,
        "permissions.write_namespaces",
        json!(["rust-agent-1", "team-*", "slot-?", "*:spine"]),
    );
    let p = Contract::from_value(v).unwrap().permissions;
    for ns in ["anything", "", "team-a:spine", "ünïcödé"] {
        assert!(p.can_read(ns), "{ns}");
    }
    for (ns, want) in [
        ("rust-agent-1", true),
        ("rust-agent-2", false),
        ("team-a", true),
        ("team-", true),
        ("team", false),
        ("teams-a", false),
        ("slot-7", true),
        ("slot-77", false),
        ("slot-", false),
        ("model-x:spine", true),
        ("model-x:spine2", false),
    ] {
        assert_eq!(p.can_write(ns), want, "{ns}");
    }
    assert!(p.broadcast && !p.query_other_models);

    let mut v = example("rust_agent.json");
    set(&mut v, "permissions.read_namespaces", json!([]));
    let p = Contract::from_value(v).unwrap().permissions;
    assert!(!p.can_read("rust-agent-1"), "an empty list reads nothing");
}
