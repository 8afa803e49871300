//! Envoy's route `rate_limits`: each entry's actions append one `(key, value)` each, in order, to
//! one descriptor. If an action cannot produce its entry the whole entry yields no descriptor
//! (`request_headers` with `skip_if_absent` is skipped instead), and an entry whose actions
//! produced nothing yields none either (`router_ratelimit.cc`).

use crate::config::{
    ActionConfig, HeaderMatcherConfig, HitsAddendConfig, QueryParameterMatcherConfig,
    RateLimitConfig, RegexMatcherConfig, StringMatcherConfig,
};
use crate::matcher::Descriptor;
use plugin_kit::config::ConfigError;
use plugin_kit::headers::{HeaderMap, HeaderTexts};
use std::borrow::Cow;
use std::net::IpAddr;

/// What the actions read from a request.
pub trait RequestView {
    /// Every value of a request header (lower-case `name`, `:path` and `:method` included), in
    /// the order received; empty when absent.
    fn header_values(&self, name: &str) -> Vec<&str>;
    /// The first value of a request header, as [`RequestView::header_values`] would list it
    /// first; a view that can find it without listing them all says so.
    fn first_header_value(&self, name: &str) -> Option<&str> {
        self.header_values(name).first().copied()
    }
    /// The downstream client address Envoy trusts (proxy-wasm `source.address`).
    fn remote_ip(&self) -> Option<IpAddr>;
}

/// A header value as descriptor text. Envoy lets bytes that are not UTF-8 through (obs-text):
/// such a value is marked with a leading NUL (a byte Envoy never lets into a header value, so no
/// UTF-8 value starts with it), its invalid bytes become `\xNN` and its `\` become `\\`. So
/// distinct values stay distinct, UTF-8 values (all a configuration can name) are unchanged, and
/// nothing panics.
pub fn header_text(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let bytes = err.into_bytes();
            let mut text = String::with_capacity(bytes.len() * 2 + 1);
            text.push('\0');
            for chunk in bytes.utf8_chunks() {
                text.push_str(&chunk.valid().replace('\\', "\\\\"));
                for byte in chunk.invalid() {
                    text.push_str(&format!("\\x{byte:02x}"));
                }
            }
            text
        }
    }
}

/// The request's headers as the host gives them (every pair in the order received, each value of
/// a repeated header on its own), read by the actions in place: a value is checked for UTF-8
/// only when an action asks for its header (not the token a client sends along), and one that is
/// not UTF-8 is rendered by [`header_text`] once.
pub struct HeaderPairs<'a>(HeaderTexts<'a>);

impl<'a> HeaderPairs<'a> {
    pub fn new(pairs: &'a HeaderMap) -> Self {
        Self(HeaderTexts::new(Cow::Borrowed(pairs), |value| {
            header_text(value.to_vec())
        }))
    }

    /// Every value of `name` (lower-case), in order: a [`RequestView::header_values`].
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.0.values(name).collect()
    }

    /// The first value of `name` (lower-case): a [`RequestView::first_header_value`].
    pub fn first(&self, name: &str) -> Option<&str> {
        self.0.first(name)
    }
}

/// One `rate_limits` entry, compiled.
#[derive(Debug)]
pub struct RateLimitPolicy {
    actions: Vec<Action>,
    hits: Hits,
}

/// A descriptor as the configuration alone knows it: per entry its key, and its value when the
/// configuration fixes it (`None`: the request's value).
pub type DescriptorShape<'a> = Vec<(&'a str, Option<&'a str>)>;

/// Most `skip_if_absent` actions whose combinations [`RateLimitPolicy::descriptor_shapes`]
/// lists: 2^10 shapes, so a configuration check stays quick.
pub const MAX_OPTIONAL_ACTIONS: usize = 10;

impl RateLimitPolicy {
    /// Every shape of descriptor this entry can produce: first the one with all its actions,
    /// then each one without some of its `skip_if_absent` actions; never an empty one (it yields
    /// no descriptor). `None` when more than [`MAX_OPTIONAL_ACTIONS`] actions may be skipped.
    pub fn descriptor_shapes(&self) -> Option<Vec<DescriptorShape<'_>>> {
        let entries: Vec<_> = self.actions.iter().map(Action::shape).collect();
        let optional = entries
            .iter()
            .filter(|(_, _, skippable)| *skippable)
            .count();
        if optional > MAX_OPTIONAL_ACTIONS {
            return None;
        }
        let mut shapes = Vec::new();
        // Bit `b` of `omitted` set: the `b`-th skippable action is left out.
        for omitted in 0u32..(1 << optional) {
            let mut bit = 0;
            let mut shape = DescriptorShape::new();
            for &(key, value, skippable) in &entries {
                let kept = !skippable || omitted & (1 << bit) == 0;
                if skippable {
                    bit += 1;
                }
                if kept {
                    shape.push((key, value));
                }
            }
            if !shape.is_empty() {
                shapes.push(shape);
            }
        }
        Some(shapes)
    }
}

/// A request's weight: the tokens it takes from each limit its descriptor matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hits {
    Fixed(u32),
    /// `%REQ(name)%`: the first value of a request header.
    RequestHeader(String),
}

/// Envoy's bound on `hits_addend.number`; a weight read from a request above it is not
/// believed.
pub const MAX_HITS: u64 = 1_000_000_000;

/// A descriptor of the request and the weight it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDescriptor<'a> {
    pub entries: Descriptor<'a>,
    /// Tokens to take; 0 (from a request) is never admitted.
    pub hits: u32,
    /// The weight came from the request and was missing, not a number or above [`MAX_HITS`]:
    /// `hits` is 1.
    pub hits_invalid: bool,
}

