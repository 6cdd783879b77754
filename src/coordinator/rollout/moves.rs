//! Which node gets one more of the target revision, and which one fewer of
//! an old one, next (pure). One move at a time, re-checked against the
//! budgets after each, until none is allowed.
//!
//! The moves, in the order they are tried:
//! 1. **add target** on the node furthest below its target (ties: the node
//!    holding most old replicas, so the agent swaps them in place — it stops
//!    an old container only once the new one is ready — then by name),
//!    while fewer than `cap` of the target are placed and the projected
//!    containers stay within `desired + maxSurge`;
//! 2. **fill old** (the canary or a pause holds the target at `cap`, and a
//!    node lost replicas): one more of the newest old revision on a node
//!    below its target, within the same surge bound;
//! 3. **remove old** while more old replicas are assigned than `desired -
//!    cap`: unavailable ones first (they cost nothing), then on nodes over
//!    their target (in-place swaps), then where most are; each only while
//!    the projected available replicas stay at least `desired -
//!    maxUnavailable`;
//! 4. **remove misplaced**: a replica on a node over its target (drain,
//!    selector change, scale-down, rebalance) once the replicas that remain
//!    keep `desired` available (unavailable ones go at once).
//!
//! No add goes to a slot where it would only keep an unhealthy container
//! the agent is letting go (`Slot::add_keeps_unhealthy`).

use super::budget::Budget;
use super::facts::Facts;

/// What the moves may do.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub budget: Budget,
    /// The most replicas of the target to place (a canary's count, a
    /// paused rollout's current count, else `desired`).
    pub cap: u32,
    /// The old revision (hash index) that fills a capped rollout's rest.
    pub fill: Option<usize>,
}

/// One assignment change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub node: String,
    /// Index into [`Facts::hashes`].
    pub hash: usize,
    /// +1 or -1.
    pub add: bool,
}

/// Applies moves to `f` (its `assigned` counts) until none is allowed;
/// returns them in order.
pub fn run(f: &mut Facts, l: &Limits) -> Vec<Move> {
    let mut moves = Vec::new();
    let d = l.budget.desired;
    let mut projected = f.projected();
    let mut kept = f.kept_available();
    let mut placed = f.placed_target();
    let mut old: u32 = f.nodes.iter().map(|n| n.assigned_old()).sum();
    let mut total = f.assigned();
    let limit = 4 * (d as usize + f.nodes.len()) + 16;
    for _ in 0..limit {
        // 1. add target
        if placed < l.cap {
            let pick = f
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.slots[0].assigned < n.target)
                .filter(|(_, n)| !n.slots[0].add_keeps_unhealthy())
                .filter(|(_, n)| projected + n.slots[0].add_cost() <= l.budget.max_total())
                .max_by(|(_, a), (_, b)| {
                    let da = a.target - a.slots[0].assigned;
                    let db = b.target - b.slots[0].assigned;
                    (da, a.assigned_old())
                        .cmp(&(db, b.assigned_old()))
                        .then_with(|| b.name.cmp(&a.name))
                })
                .map(|(i, _)| i);
            if let Some(i) = pick {
                let n = &mut f.nodes[i];
                projected += n.slots[0].add_cost();
                n.slots[0].assigned += 1;
                placed += 1;
                total += 1;
                moves.push(Move {
                    node: n.name.clone(),
                    hash: 0,
                    add: true,
                });
                continue;
            }
        }
        // 2. fill old
        if let Some(h) = l.fill.filter(|_| placed >= l.cap && total < d) {
            let pick = f
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.assigned() < n.target)
                .filter(|(_, n)| !n.slots[h].add_keeps_unhealthy())
                .filter(|(_, n)| projected + n.slots[h].add_cost() <= l.budget.max_total())
                .max_by(|(_, a), (_, b)| {
                    (a.target - a.assigned())
                        .cmp(&(b.target - b.assigned()))
                        .then_with(|| b.name.cmp(&a.name))
                })
                .map(|(i, _)| i);
            if let Some(i) = pick {
                let n = &mut f.nodes[i];
                projected += n.slots[h].add_cost();
                n.slots[h].assigned += 1;
                old += 1;
                total += 1;
                moves.push(Move {
                    node: n.name.clone(),
                    hash: h,
                    add: true,
                });
                continue;
            }
        }
        // 3. remove old
        if old > d.saturating_sub(l.cap) {
            let min = l.budget.min_available();
            let pick = f
                .nodes
                .iter()
                .enumerate()
                .flat_map(|(i, n)| {
                    n.slots
                        .iter()
                        .enumerate()
                        .skip(1)
                        .filter(|(_, s)| s.assigned > 0)
                        .map(move |(h, s)| (i, h, n, s))
                })
                .filter(|(_, _, _, s)| s.remove_cost() == 0 || kept >= min + s.remove_cost())
                .min_by_key(|(_, h, n, s)| {
                    (
                        s.remove_cost(),
                        n.assigned() <= n.target,
                        std::cmp::Reverse(n.assigned_old()),
                        *h,
                        &n.name,
                    )
                })
                .map(|(i, h, _, _)| (i, h));
            if let Some((i, h)) = pick {
                let n = &mut f.nodes[i];
                kept -= n.slots[h].remove_cost();
                let before = n.slots[h].projected();
                n.slots[h].assigned -= 1;
                projected = projected + n.slots[h].projected() - before;
                old -= 1;
                total -= 1;
                moves.push(Move {
                    node: n.name.clone(),
                    hash: h,
                    add: false,
                });
                continue;
            }
        }
        // 4. remove misplaced
        let pick = f
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.assigned() > n.target)
            .flat_map(|(i, n)| {
                n.slots
                    .iter()
                    .enumerate()
                    .filter(|(h, s)| s.assigned > 0 && (*h != 0 || s.assigned > n.target))
                    .map(move |(h, s)| (i, h, n, s))
            })
            .filter(|(_, _, _, s)| {
                s.remove_cost() == 0 || (kept >= d + s.remove_cost() && total > d)
            })
            .min_by_key(|(_, h, n, s)| (s.remove_cost(), *h == 0, &n.name))
            .map(|(i, h, _, _)| (i, h));
        if let Some((i, h)) = pick {
            let n = &mut f.nodes[i];
            kept -= n.slots[h].remove_cost();
            let before = n.slots[h].projected();
            n.slots[h].assigned -= 1;
            projected = projected + n.slots[h].projected() - before;
            // A target replica over its node's target was not counted in
            // `placed`; an old one was in `old`.
            if h != 0 {
                old -= 1;
            }
            total -= 1;
            moves.push(Move {
                node: f.nodes[i].name.clone(),
                hash: h,
                add: false,
            });
            continue;
        }
        break;
    }
    moves
}
