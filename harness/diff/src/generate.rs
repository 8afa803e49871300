//! Requests made from the policies themselves (their paths, hosts, methods, headers, claims and
//! token locations), each with its hostile siblings: path tricks, repeated and re-cased
//! headers, hosts with ports, tokens forged, expired, without `sub`, from another issuer, in
//! encoded parameter names... The first requests cover every ingredient once; the rest combine
//! them at random, reproducibly from the seed.

use super::istio::Resources;
use super::request::Request;
use super::tokens::{self, Keys};
use harness_runner::rng::Rng;
use serde_json::{json, Value};

/// Far in the future and in the past (seconds since the epoch).
const FUTURE: i64 = 4_102_444_800;
const PAST: i64 = 1_000_000_000;

/// One way of spelling a part of a request, with the name the report groups by.
#[derive(Clone)]
struct Variant<T> {
    kind: String,
    value: T,
}

fn variant<T>(kind: impl Into<String>, value: T) -> Variant<T> {
    Variant {
        kind: kind.into(),
        value,
    }
}

/// A token and where it travels: header lines and a query suffix.
#[derive(Clone, Default)]
struct Credential {
    headers: Vec<(String, String)>,
    query: Option<String>,
}

pub struct Generator {
    paths: Vec<Variant<String>>,
    methods: Vec<String>,
    hosts: Vec<Variant<String>>,
    headers: Vec<Variant<Vec<(String, String)>>>,
    credentials: Vec<Variant<Credential>>,
}

impl Generator {
    pub fn new(resources: &Resources, keys: &Keys) -> Self {
        let mut paths = Vec::new();
        let mut methods = vec!["GET".to_string(), "POST".to_string()];
        let mut hosts = Vec::new();
        let mut header_values: Vec<(String, Vec<String>)> = Vec::new();
        let mut claims: Vec<(Vec<String>, String)> = Vec::new();
        let mut principals = Vec::new();
        for policy in &resources.policies {
            for rule in policy.spec["rules"].as_array().into_iter().flatten() {
                for to in rule["to"].as_array().into_iter().flatten() {
                    let op = &to["operation"];
                    for pattern in strings(&op["paths"]).chain(strings(&op["notPaths"])) {
                        paths.push(concrete_path(&pattern));
                    }
                    for m in strings(&op["methods"]).chain(strings(&op["notMethods"])) {
                        methods.push(concrete(&m, "X"));
                    }
                    for h in strings(&op["hosts"]).chain(strings(&op["notHosts"])) {
                        hosts.push(concrete(&h, "a").replace(":*", ":8080"));
                    }
                }
                for from in rule["from"].as_array().into_iter().flatten() {
                    let source = &from["source"];
                    principals.extend(
                        strings(&source["requestPrincipals"])
                            .chain(strings(&source["notRequestPrincipals"])),
                    );
                }
                for condition in rule["when"].as_array().into_iter().flatten() {
                    let key = condition["key"].as_str().unwrap_or_default();
                    let values: Vec<String> = strings(&condition["values"])
                        .chain(strings(&condition["notValues"]))
                        .map(|v| concrete(&v, "v"))
                        .collect();
                    if let Some(name) = key
                        .strip_prefix("request.headers[")
                        .and_then(|k| k.strip_suffix(']'))
                    {
                        header_values.push((name.to_string(), values));
                    } else if let Some(path) = key.strip_prefix("request.auth.claims") {
                        let names: Vec<String> = path
                            .trim_matches(|c| c == '[' || c == ']')
                            .split("][")
                            .map(String::from)
                            .collect();
                        claims.extend(values.into_iter().map(|v| (names.clone(), v)));
                    } else if key == "request.auth.principal" {
                        principals.extend(values);
                    } else if key == "request.auth.audiences" {
                        claims.extend(values.into_iter().map(|v| (vec!["aud".to_string()], v)));
                    } else if key == "request.auth.presenter" {
                        claims.extend(values.into_iter().map(|v| (vec!["azp".to_string()], v)));
                    }
                }
            }
        }
        paths.extend(["/", "/healthz", "/admin", "/v1/models/m:predict"].map(String::from));
        paths.sort();
        paths.dedup();
        methods.sort();
        methods.dedup();
        hosts.sort();
        hosts.dedup();
        Generator {
            paths: paths.iter().flat_map(|p| path_variants(p)).collect(),
            methods,
            hosts: hosts.iter().flat_map(|h| host_variants(h)).collect(),
            headers: header_values
                .iter()
                .flat_map(|(name, values)| header_variants(name, values))
                .collect(),
            credentials: credentials(resources, keys, &claims, &principals),
        }
    }

