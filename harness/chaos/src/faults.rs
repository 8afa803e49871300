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
    /// The bundle (model-gateway) replaced by the trapping module with FAIL_CLOSE, then
    /// restored: the bundle's one failure domain, auth-gate and emotion-stats included.
    TrappingBundleFailClose,
    /// The JWKS server auth-gate fetches its keys from SIGKILLed, then restarted.
    JwksServerDown,
}

impl FaultKind {
    /// The faults of a run with the four plugins of `wasmplugin-manifests/gateway/`.
    pub const GATEWAY: [FaultKind; 6] = [
        FaultKind::UpstreamKilled,
        FaultKind::ValidPush,
        FaultKind::InvalidPush,
        FaultKind::TrappingEmotionStats,
        FaultKind::TrappingAllowlistFailClose,
        FaultKind::JwksServerDown,
    ];

    /// The faults of a run with the bundle of `wasmplugin-manifests/gateway-bundle/`: pushes
    /// change one section, and a trapping module replaces the whole bundle (FAIL_CLOSE). No
    /// plugin of it can fail open alone: the bundle has one `failStrategy`.
    pub const BUNDLE: [FaultKind; 5] = [
        FaultKind::UpstreamKilled,
        FaultKind::ValidPush,
        FaultKind::InvalidPush,
        FaultKind::TrappingBundleFailClose,
        FaultKind::JwksServerDown,
    ];

    /// The faults of a run with the bundle (`bundle`) or the four plugins.
    pub fn of_run(bundle: bool) -> &'static [FaultKind] {
        if bundle {
            &Self::BUNDLE
        } else {
            &Self::GATEWAY
        }
    }

    /// Whether a fault of this kind puts a FAIL_CLOSE module that traps in the chain.
    pub fn fails_closed(self) -> bool {
        matches!(
            self,
            FaultKind::TrappingAllowlistFailClose | FaultKind::TrappingBundleFailClose
        )
    }

    /// What the report calls it; `bundle`: in a run with the bundle.
    pub fn describe(self, bundle: bool) -> &'static str {
        match self {
            FaultKind::UpstreamKilled => "model server SIGKILLed and restarted",
            FaultKind::ValidPush if bundle => {
                "valid pluginConfig pushed (ECDS), one section changed"
            }
            FaultKind::ValidPush => "valid pluginConfig pushed (ECDS)",
            FaultKind::InvalidPush if bundle => {
                "invalid pluginConfig pushed (ECDS), one section broken"
            }
            FaultKind::InvalidPush => "invalid pluginConfig pushed (ECDS)",
            FaultKind::TrappingEmotionStats => {
                "emotion-stats replaced by a trapping module (FAIL_OPEN), then restored"
            }
            FaultKind::TrappingAllowlistFailClose => {
                "path-allowlist replaced by a trapping module (FAIL_CLOSE), then restored"
            }
            FaultKind::TrappingBundleFailClose => {
                "model-gateway replaced by a trapping module (FAIL_CLOSE), then restored"
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
    /// The windows in which faults of a kind `kind` accepts were in force.
    pub fn active_windows(faults: &[Fault], kind: impl Fn(FaultKind) -> bool) -> Vec<Window> {
        faults
            .iter()
            .filter(|f| kind(f.kind))
            .filter_map(|f| f.active)
            .collect()
    }

    /// The spans of faults of a kind `kind` accepts.
    pub fn spans(faults: &[Fault], kind: impl Fn(FaultKind) -> bool) -> Vec<Window> {
        faults
            .iter()
            .filter(|f| kind(f.kind))
            .filter_map(|f| f.span)
            .collect()
    }
}

/// The field an invalid push adds; every plugin refuses unknown fields, naming them.
pub const BOGUS_FIELD: &str = "chaosBogusField";

/// The name of the bundle's `WasmPlugin` (and module).
pub const BUNDLE: &str = "model-gateway";

/// The bundle's sections, with the plugin each configures.
pub const SECTIONS: [(&str, &str); 4] = [
    ("authGate", "auth-gate"),
    ("pathAllowlist", "path-allowlist"),
    ("localRatelimit", "local-ratelimit"),
    ("emotionStats", "emotion-stats"),
];

/// A field of each section that holds a list: an invalid push to the bundle may give it a
/// number instead.
const SECTION_LISTS: [&str; 4] = ["jwtRules", "rules", "descriptors", "labels"];

/// What a push changes: one plugin's configuration, which is the whole `pluginConfig` of a
/// standalone plugin, or one section of the bundle's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The plugin whose configuration it is.
    pub plugin: String,
    /// The bundle's section holding it; `None` for a standalone plugin.
    pub section: Option<&'static str>,
}

