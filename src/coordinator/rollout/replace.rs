//! Health replacements within the cluster's budgets (pure).
//!
//! An agent never replaces an unhealthy container on its own (health checks
//! failing, or not ready within `readyTimeout`): it reports it `Unhealthy`
//! and keeps it in its slot. Here, after a step's moves, every slot holding
//! unhealthy containers is handled through its assignment:
//!
//! - with a surge budget, `replacing` is raised by one per unhealthy
//!   container while fewer than `replicas` of the slot are available, each
//!   only while the projected containers (every revision, draining ones
//!   included) stay within `desired + maxSurge`: the agent starts the
//!   replacement beside the unhealthy one. Once it is available,
//!   `replacing` drops and the agent lets the unhealthy one go (it leaves
//!   first). A replacement that never becomes available keeps its grant
//!   until the unhealthy one is gone or recovers;
//! - with no surge budget (`maxSurge` 0), `removing` takes the unhealthy
//!   container away first: it was unavailable already, so this costs no
//!   availability; once it is gone (drained), `removing` drops, which
//!   starts a fresh one, as soon as the budget allows.
//!
//! These are no rollout moves: they do not count as progress, so a
//! never-ready image replaced again and again still meets its
//! `progressDeadline`.

use super::budget::Budget;
use super::facts::Facts;

/// Adjusts `replacing` and `removing` in `f`; returns how many slots changed.
pub fn run(f: &mut Facts, b: &Budget) -> usize {
    let surge = b.surge > 0;
    let mut changed = 0;
    // Lowering `replacing` and raising `removing` never adds a container.
    for n in f.nodes.iter_mut() {
        for s in n.slots.iter_mut() {
            let replace = if surge { s.replacements_wanted() } else { 0 };
            let before = (s.replacing, s.removing);
            s.replacing = s.replacing.min(replace);
            if !surge {
                s.removing = s.removing.max(s.removals_wanted());
            }
            changed += usize::from(before != (s.replacing, s.removing));
        }
    }
    // Raising `replacing` and lowering `removing` may: one at a time, within
    // the surge budget.
    let mut projected = f.projected();
    loop {
        let pick = f
            .nodes
            .iter_mut()
            .flat_map(|n| n.slots.iter_mut())
            .find(|s| {
                let keep = if surge { 0 } else { s.removals_wanted() };
                let wants = (surge && s.replacing < s.replacements_wanted()) || s.removing > keep;
                wants && projected + s.add_cost() <= b.max_total()
            });
        let Some(s) = pick else { break };
        projected += s.add_cost();
        let keep = if surge { 0 } else { s.removals_wanted() };
        if s.removing > keep {
            s.removing -= 1;
        } else {
            s.replacing += 1;
        }
        changed += 1;
    }
    changed
}
