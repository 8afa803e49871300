//! Istio resources checked as the Kubernetes API server checks them before storing them, so a
//! manifest `kubectl apply` would refuse is refused here too, before any Envoy starts: an unknown
//! field (the API server's strict field validation), a wrong type, a value outside an enum or a
//! bound, a missing required field. The schemas are the `spec` schemas of Istio's CRDs kept in
//! `harness/tests/istio-crds/` (see its README), embedded so the binary needs no checkout; this
//! walks the structural subset of them the API server enforces itself. Not checked: `pattern`s
//! and the CEL rules (`x-kubernetes-validations`), which `harness/tests/wasmplugin_manifests.rs`
//! checks for the shipped manifests with a full JSON Schema validator.

use crate::{Error, Result};
use serde_json::{Map, Value};

/// The `spec` schema of each kind the harness reads.
fn spec_schema(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "WasmPlugin" => include_str!("../../tests/istio-crds/wasmplugin.schema.json"),
        "AuthorizationPolicy" => {
            include_str!("../../tests/istio-crds/authorizationpolicy.schema.json")
        }
        "RequestAuthentication" => {
            include_str!("../../tests/istio-crds/requestauthentication.schema.json")
        }
        _ => return None,
    })
}

/// The fields of every resource; `metadata` is the API server's own and not checked here.
const RESOURCE_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// Checks one resource (a whole YAML document) against its kind's CRD; kinds without a schema
/// here pass. The error names the resource and every offending field, e.g.
/// `WasmPlugin istio-system/auth: spec.pluginconfig: unknown field (did you mean pluginConfig?)`.
pub fn check(resource: &Value) -> Result<()> {
    let kind = resource["kind"].as_str().unwrap_or_default();
    let Some(text) = spec_schema(kind) else {
        return Ok(());
    };
    let schema: Value = serde_json::from_str(text)
        .map_err(|e| Error(format!("the {kind} CRD schema is not JSON: {e}")))?;
    let mut problems = Vec::new();
    for field in resource.as_object().into_iter().flat_map(Map::keys) {
        if !RESOURCE_FIELDS.contains(&field.as_str()) {
            let hint = suggestion(field, RESOURCE_FIELDS.iter().copied());
            problems.push(format!("{field}: unknown field{hint}"));
        }
    }
    let empty = Value::Object(Map::new());
    let spec = match resource.get("spec") {
        None | Some(Value::Null) => &empty,
        Some(spec) => spec,
    };
    walk(&schema, spec, "spec", &mut problems);
    if problems.is_empty() {
        return Ok(());
    }
    let namespace = resource["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default");
    let name = resource["metadata"]["name"].as_str().unwrap_or_default();
    Err(Error(format!(
        "{kind} {namespace}/{name}: {}",
        problems.join("; ")
    )))
}

fn walk(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            problems.push(format!(
                "{path}: expected an integer or a string, got {}",
                describe(value)
            ));
        }
        return;
    }
    // The API server drops a null field before validating (a nullable one keeps it): both pass.
    if value.is_null() {
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(types) => types.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
        let expected: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        problems.push(format!(
            "{path}: expected {}, got {}",
            expected.join(" or "),
            describe(value)
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            let allowed: Vec<String> = allowed
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
                .collect();
            problems.push(format!(
                "{path}: {value} is not one of {}",
                allowed.join(", ")
            ));
        }
    }
    bounds(schema, value, path, problems);
    match value {
        Value::Object(fields) => object(schema, fields, path, problems),
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, value) in items.iter().enumerate() {
                    walk(item, value, &format!("{path}[{i}]"), problems);
                }
            }
        }
        _ => {}
    }
}

fn object(schema: &Value, fields: &Map<String, Value>, path: &str, problems: &mut Vec<String>) {
    let properties = schema["properties"].as_object();
    let preserve_unknown = schema["x-kubernetes-preserve-unknown-fields"] == true;
    for (name, value) in fields {
        let at = format!("{path}.{name}");
        match (
            properties.and_then(|p| p.get(name)),
            schema.get("additionalProperties"),
        ) {
            (Some(field), _) => walk(field, value, &at, problems),
            (None, Some(map_values)) if map_values.is_object() => {
                walk(map_values, value, &at, problems)
            }
            (None, Some(Value::Bool(true))) => {}
            (None, _) if preserve_unknown => {}
            (None, _) => {
                let known = properties.into_iter().flat_map(Map::keys);
                let hint = suggestion(name, known.map(String::as_str));
                problems.push(format!("{at}: unknown field{hint}"));
            }
        }
    }
    for required in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if fields.get(required).is_none_or(Value::is_null) {
            problems.push(format!("{path}.{required}: required field missing"));
        }
    }
}

/// `minLength`/`maxLength`, `minItems`/`maxItems`, `minProperties`/`maxProperties` and
/// `minimum`/`maximum`.
fn bounds(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let (size, keywords, unit) = match value {
        Value::String(s) => (
            s.chars().count() as f64,
            ("minLength", "maxLength"),
            " characters",
        ),
        Value::Array(items) => (items.len() as f64, ("minItems", "maxItems"), " items"),
        Value::Object(fields) => (
            fields.len() as f64,
            ("minProperties", "maxProperties"),
            " fields",
        ),
        Value::Number(n) => (n.as_f64().unwrap_or_default(), ("minimum", "maximum"), ""),
        _ => return,
    };
    if let Some(min) = schema[keywords.0].as_f64().filter(|min| size < *min) {
        problems.push(format!("{path}: {size}{unit}, at least {min} allowed"));
    }
    if let Some(max) = schema[keywords.1].as_f64().filter(|max| size > *max) {
        problems.push(format!("{path}: {size}{unit}, at most {max} allowed"));
    }
}

