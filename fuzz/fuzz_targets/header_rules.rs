//! auth-gate's header conditions (`when: request.headers[...]` with `values` / `notValues`).
//! Input: lines; up to the first empty line the condition's values, after it the values of the
//! request's `x-fuzz` header, one occurrence per line (names alternate `x-fuzz` / `X-Fuzz`).
//!
//! Invariants: `values` admits exactly when Istio's string forms, applied to the occurrences
//! joined with `,`, match one value (exact values go through constant-time digests, the others
//! through the shared tries: both must agree with the reference); `notValues` admits exactly when
//! none matches (an absent header matches every `notValues`).
#![no_main]

use auth_gate::config::{compile, Compiled, Config};
use auth_gate::policy::{Attributes, Verdict};
use auth_gate::request::RequestView;
use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{istio_string_matches, text_lines};
use plugin_common::istio::RequestInfo;

fn gate(field: &str, values: &[&str]) -> Option<Compiled> {
    let config = serde_json::json!({"policies": [{"action": "ALLOW", "rules": [
        {"when": [{"key": "request.headers[x-fuzz]", field: values}]}
    ]}]});
    let bytes = serde_json::to_vec(&config).ok()?;
    plugin_common::config::parse::<Config>(&bytes)
        .and_then(compile)
        .ok()
}

fn admitted(gate: &Compiled, request: &RequestView) -> bool {
    let attributes = Attributes {
        request,
        operation: RequestInfo {
            method: "GET",
            host: Some("models.example.com"),
            path: "/v1/models/m:predict",
            port: None,
        },
        identity: None,
        remote_ip: None,
        space_delimited_claims: &[],
    };
    gate.policies.evaluate(&attributes) == Verdict::Allowed
}

fuzz_target!(|data: &[u8]| {
    let Some(lines) = text_lines(data) else {
        return;
    };
    let Some(split) = lines.iter().position(|line| line.is_empty()) else {
        return;
    };
    let (patterns, occurrences) = (&lines[..split], &lines[split + 1..]);
    let (Some(values_gate), Some(not_values_gate)) =
        (gate("values", patterns), gate("notValues", patterns))
    else {
        return;
    };
    let mut headers = vec![
        (":method".to_string(), "GET".to_string()),
        (":path".to_string(), "/v1/models/m:predict".to_string()),
    ];
    for (i, value) in occurrences.iter().enumerate() {
        let name = if i % 2 == 0 { "x-fuzz" } else { "X-Fuzz" };
        headers.push((name.to_string(), value.to_string()));
    }
    let request = RequestView::new(headers);

    let joined = (!occurrences.is_empty()).then(|| occurrences.join(","));
    let any_matches = joined
        .as_deref()
        .is_some_and(|value| patterns.iter().any(|p| istio_string_matches(p, value)));
    assert_eq!(
        admitted(&values_gate, &request),
        any_matches,
        "values {patterns:?} on {joined:?}"
    );
    assert_eq!(
        admitted(&not_values_gate, &request),
        !any_matches,
        "notValues {patterns:?} on {joined:?}"
    );
});
