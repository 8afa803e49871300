//! auth-gate's JWT validation of a raw token (`decode`, then `verify` against a key set with an
//! HS256 and an RSA key, at a fixed "now"). Input: the token text.
//!
//! Invariants: a token that validates re-validates, to the same identity, after its three
//! segments are decoded and re-encoded (canonical base64url); its principal is `<iss>/<sub>` and
//! it is not expired beyond the clock skew.
#![no_main]

use auth_gate::jwks::{parse_jwks, KeySet};
use auth_gate::token::{decode, verify, Identity, JwtFailure, Limits};
use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{b64, jwks, unb64, NOW};

const LIMITS: Limits = Limits {
    clock_skew_seconds: 60,
    max_token_bytes: 8192,
};

thread_local! {
    static KEYS: KeySet = parse_jwks(&jwks()).expect("the fixed JWKS loads");
}

fn validate(token: &str, keys: &KeySet) -> Result<Identity, JwtFailure> {
    let unverified = decode(token, &LIMITS)?;
    verify(token, unverified, keys, &[], &LIMITS, NOW)
}

/// The identity without `payload`, which is the segment as received.
fn meaning(identity: &Identity) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        &identity.principal,
        &identity.audiences,
        &identity.presenter,
        &identity.claims,
        identity.expires_at,
    )
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    KEYS.with(|keys| {
        let Ok(identity) = validate(token, keys) else {
            return;
        };
        let text = |name: &str| {
            identity
                .claims
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or("")
        };
        assert_eq!(
            identity.principal,
            format!("{}/{}", text("iss"), text("sub"))
        );
        if let Some(exp) = identity.expires_at {
            assert!(
                NOW <= exp.saturating_add(LIMITS.clock_skew_seconds),
                "{token}"
            );
        }
        let reencoded: Option<Vec<String>> = token
            .split('.')
            .map(|segment| unb64(segment).map(|bytes| b64(&bytes)))
            .collect();
        let reencoded = reencoded
            .expect("a valid token's segments are base64url")
            .join(".");
        let again = validate(&reencoded, keys)
            .unwrap_or_else(|e| panic!("{token} validates, re-encoded {reencoded} fails: {e:?}"));
        assert_eq!(
            meaning(&again),
            meaning(&identity),
            "{token} vs {reencoded}"
        );
    });
});
