//! The walkthrough of the seeds, replayed against a running gateway: each step is a request, what
//! the seed says it must answer, and the headers worth showing.

use crate::http;

/// One request of the walkthrough and what it must get.
pub struct Step {
    pub title: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: &'static str,
    pub expect_status: u16,
    /// A header the answer must carry, with its value.
    pub expect_header: Option<(&'static str, &'static str)>,
    /// Text the body must contain.
    pub expect_body: Option<&'static str>,
}

const HOST: (&str, &str) = ("host", "bert-model.default.example.com");
const JSON: (&str, &str) = ("content-type", "application/json");

/// Seed 003's walkthrough, in order.
pub fn steps() -> Vec<Step> {
    vec![
        Step {
            title: "seed 003: the model answers through the gateway",
            method: "GET",
            path: "/v1/models/bert-emotion-model",
            headers: &[HOST],
            body: "",
            expect_status: 200,
            expect_header: None,
            expect_body: Some(r#""ready":"True""#),
        },
        Step {
            title: "seed 003: a prediction",
            method: "POST",
            path: "/v1/models/bert-emotion-model:predict",
            headers: &[HOST, JSON, ("x-test", "istio-is-cool")],
            body: r#"{"input": "Istio is the best service mesh"}"#,
            expect_status: 200,
            expect_header: None,
            expect_body: Some(r#"{"predictions":[[{"label":"joy""#),
        },
    ]
}

/// Headers shown for every answer when present.
const SHOWN_HEADERS: [&str; 4] = [
    "content-type",
    "x-envoy-ratelimited",
    "www-authenticate",
    "server",
];

/// Runs the steps against `base_url` (`http://host:port`), printing each; returns how many failed.
pub fn run(base_url: &str, steps: &[Step]) -> usize {
    let mut failures = 0;
    for (i, step) in steps.iter().enumerate() {
        println!("\n[{}] {}", i + 1, step.title);
        let headers: String = step
            .headers
            .iter()
            .map(|(n, v)| format!(" -H '{n}: {v}'"))
            .collect();
        let data = if step.body.is_empty() {
            String::new()
        } else {
            format!(" -d '{}'", step.body)
        };
        println!(
            "    $ curl -X {}{headers}{data} {base_url}{}",
            step.method, step.path
        );
        let problems = match http::send(
            step.method,
            &format!("{base_url}{}", step.path),
            step.headers,
            step.body.as_bytes(),
        ) {
            Ok(response) => {
                println!("    < {}", response.status);
                for name in SHOWN_HEADERS {
                    if let Some(value) = response.header(name) {
                        println!("    < {name}: {value}");
                    }
                }
                println!("    {}", abbreviate(&response.text()));
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
    if let Some(text) = step.expect_body {
        if !response.text().contains(text) {
            problems.push(format!("expected the body to contain {text:?}"));
        }
    }
    problems
}

fn abbreviate(text: &str) -> String {
    const MAX: usize = 160;
    let one_line = text.replace('\n', " ");
    match one_line.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_fails_on_status_header_or_body_mismatch() {
        let step = Step {
            title: "t",
            method: "GET",
            path: "/",
            headers: &[],
            body: "",
            expect_status: 429,
            expect_header: Some(("x-envoy-ratelimited", "true")),
            expect_body: Some("limit"),
        };
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
    fn long_bodies_are_abbreviated_on_char_boundaries() {
        assert_eq!(abbreviate("short"), "short");
        let long = "é".repeat(200);
        assert_eq!(abbreviate(&long).chars().count(), 161);
    }
}
