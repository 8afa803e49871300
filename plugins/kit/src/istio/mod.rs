//! Istio `AuthorizationPolicy` matching, shared by path-allowlist, auth-gate and emotion-stats.
//!
//! Everything here is compiled once (in `on_configure`) into lookup structures whose cost per
//! request does not grow with the number of patterns: a byte trie holds exact and prefix
//! patterns, a trie over reversed bytes holds suffix patterns, and path templates are indexed by
//! their leading literal so only the templates whose literal prefix matches are tried.
//!
//! - [`string_match`]: Istio's four string forms (`abc` exact, `abc*` prefix, `*abc` suffix,
//!   `*` presence) as a compiled [`StringSet`] (methods, hosts, or any header-like value).
//! - [`path`]: path patterns, the string forms plus the `{*}` / `{**}` templates, as a compiled
//!   [`PathSet`]. `/dex/**` is *not* a template (no braces): Istio reads it as the literal
//!   prefix `/dex/*`, and so does this module.
//! - [`normalize`]: the path normalization that must run before any path matching; the matcher
//!   trusts its input to be normalized.
//! - [`policy`]: one AuthorizationPolicy spec as pasted, generic over what a plugin supports.
//! - [`operation`]: the `to[].operation` of a rule (paths/notPaths, methods/notMethods,
//!   hosts/notHosts, ports/notPorts) compiled over all rules of a policy as an
//!   [`OperationMatcher`].
//!
//! Typical use on the request path:
//! ```
//! use plugin_kit::istio::{normalize_path, OperationMatcher, PathNormalization, RequestInfo, To};
//! let to: Vec<To> = serde_json::from_str(r#"[{"operation":{"paths":["/v1/models/*"]}}]"#).unwrap();
//! let mode = PathNormalization::default();
//! let matcher = OperationMatcher::compile([to.as_slice()], "rules", mode).unwrap();
//! let normalized = normalize_path("/v1/models/../models/x?y=1", mode).unwrap();
//! let request = RequestInfo { method: "GET", host: Some("a.example.com"), path: &normalized.path, port: None };
//! assert_eq!(matcher.first_matching_rule(&request), Some(0));
//! ```

pub mod normalize;
pub mod operation;
pub mod path;
pub mod policy;
pub mod string_match;
mod trie;

pub use normalize::{normalize_path, MalformedPath, NormalizedPath, PathNormalization};
pub use operation::{Operation, OperationMatcher, RequestInfo, To};
pub use path::{PathPattern, PathSet};
pub use policy::PolicySpec;
pub use string_match::{Case, StringPattern, StringSet};
