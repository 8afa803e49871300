//! The cases: the router-only floor, the Wasm floor, and each plugin on its main path next to
//! the native filter doing the same job. Cases answer from a `direct_response` route carrying
//! a model prediction, so no upstream can be the bottleneck and every case (emotion-stats
//! included) sees the same response. Only the 429 cases proxy, to a fast upstream, and are
//! compared with a floor that proxies: a local reply is worth having because it saves the
//! upstream hop, which a direct-response floor does not make.

use super::native::{self, JwtIssuer};
use super::tokens::Tokens;
use super::wasm_floor;
use harness_runner::manifests;
use harness_runner::render::{DirectResponse, NativeFilter};
use harness_runner::{EnvoyConfig, Error, Plugin, Result};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The request every case gets (the BERT emotion walkthrough's prediction path).
pub const PREDICT_PATH: &str = "/v1/models/bert-emotion-model:predict";

/// The Kubeflow gateway's `allowlist-by-paths` policy.
pub const SEED_001_PATHS: [&str; 6] = [
    "/metrics",
    "/healthz",
    "/ready",
    "/wait-for-drain",
    "/v1/models/*",
    "/v2/models/*",
];

/// What the benchmark builds before the cases: keys, tokens and the Wasm floor modules.
pub struct Fixtures {
    pub tokens: Tokens,
    pub floor: wasm_floor::Modules,
    /// `wasmplugin-manifests/gateway/`, for the chained case's order and fail strategies.
    pub gateway_manifests: PathBuf,
    /// The fast upstream of the proxying cases.
    pub upstream: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub what: String,
    /// The native case doing the same job.
    pub twin: Option<&'static str>,
    /// The plugin case a `model-gateway` case is compared with, round by round: the same
    /// configuration and requests as separate modules (`chained`) or as the plugin's own module.
    pub standalone: Option<&'static str>,
    /// Plugins from `dist/` this case loads: if one refuses its configuration, the case is
    /// skipped rather than failing the run.
    pub plugins: Vec<&'static str>,
    pub config: EnvoyConfig,
    /// The request target (`PREDICT_PATH` but for the cases about the query string).
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub expect_status: u16,
    /// Other requests sent once each after the check, before any timing, each with the status
    /// it must get: the refusals of a chain.
    pub probes: Vec<Probe>,
}

/// A request a case must answer with `expect_status`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub what: &'static str,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub expect_status: u16,
}

impl Case {
    /// Bytes of the `.wasm` modules this case loads.
    pub fn wasm_bytes(&self) -> Option<u64> {
        if self.config.plugins.is_empty() {
            return None;
        }
        self.config
            .plugins
            .iter()
            .map(|p| std::fs::metadata(&p.module).map(|m| m.len()).ok())
            .sum()
    }
}

