//! Token bucket arithmetic, exact in integers: capacity `requests_per_unit`, refilled
//! continuously at `requests_per_unit` per unit, lazily when the bucket is touched.
//!
//! The level is kept in "token-nanoseconds": one token is `period_ns` units and the bucket gains
//! `capacity` units per elapsed nanosecond, so no rounding ever happens.

/// A bucket's configuration, stored with its state so any worker (and any later configuration)
/// can tell whether an occupant of the shared table is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub capacity: u32,
    pub period_ns: u64,
}

impl Rate {
    pub fn new(capacity: u32, period_secs: u64) -> Self {
        Rate {
            capacity,
            period_ns: period_secs.saturating_mul(1_000_000_000),
        }
    }

    fn token(self) -> u128 {
        u128::from(self.period_ns)
    }

    fn max_level(self) -> u128 {
        u128::from(self.capacity) * self.token()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub rate: Rate,
    level: u128,
    updated_ns: u64,
}

impl Bucket {
    /// A bucket seen for the first time is full.
    pub fn full(rate: Rate, now_ns: u64) -> Self {
        Bucket {
            rate,
            level: rate.max_level(),
            updated_ns: now_ns,
        }
    }

    /// The bucket at `now_ns`. A clock behind the stored time (another worker wrote later)
    /// refills nothing and never moves the stored time back.
    pub fn refilled(self, now_ns: u64) -> Self {
        let elapsed = u128::from(now_ns.saturating_sub(self.updated_ns));
        let gained = elapsed.saturating_mul(u128::from(self.rate.capacity));
        Bucket {
            rate: self.rate,
            level: self.level.saturating_add(gained).min(self.rate.max_level()),
            updated_ns: self.updated_ns.max(now_ns),
        }
    }

    /// Takes `tokens` (a request's weight) if the bucket holds them all; never part of them.
    /// A weight of 0 is refused, as Envoy's filter refuses it.
    pub fn try_take(&mut self, tokens: u32) -> bool {
        let need = u128::from(tokens) * self.rate.token();
        if self.rate.capacity > 0 && tokens > 0 && self.level >= need {
            self.level -= need;
            true
        } else {
            false
        }
    }

    /// Returns `tokens` taken for a request that another limit refused.
    pub fn give_back(&mut self, tokens: u32) {
        self.level = self
            .level
            .saturating_add(u128::from(tokens) * self.rate.token())
            .min(self.rate.max_level());
    }

    pub fn remaining(&self) -> u32 {
        u32::try_from(self.level / self.rate.token().max(1)).unwrap_or(u32::MAX)
    }

    pub fn is_full(&self) -> bool {
        self.level >= self.rate.max_level()
    }

    /// Nanoseconds until `tokens` are available (0 if they are); `None` when they never will
    /// be (a zero-capacity bucket, a weight of 0, or more than the bucket holds).
    pub fn ns_until_tokens(&self, tokens: u32) -> Option<u64> {
        if self.rate.capacity == 0 || tokens == 0 || tokens > self.rate.capacity {
            return None;
        }
        Some(self.ns_until_level(u128::from(tokens) * self.rate.token()))
    }

    /// Nanoseconds until the bucket is full again: the quota's reset.
    pub fn ns_until_full(&self) -> u64 {
        self.ns_until_level(self.rate.max_level())
    }

    fn ns_until_level(&self, target: u128) -> u64 {
        if self.level >= target {
            return 0;
        }
        if self.rate.capacity == 0 {
            return u64::MAX;
        }
        let missing = target.saturating_sub(self.level);
        let ns = missing.div_ceil(u128::from(self.rate.capacity));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// The shared-data encoding, after `header` (the slot's identity): capacity, period, level,
    /// time, little endian.
    pub fn encode(&self, header: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(header.len() + ENCODED_LEN);
        out.extend_from_slice(header);
        out.extend_from_slice(&self.rate.capacity.to_le_bytes());
        out.extend_from_slice(&self.rate.period_ns.to_le_bytes());
        out.extend_from_slice(&self.level.to_le_bytes());
        out.extend_from_slice(&self.updated_ns.to_le_bytes());
        out
    }

    /// Reads what [`Bucket::encode`] wrote; `None` for anything else (never panics on hostile or
    /// foreign bytes).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENCODED_LEN {
            return None;
        }
        let capacity = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
        let period_ns = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
        let level = u128::from_le_bytes(bytes.get(12..28)?.try_into().ok()?);
        let updated_ns = u64::from_le_bytes(bytes.get(28..36)?.try_into().ok()?);
        let rate = Rate {
            capacity,
            period_ns,
        };
        if period_ns == 0 || level > rate.max_level() {
            return None;
        }
        Some(Bucket {
            rate,
            level,
            updated_ns,
        })
    }
}

