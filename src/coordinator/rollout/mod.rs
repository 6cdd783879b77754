//! The rollout engine (issue 8): a pure state machine from the spec, its
//! revisions, placement's target per node, the current assignments, what
//! the nodes observe, the registered nodes, the time and the previous
//! rollout status, to the next assignments (a count per revision per node),
//! the new rollout status with its `Progressing` condition, and when to be
//! run again.
//!
//! `step` reads no clock and performs no I/O; the coordinator
//! (`component.rs`) feeds it from its caches and writes what it returns in
//! one fenced transaction. Its pieces: `budget` (maxSurge / maxUnavailable
//! resolved), `facts` (counts per node and revision, projected the way the
//! agents will act), `moves` (one replica at a time within the budgets),
//! `replace` (health replacements of unhealthy containers and replacements
//! of evicted ones, within the same surge budget, in steady state as in a
//! rollout), `state` (phases and the
//! deadline), `classify` (why no progress).
//!
//! Invariant: projected containers (every revision, draining ones
//! included) never exceed `replicas + maxSurge` because of a move this
//! engine makes; a move that takes an available replica away is made only
//! while the projected available replicas stay at least `replicas -
//! maxUnavailable` (a replica on a node leaving placement: `replicas`).
//! Only what the engine does not control lowers them: crashes, health
//! failures and lost nodes. Health replacements (`replace`) are the
//! engine's too, within the same surge budget, and so are evictions: an
//! evicted container counts as available until its replacement is (or,
//! with `maxSurge` 0, leaves only within `maxUnavailable`).

mod budget;
mod classify;
mod facts;
mod moves;
mod replace;
mod state;

#[cfg(test)]
mod props;
#[cfg(test)]
pub mod sim;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use budget::{Budget, Timing};
pub use classify::classify;

use crate::resource::component::{Rollout, RolloutPhase, RolloutStatus, State, Template};
use crate::resource::{Assignment, Condition, ConditionType, Observed, Reason, RevisionReplicas};
use facts::{Facts, Sources};

/// A revision: its sequence number, template hash and template.
#[derive(Clone, Debug, PartialEq)]
pub struct Rev {
    pub number: u64,
    pub hash: String,
    pub template: Template,
}

/// The parts of the component spec the engine reads.
#[derive(Clone, Debug)]
pub struct Spec<'a> {
    pub generation: i64,
    pub state: State,
    pub rollout: &'a Rollout,
    /// Replicas wanted in all (placement's total).
    pub desired: u32,
    /// The revision the `berth/promote` annotation names.
    pub promoted: Option<u64>,
}

/// Everything one step decides on.
pub struct Input<'a> {
    pub spec: Spec<'a>,
    /// The spec's revision (its `restartedAt` is part of the template, so a
    /// restart is a new revision like any other).
    pub revision: &'a Rev,
    /// Other revisions the engine may need (an automatic rollback's).
    pub known: &'a [Rev],
    /// Placement's target count per node.
    pub target: &'a BTreeMap<String, u32>,
    pub unschedulable: Option<&'a str>,
    pub current: &'a BTreeMap<String, Assignment>,
    pub observed: &'a BTreeMap<String, Arc<Observed>>,
    pub registered: &'a BTreeSet<String>,
    pub now: SystemTime,
    pub prev: Option<&'a RolloutStatus>,
}

/// What one step decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// Every node's next assignment; a node not here has none.
    pub assignments: BTreeMap<String, Assignment>,
    /// `None` while the component is not running and never rolled out.
    pub rollout: Option<RolloutStatus>,
    pub progressing: Option<Condition>,
    /// Run again this soon (deadline, `minReady`), if nothing else wakes it.
    pub rerun: Option<Duration>,
}

