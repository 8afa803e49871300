//! Remote JWKS (`jwksUri`): when to fetch, and the cache every worker of the proxy shares.
//!
//! The fetched document lives in the host's shared data (one copy for all workers of the VM),
//! under `auth-gate/jwks/<uri>` as `<fetched_at_ms>\n<jwks>`. Who fetches is settled with a
//! lease under `auth-gate/jwks-fetch/<uri>` (`fetching <until_ms>` or `failed <until_ms>`),
//! taken with compare-and-swap so that one worker fetches while the others wait. Each worker
//! parses a new document once, when the shared version changes.
//!
//! Timing, as Envoy's remote JWKS: keys are used for `jwksRefreshSeconds` (default 600 s), then
//! fetched again; a failed fetch is retried after 1 s; a token with an unknown `kid` triggers a
//! new fetch at most every 30 s.

use crate::authn::{RemoteJwks, RemoteKeys};
use crate::jwks::{parse_jwks, KeySet};
pub use plugin_kit::shared::SharedData;
use std::rc::Rc;

/// A failed fetch is tried again after this long (Envoy's `failed_refetch_duration` default).
pub const RETRY_AFTER_FAILURE_MS: u64 = 1_000;
/// An unknown `kid` refetches keys at most this often.
pub const UNKNOWN_KID_REFETCH_MS: u64 = 30_000;

/// The host's shared data, as the fetch logic needs it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaseState {
    Fetching,
    Failed,
}

struct Lease {
    state: LeaseState,
    until_ms: u64,
}

impl Lease {
    fn encode(&self) -> Vec<u8> {
        let state = match self.state {
            LeaseState::Fetching => "fetching",
            LeaseState::Failed => "failed",
        };
        format!("{state} {}", self.until_ms).into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (state, until) = text.split_once(' ')?;
        let state = match state {
            "fetching" => LeaseState::Fetching,
            "failed" => LeaseState::Failed,
            _ => return None,
        };
        Some(Self {
            state,
            until_ms: until.parse().ok()?,
        })
    }
}

/// A free lease: one that expired at the epoch.
const RELEASED: Lease = Lease {
    state: LeaseState::Fetching,
    until_ms: 0,
};

/// One worker's view of one rule's remote keys.
pub struct RemoteRule {
    pub jwks: RemoteJwks,
    keys: Option<Rc<KeySet>>,
    /// Shared-data version of the document `keys` came from.
    version: Option<u32>,
    fetched_at_ms: u64,
    refresh_requested: bool,
    /// The expiry of the fetch lease this worker holds, while its fetch is in flight.
    lease_until_ms: Option<u64>,
}

/// The result of a fetch as the host reports it.
pub enum FetchResult<'a> {
    Response {
        status: Option<u16>,
        body: &'a [u8],
    },
    /// No response (timeout, connection failure, unknown cluster).
    NoResponse,
}

impl RemoteRule {
    pub fn new(jwks: RemoteJwks) -> Self {
        Self {
            jwks,
            keys: None,
            version: None,
            fetched_at_ms: 0,
            refresh_requested: false,
            lease_until_ms: None,
        }
    }

    fn keys_key(&self) -> String {
        format!("auth-gate/jwks/{}", self.jwks.uri)
    }

    fn lease_key(&self) -> String {
        format!("auth-gate/jwks-fetch/{}", self.jwks.uri)
    }

