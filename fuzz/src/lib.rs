//! What several fuzz targets share: splitting the input into lines, reference implementations
//! the plugins' matchers are compared with, and the fixed key the JWT targets sign with.
//!
//! Inputs are plain text (lines), so that the seed corpora under `corpus/<target>/` can be read
//! and written by hand.

pub mod signatures;

use ct_codecs::{Base64UrlSafeNoPadding, Decoder, Encoder};

/// The input's lines (split on `\n`, never containing it).
pub fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == b'\n').collect()
}

/// The input's lines as text; `None` if the input is not UTF-8.
pub fn text_lines(data: &[u8]) -> Option<Vec<&str>> {
    Some(std::str::from_utf8(data).ok()?.split('\n').collect())
}

/// Istio's string forms, written the obvious way: `*` any value, `*abc` suffix, `abc*` prefix,
/// anything else exact. The plugins compile patterns into tries; this is what they must agree
/// with.
pub fn istio_string_matches(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else {
        value == pattern
    }
}

/// `path` percent-decoded once more, as an upstream that decodes again would read it; invalid
/// escapes stay as they are.
pub fn percent_decode(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        // Two hex digits exactly (`u8::from_str_radix` alone would also take `%+f`).
        let escaped = match (b, bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if hex.iter().all(u8::is_ascii_hexdigit) => std::str::from_utf8(hex)
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match escaped {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Whether a path (bytes, query already cut off) has a `.` or `..` segment, with `/` or `\` as
/// separators (some servers take `\` for `/`).
pub fn has_dot_segment(path: &[u8]) -> bool {
    path.split(|b| *b == b'/' || *b == b'\\')
        .any(|segment| segment == b"." || segment == b"..")
}

/// The HS256 secret of the JWT targets' key set (`kid` `fuzz-hs256`); it protects nothing.
pub const HS256_SECRET: &[u8] = b"fuzz-target-shared-secret-0123456789";
pub const HS256_KID: &str = "fuzz-hs256";
/// "Now" of the JWT targets: 2026-11-26T00:00:00Z, so the seed tokens never expire.
pub const NOW: u64 = 1_795_651_200;

/// The JWKS the JWT targets verify with: the HS256 key, and the RSA key of the gateway manifest
/// (so RSA paths are reached too; no token can be signed for it here).
pub fn jwks() -> String {
    let k = b64(HS256_SECRET);
    format!(
        r#"{{"keys":[{{"kty":"oct","kid":"{HS256_KID}","alg":"HS256","k":"{k}"}},{}]}}"#,
        GATEWAY_RSA_JWK
    )
}

/// The same keys, the HS256 key without `kid` (Envoy tries such a key whatever `kid` a token
/// names).
pub fn jwks_without_kid() -> String {
    let k = b64(HS256_SECRET);
    format!(
        r#"{{"keys":[{{"kty":"oct","alg":"HS256","k":"{k}"}},{}]}}"#,
        GATEWAY_RSA_JWK
    )
}

/// The public key in `wasmplugin-manifests/gateway/auth-gate.yaml`.
pub const GATEWAY_RSA_JWK: &str = r#"{"kty":"RSA","key_ops":["verify"],"n":"v3VQu14XZYVfNPJ5hvTPJLiYkD13__GHtgFZiP4_0hq8Bw_lYId4ncYij8A4oN_OwkcM1E9_yjnG1qcUKb5MQfzcXTGJ7GsQncFBiy0JlzRt4HIZ0NpKBADGhjbY3Ex4iGaYrGLTDvRWoccEoaQ2mIDaNByHTXG2d4iv589ZIFV7mlJFWKkKPQiOeaSf5CMV705AekuCs2TwTZ1uXvi-anF_RKciEbVlTTuYIuqn6zhaXOeE8cnpDPG3-zKuZMhYh1wStrUOvnO9STdScccX2epG_asB98E-QdXNFlcZXiMc3-HuapVt77H6JD33LCea3p7Tva0i0RmTLEaKfjuntw","e":"AQAB","kid":"demo-key-1","alg":"RS256","use":"sig"}"#;

pub fn b64(bytes: &[u8]) -> String {
    Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap_or_default()
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    Base64UrlSafeNoPadding::decode_to_vec(text, None).ok()
}

/// A compact JWS of `header` and `payload` (raw JSON text) signed with [`HS256_SECRET`].
pub fn sign_hs256(header: &[u8], payload: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(payload));
    let mac = hmac_sha256::HMAC::mac(signing_input.as_bytes(), HS256_SECRET);
    format!("{signing_input}.{}", b64(&mac))
}

/// JSON equality where numbers may differ in their last bits: serde_json's default float parser
/// is not exact (`1.7956000000129123e22` reads back one ulp off), so a number re-serialized is
/// only nearly the same. Everything else must be equal.
pub fn nearly_same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => {
                        (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                    }
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| nearly_same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(key, x)| y.get(key).is_some_and(|y| nearly_same_json(x, y)))
        }
        _ => a == b,
    }
}

/// The invariant of every configuration target: a `pluginConfig` is either accepted or refused
/// with the field and the reason (the one log line a user gets), never a panic.
pub fn check_config_loading<T: serde::de::DeserializeOwned, C>(
    data: &[u8],
    compile: impl FnOnce(T) -> Result<C, plugin_kit::config::ConfigError>,
) {
    if let Err(error) = plugin_kit::config::parse::<T>(data).and_then(compile) {
        assert!(
            !error.field.is_empty() && !error.reason.is_empty(),
            "{error:?}"
        );
    }
}
