//! model-gateway's configuration loading: the `pluginConfig` bytes as istiod sends them, parsed
//! and compiled. Input: the configuration.
//!
//! Invariants: every configuration is either accepted or refused with the field and the reason,
//! never a panic; an accepted configuration's sections are each accepted by their standalone
//! plugin (the bundle never takes what a plugin alone would refuse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_gateway::compiled::compile;
use model_gateway::config::Config;
use model_gateway_fuzz::check_config_loading;

fuzz_target!(|data: &[u8]| {
    check_config_loading::<Config, _>(data, compile);
    let accepted = plugin_kit::config::parse::<Config>(data)
        .and_then(compile)
        .is_ok();
    let Ok(serde_json::Value::Object(sections)) = serde_json::from_slice(data) else {
        return;
    };
    if !accepted {
        return;
    }
    for (name, section) in sections {
        let text = section.to_string();
        let alone = match name.as_str() {
            "authGate" => standalone(&text, auth_gate::compiled::compile),
            "pathAllowlist" => standalone(&text, path_allowlist::compiled::compile),
            "localRatelimit" => standalone(&text, local_ratelimit::compiled::compile),
            "emotionStats" => standalone(&text, emotion_stats::compiled::compile),
            _ => panic!("accepted an unknown section {name}"),
        };
        // `null` is an absent section.
        assert!(
            section.is_null() || alone,
            "{name} accepted in the bundle only: {text}"
        );
    }
});

fn standalone<T: serde::de::DeserializeOwned, C>(
    text: &str,
    compile: fn(T) -> Result<C, plugin_kit::config::ConfigError>,
) -> bool {
    plugin_kit::config::parse::<T>(text.as_bytes())
        .and_then(compile)
        .is_ok()
}
