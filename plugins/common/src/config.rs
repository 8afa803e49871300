//! Configuration loading: the `pluginConfig` of a `WasmPlugin` arrives as JSON text. Errors name
//! the field (a JSON path such as `rules[0].to[0].operation.paths`) and the reason, because the
//! only place a user sees them is one log line of the proxy.

use serde::de::DeserializeOwned;
use std::fmt;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the offending field, `.` for the whole document.
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration at `{}`: {}",
            self.field, self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// Parses the plugin configuration. An empty configuration (a `WasmPlugin` without
/// `pluginConfig`) is read as `{}` so that types with defaults accept it and types with required
/// fields say which one is missing.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ConfigError::new(".", format!("configuration is not UTF-8: {e}")))?;
    let text = if text.trim().is_empty() { "{}" } else { text };
    // serde reads a struct from a JSON array too (positionally); a pluginConfig is always a map.
    if !text.trim_start().starts_with('{') {
        return Err(ConfigError::new(".", "configuration must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // A key that is the empty string gives an empty path; the reason names it, and the
        // field falls back to the document (`.`) so the log line never says "at ``".
        let field = Some(e.path().to_string())
            .filter(|path| !path.is_empty())
            .unwrap_or_else(|| ".".to_string());
        ConfigError::new(field, strip_position(&e.inner().to_string()))
    })?;
    de.end()
        .map_err(|e| ConfigError::new(".", strip_position(&e.to_string())))?;
    Ok(value)
}

/// serde_json appends " at line 1 column 57"; the field path says more than a column of a
/// one-line JSON string the user never wrote by hand.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

/// The ```` ```json ```` blocks of a README: its `pluginConfig` examples, which each plugin's
/// tests load, so the documentation cannot show a configuration the plugin refuses.
pub fn json_examples(markdown: &str) -> Vec<&str> {
    markdown
        .split("```json")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Sample {
        #[serde(default)]
        deny_status: Option<u16>,
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        paths: Vec<String>,
    }

    #[test]
    fn empty_configuration_reads_as_empty_object() {
        let parsed: Sample = parse(b"").unwrap();
        assert_eq!(
            parsed,
            Sample {
                deny_status: None,
                rules: vec![]
            }
        );
        let parsed: Sample = parse(b"  \n").unwrap();
        assert!(parsed.rules.is_empty());
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let err = parse::<Sample>(br#"{"rules":[{"paths":["/a"],"methds":["GET"]}]}"#).unwrap_err();
        assert_eq!(err.field, "rules[0].methds");
        assert!(
            err.reason.contains("unknown field `methds`"),
            "{}",
            err.reason
        );
        assert!(!err.reason.contains("line"), "{}", err.reason);
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse::<Sample>(br#"{"denyStatus":"403"}"#).unwrap_err();
        assert_eq!(err.field, "denyStatus");
        assert!(err.reason.contains("invalid type"), "{}", err.reason);
        assert_eq!(
            err.to_string(),
            format!("invalid configuration at `denyStatus`: {}", err.reason)
        );
    }

    /// Fuzz finding (config_path_allowlist, config_local_ratelimit): `{"":1}` was refused with
    /// an empty field, so the log line read "invalid configuration at ``".
    #[test]
    fn empty_key_is_refused_with_a_field() {
        let err = parse::<Sample>(br#"{"":1}"#).unwrap_err();
        assert_eq!(err.field, ".");
        assert!(err.reason.contains("unknown field ``"), "{}", err.reason);
    }

    #[test]
    fn broken_json_and_trailing_garbage_are_errors() {
        assert!(parse::<Sample>(b"{").is_err());
        assert!(parse::<Sample>(b"{} {}").is_err());
        assert!(parse::<Sample>(b"[]").is_err());
        assert!(parse::<Sample>(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn json_examples_are_the_json_blocks() {
        let readme = "# x\n```json\n{\"a\":1}\n```\ntext\n```yaml\nb: 2\n```\n```json\n{}\n```\n";
        assert_eq!(json_examples(readme), ["\n{\"a\":1}\n", "\n{}\n"]);
        assert!(json_examples("no code").is_empty());
    }

    /// `./build.sh test` sets WASM_RUNNER_CANARY and expects this test to fail on
    /// wasm32-wasip1: proof that a failing test fails the wasm run (a runner that silently
    /// skipped tests would pass it).
    #[test]
    fn wasm_runner_canary() {
        let canary_requested = std::env::var_os("WASM_RUNNER_CANARY").is_some();
        assert!(
            !canary_requested,
            "deliberate failure requested by WASM_RUNNER_CANARY"
        );
    }
}
