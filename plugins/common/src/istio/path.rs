//! Path patterns of `AuthorizationPolicy` (`paths`, `notPaths`), with Istio's semantics:
//!
//! - Without `{*}` / `{**}`, a path is an Istio string: `/a` exact, `/a*` prefix, `*.json` suffix,
//!   `*` any path. `/dex/**` is the literal prefix `/dex/*` (Istio trims only the last `*`), and
//!   `/a/*/b` is the exact path `/a/*/b`: a `*` is a wildcard only at either end.
//! - With `{*}` or `{**}` it is a template, which Istio hands to Envoy's `uri_template` matcher:
//!   `{*}` is exactly one non-empty segment, `{**}` is any run of segment characters and `/`,
//!   possibly empty, so `/a/{**}` matches `/a/` and `/a/b/c` but not `/a`. Both must be whole
//!   segments, `{**}` may appear once and no `{*}` may follow it; the other segments are
//!   non-empty literals of RFC 3986 `pchar` characters. Both operators match only the characters
//!   Envoy's template allows (`A-Za-z0-9-._~%!$&'()+,;:@`), not `*` or `=`.
//! - Any other `{` or `}` is an error, as in Istio's validation.
//!
//! Paths are matched as given: callers pass the normalized path without query or fragment
//! ([`super::normalize`]).
//!
//! Cost: one walk of the path over a trie for the exact and prefix forms, one over a reversed
//! trie for the suffix forms, then only the templates whose leading literal (`/v1/models/` in
//! `/v1/models/{*}`) starts the path are tried. Templates that start with an operator
//! (`/{*}/…`) are tried on every path, so prefer a literal first segment in large lists.

use super::string_match::{StringIndex, StringPattern};
use super::trie::{KeyKind, Trie};
use crate::config::ConfigError;

const ONE_SEGMENT: &str = "{*}";
const ANY_SEGMENTS: &str = "{**}";

/// One path pattern of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// No template operator: one of Istio's string forms.
    Plain(StringPattern),
    Template(PathTemplate),
}

/// A compiled `{*}` / `{**}` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// Literal text and `{*}` segments, up to the `{**}` if any.
    pieces: Vec<Piece>,
    /// With `{**}`: the literal text that must end the path after it (may be empty).
    any_then: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    OneSegment,
}

impl PathPattern {
    /// Reads one `paths` / `notPaths` value; the error says what Istio would refuse.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.contains(ONE_SEGMENT) || value.contains(ANY_SEGMENTS) {
            return PathTemplate::parse(value).map(Self::Template);
        }
        if value.contains(['{', '}']) {
            return Err(format!(
                "`{value}` contains `{{` or `}}` outside a `{{*}}` or `{{**}}` segment"
            ));
        }
        StringPattern::parse(value).map(Self::Plain)
    }
}

/// Characters of RFC 3986 `pchar` Istio accepts in template literals.
fn is_template_literal_char(b: u8) -> bool {
    is_operator_char(b) || b == b'='
}

/// What Envoy's `*` and `**` operators match (besides `/` for `**`).
fn is_operator_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()+,;:@".contains(&b)
}

impl PathTemplate {
    fn parse(value: &str) -> Result<Self, String> {
        let Some(body) = value.strip_prefix('/') else {
            return Err(format!("path template `{value}` must start with `/`"));
        };
        let segments: Vec<&str> = body.split('/').collect();
        let last = segments.len().saturating_sub(1);
        let mut pieces = Vec::new();
        let mut text = String::from("/");
        let mut any_then: Option<String> = None;
        for (i, segment) in segments.iter().enumerate() {
            if i > 0 {
                text.push('/');
            }
            match *segment {
                ONE_SEGMENT | ANY_SEGMENTS if any_then.is_some() => {
                    return Err(format!(
                        "path template `{value}`: `{{**}}` must be the last operator"
                    ));
                }
                ONE_SEGMENT => {
                    if !text.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::OneSegment);
                }
                ANY_SEGMENTS => {
                    if !text.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut text)));
                    }
                    any_then = Some(String::new());
                }
                // A single trailing `/` is a literal empty last segment, as in Envoy.
                "" if i == last && i > 0 => {}
                literal => {
                    if literal.contains(['{', '}']) {
                        return Err(format!(
                            "path template `{value}`: `{{` or `}}` outside a `{{*}}` or `{{**}}` segment"
                        ));
                    }
                    if literal.is_empty() || !literal.bytes().all(is_template_literal_char) {
                        return Err(format!(
                            "path template `{value}`: segment `{literal}` must be a non-empty literal of A-Za-z0-9-._~%!$&'()+,;:@="
                        ));
                    }
                    text.push_str(literal);
                }
            }
        }
        match any_then.as_mut() {
            Some(tail) => *tail = text,
            None if !text.is_empty() => pieces.push(Piece::Literal(text)),
            None => {}
        }
        Ok(Self { pieces, any_then })
    }

    /// The literal text every matching path starts with.
    fn head(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Literal(text)) => text,
            _ => "",
        }
    }

    fn matches(&self, path: &str) -> bool {
        let mut rest = path.as_bytes();
        for piece in &self.pieces {
            rest = match piece {
                Piece::Literal(text) => match rest.strip_prefix(text.as_bytes()) {
                    Some(after) => after,
                    None => return false,
                },
                Piece::OneSegment => {
                    let run = rest.iter().take_while(|&&b| is_operator_char(b)).count();
                    match rest.get(run..) {
                        Some(after) if run > 0 => after,
                        _ => return false,
                    }
                }
            };
        }
        match &self.any_then {
            None => rest.is_empty(),
            Some(tail) => rest
                .strip_suffix(tail.as_bytes())
                .is_some_and(|middle| middle.iter().all(|&b| b == b'/' || is_operator_char(b))),
        }
    }
}

