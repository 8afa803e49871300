//! Counter names, as Prometheus shows them: `auth_gate_requests_total{outcome="allowed"}` (the
//! outcome is encoded in the name with the collection's tag convention, `plugin_common::metrics`).

use crate::token::JwtFailure;
use plugin_common::metrics::{tagged_name, OUTCOME};

pub fn requests(outcome: &str) -> String {
    tagged_name("auth_gate_requests_total", &[(OUTCOME, outcome)])
}

pub fn jwt_invalid(failure: JwtFailure) -> String {
    tagged_name(
        "auth_gate_jwt_invalid_total",
        &[(OUTCOME, failure.as_str())],
    )
}

pub fn jwks_fetches(outcome: &str) -> String {
    tagged_name("auth_gate_jwks_fetches_total", &[(OUTCOME, outcome)])
}

pub fn key_waits(outcome: &str) -> String {
    tagged_name("auth_gate_key_waits_total", &[(OUTCOME, outcome)])
}

pub const CACHE_HITS: &str = "auth_gate_token_cache_hits_total";

/// Every counter, defined at configuration so that all show (at 0) from the start.
pub fn all() -> Vec<String> {
    let mut names: Vec<String> = [
        "allowed",
        "denied",
        "unauthenticated",
        "bad_path",
        "dry_run_denied",
    ]
    .into_iter()
    .map(requests)
    .collect();
    names.extend(JwtFailure::ALL.into_iter().map(jwt_invalid));
    names.extend(["success", "failure"].into_iter().map(jwks_fetches));
    names.extend(["paused", "timed_out"].into_iter().map(key_waits));
    names.push(CACHE_HITS.to_string());
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_names_are_distinct_and_tagged() {
        let mut names = all();
        let count = names.len();
        assert_eq!(count, 5 + JwtFailure::ALL.len() + 2 + 2 + 1);
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(requests("allowed").ends_with("auth_gate_requests_total"));
        assert!(requests("allowed").contains("allowed"));
    }
}
