//! RequestAuthentication: finds the tokens of a request, verifies each with the rule of its
//! issuer, and yields the request's identity. As with Istio (Envoy's jwt_authn with
//! `allow_missing`), no token means no identity, and any present token that fails is a 401:
//! every token found must verify, so a valid token cannot carry a forged one along.

use crate::cache::TokenCache;
use crate::config::JwtRule;
use crate::jwks::{parse_jwks, KeySet};
use crate::request::{Location, RequestView};
use crate::token::{self, Identity, JwtFailure, Limits};
use plugin_kit::config::ConfigError;
use std::borrow::Cow;
use std::rc::Rc;

/// Where a rule's keys come from.
pub enum KeySource {
    Inline(Rc<KeySet>),
    Remote(RemoteJwks),
}

/// A `jwksUri` fetched through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub uri: String,
    pub cluster: String,
    /// Authority and path of `uri`, for the request's `:authority` and `:path`.
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
}

pub struct CompiledJwtRule {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub locations: Vec<Location>,
    pub output_payload_to_header: Option<String>,
    /// `(header, claim)`, header lowercase.
    pub output_claim_to_headers: Vec<(String, String)>,
    pub forward_original_token: bool,
    pub space_delimited_claims: Vec<String>,
}

/// The keys of a remote rule as the host currently has them.
pub enum RemoteKeys {
    Ready(Rc<KeySet>),
    /// No keys yet; a fetch is due or running.
    Pending,
    /// The fetch failed or timed out and no keys were ever obtained.
    Failed,
}

/// How the gate reaches the keys fetched by the host (shared across workers).
pub trait RemoteKeyStore {
    fn keys(&self, rule: usize) -> RemoteKeys;
    /// Asks for a new fetch because a token named a `kid` the keys do not have (rate limited
    /// by the host).
    fn request_refresh(&self, rule: usize);
}

pub struct Authenticator {
    pub rules: Vec<CompiledJwtRule>,
}

/// A verified token and the rule that verified it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub identity: Rc<Identity>,
    pub rule: usize,
}

#[derive(Debug)]
pub enum Authentication<'a> {
    /// No token anywhere: no identity (policies decide).
    Anonymous,
    Verified {
        /// The first token found (rules in order, then locations in order).
        primary: Authenticated,
        /// Headers that carried verified tokens and must not reach the upstream (names from
        /// the rules).
        token_headers: Vec<&'a str>,
    },
    Failed(JwtFailure),
    /// A token's rule has remote keys not fetched yet: pause the request and retry.
    WaitForKeys,
}

impl Authenticator {
    pub fn compile(rules: &[JwtRule]) -> Result<Self, ConfigError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| compile_rule(rule, &format!("jwtRules[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, rule) in rules.iter().enumerate() {
            if rules[..i].iter().any(|r| r.issuer == rule.issuer) {
                return Err(ConfigError::new(
                    format!("jwtRules[{i}].issuer"),
                    "another rule has the same issuer",
                ));
            }
        }
        Ok(Self { rules })
    }

    /// Every header a rule writes (`outputPayloadToHeader`, `outputClaimToHeaders`): they are
    /// removed from every request first, so a client cannot forge them.
    pub fn output_headers(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().flat_map(|rule| {
            rule.output_payload_to_header
                .iter()
                .map(String::as_str)
                .chain(rule.output_claim_to_headers.iter().map(|(h, _)| h.as_str()))
        })
    }

