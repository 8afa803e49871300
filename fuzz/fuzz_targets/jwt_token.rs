//! auth-gate's JWT validation of a raw token (`decode`, then `verify` at a fixed "now"), compared
//! with the model of Envoy's jwt_authn in `jwt_model/mod.rs`: parts and lenient base64url,
//! claim types, the order of the checks, `kid` matching, audiences. Input: the token text.
//!
//! Every token is judged with three providers (`jwt_model::setups`): the HS256 key `fuzz-hs256`
//! and the gateway's RSA key, no audiences; the same with the HS256 key without `kid` (tried
//! whatever `kid` the token names); the first keys with audiences written with scheme and
//! trailing slash.
//!
//! Invariants: the plugin's outcome is the model's (the same failure, or the same identity field
//! by field); a verified token's `principal()` is `<iss>/<sub>` exactly when it has both, and it
//! is not expired beyond the clock skew. A token the first provider verifies verifies again, to
//! the same identity, once its header and payload are written again (canonical base64url; the
//! last character of each part with its unused bits set; with padding; with empty parts) and
//! signed again: the signature covers the parts as spelled.
#![no_main]

mod jwt_model;

use auth_gate::token::Identity;
use jwt_model::{Expected, Setup, Spelling};
use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::NOW;

thread_local! {
    static SETUPS: Vec<Setup> = jwt_model::setups();
}

/// Spellings the verified token is written again with, and the empty parts added.
const RESPELLINGS: [(Spelling, usize); 4] = [
    (Spelling::CANONICAL, 0),
    (
        Spelling {
            stray_bits: true,
            padded: false,
        },
        0,
    ),
    (
        Spelling {
            stray_bits: false,
            padded: true,
        },
        0,
    ),
    (
        Spelling {
            stray_bits: true,
            padded: true,
        },
        4,
    ),
];

/// The identity without `payload`, which is the part as spelled.
fn meaning(identity: &Identity) -> Expected {
    Expected {
        payload: String::new(),
        ..Expected::of(identity)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    SETUPS.with(|setups| {
        let outcomes: Vec<Option<Identity>> = setups
            .iter()
            .map(|setup| jwt_model::check(token, setup))
            .collect();
        let Some(identity) = &outcomes[0] else {
            return;
        };
        match (&identity.issuer, &identity.subject) {
            (Some(iss), Some(sub)) => {
                assert_eq!(identity.principal(), Some(format!("{iss}/{sub}")))
            }
            _ => assert_eq!(identity.principal(), None),
        }
        if let Some(exp) = identity.expires_at.filter(|exp| *exp != 0) {
            assert!(
                u128::from(NOW) <= u128::from(exp) + u128::from(jwt_model::CLOCK_SKEW_SECONDS),
                "{token}"
            );
        }
        let parts: Vec<&str> = token.split('.').filter(|p| !p.is_empty()).collect();
        let decoded =
            |part: &str| jwt_model::base64url(part).expect("a verified token's parts decode");
        let (header, payload) = (decoded(parts[0]), decoded(parts[1]));
        for (spelling, empty_parts) in RESPELLINGS {
            let again = jwt_model::sign_spelled(&header, &payload, spelling, empty_parts);
            let respelled = jwt_model::check(&again, &setups[0]).unwrap_or_else(|| {
                panic!("{token} verifies, written again as {again} it does not")
            });
            assert_eq!(meaning(&respelled), meaning(identity), "{token} vs {again}");
            let payload_part = again.split('.').filter(|p| !p.is_empty()).nth(1);
            assert_eq!(Some(respelled.payload.as_str()), payload_part, "{again}");
        }
    });
});
