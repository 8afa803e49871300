//! local-ratelimit against Envoy's own `envoy.filters.http.local_ratelimit`, in the same run:
//! the same `rate_limits` (actions, matchers, `hits_addend`) in both, the same hostile requests
//! (repeated headers, encoded and repeated query parameters, numbers that are not quite numbers,
//! weights above the capacity) to each, and the decisions compared.
//!
//! Each kind of action gets its own `rate_limits` entry, keyed by its own probe header
//! (`x-probe-<kind>`), so a request exercises exactly one action. Each probe has its own bucket
//! (a probe id per request variant), sent twice: a request whose descriptor matched a limit of
//! one token is refused the second time, one that matched nothing is admitted both times.

use harness_runner::render::{DirectResponse, NativeFilter};
use harness_runner::{http, Envoy, EnvoyConfig, Plugin};
use serde_json::{json, Value};

/// One action under test: the entry appended after the probe's, and the value it must produce
/// to be limited.
struct Kind {
    name: &'static str,
    action: Value,
    limited_value: &'static str,
    capacity: u32,
    hits_addend: Option<Value>,
}

fn kinds() -> Vec<Kind> {
    let hit = |name: &'static str, action: Value| Kind {
        name,
        action,
        limited_value: "hit",
        capacity: 1,
        hits_addend: None,
    };
    let header_match = |key: &str, header: Value| json!({"header_value_match": {"descriptor_key": key, "descriptor_value": "hit", "headers": [header]}});
    vec![
        hit(
            "suffix",
            header_match(
                "suffix",
                json!({"name": "x-plan", "string_match": {"suffix": "free"}}),
            ),
        ),
        hit(
            "exact",
            header_match(
                "exact",
                json!({"name": "x-plan", "string_match": {"exact": "free"}}),
            ),
        ),
        hit(
            "regex",
            header_match(
                "regex",
                json!({"name": "x-plan", "string_match": {"safe_regex": {"regex": "free|trial"}}}),
            ),
        ),
        hit(
            "joined",
            header_match(
                "joined",
                json!({"name": "x-plan", "string_match": {"exact": "premium,free"}}),
            ),
        ),
        hit(
            "inverted",
            header_match(
                "inverted",
                json!({"name": "x-plan", "string_match": {"exact": "free"}, "invert_match": true}),
            ),
        ),
        hit(
            "range",
            header_match(
                "range",
                json!({"name": "x-batch", "range_match": {"start": 32, "end": 1000}}),
            ),
        ),
        hit(
            "present",
            header_match("present", json!({"name": "x-debug", "present_match": true})),
        ),
        Kind {
            name: "plan",
            action: json!({"request_headers": {"header_name": "x-plan", "descriptor_key": "plan"}}),
            limited_value: "free",
            capacity: 1,
            hits_addend: None,
        },
        Kind {
            name: "masked_remote_address",
            action: json!({"masked_remote_address": {"v4_prefix_mask_len": 24}}),
            limited_value: "127.0.0.0/24",
            capacity: 1,
            hits_addend: None,
        },
        Kind {
            name: "qkey",
            action: json!({"query_parameters": {"query_parameter_name": "api_key", "descriptor_key": "qkey"}}),
            limited_value: "abc",
            capacity: 1,
            hits_addend: None,
        },
        hit(
            "qmatch",
            json!({"query_parameter_value_match": {"descriptor_key": "qmatch", "descriptor_value": "hit",
                "query_parameters": [{"name": "mode", "string_match": {"exact": "batch"}}]}}),
        ),
        Kind {
            name: "cost",
            action: json!({"generic_key": {"descriptor_key": "cost", "descriptor_value": "hit"}}),
            limited_value: "hit",
            capacity: 10,
            hits_addend: Some(json!({"format": "%REQ(x-cost)%"})),
        },
    ]
}

/// A request variant: the kind it exercises, its path and headers.
struct Probe {
    kind: &'static str,
    target: &'static str,
    headers: Vec<(&'static str, &'static str)>,
}

fn probes() -> Vec<Probe> {
    let on = |kind, headers: &[(&'static str, &'static str)]| Probe {
        kind,
        target: "/v1/models/m:predict",
        headers: headers.to_vec(),
    };
    let query = |kind, target| Probe {
        kind,
        target,
        headers: Vec::new(),
    };
    let mut all = Vec::new();
    for kind in ["suffix", "exact", "regex", "plan", "joined", "inverted"] {
        for headers in [
            &[("x-plan", "free")][..],
            &[("x-plan", "premium")],
            &[("x-plan", "premium"), ("x-plan", "free")],
            &[("x-plan", "free"), ("x-plan", "premium")],
            &[("x-plan", "free"), ("x-plan", "free")],
            &[("x-plan", "premium,free")],
            &[("x-plan", "Free")],
            &[("x-plan", "")],
            &[],
        ] {
            all.push(on(kind, headers));
        }
    }
    for value in [
        "32", "31", "999", "1000", " 64", "+64", "0x40", "64abc", "-5", "",
    ] {
        all.push(on("range", &[("x-batch", value)]));
    }
    all.push(on("range", &[("x-batch", "64"), ("x-batch", "65")]));
    all.push(on("present", &[("x-debug", "1")]));
    all.push(on("present", &[("x-debug", "")]));
    all.push(on("present", &[]));
    all.push(on("masked_remote_address", &[]));
    all.push(on(
        "masked_remote_address",
        &[("x-forwarded-for", "10.9.8.7")],
    ));
    for target in [
        "/p?api_key=abc",
        "/p?%61pi_key=abc",
        "/p?api_key=ab%63",
        "/p?api_key=xyz&api_key=abc",
        "/p?api_key=abc&api_key=xyz",
        "/p?x=1&api_key=abc",
        "/p?API_KEY=abc",
        "/p?api_key=abc+",
        "/p?api_key=%61%62%63",
        "/p?api_key=abc%",
        "/p?api_key=abc&",
        "/p?&&api_key=abc",
        "/p?api_key==abc",
        "/p/x%3Fapi_key=abc",
        "/p?api_key",
        "/p?api_key=",
        "/p",
        "/p?mode=batch",
        "/p?mode=Batch",
        "/p?mode=batch&mode=x",
        "/p?mode=x&mode=batch",
        "/p?mode=%62atch",
        "/p?mode",
    ] {
        let kind = if target.contains("mode") {
            "qmatch"
        } else {
            "qkey"
        };
        all.push(query(kind, target));
    }
    for cost in ["6", "10", "11", "0", "1"] {
        all.push(on("cost", &[("x-cost", cost)]));
    }
    all
}

