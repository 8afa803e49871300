//! Envoy's stream properties as the plugins read them, parsed: `destination.port` comes as a
//! little-endian 64-bit integer, `source.address` as `ip:port` (or a bare IP). Pure, so tested
//! natively; [`crate::host`] reads them from the host.

use std::net::{IpAddr, SocketAddr};

/// A port from the bytes of `destination.port`; `None` unless 8 bytes holding 0-65535.
pub fn parse_port(bytes: &[u8]) -> Option<u16> {
    let raw: [u8; 8] = bytes.try_into().ok()?;
    u16::try_from(i64::from_le_bytes(raw)).ok()
}

/// The IP of an address as Envoy writes `source.address` (`1.2.3.4:5678`, `[::1]:5678`), or of a
/// bare IP (as in `x-forwarded-for`).
pub fn parse_address(text: &str) -> Option<IpAddr> {
    text.parse::<SocketAddr>()
        .map(|socket| socket.ip())
        .or_else(|_| text.parse::<IpAddr>())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn ports_are_eight_little_endian_bytes_in_range() {
        assert_eq!(parse_port(&8080i64.to_le_bytes()), Some(8080));
        assert_eq!(parse_port(&70000i64.to_le_bytes()), None);
        assert_eq!(parse_port(&(-1i64).to_le_bytes()), None);
        assert_eq!(parse_port(b"8080"), None);
    }

    #[test]
    fn addresses_with_and_without_port() {
        let ip = |text: &str| text.parse::<IpAddr>().ok();
        assert_eq!(parse_address("127.0.0.1:4567"), ip("127.0.0.1"));
        assert_eq!(parse_address("[::1]:80"), ip("::1"));
        assert_eq!(parse_address("10.0.0.1"), ip("10.0.0.1"));
        assert_eq!(parse_address("envoy://internal"), None);
    }
}
