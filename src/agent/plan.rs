//! The pure planner: from what one node must run for one component (its
//! [`Assignment`]) and the containers the agent sees, the steps that bring the
//! two together.
//!
//! Invariant (ARCHITECTURE.md): nothing here talks to Docker or etcd, reads a
//! clock or keeps state. Time comes in as `now`; everything the planner needs
//! to know about a container is in its [`ContainerView`].
//!
//! # Rules
//!
//! With `state: running` the node keeps, for every revision its assignment
//! names, that revision's count of containers of its template hash
//! ([`RevisionReplicas::wanted`]: `replicas`, plus the health replacements
//! the coordinator granted, minus the unhealthy ones it takes away):
//!
//! - An unhealthy container, or one not ready within `readyTimeout`, still
//!   fills its slot: the node never replaces it on its own. It shows as
//!   `Unhealthy`; the coordinator, which holds the cluster's `maxSurge`
//!   budget, raises the revision's count (`replacing`) when the budget
//!   allows, and lowers it again once the replacement is available; or, with
//!   `maxSurge` 0, lowers it first (`removing`). So health replacements draw
//!   on the same surge budget as rollout steps, and with etcd down an
//!   unhealthy container keeps running, unreplaced.
//! - A container of a hash the assignment does not name no longer fills a
//!   slot, so a new one is started in its place (the surge of one the
//!   coordinator counts for a revision swap). Missing slots start newest
//!   revision first.
//! - Containers leave in this order: those serving nothing (starting, exited)
//!   at once; those of other revisions still serving only while the ready
//!   containers that stay number at least `replicas`: unhealthy first, then
//!   oldest revision first. So a new image is ready before the container it
//!   replaces stops.
//! - More slots of a revision than its count (count lowered): the extras
//!   leave, unhealthy first, then the others not ready (at once), then the
//!   newest ready ones.
//! - An exited container of the assigned hash is restarted in place when its
//!   restart policy allows it (no budget: a crash restart is local and
//!   immediate, etcd or not), after a crash backoff of [`crash_backoff`]:
//!   at once after the first crash, then 1 s doubling up to 5 min. The
//!   count of consecutive crashes is reset when a container had been running
//!   for [`CRASH_RESET_AFTER`] (10 min) before it exited (see [`consecutive_crashes`]). A container that exited for good
//!   (`Never`, or `OnFailure` after exit 0) keeps its slot and stays exited.
//!
//! `state: stopped` stops every container gracefully (termination signals,
//! grace period, kill) and removes it; `state: killed` kills at once; no
//! assignment at all is treated as `stopped`.

use std::cmp::Reverse;
use std::time::{Duration, Instant, SystemTime};

use crate::resource::component::{RestartPolicy, State, Template};
use crate::resource::observed::ContainerPhase;
use crate::resource::quantity;
use crate::resource::{Assignment, Reason, RevisionReplicas};

/// Default `readyTimeout`.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// First crash-restart delay; doubles with every consecutive crash.
pub const CRASH_BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest crash-restart delay.
pub const CRASH_BACKOFF_CAP: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting starts a fresh crash count.
pub const CRASH_RESET_AFTER: Duration = Duration::from_secs(600);
/// Consecutive crashes from which a waiting container shows as `CrashLoop`.
pub const CRASH_LOOP_AFTER: u32 = 2;
/// Extra containers of one component a node may run while swapping a
/// revision in place (the coordinator's budget counts them).
pub const SURGE: u32 = 1;

/// What the planner is given for one component on this node.
#[derive(Clone, Debug, Default)]
pub struct PlanInput {
    /// What this node must run; `None` when nothing is assigned any more.
    pub assignment: Option<Assignment>,
    /// Every container labelled for this component on this node.
    pub containers: Vec<ContainerView>,
}

/// One container as the agent sees it.
#[derive(Clone, Debug)]
pub struct ContainerView {
    pub id: String,
    /// From the `berth.revision` and `berth.hash` labels.
    pub revision: u64,
    pub hash: String,
    /// Creation time, to tell the newest from the oldest.
    pub created: SystemTime,
    pub run: RunState,
    /// From the check tracker (meaningful while running).
    pub check: CheckPhase,
    /// Consecutive crashes (see [`consecutive_crashes`]); 0 if none.
    pub crashes: u32,
    /// Set while the agent is already stopping it.
    pub stopping: Option<StopHow>,
    /// An administrator evicted it: it serves on in its slot, and is the
    /// first of its revision to leave when the count drops (the
    /// coordinator's replacement is available, or `removing` lets it go).
    pub evicting: bool,
}

/// The Docker side of a container.
#[derive(Clone, Debug, PartialEq)]
pub enum RunState {
    Running,
    /// Exited (or died); `at` is when the agent saw it exit.
    Exited {
        code: i64,
        oom: bool,
        at: Instant,
    },
    /// Created but never started (e.g. the agent died in between).
    Created,
}

/// The check tracker's view of a running container.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckPhase {
    /// Running, ready checks not passed yet.
    Starting { since: Instant },
    /// Ready checks passed; health checks (if any) have not failed `failureThreshold` times.
    Ready { since: Instant },
    /// Health checks failed `failureThreshold` times in a row.
    Unhealthy { reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopHow {
    /// Drain, termination signals, grace period, then SIGKILL.
    Graceful,
    /// SIGKILL at once.
    Kill,
    /// Drained and stopped to start again in place (an administrator's
    /// restart, `agent::actions`): it keeps its slot, so nothing starts
    /// in its stead, and the planner takes no step on it meanwhile.
    Restart,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create and start a container of the assigned template.
    Start { revision: u64, hash: String },
    /// Start an exited container again (same id), after a crash.
    Restart { id: String },
    /// Stop the container, then remove it.
    Stop { id: String, how: StopHow },
    /// Remove a container that is not running.
    Remove { id: String },
    /// Record an event in the component's observed status.
    Record { reason: String, message: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Plan again after this long even if nothing else happens.
    pub requeue_after: Option<Duration>,
}

/// The delay before restarting a container after its `crashes`-th
/// consecutive crash: none after the first, then 1 s, 2 s, 4 s ... capped
/// at 5 min.
pub fn crash_backoff(crashes: u32) -> Duration {
    if crashes <= 1 {
        return Duration::ZERO;
    }
    let exp = (crashes - 2).min(20);
    CRASH_BACKOFF_BASE
        .saturating_mul(1 << exp)
        .min(CRASH_BACKOFF_CAP)
}

/// The consecutive-crash count after a container exits: `previous + 1`, or 1
/// when it had been running for [`CRASH_RESET_AFTER`] before it exited.
pub fn consecutive_crashes(previous: u32, ran_for: Duration) -> u32 {
    if ran_for >= CRASH_RESET_AFTER {
        1
    } else {
        previous.saturating_add(1)
    }
}

/// Whether a container that exited with `code` is restarted under `policy`.
pub fn restartable(policy: RestartPolicy, code: i64, oom: bool) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => code != 0 || oom,
        RestartPolicy::Never => false,
    }
}

