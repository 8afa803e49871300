//! The `pluginConfig` this plugin accepts: the upstream ratelimit service's `config.yaml` (same
//! keys, snake_case) plus Envoy's route `rate_limits`, plus the few settings of a local filter.
//! [`crate::compiled`] validates everything once, so the request path only looks things up.

use serde::Deserialize;

/// Largest `max_keys`: the table is created whole when a configuration is accepted, so the bound
/// also bounds the time `on_configure` takes (one shared-data read per slot and worker).
pub const MAX_TABLE_SLOTS: u32 = 1_048_576;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct Config {
    /// Upstream `domain`; part of every bucket's identity and of the metric names.
    pub domain: String,
    /// Upstream `descriptors`: the tree of limits.
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
    /// Envoy's route `rate_limits`: how requests become descriptors.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitConfig>,
    /// Evaluate and count, but admit every request (upstream `SHADOW_MODE=true`).
    #[serde(default)]
    pub shadow_mode: bool,
    /// When shared data fails or stays contended past the retry bound: refuse (true) or admit.
    #[serde(default)]
    pub failure_mode_deny: bool,
    /// Slots of the shared table holding per-value buckets; the memory bound.
    #[serde(default = "default_max_keys")]
    pub max_keys: u32,
    /// `DRAFT_VERSION_03` adds `x-ratelimit-limit/remaining/reset`; `OFF` does not.
    #[serde(default)]
    pub enable_x_ratelimit_headers: XRateLimitHeaders,
    /// Status of the rejection (400-599).
    #[serde(default = "default_status")]
    pub rate_limited_status: u16,
    /// Body of the rejection.
    #[serde(default)]
    pub rate_limited_body: String,
}

fn default_max_keys() -> u32 {
    10_000
}

fn default_status() -> u16 {
    429
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub enum XRateLimitHeaders {
    #[serde(rename = "OFF")]
    Off,
    #[default]
    #[serde(rename = "DRAFT_VERSION_03")]
    DraftVersion03,
}

/// One node of the upstream descriptor tree.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct DescriptorConfig {
    #[serde(deserialize_with = "scalar_text")]
    pub key: String,
    /// Exact value, a pattern with `*`, or absent: any value, one bucket per distinct value.
    #[serde(default, deserialize_with = "optional_scalar_text")]
    pub value: Option<String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
    #[serde(default)]
    pub descriptors: Vec<DescriptorConfig>,
    #[serde(default)]
    pub shadow_mode: bool,
    /// Per-value metric names for a value-less key (bounded, see the README).
    #[serde(default)]
    pub detailed_metric: bool,
    /// The request's value at this level goes into the metric names of the limits below
    /// (bounded like `detailed_metric`, which takes precedence on its own level).
    #[serde(default)]
    pub value_to_metric: bool,
    /// Counted like any limit, but a request over it is still admitted: upstream reports
    /// quota instead of refusing.
    #[serde(default)]
    pub quota_mode: bool,
    /// Only with a `*` value: every matching value shares one bucket.
    #[serde(default)]
    pub share_threshold: bool,
    /// Free-form, accepted and ignored, as upstream.
    // Skipped rather than kept as a `serde_json::Value`: the module then needs no JSON tree code.
    #[serde(default, rename = "metadata")]
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(with = "Option<serde_json::Value>", extend("default" = null))
    )]
    pub _metadata: Option<serde::de::IgnoredAny>,
}

/// Upstream `rate_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct RateLimitSpec {
    /// second, minute, hour, day, week, month (30 days), year (365 days); any case.
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub requests_per_unit: u32,
    #[serde(default)]
    pub unlimited: bool,
    #[serde(default, deserialize_with = "optional_scalar_text")]
    pub name: Option<String>,
    #[serde(default)]
    pub replaces: Vec<ReplacesEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct ReplacesEntry {
    #[serde(deserialize_with = "scalar_text")]
    pub name: String,
}

