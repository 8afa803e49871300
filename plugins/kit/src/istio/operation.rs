//! The `to[].operation` of `AuthorizationPolicy` rules, compiled over all rules of a policy.
//!
//! Istio's semantics: the fields of one operation are ANDed, the values of one field ORed, a
//! `not*` field matches when none of its values does, an empty or absent field is not checked;
//! the operations of a rule's `to` list are ORed, and a rule without `to` matches any request.
//! Hosts compare case-insensitively with the port ignored; methods and paths case-sensitively.
//! Paths must be normalized first ([`super::normalize`]).
//!
//! All `paths` of all operations share one index, so finding the operations whose `paths` match
//! costs the same for 10 rules as for 1,000; the other fields are only checked on those
//! candidates (and on operations that have no `paths`).

use super::normalize::PathNormalization;
use super::path::{parse_patterns, PathIndex, PathSet};
use super::string_match::{Case, StringSet};
use crate::config::ConfigError;
use serde::Deserialize;
use std::borrow::Cow;

/// One entry of a rule's `to` list.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct To {
    pub operation: Operation,
}

/// Istio's `Operation`; every value list takes exact, `prefix*`, `*suffix` and `*` forms (ports
/// take numbers only), paths also the `{*}` / `{**}` templates.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Operation {
    /// `:authority` values, case-insensitive and whole, port included (`*.example.com`,
    /// `example.com:*`), as istiod matches them.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub not_hosts: Vec<String>,
    /// Destination ports, as strings (`"8080"`), as in Istio.
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub not_ports: Vec<String>,
    /// HTTP methods, matched exactly (`GET` does not match `get`).
    #[serde(default)]
    pub methods: Vec<String>,
    #[serde(default)]
    pub not_methods: Vec<String>,
    /// Normalized request paths without query: exact, `prefix*`, `*suffix`, `*`, `{*}`, `{**}`.
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub not_paths: Vec<String>,
}

/// What the matcher looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo<'a> {
    pub method: &'a str,
    /// The `:authority` as received (case is dealt with here); `None` when absent.
    pub host: Option<&'a str>,
    /// The normalized path without query or fragment ([`super::normalize_path`]).
    pub path: &'a str,
    /// The destination port; `None` when unknown (then `ports` never match).
    pub port: Option<u16>,
}

#[derive(Debug, Clone)]
struct CompiledOperation {
    rule: usize,
    not_paths: Option<PathSet>,
    methods: Option<StringSet>,
    not_methods: Option<StringSet>,
    hosts: Option<StringSet>,
    not_hosts: Option<StringSet>,
    ports: Option<Vec<u16>>,
    not_ports: Option<Vec<u16>>,
}

/// The `to` lists of all rules of a policy, compiled.
#[derive(Debug, Clone)]
pub struct OperationMatcher {
    /// `paths` of every operation; ids are positions in `operations`.
    paths: PathIndex,
    /// Operations without `paths`: candidates for every request.
    without_paths: Vec<u32>,
    /// Rules without `to`: they match every request.
    unconditional_rules: Vec<usize>,
    /// In rule order, so operation ids and rule positions ascend together.
    operations: Vec<CompiledOperation>,
    /// Whether some operation has `ports` / `notPorts`.
    uses_ports: bool,
    /// Whether some operation has `methods` / `notMethods`.
    uses_methods: bool,
    /// Whether some operation has `hosts` / `notHosts`.
    uses_hosts: bool,
    /// Whether some operation has `paths` / `notPaths`.
    uses_paths: bool,
}

fn non_empty<T>(
    values: &[String],
    compile: impl FnOnce() -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    if values.is_empty() {
        Ok(None)
    } else {
        compile().map(Some)
    }
}

fn compile_ports(values: &[String], field: &str) -> Result<Option<Vec<u16>>, ConfigError> {
    non_empty(values, || {
        values
            .iter()
            .enumerate()
            .map(|(k, v)| {
                v.parse::<u16>().map_err(|_| {
                    ConfigError::new(
                        format!("{field}[{k}]"),
                        format!("`{v}` is not a port number (0-65535)"),
                    )
                })
            })
            .collect()
    })
}

