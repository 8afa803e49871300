//! The reference side of a differential run: the user's Istio resources translated into Envoy's
//! own filters the way istiod translates them (`pilot/pkg/security/authn` for jwt_authn,
//! `pilot/pkg/security/authz/{model,matcher}` for RBAC), field by field.

use super::istio::{Policy, Resources};
use harness_runner::render::NativeFilter;
use harness_runner::{Error, Result};
use serde_json::{json, Value};

const JWT_AUTHN: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
/// The filter whose dynamic metadata holds the verified payload, and its key there.
pub const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
const JWT_PAYLOAD: &str = "payload";

/// The native chain istiod would build: jwt_authn (when there are JWT rules), then one RBAC
/// filter for the DENY policies and one for the ALLOW policies, in that order.
pub fn native_filters(resources: &Resources, jwks: &str) -> Result<Vec<NativeFilter>> {
    let mut filters = Vec::new();
    if !resources.jwt_rules.is_empty() {
        filters.push(NativeFilter {
            name: JWT_FILTER.into(),
            typed_config: jwt_authn(&resources.jwt_rules_with_keys(jwks))?,
        });
    }
    for action in ["DENY", "ALLOW"] {
        let policies: Vec<&Policy> = resources
            .policies
            .iter()
            .filter(|p| p.action() == action)
            .collect();
        if policies.is_empty() {
            continue;
        }
        filters.push(NativeFilter {
            name: format!("envoy.filters.http.rbac.{}", action.to_ascii_lowercase()),
            typed_config: rbac(action, &policies)?,
        });
    }
    if let Some(policy) = resources
        .policies
        .iter()
        .find(|p| !matches!(p.action(), "ALLOW" | "DENY"))
    {
        return Err(Error(format!(
            "{}: action {}: only ALLOW and DENY policies can be compared",
            policy.name,
            policy.action()
        )));
    }
    Ok(filters)
}

