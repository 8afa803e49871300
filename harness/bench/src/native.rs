//! The native twins: Envoy's own filters doing each plugin's job, configured as Istio
//! configures them (perf-baseline.md §4 "Native configs").

use harness_diff::istiod::istio_path_rule;
use harness_runner::render::NativeFilter;
use serde_json::{json, Value};

const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// RBAC ALLOW for the requests whose path matches one of Istio's path patterns, as istiod
/// translates `to.operation.paths`.
pub fn rbac_paths(name: &str, patterns: &[String]) -> NativeFilter {
    let rules: Vec<Value> = patterns.iter().map(|p| istio_path_rule(p)).collect();
    rbac_allow(
        name,
        json!([{"or_rules": {"rules": rules}}]),
        json!([{"any": true}]),
    )
}

/// RBAC ALLOW for `path` (exact) when header `name` equals `value`: the BERT emotion
/// walkthrough's header rule.
pub fn rbac_header(name: &str, path: &str, header: &str, value: &str) -> NativeFilter {
    rbac_allow(
        name,
        json!([{"url_path": {"path": {"exact": path}}}]),
        json!([{"header": {"name": header, "string_match": {"exact": value}}}]),
    )
}

fn rbac_allow(name: &str, permissions: Value, principals: Value) -> NativeFilter {
    NativeFilter {
        name: name.to_string(),
        typed_config: json!({
            "@type": RBAC,
            "rules": {"action": "ALLOW", "policies": {"bench": {
                "permissions": permissions,
                "principals": principals
            }}}
        }),
    }
}

/// Who issues the benchmark's tokens and the keys that check them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIssuer {
    pub issuer: String,
    pub audience: String,
    /// JWKS document (JSON text) holding the public keys.
    pub jwks: String,
}

/// jwt_authn requiring a valid token on every path, JWKS inline (as Istio inlines it), the
/// token removed before the upstream; `cache` adds `jwt_cache_config` (off by default in
/// Envoy: then every request pays for the signature).
pub fn jwt_authn(name: &str, issuer: &JwtIssuer, cache: bool) -> NativeFilter {
    let mut provider = json!({
        "issuer": issuer.issuer,
        "audiences": [issuer.audience],
        "local_jwks": {"inline_string": issuer.jwks},
        "forward": false,
        "payload_in_metadata": "bench"
    });
    if cache {
        provider["jwt_cache_config"] = json!({"jwt_cache_size": 100});
    }
    NativeFilter {
        name: name.to_string(),
        typed_config: json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]
        }),
    }
}

/// local_ratelimit with one token bucket for the listener, enforced on every request.
/// `filter_enabled` and `filter_enforced` default to 0 %, which silently disables the filter.
pub fn local_ratelimit(name: &str, max_tokens: u32, fill_interval_s: u32) -> NativeFilter {
    let always = json!({"runtime_key": "bench_rl", "default_value": {"numerator": 100, "denominator": "HUNDRED"}});
    NativeFilter {
        name: name.to_string(),
        typed_config: json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench_rl",
            "token_bucket": {
                "max_tokens": max_tokens,
                "tokens_per_fill": max_tokens,
                "fill_interval": format!("{fill_interval_s}s")
            },
            "filter_enabled": always,
            "filter_enforced": always,
            // The same job as local-ratelimit's default: x-ratelimit-limit/remaining/reset
            // on every answer.
            "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
            "response_headers_to_add": [{
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                "header": {"key": "x-envoy-ratelimited", "value": "true"}
            }]
        }),
    }
}

/// The only body-reading native filter: Lua buffering the response body and searching it
/// for the field a stats filter looks for.
pub const LUA_BODY: &str = r#"function envoy_on_response(handle)
  local body = handle:body()
  if body ~= nil then
    local found = string.find(body:getBytes(0, body:length()), '"label"', 1, true)
  end
end
"#;

pub fn lua_body(name: &str) -> NativeFilter {
    NativeFilter {
        name: name.to_string(),
        typed_config: json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": LUA_BODY}
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rbac_twins_allow_by_path_or_by_header() {
        let paths = rbac_paths("rbac", &["/a".to_string(), "/b/*".to_string()]);
        let policy = &paths.typed_config["rules"]["policies"]["bench"];
        assert_eq!(paths.typed_config["rules"]["action"], "ALLOW");
        assert_eq!(
            policy["permissions"][0]["or_rules"]["rules"][1],
            json!({"url_path": {"path": {"prefix": "/b/"}}})
        );
        assert_eq!(policy["principals"], json!([{"any": true}]));

        let header = rbac_header("rbac", "/p", "x-test", "istio-is-cool");
        let policy = &header.typed_config["rules"]["policies"]["bench"];
        assert_eq!(
            policy["permissions"],
            json!([{"url_path": {"path": {"exact": "/p"}}}])
        );
        assert_eq!(
            policy["principals"][0]["header"],
            json!({"name": "x-test", "string_match": {"exact": "istio-is-cool"}})
        );
    }

    #[test]
    fn jwt_authn_cache_only_when_asked() {
        let issuer = JwtIssuer {
            issuer: "https://issuer".into(),
            audience: "bench".into(),
            jwks: r#"{"keys":[]}"#.into(),
        };
        let cached = jwt_authn("jwt", &issuer, true);
        let provider = &cached.typed_config["providers"]["bench"];
        assert_eq!(provider["jwt_cache_config"]["jwt_cache_size"], 100);
        assert_eq!(provider["local_jwks"]["inline_string"], r#"{"keys":[]}"#);
        assert_eq!(provider["forward"], false);
        assert_eq!(
            cached.typed_config["rules"][0]["requires"]["provider_name"],
            "bench"
        );
        let uncached = jwt_authn("jwt", &issuer, false);
        assert!(uncached.typed_config["providers"]["bench"]
            .get("jwt_cache_config")
            .is_none());
    }

    #[test]
    fn local_ratelimit_is_enabled_and_enforced() {
        let filter = local_ratelimit("rl", 1, 3600);
        let config = &filter.typed_config;
        assert_eq!(config["token_bucket"]["max_tokens"], 1);
        assert_eq!(config["token_bucket"]["fill_interval"], "3600s");
        assert_eq!(config["enable_x_ratelimit_headers"], "DRAFT_VERSION_03");
        for field in ["filter_enabled", "filter_enforced"] {
            assert_eq!(config[field]["default_value"]["numerator"], 100, "{field}");
        }
    }

    #[test]
    fn lua_reads_the_whole_response_body() {
        let filter = lua_body("lua");
        let source = filter.typed_config["default_source_code"]["inline_string"]
            .as_str()
            .unwrap();
        assert!(source.contains("envoy_on_response"));
        assert!(source.contains("handle:body()"));
    }
}
