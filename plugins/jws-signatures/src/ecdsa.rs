//! ES256 and ES384 verification (ECDSA over P-256 with SHA-256, P-384 with SHA-384) with the
//! key's multiples computed when the key is loaded.
//!
//! Verifying computes `u1·G + u2·Q`. The libraries' variable-time path builds small tables for
//! `G` and `Q` on every call and then doubles once per bit of the scalar. Here each point has a
//! table of its multiples `j·2^(6i)·P` in affine form, built once (for `Q` when its JWKS is
//! loaded, for `G` once per VM with the first key), so a multiplication is one addition per
//! 6-bit digit (43 for P-256, 65 for P-384) and no doubling. The field and group arithmetic is
//! p256's and p384's; the checks are those of `ecdsa::hazmat::verify_prehashed` (r and s in
//! 1..n-1, `x(u1·G + u2·Q) mod n == r`, no low-S rule, as BoringSSL).
//!
//! The two curves share one implementation, written once in a macro over the curve's crate.

/// Bits per signed digit of a scalar: digits in -31..=32, a table of 32 multiples per digit.
const DIGIT_BITS: usize = 6;
/// Multiples per digit position: `1..=2^(DIGIT_BITS-1)`; negative digits use the negated point.
const PER_DIGIT: usize = 1 << (DIGIT_BITS - 1);

/// The verifier of one curve: `$curve` its crate, `$bits` its scalars' bits, `$key` the key type,
/// `$hash` the message digest (a function of the message giving the curve's `FieldBytes`).
macro_rules! table_verifier {
    ($module:ident, $curve:ident, $bits:expr, $key:ident, $hash:expr) => {
        pub mod $module {
            use super::{DIGIT_BITS, PER_DIGIT};
            use std::sync::OnceLock;
            use $curve::elliptic_curve::group::{Curve as _, Group as _};
            use $curve::elliptic_curve::ops::{Invert as _, Reduce};
            use $curve::elliptic_curve::point::AffineCoordinates as _;
            use $curve::elliptic_curve::PrimeField as _;
            use $curve::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};

            /// Digits to cover one bit more than a scalar: the recoding's last carry always fits.
            const DIGITS: usize = ($bits + 1_usize).div_ceil(DIGIT_BITS);

            /// The multiples `j·2^(6i)·P` of one point (`1 ≤ j ≤ 32`), for multiplying it by any scalar
            /// with additions only (about 94 KB for a P-256 point, 208 KB for P-384).
            pub struct MultiplesTable {
                points: Vec<AffinePoint>,
            }

            impl MultiplesTable {
                pub fn new(point: &AffinePoint) -> Self {
                    let mut projective = Vec::with_capacity(DIGITS * PER_DIGIT);
                    let mut base = ProjectivePoint::from(*point);
                    for _ in 0..DIGITS {
                        let mut multiple = base;
                        projective.push(multiple);
                        for _ in 1..PER_DIGIT {
                            multiple += base;
                            projective.push(multiple);
                        }
                        // 2·(32·base): the next position's base.
                        base = multiple.double();
                    }
                    let mut points = vec![AffinePoint::IDENTITY; projective.len()];
                    ProjectivePoint::batch_normalize(&projective, &mut points);
                    Self { points }
                }

                /// `scalar·P`.
                pub(crate) fn multiply(&self, scalar: &Scalar) -> ProjectivePoint {
                    let mut sum = ProjectivePoint::IDENTITY;
                    for (position, digit) in signed_digits(scalar).into_iter().enumerate() {
                        if digit == 0 {
                            continue;
                        }
                        let index = position * PER_DIGIT + digit.unsigned_abs() as usize - 1;
                        let Some(multiple) = self.points.get(index) else {
                            continue; // never: digits are at most 32 and the table holds every position
                        };
                        if digit > 0 {
                            sum += multiple;
                        } else {
                            sum += -*multiple;
                        }
                    }
                    sum
                }
            }

            /// The scalar as `DIGITS` digits `d` in `-31..=32` with `scalar = Σ d·2^(6i)`.
            pub(crate) fn signed_digits(scalar: &Scalar) -> [i32; DIGITS] {
                let bytes = scalar.to_repr();
                let bit = |index: usize| -> i32 {
                    bytes
                        .len()
                        .checked_sub(1 + index / 8)
                        .and_then(|byte| bytes.get(byte))
                        .map_or(0, |byte| i32::from((byte >> (index % 8)) & 1))
                };
                let mut digits = [0i32; DIGITS];
                let mut carry = 0;
                let half = 1 << (DIGIT_BITS - 1);
                for (position, digit) in digits.iter_mut().enumerate() {
                    let mut value = carry;
                    for offset in 0..DIGIT_BITS {
                        value += bit(position * DIGIT_BITS + offset) << offset;
                    }
                    carry = i32::from(value > half);
                    *digit = value - (carry << DIGIT_BITS);
                }
                digits
            }

            /// The generator's table, built on the first verification of the VM.
            fn generator_table() -> &'static MultiplesTable {
                static TABLE: OnceLock<MultiplesTable> = OnceLock::new();
                TABLE.get_or_init(|| MultiplesTable::new(&AffinePoint::GENERATOR))
            }

            /// A public key of the curve, ready to verify.
            pub struct $key {
                table: MultiplesTable,
            }

            impl $key {
                pub fn new(point: &AffinePoint) -> Self {
                    // Built now rather than on the first request.
                    generator_table();
                    Self {
                        table: MultiplesTable::new(point),
                    }
                }

                /// The key at affine coordinates `x` and `y` (big-endian, the field's size, as a
                /// JWK's `x` and `y`), if they are below the field's modulus and on the curve.
                /// Only the uncompressed form: no square root, whose code (10-20 KB) v8 would
                /// compile at every start for keys no JWK carries.
                pub fn from_coordinates(x: &[u8], y: &[u8]) -> Option<Self> {
                    let x = FieldBytes::try_from(x).ok()?;
                    let y = FieldBytes::try_from(y).ok()?;
                    let point: Option<AffinePoint> = AffinePoint::from_coordinates(&x, &y).into();
                    point.map(|point| Self::new(&point))
                }

                /// Whether `signature` (`r || s`, as JWS writes it) signs `message`.
                pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
                    // Refuses any other length and r or s outside 1..n-1.
                    let Ok(signature) = $curve::ecdsa::Signature::try_from(signature) else {
                        return false;
                    };
                    let (r, s) = signature.split_scalars();
                    let digest = FieldBytes::from($hash(message));
                    let z = <Scalar as Reduce<FieldBytes>>::reduce(&digest);
                    let s_inverse = *s.invert_vartime();
                    let (u1, u2) = (z * s_inverse, *r * s_inverse);
                    let point = generator_table().multiply(&u1) + self.table.multiply(&u2);
                    let x = point.to_affine().x();
                    *r == <Scalar as Reduce<FieldBytes>>::reduce(&x)
                }
            }
        }
    };
}