    /// At least `n` requests: every ingredient (on two of the policies' paths), then random
    /// combinations up to `n`.
    pub fn requests(&self, n: usize, rng: &mut Rng) -> Vec<Request> {
        let mut out = Vec::new();
        let plain_path = "/".to_string();
        let plain_paths: Vec<&Variant<String>> =
            self.paths.iter().filter(|p| p.kind.is_empty()).collect();
        // Two of the policies' own paths for each ingredient: where a header, token or method
        // decides something. The random part below pairs them with everything else.
        let two_paths = |rng: &mut Rng| -> Vec<Variant<String>> {
            rng.shuffled(&plain_paths)
                .into_iter()
                .take(2)
                .cloned()
                .collect()
        };
        for path in &self.paths {
            out.push(self.compose(path, "GET", None, None, None));
        }
        for host in &self.hosts {
            out.push(self.compose(
                &variant("", plain_path.clone()),
                "GET",
                Some(host),
                None,
                None,
            ));
        }
        for headers in &self.headers {
            for path in two_paths(rng) {
                out.push(self.compose(&path, "GET", None, Some(headers), None));
            }
        }
        for credential in &self.credentials {
            for path in two_paths(rng) {
                out.push(self.compose(&path, "GET", None, None, Some(credential)));
            }
        }
        for method in &self.methods {
            for path in &plain_paths {
                out.push(self.compose(path, method, None, None, None));
            }
        }
        while out.len() < n {
            let path = rng
                .pick(&self.paths)
                .cloned()
                .unwrap_or_else(|| variant("", plain_path.clone()));
            let method = rng
                .pick(&self.methods)
                .cloned()
                .unwrap_or_else(|| "GET".into());
            let host = if rng.below(3) == 0 {
                rng.pick(&self.hosts)
            } else {
                None
            };
            let headers = if rng.below(2) == 0 {
                rng.pick(&self.headers)
            } else {
                None
            };
            let credential = if rng.below(4) != 0 {
                rng.pick(&self.credentials)
            } else {
                None
            };
            out.push(self.compose(&path, &method, host, headers, credential));
        }
        out
    }

    fn compose(
        &self,
        path: &Variant<String>,
        method: &str,
        host: Option<&Variant<String>>,
        headers: Option<&Variant<Vec<(String, String)>>>,
        credential: Option<&Variant<Credential>>,
    ) -> Request {
        let mut kinds = Vec::new();
        let mut target = path.value.clone();
        kinds.push(path.kind.clone());
        if let Some(credential) = credential {
            kinds.push(credential.kind.clone());
            if let Some(query) = &credential.value.query {
                target.push(if target.contains('?') { '&' } else { '?' });
                target.push_str(query);
            }
        }
        let mut request = Request::new(method, &target, "");
        if let Some(host) = host {
            kinds.push(host.kind.clone());
            request = request.host(&host.value);
        }
        if let Some(headers) = headers {
            kinds.push(headers.kind.clone());
            request.headers.extend(headers.value.iter().cloned());
        }
        if let Some(credential) = credential {
            request
                .headers
                .extend(credential.value.headers.iter().cloned());
        }
        kinds.retain(|k| !k.is_empty());
        request.kind = if kinds.is_empty() {
            "plain".into()
        } else {
            kinds.join(" + ")
        };
        request
    }
}

fn strings(list: &Value) -> impl Iterator<Item = String> + '_ {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
}