/// Bytes of an encoded bucket without its header.
pub const ENCODED_LEN: usize = 4 + 8 + 16 + 8;

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn full_bucket_admits_capacity_then_refuses() {
        let mut b = Bucket::full(Rate::new(3, 60), 0);
        assert_eq!(b.remaining(), 3);
        assert!(b.try_take(1) && b.try_take(1) && b.try_take(1));
        assert!(!b.try_take(1));
        assert_eq!(b.remaining(), 0);
        assert_eq!(b.ns_until_tokens(1), Some(20 * SEC));
        assert_eq!(b.ns_until_full(), 60 * SEC);
    }

    #[test]
    fn refill_is_continuous_and_capped() {
        let mut b = Bucket::full(Rate::new(2, 60), 0);
        assert!(b.try_take(1) && b.try_take(1));
        // One token every 30 s.
        let b1 = b.refilled(29 * SEC);
        assert_eq!(b1.remaining(), 0);
        assert_eq!(b1.ns_until_tokens(1), Some(SEC));
        let mut b2 = b.refilled(30 * SEC);
        assert_eq!(b2.remaining(), 1);
        assert!(b2.try_take(1));
        assert!(!b2.try_take(1));
        let b3 = b.refilled(3_600 * SEC);
        assert_eq!(b3.remaining(), 2);
        assert!(b3.is_full());
        assert_eq!(b3.ns_until_full(), 0);
    }

    #[test]
    fn clock_behind_the_stored_time_refills_nothing() {
        let mut b = Bucket::full(Rate::new(1, 1), 10 * SEC);
        assert!(b.try_take(1));
        let back = b.refilled(5 * SEC);
        assert_eq!(back.remaining(), 0);
        assert_eq!(back.refilled(10 * SEC + SEC).remaining(), 1);
    }

    #[test]
    fn give_back_is_capped_at_capacity() {
        let mut b = Bucket::full(Rate::new(1, 1), 0);
        b.give_back(1);
        assert_eq!(b.remaining(), 1);
        assert!(b.try_take(1));
        b.give_back(1);
        assert!(b.is_full());
    }

    #[test]
    fn zero_capacity_refuses_everything() {
        let mut b = Bucket::full(Rate::new(0, 60), 0).refilled(u64::MAX);
        assert!(!b.try_take(1));
        // Never: no retry time to promise.
        assert_eq!(b.ns_until_tokens(1), None);
        assert!(
            b.is_full(),
            "a zero bucket holds no state and can be evicted"
        );
    }

    #[test]
    fn weighted_takes_are_all_or_nothing() {
        let mut b = Bucket::full(Rate::new(100, 60), 0);
        assert!(b.try_take(64));
        assert_eq!(b.remaining(), 36);
        assert!(!b.try_take(37), "never part of a weight");
        assert_eq!(b.remaining(), 36);
        // 28 tokens missing at 100 per minute: 16.8 s.
        assert_eq!(b.ns_until_tokens(64), Some(16_800_000_000));
        b.give_back(64);
        assert!(b.is_full());
        assert!(!b.try_take(101));
        assert_eq!(
            b.ns_until_tokens(101),
            None,
            "more than the bucket ever holds"
        );
        assert!(!b.try_take(u32::MAX));
        assert!(!b.try_take(0));
        assert_eq!(b.ns_until_tokens(0), None);
    }

    #[test]
    fn extreme_rates_do_not_overflow() {
        let mut b = Bucket::full(Rate::new(u32::MAX, 365 * 86_400), 0);
        assert_eq!(b.remaining(), u32::MAX);
        assert!(b.try_take(1));
        let r = b.refilled(u64::MAX);
        assert!(r.is_full());
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let mut b = Bucket::full(Rate::new(5, 60), 123);
        assert!(b.try_take(1));
        let bytes = b.encode(b"hdr");
        assert_eq!(bytes.len(), 3 + ENCODED_LEN);
        assert_eq!(Bucket::decode(bytes.get(3..).unwrap()), Some(b));
        assert_eq!(Bucket::decode(&[]), None);
        assert_eq!(Bucket::decode(&[0xff; ENCODED_LEN + 1]), None);
        // A level above capacity cannot come from this code: refused.
        assert_eq!(Bucket::decode(&[0xff; ENCODED_LEN]), None);
        // Zero period: refused (it would make every bucket full forever).
        let zero = Bucket::full(Rate::new(5, 0), 0).encode(&[]);
        assert_eq!(Bucket::decode(&zero), None);
    }
}