table_verifier!(es256, p256, 256, Es256Key, hmac_sha256::Hash::hash);
table_verifier!(es384, p384, 384, Es384Key, hmac_sha512::sha384::Hash::hash);

#[cfg(test)]
mod tests {
    use super::es256::*;
    use super::es384::Es384Key;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::SigningKey;
    use p256::elliptic_curve::PrimeField as _;
    use p256::{FieldBytes, ProjectivePoint, Scalar};
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn signing_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&FieldBytes::from([seed; 32])).unwrap()
    }

    #[test]
    fn signed_digits_add_up_to_the_scalar() {
        for scalar in [Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(63u64)] {
            let digits = signed_digits(&scalar);
            assert!(digits.iter().all(|d| (-31..=32).contains(d)), "{digits:?}");
            let sum = digits.iter().rev().fold(Scalar::ZERO, |acc, &d| {
                let d = if d < 0 {
                    -Scalar::from(d.unsigned_abs() as u64)
                } else {
                    Scalar::from(d as u64)
                };
                acc * Scalar::from(64u64) + d
            });
            assert_eq!(sum, scalar);
        }
    }

    #[test]
    fn table_multiplication_matches_the_library() {
        let point = *signing_key(7).verifying_key().as_affine();
        let table = MultiplesTable::new(&point);
        let scalars = [
            Scalar::ZERO,
            Scalar::ONE,
            Scalar::from(15u64),
            Scalar::from(16u64),
            Scalar::from(32u64),
            Scalar::from(33u64),
            Scalar::from(63u64),
            Scalar::from(u64::MAX),
            -Scalar::ONE,
            Scalar::from(0x1234_5678_9abc_def0u64) * Scalar::from(0xfedc_ba98_7654_3210u64),
        ];
        for scalar in scalars {
            assert_eq!(
                table.multiply(&scalar).to_affine(),
                (ProjectivePoint::from(point) * scalar).to_affine()
            );
        }
    }

    #[test]
    fn a_key_from_coordinates_is_the_point_on_the_curve_and_nothing_else() {
        use p256::elliptic_curve::point::AffineCoordinates as _;
        let key = signing_key(3);
        let point = key.verifying_key().as_affine();
        let (x, y) = (point.x(), point.y());
        let from_coordinates = Es256Key::from_coordinates(&x, &y).unwrap();
        let signature: p256::ecdsa::Signature = key.sign(b"m");
        assert!(from_coordinates.verifies(b"m", &signature.to_bytes()));
        // Off the curve, a coordinate at or above the field's modulus, the wrong length.
        let mut off_curve = y;
        off_curve[31] ^= 1;
        assert!(Es256Key::from_coordinates(&x, &off_curve).is_none());
        let modulus = [0xff; 32];
        assert!(Es256Key::from_coordinates(&x, &modulus).is_none());
        assert!(Es256Key::from_coordinates(&modulus, &y).is_none());
        assert!(Es256Key::from_coordinates(&x[1..], &y).is_none());
        assert!(Es256Key::from_coordinates(&x, &[&y[..], &[0]].concat()).is_none());
        assert!(Es256Key::from_coordinates(&[0; 32], &[0; 32]).is_none());
        assert!(Es384Key::from_coordinates(&x, &y).is_none());
    }

    #[test]
    fn verifies_what_p256_signs_and_nothing_else() {
        let key = signing_key(3);
        let verifier = Es256Key::new(key.verifying_key().as_affine());
        let other = Es256Key::new(signing_key(4).verifying_key().as_affine());
        for message in [&b""[..], b"a", b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0"] {
            let signature: p256::ecdsa::Signature = key.sign(message);
            let bytes = signature.to_bytes();
            assert!(verifier.verifies(message, &bytes));
            assert!(!other.verifies(message, &bytes));
            assert!(!verifier.verifies(b"other", &bytes));
            for i in [0, 31, 32, 63] {
                let mut flipped = bytes.to_vec();
                flipped[i] ^= 1;
                assert!(!verifier.verifies(message, &flipped));
            }
            assert!(!verifier.verifies(message, &bytes[1..]));
            // The high-S twin verifies, as in BoringSSL (no low-S rule in JWS).
            let (r, s) = signature.split_scalars();
            let twin = p256::ecdsa::Signature::from_scalars(r.to_repr(), (-*s).to_repr()).unwrap();
            assert!(verifier.verifies(message, &twin.to_bytes()));
        }
        assert!(!verifier.verifies(b"a", &[0u8; 64]));
        assert!(!verifier.verifies(b"a", &[0xffu8; 64]));
    }

    #[test]
    fn verifies_what_p384_signs_and_nothing_else() {
        use p384::ecdsa::SigningKey;
        let signing =
            |seed: u8| SigningKey::from_bytes(&p384::FieldBytes::from([seed; 48])).unwrap();
        let key = signing(3);
        let verifier = Es384Key::new(key.verifying_key().as_affine());
        let other = Es384Key::new(signing(4).verifying_key().as_affine());
        for message in [&b""[..], b"a", b"eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJ4In0"] {
            let signature: p384::ecdsa::Signature = key.sign(message);
            let bytes = signature.to_bytes();
            assert!(verifier.verifies(message, &bytes));
            assert!(!other.verifies(message, &bytes));
            assert!(!verifier.verifies(b"other", &bytes));
            let mut flipped = bytes.to_vec();
            flipped[50] ^= 1;
            assert!(!verifier.verifies(message, &flipped));
            assert!(!verifier.verifies(message, &bytes[1..]));
        }
    }
}
