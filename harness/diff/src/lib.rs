//! The comparison of the plugins with Istio's native filters: the `harness diff` command runs it,
//! its own test (`tests/istio_parity.rs`: the policy files, the README examples, random sets)
//! drives it in Envoy, and bench takes istiod's path rules from it for the native twins of its
//! cases.
//!
//! `harness diff`: the user's own `RequestAuthentication` and `AuthorizationPolicy` resources
//! run twice, in two real Envoys started side by side — one with Envoy's jwt_authn and RBAC
//! filters configured as istiod configures them, one with the plugin configured from the same
//! resources — and the same requests sent to both. Every request the two decide differently is
//! reported, grouped by what the request tried, with a line that reproduces it.

mod generate;
pub mod istio;
pub mod istiod;
pub mod random;
pub mod request;
pub mod tokens;

pub use generate::Generator;
use harness_runner::render::{DirectResponse, EnvoyConfig, PathNormalization, Plugin};
use harness_runner::rng::Rng;
use harness_runner::{http, Envoy, Error, Result};
pub use istio::Resources;
pub use request::Request;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const USAGE: &str =
    "  harness diff --istio FILE.yaml [--plugin auth-gate|path-allowlist] [--requests N]
              [--seed S] [--corpus FILE] [--module PLUGIN=FILE.wasm]
              [--normalization BASE|MERGE_SLASHES|DECODE_AND_MERGE_SLASHES] [--show N] [--trace]

diff: FILE.yaml holds RequestAuthentication and AuthorizationPolicy resources (multi-document
YAML). They are translated as istiod translates them into a real Envoy (jwt_authn + RBAC), and
into the plugin's pluginConfig in another; both get the same N requests (default 2000), made
from the policies with hostile variants (reproducible by --seed), or the requests of --corpus
(one JSON object per line, the form the report prints). JWT rules keep their issuer, audiences
and locations; their keys are replaced by keys the run makes. Exit 0 when every decision
agrees, 1 when some differ, 2 on a usage or configuration error. --random K compares K random
resource sets (seeds S, S+1, ...; auth-gate only) instead of a file, printing each set that
differs as YAML: `--random 1 --seed <its seed>` reproduces it. --trace prints every request with
both answers as it goes; --show N reproductions per group (3).";

/// Which plugin stands in for Istio's filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    AuthGate,
    PathAllowlist,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::AuthGate => "auth-gate",
            Target::PathAllowlist => "path-allowlist",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The user's resources; `None` with `random`.
    pub istio: Option<PathBuf>,
    /// Random resource sets to compare instead of a file.
    pub random: usize,
    pub target: Target,
    pub requests: usize,
    pub seed: u64,
    pub corpus: Option<PathBuf>,
    /// Another build of the plugin instead of `dist/<plugin>.wasm`.
    pub module: Option<PathBuf>,
    pub normalization: PathNormalization,
    /// Reproductions printed per group of differences.
    pub show: usize,
    /// Print every request with both decisions as it is sent (to read a corpus).
    pub trace: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut options = Options {
            istio: None,
            random: 0,
            target: Target::AuthGate,
            requests: 2000,
            seed: 1,
            corpus: None,
            module: None,
            normalization: PathNormalization::Base,
            show: 3,
            trace: false,
        };
        let mut module_of = None;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| Error(format!("{arg} needs a value")))
            };
            let number = |v: String| {
                v.parse::<u64>()
                    .map_err(|_| Error(format!("{arg} {v}: expected a number")))
            };
            match arg.as_str() {
                "--istio" => options.istio = Some(PathBuf::from(value()?)),
                "--random" => options.random = number(value()?)? as usize,
                "--plugin" => {
                    options.target = match value()?.as_str() {
                        "auth-gate" => Target::AuthGate,
                        "path-allowlist" => Target::PathAllowlist,
                        other => {
                            return Err(Error(format!(
                                "--plugin {other}: expected auth-gate or path-allowlist"
                            )))
                        }
                    }
                }
                "--requests" => options.requests = number(value()?)? as usize,
                "--seed" => options.seed = number(value()?)?,
                "--show" => options.show = number(value()?)? as usize,
                "--trace" => options.trace = true,
                "--corpus" => options.corpus = Some(PathBuf::from(value()?)),
                "--module" => {
                    let v = value()?;
                    let (plugin, file) = v
                        .split_once('=')
                        .ok_or_else(|| Error(format!("--module {v}: expected PLUGIN=FILE.wasm")))?;
                    module_of = Some(plugin.to_string());
                    options.module = Some(PathBuf::from(file));
                }
                "--normalization" => {
                    options.normalization = match value()?.as_str() {
                        "BASE" => PathNormalization::Base,
                        "MERGE_SLASHES" => PathNormalization::MergeSlashes,
                        "DECODE_AND_MERGE_SLASHES" => PathNormalization::DecodeAndMergeSlashes,
                        other => {
                            return Err(Error(format!(
                                "--normalization {other}: expected BASE, MERGE_SLASHES or DECODE_AND_MERGE_SLASHES"
                            )))
                        }
                    }
                }
                other => return Err(Error(format!("unknown argument {other}"))),
            }
        }
        if let Some(plugin) = module_of.filter(|p| p != options.target.name()) {
            return Err(Error(format!(
                "--module {plugin}=…: the compared plugin is {} (--plugin)",
                options.target.name()
            )));
        }
        match (&options.istio, options.random) {
            (None, 0) => Err(Error("--istio FILE.yaml or --random K is required".into())),
            (Some(_), k) if k > 0 => Err(Error("--istio and --random exclude each other".into())),
            (None, _) if options.target != Target::AuthGate => Err(Error(
                "--random makes policies with JWT rules and conditions: only auth-gate takes them"
                    .into(),
            )),
            _ => Ok(options),
        }
    }
}

