//! Verified-token caches, two tiers:
//!
//! - each worker's own map from token to its verified identity: a client that reuses its token
//!   pays for the signature once per worker; bounded, oldest entry evicted first, an entry dropped
//!   once the token expires;
//! - the VM's shared data (every worker sees it): tokens whose signature some worker checked, so
//!   that a token costs one signature check, not one per worker. Slots chosen by the token's hash
//!   (bounded: a slot holds the last token written to it); an entry names the key set that
//!   checked it, so a key rotation or a configuration with other keys ignores it, and the claims
//!   (time, audiences) are checked again on every use.
//!
//! Both tiers find a token by a keyed 64-bit hash and compare the stored token itself, in
//! constant time: a token that is not the stored one never matches, whatever its hash. Only a
//! token whose signature verified is ever stored, so a forged token cannot enter either tier.

use crate::constant_time::equals_secret;
use crate::token::Identity;
use hashbrown::HashMap;
use plugin_kit::shared::SharedData;
use std::collections::VecDeque;
use std::hash::BuildHasher as _;
use std::rc::Rc;

type Key = (u64, usize);

/// The shared-data key of the hash seed every worker uses (the slot of a token must be the same
/// on every worker).
const SEED_KEY: &str = "auth-gate.token-hash-seed";
/// The shared-data key prefix of the slots.
const SLOT_KEY: &str = "auth-gate.verified-token.";

struct Entry {
    token: Box<str>,
    identity: Rc<Identity>,
}

/// What the caches saved, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Tokens answered from the worker's own cache.
    pub hits: u64,
    /// Tokens whose signature another worker (or this one, earlier) had checked.
    pub shared_hits: u64,
    /// Signatures checked.
    pub signature_checks: u64,
}

pub struct TokenCache {
    capacity: usize,
    hasher: foldhash::fast::FixedState,
    entries: HashMap<Key, Entry>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
    shared: Option<Box<dyn SharedData>>,
    pub stats: CacheStats,
}

impl TokenCache {
    /// A cache of `capacity` entries per worker and as many shared slots; 0 disables both.
    /// `shared` is the VM's shared data (`None`: the worker's own tier only).
    pub fn new(capacity: usize, shared: Option<Box<dyn SharedData>>) -> Self {
        let seed = match &shared {
            Some(store) => shared_seed(store.as_ref()),
            None => random_seed(),
        };
        Self {
            capacity,
            hasher: foldhash::fast::FixedState::with_seed(seed),
            entries: HashMap::new(),
            order: VecDeque::new(),
            shared: shared.filter(|_| capacity > 0),
            stats: CacheStats::default(),
        }
    }

    fn hash(&self, token: &str) -> u64 {
        self.hasher.hash_one(token.as_bytes())
    }

    /// The identity of `token` verified by `rule`, unless absent or expired at `now` (with the
    /// same skew the verification allows).
    pub fn get(&mut self, token: &str, rule: usize, now: u64, skew: u64) -> Option<Rc<Identity>> {
        let key = (self.hash(token), rule);
        let entry = self.entries.get(&key)?;
        if !same_token(&entry.token, token) {
            return None;
        }
        if entry
            .identity
            .expires_at
            .is_some_and(|exp| now > exp.saturating_add(skew))
        {
            self.entries.remove(&key);
            self.order.retain(|k| *k != key);
            return None;
        }
        self.stats.hits += 1;
        Some(entry.identity.clone())
    }

    pub fn insert(&mut self, token: &str, rule: usize, identity: Rc<Identity>) {
        if self.capacity == 0 {
            return;
        }
        let key = (self.hash(token), rule);
        let entry = Entry {
            token: token.into(),
            identity,
        };
        if self.entries.insert(key, entry).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
    }

    /// Forgets the worker's tier: the keys of a rule changed (the shared tier is keyed by the
    /// key set, so its entries for the old keys are ignored from now on).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    fn slot_key(&self, token: &str) -> String {
        let slot = self.hash(token) % self.capacity.max(1) as u64;
        format!("{SLOT_KEY}{slot}")
    }

    /// Whether some worker checked `token`'s signature with the key set `keys` (a
    /// [`crate::jwks::KeySet::fingerprint`]).
    pub fn signature_known(&mut self, token: &str, keys: u64) -> bool {
        let Some(store) = &self.shared else {
            return false;
        };
        let Ok(Some((value, _))) = store.get(&self.slot_key(token)) else {
            return false;
        };
        let known = value.len() == 8 + token.len()
            && value[..8] == keys.to_le_bytes()
            && equals_secret(&value[8..], token.as_bytes());
        if known {
            self.stats.shared_hits += 1;
        }
        known
    }

    /// Records that `token`'s signature verified with the key set `keys`.
    pub fn share(&mut self, token: &str, keys: u64) {
        let Some(store) = &self.shared else {
            return;
        };
        let mut value = keys.to_le_bytes().to_vec();
        value.extend_from_slice(token.as_bytes());
        // Last writer wins: a slot is a cache line, not a record anybody relies on.
        if store.set(&self.slot_key(token), &value, None).is_err() {
            log::debug!("auth-gate: cannot share a verified token");
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

fn same_token(stored: &str, token: &str) -> bool {
    equals_secret(stored.as_bytes(), token.as_bytes())
}

/// A seed from the host's random source (std's hash map keys).
fn random_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0u8)
}

