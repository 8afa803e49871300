//! Buckets in proxy-wasm shared data, the one store all Envoy workers see, updated with
//! compare-and-swap so `--concurrency N` admits exactly the limit.
//!
//! Key layout (every key is created when a configuration is accepted, see [`ensure_keys`],
//! because the host has no "create if absent": a `set` of an absent key always succeeds, so
//! two workers creating the same bucket on the request path could both admit):
//! - `local-ratelimit/r/<id>`: a rule whose bucket does not depend on client values (every
//!   level matched an exact value or a `share_threshold` wildcard). One per rule of the config.
//! - `local-ratelimit/t/<n>`, `n < max_keys`: the table of per-value buckets. A bucket may live
//!   in either of two slots, two hashes of its identity modulo `max_keys`. A slot holds one
//!   bucket; another bucket may take the slot only when the occupant is full (a full bucket is
//!   what a new one would be, so nothing is lost). A value whose two slots both hold buckets
//!   still refilling is limited by its rule's overflow bucket instead, never admitted without a
//!   bucket. When it later finds a slot, its new bucket starts full: the tokens it drew from the
//!   overflow bucket are not charged to it, so in that window it may be admitted up to its limit
//!   once more (the documented tolerance). Two candidate slots make that rare (both busy: about
//!   (active values / `max_keys`)²). Starting from the overflow bucket's level instead would
//!   let one client that keeps the overflow bucket empty refuse every newcomer.
//! - `local-ratelimit/o/<rule>`: one overflow bucket per per-value rule.
//!
//! Memory is therefore fixed once the configuration is accepted: no request creates a key.

use crate::bucket::{Bucket, Rate};

pub use plugin_kit::shared::{SetError, SharedData, StoreError};

/// Why a bucket operation gave up; the caller applies `failure_mode_deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Every attempt lost its compare-and-swap to another worker.
    Contention,
    /// The host refused a read or a write.
    Store,
}

/// Attempts per bucket operation before [`Failure::Contention`]. Each lost attempt means another
/// worker's write succeeded, so with W workers a fair host rarely needs more than W.
pub const MAX_CAS_ATTEMPTS: usize = 16;

const PREFIX: &str = "local-ratelimit/";
const FORMAT_VERSION: u8 = 1;
/// What [`ensure_keys`] writes: not a bucket, so the slot is free.
const FREE: &[u8] = &[0];

/// A bucket's identity: domain, rule (key path and limit) and values; SHA-256 so that no
/// client value can be crafted to land on another client's bucket.
pub type Fingerprint = [u8; 16];

pub fn fingerprint(parts: &[&[u8]]) -> Fingerprint {
    let mut hasher = hmac_sha256::Hash::new();
    for part in parts {
        // Length-prefixed: ("ab","c") and ("a","bc") differ.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut id = [0u8; 16];
    for (out, byte) in id.iter_mut().zip(digest.iter()) {
        *out = *byte;
    }
    id
}

/// A bucket's identity: its rule's, then the descriptor values that select it.
pub fn bucket_identity(rule: &Fingerprint, values: &[String]) -> Fingerprint {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(values.len() + 1);
    parts.push(rule);
    parts.extend(values.iter().map(String::as_bytes));
    fingerprint(&parts)
}

/// Lowercase hex, two digits per byte. Written out by hand: it runs for every request, and a
/// `format!` per byte went through the formatting machinery 16 times per key.
/// `PREFIX`, then `kind`, then `id` in lowercase hex: a rate-limited request makes one such key
/// (or two), so it is written into one allocation, without formatting machinery.
fn hex_key(kind: &str, id: &Fingerprint) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut key = String::with_capacity(PREFIX.len() + kind.len() + id.len() * 2);
    key.push_str(PREFIX);
    key.push_str(kind);
    for byte in id {
        key.push(char::from(DIGITS[usize::from(byte >> 4)]));
        key.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    key
}

/// Where a bucket lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRef {
    pub id: Fingerprint,
    /// The rule's identity, which names its overflow bucket.
    pub rule: Fingerprint,
    pub rate: Rate,
    pub per_value: bool,
}

pub fn rule_key(id: &Fingerprint) -> String {
    hex_key("r/", id)
}

