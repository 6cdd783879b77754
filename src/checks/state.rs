//! Consecutive-failure bookkeeping for one check of one container (pure);
//! `agent::health` keeps one per health check.

/// What the latest probe result means for the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The probe passed.
    Passing,
    /// The probe failed `consecutive` times in a row, fewer than the threshold.
    Failing { consecutive: u32 },
    /// The probe failed `failure_threshold` times in a row (or more).
    Failed { consecutive: u32 },
}

impl Verdict {
    pub fn is_failed(self) -> bool {
        matches!(self, Verdict::Failed { .. })
    }
}

/// Counts consecutive failures against a threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckState {
    failure_threshold: u32,
    consecutive_failures: u32,
    /// Passed at least once.
    ever_passed: bool,
}

impl CheckState {
    /// A threshold of 0 counts as 1.
    pub fn new(failure_threshold: u32) -> CheckState {
        CheckState {
            failure_threshold: failure_threshold.max(1),
            consecutive_failures: 0,
            ever_passed: false,
        }
    }

    /// For a check of a component spec (default threshold 3).
    pub fn for_check(check: &crate::resource::component::Check) -> CheckState {
        CheckState::new(check.failure_threshold())
    }

    /// Records one probe result.
    pub fn record(&mut self, ok: bool) -> Verdict {
        if ok {
            self.consecutive_failures = 0;
            self.ever_passed = true;
            return Verdict::Passing;
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= self.failure_threshold {
            Verdict::Failed {
                consecutive: self.consecutive_failures,
            }
        } else {
            Verdict::Failing {
                consecutive: self.consecutive_failures,
            }
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn ever_passed(&self) -> bool {
        self.ever_passed
    }

    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_counts_consecutive_failures() {
        let mut s = CheckState::new(3);
        assert_eq!(s.record(false), Verdict::Failing { consecutive: 1 });
        assert_eq!(s.record(false), Verdict::Failing { consecutive: 2 });
        assert_eq!(s.record(true), Verdict::Passing);
        assert!(s.ever_passed());
        assert_eq!(s.record(false), Verdict::Failing { consecutive: 1 });
        assert_eq!(s.record(false), Verdict::Failing { consecutive: 2 });
        assert_eq!(s.record(false), Verdict::Failed { consecutive: 3 });
        assert!(s.record(false).is_failed());
        assert_eq!(s.consecutive_failures(), 4);
        assert_eq!(s.record(true), Verdict::Passing);
        assert_eq!(s.consecutive_failures(), 0);
    }

    #[test]
    fn zero_threshold_is_one() {
        let mut s = CheckState::new(0);
        assert_eq!(s.failure_threshold(), 1);
        assert_eq!(s.record(false), Verdict::Failed { consecutive: 1 });
        let check = crate::resource::component::Check::default();
        assert_eq!(CheckState::for_check(&check).failure_threshold(), 3);
    }
}
