//! auth-gate's header conditions (`when: request.headers[...]` with `values` / `notValues`).
//! Input: lines; up to the first empty line the condition's values, after it the request's
//! header lines.
//!
//! Two conditions are checked. `request.headers[x-fuzz]`: each input line is one `x-fuzz` line
//! of the request (names alternate `x-fuzz` / `X-Fuzz`). `request.headers[Host]`: the first
//! input line is the request's `:authority` (Envoy keeps `Host` as `:authority`), the others
//! `x-fuzz` lines, which the condition must not read.
//!
//! Invariants: as Envoy's RBAC matches a repeated header, each line on its own: `values` admits
//! exactly when some line matches one value with Istio's string forms (exact values go through
//! constant-time digests, the others through the shared tries: both must agree with the
//! reference); `notValues` admits exactly when no line matches (an absent header matches no
//! `values` and every `notValues`).
#![no_main]

use auth_gate::compiled::{compile, Compiled};
use auth_gate::config::Config;
use auth_gate::policy::{Attributes, Verdict};
use auth_gate::request::RequestView;
use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{istio_string_matches, text_lines};
use plugin_kit::istio::RequestInfo;

fn gate(header: &str, field: &str, values: &[&str]) -> Option<Compiled> {
    let key = format!("request.headers[{header}]");
    let config = serde_json::json!({"policies": [{"action": "ALLOW", "rules": [
        {"when": [{"key": key, field: values}]}
    ]}]});
    let bytes = serde_json::to_vec(&config).ok()?;
    plugin_kit::config::parse::<Config>(&bytes)
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

/// `values` and `notValues` of `header` on `request`, against what the lines it reads say.
fn check(header: &str, patterns: &[&str], request: &RequestView, lines: &[&str]) {
    let (Some(values_gate), Some(not_values_gate)) = (
        gate(header, "values", patterns),
        gate(header, "notValues", patterns),
    ) else {
        return;
    };
    let any_matches = lines
        .iter()
        .any(|line| patterns.iter().any(|p| istio_string_matches(p, line)));
    assert_eq!(
        admitted(&values_gate, request),
        any_matches,
        "{header} values {patterns:?} on {lines:?}"
    );
    assert_eq!(
        admitted(&not_values_gate, request),
        !any_matches,
        "{header} notValues {patterns:?} on {lines:?}"
    );
}

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

fuzz_target!(|data: &[u8]| {
    let Some(lines) = text_lines(data) else {
        return;
    };
    let Some(split) = lines.iter().position(|line| line.is_empty()) else {
        return;
    };
    let (patterns, occurrences) = (&lines[..split], &lines[split + 1..]);
    let base = [
        header(":method", "GET"),
        header(":path", "/v1/models/m:predict"),
    ];

    let mut headers = base.to_vec();
    for (i, value) in occurrences.iter().enumerate() {
        let name = if i % 2 == 0 { "x-fuzz" } else { "X-Fuzz" };
        headers.push(header(name, value));
    }
    check("x-fuzz", patterns, &RequestView::new(headers), occurrences);

    let mut headers = base.to_vec();
    let (authority, others) = match occurrences.split_first() {
        Some((authority, others)) => (Some(*authority), others),
        None => (None, occurrences),
    };
    headers.extend(authority.map(|value| header(":authority", value)));
    headers.extend(others.iter().map(|value| header("x-fuzz", value)));
    let read: Vec<&str> = authority.into_iter().collect();
    check("Host", patterns, &RequestView::new(headers), &read);
});