/// Text as the upstream loader reads it: YAML scalars land in its string fields as written, so
/// `value: 200` or `value: true` (a JSON number or boolean once Istio turns the YAML into
/// `pluginConfig`) is the text `200` or `true`, and an empty `value:` (null) is empty text.
fn scalar_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string (or a number or boolean, read as its text)")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
            Ok(text.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<String, E> {
            Ok(n.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<String, E> {
            Ok(n.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<String, E> {
            Ok(n.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<String, E> {
            Ok(b.to_string())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    deserializer.deserialize_any(Text)
}

fn optional_scalar_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    scalar_text(deserializer).map(Some)
}

/// One Envoy `RateLimit` entry: its actions build one descriptor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct RateLimitConfig {
    pub actions: Vec<ActionConfig>,
    /// Tokens a matching request takes (its weight), instead of 1.
    #[serde(default)]
    pub hits_addend: Option<HitsAddendConfig>,
}

/// Envoy `RateLimit.HitsAddend`: a fixed number, or `%REQ(header)%`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct HitsAddendConfig {
    #[serde(default)]
    pub number: Option<u64>,
    #[serde(default)]
    pub format: Option<String>,
}

/// Envoy `RateLimit.Action`; the actions not listed are refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub enum ActionConfig {
    RequestHeaders(RequestHeadersConfig),
    GenericKey(GenericKeyConfig),
    RemoteAddress(EmptyConfig),
    MaskedRemoteAddress(MaskedRemoteAddressConfig),
    HeaderValueMatch(HeaderValueMatchConfig),
    QueryParameters(QueryParametersConfig),
    QueryParameterValueMatch(QueryParameterValueMatchConfig),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct QueryParametersConfig {
    pub query_parameter_name: String,
    pub descriptor_key: String,
    #[serde(default)]
    pub skip_if_absent: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct QueryParameterValueMatchConfig {
    pub descriptor_value: String,
    #[serde(default)]
    pub descriptor_key: Option<String>,
    #[serde(default = "default_true")]
    pub expect_match: bool,
    pub query_parameters: Vec<QueryParameterMatcherConfig>,
}

/// Envoy `QueryParameterMatcher`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct QueryParameterMatcherConfig {
    pub name: String,
    #[serde(default)]
    pub string_match: Option<StringMatcherConfig>,
    #[serde(default)]
    pub present_match: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct RequestHeadersConfig {
    pub header_name: String,
    pub descriptor_key: String,
    #[serde(default)]
    pub skip_if_absent: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct GenericKeyConfig {
    pub descriptor_value: String,
    #[serde(default)]
    pub descriptor_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct EmptyConfig {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct MaskedRemoteAddressConfig {
    #[serde(default)]
    pub v4_prefix_mask_len: Option<u8>,
    #[serde(default)]
    pub v6_prefix_mask_len: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct HeaderValueMatchConfig {
    pub descriptor_value: String,
    #[serde(default)]
    pub descriptor_key: Option<String>,
    #[serde(default = "default_true")]
    pub expect_match: bool,
    pub headers: Vec<HeaderMatcherConfig>,
}

fn default_true() -> bool {
    true
}

/// Envoy `HeaderMatcher`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct HeaderMatcherConfig {
    pub name: String,
    #[serde(default)]
    pub exact_match: Option<String>,
    #[serde(default)]
    pub prefix_match: Option<String>,
    #[serde(default)]
    pub suffix_match: Option<String>,
    #[serde(default)]
    pub contains_match: Option<String>,
    #[serde(default)]
    pub present_match: Option<bool>,
    #[serde(default)]
    pub safe_regex_match: Option<RegexMatcherConfig>,
    #[serde(default)]
    pub range_match: Option<RangeConfig>,
    #[serde(default)]
    pub string_match: Option<StringMatcherConfig>,
    #[serde(default)]
    pub invert_match: bool,
    #[serde(default)]
    pub treat_missing_header_as_empty: bool,
}

/// Envoy `StringMatcher`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct StringMatcherConfig {
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub safe_regex: Option<RegexMatcherConfig>,
    /// No effect on `safe_regex`, as in Envoy.
    #[serde(default)]
    pub ignore_case: bool,
}

/// Envoy `RegexMatcher`: RE2 syntax, the whole value must match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct RegexMatcherConfig {
    pub regex: String,
    /// Envoy's engine choice (RE2, the only one); accepted and ignored.
    #[serde(default, rename = "google_re2")]
    #[cfg_attr(
        not(target_arch = "wasm32"),
        schemars(with = "Option<serde_json::Value>", extend("default" = null))
    )]
    pub _google_re2: Option<serde::de::IgnoredAny>,
}

/// Envoy `Int64Range`: `start` included, `end` excluded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
pub struct RangeConfig {
    pub start: i64,
    pub end: i64,
}
