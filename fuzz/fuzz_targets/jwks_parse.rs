//! auth-gate's JWKS parsing (inline `jwks` and fetched `jwksUri` documents). Input: the document.
//!
//! Invariants: an accepted set has at least one key, each bound to one supported algorithm;
//! `candidates` yields only keys of the asked algorithm (and `kid`); the same document written
//! again by a JSON serializer loads to the same keys.
#![no_main]

use auth_gate::jwks::{parse_jwks, KeySet, SUPPORTED_ALGORITHMS};
use libfuzzer_sys::fuzz_target;

fn summary(set: &KeySet) -> (Vec<(Option<String>, &'static str)>, usize) {
    let keys = set
        .keys
        .iter()
        .map(|key| (key.kid.clone(), key.key.algorithm()))
        .collect();
    (keys, set.skipped)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = parse_jwks(text) else {
        return;
    };
    assert!(!set.keys.is_empty());
    for key in &set.keys {
        let algorithm = key.key.algorithm();
        assert!(SUPPORTED_ALGORITHMS.contains(&algorithm));
        assert!(set
            .candidates(algorithm, None)
            .all(|k| k.key.algorithm() == algorithm));
        if let Some(kid) = key.kid.as_deref() {
            assert!(set.has_kid(kid));
            assert!(set
                .candidates(algorithm, Some(kid))
                .all(|k| k.kid.as_deref() == Some(kid) && k.key.algorithm() == algorithm));
        }
    }
    let value: serde_json::Value = serde_json::from_str(text).expect("an accepted JWKS is JSON");
    let rewritten = parse_jwks(&value.to_string())
        .unwrap_or_else(|e| panic!("accepted JWKS refused once re-serialized: {e}"));
    assert_eq!(summary(&rewritten), summary(&set));
});