    pub fn authenticate(
        &self,
        request: &RequestView,
        remote: &dyn RemoteKeyStore,
        cache: &mut TokenCache,
        limits: &Limits,
        now: u64,
    ) -> Authentication<'_> {
        // Each location once, with the rules that read it; a location holds at most one token
        // (Envoy reads the first), so a request cannot make the gate verify thousands.
        let mut found: Vec<(&Location, Cow<'_, str>, Vec<usize>)> = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            for location in &rule.locations {
                match found.iter_mut().find(|(l, _, _)| *l == location) {
                    Some((_, _, rules)) => rules.push(index),
                    None => {
                        if let Some(token) = location.token(request) {
                            found.push((location, token, vec![index]));
                        }
                    }
                }
            }
        }
        let mut primary = None;
        let mut token_headers = Vec::new();
        for (location, token, rules) in found {
            let verified = match self.verify(&token, &rules, remote, cache, limits, now) {
                Ok(verified) => verified,
                Err(outcome) => return outcome,
            };
            let rule = self.rules.get(verified.rule);
            if let (Location::Header { name, .. }, Some(rule)) = (location, rule) {
                if !rule.forward_original_token && !token_headers.contains(&name.as_str()) {
                    token_headers.push(name.as_str());
                }
            }
            primary.get_or_insert(verified);
        }
        match primary {
            None => Authentication::Anonymous,
            Some(primary) => Authentication::Verified {
                primary,
                token_headers,
            },
        }
    }

    /// Verifies one token with the rule (among `candidates`, the rules reading its location)
    /// whose issuer it names.
    fn verify(
        &self,
        token: &str,
        candidates: &[usize],
        remote: &dyn RemoteKeyStore,
        cache: &mut TokenCache,
        limits: &Limits,
        now: u64,
    ) -> Result<Authenticated, Authentication<'static>> {
        if let Some(cached) = self.cached(token, candidates, cache, limits, now) {
            return Ok(cached);
        }
        let failed = Authentication::Failed;
        let unverified = token::decode(token, limits).map_err(failed)?;
        let issuer = unverified.issuer().unwrap_or_default();
        let (index, rule) = candidates
            .iter()
            .filter_map(|&i| self.rules.get(i).map(|rule| (i, rule)))
            .find(|(_, rule)| rule.issuer == issuer)
            .ok_or(Authentication::Failed(JwtFailure::IssuerNotConfigured))?;
        if let Some(identity) = cache.get(token, index, now, limits.clock_skew_seconds) {
            return Ok(Authenticated {
                identity,
                rule: index,
            });
        }
        let keys = match &rule.keys {
            KeySource::Inline(keys) => keys.clone(),
            KeySource::Remote(_) => match remote.keys(index) {
                RemoteKeys::Ready(keys) => keys,
                RemoteKeys::Pending => return Err(Authentication::WaitForKeys),
                RemoteKeys::Failed => return Err(failed(JwtFailure::KeysUnavailable)),
            },
        };
        let identity = if cache.signature_known(token, keys.fingerprint) {
            token::verify_checked_signature(unverified, &rule.audiences, limits, now)
                .map_err(failed)?
        } else {
            let kid = unverified.kid.clone();
            cache.stats.signature_checks += 1;
            let identity = token::verify(unverified, &keys, &rule.audiences, limits, now).map_err(
                |failure| {
                    if failure == JwtFailure::UnknownKid
                        && matches!(rule.keys, KeySource::Remote(_))
                    {
                        // Keys may have rotated at the issuer: fetch again (rate limited).
                        log::debug!("auth-gate: unknown kid {kid:?} for {}", rule.issuer);
                        remote.request_refresh(index);
                    }
                    failed(failure)
                },
            )?;
            cache.share(token, keys.fingerprint);
            identity
        };
        let identity = Rc::new(identity);
        cache.insert(token, index, identity.clone());
        Ok(Authenticated {
            identity,
            rule: index,
        })
    }

    /// A token seen before, found without decoding it again (base64 and two JSON documents: most
    /// of what a cached request cost). `verify` caches a token under the candidate whose issuer it
    /// names, and issuers are unique among the rules (`compile` refuses duplicates): an entry for
    /// a candidate is the rule decoding would pick. Decoding depends only on the token and the
    /// limits, both fixed for the life of the cache, so it would succeed again.
    fn cached(
        &self,
        token: &str,
        candidates: &[usize],
        cache: &mut TokenCache,
        limits: &Limits,
        now: u64,
    ) -> Option<Authenticated> {
        candidates.iter().find_map(|&index| {
            let identity = cache.get(token, index, now, limits.clock_skew_seconds)?;
            Some(Authenticated {
                identity,
                rule: index,
            })
        })
    }
}