/// `RequestAuthentication.jwtRules` → jwt_authn: the rules sorted by issuer, one provider per
/// rule (`origins-<i>`), the verified payload in metadata under `payload` (`scope`, `permission`
/// and `spaceDelimitedClaims` split into lists), and one requirement for every path: a token,
/// if present, must be valid for one provider; no token at all is fine (the policies decide).
fn jwt_authn(rules: &[Value]) -> Result<Value> {
    let mut sorted: Vec<&Value> = rules.iter().collect();
    sorted.sort_by_key(|rule| rule["issuer"].as_str().unwrap_or_default().to_string());
    let mut providers = serde_json::Map::new();
    let mut names = Vec::new();
    for (i, rule) in sorted.iter().enumerate() {
        let issuer = rule["issuer"].as_str().ok_or_else(|| {
            Error(format!(
                "jwtRules (issuer {}): issuer is required",
                rule["issuer"]
            ))
        })?;
        let mut space_delimited = vec![json!("permission"), json!("scope")];
        space_delimited.extend(
            rule["spaceDelimitedClaims"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        let mut provider = json!({
            "issuer": issuer,
            "local_jwks": {"inline_string": rule["jwks"]},
            "forward": rule["forwardOriginalToken"].as_bool().unwrap_or(false),
            "payload_in_metadata": JWT_PAYLOAD,
            "normalize_payload_in_metadata": {"space_delimited_claims": space_delimited},
        });
        if let Some(audiences) = rule.get("audiences") {
            provider["audiences"] = audiences.clone();
        }
        if let Some(headers) = rule.get("fromHeaders").and_then(Value::as_array) {
            provider["from_headers"] = headers
                .iter()
                .map(|h| json!({"name": h["name"], "value_prefix": h["prefix"].as_str().unwrap_or("")}))
                .collect();
        }
        if let Some(params) = rule.get("fromParams") {
            provider["from_params"] = params.clone();
        }
        if let Some(cookies) = rule.get("fromCookies") {
            provider["from_cookies"] = cookies.clone();
        }
        if let Some(header) = rule.get("outputPayloadToHeader") {
            provider["forward_payload_header"] = header.clone();
        }
        if let Some(claims) = rule.get("outputClaimToHeaders").and_then(Value::as_array) {
            provider["claim_to_headers"] = claims
                .iter()
                .map(|c| json!({"header_name": c["header"], "claim_name": c["claim"]}))
                .collect();
        }
        let name = format!("origins-{i}");
        providers.insert(name.clone(), provider);
        names.push(name);
    }
    let provider_or_missing = |name: &String| json!({"requires_any": {"requirements": [{"provider_name": name}, {"allow_missing": {}}]}});
    // One provider: it or no token. Several: any provider (they may share a location), and
    // each provider's own token, if present, valid.
    let requires = match names.as_slice() {
        [one] => provider_or_missing(one),
        _ => {
            let mut any: Vec<Value> = names.iter().map(|n| json!({"provider_name": n})).collect();
            any.push(json!({"requires_all": {"requirements": names.iter().map(provider_or_missing).collect::<Vec<_>>()}}));
            json!({"requires_any": {"requirements": any}})
        }
    };
    Ok(json!({
        "@type": JWT_AUTHN,
        "providers": providers,
        "rules": [{"match": {"prefix": "/"}, "requires": requires}],
        "bypass_cors_preflight": true
    }))
}

/// One RBAC filter for `action`; each rule of each policy is one RBAC policy named as istiod
/// names it; dry-run policies go to the shadow rules, which decide nothing.
fn rbac(action: &str, policies: &[&Policy]) -> Result<Value> {
    let mut enforced = serde_json::Map::new();
    let mut shadow = serde_json::Map::new();
    for policy in policies {
        let target = if policy.dry_run {
            &mut shadow
        } else {
            &mut enforced
        };
        let rules = policy.spec["rules"].as_array().cloned().unwrap_or_default();
        if rules.is_empty() {
            // No rules: a policy that matches nothing (ALLOW then allows nothing).
            target.insert(
                policy.rule_name(0),
                json!({"permissions": [{"not_rule": {"any": true}}], "principals": [{"not_id": {"any": true}}]}),
            );
        }
        for (i, rule) in rules.iter().enumerate() {
            let compiled =
                rbac_policy(rule).map_err(|e| Error(format!("{}: rules[{i}].{e}", policy.name)))?;
            target.insert(policy.rule_name(i), compiled);
        }
    }
    let mut config = json!({"@type": RBAC});
    // Only dry-run policies: no enforced rules at all (an empty ALLOW would refuse everything).
    if !enforced.is_empty() || shadow.is_empty() {
        config["rules"] = json!({"action": action, "policies": enforced});
    }
    if !shadow.is_empty() {
        config["shadow_rules"] = json!({"action": action, "policies": shadow});
        config["shadow_rules_stat_prefix"] =
            json!(format!("istio_dry_run_{}_", action.to_ascii_lowercase()));
    }
    Ok(config)
}

/// Which side of RBAC an attribute lands on.
enum Side {
    Permission,
    Principal,
}

/// One field of a rule: its matcher per value, ORed, and its `not` values, ORed and negated.
struct Field {
    side: Side,
    values: Vec<Value>,
    not_values: Vec<Value>,
}

/// One Istio rule as istiod models it: the `when` conditions are added to every `to` (as
/// permissions) and every `from` (as principals); `to`s are the policy's permissions, ORed,
/// `from`s its principals, ORed.
fn rbac_policy(rule: &Value) -> std::result::Result<Value, String> {
    let mut when_permissions = Vec::new();
    let mut when_principals = Vec::new();
    for (i, condition) in rule["when"].as_array().into_iter().flatten().enumerate() {
        let key = condition["key"].as_str().unwrap_or_default();
        let field = when_field(key, &condition["values"], &condition["notValues"])
            .map_err(|e| format!("when[{i}]: {e}"))?;
        match field.side {
            Side::Permission => when_permissions.extend(and_terms(field, "rules", "not_rule")),
            Side::Principal => when_principals.extend(and_terms(field, "ids", "not_id")),
        }
    }
    let mut permissions = Vec::new();
    for (i, to) in rule["to"].as_array().into_iter().flatten().enumerate() {
        let operation = &to["operation"];
        let mut terms = Vec::new();
        for (key, not_key) in [
            ("hosts", "notHosts"),
            ("ports", "notPorts"),
            ("methods", "notMethods"),
            ("paths", "notPaths"),
        ] {
            let field = operation_field(key, &operation[key], &operation[not_key])
                .map_err(|e| format!("to[{i}].operation.{key}: {e}"))?;
            terms.extend(and_terms(field, "rules", "not_rule"));
        }
        terms.extend(when_permissions.iter().cloned());
        permissions.push(all_of(terms, "and_rules", "rules"));
    }
    if permissions.is_empty() {
        permissions.push(all_of(when_permissions, "and_rules", "rules"));
    }
    let mut principals = Vec::new();
    for (i, from) in rule["from"].as_array().into_iter().flatten().enumerate() {
        let source = &from["source"];
        let mut terms = Vec::new();
        for (key, not_key) in [
            ("requestPrincipals", "notRequestPrincipals"),
            ("remoteIpBlocks", "notRemoteIpBlocks"),
            ("ipBlocks", "notIpBlocks"),
        ] {
            let field = source_field(key, &source[key], &source[not_key])
                .map_err(|e| format!("from[{i}].source.{key}: {e}"))?;
            terms.extend(and_terms(field, "ids", "not_id"));
        }
        if let Some(field) = ["principals", "namespaces", "serviceAccounts"]
            .iter()
            .find(|f| {
                source.get(**f).is_some() || source.get(format!("not{}", capitalized(f))).is_some()
            })
        {
            return Err(format!(
                "from[{i}].source.{field}: mTLS identities cannot be compared without a mesh"
            ));
        }
        terms.extend(when_principals.iter().cloned());
        principals.push(all_of(terms, "and_ids", "ids"));
    }
    if principals.is_empty() {
        principals.push(all_of(when_principals, "and_ids", "ids"));
    }
    Ok(json!({"permissions": permissions, "principals": principals}))
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// `any` for no terms, else the terms ANDed.
fn all_of(terms: Vec<Value>, and: &str, list: &str) -> Value {
    if terms.is_empty() {
        json!({"any": true})
    } else {
        json!({and: {list: terms}})
    }
}

/// The terms one field adds to its rule: the values ORed, the not-values ORed and negated.
fn and_terms(field: Field, list: &str, not: &str) -> Vec<Value> {
    let or = if list == "rules" {
        "or_rules"
    } else {
        "or_ids"
    };
    let mut terms = Vec::new();
    if !field.values.is_empty() {
        terms.push(json!({or: {list: field.values}}));
    }
    if !field.not_values.is_empty() {
        terms.push(json!({not: {or: {list: field.not_values}}}));
    }
    terms
}

fn strings(list: &Value) -> std::result::Result<Vec<String>, String> {
    match list {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("expected strings, found {v}"))
            })
            .collect(),
        other => Err(format!("expected a list, found {other}")),
    }
}

