//! One `AuthorizationPolicy` spec as the plugins take it, pasted as is, with a name for log lines
//! and counters. Each plugin says what of it it supports through the type parameters: `A` its
//! `action` (the values it refuses, refused with why), `R` its rule (which of `from`, `to` and
//! `when`), `P` what it makes of `provider` (CUSTOM's). Fields that select workloads
//! (`selector`, `targetRef(s)`) are unknown fields, refused with where they belong.

use serde::Deserialize;

/// One AuthorizationPolicy `spec`, with a name for log lines and counters.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[cfg_attr(
    not(target_arch = "wasm32"),
    schemars(bound = "A: schemars::JsonSchema + Default, R: schemars::JsonSchema")
)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    bound(deserialize = "A: Deserialize<'de> + Default, R: Deserialize<'de>, P: Deserialize<'de>")
)]
pub struct PolicySpec<A, R, P> {
    /// Names the policy in log lines and counters (default: `policies[i]`); unique, not empty.
    pub name: Option<String>,
    /// `ALLOW` (default) or `DENY`.
    #[serde(default)]
    pub action: A,
    /// Rules, ORed. An ALLOW policy without rules matches nothing (so it denies what no other
    /// ALLOW policy allows), a DENY policy without rules denies nothing, as in Istio.
    #[serde(default)]
    pub rules: Vec<R>,
    /// Istio's `istio.io/dry-run` annotation: the policy decides nothing; a request it would
    /// have refused is logged, counted (as a dry-run denial) and goes on.
    #[serde(default)]
    pub dry_run: bool,
    /// CUSTOM's provider: external authorization is not done by these plugins.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub provider: Option<P>,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    type Spec = PolicySpec<String, serde_json::Value, serde_json::Value>;

    #[test]
    fn a_spec_reads_with_istio_defaults_and_refuses_what_istio_would_not_take() {
        let spec: Spec = crate::config::parse(br#"{"action":"DENY","dryRun":true}"#).unwrap();
        assert_eq!(spec.action, "DENY");
        assert!(spec.dry_run && spec.rules.is_empty() && spec.provider.is_none());
        assert!(crate::config::parse::<Spec>(br#"{"bogus":1}"#).is_err());
        // Fields that pick workloads are the WasmPlugin's; the refusal says so.
        for field in ["selector", "targetRef", "targetRefs"] {
            let text = format!(r#"{{"name":"p","{field}":{{}}}}"#);
            let err = crate::config::parse::<Spec>(text.as_bytes()).unwrap_err();
            assert_eq!(err.field, field);
            assert!(
                err.reason.contains("WasmPlugin's own `selector`"),
                "{field}: {err}"
            );
        }
    }
}
