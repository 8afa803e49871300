//! Path patterns of `AuthorizationPolicy` (`paths`, `notPaths`), with Istio's semantics:
//!
//! - Without `{*}` / `{**}`, a path is an Istio string: `/a` exact, `/a*` prefix, `*.json` suffix,
//!   `*` any path. `/dex/**` is the literal prefix `/dex/*` (Istio trims only the last `*`), and
//!   `/a/*/b` is the exact path `/a/*/b`: a `*` is a wildcard only at either end.
//! - With `{*}` or `{**}` it is a template, which Istio hands to Envoy's `uri_template` matcher:
//!   `{*}` is exactly one non-empty segment, `{**}` is any run of segment characters and `/`,
//!   possibly empty, so `/a/{**}` matches `/a/` and `/a/b/c` but not `/a`. Both must be whole
//!   segments, `{**}` may appear once and no `{*}` may follow it; the other segments are
//!   non-empty literals of RFC 3986 `pchar` characters. Both operators match what Envoy's
//!   template matches since `uri_template_match_on_asterisk` (Envoy 1.35, in the 1.40 that
//!   Istio ships): `A-Za-z0-9-._~%!$&'()+,;:@=*`, i.e. every character of a normalized path.
//! - Any other `{` or `}` is an error, as in Istio's validation.
//!
//! Paths are matched as given: callers pass the normalized path without query
//! ([`super::normalize`]). Compiling takes the normalization mode and refuses a pattern that no
//! path normalized that way can match (`/a/../b`, `/a//b` when slashes are merged, `%2F`,
//! `%3a`, `?`…): such a rule would silently never apply, which for a DENY is a hole.
//!
//! Cost: one walk of the path over a trie for the exact and prefix forms, one over a reversed
//! trie for the suffix forms, then only the templates whose leading literal (`/v1/models/` in
//! `/v1/models/{*}`) starts the path are tried. The path is split into segments once, and a
//! template compares segments, so a long path costs its length once, not once per template.
//! Templates that start with an operator (`/{*}/…`) are tried on every path, so prefer a
//! literal first segment in large lists.

use super::normalize::{normalize_path, PathNormalization};
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

/// A compiled `{*}` / `{**}` template, segment by segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// Literal and `{*}` segments, up to the `{**}` if any.
    segments: Vec<SegmentPattern>,
    /// With `{**}`: the literal segments that must end the path after it (may be none).
    any_then: Option<Vec<String>>,
    /// The literal text every matching path starts with (`/v1/models/` for
    /// `/v1/models/{*}`), the key of the template index.
    head: String,
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

/// Characters of RFC 3986 `pchar` Istio accepts in template literals (Envoy's `kLiteral`).
fn is_template_literal_char(b: u8) -> bool {
    b != b'*' && is_operator_char(b)
}

/// What Envoy's `*` and `**` operators match (besides `/` for `**`): the literal characters and
/// `*`, as Envoy matches since `uri_template_match_on_asterisk` (1.35, backported to 1.31). With
/// `=` and `*` this is every character a normalized path can hold, so a DENY on `/admin/{**}`
/// also covers `/admin/a=b`, `/admin/x*` and `/admin/s;v=1`.
fn is_operator_char(b: u8) -> bool {
    OPERATOR_CHARS[usize::from(b)]
}

/// A table, because every byte of a path is looked up once per request.
const OPERATOR_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let others = b"-._~%!$&'()+,;:@=*";
    let mut i = 0;
    while i < others.len() {
        table[others[i] as usize] = true;
        i += 1;
    }
    table
};

/// One segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SegmentPattern {
    Literal(String),
    /// `{*}`: one non-empty segment of operator characters.
    One,
}