/// Parses a list of patterns; an error names `field[k]` of the offending one and says why.
pub(crate) fn parse_patterns(
    patterns: &[String],
    field: &str,
) -> Result<Vec<PathPattern>, ConfigError> {
    patterns
        .iter()
        .enumerate()
        .map(|(k, pattern)| {
            PathPattern::parse(pattern)
                .map_err(|reason| ConfigError::new(format!("{field}[{k}]"), reason))
        })
        .collect()
}

/// Path patterns with ids: the string forms in tries, the templates indexed by their head.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathIndex {
    strings: StringIndex,
    template_heads: Trie,
    templates: Vec<(PathTemplate, u32)>,
}

impl PathIndex {
    pub(crate) fn insert(&mut self, pattern: PathPattern, id: u32) {
        match pattern {
            PathPattern::Plain(plain) => self.strings.insert(&plain, id),
            PathPattern::Template(template) => {
                let slot = self.templates.len() as u32;
                self.template_heads
                    .insert(template.head().bytes(), KeyKind::Prefix, slot);
                self.templates.push((template, id));
            }
        }
    }

    /// Calls `found` with the id of every pattern `path` matches (an id may come twice).
    pub(crate) fn for_each_match(&self, path: &str, found: &mut impl FnMut(u32)) {
        self.strings.for_each_match(path, found);
        self.template_heads.walk(path.bytes(), &mut |slot| {
            if let Some((template, id)) = self.templates.get(slot as usize) {
                if template.matches(path) {
                    found(*id);
                }
            }
        });
    }
}

/// A compiled list of path patterns (`paths`, `notPaths`, or a plugin's own list): lookup cost
/// depends on the path length, not on the number of patterns.
#[derive(Debug, Clone)]
pub struct PathSet {
    index: PathIndex,
}

impl PathSet {
    /// Compiles `patterns`; an error names `field[k]` of the offending pattern and says why.
    pub fn compile(patterns: &[String], field: &str) -> Result<Self, ConfigError> {
        let mut index = PathIndex::default();
        for (k, pattern) in parse_patterns(patterns, field)?.into_iter().enumerate() {
            index.insert(pattern, k as u32);
        }
        Ok(Self { index })
    }

    /// Whether the (normalized, query-less) `path` matches any pattern.
    pub fn matches(&self, path: &str) -> bool {
        self.first_match(path).is_some()
    }

