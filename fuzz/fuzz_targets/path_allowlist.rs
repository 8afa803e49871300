//! path-allowlist's decision (normalization, then the compiled path patterns) for a request
//! path against a policy of path patterns. Input: lines; the last one is the raw `:path` (any
//! bytes), the others the policy's `paths`.
//!
//! Invariants: an allowed request's forwarded path (rewritten or as received) holds no `.` or `..`
//! segment and is allowed again unchanged; ALLOW and DENY of the same rule are complements for
//! every well-formed path; with patterns that are not templates (no braces), the decision equals
//! Istio's string forms applied to the normalized path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{has_dot_segment, istio_string_matches, lines};
use path_allowlist::compiled::compile;
use path_allowlist::config::Config;
use path_allowlist::policy::{Decision, Policy, Refusal, Request};
use plugin_kit::istio::normalize_path;

const MODES: [&str; 3] = ["BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"];

fn policy(action: &str, mode: &str, patterns: &[String]) -> Option<Policy> {
    let config = serde_json::json!({
        "action": action,
        "pathNormalization": mode,
        "rules": [{"to": [{"operation": {"paths": patterns}}]}],
    });
    let bytes = serde_json::to_vec(&config).ok()?;
    plugin_kit::config::parse::<Config>(&bytes)
        .and_then(compile)
        .ok()
}

fn decide(policy: &Policy, path: &[u8]) -> Decision {
    policy.decide(&Request {
        method: "GET",
        authority: Some("models.example.com"),
        path: Some(path),
        port: None,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut lines = lines(data);
    let Some(path) = lines.pop() else {
        return;
    };
    let Some(patterns) = lines
        .iter()
        .map(|line| std::str::from_utf8(line).ok().map(str::to_string))
        .collect::<Option<Vec<String>>>()
    else {
        return;
    };
    // No `paths` at all is an operation without a path condition, not an empty allowlist.
    if patterns.is_empty() {
        return;
    }
    for mode in MODES {
        let (Some(allow), Some(deny)) = (
            policy("ALLOW", mode, &patterns),
            policy("DENY", mode, &patterns),
        ) else {
            continue;
        };
        let allowed = decide(&allow, path);
        let denied = decide(&deny, path);
        if let Decision::Refuse(Refusal::Malformed(why)) = allowed {
            assert_eq!(denied, Decision::Refuse(Refusal::Malformed(why)));
            continue;
        }
        let allow_passes = matches!(allowed, Decision::Allow { .. });
        let deny_passes = matches!(denied, Decision::Allow { .. });
        assert_ne!(
            allow_passes, deny_passes,
            "{mode}: ALLOW {allowed:?}, DENY {denied:?}"
        );

        for decision in [&allowed, &denied] {
            let Decision::Allow { rewrite_path } = decision else {
                continue;
            };
            let forwarded = rewrite_path.as_deref().map_or(path, str::as_bytes);
            let path_part = forwarded.split(|b| *b == b'?' || *b == b'#').next();
            assert!(
                !has_dot_segment(path_part.unwrap_or_default()),
                "{mode}: {path:?} forwarded as {forwarded:?}"
            );
            let policy = if allow_passes { &allow } else { &deny };
            assert_eq!(
                decide(policy, forwarded),
                Decision::Allow { rewrite_path: None },
                "{mode}: forwarded {forwarded:?} is not allowed as is"
            );
        }

        if patterns.iter().all(|p| !p.contains('{')) {
            let text = std::str::from_utf8(path).unwrap_or_default();
            if let Ok(normalized) = normalize_path(text, allow.normalization) {
                let reference = patterns
                    .iter()
                    .any(|p| istio_string_matches(p, &normalized.path));
                assert_eq!(allow_passes, reference, "{mode}: {:?}", normalized.path);
            }
        }
    }
});
