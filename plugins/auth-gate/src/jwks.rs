//! JSON Web Key Sets: parsed once (at configuration or when a fetch completes) into verifying
//! keys, each bound to exactly one JWS algorithm so that a token can never choose how its
//! signature is checked (no `alg: none`, no HS256 keyed with an RSA public key).

use crate::es256::Es256Key;
use crate::rsa_verify::{Digest, RsaPublicKey};
use ct_codecs::{Base64UrlSafeNoPadding, Decoder};
use jwt_simple::algorithms::{
    ES256PublicKey, ES384PublicKey, Ed25519PublicKey, HS256Key, HS384Key, HS512Key, MACLike as _,
    PS256PublicKey, PS384PublicKey, PS512PublicKey, RS256PublicKey, RS384PublicKey, RS512PublicKey,
};
use jwt_simple::prelude::EdDSAPublicKeyLike as _;
use jwt_simple::prelude::{ECDSAP256PublicKeyLike as _, ECDSAP384PublicKeyLike as _};
use serde_json::Value;
use std::rc::Rc;

/// Largest JWKS document accepted; real ones are a few KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The algorithms Envoy's jwt_authn accepts for JWKS keys (ES512 is not supported by
/// jwt-simple; a key or token using it is refused).
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
    Es384(ES384PublicKey),
    EdDsa(Ed25519PublicKey),
    Hs256(HS256Key),
    Hs384(HS384Key),
    Hs512(HS512Key),
}

impl VerifyingKey {
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Rsa(scheme, _) => scheme.algorithm(),
            Self::Es256(_) => "ES256",
            Self::Es384(_) => "ES384",
            Self::EdDsa(_) => "EdDSA",
            Self::Hs256(_) => "HS256",
            Self::Hs384(_) => "HS384",
            Self::Hs512(_) => "HS512",
        }
    }

    /// Whether `signature` signs `signing_input` (`<header>.<payload>` as the token spells
    /// them) under this key and its one algorithm.
    pub fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        let mac = |tag: Vec<u8>| tag.len() == signature.len() && ct_codecs::verify(&tag, signature);
        match self {
            Self::Rsa(RsaScheme::Pkcs1v15(digest), key) => {
                key.verifies_pkcs1v15(*digest, signing_input, signature)
            }
            Self::Rsa(RsaScheme::Pss(digest), key) => {
                key.verifies_pss(*digest, signing_input, signature)
            }
            Self::Es256(key) => key.verifies(signing_input, signature),
            Self::Es384(key) => p384::ecdsa::Signature::try_from(signature).is_ok_and(|sig| {
                use p384::ecdsa::signature::Verifier as _;
                key.public_key()
                    .as_ref()
                    .verify(signing_input, &sig)
                    .is_ok()
            }),
            Self::EdDsa(key) => {
                ed25519_compact::Signature::from_slice(signature).is_ok_and(|sig| {
                    key.public_key()
                        .as_ref()
                        .verify(signing_input, &sig)
                        .is_ok()
                })
            }
            Self::Hs256(key) => mac(key.authentication_tag(signing_input)),
            Self::Hs384(key) => mac(key.authentication_tag(signing_input)),
            Self::Hs512(key) => mac(key.authentication_tag(signing_input)),
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
    let mut set = KeySet {
        keys: Vec::new(),
        skipped: 0,
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
/// algorithm (Envoy lets such a key verify any of them). Empty when the key is unusable.
fn parse_jwk(entry: &Value) -> Vec<Key> {
    let field = |name: &str| entry.get(name).and_then(Value::as_str);
    let kid = field("kid").map(str::to_string);
    if field("use").is_some_and(|key_use| key_use != "sig") {
        return Vec::new();
    }
    let alg = field("alg");
    let algorithms: Vec<&str> = match (field("kty"), field("crv")) {
        (Some("RSA"), _) => vec!["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        (Some("EC"), Some("P-256")) => vec!["ES256"],
        (Some("EC"), Some("P-384")) => vec!["ES384"],
        (Some("OKP"), Some("Ed25519")) => vec!["EdDSA"],
        (Some("oct"), _) => vec!["HS256", "HS384", "HS512"],
        _ => Vec::new(),
    };
    let algorithms = algorithms
        .into_iter()
        .filter(|candidate| alg.is_none_or(|alg| alg == *candidate));
    let text = entry.to_string();
    let mut rsa: Option<Rc<RsaPublicKey>> = None;
    algorithms
        .filter_map(|algorithm| {
            let key = key_for(algorithm, &text, field("k"), &mut rsa)?;
            Some(Key {
                kid: kid.clone(),
                key,
            })
        })
        .collect()
}

/// The key `jwk` gives for `algorithm`. `rsa` keeps the RSA key once built, for the other
/// schemes of the same JWK.
fn key_for(
    algorithm: &str,
    jwk: &str,
    oct_secret: Option<&str>,
    rsa: &mut Option<Rc<RsaPublicKey>>,
) -> Option<VerifyingKey> {
    // jwt-simple's importers check kty/crv/alg/use/key_ops against the type, so a JWK whose
    // `alg` names another algorithm is refused here too.
    if let Some(scheme) = RsaScheme::of(algorithm) {
        let key = match rsa {
            Some(key) => key.clone(),
            None => {
                // Checked once (modulus 2048-4096 bits and odd, e = AQAB) by the importer of
                // the first scheme the JWK allows: an `alg`-less JWK serves them all.
                let modulus = match algorithm {
                    "RS256" => RS256PublicKey::from_jwk(jwk).ok()?.to_components(),
                    "RS384" => RS384PublicKey::from_jwk(jwk).ok()?.to_components(),
                    "RS512" => RS512PublicKey::from_jwk(jwk).ok()?.to_components(),
                    "PS256" => PS256PublicKey::from_jwk(jwk).ok()?.to_components(),
                    "PS384" => PS384PublicKey::from_jwk(jwk).ok()?.to_components(),
                    _ => PS512PublicKey::from_jwk(jwk).ok()?.to_components(),
                }
                .n;
                let key = Rc::new(RsaPublicKey::new(&modulus)?);
                *rsa = Some(key.clone());
                key
            }
        };
        return Some(VerifyingKey::Rsa(scheme, key));
    }
    let key = match algorithm {
        "ES256" => {
            let key = ES256PublicKey::from_jwk(jwk).ok()?;
            VerifyingKey::Es256(Es256Key::new(key.public_key().as_ref().as_affine()))
        }
        "ES384" => VerifyingKey::Es384(ES384PublicKey::from_jwk(jwk).ok()?),
        "EdDSA" => VerifyingKey::EdDsa(Ed25519PublicKey::from_jwk(jwk).ok()?),
        "HS256" | "HS384" | "HS512" => {
            let secret = Base64UrlSafeNoPadding::decode_to_vec(oct_secret?, None).ok()?;
            // jwt-simple refuses shorter MAC keys when verifying; refuse them when loading.
            if secret.len() < 12 {
                return None;
            }
            match algorithm {
                "HS256" => VerifyingKey::Hs256(HS256Key::from_bytes(&secret)),
                "HS384" => VerifyingKey::Hs384(HS384Key::from_bytes(&secret)),
                _ => VerifyingKey::Hs512(HS512Key::from_bytes(&secret)),
            }
        }
        _ => return None,
    };
    Some(key)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testkeys::RSA_KEY_1;
    use jwt_simple::prelude::*;

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
