//! The decision for one request: descriptors from the actions, a limit per descriptor from the
//! tree, one token from every limited bucket. The request is admitted only if every enforced
//! limit admits it; when one refuses, the tokens already taken from the others are given back,
//! so a refused request costs no quota (upstream counts it against every limit).

use crate::actions::{build_descriptors, RequestView};
use crate::bucket::{Bucket, Rate};
use crate::compiled::Compiled;
use crate::matcher::{Limit, Matched};
use crate::metrics::{Counters, PluginStat, Stat};
use crate::store::{self, BucketRef, Failure, SharedData, Taken};
use hashbrown::HashSet;
use plugin_kit::deny::LocalReply;
use std::fmt::Write;

/// What the plugin does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it; add these headers to the response.
    Admit {
        response_headers: Vec<(&'static str, String)>,
    },
    Reject(LocalReply),
}

/// A limit's state for the `x-ratelimit-*` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Status<'a> {
    limit: u32,
    window_secs: u64,
    name: Option<&'a str>,
    remaining: u32,
    reset_ns: u64,
}

const NS_PER_SEC: u64 = 1_000_000_000;

/// Every shared-data key this configuration may touch, to create when it is accepted: the
/// table, the bucket of each rule without per-value buckets, the overflow bucket of each rule
/// with them.
pub fn shared_keys(compiled: &Compiled) -> impl Iterator<Item = String> + '_ {
    let rules = compiled.buckets.iter().flatten().map(|b| match &b.fixed {
        Some(id) => store::rule_key(id),
        None => store::overflow_key(&b.rule),
    });
    (0..compiled.settings.max_keys)
        .map(store::slot_key)
        .chain(rules)
}

/// Seconds, rounded up: a client told "0" would retry too early.
fn ceil_secs(ns: u64) -> u64 {
    ns.div_ceil(NS_PER_SEC)
}

/// Decides for one request at `now_ns`.
pub fn check(
    compiled: &Compiled,
    shared: &dyn SharedData,
    counters: &mut dyn Counters,
    request: &dyn RequestView,
    now_ns: u64,
) -> Verdict {
    let settings = &compiled.settings;
    let mut matched: Vec<(Matched, &Limit, u32)> = Vec::new();
    for descriptor in build_descriptors(&compiled.policies, request) {
        if descriptor.hits_invalid {
            counters.plugin(PluginStat::InvalidHitsAddend);
        }
        let Some(m) = compiled.tree.lookup(&descriptor.entries) else {
            continue;
        };
        if let Some(limit) = compiled.tree.limit(m.limit) {
            matched.push((m, limit, descriptor.hits));
        }
    }
    // Upstream `replaces`: a matched limit drops the limits it names, for this request.
    let replaced: HashSet<&str> = matched
        .iter()
        .flat_map(|(_, limit, _)| limit.replaces.iter().map(String::as_str))
        .collect();
    matched.retain(|(_, limit, _)| !limit.name.as_deref().is_some_and(|n| replaced.contains(n)));

    let mut taken: Vec<Taken> = Vec::new();
    let mut statuses: Vec<Status> = Vec::new();
    let mut refused = false;
    // The longest wait of the refusing limits; a limit that can never admit the request (a
    // zero limit, or a weight above its capacity) gives none: retrying would not help.
    let mut retry_after_ns: Option<u64> = None;
    for &(ref m, limit, hits) in &matched {
        let values = m.bucket_values.as_slice();
        counters.rule(limit, values, Stat::TotalHits);
        let Some(Some(bucket)) = compiled.buckets.get(m.limit) else {
            counters.rule(limit, values, Stat::WithinLimit);
            continue;
        };
        let rate = bucket.rate;
        let shadow = settings.shadow_mode || limit.shadow_mode;
        let enforced = !shadow && !limit.quota_mode;
        let target = BucketRef {
            id: match bucket.fixed {
                Some(id) if !m.per_value => id,
                _ => store::bucket_identity(&bucket.rule, &m.bucket_values),
            },
            rule: bucket.rule,
            rate,
            per_value: m.per_value,
        };
        match store::take(shared, &target, settings.max_keys, now_ns, hits) {
            Ok(t) => {
                if t.overflow {
                    counters.plugin(PluginStat::TableOverflow);
                }
                statuses.push(status(limit, rate, &t.bucket));
                if t.admitted {
                    counters.rule(limit, values, Stat::WithinLimit);
                    let used = rate.capacity.saturating_sub(t.bucket.remaining());
                    // Upstream: near when more than 80 % of the limit is used.
                    if u64::from(used) > u64::from(rate.capacity) * 4 / 5 {
                        counters.rule(limit, values, Stat::NearLimit);
                    }
                    taken.push(t);
                } else {
                    counters.rule(limit, values, Stat::OverLimit);
                    if shadow {
                        counters.rule(limit, values, Stat::ShadowMode);
                    }
                    // Upstream answers a quota-mode limit with its quota state, never with a
                    // refusal.
                    if enforced {
                        refused = true;
                        if let Some(wait) = t.bucket.ns_until_tokens(hits) {
                            retry_after_ns = Some(retry_after_ns.map_or(wait, |w| w.max(wait)));
                        }
                    }
                }
            }
            Err(failure) => {
                counters.plugin(match failure {
                    Failure::Contention => PluginStat::Contention,
                    Failure::Store => PluginStat::StoreError,
                });
                log::warn!(
                    "local-ratelimit: bucket of `{}` unavailable ({failure:?}); {}",
                    limit.full_key,
                    if settings.failure_mode_deny && enforced {
                        "refusing (failure_mode_deny)"
                    } else {
                        "admitting"
                    }
                );
                if settings.failure_mode_deny && enforced {
                    refused = true;
                }
            }
        }
    }

    let mut headers = if settings.x_ratelimit_headers {
        x_ratelimit_headers(&statuses)
    } else {
        Vec::new()
    };
    if !refused {
        return Verdict::Admit {
            response_headers: headers,
        };
    }
    for t in &taken {
        if let Err(failure) = store::give_back(shared, t, now_ns) {
            // The token stays spent: stricter, never looser.
            log::warn!("local-ratelimit: could not give a token back ({failure:?})");
        }
    }
    headers.insert(0, ("x-envoy-ratelimited", "true".to_string()));
    if let Some(wait) = retry_after_ns {
        headers.push(("retry-after", ceil_secs(wait).max(1).to_string()));
    }
    Verdict::Reject(LocalReply {
        status: settings.status,
        headers,
        body: settings.body.as_bytes().to_vec(),
    })
}

