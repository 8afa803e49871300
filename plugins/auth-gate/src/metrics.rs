//! The plugin's counters, declared once as data: Prometheus shows them as
//! `auth_gate_requests_total{outcome="allowed"}` (the outcome encoded in the name with the
//! collection's tag convention, `plugin_kit::metrics`). The glue defines every one in a
//! `CounterTable` when a configuration is accepted and finds a counter's id by its position: no
//! name is built on the request path.

use crate::token::JwtFailure;
use plugin_kit::metrics::{CounterSet, Tag, OUTCOME};

/// One counter of the plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// `auth_gate_requests_total{outcome}`: every decided request, once.
    Request(RequestOutcome),
    /// `auth_gate_jwt_invalid_total{outcome}`: why a token was refused.
    JwtInvalid(JwtFailure),
    /// `auth_gate_jwks_fetches_total{outcome}`: success or failure of a remote JWKS fetch.
    JwksFetch(bool),
    /// `auth_gate_key_waits_total{outcome}`: requests that waited for remote keys.
    KeyWait(KeyWait),
    /// `auth_gate_token_cache_hits_total`: tokens found in the worker's own cache.
    CacheHits,
    /// `auth_gate_token_cache_shared_hits_total`: tokens whose signature another worker of the
    /// VM had checked.
    SharedCacheHits,
    /// `auth_gate_signature_checks_total`: signatures checked (what a new token costs).
    SignatureChecks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    Allowed,
    Denied,
    Unauthenticated,
    BadPath,
    DryRunDenied,
}

impl RequestOutcome {
    pub const ALL: [RequestOutcome; 5] = [
        Self::Allowed,
        Self::Denied,
        Self::Unauthenticated,
        Self::BadPath,
        Self::DryRunDenied,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Unauthenticated => "unauthenticated",
            Self::BadPath => "bad_path",
            Self::DryRunDenied => "dry_run_denied",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWait {
    Paused,
    TimedOut,
}

impl CounterSet for Counter {
    /// Every counter, in the order of [`Counter::index`].
    fn all() -> Vec<Counter> {
        let mut all: Vec<Counter> = RequestOutcome::ALL.map(Counter::Request).to_vec();
        all.extend(JwtFailure::ALL.map(Counter::JwtInvalid));
        all.extend([Counter::JwksFetch(true), Counter::JwksFetch(false)]);
        all.extend([
            Counter::KeyWait(KeyWait::Paused),
            Counter::KeyWait(KeyWait::TimedOut),
        ]);
        all.extend([
            Counter::CacheHits,
            Counter::SharedCacheHits,
            Counter::SignatureChecks,
        ]);
        all
    }

    /// The counter's position in [`Counter::all`], without searching.
    fn index(self) -> usize {
        let requests = RequestOutcome::ALL.len();
        let jwt = requests + JwtFailure::ALL.len();
        match self {
            Counter::Request(outcome) => outcome as usize,
            Counter::JwtInvalid(failure) => requests + failure as usize,
            Counter::JwksFetch(success) => jwt + usize::from(!success),
            Counter::KeyWait(wait) => jwt + 2 + wait as usize,
            Counter::CacheHits => jwt + 4,
            Counter::SharedCacheHits => jwt + 5,
            Counter::SignatureChecks => jwt + 6,
        }
    }

    fn metric(self) -> &'static str {
        match self {
            Counter::Request(_) => "auth_gate_requests_total",
            Counter::JwtInvalid(_) => "auth_gate_jwt_invalid_total",
            Counter::JwksFetch(_) => "auth_gate_jwks_fetches_total",
            Counter::KeyWait(_) => "auth_gate_key_waits_total",
            Counter::CacheHits => "auth_gate_token_cache_hits_total",
            Counter::SharedCacheHits => "auth_gate_token_cache_shared_hits_total",
            Counter::SignatureChecks => "auth_gate_signature_checks_total",
        }
    }

    fn tags(self) -> Vec<(Tag, &'static str)> {
        let outcome = match self {
            Counter::Request(outcome) => outcome.as_str(),
            Counter::JwtInvalid(failure) => failure.as_str(),
            Counter::JwksFetch(success) => {
                if success {
                    "success"
                } else {
                    "failure"
                }
            }
            Counter::KeyWait(KeyWait::Paused) => "paused",
            Counter::KeyWait(KeyWait::TimedOut) => "timed_out",
            Counter::CacheHits | Counter::SharedCacheHits | Counter::SignatureChecks => {
                return Vec::new()
            }
        };
        vec![(OUTCOME, outcome)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn counters_are_distinct_tagged_and_indexed_by_position() {
        let all = Counter::all();
        assert_eq!(all.len(), 5 + JwtFailure::ALL.len() + 2 + 2 + 3);
        for (at, counter) in all.iter().enumerate() {
            assert_eq!(counter.index(), at, "{counter:?}");
        }
        let mut names: Vec<String> = all.iter().map(|c| c.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert_eq!(
            Counter::Request(RequestOutcome::Allowed).name(),
            "outcome=.=allowed;.;auth_gate_requests_total"
        );
        assert_eq!(
            Counter::JwksFetch(false).name(),
            "outcome=.=failure;.;auth_gate_jwks_fetches_total"
        );
    }
}
