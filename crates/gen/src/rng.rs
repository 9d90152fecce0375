//! A tiny, fully specified PRNG for the record generator.
//!
//! The generator promises the same bytes for the same seed on every machine
//! and with every dependency version. `rand`'s `StdRng` does not promise a
//! stable algorithm across releases, so the generator uses SplitMix64 (Steele,
//! Lea and Flood, 2014): one 64-bit state, a handful of integer operations per
//! output, good statistical quality for simulation, and nothing left to change.
//!
//! Everything derived from it uses integer arithmetic or IEEE-754 basic
//! operations (`+ - * /`, which are correctly rounded everywhere) — never
//! `f64::ln` or `powf`, whose last bits depend on the platform's libm.

/// SplitMix64.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole future output is fixed by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A uniform integer in `0..n` (`n > 0`), without modulo bias (Lemire's method).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0, "below(0) has no valid output");
        let n = n.max(1);
        let mut product = u128::from(self.next_u64()) * u128::from(n);
        if (product as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (product as u64) < threshold {
                product = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (product >> 64) as u64
    }

    /// A uniform index into a slice of length `len` (`len > 0`).
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// One element of a non-empty slice, uniformly.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// A uniform float in `(0, 1]`: never zero, so its logarithm is finite.
    pub(crate) fn unit_open_zero(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// An exponentially distributed interval with mean `1 / rate`, in microseconds.
    pub(crate) fn exponential_micros(&mut self, rate_per_second: f64) -> u64 {
        let seconds = -ln(self.unit_open_zero()) / rate_per_second;
        // `as` saturates, so an absurd rate cannot wrap the clock.
        (seconds * 1_000_000.0) as u64
    }

    /// 128 random bits as a version-4 UUID in its usual text form.
    pub(crate) fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// `len` characters drawn uniformly from `alphabet` (ASCII).
    pub(crate) fn string_from(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| *self.pick(alphabet) as char).collect()
    }
}

/// The SplitMix64 output function; also a good 64-bit hash finaliser.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over some strings, separated so `("ab","c")` and `("a","bc")` differ.
pub(crate) fn hash_strings(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xFF)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    mix64(hash)
}

/// Natural logarithm for `x > 0`, from IEEE basic operations only, so every
/// platform computes the same bits (see the module doc).
///
/// `x = m * 2^e` with `m` in `[sqrt(1/2), sqrt(2))`; then
/// `ln m = 2 atanh(s)` with `s = (m - 1) / (m + 1)`, `|s| < 0.172`, whose odd
/// power series reaches full double precision in 12 terms.
pub(crate) fn ln(x: f64) -> f64 {
    debug_assert!(x > 0.0 && x.is_finite() && x.is_normal());
    let bits = x.to_bits();
    let mut exponent = ((bits >> 52) & 0x7FF) as i64 - 1023;
    let mut mantissa = f64::from_bits((bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000);
    if mantissa > std::f64::consts::SQRT_2 {
        mantissa /= 2.0;
        exponent += 1;
    }
    let s = (mantissa - 1.0) / (mantissa + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    for k in 0..12 {
        sum += term / (2 * k + 1) as f64;
        term *= s2;
    }
    2.0 * sum + exponent as f64 * std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_splitmix64_reference_output() {
        // First outputs for seed 1234567, from the reference C implementation.
        let mut r = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    #[test]
    fn test_below_stays_in_range_and_covers_it() {
        let mut r = SplitMix64::new(7);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            let v = r.below(7);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn test_ln_matches_std_closely() {
        let mut r = SplitMix64::new(3);
        for _ in 0..10_000 {
            let x = r.unit_open_zero();
            let (ours, std) = (ln(x), x.ln());
            assert!(
                (ours - std).abs() <= 1e-14 * std.abs().max(1.0),
                "{x}: {ours} vs {std}"
            );
        }
        for x in [1.0, 0.5, 2.0, 1e-300, 1e300, std::f64::consts::E] {
            assert!(
                (ln(x) - x.ln()).abs() <= 1e-13 * x.ln().abs().max(1.0),
                "{x}"
            );
        }
    }

    #[test]
    fn test_exponential_mean_is_about_one_over_rate() {
        let mut r = SplitMix64::new(11);
        let n = 20_000u64;
        let total: u64 = (0..n).map(|_| r.exponential_micros(50.0)).sum();
        let mean_seconds = total as f64 / n as f64 / 1e6;
        assert!((mean_seconds - 0.02).abs() < 0.001, "{mean_seconds}");
    }

    #[test]
    fn test_uuid_is_version_4_shaped() {
        let mut r = SplitMix64::new(5);
        let id = r.uuid();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(id.len(), 36);
        assert_ne!(id, r.uuid());
    }
}
