//! Shared by the JWT targets (`jwt_token`, `jwt_claims`; a module of each, not of the library:
//! code of the library that calls auth-gate would link auth-gate into every target, and two
//! plugins in one binary clash).
//!
//! A model of how Envoy 1.40's jwt_authn judges one token with one provider's keys and
//! audiences, written from Envoy's behaviour (not from auth-gate's code): the JWT targets compare
//! `token::decode` + `token::verify` with it, outcome for outcome.
//!
//! - The token: at most [`MAX_TOKEN_BYTES`]; split on `.` with empty parts skipped, exactly three
//!   parts; each part base64url as Envoy decodes it (see [`base64url`]); header and payload JSON
//!   objects (else `Malformed`).
//! - Header: `alg` a string (else `Malformed`) among [`ALGORITHMS`] (else `AlgorithmNotAllowed`);
//!   `kid` a string when present; `typ`, `crit` and the rest are not read.
//! - Claims: `iss`, `sub`, `jti` strings when present; `iat`, `nbf`, `exp` numbers in 0..2^64,
//!   fractions dropped; `aud` a string or a list of strings; other claims (`nonce`, `azp`...) are
//!   not checked. Anything else is `Malformed`.
//! - Then, in this order: `nbf` later than now + skew is `NotYetValid`; `exp` (0 is no expiry)
//!   earlier than now - skew is `Expired`; with audiences configured, no token audience equal to
//!   one once both are sanitized ([`sanitize_audience`]) is `AudienceNotAllowed`; no key of the
//!   token's `alg` whose `kid` agrees (either side without `kid` agrees) is `AlgorithmNotAllowed`
//!   when some key's `kid` agrees, `UnknownKid` otherwise; no such key verifying the signature is
//!   `BadSignature`.
//!
//! Which of two decode failures is reported when a token has both (a bad payload and an
//! unsupported `alg`) is not modelled: decode checks run in the order above.
//!
//! Signatures: only HS256 is checked here (with the targets' secret); a key the model cannot
//! check (the RSA key) never verifies, as no fuzzer input can forge an RSA signature.

#![allow(dead_code)] // each target uses a part

use auth_gate::jwks::{parse_jwks, KeySet};
use auth_gate::token::{self, Identity, JwtFailure, Limits};
use serde_json::{Map, Value};

pub const MAX_TOKEN_BYTES: usize = 8192;
pub const CLOCK_SKEW_SECONDS: u64 = 60;

/// What Envoy's jwt_authn verifies and auth-gate supports. ES512, which Envoy also verifies, is
/// refused as an unknown algorithm: auth-gate cannot load ES512 keys, and no key set here has one.
pub const ALGORITHMS: [&str; 12] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA", "HS256",
    "HS384", "HS512",
];

/// One key of a set, as the model sees it.
#[derive(Debug, Clone, Copy)]
pub struct ModelKey {
    pub kid: Option<&'static str>,
    pub alg: &'static str,
    /// The HS256 secret when the model can check signatures for this key.
    pub hs256_secret: Option<&'static [u8]>,
}

/// The keys of `model_gateway_fuzz::jwks`.
pub fn keys_with_kid() -> Vec<ModelKey> {
    vec![
        ModelKey {
            kid: Some(model_gateway_fuzz::HS256_KID),
            alg: "HS256",
            hs256_secret: Some(model_gateway_fuzz::HS256_SECRET),
        },
        ModelKey {
            kid: Some("demo-key-1"),
            alg: "RS256",
            hs256_secret: None,
        },
    ]
}

/// The keys of `model_gateway_fuzz::jwks_without_kid`.
pub fn keys_without_kid() -> Vec<ModelKey> {
    vec![
        ModelKey {
            kid: None,
            alg: "HS256",
            hs256_secret: Some(model_gateway_fuzz::HS256_SECRET),
        },
        ModelKey {
            kid: Some("demo-key-1"),
            alg: "RS256",
            hs256_secret: None,
        },
    ]
}

