//! What this module refuses on top of model-gateway's checks: what needs a response callback.
//! The rest is model-gateway's `compile`, so each section is accepted or refused exactly as
//! the standalone plugin would, its field named from the top of the `pluginConfig`.

use crate::config::Config;
use model_gateway::compiled::Compiled;
use plugin_kit::config::ConfigError;

/// Compiles the sections into model-gateway's, emotion-stats off.
pub fn compile(config: Config) -> Result<Compiled, ConfigError> {
    if config.emotion_stats.is_some() {
        return Err(ConfigError::new(
            "emotionStats",
            "emotion-stats reads the model's answers, and model-gateway-request-only exports \
             no response callback; configure it in model-gateway",
        ));
    }
    let compiled = model_gateway::compiled::compile(model_gateway::config::Config {
        auth_gate: config.auth_gate,
        path_allowlist: config.path_allowlist,
        local_ratelimit: config.local_ratelimit,
        emotion_stats: None,
    })?;
    // After the section's own checks, so that its errors read as model-gateway's.
    let ratelimit = compiled.local_ratelimit.as_ref();
    if ratelimit.is_some_and(|section| section.settings.x_ratelimit_headers) {
        return Err(ConfigError::new(
            "localRatelimit.enable_x_ratelimit_headers",
            "DRAFT_VERSION_03 (the default) puts x-ratelimit-* headers on the upstream's \
             responses, which model-gateway-request-only does not see; set it to OFF, or use \
             model-gateway",
        ));
    }
    Ok(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn load(json: &str) -> Result<Compiled, ConfigError> {
        plugin_kit::config::parse::<Config>(json.as_bytes()).and_then(compile)
    }

    fn bundled(json: &str) -> Result<Compiled, ConfigError> {
        plugin_kit::config::parse::<model_gateway::config::Config>(json.as_bytes())
            .and_then(model_gateway::compiled::compile)
    }

    const RATELIMIT: &str = r#"{"domain": "models", "enable_x_ratelimit_headers": "OFF",
        "descriptors": [{"key": "path", "rate_limit": {"unit": "minute", "requests_per_unit": 2}}],
        "rate_limits": [{"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]}]}"#;

    #[test]
    fn the_request_side_sections_are_model_gateways() {
        let json = format!(
            r#"{{"pathAllowlist": {{"rules": [{{"to": [{{"operation": {{"paths": ["/v1/*"]}}}}]}}]}},
                "localRatelimit": {RATELIMIT}}}"#
        );
        let compiled = load(&json).unwrap();
        assert!(compiled.path_allowlist.is_some() && compiled.local_ratelimit.is_some());
        assert!(compiled.auth_gate.is_none() && compiled.emotion_stats.is_none());
        assert!(load("").unwrap().is_empty());
        // A section's own error is model-gateway's, field and reason.
        for json in [
            r#"{"authGate": {"rules": [{"issuer": 3}]}}"#,
            r#"{"pathAllowlist": {"action": "AUDIT"}}"#,
            r#"{"localRatelimit": {"domain": ""}}"#,
        ] {
            let (Err(own), Err(gateway)) = (load(json), bundled(json)) else {
                panic!("{json}: accepted");
            };
            assert_eq!(own, gateway, "{json}");
        }
    }

    #[test]
    fn what_needs_a_response_callback_is_refused_naming_the_field() {
        let err = load(r#"{"emotionStats": {}}"#).err().unwrap();
        assert_eq!(err.field, "emotionStats");
        assert!(err.reason.contains("model-gateway"), "{err:?}");
        // Refused even when it would be model-gateway's error too: not a section of this module.
        let err = load(r#"{"emotionStats": {"maxBodyBytes": -1}}"#)
            .err()
            .unwrap();
        assert_eq!(err.field, "emotionStats");
        for headers in [
            r#""#,
            r#", "enable_x_ratelimit_headers": "DRAFT_VERSION_03""#,
        ] {
            let json = format!(r#"{{"localRatelimit": {{"domain": "models"{headers}}}}}"#);
            let err = load(&json).err().unwrap();
            assert_eq!(
                err.field, "localRatelimit.enable_x_ratelimit_headers",
                "{json}"
            );
            assert!(err.reason.contains("OFF"), "{err:?}");
            assert!(bundled(&json).is_ok(), "model-gateway takes {json}");
        }
        let unknown = load(r#"{"rateLimit": {}}"#).err().unwrap();
        assert_eq!(unknown.field, "rateLimit");
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn schema_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        plugin_kit::schema::check_schema_file::<Config>(&path).unwrap();
    }
}