/// A value matching Istio's form `v` (`*` → `fill`, `abc*` → `abc<fill>`, `*abc` → `<fill>abc`).
fn concrete(v: &str, fill: &str) -> String {
    if v == "*" {
        fill.to_string()
    } else if let Some(suffix) = v.strip_prefix('*') {
        format!("{fill}{suffix}")
    } else if let Some(prefix) = v.strip_suffix('*') {
        format!("{prefix}{fill}")
    } else {
        v.to_string()
    }
}

/// A path matching the pattern (templates filled with one or two segments).
fn concrete_path(pattern: &str) -> String {
    let path = pattern.replace("{**}", "a/b").replace("{*}", "seg");
    let path = concrete(&path, "x");
    if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    }
}

/// The path itself and the spellings of it attackers and sloppy clients use.
fn path_variants(path: &str) -> Vec<Variant<String>> {
    let mut out = vec![variant("", path.to_string())];
    let trimmed = path.trim_end_matches('/');
    let (head, last) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    let mut add = |kind: &str, value: String| out.push(variant(format!("path: {kind}"), value));
    add("trailing slash", format!("{trimmed}/"));
    add("suffix", format!("{trimmed}x"));
    add("upper case", path.to_ascii_uppercase());
    add("dot segment", format!("{head}/./{last}"));
    add("dot-dot segment", format!("/x/..{path}"));
    add("double slash", format!("/{path}"));
    add("inner double slash", format!("{head}//{last}"));
    add("encoded slash", format!("{head}%2F{last}"));
    add("encoded lower-case slash", format!("{head}%2f{last}"));
    add("encoded dot-dot", format!("/x/%2e%2e{path}"));
    add("backslash", format!("{head}\\{last}"));
    add("path parameter", format!("{trimmed};x=1"));
    add("dot-dot-semicolon", format!("/x/..;{path}"));
    add("encoded letter", encode_first_letter(path));
    add("query", format!("{path}?next=/admin"));
    add("raw quote", format!("{trimmed}\"x"));
    add("encoded percent", format!("{head}/%25{last}"));
    out
}

fn encode_first_letter(path: &str) -> String {
    match path.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, c)) => format!("{}%{:02X}{}", &path[..i], c as u32, &path[i + 1..]),
        None => path.to_string(),
    }
}

fn host_variants(host: &str) -> Vec<Variant<String>> {
    vec![
        variant("host", host.to_string()),
        variant("host: with port", format!("{host}:8080")),
        variant("host: upper case", host.to_ascii_uppercase()),
        variant("host: trailing dot", format!("{host}.")),
        variant("host: other", "other.example.org".to_string()),
    ]
}

fn header_variants(name: &str, values: &[String]) -> Vec<Variant<Vec<(String, String)>>> {
    let mut out = Vec::new();
    let other = "other-value".to_string();
    for value in values.iter().chain(std::iter::once(&other)) {
        let one = |v: &str| (name.to_string(), v.to_string());
        out.push(variant(format!("header {name}"), vec![one(value)]));
        out.push(variant(
            format!("header {name}: upper-case name"),
            vec![(name.to_ascii_uppercase(), value.clone())],
        ));
        out.push(variant(
            format!("header {name}: repeated, value first"),
            vec![one(value), one(&other)],
        ));
        out.push(variant(
            format!("header {name}: repeated, value last"),
            vec![one(&other), one(value)],
        ));
        out.push(variant(
            format!("header {name}: three times"),
            vec![one(&other), one(value), one("third")],
        ));
        out.push(variant(
            format!("header {name}: joined with a comma"),
            vec![one(&format!("{value},{other}"))],
        ));
        out.push(variant(
            format!("header {name}: same value twice"),
            vec![one(value), one(value)],
        ));
        out.push(variant(
            format!("header {name}: padded"),
            vec![one(&format!(" {value} "))],
        ));
        out.push(variant(format!("header {name}: empty"), vec![one("")]));
    }
    out
}