fn compile_hits(path: &str, config: Option<&HitsAddendConfig>) -> Result<Hits, ConfigError> {
    let Some(config) = config else {
        return Ok(Hits::Fixed(1));
    };
    match (
        config.number,
        config.format.as_deref().filter(|f| !f.is_empty()),
    ) {
        (Some(number), None) => match u32::try_from(number) {
            Ok(n) if n >= 1 && u64::from(n) <= MAX_HITS => Ok(Hits::Fixed(n)),
            _ => Err(ConfigError::new(
                format!("{path}.number"),
                format!("must be between 1 and {MAX_HITS} (0 would refuse every request)"),
            )),
        },
        (None, Some(format)) => format
            .strip_prefix("%REQ(")
            .and_then(|rest| rest.strip_suffix(")%"))
            .filter(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
            })
            .map(|name| Hits::RequestHeader(name.to_ascii_lowercase()))
            .ok_or_else(|| {
                ConfigError::new(
                    format!("{path}.format"),
                    format!(
                        "'{format}' is not supported: only %REQ(header-name)% is \
                         (%DYNAMIC_METADATA(...)% and other substitutions are not read here)"
                    ),
                )
            }),
        _ => Err(ConfigError::new(
            path,
            "hits_addend must contain either a format or a number",
        )),
    }
}

impl Hits {
    fn of(&self, request: &dyn RequestView) -> (u32, bool) {
        match self {
            Hits::Fixed(n) => (*n, false),
            Hits::RequestHeader(name) => {
                // absl's `SimpleAtoi`, as Envoy reads it. A weight of 0 is kept: no bucket
                // admits it, as Envoy's filter refuses it (the parity test checks this).
                let parsed = request
                    .first_header_value(name)
                    .and_then(|v| v.trim_ascii().parse::<u64>().ok())
                    .filter(|n| *n <= MAX_HITS)
                    .and_then(|n| u32::try_from(n).ok());
                match parsed {
                    Some(n) => (n, false),
                    None => (1, true),
                }
            }
        }
    }
}

#[derive(Debug)]
enum Action {
    RequestHeader {
        header: String,
        key: String,
        skip_if_absent: bool,
    },
    QueryParameter {
        name: String,
        key: String,
        skip_if_absent: bool,
    },
    QueryParameterValueMatch {
        key: String,
        value: String,
        expect_match: bool,
        parameters: Vec<QueryParameterMatcher>,
    },
    Generic {
        key: String,
        value: String,
    },
    RemoteAddress,
    MaskedRemoteAddress {
        v4_len: u8,
        v6_len: u8,
    },
    HeaderValueMatch {
        key: String,
        value: String,
        expect_match: bool,
        headers: Vec<HeaderMatcher>,
    },
}

#[derive(Debug)]
struct HeaderMatcher {
    name: String,
    rule: MatchRule,
    invert: bool,
    missing_as_empty: bool,
}

#[derive(Debug)]
struct QueryParameterMatcher {
    name: String,
    /// `None`: presence is enough.
    rule: Option<MatchRule>,
}

#[derive(Debug)]
enum MatchRule {
    Present(bool),
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    /// Anchored at both ends: RE2's full match, as Envoy's `safe_regex`.
    Regex(regex_lite::Regex),
    /// `start <= value < end`, the value read as a decimal integer.
    Range(i64, i64),
}

/// Longest `safe_regex` pattern accepted, and the compiled-size bound: a pattern is compiled
/// once per configuration, but its size bounds the matching cost of every request.
const MAX_REGEX_LEN: usize = 1024;
const MAX_REGEX_PROGRAM_BYTES: usize = 64 * 1024;

fn compile_regex(path: &str, config: &RegexMatcherConfig) -> Result<MatchRule, ConfigError> {
    let field = format!("{path}.regex");
    if config.regex.len() > MAX_REGEX_LEN {
        return Err(ConfigError::new(
            field,
            format!("is longer than {MAX_REGEX_LEN} characters"),
        ));
    }
    regex_lite::RegexBuilder::new(&format!("^(?:{})$", config.regex))
        .size_limit(MAX_REGEX_PROGRAM_BYTES)
        .nest_limit(64)
        .build()
        .map(MatchRule::Regex)
        .map_err(|err| ConfigError::new(field, format!("is not a supported regex: {err}")))
}

pub fn compile_policy(
    path: &str,
    config: &RateLimitConfig,
) -> Result<RateLimitPolicy, ConfigError> {
    if config.actions.is_empty() {
        return Err(ConfigError::new(
            format!("{path}.actions"),
            "needs at least one action",
        ));
    }
    let actions = config
        .actions
        .iter()
        .enumerate()
        .map(|(i, action)| compile_action(&format!("{path}.actions[{i}]"), action))
        .collect::<Result<_, _>>()?;
    let hits = compile_hits(&format!("{path}.hits_addend"), config.hits_addend.as_ref())?;
    Ok(RateLimitPolicy { actions, hits })
}

fn non_empty(field: String, value: &str) -> Result<String, ConfigError> {
    if value.is_empty() {
        Err(ConfigError::new(field, "must not be empty"))
    } else {
        Ok(value.to_string())
    }
}