impl PathTemplate {
    fn parse(value: &str) -> Result<Self, String> {
        let Some(body) = value.strip_prefix('/') else {
            return Err(format!("path template `{value}` must start with `/`"));
        };
        let segments: Vec<&str> = body.split('/').collect();
        let last = segments.len().saturating_sub(1);
        let mut before_any = Vec::new();
        let mut any_then: Option<Vec<String>> = None;
        for (i, segment) in segments.iter().enumerate() {
            match *segment {
                ONE_SEGMENT | ANY_SEGMENTS if any_then.is_some() => {
                    return Err(format!(
                        "path template `{value}`: `{{**}}` must be the last operator"
                    ));
                }
                ONE_SEGMENT => before_any.push(SegmentPattern::One),
                ANY_SEGMENTS => any_then = Some(Vec::new()),
                literal => {
                    // A single trailing `/` is a literal empty last segment, as in Envoy.
                    let trailing_slash = literal.is_empty() && i == last && i > 0;
                    if literal.contains(['{', '}']) {
                        return Err(format!(
                            "path template `{value}`: `{{` or `}}` outside a `{{*}}` or `{{**}}` segment"
                        ));
                    }
                    if !trailing_slash
                        && (literal.is_empty() || !literal.bytes().all(is_template_literal_char))
                    {
                        return Err(format!(
                            "path template `{value}`: segment `{literal}` must be a non-empty literal of A-Za-z0-9-._~%!$&'()+,;:@="
                        ));
                    }
                    match any_then.as_mut() {
                        Some(tail) => tail.push(literal.to_string()),
                        None => before_any.push(SegmentPattern::Literal(literal.to_string())),
                    }
                }
            }
        }
        // Every template has an operator, so its head ends with the `/` before the first one.
        let mut head = String::from("/");
        for segment in &before_any {
            let SegmentPattern::Literal(text) = segment else {
                break;
            };
            head.push_str(text);
            head.push('/');
        }
        Ok(Self {
            segments: before_any,
            any_then,
            head,
        })
    }

    /// Cost: one comparison per template segment (a literal compares at most its own length),
    /// whatever the length of the path, which was split and checked once in [`PathSegments`].
    fn matches(&self, path: &PathSegments<'_>) -> bool {
        let count = path.segments.len();
        let fixed = self.segments.len();
        let prefix_matches =
            || {
                self.segments.iter().zip(&path.segments).enumerate().all(
                    |(k, (pattern, segment))| match pattern {
                        SegmentPattern::Literal(text) => text == segment,
                        SegmentPattern::One => !segment.is_empty() && path.all_operator(k..k + 1),
                    },
                )
            };
        match &self.any_then {
            None => count == fixed && prefix_matches(),
            Some(tail) => {
                // `{**}` covers at least one (possibly empty) segment: `/a/{**}` needs `/a/`.
                let Some(tail_start) = count.checked_sub(tail.len()) else {
                    return false;
                };
                tail_start > fixed
                    && prefix_matches()
                    && path.all_operator(fixed..tail_start)
                    && path
                        .segments
                        .get(tail_start..)
                        .is_some_and(|rest| rest.iter().zip(tail).all(|(s, t)| s == t))
            }
        }
    }
}

/// A path split into segments once per request, so that templates compare segments instead of
/// rescanning the path: matching stays linear in the path length whatever the template count.
pub(crate) struct PathSegments<'a> {
    /// The segments after the leading `/` (`/a/` is `["a", ""]`); empty when there is no `/`.
    segments: Vec<&'a str>,
    /// `non_operator_before[k]`: how many of the first `k` segments hold a character the
    /// operators do not match (prefix sums, so any range is checked in constant time).
    non_operator_before: Vec<u32>,
}

impl<'a> PathSegments<'a> {
    pub(crate) fn split(path: &'a str) -> Self {
        let segments: Vec<&str> = match path.strip_prefix('/') {
            Some(body) => body.split('/').collect(),
            None => Vec::new(),
        };
        let mut non_operator_before = Vec::with_capacity(segments.len() + 1);
        let mut count = 0u32;
        non_operator_before.push(count);
        for segment in &segments {
            if !segment.bytes().all(is_operator_char) {
                count += 1;
            }
            non_operator_before.push(count);
        }
        Self {
            segments,
            non_operator_before,
        }
    }

    fn all_operator(&self, range: std::ops::Range<usize>) -> bool {
        match (
            self.non_operator_before.get(range.start),
            self.non_operator_before.get(range.end),
        ) {
            (Some(before), Some(after)) => before == after,
            _ => false,
        }
    }
}

