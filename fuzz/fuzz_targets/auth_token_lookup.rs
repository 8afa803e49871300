//! auth-gate's lookup of the JWTs of a request (`Location::tokens`: Istio's `fromHeaders` with
//! `prefix`, `fromParams`, `fromCookies`, and the `Authorization: Bearer` / `access_token`
//! defaults), for the locations of three fixed `jwtRules` loaded by the plugin's configuration.
//! Input: lines; the first is the query string of `:path` (after `?`), the others `name:value`
//! request headers, one occurrence per line (`cookie` headers included).
//!
//! Invariants: a token is never empty nor padded with whitespace; from a header it is an
//! occurrence of that header with the prefix (ASCII case-insensitive) stripped, from a parameter
//! or a cookie a part of the query (before `#`) or of a `cookie` header holding no `&`/`#` or `;`,
//! taken raw (no percent-decoding); a location yields at most one token per `name=` (header: per
//! occurrence), so none when the request does not carry it. Round trip: two signed tokens put at
//! a location (header prefix in another case, quoted cookie) come out exactly, both and in order
//! (every occurrence is checked, so two tokens are never one), and no other location sees them.
#![no_main]

use auth_gate::config::{compile, Compiled, Config};
use auth_gate::request::{Location, RequestView};
use libfuzzer_sys::fuzz_target;
use model_gateway_fuzz::{jwks, sign_hs256, text_lines, HS256_KID};

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
    plugin_common::config::parse::<Config>(&bytes)
        .and_then(compile)
        .ok()
}

thread_local! {
    /// Every location of every configuration, each with the locations of its configuration.
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

struct Request {
    query: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn view(&self) -> RequestView {
        let mut headers = vec![(":path".to_string(), format!("{PATH}?{}", self.query))];
        headers.extend(self.headers.iter().cloned());
        RequestView::new(headers)
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a location reads: tokens put at one place must not show at another.
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

/// Checks the tokens `location` finds in `request` against where they can come from.
fn check_found(location: &Location, request: &Request) -> Vec<String> {
    let found: Vec<String> = location
        .tokens(&request.view())
        .into_iter()
        .map(str::to_string)
        .collect();
    for token in &found {
        assert!(!token.is_empty() && token.trim() == token, "{token:?}");
    }
    let query = request.query.split('#').next().unwrap_or_default();
    match location {
        Location::Header { name, prefix } => {
            assert!(found.len() <= request.header_values(name).count());
            for token in &found {
                assert!(
                    request.header_values(name).any(|value| {
                        value.get(prefix.len()..).map(str::trim) == Some(token.as_str())
                            && value.as_bytes()[..prefix.len()]
                                .eq_ignore_ascii_case(prefix.as_bytes())
                    }),
                    "{token:?} is no `{name}: {prefix}<token>`"
                );
            }
        }
        Location::Param(name) => {
            assert!(found.len() <= query.matches(&format!("{name}=")).count());
            for token in &found {
                assert!(
                    query.contains(token.as_str()) && !token.contains(['&', '#']),
                    "{token:?} is no value of parameter {name} in {query:?}"
                );
            }
        }
        Location::Cookie(name) => {
            let pair = format!("{name}=");
            let cookies: Vec<&str> = request.header_values("cookie").collect();
            let pairs: usize = cookies.iter().map(|c| c.matches(&pair).count()).sum();
            assert!(found.len() <= pairs);
            for token in &found {
                assert!(
                    cookies.iter().any(|c| c.contains(token.as_str())) && !token.contains(';'),
                    "{token:?} is no value of cookie {name} in {cookies:?}"
                );
            }
        }
    }
    found
}

/// `request` with `tokens` put at `location`, and where they must come out among the others.
fn with_tokens(location: &Location, request: &Request, tokens: &[String]) -> (Request, bool) {
    let mut query = request.query.clone();
    let mut headers = request.headers.clone();
    let appended = match location {
        Location::Header { name, prefix } => {
            let name = name.to_ascii_uppercase();
            let prefix = flip_case(prefix);
            headers.extend(
                tokens
                    .iter()
                    .map(|t| (name.clone(), format!("{prefix}{t}"))),
            );
            true
        }
        Location::Param(name) => {
            let pairs: Vec<String> = tokens.iter().map(|t| format!("{name}={t}&")).collect();
            query = format!("{}{query}", pairs.concat());
            false
        }
        Location::Cookie(name) => {
            let pairs: Vec<String> = tokens.iter().map(|t| format!("{name}=\"{t}\"; ")).collect();
            match headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            {
                Some((_, value)) => *value = format!("{}{value}", pairs.concat()),
                None => headers.push(("cookie".to_string(), pairs.concat())),
            }
            false
        }
    };
    (Request { query, headers }, appended)
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
            for locations in configurations {
                let before: Vec<Vec<String>> = locations
                    .iter()
                    .map(|location| check_found(location, &request))
                    .collect();
                for location in locations {
                    let (with, appended) = with_tokens(location, &request, tokens.as_slice());
                    for (other, before) in locations.iter().zip(&before) {
                        let found = check_found(other, &with);
                        if place(other) != place(location) {
                            assert_eq!(&found, before, "{other:?} sees tokens put at {location:?}");
                        } else if other == location {
                            let expected = if appended {
                                [before.as_slice(), tokens.as_slice()].concat()
                            } else {
                                [tokens.as_slice(), before.as_slice()].concat()
                            };
                            assert_eq!(found, expected, "{location:?}");
                        }
                    }
                }
            }
        });
    });
});