/// Tokens of every class, carried in every location the rules read (and the ones Envoy reads
/// that are easy to forget).
fn credentials(
    resources: &Resources,
    keys: &Keys,
    claims: &[(Vec<String>, String)],
    principals: &[String],
) -> Vec<Variant<Credential>> {
    let mut out = Vec::new();
    let issuers: Vec<String> = resources
        .jwt_rules
        .iter()
        .filter_map(|r| r["issuer"].as_str().map(String::from))
        .collect();
    for (index, rule) in resources.jwt_rules.iter().enumerate() {
        let Some(issuer) = rule["issuer"].as_str() else {
            continue;
        };
        let audience = rule["audiences"][0].as_str().map(String::from);
        let base = || {
            let mut payload =
                json!({"iss": issuer, "sub": "user-1", "iat": 1_700_000_000, "exp": FUTURE});
            if let Some(aud) = &audience {
                payload["aud"] = json!(aud);
            }
            payload
        };
        let with = |changes: Value| {
            let mut payload = base();
            for (k, v) in changes.as_object().into_iter().flatten() {
                if v.is_null() {
                    payload.as_object_mut().map(|o| o.remove(k));
                } else {
                    payload[k] = v.clone();
                }
            }
            payload
        };
        let header = tokens::header();
        let mut classes: Vec<(String, String)> = vec![
            ("valid".into(), keys.sign(&header, &base(), false)),
            (
                "expired".into(),
                keys.sign(&header, &with(json!({"exp": PAST})), false),
            ),
            (
                "not yet valid".into(),
                keys.sign(&header, &with(json!({"nbf": FUTURE})), false),
            ),
            (
                "no exp".into(),
                keys.sign(&header, &with(json!({"exp": null})), false),
            ),
            (
                "exp out of range".into(),
                keys.sign(&header, &with(json!({"exp": 1e30})), false),
            ),
            (
                "exp a string".into(),
                keys.sign(&header, &with(json!({"exp": "4102444800"})), false),
            ),
            (
                "nbf out of range".into(),
                keys.sign(&header, &with(json!({"nbf": 1e30})), false),
            ),
            (
                "no sub".into(),
                keys.sign(&header, &with(json!({"sub": null})), false),
            ),
            (
                "empty sub".into(),
                keys.sign(&header, &with(json!({"sub": ""})), false),
            ),
            (
                "sub with a slash".into(),
                keys.sign(&header, &with(json!({"sub": "team/user"})), false),
            ),
            (
                "unknown issuer".into(),
                keys.sign(&header, &with(json!({"iss": format!("{issuer}x")})), false),
            ),
            (
                "sub-path issuer".into(),
                keys.sign(
                    &header,
                    &with(json!({"iss": format!("{issuer}/tenants/x")})),
                    false,
                ),
            ),
            (
                "non-string nonce".into(),
                keys.sign(&header, &with(json!({"nonce": 5})), false),
            ),
            (
                "nested claim".into(),
                keys.sign(&header, &with(json!({"user": {"tier": "gold"}})), false),
            ),
            (
                "kid-less key".into(),
                keys.sign(
                    &json!({"alg": "HS256", "typ": "JWT", "kid": "rotated"}),
                    &base(),
                    true,
                ),
            ),
            (
                "unknown kid".into(),
                keys.sign(
                    &json!({"alg": "HS256", "typ": "JWT", "kid": "rotated"}),
                    &base(),
                    false,
                ),
            ),
            (
                "crit header".into(),
                keys.sign(
                    &json!({"alg": "HS256", "kid": tokens::KID, "crit": ["b64"], "b64": true}),
                    &base(),
                    false,
                ),
            ),
            (
                "typ JOSE".into(),
                keys.sign(
                    &json!({"alg": "HS256", "typ": "JOSE", "kid": tokens::KID}),
                    &base(),
                    false,
                ),
            ),
            ("alg none".into(), unsigned(&base())),
            (
                "over maxTokenBytes".into(),
                keys.sign(&header, &with(json!({"pad": "x".repeat(9000)})), false),
            ),
        ];
        if let Some(aud) = &audience {
            classes.push((
                "wrong audience".into(),
                keys.sign(&header, &with(json!({"aud": "other"})), false),
            ));
            classes.push((
                "audience list".into(),
                keys.sign(&header, &with(json!({"aud": ["other", aud]})), false),
            ));
            let bare = aud
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/');
            classes.push((
                "audience without scheme".into(),
                keys.sign(&header, &with(json!({"aud": bare})), false),
            ));
            classes.push((
                "audience with scheme and slash".into(),
                keys.sign(
                    &header,
                    &with(json!({"aud": format!("https://{bare}/")})),
                    false,
                ),
            ));
        } else {
            classes.push((
                "any audience".into(),
                keys.sign(&header, &with(json!({"aud": "other"})), false),
            ));
        }
        for (path, value) in claims {
            let mut claim = json!(value);
            for name in path.iter().skip(1).rev() {
                claim = json!({ name: claim });
            }
            let first = path.first().cloned().unwrap_or_default();
            classes.push((
                format!("claim {}", path.join(".")),
                keys.sign(
                    &header,
                    &with(json!({ first.clone(): claim.clone() })),
                    false,
                ),
            ));
            classes.push((
                format!("claim {} in a list", path.join(".")),
                keys.sign(&header, &with(json!({ first: [claim, "x"] })), false),
            ));
        }
        for principal in principals {
            let concrete = concrete(principal, "q");
            if let Some((iss, sub)) = concrete.rsplit_once('/') {
                classes.push((
                    format!("principal {principal}"),
                    keys.sign(&header, &with(json!({"iss": iss, "sub": sub})), false),
                ));
            }
        }
        let valid = classes[0].1.clone();
        classes.push(("bad signature".into(), flip_signature(&valid)));
        classes.push(("signature padded".into(), format!("{valid}=")));
        classes.push(("signature padded twice".into(), format!("{valid}==")));
        classes.push(("trailing dot".into(), format!("{valid}.")));
        classes.push(("non-canonical signature".into(), non_canonical(&valid)));
        let prefix = if issuers.len() > 1 {
            format!("rule {index} ")
        } else {
            String::new()
        };
        for (class, token) in &classes {
            for (location, credential) in locations(rule, token, &valid) {
                out.push(variant(
                    format!("token: {prefix}{class} @ {location}"),
                    credential,
                ));
            }
        }
    }
    out
}