/// What a verified token must yield.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub audiences: Vec<String>,
    pub presenter: Option<String>,
    pub claims: Map<String, Value>,
    /// The payload part as the token spells it.
    pub payload: String,
    pub expires_at: Option<u64>,
}

impl Expected {
    /// The plugin's identity, in the same terms.
    pub fn of(identity: &Identity) -> Self {
        Self {
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            audiences: identity.audiences.clone(),
            presenter: identity.presenter.clone(),
            claims: identity.claims.clone(),
            payload: identity.payload.clone(),
            expires_at: identity.expires_at,
        }
    }

    /// Istio's request principal: `<iss>/<sub>`, only when the token has both.
    pub fn principal(&self) -> Option<String> {
        match (&self.issuer, &self.subject) {
            (Some(iss), Some(sub)) => Some(format!("{iss}/{sub}")),
            _ => None,
        }
    }
}

/// The value of one base64url character.
fn sextet(c: u8) -> Option<u32> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    ALPHABET.iter().position(|a| *a == c).map(|v| v as u32)
}

/// base64url as Envoy decodes JWT parts (absl's `WebSafeBase64Unescape`): the characters
/// `A-Z a-z 0-9 - _`, then no padding or exactly the padding the length calls for (`==` after a
/// group of two characters, `=` after three, none after four); a group of one character is not
/// base64. The bits of the last character beyond the last whole byte are dropped, whatever they
/// are.
pub fn base64url(text: &str) -> Option<Vec<u8>> {
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    let values: Vec<u32> = data.bytes().map(sextet).collect::<Option<_>>()?;
    let due = match values.len() % 4 {
        0 => 0,
        2 => 2,
        3 => 1,
        _ => return None,
    };
    if padding != 0 && padding != due {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() * 3 / 4);
    for group in values.chunks(4) {
        let bits = group.iter().fold(0u32, |acc, v| (acc << 6) | v) << (6 * (4 - group.len()));
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&bytes[..group.len() - 1]);
    }
    Some(out)
}

/// How a base64url part is spelled: [`encode`] writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spelling {
    /// Whether the bits of the last character beyond the last byte are set (they must be
    /// ignored).
    pub stray_bits: bool,
    /// Whether the padding `=` is written.
    pub padded: bool,
}

impl Spelling {
    pub const CANONICAL: Spelling = Spelling {
        stray_bits: false,
        padded: false,
    };
}

/// `bytes` in base64url, spelled as asked.
pub fn encode(bytes: &[u8], spelling: Spelling) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut bits =
            chunk.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        let chars = chunk.len() + 1;
        if spelling.stray_bits {
            // The low bits of the last character that hold no data: 4 after one byte, 2 after
            // two, none after three.
            let unused = 6 * chars - 8 * chunk.len();
            bits |= ((1 << unused) - 1) << (24 - 6 * chars);
        }
        for k in 0..chars {
            out.push(ALPHABET[((bits >> (18 - 6 * k)) & 63) as usize] as char);
        }
        if spelling.padded {
            out.push_str(&"=="[..4 - chars]);
        }
    }
    out
}

/// `iat`/`nbf`/`exp`: absent, or a number in 0..2^64 with its fraction dropped.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, JwtFailure> {
    let Some(value) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(JwtFailure::Malformed);
    };
    if let Some(seconds) = number.as_u64() {
        return Ok(Some(seconds));
    }
    if number.is_i64() {
        return Err(JwtFailure::Malformed);
    }
    let seconds = number.as_f64().ok_or(JwtFailure::Malformed)?;
    if seconds >= 0.0 && seconds < 18_446_744_073_709_551_616.0 {
        Ok(Some(seconds.trunc() as u64))
    } else {
        Err(JwtFailure::Malformed)
    }
}

