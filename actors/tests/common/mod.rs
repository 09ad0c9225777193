//! What the actors' tests share: a contract on H^2.

use hvs_contracts::Contract;
use serde_json::Value;

#[path = "../../../contracts/tests/support/h2_agent.rs"]
mod h2_agent;
pub(crate) use h2_agent::roomy;

/// A model on H^2 writing its own namespace and `team-*`.
pub(crate) fn contract(id: &str, limits: Value, max_message: u64) -> Contract {
    Contract::from_value(h2_agent::h2_agent(id, limits, max_message)).expect("a valid contract")
}
