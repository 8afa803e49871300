//! The signer and the two verifiers of the `signature_verify` target: a fixed RSA key (the one
//! auth-gate's unit tests use) and fixed P-256 and P-384 keys; auth-gate's keys loaded from their
//! public JWKs; the RustCrypto verifiers (`rsa` 0.9, p256's and p384's ECDSA) as the reference.

use auth_gate::jwks::{parse_jwks, KeySet};
use ct_codecs::{Base64UrlSafeNoPadding, Encoder};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;

#[path = "../../plugins/auth-gate/src/testkeys.rs"]
#[allow(dead_code)]
mod testkeys;

#[derive(Debug, Clone, Copy)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
}

impl Algorithm {
    pub const ALL: [Algorithm; 8] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
        }
    }
}

/// PSS salts from a counter: the target must be reproducible from its input.
struct CountingRng(u64);

impl rsa::rand_core::RngCore for CountingRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.iter_mut()
            .for_each(|byte| *byte = self.next_u64() as u8);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for CountingRng {}

pub struct Signer {
    rsa: rsa::RsaPrivateKey,
    p256: p256::ecdsa::SigningKey,
    p384: p384::ecdsa::SigningKey,
    /// auth-gate's keys: the RSA JWK without `alg` (every scheme), the P-256 and P-384 JWKs.
    ours: KeySet,
}

impl Signer {
    pub fn new() -> Self {
        let rsa = rsa::RsaPrivateKey::from_pkcs1_pem(testkeys::RSA_KEY_1).unwrap();
        let p256 = p256::ecdsa::SigningKey::from_bytes(&p256::FieldBytes::from([7u8; 32])).unwrap();
        let b64 = |bytes: &[u8]| Base64UrlSafeNoPadding::encode_to_string(bytes).unwrap();
        let p384 = p384::ecdsa::SigningKey::from_bytes(&p384::FieldBytes::from([9u8; 48])).unwrap();
        let ec_jwk = |crv: &str, sec1: &[u8]| {
            let (x, y) = sec1[1..].split_at(sec1.len() / 2);
            format!(
                r#"{{"kty":"EC","crv":"{crv}","x":"{}","y":"{}"}}"#,
                b64(x),
                b64(y)
            )
        };
        let jwks = format!(
            r#"{{"keys":[{{"kty":"RSA","n":"{}","e":"AQAB"}},{},{}]}}"#,
            b64(&rsa.n().to_bytes_be()),
            ec_jwk(
                "P-256",
                p256.verifying_key().to_sec1_point(false).as_bytes()
            ),
            ec_jwk(
                "P-384",
                p384.verifying_key().to_sec1_point(false).as_bytes()
            ),
        );
        let ours = parse_jwks(&jwks).unwrap();
        Self {
            rsa,
            p256,
            p384,
            ours,
        }
    }

    /// A valid signature of `message`.
    pub fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Vec<u8> {
        use rsa::{pkcs1v15, pss};
        use sha2::{Sha256, Sha384, Sha512};
        let key = || self.rsa.clone();
        let rng = &mut CountingRng(message.len() as u64);
        match algorithm {
            Algorithm::Rs256 => pkcs1v15::SigningKey::<Sha256>::new(key())
                .sign(message)
                .to_vec(),
            Algorithm::Rs384 => pkcs1v15::SigningKey::<Sha384>::new(key())
                .sign(message)
                .to_vec(),
            Algorithm::Rs512 => pkcs1v15::SigningKey::<Sha512>::new(key())
                .sign(message)
                .to_vec(),
            Algorithm::Ps256 => pss::SigningKey::<Sha256>::new(key())
                .sign_with_rng(rng, message)
                .to_vec(),
            Algorithm::Ps384 => pss::SigningKey::<Sha384>::new(key())
                .sign_with_rng(rng, message)
                .to_vec(),
            Algorithm::Ps512 => pss::SigningKey::<Sha512>::new(key())
                .sign_with_rng(rng, message)
                .to_vec(),
            Algorithm::Es256 => {
                let signature: p256::ecdsa::Signature =
                    p256::ecdsa::signature::Signer::sign(&self.p256, message);
                signature.to_bytes().to_vec()
            }
            Algorithm::Es384 => {
                let signature: p384::ecdsa::Signature =
                    p384::ecdsa::signature::Signer::sign(&self.p384, message);
                signature.to_bytes().to_vec()
            }
        }
    }

    /// auth-gate's verdict.
    pub fn ours(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        let mut keys = self.ours.candidates(algorithm.name(), None);
        let key = keys.next().unwrap();
        assert!(keys.next().is_none());
        key.key.verifies(message, signature)
    }

    /// The RustCrypto verdict.
    pub fn reference(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        use rsa::{pkcs1v15, pss};
        use sha2::{Sha256, Sha384, Sha512};
        let public = || self.rsa.to_public_key();
        let Ok(rsa_signature) = pkcs1v15::Signature::try_from(signature) else {
            return false;
        };
        let pss_signature = || pss::Signature::try_from(signature);
        match algorithm {
            Algorithm::Rs256 => pkcs1v15::VerifyingKey::<Sha256>::new(public())
                .verify(message, &rsa_signature)
                .is_ok(),
            Algorithm::Rs384 => pkcs1v15::VerifyingKey::<Sha384>::new(public())
                .verify(message, &rsa_signature)
                .is_ok(),
            Algorithm::Rs512 => pkcs1v15::VerifyingKey::<Sha512>::new(public())
                .verify(message, &rsa_signature)
                .is_ok(),
            Algorithm::Ps256 => pss_signature().is_ok_and(|s| {
                pss::VerifyingKey::<Sha256>::new(public())
                    .verify(message, &s)
                    .is_ok()
            }),
            Algorithm::Ps384 => pss_signature().is_ok_and(|s| {
                pss::VerifyingKey::<Sha384>::new(public())
                    .verify(message, &s)
                    .is_ok()
            }),
            Algorithm::Ps512 => pss_signature().is_ok_and(|s| {
                pss::VerifyingKey::<Sha512>::new(public())
                    .verify(message, &s)
                    .is_ok()
            }),
            Algorithm::Es256 => p256::ecdsa::Signature::from_slice(signature).is_ok_and(|s| {
                p256::ecdsa::signature::Verifier::verify(self.p256.verifying_key(), message, &s)
                    .is_ok()
            }),
            Algorithm::Es384 => p384::ecdsa::Signature::from_slice(signature).is_ok_and(|s| {
                p384::ecdsa::signature::Verifier::verify(self.p384.verifying_key(), message, &s)
                    .is_ok()
            }),
        }
    }
}

impl Default for Signer {
    fn default() -> Self {
        Self::new()
    }
}