/// The `readyTimeout` of a template (default 30 s).
pub fn ready_timeout(t: &Template) -> Duration {
    t.ready_timeout.map_or(DEFAULT_READY_TIMEOUT, |d| d.std())
}

/// Whether a running container of revision `r` is still not ready
/// `readyTimeout` after it started: it counts as unhealthy.
pub fn ready_timed_out(c: &ContainerView, r: &RevisionReplicas, now: Instant) -> bool {
    match (&c.run, &c.check) {
        (RunState::Running, CheckPhase::Starting { since }) => {
            *since + ready_timeout(&r.template) <= now
        }
        _ => false,
    }
}

/// The phase published for a container of revision `rev` (if assigned),
/// and whether it is unhealthy for not being ready within `readyTimeout`:
/// then it shows as `Unhealthy`, for the coordinator to replace within its
/// budget, as it does a container whose health checks fail.
pub fn published_phase(
    c: &ContainerView,
    rev: Option<&RevisionReplicas>,
    policy: RestartPolicy,
    now: Instant,
) -> (ContainerPhase, bool) {
    let timed_out = c.stopping.is_none() && rev.is_some_and(|r| ready_timed_out(c, r, now));
    match phase(c, policy) {
        ContainerPhase::Starting if timed_out => (ContainerPhase::Unhealthy, true),
        p => (p, false),
    }
}

/// The reason shown for an exit: `OOMKilled`, `Completed` or `Error`.
pub fn exit_reason(code: i64, oom: bool) -> &'static str {
    if oom {
        "OOMKilled"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    }
}

/// The phase `describe` shows for a container (`Draining`/`Stopping` while
/// being stopped, as the caller knows which).
pub fn phase(c: &ContainerView, policy: RestartPolicy) -> ContainerPhase {
    if let Some(how) = c.stopping {
        return match how {
            StopHow::Graceful | StopHow::Restart => ContainerPhase::Draining,
            StopHow::Kill => ContainerPhase::Stopping,
        };
    }
    match &c.run {
        RunState::Created => ContainerPhase::Starting,
        RunState::Exited { code, oom, .. } => {
            if restartable(policy, *code, *oom) && c.crashes >= CRASH_LOOP_AFTER {
                ContainerPhase::CrashLoop
            } else {
                ContainerPhase::Exited
            }
        }
        RunState::Running => match c.check {
            CheckPhase::Starting { .. } => ContainerPhase::Starting,
            CheckPhase::Ready { .. } => ContainerPhase::Ready,
            CheckPhase::Unhealthy { .. } => ContainerPhase::Unhealthy,
        },
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Plans the steps for one component. Pure: same input, same plan.
pub fn plan(input: &PlanInput, now: Instant) -> Plan {
    let mut out = Plan::default();
    // Containers already being stopped are left to that; a kill overrides a
    // graceful stop in progress.
    let kill_all = matches!(&input.assignment, Some(a) if a.state == State::Killed);
    let live: Vec<&ContainerView> = input
        .containers
        .iter()
        .filter(|c| match c.stopping {
            None => true,
            Some(StopHow::Graceful | StopHow::Restart) if kill_all => {
                out.steps.push(Step::Stop {
                    id: c.id.clone(),
                    how: StopHow::Kill,
                });
                false
            }
            Some(_) => false,
        })
        .collect();

    let a = match &input.assignment {
        Some(a) if a.state == State::Running => a,
        other => {
            let how = match other {
                Some(a) if a.state == State::Killed => StopHow::Kill,
                _ => StopHow::Graceful,
            };
            for c in live {
                out.steps.push(match c.run {
                    RunState::Running => Step::Stop {
                        id: c.id.clone(),
                        how,
                    },
                    _ => Step::Remove { id: c.id.clone() },
                });
            }
            return out;
        }
    };
    // Restarting in place: they hold their slots (of an assigned revision).
    let restarting: Vec<&ContainerView> = input
        .containers
        .iter()
        .filter(|c| c.stopping == Some(StopHow::Restart) && a.of_hash(&c.hash).is_some())
        .collect();
    plan_running(a, &live, &restarting, now, &mut out);
    out
}

/// A container on its way out: how, and what to record.
struct Retire<'a> {
    c: &'a ContainerView,
    event: Option<(&'static str, String)>,
}

/// Where [`classify`] puts the live containers of a running component.
#[derive(Default)]
struct Sorted<'a> {
    /// Ready containers of an assigned revision.
    ready: Vec<&'a ContainerView>,
    /// Of an assigned revision: starting within `readyTimeout`, or exited.
    pending: Vec<&'a ContainerView>,
    /// Of an assigned revision: unhealthy, or not ready within
    /// `readyTimeout`. They fill their slots until the count drops.
    unhealthy: Vec<Retire<'a>>,
    /// Serving nothing: they leave at once.
    leave_now: Vec<Retire<'a>>,
    /// Still serving but not wanted: they leave once the rest covers them.
    serving_out: Vec<Retire<'a>>,
    /// Crash restarts that are due, with their record.
    restarts: Vec<(String, [Step; 2])>,
    requeue: Option<Duration>,
}

impl Sorted<'_> {
    fn wake(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }
}

/// The order surplus serving containers leave in: unhealthy first, then
/// evicted ones, then oldest revision first; within a revision, oldest first, except ready
/// extras of an assigned revision, newest first (the proven ones stay).
fn leave_order(r: &Retire, a: &Assignment) -> (bool, bool, u64, bool, i128, String) {
    let unhealthy = matches!(r.c.check, CheckPhase::Unhealthy { .. });
    let assigned = a.of_hash(&r.c.hash).is_some();
    let created =
        r.c.created
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
    // Unhealthy ones and old revisions: oldest first; ready extras: newest.
    let age = if assigned && !unhealthy {
        -created
    } else {
        created
    };
    (
        !unhealthy,
        !r.c.evicting,
        r.c.revision,
        assigned,
        age,
        r.c.id.clone(),
    )
}

