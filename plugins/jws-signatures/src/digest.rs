//! The SHA-2 hashes and HMACs JWS algorithms name (hmac-sha256 and hmac-sha512: small, and no
//! trait machinery).

/// Which SHA-2 hash an algorithm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    /// The digest of `parts` concatenated, in the first [`Digest::output_len`] bytes.
    pub fn hash(self, parts: &[&[u8]]) -> [u8; 64] {
        let mut out = [0u8; 64];
        match self {
            Self::Sha256 => {
                let mut hasher = hmac_sha256::Hash::new();
                parts.iter().for_each(|part| hasher.update(part));
                out[..32].copy_from_slice(&hasher.finalize());
            }
            Self::Sha384 => {
                let mut hasher = hmac_sha512::sha384::Hash::new();
                parts.iter().for_each(|part| hasher.update(part));
                out[..48].copy_from_slice(&hasher.finalize());
            }
            Self::Sha512 => {
                let mut hasher = hmac_sha512::Hash::new();
                parts.iter().for_each(|part| hasher.update(part));
                out = hasher.finalize();
            }
        }
        out
    }

    /// The HMAC of `message` under `key`, in the first [`Digest::output_len`] bytes.
    pub fn hmac(self, key: &[u8], message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        match self {
            Self::Sha256 => out[..32].copy_from_slice(&hmac_sha256::HMAC::mac(message, key)),
            Self::Sha384 => {
                out[..48].copy_from_slice(&hmac_sha512::sha384::HMAC::mac(message, key))
            }
            Self::Sha512 => out = hmac_sha512::HMAC::mac(message, key),
        }
        out
    }

    pub fn output_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn known_answers() {
        // FIPS 180-2 "abc" and RFC 4231 test case 2 ("Jefe").
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(&Digest::Sha256.hash(&[b"a", b"bc"])[..32]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(hex(&Digest::Sha384.hash(&[b"abc"])[..48]).starts_with("cb00753f45a35e8b"));
        assert!(hex(&Digest::Sha512.hash(&[b"abc"])).starts_with("ddaf35a193617aba"));
        let message = b"what do ya want for nothing?";
        assert!(hex(&Digest::Sha256.hmac(b"Jefe", message)[..32]).starts_with("5bdcc146bf60754e"));
        assert!(hex(&Digest::Sha384.hmac(b"Jefe", message)[..48]).starts_with("af45d2e376484031"));
        assert!(hex(&Digest::Sha512.hmac(b"Jefe", message)).starts_with("164b7a7bfcf819e2"));
    }
}