fn compile_rule(rule: &JwtRule, field: &str) -> Result<CompiledJwtRule, ConfigError> {
    let error = |name: &str, reason: &str| ConfigError::new(format!("{field}.{name}"), reason);
    if rule.issuer.is_empty() {
        return Err(error("issuer", "must not be empty"));
    }
    let keys = match (&rule.jwks, &rule.jwks_uri) {
        (Some(jwks), None) => {
            if rule.jwks_cluster.is_some() {
                return Err(error("jwksCluster", "only meaningful with jwksUri"));
            }
            KeySource::Inline(Rc::new(parse_jwks(jwks).map_err(|r| error("jwks", &r))?))
        }
        (None, Some(uri)) => {
            let (authority, path) = split_uri(uri).ok_or_else(|| {
                error("jwksUri", "must be an http:// or https:// URL with a host")
            })?;
            let cluster = match &rule.jwks_cluster {
                Some(cluster) => cluster.clone(),
                None => istio_cluster_name(uri, &authority)
                    .ok_or_else(|| error("jwksUri", "the port is not a number"))?,
            };
            let timeout_ms = match &rule.timeout {
                Some(text) => parse_duration_ms(text)
                    .filter(|ms| *ms >= 1)
                    .ok_or_else(|| {
                        error("timeout", "must be a duration such as `5s` or `500ms`")
                    })?,
                None => 5000,
            };
            KeySource::Remote(RemoteJwks {
                uri: uri.clone(),
                cluster,
                authority,
                path,
                timeout_ms,
            })
        }
        (Some(_), Some(_)) => return Err(error("jwks", "set only one of jwks and jwksUri")),
        (None, None) => return Err(error("jwks", "one of jwks or jwksUri is required")),
    };
    if rule.timeout.is_some() && matches!(keys, KeySource::Inline(_)) {
        return Err(error("timeout", "only meaningful with jwksUri"));
    }
    let mut locations = Vec::new();
    for (k, header) in rule.from_headers.iter().enumerate() {
        if !is_header_name(&header.name) {
            return Err(error(
                &format!("fromHeaders[{k}].name"),
                "not a valid header name",
            ));
        }
        locations.push(Location::Header {
            name: header.name.to_ascii_lowercase(),
            prefix: header.prefix.clone().unwrap_or_default(),
        });
    }
    for (k, param) in rule.from_params.iter().enumerate() {
        if param.is_empty() {
            return Err(error(&format!("fromParams[{k}]"), "must not be empty"));
        }
        locations.push(Location::Param(param.clone()));
    }
    for (k, cookie) in rule.from_cookies.iter().enumerate() {
        if cookie.is_empty() {
            return Err(error(&format!("fromCookies[{k}]"), "must not be empty"));
        }
        locations.push(Location::Cookie(cookie.clone()));
    }
    if locations.is_empty() {
        locations = Location::istio_defaults();
    }
    if let Some(header) = &rule.output_payload_to_header {
        if !is_header_name(header) {
            return Err(error("outputPayloadToHeader", "not a valid header name"));
        }
    }
    let mut output_claim_to_headers = Vec::new();
    for (k, entry) in rule.output_claim_to_headers.iter().enumerate() {
        if !is_header_name(&entry.header) {
            return Err(error(
                &format!("outputClaimToHeaders[{k}].header"),
                "not a valid header name (letters, digits, `-`, `_`)",
            ));
        }
        if entry.claim.is_empty() {
            return Err(error(
                &format!("outputClaimToHeaders[{k}].claim"),
                "must not be empty",
            ));
        }
        output_claim_to_headers.push((entry.header.to_ascii_lowercase(), entry.claim.clone()));
    }
    Ok(CompiledJwtRule {
        issuer: rule.issuer.clone(),
        // Compared as Envoy compares them: without scheme and trailing slash.
        audiences: rule
            .audiences
            .iter()
            .map(|aud| token::sanitize_audience(aud).to_string())
            .collect(),
        keys,
        locations,
        output_payload_to_header: rule
            .output_payload_to_header
            .as_ref()
            .map(|h| h.to_ascii_lowercase()),
        output_claim_to_headers,
        forward_original_token: rule.forward_original_token,
        space_delimited_claims: rule.space_delimited_claims.clone(),
    })
}