impl OperationMatcher {
    /// Compiles the `to` list of each rule, in rule order (an empty list is a rule without
    /// `to`). `rules_field` is the JSON path of the rules array (`"rules"`), so errors name
    /// `rules[i].to[j].operation.paths[k]`. `mode` is how request paths will be normalized:
    /// path patterns no such path can match are refused.
    pub fn compile<'a>(
        rules: impl IntoIterator<Item = &'a [To]>,
        rules_field: &str,
        mode: PathNormalization,
    ) -> Result<Self, ConfigError> {
        let mut matcher = Self {
            paths: PathIndex::default(),
            without_paths: Vec::new(),
            unconditional_rules: Vec::new(),
            operations: Vec::new(),
            uses_ports: false,
            uses_methods: false,
            uses_hosts: false,
            uses_paths: false,
        };
        for (rule, to_list) in rules.into_iter().enumerate() {
            if to_list.is_empty() {
                matcher.unconditional_rules.push(rule);
            }
            for (j, to) in to_list.iter().enumerate() {
                let field = format!("{rules_field}[{rule}].to[{j}].operation");
                matcher.add(rule, &to.operation, &field, mode)?;
            }
        }
        Ok(matcher)
    }

    fn add(
        &mut self,
        rule: usize,
        op: &Operation,
        field: &str,
        mode: PathNormalization,
    ) -> Result<(), ConfigError> {
        let lists = [
            &op.hosts,
            &op.not_hosts,
            &op.ports,
            &op.not_ports,
            &op.methods,
            &op.not_methods,
            &op.paths,
            &op.not_paths,
        ];
        if lists.iter().all(|list| list.is_empty()) {
            return Err(ConfigError::new(
                field,
                "operation must set at least one field",
            ));
        }
        let id = self.operations.len() as u32;
        let strings = |values: &[String], case, name: &str| {
            non_empty(values, || {
                StringSet::compile(values, case, &format!("{field}.{name}"))
            })
        };
        let compiled = CompiledOperation {
            rule,
            not_paths: non_empty(&op.not_paths, || {
                PathSet::compile(&op.not_paths, &format!("{field}.notPaths"), mode)
            })?,
            methods: strings(&op.methods, Case::Sensitive, "methods")?,
            not_methods: strings(&op.not_methods, Case::Sensitive, "notMethods")?,
            hosts: strings(&op.hosts, Case::Insensitive, "hosts")?,
            not_hosts: strings(&op.not_hosts, Case::Insensitive, "notHosts")?,
            ports: compile_ports(&op.ports, &format!("{field}.ports"))?,
            not_ports: compile_ports(&op.not_ports, &format!("{field}.notPorts"))?,
        };
        self.uses_ports |= compiled.ports.is_some() || compiled.not_ports.is_some();
        self.uses_methods |= compiled.methods.is_some() || compiled.not_methods.is_some();
        self.uses_hosts |= compiled.hosts.is_some() || compiled.not_hosts.is_some();
        self.uses_paths |= !op.paths.is_empty() || !op.not_paths.is_empty();
        let parsed = parse_patterns(&op.paths, &format!("{field}.paths"), mode)?;
        if parsed.is_empty() {
            self.without_paths.push(id);
        }
        for pattern in parsed {
            self.paths.insert(pattern, id);
        }
        self.operations.push(compiled);
        Ok(())
    }

    /// Positions of the rules whose `to` matches the request, ascending.
    pub fn matching_rules(&self, request: &RequestInfo<'_>) -> Vec<usize> {
        let host = LowercaseHost::of(request);
        let mut rules = self.unconditional_rules.clone();
        let mut add = |id: u32| {
            if let Some(op) = self.operations.get(id as usize) {
                if op.matches_besides_paths(request, host.get()) {
                    rules.push(op.rule);
                }
            }
        };
        self.without_paths.iter().copied().for_each(&mut add);
        self.paths.for_each_match(request.path, &mut add);
        rules.sort_unstable();
        rules.dedup();
        rules
    }

    /// Whether some operation looks at the destination port; callers fetch the port only then.
    pub fn uses_ports(&self) -> bool {
        self.uses_ports
    }

    /// Whether some operation looks at the method; callers may leave it empty otherwise.
    pub fn uses_methods(&self) -> bool {
        self.uses_methods
    }

    /// Whether some operation looks at the host; callers may leave it out otherwise.
    pub fn uses_hosts(&self) -> bool {
        self.uses_hosts
    }

    /// Whether some operation looks at the path; callers need not normalize it otherwise.
    pub fn uses_paths(&self) -> bool {
        self.uses_paths
    }

    /// The first rule whose `to` matches the request, without collecting the others: operations
    /// are checked only while they could still beat the best rule found so far.
    pub fn first_matching_rule(&self, request: &RequestInfo<'_>) -> Option<usize> {
        let host = LowercaseHost::of(request);
        let mut first = self.unconditional_rules.first().copied();
        let mut consider = |id: u32| {
            if let Some(op) = self.operations.get(id as usize) {
                if first.is_none_or(|rule| op.rule < rule)
                    && op.matches_besides_paths(request, host.get())
                {
                    first = Some(op.rule);
                }
            }
        };
        self.without_paths.iter().copied().for_each(&mut consider);
        self.paths.for_each_match(request.path, &mut consider);
        first
    }
}

