//! auth-gate's JWT validation of tokens signed with the right key (HS256), so that the header
//! and claims checks behind the signature are reached. Input: the JOSE header JSON, a newline,
//! the claims JSON.
//!
//! Invariant: a token that validates still validates, to the same identity, once its header and
//! claims are parsed and re-serialized as JSON (another encoding of the same content) and signed
//! again (claims equal up to the last bits of numbers: see `nearly_same_json`).
#![no_main]

use auth_gate::jwks::{parse_jwks, KeySet};
use auth_gate::token::{decode, verify, Identity, JwtFailure, Limits};
use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{jwks, nearly_same_json, sign_hs256, NOW};
use serde_json::json;

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

/// The identity without `payload` (the segment as sent), `claims` and `expires_at` (numbers
/// from the claims, compared apart).
fn meaning(identity: &Identity) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        &identity.principal,
        &identity.audiences,
        &identity.presenter,
    )
}

fn reserialized(json: &[u8]) -> Vec<u8> {
    let value: serde_json::Value =
        serde_json::from_slice(json).expect("a validated segment is JSON");
    serde_json::to_vec(&value).expect("a JSON value serializes")
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == b'\n') else {
        return;
    };
    let (header, claims) = (&data[..split], &data[split + 1..]);
    let token = sign_hs256(header, claims);
    KEYS.with(|keys| {
        let Ok(identity) = validate(&token, keys) else {
            return;
        };
        let (header2, claims2) = (reserialized(header), reserialized(claims));
        let token2 = sign_hs256(&header2, &claims2);
        let again = validate(&token2, keys).unwrap_or_else(|e| {
            panic!(
                "validates: {} / {}\nre-serialized fails ({e:?}): {} / {}",
                String::from_utf8_lossy(header),
                String::from_utf8_lossy(claims),
                String::from_utf8_lossy(&header2),
                String::from_utf8_lossy(&claims2)
            )
        });
        assert_eq!(meaning(&again), meaning(&identity));
        let (claims, claims2) = (
            serde_json::Value::Object(identity.claims.clone()),
            serde_json::Value::Object(again.claims.clone()),
        );
        assert!(nearly_same_json(&claims, &claims2), "{claims} vs {claims2}");
        let (exp, exp2) = (json!(identity.expires_at), json!(again.expires_at));
        assert!(nearly_same_json(&exp, &exp2), "expires_at {exp} vs {exp2}");
    });
});
