//! Live config pushes as istiod makes them (ECDS, here from files): a valid `pluginConfig` takes
//! effect without a restart, an invalid one is refused with the field named and the last good
//! config keeps serving, and a module that traps is handled as its fail strategy says.
#![allow(clippy::unwrap_used)]

use harness_chaos::write_trapping_module;
use harness_model_server::ModelServer;
use harness_runner::{http, Envoy, EnvoyConfig, FailStrategy, Plugin, PushOutcome};
use serde_json::json;

fn allowlist(paths: &[&str]) -> Plugin {
    Plugin::from_dist(
        "path-allowlist",
        json!({"action": "ALLOW", "rules": [{"to": [{"operation": {"paths": paths}}]}]}),
    )
}

fn status(envoy: &Envoy, path: &str) -> u16 {
    http::send("GET", &envoy.url(path), &[], b"")
        .unwrap()
        .status
}

fn live_envoy(plugin: Plugin, upstream: &ModelServer) -> Envoy {
    Envoy::start(EnvoyConfig {
        plugins: vec![plugin],
        upstream: upstream.addr(),
        live_plugin_config: true,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn a_valid_push_takes_effect_and_an_invalid_one_keeps_the_last_good_config() {
    let upstream = ModelServer::start().unwrap();
    let envoy = live_envoy(allowlist(&["/v1/models/*"]), &upstream);
    assert_eq!(status(&envoy, "/v1/models/m"), 200);
    assert_eq!(status(&envoy, "/healthz"), 403);

    let widened = allowlist(&["/v1/models/*", "/healthz"]);
    assert_eq!(envoy.push_plugin(&widened).unwrap(), PushOutcome::Reloaded);
    assert_eq!(status(&envoy, "/healthz"), 200);

    let invalid = Plugin::from_dist(
        "path-allowlist",
        json!({"action": "ALLOW", "rulez": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}),
    );
    assert_eq!(envoy.push_plugin(&invalid).unwrap(), PushOutcome::Rejected);
    let log = envoy.log();
    let line = log
        .lines()
        .find(|l| l.contains("`rulez`"))
        .unwrap_or_else(|| panic!("no log line names the field:\n{}", envoy.log_problems()));
    assert!(line.contains("path-allowlist"), "{line}");
    // Envoy ignores, without a word, a config it was just given (even one it refused).
    let err = envoy.push_plugin(&invalid).unwrap_err();
    assert!(err.0.contains("the last one it was given"), "{err}");
    // The widened allowlist still serves; the refused one would have allowed only /admin.
    assert_eq!(status(&envoy, "/healthz"), 200);
    assert_eq!(status(&envoy, "/v1/models/m"), 200);
    assert_eq!(status(&envoy, "/admin"), 403);

    // A later valid push is still taken.
    assert_eq!(
        envoy.push_plugin(&allowlist(&["/v1/models/*"])).unwrap(),
        PushOutcome::Reloaded
    );
    assert_eq!(status(&envoy, "/healthz"), 403);
    assert!(upstream.requests().iter().all(|r| r.path != "/admin"));
}

#[test]
fn a_trapping_module_fails_as_its_fail_strategy_says() {
    let upstream = ModelServer::start().unwrap();
    let dir = std::env::temp_dir().join(format!("live-config-trap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trapping = write_trapping_module(&dir).unwrap();
    let good = allowlist(&["/v1/models/*"]);
    let envoy = live_envoy(good.clone(), &upstream);
    let trap = |strategy| Plugin {
        module: trapping.clone(),
        ..good.clone().fail_strategy(strategy)
    };
    // (strategy, answer to the request that traps, answer to the ones after it). FAIL_RELOAD
    // restarts the VM after the trap, and the restarted module traps again.
    let cases = [
        (FailStrategy::FailClose, 503, 503),
        (FailStrategy::FailOpen, 503, 200),
        (FailStrategy::FailReload, 503, 503),
    ];
    for (strategy, first, later) in cases {
        assert_eq!(
            envoy.push_plugin(&trap(strategy)).unwrap(),
            PushOutcome::Reloaded
        );
        assert_eq!(status(&envoy, "/v1/models/m"), first, "{strategy:?}");
        for _ in 0..3 {
            assert_eq!(status(&envoy, "/v1/models/m"), later, "{strategy:?}");
        }
        // Skipped (FAIL_OPEN) means no allowlist at all: /admin reaches the upstream.
        let admin = status(&envoy, "/admin");
        assert_eq!(admin, if later == 200 { 200 } else { 503 }, "{strategy:?}");
        // The good module comes back with its config.
        assert_eq!(envoy.push_plugin(&good).unwrap(), PushOutcome::Reloaded);
        assert_eq!(status(&envoy, "/v1/models/m"), 200, "{strategy:?}");
        assert_eq!(status(&envoy, "/admin"), 403, "{strategy:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
