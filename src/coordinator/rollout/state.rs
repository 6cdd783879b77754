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
