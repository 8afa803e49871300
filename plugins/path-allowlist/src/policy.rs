//! The decision for one request: normalize the path, evaluate the policies as Istio does (a
//! matching DENY policy refuses; then, if there is an ALLOW policy, one of them must match) and
//! apply dry-run. Pure: the glue in `filter.rs` reads the headers and carries the decision out.

use crate::config::Action;
use crate::metrics::Outcome;
use plugin_kit::deny::{rbac_denied, refusal_log_line, LocalReply};
use plugin_kit::istio::{
    normalize_path, MalformedPath, OperationMatcher, PathNormalization, RequestInfo,
};
use std::fmt;
use std::rc::Rc;

/// One AuthorizationPolicy, compiled.
#[derive(Debug)]
pub struct AuthorizationPolicy {
    /// Its name in log lines; `None` for the top-level `action`/`rules`, the plugin's only
    /// policy, whose refusals name the rule alone.
    pub name: Option<Rc<str>>,
    pub action: Action,
    pub matcher: OperationMatcher,
    /// What this policy would refuse is forwarded, counted and logged as a dry-run denial.
    pub dry_run: bool,
}

/// The compiled configuration.
#[derive(Debug)]
pub struct Policy {
    /// In configuration order (DENY policies are evaluated first whatever their position).
    pub policies: Vec<AuthorizationPolicy>,
    pub normalization: PathNormalization,
    pub deny_status: u32,
    /// The plugin-wide `dryRun`: nothing is refused, nothing rewritten.
    pub dry_run: bool,
    /// `strictPaths`: refuse `;` path parameters, which upstreams strip before routing.
    pub strict_paths: bool,
}

/// What the plugin reads from the request headers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub authority: Option<&'a str>,
    /// The raw `:path` bytes; `None` when the header is missing.
    pub path: Option<&'a [u8]>,
    pub port: Option<u16>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Malformed(MalformedPath),
    /// `strictPaths`: the normalized path has a raw `;`.
    PathParameters,
    /// There are ALLOW policies and no rule of any of them matched.
    NoRuleMatched,
    /// A rule (position in its policy's `rules`) of a DENY policy matched.
    RuleDenies {
        /// The policy's name; `None` for the top-level `action`/`rules`.
        policy: Option<Rc<str>>,
        rule: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed path ({why})"),
            Self::PathParameters => f.write_str("path parameters (`;`) refused by strictPaths"),
            Self::NoRuleMatched => f.write_str("no rule matched"),
            Self::RuleDenies { policy: None, rule } => write!(f, "rule {rule} denies"),
            // Debug formatting escapes the name, which the log line must not trust either.
            Self::RuleDenies {
                policy: Some(name),
                rule,
            } => write!(f, "rule {rule} of policy {name:?} denies"),
        }
    }
}

