//! auth-gate's lookup of the JWT of a request (`Location::token`: Istio's `fromHeaders` with
//! `prefix`, `fromParams`, `fromCookies`, and the `Authorization: Bearer` / `access_token`
//! defaults), for the locations of three fixed `jwtRules` loaded by the plugin's configuration.
//! Input: lines; the first is the query string of `:path` (after `?`), the others `name:value`
//! request headers, one line per occurrence (`cookie` headers included).
//!
//! Invariants: every location finds exactly the token of the reference below (Envoy's jwt_authn
//! extractor): ONE token per location, never empty (no token when it would be):
//! - header: the lines of the header (name in any case) joined with `,`; with a prefix, the first
//!   occurrence of the prefix (case-sensitive) anywhere in that, then from the first base64url or
//!   `.` character after it to the END of the value (trailing text stays: two lines never give
//!   one of their tokens), or the whole value when no such character follows; without a prefix,
//!   the whole value;
//! - parameter: of the query (before `#`), split on `&` and each at its first `=`, the FIRST
//!   whose percent-decoded name is the configured one; its value percent-decoded (invalid escapes
//!   kept);
//! - cookie: the first cookie of that name across the `cookie` lines (pairs split on `;`, ASCII
//!   whitespace around a pair ignored, the name exact), its value with one pair of surrounding
//!   double quotes removed.
//!
//! Round trip: a signed token put at a location comes out exactly (the header's lines replaced
//! by `<prefix><token>` under the name in capitals; a parameter first in the query with its name
//! and the token's dots percent-encoded; a quoted cookie first in the first `cookie` line), and
//! locations reading another place find what they found before. A header given two lines
//! `<prefix><token>` yields one value holding both, which does not decode as a JWT; with the
//! prefix in another case it yields nothing.
#![no_main]

use auth_gate::compiled::{compile, Compiled};
use auth_gate::config::Config;
use auth_gate::request::{Location, RequestView};
use auth_gate::token::{decode, JwtFailure, Limits};
use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{jwks, percent_decode, sign_hs256, text_lines, HS256_KID};

const PATH: &str = "/v1/models/m:predict";

/// `jwtRules` of each configuration: the defaults; every kind of location named; two rules
/// sharing `authorization` with different prefixes and reading `access_token` as a parameter
/// (default) and as a cookie.
const RULES: [&str; 3] = [
    r#"[{"issuer": "https://a.fuzz"}]"#,
    r#"[{"issuer": "https://a.fuzz",
         "fromHeaders": [{"name": "X-Jwt"}, {"name": "x-auth", "prefix": "Token "}],
         "fromParams": ["token", "id_token"],
         "fromCookies": ["session", "__Host-jwt"]}]"#,
    r#"[{"issuer": "https://a.fuzz"},
        {"issuer": "https://b.fuzz",
         "fromHeaders": [{"name": "authorization", "prefix": "JWT "}],
         "fromCookies": ["access_token"]}]"#,
];

fn config(rules: &str) -> Option<Compiled> {
    let mut rules: serde_json::Value = serde_json::from_str(rules).ok()?;
    for rule in rules.as_array_mut()? {
        rule.as_object_mut()?
            .insert("jwks".to_string(), jwks().into());
    }
    let bytes = serde_json::to_vec(&serde_json::json!({ "jwtRules": rules })).ok()?;
    plugin_kit::config::parse::<Config>(&bytes)
        .and_then(compile)
        .ok()
}