fn probe_id(i: usize) -> String {
    format!("p{i}")
}

fn rate_limits(kinds: &[Kind]) -> Value {
    Value::Array(
        kinds
            .iter()
            .map(|kind| {
                let probe = json!({"request_headers": {
                    "header_name": format!("x-probe-{}", kind.name), "descriptor_key": "probe"}});
                let mut entry = json!({"actions": [probe, kind.action]});
                if let Some(hits) = &kind.hits_addend {
                    entry["hits_addend"] = hits.clone();
                }
                entry
            })
            .collect(),
    )
}

/// The plugin: one value-less `probe` node (a bucket per probe id) over a node per kind.
fn plugin_config(kinds: &[Kind]) -> Value {
    let children: Vec<Value> = kinds
        .iter()
        .map(|kind| {
            json!({"key": kind.name, "value": kind.limited_value,
                   "rate_limit": {"unit": "hour", "requests_per_unit": kind.capacity}})
        })
        .collect();
    json!({
        "domain": "parity",
        "descriptors": [{"key": "probe", "descriptors": children}],
        "rate_limits": rate_limits(kinds),
        "enable_x_ratelimit_headers": "OFF"
    })
}

/// Envoy's filter as a user writes it: the same `rate_limits`, a descriptor per probe id (its
/// descriptors match whole), enabled and enforced for every request, a default bucket that
/// never runs out.
fn native_filter(kinds: &[Kind], probes: &[Probe]) -> NativeFilter {
    let always = json!({"runtime_key": "parity_rl", "default_value": {"numerator": 100, "denominator": "HUNDRED"}});
    let descriptors: Vec<Value> = probes
        .iter()
        .enumerate()
        .filter_map(|(i, probe)| {
            let kind = kinds.iter().find(|k| k.name == probe.kind)?;
            Some(json!({
                "entries": [{"key": "probe", "value": probe_id(i)},
                            {"key": kind.name, "value": kind.limited_value}],
                "token_bucket": {"max_tokens": kind.capacity, "tokens_per_fill": kind.capacity,
                                 "fill_interval": "3600s"}
            }))
        })
        .collect();
    NativeFilter {
        name: "envoy.filters.http.local_ratelimit".to_string(),
        typed_config: json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "parity_rl",
            "token_bucket": {"max_tokens": 1_000_000, "tokens_per_fill": 1_000_000, "fill_interval": "3600s"},
            "filter_enabled": always,
            "filter_enforced": always,
            "descriptors": descriptors,
            "rate_limits": rate_limits(kinds),
        }),
    }
}

fn envoy_with(plugins: Vec<Plugin>, native_filters: Vec<NativeFilter>) -> Envoy {
    Envoy::start(EnvoyConfig {
        plugins,
        native_filters,
        direct_response: Some(DirectResponse {
            status: 200,
            content_type: "text/plain".to_string(),
            body: "ok".to_string(),
        }),
        ..Default::default()
    })
    .unwrap()
}

/// The statuses of the probe sent twice.
fn twice(envoy: &Envoy, i: usize, probe: &Probe) -> (u16, u16) {
    let header = format!("x-probe-{}", probe.kind);
    let id = probe_id(i);
    let mut headers = vec![(header.as_str(), id.as_str())];
    headers.extend(probe.headers.iter().copied());
    let send = || {
        http::send("GET", &envoy.url(probe.target), &headers, b"")
            .unwrap()
            .status
    };
    (send(), send())
}

#[test]
fn actions_matchers_and_weights_decide_as_envoys_local_ratelimit() {
    let kinds = kinds();
    let probes = probes();
    let plugin = envoy_with(
        vec![Plugin::from_dist("local-ratelimit", plugin_config(&kinds))],
        Vec::new(),
    );
    let native = envoy_with(Vec::new(), vec![native_filter(&kinds, &probes)]);

    let mut disagreements = Vec::new();
    let mut limited = 0;
    for (i, probe) in probes.iter().enumerate() {
        let ours = twice(&plugin, i, probe);
        let envoys = twice(&native, i, probe);
        if envoys.1 == 429 {
            limited += 1;
        }
        if ours != envoys {
            disagreements.push(format!(
                "{} {} {:?}: local-ratelimit {ours:?}, Envoy {envoys:?}",
                probe.kind, probe.target, probe.headers
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} probes decided differently:\n{}",
        disagreements.len(),
        probes.len(),
        disagreements.join("\n")
    );
    // Neither side limits everything or nothing: the probes do reach the limits.
    assert!(
        limited >= 10 && limited + 10 <= probes.len(),
        "{limited} of {} probes limited",
        probes.len()
    );
}
