//! CPython's `random.Random`: the MT19937 Mersenne Twister seeded from an integer exactly as
//! CPython seeds it, with `getrandbits`, `randrange`, `randint`, `random`, `uniform` and
//! `choice` drawing the same numbers bit for bit.

use std::sync::{Arc, Mutex};

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// A Python `random.Random` instance. The generator state is set up on the first draw, so
/// environments that never draw cost nothing.
#[derive(Clone)]
pub struct PyRandom {
    seed: u64,
    /// The MT19937 state; empty until the first draw.
    mt: Vec<u32>,
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PyRandom")
            .field("seed", &self.seed)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl PyRandom {
    /// `random.Random(seed)` for an integer seed (CPython seeds from `abs(seed)`).
    pub fn new(seed: i64) -> PyRandom {
        PyRandom {
            seed: seed.unsigned_abs(),
            mt: Vec::new(),
            index: N,
        }
    }

    /// The state `init_by_array` gives the seed, copied from the few seeds seeded last in this
    /// process when it is one of them (BFCL's classes reuse a handful of seeds, and seeding
    /// costs more than a tool call).
    fn seed_state(&mut self) {
        /// Seeds seeded last and their states, newest last.
        static SEEDED: Mutex<Vec<(u64, Arc<[u32]>)>> = Mutex::new(Vec::new());
        const KEEP: usize = 8;
        let cached = SEEDED.lock().ok().and_then(|seeded| {
            seeded
                .iter()
                .find(|(seed, _)| *seed == self.seed)
                .map(|(_, mt)| mt.clone())
        });
        if let Some(mt) = cached {
            self.mt = mt.to_vec();
            self.index = N;
            return;
        }
        self.init_by_seed();
        if let Ok(mut seeded) = SEEDED.lock() {
            if seeded.len() == KEEP {
                seeded.remove(0);
            }
            seeded.push((self.seed, Arc::from(self.mt.as_slice())));
        }
    }

    /// CPython's `init_by_array` on the seed's 32-bit words (least significant first).
    fn init_by_seed(&mut self) {
        let mut n = self.seed;
        let mut key = Vec::with_capacity(2);
        while n > 0 {
            key.push((n & 0xffff_ffff) as u32);
            n >>= 32;
        }
        if key.is_empty() {
            key.push(0);
        }
        self.mt = vec![0; N];
        self.init_by_array(&key);
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..N {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let mut i = 1usize;
        let mut j = 0usize;
        let mut k = N.max(key.len());
        while k > 0 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
            k -= 1;
        }
        k = N - 1;
        while k > 0 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.mt[0] = self.mt[N - 1];
                i = 1;
            }
            k -= 1;
        }
        self.mt[0] = 0x8000_0000;
    }

    /// The next `N` words, in place, in CPython's order (its three loops: the indices
    /// `kk + 1` and `kk + M` wrap around without a division).
    fn twist(&mut self) {
        let mt = &mut self.mt[..N];
        let step = |lo: u32, hi: u32, far: u32| {
            let y = (lo & UPPER_MASK) | (hi & LOWER_MASK);
            far ^ (y >> 1) ^ if y & 1 == 1 { MATRIX_A } else { 0 }
        };
        for kk in 0..N - M {
            mt[kk] = step(mt[kk], mt[kk + 1], mt[kk + M]);
        }
        for kk in N - M..N - 1 {
            mt[kk] = step(mt[kk], mt[kk + 1], mt[kk + M - N]);
        }
        mt[N - 1] = step(mt[N - 1], mt[0], mt[M - 1]);
        self.index = 0;
    }

    /// The next 32-bit output of the generator (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.mt.is_empty() {
            self.seed_state();
        }
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// `getrandbits(k)` for `k <= 128`: 32-bit words filled from the least significant end, the
    /// last one cut to the bits left.
    pub fn getrandbits(&mut self, k: u32) -> u128 {
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return u128::from(self.next_u32() >> (32 - k));
        }
        let mut out: u128 = 0;
        let mut shift = 0;
        let mut left = k.min(128);
        while left > 0 {
            let mut word = self.next_u32();
            if left < 32 {
                word >>= 32 - left;
            }
            out |= u128::from(word) << shift;
            shift += 32;
            left = left.saturating_sub(32);
        }
        out
    }

    /// `_randbelow(n)` for `n > 0`: rejection sampling on `n.bit_length()` bits.
    fn randbelow(&mut self, n: u128) -> u128 {
        let k = 128 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `randrange(start, stop)`; `None` for an empty range (Python raises `ValueError`).
    pub fn randrange(&mut self, start: i64, stop: i64) -> Option<i64> {
        if stop <= start {
            return None;
        }
        let width = (i128::from(stop) - i128::from(start)) as u128;
        let r = self.randbelow(width);
        Some((i128::from(start) + r as i128) as i64)
    }

    /// `randint(a, b)`: a number in `[a, b]`; `None` when `b < a`.
    pub fn randint(&mut self, a: i64, b: i64) -> Option<i64> {
        let stop = b.checked_add(1)?;
        self.randrange(a, stop)
    }

    /// `random()`: a float in `[0, 1)` with 53 random bits.
    pub fn random(&mut self) -> f64 {
        let a = f64::from(self.next_u32() >> 5);
        let b = f64::from(self.next_u32() >> 6);
        (a * 67_108_864.0 + b) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `uniform(a, b)`: `a + (b - a) * random()`.
    pub fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.random()
    }

    /// `choice(seq)`: an index into a sequence of length `len`; `None` when it is empty.
    pub fn choice(&mut self, len: usize) -> Option<usize> {
        if len == 0 {
            return None;
        }
        Some(self.randbelow(len as u128) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by CPython 3.11 for the same calls.
    #[test]
    fn matches_cpython() {
        let mut r = PyRandom::new(200191);
        assert_eq!(
            (0..3)
                .map(|_| r.randint(10000, 99999).unwrap())
                .collect::<Vec<_>>(),
            EXPECTED_200191
        );
        let mut r = PyRandom::new(141053);
        assert_eq!(r.randint(100000000000, 999999999999), Some(EXPECTED_BIG));
        let mut r = PyRandom::new(0);
        assert_eq!(r.random(), EXPECTED_RANDOM_0);
        let mut r = PyRandom::new(1 << 40);
        assert_eq!(r.getrandbits(70), EXPECTED_BITS);
        let mut r = PyRandom::new(-5);
        assert_eq!(r.uniform(-10.0, 40.0), EXPECTED_UNIFORM);
    }

    /// A seed seeded again (its state copied from the process's recent seeds) draws what it
    /// drew the first time, also after more seeds than are kept, and past a second twist.
    #[test]
    fn reseeding_draws_the_same() {
        let draws = |seed: i64| {
            let mut r = PyRandom::new(seed);
            (0..700).map(|_| r.next_u32()).collect::<Vec<_>>()
        };
        let first = draws(200191);
        assert_eq!(draws(200191), first);
        for seed in 0..20 {
            draws(seed);
        }
        assert_eq!(draws(200191), first);
        let mut r = PyRandom::new(200191);
        assert_eq!(
            (0..3)
                .map(|_| r.randint(10000, 99999).unwrap())
                .collect::<Vec<_>>(),
            EXPECTED_200191
        );
    }

    const EXPECTED_200191: [i64; 3] = [67410, 41772, 24547];
    const EXPECTED_BIG: i64 = 262919693687;
    const EXPECTED_RANDOM_0: f64 = 0.8444218515250481;
    const EXPECTED_BITS: u128 = 781279065922817498497;
    const EXPECTED_UNIFORM: f64 = 21.145084744485096;
}