/// An audience as Envoy compares it: without a leading `http://` or `https://` and one trailing
/// `/`.
pub fn sanitize_audience(audience: &str) -> String {
    let mut bare = audience;
    for scheme in ["http://", "https://"] {
        if bare.starts_with(scheme) {
            bare = &bare[scheme.len()..];
            break;
        }
    }
    if bare.ends_with('/') {
        bare = &bare[..bare.len() - 1];
    }
    bare.to_string()
}

fn json_object(part: &str) -> Result<Map<String, Value>, JwtFailure> {
    let bytes = base64url(part).ok_or(JwtFailure::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtFailure::Malformed),
    }
}

/// The outcome Envoy gives `token` with `keys` and the configured `audiences` (as written in
/// the configuration) at `now`.
pub fn judge(
    token: &str,
    keys: &[ModelKey],
    audiences: &[String],
    now: u64,
) -> Result<Expected, JwtFailure> {
    use JwtFailure::*;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TooLarge);
    }
    let parts: Vec<&str> = token.split('.').filter(|p| !p.is_empty()).collect();
    let [header, payload, signature] = parts[..] else {
        return Err(Malformed);
    };
    let header_json = json_object(header)?;
    let claims = json_object(payload)?;
    let alg = match header_json.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => return Err(Malformed),
    };
    if !ALGORITHMS.contains(&alg) {
        return Err(AlgorithmNotAllowed);
    }
    let kid = match header_json.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(Malformed),
    };
    let string_claim = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(Malformed),
    };
    let issuer = string_claim("iss")?;
    let subject = string_claim("sub")?;
    string_claim("jti")?;
    numeric_date(&claims, "iat")?;
    let not_before = numeric_date(&claims, "nbf")?;
    let expires_at = numeric_date(&claims, "exp")?;
    let token_audiences: Vec<String> = match claims.get("aud") {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(items)) => {
            let mut list = Vec::new();
            for item in items {
                match item {
                    Value::String(aud) => list.push(aud.clone()),
                    _ => return Err(Malformed),
                }
            }
            list
        }
        Some(_) => return Err(Malformed),
    };
    let signature = base64url(signature).ok_or(Malformed)?;

    let (now, skew) = (u128::from(now), u128::from(CLOCK_SKEW_SECONDS));
    if not_before.is_some_and(|nbf| now + skew < u128::from(nbf)) {
        return Err(NotYetValid);
    }
    if expires_at.is_some_and(|exp| exp != 0 && now > u128::from(exp) + skew) {
        return Err(Expired);
    }
    let allowed: Vec<String> = audiences.iter().map(|a| sanitize_audience(a)).collect();
    if !allowed.is_empty()
        && !token_audiences
            .iter()
            .any(|aud| allowed.contains(&sanitize_audience(aud)))
    {
        return Err(AudienceNotAllowed);
    }
    let kid_agrees = |key: &ModelKey| match (kid, key.kid) {
        (Some(wanted), Some(has)) => wanted == has,
        _ => true,
    };
    let candidates: Vec<&ModelKey> = keys
        .iter()
        .filter(|key| key.alg == alg && kid_agrees(key))
        .collect();
    if candidates.is_empty() {
        return Err(if keys.iter().any(kid_agrees) {
            AlgorithmNotAllowed
        } else {
            UnknownKid
        });
    }
    let signing_input = format!("{header}.{payload}");
    let verifies = |key: &&ModelKey| {
        key.hs256_secret.is_some_and(|secret| {
            hmac_sha256::HMAC::mac(signing_input.as_bytes(), secret).as_slice() == signature
        })
    };
    if !candidates.iter().any(verifies) {
        return Err(BadSignature);
    }
    Ok(Expected {
        issuer,
        subject,
        audiences: token_audiences,
        presenter: claims
            .get("azp")
            .and_then(Value::as_str)
            .map(str::to_string),
        payload: payload.to_string(),
        expires_at,
        claims,
    })
}

