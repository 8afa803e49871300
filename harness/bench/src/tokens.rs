//! Keys and tokens for the JWT cases, made fresh for each run: an RSA-2048 key (RS256) and a
//! P-256 key (ES256), one JWKS holding both (inlined into auth-gate and jwt_authn alike, as
//! Istio inlines it), and a token signed by each.

use super::native::JwtIssuer;
use harness_runner::{Error, Result};
use jwt_simple::prelude::*;

pub const ISSUER: &str = "https://issuer.bench.local";
pub const AUDIENCE: &str = "model-gateway-bench";
const SUBJECT: &str = "bench-user";

pub struct Tokens {
    pub issuer: JwtIssuer,
    pub rs256: String,
    pub es256: String,
    /// Signs more ES256 tokens (the distinct-token memory run).
    pub es256_key: ES256KeyPair,
    /// One token for each of the other algorithms whose first-sight cost is reported: RS384,
    /// RS512 and PS256 with the RSA key, ES384 with a key of its own.
    pub others: Vec<(&'static str, String)>,
}

impl Tokens {
    /// A valid ES256 token for `subject`, valid for two hours.
    pub fn sign_es256(&self, subject: &str) -> Result<String> {
        self.es256_key
            .sign(claims(subject))
            .map_err(|e| Error(format!("ES256 signing: {e}")))
    }
}

fn claims(subject: &str) -> JWTClaims<NoCustomClaims> {
    Claims::create(jwt_simple::prelude::Duration::from_hours(2))
        .with_issuer(ISSUER)
        .with_audience(AUDIENCE)
        .with_subject(subject)
}

/// Generates the keys and signs one token per algorithm, valid for two hours.
pub fn generate() -> Result<Tokens> {
    let fail = |what: &str, e: jwt_simple::Error| Error(format!("{what}: {e}"));
    let rs256_key = RS256KeyPair::generate(2048)
        .map_err(|e| fail("RSA key generation", e))?
        .with_key_id("bench-rs256");
    let es256_key = ES256KeyPair::generate().with_key_id("bench-es256");
    let pem = rs256_key.to_pem().map_err(|e| fail("RSA key export", e))?;
    let rs384 = RS384KeyPair::from_pem(&pem)
        .map_err(|e| fail("RSA key import", e))?
        .with_key_id("bench-rs384");
    let rs512 = RS512KeyPair::from_pem(&pem)
        .map_err(|e| fail("RSA key import", e))?
        .with_key_id("bench-rs512");
    let ps256 = PS256KeyPair::from_pem(&pem)
        .map_err(|e| fail("RSA key import", e))?
        .with_key_id("bench-ps256");
    let es384 = ES384KeyPair::generate().with_key_id("bench-es384");
    let jwks = jwks(&[
        rs256_key.public_key().to_jwk(),
        es256_key.public_key().to_jwk(),
        rs384.public_key().to_jwk(),
        rs512.public_key().to_jwk(),
        ps256.public_key().to_jwk(),
        es384.public_key().to_jwk(),
    ])?;
    let signed = |alg: &str, token: std::result::Result<String, jwt_simple::Error>| {
        token.map_err(|e| fail(&format!("{alg} signing"), e))
    };
    let others = vec![
        ("RS384", signed("RS384", rs384.sign(claims(SUBJECT)))?),
        ("RS512", signed("RS512", rs512.sign(claims(SUBJECT)))?),
        ("PS256", signed("PS256", ps256.sign(claims(SUBJECT)))?),
        ("ES384", signed("ES384", es384.sign(claims(SUBJECT)))?),
    ];
    Ok(Tokens {
        issuer: JwtIssuer {
            issuer: ISSUER.to_string(),
            audience: AUDIENCE.to_string(),
            jwks,
        },
        rs256: rs256_key
            .sign(claims(SUBJECT))
            .map_err(|e| fail("RS256 signing", e))?,
        es256: es256_key
            .sign(claims(SUBJECT))
            .map_err(|e| fail("ES256 signing", e))?,
        es256_key,
        others,
    })
}

/// `{"keys": [...]}` from JWK texts.
fn jwks(keys: &[String]) -> Result<String> {
    let parsed: std::result::Result<Vec<serde_json::Value>, _> =
        keys.iter().map(|k| serde_json::from_str(k)).collect();
    let parsed = parsed.map_err(|e| Error(format!("JWK: {e}")))?;
    Ok(serde_json::json!({ "keys": parsed }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_the_jwks_keys() {
        let tokens = generate().unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&tokens.issuer.jwks).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 6);
        assert_eq!(tokens.others.len(), 4);
        assert_eq!(keys[0]["kid"], "bench-rs256");
        assert_eq!(keys[1]["kty"], "EC");
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from_strings(&[ISSUER])),
            allowed_audiences: Some(HashSet::from_strings(&[AUDIENCE])),
            ..Default::default()
        };
        let rs = RS256PublicKey::from_jwk(&keys[0].to_string()).unwrap();
        let claims = rs
            .verify_token::<NoCustomClaims>(&tokens.rs256, Some(options.clone()))
            .unwrap();
        assert_eq!(claims.subject.as_deref(), Some(SUBJECT));
        let es = ES256PublicKey::from_jwk(&keys[1].to_string()).unwrap();
        es.verify_token::<NoCustomClaims>(&tokens.es256, Some(options.clone()))
            .unwrap();
        let other = tokens.sign_es256("someone-else").unwrap();
        assert_ne!(other, tokens.es256);
        let claims = es
            .verify_token::<NoCustomClaims>(&other, Some(options))
            .unwrap();
        assert_eq!(claims.subject.as_deref(), Some("someone-else"));
    }
}