fn field(
    side: Side,
    values: &Value,
    not_values: &Value,
    matcher: impl Fn(&str) -> std::result::Result<Value, String>,
) -> std::result::Result<Field, String> {
    let convert = |list: &Value| -> std::result::Result<Vec<Value>, String> {
        strings(list)?.iter().map(|v| matcher(v)).collect()
    };
    Ok(Field {
        side,
        values: convert(values)?,
        not_values: convert(not_values)?,
    })
}

fn operation_field(
    key: &str,
    values: &Value,
    not_values: &Value,
) -> std::result::Result<Field, String> {
    match key {
        "paths" => field(Side::Permission, values, not_values, |v| {
            Ok(istio_path_rule(v))
        }),
        "methods" => field(Side::Permission, values, not_values, |v| {
            Ok(json!({"header": header_matcher(":method", v)}))
        }),
        "hosts" => field(Side::Permission, values, not_values, |v| {
            Ok(json!({"header": host_matcher(v)}))
        }),
        _ => field(Side::Permission, values, not_values, |v| {
            v.parse::<u16>()
                .map(|port| json!({"destination_port": port}))
                .map_err(|_| format!("{v:?} is not a port"))
        }),
    }
}

fn source_field(
    key: &str,
    values: &Value,
    not_values: &Value,
) -> std::result::Result<Field, String> {
    match key {
        "requestPrincipals" => field(Side::Principal, values, not_values, |v| {
            Ok(request_principal(v))
        }),
        "remoteIpBlocks" => field(Side::Principal, values, not_values, |v| {
            Ok(json!({"remote_ip": cidr(v)?}))
        }),
        _ => field(Side::Principal, values, not_values, |v| {
            Ok(json!({"direct_remote_ip": cidr(v)?}))
        }),
    }
}

