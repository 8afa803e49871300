//! The configuration validated once, by [`compile`], into what the request path uses: the
//! JWT rules' authenticator and the policies.

use crate::authn::Authenticator;
use crate::config::Config;
use crate::policy::Policies;
use crate::token::Limits;
use plugin_kit::config::ConfigError;
use plugin_kit::istio::PathNormalization;

/// The configuration once validated, ready for the request path.
pub struct Compiled {
    pub authenticator: Authenticator,
    pub policies: Policies,
    pub limits: Limits,
    pub token_cache_entries: usize,
    pub jwks_refresh_seconds: u64,
    pub path_normalization: PathNormalization,
}

pub fn compile(config: Config) -> Result<Compiled, ConfigError> {
    let pasted_spec = [("action", &config.action), ("rules", &config.rules)];
    if let Some((field, _)) = pasted_spec.iter().find(|(_, value)| value.is_some()) {
        return Err(ConfigError::new(
            *field,
            format!(
                "unknown field `{field}`: an AuthorizationPolicy spec goes in `policies`; wrap it \
                 in `policies: [{{name, …}}]`, e.g. {{\"policies\": [{{\"name\": \"my-policy\", \
                 \"action\": \"ALLOW\", \"rules\": […]}}]}}"
            ),
        ));
    }
    if config.max_token_bytes == 0 {
        return Err(ConfigError::new("maxTokenBytes", "must be at least 1"));
    }
    if config.jwks_refresh_seconds == 0 {
        return Err(ConfigError::new("jwksRefreshSeconds", "must be at least 1"));
    }
    Ok(Compiled {
        authenticator: Authenticator::compile(&config.jwt_rules)?,
        policies: Policies::compile(&config.policies, config.path_normalization)?,
        limits: Limits {
            clock_skew_seconds: config.clock_skew_seconds,
            max_token_bytes: config.max_token_bytes,
        },
        token_cache_entries: config.token_cache_entries,
        jwks_refresh_seconds: config.jwks_refresh_seconds,
        path_normalization: config.path_normalization,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn compile_text(text: &str) -> Result<Compiled, ConfigError> {
        plugin_kit::config::parse::<Config>(text.as_bytes()).and_then(compile)
    }

    #[test]
    fn empty_configuration_allows_everything_with_defaults() {
        let compiled = compile_text("").unwrap();
        assert_eq!(compiled.limits.clock_skew_seconds, 60);
        assert_eq!(compiled.limits.max_token_bytes, 8192);
        assert_eq!(compiled.token_cache_entries, 100);
        assert_eq!(compiled.jwks_refresh_seconds, 600);
        assert_eq!(compiled.path_normalization, PathNormalization::MergeSlashes);
    }

    #[test]
    fn unknown_and_misspelled_fields_are_named() {
        let err = compile_text(r#"{"jwtRules":[{"issuer":"i","jwks":"{}","fromHeader":[]}]}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "jwtRules[0].fromHeader");
        let err = compile_text(r#"{"policies":[{"selector":{}}]}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "policies[0].selector");
    }

    #[test]
    fn a_policy_spec_pasted_at_the_top_level_is_refused_with_how_to_wrap_it() {
        for (text, field) in [
            (
                r#"{"action":"ALLOW","rules":[{"to":[{"operation":{"paths":["/a"]}}]}]}"#,
                "action",
            ),
            (
                r#"{"rules":[{"to":[{"operation":{"paths":["/a"]}}]}]}"#,
                "rules",
            ),
            (r#"{"jwtRules":[],"action":"DENY"}"#, "action"),
        ] {
            let err = compile_text(text).err().unwrap();
            assert_eq!(err.field, field, "{text}");
            assert!(
                err.reason.starts_with(&format!("unknown field `{field}`")),
                "{err}"
            );
            assert!(
                err.reason.contains("wrap it in `policies: [{name, …}]`"),
                "{err}"
            );
        }
        // Inside `policies` the same spec is what auth-gate takes.
        compile_text(r#"{"policies":[{"name":"p","action":"ALLOW","rules":[{}]}]}"#).unwrap();
    }

    #[test]
    fn zero_limits_are_refused() {
        assert_eq!(
            compile_text(r#"{"maxTokenBytes":0}"#).err().unwrap().field,
            "maxTokenBytes"
        );
        assert_eq!(
            compile_text(r#"{"jwksRefreshSeconds":0}"#)
                .err()
                .unwrap()
                .field,
            "jwksRefreshSeconds"
        );
    }

    /// Every `pluginConfig` example of the README is a valid configuration.
    #[test]
    fn readme_examples_are_valid() {
        let examples = plugin_kit::config::json_examples(include_str!("../README.md"));
        assert!(examples.len() >= 3, "README has no JSON examples");
        for example in examples {
            if let Err(err) = compile_text(example) {
                panic!("README example is invalid: {err}\n{example}");
            }
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn schema_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        plugin_kit::schema::check_schema_file::<Config>(&path).unwrap();
    }
}
