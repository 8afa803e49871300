//! The decision for one request, in the order of Istio's filter chain: path normalization (the
//! connection manager's job), JWT authentication (jwt_authn: a present but invalid token is a
//! 401), then authorization (RBAC: DENY, then ALLOW, 403), then the header changes for the
//! upstream.

use crate::authn::{claim_header_value, Authentication, RemoteKeyStore};
use crate::cache::TokenCache;
use crate::compiled::Compiled;
use crate::policy::{Attributes, Verdict};
use crate::request::RequestView;
use crate::token::JwtFailure;
use plugin_kit::deny::{rbac_denied, LocalReply};
use plugin_kit::istio::{normalize_path, MalformedPath, NormalizedPath, RequestInfo};
use std::borrow::Cow;
use std::net::IpAddr;

/// Envoy jwt_authn's 401 bodies, and its 403 for a token of another audience.
pub const JWT_INVALID_BODY: &str = "Jwt verification fails";
pub const JWKS_FETCH_FAILED_BODY: &str = "Jwks remote fetch is failed";
pub const AUDIENCE_NOT_ALLOWED_BODY: &str = "Audiences in Jwt are not allowed";
/// Why a request is refused when ALLOW policies exist and none matched.
pub const NO_ALLOW_MATCHED: &str = "no ALLOW policy matched";

#[derive(Debug, PartialEq)]
pub enum Decision<'a> {
    Forward(Forward<'a>),
    /// 401 `Jwt verification fails` (403 for a token of another audience, as Envoy).
    Unauthenticated {
        failure: JwtFailure,
        www_authenticate: String,
    },
    /// 403 `RBAC: access denied`; `policy` names the DENY policy, `None` when no ALLOW matched.
    Denied {
        policy: Option<String>,
    },
    /// 400: the path cannot be normalized safely.
    BadPath(MalformedPath),
    /// Remote keys are not there yet: pause the request and decide again when they are.
    WaitForKeys,
}

/// What to change before the request goes upstream.
#[derive(Debug, Default, PartialEq)]
pub struct Forward<'a> {
    /// Removed first: token headers (unless `forwardOriginalToken`) and every configured output
    /// header, so a client cannot send its own `x-jwt-payload`, except those in `set_headers`.
    /// Names from the configuration.
    pub remove_headers: Vec<&'a str>,
    /// Each replaces every value the request had (one hostcall, no removal before it).
    pub set_headers: Vec<(&'a str, String)>,
    /// The normalized `:path`, when it differs from the one received.
    pub path: Option<String>,
    /// The dry-run policy that would have refused the request (`no ALLOW policy matched` when
    /// no ALLOW policy would have matched): logged and counted, not enforced.
    pub dry_run_denied: Option<String>,
}

impl Decision<'_> {
    /// The reply the plugin sends itself; `None` when the request goes on (or waits).
    pub fn local_reply(&self) -> Option<LocalReply> {
        let text = |status, body: &str, mut headers: Vec<(&'static str, String)>| {
            headers.push(("content-type", "text/plain".to_string()));
            LocalReply {
                status,
                headers,
                body: body.as_bytes().to_vec(),
            }
        };
        match self {
            Decision::Forward(_) | Decision::WaitForKeys => None,
            Decision::Unauthenticated {
                failure,
                www_authenticate,
            } => {
                let (status, body) = match failure {
                    JwtFailure::KeysUnavailable => (401, JWKS_FETCH_FAILED_BODY),
                    JwtFailure::AudienceNotAllowed => (403, AUDIENCE_NOT_ALLOWED_BODY),
                    _ => (401, JWT_INVALID_BODY),
                };
                Some(text(
                    status,
                    body,
                    vec![("www-authenticate", www_authenticate.clone())],
                ))
            }
            Decision::Denied { .. } => Some(rbac_denied(403)),
            Decision::BadPath(_) => Some(text(400, "Bad Request: malformed path", Vec::new())),
        }
    }
}

/// A request that waited for remote keys longer than the rule's `timeout`.
pub fn keys_unavailable(request: &RequestView) -> Decision<'static> {
    Decision::Unauthenticated {
        failure: JwtFailure::KeysUnavailable,
        www_authenticate: www_authenticate(request),
    }
}

/// What the connection tells about a request, looked up only when policies need it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Connection {
    pub port: Option<u16>,
    pub remote_ip: Option<IpAddr>,
}

