//! The `pluginConfig` this plugin accepts: the `spec` pieces of Istio's RequestAuthentication
//! (`jwtRules`) and AuthorizationPolicy (`policies`, each one spec plus a name), with Istio's
//! field names, and the few settings of the plugin itself.

use plugin_kit::istio::{PathNormalization, To};
use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// RequestAuthentication `spec.jwtRules`: which JWTs are validated, and how.
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
    /// AuthorizationPolicy specs, evaluated as Istio does: DENY first, then ALLOW.
    #[serde(default)]
    pub policies: Vec<Policy>,
    /// Tolerance for `exp` and `nbf`, in seconds (Envoy's default: 60).
    #[serde(default = "default_clock_skew_seconds")]
    pub clock_skew_seconds: u64,
    /// Longest token accepted, in bytes; longer ones fail with 401.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Verified tokens remembered per worker (Envoy's jwt_cache default: 100), and slots of the
    /// cache all workers share; 0 disables both.
    #[serde(default = "default_token_cache_entries")]
    pub token_cache_entries: usize,
    /// How long keys fetched from `jwksUri` are used before they are fetched again (Envoy's
    /// remote JWKS default cache duration: 600 s).
    #[serde(default = "default_jwks_refresh_seconds")]
    pub jwks_refresh_seconds: u64,
    /// How `:path` is normalized before `paths`/`notPaths` match (Istio's mesh-wide
    /// `pathNormalization`).
    #[serde(default)]
    pub path_normalization: PathNormalization,
    /// Not fields: an AuthorizationPolicy spec pasted at the top level (as path-allowlist takes
    /// it) is read only to be refused with how to wrap it, not just as an unknown field.
    #[serde(default)]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub(crate) action: Option<IgnoredAny>,
    #[serde(default)]
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub(crate) rules: Option<IgnoredAny>,
}

fn default_clock_skew_seconds() -> u64 {
    60
}
fn default_max_token_bytes() -> usize {
    8192
}
fn default_token_cache_entries() -> usize {
    100
}
fn default_jwks_refresh_seconds() -> u64 {
    600
}

/// One RequestAuthentication `jwtRules` entry.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtRule {
    /// Exact `iss` a token must carry to be validated by this rule.
    pub issuer: String,
    /// If not empty, the token's `aud` must contain one of these.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Inline JWKS, as a JSON string.
    pub jwks: Option<String>,
    /// URL of the JWKS, fetched through `jwksCluster`.
    #[serde(alias = "jwks_uri")]
    pub jwks_uri: Option<String>,
    /// The Envoy cluster that reaches `jwksUri` (for example
    /// `outbound|5556||dex.auth.svc.cluster.local`). Not an Istio field: istiod resolves this.
    pub jwks_cluster: Option<String>,
    /// Timeout of a JWKS fetch, and how long a request waits for the first keys
    /// (Istio duration: `5s`, `500ms`). Default 5s.
    pub timeout: Option<String>,
    /// Headers holding the token. Default (with no `fromParams`/`fromCookies` either):
    /// `Authorization: Bearer <token>` and the `access_token` parameter.
    #[serde(default)]
    pub from_headers: Vec<JwtHeader>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default)]
    pub from_cookies: Vec<String>,
    /// Header that receives the verified payload (base64url).
    pub output_payload_to_header: Option<String>,
    #[serde(default)]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// Keep the token header for the upstream (default: removed after verification).
    #[serde(default)]
    pub forward_original_token: bool,
    /// Claims whose string value is a space-separated list for `when` matching (`scope` and
    /// `permission` always are, as in Istio).
    #[serde(default)]
    pub space_delimited_claims: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtHeader {
    pub name: String,
    /// Stripped before the token is read, for example `"Bearer "`.
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

/// One AuthorizationPolicy spec, with a name for logs and counters; a `provider` (CUSTOM) is
/// refused when the policies compile.
pub type Policy = plugin_kit::istio::PolicySpec<Action, Rule, serde_json::Value>;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    #[default]
    Allow,
    Deny,
    /// Refused: audit logging is not done by this plugin.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    Audit,
    /// Refused: external authorization is not done by this plugin.
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    Custom,
}

/// A rule matches when every part that is present matches: any `from`, any `to`, all `when`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub from: Vec<FromEntry>,
    #[serde(default)]
    pub to: Vec<To>,
    #[serde(default)]
    pub when: Vec<Condition>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FromEntry {
    pub source: Source,
}

/// The request's origin. JWT principals and the client address are visible to a Wasm plugin;
/// the mTLS and direct-peer fields are declared so that using them is an error that says why.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// `<iss>/<sub>` of the verified JWT, Istio string forms (`*` = any authenticated request).
    pub request_principals: Option<Vec<String>>,
    pub not_request_principals: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub principals: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub not_principals: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub namespaces: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub not_namespaces: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub service_accounts: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub not_service_accounts: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub trust_domains: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub not_trust_domains: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub ip_blocks: Option<Vec<String>>,
    #[cfg_attr(not(target_arch = "wasm32"), schemars(skip))]
    pub not_ip_blocks: Option<Vec<String>>,
    /// The client address as Envoy resolved it (`x-forwarded-for` with trusted proxies, else
    /// the peer): addresses or CIDR ranges.
    pub remote_ip_blocks: Option<Vec<String>>,
    pub not_remote_ip_blocks: Option<Vec<String>>,
}

/// A `when` condition: the attribute named by `key` must match one of `values` (if given) and
/// none of `notValues` (if given).
#[derive(Debug, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    /// `request.headers[<name>]`, `request.auth.principal`, `request.auth.audiences`,
    /// `request.auth.presenter`, `request.auth.claims[<name>]` (nested: `[a][b]`) or
    /// `remote.ip`.
    pub key: String,
    pub values: Option<Vec<String>>,
    pub not_values: Option<Vec<String>>,
}
