//! JWS signature checks for auth-gate, apart from the plugin so that this crate alone is built at
//! `opt-level = 3` (the modules are built for size): RSA's Montgomery arithmetic and the curves'
//! additions are what a token seen for the first time costs.
//!
//! - [`rsa`]: RS256/384/512 (PKCS#1 v1.5) and PS256/384/512 (PSS), exponent 65537;
//! - [`ecdsa`]: ES256 and ES384 (ECDSA P-256 and P-384), with a table of multiples per key;
//! - [`digest`]: the SHA-2 hashes and HMACs the algorithms name.
//!
//! Nothing here knows of proxy-wasm or of tokens: bytes in, a verdict out. Project Wycheproof's
//! vectors run against these through auth-gate's key loading (`plugins/auth-gate/tests`).

pub mod digest;
pub mod ecdsa;
pub mod rsa;

#[cfg(test)]
#[path = "../../auth-gate/src/testkeys.rs"]
mod testkeys;