/// Istio's pattern for output headers, also used for token headers: `^[-_A-Za-z0-9]+$`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `http(s)://authority/path?query` → (authority, path with query; `/` when empty).
fn split_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("http://"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => (rest.get(..at)?, rest.get(at..)?),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Some((authority.to_string(), path))
}

/// The cluster istiod creates for a service reached at `uri`: `outbound|<port>||<host>`, the
/// port defaulting to the scheme's.
fn istio_cluster_name(uri: &str, authority: &str) -> Option<String> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            (host, port.parse::<u16>().ok()?)
        }
        _ => (
            authority,
            if uri.starts_with("https://") { 443 } else { 80 },
        ),
    };
    Some(format!("outbound|{port}||{host}"))
}

/// Istio/protobuf durations: `1.5s`, `500ms`, `2m`, `1h` (also `us`/`ns`, rounded down).
fn parse_duration_ms(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = (text.get(..split)?, text.get(split..)?);
    let value: f64 = number.parse().ok()?;
    let factor = match unit {
        "h" => 3_600_000.0,
        "m" => 60_000.0,
        "s" => 1_000.0,
        "ms" => 1.0,
        "us" | "µs" => 0.001,
        "ns" => 0.000_001,
        _ => return None,
    };
    let ms = value * factor;
    (ms.is_finite() && ms < 1e15).then_some(ms as u64)
}