    /// Picks up a document another worker (or an earlier configuration) stored. True when
    /// the keys changed, so the caller drops its verified-token cache and wakes waiting
    /// requests.
    pub fn sync(&mut self, shared: &dyn SharedData) -> bool {
        let Ok(Some((bytes, version))) = shared.get(&self.keys_key()) else {
            return false;
        };
        if self.version == Some(version) {
            return false;
        }
        self.version = Some(version);
        let parsed = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.split_once('\n'))
            .and_then(|(at, text)| Some((at.parse::<u64>().ok()?, parse_jwks(text).ok()?)));
        match parsed {
            Some((fetched_at_ms, keys)) => {
                self.fetched_at_ms = fetched_at_ms;
                self.keys = Some(Rc::new(keys));
                self.refresh_requested = false;
                true
            }
            None => false,
        }
    }

    /// The keys for verification: ready, still coming, or failed (the last fetch failed and
    /// there are no keys to fall back to).
    pub fn status(&self, shared: &dyn SharedData, now_ms: u64) -> RemoteKeys {
        if let Some(keys) = &self.keys {
            return RemoteKeys::Ready(keys.clone());
        }
        let lease = shared
            .get(&self.lease_key())
            .ok()
            .flatten()
            .and_then(|(bytes, _)| Lease::decode(&bytes));
        match lease {
            Some(lease) if lease.state == LeaseState::Failed && lease.until_ms > now_ms => {
                RemoteKeys::Failed
            }
            _ => RemoteKeys::Pending,
        }
    }

    /// A token named a `kid` the keys lack: fetch again once the 30 s limit allows.
    pub fn request_refresh(&mut self) {
        self.refresh_requested = true;
    }

    /// Whether this worker should fetch now; if so, it has taken the lease and must call
    /// [`RemoteRule::complete_fetch`] when the fetch ends.
    pub fn try_begin_fetch(
        &mut self,
        shared: &dyn SharedData,
        now_ms: u64,
        refresh_ms: u64,
    ) -> bool {
        let due = match self.keys {
            None => true,
            Some(_) => {
                let age = now_ms.saturating_sub(self.fetched_at_ms);
                age >= refresh_ms || (self.refresh_requested && age >= UNKNOWN_KID_REFETCH_MS)
            }
        };
        if !due {
            return false;
        }
        let lease_key = self.lease_key();
        let current = shared.get(&lease_key).ok().flatten();
        let held = current
            .as_ref()
            .and_then(|(bytes, _)| Lease::decode(bytes))
            .is_some_and(|lease| lease.until_ms > now_ms);
        if held {
            return false;
        }
        let lease = Lease {
            state: LeaseState::Fetching,
            // The host times the call out after `timeout_ms`; the margin covers a slow tick.
            until_ms: now_ms + self.jwks.timeout_ms + 1_000,
        };
        // The first lease is set without a version to compare (none exists yet): two workers
        // may then both fetch once, which is harmless.
        let taken = shared
            .set(&lease_key, &lease.encode(), current.map(|(_, cas)| cas))
            .is_ok();
        if taken {
            self.lease_until_ms = Some(lease.until_ms);
        }
        taken
    }

    /// Gives up the fetch in flight (its root context is going away, so its answer will never
    /// be read): the lease is released, if it is still this worker's, so another worker or the
    /// next configuration fetches at once instead of waiting for the lease to expire.
    pub fn abandon_fetch(&mut self, shared: &dyn SharedData) {
        let Some(until_ms) = self.lease_until_ms.take() else {
            return;
        };
        let Some((bytes, version)) = shared.get(&self.lease_key()).ok().flatten() else {
            return;
        };
        let ours = Lease::decode(&bytes)
            .is_some_and(|lease| lease.state == LeaseState::Fetching && lease.until_ms == until_ms);
        if ours {
            // Compared with the version read, so a lease taken meanwhile is left alone.
            let _ = shared.set(&self.lease_key(), &RELEASED.encode(), Some(version));
        }
    }

    /// Stores a successful fetch for every worker, or records the failure (so that waiting
    /// requests fail instead of waiting out their timeout). Returns the error to log.
    pub fn complete_fetch(
        &mut self,
        shared: &dyn SharedData,
        now_ms: u64,
        result: FetchResult<'_>,
    ) -> Result<(), String> {
        let parsed = match result {
            FetchResult::NoResponse => {
                Err("no response (timeout or connection failure)".to_string())
            }
            FetchResult::Response { status, body } => match status {
                Some(200) => std::str::from_utf8(body)
                    .map_err(|_| "body is not UTF-8".to_string())
                    .and_then(|text| parse_jwks(text).map(|keys| (text, keys))),
                other => Err(format!("HTTP status {other:?}")),
            },
        };
        match parsed {
            Ok((text, keys)) => {
                let document = format!("{now_ms}\n{text}");
                if shared
                    .set(&self.keys_key(), document.as_bytes(), None)
                    .is_err()
                {
                    log::warn!("cannot store the JWKS of {} in shared data", self.jwks.uri);
                }
                // A lease left behind only delays the next fetch until it expires.
                let _ = shared.set(&self.lease_key(), &RELEASED.encode(), None);
                self.lease_until_ms = None;
                self.version = shared
                    .get(&self.keys_key())
                    .ok()
                    .flatten()
                    .map(|(_, version)| version);
                self.keys = Some(Rc::new(keys));
                self.fetched_at_ms = now_ms;
                self.refresh_requested = false;
                Ok(())
            }
            Err(reason) => {
                self.record_failure(shared, now_ms);
                Err(reason)
            }
        }
    }

    /// A fetch that failed (or could not start): retried after [`RETRY_AFTER_FAILURE_MS`];
    /// meanwhile requests without keys to fall back on get their 401 at once.
    pub fn record_failure(&mut self, shared: &dyn SharedData, now_ms: u64) {
        self.lease_until_ms = None;
        let failed = Lease {
            state: LeaseState::Failed,
            until_ms: now_ms + RETRY_AFTER_FAILURE_MS,
        };
        // Unrecorded, the failure only makes waiting requests wait for their own timeout.
        let _ = shared.set(&self.lease_key(), &failed.encode(), None);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jwks::tests::jwks_of;
    use hashbrown::HashMap;
    use jwt_simple::prelude::*;
    use plugin_kit::shared::{SetError, StoreError};
    use std::cell::RefCell;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Shared data with versions, as Envoy keeps it.
    #[derive(Default)]
    pub(crate) struct FakeShared {
        entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    }

    impl SharedData for FakeShared {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            Ok(self.entries.borrow().get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
            let mut entries = self.entries.borrow_mut();
            let version = entries.get(key).map_or(0, |(_, v)| *v);
            if cas.is_some_and(|cas| cas != 0 && cas != version) {
                return Err(SetError::CasMismatch);
            }
            entries.insert(key.to_string(), (value.to_vec(), version + 1));
            Ok(())
        }
    }

    fn rule() -> RemoteRule {
        RemoteRule::new(RemoteJwks {
            uri: "https://dex/keys".into(),
            cluster: "dex".into(),
            authority: "dex".into(),
            path: "/keys".into(),
            timeout_ms: 5_000,
        })
    }

    fn jwks() -> String {
        jwks_of(&[ES256KeyPair::generate()
            .with_key_id("k")
            .public_key()
            .to_jwk()])
    }

    const REFRESH: u64 = 600_000;

    #[test]
    fn one_worker_fetches_and_the_other_picks_the_keys_up() {
        let shared = FakeShared::default();
        let (mut a, mut b) = (rule(), rule());
        assert!(matches!(a.status(&shared, 0), RemoteKeys::Pending));
        assert!(a.try_begin_fetch(&shared, 1_000, REFRESH));
        assert!(
            !b.try_begin_fetch(&shared, 1_100, REFRESH),
            "lease held by a"
        );
        let body = jwks();
        let response = FetchResult::Response {
            status: Some(200),
            body: body.as_bytes(),
        };
        a.complete_fetch(&shared, 1_200, response).unwrap();
        assert!(matches!(a.status(&shared, 1_200), RemoteKeys::Ready(_)));
        assert!(b.sync(&shared));
        assert!(!b.sync(&shared), "parsed once per version");
        assert!(matches!(b.status(&shared, 1_300), RemoteKeys::Ready(_)));
        assert!(
            !a.try_begin_fetch(&shared, 2_000, REFRESH),
            "fresh keys are not refetched"
        );
        assert!(
            a.try_begin_fetch(&shared, 1_200 + REFRESH, REFRESH),
            "stale keys are"
        );
    }

    #[test]
    fn an_abandoned_fetch_frees_its_lease_and_only_its_own() {
        let shared = FakeShared::default();
        let (mut a, mut b) = (rule(), rule());
        assert!(a.try_begin_fetch(&shared, 1_000, REFRESH));
        assert!(!b.try_begin_fetch(&shared, 1_100, REFRESH));
        a.abandon_fetch(&shared);
        assert!(
            b.try_begin_fetch(&shared, 1_200, REFRESH),
            "free once abandoned"
        );
        // a's old lease expired and b holds a new one: abandoning again leaves b's alone.
        a.abandon_fetch(&shared);
        let mut c = rule();
        assert!(
            !c.try_begin_fetch(&shared, 1_300, REFRESH),
            "b's lease holds"
        );
        // Abandoning after the lease expired and another worker took it changes nothing.
        assert!(a.try_begin_fetch(&shared, 1_200 + 6_001, REFRESH));
        b.abandon_fetch(&shared);
        assert!(
            !c.try_begin_fetch(&shared, 1_200 + 6_002, REFRESH),
            "a's lease holds"
        );
    }

    #[test]
    fn failure_is_shared_and_retried_after_a_second() {
        let shared = FakeShared::default();
        let (mut a, b) = (rule(), rule());
        assert!(a.try_begin_fetch(&shared, 0, REFRESH));
        assert!(a
            .complete_fetch(&shared, 100, FetchResult::NoResponse)
            .is_err());
        assert!(matches!(b.status(&shared, 200), RemoteKeys::Failed));
        assert!(!a.try_begin_fetch(&shared, 500, REFRESH));
        assert!(a.try_begin_fetch(&shared, 1_100, REFRESH));
        // While the retry runs, new requests wait again.
        assert!(matches!(b.status(&shared, 1_200), RemoteKeys::Pending));
        let err = a
            .complete_fetch(
                &shared,
                1_300,
                FetchResult::Response {
                    status: Some(503),
                    body: b"",
                },
            )
            .unwrap_err();
        assert!(err.contains("503"), "{err}");
        assert!(a.try_begin_fetch(&shared, 2_400, REFRESH));
        let err = a
            .complete_fetch(
                &shared,
                2_500,
                FetchResult::Response {
                    status: Some(200),
                    body: b"{\"keys\":[]}",
                },
            )
            .unwrap_err();
        assert!(err.contains("no usable key"), "{err}");
    }

    #[test]
    fn failed_refresh_keeps_the_old_keys() {
        let shared = FakeShared::default();
        let mut a = rule();
        let body = jwks();
        assert!(a.try_begin_fetch(&shared, 0, REFRESH));
        a.complete_fetch(
            &shared,
            0,
            FetchResult::Response {
                status: Some(200),
                body: body.as_bytes(),
            },
        )
        .unwrap();
        assert!(a.try_begin_fetch(&shared, REFRESH, REFRESH));
        assert!(a
            .complete_fetch(&shared, REFRESH, FetchResult::NoResponse)
            .is_err());
        assert!(matches!(a.status(&shared, REFRESH), RemoteKeys::Ready(_)));
    }

    #[test]
    fn unknown_kid_refetches_at_most_every_30_seconds() {
        let shared = FakeShared::default();
        let mut a = rule();
        let body = jwks();
        assert!(a.try_begin_fetch(&shared, 0, REFRESH));
        a.complete_fetch(
            &shared,
            0,
            FetchResult::Response {
                status: Some(200),
                body: body.as_bytes(),
            },
        )
        .unwrap();
        a.request_refresh();
        assert!(!a.try_begin_fetch(&shared, 10_000, REFRESH));
        assert!(a.try_begin_fetch(&shared, UNKNOWN_KID_REFETCH_MS, REFRESH));
    }

    #[test]
    fn garbage_in_shared_data_is_ignored() {
        let shared = FakeShared::default();
        let mut a = rule();
        shared
            .set("auth-gate/jwks/https://dex/keys", b"not a document", None)
            .unwrap();
        shared
            .set("auth-gate/jwks-fetch/https://dex/keys", b"\xff\xfe", None)
            .unwrap();
        assert!(!a.sync(&shared));
        assert!(matches!(a.status(&shared, 0), RemoteKeys::Pending));
        assert!(a.try_begin_fetch(&shared, 0, REFRESH));
    }
}
