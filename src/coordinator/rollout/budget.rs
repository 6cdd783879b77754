//! The cluster-wide budgets of a rollout, resolved against the desired
//! replica count (pure).
//!
//! `maxSurge` rounds up and `maxUnavailable` rounds down (as Kubernetes
//! does). Validation refuses a spec whose two values are both written as
//! 0; when rounding makes both 0 (e.g. `maxSurge: 0`, `maxUnavailable:
//! 10%` of 5), one surge replica is allowed so a rollout can progress.

use std::time::Duration;

use crate::resource::component::Rollout;
use crate::resource::quantity::IntOrPercent;

/// `progressDeadline` when the spec gives none.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(300);
const DEFAULT_SURGE: IntOrPercent = IntOrPercent::Int(1);
const DEFAULT_UNAVAILABLE: IntOrPercent = IntOrPercent::Int(1);

/// A rollout's policy, resolved for one desired count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Replicas wanted in all.
    pub desired: u32,
    /// Containers that may exist beyond `desired` (draining ones included).
    pub surge: u32,
    /// Replicas that may be unavailable while revisions are swapped.
    pub unavailable: u32,
}

impl Budget {
    pub fn of(r: &Rollout, desired: u32) -> Budget {
        let surge = r.max_surge.unwrap_or(DEFAULT_SURGE).resolve(desired, true);
        let unavailable = r
            .max_unavailable
            .unwrap_or(DEFAULT_UNAVAILABLE)
            .resolve(desired, false)
            .min(desired);
        let surge = if surge == 0 && unavailable == 0 {
            1
        } else {
            surge
        };
        Budget {
            desired,
            surge,
            unavailable,
        }
    }

    /// The most containers (of every revision, draining ones included).
    pub fn max_total(&self) -> u32 {
        self.desired.saturating_add(self.surge)
    }

    /// The fewest available replicas a revision swap may leave.
    pub fn min_available(&self) -> u32 {
        self.desired.saturating_sub(self.unavailable)
    }
}

/// The timing part of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub min_ready: Duration,
    pub progress_deadline: Duration,
}

impl Timing {
    pub fn of(r: &Rollout) -> Timing {
        Timing {
            min_ready: r.min_ready.map(|d| d.std()).unwrap_or_default(),
            progress_deadline: r
                .progress_deadline
                .map(|d| d.std())
                .unwrap_or(DEFAULT_PROGRESS_DEADLINE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(surge: Option<&str>, unavailable: Option<&str>, desired: u32, want: (u32, u32)) {
        let parse = |s: Option<&str>| s.map(|s| s.parse::<IntOrPercent>().expect("valid"));
        let r = Rollout {
            max_surge: parse(surge),
            max_unavailable: parse(unavailable),
            ..Default::default()
        };
        let b = Budget::of(&r, desired);
        assert_eq!(
            (b.surge, b.unavailable),
            want,
            "{surge:?} {unavailable:?} of {desired}"
        );
    }

    #[test]
    fn budgets_round_surge_up_and_unavailable_down() {
        check(None, None, 6, (1, 1));
        check(Some("25%"), Some("25%"), 10, (3, 2));
        check(Some("25%"), Some("25%"), 20, (5, 5));
        check(Some("10%"), Some("10%"), 5, (1, 0));
        check(Some("0"), Some("2"), 6, (0, 2));
        // Rounding made both 0: one surge replica keeps a rollout going.
        check(Some("0"), Some("10%"), 5, (1, 0));
        // Never more unavailable than there are replicas.
        check(Some("1"), Some("5"), 3, (1, 3));
        check(Some("100%"), Some("0"), 0, (1, 0));
    }
}
