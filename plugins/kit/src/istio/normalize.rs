//! Path normalization before matching: the security core of path rules. Istio's policies are only
//! safe because Envoy's connection manager normalizes `:path` first; this module does the same
//! job inside the plugin, so a policy holds even on a listener that normalizes nothing.
//!
//! Steps, in order:
//! 1. The path must be origin-form (`/…`). The query is split off, kept verbatim and never
//!    matched. A `#` anywhere is malformed: a fragment is never part of a request target, and
//!    upstreams disagree on whether it ends the path.
//! 2. Every byte must be a `pchar`, `/` or `%`: control characters, a raw `\`, space, non-ASCII
//!    and the other characters RFC 3986 excludes make the path malformed.
//! 3. Percent-escapes are decoded once, so that the path matched is the path the upstream
//!    routes on, and the decoded path is what is forwarded:
//!    - escaped unreserved characters (`%2E` → `.`, `%41` → `A`) and the reserved characters
//!      that mean the same to every upstream whether escaped or not (`:` `@` `!` `$` `&` `'`
//!      `(` `)` `*` `,` `=`) are decoded: uvicorn, Go's `net/http` and Tomcat decode them
//!      before routing, so `/x%3Aexplain` must meet a rule on `*:explain`;
//!    - `%3B` (`;`) and `%2B` (`+`) stay escaped: decoding would change what the upstream sees
//!      (Tomcat and Spring strip `;…` parameters from a segment, some servers read `+` as a
//!      space), so they are matched and forwarded as `%3B` / `%2B`;
//!    - `%2F` and `%5C` become `/` in [`PathNormalization::DecodeAndMergeSlashes`] and make the
//!      path malformed otherwise; escaped control characters (`%00`…) are malformed;
//!    - every other escape (`%3F`, `%23`, `%25`, `%20`, non-ASCII…) is kept with uppercase hex.
//!
//!    Escapes that are not two hex digits, escaped bytes that are not valid UTF-8 (overlong
//!    forms such as `%C0%AE` included), characters that Unicode compatibility normalization
//!    (NFKC) turns into `.`, `/` or `\` (fullwidth `．` `／`, one dot leader `․`…: some
//!    upstreams apply it), and any double encoding (`%25` followed by two hex digits: an
//!    upstream that decodes twice would see a character this module never saw) are malformed.
//! 4. Repeated slashes are merged (all modes but `BASE`).
//! 5. `.` and `..` segments are resolved as RFC 3986 §5.2.4 says, never above the root. A
//!    segment that is a dot segment followed by `;` parameters (`..;`) is malformed: Java servers
//!    read it as `..`.
//!
//! The result is idempotent: normalizing a normalized path changes nothing.

use std::borrow::Cow;
use std::fmt;

/// How far normalization goes, with the names of Istio's `meshConfig.pathNormalization`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(not(target_arch = "wasm32"), derive(schemars::JsonSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathNormalization {
    /// RFC 3986 normalization only; `//` stays, `%2F` / `%5C` are refused.
    Base,
    /// `BASE` plus merging repeated slashes; `%2F` / `%5C` are refused. The default: nothing
    /// ambiguous is forwarded, and `//admin` cannot slip past a rule on `/admin`.
    #[default]
    MergeSlashes,
    /// `MERGE_SLASHES` after decoding `%2F` and `%5C` to `/`.
    DecodeAndMergeSlashes,
}

/// Why a path cannot be normalized safely; the request must be refused (400), never matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedPath {
    /// Empty, `*`, or absolute-form: not `/…`.
    NotOriginForm,
    /// A raw byte RFC 3986 does not allow in a path (control, space, `\`, non-ASCII, `"<>^`{|}`).
    ForbiddenCharacter(u8),
    /// `%` not followed by two hex digits.
    InvalidPercentEncoding,
    /// `%2F` or `%5C` while the mode does not decode them.
    EncodedSlash,
    /// An escaped control character such as `%00`.
    EncodedControlCharacter,
    /// Escaped bytes that are not UTF-8 (overlong forms included).
    InvalidUtf8,
    /// `%25` followed by two hex digits.
    DoubleEncoding,
    /// An escaped character that NFKC turns into `.`, `/` or `\` (fullwidth full stop…).
    LookalikeSeparator,
    /// A `#`: fragments are not sent in requests.
    Fragment,
    /// A `.` or `..` segment carrying `;` parameters.
    DotSegmentWithParameters,
}