/// The token's places: the rule's own locations, or Envoy's defaults and their tricky spellings.
fn locations(rule: &Value, token: &str, valid: &str) -> Vec<(String, Credential)> {
    let header = |name: &str, value: String| Credential {
        headers: vec![(name.to_string(), value)],
        query: None,
    };
    let query = |q: String| Credential {
        headers: Vec::new(),
        query: Some(q),
    };
    let mut out = Vec::new();
    let custom = rule.get("fromHeaders").is_some()
        || rule.get("fromParams").is_some()
        || rule.get("fromCookies").is_some();
    if custom {
        for h in rule["fromHeaders"].as_array().into_iter().flatten() {
            let name = h["name"].as_str().unwrap_or("authorization");
            let prefix = h["prefix"].as_str().unwrap_or("");
            out.push((
                format!("header {name}"),
                header(name, format!("{prefix}{token}")),
            ));
        }
        for p in strings(&rule["fromParams"]) {
            out.push((format!("param {p}"), query(format!("{p}={token}"))));
        }
        for c in strings(&rule["fromCookies"]) {
            out.push((
                format!("cookie {c}"),
                header("cookie", format!("a=b; {c}={token}")),
            ));
            out.push((
                format!("cookie {c}, quoted"),
                header("cookie", format!("{c}=\"{token}\"")),
            ));
            out.push((
                format!("cookie {c}, a lone quote"),
                header("cookie", format!("{c}=\"{token}")),
            ));
        }
        return out;
    }
    out.push((
        "authorization".into(),
        header("authorization", format!("Bearer {token}")),
    ));
    out.push((
        "authorization, lower-case bearer".into(),
        header("authorization", format!("bearer {token}")),
    ));
    out.push((
        "access_token".into(),
        query(format!("access_token={token}")),
    ));
    out.push((
        "encoded param name".into(),
        query(format!("%61ccess_token={token}")),
    ));
    out.push((
        "param with encoded dots".into(),
        query(format!("access_token={}", token.replace('.', "%2E"))),
    ));
    out.push((
        "basic then bearer".into(),
        header(
            "authorization",
            format!("Basic Zm9vOmJhcg==, Bearer {token}"),
        ),
    ));
    out.push((
        "two authorization headers".into(),
        Credential {
            headers: vec![
                ("authorization".into(), format!("Bearer {valid}")),
                ("authorization".into(), format!("Bearer {token}")),
            ],
            query: None,
        },
    ));
    out.push((
        "header and param".into(),
        Credential {
            headers: vec![("authorization".into(), format!("Bearer {valid}"))],
            query: Some(format!("access_token={token}")),
        },
    ));
    out
}

