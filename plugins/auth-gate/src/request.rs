//! The request as the gate sees it (built from the host's headers by the glue), and where a JWT
//! can be found in it: headers with an optional prefix, query parameters, cookies, as Istio's
//! `fromHeaders` / `fromParams` / `fromCookies`.

/// The request headers, pseudo-headers (`:path`, `:method`, `:authority`) included, each
/// occurrence separately (a repeated header is several entries).
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    pub headers: Vec<(String, String)>,
}

impl RequestView {
    pub fn new(headers: Vec<(String, String)>) -> Self {
        Self { headers }
    }

    /// Every value of header `name` (ASCII case-insensitive), in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The values of `name` joined with `,`, as Envoy's header matchers read a repeated header;
    /// `None` when absent.
    pub fn joined(&self, name: &str) -> Option<String> {
        let mut values = self.values(name).peekable();
        values.peek()?;
        Some(values.collect::<Vec<_>>().join(","))
    }

    pub fn first<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.values(name).next()
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
    /// `name` lowercase; the value must start with `prefix` (ASCII case-insensitive, so
    /// `bearer x` is read like `Bearer x`), which is stripped.
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

    /// Every token at this location. A header repeated, a parameter or cookie given twice,
    /// yields each occurrence: all of them must verify.
    pub fn tokens<'a>(&'a self, request: &'a RequestView) -> Vec<&'a str> {
        let tokens: Vec<&str> = match self {
            Location::Header { name, prefix } => request
                .values(name)
                .filter_map(|value| strip_prefix_ignore_case(value, prefix))
                .collect(),
            Location::Param(name) => query_values(request.path(), name).collect(),
            Location::Cookie(name) => request
                .values("cookie")
                .flat_map(|header| cookie_values(header, name))
                .collect(),
        };
        tokens
            .into_iter()
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .collect()
    }
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
}

/// Raw values of query parameter `name` (tokens are base64url, which needs no decoding).
fn query_values<'a>(path: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let query = path
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default();
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    query.split('&').filter_map(move |pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then_some(value)
    })
}

fn cookie_values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    header.split(';').filter_map(move |pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim_matches('"'))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn request(headers: &[(&str, &str)]) -> RequestView {
        RequestView::new(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn default_locations_read_bearer_header_and_access_token_param() {
        let [header, param] = <[Location; 2]>::try_from(Location::istio_defaults()).unwrap();
        let req = request(&[
            (":path", "/v1/x?a=1&access_token=tok.en.q&b"),
            ("Authorization", "Bearer aaa.bbb.ccc"),
        ]);
        assert_eq!(header.tokens(&req), ["aaa.bbb.ccc"]);
        assert_eq!(param.tokens(&req), ["tok.en.q"]);
        // Case of the scheme and of the header name does not matter.
        let req = request(&[("AUTHORIZATION", "bearer  aaa.bbb.ccc ")]);
        assert_eq!(header.tokens(&req), ["aaa.bbb.ccc"]);
    }

    #[test]
    fn other_schemes_and_empty_values_are_no_token() {
        let [header, _] = <[Location; 2]>::try_from(Location::istio_defaults()).unwrap();
        for value in ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer", "", "Bearerx.y.z"] {
            assert!(
                header
                    .tokens(&request(&[("authorization", value)]))
                    .is_empty(),
                "{value}"
            );
        }
    }

    #[test]
    fn repeated_headers_params_and_cookies_yield_every_token() {
        let header = Location::Header {
            name: "x-token".into(),
            prefix: String::new(),
        };
        let req = request(&[("x-token", "one"), ("X-Token", "two")]);
        assert_eq!(header.tokens(&req), ["one", "two"]);
        let param = Location::Param("t".into());
        let req = request(&[(":path", "/p?t=one&tt=no&t=two#t=frag")]);
        assert_eq!(param.tokens(&req), ["one", "two"]);
        let cookie = Location::Cookie("session".into());
        let req = request(&[
            ("cookie", "a=1; session=\"one\"; other=x"),
            ("cookie", "session=two"),
            ("cookie", "xsession=no"),
        ]);
        assert_eq!(cookie.tokens(&req), ["one", "two"]);
    }

    #[test]
    fn repeated_header_is_joined_for_matching() {
        let req = request(&[("x-test", "a"), ("X-Test", "istio-is-cool")]);
        assert_eq!(req.joined("x-test").as_deref(), Some("a,istio-is-cool"));
        assert_eq!(req.joined("x-missing"), None);
        assert_eq!(req.path(), "");
    }
}
