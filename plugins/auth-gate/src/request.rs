//! The request as the gate sees it (built from the host's headers by the glue), and where a JWT
//! can be found in it: headers with an optional prefix, query parameters, cookies, as Istio's
//! `fromHeaders` / `fromParams` / `fromCookies`.

use plugin_kit::headers::{HeaderMap, HeaderTexts};
use std::borrow::Cow;

/// The request headers, pseudo-headers (`:path`, `:method`, `:authority`) included, each
/// occurrence separately (a repeated header is several entries). Values are kept as bytes and
/// read as text only when asked for: one that is not UTF-8 (obs-text a client may send) is read
/// lossily, so it can match no configured value and decode to no valid token.
#[derive(Debug, Clone)]
pub struct RequestView<'a> {
    /// Borrowed from the host's copy when built by [`RequestView::from_host`]: a request's
    /// headers are not copied again.
    headers: HeaderTexts<'a>,
}

fn lossy(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

impl RequestView<'static> {
    /// Names are lowercased, as Envoy's are in the maps it hands over.
    pub fn new(headers: Vec<(String, String)>) -> Self {
        let headers = HeaderMap::from_pairs(
            headers
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value)),
        );
        Self {
            headers: HeaderTexts::new(Cow::Owned(headers), lossy),
        }
    }
}

impl<'a> RequestView<'a> {
    /// The headers as the host gives them, values as bytes.
    pub fn from_host(headers: &'a HeaderMap) -> Self {
        Self {
            headers: HeaderTexts::new(Cow::Borrowed(headers), lossy),
        }
    }

    /// Every value of header `name` (lowercase, as the names of the map are), in order.
    pub fn values<'s, 'n>(
        &'s self,
        name: &'n str,
    ) -> impl Iterator<Item = &'s str> + use<'s, 'n, 'a> {
        self.headers.values(name)
    }

    /// The values of `name` joined with `,`, as Envoy's header matchers read a repeated header;
    /// `None` when absent.
    pub fn joined(&self, name: &str) -> Option<Cow<'_, str>> {
        let mut values = self.values(name);
        let first = values.next()?;
        let Some(second) = values.next() else {
            // The common case: one line, read in place.
            return Some(Cow::Borrowed(first));
        };
        let mut joined = [first, second].join(",");
        for value in values {
            joined.push(',');
            joined.push_str(value);
        }
        Some(Cow::Owned(joined))
    }

    pub fn first<'s>(&'s self, name: &'s str) -> Option<&'s str> {
        self.headers.first(name)
    }

    /// `:path` as sent, query included.
    pub fn path(&self) -> &str {
        self.first(":path").unwrap_or_default()
    }

    pub fn method(&self) -> &str {
        self.first(":method").unwrap_or_default()
    }

    pub fn authority(&self) -> Option<&str> {
        self.first(":authority").or_else(|| self.first("host"))
    }
}

/// One place a token may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `name` lowercase; the token follows `prefix` (see [`Location::token`]).
    Header {
        name: String,
        prefix: String,
    },
    Param(String),
    Cookie(String),
}

impl Location {
    /// Istio's default when a rule names no location: `Authorization: Bearer <token>`, then the
    /// `access_token` query parameter.
    pub fn istio_defaults() -> Vec<Location> {
        vec![
            Location::Header {
                name: "authorization".to_string(),
                prefix: "Bearer ".to_string(),
            },
            Location::Param("access_token".to_string()),
        ]
    }

    /// The token at this location, as Envoy's jwt_authn extractor finds it: for a header, its
    /// values joined with `,`, then what follows the first `prefix` (case-sensitive, anywhere
    /// in the value: `Basic x, Bearer <token>` works); for a query parameter or a cookie, the
    /// first one of that name, names and values percent-decoded. One token per location.
    pub fn token<'r>(&self, request: &'r RequestView) -> Option<Cow<'r, str>> {
        let token = match self {
            Location::Header { name, prefix } => match request.joined(name)? {
                // A header sent once: the token is read in place.
                Cow::Borrowed(value) => Cow::Borrowed(after_prefix(value, prefix)?),
                Cow::Owned(value) => Cow::Owned(after_prefix(&value, prefix)?.to_string()),
            },
            Location::Param(name) => Cow::Owned(query_value(request.path(), name)?),
            Location::Cookie(name) => Cow::Borrowed(
                request
                    .values("cookie")
                    .find_map(|header| cookie_value(header, name))?,
            ),
        };
        (!token.is_empty()).then_some(token)
    }
}