fn status<'a>(limit: &'a Limit, rate: Rate, bucket: &Bucket) -> Status<'a> {
    Status {
        limit: rate.capacity,
        window_secs: rate.period_ns / NS_PER_SEC,
        name: limit.name.as_deref(),
        remaining: bucket.remaining(),
        reset_ns: bucket.ns_until_full(),
    }
}

/// Envoy's `DRAFT_VERSION_03` headers: the limit closest to its end (least remaining, first on
/// ties) gives `remaining` and `reset`; `limit` lists it and then every limit with its window.
fn x_ratelimit_headers(statuses: &[Status]) -> Vec<(&'static str, String)> {
    let Some(closest) = statuses.iter().min_by_key(|s| s.remaining) else {
        return Vec::new();
    };
    let mut limit = closest.limit.to_string();
    // Written in place: writing to a `String` cannot fail.
    for s in statuses {
        let _ = write!(limit, ", {};w={}", s.limit, s.window_secs);
        if let Some(name) = s.name {
            let _ = write!(limit, ";name=\"{name}\"");
        }
    }
    vec![
        ("x-ratelimit-limit", limit),
        ("x-ratelimit-remaining", closest.remaining.to_string()),
        ("x-ratelimit-reset", ceil_secs(closest.reset_ns).to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiled::compile;
    use crate::config::Config;
    use crate::metrics::fake::{plugin_name, rule_name, FakeHost};
    use crate::metrics::Registry;
    use crate::store::ensure_keys;
    use crate::store::fake::FakeStore;
    use plugin_kit::config::parse;
    use std::net::IpAddr;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const SEC: u64 = NS_PER_SEC;
    const PREDICT: &str = "/v1/models/bert-emotion-model:predict";
    const WALKTHROUGH_DESCRIPTORS: &str = r#""descriptors":[
        {"key":"path","value":"/v1/models/bert-emotion-model:predict",
         "rate_limit":{"unit":"minute","requests_per_unit":2},
         "descriptors":[{"key":"x-api-key","rate_limit":{"unit":"minute","requests_per_unit":5}}]},
        {"key":"path","rate_limit":{"unit":"minute","requests_per_unit":10}}]"#;
    const WALKTHROUGH_ACTIONS: &str = r#""rate_limits":[
        {"actions":[{"request_headers":{"header_name":":path","descriptor_key":"path"}},
                    {"request_headers":{"header_name":"x-api-key","descriptor_key":"x-api-key"}}]},
        {"actions":[{"request_headers":{"header_name":":path","descriptor_key":"path"}}]}]"#;

    /// A request's headers as the host would give them (leaked: a test's requests are few).
    struct Req(crate::actions::HeaderPairs<'static>);

    impl Req {
        fn new(headers: Vec<(String, String)>) -> Self {
            let pairs = plugin_kit::headers::HeaderMap::from_pairs(headers);
            Req(crate::actions::HeaderPairs::new(Box::leak(Box::new(pairs))))
        }
    }

    impl RequestView for Req {
        fn header_values(&self, name: &str) -> Vec<&str> {
            self.0.values(name)
        }
        fn remote_ip(&self) -> Option<IpAddr> {
            None
        }
    }

    fn req(path: &str, api_key: Option<&str>) -> Req {
        let mut headers = vec![(":path".to_string(), path.to_string())];
        if let Some(key) = api_key {
            headers.push(("x-api-key".to_string(), key.to_string()));
        }
        Req::new(headers)
    }

    /// The counters of `compiled`, as the glue defines them when it is accepted.
    fn registry(compiled: &Compiled) -> Registry<FakeHost> {
        Registry::define(
            FakeHost::default(),
            &compiled.domain,
            compiled.tree.limits(),
        )
    }

    struct World {
        compiled: Compiled,
        store: FakeStore,
        metrics: Registry<FakeHost>,
    }

    impl World {
        fn new(extra: &str) -> World {
            World::with_store(extra, FakeStore::default())
        }

        fn with_store(extra: &str, store: FakeStore) -> World {
            let text = format!(
                r#"{{"domain":"ratelimit",{WALKTHROUGH_DESCRIPTORS},{WALKTHROUGH_ACTIONS}{extra}}}"#
            );
            let compiled = compile(parse::<Config>(text.as_bytes()).unwrap()).unwrap();
            ensure_keys(&store, shared_keys(&compiled)).unwrap();
            World {
                metrics: registry(&compiled),
                compiled,
                store,
            }
        }

        fn send(&mut self, request: &Req, now: u64) -> Verdict {
            check(&self.compiled, &self.store, &mut self.metrics, request, now)
        }

        fn admitted(&mut self, request: &Req, now: u64) -> bool {
            matches!(self.send(request, now), Verdict::Admit { .. })
        }

        fn count(&self, key: &str, stat: &str) -> u64 {
            self.metrics.host().get(&rule_name("ratelimit", key, stat))
        }
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn walkthrough_predict_path_third_request_is_refused_with_headers() {
        let mut w = World::new("");
        assert!(w.admitted(&req(PREDICT, None), 0));
        assert!(w.admitted(&req(PREDICT, None), SEC));
        let Verdict::Reject(reply) = w.send(&req(PREDICT, None), 2 * SEC) else {
            panic!("third request admitted");
        };
        assert_eq!(reply.status, 429);
        assert!(reply.body.is_empty());
        assert_eq!(header(&reply.headers, "x-envoy-ratelimited"), Some("true"));
        // 2 per minute: a token every 30 s, the first was taken at 0 s.
        assert_eq!(header(&reply.headers, "retry-after"), Some("28"));
        assert_eq!(
            header(&reply.headers, "x-ratelimit-limit"),
            Some("2, 2;w=60")
        );
        assert_eq!(header(&reply.headers, "x-ratelimit-remaining"), Some("0"));
        // Full again when the 2 tokens are back: 60 s after 0 s and 1 s, less the refill since.
        assert_eq!(header(&reply.headers, "x-ratelimit-reset"), Some("58"));
        let key = format!("path_{PREDICT}");
        assert_eq!(w.count(&key, "total_hits"), 3);
        assert_eq!(w.count(&key, "over_limit"), 1);
        assert_eq!(w.count(&key, "within_limit"), 2);
        assert_eq!(w.count(&key, "near_limit"), 1);
        // Refilled after 30 s.
        assert!(w.admitted(&req(PREDICT, None), 30 * SEC));
    }

    #[test]
    fn admitted_request_gets_draft_headers_for_the_closest_limit() {
        let mut w = World::new("");
        let Verdict::Admit { response_headers } = w.send(&req(PREDICT, Some("k")), 0) else {
            panic!("refused");
        };
        // Two limits: 5/min for the key (4 left), 2/min for the path (1 left, the closest).
        assert_eq!(
            header(&response_headers, "x-ratelimit-limit"),
            Some("2, 5;w=60, 2;w=60")
        );
        assert_eq!(
            header(&response_headers, "x-ratelimit-remaining"),
            Some("1")
        );
        assert_eq!(header(&response_headers, "x-ratelimit-reset"), Some("30"));
        let mut off = World::new(r#","enable_x_ratelimit_headers":"OFF""#);
        assert_eq!(
            off.send(&req("/a", None), 0),
            Verdict::Admit {
                response_headers: vec![]
            }
        );
    }

    #[test]
    fn api_key_does_not_lift_the_path_limit_and_refusals_cost_no_key_quota() {
        let mut w = World::new("");
        assert!(w.admitted(&req(PREDICT, Some("k1")), 0));
        assert!(w.admitted(&req(PREDICT, Some("k1")), 0));
        // The path's 2/min refuses; each time the token taken from k1's 5/min is given back,
        // so k1's bucket never runs dry however often it is refused by the path.
        for _ in 0..10 {
            assert!(!w.admitted(&req(PREDICT, Some("k1")), 0));
        }
        let key = format!("path_{PREDICT}.x-api-key");
        assert_eq!(w.count(&key, "within_limit"), 12);
        assert_eq!(w.count(&key, "over_limit"), 0);
        assert_eq!(w.count(&format!("path_{PREDICT}"), "over_limit"), 10);
        // At 30 s the path has one token again.
        assert!(w.admitted(&req(PREDICT, Some("k1")), 30 * SEC));
    }

    #[test]
    fn per_key_limit_refuses_the_sixth_request_of_a_key_only() {
        // In the BERT emotion walkthrough the path's 2/min always bites before a key's 5/min;
        // loosen the path.
        let mut w = World::new("");
        let text = format!(
            r#"{{"domain":"ratelimit",{},{WALKTHROUGH_ACTIONS}}}"#,
            WALKTHROUGH_DESCRIPTORS.replace("\"requests_per_unit\":2", "\"requests_per_unit\":100")
        );
        w.compiled = compile(parse::<Config>(text.as_bytes()).unwrap()).unwrap();
        ensure_keys(&w.store, shared_keys(&w.compiled)).unwrap();
        for _ in 0..5 {
            assert!(w.admitted(&req(PREDICT, Some("k1")), 0));
        }
        let Verdict::Reject(reply) = w.send(&req(PREDICT, Some("k1")), 0) else {
            panic!("sixth request admitted");
        };
        // 5/min: next token in 12 s.
        assert_eq!(header(&reply.headers, "retry-after"), Some("12"));
        assert_eq!(
            w.count(&format!("path_{PREDICT}.x-api-key"), "over_limit"),
            1
        );
        assert!(w.admitted(&req(PREDICT, Some("k2")), 0));
    }

    #[test]
    fn other_paths_get_ten_per_minute_each() {
        let mut w = World::new("");
        for _ in 0..10 {
            assert!(w.admitted(&req("/v1/models/bert-emotion-model", None), 0));
        }
        assert!(!w.admitted(&req("/v1/models/bert-emotion-model", None), 0));
        // Another path has its own bucket.
        assert!(w.admitted(&req("/v1/models/other", None), 0));
        // A query string makes another path value, as Envoy's `:path`.
        assert!(w.admitted(&req("/v1/models/bert-emotion-model?x=1", None), 0));
    }

    #[test]
    fn global_and_per_rule_shadow_mode_count_but_admit() {
        let mut w = World::new(r#","shadow_mode":true"#);
        for _ in 0..5 {
            assert!(w.admitted(&req(PREDICT, None), 0));
        }
        let key = format!("path_{PREDICT}");
        assert_eq!(w.count(&key, "over_limit"), 3);
        assert_eq!(w.count(&key, "shadow_mode"), 3);

        let text = r#"{"domain":"ratelimit","descriptors":[
            {"key":"a","rate_limit":{"unit":"minute","requests_per_unit":1},"shadow_mode":true},
            {"key":"b","rate_limit":{"unit":"minute","requests_per_unit":1}}],
            "rate_limits":[{"actions":[{"generic_key":{"descriptor_key":"a","descriptor_value":"x"}}]},
                           {"actions":[{"request_headers":{"header_name":"x-b","descriptor_key":"b"}}]}]}"#;
        let compiled = compile(parse::<Config>(text.as_bytes()).unwrap()).unwrap();
        let store = FakeStore::default();
        ensure_keys(&store, shared_keys(&compiled)).unwrap();
        let mut metrics = registry(&compiled);
        let only_a = Req::new(vec![]);
        for _ in 0..3 {
            assert!(matches!(
                check(&compiled, &store, &mut metrics, &only_a, 0),
                Verdict::Admit { .. }
            ));
        }
        let with_b = Req::new(vec![("x-b".to_string(), "1".to_string())]);
        assert!(matches!(
            check(&compiled, &store, &mut metrics, &with_b, 0),
            Verdict::Admit { .. }
        ));
        assert!(matches!(
            check(&compiled, &store, &mut metrics, &with_b, 0),
            Verdict::Reject(_)
        ));
        assert_eq!(
            metrics
                .host()
                .get(&rule_name("ratelimit", "a_x", "shadow_mode")),
            0
        );
        assert_eq!(
            metrics
                .host()
                .get(&rule_name("ratelimit", "a", "shadow_mode")),
            4
        );
    }

    fn header_of(verdict: &Verdict, name: &str) -> Option<String> {
        let headers = match verdict {
            Verdict::Admit { response_headers } => response_headers,
            Verdict::Reject(reply) => &reply.headers,
        };
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    /// An LLM call weighs its `x-cost` tokens: `remaining` shows the weight, a refused request
    /// gives its weight back to the other limit, a weight above a limit's capacity is refused
    /// without a retry time.
    #[test]
    fn weighted_requests_take_their_weight_and_give_it_back() {
        let text = r#"{"domain":"w","descriptors":[
            {"key":"tenant","rate_limit":{"unit":"minute","requests_per_unit":100}},
            {"key":"model","value":"llm","rate_limit":{"unit":"minute","requests_per_unit":50}}],
            "rate_limits":[
              {"actions":[{"request_headers":{"header_name":"x-tenant","descriptor_key":"tenant"}}],"hits_addend":{"format":"%REQ(x-cost)%"}},
              {"actions":[{"generic_key":{"descriptor_key":"model","descriptor_value":"llm"}}],"hits_addend":{"format":"%REQ(x-cost)%"}}]}"#;
        let compiled = compile(parse::<Config>(text.as_bytes()).unwrap()).unwrap();
        let store = FakeStore::default();
        ensure_keys(&store, shared_keys(&compiled)).unwrap();
        let mut metrics = registry(&compiled);
        let call = |cost: &str| {
            Req::new(vec![
                ("x-tenant".to_string(), "a".to_string()),
                ("x-cost".to_string(), cost.to_string()),
            ])
        };
        let mut send = |cost: &str| check(&compiled, &store, &mut metrics, &call(cost), 0);

        let first = send("30");
        assert!(matches!(first, Verdict::Admit { .. }));
        assert_eq!(
            header_of(&first, "x-ratelimit-remaining").as_deref(),
            Some("20")
        );
        // 30 more: the model has 20 left, so refused; the tenant gets its 30 back.
        let refused = send("30");
        assert!(matches!(refused, Verdict::Reject(_)));
        // 10 model tokens missing at 50 per minute: 12 s.
        assert_eq!(header_of(&refused, "retry-after").as_deref(), Some("12"));
        let fits = send("20");
        assert!(matches!(fits, Verdict::Admit { .. }));
        assert_eq!(
            header_of(&fits, "x-ratelimit-remaining").as_deref(),
            Some("0")
        );
        // Above what the tenant's bucket can ever hold: refused, no promise of a retry time.
        let huge = send("500");
        assert!(matches!(huge, Verdict::Reject(_)));
        assert_eq!(header_of(&huge, "retry-after"), None);
        // A weight that is not a number counts as 1 (the model is empty: refused) and is counted.
        assert!(matches!(send("lots"), Verdict::Reject(_)));
        assert_eq!(
            metrics.host().get(&plugin_name("w", "invalid_hits_addend")),
            2
        );
    }

    #[test]
    fn quota_mode_counts_over_limit_but_admits() {
        let text = r#"{"domain":"q","descriptors":[
            {"key":"service","value":"s1","quota_mode":true,"rate_limit":{"unit":"minute","requests_per_unit":1}}],
            "rate_limits":[{"actions":[{"generic_key":{"descriptor_key":"service","descriptor_value":"s1"}}]}]}"#;
        let compiled = compile(parse::<Config>(text.as_bytes()).unwrap()).unwrap();
        let store = FakeStore::default();
        ensure_keys(&store, shared_keys(&compiled)).unwrap();
        let mut metrics = registry(&compiled);
        for _ in 0..3 {
            assert!(matches!(
                check(&compiled, &store, &mut metrics, &Req::new(vec![]), 0),
                Verdict::Admit { .. }
            ));
        }
        let get = |stat: &str| metrics.host().get(&rule_name("q", "service_s1", stat));
        assert_eq!((get("total_hits"), get("over_limit")), (3, 2));
        assert_eq!(get("shadow_mode"), 0);
    }

    #[test]
    fn unlimited_and_unmatched_requests_are_admitted_without_headers() {
        let text = r#"{"domain":"d","descriptors":[{"key":"k","value":"vip","rate_limit":{"unlimited":true}},
            {"key":"k","rate_limit":{"unit":"second","requests_per_unit":1}}],
            "rate_limits":[{"actions":[{"request_headers":{"header_name":"x-k","descriptor_key":"k"}}]}]}"#;
        let compiled = compile(parse::<Config>(text.as_bytes()).unwrap()).unwrap();
        let store = FakeStore::default();
        ensure_keys(&store, shared_keys(&compiled)).unwrap();
        let mut metrics = registry(&compiled);
        let vip = Req::new(vec![("x-k".to_string(), "vip".to_string())]);
        for _ in 0..100 {
            assert_eq!(
                check(&compiled, &store, &mut metrics, &vip, 0),
                Verdict::Admit {
                    response_headers: vec![]
                }
            );
        }
        assert_eq!(
            metrics.host().get(&rule_name("d", "k_vip", "within_limit")),
            100
        );
        let nobody = Req::new(vec![]);
        assert_eq!(
            check(&compiled, &store, &mut metrics, &nobody, 0),
            Verdict::Admit {
                response_headers: vec![]
            }
        );
    }

    #[test]
    fn replaces_drops_the_named_limit() {
        let text = r#"{"domain":"d","descriptors":[
            {"key":"user","rate_limit":{"unit":"minute","requests_per_unit":1,"name":"per-user"}},
            {"key":"tier","value":"gold","rate_limit":{"unit":"minute","requests_per_unit":3,"replaces":[{"name":"per-user"}]}}],
            "rate_limits":[{"actions":[{"request_headers":{"header_name":"x-user","descriptor_key":"user"}}]},
                           {"actions":[{"request_headers":{"header_name":"x-tier","descriptor_key":"tier"}}]}]}"#;
        let compiled = compile(parse::<Config>(text.as_bytes()).unwrap()).unwrap();
        let store = FakeStore::default();
        ensure_keys(&store, shared_keys(&compiled)).unwrap();
        let mut metrics = registry(&compiled);
        let gold = Req::new(vec![
            ("x-user".into(), "u".into()),
            ("x-tier".into(), "gold".into()),
        ]);
        let plain = Req::new(vec![
            ("x-user".into(), "p".into()),
            ("x-tier".into(), "tin".into()),
        ]);
        let admitted = |r: &Req, m: &mut Registry<FakeHost>| {
            matches!(check(&compiled, &store, m, r, 0), Verdict::Admit { .. })
        };
        assert!(
            admitted(&gold, &mut metrics)
                && admitted(&gold, &mut metrics)
                && admitted(&gold, &mut metrics)
        );
        assert!(!admitted(&gold, &mut metrics));
        assert!(admitted(&plain, &mut metrics));
        assert!(!admitted(&plain, &mut metrics));
    }

    #[test]
    fn failure_mode_follows_the_setting() {
        let mut open = World::new("");
        open.store.fail_reads.set(true);
        assert!(open.admitted(&req(PREDICT, None), 0));
        assert_eq!(
            open.metrics
                .host()
                .get(&plugin_name("ratelimit", "store_error")),
            1
        );
        let mut closed = World::new(r#","failure_mode_deny":true"#);
        closed.store.cas_conflicts.set(store::MAX_CAS_ATTEMPTS);
        let Verdict::Reject(reply) = closed.send(&req(PREDICT, None), 0) else {
            panic!("admitted");
        };
        assert_eq!(header(&reply.headers, "retry-after"), None);
        assert_eq!(
            closed
                .metrics
                .host()
                .get(&plugin_name("ratelimit", "cas_exhausted")),
            1
        );
    }

    #[test]
    fn status_and_body_are_configurable() {
        let mut w = World::new(r#","rate_limited_status":503,"rate_limited_body":"slow down""#);
        for _ in 0..2 {
            assert!(w.admitted(&req(PREDICT, None), 0));
        }
        let Verdict::Reject(reply) = w.send(&req(PREDICT, None), 0) else {
            panic!("admitted");
        };
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, b"slow down");
    }

    #[test]
    fn configuration_push_keeps_balances_of_unchanged_rules_only() {
        let mut w = World::new("");
        for _ in 0..2 {
            assert!(w.admitted(&req(PREDICT, None), 0));
        }
        for _ in 0..10 {
            assert!(w.admitted(&req("/other", None), 0));
        }
        // New configuration: the predict limit changes (2 -> 3), `path` stays 10/min.
        let text = format!(
            r#"{{"domain":"ratelimit",{},{WALKTHROUGH_ACTIONS}}}"#,
            WALKTHROUGH_DESCRIPTORS.replace("\"requests_per_unit\":2", "\"requests_per_unit\":3")
        );
        let pushed = compile(parse::<Config>(text.as_bytes()).unwrap()).unwrap();
        ensure_keys(&w.store, shared_keys(&pushed)).unwrap();
        w.compiled = pushed;
        for _ in 0..3 {
            assert!(
                w.admitted(&req(PREDICT, None), 0),
                "changed rule starts full"
            );
        }
        assert!(!w.admitted(&req(PREDICT, None), 0));
        assert!(
            !w.admitted(&req("/other", None), 0),
            "unchanged rule kept its balance"
        );
    }

    #[test]
    fn hostile_inputs_stay_bounded() {
        let mut w = World::new(r#","max_keys":32"#);
        let keys_before = w.store.data.borrow().len();
        let names_before = w.metrics.host().defined().len();
        let huge = "x".repeat(64 * 1024);
        assert!(w.admitted(&req(&huge, Some(&huge)), 0));
        for i in 0..5_000 {
            let _ = w.send(&req("/p", Some(&format!("key-{i}"))), 0);
            let _ = w.send(&req(&format!("/flood/{i}"), None), 0);
        }
        assert_eq!(w.store.data.borrow().len(), keys_before);
        // Every rule's name is fixed: all were defined with the configuration, none since.
        assert_eq!(w.metrics.host().defined().len(), names_before);
        // Metric names stayed per rule (no detailed_metric): a handful, not thousands.
        assert!(
            w.metrics.host().values.len() <= 12,
            "{:?}",
            w.metrics.host().values.keys()
        );
    }

    #[test]
    fn shared_keys_cover_table_rules_and_overflow() {
        let w = World::new(r#","max_keys":3"#);
        let keys: Vec<String> = shared_keys(&w.compiled).collect();
        // 3 slots + predict rule + x-api-key overflow + path overflow.
        assert_eq!(keys.len(), 6);
        assert!(
            keys.iter()
                .filter(|k| k.starts_with("local-ratelimit/t/"))
                .count()
                == 3
        );
        assert!(keys.iter().any(|k| k.starts_with("local-ratelimit/r/")));
        assert_eq!(
            keys.iter()
                .filter(|k| k.starts_with("local-ratelimit/o/"))
                .count(),
            2
        );
    }
}
