//! AuthorizationPolicy evaluation with Istio's semantics: a matching DENY policy denies; then,
//! if any ALLOW policy exists, one of them must match; otherwise the request is allowed. A rule
//! matches when any of its `from` sources, any of its `to` operations and all of its `when`
//! conditions match (an absent part is not checked). The `to` part is the shared Istio matcher.

use crate::config::{Action, Condition, Policy, Source};
use crate::constant_time::equals_secret;
use crate::ip::IpBlock;
use crate::request::RequestView;
use crate::token::Identity;
use plugin_kit::config::ConfigError;
use plugin_kit::istio::{
    Case, OperationMatcher, PathNormalization, RequestInfo, StringPattern, StringSet,
};
use serde_json::Value;
use std::borrow::Cow;
use std::net::IpAddr;

/// What the policies see of a request.
pub struct Attributes<'a> {
    pub request: &'a RequestView<'a>,
    /// The operation (method, host, normalized path, port) for `to`.
    pub operation: RequestInfo<'a>,
    /// The verified JWT, if any.
    pub identity: Option<&'a Identity>,
    /// The client address as Envoy resolved it (`source.address`), when policies use it.
    pub remote_ip: Option<IpAddr>,
    /// Claims read as space-separated lists (the verifying rule's `spaceDelimitedClaims`).
    pub space_delimited_claims: &'a [String],
}

/// Claims Istio always reads as space-separated lists.
const ALWAYS_SPACE_DELIMITED: [&str; 2] = ["scope", "permission"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Denied by the named DENY policy, or (`None`) because no ALLOW policy matched.
    Denied {
        policy: Option<String>,
    },
}

pub struct Policies {
    deny: Vec<CompiledPolicy>,
    allow: Vec<CompiledPolicy>,
}

struct CompiledPolicy {
    name: String,
    /// Evaluated only for [`Policies::dry_run_verdict`].
    dry_run: bool,
    operations: OperationMatcher,
    rules: Vec<CompiledRule>,
}

struct CompiledRule {
    sources: Vec<CompiledSource>,
    conditions: Vec<CompiledCondition>,
}

struct CompiledSource {
    request_principals: Option<PrincipalSet>,
    not_request_principals: Option<PrincipalSet>,
    remote_ip_blocks: Option<Vec<IpBlock>>,
    not_remote_ip_blocks: Option<Vec<IpBlock>>,
}

struct CompiledCondition {
    attribute: Attribute,
    values: Option<Values>,
    not_values: Option<Values>,
}

/// The `values` / `notValues` of a condition: Istio strings, IP blocks for `remote.ip`,
/// request principals for `request.auth.principal`.
enum Values {
    Strings(ValueSet),
    IpBlocks(Vec<IpBlock>),
    Principals(PrincipalSet),
}

impl Values {
    /// Whether one of the attribute's values (`candidates`) matches.
    fn match_any(&self, candidates: &[Cow<'_, str>], identity: Option<&Identity>) -> bool {
        match self {
            Values::Strings(set) => candidates.iter().any(|value| set.matches(value)),
            Values::IpBlocks(blocks) => candidates.iter().any(|value| {
                plugin_kit::properties::parse_address(value)
                    .is_some_and(|ip| blocks.iter().any(|block| block.contains(ip)))
            }),
            Values::Principals(set) => set.matches(identity),
        }
    }
}

/// One side of a request principal: Istio's `*` here means "present and non-empty".
#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalPart {
    NonEmpty,
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl PrincipalPart {
    fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (_, None) => false,
            (Self::NonEmpty, Some(v)) => !v.is_empty(),
            (Self::Exact(e), Some(v)) => v == e,
            (Self::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
            (Self::Suffix(s), Some(v)) => v.ends_with(s.as_str()),
        }
    }
}

/// Request principals (`<iss>/<sub>` with Istio's `*` forms), matched as istiod translates
/// them: the value split at its last `/` (issuers are URLs), the token's `iss` and `sub`
/// matched separately, both required. `*` is any token with a non-empty `iss` and `sub`; a
/// value without `/` is an issuer with an empty `sub`.
struct PrincipalSet(Vec<(PrincipalPart, PrincipalPart)>);