/// One step of the engine.
pub fn step(i: &Input) -> Output {
    let revs = rev_table(i);
    if i.spec.state != State::Running {
        return not_running(i, &revs);
    }
    let timing = Timing::of(i.spec.rollout);
    let budget = Budget::of(i.spec.rollout, i.spec.desired);
    let from = newest_other(i.current, &i.revision.hash);
    let mut r = state::begin(i.prev, i.revision.number, from, i.now);
    // The deadline, judged on what the step starts from.
    if state::deadline(&r, timing.progress_deadline).is_some_and(|d| i.now >= d) {
        let failing = target_rev(&r, i, &revs);
        let cause = classify(&failing.hash, failing.number, i.observed, i.unschedulable);
        let back = i.spec.rollout.auto_rollback.unwrap_or(true)
            && r.rolled_back_from.is_none()
            && r.stable_revision
                .and_then(|s| revs.by_number(s))
                .is_some_and(|s| s.hash != i.revision.hash);
        state::fail(&mut r, cause, back, i.now);
    }
    let target = target_rev(&r, i, &revs);
    let mut f = Facts::build(&Sources {
        target_hash: &target.hash,
        target: i.target,
        current: i.current,
        observed: i.observed,
        registered: i.registered,
        min_ready: timing.min_ready,
        now: i.now,
    });
    let rolling_back = r.rolled_back_from.is_some();
    let has_old = f.nodes.iter().any(|n| n.assigned_old() > 0);
    let placed = f.placed_target();
    let canary = i.spec.rollout.canary.unwrap_or(0);
    let promoted = i.spec.promoted == Some(r.revision);
    let canary_cap =
        (canary > 0 && !promoted && !rolling_back && r.phase != RolloutPhase::Complete)
            .then(|| canary.min(budget.desired))
            .filter(|_| has_old || r.phase == RolloutPhase::CanaryWaiting);
    let paused = i.spec.rollout.paused && !rolling_back && !r.phase.is_final();
    let cap = match (paused, canary_cap) {
        (true, c) => placed.min(c.unwrap_or(u32::MAX)),
        (false, Some(c)) => c,
        (false, None) => budget.desired,
    };
    let fill = (1..f.hashes.len())
        .filter(|&h| f.nodes.iter().any(|n| n.slots[h].assigned > 0))
        .filter_map(|h| revs.by_hash(&f.hashes[h]).map(|r| (r.number, h)))
        .max()
        .map(|(_, h)| h);
    let limits = moves::Limits { budget, cap, fill };
    let moves = moves::run(&mut f, &limits);
    // After the moves, on the counts they leave; not progress (see `replace`).
    replace::run(&mut f, &budget);
    let available = f.sum(0, |s| s.available);
    let seen = state::Seen {
        moves: moves.len(),
        available,
        // Nothing placed at all (no eligible node) is not a finished rollout.
        converged: f.converged(budget.desired) && (budget.desired > 0 || i.unschedulable.is_none()),
        paused,
        canary_up: canary_cap.is_some_and(|c| f.placed_target() >= c && available >= c),
    };
    let changed = state::settle(&mut r, seen, i.now);
    if changed || r.message.is_empty() {
        r.message = step_line(&f, &moves, &revs, target, budget.desired);
    }
    let rerun = rerun(&r, &f, timing, i.now);
    Output {
        assignments: assignments(i, &f, &revs),
        progressing: Some(progressing(&r, target, &f, budget.desired)),
        rollout: Some(r),
        rerun,
    }
}

/// Revisions by hash and number: the spec's, the known ones, and those the
/// current assignments carry (the spec's number wins for its hash).
struct Revs {
    by_hash: HashMap<String, Rev>,
}

impl Revs {
    fn by_hash(&self, hash: &str) -> Option<&Rev> {
        self.by_hash.get(hash)
    }

    fn by_number(&self, n: u64) -> Option<&Rev> {
        self.by_hash.values().find(|r| r.number == n)
    }
}

fn rev_table(i: &Input) -> Revs {
    let mut by_hash: HashMap<String, Rev> = HashMap::new();
    for a in i.current.values() {
        for r in &a.revisions {
            by_hash.entry(r.hash.clone()).or_insert_with(|| Rev {
                number: r.revision,
                hash: r.hash.clone(),
                template: r.template.clone(),
            });
        }
    }
    for r in i.known {
        by_hash.insert(r.hash.clone(), r.clone());
    }
    by_hash.insert(i.revision.hash.clone(), i.revision.clone());
    Revs { by_hash }
}

/// What the rollout moves towards: the stable revision while rolling back.
fn target_rev<'a>(r: &RolloutStatus, i: &'a Input, revs: &'a Revs) -> &'a Rev {
    match r.rolled_back_from {
        Some(_) => r
            .stable_revision
            .and_then(|s| revs.by_number(s))
            .unwrap_or(i.revision),
        None => i.revision,
    }
}

/// The newest revision assigned anywhere other than `hash`.
fn newest_other(current: &BTreeMap<String, Assignment>, hash: &str) -> Option<u64> {
    current
        .values()
        .flat_map(|a| a.revisions.iter())
        .filter(|r| r.hash != hash && r.replicas > 0)
        .map(|r| r.revision)
        .max()
}

fn assignments(i: &Input, f: &Facts, revs: &Revs) -> BTreeMap<String, Assignment> {
    let mut out = BTreeMap::new();
    for n in &f.nodes {
        let list: Vec<RevisionReplicas> = n
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.assigned > 0)
            .filter_map(|(h, s)| {
                let r = revs.by_hash(&f.hashes[h])?;
                Some(RevisionReplicas {
                    revision: r.number,
                    hash: r.hash.clone(),
                    template: r.template.clone(),
                    replicas: s.assigned,
                    replacing: s.replacing,
                    removing: s.removing,
                })
            })
            .collect();
        if !list.is_empty() {
            let a = Assignment::new(i.spec.generation, i.spec.state, list);
            out.insert(n.name.clone(), a);
        }
    }
    out
}

