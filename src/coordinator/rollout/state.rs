//! The rollout's phase and clock (pure): which rollout this is, when it
//! failed, whether it rolls back, and where it is after a step's moves.
//!
//! ```text
//!            new revision
//!                 │
//!                 ▼
//!   Paused ◄──► Progressing ──► CanaryWaiting ──(promote)──► Progressing
//!                 │      │
//!  (converged)    │      │ (no progress for progressDeadline)
//!                 ▼      ▼
//!            Complete   autoRollback and a stable revision?
//!                        ├─ yes: Progressing towards the stable revision
//!                        │       (rolledBackFrom set) ──► RolledBack
//!                        └─ no:  Failed (keeps moving within the budgets;
//!                                Complete if it still converges)
//! ```
//!
//! The status is the engine's only memory: `started`, `step`,
//! `lastProgress` and `available` carry a rollout across coordinators.

use std::time::{Duration, SystemTime};

use crate::resource::component::{RolloutCause, RolloutPhase, RolloutStatus};

/// RFC 3339 with seconds, as every status time.
pub fn stamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The rollout of `revision`: `prev` when it is the same one, else a new
/// one replacing `from` (the newest other revision assigned).
pub fn begin(
    prev: Option<&RolloutStatus>,
    revision: u64,
    from: Option<u64>,
    now: SystemTime,
) -> RolloutStatus {
    if let Some(p) = prev.filter(|p| p.revision == revision) {
        return p.clone();
    }
    let stable = match prev {
        Some(p) if p.phase == RolloutPhase::Complete => Some(p.revision),
        Some(p) => p.stable_revision,
        // No record (a coordinator older than rollouts): what runs is taken
        // as stable.
        None => from,
    };
    RolloutStatus {
        phase: RolloutPhase::Progressing,
        revision,
        from_revision: from.or(prev.and_then(|p| p.stable_revision)),
        stable_revision: stable,
        rolled_back_from: None,
        step: 0,
        started: Some(stamp(now)),
        last_progress: Some(stamp(now)),
        cause: None,
        message: String::new(),
        available: 0,
    }
}

/// When the rollout runs out of time without progress (only while
/// `Progressing`: a pause or a waiting canary stops the clock).
pub fn deadline(r: &RolloutStatus, progress_deadline: Duration) -> Option<SystemTime> {
    if r.phase != RolloutPhase::Progressing {
        return None;
    }
    let last = r
        .last_progress
        .as_deref()
        .and_then(crate::util::parse_rfc3339)?;
    Some(last + progress_deadline)
}

/// The deadline passed: roll back (when `rollback` names a revision to go
/// back to) or fail, with the cause.
pub fn fail(r: &mut RolloutStatus, cause: RolloutCause, rollback: bool, now: SystemTime) {
    r.cause = Some(cause);
    if rollback && r.rolled_back_from.is_none() {
        r.rolled_back_from = Some(r.revision);
        r.last_progress = Some(stamp(now));
        r.available = 0;
        r.phase = RolloutPhase::Progressing;
    } else {
        r.phase = RolloutPhase::Failed;
    }
}

/// What a step saw after its moves.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    pub moves: usize,
    /// Replicas of the target available.
    pub available: u32,
    pub converged: bool,
    pub paused: bool,
    /// The canary is placed and available and not promoted.
    pub canary_up: bool,
}

