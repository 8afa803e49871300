//! The steps of `harness demo`: the CLI replays them against the gateway it starts, and the
//! harness's own tests check them; chaos's traffic carries its tokens.
//!
//! The walkthrough this project started from (the BERT emotion model on KServe behind Istio, and
//! the Kubeflow gateway's path allowlist and JWT rule), replayed against a running gateway: each
//! step is a request, what the walkthrough says it must answer, and the headers worth showing.

use harness_runner::http;

/// Where a step's request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The gateway listener, as a client.
    Gateway,
    /// Envoy's admin interface (`/stats/prometheus`), as the BERT emotion walkthrough's
    /// `kubectl exec … curl localhost:15000`.
    Admin,
}

/// One request of the walkthrough and what it must get.
pub struct Step {
    pub title: &'static str,
    pub target: Target,
    pub method: &'static str,
    pub path: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub expect_status: u16,
    /// A header the answer must carry, with its value.
    pub expect_header: Option<(&'static str, &'static str)>,
    /// Texts the body must contain.
    pub expect_body: Vec<String>,
}

/// The demo's token issuer (`jwtRules` in `wasmplugin-manifests/gateway/auth-gate.yaml`, and
/// in the `authGate` section of `gateway-bundle/model-gateway.yaml`, carries its public key).
/// Its private key was thrown away after signing the tokens below.
pub const DEMO_ISSUER: &str = "https://dex.example.com";
/// A token for `demo-user`, audience `kserve`, valid until 2100.
pub const DEMO_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ta2V5LTEiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImRlbW8tdXNlciIsImF1ZCI6ImtzZXJ2ZSIsImlhdCI6MTc2NzIyNTYwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.UsDh-OscVE6e4KLfDtgDo60qYlcAJqdhuVEhP0mH6-bOqnE1hHFub8hPR2JktJ1RVmYtC1mSyHooD9741MbJhie9ceR6UgVzAT5l_3V0jiGYP81zlLMiDCoj6yrL6KOpA8bbwz4fwH1oMDboo0ZAFV4YBQzLDXXmhhJscFuFLVP9dXopt9nuLAt5mm8MaS3GtW-UtipSwNBZGv36hmLcSVo9lVgN03_yKc7d1sfgkdLPDPXK0seHeA5Q4Q6eN9HzGFEFZzoRDvufqW8ewTkBR51FetTWxXuYyukrIK6wfHI50SpdWQRgfVa9C8llSSTRGzQjsZeC_keCbk9F_5OsuQ";
/// The same claims signed by another key: a forgery.
pub const FORGED_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRlbW8ta2V5LTEiLCJ0eXAiOiJKV1QifQ.eyJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImRlbW8tdXNlciIsImF1ZCI6ImtzZXJ2ZSIsImlhdCI6MTc2NzIyNTYwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.gV6oLrYW3xoI9ZMmGNtpdnFaiiAsvl3NhLuFFGwRzcQSvVTZONEidyh-RwChj0sylZxNKIc-qbjFkpkktARmAm4MW9iSoa1mH3Om8SEyNuo_EGbXzrLyPMnWPOK55WPKOm5kz0n9DXNf1h-28kP4XcC0zP9UnfI3x_jwn8aArEsxzTJFQxLb5I9hEreAisChX9PEjVYa4OXPMP2pMVFzMyZIlZ68yZAdJUdJQY4NHdTG69Q8bgcZn4Y0RydnaofiXhzsGlVMZar2qlwlrQgCrNFhXt_9KSDuZ4TgQ5AcpRvvVcq0uETZkUg0pW5JpJiSB1HDC81aD93JnRq_MDuMrg";

const PREDICT: &str = "/v1/models/bert-emotion-model:predict";
const INFER_V2: &str = "/v2/models/bert-emotion-model/infer";

fn host() -> (&'static str, String) {
    ("host", "bert-model.default.example.com".to_string())
}

fn json() -> (&'static str, String) {
    ("content-type", "application/json".to_string())
}