    /// Position in the compiled list of the first pattern `path` matches.
    pub fn first_match(&self, path: &str) -> Option<usize> {
        let mut first: Option<u32> = None;
        self.index.for_each_match(path, &mut |id| {
            first = Some(first.map_or(id, |f| f.min(id)));
        });
        first.map(|id| id as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> PathSet {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        PathSet::compile(&patterns, "paths").unwrap()
    }

    fn check(patterns: &[&str], table: &[(&str, bool)]) {
        let compiled = set(patterns);
        for (path, expected) in table {
            assert_eq!(
                compiled.matches(path),
                *expected,
                "{patterns:?} on {path:?}"
            );
        }
    }

    #[test]
    fn exact_prefix_suffix_presence() {
        check(
            &["/metrics"],
            &[
                ("/metrics", true),
                ("/metrics/", false),
                ("/metricsx", false),
                ("/Metrics", false),
            ],
        );
        check(
            &["/v1/models/*"],
            &[
                ("/v1/models/x", true),
                ("/v1/models/", true),
                ("/v1/models/a/b:predict", true),
                ("/v1/models", false),
                ("/v1/model", false),
                ("/V1/models/x", false),
            ],
        );
        check(
            &["*.json"],
            &[("/a/b.json", true), ("/a/b.jsonx", false), (".json", true)],
        );
        check(&["*"], &[("/", true), ("/anything/at/all", true)]);
    }

    #[test]
    fn istio_edge_cases_without_braces() {
        // `/dex/**` is the prefix `/dex/*` in Istio: it does not match `/dex/login`.
        check(
            &["/dex/**"],
            &[
                ("/dex/*", true),
                ("/dex/*x", true),
                ("/dex/login", false),
                ("/dex/", false),
            ],
        );
        // A star in the middle is a literal.
        check(&["/a/*/b"], &[("/a/*/b", true), ("/a/x/b", false)]);
        // Seed 001's list: `/dex/*` carries the real matching, `/dex/**` adds nothing.
        check(
            &["/dex/*", "/dex/**", "/oauth2/*"],
            &[
                ("/dex/login", true),
                ("/oauth2/callback", true),
                ("/v1/models/x", false),
            ],
        );
    }

    #[test]
    fn one_segment_template() {
        check(
            &["/v1/models/{*}"],
            &[
                ("/v1/models/bert", true),
                ("/v1/models/bert:predict", true),
                ("/v1/models/", false),
                ("/v1/models/a/b", false),
                ("/v1/models", false),
                // Envoy's operator does not match `=` or `*`.
                ("/v1/models/a=b", false),
                ("/v1/models/a*", false),
            ],
        );
        check(
            &["/{*}/models/{*}/infer"],
            &[
                ("/v2/models/x/infer", true),
                ("/v2/models//infer", false),
                ("/v2/models/x/y/infer", false),
            ],
        );
        check(&["/a/{*}/"], &[("/a/x/", true), ("/a/x", false)]);
    }

    #[test]
    fn any_segments_template() {
        check(
            &["/dex/{**}"],
            &[
                ("/dex/", true),
                ("/dex/login", true),
                ("/dex/a/b/c", true),
                ("/dex", false),
                ("/dexx/a", false),
                ("/dex/a=b", false),
            ],
        );
        check(
            &["/a/{**}/end"],
            &[
                ("/a/x/y/end", true),
                ("/a//end", true),
                ("/a/end", false),
                ("/a/x/endx", false),
            ],
        );
        check(&["/{**}"], &[("/", true), ("/x/y", true)]);
        check(
            &["/{*}/{**}"],
            &[("/a/", true), ("/a/b/c", true), ("/a", false)],
        );
    }

    #[test]
    fn invalid_templates_are_refused_with_reason() {
        for (pattern, reason) in [
            ("/a/{**}/{*}", "last operator"),
            ("/a/{**}/{**}", "last operator"),
            ("/a/{*}x", "outside"),
            ("/a/{x}/{*}", "outside"),
            ("/a{", "outside"),
            ("/a}", "outside"),
            ("a/{*}", "start with"),
            ("/a//{*}", "non-empty literal"),
            ("/a b/{*}", "non-empty literal"),
            ("/a*/{*}", "non-empty literal"),
        ] {
            let err = PathPattern::parse(pattern).unwrap_err();
            assert!(err.contains(reason), "{pattern}: {err}");
        }
        let err = PathSet::compile(
            &["/ok".into(), "/bad/{**}/{*}".into()],
            "rules[0].to[0].operation.paths",
        )
        .unwrap_err();
        assert_eq!(err.field, "rules[0].to[0].operation.paths[1]");
    }

    #[test]
    fn first_match_reports_the_lowest_position() {
        let paths = set(&["/v1/models/{*}", "/v1/*", "*"]);
        assert_eq!(paths.first_match("/v1/models/a"), Some(0));
        assert_eq!(paths.first_match("/v1/x"), Some(1));
        assert_eq!(paths.first_match("/admin"), Some(2));
        assert_eq!(set(&["/a"]).first_match("/b"), None);
    }

    #[test]
    fn many_patterns_still_match_precisely() {
        let patterns: Vec<String> = (0..1000)
            .flat_map(|i| {
                [
                    format!("/svc{i}/exact"),
                    format!("/p{i}/*"),
                    format!("*.ext{i}"),
                    format!("/t{i}/{{*}}/x"),
                ]
            })
            .collect();
        let paths = PathSet::compile(&patterns, "paths").unwrap();
        assert_eq!(paths.first_match("/svc999/exact"), Some(3996));
        assert_eq!(paths.first_match("/p500/anything"), Some(2001));
        assert_eq!(paths.first_match("/file.ext7"), Some(30));
        assert_eq!(paths.first_match("/t42/seg/x"), Some(171));
        assert_eq!(paths.first_match("/svc1000/exact"), None);
        assert_eq!(paths.first_match("/t42/seg/y"), None);
    }
}