/// The seed all workers of the VM use: the stored one, or a new one stored for the others. Two
/// workers starting together may each store theirs; each reads back what stayed, and a worker
/// left with another seed only misses the shared tier.
fn shared_seed(store: &dyn SharedData) -> u64 {
    let read = |store: &dyn SharedData| {
        store
            .get(SEED_KEY)
            .ok()
            .flatten()
            .and_then(|(bytes, _)| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map(u64::from_le_bytes)
    };
    if let Some(seed) = read(store) {
        return seed;
    }
    let seed = random_seed();
    let _ = store.set(SEED_KEY, &seed.to_le_bytes(), None);
    read(store).unwrap_or(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn identity(expires_at: Option<u64>) -> Rc<Identity> {
        Rc::new(Identity {
            issuer: Some("iss".into()),
            subject: Some("sub".into()),
            audiences: vec![],
            presenter: None,
            claims: Map::new(),
            payload: String::new(),
            expires_at,
        })
    }

    #[test]
    fn hit_miss_and_rule_separation() {
        let mut cache = TokenCache::new(10, None);
        cache.insert("a.b.c", 0, identity(Some(100)));
        assert!(cache.get("a.b.c", 0, 50, 0).is_some());
        assert!(cache.get("a.b.c", 1, 50, 0).is_none());
        assert!(cache.get("a.b.d", 0, 50, 0).is_none());
        assert_eq!(cache.stats.hits, 1);
    }

    #[test]
    fn a_token_with_the_same_hash_is_not_the_cached_one() {
        let mut cache = TokenCache::new(10, None);
        cache.insert("a.b.c", 0, identity(None));
        // Force a colliding key: another token stored under the first one's hash.
        let key = (cache.hash("a.b.c"), 0);
        assert!(cache.entries.contains_key(&key));
        cache.entries.get_mut(&key).unwrap().token = "x.y.z".into();
        assert!(cache.get("a.b.c", 0, 0, 0).is_none());
    }

    #[test]
    fn workers_share_checked_signatures_by_key_set() {
        use crate::remote::tests::FakeShared;
        let store = Rc::new(FakeShared::default());
        let worker = |capacity| TokenCache::new(capacity, Some(Box::new(store.clone())));
        let (mut first, mut second) = (worker(10), worker(10));
        assert_eq!(
            first.hasher.hash_one(1u8),
            second.hasher.hash_one(1u8),
            "one seed"
        );
        assert!(!second.signature_known("a.b.c", 7));
        first.share("a.b.c", 7);
        assert!(second.signature_known("a.b.c", 7));
        assert_eq!(second.stats.shared_hits, 1);
        // Other keys (rotated, or another configuration's) did not check it.
        assert!(!second.signature_known("a.b.c", 8));
        assert!(!second.signature_known("a.b.d", 7));
        // A slot holds the last token written to it.
        let mut evicting = "e".to_string();
        while first.slot_key(&evicting) != first.slot_key("a.b.c") {
            evicting.push('e');
        }
        first.share(&evicting, 7);
        assert!(!second.signature_known("a.b.c", 7));
        assert!(second.signature_known(&evicting, 7));
        // Off with the cache.
        let mut off = worker(0);
        off.share("z", 7);
        assert!(!off.signature_known("z", 7));
        assert!(!second.signature_known("z", 7));
    }

    #[test]
    fn expired_entries_are_dropped_with_skew() {
        let mut cache = TokenCache::new(10, None);
        cache.insert("t", 0, identity(Some(100)));
        assert!(cache.get("t", 0, 160, 60).is_some());
        assert!(cache.get("t", 0, 161, 60).is_none());
        assert_eq!(cache.len(), 0);
        cache.insert("forever", 0, identity(None));
        assert!(cache.get("forever", 0, u64::MAX, 60).is_some());
    }

    #[test]
    fn bounded_with_oldest_evicted_and_zero_disables() {
        let mut cache = TokenCache::new(2, None);
        for token in ["1", "2", "3"] {
            cache.insert(token, 0, identity(None));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("1", 0, 0, 0).is_none());
        assert!(cache.get("3", 0, 0, 0).is_some());
        cache.insert("3", 0, identity(None));
        assert_eq!(cache.len(), 2);
        cache.clear();
        assert_eq!(cache.len(), 0);
        let mut off = TokenCache::new(0, None);
        off.insert("1", 0, identity(None));
        assert_eq!(off.len(), 0);
    }
}
