//! Every plugin refuses a configuration with a field it does not know, saying so in one log
//! line naming the field, and Envoy then refuses to start it (in Istio: keeps the last good one).

use harness_model_server::ModelServer;
use harness_runner::{Envoy, EnvoyConfig, Plugin, PLUGINS};

#[test]
fn an_unknown_field_is_named_and_the_plugin_refuses_to_start() {
    let upstream = ModelServer::start().unwrap();
    for plugin in PLUGINS {
        let config = serde_json::json!({"bogusField": true});
        let err = Envoy::start(EnvoyConfig {
            plugins: vec![Plugin::from_dist(plugin, config)],
            upstream: upstream.addr(),
            ..Default::default()
        })
        .err()
        .unwrap_or_else(|| panic!("{plugin} accepted an unknown field"));
        let line = err
            .0
            .lines()
            .find(|l| l.contains("unknown field `bogusField`"))
            .unwrap_or_else(|| panic!("{plugin}: no log line names the field:\n{err}"));
        assert!(
            line.contains(plugin),
            "{plugin}: the line should name the plugin: {line}"
        );
        assert!(line.contains("refuses to start"), "{plugin}: {line}");
        assert!(
            err.0.contains("Unable to create Wasm HTTP filter")
                || err.0.contains("Unable to create Wasm plugin"),
            "{plugin}: {err}"
        );
    }
    assert!(upstream.requests().is_empty());
}