/// What a gateway did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    Forwarded,
    Refused(u16),
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Forwarded => f.write_str("forwarded"),
            Decision::Refused(status) => write!(f, "refused {status}"),
        }
    }
}

/// A request the two gateways decided differently.
#[derive(Debug, Clone)]
pub struct Difference {
    pub request: Request,
    pub istio: Decision,
    pub plugin: Decision,
    /// What each side answered (the start of the body): the reason of a refusal.
    pub istio_said: String,
    pub plugin_said: String,
    /// The documented reason, when the plugin differs on purpose.
    pub known: Option<&'static str>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub requests: usize,
    pub differences: Vec<Difference>,
}

impl Report {
    pub fn unexplained(&self) -> impl Iterator<Item = &Difference> {
        self.differences.iter().filter(|d| d.known.is_none())
    }

    /// Differences grouped by what the request tried and how each side answered.
    pub fn render(&self, show: usize) -> String {
        let mut groups: BTreeMap<(bool, String, Decision, Decision), Vec<&Difference>> =
            BTreeMap::new();
        for d in &self.differences {
            groups
                .entry((d.known.is_some(), d.request.kind.clone(), d.istio, d.plugin))
                .or_default()
                .push(d);
        }
        let unexplained = self.unexplained().count();
        let mut out = format!(
            "{} requests, {} decided differently ({} unexplained, {} documented differences)\n",
            self.requests,
            self.differences.len(),
            unexplained,
            self.differences.len() - unexplained
        );
        for ((known, kind, istio, plugin), items) in &groups {
            out.push_str(&format!(
                "\n{} {kind}: istio {istio}, plugin {plugin} ({} requests)\n",
                if *known { "documented" } else { "DIFFERENT" },
                items.len()
            ));
            if let Some(reason) = items[0].known {
                out.push_str(&format!("  why: {reason}\n"));
            }
            out.push_str(&format!(
                "  istio said {:?}, plugin said {:?}\n",
                items[0].istio_said, items[0].plugin_said
            ));
            for d in items.iter().take(show) {
                out.push_str(&format!("  {}\n", d.request.to_line()));
            }
        }
        out
    }
}

/// Differences the plugins make on purpose: (plugin, what the request tried, the plugin's
/// answer, why). A difference is documented only when all three match; everything else counts.
pub const KNOWN_DIFFERENCES: &[(Target, &str, Decision, &str)] = &[
    (
        Target::AuthGate,
        "over maxTokenBytes",
        Decision::Refused(401),
        "a token longer than `maxTokenBytes` (8 KiB by default) is refused before any decoding: \
         a bound on the work one unauthenticated request can cause",
    ),
    (
        Target::AuthGate,
        "path: ",
        Decision::Refused(400),
        STRICTER_PATHS,
    ),
    (
        Target::PathAllowlist,
        "path: ",
        Decision::Refused(400),
        STRICTER_PATHS,
    ),
];