fn compile_action(path: &str, action: &ActionConfig) -> Result<Action, ConfigError> {
    Ok(match action {
        ActionConfig::RequestHeaders(c) => Action::RequestHeader {
            // Header names are case-insensitive; the host is asked in lower case.
            header: non_empty(
                format!("{path}.request_headers.header_name"),
                &c.header_name,
            )?
            .to_ascii_lowercase(),
            key: non_empty(
                format!("{path}.request_headers.descriptor_key"),
                &c.descriptor_key,
            )?,
            skip_if_absent: c.skip_if_absent,
        },
        ActionConfig::QueryParameters(c) => Action::QueryParameter {
            name: non_empty(
                format!("{path}.query_parameters.query_parameter_name"),
                &c.query_parameter_name,
            )?,
            key: non_empty(
                format!("{path}.query_parameters.descriptor_key"),
                &c.descriptor_key,
            )?,
            skip_if_absent: c.skip_if_absent,
        },
        ActionConfig::QueryParameterValueMatch(c) => {
            let path = format!("{path}.query_parameter_value_match");
            Action::QueryParameterValueMatch {
                key: c
                    .descriptor_key
                    .clone()
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| "query_match".to_string()),
                value: non_empty(format!("{path}.descriptor_value"), &c.descriptor_value)?,
                expect_match: c.expect_match,
                parameters: c
                    .query_parameters
                    .iter()
                    .enumerate()
                    .map(|(i, m)| {
                        compile_query_matcher(&format!("{path}.query_parameters[{i}]"), m)
                    })
                    .collect::<Result<_, _>>()?,
            }
        }
        ActionConfig::GenericKey(c) => Action::Generic {
            key: c
                .descriptor_key
                .clone()
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "generic_key".to_string()),
            value: non_empty(
                format!("{path}.generic_key.descriptor_value"),
                &c.descriptor_value,
            )?,
        },
        ActionConfig::RemoteAddress(_) => Action::RemoteAddress,
        ActionConfig::MaskedRemoteAddress(c) => {
            let v4_len = c.v4_prefix_mask_len.unwrap_or(32);
            let v6_len = c.v6_prefix_mask_len.unwrap_or(128);
            if v4_len > 32 {
                return Err(ConfigError::new(
                    format!("{path}.masked_remote_address.v4_prefix_mask_len"),
                    "must be at most 32",
                ));
            }
            if v6_len > 128 {
                return Err(ConfigError::new(
                    format!("{path}.masked_remote_address.v6_prefix_mask_len"),
                    "must be at most 128",
                ));
            }
            Action::MaskedRemoteAddress { v4_len, v6_len }
        }
        ActionConfig::HeaderValueMatch(c) => Action::HeaderValueMatch {
            key: c
                .descriptor_key
                .clone()
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "header_match".to_string()),
            value: non_empty(
                format!("{path}.header_value_match.descriptor_value"),
                &c.descriptor_value,
            )?,
            expect_match: c.expect_match,
            headers: c
                .headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    compile_header_matcher(&format!("{path}.header_value_match.headers[{i}]"), h)
                })
                .collect::<Result<_, _>>()?,
        },
    })
}

fn compile_header_matcher(
    path: &str,
    c: &HeaderMatcherConfig,
) -> Result<HeaderMatcher, ConfigError> {
    let mut rules = Vec::new();
    if let Some(v) = &c.exact_match {
        rules.push(MatchRule::Exact(v.clone(), false));
    }
    if let Some(v) = &c.prefix_match {
        rules.push(MatchRule::Prefix(v.clone(), false));
    }
    if let Some(v) = &c.suffix_match {
        rules.push(MatchRule::Suffix(v.clone(), false));
    }
    if let Some(v) = &c.contains_match {
        rules.push(MatchRule::Contains(v.clone(), false));
    }
    if let Some(v) = c.present_match {
        rules.push(MatchRule::Present(v));
    }
    if let Some(m) = &c.safe_regex_match {
        rules.push(compile_regex(&format!("{path}.safe_regex_match"), m)?);
    }
    if let Some(range) = &c.range_match {
        if range.start >= range.end {
            return Err(ConfigError::new(
                format!("{path}.range_match"),
                "start must be below end",
            ));
        }
        rules.push(MatchRule::Range(range.start, range.end));
    }
    if let Some(m) = &c.string_match {
        rules.push(compile_string_matcher(&format!("{path}.string_match"), m)?);
    }
    if rules.len() > 1 {
        return Err(ConfigError::new(
            path,
            "only one match specifier is allowed",
        ));
    }
    Ok(HeaderMatcher {
        name: non_empty(format!("{path}.name"), &c.name)?.to_ascii_lowercase(),
        // Envoy: a matcher without a specifier checks presence.
        rule: rules.pop().unwrap_or(MatchRule::Present(true)),
        invert: c.invert_match,
        missing_as_empty: c.treat_missing_header_as_empty,
    })
}

fn compile_query_matcher(
    path: &str,
    c: &QueryParameterMatcherConfig,
) -> Result<QueryParameterMatcher, ConfigError> {
    let rule = match (&c.string_match, c.present_match) {
        (Some(m), None) => Some(compile_string_matcher(&format!("{path}.string_match"), m)?),
        (None, Some(true)) => None,
        (None, Some(false)) => {
            return Err(ConfigError::new(
                format!("{path}.present_match"),
                "only `true` is meaningful: a matcher needs the parameter to be present",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                path,
                "needs string_match or present_match",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                path,
                "only one of string_match and present_match is allowed",
            ))
        }
    };
    Ok(QueryParameterMatcher {
        name: non_empty(format!("{path}.name"), &c.name)?,
        rule,
    })
}

fn compile_string_matcher(path: &str, c: &StringMatcherConfig) -> Result<MatchRule, ConfigError> {
    if let Some(regex) = &c.safe_regex {
        if c.exact.is_some() || c.prefix.is_some() || c.suffix.is_some() || c.contains.is_some() {
            return Err(ConfigError::new(
                path,
                "needs exactly one of exact, prefix, suffix, contains, safe_regex",
            ));
        }
        return compile_regex(&format!("{path}.safe_regex"), regex);
    }
    let ic = c.ignore_case;
    // Envoy's string matcher folds ASCII only (absl's `EqualsIgnoreCase` and friends).
    let fold = |s: &String| {
        if ic {
            s.to_ascii_lowercase()
        } else {
            s.clone()
        }
    };
    let mut rules: Vec<MatchRule> = [
        c.exact.as_ref().map(|v| MatchRule::Exact(fold(v), ic)),
        c.prefix.as_ref().map(|v| MatchRule::Prefix(fold(v), ic)),
        c.suffix.as_ref().map(|v| MatchRule::Suffix(fold(v), ic)),
        c.contains
            .as_ref()
            .map(|v| MatchRule::Contains(fold(v), ic)),
    ]
    .into_iter()
    .flatten()
    .collect();
    match (rules.pop(), rules.is_empty()) {
        (Some(rule), true) => Ok(rule),
        _ => Err(ConfigError::new(
            path,
            "needs exactly one of exact, prefix, suffix, contains, safe_regex",
        )),
    }
}

