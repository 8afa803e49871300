//! local-ratelimit's descriptor building (Envoy `rate_limits` actions) and descriptor lookup, for
//! a configuration that uses every action type and matcher. Input: lines; the first is the client address
//! (text, may be anything), the others `name:value` request headers with any bytes in the value.
//!
//! Invariants: at most one descriptor per `rate_limits` entry, none empty, each found in the
//! descriptor tree or not without panicking; a `request_headers` entry carries the header text
//! exactly as `header_text` renders the value; `header_text` maps distinct byte values to
//! distinct texts (its documented promise: two clients must not share a bucket by encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use local_ratelimit::actions::{build_descriptors, header_text, HeaderPairs, RequestView};
use local_ratelimit::compiled::{compile, Compiled};
use local_ratelimit::config::Config;
use model_gateway_fuzz::lines;
use plugin_kit::headers::HeaderMap;
use std::net::IpAddr;

const CONFIG: &str = r#"{
  "domain": "fuzz",
  "descriptors": [
    {"key": "path", "value": "/v1/models/bert:predict",
     "rate_limit": {"unit": "minute", "requests_per_unit": 2},
     "descriptors": [{"key": "x-api-key", "rate_limit": {"unit": "minute", "requests_per_unit": 5}}]},
    {"key": "path", "rate_limit": {"unit": "minute", "requests_per_unit": 10}},
    {"key": "remote_address", "rate_limit": {"unit": "second", "requests_per_unit": 3}},
    {"key": "masked_remote_address", "rate_limit": {"unit": "hour", "requests_per_unit": 100}},
    {"key": "generic_key", "value": "all",
     "descriptors": [{"key": "tenant", "value": "gold*", "rate_limit": {"unit": "day", "requests_per_unit": 9}}]},
    {"key": "header_match", "value": "json", "rate_limit": {"unit": "minute", "requests_per_unit": 1}},
    {"key": "api_key", "rate_limit": {"unit": "minute", "requests_per_unit": 4}},
    {"key": "query_match", "value": "batch", "rate_limit": {"unit": "minute", "requests_per_unit": 1}}
  ],
  "rate_limits": [
    {"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}},
                 {"request_headers": {"header_name": "x-api-key", "descriptor_key": "x-api-key"}}]},
    {"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]},
    {"actions": [{"remote_address": {}}]},
    {"actions": [{"masked_remote_address": {"v4_prefix_mask_len": 24, "v6_prefix_mask_len": 56}}]},
    {"actions": [{"generic_key": {"descriptor_value": "all"}},
                 {"request_headers": {"header_name": "x-tenant", "descriptor_key": "tenant", "skip_if_absent": true}}]},
    {"actions": [{"header_value_match": {"descriptor_value": "json", "headers": [
        {"name": "content-type", "string_match": {"prefix": "application/JSON", "ignore_case": true}},
        {"name": "x-debug", "present_match": true, "invert_match": true},
        {"name": "x-tenant", "suffix_match": "-eu", "treat_missing_header_as_empty": true, "invert_match": true},
        {"name": "x-plan", "safe_regex_match": {"regex": "(free|trial)(,.*)?"}},
        {"name": "content-length", "range_match": {"start": 0, "end": 1048576}, "invert_match": true}]}}]},
    {"actions": [{"query_parameters": {"query_parameter_name": "api_key", "descriptor_key": "api_key"}}]},
    {"actions": [{"query_parameter_value_match": {"descriptor_value": "batch", "query_parameters": [
        {"name": "mode", "string_match": {"safe_regex": {"regex": "batch-[0-9]+"}}}]}}]}
  ]
}"#;

struct Request<'a> {
    /// Values as the glue hands them over: rendered by `header_text`.
    headers: HeaderPairs<'a>,
    ip: Option<IpAddr>,
}

impl RequestView for Request<'_> {
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers.values(name)
    }
    fn remote_ip(&self) -> Option<IpAddr> {
        self.ip
    }
}

thread_local! {
    static COMPILED: Compiled = plugin_kit::config::parse::<Config>(CONFIG.as_bytes())
        .and_then(compile)
        .expect("the fixed configuration compiles");
}

/// The bytes `text` would stand for if each `\xNN` with NN >= 0x80 were an escaped byte.
fn unescape_high_bytes(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = bytes
            .get(i..i + 4)
            .filter(|s| s.starts_with(b"\\x"))
            .and_then(|s| std::str::from_utf8(&s[2..]).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|value| *value >= 0x80);
        match escaped {
            Some(value) => {
                out.push(value);
                i += 4;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut lines = lines(data).into_iter();
    let ip = lines
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .and_then(|text| text.parse().ok());
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|line| {
            let colon = line.iter().skip(1).position(|b| *b == b':')? + 1;
            let name = std::str::from_utf8(&line[..colon])
                .ok()?
                .to_ascii_lowercase();
            Some((name, line[colon + 1..].to_vec()))
        })
        .collect();

    for (_, value) in &headers {
        let text = header_text(value.clone());
        let other = unescape_high_bytes(&text);
        if other != *value {
            assert_ne!(
                header_text(other.clone()),
                text,
                "header values {value:?} and {other:?} both become {text:?}"
            );
        }
    }

    let header_map = HeaderMap::from_pairs(headers.iter().map(|(name, value)| (name, value)));
    let request = Request {
        headers: HeaderPairs::new(&header_map),
        ip,
    };
    COMPILED.with(|compiled| {
        let descriptors = build_descriptors(&compiled.policies, &request);
        assert!(descriptors.len() <= compiled.policies.len());
        for descriptor in &descriptors {
            let entries = &descriptor.entries;
            assert!(!entries.is_empty());
            assert!(u64::from(descriptor.hits) <= local_ratelimit::actions::MAX_HITS);
            for (key, value) in entries {
                if *key == "path" {
                    assert_eq!(
                        Some(value.as_ref()),
                        request.header_values(":path").first().copied()
                    );
                }
            }
            if let Some(matched) = compiled.tree.lookup(entries) {
                assert!(compiled.tree.limit(matched.limit).is_some());
                assert_eq!(matched.bucket_values.len(), entries.len());
            }
        }
    });
});
