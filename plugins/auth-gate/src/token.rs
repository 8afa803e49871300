//! Validation of one JWT against one `jwtRules` entry, as Envoy's jwt_authn does it: size,
//! compact form, algorithm bound to the key, `kid`, signature, `exp`/`nbf` with clock skew,
//! `iss` exact, `aud` any-of. Every failure is a [`JwtFailure`] (a 401), never a panic.

use crate::jwks::{KeySet, SUPPORTED_ALGORITHMS};
use serde_json::{Map, Value};

/// Why a present token was refused. `as_str` names the counter and the log reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtFailure {
    TooLarge,
    Malformed,
    AlgorithmNotAllowed,
    IssuerNotConfigured,
    UnknownKid,
    BadSignature,
    Expired,
    NotYetValid,
    AudienceNotAllowed,
    KeysUnavailable,
}

impl JwtFailure {
    pub const ALL: [JwtFailure; 10] = [
        Self::TooLarge,
        Self::Malformed,
        Self::AlgorithmNotAllowed,
        Self::IssuerNotConfigured,
        Self::UnknownKid,
        Self::BadSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::AudienceNotAllowed,
        Self::KeysUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::IssuerNotConfigured => "issuer_not_configured",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::AudienceNotAllowed => "audience_not_allowed",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

/// Limits shared by all rules.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub clock_skew_seconds: u64,
    pub max_token_bytes: usize,
}

/// What a token says about itself before it is trusted: enough to pick the rule and the key,
/// and the registered claims already read the way Envoy reads them.
#[derive(Debug)]
pub struct UnverifiedToken {
    pub algorithm: String,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
    /// `<header>.<payload>` as the token spells them: what the signature signs.
    signing_input: String,
    signature: Vec<u8>,
    expires_at: Option<u64>,
    not_before: Option<u64>,
    audiences: Vec<String>,
}

impl UnverifiedToken {
    pub fn issuer(&self) -> Option<&str> {
        self.claims.get("iss").and_then(Value::as_str)
    }
}

/// A verified token: who the request comes from, for policies and output headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// `iss` and `sub` (strings when present): Istio matches a request principal `<iss>/<sub>`
    /// on each part, not on the joined string.
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub audiences: Vec<String>,
    /// The `azp` claim.
    pub presenter: Option<String>,
    pub claims: Map<String, Value>,
    /// The payload segment as it came (base64url, no padding), for `outputPayloadToHeader`.
    pub payload: String,
    pub expires_at: Option<u64>,
}

impl Identity {
    /// `<iss>/<sub>` when the token has both (for logs).
    pub fn principal(&self) -> Option<String> {
        Some(format!(
            "{}/{}",
            self.issuer.as_ref()?,
            self.subject.as_ref()?
        ))
    }
}

/// Splits and decodes the token as Envoy's jwt_authn parses it: three non-empty parts, `alg` a
/// supported algorithm, `kid` a string, `iss`/`sub`/`jti` strings, `iat`/`nbf`/`exp` integers
/// in 0..2^64 (fractions dropped), `aud` a string or a list of strings. Other header fields
/// (`typ`, `crit`) and other claims (`nonce`...) are not looked at, as in Envoy. Does not trust
/// anything yet.
pub fn decode(token: &str, limits: &Limits) -> Result<UnverifiedToken, JwtFailure> {
    if token.len() > limits.max_token_bytes {
        return Err(JwtFailure::TooLarge);
    }
    let mut parts = token.split('.').filter(|part| !part.is_empty());
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtFailure::Malformed);
    };
    let header = decode_json_object(header_b64)?;
    let claims = decode_json_object(payload_b64)?;
    let algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtFailure::Malformed)?;
    // `none`, and anything else Envoy would not accept, fails before a key is looked at.
    if !SUPPORTED_ALGORITHMS.contains(&algorithm) {
        return Err(JwtFailure::AlgorithmNotAllowed);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err(JwtFailure::Malformed),
    };
    if ["iss", "sub", "jti"]
        .iter()
        .any(|name| claims.get(*name).is_some_and(|v| !v.is_string()))
    {
        return Err(JwtFailure::Malformed);
    }
    numeric_date(&claims, "iat")?;
    let audiences = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|aud| aud.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(JwtFailure::Malformed)?,
        Some(_) => return Err(JwtFailure::Malformed),
    };
    Ok(UnverifiedToken {
        algorithm: algorithm.to_string(),
        kid,
        expires_at: numeric_date(&claims, "exp")?,
        not_before: numeric_date(&claims, "nbf")?,
        audiences,
        claims,
        signing_input: format!("{header_b64}.{payload_b64}"),
        signature: base64url_decode(signature_b64).ok_or(JwtFailure::Malformed)?,
    })
}