/// Why the plugins answer 400 to some paths Envoy forwards to RBAC.
const STRICTER_PATHS: &str = "when rules look at paths, the plugin refuses paths it cannot normalize safely \
(escaped `/` or `\\`, `%25`, `..;`, `#`, controls) instead of matching a spelling upstreams may read differently";

fn known(target: Target, d: &Difference) -> Option<&'static str> {
    KNOWN_DIFFERENCES
        .iter()
        .find(|(t, kind, answer, _)| {
            *t == target && d.request.kind.contains(kind) && *answer == d.plugin
        })
        .map(|(_, _, _, why)| *why)
}

/// One comparison: which resources, and what it found.
pub struct Run {
    /// The file, or the random set's seed.
    pub title: String,
    pub resources: Resources,
    pub report: Report,
}

/// Starts both gateways and compares their decisions on every request: for the file, or for
/// each random set, handing each finished comparison to `done` (a long random run reports as
/// it goes).
pub fn run(options: &Options, mut done: impl FnMut(&Run)) -> Result<()> {
    let corpus = match &options.corpus {
        Some(file) => Some(Request::parse_corpus(
            &std::fs::read_to_string(file)
                .map_err(|e| Error(format!("{}: {e}", file.display())))?,
        )?),
        None => None,
    };
    let mut sets = Vec::new();
    match &options.istio {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error(format!("{}: {e}", file.display())))?;
            let resources =
                Resources::parse(&text).map_err(|e| Error(format!("{}: {e}", file.display())))?;
            sets.push((file.display().to_string(), options.seed, resources));
        }
        None => {
            for seed in options.seed..options.seed + options.random as u64 {
                let resources = random::resources(&mut Rng::new(seed));
                sets.push((format!("random set, --seed {seed}"), seed, resources));
            }
        }
    }
    for (title, seed, resources) in sets {
        let keys = tokens::Keys::from_seed(seed);
        let requests = match &corpus {
            Some(requests) => requests.clone(),
            None => {
                Generator::new(&resources, &keys).requests(options.requests, &mut Rng::new(seed))
            }
        };
        let report = compare(&resources, &keys, options, &requests)
            .map_err(|e| Error(format!("{title}: {e}")))?;
        done(&Run {
            title,
            resources,
            report,
        });
    }
    Ok(())
}

/// The differential run proper, on given requests.
pub fn compare(
    resources: &Resources,
    keys: &tokens::Keys,
    options: &Options,
    requests: &[Request],
) -> Result<Report> {
    let jwks = keys.jwks();
    let normalization = match options.normalization {
        PathNormalization::MergeSlashes => "MERGE_SLASHES",
        PathNormalization::DecodeAndMergeSlashes => "DECODE_AND_MERGE_SLASHES",
        PathNormalization::Base | PathNormalization::None => "BASE",
    };
    let config = match options.target {
        Target::AuthGate => resources.auth_gate_config(&jwks, normalization),
        Target::PathAllowlist => resources.path_allowlist_config(normalization),
    };
    let mut plugin = Plugin::from_dist(options.target.name(), config);
    if let Some(module) = &options.module {
        plugin.module = module.clone();
    }
    let answer = Some(DirectResponse {
        status: 200,
        content_type: "text/plain".into(),
        body: "forwarded".into(),
    });
    let reference = Envoy::start(EnvoyConfig {
        native_filters: istiod::native_filters(resources, &jwks)?,
        direct_response: answer.clone(),
        path_normalization: options.normalization,
        ..Default::default()
    })
    .map_err(|e| Error(format!("the Istio reference Envoy did not start: {e}")))?;
    let candidate = Envoy::start(EnvoyConfig {
        plugins: vec![plugin],
        direct_response: answer,
        path_normalization: options.normalization,
        ..Default::default()
    })
    .map_err(|e| {
        Error(format!(
            "the {} Envoy did not start: {e}",
            options.target.name()
        ))
    })?;
    let mut report = Report {
        requests: requests.len(),
        differences: Vec::new(),
    };
    for request in requests {
        let (istio, istio_said) = decide(&reference, request)?;
        let (plugin, plugin_said) = decide(&candidate, request)?;
        if options.trace {
            println!(
                "istio {istio} {istio_said:?} | plugin {plugin} {plugin_said:?} | {}",
                request.to_line()
            );
        }
        if istio != plugin {
            let mut difference = Difference {
                request: request.clone(),
                istio,
                plugin,
                istio_said,
                plugin_said,
                known: None,
            };
            difference.known = known(options.target, &difference);
            report.differences.push(difference);
        }
    }
    Ok(report)
}