impl Part {
    /// The part of `plugin`'s configuration push `n` changes: the bundle's sections in turn,
    /// `step` pushes each (so that two kinds of push can share one counter).
    pub fn of(plugin: &Plugin, n: u64, step: u64) -> Part {
        let name = plugin.short_name();
        if name != BUNDLE {
            return Part {
                plugin: name.to_string(),
                section: None,
            };
        }
        let (section, plugin) = SECTIONS[(n / step.max(1)) as usize % SECTIONS.len()];
        Part {
            plugin: plugin.to_string(),
            section: Some(section),
        }
    }

    /// `field` of the part as a refused configuration's log line names it: from the top of the
    /// `pluginConfig` (`localRatelimit.descriptors` in the bundle).
    pub fn field(&self, field: &str) -> String {
        match self.section {
            Some(section) => format!("{section}.{field}"),
            None => field.to_string(),
        }
    }

    /// The part's configuration inside the whole `pluginConfig`.
    fn in_config<'a>(&self, config: &'a mut Value) -> Option<&'a mut Value> {
        match self.section {
            Some(section) => config.get_mut(section),
            None => Some(config),
        }
    }

    /// What the fault's detail says of it.
    pub fn describe(&self, plugin: &Plugin) -> String {
        match self.section {
            Some(section) => format!("{} section {section}", plugin.name),
            None => plugin.name.clone(),
        }
    }
}

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
/// keeps its balance), another body bound for emotion-stats. The bundle gets one section
/// changed so ([`Part::of`]). `None` for another plugin.
pub fn valid_variant(current: &Plugin, n: u64) -> Option<(Plugin, Part)> {
    let part = Part::of(current, n, 1);
    let mut config = config_of(current);
    let section = part.in_config(&mut config)?;
    match part.plugin.as_str() {
        "path-allowlist" => {
            let paths = section
                .pointer_mut("/rules/0/to/0/operation/paths")
                .and_then(Value::as_array_mut)?;
            paths.rotate_left(1);
        }
        "auth-gate" => {
            let headers = section
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
            section["rate_limited_body"] = json!(format!("over the limit (config {n})"));
        }
        "emotion-stats" => {
            section["maxBodyBytes"] = json!(1_048_576 + n);
        }
        _ => return None,
    }
    Some((with_config(current, &config), part))
}

