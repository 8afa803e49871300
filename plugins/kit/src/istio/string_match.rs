//! Istio's string match forms, as `AuthorizationPolicy` documents them for every string field:
//! `abc` exact, `abc*` prefix, `*abc` suffix, `*` presence (any value, the empty one included).
//! A `*` anywhere else is a literal character (Istio generates an exact match for `a*b`).

use super::trie::{KeyKind, Trie};
use crate::config::ConfigError;

/// One Istio string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringPattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// `*`: any value, as long as there is one (a missing header never matches).
    Presence,
}

impl StringPattern {
    /// Reads an Istio value; the empty string is refused as Istio's validation refuses it.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("empty value is not allowed".to_string());
        }
        Ok(if value == "*" {
            Self::Presence
        } else if let Some(suffix) = value.strip_prefix('*') {
            Self::Suffix(suffix.to_string())
        } else if let Some(prefix) = value.strip_suffix('*') {
            Self::Prefix(prefix.to_string())
        } else {
            Self::Exact(value.to_string())
        })
    }
}

/// Whether letters must match in case (methods, paths) or not (hosts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Sensitive,
    /// ASCII case-insensitive: patterns and inputs are compared in lowercase.
    Insensitive,
}

/// Index of string patterns, each with an id, shared by [`StringSet`] and the path index.
#[derive(Debug, Clone, Default)]
pub(crate) struct StringIndex {
    forward: Trie,
    reversed: Trie,
    presence: Vec<u32>,
}

impl StringIndex {
    pub(crate) fn insert(&mut self, pattern: &StringPattern, id: u32) {
        match pattern {
            StringPattern::Exact(v) => self.forward.insert(v.bytes(), KeyKind::Whole, id),
            StringPattern::Prefix(v) => self.forward.insert(v.bytes(), KeyKind::Prefix, id),
            StringPattern::Suffix(v) => self.reversed.insert(v.bytes().rev(), KeyKind::Prefix, id),
            StringPattern::Presence => self.presence.push(id),
        }
    }

    /// Calls `found` with the id of every pattern `value` matches (an id may come twice).
    pub(crate) fn for_each_match(&self, value: &str, found: &mut impl FnMut(u32)) {
        self.presence.iter().copied().for_each(&mut *found);
        self.forward.walk(value.bytes(), found);
        self.reversed.walk(value.bytes().rev(), found);
    }
}

/// A compiled list of Istio string values (the `methods` or `hosts` of one operation, say):
/// matches when any value matches. Lookup cost does not depend on the number of values.
#[derive(Debug, Clone)]
pub struct StringSet {
    index: StringIndex,
    case: Case,
}

impl StringSet {
    /// Compiles `values`; an error names `field[k]` of the offending value.
    pub fn compile(values: &[String], case: Case, field: &str) -> Result<Self, ConfigError> {
        let mut index = StringIndex::default();
        for (k, value) in values.iter().enumerate() {
            let value = match case {
                Case::Sensitive => value.clone(),
                Case::Insensitive => value.to_ascii_lowercase(),
            };
            let pattern = StringPattern::parse(&value)
                .map_err(|reason| ConfigError::new(format!("{field}[{k}]"), reason))?;
            index.insert(&pattern, k as u32);
        }
        Ok(Self { index, case })
    }

    /// Whether `value` matches any pattern of the set.
    pub fn matches(&self, value: &str) -> bool {
        let folded;
        let value = match self.case {
            Case::Sensitive => value,
            Case::Insensitive => {
                folded = value.to_ascii_lowercase();
                &folded
            }
        };
        self.matches_lowercase(value)
    }

    /// [`Self::matches`] for a value already in lowercase (a host folded once per request for
    /// all the sets of a policy); the same as `matches` for a case-sensitive set.
    pub(crate) fn matches_lowercase(&self, value: &str) -> bool {
        let mut any = false;
        self.index.for_each_match(value, &mut |_| any = true);
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn set(values: &[&str], case: Case) -> StringSet {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        StringSet::compile(&values, case, "methods").unwrap()
    }

    #[test]
    fn parses_the_four_istio_forms() {
        assert_eq!(
            StringPattern::parse("GET"),
            Ok(StringPattern::Exact("GET".into()))
        );
        assert_eq!(
            StringPattern::parse("GE*"),
            Ok(StringPattern::Prefix("GE".into()))
        );
        assert_eq!(
            StringPattern::parse("*ET"),
            Ok(StringPattern::Suffix("ET".into()))
        );
        assert_eq!(StringPattern::parse("*"), Ok(StringPattern::Presence));
        // Istio checks the leading `*` first: `**` is the suffix `*`, `*a*` the suffix `a*`.
        assert_eq!(
            StringPattern::parse("**"),
            Ok(StringPattern::Suffix("*".into()))
        );
        assert_eq!(
            StringPattern::parse("*a*"),
            Ok(StringPattern::Suffix("a*".into()))
        );
        assert_eq!(
            StringPattern::parse("a*b"),
            Ok(StringPattern::Exact("a*b".into()))
        );
        assert!(StringPattern::parse("").is_err());
    }

    #[test]
    fn set_matching_table() {
        let methods = set(&["GET", "PO*", "*CH"], Case::Sensitive);
        for (value, expected) in [
            ("GET", true),
            ("POST", true),
            ("PO", true),
            ("PATCH", true),
            ("get", false),
            ("Get", false),
            ("GETX", false),
            ("PUT", false),
            ("", false),
        ] {
            assert_eq!(methods.matches(value), expected, "{value:?}");
        }
        let any = set(&["*"], Case::Sensitive);
        assert!(any.matches(""));
        assert!(any.matches("DELETE"));
        assert!(!set(&[], Case::Sensitive).matches("GET"));
    }

    #[test]
    fn insensitive_set_folds_both_sides() {
        let hosts = set(
            &["Example.COM", "*.Corp.example", "API.*"],
            Case::Insensitive,
        );
        assert!(hosts.matches("example.com"));
        assert!(hosts.matches("EXAMPLE.com"));
        assert!(hosts.matches("x.CORP.example"));
        assert!(hosts.matches("api.internal"));
        assert!(!hosts.matches("corp.example"));
        assert!(!hosts.matches("example.com.evil"));
    }

    #[test]
    fn empty_value_is_named() {
        let err = StringSet::compile(&["GET".into(), "".into()], Case::Sensitive, "x.methods")
            .unwrap_err();
        assert_eq!(err.field, "x.methods[1]");
        assert!(err.reason.contains("empty"), "{}", err.reason);
    }
}