impl Refusal {
    /// The local reply: 400 for a path that cannot be checked, else the RBAC denial.
    pub fn reply(&self, deny_status: u32) -> LocalReply {
        match self {
            Self::Malformed(_) | Self::PathParameters => LocalReply {
                status: 400,
                headers: vec![("content-type", "text/plain".to_string())],
                body: b"Bad Request: malformed path".to_vec(),
            },
            Self::NoRuleMatched | Self::RuleDenies { .. } => rbac_denied(deny_status),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward; with `rewrite_path`, set `:path` to it first (normalization changed the path).
    Allow {
        rewrite_path: Option<String>,
    },
    Refuse(Refusal),
    /// Would be refused but is forwarded: by the plugin-wide `dryRun` (unchanged, `rewrite_path`
    /// is `None`), or only by policies in `dryRun` (with `rewrite_path` as for `Allow`, since
    /// the enforced policies allow the path as checked).
    DryRunRefuse {
        refusal: Refusal,
        rewrite_path: Option<String>,
    },
}

impl Decision {
    pub fn outcome(&self) -> Outcome {
        match self {
            Self::Allow { .. } => Outcome::Allowed,
            Self::Refuse(Refusal::Malformed(_) | Refusal::PathParameters) => Outcome::Malformed,
            Self::Refuse(_) => Outcome::Denied,
            Self::DryRunRefuse { .. } => Outcome::DryRunDenied,
        }
    }
}

impl Policy {
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        let normalized = match request
            .path
            .ok_or(MalformedPath::NotOriginForm)
            .and_then(utf8_path)
            .and_then(|raw| normalize_path(raw, self.normalization))
        {
            Ok(normalized) => normalized,
            Err(why) => return self.refuse(Refusal::Malformed(why)),
        };
        // `/admin;x` and `/;x/admin` reach `/admin` on Tomcat and Spring, but no DENY rule on
        // `/admin` sees them that way: with `strictPaths` such paths are not forwarded at all.
        if self.strict_paths && normalized.path.contains(';') {
            return self.refuse(Refusal::PathParameters);
        }
        let info = RequestInfo {
            method: request.method,
            host: request.authority,
            path: &normalized.path,
            port: request.port,
        };
        if let Some(refusal) = self.evaluate(&info, |policy| !policy.dry_run) {
            return self.refuse(refusal);
        }
        let rewrite_path = (normalized.changed && !self.dry_run).then(|| normalized.request_path());
        // The request is allowed; what the policies in dry run add is what the configuration
        // would refuse once they are enforced too.
        if self.policies.iter().any(|policy| policy.dry_run) {
            if let Some(refusal) = self.evaluate(&info, |_| true) {
                return Decision::DryRunRefuse {
                    refusal,
                    rewrite_path,
                };
            }
        }
        Decision::Allow { rewrite_path }
    }

    /// The operation matchers of all policies: the glue reads a header only if one looks at it.
    pub fn matchers(&self) -> impl Iterator<Item = &OperationMatcher> {
        self.policies.iter().map(|policy| &policy.matcher)
    }

    /// Istio's evaluation of the policies `counted` selects: the first matching DENY policy
    /// refuses, whatever the ALLOW policies say; then, if there is an ALLOW policy, one of them
    /// must match.
    fn evaluate(
        &self,
        request: &RequestInfo<'_>,
        counted: impl Fn(&AuthorizationPolicy) -> bool,
    ) -> Option<Refusal> {
        let counted = &counted;
        let of_action = |action: Action| {
            self.policies
                .iter()
                .filter(move |policy| policy.action == action && counted(policy))
        };
        let denied = of_action(Action::Deny).find_map(|policy| {
            let rule = policy.matcher.first_matching_rule(request)?;
            Some(Refusal::RuleDenies {
                policy: policy.name.clone(),
                rule,
            })
        });
        if let Some(refusal) = denied {
            return Some(refusal);
        }
        let mut allow = of_action(Action::Allow).peekable();
        let has_allow_policy = allow.peek().is_some();
        let allowed = allow.any(|policy| policy.matcher.first_matching_rule(request).is_some());
        (has_allow_policy && !allowed).then_some(Refusal::NoRuleMatched)
    }

    fn refuse(&self, refusal: Refusal) -> Decision {
        if self.dry_run {
            Decision::DryRunRefuse {
                refusal,
                rewrite_path: None,
            }
        } else {
            Decision::Refuse(refusal)
        }
    }
}

/// A `:path` that is not UTF-8 holds a raw non-ASCII byte, which no valid path has.
fn utf8_path(raw: &[u8]) -> Result<&str, MalformedPath> {
    std::str::from_utf8(raw).map_err(|e| {
        MalformedPath::ForbiddenCharacter(raw.get(e.valid_up_to()).copied().unwrap_or_default())
    })
}

/// The info log line for a refusal (or a dry-run one); `None` for an allowed request.
pub fn log_line(
    decision: &Decision,
    request_id: Option<&[u8]>,
    method: &str,
    path: Option<&[u8]>,
) -> Option<String> {
    let (verdict, refusal) = match decision {
        Decision::Allow { .. } => return None,
        Decision::Refuse(refusal) => ("denied", refusal),
        Decision::DryRunRefuse { refusal, .. } => ("dry-run, would deny", refusal),
    };
    Some(refusal_log_line(
        "path-allowlist",
        verdict,
        request_id,
        method.as_bytes(),
        path,
        refusal,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiled::compile;
    use crate::config::Config;
    use plugin_kit::config::parse;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const KUBEFLOW_ALLOWLIST: &str = r#"{"action":"ALLOW","rules":[{"to":[{"operation":{"paths":
        ["/metrics","/healthz","/ready","/wait-for-drain","/v1/models/*","/v2/models/*"]}}]}]}"#;

    fn policy(json: &str) -> Policy {
        parse::<Config>(json.as_bytes()).and_then(compile).unwrap()
    }

    fn get(path: &str) -> Request<'_> {
        Request {
            method: "GET",
            authority: Some("bert-model.default.example.com"),
            path: Some(path.as_bytes()),
            port: None,
        }
    }

    fn decide(policy: &Policy, path: &str) -> Decision {
        policy.decide(&get(path))
    }

    const PASS: Decision = Decision::Allow { rewrite_path: None };

    /// A refusal by a rule of the top-level `action`/`rules`.
    fn rule_denies(rule: usize) -> Refusal {
        Refusal::RuleDenies { policy: None, rule }
    }

    /// A dry-run refusal, forwarded unchanged.
    fn dry_run(refusal: Refusal) -> Decision {
        Decision::DryRunRefuse {
            refusal,
            rewrite_path: None,
        }
    }

    #[test]
    fn kubeflow_allowed_paths_pass_unchanged() {
        let p = policy(KUBEFLOW_ALLOWLIST);
        for path in [
            "/metrics",
            "/healthz",
            "/ready",
            "/wait-for-drain",
            "/v1/models/bert-emotion-model:predict",
            "/v2/models/iris/infer",
            "/v1/models/x?verbose=1&next=/admin",
        ] {
            assert_eq!(decide(&p, path), PASS, "{path}");
        }
    }

    #[test]
    fn kubeflow_other_paths_are_denied() {
        let p = policy(KUBEFLOW_ALLOWLIST);
        for path in [
            "/",
            "/admin",
            "/metrics/../admin",
            "/v1/models",
            "/v1/models/../../admin",
            "/v1/models/%2e%2e/%2e%2e/admin",
            "/v1/models/.%2E/.%2e/admin",
            "/admin?x=/v1/models/a",
            "/V1/models/x",
            "/v3/models/x",
            "/metricsx",
            "/metrics/",
            "/admin%3F/v1/models/a",
            "/admin%23/v1/models/a",
            "/admin;/v1/models/a",
        ] {
            assert_eq!(
                decide(&p, path),
                Decision::Refuse(Refusal::NoRuleMatched),
                "{path}"
            );
        }
    }

    #[test]
    fn attacks_that_cannot_be_normalized_get_400() {
        let p = policy(KUBEFLOW_ALLOWLIST);
        for path in [
            "/v1/models/..%2F..%2Fadmin",
            "/v1/models/..%5C..%5Cadmin",
            "/v1/models/..\\..\\admin",
            "/v1/models/%252e%252e/admin",
            "/v1/models/%c0%ae%c0%ae/admin",
            "/v1/models/x%00",
            "/v1/models/x%",
            "/v1/models/..;/..;/admin",
            "/admin#/v1/models/a",
            "/v1/models/x#/../../admin",
            "/v1/models/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin",
            "/v1/models/%25252e%25252e/admin",
            "/v1/models/x\r\nx-evil: 1",
            "*",
            "http://evil.example/v1/models/x",
        ] {
            let decision = decide(&p, path);
            assert!(
                matches!(decision, Decision::Refuse(Refusal::Malformed(_))),
                "{path}: {decision:?}"
            );
            assert_eq!(decision.outcome(), Outcome::Malformed);
        }
        let missing = Request {
            path: None,
            ..get("/")
        };
        assert_eq!(
            p.decide(&missing),
            Decision::Refuse(Refusal::Malformed(MalformedPath::NotOriginForm))
        );
        let not_utf8 = Request {
            path: Some(b"/v1/models/\xff"),
            ..get("/")
        };
        assert_eq!(
            p.decide(&not_utf8),
            Decision::Refuse(Refusal::Malformed(MalformedPath::ForbiddenCharacter(0xff)))
        );
    }

    #[test]
    fn normalized_allowed_path_is_rewritten_query_untouched() {
        let p = policy(KUBEFLOW_ALLOWLIST);
        for (path, rewritten) in [
            ("//v1//models/x", "/v1/models/x"),
            ("/v1/models/x/../y?a=../b", "/v1/models/y?a=../b"),
            ("/v1/%6dodels/x", "/v1/models/x"),
            ("/admin/../v1/models/x", "/v1/models/x"),
            ("/v1/models/a%3ab", "/v1/models/a:b"),
            ("/v1/models/a%3bb%2b", "/v1/models/a%3Bb%2B"),
        ] {
            assert_eq!(
                decide(&p, path),
                Decision::Allow {
                    rewrite_path: Some(rewritten.to_string())
                },
                "{path}"
            );
        }
    }

    #[test]
    fn deny_policy() {
        let p = policy(
            r#"{"action":"DENY","rules":[
                {"to":[{"operation":{"paths":["/admin*"]}}]},
                {"to":[{"operation":{"methods":["DELETE"],"paths":["/v1/models/*"]}}]}]}"#,
        );
        assert_eq!(decide(&p, "/v1/models/x"), PASS);
        assert_eq!(decide(&p, "/admin"), Decision::Refuse(rule_denies(0)));
        // Bypass attempts on a DENY rule: slashes merged, dots resolved, escapes decoded.
        for path in ["//admin", "/x/../admin", "/%61dmin", "/./admin/"] {
            assert_eq!(decide(&p, path), Decision::Refuse(rule_denies(0)), "{path}");
        }
        let delete = Request {
            method: "DELETE",
            ..get("/v1/models/x")
        };
        assert_eq!(p.decide(&delete), Decision::Refuse(rule_denies(1)));
        // Methods match exactly, as in Istio.
        let lower = Request {
            method: "delete",
            ..get("/v1/models/x")
        };
        assert_eq!(p.decide(&lower), PASS);
        // DENY without rules denies nothing; ALLOW without rules allows nothing.
        assert_eq!(decide(&policy(r#"{"action":"DENY"}"#), "/admin"), PASS);
        assert_eq!(
            decide(&policy("{}"), "/v1/models/x"),
            Decision::Refuse(Refusal::NoRuleMatched)
        );
    }

    #[test]
    fn dry_run_lets_everything_through_unchanged() {
        let p = policy(
            r#"{"dryRun":true,"rules":[{"to":[{"operation":{"paths":["/v1/models/*"]}}]}]}"#,
        );
        assert_eq!(decide(&p, "/admin"), dry_run(Refusal::NoRuleMatched));
        assert_eq!(decide(&p, "/admin").outcome(), Outcome::DryRunDenied);
        assert_eq!(
            decide(&p, "/v1/models/%2F"),
            dry_run(Refusal::Malformed(MalformedPath::EncodedSlash))
        );
        assert_eq!(decide(&p, "//v1/models/x"), PASS);
    }

    #[test]
    fn hosts_and_ports_through_the_policy() {
        let p = policy(
            r#"{"rules":[{"to":[{"operation":{"hosts":["*.example.com"],"ports":["8080"],"paths":["/v1/*"]}}]}]}"#,
        );
        let ok = Request {
            authority: Some("Bert.EXAMPLE.com"),
            port: Some(8080),
            ..get("/v1/x")
        };
        assert_eq!(p.decide(&ok), PASS);
        let other_host = Request {
            authority: Some("example.org"),
            ..ok
        };
        assert_eq!(
            p.decide(&other_host),
            Decision::Refuse(Refusal::NoRuleMatched)
        );
        let no_host = Request {
            authority: None,
            ..ok
        };
        assert_eq!(p.decide(&no_host), Decision::Refuse(Refusal::NoRuleMatched));
        let other_port = Request {
            port: Some(9090),
            ..ok
        };
        assert_eq!(
            p.decide(&other_port),
            Decision::Refuse(Refusal::NoRuleMatched)
        );
    }

    #[test]
    fn replies() {
        let denied = Refusal::NoRuleMatched.reply(403);
        assert_eq!(
            (denied.status, denied.body.as_slice()),
            (403, &b"RBAC: access denied"[..])
        );
        assert_eq!(rule_denies(0).reply(404).status, 404);
        let malformed = Refusal::Malformed(MalformedPath::EncodedSlash).reply(403);
        assert_eq!(malformed.status, 400);
    }

    #[test]
    fn outcomes_have_distinct_metric_names() {
        let mut names: Vec<&str> = Outcome::ALL.iter().map(|o| o.metric_name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Outcome::ALL.len());
        assert_eq!(PASS.outcome(), Outcome::Allowed);
        assert_eq!(Decision::Refuse(rule_denies(1)).outcome(), Outcome::Denied);
    }

    #[test]
    fn log_lines_escape_hostile_values() {
        let decision = Decision::Refuse(rule_denies(2));
        let line = log_line(
            &decision,
            Some(b"abc-123"),
            "GET",
            Some(b"/admin\r\nforged"),
        )
        .unwrap();
        assert_eq!(
            line,
            r#"path-allowlist: denied request_id="abc-123" method="GET" path="/admin\r\nforged": rule 2 denies"#
        );
        let long = vec![b'a'; 10_000];
        let line = log_line(&decision, None, "GET", Some(&long)).unwrap();
        assert!(line.len() < 400, "{}", line.len());
        assert!(line.contains("request_id=\"-\""));
        let dry = dry_run(Refusal::NoRuleMatched);
        assert!(log_line(&dry, None, "GET", None)
            .unwrap()
            .contains("dry-run, would deny"));
        assert_eq!(log_line(&PASS, None, "GET", None), None);
    }

    #[test]
    fn thousand_paths_policy_matches_like_ten() {
        let small = policy(&many_paths_config(10));
        let large = policy(&many_paths_config(1000));
        assert_eq!(decide(&large, "/svc999/models/x"), PASS);
        assert_eq!(
            decide(&large, "/svc1000/models/x"),
            Decision::Refuse(Refusal::NoRuleMatched)
        );
        for path in ["/svc5/models/a", "/nope", "/svc5/x"] {
            assert_eq!(decide(&small, path), decide(&large, path), "{path}");
        }
    }

    /// Rules mixing the forms: per i, an exact path, a prefix, a suffix and a template.
    fn many_paths_config(n: usize) -> String {
        let paths: Vec<String> = (0..n)
            .flat_map(|i| {
                [
                    format!("\"/svc{i}/models/*\""),
                    format!("\"/exact{i}\""),
                    format!("\"*.ext{i}\""),
                    format!("\"/t{i}/{{*}}/infer\""),
                ]
            })
            .collect();
        format!(
            r#"{{"rules":[{{"to":[{{"operation":{{"paths":[{}]}}}}]}}]}}"#,
            paths.join(",")
        )
    }

    #[test]
    fn deny_template_matches_equals_star_and_parameters_like_envoy() {
        let p = policy(
            r#"{"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin/{**}","/v1/models/{*}/internal"]}}]}]}"#,
        );
        for path in [
            "/admin/a=b",
            "/admin/x*",
            "/admin/secret;v=1",
            "/admin/secret;*",
            "/v1/models/bert;v=1/internal",
        ] {
            assert_eq!(decide(&p, path), Decision::Refuse(rule_denies(0)), "{path}");
        }
    }

    #[test]
    fn deny_is_not_bypassed_by_escaped_reserved_characters() {
        let p = policy(
            r#"{"action":"DENY","rules":[{"to":[{"operation":{"paths":["*:explain","/v1/models/team@prod*"]}}]}]}"#,
        );
        for path in [
            "/v1/models/x:explain",
            "/v1/models/x%3Aexplain",
            "/v1/models/x%3aexplain",
            "/v1/models/team%40prod/infer",
        ] {
            assert_eq!(decide(&p, path), Decision::Refuse(rule_denies(0)), "{path}");
        }
        // What is allowed is forwarded in the form that was matched.
        assert_eq!(
            decide(&p, "/v1/models/x%3Apredict?a=%3A"),
            Decision::Allow {
                rewrite_path: Some("/v1/models/x:predict?a=%3A".to_string())
            }
        );
    }

    #[test]
    fn deny_hosts_match_the_whole_authority_as_istio() {
        // istiod matches `hosts` on `:authority` as received, port and trailing dot included:
        // a DENY must list the spellings it means (checked against Envoy by `harness diff`).
        let p = policy(
            r#"{"action":"DENY","rules":[{"to":[{"operation":{"hosts":["admin.example.com","admin.example.com:*"]}}]}]}"#,
        );
        for (authority, denied) in [
            ("admin.example.com", true),
            ("ADMIN.example.com:443", true),
            ("admin.example.com.", false),
            ("other.example.com", false),
        ] {
            let request = Request {
                authority: Some(authority),
                ..get("/")
            };
            let expected = if denied {
                Decision::Refuse(rule_denies(0))
            } else {
                PASS
            };
            assert_eq!(p.decide(&request), expected, "{authority}");
        }
    }

    #[test]
    fn strict_paths_refuses_path_parameters() {
        let deny = r#""action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]"#;
        // Default: as in Istio, `/;x/admin` is not `/admin` to the matcher.
        let lenient = policy(&format!("{{{deny}}}"));
        assert_eq!(decide(&lenient, "/;x/admin"), PASS);
        let strict = policy(&format!(r#"{{{deny},"strictPaths":true}}"#));
        for path in ["/;x/admin", "/admin;x", "/v1/models/x;v=1"] {
            let decision = decide(&strict, path);
            assert_eq!(
                decision,
                Decision::Refuse(Refusal::PathParameters),
                "{path}"
            );
            assert_eq!(decision.outcome(), Outcome::Malformed);
        }
        assert_eq!(Refusal::PathParameters.reply(403).status, 400);
        // A query may hold `;`, and `%3B` is a literal character of the segment.
        assert_eq!(decide(&strict, "/v1/models/x?a=1;b=2"), PASS);
        assert_eq!(decide(&strict, "/v1/models/x%3Bv"), PASS);
        assert_eq!(decide(&strict, "/admin"), Decision::Refuse(rule_denies(0)));
    }

    /// Two ALLOW policies (models, probes) and a DENY policy on the models' internals, written
    /// after them: Istio's order does not depend on the position in `policies`.
    const POLICIES: &str = r#"{"policies":[
        {"name":"models","rules":[{"to":[{"operation":{"paths":["/v1/models/*"]}}]}]},
        {"name":"probes","action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/healthz","/ready"]}}]}]},
        {"name":"internal","action":"DENY","rules":[
            {"to":[{"operation":{"methods":["DELETE"]}}]},
            {"to":[{"operation":{"paths":["*/internal"]}}]}]}]}"#;

    fn denied_by(policy: &str, rule: usize) -> Refusal {
        Refusal::RuleDenies {
            policy: Some(Rc::from(policy)),
            rule,
        }
    }

    #[test]
    fn two_allow_policies_allow_their_union() {
        let p = policy(POLICIES);
        for path in [
            "/v1/models/bert",
            "/healthz",
            "/ready",
            "//v1/models/x/../bert",
        ] {
            assert!(matches!(decide(&p, path), Decision::Allow { .. }), "{path}");
        }
        for path in ["/", "/admin", "/v2/models/x", "/healthz/x"] {
            assert_eq!(
                decide(&p, path),
                Decision::Refuse(Refusal::NoRuleMatched),
                "{path}"
            );
        }
        // As in the single-policy form, the path forwarded is the one checked.
        assert_eq!(
            decide(&p, "//v1/models/bert"),
            Decision::Allow {
                rewrite_path: Some("/v1/models/bert".to_string())
            }
        );
    }

    #[test]
    fn a_matching_deny_policy_refuses_what_an_allow_policy_allows() {
        let p = policy(POLICIES);
        assert_eq!(
            decide(&p, "/v1/models/bert/internal"),
            Decision::Refuse(denied_by("internal", 1))
        );
        let delete = Request {
            method: "DELETE",
            ..get("/healthz")
        };
        assert_eq!(
            p.decide(&delete),
            Decision::Refuse(denied_by("internal", 0))
        );
        // The first DENY policy in configuration order names the refusal.
        let two_deny = policy(
            r#"{"policies":[
                {"name":"a","action":"DENY","rules":[{"to":[{"operation":{"paths":["/x*"]}}]}]},
                {"name":"b","action":"DENY","rules":[{"to":[{"operation":{"paths":["/x"]}}]}]}]}"#,
        );
        assert_eq!(decide(&two_deny, "/x"), Decision::Refuse(denied_by("a", 0)));
    }

    #[test]
    fn deny_policies_alone_allow_everything_else() {
        let p = policy(
            r#"{"policies":[
                {"action":"DENY","rules":[{"to":[{"operation":{"paths":["/admin*"]}}]}]},
                {"action":"DENY","rules":[{"to":[{"operation":{"methods":["DELETE"]}}]}]}]}"#,
        );
        assert_eq!(decide(&p, "/v1/models/x"), PASS);
        assert_eq!(decide(&p, "/anything"), PASS);
        assert_eq!(
            decide(&p, "//admin"),
            Decision::Refuse(denied_by("policies[0]", 0))
        );
        let delete = Request {
            method: "DELETE",
            ..get("/v1/models/x")
        };
        assert_eq!(
            p.decide(&delete),
            Decision::Refuse(denied_by("policies[1]", 0))
        );
        // No policy at all: Istio allows; malformed paths are still refused.
        let none = policy(r#"{"policies":[]}"#);
        assert_eq!(decide(&none, "/admin"), PASS);
        assert!(matches!(
            decide(&none, "/a%2Fb"),
            Decision::Refuse(Refusal::Malformed(_))
        ));
        // A DENY policy without rules denies nothing; an ALLOW one allows nothing.
        let empty = policy(r#"{"policies":[{"action":"DENY"},{"name":"nothing"}]}"#);
        assert_eq!(
            decide(&empty, "/admin"),
            Decision::Refuse(Refusal::NoRuleMatched)
        );
    }

    #[test]
    fn a_dry_run_policy_is_counted_but_does_not_refuse() {
        let p = policy(
            r#"{"policies":[
                {"name":"models","rules":[{"to":[{"operation":{"paths":["/v1/models/*"]}}]}]},
                {"name":"new-deny","action":"DENY","dryRun":true,
                 "rules":[{"to":[{"operation":{"paths":["/v1/models/old*"]}}]}]}]}"#,
        );
        let decision = decide(&p, "/v1/models/old-bert");
        assert_eq!(
            decision,
            Decision::DryRunRefuse {
                refusal: denied_by("new-deny", 0),
                rewrite_path: None
            }
        );
        assert_eq!(decision.outcome(), Outcome::DryRunDenied);
        let line = log_line(&decision, None, "GET", Some(b"/v1/models/old-bert")).unwrap();
        assert!(
            line.contains(r#"dry-run, would deny"#)
                && line.ends_with(r#": rule 0 of policy "new-deny" denies"#),
            "{line}"
        );
        // Only the plugin-wide dryRun forwards paths unnormalized: the enforced policies
        // allowed the path as checked, so it is forwarded as checked.
        assert_eq!(
            decide(&p, "//v1/models/old-bert"),
            Decision::DryRunRefuse {
                refusal: denied_by("new-deny", 0),
                rewrite_path: Some("/v1/models/old-bert".to_string())
            }
        );
        // What the enforced policies refuse is refused, dry-run policies or not.
        assert_eq!(
            decide(&p, "/admin"),
            Decision::Refuse(Refusal::NoRuleMatched)
        );
        assert_eq!(decide(&p, "/v1/models/bert"), PASS);
    }

    #[test]
    fn a_dry_run_allow_policy_counts_what_no_allow_policy_would_allow() {
        let alone = policy(
            r#"{"policies":[{"name":"probes","dryRun":true,
                "rules":[{"to":[{"operation":{"paths":["/healthz"]}}]}]}]}"#,
        );
        assert_eq!(decide(&alone, "/healthz"), PASS);
        assert_eq!(decide(&alone, "/admin"), dry_run(Refusal::NoRuleMatched));
        // Next to an enforced ALLOW policy, the union is what would be allowed.
        let next_to_enforced = policy(
            r#"{"policies":[
                {"name":"models","rules":[{"to":[{"operation":{"paths":["/v1/models/*"]}}]}]},
                {"name":"probes","dryRun":true,"rules":[{"to":[{"operation":{"paths":["/healthz"]}}]}]}]}"#,
        );
        assert_eq!(decide(&next_to_enforced, "/v1/models/x"), PASS);
        assert_eq!(
            decide(&next_to_enforced, "/healthz"),
            Decision::Refuse(Refusal::NoRuleMatched)
        );
    }

    #[test]
    fn plugin_wide_dry_run_covers_every_policy() {
        let p = policy(&POLICIES.replacen('{', r#"{"dryRun":true,"#, 1));
        assert_eq!(decide(&p, "/admin"), dry_run(Refusal::NoRuleMatched));
        assert_eq!(
            decide(&p, "/v1/models/x/internal"),
            dry_run(denied_by("internal", 1))
        );
        assert_eq!(decide(&p, "//v1/models/x"), PASS);
    }
}