/// The string form of a claim for `outputClaimToHeaders`: strings as they are, numbers and
/// booleans printed; other types are not copied (as Envoy's `claim_to_headers`). A dotted name
/// (`user.tier`) is a nested claim, as Envoy reads it.
pub fn claim_header_value(identity: &Identity, claim: &str) -> Option<String> {
    let mut names = claim.split('.');
    let first = identity.claims.get(names.next()?)?;
    let value = names.try_fold(first, |value, name| value.get(name))?;
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::jwks::tests::jwks_of;
    use crate::request::tests::request;
    use crate::token::tests::{claims, pinned, ISSUER, LIMITS, NOW};
    use jwt_simple::prelude::*;
    use serde_json::json;
    use std::cell::{Cell, RefCell};
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Remote keys as a test sets them.
    #[derive(Default)]
    pub struct FakeRemote {
        pub keys: RefCell<Option<Rc<KeySet>>>,
        pub failed: Cell<bool>,
        pub refreshes: Cell<usize>,
    }

    impl RemoteKeyStore for FakeRemote {
        fn keys(&self, _rule: usize) -> RemoteKeys {
            match (self.keys.borrow().clone(), self.failed.get()) {
                (Some(keys), _) => RemoteKeys::Ready(keys),
                (None, true) => RemoteKeys::Failed,
                (None, false) => RemoteKeys::Pending,
            }
        }
        fn request_refresh(&self, _rule: usize) {
            self.refreshes.set(self.refreshes.get() + 1);
        }
    }

    pub fn authenticator(rules: serde_json::Value) -> Result<Authenticator, ConfigError> {
        let config: Config = serde_json::from_value(json!({ "jwtRules": rules })).unwrap();
        Authenticator::compile(&config.jwt_rules)
    }

    fn run<'a>(auth: &'a Authenticator, headers: &[(&str, &str)]) -> Authentication<'a> {
        let mut cache = TokenCache::new(10, None);
        auth.authenticate(
            &request(headers),
            &FakeRemote::default(),
            &mut cache,
            &LIMITS,
            NOW,
        )
    }

    fn principal(outcome: &Authentication) -> Option<String> {
        match outcome {
            Authentication::Verified { primary, .. } => primary.identity.principal(),
            _ => None,
        }
    }

    fn setup() -> (ES256KeyPair, Authenticator) {
        let pair = ES256KeyPair::generate().with_key_id("k1");
        let auth = authenticator(json!([{
            "issuer": ISSUER,
            "audiences": ["kserve"],
            "jwks": jwks_of(&[pair.public_key().to_jwk()]),
        }]))
        .unwrap();
        (pair, auth)
    }

    #[test]
    fn no_token_is_anonymous_and_valid_token_gives_principal() {
        let (pair, auth) = setup();
        assert!(matches!(
            run(&auth, &[(":path", "/")]),
            Authentication::Anonymous
        ));
        let token = pair.sign(claims()).unwrap();
        let bearer = format!("Bearer {token}");
        let outcome = run(&auth, &[(":path", "/"), ("authorization", &bearer)]);
        assert_eq!(
            principal(&outcome).as_deref(),
            Some("https://dex.example.com/alice")
        );
        let Authentication::Verified { token_headers, .. } = outcome else {
            unreachable!()
        };
        assert_eq!(token_headers, ["authorization"]);
        let path = format!("/x?access_token={token}");
        let outcome = run(&auth, &[(":path", &path)]);
        assert_eq!(
            principal(&outcome).as_deref(),
            Some("https://dex.example.com/alice")
        );
    }

    #[test]
    fn token_of_an_unknown_issuer_is_a_failure_not_anonymous() {
        let (pair, auth) = setup();
        let token = pair
            .sign(claims().with_issuer("https://evil.example.com"))
            .unwrap();
        let bearer = format!("Bearer {token}");
        let outcome = run(&auth, &[("authorization", &bearer)]);
        assert!(matches!(
            outcome,
            Authentication::Failed(JwtFailure::IssuerNotConfigured)
        ));
    }

    #[test]
    fn every_token_must_verify_wherever_it_is() {
        let (pair, auth) = setup();
        let good = pair.sign(claims()).unwrap();
        let forged = ES256KeyPair::generate()
            .with_key_id("k1")
            .sign(claims())
            .unwrap();
        let cases = [
            (
                format!("Bearer {good}"),
                format!("/p?access_token={forged}"),
            ),
            (
                format!("Bearer {forged}"),
                format!("/p?access_token={good}"),
            ),
        ];
        for (header, path) in &cases {
            let outcome = run(&auth, &[(":path", path), ("authorization", header)]);
            assert!(
                matches!(outcome, Authentication::Failed(JwtFailure::BadSignature)),
                "{outcome:?}"
            );
        }
        // Duplicated Authorization headers are read joined, as Envoy reads them: the tokens
        // run together and fail.
        let twice = |first: &str, second: &str| {
            run(
                &auth,
                &[
                    ("authorization", &format!("Bearer {first}")),
                    ("authorization", &format!("Bearer {second}")),
                ],
            )
        };
        for (first, second) in [(&good, &forged), (&forged, &good), (&good, &good)] {
            assert!(matches!(
                twice(first, second),
                Authentication::Failed(JwtFailure::Malformed)
            ));
        }
        // The same valid token in both places is fine.
        let path = format!("/p?access_token={good}");
        let outcome = run(
            &auth,
            &[
                (":path", &path),
                ("authorization", &format!("Bearer {good}")),
            ],
        );
        assert!(principal(&outcome).is_some());
    }

    #[test]
    fn custom_locations_replace_the_defaults() {
        let pair = ES256KeyPair::generate();
        let auth = authenticator(json!([{
            "issuer": ISSUER,
            "jwks": jwks_of(&[pair.public_key().to_jwk()]),
            "fromHeaders": [{"name": "X-Jwt"}],
            "fromCookies": ["session"],
            "forwardOriginalToken": true
        }]))
        .unwrap();
        let token = pair.sign(claims()).unwrap();
        let outcome = run(&auth, &[("x-jwt", &token)]);
        let Authentication::Verified { token_headers, .. } = &outcome else {
            panic!("{outcome:?}")
        };
        assert!(
            token_headers.is_empty(),
            "forwardOriginalToken keeps the header"
        );
        let cookie = format!("a=b; session={token}");
        assert!(principal(&run(&auth, &[("cookie", &cookie)])).is_some());
        // The default locations are not read any more.
        let bearer = format!("Bearer {token}");
        assert!(matches!(
            run(&auth, &[("authorization", &bearer)]),
            Authentication::Anonymous
        ));
    }

    #[test]
    fn two_issuers_share_the_default_location() {
        let a = ES256KeyPair::generate();
        let b = Ed25519KeyPair::generate();
        let auth = authenticator(json!([
            {"issuer": "https://a", "jwks": jwks_of(&[a.public_key().to_jwk()])},
            {"issuer": "https://b", "jwks": jwks_of(&[b.public_key().to_jwk()])}
        ]))
        .unwrap();
        let token = b.sign(claims().with_issuer("https://b")).unwrap();
        let bearer = format!("Bearer {token}");
        assert_eq!(
            principal(&run(&auth, &[("authorization", &bearer)])),
            Some("https://b/alice".to_string())
        );
        // Signed by a's key but claiming to be from b: b's keys refuse it.
        let token = a.sign(claims().with_issuer("https://b")).unwrap();
        let bearer = format!("Bearer {token}");
        assert!(matches!(
            run(&auth, &[("authorization", &bearer)]),
            Authentication::Failed(JwtFailure::AlgorithmNotAllowed)
        ));
    }

    #[test]
    fn verified_tokens_are_cached_until_they_expire() {
        let (pair, auth) = setup();
        let token = pair.sign(claims()).unwrap();
        let bearer = format!("Bearer {token}");
        let req = request(&[("authorization", &bearer)]);
        let mut cache = TokenCache::new(10, None);
        let remote = FakeRemote::default();
        let first = auth.authenticate(&req, &remote, &mut cache, &LIMITS, NOW);
        assert_eq!(cache.len(), 1);
        let again = auth.authenticate(&req, &remote, &mut cache, &LIMITS, NOW + 10);
        assert_eq!(principal(&first), principal(&again));
        let expired = auth.authenticate(&req, &remote, &mut cache, &LIMITS, NOW + 3600 + 61);
        assert!(matches!(
            expired,
            Authentication::Failed(JwtFailure::Expired)
        ));
    }

    #[test]
    fn a_token_checked_by_one_worker_costs_the_others_no_signature() {
        use crate::remote::tests::FakeShared;
        let (pair, auth) = setup();
        let store = Rc::new(FakeShared::default());
        let worker = || TokenCache::new(10, Some(Box::new(store.clone())));
        let (mut first, mut second) = (worker(), worker());
        let bearer = format!("Bearer {}", pair.sign(claims()).unwrap());
        let req = request(&[("authorization", &bearer)]);
        let remote = FakeRemote::default();
        let outcome = auth.authenticate(&req, &remote, &mut first, &LIMITS, NOW);
        assert_eq!(principal(&outcome), Some(format!("{ISSUER}/alice")));
        assert_eq!(first.stats.signature_checks, 1);
        let outcome = auth.authenticate(&req, &remote, &mut second, &LIMITS, NOW);
        assert_eq!(principal(&outcome), Some(format!("{ISSUER}/alice")));
        assert_eq!(
            (second.stats.signature_checks, second.stats.shared_hits),
            (0, 1)
        );
        // The claims are checked again on a shared hit: expired for a third worker...
        let mut third = worker();
        let late = auth.authenticate(&req, &remote, &mut third, &LIMITS, NOW + 3600 + 61);
        assert!(matches!(late, Authentication::Failed(JwtFailure::Expired)));
        // ...and refused by a configuration pushed with narrower audiences (same keys).
        let narrowed = authenticator(json!([{
            "issuer": ISSUER,
            "audiences": ["another"],
            "jwks": jwks_of(&[pair.public_key().to_jwk()]),
        }]))
        .unwrap();
        let outcome = auth_with(&narrowed, &req, &mut worker());
        assert!(matches!(
            outcome,
            Authentication::Failed(JwtFailure::AudienceNotAllowed)
        ));
        // Keys rotated (the signing key removed): the shared entry names the old key set.
        let rotated = authenticator(json!([{
            "issuer": ISSUER,
            "audiences": ["kserve"],
            "jwks": jwks_of(&[ES256KeyPair::generate().with_key_id("k1").public_key().to_jwk()]),
        }]))
        .unwrap();
        let mut after_rotation = worker();
        let outcome = auth_with(&rotated, &req, &mut after_rotation);
        assert!(matches!(
            outcome,
            Authentication::Failed(JwtFailure::BadSignature)
        ));
        assert_eq!(after_rotation.stats.signature_checks, 1);
        // A forged token is never shared: each worker checks (and refuses) it.
        let mut forged = bearer.clone().into_bytes();
        let at = forged.len() - 10; // inside the signature, not its padding bits
        forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        let forged = request(&[("authorization", &forged)]);
        for _ in 0..2 {
            let mut cache = worker();
            assert!(matches!(
                auth.authenticate(&forged, &remote, &mut cache, &LIMITS, NOW),
                Authentication::Failed(JwtFailure::BadSignature)
            ));
            assert_eq!(cache.stats.signature_checks, 1);
        }
    }

    fn auth_with<'a>(
        auth: &'a Authenticator,
        req: &RequestView,
        cache: &mut TokenCache,
    ) -> Authentication<'a> {
        auth.authenticate(req, &FakeRemote::default(), cache, &LIMITS, NOW)
    }

    #[test]
    fn remote_keys_pending_failed_and_unknown_kid_refresh() {
        let pair = ES256KeyPair::generate().with_key_id("k1");
        let auth = authenticator(json!([{
            "issuer": ISSUER,
            "jwksUri": "https://dex.example.com/keys",
            "jwksCluster": "outbound|5556||dex"
        }]))
        .unwrap();
        let bearer = format!("Bearer {}", pair.sign(claims()).unwrap());
        let req = request(&[("authorization", &bearer)]);
        let mut cache = TokenCache::new(10, None);
        let remote = FakeRemote::default();
        let outcome = auth.authenticate(&req, &remote, &mut cache, &LIMITS, NOW);
        assert!(matches!(outcome, Authentication::WaitForKeys));
        remote.failed.set(true);
        let outcome = auth.authenticate(&req, &remote, &mut cache, &LIMITS, NOW);
        assert!(matches!(
            outcome,
            Authentication::Failed(JwtFailure::KeysUnavailable)
        ));
        let rotated = ES256KeyPair::generate().with_key_id("k2");
        let keys = parse_jwks(&jwks_of(&[rotated.public_key().to_jwk()])).unwrap();
        *remote.keys.borrow_mut() = Some(Rc::new(keys));
        let outcome = auth.authenticate(&req, &remote, &mut cache, &LIMITS, NOW);
        assert!(matches!(
            outcome,
            Authentication::Failed(JwtFailure::UnknownKid)
        ));
        assert_eq!(remote.refreshes.get(), 1);
        let keys = parse_jwks(&jwks_of(&[pair.public_key().to_jwk()])).unwrap();
        *remote.keys.borrow_mut() = Some(Rc::new(keys));
        let outcome = auth.authenticate(&req, &remote, &mut cache, &LIMITS, NOW);
        assert!(principal(&outcome).is_some());
    }

    #[test]
    fn rule_configuration_errors_name_the_field() {
        let jwks = jwks_of(&[ES256KeyPair::generate().public_key().to_jwk()]);
        let cases = [
            (json!([{"issuer": "i"}]), "jwtRules[0].jwks"),
            (json!([{"issuer": "", "jwks": jwks}]), "jwtRules[0].issuer"),
            (
                json!([{"issuer": "i", "jwks": "{\"keys\":[]}"}]),
                "jwtRules[0].jwks",
            ),
            (
                json!([{"issuer": "i", "jwks": jwks, "jwksUri": "https://x/k"}]),
                "jwtRules[0].jwks",
            ),
            (
                json!([{"issuer": "i", "jwksUri": "ftp://x/k", "jwksCluster": "c"}]),
                "jwtRules[0].jwksUri",
            ),
            (
                json!([{"issuer": "i", "jwksUri": "https://x/k", "jwksCluster": "c", "timeout": "5"}]),
                "jwtRules[0].timeout",
            ),
            (
                json!([{"issuer": "i", "jwks": jwks, "jwksCluster": "c"}]),
                "jwtRules[0].jwksCluster",
            ),
            (
                json!([{"issuer": "i", "jwks": jwks, "fromHeaders": [{"name": "bad header"}]}]),
                "jwtRules[0].fromHeaders[0].name",
            ),
            (
                json!([{"issuer": "i", "jwks": jwks, "outputClaimToHeaders": [{"header": "x:y", "claim": "sub"}]}]),
                "jwtRules[0].outputClaimToHeaders[0].header",
            ),
            (
                json!([{"issuer": "i", "jwks": jwks}, {"issuer": "i", "jwks": jwks}]),
                "jwtRules[1].issuer",
            ),
        ];
        for (json, field) in cases {
            let err = authenticator(json.clone()).err().unwrap();
            assert_eq!(err.field, field, "{json}: {err}");
        }
    }

    #[test]
    fn remote_rule_settings_are_parsed() {
        let auth = authenticator(json!([{
            "issuer": "i",
            "jwks_uri": "http://dex.auth:5556/dex/keys?x=1",
            "jwksCluster": "outbound|5556||dex",
            "timeout": "1.5s"
        }]))
        .unwrap();
        let KeySource::Remote(remote) = &auth.rules[0].keys else {
            unreachable!()
        };
        assert_eq!(remote.authority, "dex.auth:5556");
        assert_eq!(remote.path, "/dex/keys?x=1");
        assert_eq!(remote.timeout_ms, 1500);
        assert_eq!(
            split_uri("https://h").unwrap(),
            ("h".to_string(), "/".to_string())
        );
        assert_eq!(parse_duration_ms("2m"), Some(120_000));
        assert_eq!(parse_duration_ms("250ms"), Some(250));
        assert_eq!(parse_duration_ms("s"), None);
        // Without jwksCluster, the cluster istiod creates for the service of the URI.
        let cluster = |uri: &str| {
            let auth = authenticator(json!([{"issuer": "i", "jwksUri": uri}])).unwrap();
            match &auth.rules[0].keys {
                KeySource::Remote(remote) => remote.cluster.clone(),
                KeySource::Inline(_) => unreachable!(),
            }
        };
        assert_eq!(
            cluster("http://dex.auth.svc.cluster.local:5556/dex/keys"),
            "outbound|5556||dex.auth.svc.cluster.local"
        );
        assert_eq!(
            cluster("https://idp.example.com/keys"),
            "outbound|443||idp.example.com"
        );
        assert_eq!(
            cluster("http://idp.example.com"),
            "outbound|80||idp.example.com"
        );
    }

    #[test]
    fn claim_values_for_headers() {
        let (pair, auth) = setup();
        let mut custom = serde_json::Map::new();
        custom.insert("level".into(), json!(3));
        custom.insert("admin".into(), json!(true));
        custom.insert("groups".into(), json!(["a"]));
        custom.insert(
            "user".into(),
            json!({"tier": "gold", "id": 7, "x.y": "dotted"}),
        );
        let claims = Claims::with_custom_claims(custom, Duration::from_hours(1))
            .with_issuer(ISSUER)
            .with_subject("alice")
            .with_audience("kserve");
        let claims = pinned(claims, 60);
        let bearer = format!("Bearer {}", pair.sign(claims).unwrap());
        let Authentication::Verified { primary, .. } = run(&auth, &[("authorization", &bearer)])
        else {
            unreachable!()
        };
        let id = &primary.identity;
        assert_eq!(claim_header_value(id, "sub").as_deref(), Some("alice"));
        assert_eq!(claim_header_value(id, "level").as_deref(), Some("3"));
        assert_eq!(claim_header_value(id, "admin").as_deref(), Some("true"));
        assert_eq!(claim_header_value(id, "groups"), None);
        assert_eq!(claim_header_value(id, "missing"), None);
        // A dotted name is a nested claim, as Envoy's claim_to_headers reads it.
        assert_eq!(claim_header_value(id, "user.tier").as_deref(), Some("gold"));
        assert_eq!(claim_header_value(id, "user.id").as_deref(), Some("7"));
        assert_eq!(claim_header_value(id, "user"), None);
        assert_eq!(claim_header_value(id, "user.missing"), None);
        assert_eq!(claim_header_value(id, "sub.x"), None);
    }
}