pub fn overflow_key(rule: &Fingerprint) -> String {
    hex_key("o/", rule)
}

pub fn slot_key(index: u32) -> String {
    format!("{PREFIX}t/{index}")
}

/// The two table slots a value's bucket may live in, from the two halves of its identity (the
/// same slot twice when they collide).
fn slots_of(id: &Fingerprint, max_keys: u32) -> [u32; 2] {
    let slot = |half: &[u8]| {
        let mut bytes = [0u8; 8];
        for (out, byte) in bytes.iter_mut().zip(half) {
            *out = *byte;
        }
        let slot = u64::from_le_bytes(bytes) % u64::from(max_keys.max(1));
        u32::try_from(slot).unwrap_or(0)
    };
    let (first, second) = id.split_at(8);
    [slot(first), slot(second)]
}

/// The result of a successful bucket operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub admitted: bool,
    /// The bucket after the operation (for headers).
    pub bucket: Bucket,
    /// Whether the table slot was busy and the rule's overflow bucket answered.
    pub overflow: bool,
    /// How many were taken (when admitted).
    pub tokens: u32,
    /// Where the tokens came from, to give them back.
    key: String,
    id: Fingerprint,
}

enum Slot {
    /// Our bucket, refilled to now.
    Ours(Bucket),
    /// Nothing to keep there (free, foreign bytes, another value's full bucket): a new bucket
    /// may start.
    Free,
    /// Another value's bucket that is still refilling.
    Busy,
}

fn read_slot(bytes: &[u8], id: &Fingerprint, rate: Rate, now_ns: u64) -> Slot {
    let stored = match bytes.split_first() {
        Some((&FORMAT_VERSION, rest)) if rest.len() > id.len() => {
            let (stored_id, body) = rest.split_at(id.len());
            Bucket::decode(body).map(|bucket| (stored_id == id, bucket.refilled(now_ns)))
        }
        _ => None,
    };
    match stored {
        // Ours only at our rate: the identity includes the rate, so another one can only come
        // from bytes this code did not write, which must not set the limit.
        Some((true, bucket)) if bucket.rate == rate => Slot::Ours(bucket),
        Some((_, other)) if !other.is_full() => Slot::Busy,
        _ => Slot::Free,
    }
}

/// A key's value and version. A missing key is only possible if this configuration's keys were
/// not created (they are, in [`ensure_keys`]): it is created free and read again.
fn read_key(store: &dyn SharedData, key: &str) -> Result<(Vec<u8>, u32), Failure> {
    if let Some(found) = store.get(key).map_err(|_| Failure::Store)? {
        return Ok(found);
    }
    log::warn!("local-ratelimit: shared key {key} was missing, created");
    store.set(key, FREE, None).map_err(|_| Failure::Store)?;
    store
        .get(key)
        .map_err(|_| Failure::Store)?
        .ok_or(Failure::Store)
}

/// Where a take goes: the key, the identity its bucket is stored under, the bucket as it
/// stands now, and the key's version for the compare-and-swap.
struct Place {
    key: String,
    id: Fingerprint,
    bucket: Bucket,
    cas: u32,
    overflow: bool,
}

/// Finds `target`'s bucket: its rule key; or for a per-value bucket, whichever of its two slots
/// holds it, else the first free one (a new, full bucket), else the rule's overflow bucket.
fn locate(
    store: &dyn SharedData,
    target: &BucketRef,
    max_keys: u32,
    now_ns: u64,
) -> Result<Place, Failure> {
    let rate = target.rate;
    let place = |key: String, id: Fingerprint, bucket, cas, overflow| Place {
        key,
        id,
        bucket,
        cas,
        overflow,
    };
    // A rule or overflow key holds its one bucket: anything else there is corrupt, so free.
    let single = |key: String, id: Fingerprint, overflow: bool| {
        let (bytes, cas) = read_key(store, &key)?;
        let bucket = match read_slot(&bytes, &id, rate, now_ns) {
            Slot::Ours(bucket) => bucket,
            Slot::Free | Slot::Busy => Bucket::full(rate, now_ns),
        };
        Ok(place(key, id, bucket, cas, overflow))
    };
    if !target.per_value {
        return single(rule_key(&target.id), target.id, false);
    }
    let [first, second] = slots_of(&target.id, max_keys);
    let distinct = if first == second { 1 } else { 2 };
    // Both slots are looked at before a new bucket is made, so a value never has two.
    let mut free = None;
    for slot in [first, second].into_iter().take(distinct) {
        let key = slot_key(slot);
        let (bytes, cas) = read_key(store, &key)?;
        match read_slot(&bytes, &target.id, rate, now_ns) {
            Slot::Ours(bucket) => return Ok(place(key, target.id, bucket, cas, false)),
            Slot::Free if free.is_none() => free = Some((key, cas)),
            Slot::Free | Slot::Busy => {}
        }
    }
    match free {
        Some((key, cas)) => Ok(place(
            key,
            target.id,
            Bucket::full(rate, now_ns),
            cas,
            false,
        )),
        None => single(overflow_key(&target.rule), target.rule, true),
    }
}