/// A compact JWS of `header` and `payload` (JSON bytes) signed with HS256 and the targets'
/// secret, every part spelled as asked, with `empty_parts` extra dots (empty parts, which are
/// skipped) spread before, between and after the parts.
pub fn sign_spelled(
    header: &[u8],
    payload: &[u8],
    spelling: Spelling,
    empty_parts: usize,
) -> String {
    let (header, payload) = (encode(header, spelling), encode(payload, spelling));
    let signing_input = format!("{header}.{payload}");
    let mac = hmac_sha256::HMAC::mac(signing_input.as_bytes(), model_gateway_fuzz::HS256_SECRET);
    let parts = [header, payload, encode(&mac, spelling)];
    let mut token = String::new();
    for (k, part) in parts.iter().enumerate() {
        // Extra dots: the first before the token, the next between header and payload...
        let extra = (0..empty_parts).filter(|e| e % 4 == k).count();
        token.push_str(&".".repeat(extra));
        if k > 0 {
            token.push('.');
        }
        token.push_str(part);
    }
    token.push_str(&".".repeat((0..empty_parts).filter(|e| e % 4 == 3).count()));
    token
}

/// The limits the JWT targets give the plugin.
pub const LIMITS: Limits = Limits {
    clock_skew_seconds: CLOCK_SKEW_SECONDS,
    max_token_bytes: MAX_TOKEN_BYTES,
};

/// Audiences of the third setup, as a user writes them (the plugin sanitizes them when it loads
/// its configuration, the model when it compares).
pub const AUDIENCES: [&str; 3] = [
    "kserve",
    "https://api.example.com/",
    "http://models.example.com",
];

/// One provider as the plugin and the model see it.
pub struct Setup {
    pub name: &'static str,
    keys: KeySet,
    model: Vec<ModelKey>,
    audiences: Vec<String>,
}

/// The three providers every token is judged with: the fixed keys without audiences; the same
/// with the HS256 key without `kid`; the fixed keys with [`AUDIENCES`].
pub fn setups() -> Vec<Setup> {
    let keys = |jwks: String| parse_jwks(&jwks).expect("the fixed JWKS loads");
    vec![
        Setup {
            name: "keys with kid",
            keys: keys(model_gateway_fuzz::jwks()),
            model: keys_with_kid(),
            audiences: Vec::new(),
        },
        Setup {
            name: "HS256 key without kid",
            keys: keys(model_gateway_fuzz::jwks_without_kid()),
            model: keys_without_kid(),
            audiences: Vec::new(),
        },
        Setup {
            name: "audiences",
            keys: keys(model_gateway_fuzz::jwks()),
            model: keys_with_kid(),
            audiences: AUDIENCES.iter().map(|a| a.to_string()).collect(),
        },
    ]
}

/// Judges `token` with the plugin (`decode`, then `verify` with the audiences sanitized as the
/// plugin's configuration does) and with the model, at the targets' "now"; panics unless both
/// give the same outcome. The plugin's identity when the token verifies.
pub fn check(token: &str, setup: &Setup) -> Option<Identity> {
    let audiences: Vec<String> = setup
        .audiences
        .iter()
        .map(|a| token::sanitize_audience(a).to_string())
        .collect();
    let plugin = token::decode(token, &LIMITS).and_then(|unverified| {
        token::verify(
            unverified,
            &setup.keys,
            &audiences,
            &LIMITS,
            model_gateway_fuzz::NOW,
        )
    });
    let model = judge(
        token,
        &setup.model,
        &setup.audiences,
        model_gateway_fuzz::NOW,
    );
    match (&plugin, &model) {
        (Ok(identity), Ok(expected)) => {
            assert_eq!(&Expected::of(identity), expected, "{}: {token}", setup.name);
            assert_eq!(
                identity.principal(),
                expected.principal(),
                "{}: {token}",
                setup.name
            );
        }
        (Err(failure), Err(expected)) => {
            assert_eq!(failure, expected, "{}: {token}", setup.name)
        }
        _ => panic!(
            "{}: {token}\nplugin: {plugin:?}\nmodel: {model:?}",
            setup.name
        ),
    }
    plugin.ok()
}
