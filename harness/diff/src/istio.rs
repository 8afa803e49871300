//! The user's Istio resources (`RequestAuthentication` and `AuthorizationPolicy`, multi-document
//! YAML as `kubectl apply` takes it), and the `pluginConfig` each plugin gets from them.

use harness_runner::{Error, Result};
use serde_json::{json, Value};

/// The annotation that makes an `AuthorizationPolicy` a dry run in Istio.
const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// `<namespace>.<name>`, the name the plugins log.
    pub name: String,
    /// The spec without the fields that select workloads (the `WasmPlugin` selects).
    pub spec: Value,
    pub dry_run: bool,
}

impl Policy {
    /// The RBAC policy name istiod gives rule `i`: `ns[<namespace>]-policy[<name>]-rule[<i>]`.
    pub fn rule_name(&self, i: usize) -> String {
        let (namespace, name) = self.name.split_once('.').unwrap_or(("default", &self.name));
        format!("ns[{namespace}]-policy[{name}]-rule[{i}]")
    }

    pub fn action(&self) -> &str {
        self.spec["action"].as_str().unwrap_or("ALLOW")
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    /// `spec.jwtRules` of every `RequestAuthentication`, in file order.
    pub jwt_rules: Vec<Value>,
    pub policies: Vec<Policy>,
}

impl Resources {
    pub fn parse(text: &str) -> Result<Self> {
        let mut resources = Resources::default();
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let at = format!("document {}", index + 1);
            let value: Value = serde::Deserialize::deserialize(document)
                .map_err(|e| Error(format!("{at}: not YAML: {e}")))?;
            if value.is_null() {
                continue;
            }
            harness_runner::crd::check(&value).map_err(|e| Error(format!("{at}: {e}")))?;
            resources.add(&at, value)?;
        }
        if resources.jwt_rules.is_empty() && resources.policies.is_empty() {
            return Err(Error(
                "no RequestAuthentication or AuthorizationPolicy in the file".into(),
            ));
        }
        Ok(resources)
    }