pub fn decide<'a>(
    config: &'a Compiled,
    request: &RequestView,
    connection: Connection,
    remote: &dyn RemoteKeyStore,
    cache: &mut TokenCache,
    now: u64,
) -> Decision<'a> {
    // The path matters only to rules on paths: without them, nothing is refused or rewritten
    // for its spelling (Envoy's connection manager already did what Istio asks of it).
    let raw_path = request.path();
    let normalized = if config.policies.uses_paths() {
        match normalize_path(raw_path, config.path_normalization) {
            Ok(normalized) => normalized,
            Err(malformed) => return Decision::BadPath(malformed),
        }
    } else {
        let (path, query) = raw_path.split_at(raw_path.find('?').unwrap_or(raw_path.len()));
        NormalizedPath {
            path: Cow::Borrowed(path),
            suffix: query,
            changed: false,
        }
    };
    let authentication =
        config
            .authenticator
            .authenticate(request, remote, cache, &config.limits, now);
    let (primary, token_headers) = match authentication {
        Authentication::Anonymous => (None, Vec::new()),
        Authentication::Verified {
            primary,
            token_headers,
        } => (Some(primary), token_headers),
        Authentication::Failed(failure) => {
            return Decision::Unauthenticated {
                failure,
                www_authenticate: www_authenticate(request),
            }
        }
        Authentication::WaitForKeys => return Decision::WaitForKeys,
    };
    let rule = primary
        .as_ref()
        .and_then(|p| config.authenticator.rules.get(p.rule));
    let attributes = Attributes {
        request,
        operation: RequestInfo {
            method: request.method(),
            host: request.authority(),
            path: &normalized.path,
            port: connection.port,
        },
        identity: primary.as_ref().map(|p| p.identity.as_ref()),
        remote_ip: connection.remote_ip,
        space_delimited_claims: rule.map_or(&[], |r| r.space_delimited_claims.as_slice()),
    };
    if let Verdict::Denied { policy } = config.policies.evaluate(&attributes) {
        return Decision::Denied { policy };
    }
    let dry_run_denied = match config.policies.dry_run_verdict(&attributes) {
        Some(Verdict::Denied { policy }) => {
            Some(policy.unwrap_or_else(|| NO_ALLOW_MATCHED.to_string()))
        }
        _ => None,
    };
    let mut forward = Forward {
        remove_headers: token_headers,
        path: normalized.changed.then(|| normalized.request_path()),
        dry_run_denied,
        ..Forward::default()
    };
    for header in config.authenticator.output_headers() {
        if !forward.remove_headers.contains(&header) {
            forward.remove_headers.push(header);
        }
    }
    if let (Some(primary), Some(rule)) = (&primary, rule) {
        let identity = &primary.identity;
        if let Some(header) = &rule.output_payload_to_header {
            forward.set_headers.push((header, identity.payload.clone()));
        }
        for (header, claim) in &rule.output_claim_to_headers {
            // A claim with control characters would make a broken header: not copied.
            if let Some(value) =
                claim_header_value(identity, claim).filter(|v| !v.chars().any(char::is_control))
            {
                forward.set_headers.push((header, value));
            }
        }
    }
    let set_headers = &forward.set_headers;
    forward
        .remove_headers
        .retain(|name| !set_headers.iter().any(|(set, _)| set == name));
    Decision::Forward(forward)
}

