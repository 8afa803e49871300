//! auth-gate's JWT validation of tokens signed with the right key (HS256), so that the header
//! and claims checks behind the signature are reached, compared with the model of Envoy's
//! jwt_authn in `jwt_model/mod.rs`. Input: the JOSE header JSON, a newline, the claims JSON.
//!
//! Every token is judged with the three providers of `jwt_model::setups` (keys with `kid`, the
//! HS256 key without `kid`, audiences configured with scheme and trailing slash).
//!
//! Invariants: the plugin's outcome is the model's: `alg` a supported string, `kid` a string,
//! `iss`/`sub`/`jti` strings, `iat`/`nbf`/`exp` numbers in 0..2^64 (fractions dropped, `exp: 0`
//! no expiry), `aud` a string or a list of strings, anything else `Malformed`; `typ`, `crit`,
//! `nonce` and other claims ignored; then time, audience, key, signature; the identity field by
//! field, and `principal()` `<iss>/<sub>` only when both are there. A token that validates still
//! validates, to the same identity, once its header and claims are parsed and re-serialized as
//! JSON (another encoding of the same content) and signed again (claims equal up to the last bits
//! of numbers: see `nearly_same_json`), and once its parts are spelled with padding and with the
//! unused bits of their last character set (base64url as Envoy decodes it) and signed again.
#![no_main]

mod jwt_model;

use auth_gate::token::Identity;
use jwt_model::{Setup, Spelling};
use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{nearly_same_json, sign_hs256};
use serde_json::json;

thread_local! {
    static SETUPS: Vec<Setup> = jwt_model::setups();
}

/// The identity without `payload` (the segment as sent), `claims` and `expires_at` (numbers
/// from the claims, compared apart).
fn meaning(identity: &Identity) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        &identity.issuer,
        &identity.subject,
        identity.principal(),
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
    SETUPS.with(|setups| {
        let outcomes: Vec<Option<Identity>> = setups
            .iter()
            .map(|setup| jwt_model::check(&token, setup))
            .collect();
        let Some(identity) = &outcomes[0] else {
            return;
        };

        let (header2, claims2) = (reserialized(header), reserialized(claims));
        let token2 = sign_hs256(&header2, &claims2);
        let again = jwt_model::check(&token2, &setups[0]).unwrap_or_else(|| {
            panic!(
                "validates: {} / {}\nre-serialized fails: {} / {}",
                String::from_utf8_lossy(header),
                String::from_utf8_lossy(claims),
                String::from_utf8_lossy(&header2),
                String::from_utf8_lossy(&claims2)
            )
        });
        assert_eq!(meaning(&again), meaning(identity));
        let (claims_a, claims_b) = (
            serde_json::Value::Object(identity.claims.clone()),
            serde_json::Value::Object(again.claims.clone()),
        );
        assert!(
            nearly_same_json(&claims_a, &claims_b),
            "{claims_a} vs {claims_b}"
        );
        let (exp, exp2) = (json!(identity.expires_at), json!(again.expires_at));
        assert!(nearly_same_json(&exp, &exp2), "expires_at {exp} vs {exp2}");

        let spelling = Spelling {
            stray_bits: true,
            padded: true,
        };
        let respelled = jwt_model::sign_spelled(header, claims, spelling, 0);
        let again = jwt_model::check(&respelled, &setups[0])
            .unwrap_or_else(|| panic!("{token} validates, spelled as {respelled} it does not"));
        assert_eq!(meaning(&again), meaning(identity), "{respelled}");
        assert_eq!(again.claims, identity.claims, "{respelled}");
        assert_eq!(again.expires_at, identity.expires_at, "{respelled}");
    });
});