/// The stored form of `id`'s bucket.
pub fn encode(id: &Fingerprint, bucket: &Bucket) -> Vec<u8> {
    let mut header = Vec::with_capacity(1 + id.len());
    header.push(FORMAT_VERSION);
    header.extend_from_slice(id);
    bucket.encode(&header)
}

/// Takes `tokens` (the request's weight) from the bucket `target` names, if it holds them.
pub fn take(
    store: &dyn SharedData,
    target: &BucketRef,
    max_keys: u32,
    now_ns: u64,
    tokens: u32,
) -> Result<Taken, Failure> {
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Place {
            key,
            id,
            mut bucket,
            cas,
            overflow,
        } = locate(store, target, max_keys, now_ns)?;
        let admitted = bucket.try_take(tokens);
        let value = encode(&id, &bucket);
        let taken = Taken {
            admitted,
            tokens,
            bucket,
            overflow,
            key,
            id,
        };
        if !admitted {
            // Nothing changed: no write, no contention.
            return Ok(taken);
        }
        match store.set(&taken.key, &value, Some(cas)) {
            Ok(()) => return Ok(taken),
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Failed) => return Err(Failure::Store),
        }
    }
    Err(Failure::Contention)
}

/// Returns the tokens `taken` took (the request was refused by another limit).
pub fn give_back(store: &dyn SharedData, taken: &Taken, now_ns: u64) -> Result<(), Failure> {
    if !taken.admitted {
        return Ok(());
    }
    for _ in 0..MAX_CAS_ATTEMPTS {
        let Some((bytes, cas)) = store.get(&taken.key).map_err(|_| Failure::Store)? else {
            return Err(Failure::Store);
        };
        let mut bucket = match read_slot(&bytes, &taken.id, taken.bucket.rate, now_ns) {
            Slot::Ours(bucket) => bucket,
            // Our bucket is gone (it was full again and reused): nothing to return.
            Slot::Free | Slot::Busy => return Ok(()),
        };
        if bucket.is_full() {
            return Ok(());
        }
        bucket.give_back(taken.tokens);
        match store.set(&taken.key, &encode(&taken.id, &bucket), Some(cas)) {
            Ok(()) => return Ok(()),
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Failed) => return Err(Failure::Store),
        }
    }
    Err(Failure::Contention)
}

/// Creates every key of `keys` that does not exist yet, as a free slot; existing keys (buckets
/// of an earlier configuration or of another worker) are kept, which is how balances survive a
/// configuration push. Returns how many keys were created.
pub fn ensure_keys(
    store: &dyn SharedData,
    keys: impl Iterator<Item = String>,
) -> Result<usize, StoreError> {
    let mut created = 0;
    for key in keys {
        if store.get(&key)?.is_none() {
            store.set(&key, FREE, None).map_err(|_| StoreError)?;
            created += 1;
        }
    }
    Ok(created)
}

#[doc(hidden)] // the unit tests' store, public for the fuzz targets in fuzz/
pub mod fake {
    //! An in-memory shared store that can lose compare-and-swaps on purpose.
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    /// What another worker does between our read and our write.
    pub type OtherWorker = Box<dyn Fn(&FakeStore)>;

