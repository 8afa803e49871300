//! The `model` tag: the model name taken from the request path, and the bound on how many
//! distinct names get their own series.
//!
//! Every Envoy worker runs its own VM, so a bound kept per VM would let each worker admit its own
//! `maxModels` names. The admitted names are therefore kept in proxy-wasm shared data (one list
//! for the whole proxy, updated with compare-and-swap); each VM caches the names it has seen
//! admitted so a known model costs no hostcall.

use crate::compiled::OTHER;
use hashbrown::HashSet;
use plugin_kit::metrics::sanitize_tag_value;

/// The model named by a KServe path: `/v1/models/<model>:<verb>` (v1) or
/// `/v2/models/<model>[/versions/<v>]/<verb>` (v2 / Open Inference Protocol). Query and fragment
/// are ignored. `None` for any other path.
pub fn model_from_path(path: &str) -> Option<&str> {
    // Neither prefix holds `?` or `#`, so the name ends at the first of its stop characters
    // whether or not a query or fragment follows: one scan of the name, not of the path.
    let (rest, stops): (&str, &[u8]) = if let Some(rest) = path.strip_prefix("/v1/models/") {
        (rest, b":/?#")
    } else {
        (path.strip_prefix("/v2/models/")?, b"/?#")
    };
    let end = rest
        .bytes()
        .position(|b| stops.contains(&b))
        .unwrap_or(rest.len());
    rest.get(..end).filter(|model| !model.is_empty())
}

/// The proxy-wide list of admitted model names, as the host's shared data stores it.
pub trait SharedModelList {
    /// The stored list and its version (`None` before the first store).
    fn load(&self) -> Option<(Vec<u8>, u32)>;
    /// Stores `list` if the stored version is still `version` (`None`: nothing stored yet).
    /// `false` when another worker stored first or the host refused.
    fn store(&self, list: &[u8], version: Option<u32>) -> bool;
}

/// How often a worker retries after losing a compare-and-swap to another worker, before it counts
/// the request's model as `other` for this once.
const STORE_ATTEMPTS: usize = 4;

/// Resolves model names to the value of their `model` tag within the `maxModels` bound.
#[derive(Debug)]
pub struct ModelNames {
    max_models: usize,
    /// Sanitized names known to be admitted; never more than `max_models`.
    admitted: HashSet<String>,
    /// Set once the shared list is full: it never changes again, so `admitted` is all of it.
    list_full: bool,
}

impl ModelNames {
    pub fn new(max_models: usize) -> Self {
        Self {
            max_models,
            admitted: HashSet::new(),
            list_full: max_models == 0,
        }
    }

    /// The `model` tag value for a model name from a path (`None`: the path named no model):
    /// its sanitized form when admitted, else `other`. With `may_admit` (the model answered
    /// 2xx) a name not admitted yet is admitted if there is room; otherwise it is only looked up,
    /// so 404s and 5xx on made-up names cannot use up `maxModels`.
    pub fn resolve(
        &mut self,
        model: Option<&str>,
        may_admit: bool,
        shared: &impl SharedModelList,
    ) -> String {
        let name = sanitize_tag_value(model.unwrap_or_default());
        if self.admitted.contains(&name) {
            return name;
        }
        if self.list_full {
            return OTHER.to_string();
        }
        for _ in 0..STORE_ATTEMPTS {
            let (list, version) = match shared.load() {
                Some((bytes, version)) => {
                    (String::from_utf8(bytes).unwrap_or_default(), Some(version))
                }
                None => (String::new(), None),
            };
            let names: Vec<&str> = list.lines().filter(|n| !n.is_empty()).collect();
            if names.contains(&name.as_str()) {
                return self.remember(name, &names);
            }
            if !may_admit {
                return OTHER.to_string();
            }
            if names.len() >= self.max_models {
                self.list_full = true;
                self.admitted = names.iter().map(|n| n.to_string()).collect();
                return OTHER.to_string();
            }
            let mut updated = list.clone();
            updated.push_str(&name);
            updated.push('\n');
            if shared.store(updated.as_bytes(), version) {
                return self.remember(name, &names);
            }
        }
        OTHER.to_string()
    }