/// The request's `:authority` as received, lowercased once per request (host patterns are
/// compiled in lowercase); borrowed when it is already lowercase. Port and trailing dot stay:
/// istiod matches `hosts` on the whole `:authority` (`example.com` does not match
/// `example.com:8080`; write `example.com:*` for that), and so does this matcher.
struct LowercaseHost<'a>(Option<Cow<'a, str>>);

impl<'a> LowercaseHost<'a> {
    fn of(request: &RequestInfo<'a>) -> Self {
        Self(request.host.map(|host| {
            if host.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(host.to_ascii_lowercase())
            } else {
                Cow::Borrowed(host)
            }
        }))
    }

    fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl CompiledOperation {
    /// `host` is lowercase already ([`LowercaseHost`]).
    fn matches_besides_paths(&self, request: &RequestInfo<'_>, host: Option<&str>) -> bool {
        let in_set = |set: &Option<StringSet>, value: Option<&str>| match (set, value) {
            (Some(set), Some(value)) => set.matches(value),
            _ => false,
        };
        let in_hosts = |set: &Option<StringSet>| match (set, host) {
            (Some(set), Some(host)) => set.matches_lowercase(host),
            _ => false,
        };
        let in_ports = |ports: &Option<Vec<u16>>| match (ports, request.port) {
            (Some(ports), Some(port)) => ports.contains(&port),
            _ => false,
        };
        (self.methods.is_none() || in_set(&self.methods, Some(request.method)))
            && !in_set(&self.not_methods, Some(request.method))
            && (self.hosts.is_none() || in_hosts(&self.hosts))
            && !in_hosts(&self.not_hosts)
            && (self.ports.is_none() || in_ports(&self.ports))
            && !in_ports(&self.not_ports)
            && !self
                .not_paths
                .as_ref()
                .is_some_and(|set| set.matches(request.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use PathNormalization::MergeSlashes;

    fn matcher(json: &str) -> OperationMatcher {
        let rules: Vec<Vec<To>> = serde_json::from_str(json).unwrap();
        OperationMatcher::compile(rules.iter().map(Vec::as_slice), "rules", MergeSlashes).unwrap()
    }

    fn compile_err(json: &str) -> ConfigError {
        let rules: Vec<Vec<To>> = serde_json::from_str(json).unwrap();
        OperationMatcher::compile(rules.iter().map(Vec::as_slice), "rules", MergeSlashes)
            .unwrap_err()
    }

    fn req<'a>(method: &'a str, host: Option<&'a str>, path: &'a str) -> RequestInfo<'a> {
        RequestInfo {
            method,
            host,
            path,
            port: Some(8080),
        }
    }

    #[test]
    fn kubeflow_allowlist() {
        let m = matcher(
            r#"[[{"operation":{"paths":["/metrics","/healthz","/ready","/wait-for-drain","/v1/models/*","/v2/models/*"]}}]]"#,
        );
        for (path, allowed) in [
            ("/metrics", true),
            ("/healthz", true),
            ("/ready", true),
            ("/wait-for-drain", true),
            ("/v1/models/bert:predict", true),
            ("/v2/models/iris/infer", true),
            ("/admin", false),
            ("/metrics/x", false),
            ("/v1/models", false),
            ("/v3/models/x", false),
        ] {
            let got = m.first_matching_rule(&req("POST", Some("h"), path));
            assert_eq!(got.is_some(), allowed, "{path}");
        }
    }

    #[test]
    fn fields_are_anded_values_ored() {
        let m = matcher(
            r#"[[{"operation":{"methods":["GET","HEAD"],"paths":["/a*"],"notPaths":["/admin*"]}}]]"#,
        );
        assert_eq!(m.first_matching_rule(&req("GET", None, "/api")), Some(0));
        assert_eq!(m.first_matching_rule(&req("HEAD", None, "/a")), Some(0));
        assert_eq!(m.first_matching_rule(&req("POST", None, "/api")), None);
        assert_eq!(m.first_matching_rule(&req("get", None, "/api")), None);
        assert_eq!(m.first_matching_rule(&req("GET", None, "/admin/x")), None);
        assert_eq!(m.first_matching_rule(&req("GET", None, "/b")), None);
    }

    #[test]
    fn not_fields_alone() {
        let m = matcher(
            r#"[[{"operation":{"notPaths":["/dex/*","/dex/**","/oauth2/*","/v1/*"]}}],[{"operation":{"notMethods":["GET"]}}]]"#,
        );
        assert_eq!(m.matching_rules(&req("GET", None, "/admin")), vec![0]);
        assert_eq!(
            m.matching_rules(&req("GET", None, "/dex/login")),
            Vec::<usize>::new()
        );
        assert_eq!(
            m.matching_rules(&req("POST", None, "/v1/models/x")),
            vec![1]
        );
        assert_eq!(m.matching_rules(&req("POST", None, "/other")), vec![0, 1]);
    }

    #[test]
    fn to_entries_are_ored_and_rule_without_to_matches_all() {
        let m = matcher(r#"[[{"operation":{"paths":["/a"]}},{"operation":{"paths":["/b"]}}],[]]"#);
        assert_eq!(m.matching_rules(&req("GET", None, "/a")), vec![0, 1]);
        assert_eq!(m.matching_rules(&req("GET", None, "/b")), vec![0, 1]);
        assert_eq!(m.matching_rules(&req("GET", None, "/c")), vec![1]);
        let nothing = matcher("[]");
        assert_eq!(nothing.first_matching_rule(&req("GET", None, "/")), None);
    }

    #[test]
    fn hosts_case_insensitive_on_the_whole_authority_as_istio() {
        let m = matcher(
            r#"[[{"operation":{"hosts":["Bert-Model.default.example.com","*.corp.example","api.*","gw.example:*"]}}]]"#,
        );
        for (host, expected) in [
            (Some("bert-model.default.example.com"), true),
            (Some("BERT-MODEL.DEFAULT.EXAMPLE.COM"), true),
            // istiod does not strip the port or a trailing dot: neither does the matcher.
            (Some("bert-model.default.example.com:8080"), false),
            (Some("bert-model.default.example.com."), false),
            (Some("x.corp.example"), true),
            (Some("x.corp.example:443"), false),
            (Some("api.anything:8080"), true),
            (Some("gw.example:8443"), true),
            (Some("gw.example"), false),
            (Some("corp.example"), false),
            (Some("bert-model.default.example.com.evil.io"), false),
            (Some("evil.io:bert-model.default.example.com"), false),
            (None, false),
        ] {
            let got = m.first_matching_rule(&req("GET", host, "/")).is_some();
            assert_eq!(got, expected, "{host:?}");
        }
        let not = matcher(r#"[[{"operation":{"notHosts":["admin.example.com"]}}]]"#);
        assert_eq!(
            not.first_matching_rule(&req("GET", Some("ADMIN.example.com"), "/")),
            None
        );
        assert_eq!(
            not.first_matching_rule(&req("GET", Some("admin.example.com:80"), "/")),
            Some(0)
        );
        assert_eq!(not.first_matching_rule(&req("GET", None, "/")), Some(0));
    }

    #[test]
    fn first_matching_rule_agrees_with_matching_rules() {
        let m = matcher(
            r#"[[{"operation":{"methods":["POST"],"paths":["/a*"]}}],
                [{"operation":{"notPaths":["/b"]}}],
                [{"operation":{"paths":["/a/{*}"],"hosts":["H.example"]}}],
                [],
                [{"operation":{"paths":["*"]}}]]"#,
        );
        for (method, host, path, expected) in [
            ("POST", None, "/a/x", vec![0, 1, 3, 4]),
            ("GET", Some("h.EXAMPLE"), "/a/x", vec![1, 2, 3, 4]),
            ("GET", Some("h.EXAMPLE:1"), "/a/x", vec![1, 3, 4]),
            ("GET", None, "/b", vec![3, 4]),
        ] {
            let request = req(method, host, path);
            assert_eq!(m.matching_rules(&request), expected, "{path}");
            assert_eq!(
                m.first_matching_rule(&request),
                expected.first().copied(),
                "{path}"
            );
        }
        let later = matcher(
            r#"[[{"operation":{"paths":["/x"]}}],[{"operation":{"hosts":["h"]}}],[{"operation":{"paths":["/y*"]}}]]"#,
        );
        assert_eq!(later.first_matching_rule(&req("GET", None, "/yz")), Some(2));
        assert_eq!(
            later.first_matching_rule(&req("GET", Some("h"), "/yz")),
            Some(1)
        );
    }

    #[test]
    fn ports() {
        let m = matcher(
            r#"[[{"operation":{"ports":["8080"]}}],[{"operation":{"notPorts":["8080"]}}]]"#,
        );
        assert_eq!(m.matching_rules(&req("GET", None, "/")), vec![0]);
        let other = RequestInfo {
            port: Some(9090),
            ..req("GET", None, "/")
        };
        assert_eq!(m.matching_rules(&other), vec![1]);
        let unknown = RequestInfo {
            port: None,
            ..req("GET", None, "/")
        };
        assert_eq!(m.matching_rules(&unknown), vec![1]);
        assert!(m.uses_ports());
        assert!(!matcher(r#"[[{"operation":{"paths":["/"]}}]]"#).uses_ports());
        assert!(matcher(r#"[[{"operation":{"paths":["/"]}}]]"#).uses_paths());
        assert!(matcher(r#"[[{"operation":{"notPaths":["/"]}}]]"#).uses_paths());
        assert!(!m.uses_paths());
    }

    #[test]
    fn errors_name_the_field() {
        let err = compile_err(
            r#"[[{"operation":{"paths":["/a"]}}],[{"operation":{"paths":["/ok","/x/{**}/{*}"]}}]]"#,
        );
        assert_eq!(err.field, "rules[1].to[0].operation.paths[1]");
        let err = compile_err(r#"[[{"operation":{"methods":["GET",""]}}]]"#);
        assert_eq!(err.field, "rules[0].to[0].operation.methods[1]");
        let err = compile_err(r#"[[{"operation":{"notPaths":["/a{"]}}]]"#);
        assert_eq!(err.field, "rules[0].to[0].operation.notPaths[0]");
        let err = compile_err(r#"[[{"operation":{"ports":["http"]}}]]"#);
        assert_eq!(err.field, "rules[0].to[0].operation.ports[0]");
        let err = compile_err(r#"[[{"operation":{"notPorts":["70000"]}}]]"#);
        assert_eq!(err.field, "rules[0].to[0].operation.notPorts[0]");
        let err = compile_err(r#"[[{"operation":{}}]]"#);
        assert_eq!(err.field, "rules[0].to[0].operation");
    }

    #[test]
    fn unknown_operation_field_is_refused() {
        let err = serde_json::from_str::<To>(r#"{"operation":{"pathz":["/a"]}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `pathz`"), "{err}");
    }

    #[test]
    fn thousand_rules_match_the_right_one() {
        let rules: Vec<Vec<To>> = (0..1000)
            .map(|i| {
                let op = Operation {
                    paths: vec![format!("/m{i}/*")],
                    methods: vec!["POST".into()],
                    ..Operation::default()
                };
                vec![To { operation: op }]
            })
            .collect();
        let m = OperationMatcher::compile(rules.iter().map(Vec::as_slice), "rules", MergeSlashes)
            .unwrap();
        assert_eq!(
            m.first_matching_rule(&req("POST", None, "/m999/x")),
            Some(999)
        );
        assert_eq!(m.first_matching_rule(&req("GET", None, "/m999/x")), None);
        assert_eq!(m.first_matching_rule(&req("POST", None, "/m1000/x")), None);
    }
}