impl PrincipalSet {
    fn compile(values: &[String], field: &str) -> Result<Self, ConfigError> {
        if values.is_empty() {
            return Err(ConfigError::new(field, "must not be empty when present"));
        }
        values
            .iter()
            .enumerate()
            .map(|(k, value)| {
                if value.is_empty() {
                    return Err(ConfigError::new(
                        format!("{field}[{k}]"),
                        "empty value is not allowed",
                    ));
                }
                Ok(principal_pattern(value))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn matches(&self, identity: Option<&Identity>) -> bool {
        let Some(identity) = identity else {
            return false;
        };
        let (iss, sub) = (identity.issuer.as_deref(), identity.subject.as_deref());
        self.0.iter().any(|(i, s)| i.matches(iss) && s.matches(sub))
    }
}

fn principal_pattern(value: &str) -> (PrincipalPart, PrincipalPart) {
    use PrincipalPart::{Exact, NonEmpty, Prefix, Suffix};
    let split = value.rfind('/').map(|at| (&value[..at], &value[at + 1..]));
    if value == "*" {
        return (NonEmpty, NonEmpty);
    }
    if let Some(rest) = value.strip_prefix('*') {
        return match split {
            Some(("*", sub)) => (NonEmpty, Exact(sub.into())),
            Some((iss, sub)) => (Suffix(iss[1..].into()), Exact(sub.into())),
            None => (NonEmpty, Suffix(rest.into())),
        };
    }
    if let Some(rest) = value.strip_suffix('*') {
        return match split {
            Some((iss, "*")) => (Exact(iss.into()), NonEmpty),
            Some((iss, sub)) => (Exact(iss.into()), Prefix(sub[..sub.len() - 1].into())),
            None => (Prefix(rest.into()), NonEmpty),
        };
    }
    match split {
        Some((iss, sub)) => (Exact(iss.into()), Exact(sub.into())),
        None => (Exact(value.into()), Exact(String::new())),
    }
}

fn compile_ip_blocks(values: &[String], field: &str) -> Result<Vec<IpBlock>, ConfigError> {
    if values.is_empty() {
        return Err(ConfigError::new(field, "must not be empty when present"));
    }
    values
        .iter()
        .enumerate()
        .map(|(k, value)| {
            IpBlock::parse(value)
                .map_err(|reason| ConfigError::new(format!("{field}[{k}]"), reason))
        })
        .collect()
}

enum Attribute {
    /// Lowercase header name.
    Header(String),
    Principal,
    Audiences,
    Presenter,
    /// Path of nested claim names: `[a][b]` is `["a", "b"]`.
    Claim(Vec<String>),
    RemoteIp,
}

/// Istio string values. For headers, exact values (which may be secrets: API keys, shared
/// tokens) are compared in constant time, so response timing reveals nothing about them; the
/// other forms go through the shared matcher.
struct ValueSet {
    exact_secrets: Vec<Box<[u8]>>,
    others: Option<StringSet>,
}

impl ValueSet {
    fn compile(values: &[String], constant_time: bool, field: &str) -> Result<Self, ConfigError> {
        if values.is_empty() {
            return Err(ConfigError::new(field, "must not be empty when present"));
        }
        let mut exact_secrets = Vec::new();
        let mut others = Vec::new();
        for (k, value) in values.iter().enumerate() {
            let pattern = StringPattern::parse(value)
                .map_err(|reason| ConfigError::new(format!("{field}[{k}]"), reason))?;
            match pattern {
                StringPattern::Exact(exact) if constant_time => {
                    exact_secrets.push(exact.as_bytes().into())
                }
                _ => others.push(value.clone()),
            }
        }
        let others = if others.is_empty() {
            None
        } else {
            Some(StringSet::compile(&others, Case::Sensitive, field)?)
        };
        Ok(Self {
            exact_secrets,
            others,
        })
    }

    fn matches(&self, value: &str) -> bool {
        // Every secret is compared, whichever matches, so the time does not depend on which.
        let exact = self.exact_secrets.iter().fold(false, |found, secret| {
            equals_secret(secret, value.as_bytes()) | found
        });
        exact || self.others.as_ref().is_some_and(|set| set.matches(value))
    }
}

impl Policies {
    /// `mode`: how request paths are normalized (path patterns are checked against it).
    pub fn compile(policies: &[Policy], mode: PathNormalization) -> Result<Self, ConfigError> {
        let mut compiled = Self {
            deny: Vec::new(),
            allow: Vec::new(),
        };
        for (i, policy) in policies.iter().enumerate() {
            let field = format!("policies[{i}]");
            if policy.provider.is_some() {
                return Err(ConfigError::new(
                    format!("{field}.provider"),
                    "CUSTOM providers (external authorization) cannot be called from this plugin",
                ));
            }
            let target = match policy.action {
                Action::Allow => &mut compiled.allow,
                Action::Deny => &mut compiled.deny,
                Action::Audit | Action::Custom => {
                    return Err(ConfigError::new(
                        format!("{field}.action"),
                        "only ALLOW and DENY are supported (AUDIT and CUSTOM need Envoy filters a Wasm plugin cannot drive)",
                    ))
                }
            };
            let operations = OperationMatcher::compile(
                policy.rules.iter().map(|rule| rule.to.as_slice()),
                &format!("{field}.rules"),
                mode,
            )?;
            let rules = policy
                .rules
                .iter()
                .enumerate()
                .map(|(j, rule)| {
                    let field = format!("{field}.rules[{j}]");
                    Ok(CompiledRule {
                        sources: rule
                            .from
                            .iter()
                            .enumerate()
                            .map(|(k, from)| {
                                compile_source(&from.source, &format!("{field}.from[{k}].source"))
                            })
                            .collect::<Result<_, ConfigError>>()?,
                        conditions: rule
                            .when
                            .iter()
                            .enumerate()
                            .map(|(k, when)| compile_condition(when, &format!("{field}.when[{k}]")))
                            .collect::<Result<_, ConfigError>>()?,
                    })
                })
                .collect::<Result<_, ConfigError>>()?;
            target.push(CompiledPolicy {
                name: policy.name.clone().unwrap_or(field),
                dry_run: policy.dry_run,
                operations,
                rules,
            });
        }
        Ok(compiled)
    }

    /// Whether any operation names `ports` / `notPorts` (only then is the port looked up).
    pub fn uses_ports(&self) -> bool {
        self.deny
            .iter()
            .chain(&self.allow)
            .any(|policy| policy.operations.uses_ports())
    }

    /// Whether any operation looks at the path (only then must it be normalized, and a path
    /// that cannot be is refused).
    pub fn uses_paths(&self) -> bool {
        self.deny
            .iter()
            .chain(&self.allow)
            .any(|policy| policy.operations.uses_paths())
    }

    /// Whether any rule looks at the client address (only then is it looked up).
    pub fn uses_remote_ip(&self) -> bool {
        self.deny.iter().chain(&self.allow).any(|policy| {
            policy.rules.iter().any(|rule| {
                rule.sources.iter().any(CompiledSource::uses_remote_ip)
                    || rule
                        .conditions
                        .iter()
                        .any(|c| matches!(c.attribute, Attribute::RemoteIp))
            })
        })
    }

    /// DENY first, then ALLOW, as Istio orders them; dry-run policies decide nothing.
    pub fn evaluate(&self, attributes: &Attributes<'_>) -> Verdict {
        self.evaluate_with(attributes, false)
    }

    /// What the verdict would be if the dry-run policies were enforced too (Istio's shadow
    /// rules); `None` when there are none.
    pub fn dry_run_verdict(&self, attributes: &Attributes<'_>) -> Option<Verdict> {
        self.deny
            .iter()
            .chain(&self.allow)
            .any(|p| p.dry_run)
            .then(|| self.evaluate_with(attributes, true))
    }

    fn evaluate_with(&self, attributes: &Attributes<'_>, with_dry_run: bool) -> Verdict {
        let active = |policy: &&CompiledPolicy| with_dry_run || !policy.dry_run;
        if let Some(policy) = self
            .deny
            .iter()
            .filter(active)
            .find(|p| p.matches(attributes))
        {
            return Verdict::Denied {
                policy: Some(policy.name.clone()),
            };
        }
        let mut allow = self.allow.iter().filter(active).peekable();
        if allow.peek().is_none() || allow.any(|p| p.matches(attributes)) {
            Verdict::Allowed
        } else {
            Verdict::Denied { policy: None }
        }
    }
}

impl CompiledPolicy {
    fn matches(&self, attributes: &Attributes<'_>) -> bool {
        self.operations
            .matching_rules(&attributes.operation)
            .into_iter()
            .filter_map(|index| self.rules.get(index))
            .any(|rule| rule.matches(attributes))
    }
}

impl CompiledRule {
    fn matches(&self, attributes: &Attributes<'_>) -> bool {
        (self.sources.is_empty()
            || self
                .sources
                .iter()
                .any(|s| s.matches(attributes.identity, attributes.remote_ip)))
            && self.conditions.iter().all(|c| c.matches(attributes))
    }
}

fn compile_source(source: &Source, field: &str) -> Result<CompiledSource, ConfigError> {
    let mtls = [
        ("principals", &source.principals),
        ("notPrincipals", &source.not_principals),
        ("namespaces", &source.namespaces),
        ("notNamespaces", &source.not_namespaces),
        ("serviceAccounts", &source.service_accounts),
        ("notServiceAccounts", &source.not_service_accounts),
        ("trustDomains", &source.trust_domains),
        ("notTrustDomains", &source.not_trust_domains),
    ];
    if let Some((name, _)) = mtls.iter().find(|(_, value)| value.is_some()) {
        return Err(ConfigError::new(
            format!("{field}.{name}"),
            "mTLS peer identities are not visible to a Wasm plugin; use requestPrincipals",
        ));
    }
    let direct_peer = [
        ("ipBlocks", &source.ip_blocks),
        ("notIpBlocks", &source.not_ip_blocks),
    ];
    if let Some((name, _)) = direct_peer.iter().find(|(_, value)| value.is_some()) {
        return Err(ConfigError::new(
            format!("{field}.{name}"),
            DIRECT_PEER_UNAVAILABLE,
        ));
    }
    let ip_blocks = |values: &Option<Vec<String>>, name: &str| {
        values
            .as_ref()
            .map(|values| compile_ip_blocks(values, &format!("{field}.{name}")))
            .transpose()
    };
    let principals = |values: &Option<Vec<String>>, name: &str| {
        values
            .as_ref()
            .map(|values| PrincipalSet::compile(values, &format!("{field}.{name}")))
            .transpose()
    };
    Ok(CompiledSource {
        request_principals: principals(&source.request_principals, "requestPrincipals")?,
        not_request_principals: principals(&source.not_request_principals, "notRequestPrincipals")?,
        remote_ip_blocks: ip_blocks(&source.remote_ip_blocks, "remoteIpBlocks")?,
        not_remote_ip_blocks: ip_blocks(&source.not_remote_ip_blocks, "notRemoteIpBlocks")?,
    })
}

/// Why `ipBlocks` and `source.ip` are refused.
const DIRECT_PEER_UNAVAILABLE: &str = "the direct peer address is not visible to a Wasm plugin; use remoteIpBlocks / remote.ip (the client address Envoy resolved, which is the peer when no trusted proxy is configured)";

impl CompiledSource {
    fn matches(&self, identity: Option<&Identity>, remote_ip: Option<IpAddr>) -> bool {
        let in_set = |set: &PrincipalSet| set.matches(identity);
        let in_blocks = |blocks: &Vec<IpBlock>| {
            remote_ip.is_some_and(|ip| blocks.iter().any(|b| b.contains(ip)))
        };
        self.request_principals.as_ref().is_none_or(in_set)
            && self
                .not_request_principals
                .as_ref()
                .is_none_or(|set| !in_set(set))
            && self.remote_ip_blocks.as_ref().is_none_or(in_blocks)
            && self
                .not_remote_ip_blocks
                .as_ref()
                .is_none_or(|b| !in_blocks(b))
    }

    fn uses_remote_ip(&self) -> bool {
        self.remote_ip_blocks.is_some() || self.not_remote_ip_blocks.is_some()
    }
}

fn compile_condition(condition: &Condition, field: &str) -> Result<CompiledCondition, ConfigError> {
    let key_field = format!("{field}.key");
    let attribute =
        parse_key(&condition.key).map_err(|reason| ConfigError::new(&key_field, reason))?;
    if condition.values.is_none() && condition.not_values.is_none() {
        return Err(ConfigError::new(
            field,
            "one of `values` or `notValues` is required",
        ));
    }
    let constant_time = matches!(attribute, Attribute::Header(_));
    let compile = |values: &Option<Vec<String>>, name: &str| {
        let field = format!("{field}.{name}");
        values
            .as_ref()
            .map(|values| match attribute {
                Attribute::RemoteIp => compile_ip_blocks(values, &field).map(Values::IpBlocks),
                Attribute::Principal => {
                    PrincipalSet::compile(values, &field).map(Values::Principals)
                }
                _ => ValueSet::compile(values, constant_time, &field).map(Values::Strings),
            })
            .transpose()
    };
    Ok(CompiledCondition {
        values: compile(&condition.values, "values")?,
        not_values: compile(&condition.not_values, "notValues")?,
        attribute,
    })
}

fn parse_key(key: &str) -> Result<Attribute, String> {
    match key {
        "request.auth.principal" => return Ok(Attribute::Principal),
        "request.auth.audiences" => return Ok(Attribute::Audiences),
        "request.auth.presenter" => return Ok(Attribute::Presenter),
        "remote.ip" => return Ok(Attribute::RemoteIp),
        "source.ip" => return Err(format!("`{key}`: {DIRECT_PEER_UNAVAILABLE}")),
        _ => {}
    }
    if let Some(name) = key
        .strip_prefix("request.headers[")
        .and_then(|r| r.strip_suffix(']'))
    {
        if name.is_empty() || name.contains(['[', ']']) {
            return Err(format!("`{key}`: expected request.headers[<name>]"));
        }
        // Envoy keeps `Host` as `:authority` and its header matchers read `host` as that.
        let name = name.to_ascii_lowercase();
        return Ok(Attribute::Header(if name == "host" {
            ":authority".to_string()
        } else {
            name
        }));
    }
    if let Some(path) = key.strip_prefix("request.auth.claims") {
        let names = path
            .strip_prefix('[')
            .and_then(|p| p.strip_suffix(']'))
            .map(|inner| inner.split("][").map(str::to_string).collect::<Vec<_>>())
            .filter(|names| {
                names
                    .iter()
                    .all(|n| !n.is_empty() && !n.contains(['[', ']']))
            });
        return names
            .map(Attribute::Claim)
            .ok_or_else(|| format!("`{key}`: expected request.auth.claims[<name>] or [<a>][<b>]"));
    }
    let unsupported = [
        "source.namespace",
        "source.principal",
        "source.serviceAccount",
        "destination.ip",
        "destination.port",
        "connection.sni",
    ];
    if unsupported.contains(&key) || key.starts_with("experimental.") {
        return Err(format!("`{key}` is not supported by auth-gate"));
    }
    Err(format!("`{key}` is not an Istio authorization attribute"))
}

impl CompiledCondition {
    /// `values`: some value of the attribute matches one of them. `notValues`: no value does.
    /// An absent attribute matches no `values` and every `notValues`.
    fn matches(&self, attributes: &Attributes<'_>) -> bool {
        let candidates = self.attribute.values(attributes);
        let any_in = |set: &Values| set.match_any(&candidates, attributes.identity);
        self.values.as_ref().is_none_or(any_in)
            && self.not_values.as_ref().is_none_or(|set| !any_in(set))
    }
}

impl Attribute {
    /// The attribute's values, borrowed from the request and the token where they are.
    fn values<'v>(&'v self, attributes: &'v Attributes<'v>) -> Vec<Cow<'v, str>> {
        let identity = attributes.identity;
        match self {
            // Each header line on its own, as Envoy's header matcher reads a repeated header.
            Attribute::Header(name) => attributes.request.values(name).map(Cow::Borrowed).collect(),
            // Matched on `iss` and `sub` by `Values::Principals`.
            Attribute::Principal => Vec::new(),
            Attribute::Audiences => identity
                .map(|id| {
                    id.audiences
                        .iter()
                        .map(|a| Cow::Borrowed(a.as_str()))
                        .collect()
                })
                .unwrap_or_default(),
            Attribute::Presenter => identity
                .and_then(|id| id.presenter.as_deref())
                .map(Cow::Borrowed)
                .into_iter()
                .collect(),
            Attribute::RemoteIp => attributes
                .remote_ip
                .map(|ip| Cow::Owned(ip.to_string()))
                .into_iter()
                .collect(),
            Attribute::Claim(path) => {
                let Some(identity) = identity else {
                    return Vec::new();
                };
                let mut names = path.iter();
                let first = names.next().map(String::as_str).unwrap_or_default();
                let mut value = identity.claims.get(first);
                for name in names {
                    value = value.and_then(|v| v.get(name));
                }
                let split = path.len() == 1
                    && (ALWAYS_SPACE_DELIMITED.contains(&first)
                        || attributes.space_delimited_claims.iter().any(|c| c == first));
                claim_strings(value, split)
            }
        }
    }
}

/// A claim as strings: a string (its words when the claim is space-delimited), or each string
/// of a list. Other JSON types match nothing, as in Istio.
fn claim_strings(value: Option<&Value>, split: bool) -> Vec<Cow<'_, str>> {
    match value {
        // Envoy turns a space-delimited claim into the list of its words.
        Some(Value::String(text)) if split => text
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(Cow::Borrowed)
            .collect(),
        Some(Value::String(text)) => vec![Cow::Borrowed(text)],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(Cow::Borrowed)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::request::tests::request;
    use serde_json::json;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn policies(json: serde_json::Value) -> Policies {
        let config: Config = serde_json::from_value(json!({ "policies": json })).unwrap();
        Policies::compile(&config.policies, config.path_normalization).unwrap()
    }

    fn compile_error(json: serde_json::Value) -> ConfigError {
        let config: Config = serde_json::from_value(json!({ "policies": json })).unwrap();
        Policies::compile(&config.policies, config.path_normalization)
            .err()
            .unwrap()
    }

    /// A verified token of `principal` (`<iss>/<sub>`, split at the last `/`).
    fn identity(principal: &str, claims: serde_json::Value) -> Identity {
        let (issuer, subject) = principal.rsplit_once('/').unwrap_or((principal, ""));
        Identity {
            issuer: Some(issuer.to_string()),
            subject: Some(subject.to_string()),
            audiences: vec!["kserve".into(), "other".into()],
            presenter: Some("web-ui".into()),
            claims: claims.as_object().cloned().unwrap_or_default(),
            payload: String::new(),
            expires_at: None,
        }
    }

    /// Evaluates with the request's `:method`/`:path` (already normalized) and headers.
    fn verdict(p: &Policies, headers: &[(&str, &str)], identity: Option<&Identity>) -> Verdict {
        let req = request(headers);
        let path = req.path().split('?').next().unwrap_or_default().to_string();
        let attributes = Attributes {
            request: &req,
            operation: RequestInfo {
                method: req.method(),
                host: req.authority(),
                path: &path,
                port: Some(8080),
            },
            identity,
            remote_ip: None,
            space_delimited_claims: &[],
        };
        p.evaluate(&attributes)
    }

    const DENIED: Verdict = Verdict::Denied { policy: None };

    fn walkthrough_header_rule() -> Policies {
        policies(json!([{
            "name": "allow-with-header",
            "action": "ALLOW",
            "rules": [{
                "to": [{"operation": {"paths": ["/v1/models/bert-emotion-model:predict"]}}],
                "when": [{"key": "request.headers[X-Test]", "values": ["istio-is-cool"]}]
            }]
        }]))
    }

    #[test]
    fn emotion_walkthrough_header_gate() {
        let p = walkthrough_header_rule();
        let predict = "/v1/models/bert-emotion-model:predict";
        let ok = [
            (":method", "POST"),
            (":path", predict),
            ("x-test", "istio-is-cool"),
        ];
        assert_eq!(verdict(&p, &ok, None), Verdict::Allowed);
        // Header names are case-insensitive, values are not.
        let ok = [
            (":method", "POST"),
            (":path", predict),
            ("X-TEST", "istio-is-cool"),
        ];
        assert_eq!(verdict(&p, &ok, None), Verdict::Allowed);
        // Envoy's header matcher looks at each line of a repeated header: one matching line
        // is enough, wherever it is.
        for lines in [
            ["a", "istio-is-cool", "b"],
            ["istio-is-cool", "a", "b"],
            ["a", "b", "istio-is-cool"],
        ] {
            let mut headers = vec![(":method", "POST"), (":path", predict)];
            headers.extend(lines.iter().map(|v| ("X-Test", *v)));
            assert_eq!(verdict(&p, &headers, None), Verdict::Allowed, "{headers:?}");
        }
        for headers in [
            vec![(":method", "POST"), (":path", predict)],
            vec![
                (":method", "POST"),
                (":path", predict),
                ("x-test", "Istio-Is-Cool"),
            ],
            vec![
                (":method", "POST"),
                (":path", predict),
                ("x-test", "istio-is-cool-not"),
            ],
            vec![(":method", "POST"), (":path", predict), ("x-test", "")],
            // One line holding two values is not the value.
            vec![
                (":method", "POST"),
                (":path", predict),
                ("x-test", "a,istio-is-cool"),
            ],
            // Right header, other path.
            vec![
                (":method", "POST"),
                (":path", "/v1/models/other:predict"),
                ("x-test", "istio-is-cool"),
            ],
        ] {
            assert_eq!(verdict(&p, &headers, None), DENIED, "{headers:?}");
        }
    }

    fn kubeflow_jwt_policy() -> Policies {
        policies(json!([{
            "name": "require-jwt",
            "action": "DENY",
            "rules": [{
                "from": [{"source": {"notRequestPrincipals": ["*"]}}],
                "to": [{"operation": {"notPaths": ["/dex/*", "/dex/**", "/oauth2/*", "/v1/*", "/v2/*"]}}]
            }]
        }]))
    }

    #[test]
    fn kubeflow_require_jwt_except_paths() {
        let p = kubeflow_jwt_policy();
        let alice = identity("https://dex.example.com/alice", json!({}));
        let denied = Verdict::Denied {
            policy: Some("require-jwt".into()),
        };
        for path in [
            "/admin",
            "/",
            "/v3/models",
            "/v1",
            "/dexx/a",
            "/oauth2",
            "/notebook/x",
        ] {
            assert_eq!(verdict(&p, &[(":path", path)], None), denied, "{path}");
            assert_eq!(
                verdict(&p, &[(":path", path)], Some(&alice)),
                Verdict::Allowed,
                "{path}"
            );
        }
        for path in [
            "/v1/models/bert:predict",
            "/v2/models/iris/infer",
            "/dex/auth",
            "/dex/a/b/c",
            "/oauth2/callback",
            "/v1/",
        ] {
            assert_eq!(
                verdict(&p, &[(":path", path)], None),
                Verdict::Allowed,
                "{path}"
            );
        }
    }

    #[test]
    fn no_policies_allow_and_an_allow_policy_without_rules_denies_everything() {
        assert_eq!(
            verdict(&policies(json!([])), &[(":path", "/")], None),
            Verdict::Allowed
        );
        let allow_nothing = policies(json!([{ "name": "allow-nothing" }]));
        assert_eq!(verdict(&allow_nothing, &[(":path", "/")], None), DENIED);
        let deny_nothing = policies(json!([{ "action": "DENY" }]));
        assert_eq!(
            verdict(&deny_nothing, &[(":path", "/")], None),
            Verdict::Allowed
        );
        let allow_all = policies(json!([{ "rules": [{}] }]));
        assert_eq!(
            verdict(&allow_all, &[(":path", "/")], None),
            Verdict::Allowed
        );
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = policies(json!([
            {"name": "allow-all", "rules": [{}]},
            {"name": "deny-admin", "action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}
        ]));
        assert_eq!(verdict(&p, &[(":path", "/ok")], None), Verdict::Allowed);
        assert_eq!(
            verdict(&p, &[(":path", "/admin/x")], None),
            Verdict::Denied {
                policy: Some("deny-admin".into())
            }
        );
    }

    #[test]
    fn request_principals_forms() {
        let p = policies(
            json!([{"rules": [{"from": [{"source": {"requestPrincipals": ["https://dex.example.com/*", "*@corp"]}}]}]}]),
        );
        let dex = identity("https://dex.example.com/alice", json!({}));
        let corp = identity("https://other/bob@corp", json!({}));
        let other = identity("https://other/bob", json!({}));
        assert_eq!(verdict(&p, &[], Some(&dex)), Verdict::Allowed);
        assert_eq!(verdict(&p, &[], Some(&corp)), Verdict::Allowed);
        assert_eq!(verdict(&p, &[], Some(&other)), DENIED);
        assert_eq!(verdict(&p, &[], None), DENIED);
        // Istio's "require a JWT" example: requestPrincipals ["*"].
        let any =
            policies(json!([{"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}]));
        assert_eq!(verdict(&any, &[], Some(&other)), Verdict::Allowed);
        assert_eq!(verdict(&any, &[], None), DENIED);
    }

    /// As istiod translates them: the value split at its last `/`, `iss` and `sub` matched
    /// apart, both required.
    #[test]
    fn request_principals_match_iss_and_sub_apart() {
        let with = |issuer: Option<&str>, subject: Option<&str>| Identity {
            issuer: issuer.map(str::to_string),
            subject: subject.map(str::to_string),
            ..identity("i/s", json!({}))
        };
        let any =
            policies(json!([{"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}]));
        let none = policies(
            json!([{"action": "DENY", "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]}]),
        );
        for token in [
            with(Some("i"), None),
            with(Some("i"), Some("")),
            with(None, Some("s")),
        ] {
            // A signed token without a `sub` is no principal: not "has a JWT" to Istio.
            assert_eq!(verdict(&any, &[], Some(&token)), DENIED, "{token:?}");
            assert_ne!(
                verdict(&none, &[], Some(&token)),
                Verdict::Allowed,
                "{token:?}"
            );
        }
        // Issuers that are prefixes of each other stay apart.
        let org = policies(
            json!([{"rules": [{"from": [{"source": {"requestPrincipals": ["https://idp.example.com/*"]}}]}]}]),
        );
        let tenant = with(Some("https://idp.example.com/tenants/x"), Some("alice"));
        assert_eq!(verdict(&org, &[], Some(&tenant)), DENIED);
        // A `sub` holding `/` does not make another issuer's principal.
        let joined_alike = policies(
            json!([{"rules": [{"from": [{"source": {"requestPrincipals": ["https://idp.example.com/team/alice"]}}]}]}]),
        );
        let slash = with(Some("https://idp.example.com"), Some("team/alice"));
        assert_eq!(verdict(&joined_alike, &[], Some(&slash)), DENIED);
        assert_eq!(verdict(&org, &[], Some(&slash)), Verdict::Allowed);
        let exact = policies(
            json!([{"rules": [{"from": [{"source": {"requestPrincipals": ["https://idp.example.com/tenants/x/alice"]}}]}]}]),
        );
        assert_eq!(verdict(&exact, &[], Some(&tenant)), Verdict::Allowed);
        // No `/`: an issuer with an empty `sub`.
        let bare = policies(
            json!([{"rules": [{"from": [{"source": {"requestPrincipals": ["issuer"]}}]}]}]),
        );
        assert_eq!(
            verdict(&bare, &[], Some(&with(Some("issuer"), Some("")))),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(&bare, &[], Some(&with(Some("issuer"), None))),
            DENIED
        );
        // The same forms for `request.auth.principal` conditions.
        let condition = policies(
            json!([{"rules": [{"when": [{"key": "request.auth.principal", "values": ["*/alice"]}]}]}]),
        );
        assert_eq!(verdict(&condition, &[], Some(&tenant)), Verdict::Allowed);
        assert_eq!(
            verdict(&condition, &[], Some(&with(Some("i"), Some("bob")))),
            DENIED
        );
    }

    #[test]
    fn repeated_headers_line_by_line_and_host_is_the_authority() {
        let deny = policies(json!([{"action": "DENY", "rules": [
            {"when": [{"key": "request.headers[x-role]", "values": ["admin"]}]},
            {"when": [{"key": "request.headers[Host]", "values": ["blocked.example.com*"]}]}
        ]}]));
        for lines in [
            vec!["admin", "user"],
            vec!["user", "admin"],
            vec!["a", "admin", "b"],
        ] {
            let headers: Vec<(&str, &str)> = lines.iter().map(|v| ("x-role", *v)).collect();
            assert_ne!(
                verdict(&deny, &headers, None),
                Verdict::Allowed,
                "{lines:?}"
            );
        }
        assert_eq!(
            verdict(&deny, &[("x-role", "user,admin")], None),
            Verdict::Allowed
        );
        assert_ne!(
            verdict(&deny, &[(":authority", "blocked.example.com:8080")], None),
            Verdict::Allowed
        );
        // notValues: no line may match.
        let not = policies(
            json!([{"rules": [{"when": [{"key": "request.headers[x-role]", "notValues": ["admin"]}]}]}]),
        );
        assert_eq!(verdict(&not, &[("x-role", "user")], None), Verdict::Allowed);
        assert_eq!(
            verdict(&not, &[("x-role", "user"), ("x-role", "admin")], None),
            DENIED
        );
        assert_eq!(verdict(&not, &[], None), Verdict::Allowed);
    }

    #[test]
    fn dry_run_policies_decide_nothing_but_say_what_they_would() {
        let p = policies(json!([
            {"name": "shadow-deny", "action": "DENY", "dryRun": true, "rules": [{"when": [{"key": "request.headers[x-role]", "values": ["guest"]}]}]},
            {"name": "shadow-allow", "dryRun": true, "rules": [{"to": [{"operation": {"paths": ["/a"]}}]}]}
        ]));
        let attributes_of = |headers: &[(&str, &str)]| request(headers);
        let guest = attributes_of(&[(":method", "GET"), (":path", "/a"), ("x-role", "guest")]);
        let check = |req: &RequestView, path: &str| {
            let attributes = Attributes {
                request: req,
                operation: RequestInfo {
                    method: "GET",
                    host: None,
                    path,
                    port: None,
                },
                identity: None,
                remote_ip: None,
                space_delimited_claims: &[],
            };
            (p.evaluate(&attributes), p.dry_run_verdict(&attributes))
        };
        assert_eq!(
            check(&guest, "/a"),
            (
                Verdict::Allowed,
                Some(Verdict::Denied {
                    policy: Some("shadow-deny".into())
                })
            )
        );
        let other = attributes_of(&[(":method", "GET"), (":path", "/b")]);
        assert_eq!(
            check(&other, "/b"),
            (Verdict::Allowed, Some(Verdict::Denied { policy: None }))
        );
        assert_eq!(
            check(&other, "/a"),
            (Verdict::Allowed, Some(Verdict::Allowed))
        );
        let plain = policies(json!([{"rules": [{}]}]));
        let attributes = Attributes {
            request: &other,
            operation: RequestInfo {
                method: "GET",
                host: None,
                path: "/b",
                port: None,
            },
            identity: None,
            remote_ip: None,
            space_delimited_claims: &[],
        };
        assert_eq!(plain.dry_run_verdict(&attributes), None);
    }

    #[test]
    fn istio_example_claims_groups_and_methods() {
        // From Istio's documentation: GET from principal with claim groups containing "group1".
        let p = policies(json!([{
            "action": "ALLOW",
            "rules": [{
                "from": [{"source": {"requestPrincipals": ["testing@secure.istio.io/testing@secure.istio.io"]}}],
                "to": [{"operation": {"methods": ["GET"]}}],
                "when": [{"key": "request.auth.claims[groups]", "values": ["group1"]}]
            }]
        }]));
        let member = identity(
            "testing@secure.istio.io/testing@secure.istio.io",
            json!({"groups": ["group1", "group2"]}),
        );
        let outsider = identity(
            "testing@secure.istio.io/testing@secure.istio.io",
            json!({"groups": ["group2"]}),
        );
        assert_eq!(
            verdict(&p, &[(":method", "GET")], Some(&member)),
            Verdict::Allowed
        );
        assert_eq!(verdict(&p, &[(":method", "POST")], Some(&member)), DENIED);
        assert_eq!(verdict(&p, &[(":method", "GET")], Some(&outsider)), DENIED);
        assert_eq!(verdict(&p, &[(":method", "GET")], None), DENIED);
    }

    #[test]
    fn istio_example_hosts_methods_and_not_paths() {
        // Istio's documentation: deny GET to `*.example.com` except on `/healthz`, and allow
        // only authenticated requests elsewhere except `/healthz`.
        let p = policies(json!([
            {"name": "deny-get", "action": "DENY", "rules": [{"to": [{"operation": {
                "hosts": ["*.example.com"], "methods": ["GET"], "notPaths": ["/healthz"]
            }}]}]},
            {"name": "require-jwt", "action": "ALLOW", "rules": [
                {"from": [{"source": {"requestPrincipals": ["*"]}}]},
                {"to": [{"operation": {"paths": ["/healthz"]}}]}
            ]}
        ]));
        let alice = identity("i/alice", json!({}));
        let deny_get = Verdict::Denied {
            policy: Some("deny-get".into()),
        };
        let get = |host: &'static str, path: &'static str| {
            vec![(":method", "GET"), (":authority", host), (":path", path)]
        };
        assert_eq!(
            verdict(&p, &get("api.EXAMPLE.com", "/x"), Some(&alice)),
            deny_get
        );
        // As in Istio, the host pattern is matched on the whole `:authority`, port included.
        assert_eq!(
            verdict(&p, &get("api.example.com:443", "/x"), Some(&alice)),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(&p, &get("api.example.com", "/healthz"), None),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(&p, &get("api.other.com", "/x"), Some(&alice)),
            Verdict::Allowed
        );
        assert_eq!(verdict(&p, &get("api.other.com", "/x"), None), DENIED);
        let post = [
            (":method", "POST"),
            (":authority", "api.example.com"),
            (":path", "/x"),
        ];
        assert_eq!(verdict(&p, &post, Some(&alice)), Verdict::Allowed);
    }

    #[test]
    fn nested_and_space_delimited_claims_audiences_presenter() {
        let p = policies(json!([{"rules": [{"when": [
            {"key": "request.auth.claims[realm][role]", "values": ["admin"]},
            {"key": "request.auth.claims[scope]", "values": ["write"]},
            {"key": "request.auth.audiences", "values": ["kserve"]},
            {"key": "request.auth.presenter", "values": ["web-*"]},
            {"key": "request.auth.principal", "notValues": ["*/mallory"]}
        ]}]}]));
        let good = identity(
            "i/alice",
            json!({"realm": {"role": "admin"}, "scope": "read write"}),
        );
        assert_eq!(verdict(&p, &[], Some(&good)), Verdict::Allowed);
        let wrong_role = identity(
            "i/alice",
            json!({"realm": {"role": "user"}, "scope": "read write"}),
        );
        assert_eq!(verdict(&p, &[], Some(&wrong_role)), DENIED);
        let no_scope = identity(
            "i/alice",
            json!({"realm": {"role": "admin"}, "scope": "read"}),
        );
        assert_eq!(verdict(&p, &[], Some(&no_scope)), DENIED);
        let mallory = identity(
            "i/mallory",
            json!({"realm": {"role": "admin"}, "scope": "write"}),
        );
        assert_eq!(verdict(&p, &[], Some(&mallory)), DENIED);
        // Numbers and objects match nothing.
        let number = identity("i/alice", json!({"realm": {"role": 1}, "scope": "write"}));
        assert_eq!(verdict(&p, &[], Some(&number)), DENIED);
    }

    #[test]
    fn configured_space_delimited_claim_is_split() {
        let p = policies(json!([{"rules": [{"when": [
            {"key": "request.auth.claims[roles]", "values": ["editor"]}
        ]}]}]));
        let id = identity("i/a", json!({"roles": "viewer editor"}));
        let req = request(&[(":path", "/")]);
        let evaluate = |space_delimited_claims: &[String]| {
            p.evaluate(&Attributes {
                request: &req,
                operation: RequestInfo {
                    method: "GET",
                    host: None,
                    path: "/",
                    port: None,
                },
                identity: Some(&id),
                remote_ip: None,
                space_delimited_claims,
            })
        };
        assert_eq!(evaluate(&[]), DENIED);
        assert_eq!(evaluate(&["roles".to_string()]), Verdict::Allowed);
    }

    #[test]
    fn header_not_values_and_string_forms() {
        let p = policies(json!([{"action": "DENY", "rules": [{"when": [
            {"key": "request.headers[user-agent]", "values": ["curl/*", "*bot"], "notValues": ["curl/8.0"]}
        ]}]}]));
        let denied = |ua: &str| verdict(&p, &[("user-agent", ua)], None) != Verdict::Allowed;
        assert!(denied("curl/7.1"));
        assert!(denied("googlebot"));
        assert!(!denied("curl/8.0"));
        assert!(!denied("firefox"));
        assert_eq!(verdict(&p, &[], None), Verdict::Allowed);
        let absent = policies(
            json!([{"rules": [{"when": [{"key": "request.headers[x-debug]", "notValues": ["*"]}]}]}]),
        );
        assert_eq!(verdict(&absent, &[], None), Verdict::Allowed);
        assert_eq!(verdict(&absent, &[("x-debug", "1")], None), DENIED);
    }

    #[test]
    fn unsupported_fields_are_configuration_errors_naming_the_field() {
        let cases = [
            (
                json!([{"rules": [{"from": [{"source": {"remoteIpBlocks": ["1.2.3.4/40"]}}]}]}]),
                "policies[0].rules[0].from[0].source.remoteIpBlocks[0]",
            ),
            (
                json!([{"rules": [{"when": [{"key": "source.ip", "values": ["1.2.3.4"]}]}]}]),
                "policies[0].rules[0].when[0].key",
            ),
            (
                json!([{"rules": [{"when": [{"key": "remote.ip", "values": ["x"]}]}]}]),
                "policies[0].rules[0].when[0].values[0]",
            ),
            (
                json!([{"rules": [{"from": [{"source": {"principals": ["a"]}}]}]}]),
                "policies[0].rules[0].from[0].source.principals",
            ),
            (
                json!([{"rules": [{"from": [{"source": {"notNamespaces": ["a"]}}]}]}]),
                "policies[0].rules[0].from[0].source.notNamespaces",
            ),
            (
                json!([{"rules": [{"from": [{"source": {"ipBlocks": ["1.2.3.4"]}}]}]}]),
                "policies[0].rules[0].from[0].source.ipBlocks",
            ),
            (
                json!([{"action": "CUSTOM", "provider": {"name": "oauth2-proxy"}}]),
                "policies[0].provider",
            ),
            (json!([{"action": "CUSTOM"}]), "policies[0].action"),
            (json!([{"action": "AUDIT"}]), "policies[0].action"),
            (
                json!([{"rules": [{"when": [{"key": "source.namespace", "values": ["a"]}]}]}]),
                "policies[0].rules[0].when[0].key",
            ),
            (
                json!([{"rules": [{"when": [{"key": "request.header[x]", "values": ["a"]}]}]}]),
                "policies[0].rules[0].when[0].key",
            ),
            (
                json!([{"rules": [{"when": [{"key": "request.headers[]", "values": ["a"]}]}]}]),
                "policies[0].rules[0].when[0].key",
            ),
            (
                json!([{"rules": [{"when": [{"key": "request.auth.claims[]", "values": ["a"]}]}]}]),
                "policies[0].rules[0].when[0].key",
            ),
            (
                json!([{"rules": [{"when": [{"key": "request.auth.principal"}]}]}]),
                "policies[0].rules[0].when[0]",
            ),
            (
                json!([{"rules": [{"when": [{"key": "request.auth.principal", "values": []}]}]}]),
                "policies[0].rules[0].when[0].values",
            ),
            (
                json!([{"rules": [{"when": [{"key": "request.auth.principal", "values": ["a", ""]}]}]}]),
                "policies[0].rules[0].when[0].values[1]",
            ),
            (
                json!([{"rules": [{"to": [{"operation": {"paths": ["/a/{x}"]}}]}]}]),
                "policies[0].rules[0].to[0].operation.paths[0]",
            ),
        ];
        for (json, field) in cases {
            let err = compile_error(json.clone());
            assert_eq!(err.field, field, "{json}: {err}");
            assert!(!err.reason.is_empty());
        }
    }

    #[test]
    fn secret_header_values_match_only_exactly() {
        let p = policies(
            json!([{"rules": [{"when": [{"key": "request.headers[x-api-key]", "values": ["s3cr3t-key", "other-key"]}]}]}]),
        );
        assert_eq!(
            verdict(&p, &[("x-api-key", "other-key")], None),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(&p, &[("x-api-key", "s3cr3t-key")], None),
            Verdict::Allowed
        );
        for guess in ["s3cr3t", "s3cr3t-key ", "S3CR3T-KEY", "s3cr3t-keyx", ""] {
            assert_eq!(
                verdict(&p, &[("x-api-key", guess)], None),
                DENIED,
                "{guess}"
            );
        }
    }
}

#[cfg(test)]
mod remote_ip_tests {
    use super::*;
    use crate::config::Config;
    use crate::request::tests::request;
    use serde_json::json;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn compiled(policies: serde_json::Value) -> Policies {
        let config: Config = serde_json::from_value(json!({ "policies": policies })).unwrap();
        Policies::compile(&config.policies, config.path_normalization).unwrap()
    }

    fn evaluate(policies: &serde_json::Value, remote_ip: Option<&str>) -> Verdict {
        let req = request(&[]);
        compiled(policies.clone()).evaluate(&Attributes {
            request: &req,
            operation: RequestInfo {
                method: "GET",
                host: None,
                path: "/",
                port: None,
            },
            identity: None,
            remote_ip: remote_ip.map(|ip| ip.parse().unwrap()),
            space_delimited_claims: &[],
        })
    }

    #[test]
    fn remote_ip_blocks_and_conditions() {
        let office = json!([{"rules": [{"from": [{"source": {"remoteIpBlocks": ["10.0.0.0/8", "2001:db8::/32"]}}]}]}]);
        assert_eq!(evaluate(&office, Some("10.1.2.3")), Verdict::Allowed);
        assert_eq!(evaluate(&office, Some("2001:db8::5")), Verdict::Allowed);
        assert_ne!(evaluate(&office, Some("192.168.0.1")), Verdict::Allowed);
        assert_ne!(
            evaluate(&office, None),
            Verdict::Allowed,
            "an unknown address never matches"
        );
        let outside = json!([{"action": "DENY", "rules": [{"from": [{"source": {"notRemoteIpBlocks": ["127.0.0.1"]}}]}]}]);
        assert_eq!(evaluate(&outside, Some("127.0.0.1")), Verdict::Allowed);
        assert_ne!(evaluate(&outside, Some("127.0.0.2")), Verdict::Allowed);
        let when = json!([{"rules": [{"when": [{"key": "remote.ip", "values": ["192.168.0.0/16"], "notValues": ["192.168.9.9"]}]}]}]);
        assert_eq!(evaluate(&when, Some("192.168.1.1")), Verdict::Allowed);
        assert_ne!(evaluate(&when, Some("192.168.9.9")), Verdict::Allowed);
        assert_ne!(evaluate(&when, Some("10.0.0.1")), Verdict::Allowed);
    }

    #[test]
    fn address_is_looked_up_only_when_used() {
        let uses = |policies: serde_json::Value| compiled(policies).uses_remote_ip();
        assert!(!uses(
            json!([{"rules": [{"when": [{"key": "request.headers[a]", "values": ["b"]}]}]}])
        ));
        assert!(uses(
            json!([{"rules": [{"when": [{"key": "remote.ip", "values": ["10.0.0.1"]}]}]}])
        ));
        assert!(uses(
            json!([{"action": "DENY", "rules": [{"from": [{"source": {"remoteIpBlocks": ["10.0.0.1"]}}]}]}])
        ));
    }
}
