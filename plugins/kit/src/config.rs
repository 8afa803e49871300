//! Configuration loading: the `pluginConfig` of a `WasmPlugin` arrives as JSON text. Errors name
//! the field (a JSON path such as `rules[0].to[0].operation.paths`) and the reason, because the
//! only place a user sees them is one log line of the proxy.

use crate::tree::{self, Chain, NodeDe};
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
    let node = tree::parse(&mut de).map_err(|(field, e)| {
        // A key that is the empty string gives an empty path; the reason names it, and the
        // field falls back to the document (`.`) so the log line never says "at ``".
        ConfigError::new(non_empty(field), strip_position(&e.to_string()))
    })?;
    let value = T::deserialize(NodeDe {
        node: &node,
        chain: &Chain::Root,
    })
    .map_err(|e| ConfigError::new(non_empty(e.field.unwrap_or_default()), e.reason))?;
    de.end()
        .map_err(|e| ConfigError::new(".", strip_position(&e.to_string())))?;
    Ok(value)
}

fn non_empty(field: String) -> String {
    if field.is_empty() {
        ".".to_string()
    } else {
        field
    }
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
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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

    /// What the parser replaced: `serde_path_to_error` around serde_json's typed parse.
    fn reference<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            ConfigError::new(
                non_empty(e.path().to_string()),
                strip_position(&e.inner().to_string()),
            )
        })?;
        de.end()
            .map_err(|e| ConfigError::new(".", strip_position(&e.to_string())))?;
        Ok(value)
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Wide {
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default)]
        actions: Vec<Act>,
        #[serde(default)]
        small: Option<u8>,
        #[serde(default)]
        signed: Option<i32>,
        #[serde(default)]
        ratio: Option<f64>,
        #[serde(default)]
        flag: bool,
        #[serde(default)]
        names: Option<Vec<String>>,
        #[serde(default)]
        any: Option<serde_json::Value>,
        #[serde(default)]
        rules: Vec<Rule>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum Mode {
        Allow,
        Deny,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "snake_case")]
    enum Act {
        Key(Rule),
        Remote {},
        Unit,
    }

    /// Same refusals, same fields, same values as the reference, for every valid JSON document
    /// (a syntax error after a refused value is now reported first: the tree is read whole).
    #[test]
    fn parse_agrees_with_serde_path_to_error() {
        let values = [
            "null",
            "true",
            "1",
            "-1",
            "300",
            "1.5",
            "-0",
            "1e300",
            r#""x""#,
            r#""ALLOW""#,
            r#""a\"b""#,
            "[]",
            "[1]",
            r#"["a","b"]"#,
            "{}",
            r#"{"paths":[]}"#,
            r#"{"paths":["/a"],"x":1}"#,
            r#"{"key":{"paths":["/a"]}}"#,
            r#"{"key":{"paths":1}}"#,
            r#"{"remote":{}}"#,
            r#"{"remote":{"a":1}}"#,
            r#"{"unit":null}"#,
            r#"{"unit":1}"#,
            r#"{"key":{"paths":[]},"unit":null}"#,
            r#"{"nope":1}"#,
            r#"[["/a"]]"#,
            r#"[[]]"#,
            r#"[["/a"],1]"#,
            r#"{"":1}"#,
        ];
        let fields = [
            "mode", "actions", "small", "signed", "ratio", "flag", "names", "any", "rules", "",
        ];
        let mut documents = vec!["{}".to_string(), r#"{"mode":"DENY","mode":"DENY"}"#.into()];
        for field in fields {
            for value in values {
                documents.push(format!(r#"{{"{field}":{value}}}"#));
                documents.push(format!(r#"{{"{field}":[{value}]}}"#));
                documents.push(format!(r#"{{"flag":true,"{field}":[{value},{value}]}}"#));
            }
        }
        for document in &documents {
            let ours = parse::<Wide>(document.as_bytes());
            assert_eq!(ours, reference::<Wide>(document), "{document}");
        }
        for broken in [
            r#"{"rules":[{"paths":["/a"}]}"#,
            r#"{"rules":[{"paths":["/a"]"#,
            r#"{"rules":[{"paths" ["/a"]}]}"#,
            r#"{"rules":[{"paths":["/a"],}]}"#,
            r#"{"rules":[{"paths":["/a\q"]}]}"#,
            r#"{"flag":tru}"#,
            r#"{"names":["a",]}"#,
            r#"{"any":{"a":[1,2}}"#,
            r#"{"small":1} x"#,
        ] {
            let ours = parse::<Wide>(broken.as_bytes());
            assert_eq!(ours, reference::<Wide>(broken), "{broken}");
        }
    }

    /// `./build.sh test` sets WASM_RUNNER_CANARY and expects this test to fail in each wasm
    /// run: proof that a failing test fails it (a runner that silently skipped tests would pass
    /// it). Read when the test runs (WASI passes the environment) or when it is built (a
    /// wasm32-unknown-unknown test has no environment).
    #[test]
    fn wasm_runner_canary() {
        let canary_requested = std::env::var_os("WASM_RUNNER_CANARY").is_some()
            || option_env!("WASM_RUNNER_CANARY").is_some();
        assert!(
            !canary_requested,
            "deliberate failure requested by WASM_RUNNER_CANARY"
        );
    }
}
