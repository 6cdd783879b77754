//! Capped exponential backoff with jitter, for the watcher's reconnects and the
//! controller's per-key error retries.
//!
//! The curve comes from backon (`ExponentialBuilder` with `.without_max_times()`,
//! so it never runs out). Jitter is "equal jitter" applied here: each delay is
//! drawn from `[d/2, d]`, so the cap really caps and delays at the cap are still
//! spread apart (many agents reconnecting after an etcd outage do not stampede).
//! Nothing here fails, so there is no error type.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// How retries back off.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// First delay (before jitter).
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Growth per failure.
    pub factor: f32,
    /// Draw each delay from `[d/2, d]` instead of exactly `d`.
    pub jitter: bool,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            min: Duration::from_millis(200),
            max: Duration::from_secs(60),
            factor: 2.0,
            jitter: true,
        }
    }
}

impl BackoffConfig {
    /// A fresh, endless sequence of delays.
    pub fn build(&self) -> Backoff {
        Backoff {
            jitter: self.jitter,
            max: self.max,
            inner: ExponentialBuilder::default()
                .with_min_delay(self.min)
                .with_max_delay(self.max)
                .with_factor(self.factor)
                .without_max_times()
                .build(),
        }
    }
}

/// An endless sequence of capped, possibly jittered delays.
#[derive(Debug)]
pub struct Backoff {
    jitter: bool,
    max: Duration,
    inner: backon::ExponentialBackoff,
}

impl Backoff {
    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.inner.next().unwrap_or(self.max).min(self.max);
        // backon multiplies in f32: round off its noise (200.000003ms → 200ms).
        let d = Duration::from_micros((d.as_secs_f64() * 1e6).round() as u64);
        if self.jitter {
            d.mul_f64(0.5 + 0.5 * random_fraction())
        } else {
            d
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

/// A random number in `[0, 1)` (std's per-instance random hasher keys; good
/// enough to spread retries, not for anything else).
fn random_fraction() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Per-key backoff: each failure of a key waits longer, up to the cap; a
/// success resets that key.
#[derive(Debug, Default)]
pub struct Backoffs {
    cfg: BackoffConfig,
    keys: HashMap<String, (u32, Backoff)>,
}

impl Backoffs {
    /// Backoffs with `cfg`.
    pub fn new(cfg: BackoffConfig) -> Self {
        Backoffs {
            cfg,
            keys: HashMap::new(),
        }
    }

    /// The delay before the next retry of `key` (and counts one failure).
    pub fn next(&mut self, key: &str) -> Duration {
        let cfg = &self.cfg;
        let (n, b) = self
            .keys
            .entry(key.to_string())
            .or_insert_with(|| (0, cfg.build()));
        *n = n.saturating_add(1);
        b.next_delay()
    }

    /// Consecutive failures of `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.keys.get(key).map(|(n, _)| *n).unwrap_or(0)
    }

    /// Forgets `key`'s failures.
    pub fn reset(&mut self, key: &str) {
        self.keys.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn cfg(jitter: bool) -> BackoffConfig {
        BackoffConfig {
            min: ms(100),
            max: ms(1000),
            factor: 2.0,
            jitter,
        }
    }

    #[test]
    fn grows_caps_and_never_ends() {
        let d: Vec<Duration> = cfg(false).build().take(1000).collect();
        assert_eq!(
            d[..6],
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(d.len(), 1000);
        assert_eq!(d[999], ms(1000));
    }

    #[test]
    fn jitter_stays_within_half_and_full_delay_and_varies() {
        let plain: Vec<Duration> = cfg(false).build().take(30).collect();
        let jittered: Vec<Duration> = cfg(true).build().take(30).collect();
        for (p, j) in plain.iter().zip(&jittered) {
            assert!(*j >= *p / 2 && *j <= *p, "{j:?} vs {p:?}");
        }
        let at_cap: std::collections::HashSet<Duration> = jittered[10..].iter().copied().collect();
        assert!(at_cap.len() > 1, "delays at the cap are spread");
    }

    #[test]
    fn per_key_backoff_is_independent_and_resets() {
        let mut b = Backoffs::new(cfg(false));
        let d: Vec<Duration> = (0..6).map(|_| b.next("k")).collect();
        assert_eq!(
            d,
            vec![ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(b.failures("k"), 6);
        assert_eq!(b.next("other"), ms(100));
        b.reset("k");
        assert_eq!(b.failures("k"), 0);
        assert_eq!(b.next("k"), ms(100));
    }
}