fn plan_running<'a>(
    a: &Assignment,
    live: &[&'a ContainerView],
    restarting: &[&'a ContainerView],
    now: Instant,
    out: &mut Plan,
) {
    let replicas = a.covered() as usize;
    let mut sorted = classify(a, live, now);
    trim_extras(a, &mut sorted);
    // After the trim: a restarting container is never picked to leave.
    sorted.pending.extend(restarting.iter().copied());

    // Serving containers leave while the ready ones that stay still number
    // at least `replicas` (less what the coordinator took away).
    let mut serving_out = std::mem::take(&mut sorted.serving_out);
    serving_out.sort_by_key(|r| leave_order(r, a));
    let may_leave = (sorted.ready.len() + serving_out.len()).saturating_sub(replicas);
    let staying_serving = serving_out.len().saturating_sub(may_leave);
    sorted
        .leave_now
        .extend(serving_out.into_iter().take(may_leave));

    for r in &sorted.leave_now {
        if let Some((reason, message)) = &r.event {
            out.steps.push(Step::Record {
                reason: (*reason).into(),
                message: message.clone(),
            });
        }
        out.steps.push(match r.c.run {
            RunState::Running => Step::Stop {
                id: r.c.id.clone(),
                how: StopHow::Graceful,
            },
            _ => Step::Remove { id: r.c.id.clone() },
        });
    }
    out.steps
        .extend(sorted.restarts.into_iter().flat_map(|(_, steps)| steps));

    // New containers for the missing slots, within the surge, newest
    // revision first (it is the one a rollout is bringing in). Unhealthy
    // containers still fill their slots: replacing them is the
    // coordinator's call (`replacing`), made within the cluster's budget.
    let slots = sorted.ready.len() + sorted.pending.len() + sorted.unhealthy.len();
    let total = slots + staying_serving;
    let wanted: usize = a.revisions.iter().map(|r| r.wanted() as usize).sum();
    let mut room = (wanted + SURGE as usize).saturating_sub(total);
    for r in a.revisions.iter().rev() {
        let have = sorted
            .ready
            .iter()
            .chain(sorted.pending.iter())
            .chain(sorted.unhealthy.iter().map(|u| &u.c))
            .filter(|c| c.hash == r.hash)
            .count();
        let n = (r.wanted() as usize).saturating_sub(have).min(room);
        room -= n;
        for _ in 0..n {
            out.steps.push(Step::Start {
                revision: r.revision,
                hash: r.hash.clone(),
            });
        }
    }
    out.requeue_after = sorted.requeue;
}

/// Sorts the live containers by what becomes of them (see [`Sorted`]).
fn classify<'a>(a: &Assignment, live: &[&'a ContainerView], now: Instant) -> Sorted<'a> {
    let mut s = Sorted::default();
    for &c in live {
        let rev = a.of_hash(&c.hash);
        match (&c.run, &c.check, rev) {
            (RunState::Created, _, _) | (RunState::Exited { .. }, _, None) => {
                s.leave_now.push(Retire { c, event: None })
            }
            (RunState::Exited { code, oom, at }, _, Some(r)) => {
                s.pending.push(c);
                if restartable(r.template.restart_policy, *code, *oom) {
                    let backoff = crash_backoff(c.crashes.max(1));
                    let due = *at + backoff;
                    if due <= now {
                        s.restarts
                            .push((c.id.clone(), restart_steps(c, *code, *oom, backoff)));
                    } else {
                        s.wake(due - now);
                    }
                }
            }
            (RunState::Running, CheckPhase::Ready { .. }, Some(_)) => s.ready.push(c),
            (RunState::Running, CheckPhase::Ready { .. }, None) => {
                s.serving_out.push(Retire { c, event: None })
            }
            (RunState::Running, CheckPhase::Unhealthy { reason }, r) => {
                let replaced = if r.is_some() { ": replaced" } else { "" };
                let message = format!(
                    "container {} is unhealthy ({reason}){replaced}",
                    short(&c.id)
                );
                let retire = Retire {
                    c,
                    event: Some(("Unhealthy", message)),
                };
                // Of an assigned revision it keeps its slot until the
                // count drops; of another, it leaves like any old one.
                match r {
                    Some(_) => s.unhealthy.push(retire),
                    None => s.serving_out.push(retire),
                }
            }
            (RunState::Running, CheckPhase::Starting { .. }, None) => {
                s.leave_now.push(Retire { c, event: None })
            }
            (RunState::Running, CheckPhase::Starting { since }, Some(r)) => {
                let timeout = ready_timeout(&r.template);
                let deadline = *since + timeout;
                if deadline <= now {
                    let message = format!(
                        "container {} not ready within {}: replaced",
                        short(&c.id),
                        quantity::Duration(timeout)
                    );
                    s.unhealthy.push(Retire {
                        c,
                        event: Some(("ReadyTimeout", message)),
                    });
                } else {
                    s.pending.push(c);
                    s.wake(deadline - now);
                }
            }
        }
    }
    s
}

/// The restart of an exited container, with the event that says why.
fn restart_steps(c: &ContainerView, code: i64, oom: bool, backoff: Duration) -> [Step; 2] {
    let record = Step::Record {
        reason: "Restarted".into(),
        message: format!(
            "container {} exited with code {code} ({}); restart {} after {}",
            short(&c.id),
            exit_reason(code, oom),
            c.crashes.max(1),
            quantity::Duration(backoff),
        ),
    };
    [Step::Restart { id: c.id.clone() }, record]
}

/// The event of an evicted container leaving: covered by a ready
/// replacement, or taken away first (`maxSurge` 0).
fn evicted_event(c: &ContainerView, uncovered: bool) -> (&'static str, String) {
    let how = if uncovered {
        "taken away before its replacement starts (maxSurge 0)"
    } else {
        "its replacement is ready"
    };
    let message = format!(
        "container {} evicted: {how}; drained and removed",
        short(&c.id)
    );
    (Reason::Evicted.as_str(), message)
}