fn has_type(value: &Value, schema_type: &str) -> bool {
    match schema_type {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// What a value is, as the error shows it: its JSON type and, for a scalar, its beginning.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Object(_) => return "an object".to_string(),
        Value::Array(_) => return "a list".to_string(),
        Value::Null => return "null".to_string(),
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
    };
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{kind} {}…", &text[..at]),
        None => format!("{kind} {text}"),
    }
}

/// ` (did you mean pluginConfig?)` when a known field differs from `name` only in case, `_`,
/// `-` or a plural `s`: the usual ways a field typed by hand or in another tool's spelling goes
/// wrong.
fn suggestion<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let folded = |s: &str| -> String {
        let letters: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        letters.trim_end_matches('s').to_string()
    };
    let wanted = folded(name);
    known
        .into_iter()
        .find(|k| folded(k) == wanted)
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wasm_plugin(spec: Value) -> Value {
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": "auth", "namespace": "istio-system"},
            "spec": spec,
        })
    }

    fn problems(resource: &Value) -> String {
        check(resource).unwrap_err().0
    }

    #[test]
    fn a_valid_wasm_plugin_passes_with_its_plugin_config_unchecked() {
        let ok = wasm_plugin(json!({
            "url": "oci://ghcr.io/x/auth-gate:0.1.0",
            "phase": "AUTHN",
            "priority": 10,
            "selector": {"matchLabels": {"app": "gw"}},
            "vmConfig": {"env": [{"name": "A", "value": "b"}]},
            "pluginConfig": {"anything": [{"goes": true}]},
            "imagePullPolicy": null,
        }));
        check(&ok).unwrap();
        check(&json!({"kind": "ConfigMap", "data": {"x": 1}})).unwrap();
    }

    #[test]
    fn unknown_fields_are_named_with_their_path_and_a_hint() {
        for field in ["pluginconfig", "plugin_config"] {
            let err = problems(&wasm_plugin(json!({"url": "x", field: {"a": 1}})));
            assert_eq!(
                err,
                format!(
                    "WasmPlugin istio-system/auth: spec.{field}: unknown field (did you mean pluginConfig?)"
                )
            );
        }
        let err = problems(&wasm_plugin(
            json!({"url": "x", "vmConfig": {"env": [{"name": "A", "valu": "b"}]}}),
        ));
        assert_eq!(
            err,
            "WasmPlugin istio-system/auth: spec.vmConfig.env[0].valu: unknown field"
        );
        let mut misplaced = wasm_plugin(json!({"url": "x"}));
        misplaced["Spec"] = json!({});
        assert!(
            problems(&misplaced).contains("Spec: unknown field (did you mean spec?)"),
            "{}",
            problems(&misplaced)
        );
    }

    #[test]
    fn wrong_types_enums_bounds_and_missing_fields_are_named() {
        let err = problems(&wasm_plugin(json!({
            "url": "x",
            "priority": "high",
            "phase": "AUTHORIZATION",
            "pluginConfig": "{\"allow\":[]}",
            "imagePullSecret": "",
            "vmConfig": {"env": [{"value": "b"}]},
        })));
        for expected in [
            "spec.priority: expected integer, got string \"high\"",
            "spec.phase: \"AUTHORIZATION\" is not one of UNSPECIFIED_PHASE, AUTHN, AUTHZ, STATS",
            "spec.pluginConfig: expected object, got string",
            "spec.imagePullSecret: 0 characters, at least 1 allowed",
            "spec.vmConfig.env[0].name: required field missing",
        ] {
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
        let err = problems(&json!({"kind": "WasmPlugin", "metadata": {"name": "n"}}));
        assert_eq!(
            err,
            "WasmPlugin default/n: spec.url: required field missing"
        );
    }

    #[test]
    fn authorization_policies_and_request_authentications_have_their_schemas() {
        let policy = json!({
            "kind": "AuthorizationPolicy",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"action": "ALLOW", "rules": [{"to": [{"operation": {"path": ["/a"]}}]}]},
        });
        assert_eq!(
            problems(&policy),
            "AuthorizationPolicy ns/p: spec.rules[0].to[0].operation.path: unknown field (did you mean paths?)"
        );
        let jwt = json!({
            "kind": "RequestAuthentication",
            "metadata": {"name": "j", "namespace": "ns"},
            "spec": {"jwtRules": [{"issuer": "i", "forwardOriginalToken": "yes"}]},
        });
        assert_eq!(
            problems(&jwt),
            "RequestAuthentication ns/j: spec.jwtRules[0].forwardOriginalToken: expected boolean, got string \"yes\""
        );
    }

    #[test]
    fn int_or_string_takes_either() {
        let schema = json!({"x-kubernetes-int-or-string": true});
        let mut found = Vec::new();
        walk(&schema, &json!(8080), "port", &mut found);
        walk(&schema, &json!("http"), "port", &mut found);
        assert!(found.is_empty(), "{found:?}");
        walk(&schema, &json!([1]), "port", &mut found);
        assert_eq!(found, ["port: expected an integer or a string, got a list"]);
    }
}