impl PathPattern {
    /// A path this pattern matches if it matches any (`{*}` and `{**}` become `x`; a prefix
    /// gets an `x` after it, a suffix an `/x` before it), or `None` for `*`. Whether that path
    /// survives normalization unchanged tells whether any normalized path can match.
    fn sample_path(&self) -> Option<String> {
        match self {
            Self::Plain(StringPattern::Presence) => None,
            Self::Plain(StringPattern::Exact(text)) => Some(text.clone()),
            Self::Plain(StringPattern::Prefix(text)) => {
                // A prefix may stop inside an escape (`/a%2`): check only what precedes it.
                let complete = match text.rfind('%') {
                    Some(at) if text.len() - at < 3 => text.get(..at).unwrap_or(text),
                    _ => text,
                };
                Some(format!("{complete}x"))
            }
            Self::Plain(StringPattern::Suffix(text)) => Some(format!("/x{text}")),
            Self::Template(template) => {
                let mut sample = String::new();
                for segment in &template.segments {
                    sample.push('/');
                    sample.push_str(match segment {
                        SegmentPattern::Literal(text) => text,
                        SegmentPattern::One => "x",
                    });
                }
                if let Some(tail) = &template.any_then {
                    sample.push_str("/x");
                    for text in tail {
                        sample.push('/');
                        sample.push_str(text);
                    }
                }
                Some(sample)
            }
        }
    }

    /// Why no path normalized with `mode` can match this pattern (`/a/../b`, `/a//b` when
    /// slashes are merged, `%2F`, `%3a`, a `?`…), or `None` when some path can.
    fn unreachable_reason(&self, value: &str, mode: PathNormalization) -> Option<String> {
        let sample = self.sample_path()?;
        match normalize_path(&sample, mode) {
            Err(why) => Some(format!(
                "`{value}` can never match: a path holding it is refused ({why})"
            )),
            Ok(normalized) if !normalized.suffix.is_empty() => Some(format!(
                "`{value}` can never match: `?` starts the query, and paths are matched without it"
            )),
            Ok(normalized) if normalized.path != sample => Some(format!(
                "`{value}` can never match: paths are matched normalized, and normalization turns `{sample}` into `{}`; write the pattern normalized",
                normalized.path
            )),
            Ok(_) => None,
        }
    }
}