    fn remember(&mut self, name: String, listed: &[&str]) -> String {
        // Names other workers admitted come along for free, so they cost no hostcall later.
        self.admitted
            .extend(listed.iter().take(self.max_models).map(|n| n.to_string()));
        self.admitted.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Shared data as Envoy keeps it: bytes plus a version bumped by every store.
    #[derive(Default)]
    struct FakeSharedData {
        stored: RefCell<Option<(Vec<u8>, u32)>>,
        loads: Cell<usize>,
        /// Stores to refuse, simulating another worker winning the race.
        refuse_stores: Cell<usize>,
    }

    impl SharedModelList for FakeSharedData {
        fn load(&self) -> Option<(Vec<u8>, u32)> {
            self.loads.set(self.loads.get() + 1);
            self.stored.borrow().clone()
        }

        fn store(&self, list: &[u8], version: Option<u32>) -> bool {
            if self.refuse_stores.get() > 0 {
                self.refuse_stores.set(self.refuse_stores.get() - 1);
                return false;
            }
            let mut stored = self.stored.borrow_mut();
            let current = stored.as_ref().map(|(_, v)| *v);
            if current != version {
                return false;
            }
            *stored = Some((list.to_vec(), current.unwrap_or(0) + 1));
            true
        }
    }

    #[test]
    fn model_comes_from_kserve_paths() {
        assert_eq!(
            model_from_path("/v1/models/bert-emotion-model:predict"),
            Some("bert-emotion-model")
        );
        assert_eq!(model_from_path("/v1/models/bert:predict?x=1"), Some("bert"));
        assert_eq!(model_from_path("/v1/models/bert"), Some("bert"));
        assert_eq!(model_from_path("/v2/models/bert/infer"), Some("bert"));
        assert_eq!(
            model_from_path("/v2/models/bert/versions/3/infer"),
            Some("bert")
        );
        assert_eq!(
            model_from_path("/v2/models/bert.v2/infer#f"),
            Some("bert.v2")
        );
        assert_eq!(model_from_path("/v2/models/bert?x=/y"), Some("bert"));
        assert_eq!(model_from_path("/v1/models/bert#:x"), Some("bert"));
        assert_eq!(model_from_path("/v1/models?/bert"), None);
        assert_eq!(model_from_path("/v1/models/?x"), None);
        assert_eq!(model_from_path("/v1/models/:predict"), None);
        assert_eq!(model_from_path("/v2/models//infer"), None);
        assert_eq!(model_from_path("/predict"), None);
        assert_eq!(model_from_path(""), None);
    }

    #[test]
    fn names_are_sanitized_and_admitted_up_to_the_bound() {
        let shared = FakeSharedData::default();
        let mut names = ModelNames::new(2);
        assert_eq!(names.resolve(Some("bert.v2"), true, &shared), "bert_v2");
        assert_eq!(names.resolve(Some("roberta"), true, &shared), "roberta");
        assert_eq!(names.resolve(Some("third"), true, &shared), "other");
        assert_eq!(names.resolve(Some("bert.v2"), true, &shared), "bert_v2");
        assert_eq!(names.resolve(None, true, &shared), "other");
    }

    #[test]
    fn missing_model_is_unknown_and_takes_a_slot() {
        let shared = FakeSharedData::default();
        let mut names = ModelNames::new(5);
        assert_eq!(names.resolve(None, true, &shared), "unknown");
    }

    #[test]
    fn zero_models_folds_everything_without_hostcalls() {
        let shared = FakeSharedData::default();
        let mut names = ModelNames::new(0);
        assert_eq!(names.resolve(Some("bert"), true, &shared), "other");
        assert_eq!(shared.loads.get(), 0);
    }

    #[test]
    fn workers_share_one_bound() {
        let shared = FakeSharedData::default();
        let mut worker_a = ModelNames::new(2);
        let mut worker_b = ModelNames::new(2);
        assert_eq!(worker_a.resolve(Some("m1"), true, &shared), "m1");
        assert_eq!(worker_b.resolve(Some("m2"), true, &shared), "m2");
        assert_eq!(worker_a.resolve(Some("m3"), true, &shared), "other");
        assert_eq!(worker_b.resolve(Some("m3"), true, &shared), "other");
        assert_eq!(worker_a.resolve(Some("m2"), true, &shared), "m2");
        assert_eq!(worker_b.resolve(Some("m1"), true, &shared), "m1");
    }

    #[test]
    fn known_and_folded_names_cost_no_hostcall_once_full() {
        let shared = FakeSharedData::default();
        let mut names = ModelNames::new(1);
        names.resolve(Some("bert"), true, &shared);
        names.resolve(Some("flood-0"), true, &shared);
        let loads = shared.loads.get();
        for i in 1..1000 {
            assert_eq!(
                names.resolve(Some(&format!("flood-{i}")), true, &shared),
                "other"
            );
        }
        assert_eq!(names.resolve(Some("bert"), true, &shared), "bert");
        assert_eq!(shared.loads.get(), loads);
        assert!(names.admitted.len() <= 1);
    }

    #[test]
    fn lost_races_retry_then_fold() {
        let shared = FakeSharedData::default();
        let mut names = ModelNames::new(5);
        shared.refuse_stores.set(STORE_ATTEMPTS - 1);
        assert_eq!(names.resolve(Some("bert"), true, &shared), "bert");
        shared.refuse_stores.set(STORE_ATTEMPTS);
        assert_eq!(names.resolve(Some("roberta"), true, &shared), "other");
        // Not remembered as folded: the next request tries again.
        assert_eq!(names.resolve(Some("roberta"), true, &shared), "roberta");
    }

    #[test]
    fn garbage_in_shared_data_is_survived() {
        let shared = FakeSharedData::default();
        *shared.stored.borrow_mut() = Some((vec![0xff, 0xfe, b'\n'], 7));
        let mut names = ModelNames::new(3);
        assert_eq!(names.resolve(Some("bert"), true, &shared), "bert");
    }

    /// Only a 2xx answer admits a name: a flood of 404s on made-up names leaves the slots to the
    /// real models, and a known model keeps its name on its failures.
    #[test]
    fn failures_look_names_up_but_never_admit_them() {
        let shared = FakeSharedData::default();
        let mut names = ModelNames::new(2);
        for i in 0..100 {
            let made_up = format!("made-up-{i}");
            assert_eq!(names.resolve(Some(&made_up), false, &shared), "other");
        }
        assert_eq!(names.resolve(Some("bert"), true, &shared), "bert");
        assert_eq!(names.resolve(Some("bert"), false, &shared), "bert");
        // Admitted by another worker: found in the shared list.
        let mut other_worker = ModelNames::new(2);
        assert_eq!(other_worker.resolve(Some("bert"), false, &shared), "bert");
        assert_eq!(names.resolve(Some("roberta"), true, &shared), "roberta");
    }
}
