//! auth-gate's JWKS parsing (inline `jwks` and fetched `jwksUri` documents). Input: the document.
//!
//! Invariants: an accepted set has at least one key, each bound to one supported algorithm;
//! `candidates(alg, kid)` yields exactly the keys of that algorithm whose `kid` agrees with the
//! token's, in order (as Envoy picks them: a key or a token without `kid` agrees with any), and
//! `has_key_for_kid` says whether any key's `kid` agrees, whatever its algorithm (for every
//! algorithm, the token without `kid`, each key's `kid` and an unknown one); the same document
//! written again by a JSON serializer loads to the same keys.
#![no_main]

use auth_gate::jwks::{parse_jwks, Key, KeySet, SUPPORTED_ALGORITHMS};
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
        assert!(SUPPORTED_ALGORITHMS.contains(&key.key.algorithm()));
    }
    let kids: Vec<Option<&str>> = [None, Some("fuzz-no-such-kid")]
        .into_iter()
        .chain(set.keys.iter().map(|key| key.kid.as_deref()))
        .collect();
    for kid in kids {
        let agrees = |key: &Key| kid.is_none() || key.kid.is_none() || key.kid.as_deref() == kid;
        assert_eq!(
            set.has_key_for_kid(kid),
            set.keys.iter().any(agrees),
            "{kid:?}"
        );
        for algorithm in SUPPORTED_ALGORITHMS {
            let found: Vec<*const Key> = set.candidates(algorithm, kid).map(|k| k as _).collect();
            let expected: Vec<*const Key> = set
                .keys
                .iter()
                .filter(|key| key.key.algorithm() == algorithm && agrees(key))
                .map(|k| k as _)
                .collect();
            assert_eq!(found, expected, "{algorithm} {kid:?}");
        }
    }
    let value: serde_json::Value = serde_json::from_str(text).expect("an accepted JWKS is JSON");
    let rewritten = parse_jwks(&value.to_string())
        .unwrap_or_else(|e| panic!("accepted JWKS refused once re-serialized: {e}"));
    assert_eq!(summary(&rewritten), summary(&set));
});
