//! A small seeded generator (SplitMix64): the run's random choices are reproducible from the
//! seed it prints, and no crate is needed for it.

use std::time::Duration;

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[low, high]` milliseconds.
    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        let span = high.saturating_sub(low) + 1;
        Duration::from_millis(low + self.next_u64() % span)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    /// The items in a random order (Fisher–Yates).
    pub fn shuffled<T: Clone>(&mut self, items: &[T]) -> Vec<T> {
        let mut out = items.to_vec();
        for i in (1..out.len()).rev() {
            out.swap(i, self.below(i + 1));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_values_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let first: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let second: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(first, second);
        for _ in 0..1000 {
            assert!(a.below(3) < 3);
            let d = a.millis(10, 20);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20));
        }
        let mut order = a.shuffled(&[1, 2, 3, 4]);
        order.sort();
        assert_eq!(order, vec![1, 2, 3, 4]);
        assert_eq!(a.pick::<u8>(&[]), None);
    }
}