/// A KServe v1 answer of the emotion model, padded to exactly `len` bytes (at least 261): a
/// batch of as many six-label predictions as fit, then spaces.
pub fn prediction_body(len: usize) -> String {
    let instance = r#"[{"label":"joy","score":0.9813},{"label":"love","score":0.0052},{"label":"sadness","score":0.0041},{"label":"anger","score":0.0038},{"label":"surprise","score":0.0031},{"label":"fear","score":0.0025}]"#;
    let mut body = format!(r#"{{"predictions":[{instance}"#);
    while body.len() + 1 + instance.len() + 2 <= len {
        body.push(',');
        body.push_str(instance);
    }
    body.push_str("]}");
    while body.len() < len {
        body.push(' ');
    }
    body
}

pub const SMALL_BODY: usize = 261;
pub const LARGE_BODY: usize = 64 * 1024;

fn base(body_len: usize) -> EnvoyConfig {
    EnvoyConfig {
        concurrency: 1,
        direct_response: Some(DirectResponse {
            status: 200,
            content_type: "application/json".to_string(),
            body: prediction_body(body_len),
        }),
        ..Default::default()
    }
}

/// The fast upstream: an Envoy answering every request with the small prediction from its
/// route (about 25 µs of CPU per request where the demo model server's four tiny_http threads
/// would queue).
pub fn upstream_config() -> EnvoyConfig {
    base(SMALL_BODY)
}

/// Routes to `upstream` instead of answering from the route.
fn proxied(config: EnvoyConfig, upstream: SocketAddr) -> EnvoyConfig {
    EnvoyConfig {
        upstream,
        direct_response: None,
        ..config
    }
}

fn with_native(body_len: usize, filters: Vec<NativeFilter>) -> EnvoyConfig {
    EnvoyConfig {
        native_filters: filters,
        ..base(body_len)
    }
}

fn with_plugins(body_len: usize, plugins: Vec<Plugin>) -> EnvoyConfig {
    EnvoyConfig {
        plugins,
        ..base(body_len)
    }
}

fn floor_module(name: &str, module: &std::path::Path) -> Plugin {
    Plugin {
        module: module.to_path_buf(),
        ..Plugin::from_dist(name, json!({}))
    }
}

/// `count` Istio path patterns: generated exact, prefix and suffix ones first, the Kubeflow
/// gateway's allowlist last (RBAC tries its rules in order: the allowed path is found after all
/// the others).
pub fn many_paths(count: usize) -> Vec<String> {
    let fillers = count.saturating_sub(SEED_001_PATHS.len());
    let mut paths: Vec<String> = (0..fillers)
        .map(|i| match i % 3 {
            0 => format!("/internal/service-{i}/status"),
            1 => format!("/apps/app-{i}/*"),
            _ => format!("*.report-{i}"),
        })
        .collect();
    paths.extend(SEED_001_PATHS.iter().map(|p| p.to_string()));
    paths
}

pub fn path_allowlist_config(paths: &[String]) -> Value {
    json!({"action": "ALLOW", "rules": [{"to": [{"operation": {"paths": paths}}]}]})
}

/// The BERT emotion walkthrough's header rule as an auth-gate policy.
pub fn header_policy() -> Value {
    json!({
        "name": "allow-with-header",
        "action": "ALLOW",
        "rules": [{
            "to": [{"operation": {"paths": [PREDICT_PATH]}}],
            "when": [{"key": "request.headers[X-Test]", "values": ["istio-is-cool"]}]
        }]
    })
}

/// The Kubeflow gateway's "require a JWT" as an auth-gate policy: no principal, no entry.
pub fn require_jwt_policy() -> Value {
    json!({
        "name": "require-jwt",
        "action": "DENY",
        "rules": [{"from": [{"source": {"notRequestPrincipals": ["*"]}}]}]
    })
}

pub fn auth_gate_jwt_config(issuer: &JwtIssuer, cache: bool, policies: Vec<Value>) -> Value {
    json!({
        "jwtRules": [{"issuer": issuer.issuer, "audiences": [issuer.audience], "jwks": issuer.jwks}],
        "policies": policies,
        "tokenCacheEntries": if cache { 100 } else { 0 }
    })
}

/// One limit on the prediction path, keyed by `:path` as the BERT emotion walkthrough's
/// EnvoyFilter does.
pub fn ratelimit_config(requests_per_unit: u32, unit: &str) -> Value {
    json!({
        "domain": "bench",
        "descriptors": [{
            "key": "path",
            "value": PREDICT_PATH,
            "rate_limit": {"unit": unit, "requests_per_unit": requests_per_unit}
        }],
        "rate_limits": [{"actions": [{"request_headers": {"header_name": ":path", "descriptor_key": "path"}}]}]
    })
}

pub fn emotion_stats_config() -> Value {
    json!({"paths": ["/v1/models/*", "/v2/models/*"]})
}

/// A bucket the benchmark can never empty, and one that is empty after the first request.
const ENDLESS_TOKENS: u32 = 1_000_000_000;
const ENDLESS_FILL_S: u32 = 1;
const ONE_TOKEN_FILL_S: u32 = 3600;

pub fn all(fixtures: &Fixtures) -> Result<Vec<Case>> {
    let issuer = &fixtures.tokens.issuer;
    let bearer = |token: &str| ("authorization".to_string(), format!("Bearer {token}"));
    let x_test = ("x-test".to_string(), "istio-is-cool".to_string());
    let rs256_headers = vec![x_test.clone(), bearer(&fixtures.tokens.rs256)];
    let es256_headers = vec![x_test, bearer(&fixtures.tokens.es256)];
    let seed_paths: Vec<String> = SEED_001_PATHS.iter().map(|p| p.to_string()).collect();
    let paths_1000 = many_paths(1000);

    let case = |name, what: &str, twin, plugins: Vec<&'static str>, config, status| Case {
        name,
        what: what.to_string(),
        twin,
        plugins,
        config,
        path: PREDICT_PATH.to_string(),
        headers: rs256_headers.clone(),
        expect_status: status,
        standalone: None,
        probes: Vec::new(),
    };
    let es256 = |c: Case| Case {
        headers: es256_headers.clone(),
        ..c
    };
    let jwt_pair = |alg: &'static str, cache: bool| -> (Case, Case) {
        let (wasm_name, native_name) = match (alg, cache) {
            ("RS256", true) => ("auth-gate-rs256-cached", "jwt-rs256-cached"),
            ("RS256", false) => ("auth-gate-rs256", "jwt-rs256"),
            (_, true) => ("auth-gate-es256-cached", "jwt-es256-cached"),
            (_, false) => ("auth-gate-es256", "jwt-es256"),
        };
        let seen = if cache {
            "token seen before (cache on)"
        } else {
            "every request verified (cache off)"
        };
        let wasm = case(
            wasm_name,
            &format!("auth-gate: require a valid {alg} JWT, {seen}"),
            Some(native_name),
            vec!["auth-gate"],
            with_plugins(
                SMALL_BODY,
                vec![Plugin::from_dist(
                    "auth-gate",
                    auth_gate_jwt_config(issuer, cache, vec![require_jwt_policy()]),
                )],
            ),
            200,
        );
        let native = case(
            native_name,
            &format!(
                "jwt_authn {alg}, inline JWKS{}",
                if cache {
                    ", jwt_cache_config"
                } else {
                    ", no cache"
                }
            ),
            None,
            vec![],
            with_native(SMALL_BODY, vec![native::jwt_authn("jwt", issuer, cache)]),
            200,
        );
        if alg == "ES256" {
            (es256(wasm), es256(native))
        } else {
            (wasm, native)
        }
    };

    // About 2,900 `access_token` parameters, inside Envoy's default 60 KiB of headers: the
    // token is the first one (and invalid), the rest must cost nothing.
    let many_params = |c: Case| Case {
        path: format!(
            "{PREDICT_PATH}?{}",
            "access_token=x.y.z&".repeat(MANY_PARAMS)
        ),
        headers: Vec::new(),
        ..c
    };
    let mut cases = vec![
        case("floor", "router only", None, vec![], base(SMALL_BODY), 200),
        case(
            "floor-proxied",
            "router proxying to a fast upstream (an Envoy answering the same body)",
            None,
            vec![],
            proxied(base(SMALL_BODY), fixtures.upstream),
            200,
        ),
        case(
            "wasm-noop",
            "Wasm floor: a module answering Continue (v8)",
            None,
            vec![],
            with_plugins(
                SMALL_BODY,
                vec![floor_module("wasm-noop", &fixtures.floor.noop)],
            ),
            200,
        ),
        case(
            "wasm-body",
            "Wasm body floor: reads each response chunk (261 B)",
            None,
            vec![],
            with_plugins(
                SMALL_BODY,
                vec![floor_module("wasm-body", &fixtures.floor.body_reader)],
            ),
            200,
        ),
        case(
            BUNDLE_HOST_FLOOR,
            "Wasm floor of the bundle: its hostcalls and callbacks for a request, none of its logic",
            None,
            vec![],
            with_plugins(
                SMALL_BODY,
                vec![floor_module("wasm-hostcalls", &fixtures.floor.hostcalls)],
            ),
            200,
        ),
        case(
            "wasm-body-64k",
            "Wasm body floor, 64 KiB response",
            None,
            vec![],
            with_plugins(
                LARGE_BODY,
                vec![floor_module("wasm-body", &fixtures.floor.body_reader)],
            ),
            200,
        ),
        case(
            "sdk-passthrough",
            "Rust SDK floor: local-ratelimit without rate_limits, every request passes",
            None,
            vec!["local-ratelimit"],
            with_plugins(
                SMALL_BODY,
                vec![Plugin::from_dist(
                    "local-ratelimit",
                    json!({"domain": "bench"}),
                )],
            ),
            200,
        ),
        case(
            BUNDLE_EMPTY,
            "model-gateway without sections: every request passes, through every callback it exports",
            None,
            vec![BUNDLE],
            with_plugins(SMALL_BODY, vec![Plugin::from_dist(BUNDLE, json!({}))]),
            200,
        ),
        case(
            "path-allowlist",
            "the Kubeflow gateway allowlist (6 patterns), allowed request",
            Some("rbac-paths"),
            vec!["path-allowlist"],
            with_plugins(
                SMALL_BODY,
                vec![Plugin::from_dist(
                    "path-allowlist",
                    path_allowlist_config(&seed_paths),
                )],
            ),
            200,
        ),
        case(
            "rbac-paths",
            "RBAC ALLOW with the Kubeflow gateway allowlist's paths",
            None,
            vec![],
            with_native(SMALL_BODY, vec![native::rbac_paths("rbac", &seed_paths)]),
            200,
        ),
        case(
            "path-allowlist-1000",
            "1,000 patterns, the allowed one last",
            Some("rbac-paths-1000"),
            vec!["path-allowlist"],
            with_plugins(
                SMALL_BODY,
                vec![Plugin::from_dist(
                    "path-allowlist",
                    path_allowlist_config(&paths_1000),
                )],
            ),
            200,
        ),
        case(
            "rbac-paths-1000",
            "RBAC ALLOW with the same 1,000 paths",
            None,
            vec![],
            with_native(SMALL_BODY, vec![native::rbac_paths("rbac", &paths_1000)]),
            200,
        ),
        case(
            "auth-gate-header",
            "the BERT emotion walkthrough's header rule (x-test on the predict path)",
            Some("rbac-header"),
            vec!["auth-gate"],
            with_plugins(
                SMALL_BODY,
                vec![Plugin::from_dist(
                    "auth-gate",
                    json!({"policies": [header_policy()]}),
                )],
            ),
            200,
        ),
        case(
            "rbac-header",
            "RBAC: predict path and header principal x-test",
            None,
            vec![],
            with_native(
                SMALL_BODY,
                vec![native::rbac_header(
                    "rbac",
                    PREDICT_PATH,
                    "x-test",
                    "istio-is-cool",
                )],
            ),
            200,
        ),
    ];
    for (alg, cache) in [
        ("RS256", true),
        ("RS256", false),
        ("ES256", true),
        ("ES256", false),
    ] {
        let (wasm, native) = jwt_pair(alg, cache);
        cases.push(wasm);
        cases.push(native);
    }
    // First sight for the other algorithms: reported, no target.
    for (alg, token) in &fixtures.tokens.others {
        let name = match *alg {
            "RS384" => "auth-gate-rs384",
            "RS512" => "auth-gate-rs512",
            "PS256" => "auth-gate-ps256",
            _ => "auth-gate-es384",
        };
        cases.push(Case {
            headers: vec![bearer(token)],
            ..case(
                name,
                &format!(
                    "auth-gate: require a valid {alg} JWT, every request verified (cache off)"
                ),
                None,
                vec!["auth-gate"],
                with_plugins(
                    SMALL_BODY,
                    vec![Plugin::from_dist(
                        "auth-gate",
                        auth_gate_jwt_config(issuer, false, vec![require_jwt_policy()]),
                    )],
                ),
                200,
            )
        });
    }
    cases.extend([
        case(
            "local-ratelimit",
            "bucket never empty: allowed",
            Some("ratelimit"),
            vec!["local-ratelimit"],
            with_plugins(
                SMALL_BODY,
                vec![Plugin::from_dist(
                    "local-ratelimit",
                    ratelimit_config(ENDLESS_TOKENS, "second"),
                )],
            ),
            200,
        ),
        case(
            "ratelimit",
            "local_ratelimit, bucket never empty",
            None,
            vec![],
            with_native(
                SMALL_BODY,
                vec![native::local_ratelimit(
                    "rl",
                    ENDLESS_TOKENS,
                    ENDLESS_FILL_S,
                )],
            ),
            200,
        ),
        case(
            "local-ratelimit-429",
            "empty bucket: rejected with 429 (route proxies)",
            Some("ratelimit-429"),
            vec!["local-ratelimit"],
            proxied(
                with_plugins(
                    SMALL_BODY,
                    vec![Plugin::from_dist(
                        "local-ratelimit",
                        ratelimit_config(1, "hour"),
                    )],
                ),
                fixtures.upstream,
            ),
            429,
        ),
        case(
            "ratelimit-429",
            "local_ratelimit, empty bucket (route proxies)",
            None,
            vec![],
            proxied(
                with_native(
                    SMALL_BODY,
                    vec![native::local_ratelimit("rl", 1, ONE_TOKEN_FILL_S)],
                ),
                fixtures.upstream,
            ),
            429,
        ),
        case(
            "emotion-stats",
            "counts the top label of a 261 B prediction",
            Some("lua-body"),
            vec!["emotion-stats"],
            with_plugins(
                SMALL_BODY,
                vec![Plugin::from_dist("emotion-stats", emotion_stats_config())],
            ),
            200,
        ),
        case(
            "lua-body",
            "Lua: buffers the 261 B response body, string.find",
            None,
            vec![],
            with_native(SMALL_BODY, vec![native::lua_body("lua")]),
            200,
        ),
        case(
            "emotion-stats-64k",
            "counts the top labels of a 64 KiB batch prediction",
            Some("lua-body-64k"),
            vec!["emotion-stats"],
            with_plugins(
                LARGE_BODY,
                vec![Plugin::from_dist("emotion-stats", emotion_stats_config())],
            ),
            200,
        ),
        case(
            "lua-body-64k",
            "Lua: buffers a 64 KiB response body, string.find",
            None,
            vec![],
            with_native(LARGE_BODY, vec![native::lua_body("lua")]),
            200,
        ),
        Case {
            probes: chain_refusals(&fixtures.tokens),
            ..case(
                "chained",
                "all four as wasmplugin-manifests/gateway wires them (JWT RS256 cached + header rule)",
                Some("native-chained"),
                vec![
                    "auth-gate",
                    "path-allowlist",
                    "local-ratelimit",
                    "emotion-stats",
                ],
                with_plugins(
                    SMALL_BODY,
                    gateway_chain(&fixtures.gateway_manifests, issuer, &seed_paths)?,
                ),
                200,
            )
        },
        case(
            "native-chained",
            "jwt_authn (cached) + RBAC paths + RBAC header + local_ratelimit + Lua",
            None,
            vec![],
            with_native(
                SMALL_BODY,
                vec![
                    native::jwt_authn("jwt", issuer, true),
                    native::rbac_paths("rbac-paths", &seed_paths),
                    native::rbac_header("rbac-header", PREDICT_PATH, "x-test", "istio-is-cool"),
                    native::local_ratelimit("rl", ENDLESS_TOKENS, ENDLESS_FILL_S),
                    native::lua_body("lua"),
                ],
            ),
            200,
        ),
        many_params(case(
            "auth-gate-many-params",
            &format!("auth-gate: {MANY_PARAMS} access_token parameters, the first an invalid token (401)"),
            Some("jwt-many-params"),
            vec!["auth-gate"],
            with_plugins(
                SMALL_BODY,
                vec![Plugin::from_dist(
                    "auth-gate",
                    auth_gate_jwt_config(issuer, true, vec![require_jwt_policy()]),
                )],
            ),
            401,
        )),
        many_params(case(
            "jwt-many-params",
            &format!("jwt_authn: {MANY_PARAMS} access_token parameters (401)"),
            None,
            vec![],
            with_native(SMALL_BODY, vec![native::jwt_authn("jwt", issuer, true)]),
            401,
        )),
    ]);
    add_bundle_cases(&mut cases)?;
    Ok(cases)
}

