//! The `pluginConfig` of `model-gateway-request-only`: model-gateway's sections for the plugins
//! that act on the request, each exactly that plugin's own `pluginConfig`.

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
    /// local-ratelimit's configuration: token buckets per descriptor, with
    /// `enable_x_ratelimit_headers: OFF` (the headers go on the upstream's responses, which
    /// this module does not see).
    #[serde(default)]
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(schema_with = "local_ratelimit_without_headers")
    )]
    pub local_ratelimit: Option<local_ratelimit::config::Config>,
    /// Read only to be refused with its reason (model-gateway's section; this module never
    /// sees the model's answers); not in the schema, which refuses it as an unknown field.
    #[serde(default)]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub emotion_stats: Option<serde::de::IgnoredAny>,
}

/// local-ratelimit's schema with `enable_x_ratelimit_headers` required and `OFF`, so that a
/// manifest checked against the schema fails where the module would refuse it.
#[cfg(not(target_arch = "wasm32"))]
fn local_ratelimit_without_headers(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let section = generator.subschema_for::<local_ratelimit::config::Config>();
    schemars::json_schema!({
        "anyOf": [
            {
                "allOf": [
                    section,
                    {
                        "required": ["enable_x_ratelimit_headers"],
                        "properties": {"enable_x_ratelimit_headers": {"const": "OFF"}}
                    }
                ]
            },
            {"type": "null"}
        ]
    })
}
