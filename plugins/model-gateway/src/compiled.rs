//! Every section compiled by its plugin's own `compile`, so a section is accepted or refused
//! exactly as the standalone plugin would; errors name the field from the top of the
//! `pluginConfig` (`authGate.rules[0].issuer`).

use crate::config::Config;
use plugin_kit::config::ConfigError;

/// The accepted sections; `None`: the plugin is off.
pub struct Compiled {
    pub auth_gate: Option<auth_gate::compiled::Compiled>,
    pub path_allowlist: Option<path_allowlist::policy::Policy>,
    pub local_ratelimit: Option<local_ratelimit::compiled::Compiled>,
    pub emotion_stats: Option<emotion_stats::compiled::Compiled>,
}

impl Compiled {
    /// Whether no section is configured (then every request passes untouched).
    pub fn is_empty(&self) -> bool {
        self.auth_gate.is_none()
            && self.path_allowlist.is_none()
            && self.local_ratelimit.is_none()
            && self.emotion_stats.is_none()
    }
}

/// Compiles every section; the first refusal refuses the whole configuration.
pub fn compile(config: Config) -> Result<Compiled, ConfigError> {
    Ok(Compiled {
        auth_gate: section("authGate", config.auth_gate, auth_gate::compiled::compile)?,
        path_allowlist: section(
            "pathAllowlist",
            config.path_allowlist,
            path_allowlist::compiled::compile,
        )?,
        local_ratelimit: section(
            "localRatelimit",
            config.local_ratelimit,
            local_ratelimit::compiled::compile,
        )?,
        emotion_stats: section(
            "emotionStats",
            config.emotion_stats,
            emotion_stats::compiled::compile,
        )?,
    })
}

fn section<T, C>(
    name: &str,
    config: Option<T>,
    compile: impl FnOnce(T) -> Result<C, ConfigError>,
) -> Result<Option<C>, ConfigError> {
    config
        .map(compile)
        .transpose()
        .map_err(|error| within(name, error))
}

/// `error`, found in section `name`, with its field named from the top of the document.
fn within(name: &str, error: ConfigError) -> ConfigError {
    let field = match error.field.as_str() {
        "." | "" => name.to_string(),
        index if index.starts_with('[') => format!("{name}{index}"),
        field => format!("{name}.{field}"),
    };
    ConfigError::new(field, error.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn error(json: &str) -> ConfigError {
        plugin_kit::config::parse::<Config>(json.as_bytes())
            .and_then(compile)
            .err()
            .unwrap()
    }

    #[test]
    fn errors_name_the_field_from_the_top_of_the_document() {
        // Found while parsing: the path runs through the section.
        let parse =
            error(r#"{"pathAllowlist": {"rules": [{"to": [{"operation": {"pathz": []}}]}]}}"#);
        assert_eq!(parse.field, "pathAllowlist.rules[0].to[0].operation.pathz");
        assert!(parse.reason.contains("pathz"), "{parse:?}");
        // Found while compiling: the section's name is put in front.
        let compile = error(r#"{"localRatelimit": {"domain": ""}}"#);
        assert!(compile.field.starts_with("localRatelimit"), "{compile:?}");
        let unknown = error(r#"{"rateLimit": {}}"#);
        assert_eq!(unknown.field, "rateLimit");
        assert!(unknown.reason.contains("localRatelimit"), "{unknown:?}");
    }

    #[test]
    fn a_section_is_refused_with_the_standalone_plugins_reason() {
        let sections = [
            ("authGate", r#"{"rules": [{"issuer": 3}]}"#),
            ("pathAllowlist", r#"{"action": "AUDIT"}"#),
            ("localRatelimit", r#"{"descriptors": "all"}"#),
            ("emotionStats", r#"{"maxBodyBytes": -1}"#),
        ];
        for (name, section) in sections {
            let bundled = error(&format!(r#"{{"{name}": {section}}}"#));
            let standalone = match name {
                "authGate" => standalone::<auth_gate::config::Config, _>(
                    section,
                    auth_gate::compiled::compile,
                ),
                "pathAllowlist" => standalone::<path_allowlist::config::Config, _>(
                    section,
                    path_allowlist::compiled::compile,
                ),
                "localRatelimit" => standalone::<local_ratelimit::config::Config, _>(
                    section,
                    local_ratelimit::compiled::compile,
                ),
                _ => standalone::<emotion_stats::config::Config, _>(
                    section,
                    emotion_stats::compiled::compile,
                ),
            };
            assert_eq!(bundled.reason, standalone.reason, "{name}");
            assert_eq!(bundled, within(name, standalone), "{name}");
            assert!(bundled.field.starts_with(name), "{bundled:?}");
        }
    }

    fn standalone<T: serde::de::DeserializeOwned, C>(
        json: &str,
        compile: fn(T) -> Result<C, ConfigError>,
    ) -> ConfigError {
        plugin_kit::config::parse::<T>(json.as_bytes())
            .and_then(compile)
            .err()
            .unwrap()
    }

    #[test]
    fn absent_sections_are_off_and_an_empty_document_configures_nothing() {
        let compiled = plugin_kit::config::parse::<Config>(b"")
            .and_then(compile)
            .unwrap();
        assert!(compiled.is_empty());
        let one = plugin_kit::config::parse::<Config>(br#"{"pathAllowlist": {}}"#)
            .and_then(compile)
            .unwrap();
        assert!(one.path_allowlist.is_some() && one.auth_gate.is_none());
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn schema_file_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.schema.json");
        plugin_kit::schema::check_schema_file::<Config>(&path).unwrap();
    }
}