/// The module linking the four plugins, and the one with their request-side sections only.
pub use harness_runner::{BUNDLE, REQUEST_ONLY_BUNDLE};

/// `--only model-gateway`: the bundle's cases and every case their targets compare them with.
pub const BUNDLE_GROUP: &str = BUNDLE;

/// The Wasm floor of the bundle: its hostcalls and callbacks for one request, none of its logic.
pub const BUNDLE_HOST_FLOOR: &str = "wasm-hostcalls";

/// The bundle with no section: what its callbacks cost before any plugin runs.
pub const BUNDLE_EMPTY: &str = "bundle-empty";

/// Whether `case` loads model-gateway or model-gateway-request-only.
pub fn loads_a_bundle(case: &Case) -> bool {
    case.plugins.iter().any(|p| harness_runner::is_bundle(p))
}

/// The names of the cases `--only` selects: the floor, the cases it names and, for
/// [`BUNDLE_GROUP`], every case loading the bundle with the cases it is compared with (its
/// standalone case, its native twin).
pub fn selection(cases: &[Case], only: &[String]) -> Vec<&'static str> {
    let mut names = vec!["floor"];
    for case in cases {
        if only.iter().any(|o| o == case.name) {
            names.push(case.name);
        }
        let bundle_group = only.iter().any(|o| o == BUNDLE_GROUP);
        if bundle_group && (loads_a_bundle(case) || case.name == BUNDLE_HOST_FLOOR) {
            names.push(case.name);
            names.extend(case.standalone);
            names.extend(case.twin);
        }
    }
    names
}

