//! Random `RequestAuthentication` + `AuthorizationPolicy` sets from a grammar that covers every
//! field the plugins accept, for the differential property test: each set is compared on the
//! requests [`super::Generator`] makes from it, reproducibly from the seed.

use super::istio::{Policy, Resources};
use harness_runner::rng::Rng;
use serde_json::{json, Value};

/// Issuers whose names are prefixes of each other, as an identity provider's org and tenant
/// servers are.
const ISSUERS: [&str; 3] = [
    "https://idp.example.com",
    "https://idp.example.com/tenants/x",
    "http://dex.auth.svc.cluster.local:5556/dex",
];
const PATHS: [&str; 12] = [
    "/v1/models/*",
    "/v2/models/{*}/infer",
    "/admin",
    "/admin/{**}",
    "*.php",
    "/healthz",
    "*",
    "/dex/**",
    "/v1/models/bert:predict",
    "/public/*",
    "/Admin",
    "/a/b/c",
];
const METHODS: [&str; 5] = ["GET", "POST", "DELETE", "HEAD", "*"];
const HOSTS: [&str; 5] = [
    "api.example.com",
    "*.example.com",
    "api.example.com:*",
    "internal.*",
    "*",
];
const HEADERS: [&str; 4] = ["x-role", "x-tenant", "Host", "x-api-key"];
const HEADER_VALUES: [&str; 5] = ["admin", "user*", "*-ops", "*", "a,b"];
const CLAIMS: [&str; 4] = ["groups", "user][tier", "scope", "email"];
const CLAIM_VALUES: [&str; 5] = ["ml-users", "gold", "read", "*@example.com", "*"];

/// One random set of resources.
pub fn resources(rng: &mut Rng) -> Resources {
    let mut resources = Resources::default();
    let issuers = rng.below(3);
    let mut used: Vec<&str> = rng.shuffled(&ISSUERS).into_iter().take(issuers).collect();
    used.sort();
    for issuer in &used {
        let mut rule = json!({"issuer": issuer});
        if rng.below(2) == 0 {
            rule["audiences"] = json!([pick(rng, &["api", "https://api.example.com/", "kserve"])]);
        }
        match rng.below(5) {
            0 => rule["fromHeaders"] = json!([{"name": "x-jwt", "prefix": ""}]),
            1 => rule["fromParams"] = json!(["token"]),
            2 => rule["fromCookies"] = json!(["session"]),
            _ => {}
        }
        if rng.below(4) == 0 {
            rule["outputClaimToHeaders"] = json!([{"header": "x-user", "claim": "sub"}]);
        }
        resources.jwt_rules.push(rule);
    }
    for index in 0..1 + rng.below(3) {
        let action = if rng.below(3) == 0 { "DENY" } else { "ALLOW" };
        let rules: Vec<Value> = (0..rng.below(3)).map(|_| rule(rng, &used)).collect();
        let mut spec = json!({"action": action});
        // An ALLOW policy without rules allows nothing; keep that rare.
        if !rules.is_empty() || rng.below(4) == 0 {
            spec["rules"] = json!(rules);
        }
        resources.policies.push(Policy {
            name: format!("random.policy-{index}"),
            spec,
            dry_run: rng.below(8) == 0,
        });
    }
    resources
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    rng.pick(items).copied().unwrap_or_default()
}

/// One to three values from `items`.
fn some(rng: &mut Rng, items: &[&str]) -> Value {
    let n = 1 + rng.below(3);
    let mut values: Vec<&str> = rng.shuffled(items).into_iter().take(n).collect();
    values.dedup();
    json!(values)
}

fn principals(rng: &mut Rng, issuers: &[&str]) -> Value {
    let mut candidates = vec!["*".to_string(), "*/user-1".to_string()];
    for issuer in issuers {
        candidates.push(format!("{issuer}/*"));
        candidates.push(format!("{issuer}/user-1"));
    }
    let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
    some(rng, &refs)
}

fn rule(rng: &mut Rng, issuers: &[&str]) -> Value {
    let mut rule = json!({});
    if rng.below(2) == 0 {
        let mut source = json!({});
        let field = if rng.below(2) == 0 {
            "requestPrincipals"
        } else {
            "notRequestPrincipals"
        };
        source[field] = principals(rng, issuers);
        rule["from"] = json!([{"source": source}]);
    }
    if rng.below(3) != 0 {
        let mut operation = json!({});
        for (field, not_field, items) in [
            ("paths", "notPaths", &PATHS[..]),
            ("methods", "notMethods", &METHODS[..]),
            ("hosts", "notHosts", &HOSTS[..]),
        ] {
            match rng.below(4) {
                0 => operation[field] = some(rng, items),
                1 if field == "paths" => operation[not_field] = some(rng, items),
                _ => {}
            }
        }
        if operation.as_object().is_some_and(|o| o.is_empty()) {
            operation["paths"] = some(rng, &PATHS);
        }
        rule["to"] = json!([{"operation": operation}]);
    }
    let mut when = Vec::new();
    for _ in 0..rng.below(3) {
        let (key, values) = match rng.below(4) {
            0 | 1 => (
                format!("request.headers[{}]", pick(rng, &HEADERS)),
                some(rng, &HEADER_VALUES),
            ),
            2 if !issuers.is_empty() => (
                format!("request.auth.claims[{}]", pick(rng, &CLAIMS)),
                some(rng, &CLAIM_VALUES),
            ),
            _ if !issuers.is_empty() => (
                "request.auth.principal".to_string(),
                principals(rng, issuers),
            ),
            _ => (
                format!("request.headers[{}]", pick(rng, &HEADERS)),
                some(rng, &HEADER_VALUES),
            ),
        };
        let field = if rng.below(3) == 0 {
            "notValues"
        } else {
            "values"
        };
        let mut condition = json!({"key": key});
        condition[field] = values;
        when.push(condition);
    }
    if !when.is_empty() {
        rule["when"] = json!(when);
    }
    rule
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_reaches_every_field_and_is_reproducible() {
        let mut seen = String::new();
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let r = resources(&mut rng);
            seen.push_str(&serde_json::to_string(&r.jwt_rules).unwrap());
            for p in &r.policies {
                seen.push_str(&p.spec.to_string());
            }
        }
        for field in [
            "requestPrincipals",
            "notRequestPrincipals",
            "notPaths",
            "methods",
            "hosts",
            "request.headers[Host]",
            "request.auth.claims[user][tier]",
            "request.auth.principal",
            "notValues",
            "audiences",
            "fromParams",
            "fromHeaders",
            "fromCookies",
            "DENY",
        ] {
            assert!(seen.contains(field), "{field} never generated");
        }
        let a = resources(&mut Rng::new(9));
        let b = resources(&mut Rng::new(9));
        assert_eq!(a, b);
    }
}
