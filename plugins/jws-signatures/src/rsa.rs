//! RSA signature verification for RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS, salt as
//! long as the digest, MGF1 with the same hash), as BoringSSL checks them for Envoy's jwt_authn.
//!
//! Why not the `rsa` crate under jwt-simple: it computes `s^65537 mod n` with 64-bit digits
//! (each product a 128-bit multiply routine in Wasm) and a windowed exponentiation built for
//! secret exponents, and recomputes the key's Montgomery constants on every call. Here the
//! constants are computed once when the key is loaded, digits are 32 bits (one native 64-bit
//! multiply in Wasm), and the public exponent 65537 takes 16 squarings and 2 multiplications.
//! Only public data is handled, so nothing needs to be constant-time.

use crate::digest::Digest;

/// Largest modulus handled: the JWKS loader accepts 2048 to 4096 bits.
const MAX_LIMBS: usize = 4096 / 32;

/// An RSA public key with exponent 65537, ready to verify: the modulus as 32-bit limbs (least
/// significant first) and its Montgomery constants.
#[derive(Clone)]
pub struct RsaPublicKey {
    modulus: Vec<u32>,
    /// `-modulus⁻¹ mod 2³²`.
    neg_inverse: u32,
    /// `R² mod modulus` with `R = 2^(32·limbs)`: multiplying by it enters Montgomery form.
    r_squared: Vec<u32>,
    bits: usize,
    /// The length of a signature: the modulus in bytes.
    bytes: usize,
}

impl RsaPublicKey {
    /// The key of modulus `n` (big-endian, leading zeros allowed) and exponent 65537. `None` for
    /// a modulus that is even, shorter than 512 bits or longer than 4096 bits (the JWKS loader
    /// narrows this to 2048–4096).
    pub fn new(n: &[u8]) -> Option<Self> {
        let first = n.iter().position(|&byte| byte != 0)?;
        let n = &n[first..];
        let bits = (n.len() - 1) * 8 + (8 - n[0].leading_zeros() as usize);
        if !(512..=MAX_LIMBS * 32).contains(&bits) || n[n.len() - 1] & 1 == 0 {
            return None;
        }
        let modulus = limbs_of(n, n.len().div_ceil(4));
        let neg_inverse = inverse_mod_2_32(modulus[0]).wrapping_neg();
        // R² mod n by doubling 1 modulo n, 2·32·limbs times: a few hundred thousand word
        // operations, once per key.
        let mut r_squared = vec![0u32; modulus.len()];
        r_squared[0] = 1;
        for _ in 0..2 * 32 * modulus.len() {
            double_mod(&mut r_squared, &modulus);
        }
        Some(Self {
            modulus,
            neg_inverse,
            r_squared,
            bits,
            bytes: n.len(),
        })
    }

    /// `signature^65537 mod n` as `bytes` big-endian bytes; `None` when the signature is not
    /// exactly as long as the modulus or not below it (BoringSSL refuses both).
    fn public_operation(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.bytes {
            return None;
        }
        let limbs = self.modulus.len();
        let s = limbs_of(signature, limbs);
        if !less_than(&s, &self.modulus) {
            return None;
        }
        let mut arithmetic = Montgomery::new(self);
        let (mut x, mut y) = (vec![0u32; limbs], vec![0u32; limbs]);
        // x = s·R (Montgomery form), squared 16 times: s^65536·R; times s (not in Montgomery
        // form) leaves s^65537 with no final conversion.
        arithmetic.multiply(&mut x, &s, &self.r_squared);
        for _ in 0..8 {
            arithmetic.square(&mut y, &x);
            arithmetic.square(&mut x, &y);
        }
        arithmetic.multiply(&mut y, &x, &s);
        Some(bytes_of(&y, self.bytes))
    }

    /// Whether `signature` is a PKCS#1 v1.5 signature of `message` with `digest`.
    pub fn verifies_pkcs1v15(&self, digest: Digest, message: &[u8], signature: &[u8]) -> bool {
        let Some(encoded) = self.public_operation(signature) else {
            return false;
        };
        let prefix = digest_info_prefix(digest);
        let hash = digest.hash(&[message]);
        let hash = &hash[..digest.output_len()];
        let tail = prefix.len() + hash.len();
        // 00 01 FF…FF 00 DigestInfo: at least 8 bytes of FF (RFC 8017 9.2).
        let Some(padding) = self.bytes.checked_sub(3 + tail).filter(|&len| len >= 8) else {
            return false;
        };
        let (head, rest) = encoded.split_at(2 + padding);
        head[0] == 0
            && head[1] == 1
            && head[2..].iter().all(|&byte| byte == 0xff)
            && rest[0] == 0
            && &rest[1..1 + prefix.len()] == prefix
            && &rest[1 + prefix.len()..] == hash
    }

