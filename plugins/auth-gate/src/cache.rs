//! Verified-token cache: a client that reuses its token pays for the signature once. Keyed by
//! the SHA-256 of the token (a forged token cannot collide with a cached one) and the rule that
//! verified it; bounded, oldest entry evicted first; an entry is dropped once the token expires.

use crate::token::Identity;
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::rc::Rc;

type Key = ([u8; 32], usize);

pub struct TokenCache {
    capacity: usize,
    entries: HashMap<Key, Rc<Identity>>,
    /// Insertion order, for eviction.
    order: VecDeque<Key>,
    hits: u64,
}

impl TokenCache {
    /// A cache of `capacity` entries; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            hits: 0,
        }
    }

    /// The identity of `token` verified by `rule`, unless absent or expired at `now` (with the
    /// same skew the verification allows).
    pub fn get(&mut self, token: &str, rule: usize, now: u64, skew: u64) -> Option<Rc<Identity>> {
        let key = (hmac_sha256::Hash::hash(token.as_bytes()), rule);
        let identity = self.entries.get(&key)?;
        if identity
            .expires_at
            .is_some_and(|exp| now > exp.saturating_add(skew))
        {
            self.entries.remove(&key);
            self.order.retain(|k| *k != key);
            return None;
        }
        self.hits += 1;
        Some(identity.clone())
    }

    pub fn insert(&mut self, token: &str, rule: usize, identity: Rc<Identity>) {
        if self.capacity == 0 {
            return;
        }
        let key = (hmac_sha256::Hash::hash(token.as_bytes()), rule);
        if self.entries.insert(key, identity).is_none() {
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

    /// Forgets everything: the keys of a rule changed.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }

    /// Lookups answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

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
        let mut cache = TokenCache::new(10);
        cache.insert("a.b.c", 0, identity(Some(100)));
        assert!(cache.get("a.b.c", 0, 50, 0).is_some());
        assert!(cache.get("a.b.c", 1, 50, 0).is_none());
        assert!(cache.get("a.b.d", 0, 50, 0).is_none());
        assert_eq!(cache.hits(), 1);
    }

    #[test]
    fn expired_entries_are_dropped_with_skew() {
        let mut cache = TokenCache::new(10);
        cache.insert("t", 0, identity(Some(100)));
        assert!(cache.get("t", 0, 160, 60).is_some());
        assert!(cache.get("t", 0, 161, 60).is_none());
        assert_eq!(cache.len(), 0);
        cache.insert("forever", 0, identity(None));
        assert!(cache.get("forever", 0, u64::MAX, 60).is_some());
    }

    #[test]
    fn bounded_with_oldest_evicted_and_zero_disables() {
        let mut cache = TokenCache::new(2);
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
        let mut off = TokenCache::new(0);
        off.insert("1", 0, identity(None));
        assert_eq!(off.len(), 0);
    }
}
