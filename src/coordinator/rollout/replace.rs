//! Health replacements within the cluster's budgets (pure).
//!
//! An agent never replaces an unhealthy container on its own (health checks
//! failing, or not ready within `readyTimeout`): it reports it `Unhealthy`
//! and keeps it in its slot. Here, after a step's moves, every slot holding
//! unhealthy containers is handled through its assignment:
//!
//! - **replace** (`replacing`): one more container per unhealthy one while
//!   fewer than `replicas` of the slot are available, each granted only
//!   while the projected containers (every revision, draining ones
//!   included) stay within `desired + maxSurge`. The agent starts the
//!   replacement beside the unhealthy one; once it is available the grant
//!   is withdrawn and the agent lets the unhealthy one go (it leaves first).
//! - **take away** (`removing`): when the budget allows no replacement now
//!   (`maxSurge` 0, or used up — the unhealthy containers count against
//!   it too, so waiting might never end), the slot would start nothing:
//!   the unhealthy containers beyond the granted stand-ins are taken away
//!   first. They were unavailable already, so this
//!   costs no availability. Once they are gone (drained), `removing` drops
//!   as the budget allows, and the agent starts fresh ones.
//!
//! - **evictions** (`berth evict`): an evicted container keeps serving and
//!   counts as available; it is replaced like an unhealthy one
//!   (`replacing`, within `desired + maxSurge`) and leaves once its
//!   replacement is available, so availability never dips. With `maxSurge`
//!   0 it is taken away first instead (`removing`, drain-first), one at a
//!   time while the projected available replicas stay at least `desired -
//!   maxUnavailable`. Both budgets 0 cannot reach here: `Budget` resolves
//!   them to one surge replica (as a rollout does), so that eviction is
//!   surge-first.
//!
//! Neither raises a count into an unhealthy container the agent is letting
//! go. These are no rollout moves: they do not count as progress, so a
//! never-ready image replaced again and again still meets its
//! `progressDeadline`.

use super::budget::Budget;
use super::facts::{Facts, Slot};

/// Adjusts `replacing` and `removing` in `f`.
pub fn run(f: &mut Facts, b: &Budget) {
    let surge = b.surge > 0;
    let stand = |s: &Slot| {
        if surge {
            s.replacements_wanted()
        } else {
            0
        }
    };
    // Withdrawing a replacement never adds a container.
    for s in f.nodes.iter_mut().flat_map(|n| n.slots.iter_mut()) {
        s.replacing = s.replacing.min(stand(s));
    }
    // Granting one, or giving a taken-away slot back, may: one at a time,
    // within the surge budget.
    let mut projected = f.projected();
    while let Some(s) = f
        .nodes
        .iter_mut()
        .flat_map(|n| n.slots.iter_mut())
        .filter(|s| !s.add_keeps_unhealthy())
        .filter(|s| s.removing > 0 || s.replacing < stand(s))
        .find(|s| projected + grant_cost(s) <= b.max_total())
    {
        let before = s.projected();
        if s.removing > 0 {
            s.removing -= 1;
        } else {
            s.replacing += 1;
        }
        projected = projected + s.projected() - before;
    }
    // What the budget could not replace now is taken away: waiting could
    // hold the budget forever (the unhealthy ones count against it).
    for s in f.nodes.iter_mut().flat_map(|n| n.slots.iter_mut()) {
        if s.stuck() {
            s.removing = s.removing.max(s.assigned.saturating_sub(s.healthy()));
        }
    }
    if !surge {
        take_evicted_away(f, b);
    }
}

/// `maxSurge` 0: evicted containers leave before their replacements start,
/// one at a time while the available replicas the assignments keep stay at
/// least `desired - maxUnavailable` (waiting for a surge that never comes
/// would keep them forever).
fn take_evicted_away(f: &mut Facts, b: &Budget) {
    let mut kept = f.kept_available();
    loop {
        let mut taken = false;
        for s in f.nodes.iter_mut().flat_map(|n| n.slots.iter_mut()) {
            if s.evicted_to_take_away() == 0 {
                continue;
            }
            let before = s.kept_available();
            s.removing += 1;
            // The agent takes an available evicted one before those that
            // serve nothing yet (its replacement may be starting).
            let cost = if s.evicting_available > 0 {
                1
            } else {
                before.saturating_sub(s.kept_available())
            };
            if kept.saturating_sub(cost) >= b.min_available() {
                kept -= cost.min(kept);
                taken = true;
                break;
            }
            s.removing -= 1;
        }
        if !taken {
            return;
        }
    }
}

/// Projected containers added by one more replacement, or by giving one
/// taken-away slot back.
fn grant_cost(s: &Slot) -> u32 {
    u32::from(s.wanted() >= s.live)
}
