//! The `pluginConfig` of `model-gateway`: one optional section per plugin, each read exactly as
//! that plugin reads its own `pluginConfig`. A section that is absent turns its plugin off.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// auth-gate's configuration: JWT rules (RequestAuthentication) and AuthorizationPolicy
    /// rules on headers, claims and paths.
    #[serde(default)]
    pub auth_gate: Option<auth_gate::config::Config>,
    /// path-allowlist's configuration: AuthorizationPolicy operation rules on paths and methods.
    #[serde(default)]
    pub path_allowlist: Option<path_allowlist::config::Config>,
    /// local-ratelimit's configuration: token buckets per descriptor.
    #[serde(default)]
    pub local_ratelimit: Option<local_ratelimit::config::Config>,
    /// emotion-stats' configuration: which responses are counted, and by which labels.
    #[serde(default)]
    pub emotion_stats: Option<emotion_stats::config::Config>,
}
