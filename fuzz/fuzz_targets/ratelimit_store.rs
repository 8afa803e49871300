//! local-ratelimit's token buckets in shared data (`store::take` / `give_back` on the unit tests'
//! in-memory store), as several workers and a hostile or broken host would drive them. Input:
//! lines; the first `<max_keys> <capacity> <period seconds>` (one per-value rule and one rule
//! bucket, both at that rate), then one operation per line, `<dt>` in ms moving the clock either
//! way, `<k>` indexing the configuration's keys (table slots, overflow key, rule key):
//! `t <dt> <value>` take for a client value (any bytes), `r <dt>` take from the rule bucket,
//! `b` give back the last token taken, `c <n>` lose the next n compare-and-swaps,
//! `w <n> <value>` the same but another worker takes a token of `<value>` each time,
//! `x <k> <bytes>` overwrite a key, `h <k> <n>` truncate it, `f <k> <bit>` flip a bit of it,
//! `g <k> <capacity> <tokens> <value>` write a well-formed bucket of `<value>` (`@o` the
//! overflow bucket, `@r` the rule bucket) at another capacity, `e r|w|-` fail reads, writes,
//! neither.
//!
//! Invariants: nothing panics; the keys are those created with the configuration, whatever
//! happens (no request creates one); a bucket decodes to what was encoded, and well-formed
//! stored bytes encode back to themselves; every bucket answers at the configured rate, whatever
//! rate the stored bytes claim; a bucket taken from for the first time is full (so no two
//! values, however spelled, share one: distinct values also have distinct identities); and the
//! tokens taken and not given back never exceed `capacity` + what refilled since the first take,
//! per bucket and per value (its own bucket and the overflow bucket together, plus `capacity`
//! once each time it moves from the overflow bucket to a bucket of its own: the documented
//! tolerance), counted again from the first take after each overwrite of the store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use local_ratelimit::actions::header_text;
use local_ratelimit::bucket::{Bucket, Rate};
use local_ratelimit::store::fake::{FakeStore, OtherWorker};
use local_ratelimit::store::{
    self, bucket_identity, ensure_keys, fingerprint, give_back, take, BucketRef, Failure,
    Fingerprint, Taken, MAX_CAS_ATTEMPTS,
};
use model_gateway_fuzz::lines;
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

const MS: u64 = 1_000_000;
/// The clock's start, so that it can go back.
const START_NS: u64 = 3_600_000 * MS;
/// Version byte and identity before a stored bucket.
const HEADER_LEN: usize = 1 + std::mem::size_of::<Fingerprint>();

/// What a token is charged to: the bucket it came from, and the client value it was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Unit {
    Own(Fingerprint),
    Overflow(Fingerprint),
    Value(Fingerprint),
}

/// Tokens taken from a bucket and not given back, since its first take (after the last
/// overwrite).
#[derive(Debug)]
struct Account {
    since_ns: u64,
    taken: u64,
    /// The documented tolerance granted so far.
    tolerance: u64,
}

/// Takes of the other worker (`w`): its target, its clock, the result.
type Log = Rc<RefCell<Vec<(BucketRef, u64, Result<Taken, Failure>)>>>;

struct World {
    store: FakeStore,
    keys: Vec<String>,
    max_keys: u32,
    rate: Rate,
    per_value_rule: Fingerprint,
    rule_bucket: BucketRef,
    now_ns: u64,
    latest_ns: u64,
    /// Bytes of each per-value identity seen.
    values: HashMap<Fingerprint, Vec<u8>>,
    accounts: HashMap<Unit, Account>,
    /// Buckets taken from since the start (after an overwrite, a first take may find anything).
    used: HashSet<Unit>,
    /// Values whose last take came from the overflow bucket.
    in_overflow: HashSet<Fingerprint>,
    overwritten: bool,
    /// Admitted takes not given back yet, newest last, with what they were charged to.
    admitted: Vec<(Taken, Vec<Unit>)>,
    log: Log,
}

fn number<T: std::str::FromStr>(word: Option<&[u8]>) -> Option<T> {
    std::str::from_utf8(word?).ok()?.parse().ok()
}