/// A bundle case with one section, compared with its plugin's own module.
#[derive(Debug, Clone, Copy)]
pub struct Single {
    pub case: &'static str,
    /// The standalone case whose configuration and requests it takes.
    pub standalone: &'static str,
    /// [`BUNDLE`] or [`REQUEST_ONLY_BUNDLE`].
    pub module: &'static str,
    /// Whether the single-section target judges it: the module a gateway with only this policy
    /// runs. A request-side policy alone runs in model-gateway-request-only; in model-gateway
    /// it pays for response callbacks it does not use (reported, not judged).
    pub judged: bool,
}

/// The bundles with one section. auth-gate's is its cached RS256 JWT case, the auth-gate
/// configuration of `chained` without the header rule. local-ratelimit's configuration asks for
/// the x-ratelimit-* headers, which only model-gateway can add.
pub const BUNDLE_SINGLES: [Single; 6] = [
    single("bundle-auth-gate", "auth-gate-rs256-cached", BUNDLE, false),
    single(
        "request-only-auth-gate",
        "auth-gate-rs256-cached",
        REQUEST_ONLY_BUNDLE,
        true,
    ),
    single("bundle-path-allowlist", "path-allowlist", BUNDLE, false),
    single(
        "request-only-path-allowlist",
        "path-allowlist",
        REQUEST_ONLY_BUNDLE,
        true,
    ),
    single("bundle-local-ratelimit", "local-ratelimit", BUNDLE, true),
    single("bundle-emotion-stats", "emotion-stats", BUNDLE, true),
];

