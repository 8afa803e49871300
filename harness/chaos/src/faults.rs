//! The faults the scheduler injects, and the configs it pushes.

use harness_runner::render::Plugin;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// The model server SIGKILLed, then restarted on the same port after a pause.
    UpstreamKilled,
    /// A new valid `pluginConfig` for one plugin, by ECDS.
    ValidPush,
    /// A `pluginConfig` with an unknown field for one plugin: must be refused.
    InvalidPush,
    /// emotion-stats replaced by the trapping module with FAIL_OPEN, then restored.
    TrappingEmotionStats,
    /// path-allowlist replaced by the trapping module with FAIL_CLOSE, then restored.
    TrappingAllowlistFailClose,
    /// The JWKS server auth-gate fetches its keys from SIGKILLed, then restarted.
    JwksServerDown,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::UpstreamKilled,
        FaultKind::ValidPush,
        FaultKind::InvalidPush,
        FaultKind::TrappingEmotionStats,
        FaultKind::TrappingAllowlistFailClose,
        FaultKind::JwksServerDown,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            FaultKind::UpstreamKilled => "model server SIGKILLed and restarted",
            FaultKind::ValidPush => "valid pluginConfig pushed (ECDS)",
            FaultKind::InvalidPush => "invalid pluginConfig pushed (ECDS)",
            FaultKind::TrappingEmotionStats => {
                "emotion-stats replaced by a trapping module (FAIL_OPEN), then restored"
            }
            FaultKind::TrappingAllowlistFailClose => {
                "path-allowlist replaced by a trapping module (FAIL_CLOSE), then restored"
            }
            FaultKind::JwksServerDown => "JWKS server SIGKILLed and restarted",
        }
    }
}

/// A span of the run, since its start.
pub type Window = (Duration, Duration);

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: FaultKind,
    /// Since the start of the run.
    pub at: Duration,
    pub detail: String,
    /// What went wrong with it (a valid push refused, an invalid one taken…): a violation.
    pub problem: Option<String>,
    /// When it was fully in force (the JWKS server down; the trapping module on every worker).
    pub active: Option<Window>,
    /// From the start of its injection to the end of its undoing.
    pub span: Option<Window>,
}

impl Fault {
    /// The windows in which faults of `kind` were in force.
    pub fn active_windows(faults: &[Fault], kind: FaultKind) -> Vec<Window> {
        faults
            .iter()
            .filter(|f| f.kind == kind)
            .filter_map(|f| f.active)
            .collect()
    }

    /// The spans of faults of `kind`.
    pub fn spans(faults: &[Fault], kind: FaultKind) -> Vec<Window> {
        faults
            .iter()
            .filter(|f| f.kind == kind)
            .filter_map(|f| f.span)
            .collect()
    }
}

/// The field an invalid push adds; every plugin refuses unknown fields, naming them.
pub const BOGUS_FIELD: &str = "chaosBogusField";

fn config_of(plugin: &Plugin) -> Value {
    serde_json::from_str(&plugin.configuration).unwrap_or(Value::Null)
}

fn with_config(plugin: &Plugin, config: &Value) -> Plugin {
    Plugin {
        configuration: config.to_string(),
        ..plugin.clone()
    }
}

/// A valid config for `current`'s plugin that differs from `current` (Envoy ignores a push of
/// the config it already runs); `n` numbers the push. Each changes the config text but no
/// decision the invariants check: the allowlist's paths rotated, auth-gate's extra claim
/// header toggled, another 429 body from local-ratelimit (its rules unchanged, so every bucket
/// keeps its balance), another body bound for emotion-stats. `None` for another plugin.
pub fn valid_variant(current: &Plugin, n: u64) -> Option<Plugin> {
    let mut config = config_of(current);
    let plugin = current.short_name();
    match plugin {
        "path-allowlist" => {
            let paths = config
                .pointer_mut("/rules/0/to/0/operation/paths")
                .and_then(Value::as_array_mut)?;
            paths.rotate_left(1);
        }
        "auth-gate" => {
            let headers = config
                .pointer_mut("/jwtRules/0/outputClaimToHeaders")
                .and_then(Value::as_array_mut)?;
            let issuer = json!({"header": "x-user-issuer", "claim": "iss"});
            match headers.iter().position(|h| *h == issuer) {
                Some(at) => {
                    headers.remove(at);
                }
                None => headers.push(issuer),
            }
        }
        "local-ratelimit" => {
            config["rate_limited_body"] = json!(format!("over the limit (config {n})"));
        }
        "emotion-stats" => {
            config["maxBodyBytes"] = json!(1_048_576 + n);
        }
        _ => return None,
    }
    Some(with_config(current, &config))
}

/// The plugin's config with [`BOGUS_FIELD`] added, its value `n` (the push's number: Envoy
/// ignores a config identical to the last one it was given, even a refused one).
pub fn invalid_variant(plugin: &Plugin, n: u64) -> Plugin {
    let mut config = config_of(plugin);
    if let Some(object) = config.as_object_mut() {
        object.insert(BOGUS_FIELD.to_string(), json!(n));
    }
    with_config(plugin, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(name: &str, config: Value) -> Plugin {
        Plugin::from_dist(name, config)
    }

    #[test]
    fn valid_variants_differ_from_the_current_config_but_keep_the_rules() {
        let allowlist = plugin(
            "path-allowlist",
            json!({"action": "ALLOW", "rules": [{"to": [{"operation": {"paths": ["/a", "/b", "/c"]}}]}]}),
        );
        let first = valid_variant(&allowlist, 1).unwrap();
        let second = valid_variant(&first, 2).unwrap();
        let paths = |p: &Plugin| {
            config_of(p)
                .pointer("/rules/0/to/0/operation/paths")
                .cloned()
        };
        assert_eq!(paths(&first), Some(json!(["/b", "/c", "/a"])));
        assert_eq!(paths(&second), Some(json!(["/c", "/a", "/b"])));
        let limits = plugin(
            "local-ratelimit",
            json!({"domain": "d", "descriptors": [{"key": "k"}]}),
        );
        let pushed = config_of(&valid_variant(&limits, 3).unwrap());
        assert_eq!(pushed["descriptors"], json!([{"key": "k"}]));
        assert_eq!(pushed["rate_limited_body"], "over the limit (config 3)");
        let auth = plugin(
            "auth-gate",
            json!({"jwtRules": [{"outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}]}),
        );
        let toggled = valid_variant(&auth, 1).unwrap();
        let headers = |p: &Plugin| config_of(p)["jwtRules"][0]["outputClaimToHeaders"].clone();
        assert_eq!(headers(&toggled).as_array().unwrap().len(), 2);
        assert_eq!(
            headers(&valid_variant(&toggled, 2).unwrap()),
            headers(&auth)
        );
        assert_eq!(
            config_of(&valid_variant(&plugin("emotion-stats", json!({})), 4).unwrap())
                ["maxBodyBytes"],
            1_048_580
        );
        assert!(valid_variant(&plugin("other", json!({})), 1).is_none());
    }

    #[test]
    fn the_invalid_variant_adds_the_bogus_field() {
        let invalid = invalid_variant(&plugin("emotion-stats", json!({"labels": ["joy"]})), 5);
        let config = config_of(&invalid);
        assert_eq!(config[BOGUS_FIELD], 5);
        assert_eq!(config["labels"], json!(["joy"]));
    }
}