fn when_field(key: &str, values: &Value, not_values: &Value) -> std::result::Result<Field, String> {
    if let Some(name) = key
        .strip_prefix("request.headers[")
        .and_then(|k| k.strip_suffix(']'))
    {
        let name = name.to_string();
        return field(Side::Principal, values, not_values, move |v| {
            Ok(json!({"header": header_matcher(&name, v)}))
        });
    }
    if let Some(path) = key.strip_prefix("request.auth.claims") {
        let claims = claim_path(path)
            .ok_or_else(|| format!("key {key:?}: expected request.auth.claims[name]..."))?;
        return field(Side::Principal, values, not_values, move |v| {
            Ok(claim_matcher(&claims, v))
        });
    }
    match key {
        "request.auth.principal" => field(Side::Principal, values, not_values, |v| {
            Ok(request_principal(v))
        }),
        "request.auth.audiences" => field(Side::Principal, values, not_values, |v| {
            Ok(claim_matcher(&["aud".to_string()], v))
        }),
        "request.auth.presenter" => field(Side::Principal, values, not_values, |v| {
            Ok(claim_matcher(&["azp".to_string()], v))
        }),
        "remote.ip" => field(Side::Principal, values, not_values, |v| {
            Ok(json!({"remote_ip": cidr(v)?}))
        }),
        "source.ip" => field(Side::Principal, values, not_values, |v| {
            Ok(json!({"direct_remote_ip": cidr(v)?}))
        }),
        "destination.port" => field(Side::Permission, values, not_values, |v| {
            v.parse::<u16>()
                .map(|port| json!({"destination_port": port}))
                .map_err(|_| format!("{v:?} is not a port"))
        }),
        other => Err(format!("key {other:?} cannot be compared")),
    }
}

/// `[a][b]` → `["a", "b"]`.
fn claim_path(brackets: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = brackets;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        if end == 0 {
            return None;
        }
        names.push(inner[..end].to_string());
        rest = &inner[end + 1..];
    }
    (!names.is_empty()).then_some(names)
}

/// Istio's string forms for RBAC string matchers: `*` any non-empty value, `abc*` prefix,
/// `*abc` suffix, else exact.
pub fn string_matcher(v: &str) -> Value {
    if v == "*" {
        json!({"safe_regex": {"regex": ".+"}})
    } else if let Some(suffix) = v.strip_prefix('*') {
        json!({"suffix": suffix})
    } else if let Some(prefix) = v.strip_suffix('*') {
        json!({"prefix": prefix})
    } else {
        json!({"exact": v})
    }
}

/// Istio's header form: `*` is "present", the others as [`string_matcher`].
fn header_matcher(name: &str, v: &str) -> Value {
    if v == "*" {
        json!({"name": name, "present_match": true})
    } else {
        json!({"name": name, "string_match": string_matcher(v)})
    }
}

/// Istio's host form: `:authority`, case-insensitive.
fn host_matcher(v: &str) -> Value {
    let mut matcher = header_matcher(":authority", v);
    if let Some(string_match) = matcher.get_mut("string_match") {
        string_match["ignore_case"] = json!(true);
    }
    matcher
}

/// One Istio path pattern as istiod writes it into RBAC: `abc*` a prefix, `*abc` a suffix,
/// `*` any path, `{*}`/`{**}` a URI template, anything else exact.
pub fn istio_path_rule(pattern: &str) -> Value {
    if pattern.contains('{') {
        return json!({"uri_template": {
            "name": "uri-template",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                "path_template": pattern.replace("{**}", "**").replace("{*}", "*")
            }
        }});
    }
    json!({"url_path": {"path": string_matcher(pattern)}})
}