fn x_test() -> (&'static str, String) {
    ("x-test", "istio-is-cool".to_string())
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn gateway(
    title: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: &str,
    expect_status: u16,
) -> Step {
    Step {
        title,
        target: Target::Gateway,
        method,
        path,
        headers,
        body: body.to_string(),
        expect_status,
        expect_header: None,
        expect_body: Vec::new(),
    }
}

impl Step {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.expect_header = Some((name, value));
        self
    }

    fn body_has(mut self, text: &str) -> Self {
        self.expect_body.push(text.to_string());
        self
    }
}

/// The BERT emotion walkthrough and the Kubeflow gateway's rules, replayed through the four
/// plugins of `wasmplugin-manifests/gateway/` or the bundle of `gateway-bundle/`: every answer
/// checked here (statuses, bodies, headers, metric names) is the plugins' own in both forms.
pub fn steps() -> Vec<Step> {
    let sentence = |input: &str| {
        format!(
            r#"{{"inputs":[{{"name":"text","shape":[1],"datatype":"BYTES","data":["{input}"]}}]}}"#
        )
    };
    let mut steps = vec![
        gateway(
            "BERT emotion: the model is ready (v1 metadata)",
            "GET",
            "/v1/models/bert-emotion-model",
            vec![host()],
            "",
            200,
        )
        .body_has(r#""ready":"True""#),
        gateway(
            "BERT emotion header gate: a prediction without the X-Test header is denied",
            "POST",
            PREDICT,
            vec![host(), json()],
            r#"{"input": "The sky is blue and the sun is shining"}"#,
            403,
        )
        .body_has("RBAC: access denied"),
        gateway(
            "BERT emotion header gate: with X-Test: istio-is-cool it is admitted",
            "POST",
            PREDICT,
            vec![host(), json(), x_test()],
            r#"{"input": "The sky is blue and the sun is shining"}"#,
            200,
        )
        .body_has(r#"{"predictions":[[{"label":"joy""#),
        gateway(
            "Kubeflow allowlist: /admin is not on the allowlist (even with a valid token)",
            "GET",
            "/admin",
            vec![host(), bearer(DEMO_TOKEN)],
            "",
            403,
        )
        .body_has("RBAC: access denied"),
        gateway(
            "Kubeflow allowlist: path tricks do not reach /admin",
            "GET",
            "/v1/models/../../admin",
            vec![host(), bearer(DEMO_TOKEN)],
            "",
            403,
        )
        .body_has("RBAC: access denied"),
        gateway(
            "Kubeflow require-jwt: /healthz without a token is denied",
            "GET",
            "/healthz",
            vec![host()],
            "",
            403,
        )
        .body_has("RBAC: access denied"),
        gateway(
            "Kubeflow require-jwt: a forged token is rejected",
            "GET",
            "/healthz",
            vec![host(), bearer(FORGED_TOKEN)],
            "",
            401,
        )
        .body_has("Jwt verification fails"),
        gateway(
            "Kubeflow require-jwt: a valid token is admitted",
            "GET",
            "/healthz",
            vec![host(), bearer(DEMO_TOKEN)],
            "",
            200,
        ),
        gateway(
            "BERT emotion ratelimit: the 2nd prediction in a minute is still admitted",
            "POST",
            PREDICT,
            vec![host(), json(), x_test()],
            r#"{"input": "Istio is lovely"}"#,
            200,
        )
        .body_has(r#"{"predictions":[[{"label":"love""#),
        gateway(
            "BERT emotion ratelimit: the 3rd is over the 2/minute limit",
            "POST",
            PREDICT,
            vec![host(), json(), x_test()],
            r#"{"input": "Istio is lovely"}"#,
            429,
        )
        .header("x-envoy-ratelimited", "true"),
    ];
    for input in [
        "The mood was somber",
        "Istio is scary",
        "The atmosphere was exciting",
        "The group was surprised by how much the can do with Istio",
        "Istio is lovely",
    ] {
        steps.push(gateway(
            "BERT emotion stats: a prediction (v2 protocol, its own rate limit)",
            "POST",
            INFER_V2,
            vec![host(), json()],
            &sentence(input),
            200,
        ));
    }
    let mut stats = Step {
        title: "BERT emotion stats: top labels counted on /stats/prometheus, with labels",
        target: Target::Admin,
        method: "GET",
        path: "/stats/prometheus",
        headers: Vec::new(),
        body: String::new(),
        expect_status: 200,
        expect_header: None,
        expect_body: Vec::new(),
    };
    for (label, count) in [
        ("joy", 2),
        ("love", 2),
        ("sadness", 1),
        ("fear", 1),
        ("surprise", 1),
    ] {
        stats = stats.body_has(&format!(
            r#"emotion_stats_top_label_total{{model="bert-emotion-model",label="{label}"}} {count}"#
        ));
    }
    steps.push(stats);
    steps
}

/// What to try once the walkthrough is over, against the state it leaves: the v1 predictions'
/// 2 per minute are used up, so a prediction goes to the v2 protocol (10 per minute, 5 used).
pub fn suggestions() -> Vec<Step> {
    vec![
        gateway(
            "a prediction with the v2 protocol",
            "POST",
            INFER_V2,
            vec![json()],
            r#"{"inputs":[{"name":"text","shape":[1],"datatype":"BYTES","data":["Istio is lovely"]}]}"#,
            200,
        )
        .body_has(r#""data":["love"]"#),
        gateway(
            "a v1 prediction without X-Test: istio-is-cool",
            "POST",
            PREDICT,
            vec![json()],
            r#"{"input": "Istio is lovely"}"#,
            403,
        ),
        gateway(
            "/healthz with the demo user's token",
            "GET",
            "/healthz",
            vec![bearer(DEMO_TOKEN)],
            "",
            200,
        ),
        gateway(
            "a path trick to /admin, sent as is",
            "GET",
            "/v1/models/../../admin",
            vec![bearer(DEMO_TOKEN)],
            "",
            403,
        ),
        Step {
            title: "the predicted emotions, counted",
            target: Target::Admin,
            method: "GET",
            path: "/stats/prometheus",
            headers: Vec::new(),
            body: String::new(),
            expect_status: 200,
            expect_header: None,
            expect_body: vec!["emotion_stats_top_label_total".to_string()],
        },
    ]
}

/// The tokens the curl lines name by variable (they are too long to read inline).
const TOKEN_VARIABLES: [(&str, &str); 2] =
    [("DEMO_TOKEN", DEMO_TOKEN), ("FORGED_TOKEN", FORGED_TOKEN)];

/// The `export` lines that define the variables of [`curl_line`].
pub fn token_exports() -> Vec<String> {
    TOKEN_VARIABLES
        .iter()
        .map(|(variable, token)| format!("export {variable}={token}"))
        .collect()
}

/// A step as a command line that works when pasted into a shell (after [`token_exports`]):
/// every argument quoted, tokens as `$DEMO_TOKEN`/`$FORGED_TOKEN`, `--path-as-is` where curl
/// would resolve `.`/`..` itself. A gateway step shows the answer's status and headers (`-i`);
/// the admin step keeps the emotion counters of `/stats/prometheus`.
pub fn curl_line(step: &Step, base: &str) -> String {
    let mut line = String::from("curl");
    if step.target == Target::Gateway {
        line.push_str(" -i");
    } else {
        line.push_str(" -s");
    }
    let path_only = step.path.split('?').next().unwrap_or_default();
    if path_only
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        line.push_str(" --path-as-is");
    }
    // GET without a body and POST with one are what curl sends by itself.
    if !matches!(
        (step.method, step.body.is_empty()),
        ("GET", true) | ("POST", false)
    ) {
        line.push_str(&format!(" -X {}", step.method));
    }
    for (name, value) in &step.headers {
        let header = format!("{name}: {value}");
        let variable = TOKEN_VARIABLES
            .iter()
            .find(|(_, token)| header.contains(token));
        match variable {
            // Double quotes, so the shell expands the variable.
            Some((variable, token)) => line.push_str(&format!(
                " -H \"{}\"",
                header.replace(token, &format!("${variable}"))
            )),
            None => line.push_str(&format!(" -H {}", shell_quote(&header))),
        }
    }
    if !step.body.is_empty() {
        line.push_str(&format!(" -d {}", shell_quote(&step.body)));
    }
    line.push_str(&format!(
        " {}",
        shell_quote(&format!("{base}{}", step.path))
    ));
    if step.target == Target::Admin {
        line.push_str(" | grep emotion_stats_top_label_total");
    }
    line
}

/// `text` as one single-quoted shell word.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Headers shown for every answer when present.
const SHOWN_HEADERS: [&str; 4] = [
    "content-type",
    "x-envoy-ratelimited",
    "www-authenticate",
    "server",
];

/// Runs the steps against a gateway (`http://host:port` of the listener and of the admin
/// interface), printing each; returns how many failed.
pub fn run(gateway_base: &str, admin_base: &str, steps: &[Step]) -> usize {
    let mut failures = 0;
    for (i, step) in steps.iter().enumerate() {
        println!("\n[{}] {}", i + 1, step.title);
        let base = match step.target {
            Target::Gateway => gateway_base,
            Target::Admin => admin_base,
        };
        println!("    $ {}", curl_line(step, base));
        let headers: Vec<(&str, &str)> =
            step.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let problems = match http::send(
            step.method,
            &format!("{base}{}", step.path),
            &headers,
            step.body.as_bytes(),
        ) {
            Ok(response) => {
                println!("    < {}", response.status);
                for name in SHOWN_HEADERS {
                    if let Some(value) = response.header(name) {
                        println!("    < {name}: {value}");
                    }
                }
                match step.target {
                    Target::Gateway => println!("    {}", abbreviate(&response.text(), 160)),
                    Target::Admin => {
                        for line in response
                            .text()
                            .lines()
                            .filter(|l| l.starts_with("emotion_stats_top_label_total{"))
                        {
                            println!("    {line}");
                        }
                    }
                }
                check(step, &response)
            }
            Err(e) => vec![format!("no answer: {e}")],
        };
        if problems.is_empty() {
            println!("    ok");
        } else {
            failures += 1;
            for problem in problems {
                println!("    FAILED: {problem}");
            }
        }
    }
    failures
}

fn check(step: &Step, response: &http::Response) -> Vec<String> {
    let mut problems = Vec::new();
    if response.status != step.expect_status {
        problems.push(format!(
            "expected status {}, got {}",
            step.expect_status, response.status
        ));
    }
    if let Some((name, value)) = step.expect_header {
        if response.header(name) != Some(value) {
            problems.push(format!(
                "expected header {name}: {value}, got {:?}",
                response.header(name)
            ));
        }
    }
    let body = response.text();
    for text in &step.expect_body {
        if !body.contains(text.as_str()) {
            problems.push(format!("expected the body to contain {text:?}"));
        }
    }
    problems
}

fn abbreviate(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    match one_line.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_fails_on_status_header_or_body_mismatch() {
        let step = gateway("t", "GET", "/", vec![], "", 429)
            .header("x-envoy-ratelimited", "true")
            .body_has("limit");
        let good = http::Response {
            status: 429,
            headers: vec![("x-envoy-ratelimited".into(), "true".into())],
            body: b"over the limit".to_vec(),
        };
        assert!(check(&step, &good).is_empty());
        let bad = http::Response {
            status: 200,
            headers: vec![],
            body: b"fine".to_vec(),
        };
        assert_eq!(check(&step, &bad).len(), 3);
    }

    #[test]
    fn curl_lines_paste_as_they_are_printed() {
        let base = "http://127.0.0.1:1";
        let lines: Vec<String> = steps().iter().map(|s| curl_line(s, base)).collect();
        for line in &lines {
            assert!(!line.contains('…'), "abbreviated: {line}");
            assert!(
                !line.contains(DEMO_TOKEN) && !line.contains(FORGED_TOKEN),
                "{line}"
            );
        }
        let trick = lines.iter().find(|l| l.contains("/../")).unwrap();
        assert!(trick.contains(" --path-as-is "), "{trick}");
        assert!(lines
            .iter()
            .any(|l| l.contains(r#"-H "authorization: Bearer $FORGED_TOKEN""#)));
        let quoted = gateway("t", "DELETE", "/a", vec![], "it's", 200);
        assert_eq!(
            curl_line(&quoted, base),
            r"curl -i -X DELETE -d 'it'\''s' 'http://127.0.0.1:1/a'"
        );
        let exports = token_exports().join("\n");
        assert!(exports.contains(&format!("export DEMO_TOKEN={DEMO_TOKEN}\n")));
    }

    #[test]
    fn long_bodies_are_abbreviated_on_char_boundaries() {
        assert_eq!(abbreviate("short", 160), "short");
        let long = "é".repeat(200);
        assert_eq!(abbreviate(&long, 160).chars().count(), 161);
    }
}