    /// Whether `signature` is a PSS signature of `message` with `digest`, MGF1 of the same
    /// digest and a salt as long as the digest (RFC 8017 9.1.2, as JWS PS256/384/512 use it).
    pub fn verifies_pss(&self, digest: Digest, message: &[u8], signature: &[u8]) -> bool {
        let Some(encoded) = self.public_operation(signature) else {
            return false;
        };
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        // EM is the integer in em_len bytes: a modulus of 8k+1 bits leaves a leading zero byte.
        let (leading, em) = encoded.split_at(self.bytes - em_len);
        let hash_len = digest.output_len();
        let salt_len = hash_len;
        if leading.iter().any(|&byte| byte != 0)
            || em_len < hash_len + salt_len + 2
            || em[em_len - 1] != 0xbc
        {
            return false;
        }
        let (masked_db, rest) = em.split_at(em_len - hash_len - 1);
        let h = &rest[..hash_len];
        let unused_bits = 8 * em_len - em_bits;
        let top_mask = 0xffu8 >> unused_bits;
        if masked_db[0] & !top_mask != 0 {
            return false;
        }
        let mut db = masked_db.to_vec();
        mgf1_xor(digest, h, &mut db);
        db[0] &= top_mask;
        let zeros = em_len - hash_len - salt_len - 2;
        if db[..zeros].iter().any(|&byte| byte != 0) || db[zeros] != 0x01 {
            return false;
        }
        let salt = &db[db.len() - salt_len..];
        let message_hash = digest.hash(&[message]);
        let expected = digest.hash(&[&[0u8; 8], &message_hash[..hash_len], salt]);
        &expected[..hash_len] == h
    }
}

