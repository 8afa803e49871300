//! Istio parity, proven against Envoy itself: `harness diff` runs the same requests through
//! Envoy's jwt_authn + RBAC configured as istiod configures them and through the plugin, and
//! every decision must agree (apart from the plugins' documented differences). On the policy
//! files users start from, on every `pluginConfig` example of the plugin READMEs, and on random
//! policy sets (their seeds are printed; `harness diff --random 1 --seed S` replays one).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use harness_diff::{Options, Resources, Target};
use harness_runner::rng::Rng;
use harness_runner::PathNormalization;
use std::path::PathBuf;

fn options(target: Target, requests: usize) -> Options {
    Options {
        istio: None,
        random: 0,
        target,
        requests,
        seed: 7,
        corpus: None,
        module: None,
        normalization: PathNormalization::Base,
        show: 3,
        trace: false,
    }
}

/// Compares `resources` on `requests` generated requests; fails with the report when some
/// decision differs without a documented reason.
fn assert_agrees(what: &str, resources: &Resources, options: &Options) {
    let keys = harness_diff::tokens::Keys::from_seed(options.seed);
    let requests = harness_diff::Generator::new(resources, &keys)
        .requests(options.requests, &mut Rng::new(options.seed));
    let report = harness_diff::compare(resources, &keys, options, &requests)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        report.unexplained().next().is_none(),
        "{what} decides differently from Istio:\n{}\n{}",
        resources.to_yaml(),
        report.render(options.show)
    );
}

fn repo(path: &str) -> PathBuf {
    harness_runner::repo_root().join(path)
}

#[test]
fn policy_files_agree_with_envoy() {
    for (file, target) in [
        ("kubeflow-gateway.yaml", Target::AuthGate),
        ("bert-header-gate.yaml", Target::AuthGate),
        ("tenants-and-claims.yaml", Target::AuthGate),
        ("path-allowlists.yaml", Target::AuthGate),
        ("path-allowlists.yaml", Target::PathAllowlist),
    ] {
        let path = repo(&format!("tests/istio-policies/{file}"));
        let text = std::fs::read_to_string(&path).unwrap();
        let resources = Resources::parse(&text).unwrap();
        assert_agrees(file, &resources, &options(target, 1500));
    }
}

/// The comparison sees a difference when there is one: a path the plugins refuse with 400
/// (their documented stricter path handling) where RBAC answers 403.
#[test]
fn a_difference_is_seen_and_a_documented_one_is_named() {
    let text = std::fs::read_to_string(repo("tests/istio-policies/kubeflow-gateway.yaml")).unwrap();
    let resources = Resources::parse(&text).unwrap();
    let options = options(Target::AuthGate, 0);
    let keys = harness_diff::tokens::Keys::from_seed(options.seed);
    let requests = harness_diff::Request::parse_corpus(
        r#"{"method":"GET","path":"/admin%2Fx","kind":"path: encoded slash"}
{"method":"GET","path":"/healthz","kind":"plain"}"#,
    )
    .unwrap();
    let report = harness_diff::compare(&resources, &keys, &options, &requests).unwrap();
    assert_eq!(report.differences.len(), 1, "{}", report.render(3));
    let difference = &report.differences[0];
    assert_eq!(difference.istio, harness_diff::Decision::Refused(403));
    assert_eq!(difference.plugin, harness_diff::Decision::Refused(400));
    assert!(difference.known.is_some());
    assert!(report.unexplained().next().is_none());
}

#[test]
fn readme_examples_agree_with_envoy() {
    for (readme, target) in [
        ("plugins/auth-gate/README.md", Target::AuthGate),
        ("plugins/path-allowlist/README.md", Target::PathAllowlist),
    ] {
        let text = std::fs::read_to_string(repo(readme)).unwrap();
        let examples = plugin_kit::config::json_examples(&text);
        assert!(!examples.is_empty(), "{readme} has no pluginConfig example");
        for (i, example) in examples.iter().enumerate() {
            let config: serde_json::Value = serde_json::from_str(example).unwrap();
            let resources = Resources::from_plugin_config(&config).unwrap();
            assert_agrees(
                &format!("{readme} example {}", i + 1),
                &resources,
                &options(target, 800),
            );
        }
    }
}

/// The property test: random policies from a grammar covering every supported field, each on
/// requests made from it. A fixed set of seeds here; `harness diff --random K` runs more.
#[test]
fn random_policies_agree_with_envoy() {
    let options = options(Target::AuthGate, 500);
    for seed in 1..=8 {
        let resources = harness_diff::random::resources(&mut Rng::new(seed));
        let options = Options {
            seed,
            ..options.clone()
        };
        assert_agrees(
            &format!("random set (harness diff --random 1 --seed {seed})"),
            &resources,
            &options,
        );
    }
}
