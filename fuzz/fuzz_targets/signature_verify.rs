//! The signature checks of jws-signatures (`rsa` for RS256/384/512 and PS256/384/512, `ecdsa`
//! for ES256 and ES384), through auth-gate's JWKS loading, against the RustCrypto
//! implementations they replaced (`rsa` 0.9, p256's and p384's ECDSA), on signatures made by a
//! fixed private key and then changed as the input says.
//! Input: `[algorithm][position: 2 bytes][xor][truncate][message...]`.
//!
//! Invariant: for every algorithm, message and signature (valid, one byte changed, cut short,
//! or wholly the fuzzer's), auth-gate's key loaded from the JWK accepts exactly when the
//! reference accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::signatures::{Algorithm, Signer};

thread_local! {
    // Loading the keys is the slow part; libFuzzer runs the target on one thread.
    static SIGNER: Signer = Signer::new();
}

fuzz_target!(|data: &[u8]| {
    let [selector, high, low, xor, truncate, message @ ..] = data else {
        return;
    };
    let algorithm = Algorithm::ALL[usize::from(*selector) % Algorithm::ALL.len()];
    SIGNER.with(|signer| {
        check(
            signer,
            algorithm,
            *selector >= 128,
            [*high, *low, *xor, *truncate],
            message,
        )
    });
});

fn check(signer: &Signer, algorithm: Algorithm, own_bytes: bool, change: [u8; 4], message: &[u8]) {
    let [high, low, xor, truncate] = change;
    let mut signature = if own_bytes {
        // The fuzzer's own bytes as the signature, the message empty.
        message.to_vec()
    } else {
        signer.sign(algorithm, message)
    };
    if !signature.is_empty() {
        let position = usize::from(u16::from_be_bytes([high, low])) % signature.len();
        signature[position] ^= xor;
        if truncate % 16 == 0 {
            signature.truncate(position);
        }
    }
    let message: &[u8] = if own_bytes { b"" } else { message };
    assert_eq!(
        signer.ours(algorithm, message, &signature),
        signer.reference(algorithm, message, &signature),
        "{algorithm:?} signature {signature:02x?}"
    );
}