const fn single(
    case: &'static str,
    standalone: &'static str,
    module: &'static str,
    judged: bool,
) -> Single {
    Single {
        case,
        standalone,
        module,
        judged,
    }
}

/// Each bundle case right after the case it is compared with, so that the two run one after
/// the other in a round (the order rotates by one each round: only a round that starts between
/// them parts them): `bundle` after `chained`, with the four sections of `chained`'s four
/// plugins, and each single-section case after its standalone case.
fn add_bundle_cases(cases: &mut Vec<Case>) -> Result<()> {
    let singles = BUNDLE_SINGLES.map(|single| {
        let what = format!(
            "{} with one section, as {}",
            single.module, single.standalone
        );
        (single.case, single.standalone, single.module, what)
    });
    let all = [(
        "bundle",
        "chained",
        BUNDLE,
        format!("{BUNDLE}: chained's four configurations as sections of one module, one VM"),
    )]
    .into_iter()
    .chain(singles);
    for (name, standalone, module, what) in all {
        let at = cases
            .iter()
            .position(|c| c.name == standalone)
            .ok_or_else(|| Error(format!("{name}: no case {standalone} to take it from")))?;
        let bundled = bundled_case(&cases[at], name, module, what)?;
        cases.insert(at + 1, bundled);
    }
    Ok(())
}