thread_local! {
    /// The locations of each configuration.
    static LOCATIONS: Vec<Vec<Location>> = RULES
        .iter()
        .map(|rules| {
            let compiled = config(rules).expect("the fixed jwtRules compile");
            compiled
                .authenticator
                .rules
                .iter()
                .flat_map(|rule| rule.locations.iter().cloned())
                .collect()
        })
        .collect();
    /// Two valid tokens (HS256, the targets' key) for the round trip.
    static TOKENS: [String; 2] = ["alice", "bob"].map(|sub| {
        let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{HS256_KID}"}}"#);
        let claims = format!(r#"{{"iss":"https://a.fuzz","sub":"{sub}","exp":1795654800}}"#);
        sign_hs256(header.as_bytes(), claims.as_bytes())
    });
}

#[derive(Clone)]
struct Request {
    query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn view(&self) -> RequestView<'static> {
        let mut headers = vec![(":path".to_string(), format!("{PATH}?{}", self.query))];
        headers.extend(self.headers.iter().cloned());
        RequestView::new(headers)
    }

    /// The lines of header `name` (any case), in order.
    fn lines<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn without_header(&self, name: &str) -> Request {
        let mut request = self.clone();
        request
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        request
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn header_token(request: &Request, name: &str, prefix: &str) -> Option<String> {
    let lines: Vec<&str> = request.lines(name).collect();
    if lines.is_empty() {
        return None;
    }
    let value = lines.join(",");
    if prefix.is_empty() {
        return Some(value);
    }
    let after = (0..value.len())
        .find(|&at| value.as_bytes()[at..].starts_with(prefix.as_bytes()))?
        + prefix.len();
    Some(
        match value.as_bytes()[after..]
            .iter()
            .position(|b| is_token_byte(*b))
        {
            Some(start) => value[after + start..].to_string(),
            None => value,
        },
    )
}

fn param_token(query: &str, name: &str) -> Option<String> {
    let query = query.split('#').next().unwrap_or_default();
    query.split('&').find_map(|pair| {
        let (key, value) = match pair.find('=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, ""),
        };
        (percent_decode(key) == name.as_bytes())
            .then(|| String::from_utf8_lossy(&percent_decode(value)).into_owned())
    })
}

fn cookie_token(request: &Request, name: &str) -> Option<String> {
    let ows = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0b' | '\x0c');
    request.lines("cookie").find_map(|line| {
        line.split(';').find_map(|pair| {
            let (key, value) = pair.trim_matches(ows).split_once('=')?;
            if key != name {
                return None;
            }
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .filter(|_| value.len() >= 2);
            Some(unquoted.unwrap_or(value).to_string())
        })
    })
}

/// The token Envoy's extractor finds at `location` (see the top of the file).
fn reference(location: &Location, request: &Request) -> Option<String> {
    let token = match location {
        Location::Header { name, prefix } => header_token(request, name, prefix)?,
        Location::Param(name) => param_token(&request.query, name)?,
        Location::Cookie(name) => cookie_token(request, name)?,
    };
    (!token.is_empty()).then_some(token)
}

/// The token the plugin finds at `location`, checked against the reference.
fn check_found(location: &Location, request: &Request) -> Option<String> {
    let found = location
        .token(&request.view())
        .map(std::borrow::Cow::into_owned);
    let expected = reference(location, request);
    assert_eq!(
        found, expected,
        "{location:?} in ?{:?} {:?}",
        request.query, request.headers
    );
    found
}

/// What a location reads: a token put at one place must not show at another.
fn place(location: &Location) -> (u8, &str) {
    match location {
        Location::Header { name, .. } => (0, name),
        Location::Param(name) => (1, name),
        Location::Cookie(name) => (2, name),
    }
}

fn flip_case(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            _ => c.to_ascii_lowercase(),
        })
        .collect()
}

/// `name` with its first character percent-encoded (upper-case hex) and its last (lower-case).
fn encoded_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!("%{b:02X}"));
        } else if i + 1 == bytes.len() {
            out.push_str(&format!("%{b:02x}"));
        } else {
            out.push(char::from(*b));
        }
    }
    out
}

/// `request` with `token` put at `location` so that it must come out exactly.
fn with_token(location: &Location, request: &Request, token: &str) -> Request {
    match location {
        Location::Header { name, prefix } => {
            let mut with = request.without_header(name);
            with.headers
                .push((name.to_ascii_uppercase(), format!("{prefix}{token}")));
            with
        }
        Location::Param(name) => {
            let mut with = request.clone();
            let dots = token.replacen('.', "%2E", 1).replacen('.', "%2e", 1);
            with.query = format!("{}={dots}&{}", encoded_name(name), request.query);
            with
        }
        Location::Cookie(name) => {
            let mut with = request.clone();
            let pair = format!("{name}=\"{token}\"; ");
            match with
                .headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            {
                Some((_, value)) => *value = format!("{pair}{value}"),
                None => with.headers.push(("cookie".to_string(), pair)),
            }
            with
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(lines) = text_lines(data) else {
        return;
    };
    let Some((query, header_lines)) = lines.split_first() else {
        return;
    };
    let headers = header_lines
        .iter()
        .filter_map(|line| {
            let colon = line.get(1..)?.find(':')? + 1;
            Some((line[..colon].to_string(), line[colon + 1..].to_string()))
        })
        .collect();
    let request = Request {
        query: query.to_string(),
        headers,
    };
    LOCATIONS.with(|configurations| {
        TOKENS.with(|tokens| {
            let [token, second] = tokens;
            for locations in configurations {
                let before: Vec<Option<String>> = locations
                    .iter()
                    .map(|location| check_found(location, &request))
                    .collect();
                for location in locations {
                    let with = with_token(location, &request, token);
                    for (other, before) in locations.iter().zip(&before) {
                        let found = check_found(other, &with);
                        if other == location {
                            assert_eq!(found.as_deref(), Some(token.as_str()), "{location:?}");
                        } else if place(other) != place(location) {
                            assert_eq!(
                                &found, before,
                                "{other:?} sees a token put at {location:?}"
                            );
                        }
                    }
                    let Location::Header { name, prefix } = location else {
                        continue;
                    };
                    let mut two = request.without_header(name);
                    two.headers.push((name.clone(), format!("{prefix}{token}")));
                    two.headers
                        .push((name.clone(), format!("{prefix}{second}")));
                    let found = check_found(location, &two);
                    assert_eq!(found, Some(format!("{token},{prefix}{second}")));
                    let limits = Limits {
                        clock_skew_seconds: 60,
                        max_token_bytes: 8192,
                    };
                    assert_eq!(
                        found.map(|both| decode(&both, &limits).err()),
                        Some(Some(JwtFailure::Malformed)),
                        "two {name} lines"
                    );
                    let flipped = flip_case(prefix);
                    if flipped != *prefix {
                        let mut wrong = request.without_header(name);
                        wrong
                            .headers
                            .push((name.clone(), format!("{flipped}{token}")));
                        assert_eq!(check_found(location, &wrong), None, "{flipped:?}");
                    }
                }
            }
        });
    });
});