fn unsigned(payload: &Value) -> String {
    format!(
        "{}.{}.",
        tokens::base64url(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
        tokens::base64url(payload.to_string().as_bytes())
    )
}

/// The same token with its signature's first character changed.
fn flip_signature(token: &str) -> String {
    let (input, signature) = token.rsplit_once('.').unwrap_or((token, ""));
    let mut chars: Vec<char> = signature.chars().collect();
    if let Some(c) = chars.first_mut() {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    format!("{input}.{}", chars.into_iter().collect::<String>())
}

/// The same signature with unused low bits set in its last base64url character (decoders that
/// ignore those bits read the very same bytes).
fn non_canonical(token: &str) -> String {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (input, signature) = token.rsplit_once('.').unwrap_or((token, ""));
    let mut chars: Vec<char> = signature.chars().collect();
    if let Some(last) = chars.last_mut() {
        if let Some(index) = ALPHABET.find(*last) {
            // A 32-byte signature leaves 2 unused bits in its 43rd character.
            let changed = index ^ 0b01;
            *last = ALPHABET.as_bytes()[changed] as char;
        }
    }
    format!("{input}.{}", chars.into_iter().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_forms_become_matching_values() {
        assert_eq!(concrete_path("/v1/models/*"), "/v1/models/x");
        assert_eq!(concrete_path("*.json"), "/x.json");
        assert_eq!(
            concrete_path("/v2/models/{*}/infer"),
            "/v2/models/seg/infer"
        );
        assert_eq!(concrete_path("/dex/{**}"), "/dex/a/b");
        assert_eq!(concrete("*.example.com", "a"), "a.example.com");
    }

    #[test]
    fn every_ingredient_is_covered_before_random_combinations() {
        let resources = Resources::parse(
            r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: r}
spec: {jwtRules: [{issuer: "https://idp.example.com", audiences: ["api"]}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: p}
spec:
  rules:
  - from: [{source: {requestPrincipals: ["https://idp.example.com/*"]}}]
    to: [{operation: {paths: ["/v1/*"], hosts: ["api.example.com"]}}]
    when: [{key: "request.headers[x-role]", values: ["admin"]}]
"#,
        )
        .unwrap();
        let generator = Generator::new(&resources, &Keys::from_seed(1));
        let mut rng = Rng::new(1);
        let requests = generator.requests(3000, &mut rng);
        assert_eq!(requests.len(), 3000);
        let kinds: Vec<&str> = requests.iter().map(|r| r.kind.as_str()).collect();
        for expected in [
            "path: dot-dot segment",
            "header x-role: repeated, value last",
            "host: with port",
            "token: no sub @ authorization",
            "token: valid @ encoded param name",
            "token: expired @ basic then bearer",
            "token: principal https://idp.example.com/* @ access_token",
        ] {
            assert!(
                kinds.iter().any(|k| k.contains(expected)),
                "{expected} missing"
            );
        }
        assert!(requests.iter().any(|r| r.path.starts_with("/v1/x")));
        let again = generator.requests(3000, &mut Rng::new(1));
        assert_eq!(requests, again, "the seed reproduces the run");
    }

    #[test]
    fn the_non_canonical_signature_differs_only_in_unused_bits() {
        let keys = Keys::from_seed(3);
        let token = keys.sign(&tokens::header(), &json!({"iss": "a"}), false);
        let changed = non_canonical(&token);
        assert_ne!(token, changed);
        assert_eq!(token.len(), changed.len());
        assert_eq!(token[..token.len() - 1], changed[..changed.len() - 1]);
    }
}