fn decode_json_object(segment: &str) -> Result<Map<String, Value>, JwtFailure> {
    let bytes = base64url_decode(segment).ok_or(JwtFailure::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtFailure::Malformed),
    }
}

/// base64url as Envoy decodes JWT segments: no padding or exactly the right amount, and the
/// unused low bits of the last character ignored (a strict decoder would refuse tokens Envoy
/// accepts).
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let unpadded = text.trim_end_matches('=');
    let pads = text.len() - unpadded.len();
    if pads != 0 && (pads > 2 || !(unpadded.len() + pads).is_multiple_of(4)) {
        return None;
    }
    let text = unpadded;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // One leftover character holds 6 bits: not a whole byte, not base64.
    (bits < 6).then_some(out)
}

/// `iat`/`nbf`/`exp` as Envoy reads them: absent, or a number in 0..2^64 (fractions dropped).
/// Anything else (a string date, a negative or huge number) is malformed, never "no expiry".
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtFailure> {
    const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
    match claims.get(name) {
        None => Ok(None),
        Some(value) => match value.as_u64() {
            Some(seconds) => Ok(Some(seconds)),
            None => value
                .as_f64()
                .filter(|seconds| (0.0..TWO_POW_64).contains(seconds))
                .map(|seconds| Some(seconds as u64))
                .ok_or(JwtFailure::Malformed),
        },
    }
}

/// An audience as Envoy compares it: without `http://`/`https://` and one trailing `/`.
pub fn sanitize_audience(audience: &str) -> &str {
    let bare = audience
        .strip_prefix("http://")
        .or_else(|| audience.strip_prefix("https://"))
        .unwrap_or(audience);
    bare.strip_suffix('/').unwrap_or(bare)
}

/// Verifies a decoded token with the keys and (sanitized) audiences of its rule, in Envoy's
/// order: time, audience, key, signature.
pub fn verify(
    unverified: UnverifiedToken,
    keys: &KeySet,
    audiences: &[String],
    limits: &Limits,
    now: u64,
) -> Result<Identity, JwtFailure> {
    check_claims(&unverified, audiences, limits, now)?;
    let kid = unverified.kid.as_deref();
    let mut candidates = keys.candidates(&unverified.algorithm, kid).peekable();
    if candidates.peek().is_none() {
        // Envoy's "no key to match kid or alg"; counted apart so that only an unknown `kid`
        // (keys rotated at the issuer) asks for a new fetch.
        return Err(if keys.has_key_for_kid(kid) {
            JwtFailure::AlgorithmNotAllowed
        } else {
            JwtFailure::UnknownKid
        });
    }
    let signing_input = unverified.signing_input.as_bytes();
    if !candidates.any(|key| key.key.verifies(signing_input, &unverified.signature)) {
        return Err(JwtFailure::BadSignature);
    }
    drop(candidates);
    Ok(identity(unverified))
}

/// [`verify`] for a token whose signature a worker already checked with the same keys (the
/// shared cache): the claims are checked again, against the rule as it is now.
pub fn verify_checked_signature(
    unverified: UnverifiedToken,
    audiences: &[String],
    limits: &Limits,
    now: u64,
) -> Result<Identity, JwtFailure> {
    check_claims(&unverified, audiences, limits, now)?;
    Ok(identity(unverified))
}

/// `nbf`, `exp` (with the clock skew) and `aud`.
fn check_claims(
    unverified: &UnverifiedToken,
    audiences: &[String],
    limits: &Limits,
    now: u64,
) -> Result<(), JwtFailure> {
    let skew = limits.clock_skew_seconds;
    if unverified
        .not_before
        .is_some_and(|nbf| now.saturating_add(skew) < nbf)
    {
        return Err(JwtFailure::NotYetValid);
    }
    // `exp: 0` means no expiry, as in Envoy.
    if unverified
        .expires_at
        .is_some_and(|exp| exp != 0 && now > exp.saturating_add(skew))
    {
        return Err(JwtFailure::Expired);
    }
    if !audiences.is_empty()
        && !unverified.audiences.iter().any(|aud| {
            audiences
                .iter()
                .any(|allowed| allowed == sanitize_audience(aud))
        })
    {
        return Err(JwtFailure::AudienceNotAllowed);
    }
    Ok(())
}