/// What Envoy 1.40 takes as the token after the prefix: from the first base64url character or
/// dot to the end of the value (what follows the token stays in it and fails its checks:
/// `Bearer a.b.c, x` and two `Authorization` lines are refused), or the whole value when no
/// such character follows. Without a prefix, the whole value.
fn after_prefix<'v>(value: &'v str, prefix: &str) -> Option<&'v str> {
    if prefix.is_empty() {
        return Some(value);
    }
    let rest = &value[value.find(prefix)? + prefix.len()..];
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    Some(match rest.find(is_token_char) {
        Some(start) => &rest[start..],
        None => value,
    })
}

/// The first value of query parameter `name`, both percent-decoded as Envoy decodes them (so
/// `%61ccess_token` is `access_token`).
fn query_value(path: &str, name: &str) -> Option<String> {
    let query = path.split_once('?').map(|(_, query)| query)?;
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

/// `%XX` decoded; a `%` not followed by two hex digits stays as it is. Bytes that are not
/// UTF-8 are replaced (such a token can never verify anyway).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of cookie `name` in one `cookie` header, as Envoy parses cookies: pairs split at
/// `;`, ASCII spaces around them ignored (vertical tab included, as absl's), one pair of
/// surrounding quotes removed (a lone quote stays, and fails the token).
fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair
            .trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b')
            .split_once('=')?;
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (key == name).then_some(unquoted)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    pub fn request(headers: &[(&str, &str)]) -> RequestView<'static> {
        RequestView::new(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_host_headers_are_read_in_place_and_bytes_that_are_not_utf8_lossily() {
        let host = HeaderMap::from_pairs([
            (":path", b"/v1/models/m:predict".to_vec()),
            ("x-role", b"admin".to_vec()),
            ("x-role", vec![b'a', 0xff]),
        ]);
        let view = RequestView::from_host(&host);
        assert!(view.headers.is_borrowed());
        assert_eq!(view.path(), "/v1/models/m:predict");
        assert_eq!(
            view.values("x-role").collect::<Vec<_>>(),
            ["admin", "a\u{fffd}"]
        );
        assert_eq!(view.joined("x-role").as_deref(), Some("admin,a\u{fffd}"));
    }

    #[test]
    fn default_locations_read_bearer_header_and_access_token_param() {
        let [header, param] = <[Location; 2]>::try_from(Location::istio_defaults()).unwrap();
        let req = request(&[
            (":path", "/v1/x?a=1&access_token=tok.en.q&b"),
            ("Authorization", "Bearer aaa.bbb.ccc"),
        ]);
        assert_eq!(header.token(&req).as_deref(), Some("aaa.bbb.ccc"));
        assert_eq!(param.token(&req).as_deref(), Some("tok.en.q"));
        // The header name is case-insensitive, the prefix is not (as in Envoy).
        let req = request(&[("AUTHORIZATION", "Bearer  aaa.bbb.ccc")]);
        assert_eq!(header.token(&req).as_deref(), Some("aaa.bbb.ccc"));
        assert_eq!(
            header.token(&request(&[("authorization", "bearer a.b.c")])),
            None
        );
    }

    #[test]
    fn the_prefix_is_found_anywhere_and_the_token_is_the_run_after_it() {
        let [header, _] = <[Location; 2]>::try_from(Location::istio_defaults()).unwrap();
        let token = |value: &str| {
            header
                .token(&request(&[("authorization", value)]))
                .map(Cow::into_owned)
        };
        assert_eq!(
            token("Basic dXNlcjpwYXNz, Bearer a.b.c").as_deref(),
            Some("a.b.c")
        );
        assert_eq!(token("Bearer \t a.b.c").as_deref(), Some("a.b.c"));
        // The rest of the value stays in the token (which then fails), as in Envoy 1.40.
        assert_eq!(
            token("Bearer a.b.c, Bearer x.y.z").as_deref(),
            Some("a.b.c, Bearer x.y.z")
        );
        assert_eq!(token("Bearer a.b.c;").as_deref(), Some("a.b.c;"));
        // Nothing token-like after the prefix: Envoy takes the whole value (then refuses it).
        assert_eq!(token("Bearer ").as_deref(), Some("Bearer "));
        for missing in ["Basic dXNlcjpwYXNz", "Bearer", "", "Bearerx.y.z"] {
            assert_eq!(token(missing), None, "{missing}");
        }
        // Repeated headers are joined first: both tokens end up in one, which fails.
        let req = request(&[
            ("authorization", "Bearer one.a.b"),
            ("Authorization", "Bearer two.a.b"),
        ]);
        assert_eq!(
            header.token(&req).as_deref(),
            Some("one.a.b,Bearer two.a.b")
        );
        let req = request(&[
            ("authorization", "Basic x"),
            ("Authorization", "Bearer two.a.b"),
        ]);
        assert_eq!(header.token(&req).as_deref(), Some("two.a.b"));
    }

    #[test]
    fn params_and_cookies_give_their_first_value_decoded() {
        let param = Location::Param("access_token".into());
        let token = |path: &str| {
            param
                .token(&request(&[(":path", path)]))
                .map(Cow::into_owned)
        };
        assert_eq!(
            token("/p?tt=no&access_token=one&access_token=two#x").as_deref(),
            Some("one")
        );
        assert_eq!(token("/p?%61ccess_token=a.b.c").as_deref(), Some("a.b.c"));
        assert_eq!(token("/p?%61CCESS_token=a.b.c"), None);
        // Hex digits in either case; every character of the name may be escaped.
        for name in [
            "access_t%6Fken",
            "access_t%6fken",
            "%61%63%63%65%73%73%5F%74%6F%6B%65%6E",
        ] {
            assert_eq!(
                token(&format!("/p?{name}=a.b.c")).as_deref(),
                Some("a.b.c"),
                "{name}"
            );
        }
        assert_eq!(
            token("/p?access_token=a%2Eb%2ec%zz").as_deref(),
            Some("a.b.c%zz")
        );
        assert_eq!(token("/p?access_token="), None);
        assert_eq!(token("/p"), None);
        let cookie = Location::Cookie("session".into());
        let req = request(&[
            ("cookie", "a=1; session=\"one\"; other=x"),
            ("cookie", "session=two"),
            ("cookie", "xsession=no"),
        ]);
        assert_eq!(cookie.token(&req).as_deref(), Some("one"));
        let lone_quote = request(&[("cookie", "session=\"a.b.c")]);
        assert_eq!(cookie.token(&lone_quote).as_deref(), Some("\"a.b.c"));
        let no_break_space = request(&[("cookie", "\u{a0}session=a.b.c")]);
        assert_eq!(cookie.token(&no_break_space), None);
    }

    #[test]
    fn thousands_of_parameters_cost_one_scan() {
        let mut path = "/p?".to_string();
        for _ in 0..3000 {
            path.push_str("access_token=a.b.c&");
        }
        let param = Location::Param("access_token".into());
        assert_eq!(
            param.token(&request(&[(":path", &path)])).as_deref(),
            Some("a.b.c")
        );
    }

    #[test]
    fn repeated_header_is_joined_for_matching() {
        let req = request(&[("x-test", "a"), ("X-Test", "istio-is-cool")]);
        assert_eq!(req.joined("x-test").as_deref(), Some("a,istio-is-cool"));
        assert_eq!(req.joined("x-missing"), None);
        assert_eq!(req.path(), "");
        let one = request(&[("x-test", "only")]);
        assert!(matches!(one.joined("x-test"), Some(Cow::Borrowed("only"))));
        let three = request(&[
            ("x-test", "a"),
            ("x-other", "z"),
            ("x-test", ""),
            ("x-test", "c"),
        ]);
        assert_eq!(three.joined("x-test").as_deref(), Some("a,,c"));
    }
}
