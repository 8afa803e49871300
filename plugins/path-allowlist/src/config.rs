//! The `pluginConfig` this plugin accepts: Istio `AuthorizationPolicy` specs limited to `action`
//! ALLOW/DENY and `rules[].to[].operation` (one at the top level, or several in `policies`), plus
//! settings of the plugin's own.

use plugin_kit::istio::{PathNormalization, To};
use serde::de::{Deserializer, Error as _};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// One policy: `ALLOW` (default): only requests matching a rule pass. `DENY`: requests
    /// matching a rule are refused. `CUSTOM` and `AUDIT` belong to auth-gate. Not with `policies`.
    // `Option` tells an absent field from the default, which only matters next to `policies`.
    #[serde(default)]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(with = "Action"))]
    pub action: Option<Action>,
    /// One policy: Istio's rules; only `to` is supported. ALLOW without rules allows nothing,
    /// DENY without rules denies nothing, as in Istio. Not with `policies`.
    #[serde(default)]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(with = "Vec<Rule>"))]
    pub rules: Option<Vec<Rule>>,
    /// Several policies, instead of `action`/`rules`, evaluated as Istio does: a matching DENY
    /// policy refuses; then, if there is an ALLOW policy, one of them must match.
    #[serde(default)]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(with = "Vec<PolicySpec>"))]
    pub policies: Option<Vec<PolicySpec>>,
    /// How paths are normalized before matching (Istio's mesh-wide setting, here per plugin).
    #[serde(default)]
    pub path_normalization: PathNormalization,
    /// Status of the denial (body `RBAC: access denied`), 400-599; default 403.
    #[serde(default = "default_deny_status")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(range(min = 400, max = 599)))]
    pub deny_status: u16,
    /// Log and count what would be refused (malformed paths included), but let every request
    /// through unchanged.
    #[serde(default)]
    pub dry_run: bool,
    /// Refuse (400) paths with a raw `;` (path parameters), which Tomcat and Spring strip before
    /// routing: `/admin;x` and `/;x/admin` then cannot slip past a DENY rule on `/admin`.
    #[serde(default)]
    pub strict_paths: bool,
    // Istio's `provider` exists only to be refused with a pointer to auth-gate: deserializing
    // its type always fails, so it is `None` in every accepted configuration.
    #[serde(default, rename = "provider")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _provider: Option<AuthGateOnly>,
}

/// One entry of `policies`: an AuthorizationPolicy `spec`, with a name for log lines; `provider`
/// is refused with a pointer to auth-gate.
pub type PolicySpec = plugin_kit::istio::PolicySpec<Action, Rule, AuthGateOnly>;

/// One Istio rule: only `to` is supported.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    /// Operations, ORed; a rule without `to` matches every request.
    #[serde(default)]
    pub to: Vec<To>,
    // Refused with a pointer to auth-gate (see `AuthGateOnly`).
    #[serde(default, rename = "from")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _from: Option<AuthGateOnly>,
    #[serde(default, rename = "when")]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub _when: Option<AuthGateOnly>,
}

fn default_deny_status() -> u16 {
    403
}

/// An `AuthorizationPolicy` field about who sends the request; any value is refused.
#[derive(Debug)]
pub struct AuthGateOnly;

impl<'de> Deserialize<'de> for AuthGateOnly {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(D::Error::custom(
            "not supported by path-allowlist, which matches `to.operation` only; the auth-gate plugin handles it",
        ))
    }
}

/// Istio's `action`, limited to what this plugin does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(try_from = "String", rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(not(target_arch = "wasm32"), schemars(extend("enum" = ["ALLOW", "DENY"])))]
pub enum Action {
    #[default]
    Allow,
    Deny,
}

impl TryFrom<String> for Action {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "ALLOW" => Ok(Self::Allow),
            "DENY" => Ok(Self::Deny),
            "CUSTOM" | "AUDIT" => Err(format!(
                "action `{value}` is not supported by path-allowlist; the auth-gate plugin handles it"
            )),
            _ => Err(format!("unknown action `{value}`, expected `ALLOW` or `DENY`")),
        }
    }
}
