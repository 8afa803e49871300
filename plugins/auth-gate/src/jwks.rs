//! JSON Web Key Sets: parsed once (at configuration or when a fetch completes) into verifying
//! keys, each bound to exactly one JWS algorithm so that a token can never choose how its
//! signature is checked (no `alg: none`, no HS256 keyed with an RSA public key).

use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jws_signatures::digest::Digest;
use jws_signatures::ecdsa::{es256::Es256Key, es384::Es384Key};
use jws_signatures::rsa::RsaPublicKey;
use serde_json::Value;
use std::rc::Rc;

/// Largest JWKS document accepted; real ones are a few KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The algorithms Envoy's jwt_authn accepts for JWKS keys but ES512 (not supported: a key or
/// token using it is refused).
pub const SUPPORTED_ALGORITHMS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// The RSA signature schemes of JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaScheme {
    Pkcs1v15(Digest),
    Pss(Digest),
}

impl RsaScheme {
    fn of(algorithm: &str) -> Option<Self> {
        Some(match algorithm {
            "RS256" => Self::Pkcs1v15(Digest::Sha256),
            "RS384" => Self::Pkcs1v15(Digest::Sha384),
            "RS512" => Self::Pkcs1v15(Digest::Sha512),
            "PS256" => Self::Pss(Digest::Sha256),
            "PS384" => Self::Pss(Digest::Sha384),
            "PS512" => Self::Pss(Digest::Sha512),
            _ => return None,
        })
    }

    fn algorithm(self) -> &'static str {
        match self {
            Self::Pkcs1v15(Digest::Sha256) => "RS256",
            Self::Pkcs1v15(Digest::Sha384) => "RS384",
            Self::Pkcs1v15(Digest::Sha512) => "RS512",
            Self::Pss(Digest::Sha256) => "PS256",
            Self::Pss(Digest::Sha384) => "PS384",
            Self::Pss(Digest::Sha512) => "PS512",
        }
    }
}

/// A public (or, for `oct`, shared) key that verifies one algorithm. The per-key work of
/// verifying (RSA's Montgomery constants, P-256's table of multiples) is done here, once.
pub enum VerifyingKey {
    /// One RSA key serves every scheme its JWK allows: shared, not recomputed per scheme.
    Rsa(RsaScheme, Rc<RsaPublicKey>),
    Es256(Es256Key),
    Es384(Es384Key),
    EdDsa(ed25519_compact::PublicKey),
    /// HS256/384/512 with the JWK's secret, shared by the three.
    Hmac(Digest, Rc<[u8]>),
}

impl VerifyingKey {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Rsa(scheme, _) => scheme.algorithm(),
            Self::Es256(_) => "ES256",
            Self::Es384(_) => "ES384",
            Self::EdDsa(_) => "EdDSA",
            Self::Hmac(Digest::Sha256, _) => "HS256",
            Self::Hmac(Digest::Sha384, _) => "HS384",
            Self::Hmac(Digest::Sha512, _) => "HS512",
        }
    }

    /// Whether `signature` signs `signing_input` (`<header>.<payload>` as the token spells
    /// them) under this key and its one algorithm.
    pub fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Rsa(RsaScheme::Pkcs1v15(digest), key) => {
                key.verifies_pkcs1v15(*digest, signing_input, signature)
            }
            Self::Rsa(RsaScheme::Pss(digest), key) => {
                key.verifies_pss(*digest, signing_input, signature)
            }
            Self::Es256(key) => key.verifies(signing_input, signature),
            Self::Es384(key) => key.verifies(signing_input, signature),
            Self::EdDsa(key) => ed25519_compact::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(signing_input, &sig).is_ok()),
            Self::Hmac(digest, secret) => {
                let tag = digest.hmac(secret, signing_input);
                let tag = &tag[..digest.output_len()];
                tag.len() == signature.len() && ct_codecs::verify(tag, signature)
            }
        }
    }
}

/// One usable key of a set.
pub struct Key {
    pub kid: Option<String>,
    pub key: VerifyingKey,
}

/// The usable keys of a JWKS. Keys that cannot be used (encryption keys, unknown types,
/// unsupported curves or sizes) are skipped and counted, as Envoy does, unless none is left.
pub struct KeySet {
    pub keys: Vec<Key>,
    pub skipped: usize,
    /// Names the document the keys came from (the first 8 bytes of its SHA-256): a token whose
    /// signature verified with these keys is shared under it (`cache`), so other keys never
    /// take it as checked.
    pub fingerprint: u64,
}

