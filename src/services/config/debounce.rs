//! When a burst of membership changes is rendered: after `quiet` without a
//! new change, but no later than `max` after the first change of the burst,
//! so a steady trickle of changes still renders. While the sources are not
//! *settled* (fewer endpoints than their specs want: a scale-up or a
//! replacement under way) only `max` renders, so a wave whose containers
//! turn ready far apart is still one render. Pure: the caller passes the
//! time (tokio's, so tests run on paused time) and whether it is settled.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebounceConfig {
    pub quiet: Duration,
    pub max: Duration,
}

impl Default for DebounceConfig {
    fn default() -> Self {
        // 300 ms quiet keeps a lone change → reload under 500 ms; a wave
        // whose containers turn ready further apart is held by `settled`,
        // up to 2 s (on 2 busy cores two starts can land a second apart).
        DebounceConfig::quiet(Duration::from_millis(300))
    }
}

impl DebounceConfig {
    /// `quiet`, with a burst's bound of 3x that (at least 2 s).
    pub fn quiet(quiet: Duration) -> DebounceConfig {
        DebounceConfig {
            quiet,
            max: (quiet * 3).max(Duration::from_secs(2)),
        }
    }
}

/// The state of one debounced stream of changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Debounce {
    Idle,
    Pending { first: Instant, last: Instant },
}

impl Debounce {
    /// A change happened at `now`.
    pub fn changed(&mut self, now: Instant) {
        *self = match *self {
            Debounce::Idle => Debounce::Pending {
                first: now,
                last: now,
            },
            Debounce::Pending { first, .. } => Debounce::Pending { first, last: now },
        };
    }

    /// When to render; `None` when nothing is pending.
    pub fn due(&self, cfg: DebounceConfig, settled: bool) -> Option<Instant> {
        match *self {
            Debounce::Idle => None,
            Debounce::Pending { first, last } if settled => {
                Some((last + cfg.quiet).min(first + cfg.max))
            }
            Debounce::Pending { first, .. } => Some(first + cfg.max),
        }
    }

    /// Takes the pending burst if it is due at `now`.
    pub fn fire(&mut self, cfg: DebounceConfig, now: Instant, settled: bool) -> bool {
        if self.due(cfg, settled).is_some_and(|d| d <= now) {
            *self = Debounce::Idle;
            true
        } else {
            false
        }
    }
}

/// Whether every source has what its spec wants: `(ready endpoints,
/// wanted)` per source, `None` wanted when unknown (`perNode`, no spec):
/// unknown never holds a render.
pub fn settled(sources: &[(usize, Option<u32>)]) -> bool {
    sources
        .iter()
        .all(|(have, want)| want.is_none_or(|w| *have >= w as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a `Debounce` with changes at the given offsets (ms) on paused
    /// time, sleeping until each due time like the driver does, and returns
    /// the offsets (ms) at which it fired. `settled_from`: the sources are
    /// settled from this change on (its index; 0: always).
    async fn fired(changes: &[u64], settled_from: usize, cfg: DebounceConfig) -> Vec<u64> {
        let start = Instant::now();
        let mut d = Debounce::Idle;
        let mut out = Vec::new();
        let mut seen = 0;
        loop {
            let settled = seen >= settled_from;
            let next_change = changes
                .get(seen)
                .map(|&ms| start + Duration::from_millis(ms));
            let due = d.due(cfg, settled);
            let wake = match (next_change, due) {
                (None, None) => break,
                (Some(c), Some(d)) => c.min(d),
                (Some(c), None) => c,
                (None, Some(d)) => d,
            };
            tokio::time::sleep_until(wake).await;
            let now = Instant::now();
            // A due render runs before a change arriving the same instant.
            if d.fire(cfg, now, settled) {
                out.push((now - start).as_millis() as u64);
            }
            while changes
                .get(seen)
                .is_some_and(|&ms| start + Duration::from_millis(ms) <= now)
            {
                seen += 1;
                d.changed(now);
            }
        }
        out
    }

    async fn check(changes: &[u64], settled_from: usize, expected: &[u64]) {
        let cfg = DebounceConfig {
            quiet: Duration::from_millis(100),
            max: Duration::from_millis(400),
        };
        assert_eq!(
            fired(changes, settled_from, cfg).await,
            expected,
            "changes at {changes:?}, settled from change {settled_from}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_fold_into_one_render() {
        check(&[], 0, &[]).await;
        check(&[0], 0, &[100]).await;
        // Four changes 50 ms apart (a scale-up wave): one render.
        check(&[0, 50, 100, 150], 0, &[250]).await;
        // Two bursts apart: two renders.
        check(&[0, 10, 500, 520], 0, &[110, 620]).await;
        // A steady trickle every 60 ms still renders by `max`.
        check(&[0, 60, 120, 180, 240, 300, 360, 420, 480], 0, &[400, 580]).await;
    }

    #[tokio::test(start_paused = true)]
    async fn unsettled_sources_hold_the_render_until_max() {
        // Two containers ready 250 ms apart (settled at the second): one
        // render, `quiet` after the second.
        check(&[0, 250], 2, &[350]).await;
        // The second never comes: `max` renders what there is.
        check(&[0], 5, &[400]).await;
        // Settled but changes keep coming: `max` still bounds it.
        check(&[0, 90, 180, 270, 360], 1, &[400]).await;
    }

    #[test]
    fn settled_counts() {
        assert!(settled(&[]));
        assert!(settled(&[(2, Some(2)), (1, None)]));
        assert!(settled(&[(3, Some(2))]));
        assert!(!settled(&[(3, Some(4)), (1, Some(1))]));
    }
}