/// A request principal `<iss>/<sub>`, split at the last `/` (issuers are URLs), each half
/// matched on the verified payload: `*` needs both present and non-empty, and a value without
/// `/` needs an empty `sub`.
fn request_principal(v: &str) -> Value {
    let any = || json!({"safe_regex": {"regex": ".+"}});
    let (iss, sub) = match v.rfind('/') {
        Some(at) => (&v[..at], Some(&v[at + 1..])),
        None => (v, None),
    };
    let exact = |s: &str| json!({"exact": s});
    let (match_iss, match_sub) = if v == "*" {
        (any(), any())
    } else if let Some(rest) = v.strip_prefix('*') {
        match sub {
            Some(sub) if iss == "*" => (any(), exact(sub)),
            Some(sub) => (json!({"suffix": &iss[1..]}), exact(sub)),
            None => (any(), json!({"suffix": rest})),
        }
    } else if let Some(rest) = v.strip_suffix('*') {
        match sub.map(|s| s.strip_suffix('*').unwrap_or(s)) {
            Some("") => (exact(iss), any()),
            Some(sub) => (exact(iss), json!({"prefix": sub})),
            None => (json!({"prefix": rest}), any()),
        }
    } else {
        (exact(iss), exact(sub.unwrap_or("")))
    };
    json!({"and_ids": {"ids": [
        payload_matcher(&["iss".to_string()], json!({"string_match": match_iss})),
        payload_matcher(&["sub".to_string()], json!({"string_match": match_sub})),
    ]}})
}

/// A claim of the verified payload, matching a string claim or any string of a list claim.
fn claim_matcher(path: &[String], v: &str) -> Value {
    let string = json!({"string_match": string_matcher(v)});
    payload_matcher(
        path,
        json!({"or_match": {"value_matchers": [{"list_match": {"one_of": string}}, string]}}),
    )
}

fn payload_matcher(path: &[String], value: Value) -> Value {
    let mut keys = vec![json!({"key": JWT_PAYLOAD})];
    keys.extend(path.iter().map(|k| json!({"key": k})));
    json!({"metadata": {"filter": JWT_FILTER, "path": keys, "value": value}})
}

