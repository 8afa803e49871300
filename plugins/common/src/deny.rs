//! Local replies the plugins send instead of forwarding, shaped as the Envoy filter a user knows
//! would answer, so clients and dashboards see no difference.

/// A response the plugin sends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
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