/// `standalone` with its plugins as sections of the bundle: the same configurations (taken from
/// the case itself), the same Envoy, requests and expected answers, the same native twin.
fn bundled_case(
    standalone: &Case,
    name: &'static str,
    module: &'static str,
    what: String,
) -> Result<Case> {
    let bundle = bundle_plugin(&standalone.config.plugins, module)?;
    Ok(Case {
        name,
        what,
        standalone: Some(standalone.name),
        plugins: vec![module],
        config: EnvoyConfig {
            plugins: vec![bundle],
            ..standalone.config.clone()
        },
        ..standalone.clone()
    })
}

/// One filter of `module` (a bundle) whose pluginConfig has a section per plugin, each that
/// plugin's own pluginConfig.
pub fn bundle_plugin(plugins: &[Plugin], module: &str) -> Result<Plugin> {
    let mut sections = serde_json::Map::new();
    for plugin in plugins {
        let config: Value = serde_json::from_str(&plugin.configuration)
            .map_err(|e| Error(format!("{}: configuration: {e}", plugin.name)))?;
        sections.insert(section_key(plugin.short_name()), config);
    }
    Ok(Plugin::from_dist(module, Value::Object(sections)))
}

/// The bundle's section of a plugin: its name in camelCase (`local-ratelimit` ->
/// `localRatelimit`).
pub fn section_key(plugin: &str) -> String {
    let mut words = plugin.split('-');
    let mut key = words.next().unwrap_or_default().to_string();
    for word in words {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            key.extend(first.to_uppercase());
            key.push_str(chars.as_str());
        }
    }
    key
}

/// `token` with its signature's characters in reverse order: well-formed, wrongly signed.
fn forged(token: &str) -> String {
    match token.rsplit_once('.') {
        Some((signed, signature)) => {
            format!("{signed}.{}", signature.chars().rev().collect::<String>())
        }
        None => token.to_string(),
    }
}