/// The DER `DigestInfo` header that precedes the digest in a PKCS#1 v1.5 signature (the
/// only encoding BoringSSL accepts: algorithm parameters an explicit NULL).
fn digest_info_prefix(digest: Digest) -> &'static [u8] {
    match digest {
        Digest::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        Digest::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        Digest::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// `db ^= MGF1(seed)`.
fn mgf1_xor(digest: Digest, seed: &[u8], db: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(db.chunks_mut(digest.output_len())) {
        let mask = digest.hash(&[seed, &counter.to_be_bytes()]);
        chunk
            .iter_mut()
            .zip(mask.iter())
            .for_each(|(byte, mask)| *byte ^= mask);
    }
}

/// A big-endian byte string as `limbs` little-endian 32-bit limbs (zero-extended; the caller
/// ensures it fits).
fn limbs_of(bytes: &[u8], limbs: usize) -> Vec<u32> {
    let mut out = vec![0u32; limbs];
    for (i, &byte) in bytes.iter().rev().enumerate() {
        if let Some(limb) = out.get_mut(i / 4) {
            *limb |= u32::from(byte) << (8 * (i % 4));
        }
    }
    out
}

/// Little-endian limbs as `len` big-endian bytes (high bytes beyond `len` dropped: the value is
/// below the modulus, which fits).
fn bytes_of(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (i, byte) in out.iter_mut().rev().enumerate() {
        *byte = limbs
            .get(i / 4)
            .map_or(0, |limb| (limb >> (8 * (i % 4))) as u8);
    }
    out
}

fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b`, returning the borrow.
fn subtract_in_place(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d1, b1) = x.overflowing_sub(y);
        let (d2, b2) = d1.overflowing_sub(u32::from(borrow));
        *x = d2;
        borrow = b1 || b2;
    }
    borrow
}

/// `x = 2x mod n` for `x < n`.
fn double_mod(x: &mut [u32], n: &[u32]) {
    let mut carry = 0u32;
    for limb in x.iter_mut() {
        let next = *limb >> 31;
        *limb = (*limb << 1) | carry;
        carry = next;
    }
    if carry == 1 || !less_than(x, n) {
        subtract_in_place(x, n);
    }
}

/// `a⁻¹ mod 2³²` for odd `a` (Newton's iteration doubles the correct bits each step).
fn inverse_mod_2_32(a: u32) -> u32 {
    let mut inverse = 1u32;
    for _ in 0..5 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(a.wrapping_mul(inverse)));
    }
    inverse
}

/// `acc += a·b` over `a.len()` limbs, returning the carry out of the last limb.
fn multiply_add_row(acc: &mut [u32], a: &[u32], b: u32) -> u32 {
    let b = u64::from(b);
    let mut carry = 0u64;
    for (limb, &a_limb) in acc.iter_mut().zip(a) {
        // At most (2³²-1) + (2³²-1)² + (2³²-1) = 2⁶⁴-1: never overflows.
        let sum = u64::from(*limb) + u64::from(a_limb) * b + carry;
        *limb = sum as u32;
        carry = sum >> 32;
    }
    carry as u32
}

/// Montgomery arithmetic modulo one key's modulus, with a product buffer reused across the
/// 18 multiplications of one verification.
struct Montgomery<'a> {
    n: &'a [u32],
    neg_inverse: u32,
    /// The double-width product being reduced (`2·len + 1` limbs).
    product: Vec<u32>,
}

impl<'a> Montgomery<'a> {
    fn new(key: &'a RsaPublicKey) -> Self {
        Self {
            n: &key.modulus,
            neg_inverse: key.neg_inverse,
            product: vec![0; 2 * key.modulus.len() + 1],
        }
    }

    /// `out = a·b·R⁻¹ mod n` for `a, b < n`.
    fn multiply(&mut self, out: &mut [u32], a: &[u32], b: &[u32]) {
        let len = self.n.len();
        self.product.fill(0);
        for (i, &b_limb) in b.iter().enumerate() {
            let carry = multiply_add_row(&mut self.product[i..i + len], a, b_limb);
            self.product[i + len] = carry;
        }
        self.reduce(out);
    }

    /// `out = a²·R⁻¹ mod n` for `a < n`: each cross product computed once and doubled.
    fn square(&mut self, out: &mut [u32], a: &[u32]) {
        let len = self.n.len();
        let product = &mut self.product;
        product.fill(0);
        for i in 0..len - 1 {
            let carry = multiply_add_row(&mut product[2 * i + 1..i + len], &a[i + 1..], a[i]);
            product[i + len] = carry;
        }
        let mut top_bit = 0;
        for limb in product[..2 * len].iter_mut() {
            let next = *limb >> 31;
            *limb = (*limb << 1) | top_bit;
            top_bit = next;
        }
        let mut carry = 0u64;
        for (pair, &a_limb) in product[..2 * len].chunks_exact_mut(2).zip(a) {
            let square = u64::from(a_limb) * u64::from(a_limb);
            let low = u64::from(pair[0]) + (square & 0xffff_ffff) + carry;
            pair[0] = low as u32;
            let high = u64::from(pair[1]) + (square >> 32) + (low >> 32);
            pair[1] = high as u32;
            carry = high >> 32;
        }
        // a² < 2^(64·len): neither the doubling nor the squares carry out.
        self.reduce(out);
    }

    /// `out = product·R⁻¹ mod n` for `product < n·R` (word-by-word Montgomery reduction).
    fn reduce(&mut self, out: &mut [u32]) {
        let len = self.n.len();
        let product = &mut self.product;
        for i in 0..len {
            let m = product[i].wrapping_mul(self.neg_inverse);
            let carry = multiply_add_row(&mut product[i..i + len], self.n, m);
            let mut carry = u64::from(carry);
            for limb in product[i + len..].iter_mut() {
                if carry == 0 {
                    break;
                }
                let sum = u64::from(*limb) + carry;
                *limb = sum as u32;
                carry = sum >> 32;
            }
        }
        // The result is below 2n: one subtraction at most.
        let result = &mut product[len..];
        if result[len] != 0 || !less_than(&result[..len], self.n) {
            subtract_in_place(&mut result[..len], self.n);
        }
        out.copy_from_slice(&result[..len]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkeys::{RSA_KEY_1, RSA_KEY_2};
    use jwt_simple::prelude::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn key_of(pair: &RS256KeyPair) -> RsaPublicKey {
        RsaPublicKey::new(&pair.public_key().to_components().n).unwrap()
    }

    #[test]
    fn verifies_what_jwt_simple_signs_for_every_algorithm() {
        let pem = RSA_KEY_1;
        let rs256 = RS256KeyPair::from_pem(pem).unwrap();
        let key = key_of(&rs256);
        let sign = |token: String| {
            let signature = token.rsplit('.').next().unwrap().to_string();
            let signing_input = token[..token.len() - signature.len() - 1].to_string();
            (
                signing_input,
                Base64UrlSafeNoPadding::decode_to_vec(signature, None).unwrap(),
            )
        };
        let claims = || Claims::create(Duration::from_hours(1));
        let cases: Vec<(Digest, bool, (String, Vec<u8>))> = vec![
            (Digest::Sha256, false, sign(rs256.sign(claims()).unwrap())),
            (
                Digest::Sha384,
                false,
                sign(RS384KeyPair::from_pem(pem).unwrap().sign(claims()).unwrap()),
            ),
            (
                Digest::Sha512,
                false,
                sign(RS512KeyPair::from_pem(pem).unwrap().sign(claims()).unwrap()),
            ),
            (
                Digest::Sha256,
                true,
                sign(PS256KeyPair::from_pem(pem).unwrap().sign(claims()).unwrap()),
            ),
            (
                Digest::Sha384,
                true,
                sign(PS384KeyPair::from_pem(pem).unwrap().sign(claims()).unwrap()),
            ),
            (
                Digest::Sha512,
                true,
                sign(PS512KeyPair::from_pem(pem).unwrap().sign(claims()).unwrap()),
            ),
        ];
        let other = key_of(&RS256KeyPair::from_pem(RSA_KEY_2).unwrap());
        for (digest, pss, (input, signature)) in cases {
            let check = |key: &RsaPublicKey, input: &[u8], signature: &[u8]| {
                if pss {
                    key.verifies_pss(digest, input, signature)
                } else {
                    key.verifies_pkcs1v15(digest, input, signature)
                }
            };
            assert!(
                check(&key, input.as_bytes(), &signature),
                "{digest:?} {pss}"
            );
            assert!(!check(&other, input.as_bytes(), &signature));
            assert!(!check(&key, b"other", &signature));
            let mut flipped = signature.clone();
            flipped[100] ^= 1;
            assert!(!check(&key, input.as_bytes(), &flipped));
            assert!(!check(&key, input.as_bytes(), &signature[1..]));
            let mut longer = vec![0u8];
            longer.extend_from_slice(&signature);
            assert!(!check(&key, input.as_bytes(), &longer));
            // The same bits under the other padding never pass.
            let other_padding = if pss {
                key.verifies_pkcs1v15(digest, input.as_bytes(), &signature)
            } else {
                key.verifies_pss(digest, input.as_bytes(), &signature)
            };
            assert!(!other_padding);
        }
    }

    #[test]
    fn signatures_not_below_the_modulus_are_refused() {
        let pair = RS256KeyPair::from_pem(RSA_KEY_1).unwrap();
        let n = pair.public_key().to_components().n;
        let key = RsaPublicKey::new(&n).unwrap();
        assert!(key.public_operation(&n).is_none());
        assert!(key.public_operation(&vec![0xff; n.len()]).is_none());
        assert!(key.public_operation(&vec![0; n.len()]).is_some());
    }

    #[test]
    fn public_operation_matches_plain_arithmetic() {
        // 0, 1 and n-1 have known powers: 0, 1 and n-1 (65537 is odd).
        let pair = RS256KeyPair::from_pem(RSA_KEY_2).unwrap();
        let n = pair.public_key().to_components().n;
        let key = RsaPublicKey::new(&n).unwrap();
        let mut one = vec![0u8; n.len()];
        *one.last_mut().unwrap() = 1;
        let mut minus_one = n.clone();
        *minus_one.last_mut().unwrap() -= 1;
        assert_eq!(key.public_operation(&one).unwrap(), one);
        assert_eq!(key.public_operation(&minus_one).unwrap(), minus_one);
        let zero = vec![0u8; n.len()];
        assert_eq!(key.public_operation(&zero).unwrap(), zero);
    }

    #[test]
    fn unusable_moduli_are_refused() {
        assert!(RsaPublicKey::new(&[]).is_none());
        assert!(RsaPublicKey::new(&[0, 0]).is_none());
        assert!(RsaPublicKey::new(&[0xff; 32]).is_none(), "256 bits");
        let mut even = vec![0xffu8; 256];
        even[255] = 0xfe;
        assert!(RsaPublicKey::new(&even).is_none());
        assert!(RsaPublicKey::new(&vec![0xffu8; 513]).is_none(), "4104 bits");
        let mut padded = vec![0u8; 3];
        padded.extend_from_slice(&[0xffu8; 512]);
        assert_eq!(RsaPublicKey::new(&padded).unwrap().bytes, 512);
    }

    #[test]
    fn inverse_mod_2_32_is_an_inverse() {
        for a in [1u32, 3, 0xffff_ffff, 0x1234_5677, 65537] {
            assert_eq!(a.wrapping_mul(inverse_mod_2_32(a)), 1);
        }
    }
}