    fn add(&mut self, at: &str, resource: Value) -> Result<()> {
        let kind = resource["kind"].as_str().unwrap_or_default();
        let api = resource["apiVersion"].as_str().unwrap_or_default();
        let name = resource["metadata"]["name"].as_str().unwrap_or_default();
        let namespace = resource["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let at = format!("{at} ({kind} {namespace}/{name})");
        if !api.starts_with("security.istio.io/") {
            return Err(Error(format!(
                "{at}: apiVersion {api:?}: expected security.istio.io/v1 or v1beta1"
            )));
        }
        if name.is_empty() {
            return Err(Error(format!("{at}: metadata.name is required")));
        }
        let Some(spec) = resource.get("spec").and_then(Value::as_object) else {
            return Err(Error(format!("{at}: spec: expected an object")));
        };
        let mut spec = spec.clone();
        for field in ["selector", "targetRef", "targetRefs"] {
            spec.remove(field);
        }
        match kind {
            "RequestAuthentication" => {
                if let Some(rules) = spec.get("jwtRules") {
                    let rules = rules
                        .as_array()
                        .ok_or_else(|| Error(format!("{at}: spec.jwtRules: expected a list")))?;
                    self.jwt_rules.extend(rules.iter().cloned());
                }
                Ok(())
            }
            "AuthorizationPolicy" => {
                let dry_run = resource["metadata"]["annotations"][DRY_RUN_ANNOTATION]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                self.policies.push(Policy {
                    name: format!("{namespace}.{name}"),
                    spec: Value::Object(spec),
                    dry_run,
                });
                Ok(())
            }
            other => Err(Error(format!(
                "{at}: kind {other:?}: expected RequestAuthentication or AuthorizationPolicy"
            ))),
        }
    }

    /// The resources a plugin's `pluginConfig` stands for: auth-gate's `jwtRules` and
    /// `policies`, path-allowlist's `policies` or its single `action`/`rules` policy.
    pub fn from_plugin_config(config: &Value) -> Result<Self> {
        let mut resources = Resources::default();
        if let Some(rules) = config.get("jwtRules") {
            let rules = rules
                .as_array()
                .ok_or_else(|| Error("jwtRules: expected a list".into()))?;
            resources.jwt_rules.extend(rules.iter().cloned());
        }
        let specs: Vec<Value> = match config.get("policies") {
            Some(Value::Array(policies)) => policies.clone(),
            Some(_) => return Err(Error("policies: expected a list".into())),
            None if config.get("rules").is_some() || config.get("action").is_some() => {
                let mut spec = json!({});
                for field in ["action", "rules"] {
                    if let Some(value) = config.get(field) {
                        spec[field] = value.clone();
                    }
                }
                vec![spec]
            }
            None => Vec::new(),
        };
        for (i, spec) in specs.into_iter().enumerate() {
            let mut spec = spec
                .as_object()
                .cloned()
                .ok_or_else(|| Error(format!("policies[{i}]: expected an object")))?;
            let name = match spec.remove("name") {
                Some(Value::String(name)) => name,
                _ => format!("policy-{i}"),
            };
            let dry_run = spec
                .remove("dryRun")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            resources.policies.push(Policy {
                name: format!("default.{name}"),
                spec: Value::Object(spec),
                dry_run,
            });
        }
        Ok(resources)
    }

    /// The resources as YAML documents `kubectl apply` (and `harness diff --istio`) takes.
    pub fn to_yaml(&self) -> String {
        let mut documents = Vec::new();
        if !self.jwt_rules.is_empty() {
            documents.push(json!({
                "apiVersion": "security.istio.io/v1",
                "kind": "RequestAuthentication",
                "metadata": {"name": "jwt", "namespace": "default"},
                "spec": {"jwtRules": self.jwt_rules}
            }));
        }
        for policy in &self.policies {
            let (namespace, name) = policy
                .name
                .split_once('.')
                .unwrap_or(("default", &policy.name));
            let mut metadata = json!({"name": name, "namespace": namespace});
            if policy.dry_run {
                metadata["annotations"] = json!({DRY_RUN_ANNOTATION: "true"});
            }
            documents.push(json!({
                "apiVersion": "security.istio.io/v1",
                "kind": "AuthorizationPolicy",
                "metadata": metadata,
                "spec": policy.spec
            }));
        }
        documents
            .iter()
            .filter_map(|d| serde_yaml::to_string(d).ok())
            .collect::<Vec<_>>()
            .join("---\n")
    }

    /// The JWT rules with their keys replaced by the run's `jwks` (inline), so both Envoys
    /// check tokens the run can sign.
    pub fn jwt_rules_with_keys(&self, jwks: &str) -> Vec<Value> {
        self.jwt_rules
            .iter()
            .map(|rule| {
                let mut rule = rule.as_object().cloned().unwrap_or_default();
                for field in ["jwksUri", "jwks_uri", "jwksCluster", "timeout"] {
                    rule.remove(field);
                }
                rule.insert("jwks".into(), Value::String(jwks.to_string()));
                Value::Object(rule)
            })
            .collect()
    }

    /// auth-gate's `pluginConfig`: the JWT rules and every policy, by name.
    pub fn auth_gate_config(&self, jwks: &str, path_normalization: &str) -> Value {
        json!({
            "jwtRules": self.jwt_rules_with_keys(jwks),
            "policies": self.policy_entries(),
            "pathNormalization": path_normalization,
        })
    }

    /// path-allowlist's `pluginConfig`: every policy, by name (it takes `to` rules only and
    /// says so for anything else).
    pub fn path_allowlist_config(&self, path_normalization: &str) -> Value {
        json!({"policies": self.policy_entries(), "pathNormalization": path_normalization})
    }

    /// The `policies` entries both plugins take: each spec with its name and `dryRun`.
    fn policy_entries(&self) -> Vec<Value> {
        self.policies
            .iter()
            .map(|policy| {
                let mut spec = policy.spec.as_object().cloned().unwrap_or_default();
                spec.insert("name".into(), Value::String(policy.name.clone()));
                if policy.dry_run {
                    spec.insert("dryRun".into(), Value::Bool(true));
                }
                Value::Object(spec)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: dex, namespace: istio-system}
spec:
  selector: {matchLabels: {app: gw}}
  jwtRules:
  - issuer: https://dex.example.com
    jwksUri: https://dex.example.com/keys
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: require-jwt
  namespace: istio-system
  annotations: {istio.io/dry-run: "true"}
spec:
  action: DENY
  rules:
  - from: [{source: {notRequestPrincipals: ["*"]}}]
---
"#;

    #[test]
    fn resources_are_read_and_selectors_dropped() {
        let resources = Resources::parse(FILE).unwrap();
        assert_eq!(resources.jwt_rules.len(), 1);
        assert_eq!(resources.policies.len(), 1);
        let policy = &resources.policies[0];
        assert_eq!(policy.name, "istio-system.require-jwt");
        assert_eq!(policy.action(), "DENY");
        assert!(policy.dry_run);
        assert_eq!(Resources::parse(&resources.to_yaml()).unwrap(), resources);
        let config = resources.auth_gate_config("{\"keys\":[]}", "BASE");
        let rule = &config["jwtRules"][0];
        assert_eq!(rule["jwks"], "{\"keys\":[]}");
        assert!(rule.get("jwksUri").is_none());
        assert_eq!(config["policies"][0]["name"], "istio-system.require-jwt");
        assert_eq!(config["policies"][0]["dryRun"], true);
        assert!(config["policies"][0].get("selector").is_none());
    }

    #[test]
    fn plugin_configs_stand_for_their_resources() {
        let auth = Resources::from_plugin_config(&json!({
            "jwtRules": [{"issuer": "i", "jwks": "{}"}],
            "policies": [{"name": "p", "action": "DENY", "dryRun": true, "rules": [{}]}]
        }))
        .unwrap();
        assert_eq!(auth.jwt_rules.len(), 1);
        assert_eq!(auth.policies[0].name, "default.p");
        assert!(auth.policies[0].dry_run);
        assert_eq!(
            auth.policies[0].spec,
            json!({"action": "DENY", "rules": [{}]})
        );
        let single = Resources::from_plugin_config(&json!({
            "rules": [{"to": [{"operation": {"paths": ["/a"]}}]}],
            "pathNormalization": "BASE"
        }))
        .unwrap();
        assert_eq!(single.policies.len(), 1);
        assert_eq!(single.policies[0].action(), "ALLOW");
        assert!(Resources::from_plugin_config(&json!({"policies": 1})).is_err());
    }

    #[test]
    fn other_kinds_and_broken_documents_are_named() {
        let err = Resources::parse(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n",
        )
        .unwrap_err();
        assert!(
            err.0.contains("document 1 (Gateway default/g): apiVersion"),
            "{err}"
        );
        let err = Resources::parse("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {}\n").unwrap_err();
        assert!(err.0.contains("kind \"PeerAuthentication\""), "{err}");
        let err = Resources::parse("a: [").unwrap_err();
        assert!(err.0.starts_with("document 1: not YAML"), "{err}");
        assert!(Resources::parse("").is_err());
    }
}