impl MatchRule {
    fn matches(&self, value: &str) -> bool {
        let folded = |ic: bool| {
            if ic {
                std::borrow::Cow::Owned(value.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(value)
            }
        };
        match self {
            MatchRule::Present(expected) => *expected,
            MatchRule::Exact(p, ic) => folded(*ic) == *p,
            MatchRule::Prefix(p, ic) => folded(*ic).starts_with(p.as_str()),
            MatchRule::Suffix(p, ic) => folded(*ic).ends_with(p.as_str()),
            MatchRule::Contains(p, ic) => folded(*ic).contains(p.as_str()),
            MatchRule::Regex(regex) => regex.is_match(value),
            // absl's `SimpleAtoi`, as Envoy: surrounding ASCII whitespace and a sign allowed.
            MatchRule::Range(start, end) => value
                .trim_ascii()
                .parse::<i64>()
                .is_ok_and(|v| (*start..*end).contains(&v)),
        }
    }
}

impl HeaderMatcher {
    /// Envoy's `HeaderUtility::matchHeaders` for one matcher. A header sent several times
    /// matches when any one of its values does (Envoy 1.40, checked by the parity test), so a
    /// second value cannot hide behind the first; `invert_match` inverts that.
    fn matches(&self, request: &dyn RequestView) -> bool {
        let values = request.header_values(&self.name);
        if values.is_empty() {
            if self.missing_as_empty {
                return self.rule.matches("") != self.invert;
            }
            // A missing header matches only `present_match: false`, or `present_match: true`
            // inverted.
            return matches!(self.rule, MatchRule::Present(present) if present == self.invert);
        }
        values.iter().any(|value| self.rule.matches(value)) != self.invert
    }
}

impl Action {
    /// The entry's key, its value when the configuration fixes it, and whether the action may
    /// be skipped (`skip_if_absent`) rather than drop the descriptor.
    fn shape(&self) -> (&str, Option<&str>, bool) {
        match self {
            Action::RequestHeader {
                key,
                skip_if_absent,
                ..
            }
            | Action::QueryParameter {
                key,
                skip_if_absent,
                ..
            } => (key, None, *skip_if_absent),
            Action::Generic { key, value }
            | Action::HeaderValueMatch { key, value, .. }
            | Action::QueryParameterValueMatch { key, value, .. } => (key, Some(value), false),
            Action::RemoteAddress => ("remote_address", None, false),
            Action::MaskedRemoteAddress { .. } => ("masked_remote_address", None, false),
        }
    }