impl fmt::Display for MalformedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOriginForm => f.write_str("path is not origin-form"),
            Self::ForbiddenCharacter(b) => write!(f, "path contains forbidden byte 0x{b:02X}"),
            Self::InvalidPercentEncoding => f.write_str("invalid percent-encoding"),
            Self::EncodedSlash => f.write_str("percent-encoded slash or backslash"),
            Self::EncodedControlCharacter => f.write_str("percent-encoded control character"),
            Self::InvalidUtf8 => f.write_str("percent-encoded bytes are not valid UTF-8"),
            Self::DoubleEncoding => f.write_str("double percent-encoding"),
            Self::LookalikeSeparator => {
                f.write_str("percent-encoded look-alike of a dot, slash or backslash")
            }
            Self::Fragment => f.write_str("fragment (`#`) in the request path"),
            Self::DotSegmentWithParameters => f.write_str("dot segment with `;` parameters"),
        }
    }
}

/// A normalized request path, borrowed from the received one where it is the same (most
/// requests: no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath<'a> {
    /// What rules are matched against: normalized, without query or fragment.
    pub path: Cow<'a, str>,
    /// `?query` exactly as received (empty when there was none).
    pub suffix: &'a str,
    /// Whether `path` differs from the received path part, i.e. `:path` must be rewritten so
    /// the upstream sees what was checked.
    pub changed: bool,
}

impl NormalizedPath<'_> {
    /// The `:path` to forward: the normalized path followed by the untouched query.
    pub fn request_path(&self) -> String {
        format!("{}{}", self.path, self.suffix)
    }
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Raw bytes allowed in a path: unreserved, sub-delims, `:`, `@`, `/` and `%` (escapes). A
/// table, because every byte of every request's path is looked up.
const ALLOWED_RAW: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = is_unreserved(byte)
            || matches!(
                byte,
                b'!' | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'/'
                    | b'%'
            );
        b += 1;
    }
    table
};

fn is_allowed_raw(b: u8) -> bool {
    ALLOWED_RAW[usize::from(b)]
}

/// Escaped characters decoded by normalization: those whose escaped and raw forms every
/// upstream reads alike. `;` and `+` are left out on purpose (see the module documentation).
fn is_decoded(b: u8) -> bool {
    is_unreserved(b) || b"!$&'()*,=:@".contains(&b)
}

/// Characters whose NFKC form contains `.`, `/` or `\` (Unicode 14: the dot leaders and
/// ellipses, the `a/c`-style symbols, the numbers with a full stop, the small and fullwidth
/// forms). An upstream that applies NFKC would turn them into dot segments or separators.
fn folds_to_separator(c: char) -> bool {
    matches!(
        u32::from(c),
        0x2024..=0x2026
            | 0x2100
            | 0x2101
            | 0x2105
            | 0x2106
            | 0x2488..=0x249B
            | 0x33C2
            | 0x33C7
            | 0x33D8
            | 0xFE19
            | 0xFE30
            | 0xFE52
            | 0xFE68
            | 0xFF0E
            | 0xFF0F
            | 0xFF3C
            | 0x1F100
    )
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Normalizes the raw `:path` of a request; see the module documentation for the steps.
pub fn normalize_path(
    raw: &str,
    mode: PathNormalization,
) -> Result<NormalizedPath<'_>, MalformedPath> {
    let split = raw.find('?').unwrap_or(raw.len());
    let (received, suffix) = raw.split_at(split);
    if !received.starts_with('/') {
        return Err(MalformedPath::NotOriginForm);
    }
    if raw.contains('#') {
        return Err(MalformedPath::Fragment);
    }
    if is_already_normal(received, mode) {
        return Ok(NormalizedPath {
            path: Cow::Borrowed(received),
            suffix,
            changed: false,
        });
    }
    let path = rebuild(received, mode)?;
    Ok(NormalizedPath {
        changed: path != received,
        path: Cow::Owned(path),
        suffix,
    })
}