impl World {
    fn new(line: &[u8]) -> Option<World> {
        let mut words = line.split(|b| *b == b' ');
        let max_keys = number::<u32>(words.next())?.clamp(1, 64);
        let capacity = number::<u32>(words.next())?.min(1000);
        let period = number::<u64>(words.next())?.clamp(1, 86_400);
        let rate = Rate::new(capacity, period);
        let per_value_rule = fingerprint(&[b"fuzz", b"per-value"]);
        let rule = fingerprint(&[b"fuzz", b"rule"]);
        let rule_bucket = BucketRef {
            id: fingerprint(&[&rule]),
            rule,
            rate,
            per_value: false,
        };
        let keys: Vec<String> = (0..max_keys)
            .map(store::slot_key)
            .chain([
                store::overflow_key(&per_value_rule),
                store::rule_key(&rule_bucket.id),
            ])
            .collect();
        let store = FakeStore::default();
        ensure_keys(&store, keys.iter().cloned()).ok()?;
        Some(World {
            store,
            keys,
            max_keys,
            rate,
            per_value_rule,
            rule_bucket,
            now_ns: START_NS,
            latest_ns: START_NS,
            values: HashMap::new(),
            accounts: HashMap::new(),
            used: Default::default(),
            in_overflow: HashSet::new(),
            overwritten: false,
            admitted: Vec::new(),
            log: Log::default(),
        })
    }

    /// A client value's bucket, identified as the limiter does (the rule, then the value as
    /// descriptor text). `None` for a value with NUL, which Envoy never lets
    /// into a header (`header_text` relies on it).
    fn value_bucket(&mut self, value: &[u8]) -> Option<BucketRef> {
        if value.contains(&0) {
            return None;
        }
        let id = bucket_identity(&self.per_value_rule, &[header_text(value.to_vec())]);
        let known = self.values.entry(id).or_insert_with(|| value.to_vec());
        assert_eq!(known, value, "two values, one bucket identity");
        Some(BucketRef {
            id,
            rule: self.per_value_rule,
            rate: self.rate,
            per_value: true,
        })
    }

    fn advance(&mut self, dt_ms: Option<i64>) {
        let dt = dt_ms.unwrap_or(0).saturating_mul(MS as i64);
        self.now_ns = self.now_ns.saturating_add_signed(dt);
        self.latest_ns = self.latest_ns.max(self.now_ns);
    }

    fn take(&mut self, target: BucketRef) {
        let result = take(&self.store, &target, self.max_keys, self.now_ns, 1);
        // The other worker's takes happened first, during ours.
        self.take_log();
        if let Ok(taken) = result {
            self.check_taken(&target, self.now_ns, taken);
        }
    }

    /// Checks the other worker's takes.
    fn take_log(&mut self) {
        let others = std::mem::take(&mut *self.log.borrow_mut());
        for (target, now_ns, result) in others {
            if let Ok(taken) = result {
                self.check_taken(&target, now_ns, taken);
            }
        }
    }

    fn check_taken(&mut self, target: &BucketRef, now_ns: u64, taken: Taken) {
        let bucket = taken.bucket;
        assert_eq!(bucket.rate, target.rate, "a stored rate was trusted");
        assert_eq!(Bucket::decode(&bucket.encode(&[])), Some(bucket));
        let unit = if taken.overflow {
            Unit::Overflow(target.rule)
        } else {
            Unit::Own(target.id)
        };
        if self.used.insert(unit) && !self.overwritten {
            let capacity = self.rate.capacity;
            assert_eq!(
                (taken.admitted, bucket.remaining()),
                (capacity > 0, capacity.saturating_sub(1)),
                "first take of {unit:?} found a used bucket"
            );
        }
        let mut units = vec![unit];
        if target.per_value {
            units.push(Unit::Value(target.id));
        }
        for unit in &units {
            let account = self.accounts.entry(*unit).or_insert(Account {
                since_ns: now_ns,
                taken: 0,
                tolerance: 0,
            });
            // Leaving the overflow bucket for a bucket of its own, a value starts full.
            if matches!(unit, Unit::Value(_)) {
                let left_overflow = !taken.overflow && self.in_overflow.remove(&target.id);
                if taken.overflow {
                    self.in_overflow.insert(target.id);
                } else if left_overflow {
                    account.tolerance += u64::from(self.rate.capacity);
                }
            }
            if !taken.admitted {
                continue;
            }
            account.taken += 1;
            let elapsed = u128::from(self.latest_ns.saturating_sub(account.since_ns));
            let refilled =
                elapsed * u128::from(self.rate.capacity) / u128::from(self.rate.period_ns);
            assert!(
                u128::from(account.taken)
                    <= u128::from(self.rate.capacity) + refilled + u128::from(account.tolerance),
                "{unit:?}: {account:?} at {} ns, rate {:?}",
                self.latest_ns,
                self.rate
            );
        }
        if taken.admitted {
            self.admitted.push((taken, units));
        }
    }

    fn give_back(&mut self) {
        let Some((taken, units)) = self.admitted.pop() else {
            return;
        };
        if give_back(&self.store, &taken, self.now_ns).is_ok() {
            // Returned, or dropped because the bucket is full or gone: not spent either way.
            for unit in units {
                if let Some(account) = self.accounts.get_mut(&unit) {
                    account.taken = account.taken.saturating_sub(1);
                }
            }
        }
        self.take_log();
    }