fn identity(unverified: UnverifiedToken) -> Identity {
    let claims = unverified.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
    let payload = unverified
        .signing_input
        .split_once('.')
        .map(|(_, payload)| payload.to_string())
        .unwrap_or_default();
    Identity {
        issuer: text("iss"),
        subject: text("sub"),
        presenter: text("azp"),
        audiences: unverified.audiences,
        payload,
        expires_at: unverified.expires_at,
        claims,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jwks::parse_jwks;
    use crate::jwks::tests::jwks_of;
    use crate::testkeys::{RSA_KEY_1, RSA_KEY_2};
    use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
    use jwt_simple::prelude::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    pub const ISSUER: &str = "https://dex.example.com";
    /// 2026-11-26T00:00:00Z, the tests' "now".
    pub const NOW: u64 = 1_795_651_200;
    pub const LIMITS: Limits = Limits {
        clock_skew_seconds: 60,
        max_token_bytes: 8192,
    };

    /// `claims` issued and valid from NOW (not the machine's clock) for `lifetime` seconds.
    pub fn pinned<T>(mut claims: JWTClaims<T>, lifetime: u64) -> JWTClaims<T> {
        claims.issued_at = Some(Duration::from_secs(NOW));
        claims.invalid_before = Some(Duration::from_secs(NOW));
        claims.expires_at = Some(Duration::from_secs(NOW + lifetime));
        claims
    }

    /// Claims valid one hour from NOW, by ISSUER for subject `alice` and audience `kserve`.
    pub fn claims() -> JWTClaims<NoCustomClaims> {
        let claims = Claims::create(Duration::from_hours(1))
            .with_issuer(ISSUER)
            .with_subject("alice")
            .with_audience("kserve");
        pinned(claims, 3600)
    }

    pub fn b64(bytes: &[u8]) -> String {
        Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap()
    }

    /// A token with the given raw header and payload JSON and signature bytes.
    pub fn raw_token(header: &str, payload: &str, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            b64(header.as_bytes()),
            b64(payload.as_bytes()),
            b64(signature)
        )
    }

    fn check(
        token: &str,
        set: &KeySet,
        audiences: &[&str],
        now: u64,
    ) -> Result<Identity, JwtFailure> {
        let audiences: Vec<String> = audiences.iter().map(|a| a.to_string()).collect();
        let unverified = decode(token, &LIMITS)?;
        let audiences: Vec<String> = audiences
            .iter()
            .map(|a| sanitize_audience(a).to_string())
            .collect();
        verify(unverified, set, &audiences, &LIMITS, now)
    }

    fn rsa_setup() -> (RS256KeyPair, KeySet) {
        let pair = RS256KeyPair::from_pem(RSA_KEY_1)
            .unwrap()
            .with_key_id("rsa-1");
        let set = parse_jwks(&jwks_of(&[pair.public_key().to_jwk()])).unwrap();
        (pair, set)
    }

    #[test]
    fn every_algorithm_verifies_with_its_key() {
        let rs384 = RS384KeyPair::from_pem(RSA_KEY_1)
            .unwrap()
            .with_key_id("rs384");
        let rs512 = RS512KeyPair::from_pem(RSA_KEY_2)
            .unwrap()
            .with_key_id("rs512");
        let ps256 = PS256KeyPair::from_pem(RSA_KEY_1)
            .unwrap()
            .with_key_id("ps256");
        let ps384 = PS384KeyPair::from_pem(RSA_KEY_2)
            .unwrap()
            .with_key_id("ps384");
        let ps512 = PS512KeyPair::from_pem(RSA_KEY_1)
            .unwrap()
            .with_key_id("ps512");
        let es256 = ES256KeyPair::generate().with_key_id("es256");
        let es384 = ES384KeyPair::generate().with_key_id("es384");
        let ed = Ed25519KeyPair::generate().with_key_id("ed");
        let (rs256, _) = rsa_setup();
        let mac = HS256Key::from_bytes(b"a shared secret of 32 bytes.....").with_key_id("hs256");
        let mac384 = HS384Key::from_bytes(b"a shared secret of 32 bytes.....").with_key_id("hs384");
        let mac512 = HS512Key::from_bytes(b"a shared secret of 32 bytes.....").with_key_id("hs512");
        let oct = |kid: &str, alg: &str| {
            format!(
                r#"{{"kty":"oct","kid":"{kid}","alg":"{alg}","k":"{}"}}"#,
                b64(b"a shared secret of 32 bytes.....")
            )
        };
        let set = parse_jwks(&jwks_of(&[
            rs256.public_key().to_jwk(),
            rs384.public_key().to_jwk(),
            rs512.public_key().to_jwk(),
            ps256.public_key().to_jwk(),
            ps384.public_key().to_jwk(),
            ps512.public_key().to_jwk(),
            es256.public_key().to_jwk(),
            es384.public_key().to_jwk(),
            ed.public_key().to_jwk(),
            oct("hs256", "HS256"),
            oct("hs384", "HS384"),
            oct("hs512", "HS512"),
        ]))
        .unwrap();
        let tokens = [
            rs256.sign(claims()).unwrap(),
            rs384.sign(claims()).unwrap(),
            rs512.sign(claims()).unwrap(),
            ps256.sign(claims()).unwrap(),
            ps384.sign(claims()).unwrap(),
            ps512.sign(claims()).unwrap(),
            es256.sign(claims()).unwrap(),
            es384.sign(claims()).unwrap(),
            ed.sign(claims()).unwrap(),
            mac.authenticate(claims()).unwrap(),
            mac384.authenticate(claims()).unwrap(),
            mac512.authenticate(claims()).unwrap(),
        ];
        for token in &tokens {
            let identity = check(token, &set, &["kserve"], NOW).unwrap();
            assert_eq!(
                identity.principal().as_deref(),
                Some("https://dex.example.com/alice")
            );
            assert_eq!(identity.audiences, ["kserve"]);
            assert_eq!(identity.expires_at, Some(NOW + 3600));
            assert_eq!(identity.payload, token.split('.').nth(1).unwrap());
        }
    }

    #[test]
    fn alg_none_is_refused_before_any_key() {
        let (pair, set) = rsa_setup();
        let valid = pair.sign(claims()).unwrap();
        let payload = valid.split('.').nth(1).unwrap();
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"None","kid":"rsa-1"}"#,
            r#"{"alg":"NONE"}"#,
        ] {
            let token = format!("{}.{payload}.c2ln", b64(header.as_bytes()));
            assert_eq!(
                check(&token, &set, &[], NOW),
                Err(JwtFailure::AlgorithmNotAllowed)
            );
            // Without a signature it is not even a JWT (Envoy skips empty parts).
            let token = format!("{}.{payload}.", b64(header.as_bytes()));
            assert_eq!(check(&token, &set, &[], NOW), Err(JwtFailure::Malformed));
        }
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key_is_refused() {
        let (pair, set) = rsa_setup();
        // The classic confusion: the attacker uses the public key bytes as an HMAC secret.
        let public_jwk = pair.public_key().to_jwk();
        let forged = HS256Key::from_bytes(public_jwk.as_bytes())
            .with_key_id("rsa-1")
            .authenticate(claims())
            .unwrap();
        assert_eq!(
            check(&forged, &set, &[], NOW),
            Err(JwtFailure::AlgorithmNotAllowed)
        );
        let pem = pair.public_key().to_pem().unwrap();
        let forged = HS256Key::from_bytes(pem.as_bytes())
            .authenticate(claims())
            .unwrap();
        assert_eq!(
            check(&forged, &set, &[], NOW),
            Err(JwtFailure::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn key_of_another_algorithm_family_is_never_tried() {
        let (_, set) = rsa_setup();
        let es = ES256KeyPair::generate().with_key_id("rsa-1");
        let token = es.sign(claims()).unwrap();
        assert_eq!(
            check(&token, &set, &[], NOW),
            Err(JwtFailure::AlgorithmNotAllowed)
        );
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_respect_the_skew() {
        let (pair, set) = rsa_setup();
        let token = pair.sign(claims()).unwrap();
        assert!(check(&token, &set, &[], NOW + 3600 + 60).is_ok());
        assert_eq!(
            check(&token, &set, &[], NOW + 3600 + 61),
            Err(JwtFailure::Expired)
        );
        let mut future = claims();
        future.invalid_before = Some(Duration::from_secs(NOW + 600));
        let token = pair.sign(future).unwrap();
        assert_eq!(check(&token, &set, &[], NOW), Err(JwtFailure::NotYetValid));
        assert!(check(&token, &set, &[], NOW + 540).is_ok());
    }

    #[test]
    fn non_numeric_exp_is_malformed_not_eternal() {
        let secret = b"a shared secret of 32 bytes.....";
        let set = parse_jwks(&jwks_of(&[format!(
            r#"{{"kty":"oct","k":"{}"}}"#,
            b64(secret)
        )]))
        .unwrap();
        let mut custom = serde_json::Map::new();
        custom.insert("exp".into(), "tomorrow".into());
        let mut claims = pinned(
            Claims::with_custom_claims(custom, Duration::from_hours(1)),
            60,
        );
        claims.expires_at = None;
        let token = HS256Key::from_bytes(secret).authenticate(claims).unwrap();
        assert_eq!(check(&token, &set, &[], NOW), Err(JwtFailure::Malformed));
    }

    /// A token of `payload` (JSON text) signed with the shared secret of `set`.
    fn hs256(payload: &str) -> String {
        let secret = b"a shared secret of 32 bytes.....";
        let signed = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(payload.as_bytes()));
        let tag = HS256Key::from_bytes(secret).authentication_tag(signed.as_bytes());
        format!("{signed}.{}", b64(&tag))
    }

    fn hs256_keys() -> KeySet {
        let secret = b"a shared secret of 32 bytes.....";
        parse_jwks(&jwks_of(&[format!(
            r#"{{"kty":"oct","k":"{}"}}"#,
            b64(secret)
        )]))
        .unwrap()
    }

    #[test]
    fn times_out_of_the_integer_range_are_malformed_not_eternal() {
        let set = hs256_keys();
        for (claim, value, expected) in [
            ("exp", "1e30", Err(JwtFailure::Malformed)),
            ("exp", "-1", Err(JwtFailure::Malformed)),
            ("exp", "18446744073709551616", Err(JwtFailure::Malformed)),
            ("nbf", "1e30", Err(JwtFailure::Malformed)),
            ("iat", "\"yesterday\"", Err(JwtFailure::Malformed)),
            // Fractions are dropped, as Envoy reads them; `exp: 0` means no expiry.
            ("exp", "4102444800.9", Ok(())),
            ("exp", "0", Ok(())),
            ("nbf", "1.5", Ok(())),
        ] {
            let token = hs256(&format!(r#"{{"iss":"{ISSUER}","{claim}":{value}}}"#));
            assert_eq!(
                check(&token, &set, &[], NOW).map(|_| ()),
                expected,
                "{claim}: {value}"
            );
        }
    }

    #[test]
    fn registered_claims_of_the_wrong_type_are_malformed() {
        let set = hs256_keys();
        for payload in [
            r#"{"iss":5}"#,
            r#"{"sub":["a"]}"#,
            r#"{"jti":{}}"#,
            r#"{"aud":5}"#,
            r#"{"aud":["a",5]}"#,
        ] {
            assert_eq!(
                check(&hs256(payload), &set, &[], NOW).map(|_| ()),
                Err(JwtFailure::Malformed),
                "{payload}"
            );
        }
        let identity = check(&hs256(r#"{"iss":"i"}"#), &set, &[], NOW).unwrap();
        assert_eq!(identity.subject, None);
        assert_eq!(identity.principal(), None, "no sub, no principal");
    }

    #[test]
    fn non_canonical_base64url_reads_as_envoy_reads_it() {
        let set = hs256_keys();
        let token = hs256(&format!(r#"{{"iss":"{ISSUER}"}}"#));
        // The 32-byte tag leaves 2 unused bits in its last character: set one.
        let (head, last) = token.split_at(token.len() - 1);
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.find(last).unwrap();
        let changed = format!("{head}{}", &alphabet[(index ^ 1)..=(index ^ 1)]);
        assert_ne!(changed, token);
        assert!(check(&changed, &set, &[], NOW).is_ok());
        // No padding or the right one (43 characters: one `=`), as Envoy; characters outside
        // the alphabet are refused.
        assert!(check(&format!("{token}="), &set, &[], NOW).is_ok());
        for wrong in ["==", "==="] {
            assert_eq!(
                check(&format!("{token}{wrong}"), &set, &[], NOW).map(|_| ()),
                Err(JwtFailure::Malformed)
            );
        }
        assert_eq!(
            check(&format!("{head}+"), &set, &[], NOW).map(|_| ()),
            Err(JwtFailure::Malformed)
        );
    }

    #[test]
    fn audiences_compare_without_scheme_and_trailing_slash() {
        let set = hs256_keys();
        for (token_aud, configured, ok) in [
            ("api.example.com", "https://api.example.com/", true),
            ("https://api.example.com/", "api.example.com", true),
            ("http://api.example.com", "https://api.example.com", true),
            ("api.example.com//", "api.example.com", false),
            ("API.example.com", "api.example.com", false),
        ] {
            let token = hs256(&format!(r#"{{"iss":"{ISSUER}","aud":"{token_aud}"}}"#));
            let result = check(&token, &set, &[configured], NOW).map(|_| ());
            let expected = if ok {
                Ok(())
            } else {
                Err(JwtFailure::AudienceNotAllowed)
            };
            assert_eq!(result, expected, "{token_aud} vs {configured}");
        }
    }

    #[test]
    fn audience_is_any_of_and_optional() {
        let (pair, set) = rsa_setup();
        let token = pair.sign(claims()).unwrap();
        assert!(check(&token, &set, &["other", "kserve"], NOW).is_ok());
        assert_eq!(
            check(&token, &set, &["other"], NOW),
            Err(JwtFailure::AudienceNotAllowed)
        );
        let mut no_aud = claims();
        no_aud.audiences = None;
        let token = pair.sign(no_aud).unwrap();
        assert!(check(&token, &set, &[], NOW).is_ok());
        assert_eq!(
            check(&token, &set, &["kserve"], NOW),
            Err(JwtFailure::AudienceNotAllowed)
        );
    }

    #[test]
    fn unknown_kid_and_wrong_key_are_refused() {
        let (_, set) = rsa_setup();
        let stranger = RS256KeyPair::from_pem(RSA_KEY_2).unwrap();
        let token = stranger
            .clone()
            .with_key_id("rsa-2")
            .sign(claims())
            .unwrap();
        assert_eq!(check(&token, &set, &[], NOW), Err(JwtFailure::UnknownKid));
        // Same kid as ours but signed with another key.
        let token = stranger.with_key_id("rsa-1").sign(claims()).unwrap();
        assert_eq!(check(&token, &set, &[], NOW), Err(JwtFailure::BadSignature));
    }

    #[test]
    fn tampered_payload_or_signature_is_refused() {
        let (pair, set) = rsa_setup();
        let token = pair.sign(claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let admin = b64(format!(
            r#"{{"iss":"{ISSUER}","sub":"admin","aud":"kserve","exp":{}}}"#,
            NOW + 60
        )
        .as_bytes());
        let tampered = format!("{}.{admin}.{}", parts[0], parts[2]);
        assert_eq!(
            check(&tampered, &set, &[], NOW),
            Err(JwtFailure::BadSignature)
        );
        let mut signature = Base64UrlSafeNoPadding::decode_to_vec(parts[2], None).unwrap();
        signature[10] ^= 1;
        let tampered = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
        assert_eq!(
            check(&tampered, &set, &[], NOW),
            Err(JwtFailure::BadSignature)
        );
        let truncated_signature = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]);
        assert_eq!(
            check(&truncated_signature, &set, &[], NOW),
            Err(JwtFailure::BadSignature)
        );
    }

    #[test]
    fn truncated_and_garbage_tokens_are_malformed() {
        let (pair, set) = rsa_setup();
        let token = pair.sign(claims()).unwrap();
        let cut = &token[..token.rfind('.').unwrap()];
        for garbage in [
            "",
            ".",
            "..",
            "a.b.c",
            cut,
            &token[..15],
            "eyJhbGciOiJSUzI1NiJ9.%%%.abc",
            "not a token at all",
            &format!("{token}.extra"),
            &raw_token("[1]", "{}", b"sig"),
            &raw_token(r#"{"alg":"RS256"}"#, "\"string\"", b"sig"),
            &raw_token(r#"{"alg":"RS256","kid":7}"#, "{}", b"sig"),
            &raw_token(r#"{"kid":"rsa-1"}"#, "{}", b"sig"),
        ] {
            assert_eq!(
                check(garbage, &set, &[], NOW),
                Err(JwtFailure::Malformed),
                "{garbage}"
            );
        }
    }

    #[test]
    fn header_fields_envoy_ignores_do_not_refuse_a_token() {
        let secret = b"a shared secret of 32 bytes.....";
        let set = parse_jwks(&jwks_of(&[format!(
            r#"{{"kty":"oct","k":"{}"}}"#,
            b64(secret)
        )]))
        .unwrap();
        // Envoy's jwt_authn reads neither `crit` nor `typ`, nor claims it does not use.
        for (header, payload) in [
            (
                r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
                format!(r#"{{"iss":"{ISSUER}"}}"#),
            ),
            (
                r#"{"alg":"HS256","typ":"JOSE"}"#,
                format!(r#"{{"iss":"{ISSUER}"}}"#),
            ),
            (
                r#"{"alg":"HS256"}"#,
                format!(r#"{{"iss":"{ISSUER}","nonce":5}}"#),
            ),
        ] {
            let signed = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
            let tag = HS256Key::from_bytes(secret).authentication_tag(signed.as_bytes());
            let token = format!("{signed}.{}", b64(&tag));
            assert!(check(&token, &set, &[], NOW).is_ok(), "{header} {payload}");
        }
    }

    #[test]
    fn every_single_character_change_is_refused() {
        let pair = ES256KeyPair::generate().with_key_id("k");
        let set = parse_jwks(&jwks_of(&[pair.public_key().to_jwk()])).unwrap();
        let token = pair.sign(claims()).unwrap();
        let bytes = token.as_bytes();
        let last_of_segment = |i: usize| bytes.get(i + 1).is_none_or(|next| *next == b'.');
        for i in 0..bytes.len() {
            // The last character of a segment may only carry padding bits.
            if bytes[i] == b'.' || last_of_segment(i) {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(
                check(&changed, &set, &[], NOW).is_err(),
                "position {i}: {changed}"
            );
        }
        assert!(check(&token, &set, &[], NOW).is_ok());
    }

    #[test]
    fn huge_tokens_are_refused_before_decoding() {
        let (_, set) = rsa_setup();
        let huge = format!(
            "{}.{}.{}",
            "a".repeat(4000),
            "b".repeat(4000),
            "c".repeat(400)
        );
        assert_eq!(check(&huge, &set, &[], NOW), Err(JwtFailure::TooLarge));
        let (pair, _) = rsa_setup();
        let mut big = claims();
        big.jwt_id = Some("x".repeat(9000));
        let token = pair.sign(big).unwrap();
        assert_eq!(check(&token, &set, &[], NOW), Err(JwtFailure::TooLarge));
    }

    #[test]
    fn claims_presenter_and_list_audiences_are_exposed() {
        let (pair, set) = rsa_setup();
        let mut custom = serde_json::Map::new();
        custom.insert("azp".into(), "web-ui".into());
        custom.insert("groups".into(), serde_json::json!(["admins", "ml"]));
        let claims = Claims::with_custom_claims(custom, Duration::from_hours(1))
            .with_issuer(ISSUER)
            .with_subject("bob")
            .with_audiences(HashSet::from_strings(&["a", "b"]));
        let claims = pinned(claims, 60);
        let token = pair.sign(claims).unwrap();
        let identity = check(&token, &set, &["b"], NOW).unwrap();
        assert_eq!(identity.presenter.as_deref(), Some("web-ui"));
        assert_eq!(
            identity.claims["groups"],
            serde_json::json!(["admins", "ml"])
        );
        let mut audiences = identity.audiences.clone();
        audiences.sort();
        assert_eq!(audiences, ["a", "b"]);
    }

    #[test]
    fn every_failure_has_a_distinct_name() {
        let mut names: Vec<&str> = JwtFailure::ALL.iter().map(|f| f.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), JwtFailure::ALL.len());
    }
}