/// A stopped or killed component: every placed node is told so (the agents
/// stop what runs); no rollout moves.
fn not_running(i: &Input, revs: &Revs) -> Output {
    let rev = revs.by_hash(&i.revision.hash).unwrap_or(i.revision);
    let assignments = i
        .target
        .iter()
        .filter(|(n, c)| **c > 0 && i.registered.contains(*n))
        .map(|(n, &c)| {
            let r = RevisionReplicas {
                revision: rev.number,
                hash: rev.hash.clone(),
                template: rev.template.clone(),
                replicas: c,
                replacing: 0,
                removing: 0,
            };
            (
                n.clone(),
                Assignment::single(i.spec.generation, i.spec.state, r),
            )
        })
        .collect();
    Output {
        assignments,
        rollout: i.prev.cloned(),
        progressing: None,
        rerun: None,
    }
}

/// The step line: the moves made and the counts.
fn step_line(f: &Facts, moves: &[moves::Move], revs: &Revs, target: &Rev, desired: u32) -> String {
    let number = |h: usize| revs.by_hash(&f.hashes[h]).map_or(0, |r| r.number);
    let mut grouped: BTreeMap<(bool, u64), Vec<&str>> = BTreeMap::new();
    for m in moves {
        grouped
            .entry((!m.add, number(m.hash)))
            .or_default()
            .push(m.node.as_str());
    }
    let mut parts: Vec<String> = grouped
        .into_iter()
        .map(|((remove, rev), mut nodes)| {
            // Moves alternate between nodes: sort before dropping repeats.
            let count = nodes.len();
            nodes.sort_unstable();
            nodes.dedup();
            let sign = if remove { '-' } else { '+' };
            format!("{sign}{count} of revision {rev} on {}", nodes.join(", "))
        })
        .collect();
    let assigned = f.sum(0, |s| s.assigned);
    let available = f.sum(0, |s| s.available);
    parts.push(format!(
        "{assigned}/{desired} assigned revision {}, {available} available",
        target.number
    ));
    parts.join("; ")
}

fn progressing(r: &RolloutStatus, target: &Rev, f: &Facts, desired: u32) -> Condition {
    let counts = format!(
        "{}/{desired} of revision {} assigned, {} available",
        f.sum(0, |s| s.assigned),
        target.number,
        f.sum(0, |s| s.available)
    );
    let cause = r.cause.as_ref().map_or(String::new(), |c| {
        let on = if c.nodes.is_empty() {
            String::new()
        } else {
            format!(" on {}", c.nodes.join(", "))
        };
        format!("{}{on}: {}", c.reason, c.message)
    });
    let (status, reason, message) = match r.phase {
        RolloutPhase::Progressing if r.rolled_back_from.is_some() => (
            "False",
            Reason::ProgressDeadlineExceeded,
            format!(
                "revision {} failed ({cause}); rolling back to revision {}: {counts}",
                r.revision, target.number
            ),
        ),
        RolloutPhase::Progressing => ("True", Reason::Updating, counts),
        RolloutPhase::Paused => ("Unknown", Reason::RolloutPaused, counts),
        RolloutPhase::CanaryWaiting => (
            "True",
            Reason::CanaryWaiting,
            format!("canary up, waiting for `berth rollout promote`: {counts}"),
        ),
        RolloutPhase::Complete => ("False", Reason::Complete, counts),
        RolloutPhase::Failed => ("False", Reason::ProgressDeadlineExceeded, cause),
        RolloutPhase::RolledBack => (
            "False",
            Reason::RolledBack,
            format!(
                "revision {} failed ({cause}); revision {} restored",
                r.revision, target.number
            ),
        ),
    };
    Condition {
        type_: ConditionType::Progressing.as_str().into(),
        status: status.into(),
        reason: reason.as_str().into(),
        message,
        last_transition_time: None,
    }
}

/// When to look again without a change: the deadline, or the next
/// container reaching `minReady`.
fn rerun(r: &RolloutStatus, f: &Facts, t: Timing, now: SystemTime) -> Option<Duration> {
    let at = [state::deadline(r, t.progress_deadline), f.next_available]
        .into_iter()
        .flatten()
        .min()?;
    // Status times have whole seconds: a little after, never before.
    Some(
        at.duration_since(now)
            .unwrap_or_default()
            .max(Duration::from_millis(100))
            + Duration::from_millis(50),
    )
}