impl KeySet {
    /// Keys that may verify a token whose header says `alg` and `kid`, as Envoy picks them: a
    /// key is skipped only when both it and the token have a `kid` and they differ (a key
    /// without `kid` is tried for every token), or when it serves another algorithm.
    pub fn candidates<'a>(
        &'a self,
        alg: &'a str,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |key| {
            key.key.algorithm() == alg
                && match (kid, key.kid.as_deref()) {
                    (Some(wanted), Some(has)) => wanted == has,
                    _ => true,
                }
        })
    }

    /// Whether some key could serve a token with this `kid`, whatever its algorithm.
    pub fn has_key_for_kid(&self, kid: Option<&str>) -> bool {
        self.keys
            .iter()
            .any(|key| kid.is_none() || key.kid.is_none() || key.kid.as_deref() == kid)
    }
}

/// Parses a JWKS document (`{"keys":[...]}`). Errors say why, for the configuration error or
/// the fetch log line.
pub fn parse_jwks(text: &str) -> Result<KeySet, String> {
    if text.len() > MAX_JWKS_BYTES {
        return Err(format!("JWKS is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let document: Value =
        serde_json::from_str(text).map_err(|e| format!("JWKS is not valid JSON: {e}"))?;
    let Some(entries) = document.get("keys").and_then(Value::as_array) else {
        return Err("JWKS has no `keys` array".to_string());
    };
    let digest = hmac_sha256::Hash::hash(text.as_bytes());
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&digest[..8]);
    let mut set = KeySet {
        keys: Vec::new(),
        skipped: 0,
        fingerprint: u64::from_le_bytes(fingerprint),
    };
    for entry in entries {
        let parsed = parse_jwk(entry);
        if parsed.is_empty() {
            set.skipped += 1;
        }
        set.keys.extend(parsed);
    }
    if set.keys.is_empty() {
        return Err(format!(
            "JWKS has no usable key ({} skipped: only RSA 2048-4096 bit with e=AQAB, EC P-256/P-384, OKP Ed25519 and oct signature keys are supported)",
            set.skipped
        ));
    }
    Ok(set)
}

/// The verifying keys one JWK yields: one, or for an RSA key without `alg` one per RSA
/// algorithm (Envoy lets such a key verify any of them), or for an `oct` key without `alg` one
/// per HMAC algorithm. Empty when the key is unusable: an `alg` its type cannot serve, `use`
/// other than `sig`, `key_ops` other than `verify`, private key material, a member missing or
/// malformed, an RSA modulus outside 2048-4096 bits or even, `e` other than AQAB, a point not
/// on its curve, an HMAC secret under 12 bytes.
fn parse_jwk(entry: &Value) -> Vec<Key> {
    let field = |name: &str| entry.get(name).and_then(Value::as_str);
    let kid = field("kid").map(str::to_string);
    let key_ops_allowed = match entry.get("key_ops") {
        None => true,
        Some(Value::Array(ops)) => {
            ops.iter().all(|op| op.as_str() == Some("verify")) && ops.len() <= 1
        }
        Some(_) => false,
    };
    if field("use").is_some_and(|key_use| key_use != "sig") || !key_ops_allowed {
        return Vec::new();
    }
    let alg = field("alg");
    let allowed = |candidate: &str| alg.is_none_or(|alg| alg == candidate);
    let bytes = |name: &str| {
        field(name).and_then(|text| Base64UrlSafeNoPadding::decode_to_vec(text, None).ok())
    };
    let private = |members: &[&str]| members.iter().any(|name| entry.get(name).is_some());
    let keys: Vec<VerifyingKey> = match (field("kty"), field("crv")) {
        (Some("RSA"), _) => {
            let key = (!private(&["d", "p", "q", "dp", "dq", "qi", "oth"])
                && field("e") == Some("AQAB"))
            .then(|| bytes("n"))
            .flatten()
            .filter(|n| (2048..=4096).contains(&bit_length(n)))
            .and_then(|n| RsaPublicKey::new(&n));
            let Some(key) = key.map(Rc::new) else {
                return Vec::new();
            };
            ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
                .into_iter()
                .filter(|algorithm| allowed(algorithm))
                .filter_map(RsaScheme::of)
                .map(|scheme| VerifyingKey::Rsa(scheme, key.clone()))
                .collect()
        }
        (Some("EC"), Some(curve @ ("P-256" | "P-384"))) if !private(&["d"]) => {
            let (algorithm, size) = if curve == "P-256" {
                ("ES256", 32)
            } else {
                ("ES384", 48)
            };
            let coordinates = bytes("x")
                .zip(bytes("y"))
                .filter(|(x, y)| x.len() == size && y.len() == size);
            let key = coordinates
                .filter(|_| allowed(algorithm))
                .and_then(|(x, y)| {
                    if size == 32 {
                        Es256Key::from_coordinates(&x, &y).map(VerifyingKey::Es256)
                    } else {
                        Es384Key::from_coordinates(&x, &y).map(VerifyingKey::Es384)
                    }
                });
            key.into_iter().collect()
        }
        (Some("OKP"), Some("Ed25519")) if !private(&["d"]) && allowed("EdDSA") => bytes("x")
            .and_then(|x| ed25519_compact::PublicKey::from_slice(&x).ok())
            .map(VerifyingKey::EdDsa)
            .into_iter()
            .collect(),
        (Some("oct"), _) => {
            // Shorter MAC secrets are refused when loading, as jwt-simple refuses them.
            let Some(secret) = bytes("k").filter(|secret| secret.len() >= 12) else {
                return Vec::new();
            };
            let secret: Rc<[u8]> = secret.into();
            [
                ("HS256", Digest::Sha256),
                ("HS384", Digest::Sha384),
                ("HS512", Digest::Sha512),
            ]
            .into_iter()
            .filter(|(algorithm, _)| allowed(algorithm))
            .map(|(_, digest)| VerifyingKey::Hmac(digest, secret.clone()))
            .collect()
        }
        _ => Vec::new(),
    };
    keys.into_iter()
        .map(|key| Key {
            kid: kid.clone(),
            key,
        })
        .collect()
}

/// Bits of a big-endian integer, leading zeros not counted.
fn bit_length(bytes: &[u8]) -> usize {
    match bytes.iter().position(|&byte| byte != 0) {
        Some(first) => (bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testkeys::RSA_KEY_1;
    use jwt_simple::prelude::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A JWKS holding the given public JWKs.
    pub fn jwks_of(jwks: &[String]) -> String {
        format!("{{\"keys\":[{}]}}", jwks.join(","))
    }

    #[test]
    fn every_supported_key_type_loads_bound_to_its_algorithm() {
        let rsa = RS256KeyPair::from_pem(RSA_KEY_1)
            .unwrap()
            .with_key_id("rsa");
        let ec256 = ES256KeyPair::generate().with_key_id("ec256");
        let ec384 = ES384KeyPair::generate().with_key_id("ec384");
        let ed = Ed25519KeyPair::generate().with_key_id("ed");
        let oct = r#"{"kty":"oct","kid":"mac","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}"#;
        let text = jwks_of(&[
            rsa.public_key().to_jwk(),
            ec256.public_key().to_jwk(),
            ec384.public_key().to_jwk(),
            ed.public_key().to_jwk(),
            oct.to_string(),
        ]);
        let set = parse_jwks(&text).unwrap();
        let algs: Vec<(&str, &str)> = set
            .keys
            .iter()
            .map(|k| (k.kid.as_deref().unwrap(), k.key.algorithm()))
            .collect();
        // to_jwk writes `alg`, so the RSA key is bound to RS256 only.
        assert_eq!(
            algs,
            vec![
                ("rsa", "RS256"),
                ("ec256", "ES256"),
                ("ec384", "ES384"),
                ("ed", "EdDSA"),
                ("mac", "HS256")
            ]
        );
        assert_eq!(set.skipped, 0);
    }

    #[test]
    fn rsa_key_without_alg_serves_every_rsa_algorithm_but_no_other() {
        let rsa = RS256KeyPair::from_pem(RSA_KEY_1).unwrap();
        let mut jwk: Value = serde_json::from_str(&rsa.public_key().to_jwk()).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        let set = parse_jwks(&jwks_of(&[jwk.to_string()])).unwrap();
        let algs: Vec<&str> = set.keys.iter().map(|k| k.key.algorithm()).collect();
        assert_eq!(algs, ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]);
        assert_eq!(set.candidates("HS256", None).count(), 0);
        assert_eq!(set.candidates("none", None).count(), 0);
    }

    #[test]
    fn unusable_keys_are_skipped_and_an_empty_result_is_an_error() {
        let ec = ES256KeyPair::generate();
        let mut enc: Value = serde_json::from_str(&ec.public_key().to_jwk()).unwrap();
        enc["use"] = Value::from("enc");
        let unknown = r#"{"kty":"XYZ","kid":"x"}"#.to_string();
        let short_mac = r#"{"kty":"oct","k":"c2hvcnQ"}"#.to_string();
        let err = parse_jwks(&jwks_of(&[enc.to_string(), unknown.clone(), short_mac]))
            .err()
            .unwrap();
        assert!(err.contains("no usable key (3 skipped"), "{err}");
        let set = parse_jwks(&jwks_of(&[unknown, ec.public_key().to_jwk()])).unwrap();
        assert_eq!((set.keys.len(), set.skipped), (1, 1));
    }

    #[test]
    fn malformed_or_private_jwks_are_skipped_member_by_member() {
        let rsa = RS256KeyPair::from_pem(RSA_KEY_1).unwrap();
        let rsa: Value = serde_json::from_str(&rsa.public_key().to_jwk()).unwrap();
        let ec: Value =
            serde_json::from_str(&ES256KeyPair::generate().public_key().to_jwk()).unwrap();
        let ed: Value =
            serde_json::from_str(&Ed25519KeyPair::generate().public_key().to_jwk()).unwrap();
        let with = |base: &Value, name: &str, value: Value| {
            let mut jwk = base.clone();
            jwk[name] = value;
            jwk.to_string()
        };
        let usable = |jwk: String| parse_jwks(&jwks_of(&[jwk])).is_ok();
        for base in [&rsa, &ec, &ed] {
            assert!(usable(base.to_string()));
            assert!(usable(with(base, "key_ops", serde_json::json!(["verify"]))));
            assert!(!usable(with(base, "key_ops", serde_json::json!(["sign"]))));
            assert!(!usable(with(base, "key_ops", Value::from("verify"))));
            assert!(
                !usable(with(base, "d", Value::from("AAAA"))),
                "private material"
            );
            let coordinate = if base == &rsa { "n" } else { "x" };
            assert!(!usable(with(base, coordinate, Value::from("AAAA"))));
        }
        assert!(!usable(with(&rsa, "e", Value::from("Aw"))), "e = 3");
        assert!(
            !usable(with(&rsa, "n", Value::from("AQAB"))),
            "a tiny modulus"
        );
        // P-256 coordinates of the right length but not a point on the curve.
        let off_curve = with(
            &ec,
            "y",
            Value::from(rsa["n"].as_str().unwrap()[..43].to_string()),
        );
        assert!(!usable(off_curve));
        let oct = r#"{"kty":"oct","alg":"HS384","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ"}"#;
        let set = parse_jwks(&jwks_of(&[oct.to_string()])).unwrap();
        let algs: Vec<&str> = set.keys.iter().map(|k| k.key.algorithm()).collect();
        assert_eq!(algs, ["HS384"]);
    }

    #[test]
    fn key_whose_alg_contradicts_its_type_is_refused() {
        let ec = ES256KeyPair::generate();
        let mut jwk: Value = serde_json::from_str(&ec.public_key().to_jwk()).unwrap();
        jwk["alg"] = Value::from("HS256");
        assert!(parse_jwks(&jwks_of(&[jwk.to_string()])).is_err());
    }

    #[test]
    fn malformed_documents_are_errors() {
        for text in [
            "",
            "{",
            "[]",
            "{\"keys\":{}}",
            "{\"keys\":[]}",
            "{\"keys\":[1,\"a\"]}",
        ] {
            assert!(parse_jwks(text).is_err(), "{text}");
        }
        let huge = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "a".repeat(MAX_JWKS_BYTES));
        assert!(parse_jwks(&huge).err().unwrap().contains("larger"));
    }

    #[test]
    fn candidates_follow_kid_and_keys_without_kid_serve_every_token() {
        let a = ES256KeyPair::generate().with_key_id("a");
        let b = ES256KeyPair::generate().with_key_id("b");
        let set = parse_jwks(&jwks_of(&[
            a.public_key().to_jwk(),
            b.public_key().to_jwk(),
        ]))
        .unwrap();
        assert_eq!(set.candidates("ES256", Some("b")).count(), 1);
        assert_eq!(set.candidates("ES256", Some("c")).count(), 0);
        assert_eq!(set.candidates("ES256", None).count(), 2);
        let kidless = ES256KeyPair::generate();
        let set = parse_jwks(&jwks_of(&[
            a.public_key().to_jwk(),
            kidless.public_key().to_jwk(),
        ]))
        .unwrap();
        // As Envoy: a key without `kid` is tried whatever the token's `kid` (rotated keys).
        assert_eq!(set.candidates("ES256", Some("rotated")).count(), 1);
        assert_eq!(set.candidates("ES256", Some("a")).count(), 2);
    }
}