/// An invalid config for `plugin`, and the field its refusal must name; its value is `n` (the
/// push's number: Envoy ignores a config identical to the last one it was given, even a
/// refused one). A standalone plugin gets [`BOGUS_FIELD`] added. The bundle gets one section
/// broken, the others kept: by turns [`BOGUS_FIELD`] added to it, or one of its lists
/// (`localRatelimit.descriptors`…) replaced by the number `n`.
pub fn invalid_variant(plugin: &Plugin, n: u64) -> (Plugin, Part, String) {
    let part = Part::of(plugin, n, 2);
    let mut config = config_of(plugin);
    let wrong_type = part.section.is_some() && n % 2 == 1;
    let field = match part.section {
        Some(section) if wrong_type => SECTIONS
            .iter()
            .zip(SECTION_LISTS)
            .find(|((name, _), _)| *name == section)
            .map_or(BOGUS_FIELD, |(_, list)| list),
        _ => BOGUS_FIELD,
    };
    if let Some(object) = part.in_config(&mut config).and_then(Value::as_object_mut) {
        object.insert(field.to_string(), json!(n));
    }
    let named = part.field(field);
    (with_config(plugin, &config), part, named)
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
        let first = valid_variant(&allowlist, 1).unwrap().0;
        let second = valid_variant(&first, 2).unwrap().0;
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
        let pushed = config_of(&valid_variant(&limits, 3).unwrap().0);
        assert_eq!(pushed["descriptors"], json!([{"key": "k"}]));
        assert_eq!(pushed["rate_limited_body"], "over the limit (config 3)");
        let auth = plugin(
            "auth-gate",
            json!({"jwtRules": [{"outputClaimToHeaders": [{"header": "x-user", "claim": "sub"}]}]}),
        );
        let toggled = valid_variant(&auth, 1).unwrap().0;
        let headers = |p: &Plugin| config_of(p)["jwtRules"][0]["outputClaimToHeaders"].clone();
        assert_eq!(headers(&toggled).as_array().unwrap().len(), 2);
        assert_eq!(
            headers(&valid_variant(&toggled, 2).unwrap().0),
            headers(&auth)
        );
        assert_eq!(
            config_of(
                &valid_variant(&plugin("emotion-stats", json!({})), 4)
                    .unwrap()
                    .0
            )["maxBodyBytes"],
            1_048_580
        );
        assert!(valid_variant(&plugin("other", json!({})), 1).is_none());
    }

    #[test]
    fn the_invalid_variant_adds_the_bogus_field() {
        let (invalid, part, field) =
            invalid_variant(&plugin("emotion-stats", json!({"labels": ["joy"]})), 5);
        let config = config_of(&invalid);
        assert_eq!(config[BOGUS_FIELD], 5);
        assert_eq!(config["labels"], json!(["joy"]));
        assert_eq!((part.section, field.as_str()), (None, BOGUS_FIELD));
    }

    fn bundle() -> Plugin {
        plugin(
            BUNDLE,
            json!({
                "authGate": {"jwtRules": [{"outputClaimToHeaders": []}]},
                "pathAllowlist": {"rules": [{"to": [{"operation": {"paths": ["/a", "/b"]}}]}]},
                "localRatelimit": {"domain": "d", "descriptors": [{"key": "k"}]},
                "emotionStats": {"labels": ["joy"]},
            }),
        )
    }

    /// The sections of `after` that differ from `before`'s.
    fn changed(before: &Plugin, after: &Plugin) -> Vec<&'static str> {
        let (before, after) = (config_of(before), config_of(after));
        SECTIONS
            .iter()
            .map(|(section, _)| *section)
            .filter(|section| before[section] != after[section])
            .collect()
    }

    #[test]
    fn a_bundle_push_changes_one_section_each_in_turn() {
        let bundle = bundle();
        let mut seen = Vec::new();
        for n in 0..4 {
            let (pushed, part) = valid_variant(&bundle, n).unwrap();
            let section = part.section.unwrap();
            assert_eq!(changed(&bundle, &pushed), [section], "push {n}");
            assert_eq!(
                part.describe(&bundle),
                format!("istio-system.model-gateway section {section}")
            );
            seen.push(section);
        }
        assert_eq!(seen, SECTIONS.map(|(section, _)| section));
        let limits = valid_variant(&bundle, 2).unwrap().0;
        assert_eq!(
            config_of(&limits)["localRatelimit"]["rate_limited_body"],
            "over the limit (config 2)"
        );
    }

    #[test]
    fn an_invalid_bundle_push_breaks_one_section_and_names_its_field_from_the_top() {
        let bundle = bundle();
        let mut named = Vec::new();
        for n in 0..8 {
            let (invalid, part, field) = invalid_variant(&bundle, n);
            let section = part.section.unwrap();
            assert_eq!(changed(&bundle, &invalid), [section], "push {n}");
            assert!(field.starts_with(&format!("{section}.")), "{field}");
            let value = field.split('.').nth(1).unwrap();
            assert_eq!(config_of(&invalid)[section][value], n, "push {n}");
            named.push(field);
        }
        assert_eq!(
            named,
            [
                "authGate.chaosBogusField",
                "authGate.jwtRules",
                "pathAllowlist.chaosBogusField",
                "pathAllowlist.rules",
                "localRatelimit.chaosBogusField",
                "localRatelimit.descriptors",
                "emotionStats.chaosBogusField",
                "emotionStats.labels",
            ]
        );
    }

    #[test]
    fn every_bundle_fault_keeps_the_run_judgeable() {
        assert!(!FaultKind::BUNDLE.contains(&FaultKind::TrappingEmotionStats));
        assert!(!FaultKind::BUNDLE.contains(&FaultKind::TrappingAllowlistFailClose));
        assert!(FaultKind::BUNDLE.iter().any(|k| k.fails_closed()));
        assert_eq!(FaultKind::of_run(false), FaultKind::GATEWAY);
    }
}