/// More slots of a revision than it asks for: unhealthy extras leave at
/// once (oldest first); then evicted ready ones (at once as far as
/// `removing` lets them go uncovered, else once covered); then those that
/// serve nothing leave at once (exited, then starting, newest first); ready
/// extras join the serving containers that leave once covered.
fn trim_extras<'a>(a: &Assignment, s: &mut Sorted<'a>) {
    // Evicted ones first: they are the ones the count dropped for.
    let newest_first = |v: &mut Vec<&ContainerView>| {
        v.sort_by_key(|c| (!c.evicting, Reverse(c.created), c.id.clone()))
    };
    let mut gone: Vec<String> = Vec::new();
    let mut unhealthy = std::mem::take(&mut s.unhealthy);
    unhealthy.sort_by_key(|r| (r.c.created, r.c.id.clone()));
    for r in &a.revisions {
        let mine = |c: &&&ContainerView| c.hash == r.hash;
        let (mut exited, mut starting): (Vec<&ContainerView>, Vec<&ContainerView>) = s
            .pending
            .iter()
            .filter(mine)
            .partition(|c| matches!(c.run, RunState::Exited { .. }));
        let mut ready: Vec<&ContainerView> = s.ready.iter().filter(mine).copied().collect();
        let sick = unhealthy.iter().filter(|u| u.c.hash == r.hash).count();
        let slots = sick + exited.len() + starting.len() + ready.len();
        let Some(mut extra) = slots.checked_sub(r.wanted() as usize).filter(|&e| e > 0) else {
            continue;
        };
        // What `removing` takes away beyond what serves nothing: evicted
        // containers the coordinator lets go uncovered (`maxSurge` 0).
        let mut uncovered = r.removing as usize;
        for u in unhealthy.iter_mut().filter(|u| u.c.hash == r.hash) {
            if extra == 0 {
                break;
            }
            extra -= 1;
            uncovered = uncovered.saturating_sub(1);
            gone.push(u.c.id.clone());
            s.leave_now.push(Retire {
                c: u.c,
                event: u.event.take(),
            });
        }
        newest_first(&mut exited);
        newest_first(&mut starting);
        newest_first(&mut ready);
        // Evicted ready ones before those that serve nothing yet: the
        // replacements starting for them stay.
        let (evicted, ready): (Vec<&ContainerView>, Vec<&ContainerView>) =
            ready.into_iter().partition(|c| c.evicting);
        for c in evicted.into_iter().take(extra) {
            extra -= 1;
            gone.push(c.id.clone());
            let retire = Retire {
                c,
                event: Some(evicted_event(c, uncovered > 0)),
            };
            // Granted uncovered: at once; otherwise once the rest covers it.
            if uncovered > 0 {
                uncovered -= 1;
                s.leave_now.push(retire);
            } else {
                s.serving_out.push(retire);
            }
        }
        for c in exited.iter().chain(starting.iter()) {
            if extra == 0 {
                break;
            }
            extra -= 1;
            gone.push(c.id.clone());
            s.leave_now.push(Retire { c, event: None });
        }
        for c in ready.iter().take(extra) {
            gone.push(c.id.clone());
            s.serving_out.push(Retire { c, event: None });
        }
    }
    unhealthy.retain(|u| !gone.contains(&u.c.id));
    s.unhealthy = unhealthy;
    s.ready.retain(|c| !gone.contains(&c.id));
    s.pending.retain(|c| !gone.contains(&c.id));
    s.restarts.retain(|(id, _)| !gone.contains(id));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::quantity;
    use crate::resource::RevisionReplicas;

    const H1: &str = "hash000001";
    const H2: &str = "hash000002";

    fn now() -> Instant {
        // Far enough from the process start that `now - age` never underflows.
        Instant::now() + Duration::from_secs(100_000)
    }

    fn revision(hash: &str, replicas: u32) -> RevisionReplicas {
        RevisionReplicas {
            revision: if hash == H1 { 1 } else { 2 },
            hash: hash.into(),
            template: Template {
                image: "bench/web:1".into(),
                ..Default::default()
            },
            replicas,
            replacing: 0,
            removing: 0,
        }
    }

    fn assignment(hash: &str, replicas: u32, state: State) -> Assignment {
        Assignment::single(1, state, revision(hash, replicas))
    }

    /// `replicas` of `hash`, `replacing` and `removing` as the coordinator set them.
    fn with(hash: &str, replicas: u32, replacing: u32, removing: u32) -> Assignment {
        let mut r = revision(hash, replicas);
        r.replacing = replacing;
        r.removing = removing;
        Assignment::single(1, State::Running, r)
    }

    /// `n1` of H1 and `n2` of H2 (a node in the middle of a rollout).
    fn both(n1: u32, n2: u32) -> Option<Assignment> {
        let revisions = vec![revision(H1, n1), revision(H2, n2)];
        Some(Assignment::new(1, State::Running, revisions))
    }

    /// A running, ready container created `created` seconds after the epoch.
    fn ctr(id: &str, hash: &str, created: u64, now: Instant) -> ContainerView {
        ContainerView {
            id: id.into(),
            revision: if hash == H1 { 1 } else { 2 },
            hash: hash.into(),
            created: SystemTime::UNIX_EPOCH + Duration::from_secs(created),
            run: RunState::Running,
            check: CheckPhase::Ready {
                since: now - Duration::from_secs(60),
            },
            crashes: 0,
            stopping: None,
            evicting: false,
        }
    }

    fn starting(mut c: ContainerView, now: Instant, age: u64) -> ContainerView {
        c.check = CheckPhase::Starting {
            since: now - Duration::from_secs(age),
        };
        c
    }

    fn unhealthy(mut c: ContainerView) -> ContainerView {
        c.check = CheckPhase::Unhealthy {
            reason: "http 500".into(),
        };
        c
    }

    fn exited(
        mut c: ContainerView,
        now: Instant,
        code: i64,
        ago: u64,
        crashes: u32,
    ) -> ContainerView {
        c.run = RunState::Exited {
            code,
            oom: false,
            at: now - Duration::from_secs(ago),
        };
        c.crashes = crashes;
        c
    }

    fn stopping(mut c: ContainerView, how: StopHow) -> ContainerView {
        c.stopping = Some(how);
        c
    }

    fn start(hash: &str) -> Step {
        Step::Start {
            revision: if hash == H1 { 1 } else { 2 },
            hash: hash.into(),
        }
    }
    fn stop(id: &str) -> Step {
        Step::Stop {
            id: id.into(),
            how: StopHow::Graceful,
        }
    }
    fn kill(id: &str) -> Step {
        Step::Stop {
            id: id.into(),
            how: StopHow::Kill,
        }
    }
    fn remove(id: &str) -> Step {
        Step::Remove { id: id.into() }
    }
    fn restart(id: &str) -> Step {
        Step::Restart { id: id.into() }
    }
    fn record(reason: &str) -> Step {
        Step::Record {
            reason: reason.into(),
            message: String::new(),
        }
    }

    /// Plans `containers` against `assignment` and compares the steps (events
    /// by reason only). Returns the plan for further checks.
    fn check(
        assignment: Option<Assignment>,
        containers: Vec<ContainerView>,
        now: Instant,
        expected: &[Step],
    ) -> Plan {
        let input = PlanInput {
            assignment,
            containers,
        };
        let p = plan(&input, now);
        let got: Vec<Step> = p
            .steps
            .iter()
            .map(|s| match s {
                Step::Record { reason, .. } => record(reason),
                other => other.clone(),
            })
            .collect();
        assert_eq!(got, expected, "input: {input:#?}");
        // Planning is deterministic.
        assert_eq!(plan(&input, now), p);
        p
    }

    #[test]
    fn fresh_start_starts_all_replicas() {
        let n = now();
        let p = check(
            Some(assignment(H1, 3, State::Running)),
            vec![],
            n,
            &[start(H1), start(H1), start(H1)],
        );
        assert_eq!(p.requeue_after, None);
    }

    #[test]
    fn steady_state_does_nothing() {
        let n = now();
        let cs = vec![ctr("a", H1, 1, n), ctr("b", H1, 2, n)];
        check(Some(assignment(H1, 2, State::Running)), cs, n, &[]);
    }

    #[test]
    fn starting_container_waits_for_ready_timeout() {
        let n = now();
        let p = check(
            Some(assignment(H1, 1, State::Running)),
            vec![starting(ctr("a", H1, 1, n), n, 10)],
            n,
            &[],
        );
        assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
    }

    #[test]
    fn ready_timeout_keeps_the_slot_until_the_count_says() {
        let n = now();
        // Not ready within 30 s: no replacement of its own, no requeue.
        let p = check(
            Some(assignment(H1, 1, State::Running)),
            vec![starting(ctr("a", H1, 1, n), n, 31)],
            n,
            &[],
        );
        assert_eq!(p.requeue_after, None);
        // A replacement granted: one starts beside it.
        check(
            Some(with(H1, 1, 1, 0)),
            vec![starting(ctr("a", H1, 1, n), n, 31)],
            n,
            &[start(H1)],
        );
        // The grant withdrawn, the replacement ready: the timed-out one
        // leaves, recorded.
        check(
            Some(assignment(H1, 1, State::Running)),
            vec![starting(ctr("a", H1, 1, n), n, 40), ctr("b", H1, 2, n)],
            n,
            &[record("ReadyTimeout"), stop("a")],
        );
        // A custom readyTimeout is honoured.
        let mut a = assignment(H1, 1, State::Running);
        a.revisions[0].template.ready_timeout = Some(quantity::Duration::from_secs(60));
        let p = check(Some(a), vec![starting(ctr("a", H1, 1, n), n, 31)], n, &[]);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(29)));
    }

    #[test]
    fn ready_timed_out_is_judged_by_the_revisions_timeout() {
        let n = now();
        let r = revision(H1, 1);
        let c = |age| starting(ctr("a", H1, 1, n), n, age);
        assert!(!ready_timed_out(&c(29), &r, n));
        assert!(ready_timed_out(&c(30), &r, n));
        assert!(!ready_timed_out(&ctr("a", H1, 1, n), &r, n));
        assert!(!ready_timed_out(&exited(c(40), n, 1, 0, 1), &r, n));
    }

    #[test]
    fn a_ready_timed_out_container_is_published_unhealthy() {
        let n = now();
        let r = revision(H1, 1);
        let p = RestartPolicy::Always;
        let c = |age| starting(ctr("a", H1, 1, n), n, age);
        let table = [
            (c(10), Some(&r), (ContainerPhase::Starting, false)),
            (c(31), Some(&r), (ContainerPhase::Unhealthy, true)),
            // Not of an assigned revision: it leaves anyway, no verdict.
            (c(31), None, (ContainerPhase::Starting, false)),
            (
                stopping(c(31), StopHow::Graceful),
                Some(&r),
                (ContainerPhase::Draining, false),
            ),
            (ctr("a", H1, 1, n), Some(&r), (ContainerPhase::Ready, false)),
        ];
        for (view, rev, want) in table {
            assert_eq!(published_phase(&view, rev, p, n), want, "{view:?}");
        }
    }

    /// A container restarting in place (an administrator's restart) holds
    /// its slot: nothing starts in its stead, no step touches it, and a
    /// kill of the component still reaches it.
    #[test]
    fn a_container_restarting_in_place_keeps_its_slot() {
        let n = now();
        let restarting = |c| stopping(c, StopHow::Restart);
        let table: Vec<(Option<Assignment>, Vec<ContainerView>, Vec<Step>)> = vec![
            (
                Some(assignment(H1, 1, State::Running)),
                vec![restarting(ctr("a", H1, 1, n))],
                vec![],
            ),
            (
                Some(assignment(H1, 2, State::Running)),
                vec![ctr("a", H1, 1, n), restarting(ctr("b", H1, 2, n))],
                vec![],
            ),
            // One slot short besides it: one start, not two.
            (
                Some(assignment(H1, 3, State::Running)),
                vec![ctr("a", H1, 1, n), restarting(ctr("b", H1, 2, n))],
                vec![start(H1)],
            ),
            // Scaled down meanwhile: the ready one is not stopped while
            // the other is down; the surplus leaves once the restart is done.
            (
                Some(assignment(H1, 1, State::Running)),
                vec![ctr("a", H1, 1, n), restarting(ctr("b", H1, 2, n))],
                vec![],
            ),
            (
                Some(assignment(H1, 1, State::Killed)),
                vec![restarting(ctr("a", H1, 1, n))],
                vec![kill("a")],
            ),
        ];
        for (a, containers, expected) in table {
            check(a, containers, n, &expected);
        }
    }

    /// An evicted container serves on in its slot until the coordinator
    /// grants a replacement (`replacing`) and withdraws it once that one is
    /// ready: then the evicted one leaves (first, though older), covered.
    /// With `maxSurge` 0 the coordinator takes it away first (`removing`):
    /// it leaves at once, before anything starts in its stead.
    #[test]
    fn an_evicted_container_serves_until_its_replacement_is_ready() {
        let n = now();
        let evicted = |mut c: ContainerView| {
            c.evicting = true;
            c
        };
        let table: Vec<(Assignment, Vec<ContainerView>, Vec<Step>)> = vec![
            // No grant yet: it serves on, nothing starts.
            (with(H1, 1, 0, 0), vec![evicted(ctr("a", H1, 1, n))], vec![]),
            // Granted: the replacement starts beside it.
            (
                with(H1, 1, 1, 0),
                vec![evicted(ctr("a", H1, 1, n))],
                vec![start(H1)],
            ),
            // Replacement starting: the evicted one still serves.
            (
                with(H1, 1, 1, 0),
                vec![
                    evicted(ctr("a", H1, 1, n)),
                    starting(ctr("b", H1, 2, n), n, 1),
                ],
                vec![],
            ),
            // Replacement ready, grant withdrawn: the evicted one leaves,
            // not the newest.
            (
                with(H1, 1, 0, 0),
                vec![evicted(ctr("a", H1, 1, n)), ctr("b", H1, 2, n)],
                vec![record("Evicted"), stop("a")],
            ),
            (
                with(H1, 2, 0, 0),
                vec![
                    ctr("a", H1, 1, n),
                    evicted(ctr("b", H1, 2, n)),
                    ctr("c", H1, 3, n),
                ],
                vec![record("Evicted"), stop("b")],
            ),
            // maxSurge 0: taken away first, uncovered.
            (
                with(H1, 2, 0, 1),
                vec![ctr("a", H1, 1, n), evicted(ctr("b", H1, 2, n))],
                vec![record("Evicted"), stop("b")],
            ),
            (
                with(H1, 1, 0, 1),
                vec![evicted(ctr("a", H1, 1, n))],
                vec![record("Evicted"), stop("a")],
            ),
            // An unhealthy one goes first; the evicted one waits its turn.
            (
                with(H1, 2, 0, 1),
                vec![evicted(ctr("a", H1, 1, n)), unhealthy(ctr("b", H1, 2, n))],
                vec![record("Unhealthy"), stop("b")],
            ),
        ];
        for (a, containers, expected) in table {
            check(Some(a), containers, n, &expected);
        }
    }

    #[test]
    fn unhealthy_is_never_replaced_by_the_node_alone() {
        let n = now();
        let table: Vec<(Assignment, Vec<ContainerView>, Vec<Step>)> = vec![
            // Unhealthy, nothing granted: it keeps its slot, nothing starts
            // (also what happens with etcd down).
            (
                assignment(H1, 1, State::Running),
                vec![unhealthy(ctr("a", H1, 1, n))],
                vec![],
            ),
            (
                assignment(H1, 3, State::Running),
                vec![
                    ctr("a", H1, 1, n),
                    unhealthy(ctr("b", H1, 2, n)),
                    unhealthy(ctr("c", H1, 3, n)),
                ],
                vec![],
            ),
            // One replacement granted: one starts, the unhealthy ones stay.
            (
                with(H1, 3, 1, 0),
                vec![
                    ctr("a", H1, 1, n),
                    unhealthy(ctr("b", H1, 2, n)),
                    unhealthy(ctr("c", H1, 3, n)),
                ],
                vec![start(H1)],
            ),
            // The replacement starting: nothing more.
            (
                with(H1, 1, 1, 0),
                vec![
                    unhealthy(ctr("a", H1, 1, n)),
                    starting(ctr("b", H1, 2, n), n, 1),
                ],
                vec![],
            ),
            // Ready, the grant still there: both stay (the coordinator
            // withdraws it once the replacement is available).
            (
                with(H1, 1, 1, 0),
                vec![unhealthy(ctr("a", H1, 1, n)), ctr("b", H1, 2, n)],
                vec![],
            ),
            // Withdrawn: the unhealthy one leaves first, recorded, even
            // though it is older than nothing else and a newer one is ready.
            (
                assignment(H1, 1, State::Running),
                vec![ctr("b", H1, 2, n), unhealthy(ctr("a", H1, 3, n))],
                vec![record("Unhealthy"), stop("a")],
            ),
            // Two unhealthy, one count fewer: the oldest unhealthy goes.
            (
                assignment(H1, 2, State::Running),
                vec![
                    ctr("a", H1, 1, n),
                    unhealthy(ctr("c", H1, 3, n)),
                    unhealthy(ctr("b", H1, 2, n)),
                ],
                vec![record("Unhealthy"), stop("b")],
            ),
            // maxSurge 0: taken away first (removing), nothing starts; gone,
            // the count back: a fresh one starts.
            (
                with(H1, 2, 0, 1),
                vec![ctr("a", H1, 1, n), unhealthy(ctr("b", H1, 2, n))],
                vec![record("Unhealthy"), stop("b")],
            ),
            (
                with(H1, 2, 0, 1),
                vec![
                    ctr("a", H1, 1, n),
                    stopping(unhealthy(ctr("b", H1, 2, n)), StopHow::Graceful),
                ],
                vec![],
            ),
            (
                assignment(H1, 2, State::Running),
                vec![ctr("a", H1, 1, n)],
                vec![start(H1)],
            ),
            // An unhealthy container of a revision no longer assigned
            // leaves like any old one, first, once the rest covers it.
            (
                assignment(H2, 1, State::Running),
                vec![unhealthy(ctr("o", H1, 1, n)), ctr("n", H2, 2, n)],
                vec![record("Unhealthy"), stop("o")],
            ),
        ];
        for (a, cs, want) in table {
            check(Some(a), cs, n, &want);
        }
    }

    #[test]
    fn a_crash_restart_stays_local_and_immediate() {
        let n = now();
        // Beside an unhealthy one, with no grant: the crashed container is
        // restarted in place, nothing new starts.
        let cs = vec![
            unhealthy(ctr("a", H1, 1, n)),
            exited(ctr("b", H1, 2, n), n, 1, 0, 1),
        ];
        check(
            Some(assignment(H1, 2, State::Running)),
            cs,
            n,
            &[restart("b"), record("Restarted")],
        );
    }

    #[test]
    fn new_image_starts_new_first_then_stops_old() {
        let n = now();
        let a = || Some(assignment(H2, 1, State::Running));
        // Old ready: start the new one, keep the old.
        check(a(), vec![ctr("old", H1, 1, n)], n, &[start(H2)]);
        // New one starting: nothing more (surge of one).
        check(
            a(),
            vec![ctr("old", H1, 1, n), starting(ctr("new", H2, 2, n), n, 1)],
            n,
            &[],
        );
        // New one ready: the old one goes.
        check(
            a(),
            vec![ctr("old", H1, 1, n), ctr("new", H2, 2, n)],
            n,
            &[stop("old")],
        );
    }

    #[test]
    fn new_image_with_several_replicas_surges_by_one() {
        let n = now();
        let a = || Some(assignment(H2, 3, State::Running));
        let old = |n| {
            vec![
                ctr("o1", H1, 1, n),
                ctr("o2", H1, 2, n),
                ctr("o3", H1, 3, n),
            ]
        };
        check(a(), old(n), n, &[start(H2)]);
        let mut cs = old(n);
        cs.push(starting(ctr("n1", H2, 4, n), n, 1));
        check(a(), cs, n, &[]);
        // n1 ready: the oldest old one leaves, which makes room for the next new one.
        let mut cs = old(n);
        cs.push(ctr("n1", H2, 4, n));
        check(a(), cs, n, &[stop("o1"), start(H2)]);
        let cs = vec![
            ctr("o2", H1, 2, n),
            ctr("o3", H1, 3, n),
            ctr("n1", H2, 4, n),
        ];
        check(a(), cs, n, &[start(H2)]);
    }

    #[test]
    fn old_containers_not_serving_leave_at_once() {
        let n = now();
        let cs = vec![
            starting(ctr("o1", H1, 1, n), n, 1),
            exited(ctr("o2", H1, 2, n), n, 1, 5, 1),
        ];
        check(
            Some(assignment(H2, 1, State::Running)),
            cs,
            n,
            &[stop("o1"), remove("o2"), start(H2)],
        );
    }

    #[test]
    fn replicas_lowered_stops_extras_non_ready_and_newest_first() {
        let n = now();
        let cs = vec![
            ctr("a", H1, 1, n),
            ctr("b", H1, 2, n),
            ctr("c", H1, 3, n),
            starting(ctr("d", H1, 0, n), n, 1),
        ];
        check(
            Some(assignment(H1, 2, State::Running)),
            cs,
            n,
            &[stop("d"), stop("c")],
        );
        let cs = vec![ctr("a", H1, 1, n), exited(ctr("b", H1, 2, n), n, 1, 0, 1)];
        check(
            Some(assignment(H1, 1, State::Running)),
            cs,
            n,
            &[remove("b")],
        );
        // Zero replicas: everything goes.
        check(
            Some(assignment(H1, 0, State::Running)),
            vec![ctr("a", H1, 1, n)],
            n,
            &[stop("a")],
        );
    }

    #[test]
    fn replicas_raised_starts_more() {
        let n = now();
        check(
            Some(assignment(H1, 3, State::Running)),
            vec![ctr("a", H1, 1, n)],
            n,
            &[start(H1), start(H1)],
        );
    }

    #[test]
    fn crash_restarts_after_backoff() {
        let n = now();
        let a = || Some(assignment(H1, 1, State::Running));
        // First crash: restarted at once, recorded.
        let p = check(
            a(),
            vec![exited(ctr("a", H1, 1, n), n, 137, 0, 1)],
            n,
            &[restart("a"), record("Restarted")],
        );
        let message = p.steps.iter().find_map(|s| match s {
            Step::Record { message, .. } => Some(message.as_str()),
            _ => None,
        });
        assert_eq!(
            message,
            Some("container a exited with code 137 (Error); restart 1 after 0s")
        );
        // Second crash: 1 s backoff, seen 0.5 s ago: wait.
        let mut c = exited(ctr("a", H1, 1, n), n, 137, 0, 2);
        c.run = RunState::Exited {
            code: 137,
            oom: false,
            at: n - Duration::from_millis(500),
        };
        let p = check(a(), vec![c], n, &[]);
        assert_eq!(p.requeue_after, Some(Duration::from_millis(500)));
        // Backoff elapsed: restart in place.
        let p = check(
            a(),
            vec![exited(ctr("a", H1, 1, n), n, 137, 1, 2)],
            n,
            &[restart("a"), record("Restarted")],
        );
        assert!(
            p.steps.iter().any(|s| matches!(s,
                Step::Record { message, .. } if message.ends_with("restart 2 after 1s"))),
            "{p:?}"
        );
        // Fifth crash: 8 s.
        let p = check(a(), vec![exited(ctr("a", H1, 1, n), n, 1, 5, 5)], n, &[]);
        assert_eq!(p.requeue_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn crash_backoff_doubles_to_a_cap_and_resets() {
        assert_eq!(crash_backoff(0), Duration::ZERO);
        assert_eq!(crash_backoff(1), Duration::ZERO);
        assert_eq!(crash_backoff(2), Duration::from_secs(1));
        assert_eq!(crash_backoff(3), Duration::from_secs(2));
        assert_eq!(crash_backoff(6), Duration::from_secs(16));
        assert_eq!(crash_backoff(10), Duration::from_secs(256));
        assert_eq!(crash_backoff(11), CRASH_BACKOFF_CAP);
        assert_eq!(crash_backoff(u32::MAX), CRASH_BACKOFF_CAP);
        assert_eq!(consecutive_crashes(3, Duration::from_secs(5)), 4);
        assert_eq!(consecutive_crashes(7, Duration::from_secs(601)), 1);
    }

    #[test]
    fn restart_policy_is_honoured() {
        let n = now();
        let with = |p: RestartPolicy| {
            let mut a = assignment(H1, 1, State::Running);
            a.revisions[0].template.restart_policy = p;
            Some(a)
        };
        // Never: stays exited and keeps its slot.
        check(
            with(RestartPolicy::Never),
            vec![exited(ctr("a", H1, 1, n), n, 1, 60, 1)],
            n,
            &[],
        );
        // OnFailure: exit 0 stays, exit 1 restarts.
        check(
            with(RestartPolicy::OnFailure),
            vec![exited(ctr("a", H1, 1, n), n, 0, 60, 1)],
            n,
            &[],
        );
        check(
            with(RestartPolicy::OnFailure),
            vec![exited(ctr("a", H1, 1, n), n, 1, 60, 1)],
            n,
            &[restart("a"), record("Restarted")],
        );
        let mut oom = exited(ctr("a", H1, 1, n), n, 0, 60, 1);
        oom.run = RunState::Exited {
            code: 0,
            oom: true,
            at: n - Duration::from_secs(60),
        };
        check(
            with(RestartPolicy::OnFailure),
            vec![oom],
            n,
            &[restart("a"), record("Restarted")],
        );
    }

    #[test]
    fn phases() {
        let n = now();
        let p = RestartPolicy::Always;
        assert_eq!(phase(&ctr("a", H1, 1, n), p), ContainerPhase::Ready);
        assert_eq!(
            phase(&starting(ctr("a", H1, 1, n), n, 1), p),
            ContainerPhase::Starting
        );
        assert_eq!(
            phase(&unhealthy(ctr("a", H1, 1, n)), p),
            ContainerPhase::Unhealthy
        );
        assert_eq!(
            phase(&exited(ctr("a", H1, 1, n), n, 1, 0, 1), p),
            ContainerPhase::Exited
        );
        assert_eq!(
            phase(&exited(ctr("a", H1, 1, n), n, 1, 0, 2), p),
            ContainerPhase::CrashLoop
        );
        let never = RestartPolicy::Never;
        assert_eq!(
            phase(&exited(ctr("a", H1, 1, n), n, 1, 0, 5), never),
            ContainerPhase::Exited
        );
        assert_eq!(
            phase(&stopping(ctr("a", H1, 1, n), StopHow::Graceful), p),
            ContainerPhase::Draining
        );
        assert_eq!(
            phase(&stopping(ctr("a", H1, 1, n), StopHow::Kill), p),
            ContainerPhase::Stopping
        );
        assert_eq!(exit_reason(137, true), "OOMKilled");
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(2, false), "Error");
    }

    #[test]
    fn crash_of_an_extra_is_not_restarted() {
        let n = now();
        let cs = vec![ctr("a", H1, 1, n), exited(ctr("b", H1, 2, n), n, 1, 60, 1)];
        check(
            Some(assignment(H1, 1, State::Running)),
            cs,
            n,
            &[remove("b")],
        );
    }

    #[test]
    fn created_but_never_started_is_removed_and_replaced() {
        let n = now();
        let mut c = ctr("a", H1, 1, n);
        c.run = RunState::Created;
        check(
            Some(assignment(H1, 1, State::Running)),
            vec![c],
            n,
            &[remove("a"), start(H1)],
        );
    }

    #[test]
    fn stopped_stops_all_gracefully_and_removes_exited() {
        let n = now();
        let cs = vec![
            ctr("a", H1, 1, n),
            starting(ctr("b", H2, 2, n), n, 1),
            exited(ctr("c", H1, 3, n), n, 1, 5, 1),
        ];
        check(
            Some(assignment(H1, 2, State::Stopped)),
            cs,
            n,
            &[stop("a"), stop("b"), remove("c")],
        );
    }

    #[test]
    fn killed_kills_all_and_escalates_graceful_stops() {
        let n = now();
        let cs = vec![
            ctr("a", H1, 1, n),
            stopping(ctr("b", H1, 2, n), StopHow::Graceful),
            stopping(ctr("c", H1, 3, n), StopHow::Kill),
            exited(ctr("d", H1, 4, n), n, 1, 5, 1),
        ];
        check(
            Some(assignment(H1, 2, State::Killed)),
            cs,
            n,
            &[kill("b"), kill("a"), remove("d")],
        );
    }

    #[test]
    fn back_to_running_starts_again() {
        let n = now();
        check(
            Some(assignment(H1, 2, State::Running)),
            vec![],
            n,
            &[start(H1), start(H1)],
        );
        // Containers still being stopped gracefully are not counted.
        let cs = vec![stopping(ctr("a", H1, 1, n), StopHow::Graceful)];
        check(Some(assignment(H1, 1, State::Running)), cs, n, &[start(H1)]);
    }

    #[test]
    fn no_assignment_stops_and_removes_all() {
        let n = now();
        let cs = vec![
            ctr("a", H1, 1, n),
            exited(ctr("b", H2, 2, n), n, 0, 5, 0),
            stopping(ctr("c", H1, 3, n), StopHow::Graceful),
        ];
        check(None, cs, n, &[stop("a"), remove("b")]);
    }

    #[test]
    fn rollout_back_to_old_hash_reuses_nothing_but_keeps_serving() {
        // A rollback: assigned H1 again while H2 containers run.
        let n = now();
        let cs = vec![ctr("new", H2, 5, n), unhealthy(ctr("bad", H2, 6, n))];
        check(Some(assignment(H1, 2, State::Running)), cs, n, &[start(H1)]);
    }

    #[test]
    fn counts_per_revision_are_each_kept() {
        let n = now();
        // 2 of H1 and 1 of H2 asked, all of H1 running: one H2 starts.
        let cs = vec![ctr("o1", H1, 1, n), ctr("o2", H1, 2, n)];
        check(both(2, 1), cs.clone(), n, &[start(H2)]);
        // Nothing running: both revisions start, newest first.
        check(both(2, 1), vec![], n, &[start(H2), start(H1), start(H1)]);
        // Each count met: nothing to do.
        let mut met = cs;
        met.push(ctr("n1", H2, 3, n));
        check(both(2, 1), met, n, &[]);
    }

    #[test]
    fn a_rollout_step_moves_one_container_ready_first() {
        let n = now();
        // From 2 of H1 to 1 and 1: the H2 one starts, no H1 stops yet.
        let cs = vec![ctr("o1", H1, 1, n), ctr("o2", H1, 2, n)];
        check(both(1, 1), cs.clone(), n, &[start(H2)]);
        // The H2 one starting: still nothing stops.
        let mut step = cs.clone();
        step.push(starting(ctr("n1", H2, 3, n), n, 1));
        check(both(1, 1), step, n, &[]);
        // Ready: the surplus H1 one leaves, the newest of its revision.
        let mut step = cs;
        step.push(ctr("n1", H2, 3, n));
        check(both(1, 1), step, n, &[stop("o2")]);
    }

    #[test]
    fn surplus_leaves_oldest_revision_first() {
        let n = now();
        // 1 of H2 asked, H1 not at all; H1 and H2 extras running: the H1
        // containers go before the surplus H2 one.
        let cs = vec![
            ctr("n2", H2, 1, n),
            ctr("o1", H1, 2, n),
            ctr("n1", H2, 3, n),
            ctr("o2", H1, 4, n),
        ];
        let a = Some(Assignment::single(1, State::Running, revision(H2, 1)));
        check(
            a.clone(),
            cs.clone(),
            n,
            &[stop("o1"), stop("o2"), stop("n1")],
        );
        // Lowering the total by one over two revisions: the old revision's
        // extra goes, the new one's stays.
        check(both(1, 2), cs, n, &[stop("o2")]);
    }

    #[test]
    fn a_crash_restart_ignores_other_revisions() {
        let n = now();
        let cs = vec![ctr("o1", H1, 1, n), exited(ctr("n1", H2, 2, n), n, 1, 5, 1)];
        check(both(1, 1), cs, n, &[restart("n1"), record("Restarted")]);
    }
}