    fn conflicts(&mut self, n: Option<usize>, worker: Option<BucketRef>) {
        self.store
            .cas_conflicts
            .set(n.unwrap_or(0).min(MAX_CAS_ATTEMPTS));
        *self.store.interleave.borrow_mut() = worker.map(|target| {
            let (log, max_keys, now_ns) = (self.log.clone(), self.max_keys, self.now_ns);
            Box::new(move |store: &FakeStore| {
                let result = take(store, &target, max_keys, now_ns, 1);
                log.borrow_mut().push((target, now_ns, result));
            }) as OtherWorker
        });
    }

    /// Writes `value` over key `k` as a broken host or another plugin would: the buckets are
    /// counted again from their next take.
    fn overwrite(&mut self, k: Option<usize>, value: impl FnOnce(Vec<u8>) -> Vec<u8>) {
        let Some(key) = k.and_then(|k| self.keys.get(k % self.keys.len())) else {
            return;
        };
        let current = self.store.data.borrow().get(key).map(|(v, _)| v.clone());
        let value = value(current.unwrap_or_default());
        if let Some((header, body)) = value.split_at_checked(HEADER_LEN) {
            if let Some(bucket) = Bucket::decode(body) {
                assert_eq!(bucket.encode(header), value, "decoding is not canonical");
            }
        }
        self.store.put(key, &value);
        self.overwritten = true;
        self.accounts.clear();
        self.admitted.clear();
        self.in_overflow.clear();
    }

    /// A well-formed bucket of `value` at another capacity, `tokens` left.
    fn forged(&mut self, capacity: Option<u32>, tokens: Option<u32>, value: &[u8]) -> Vec<u8> {
        let id = match value {
            b"@o" => self.per_value_rule,
            b"@r" => self.rule_bucket.id,
            _ => match self.value_bucket(value) {
                Some(target) => target.id,
                None => return Vec::new(),
            },
        };
        let capacity = capacity.unwrap_or(u32::MAX).min(10_000);
        let rate = Rate {
            capacity,
            period_ns: self.rate.period_ns,
        };
        let mut bucket = Bucket::full(rate, self.now_ns);
        for _ in tokens.unwrap_or(0).min(capacity)..capacity {
            bucket.try_take(1);
        }
        store::encode(&id, &bucket)
    }

    fn run(&mut self, line: &[u8]) {
        let mut words = line.splitn(3, |b| *b == b' ');
        let (op, first) = (words.next().unwrap_or_default(), words.next());
        let rest = words.next();
        match op {
            b"t" => {
                self.advance(number(first));
                if let Some(target) = self.value_bucket(rest.unwrap_or_default()) {
                    self.take(target);
                }
            }
            b"r" => {
                self.advance(number(first));
                self.take(self.rule_bucket);
            }
            b"b" => self.give_back(),
            b"c" => self.conflicts(number(first), None),
            b"w" => {
                let worker = self.value_bucket(rest.unwrap_or_default());
                self.conflicts(number(first), worker);
            }
            b"x" => self.overwrite(number(first), |_| rest.unwrap_or_default().to_vec()),
            b"h" => {
                let len: usize = number(rest).unwrap_or(0);
                self.overwrite(number(first), |v| v[..len.min(v.len())].to_vec());
            }
            b"f" => {
                let bit: usize = number(rest).unwrap_or(0);
                self.overwrite(number(first), |mut v| {
                    let len = v.len().max(1);
                    if let Some(byte) = v.get_mut(bit / 8 % len) {
                        *byte ^= 1 << (bit % 8);
                    }
                    v
                });
            }
            b"g" => {
                let mut args = rest.unwrap_or_default().splitn(3, |b| *b == b' ');
                let (capacity, tokens) = (number(args.next()), number(args.next()));
                let value = self.forged(capacity, tokens, args.next().unwrap_or_default());
                self.overwrite(number(first), |_| value);
            }
            b"e" => {
                let which = first.unwrap_or_default();
                self.store.fail_reads.set(which == b"r");
                self.store.fail_writes.set(which == b"w");
            }
            _ => {}
        }
        let keys: BTreeSet<String> = self.store.data.borrow().keys().cloned().collect();
        assert_eq!(
            keys,
            self.keys.iter().cloned().collect(),
            "the store's keys changed"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut lines = lines(data).into_iter();
    let Some(mut world) = lines.next().and_then(World::new) else {
        return;
    };
    for line in lines {
        world.run(line);
    }
});