/// Envoy's challenge: `Bearer realm="<scheme>://<host><path>", error="invalid_token"`, path
/// without its query (which may hold the token itself).
fn www_authenticate(request: &RequestView) -> String {
    let scheme = request.first(":scheme").unwrap_or("http");
    let host = request.authority().unwrap_or_default();
    let path = request.path();
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let realm: String = format!("{scheme}://{host}{path}")
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::tests::FakeRemote;
    use crate::compiled::compile;
    use crate::config::Config;
    use crate::jwks::tests::jwks_of;
    use crate::request::tests::request;
    use crate::token::tests::{claims, ISSUER, NOW};
    use jwt_simple::prelude::*;
    use serde_json::json;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn compiled(config: serde_json::Value) -> Compiled {
        let config: Config = serde_json::from_value(config).unwrap();
        compile(config).unwrap()
    }

    fn run<'a>(config: &'a Compiled, headers: &[(&str, &str)]) -> Decision<'a> {
        let mut cache = TokenCache::new(10, None);
        decide(
            config,
            &request(headers),
            Connection {
                port: Some(80),
                remote_ip: None,
            },
            &FakeRemote::default(),
            &mut cache,
            NOW,
        )
    }

    /// Kubeflow's `istio-ingressgateway-require-jwt` with a JWT rule: require a JWT except on
    /// the listed paths.
    fn kubeflow_jwt_policy(pair: &ES256KeyPair) -> Compiled {
        compiled(json!({
            "jwtRules": [{
                "issuer": ISSUER,
                "audiences": ["kserve"],
                "jwks": jwks_of(&[pair.public_key().to_jwk()]),
                "outputPayloadToHeader": "x-jwt-payload",
                "outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]
            }],
            "policies": [{
                "name": "require-jwt",
                "action": "DENY",
                "rules": [{
                    "from": [{"source": {"notRequestPrincipals": ["*"]}}],
                    "to": [{"operation": {"notPaths": ["/dex/*", "/dex/**", "/oauth2/*", "/v1/*", "/v2/*"]}}]
                }]
            }]
        }))
    }

    fn denied(policy: &str) -> Decision<'static> {
        Decision::Denied {
            policy: Some(policy.to_string()),
        }
    }

    #[test]
    fn kubeflow_require_jwt_flows() {
        let pair = ES256KeyPair::generate().with_key_id("k");
        let config = kubeflow_jwt_policy(&pair);
        let token = pair.sign(claims()).unwrap();
        let bearer = format!("Bearer {token}");
        assert_eq!(run(&config, &[(":path", "/admin")]), denied("require-jwt"));
        let Decision::Forward(forward) = run(&config, &[(":path", "/v1/models/m:predict")]) else {
            panic!()
        };
        assert!(forward.set_headers.is_empty());
        let decision = run(&config, &[(":path", "/admin"), ("authorization", &bearer)]);
        let Decision::Forward(forward) = decision else {
            panic!("{decision:?}")
        };
        assert_eq!(
            forward.set_headers,
            [
                (
                    "x-jwt-payload",
                    token.split('.').nth(1).unwrap().to_string()
                ),
                ("x-user", "alice".to_string())
            ]
        );
        // The output headers set replace what the client sent; only the token is removed.
        assert_eq!(forward.remove_headers, ["authorization"]);
        assert_eq!(forward.path, None);
        // An invalid token is a 401 even on an exempt path (jwt_authn runs before RBAC).
        let forged = ES256KeyPair::generate()
            .with_key_id("k")
            .sign(claims())
            .unwrap();
        let decision = run(
            &config,
            &[
                (":path", "/v1/x?y=1"),
                (":authority", "gw.example.com"),
                ("authorization", &format!("Bearer {forged}")),
            ],
        );
        assert_eq!(
            decision,
            Decision::Unauthenticated {
                failure: JwtFailure::BadSignature,
                www_authenticate:
                    "Bearer realm=\"http://gw.example.com/v1/x\", error=\"invalid_token\"".into()
            }
        );
    }

    #[test]
    fn path_tricks_on_exempt_paths_do_not_escape_the_jwt_requirement() {
        let pair = ES256KeyPair::generate();
        let config = kubeflow_jwt_policy(&pair);
        for path in [
            "/v1/../admin",
            "/v1/%2E%2E/admin",
            "/v1/./../admin",
            "//admin",
            "/dex/../../admin",
        ] {
            assert_eq!(
                run(&config, &[(":path", path)]),
                denied("require-jwt"),
                "{path}"
            );
        }
        // An encoded slash is refused outright, not matched (MERGE_SLASHES mode).
        assert_eq!(
            run(&config, &[(":path", "/v1%2F..%2Fadmin")]),
            Decision::BadPath(MalformedPath::EncodedSlash)
        );
        for path in ["/v1/..;/admin", "/v1/%252e%252e/admin", "/v1/\\../admin"] {
            assert!(
                matches!(run(&config, &[(":path", path)]), Decision::BadPath(_)),
                "{path}"
            );
        }
        // A path made longer but still exempt is forwarded normalized.
        let Decision::Forward(forward) = run(&config, &[(":path", "/v1//models/./m?q=1")]) else {
            panic!()
        };
        assert_eq!(forward.path.as_deref(), Some("/v1/models/m?q=1"));
    }

    #[test]
    fn spoofed_output_headers_are_removed_even_without_token() {
        let pair = ES256KeyPair::generate();
        let config = kubeflow_jwt_policy(&pair);
        let Decision::Forward(forward) = run(
            &config,
            &[
                (":path", "/v1/m"),
                ("x-user", "admin"),
                ("x-jwt-payload", "e30"),
            ],
        ) else {
            panic!()
        };
        assert_eq!(forward.remove_headers, ["x-jwt-payload", "x-user"]);
        assert!(forward.set_headers.is_empty());
    }

    #[test]
    fn emotion_header_gate_through_the_gate() {
        let config = compiled(json!({"policies": [{
            "name": "allow-with-header",
            "action": "ALLOW",
            "rules": [{
                "to": [{"operation": {"paths": ["/v1/models/bert-emotion-model:predict"]}}],
                "when": [{"key": "request.headers[X-Test]", "values": ["istio-is-cool"]}]
            }]
        }]}));
        let path = (":path", "/v1/models/bert-emotion-model:predict");
        assert!(matches!(
            run(&config, &[path, ("x-test", "istio-is-cool")]),
            Decision::Forward(_)
        ));
        assert_eq!(run(&config, &[path]), Decision::Denied { policy: None });
        assert_eq!(
            run(&config, &[path, ("x-test", "nope")]),
            Decision::Denied { policy: None }
        );
        // A token that is not configured anywhere is irrelevant without jwtRules.
        assert!(matches!(
            run(
                &config,
                &[
                    path,
                    ("x-test", "istio-is-cool"),
                    ("authorization", "Bearer garbage")
                ]
            ),
            Decision::Forward(_)
        ));
    }

    #[test]
    fn local_replies_match_envoy() {
        let pair = ES256KeyPair::generate();
        let config = kubeflow_jwt_policy(&pair);
        let reply = run(&config, &[(":path", "/admin")]).local_reply().unwrap();
        assert_eq!(
            (reply.status, reply.body.as_slice()),
            (403, b"RBAC: access denied".as_slice())
        );
        let reply = run(
            &config,
            &[(":path", "/a"), ("authorization", "Bearer a.b.c")],
        )
        .local_reply()
        .unwrap();
        assert_eq!(
            (reply.status, reply.body.as_slice()),
            (401, b"Jwt verification fails".as_slice())
        );
        assert_eq!(reply.headers[0].0, "www-authenticate");
        let reply = keys_unavailable(&request(&[(":path", "/a")]))
            .local_reply()
            .unwrap();
        assert_eq!(reply.body, b"Jwks remote fetch is failed");
        let reply = run(&config, &[(":path", "/a%2Fb")]).local_reply().unwrap();
        assert_eq!(reply.status, 400);
        assert!(run(&config, &[(":path", "/v1/a")]).local_reply().is_none());
    }

    #[test]
    fn remote_keys_pending_pauses() {
        let config = compiled(json!({"jwtRules": [{
            "issuer": ISSUER, "jwksUri": "https://dex/keys", "jwksCluster": "dex"
        }]}));
        let pair = ES256KeyPair::generate();
        let bearer = format!("Bearer {}", pair.sign(claims()).unwrap());
        assert_eq!(
            run(&config, &[(":path", "/"), ("authorization", &bearer)]),
            Decision::WaitForKeys
        );
        assert!(matches!(
            run(&config, &[(":path", "/")]),
            Decision::Forward(_)
        ));
    }

    #[test]
    fn claims_with_control_characters_are_not_copied_and_realm_is_sanitized() {
        let pair = ES256KeyPair::generate();
        let config = kubeflow_jwt_policy(&pair);
        let token = pair
            .sign(claims().with_subject("alice\r\nx-admin: true"))
            .unwrap();
        let bearer = format!("Bearer {token}");
        let Decision::Forward(forward) =
            run(&config, &[(":path", "/a"), ("authorization", &bearer)])
        else {
            panic!()
        };
        assert_eq!(forward.set_headers.len(), 1, "{:?}", forward.set_headers);
        // The claim is not copied, so what the client sent as x-user is still removed.
        assert_eq!(forward.remove_headers, ["authorization", "x-user"]);
        let decision = run(
            &config,
            &[
                (":path", "/a"),
                (":authority", "h\"x"),
                ("authorization", "Bearer x.y.z"),
            ],
        );
        let Decision::Unauthenticated {
            www_authenticate, ..
        } = decision
        else {
            panic!()
        };
        assert_eq!(
            www_authenticate,
            "Bearer realm=\"http://hx/a\", error=\"invalid_token\""
        );
    }
}
