//! The contract the actors' and the runtime's tests connect models with,
//! kept once here and included by their `tests/common` modules
//! (`#[path]`): a model on H^2 (identity encoder) writing its own
//! namespace and `team-*`, reading everything, in network region `lab`.

use serde_json::{Value, json};

/// The contract of model `id`, as JSON, with these resource limits and
/// message size limit.
pub(crate) fn h2_agent(id: &str, limits: Value, max_message: u64) -> Value {
    json!({
        "contract_version": "1.0.0",
        "model": {"id": id, "name": id, "version": "0.1.0", "type": "agent",
                  "capabilities": ["planning"]},
        "hvs_binding": {"hvs_id": "hvs-test", "region": "lab", "namespace": id,
                        "geometry": "hyperboloid", "dimension": 2},
        "vector_spec": {"input_dimension": 2, "output_dimension": 2, "encoding": "geometric",
                        "encoder": {"type": "identity"}},
        "communication_protocol": {"message_format": "msgpack", "encoding": "utf-8",
            "max_message_size_bytes": max_message, "timeout_ms": 30000,
            "retry": {"max_attempts": 5, "backoff_ms": [10]}},
        "permissions": {"read_namespaces": ["*"], "write_namespaces": [id, "team-*"],
                        "broadcast": true, "query_other_models": true},
        "resource_limits": limits
    })
}

/// Resource limits no test reaches by accident.
pub(crate) fn roomy() -> Value {
    json!({"max_vectors_per_second": 100000, "max_storage_mb": 1024,
           "max_queries_per_second": 100000})
}
