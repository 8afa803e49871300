//! One `AuthorizationPolicy` spec as the plugins take it, pasted as is, with a name for log lines
//! and counters. Each plugin says what of it it supports through the type parameters: `A` its
//! `action` (the values it refuses, refused with why), `R` its rule (which of `from`, `to` and
//! `when`), `P` what it makes of `provider` (CUSTOM's).

use serde::de::{Deserializer, Error as _};
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
    #[serde(default, rename = "selector")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _selector: Option<WorkloadSelection>,
    #[serde(default, rename = "targetRef")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _target_ref: Option<WorkloadSelection>,
    #[serde(default, rename = "targetRefs")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _target_refs: Option<WorkloadSelection>,
}

/// `selector` / `targetRef(s)` of a policy: the `WasmPlugin` selects the workloads, so any value
/// is refused, with where to put it.
#[derive(Debug)]
pub struct WorkloadSelection;

impl<'de> Deserialize<'de> for WorkloadSelection {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(D::Error::custom(
            "not supported in pluginConfig: select workloads with the WasmPlugin's own `selector` or `targetRefs`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Spec = PolicySpec<String, serde_json::Value, serde_json::Value>;

    #[test]
    fn workload_selection_is_refused_with_where_it_belongs() {
        for field in ["selector", "targetRef", "targetRefs"] {
            let text = format!(r#"{{"name":"p","{field}":{{}}}}"#);
            let err = serde_json::from_str::<Spec>(&text).unwrap_err().to_string();
            assert!(
                err.contains("WasmPlugin's own `selector`"),
                "{field}: {err}"
            );
        }
        let spec: Spec = serde_json::from_str(r#"{"action":"DENY","dryRun":true}"#).unwrap();
        assert_eq!(spec.action, "DENY");
        assert!(spec.dry_run && spec.rules.is_empty() && spec.provider.is_none());
        assert!(serde_json::from_str::<Spec>(r#"{"bogus":1}"#).is_err());
    }
}