/// Whether [`rebuild`] would return `received` unchanged: only allowed raw bytes and no
/// escape (decoding is the identity), no `//` unless they are kept, no dot segment (even with
/// parameters). Most requests take this path, which copies the path once instead of
/// rebuilding it character by character; one pass over the bytes, as it runs for every
/// request in every plugin that matches paths.
fn is_already_normal(received: &str, mode: PathNormalization) -> bool {
    let keep_slashes = mode == PathNormalization::Base;
    let mut after_slash = false;
    // The current segment up to its first `;`: how many dots, and whether it is dots only.
    let mut dots = 0u8;
    let mut only_dots = true;
    let mut in_parameters = false;
    let is_dot_segment = |dots: u8, only_dots: bool| only_dots && (dots == 1 || dots == 2);
    for b in received.bytes() {
        if b == b'%' || !is_allowed_raw(b) {
            return false;
        }
        if b == b'/' {
            if is_dot_segment(dots, only_dots) || (after_slash && !keep_slashes) {
                return false;
            }
            after_slash = true;
            dots = 0;
            only_dots = true;
            in_parameters = false;
            continue;
        }
        after_slash = false;
        if in_parameters {
            continue;
        }
        match b {
            b'.' => dots = dots.saturating_add(1),
            b';' => in_parameters = true,
            _ => only_dots = false,
        }
    }
    !is_dot_segment(dots, only_dots)
}

/// Steps 2 to 5 on the path part (no query, no fragment).
fn rebuild(received: &str, mode: PathNormalization) -> Result<String, MalformedPath> {
    let decoded = decode(received.as_bytes(), mode)?;
    let merged = if mode == PathNormalization::Base {
        decoded
    } else {
        merge_slashes(&decoded)
    };
    remove_dot_segments(&merged)
}

/// Step 2 and 3: checks raw bytes and decodes escapes once.
fn decode(raw: &[u8], mode: PathNormalization) -> Result<String, MalformedPath> {
    let mut out = String::with_capacity(raw.len());
    // Escaped bytes >= 0x80 of the current run, to check they form UTF-8.
    let mut escaped_run: Vec<u8> = Vec::new();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if !is_allowed_raw(b) {
            return Err(MalformedPath::ForbiddenCharacter(b));
        }
        if b != b'%' {
            check_utf8(&mut escaped_run)?;
            out.push(char::from(b));
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            raw.get(i + 1).copied().and_then(hex_value),
            raw.get(i + 2).copied().and_then(hex_value),
        ) else {
            return Err(MalformedPath::InvalidPercentEncoding);
        };
        let value = hi << 4 | lo;
        i += 3;
        if value >= 0x80 {
            escaped_run.push(value);
        } else {
            check_utf8(&mut escaped_run)?;
        }
        match value {
            _ if is_decoded(value) => out.push(char::from(value)),
            b'/' | b'\\' if mode == PathNormalization::DecodeAndMergeSlashes => out.push('/'),
            b'/' | b'\\' => return Err(MalformedPath::EncodedSlash),
            0x00..=0x1F | 0x7F => return Err(MalformedPath::EncodedControlCharacter),
            _ => {
                out.push('%');
                out.push(char::from(UPPER_HEX[usize::from(value >> 4)]));
                out.push(char::from(UPPER_HEX[usize::from(value & 0xF)]));
            }
        }
    }
    check_utf8(&mut escaped_run)?;
    // Checked on the decoded text so that `%25%32E` (which decodes to `%252E`) is caught too.
    if has_double_encoding(out.as_bytes()) {
        return Err(MalformedPath::DoubleEncoding);
    }
    Ok(out)
}

