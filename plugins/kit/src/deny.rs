//! Local replies the plugins send instead of forwarding, shaped as the Envoy filter a user knows
//! would answer, so clients and dashboards see no difference.

/// A response the plugin sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// Longest piece of a hostile path or header copied into a log line.
const LOGGED_VALUE_MAX: usize = 256;

/// A value as it may appear in a log line: cut to a bounded length, and debug-formatted so a
/// control character in a path or header cannot forge log lines.
fn loggable(value: &[u8]) -> String {
    let cut = value.get(..LOGGED_VALUE_MAX).unwrap_or(value);
    format!("{:?}", String::from_utf8_lossy(cut))
}

/// The info line a plugin logs for a refused (or dry-run refused) request:
/// `<plugin>: <verdict> request_id=".." method=".." path="..": <reason>`.
pub fn refusal_log_line(
    plugin: &str,
    verdict: &str,
    request_id: Option<&[u8]>,
    method: &[u8],
    path: Option<&[u8]>,
    reason: &dyn std::fmt::Display,
) -> String {
    format!(
        "{plugin}: {verdict} request_id={} method={} path={}: {reason}",
        loggable(request_id.unwrap_or(b"-")),
        loggable(method),
        loggable(path.unwrap_or(b"-")),
    )
}

/// What Envoy's RBAC filter answers (and so Istio's AuthorizationPolicy): `403 RBAC: access denied`.
pub fn rbac_denied(status: u32) -> LocalReply {
    LocalReply {
        status,
        headers: vec![("content-type", "text/plain".to_string())],
        body: b"RBAC: access denied".to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn rbac_denial_matches_envoy_text() {
        let reply = rbac_denied(403);
        assert_eq!(reply.status, 403);
        assert_eq!(reply.body, b"RBAC: access denied");
        assert_eq!(
            reply.headers,
            vec![("content-type", "text/plain".to_string())]
        );
    }
}