/// Parses a list of patterns, refusing those no path normalized with `mode` can match; an
/// error names `field[k]` of the offending one and says why.
pub(crate) fn parse_patterns(
    patterns: &[String],
    field: &str,
    mode: PathNormalization,
) -> Result<Vec<PathPattern>, ConfigError> {
    patterns
        .iter()
        .enumerate()
        .map(|(k, value)| {
            PathPattern::parse(value)
                .and_then(|pattern| match pattern.unreachable_reason(value, mode) {
                    Some(reason) => Err(reason),
                    None => Ok(pattern),
                })
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
                    .insert(template.head.bytes(), KeyKind::Prefix, slot);
                self.templates.push((template, id));
            }
        }
    }

    /// Calls `found` with the id of every pattern `path` matches (an id may come twice).
    pub(crate) fn for_each_match(&self, path: &str, found: &mut impl FnMut(u32)) {
        self.strings.for_each_match(path, found);
        // Split only when some template's head starts the path.
        let mut segments: Option<PathSegments<'_>> = None;
        self.template_heads.walk(path.bytes(), &mut |slot| {
            if let Some((template, id)) = self.templates.get(slot as usize) {
                let segments = segments.get_or_insert_with(|| PathSegments::split(path));
                if template.matches(segments) {
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
    /// Compiles `patterns` for paths normalized with `mode`; an error names `field[k]` of the
    /// offending pattern and says why (a pattern no such path can match is an error too).
    pub fn compile(
        patterns: &[String],
        field: &str,
        mode: PathNormalization,
    ) -> Result<Self, ConfigError> {
        let mut index = PathIndex::default();
        for (k, pattern) in parse_patterns(patterns, field, mode)?
            .into_iter()
            .enumerate()
        {
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
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn set(patterns: &[&str]) -> PathSet {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        PathSet::compile(&patterns, "paths", PathNormalization::MergeSlashes).unwrap()
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
        // Kubeflow's require-JWT notPaths: `/dex/*` carries the matching, `/dex/**` adds nothing.
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
                // Envoy 1.40's operator matches `=` and `*` too.
                ("/v1/models/a=b", true),
                ("/v1/models/a*", true),
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
                ("/dex/a=b", true),
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
            PathNormalization::MergeSlashes,
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
        let paths = PathSet::compile(&patterns, "paths", PathNormalization::MergeSlashes).unwrap();
        assert_eq!(paths.first_match("/svc999/exact"), Some(3996));
        assert_eq!(paths.first_match("/p500/anything"), Some(2001));
        assert_eq!(paths.first_match("/file.ext7"), Some(30));
        assert_eq!(paths.first_match("/t42/seg/x"), Some(171));
        assert_eq!(paths.first_match("/svc1000/exact"), None);
        assert_eq!(paths.first_match("/t42/seg/y"), None);
    }

    #[test]
    fn operators_match_equals_star_and_parameters_like_envoy() {
        check(
            &["/admin/{**}", "/v1/models/{*}/internal"],
            &[
                ("/admin/a=b", true),
                ("/admin/x*", true),
                ("/admin/secret;v=1", true),
                ("/admin/secret;*", true),
                ("/admin/a%3Db", true),
                ("/v1/models/bert;v=1/internal", true),
                ("/v1/models/a=b*/internal", true),
                ("/admin", false),
            ],
        );
        // Literals still follow Envoy's literal set: `*` is not one.
        assert!(PathPattern::parse("/a*/{*}").is_err());
        assert!(PathPattern::parse("/a=/{*}").is_ok());
    }

    #[test]
    fn templates_compare_whole_segments() {
        check(
            &["/v1/models/{*}/infer", "/a/{**}/b/c", "/x/{*}/{*}/"],
            &[
                ("/v1/models/m/infer", true),
                ("/v1/models/m/inferx", false),
                ("/v1/models/m/infer/", false),
                ("/v1/models/m/x/infer", false),
                ("/a/b/c", false),
                ("/a//b/c", true),
                ("/a/x/y/b/c", true),
                ("/a/x/b/cc", false),
                ("/x/1/2/", true),
                ("/x/1/2", false),
                ("/x/1//", false),
            ],
        );
    }

    #[test]
    fn patterns_no_normalized_path_can_match_are_refused() {
        use PathNormalization::{Base, DecodeAndMergeSlashes, MergeSlashes};
        let refused =
            |pattern: &str, mode| PathSet::compile(&[pattern.to_string()], "paths", mode).is_err();
        for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
            for pattern in [
                "/a/../b",
                "/a/./b",
                "/a/..",
                "/a/../*",
                "*/../a",
                "*/.",
                "/a/{*}/../b",
                "/a/%2Fb",
                "/a/%2fb*",
                "/a/%5C",
                "/%61dmin",
                "/v1/models/x%3Aexplain",
                "*%3aexplain",
                "/a/%3f",
                "/a%2541",
                "/a?b",
                "/a#b",
                "/a b",
                "v1/models/*",
                "/a/%EF%BC%8E",
                "/{**}/%40",
            ] {
                assert!(refused(pattern, mode), "{pattern} ({mode:?})");
            }
            for pattern in [
                "/a/..b*",
                "/a/.hidden",
                "/a/.*",
                "/a%3F",
                "/a%3B",
                "/a%2*",
                "/a%*",
                "*.json",
                "*",
                "/x:explain",
                "/a/{*}/b",
                "/{**}",
            ] {
                assert!(!refused(pattern, mode), "{pattern} ({mode:?})");
            }
        }
        assert!(!refused("/a//b", Base));
        assert!(refused("/a//b", MergeSlashes));
        assert!(refused("/a//*", DecodeAndMergeSlashes));
        let err = PathSet::compile(
            &["/ok".into(), "/a/../b".into()],
            "rules[0].to[0].operation.paths",
            MergeSlashes,
        )
        .unwrap_err();
        assert_eq!(err.field, "rules[0].to[0].operation.paths[1]");
        assert!(
            err.reason.contains("`/a/../b` can never match"),
            "{}",
            err.reason
        );
    }
}