/// An address or CIDR range as RBAC's `CidrRange`.
fn cidr(v: &str) -> std::result::Result<Value, String> {
    let (address, len) = match v.split_once('/') {
        Some((a, l)) => (
            a,
            l.parse::<u32>()
                .map_err(|_| format!("{v:?}: bad prefix length"))?,
        ),
        None => (v, if v.contains(':') { 128 } else { 32 }),
    };
    address
        .parse::<std::net::IpAddr>()
        .map_err(|_| format!("{v:?} is not an address"))?;
    Ok(json!({"address_prefix": address, "prefix_len": len}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_path_patterns_become_rbac_path_matchers() {
        assert_eq!(
            istio_path_rule("/healthz"),
            json!({"url_path": {"path": {"exact": "/healthz"}}})
        );
        assert_eq!(
            istio_path_rule("/v1/models/*"),
            json!({"url_path": {"path": {"prefix": "/v1/models/"}}})
        );
        assert_eq!(
            istio_path_rule("*.json"),
            json!({"url_path": {"path": {"suffix": ".json"}}})
        );
        assert_eq!(
            istio_path_rule("*"),
            json!({"url_path": {"path": {"safe_regex": {"regex": ".+"}}}})
        );
        assert_eq!(
            istio_path_rule("/dex/{**}")["uri_template"]["typed_config"]["path_template"],
            "/dex/**"
        );
    }

    fn sm(principal: &Value, claim: usize) -> &Value {
        &principal["and_ids"]["ids"][claim]["metadata"]["value"]["string_match"]
    }

    #[test]
    fn request_principals_split_at_the_last_slash() {
        let p = request_principal("https://idp.example.com/tenants/x/alice");
        assert_eq!(
            sm(&p, 0),
            &json!({"exact": "https://idp.example.com/tenants/x"})
        );
        assert_eq!(sm(&p, 1), &json!({"exact": "alice"}));
        assert_eq!(
            p["and_ids"]["ids"][1]["metadata"]["path"],
            json!([{"key": "payload"}, {"key": "sub"}])
        );
        let any = json!({"safe_regex": {"regex": ".+"}});
        let p = request_principal("*");
        assert_eq!((sm(&p, 0), sm(&p, 1)), (&any, &any));
        let p = request_principal("https://idp.example.com/*");
        assert_eq!(sm(&p, 0), &json!({"exact": "https://idp.example.com"}));
        assert_eq!(sm(&p, 1), &any);
        let p = request_principal("https://idp.example.com/team-*");
        assert_eq!(sm(&p, 1), &json!({"prefix": "team-"}));
        let p = request_principal("*/alice");
        assert_eq!((sm(&p, 0), sm(&p, 1)), (&any, &json!({"exact": "alice"})));
        let p = request_principal("noslash");
        assert_eq!(sm(&p, 1), &json!({"exact": ""}));
    }

    #[test]
    fn rules_become_or_of_tos_and_froms_with_when_in_each() {
        let rule = json!({
            "from": [{"source": {"notRequestPrincipals": ["*"]}}],
            "to": [{"operation": {"notPaths": ["/v1/*"], "methods": ["GET"]}}, {"operation": {"hosts": ["a.com"]}}],
            "when": [{"key": "request.headers[x-role]", "values": ["admin"], "notValues": ["*"]}]
        });
        let policy = rbac_policy(&rule).unwrap();
        let permissions = policy["permissions"].as_array().unwrap();
        assert_eq!(permissions.len(), 2);
        assert_eq!(
            permissions[0]["and_rules"]["rules"][1]["not_rule"]["or_rules"]["rules"][0],
            json!({"url_path": {"path": {"prefix": "/v1/"}}})
        );
        assert_eq!(
            permissions[1]["and_rules"]["rules"][0]["or_rules"]["rules"][0]["header"],
            json!({"name": ":authority", "string_match": {"exact": "a.com", "ignore_case": true}})
        );
        let ids = &policy["principals"][0]["and_ids"]["ids"];
        assert!(ids[0]["not_id"]["or_ids"]["ids"][0]["and_ids"].is_object());
        assert_eq!(
            ids[1]["or_ids"]["ids"][0]["header"],
            json!({"name": "x-role", "string_match": {"exact": "admin"}})
        );
        assert_eq!(
            ids[2]["not_id"]["or_ids"]["ids"][0]["header"],
            json!({"name": "x-role", "present_match": true})
        );
        let everything = rbac_policy(&json!({})).unwrap();
        assert_eq!(
            everything,
            json!({"permissions": [{"any": true}], "principals": [{"any": true}]})
        );
        assert!(rbac_policy(&json!({"from": [{"source": {"principals": ["a"]}}]})).is_err());
        assert!(
            rbac_policy(&json!({"when": [{"key": "source.namespace", "values": ["a"]}]})).is_err()
        );
    }

    #[test]
    fn chain_has_jwt_then_deny_then_allow_and_dry_runs_only_shadow() {
        let resources = Resources::parse(
            r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: r}
spec: {jwtRules: [{issuer: "https://b"}, {issuer: "https://a", fromParams: ["t"]}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, annotations: {istio.io/dry-run: "true"}}
spec: {rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: ns}
spec: {action: DENY}
"#,
        )
        .unwrap();
        let filters = native_filters(&resources, "{}").unwrap();
        let names: Vec<&str> = filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                JWT_FILTER,
                "envoy.filters.http.rbac.deny",
                "envoy.filters.http.rbac.allow"
            ]
        );
        let jwt = &filters[0].typed_config;
        assert_eq!(jwt["providers"]["origins-0"]["issuer"], "https://a");
        assert_eq!(jwt["providers"]["origins-0"]["from_params"], json!(["t"]));
        assert_eq!(
            jwt["providers"]["origins-1"]["payload_in_metadata"],
            "payload"
        );
        let any = &jwt["rules"][0]["requires"]["requires_any"]["requirements"];
        assert_eq!(any[0], json!({"provider_name": "origins-0"}));
        assert_eq!(
            any[2]["requires_all"]["requirements"][1]["requires_any"]["requirements"][1],
            json!({"allow_missing": {}})
        );
        let deny = &filters[1].typed_config;
        assert_eq!(
            deny["rules"]["policies"]["ns[ns]-policy[deny]-rule[0]"]["permissions"],
            json!([{"not_rule": {"any": true}}])
        );
        let allow = &filters[2].typed_config;
        assert!(allow.get("rules").is_none(), "dry-run only: {allow}");
        assert!(allow["shadow_rules"]["policies"]["ns[default]-policy[allow]-rule[0]"].is_object());
    }
}