/// Whether `%25` is followed by two hex digits anywhere in `text`.
fn has_double_encoding(text: &[u8]) -> bool {
    text.windows(5).any(|w| {
        matches!(
            w,
            [b'%', b'2', b'5', a, b] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()
        )
    })
}

/// Checks (then clears) a run of escaped non-ASCII bytes: valid UTF-8, and no character that
/// NFKC folds into a separator.
fn check_utf8(run: &mut Vec<u8>) -> Result<(), MalformedPath> {
    if run.is_empty() {
        return Ok(());
    }
    let checked = match std::str::from_utf8(run) {
        Ok(text) if text.chars().any(folds_to_separator) => Err(MalformedPath::LookalikeSeparator),
        Ok(_) => Ok(()),
        Err(_) => Err(MalformedPath::InvalidUtf8),
    };
    run.clear();
    checked
}

fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// RFC 3986 §5.2.4 on a path that starts with `/`, done segment by segment.
fn remove_dot_segments(path: &str) -> Result<String, MalformedPath> {
    let body = path.strip_prefix('/').unwrap_or(path);
    let segments: Vec<&str> = body.split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut kept: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                kept.pop();
            }
            other => {
                if matches!(other.split(';').next(), Some("." | "..")) {
                    return Err(MalformedPath::DotSegmentWithParameters);
                }
                kept.push(other);
                continue;
            }
        }
        // A dot segment at the end leaves the path ending with `/` (`/a/b/..` is `/a/`).
        if i == last {
            kept.push("");
        }
    }
    Ok(format!("/{}", kept.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;
    use PathNormalization::{Base, DecodeAndMergeSlashes, MergeSlashes};

    fn ok(raw: &str, mode: PathNormalization) -> String {
        normalize_path(raw, mode)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .path
            .into_owned()
    }

    fn bad(raw: &str, mode: PathNormalization) -> MalformedPath {
        normalize_path(raw, mode).unwrap_err()
    }

    #[test]
    fn paths_taken_as_already_normal_are_what_the_full_normalization_returns() {
        let paths = [
            "/",
            "/v1/models/bert-emotion-model:predict",
            "/a//b",
            "//",
            "/a/./b",
            "/a/../b",
            "/a/..",
            "/.",
            "/..;x/admin",
            "/.;/admin",
            "/a;b/c;d",
            "/...",
            "/..a/.b./",
            "/a/b/",
            "/a%2Fb",
            "/a%41",
            "/a%2e%2e/b",
            "/a b",
            "/a\\b",
            "/~user/@x:y!$&'()*+,=",
        ];
        let mut fast = 0;
        for path in paths {
            for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
                if is_already_normal(path, mode) {
                    fast += 1;
                    assert_eq!(rebuild(path, mode).as_deref(), Ok(path), "{path} {mode:?}");
                }
            }
        }
        assert!(fast >= 10, "only {fast} paths took the fast route");
        // Every path of up to six of the characters that make slashes, dot segments and
        // parameters: one taken as already normal is what the full normalization returns, and
        // one the full normalization returns unchanged is taken as already normal.
        let alphabet = ['/', '.', ';', 'a'];
        let mut paths = vec![String::from("/")];
        let mut checked = 0;
        while let Some(path) = paths.pop() {
            for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
                let normal = rebuild(&path, mode).is_ok_and(|rebuilt| rebuilt == path);
                assert_eq!(is_already_normal(&path, mode), normal, "{path:?} {mode:?}");
                checked += 1;
            }
            if path.len() < 7 {
                paths.extend(alphabet.iter().map(|c| format!("{path}{c}")));
            }
        }
        assert!(checked > 10_000);
        assert!(!is_already_normal("/a//b", MergeSlashes));
        assert!(is_already_normal("/a//b", Base));
        assert!(!is_already_normal("/..;x/admin", Base));
    }

    #[test]
    fn query_is_split_off_and_kept() {
        let n = normalize_path("/v1/models/a?x=/admin&y=%3A", MergeSlashes).unwrap();
        assert_eq!(n.path, "/v1/models/a");
        assert_eq!(n.suffix, "?x=/admin&y=%3A");
        assert!(!n.changed);
        assert_eq!(n.request_path(), "/v1/models/a?x=/admin&y=%3A");
        // The query is not normalized, even when it holds path-like tricks.
        let n = normalize_path("/a/../b?../%2F%00", MergeSlashes).unwrap();
        assert_eq!(n.request_path(), "/b?../%2F%00");
        assert!(n.changed);
    }

    #[test]
    fn dot_segments_table() {
        for (raw, expected) in [
            ("/", "/"),
            ("/v1/models/../../admin", "/admin"),
            ("/v1/models/x/../y", "/v1/models/y"),
            ("/a/./b/.", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/..", "/"),
            ("/.../a", "/.../a"),
            ("/a/.b/..c", "/a/.b/..c"),
            ("/v1/models/%2e%2e/%2E%2E/admin", "/admin"),
            ("/v1/models/.%2e/admin", "/v1/admin"),
            ("/%2e/admin", "/admin"),
        ] {
            assert_eq!(ok(raw, MergeSlashes), expected, "{raw}");
        }
    }

    #[test]
    fn fragment_is_refused_anywhere() {
        for raw in [
            "/v1/models/x#/../../admin",
            "/admin#?/v1/models/a",
            "/v1/models/a?x=1#frag",
            "/a#",
        ] {
            assert_eq!(bad(raw, MergeSlashes), MalformedPath::Fragment, "{raw}");
        }
    }

    #[test]
    fn slashes_by_mode() {
        assert_eq!(ok("//admin", Base), "//admin");
        assert_eq!(ok("//admin", MergeSlashes), "/admin");
        assert_eq!(ok("/v1///models//x/", MergeSlashes), "/v1/models/x/");
        assert_eq!(ok("/a//../b", Base), "/a/b");
        for mode in [Base, MergeSlashes] {
            assert_eq!(
                bad("/v1/models/..%2F..%2Fadmin", mode),
                MalformedPath::EncodedSlash
            );
            assert_eq!(bad("/v1/models/x%2fy", mode), MalformedPath::EncodedSlash);
            assert_eq!(
                bad("/v1/models/..%5Cadmin", mode),
                MalformedPath::EncodedSlash
            );
        }
        assert_eq!(
            ok("/v1/models/..%2F..%2Fadmin", DecodeAndMergeSlashes),
            "/admin"
        );
        assert_eq!(
            ok("/v1/models/..%5c..%5cadmin", DecodeAndMergeSlashes),
            "/admin"
        );
        assert_eq!(ok("/a%2F%2Fb", DecodeAndMergeSlashes), "/a/b");
    }

    #[test]
    fn raw_forbidden_bytes() {
        for raw in [
            "/a\\..\\admin",
            "/a\0b",
            "/a\tb",
            "/a\r\nX-Injected: 1",
            "/a b",
            "/a\u{7f}",
            "/caf\u{e9}",
            "/a\"b",
            "/a<b>",
            "/a{b}",
            "/a|b",
            "/a^b",
            "/a`b",
        ] {
            assert!(
                matches!(bad(raw, MergeSlashes), MalformedPath::ForbiddenCharacter(_)),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn not_origin_form() {
        for raw in [
            "",
            "*",
            "http://evil/v1/models/x",
            "v1/models/x",
            "?x",
            "#/a",
        ] {
            assert_eq!(
                bad(raw, MergeSlashes),
                MalformedPath::NotOriginForm,
                "{raw:?}"
            );
        }
    }

    #[test]
    fn percent_encoding_table() {
        // Unreserved characters are decoded, other escapes kept with uppercase hex.
        assert_eq!(ok("/%76%31/models/%7e%5F", MergeSlashes), "/v1/models/~_");
        assert_eq!(ok("/a%3fb%23%25%20", MergeSlashes), "/a%3Fb%23%25%20");
        assert_eq!(ok("/caf%C3%A9", MergeSlashes), "/caf%C3%A9");
        assert_eq!(ok("/%e2%82%ac", MergeSlashes), "/%E2%82%AC");
        for raw in ["/a%", "/a%4", "/a%G1", "/a%%41", "/a%4x"] {
            assert_eq!(
                bad(raw, MergeSlashes),
                MalformedPath::InvalidPercentEncoding,
                "{raw}"
            );
        }
        for raw in ["/a%00", "/a%0d%0aX: 1", "/a%7F", "/a%1f"] {
            assert_eq!(
                bad(raw, MergeSlashes),
                MalformedPath::EncodedControlCharacter,
                "{raw}"
            );
        }
    }

    #[test]
    fn reserved_characters_upstreams_decode_are_decoded() {
        // Upstreams route on `x:explain` for `x%3Aexplain`: match and forward that.
        for (raw, expected) in [
            ("/v1/models/x%3Aexplain", "/v1/models/x:explain"),
            ("/v1/models/x%3aexplain", "/v1/models/x:explain"),
            ("/v1/models/team%40prod/infer", "/v1/models/team@prod/infer"),
            ("/a%21%24%26%27%28%29%2A%2C%3D%3A%40", "/a!$&'()*,=:@"),
        ] {
            let n = normalize_path(raw, MergeSlashes).unwrap();
            assert_eq!(n.path, expected, "{raw}");
            assert!(n.changed, "{raw}");
            assert_eq!(n.request_path(), expected, "{raw}");
        }
        // `;` and `+` change meaning when decoded (path parameters, `+` as space): kept.
        assert_eq!(ok("/admin%3bx%2b", MergeSlashes), "/admin%3Bx%2B");
        assert_eq!(ok("/admin%3Bx%2B", MergeSlashes), "/admin%3Bx%2B");
    }

    #[test]
    fn lookalikes_of_dot_and_slash_are_refused() {
        for raw in [
            "/v1/models/%EF%BC%8E%EF%BC%8E%EF%BC%8Fadmin",
            "/v1/models/%ef%bc%8e%ef%bc%8e/admin",
            "/v1/models/%E2%80%A4%E2%80%A4/admin",
            "/v1/models/%E2%80%A5/admin",
            "/a%EF%B9%92",
            "/a%EF%BC%BC",
            "/a%E2%84%80",
            "/a%F0%9F%84%80",
        ] {
            assert_eq!(
                bad(raw, MergeSlashes),
                MalformedPath::LookalikeSeparator,
                "{raw}"
            );
        }
        // Other non-ASCII text stays allowed (escaped).
        assert_eq!(ok("/%E3%80%82x", MergeSlashes), "/%E3%80%82x");
    }

    #[test]
    fn double_encoding_is_refused() {
        for raw in [
            "/v1/models/%252e%252e/admin",
            "/a%252Fb",
            "/a%255cb",
            "/a%252E",
            "/a%25%32E",
            "/a%2541",
            "/v1/models/%25252e%25252e/admin",
            "/v1/models/%25C0%25AE%25C0%25AE/admin",
            "/a%253A",
        ] {
            assert_eq!(
                bad(raw, DecodeAndMergeSlashes),
                MalformedPath::DoubleEncoding,
                "{raw}"
            );
        }
    }

    #[test]
    fn invalid_utf8_escapes_are_refused() {
        // Overlong `.` and `/`, lone continuation byte, truncated sequence, surrogate.
        for raw in [
            "/%C0%AE%C0%AE/admin",
            "/%C0%AF",
            "/%80",
            "/%E2%82",
            "/%E2%82/x",
            "/%ED%A0%80",
        ] {
            assert_eq!(bad(raw, MergeSlashes), MalformedPath::InvalidUtf8, "{raw}");
        }
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        for raw in [
            "/v1/models/..;/admin",
            "/v1/models/.;x/a",
            "/v1/models/%2e%2e;/admin",
        ] {
            assert_eq!(
                bad(raw, MergeSlashes),
                MalformedPath::DotSegmentWithParameters,
                "{raw}"
            );
        }
        // Parameters on ordinary segments are kept and matched as part of the segment.
        assert_eq!(ok("/v1/models/x;v=1", MergeSlashes), "/v1/models/x;v=1");
    }

    #[test]
    fn changed_flag() {
        assert!(
            !normalize_path("/v1/models/x", MergeSlashes)
                .unwrap()
                .changed
        );
        assert!(
            normalize_path("/v1/models/%78", MergeSlashes)
                .unwrap()
                .changed
        );
        assert!(
            normalize_path("/v1/models/%3a", MergeSlashes)
                .unwrap()
                .changed
        );
        assert!(
            normalize_path("/v1/models/%3f", MergeSlashes)
                .unwrap()
                .changed
        );
        assert!(
            !normalize_path("/v1/models/%3F", MergeSlashes)
                .unwrap()
                .changed
        );
    }

    #[test]
    fn huge_hostile_paths_are_handled_in_one_pass() {
        let climb = format!("/v1/models{}", "/..".repeat(50_000));
        assert_eq!(ok(&climb, MergeSlashes), "/");
        let encoded = format!("/v1{}/admin", "/%2e%2E".repeat(50_000));
        assert_eq!(ok(&encoded, MergeSlashes), "/admin");
        let slashes = format!("/v1{}models/x", "/".repeat(100_000));
        assert_eq!(ok(&slashes, MergeSlashes), "/v1/models/x");
        let deep = "/a".repeat(50_000);
        assert_eq!(ok(&deep, Base), deep);
    }

    /// xorshift64*: deterministic, no clock, no dependency; runs the same on wasm32-wasip1.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }

    /// Random paths built from the pieces attacks are made of, plus arbitrary bytes.
    fn random_path(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "/", "//", ".", "..", "%2e", "%2E", "%2f", "%5c", "%25", "%00", "%", "%c0%ae",
            "%C3%A9", "a", "models", "v1", ";", "?", "#", "\\", "*", "%41", "%7e", "~", ":", "@",
            "=", " ",
        ];
        let mut path = String::new();
        if !rng.next().is_multiple_of(8) {
            path.push('/');
        }
        for _ in 0..(rng.next() % 12) {
            let pick = rng.next();
            if pick.is_multiple_of(10) {
                path.push(char::from((pick >> 8) as u8 & 0x7F));
            } else {
                path.push_str(PIECES[(pick >> 8) as usize % PIECES.len()]);
            }
        }
        path
    }

    #[test]
    fn property_idempotent_and_no_dot_segments() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let raw = random_path(&mut rng);
            for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
                let Ok(first) = normalize_path(&raw, mode) else {
                    continue;
                };
                accepted += 1;
                let again = normalize_path(&first.path, mode).unwrap();
                assert_eq!(
                    again.path, first.path,
                    "not idempotent on {raw:?} ({mode:?})"
                );
                assert!(!again.changed, "{raw:?}");
                assert!(first.path.starts_with('/'), "{raw:?}");
                assert!(
                    !first.path.split('/').any(|s| s == "." || s == ".."),
                    "dot segment left in {:?} from {raw:?}",
                    first.path
                );
                assert!(
                    !first.path.contains('\\') && !first.path.contains('\0'),
                    "{raw:?}"
                );
                if mode != Base {
                    assert!(!first.path.contains("//"), "{raw:?}");
                }
            }
        }
        // The generator must exercise the success path too, or the properties prove nothing.
        assert!(accepted > 5_000, "only {accepted} paths accepted");
    }

    #[test]
    fn property_never_panics_on_arbitrary_bytes() {
        let mut rng = Rng(42);
        for _ in 0..20_000 {
            let len = (rng.next() % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let raw = String::from_utf8_lossy(&bytes);
            for mode in [Base, MergeSlashes, DecodeAndMergeSlashes] {
                if let Ok(n) = normalize_path(&raw, mode) {
                    assert!(n.path.starts_with('/'));
                }
            }
        }
    }
}