/// Requests the gateway chain must refuse, each by a different rule: the bundle has to refuse
/// them alike (it takes `chained`'s probes with its configuration).
fn chain_refusals(tokens: &Tokens) -> Vec<Probe> {
    let x_test = ("x-test".to_string(), "istio-is-cool".to_string());
    let bearer = |token: &str| ("authorization".to_string(), format!("Bearer {token}"));
    let probe = |what, path: &str, headers, expect_status| Probe {
        what,
        path: path.to_string(),
        headers,
        expect_status,
    };
    vec![
        probe(
            "no x-test header",
            PREDICT_PATH,
            vec![bearer(&tokens.rs256)],
            403,
        ),
        probe("no token", PREDICT_PATH, vec![x_test.clone()], 403),
        probe(
            "a forged signature",
            PREDICT_PATH,
            vec![x_test.clone(), bearer(&forged(&tokens.rs256))],
            401,
        ),
        probe(
            "a path the header rule does not name",
            "/v1/models/other-model:predict",
            vec![x_test, bearer(&tokens.rs256)],
            403,
        ),
    ]
}

/// Query parameters of the many-parameters cases.
const MANY_PARAMS: usize = 2900;

/// The four plugins in the order and with the fail strategies of the gateway manifests, each
/// with the configuration of its single case (modules from `dist/`).
fn gateway_chain(
    dir: &std::path::Path,
    issuer: &JwtIssuer,
    paths: &[String],
) -> Result<Vec<Plugin>> {
    let plugins = manifests::to_plugins(manifests::load_dir(dir)?);
    Ok(plugins
        .into_iter()
        .map(|plugin| {
            let short = plugin.short_name().to_string();
            let config = match short.as_str() {
                "auth-gate" => {
                    auth_gate_jwt_config(issuer, true, vec![header_policy(), require_jwt_policy()])
                }
                "path-allowlist" => path_allowlist_config(paths),
                "local-ratelimit" => ratelimit_config(ENDLESS_TOKENS, "second"),
                _ => emotion_stats_config(),
            };
            Plugin {
                module: harness_runner::dist_module(&short),
                configuration: config.to_string(),
                ..plugin
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prediction_bodies_have_the_exact_size_and_parse() {
        for len in [SMALL_BODY, LARGE_BODY] {
            let body = prediction_body(len);
            assert_eq!(body.len(), len);
            let parsed: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(parsed["predictions"][0][0]["label"], "joy");
        }
        let large: Value = serde_json::from_str(&prediction_body(LARGE_BODY)).unwrap();
        assert!(large["predictions"].as_array().unwrap().len() > 250);
    }

    #[test]
    fn many_paths_end_with_the_kubeflow_allowlist() {
        let paths = many_paths(1000);
        assert_eq!(paths.len(), 1000);
        assert_eq!(&paths[994..], SEED_001_PATHS.map(String::from).as_slice());
        let distinct: std::collections::HashSet<_> = paths.iter().collect();
        assert_eq!(distinct.len(), 1000);
    }

    #[test]
    fn every_case_names_an_existing_twin_and_answers_from_the_route() {
        let dir = std::env::temp_dir().join(format!("bench-cases-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fixtures = Fixtures {
            // Keys are not needed to render the cases (tokens.rs tests the real ones).
            tokens: Tokens {
                issuer: JwtIssuer {
                    issuer: "https://issuer".into(),
                    audience: "bench".into(),
                    jwks: r#"{"keys":[]}"#.into(),
                },
                rs256: "rs.256.token".into(),
                es256: "es.256.token".into(),
                es256_key: jwt_simple::prelude::ES256KeyPair::generate(),
                others: vec![("PS256", "ps.256.token".into())],
            },
            floor: wasm_floor::write_modules(&dir).unwrap(),
            gateway_manifests: harness_runner::repo_root().join("wasmplugin-manifests/gateway"),
            upstream: "127.0.0.1:9999".parse().unwrap(),
        };
        let cases = all(&fixtures).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
        assert_eq!(names[0], "floor");
        for case in &cases {
            if let Some(twin) = case.twin {
                assert!(names.contains(&twin), "{}: twin {twin}", case.name);
            }
            // Only the 429 cases and their floor go to the upstream.
            let proxies = case.config.direct_response.is_none();
            assert_eq!(
                proxies,
                case.name.ends_with("-proxied") || case.name.ends_with("429"),
                "{}",
                case.name
            );
            if proxies {
                assert_eq!(case.config.upstream, fixtures.upstream, "{}", case.name);
            }
            for plugin in &case.plugins {
                assert!(
                    case.config
                        .plugins
                        .iter()
                        .any(|p| p.module.ends_with(format!("{plugin}.wasm"))),
                    "{}: {plugin}",
                    case.name
                );
            }
        }
        let chained = cases.iter().find(|c| c.name == "chained").unwrap();
        let order: Vec<&str> = chained
            .config
            .plugins
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "istio-system.auth-gate",
                "istio-system.path-allowlist",
                "istio-system.local-ratelimit",
                "istio-system.emotion-stats"
            ]
        );
        check_bundle_cases(&cases);
    }

    fn section_config(case: &Case) -> serde_json::Map<String, Value> {
        assert_eq!(case.config.plugins.len(), 1, "{}", case.name);
        let plugin = &case.config.plugins[0];
        assert!(
            plugin.module.ends_with(format!("{}.wasm", case.plugins[0])),
            "{}",
            case.name
        );
        match serde_json::from_str(&plugin.configuration).unwrap() {
            Value::Object(sections) => sections,
            other => panic!("{}: {other}", case.name),
        }
    }

    /// Each bundle case right after the case it is compared with, with that case's
    /// configurations as its sections and its requests and expected answers.
    fn check_bundle_cases(cases: &[Case]) {
        let find = |name: &str| cases.iter().position(|c| c.name == name).unwrap();
        let singles = BUNDLE_SINGLES.map(|s| (s.case, s.standalone, s.module));
        let pairs = [("bundle", "chained", BUNDLE)].into_iter().chain(singles);
        for (name, standalone, module) in pairs {
            let (at, from) = (find(name), find(standalone));
            // Two cases compared with the same standalone case: the second one after the first.
            let after = cases[from + 1..at]
                .iter()
                .all(|c| c.standalone == Some(standalone));
            assert!(at > from && after, "{name} runs right after {standalone}");
            let (bundle, standalone) = (&cases[at], &cases[from]);
            assert_eq!(bundle.standalone, Some(standalone.name));
            assert_eq!(bundle.plugins, [module]);
            assert_eq!(bundle.twin, standalone.twin);
            assert_eq!(
                (&bundle.path, &bundle.headers, bundle.expect_status),
                (
                    &standalone.path,
                    &standalone.headers,
                    standalone.expect_status
                )
            );
            assert_eq!(bundle.probes, standalone.probes);
            assert_eq!(
                bundle.config.direct_response,
                standalone.config.direct_response
            );
            let sections = section_config(bundle);
            assert_eq!(sections.len(), standalone.config.plugins.len(), "{name}");
            for plugin in &standalone.config.plugins {
                let own: Value = serde_json::from_str(&plugin.configuration).unwrap();
                assert_eq!(
                    sections.get(&section_key(plugin.short_name())),
                    Some(&own),
                    "{name}: {}",
                    plugin.name
                );
            }
        }
        let bundle = &cases[find("bundle")];
        let mut keys: Vec<String> = section_config(bundle).keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "authGate",
                "emotionStats",
                "localRatelimit",
                "pathAllowlist"
            ]
        );
        // The chain's refusals: each a status other than the allowed request's.
        assert_eq!(bundle.probes.len(), 4);
        assert!(bundle.probes.iter().all(|p| p.expect_status >= 400));

        let group = selection(cases, &[BUNDLE_GROUP.to_string()]);
        for name in [
            "floor",
            "bundle",
            "chained",
            "native-chained",
            "bundle-auth-gate",
            "request-only-auth-gate",
            "auth-gate-rs256-cached",
            "jwt-rs256-cached",
            "bundle-path-allowlist",
            "request-only-path-allowlist",
            "path-allowlist",
            "rbac-paths",
            "bundle-local-ratelimit",
            "local-ratelimit",
            "ratelimit",
            "bundle-emotion-stats",
            "emotion-stats",
            "lua-body",
            BUNDLE_HOST_FLOOR,
            BUNDLE_EMPTY,
        ] {
            assert!(group.contains(&name), "{name} not in {group:?}");
        }
        assert!(!group.contains(&"wasm-noop"), "{group:?}");
        assert_eq!(
            selection(cases, &["bundle".to_string()]),
            ["floor", "bundle"]
        );
    }

    #[test]
    fn bundle_sections_are_the_plugin_names_in_camel_case() {
        assert_eq!(section_key("auth-gate"), "authGate");
        assert_eq!(section_key("local-ratelimit"), "localRatelimit");
        assert_eq!(section_key("emotion-stats"), "emotionStats");
        assert_eq!(section_key("path-allowlist"), "pathAllowlist");
    }

    #[test]
    fn a_forged_token_keeps_its_shape_and_changes_its_signature() {
        assert_eq!(forged("h.p.abc"), "h.p.cba");
        assert_eq!(forged("nodots"), "nodots");
    }
}