    /// Appends this action's entry; `false` means the `rate_limits` entry yields no descriptor.
    fn populate<'a>(
        &'a self,
        request: &'a dyn RequestView,
        descriptor: &mut Descriptor<'a>,
    ) -> bool {
        match self {
            Action::RequestHeader {
                header,
                key,
                skip_if_absent,
            } => match request.first_header_value(header) {
                // Envoy takes the first value of a repeated header here.
                Some(value) => {
                    descriptor.push((key, Cow::Borrowed(value)));
                    true
                }
                None => *skip_if_absent,
            },
            Action::QueryParameter {
                name,
                key,
                skip_if_absent,
            } => match first_query_value(request, name) {
                Some(value) => {
                    descriptor.push((key, Cow::Owned(value)));
                    true
                }
                None => *skip_if_absent,
            },
            Action::QueryParameterValueMatch {
                key,
                value,
                expect_match,
                parameters,
            } => {
                let all = parameters.iter().all(|m| {
                    first_query_value(request, &m.name)
                        .is_some_and(|v| m.rule.as_ref().is_none_or(|rule| rule.matches(&v)))
                });
                if all == *expect_match {
                    descriptor.push((key, Cow::Borrowed(value)));
                    true
                } else {
                    false
                }
            }
            Action::Generic { key, value } => {
                descriptor.push((key, Cow::Borrowed(value)));
                true
            }
            Action::RemoteAddress => match request.remote_ip() {
                Some(ip) => {
                    descriptor.push(("remote_address", Cow::Owned(ip.to_string())));
                    true
                }
                None => false,
            },
            Action::MaskedRemoteAddress { v4_len, v6_len } => match request.remote_ip() {
                Some(ip) => {
                    descriptor.push((
                        "masked_remote_address",
                        Cow::Owned(mask(ip, *v4_len, *v6_len)),
                    ));
                    true
                }
                None => false,
            },
            Action::HeaderValueMatch {
                key,
                value,
                expect_match,
                headers,
            } => {
                if headers.iter().all(|h| h.matches(request)) == *expect_match {
                    descriptor.push((key, Cow::Borrowed(value)));
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// Envoy's `QueryParamsMulti::parseAndDecodeQueryString(path).getFirstValue(name)`: the query
/// is what follows the first `?` of `:path`, split at `&` and at each pair's first `=`; names and
/// values are percent-decoded (`+` stays `+`), so `%61pi_key` is `api_key`.
fn first_query_value(request: &dyn RequestView, name: &str) -> Option<String> {
    let path = request.first_header_value(":path")?;
    let (_, query) = path.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(raw_name) == name.as_bytes())
            .then(|| header_text(percent_decode(raw_value)))
    })
}

/// Envoy's `PercentEncoding::decode`: `%XX` with two hex digits becomes the byte; anything else,
/// a broken `%` included, stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|&b| (b as char).to_digit(16));
        match (byte, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// `a.b.c.0/24`, as Envoy's `masked_remote_address`.
fn mask(ip: IpAddr, v4_len: u8, v6_len: u8) -> String {
    match ip {
        IpAddr::V4(v4) => {
            // A shift by the full width (prefix 0) is `None`: everything masked.
            let masked = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(v4_len)).unwrap_or(0);
            format!("{}/{v4_len}", std::net::Ipv4Addr::from(masked))
        }
        IpAddr::V6(v6) => {
            let masked =
                u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(v6_len)).unwrap_or(0);
            format!("{}/{v6_len}", std::net::Ipv6Addr::from(masked))
        }
    }
}

/// The descriptors of a request, one per `rate_limits` entry that produced one.
pub fn build_descriptors<'a>(
    policies: &'a [RateLimitPolicy],
    request: &'a dyn RequestView,
) -> Vec<RequestDescriptor<'a>> {
    policies
        .iter()
        .filter_map(|policy| {
            let mut entries = Descriptor::new();
            let complete = policy
                .actions
                .iter()
                .all(|action| action.populate(request, &mut entries));
            if !complete || entries.is_empty() {
                return None;
            }
            let (hits, hits_invalid) = policy.hits.of(request);
            Some(RequestDescriptor {
                entries,
                hits,
                hits_invalid,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use plugin_kit::config::parse;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    struct FakeRequest {
        headers: Vec<(&'static str, &'static str)>,
        ip: Option<IpAddr>,
    }

    impl RequestView for FakeRequest {
        fn header_values(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| *v)
                .collect()
        }
        fn remote_ip(&self) -> Option<IpAddr> {
            self.ip
        }
    }

    fn req(headers: &[(&'static str, &'static str)]) -> FakeRequest {
        FakeRequest {
            headers: headers.to_vec(),
            ip: None,
        }
    }

    /// The entries only, owned; the weights have their own test.
    fn build_descriptors(
        p: &[RateLimitPolicy],
        request: &dyn RequestView,
    ) -> Vec<Vec<(String, String)>> {
        super::build_descriptors(p, request)
            .into_iter()
            .map(|d| {
                d.entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.into_owned()))
                    .collect()
            })
            .collect()
    }

    /// The entries compiled as `compile` compiles them, without a tree: `compile` would refuse
    /// entries that reach no limit, and these tests are about the actions only.
    fn policies(rate_limits: &str) -> Vec<RateLimitPolicy> {
        let config: Config =
            parse(format!(r#"{{"domain":"d","rate_limits":{rate_limits}}}"#).as_bytes()).unwrap();
        config
            .rate_limits
            .iter()
            .enumerate()
            .map(|(i, entry)| compile_policy(&format!("rate_limits[{i}]"), entry).unwrap())
            .collect()
    }

    fn compile_err(rate_limits: &str) -> ConfigError {
        let text = format!(r#"{{"domain":"d","rate_limits":{rate_limits}}}"#);
        parse::<Config>(text.as_bytes())
            .and_then(crate::compiled::compile)
            .unwrap_err()
    }

    fn d(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const WALKTHROUGH: &str = r#"[
        {"actions":[{"request_headers":{"header_name":":path","descriptor_key":"path"}},
                    {"request_headers":{"header_name":"x-api-key","descriptor_key":"x-api-key"}}]},
        {"actions":[{"request_headers":{"header_name":":path","descriptor_key":"path"}}]}]"#;

    #[test]
    fn walkthrough_actions_with_and_without_api_key() {
        let p = policies(WALKTHROUGH);
        assert_eq!(
            build_descriptors(&p, &req(&[(":path", "/p"), ("x-api-key", "k")])),
            vec![
                d(&[("path", "/p"), ("x-api-key", "k")]),
                d(&[("path", "/p")])
            ]
        );
        // A missing header drops its whole entry, not just the entry's action.
        assert_eq!(
            build_descriptors(&p, &req(&[(":path", "/p")])),
            vec![d(&[("path", "/p")])]
        );
    }

    #[test]
    fn skip_if_absent_skips_the_action_only_and_empty_descriptors_are_dropped() {
        let p = policies(
            r#"[{"actions":[{"request_headers":{"header_name":"X-A","descriptor_key":"a","skip_if_absent":true}},
                           {"request_headers":{"header_name":"x-b","descriptor_key":"b"}}]},
                {"actions":[{"request_headers":{"header_name":"x-a","descriptor_key":"a","skip_if_absent":true}}]}]"#,
        );
        assert_eq!(
            build_descriptors(&p, &req(&[("x-b", "2")])),
            vec![d(&[("b", "2")])]
        );
        assert_eq!(
            build_descriptors(&p, &req(&[("x-a", "1"), ("x-b", "2")])),
            vec![d(&[("a", "1"), ("b", "2")]), d(&[("a", "1")])]
        );
        assert!(build_descriptors(&p, &req(&[])).is_empty());
        // A present but empty header still yields its entry, as Envoy.
        assert_eq!(
            build_descriptors(&p, &req(&[("x-a", ""), ("x-b", "")])),
            vec![d(&[("a", ""), ("b", "")]), d(&[("a", "")])]
        );
    }

    #[test]
    fn descriptor_shapes_list_every_form_without_skippable_actions() {
        let p = policies(
            r#"[{"actions":[{"request_headers":{"header_name":"x-a","descriptor_key":"a","skip_if_absent":true}},
                           {"generic_key":{"descriptor_value":"v"}},
                           {"query_parameters":{"query_parameter_name":"q","descriptor_key":"q","skip_if_absent":true}},
                           {"remote_address":{}},
                           {"header_value_match":{"descriptor_value":"h","headers":[{"name":"x"}]}},
                           {"query_parameter_value_match":{"descriptor_key":"m","descriptor_value":"w","query_parameters":[{"name":"q","present_match":true}]}},
                           {"masked_remote_address":{}}]},
                {"actions":[{"request_headers":{"header_name":"x-a","descriptor_key":"a","skip_if_absent":true}}]}]"#,
        );
        let tail = [
            ("remote_address", None),
            ("header_match", Some("h")),
            ("m", Some("w")),
            ("masked_remote_address", None),
        ];
        let shape = |head: &[(&'static str, Option<&'static str>)]| {
            let mut shape = head.to_vec();
            shape.extend(tail);
            shape
        };
        let g = ("generic_key", Some("v"));
        assert_eq!(
            p[0].descriptor_shapes().unwrap(),
            [
                shape(&[("a", None), g, ("q", None)]),
                shape(&[g, ("q", None)]),
                shape(&[("a", None), g]),
                shape(&[g]),
            ]
        );
        // Leaving out the only action would give an empty descriptor, which is never produced.
        assert_eq!(p[1].descriptor_shapes().unwrap(), [vec![("a", None)]]);
        let many = (0..=MAX_OPTIONAL_ACTIONS)
            .map(|i| format!(r#"{{"request_headers":{{"header_name":"h{i}","descriptor_key":"k","skip_if_absent":true}}}}"#))
            .collect::<Vec<_>>();
        let p = policies(&format!(r#"[{{"actions":[{}]}}]"#, many.join(",")));
        assert_eq!(p[0].descriptor_shapes(), None);
        let p = policies(&format!(r#"[{{"actions":[{}]}}]"#, many[1..].join(",")));
        assert_eq!(
            p[0].descriptor_shapes().unwrap().len(),
            (1 << MAX_OPTIONAL_ACTIONS) - 1
        );
    }

    #[test]
    fn generic_key_with_and_without_descriptor_key() {
        let p = policies(
            r#"[{"actions":[{"generic_key":{"descriptor_value":"v"}}]},
                {"actions":[{"generic_key":{"descriptor_value":"w","descriptor_key":"k"}}]}]"#,
        );
        assert_eq!(
            build_descriptors(&p, &req(&[])),
            vec![d(&[("generic_key", "v")]), d(&[("k", "w")])]
        );
    }

    #[test]
    fn remote_address_and_masked_remote_address() {
        let p = policies(
            r#"[{"actions":[{"remote_address":{}}]},
                {"actions":[{"masked_remote_address":{"v4_prefix_mask_len":24,"v6_prefix_mask_len":64}}]},
                {"actions":[{"masked_remote_address":{}}]}]"#,
        );
        let mut r = req(&[]);
        r.ip = Some("10.1.2.3".parse().unwrap());
        assert_eq!(
            build_descriptors(&p, &r),
            vec![
                d(&[("remote_address", "10.1.2.3")]),
                d(&[("masked_remote_address", "10.1.2.0/24")]),
                d(&[("masked_remote_address", "10.1.2.3/32")]),
            ]
        );
        r.ip = Some("2001:db8::1:2".parse().unwrap());
        assert_eq!(
            build_descriptors(&p, &r)[1],
            d(&[("masked_remote_address", "2001:db8::/64")])
        );
        assert_eq!(mask("10.1.2.3".parse().unwrap(), 0, 0), "0.0.0.0/0");
        // No usable address (for example a pipe): no descriptor from those entries.
        assert!(build_descriptors(&p, &req(&[])).is_empty());
    }

    #[test]
    fn ignore_case_folds_ascii_only_as_envoy() {
        let p = policies(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"hit","headers":[
                {"name":"x-team","string_match":{"exact":"Équipe-A","ignore_case":true}}]}}]}]"#,
        );
        let hit =
            |value: &'static str| !build_descriptors(&p, &req(&[("x-team", value)])).is_empty();
        assert!(hit("Équipe-A") && hit("Équipe-a") && hit("ÉQUIPE-A"));
        // Unicode folding would take these too; absl's EqualsIgnoreCase does not.
        assert!(!hit("équipe-a"));
        assert!(!hit("ÉQUİPE-A"));
    }

    #[test]
    fn header_value_match_as_envoy() {
        let p = policies(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"post","headers":[{"name":":method","exact_match":"POST"}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"not-admin","expect_match":false,"descriptor_key":"k",
                   "headers":[{"name":":path","string_match":{"prefix":"/ADMIN","ignore_case":true}}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"no-debug","headers":[{"name":"x-debug","present_match":false}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"has-token","headers":[{"name":"x-token"}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"inv","headers":[{"name":"x-token","present_match":true,"invert_match":true}]}}]}]"#,
        );
        assert_eq!(
            build_descriptors(&p, &req(&[(":method", "POST"), (":path", "/admin/x")])),
            vec![
                d(&[("header_match", "post")]),
                d(&[("header_match", "no-debug")]),
                d(&[("header_match", "inv")]),
            ]
        );
        assert_eq!(
            build_descriptors(
                &p,
                &req(&[
                    (":method", "GET"),
                    (":path", "/v1"),
                    ("x-debug", "1"),
                    ("x-token", "t")
                ])
            ),
            vec![
                d(&[("k", "not-admin")]),
                d(&[("header_match", "has-token")])
            ]
        );
    }

    #[test]
    fn header_matcher_missing_header_rules() {
        let p = policies(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"a","headers":[{"name":"x","exact_match":"v","invert_match":true}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"b","headers":[{"name":"x","suffix_match":"","treat_missing_header_as_empty":true}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"c","headers":[{"name":"x","contains_match":"mid"}]}}]}]"#,
        );
        // Missing: an inverted exact match does not match (Envoy), the empty-suffix one does.
        assert_eq!(
            build_descriptors(&p, &req(&[])),
            vec![d(&[("header_match", "b")])]
        );
        assert_eq!(
            build_descriptors(&p, &req(&[("x", "amidb")])),
            vec![
                d(&[("header_match", "a")]),
                d(&[("header_match", "b")]),
                d(&[("header_match", "c")])
            ]
        );
    }

    #[test]
    fn header_bytes_that_are_not_utf8_are_escaped_not_fatal() {
        assert_eq!(header_text(b"plain".to_vec()), "plain");
        assert_eq!(header_text(vec![b'k', 0xff, 0xfe, b'!']), "\0k\\xff\\xfe!");
        assert_eq!(header_text("é".as_bytes().to_vec()), "é");
        assert_ne!(header_text(vec![0xff]), header_text(vec![0xfe]));
    }

    #[test]
    fn header_pairs_read_utf8_values_in_place_and_render_the_others() {
        let host = HeaderMap::from_pairs([
            ("x-api-key", b"k1".to_vec()),
            ("x-api-key", vec![b'k', 0xff]),
            (":path", "/é".as_bytes().to_vec()),
        ]);
        let pairs = HeaderPairs::new(&host);
        assert_eq!(pairs.values("x-api-key"), ["k1", "\0k\\xff"]);
        assert_eq!(pairs.values("x-api-key")[1], header_text(vec![b'k', 0xff]));
        assert_eq!(pairs.values(":path"), ["/é"]);
        assert!(pairs.values("x-other").is_empty());
        assert_eq!(pairs.first("x-api-key"), Some("k1"));
        assert_eq!(pairs.first(":path"), Some("/é"));
        assert_eq!(pairs.first("x-other"), None);
        let repeated_bad_first = HeaderMap::from_pairs([
            ("x-api-key", vec![b'k', 0xff]),
            ("x-api-key", b"k1".to_vec()),
        ]);
        let pairs = HeaderPairs::new(&repeated_bad_first);
        assert_eq!(pairs.first("x-api-key"), Some("\0k\\xff"));
        assert_eq!(
            pairs.first("x-api-key"),
            pairs.values("x-api-key").first().copied()
        );
    }

    /// Fuzz finding (ratelimit_descriptors): the doc promises distinct values stay distinct, but
    /// a value that spells `\x82` and the byte 0x82 become the same descriptor text, so those two
    /// clients share a bucket. Fails until header_text is injective.
    #[test]
    fn escaped_byte_and_its_literal_spelling_stay_distinct() {
        assert_ne!(
            header_text(b"k\\x82".to_vec()),
            header_text(vec![b'k', 0x82])
        );
        // Inside a marked value, a literal `\x82` is not the byte 0x82 either.
        assert_ne!(
            header_text(b"\\x82\xff".to_vec()),
            header_text(b"\x82\xff".to_vec())
        );
        assert_eq!(header_text(b"k\\x82".to_vec()), "k\\x82");
    }

    #[test]
    fn unsupported_and_broken_actions_are_configuration_errors() {
        let err = compile_err(r#"[{"actions":[{"destination_cluster":{}}]}]"#);
        assert_eq!(err.field, "rate_limits[0].actions[0]");
        assert!(
            err.reason.contains("unknown variant `destination_cluster`"),
            "{}",
            err.reason
        );
        let err = compile_err(r#"[{"actions":[]}]"#);
        assert_eq!(err.field, "rate_limits[0].actions");
        let err = compile_err(
            r#"[{"actions":[{"request_headers":{"header_name":"","descriptor_key":"k"}}]}]"#,
        );
        assert_eq!(
            err.field,
            "rate_limits[0].actions[0].request_headers.header_name"
        );
        let err = compile_err(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"v","headers":[{"name":"x","safe_regex_match":{"regex":"(a"}}]}}]}]"#,
        );
        assert_eq!(
            err.field,
            "rate_limits[0].actions[0].header_value_match.headers[0].safe_regex_match.regex"
        );
        let long = format!(
            r#"[{{"actions":[{{"header_value_match":{{"descriptor_value":"v","headers":[{{"name":"x","string_match":{{"safe_regex":{{"regex":"{}"}}}}}}]}}}}]}}]"#,
            "a".repeat(2000)
        );
        assert!(compile_err(&long).reason.contains("longer than"));
        // Small pattern, huge program: refused by the compiled-size bound.
        let err = compile_err(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"v","headers":[{"name":"x","safe_regex_match":{"regex":"(((a{100}){100}){100})"}}]}}]}]"#,
        );
        assert!(
            err.reason.contains("not a supported regex"),
            "{}",
            err.reason
        );
        let err = compile_err(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"v","headers":[{"name":"x","range_match":{"start":5,"end":5}}]}}]}]"#,
        );
        assert!(err.field.ends_with("range_match"), "{}", err.field);
        let err = compile_err(
            r#"[{"actions":[{"query_parameter_value_match":{"descriptor_value":"v","query_parameters":[{"name":"q"}]}}]}]"#,
        );
        assert_eq!(
            err.field,
            "rate_limits[0].actions[0].query_parameter_value_match.query_parameters[0]"
        );
        let err = compile_err(
            r#"[{"actions":[{"query_parameters":{"query_parameter_name":"","descriptor_key":"k"}}]}]"#,
        );
        assert!(err.field.ends_with("query_parameter_name"), "{}", err.field);
        let err = compile_err(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"v","headers":[{"name":"x","exact_match":"a","prefix_match":"b"}]}}]}]"#,
        );
        assert_eq!(
            err.field,
            "rate_limits[0].actions[0].header_value_match.headers[0]"
        );
        let err =
            compile_err(r#"[{"actions":[{"masked_remote_address":{"v4_prefix_mask_len":33}}]}]"#);
        assert!(err.field.ends_with("v4_prefix_mask_len"), "{}", err.field);
        let err = compile_err(
            r#"[{"actions":[{"generic_key":{"descriptor_value":"v"},"remote_address":{}}]}]"#,
        );
        assert_eq!(err.field, "rate_limits[0].actions[0]");
        let err = compile_err(
            r#"[{"actions":[{"request_headers":{"header_name":"a","descriptor_key":"k"}}],"stage":1}]"#,
        );
        assert!(
            err.reason.contains("unknown field `stage`"),
            "{}",
            err.reason
        );
    }

    /// A client sending `x-plan` twice: `header_value_match` matches when any value does, as
    /// Envoy's matcher; `request_headers` takes the first value, as Envoy's action.
    #[test]
    fn repeated_headers_match_on_any_value_as_envoy() {
        let p = policies(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"free","headers":[{"name":"x-plan","exact_match":"free"}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"joined","headers":[{"name":"x-plan","exact_match":"premium,free"}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"not-free","headers":[{"name":"x-plan","exact_match":"free","invert_match":true}]}}]},
                {"actions":[{"request_headers":{"header_name":"x-plan","descriptor_key":"plan"}}]}]"#,
        );
        let values = |headers: &[(&'static str, &'static str)]| {
            build_descriptors(&p, &req(headers))
                .into_iter()
                .map(|d| d[0].1.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            values(&[("x-plan", "premium"), ("x-plan", "free")]),
            ["free", "premium"]
        );
        assert_eq!(
            values(&[("x-plan", "free"), ("x-plan", "premium")]),
            ["free", "free"]
        );
        // One header line with a comma is one value, not two.
        assert_eq!(
            values(&[("x-plan", "premium,free")]),
            ["joined", "not-free", "premium,free"]
        );
        assert_eq!(values(&[("x-plan", "premium")]), ["not-free", "premium"]);
    }

    #[test]
    fn regex_is_a_full_match_and_range_reads_an_integer() {
        let p = policies(
            r#"[{"actions":[{"header_value_match":{"descriptor_value":"r","headers":[{"name":"x-model","string_match":{"safe_regex":{"regex":"bert-[a-z]+","google_re2":{}}}}]}}]},
                {"actions":[{"header_value_match":{"descriptor_value":"big","headers":[{"name":"x-batch","range_match":{"start":32,"end":1000}}]}}]}]"#,
        );
        let keys = |headers: &[(&'static str, &'static str)]| {
            build_descriptors(&p, &req(headers))
                .into_iter()
                .map(|d| d[0].1.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(&[("x-model", "bert-emotion")]), ["r"]);
        assert!(keys(&[("x-model", "my-bert-emotion")]).is_empty());
        assert!(keys(&[("x-model", "bert-emotion-v2")]).is_empty());
        assert_eq!(keys(&[("x-batch", "32")]), ["big"]);
        assert_eq!(keys(&[("x-batch", " +64 ")]), ["big"]);
        assert!(keys(&[("x-batch", "31")]).is_empty());
        assert!(keys(&[("x-batch", "1000")]).is_empty());
        assert!(keys(&[("x-batch", "64abc")]).is_empty());
        assert_eq!(keys(&[("x-batch", "64abc"), ("x-batch", "65")]), ["big"]);
    }

    #[test]
    fn query_parameters_are_decoded_and_the_first_value_counts() {
        let p = policies(
            r#"[{"actions":[{"query_parameters":{"query_parameter_name":"api_key","descriptor_key":"key"}}]},
                {"actions":[{"query_parameter_value_match":{"descriptor_value":"batch","query_parameters":[
                    {"name":"mode","string_match":{"exact":"batch"}},{"name":"tenant","present_match":true}]}}]}]"#,
        );
        let with_path = |path: &'static str| build_descriptors(&p, &req(&[(":path", path)]));
        assert_eq!(
            with_path("/v1/predict?x=1&api_key=abc&api_key=def"),
            vec![d(&[("key", "abc")])]
        );
        // An encoded name is the same parameter: a client cannot hide its key by encoding it.
        assert_eq!(
            with_path("/v1/predict?%61pi_key=a%2Bb+c"),
            vec![d(&[("key", "a+b+c")])]
        );
        assert_eq!(with_path("/v1/predict?api_key"), vec![d(&[("key", "")])]);
        assert!(with_path("/v1/predict?api_keyx=1&xapi_key=2").is_empty());
        assert!(with_path("/v1/predict").is_empty());
        assert_eq!(
            with_path("/p?mode=batch&tenant"),
            vec![d(&[("query_match", "batch")])]
        );
        assert!(with_path("/p?mode=batch").is_empty());
        assert!(with_path("/p?mode=online&tenant=a").is_empty());
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
        assert_eq!(percent_decode("%e9"), [0xe9]);
    }

    #[test]
    fn hits_addend_number_or_request_header_and_bad_weights_count_as_one() {
        let p = policies(
            r#"[{"actions":[{"generic_key":{"descriptor_value":"batch"}}],"hits_addend":{"number":64}},
                {"actions":[{"generic_key":{"descriptor_value":"llm"}}],"hits_addend":{"format":"%REQ(X-Cost)%"}}]"#,
        );
        let weights = |headers: &[(&'static str, &'static str)]| {
            super::build_descriptors(&p, &req(headers))
                .into_iter()
                .map(|d| (d.hits, d.hits_invalid))
                .collect::<Vec<_>>()
        };
        assert_eq!(weights(&[("x-cost", "3000")]), [(64, false), (3000, false)]);
        assert_eq!(weights(&[("x-cost", " +7 ")]), [(64, false), (7, false)]);
        // 0 is a weight (no bucket admits it); these are not.
        assert_eq!(weights(&[("x-cost", "0")])[1], (0, false));
        for bad in [
            "",
            "abc",
            "-5",
            "1000000001",
            "99999999999999999999999",
            "1.5",
        ] {
            assert_eq!(weights(&[("x-cost", bad)])[1], (1, true), "{bad:?}");
        }
        assert_eq!(weights(&[])[1], (1, true));
        // The first value of a repeated header, as Envoy's %REQ()%.
        assert_eq!(weights(&[("x-cost", "5"), ("x-cost", "9")])[1], (5, false));

        for (hits, field) in [
            (r#"{"number":0}"#, "rate_limits[0].hits_addend.number"),
            (
                r#"{"number":1000000001}"#,
                "rate_limits[0].hits_addend.number",
            ),
            (r#"{}"#, "rate_limits[0].hits_addend"),
            (
                r#"{"number":2,"format":"%REQ(x)%"}"#,
                "rate_limits[0].hits_addend",
            ),
            (
                r#"{"format":"%DYNAMIC_METADATA(envoy.lb:cost)%"}"#,
                "rate_limits[0].hits_addend.format",
            ),
            (
                r#"{"format":"cost %REQ(x)%"}"#,
                "rate_limits[0].hits_addend.format",
            ),
        ] {
            let err = compile_err(&format!(
                r#"[{{"actions":[{{"generic_key":{{"descriptor_value":"v"}}}}],"hits_addend":{hits}}}]"#
            ));
            assert_eq!(err.field, field, "{hits}");
        }
    }
}