fn decide(envoy: &Envoy, request: &Request) -> Result<(Decision, String)> {
    let authority = envoy.listener().to_string();
    let response = http::send_raw(&authority, &request.wire(&authority))?;
    // Only the route answers 200 (the filters refuse with other codes); HEAD gets no body.
    let decision = if response.status == 200 {
        Decision::Forwarded
    } else {
        Decision::Refused(response.status)
    };
    let said: String = response.text().chars().take(80).collect();
    Ok((decision, said))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "Known differences from Istio" section of each plugin README is exactly the table
    /// the comparison uses: one row per entry, with its reason.
    #[test]
    fn readme_known_differences_are_the_table() {
        for target in [Target::AuthGate, Target::PathAllowlist] {
            let readme = std::fs::read_to_string(
                harness_runner::repo_root().join(format!("plugins/{}/README.md", target.name())),
            )
            .unwrap();
            let section = readme
                .split("## Known differences from Istio")
                .nth(1)
                .and_then(|rest| rest.split("\n## ").next())
                .unwrap_or_else(|| panic!("{} README has no known differences", target.name()));
            let rows: Vec<&str> = section
                .lines()
                .filter(|l| {
                    l.starts_with("| ") && !l.starts_with("| request") && !l.starts_with("| ---")
                })
                .collect();
            let entries: Vec<_> = KNOWN_DIFFERENCES
                .iter()
                .filter(|(t, ..)| *t == target)
                .collect();
            assert_eq!(rows.len(), entries.len(), "{}: {rows:?}", target.name());
            for (_, kind, answer, why) in entries {
                let Decision::Refused(status) = answer else {
                    panic!("a documented difference is a refusal")
                };
                assert!(
                    rows.iter().any(|row| row.contains(&format!("`{}…`", kind))
                        && row.contains(&format!("`{status}`"))
                        && row.contains(why)),
                    "{}: no row for {kind:?} {status} {why:?}",
                    target.name()
                );
            }
        }
    }

    #[test]
    fn options_name_what_is_wrong() {
        let parse =
            |args: &[&str]| Options::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>());
        assert!(parse(&[]).unwrap_err().0.contains("--istio"));
        assert!(parse(&["--istio", "a", "--random", "2"]).is_err());
        assert!(parse(&["--random", "2", "--plugin", "path-allowlist"]).is_err());
        assert!(parse(&["--istio", "a", "--plugin", "x"])
            .unwrap_err()
            .0
            .contains("--plugin x"));
        assert!(parse(&["--istio", "a", "--module", "auth-gate"]).is_err());
        assert!(parse(&["--istio", "a", "--module", "path-allowlist=m.wasm"]).is_err());
        assert!(parse(&["--istio", "a", "--requests", "many"]).is_err());
        let options = parse(&[
            "--istio",
            "a",
            "--module",
            "auth-gate=/tmp/m.wasm",
            "--normalization",
            "MERGE_SLASHES",
        ])
        .unwrap();
        assert_eq!(options.module, Some(PathBuf::from("/tmp/m.wasm")));
        assert_eq!(options.normalization, PathNormalization::MergeSlashes);
    }

    #[test]
    fn harness_diff_checks_its_istio_file() {
        let file = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {paths: [/a]}}]}]\n---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: j}\nspec:\n  jwtrules: []\n";
        let err = crate::Resources::parse(file).unwrap_err().0;
        assert_eq!(
            err,
            "document 2: RequestAuthentication default/j: spec.jwtrules: unknown field (did you mean jwtRules?)"
        );
    }

    /// The YAML `harness diff --random` prints for a differing set is what `--istio` reads back.
    #[test]
    fn random_policy_sets_pass_the_crd_check() {
        let mut rng = harness_runner::rng::Rng::new(1);
        for _ in 0..300 {
            let resources = crate::random::resources(&mut rng);
            if resources.jwt_rules.is_empty() && resources.policies.is_empty() {
                continue;
            }
            let yaml = resources.to_yaml();
            if let Err(e) = crate::Resources::parse(&yaml) {
                panic!("{e}\n{yaml}");
            }
        }
    }
}