/// The phase after a step; returns whether anything changed that the
/// step line should say.
pub fn settle(r: &mut RolloutStatus, s: Seen, now: SystemTime) -> bool {
    let before = (r.phase, r.available);
    let progressed = s.moves > 0 || s.available > r.available;
    r.available = r.available.max(s.available);
    if s.moves > 0 {
        r.step += 1;
    }
    if s.converged {
        if progressed || !r.phase.is_final() {
            r.last_progress = Some(stamp(now));
        }
        r.phase = if r.rolled_back_from.is_some() {
            RolloutPhase::RolledBack
        } else {
            r.stable_revision = Some(r.revision);
            RolloutPhase::Complete
        };
        return before != (r.phase, r.available) || s.moves > 0;
    }
    if r.phase.is_final() {
        return s.moves > 0 || before.1 != r.available;
    }
    let rolling_back = r.rolled_back_from.is_some();
    let phase = if s.paused && !rolling_back {
        RolloutPhase::Paused
    } else if s.canary_up && !rolling_back {
        RolloutPhase::CanaryWaiting
    } else {
        RolloutPhase::Progressing
    };
    // Resumed or promoted: the deadline counts from now.
    if progressed || (phase == RolloutPhase::Progressing && r.phase != phase) {
        r.last_progress = Some(stamp(now));
    }
    r.phase = phase;
    before != (r.phase, r.available) || s.moves > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use RolloutPhase::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn seen(moves: usize, available: u32, converged: bool, paused: bool, canary_up: bool) -> Seen {
        Seen {
            moves,
            available,
            converged,
            paused,
            canary_up,
        }
    }

    /// From a rollout in `phase` (rolling back when `back`), last progress
    /// at 0 s and 2 available, one step at 10 s: the phase after, whether
    /// the clock restarted, and the stable revision.
    fn check(phase: RolloutPhase, back: bool, s: Seen, want: (RolloutPhase, bool, Option<u64>)) {
        let mut r = RolloutStatus {
            phase,
            revision: 2,
            stable_revision: Some(1),
            rolled_back_from: back.then_some(2),
            last_progress: Some(stamp(t(0))),
            available: 2,
            ..Default::default()
        };
        settle(&mut r, s, t(10));
        let moved = r.last_progress != Some(stamp(t(0)));
        assert_eq!((r.phase, moved, r.stable_revision), want, "{phase:?} {s:?}");
    }

    #[test]
    fn phases() {
        // Progress is a move or more available than ever; the same count is not.
        check(
            Progressing,
            false,
            seen(1, 2, false, false, false),
            (Progressing, true, Some(1)),
        );
        check(
            Progressing,
            false,
            seen(0, 3, false, false, false),
            (Progressing, true, Some(1)),
        );
        check(
            Progressing,
            false,
            seen(0, 2, false, false, false),
            (Progressing, false, Some(1)),
        );
        // Converged: complete, and the revision is now the stable one.
        check(
            Progressing,
            false,
            seen(0, 6, true, false, false),
            (Complete, true, Some(2)),
        );
        // Rolling back and converged: rolled back, the stable one stays.
        check(
            Progressing,
            true,
            seen(0, 6, true, false, false),
            (RolledBack, true, Some(1)),
        );
        // A pause holds; a rollback ignores it.
        check(
            Progressing,
            false,
            seen(0, 2, false, true, false),
            (Paused, false, Some(1)),
        );
        check(
            Progressing,
            true,
            seen(0, 2, false, true, false),
            (Progressing, false, Some(1)),
        );
        // Resumed or promoted: the deadline counts from now.
        check(
            Paused,
            false,
            seen(0, 2, false, false, false),
            (Progressing, true, Some(1)),
        );
        check(
            CanaryWaiting,
            false,
            seen(0, 2, false, false, false),
            (Progressing, true, Some(1)),
        );
        check(
            Progressing,
            false,
            seen(0, 2, false, false, true),
            (CanaryWaiting, false, Some(1)),
        );
        // Final phases stay (a failed rollout that still converges completes).
        check(
            Failed,
            false,
            seen(1, 2, false, false, false),
            (Failed, false, Some(1)),
        );
        check(
            Failed,
            false,
            seen(0, 6, true, false, false),
            (Complete, true, Some(2)),
        );
        check(
            Complete,
            false,
            seen(0, 2, false, false, false),
            (Complete, false, Some(1)),
        );
    }

    #[test]
    fn begin_continues_the_same_revision_and_fail_rolls_back_once() {
        let first = begin(None, 1, None, t(0));
        assert_eq!((first.phase, first.stable_revision), (Progressing, None));
        let mut done = first.clone();
        done.phase = Complete;
        let again = begin(Some(&done), 1, None, t(5));
        assert_eq!(again, done);
        let next = begin(Some(&done), 2, Some(1), t(5));
        assert_eq!(
            (next.from_revision, next.stable_revision, next.step),
            (Some(1), Some(1), 0)
        );
        assert_eq!(deadline(&next, Duration::from_secs(8)), Some(t(13)));
        let cause = RolloutCause {
            reason: "CrashLoop".into(),
            nodes: vec!["a".into()],
            message: String::new(),
        };
        let mut r = next.clone();
        fail(&mut r, cause.clone(), true, t(20));
        assert_eq!((r.phase, r.rolled_back_from), (Progressing, Some(2)));
        fail(&mut r, cause, true, t(40));
        assert_eq!(r.phase, Failed, "a rollback that fails too ends Failed");
    }
}