    #[derive(Default)]
    pub struct FakeStore {
        pub data: RefCell<BTreeMap<String, (Vec<u8>, u32)>>,
        next_cas: Cell<u32>,
        /// The next this-many CAS writes fail as if another worker wrote first.
        pub cas_conflicts: Cell<usize>,
        /// Each injected conflict also applies this write first (another worker's take).
        pub interleave: RefCell<Option<OtherWorker>>,
        pub fail_reads: Cell<bool>,
        pub fail_writes: Cell<bool>,
        pub writes: Cell<usize>,
    }

    impl FakeStore {
        pub fn put(&self, key: &str, value: &[u8]) {
            let cas = self.next_cas.get() + 1;
            self.next_cas.set(cas);
            self.data
                .borrow_mut()
                .insert(key.to_string(), (value.to_vec(), cas));
        }
    }

    impl SharedData for FakeStore {
        fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
            if self.fail_reads.get() {
                return Err(StoreError);
            }
            Ok(self.data.borrow().get(key).cloned())
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
            if self.fail_writes.get() {
                return Err(SetError::Failed);
            }
            if cas.is_some() && self.cas_conflicts.get() > 0 {
                self.cas_conflicts.set(self.cas_conflicts.get() - 1);
                if let Some(other_worker) = self.interleave.borrow().as_ref() {
                    other_worker(self);
                } else {
                    // Another worker rewrote the key: same bytes, new token.
                    let current = self.data.borrow().get(key).map(|(v, _)| v.clone());
                    self.put(key, &current.unwrap_or_default());
                }
                return Err(SetError::CasMismatch);
            }
            let current = self.data.borrow().get(key).map(|(_, c)| *c);
            if let (Some(expected), Some(actual)) = (cas, current) {
                if expected != actual {
                    return Err(SetError::CasMismatch);
                }
            }
            self.writes.set(self.writes.get() + 1);
            self.put(key, value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeStore;
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const SEC: u64 = 1_000_000_000;

    fn target(name: &str, capacity: u32, per_value: bool) -> BucketRef {
        BucketRef {
            id: fingerprint(&[b"rule", name.as_bytes()]),
            rule: fingerprint(&[b"rule"]),
            rate: Rate::new(capacity, 60),
            per_value,
        }
    }

    #[test]
    fn keys_spell_the_fingerprint_in_lowercase_hex() {
        let id: Fingerprint = [
            0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff, 0x12, 0x34, 0x56, 0x78,
            0x9a, 0xbc,
        ];
        assert_eq!(
            rule_key(&id),
            format!("{PREFIX}r/00010f107f80abcdefff123456789abc")
        );
        assert_eq!(
            overflow_key(&id),
            format!("{PREFIX}o/00010f107f80abcdefff123456789abc")
        );
    }

    fn prepared(max_keys: u32, targets: &[&BucketRef]) -> FakeStore {
        let store = FakeStore::default();
        let keys = (0..max_keys)
            .map(slot_key)
            .chain(targets.iter().map(|t| rule_key(&t.id)))
            .chain(targets.iter().map(|t| overflow_key(&t.rule)));
        ensure_keys(&store, keys).unwrap();
        store
    }

    fn admitted(store: &FakeStore, t: &BucketRef, max_keys: u32, now: u64) -> bool {
        take(store, t, max_keys, now, 1).unwrap().admitted
    }

    /// Chaos finding (10-minute run): a value whose slot was busy drew 5 tokens from the
    /// overflow bucket; when the occupant was full again, the value took the slot with a full
    /// bucket. That extra allowance is the documented tolerance (one table slot here, so both
    /// of the value's slots are the same): never more than one limit's worth.
    #[test]
    fn a_value_leaving_the_overflow_bucket_gets_at_most_one_more_allowance() {
        let (a, b) = (target("a", 10, true), target("b", 10, true));
        let store = prepared(1, &[&a, &b]);
        assert!(admitted(&store, &b, 1, 0));
        let from_overflow = (0..5)
            .map(|_| take(&store, &a, 1, 0, 1).unwrap())
            .filter(|t| t.admitted && t.overflow)
            .count();
        assert_eq!(from_overflow, 5);
        // b is full again after one token's time.
        let in_slot: Vec<Taken> = (0..20)
            .map(|_| take(&store, &a, 1, 6 * SEC, 1).unwrap())
            .collect();
        assert!(!in_slot[0].overflow, "a took the slot");
        let admitted_in_slot = in_slot.iter().filter(|t| t.admitted).count();
        assert_eq!(admitted_in_slot, 10);
        assert!(from_overflow + admitted_in_slot <= 2 * 10 + 1);
    }

    /// Review finding: new values started from the overflow bucket's level, so one client
    /// keeping the overflow bucket empty (its slots busy) had every newcomer refused.
    #[test]
    fn a_new_value_starts_full_even_when_the_overflow_bucket_is_empty() {
        let (x, y) = (target("x", 2, true), target("y", 2, true));
        let store = prepared(1, &[&x, &y]);
        assert!(admitted(&store, &x, 1, 0));
        while admitted(&store, &y, 1, 0) {}
        // x's slot frees up; the overflow bucket is still empty. A newcomer starts full.
        let newcomer = target("newcomer", 2, true);
        let later = 30 * SEC;
        let takes: Vec<Taken> = (0..3)
            .map(|_| take(&store, &newcomer, 1, later, 1).unwrap())
            .collect();
        assert!(takes.iter().all(|t| !t.overflow));
        assert_eq!(takes.iter().filter(|t| t.admitted).count(), 2);
    }

    /// A value whose first slot holds another value's refilling bucket lives in its second
    /// slot, and keeps finding it there, even after its first slot frees up.
    #[test]
    fn a_value_whose_first_slot_is_busy_lives_in_its_second() {
        const KEYS: u32 = 8;
        let named = |i: usize| target(&format!("v{i}"), 2, true);
        let a = (0..)
            .map(named)
            .find(|t| {
                let [first, second] = slots_of(&t.id, KEYS);
                first != second
            })
            .unwrap();
        let [a_first, a_second] = slots_of(&a.id, KEYS);
        let b = (0..)
            .map(named)
            .find(|t| t.id != a.id && slots_of(&t.id, KEYS)[0] == a_first)
            .unwrap();
        let store = prepared(KEYS, &[&a, &b]);
        assert!(admitted(&store, &b, KEYS, 0), "b takes its first slot");
        for _ in 0..2 {
            let taken = take(&store, &a, KEYS, 0, 1).unwrap();
            assert!(taken.admitted && !taken.overflow);
            assert_eq!(taken.key, slot_key(a_second));
        }
        // At 30 s b's bucket is full again, so a's first slot is free; a's own bucket has one
        // token back. A second bucket in the first slot would admit twice.
        let later = 30 * SEC;
        let takes: Vec<Taken> = (0..2)
            .map(|_| take(&store, &a, KEYS, later, 1).unwrap())
            .collect();
        assert!(takes.iter().all(|t| t.key == slot_key(a_second)));
        assert_eq!(
            takes.iter().map(|t| t.admitted).collect::<Vec<_>>(),
            [true, false]
        );
    }

    #[test]
    fn fingerprint_separates_parts() {
        assert_ne!(fingerprint(&[b"ab", b"c"]), fingerprint(&[b"a", b"bc"]));
        assert_eq!(fingerprint(&[b"x"]), fingerprint(&[b"x"]));
    }

    #[test]
    fn rule_bucket_admits_exactly_capacity_and_refills() {
        let t = target("a", 2, false);
        let store = prepared(4, &[&t]);
        assert!(admitted(&store, &t, 4, 0));
        assert!(admitted(&store, &t, 4, 0));
        let refused = take(&store, &t, 4, SEC, 1).unwrap();
        assert!(!refused.admitted);
        assert_eq!(refused.bucket.ns_until_tokens(1), Some(29 * SEC));
        assert!(admitted(&store, &t, 4, 30 * SEC));
    }

    #[test]
    fn cas_conflicts_are_retried_and_never_double_spend() {
        let t = target("a", 3, false);
        let store = prepared(4, &[&t]);
        // Another worker takes a token during each of our first two attempts.
        let other = t;
        *store.interleave.borrow_mut() = Some(Box::new(move |s: &FakeStore| {
            let key = rule_key(&other.id);
            let (bytes, _) = s.data.borrow().get(&key).cloned().unwrap();
            let mut bucket = match read_slot(&bytes, &other.id, other.rate, 0) {
                Slot::Ours(b) => b,
                Slot::Free => Bucket::full(other.rate, 0),
                Slot::Busy => unreachable!(),
            };
            assert!(bucket.try_take(1));
            s.put(&key, &encode(&other.id, &bucket));
        }));
        store.cas_conflicts.set(2);
        let ours = take(&store, &t, 4, 0, 1).unwrap();
        assert!(ours.admitted);
        assert_eq!(ours.bucket.remaining(), 0, "two other takes + ours = 3");
        *store.interleave.borrow_mut() = None;
        assert!(!admitted(&store, &t, 4, 0));
    }

    #[test]
    fn contention_past_the_bound_is_reported_not_admitted_silently() {
        let t = target("a", 3, false);
        let store = prepared(4, &[&t]);
        store.cas_conflicts.set(MAX_CAS_ATTEMPTS);
        assert_eq!(take(&store, &t, 4, 0, 1), Err(Failure::Contention));
        store.cas_conflicts.set(MAX_CAS_ATTEMPTS - 1);
        assert!(admitted(&store, &t, 4, 0));
    }

    #[test]
    fn store_errors_are_reported() {
        let t = target("a", 3, false);
        let store = prepared(4, &[&t]);
        store.fail_reads.set(true);
        assert_eq!(take(&store, &t, 4, 0, 1), Err(Failure::Store));
        store.fail_reads.set(false);
        store.fail_writes.set(true);
        assert_eq!(take(&store, &t, 4, 0, 1), Err(Failure::Store));
    }

    #[test]
    fn refused_take_writes_nothing() {
        let t = target("z", 0, false);
        let store = prepared(1, &[&t]);
        let before = store.writes.get();
        assert!(!admitted(&store, &t, 1, 0));
        assert_eq!(store.writes.get(), before);
    }

    #[test]
    fn per_value_buckets_are_independent_and_busy_slots_use_the_overflow_bucket() {
        // One slot: every value collides.
        let a = target("a", 2, true);
        let b = target("b", 2, true);
        let store = prepared(1, &[&a, &b]);
        assert!(admitted(&store, &a, 1, 0));
        // `a` still refills: `b` may not evict it and goes to the overflow bucket.
        let t = take(&store, &b, 1, 0, 1).unwrap();
        assert!(t.admitted && t.overflow);
        assert!(admitted(&store, &b, 1, 0));
        assert!(
            !admitted(&store, &b, 1, 0),
            "the overflow bucket has the rule's capacity"
        );
        // `a` kept its balance: one token left.
        assert!(admitted(&store, &a, 1, 0));
        assert!(!admitted(&store, &a, 1, 0));
        // Once `a` is full again (60 s), `b` takes the slot with a full bucket of its own.
        let t = take(&store, &b, 1, 60 * SEC, 1).unwrap();
        assert!(t.admitted && !t.overflow);
        assert_eq!(t.bucket.remaining(), 1);
    }

    #[test]
    fn flood_of_distinct_values_never_grows_the_store_and_hot_key_stays_exact() {
        let max_keys = 64;
        let hot = target("hot", 5, true);
        let store = prepared(max_keys, &[&hot]);
        let keys_before = store.data.borrow().len();
        assert!(admitted(&store, &hot, max_keys, 0));
        let mut hot_admitted = 1;
        for i in 0..10_000u32 {
            let attacker = target(&format!("attacker-{i}"), 5, true);
            let _ = take(&store, &attacker, max_keys, 0, 1).unwrap();
            if i % 100 == 0 && take(&store, &hot, max_keys, 0, 1).unwrap().admitted {
                hot_admitted += 1;
            }
        }
        assert_eq!(
            store.data.borrow().len(),
            keys_before,
            "no key created by requests"
        );
        assert_eq!(hot_admitted, 5, "the hot key got exactly its limit");
    }

    #[test]
    fn foreign_or_corrupt_bytes_are_treated_as_free() {
        let t = target("a", 1, true);
        let store = prepared(1, &[&t]);
        store.put(&slot_key(0), &[FORMAT_VERSION, 1, 2, 3]);
        assert!(admitted(&store, &t, 1, 0));
        store.put(&slot_key(0), b"some other plugin's value");
        assert!(admitted(&store, &t, 1, 0));
    }

    /// Fuzz finding (ratelimit_store): well-formed bytes with our identity but another capacity
    /// (written by a broken host or another plugin) were trusted, 1000 admissions for a limit
    /// of 2. The identity includes the rate, so only such bytes can differ.
    #[test]
    fn stored_bucket_at_another_rate_is_not_trusted() {
        let t = target("a", 2, true);
        let store = prepared(1, &[&t]);
        let forged = Bucket::full(Rate::new(1000, 60), 0);
        store.put(&slot_key(0), &encode(&t.id, &forged));
        let takes: Vec<Taken> = (0..3).map(|_| take(&store, &t, 1, 0, 1).unwrap()).collect();
        assert_eq!(takes.iter().filter(|taken| taken.admitted).count(), 2);
        assert!(takes.iter().all(|taken| taken.bucket.rate == t.rate));
    }

    /// Fuzz finding (ratelimit_store): another value's bucket still refilling in a rule key sent
    /// the request to an overflow key such a rule does not have, which the request created
    /// (memory is no longer fixed); in an overflow key it bounced until `Contention`. A rule or
    /// overflow key holds its one bucket: anything else there is corrupt, so free.
    #[test]
    fn foreign_bucket_in_a_rule_or_overflow_key_is_treated_as_free() {
        let mut refilling = Bucket::full(Rate::new(5, 60), 0);
        assert!(refilling.try_take(1));
        let foreign = encode(&fingerprint(&[b"other"]), &refilling);

        let t = target("a", 1, false);
        let store = FakeStore::default();
        ensure_keys(&store, [rule_key(&t.id)].into_iter()).unwrap();
        store.put(&rule_key(&t.id), &foreign);
        let taken = take(&store, &t, 1, 0, 1).unwrap();
        assert!(taken.admitted && !taken.overflow);
        assert_eq!(store.data.borrow().len(), 1, "no key created");

        let (a, b) = (target("a", 1, true), target("b", 1, true));
        let store = prepared(1, &[&a, &b]);
        assert!(admitted(&store, &a, 1, 0));
        store.put(&overflow_key(&b.rule), &foreign);
        let taken = take(&store, &b, 1, 0, 1).unwrap();
        assert!(taken.admitted && taken.overflow);
        assert!(!admitted(&store, &b, 1, 0));
    }

    #[test]
    fn missing_key_is_created_then_used() {
        let t = target("a", 1, false);
        let store = FakeStore::default();
        assert!(admitted(&store, &t, 1, 0));
        assert!(!admitted(&store, &t, 1, 0));
    }

    #[test]
    fn give_back_returns_the_token_where_it_was_taken() {
        let a = target("a", 1, true);
        let b = target("b", 1, true);
        let store = prepared(1, &[&a, &b]);
        assert!(admitted(&store, &a, 1, 0));
        let from_overflow = take(&store, &b, 1, 0, 1).unwrap();
        assert!(from_overflow.overflow);
        give_back(&store, &from_overflow, 0).unwrap();
        assert!(
            take(&store, &b, 1, 0, 1).unwrap().admitted,
            "overflow token returned"
        );
        let store = prepared(1, &[&a]);
        let taken = take(&store, &a, 1, 0, 1).unwrap();
        store.cas_conflicts.set(2);
        give_back(&store, &taken, 0).unwrap();
        assert!(admitted(&store, &a, 1, 0));
    }

    #[test]
    fn ensure_keys_keeps_existing_buckets() {
        let t = target("a", 2, false);
        let store = prepared(2, &[&t]);
        assert!(admitted(&store, &t, 2, 0));
        let created = ensure_keys(
            &store,
            [rule_key(&t.id), slot_key(0), slot_key(5)].into_iter(),
        );
        assert_eq!(created, Ok(1));
        assert_eq!(take(&store, &t, 2, 0, 1).unwrap().bucket.remaining(), 0);
    }
}
