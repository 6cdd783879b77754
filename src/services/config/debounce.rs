//! When a burst of membership changes is rendered: after `quiet` without a
//! new change, but no later than `max` after the first change of the burst,
//! so a steady trickle of changes still renders. Pure: the caller passes the
//! time (tokio's, so tests run on paused time).

use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebounceConfig {
    pub quiet: Duration,
    pub max: Duration,
}

impl Default for DebounceConfig {
    fn default() -> Self {
        // A scale-up's containers turn ready over a few hundred ms (one
        // start every ~130 ms on 2 cores); 300 ms quiet folds a wave into
        // one reload and keeps a lone change → reload under 500 ms.
        DebounceConfig {
            quiet: Duration::from_millis(300),
            max: Duration::from_millis(1000),
        }
    }
}

impl DebounceConfig {
    /// `quiet`, with a burst's bound of 3x that (at least 1 s).
    pub fn quiet(quiet: Duration) -> DebounceConfig {
        DebounceConfig {
            quiet,
            max: (quiet * 3).max(Duration::from_secs(1)),
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
    pub fn due(&self, cfg: DebounceConfig) -> Option<Instant> {
        match *self {
            Debounce::Idle => None,
            Debounce::Pending { first, last } => Some((last + cfg.quiet).min(first + cfg.max)),
        }
    }

    /// Takes the pending burst if it is due at `now`.
    pub fn fire(&mut self, cfg: DebounceConfig, now: Instant) -> bool {
        if self.due(cfg).is_some_and(|d| d <= now) {
            *self = Debounce::Idle;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a `Debounce` with changes at the given offsets (ms) on paused
    /// time, sleeping until each due time like the driver does, and returns
    /// the offsets (ms) at which it fired.
    async fn fired(changes: &[u64], cfg: DebounceConfig) -> Vec<u64> {
        let start = Instant::now();
        let mut d = Debounce::Idle;
        let mut out = Vec::new();
        let mut pending = changes.iter().peekable();
        loop {
            let next_change = pending.peek().map(|&&ms| start + Duration::from_millis(ms));
            let due = d.due(cfg);
            let wake = match (next_change, due) {
                (None, None) => break,
                (Some(c), Some(d)) => c.min(d),
                (Some(c), None) => c,
                (None, Some(d)) => d,
            };
            tokio::time::sleep_until(wake).await;
            let now = Instant::now();
            // A due render runs before a change arriving the same instant.
            if d.fire(cfg, now) {
                out.push((now - start).as_millis() as u64);
            }
            while pending
                .peek()
                .is_some_and(|&&ms| start + Duration::from_millis(ms) <= now)
            {
                pending.next();
                d.changed(now);
            }
        }
        out
    }

    async fn check(changes: &[u64], expected: &[u64]) {
        let cfg = DebounceConfig {
            quiet: Duration::from_millis(100),
            max: Duration::from_millis(400),
        };
        assert_eq!(
            fired(changes, cfg).await,
            expected,
            "changes at {changes:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bursts_fold_into_one_render() {
        check(&[], &[]).await;
        check(&[0], &[100]).await;
        // Four changes 50 ms apart (a scale-up wave): one render.
        check(&[0, 50, 100, 150], &[250]).await;
        // Two bursts apart: two renders.
        check(&[0, 10, 500, 520], &[110, 620]).await;
        // A steady trickle every 60 ms still renders by `max`.
        check(&[0, 60, 120, 180, 240, 300, 360, 420, 480], &[400, 580]).await;
    }
}
