//! Tokens for the differential run, crafted byte by byte: HS256 over any header and payload
//! (including the malformed ones no JWT library would write), with `oct` keys derived from the
//! run's seed, so a seed reproduces the very same tokens.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The key id of the run's main key.
pub const KID: &str = "harness-diff";

/// The run's keys: `main` (with `kid`) and `kidless` (a JWKS key without `kid`, which Envoy
/// tries for tokens whatever their `kid`).
pub struct Keys {
    main: [u8; 32],
    kidless: [u8; 32],
}

impl Keys {
    pub fn from_seed(seed: u64) -> Self {
        let derive = |label: &str| -> [u8; 32] {
            Sha256::digest(format!("harness diff {label} key {seed}").as_bytes()).into()
        };
        Keys {
            main: derive("main"),
            kidless: derive("kidless"),
        }
    }

    /// The JWKS (JSON text) every rule of both Envoys uses instead of the user's keys.
    pub fn jwks(&self) -> String {
        json!({"keys": [
            {"kty": "oct", "alg": "HS256", "kid": KID, "k": base64url(&self.main)},
            {"kty": "oct", "alg": "HS256", "k": base64url(&self.kidless)}
        ]})
        .to_string()
    }

    /// `header.payload.signature`, signed with the main key (or the kid-less one).
    pub fn sign(&self, header: &Value, payload: &Value, kidless: bool) -> String {
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(payload.to_string().as_bytes())
        );
        let key = if kidless { &self.kidless } else { &self.main };
        let signature = hmac_sha256(key, signing_input.as_bytes());
        format!("{signing_input}.{}", base64url(&signature))
    }
}

/// The usual header: HS256 with the main key's `kid`.
pub fn header() -> Value {
    json!({"alg": "HS256", "typ": "JWT", "kid": KID})
}

/// HMAC-SHA256 (RFC 2104); the only MAC the run needs, so no crate for it.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| -> Vec<u8> { block.iter().map(|b| b ^ byte).collect() };
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Unpadded base64url (RFC 7515 §2).
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2 uses a 4-byte key; ours are 32 bytes, zero-padded the same way.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = hmac_sha256(&key, b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn base64url_has_no_padding_and_the_url_alphabet() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn the_same_seed_makes_the_same_tokens() {
        let payload = json!({"iss": "a", "sub": "b"});
        let a = Keys::from_seed(7).sign(&header(), &payload, false);
        assert_eq!(a, Keys::from_seed(7).sign(&header(), &payload, false));
        assert_ne!(a, Keys::from_seed(8).sign(&header(), &payload, false));
        assert_ne!(a, Keys::from_seed(7).sign(&header(), &payload, true));
    }
}
