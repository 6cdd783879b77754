//! Counts per node and per revision hash, from the assignments and the
//! observed containers (pure).
//!
//! Per node and hash: `assigned` (what the node is asked for), `live`
//! (containers that exist and are not leaving), `available` (ready for at
//! least `minReady`); per node: `leaving` (draining, stopping or stopped
//! containers of any hash: they still hold resources and connections, so
//! they count against the surge budget).
//!
//! What the agents will do with an assignment is projected conservatively:
//! - containers per node and hash will be `max(assigned, live)` (a lowered
//!   count leaves only after the agent stopped the surplus; a raised one is
//!   started), plus what is leaving;
//! - available per node and hash will be `min(assigned, available)` (a
//!   lowered count may take ready containers away).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::resource::observed::{ContainerPhase, ObservedContainer};
use crate::resource::{Assignment, Observed};

/// One revision's counts on one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub assigned: u32,
    pub live: u32,
    pub available: u32,
    /// Live containers the agent reports `Unhealthy` (health checks failing,
    /// or not ready within `readyTimeout`): they fill a slot, serve nothing.
    pub unhealthy: u32,
    /// Live containers an administrator evicted (`berth evict`) that are
    /// not unhealthy: they serve on (counted in `available` while they do)
    /// until a replacement is available, like an outdated replica.
    pub evicting: u32,
    /// Of the evicting ones, those available.
    pub evicting_available: u32,
    /// Health replacements granted (the assignment's `replacing`).
    pub replacing: u32,
    /// Unhealthy containers taken away (the assignment's `removing`).
    pub removing: u32,
}

impl Slot {
    /// Containers the agent keeps for this slot now (see
    /// `RevisionReplicas::wanted`), counting only the replacements still
    /// worth holding at this `assigned` (`replace` withdraws the others).
    pub fn wanted(&self) -> u32 {
        self.assigned
            .saturating_add(self.replacing.min(self.replacements_wanted()))
            .saturating_sub(self.removing)
    }

    /// Containers the agent will hold for this slot.
    pub fn projected(&self) -> u32 {
        self.wanted().max(self.live)
    }

    /// Available replicas the slot keeps: the agent takes unhealthy and
    /// other unavailable surplus away before an available one.
    ///
    /// Beside evicted ones, a replacement grant does not count: it is
    /// withdrawn as they are covered, and the slot keeps `assigned` less
    /// what is taken away in the end (budgets are not spent on it).
    pub fn kept_available(&self) -> u32 {
        let wanted = if self.evicting > 0 {
            self.assigned.saturating_sub(self.removing)
        } else {
            self.wanted()
        };
        wanted.min(self.available)
    }

    /// Projected containers added by assigning one more.
    pub fn add_cost(&self) -> u32 {
        let mut more = *self;
        more.assigned += 1;
        more.projected().saturating_sub(self.projected())
    }

    /// Available replicas lost by assigning one fewer (a replacement no
    /// longer worth holding goes with it).
    pub fn remove_cost(&self) -> u32 {
        let mut less = *self;
        less.assigned = less.assigned.saturating_sub(1);
        self.kept_available().saturating_sub(less.kept_available())
    }

    /// Whether keeping one more would keep an unhealthy container the agent
    /// is about to let go (the healthy ones are kept first): raising the
    /// count there adds no replica, it only undoes a take-away.
    pub fn add_keeps_unhealthy(&self) -> bool {
        let healthy = self.live.saturating_sub(self.unhealthy);
        self.wanted() < self.live && self.wanted() >= healthy
    }

    /// Replacements worth holding: unhealthy or evicted containers
    /// standing in while fewer than `assigned` of the others are available
    /// (a replacement is withdrawn, and the agent lets the unhealthy or
    /// evicted one go, once it is available).
    ///
    /// With evicted ones, available containers beyond `assigned` mean as
    /// many evicted ones are covered: the grant drops by exactly as many
    /// (the agent lets evicted ones go before replacements that are ready
    /// but not yet available, `minReady`), and no new one is granted until
    /// they are gone (one more would exceed the budget).
    pub fn replacements_wanted(&self) -> u32 {
        let bad = self.unhealthy + self.evicting;
        let staying = self.available.saturating_sub(self.evicting_available);
        let need = bad.min(self.assigned.saturating_sub(staying));
        let covered = self.available.saturating_sub(self.assigned);
        if self.evicting == 0 || self.assigned == 0 || covered == 0 {
            return need.saturating_sub(covered);
        }
        self.live
            .saturating_sub(self.assigned)
            .saturating_sub(covered)
            .min(self.replacing)
            .min(bad)
    }

    /// Evicted containers the agent would not let go yet: with `maxSurge`
    /// 0, how much further `removing` may rise to take each away before
    /// its replacement (the agent takes the surplus it serves nothing with
    /// first, then evicted ones). None while slots are missing: those start
    /// first, and a take-away there would only stop them.
    pub fn evicted_to_take_away(&self) -> u32 {
        let wanted = self.wanted();
        if self.evicting == 0 || wanted > self.live {
            return 0;
        }
        (self.unhealthy + self.evicting).saturating_sub(self.live - wanted)
    }

    /// Live containers that are not unhealthy (ready, starting, exited).
    pub fn healthy(&self) -> u32 {
        self.live.saturating_sub(self.unhealthy)
    }

    /// Whether unhealthy containers fill slots the agent will start nothing
    /// for: it keeps all it wants, and fewer healthy ones than `assigned`.
    pub fn stuck(&self) -> bool {
        self.unhealthy > 0 && self.wanted() <= self.live && self.healthy() < self.assigned
    }
}

/// One node: its placement target and a slot per hash (indexed like
/// [`Facts::hashes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub target: u32,
    pub slots: Vec<Slot>,
    pub leaving: u32,
}

impl NodeFacts {
    pub fn assigned(&self) -> u32 {
        self.slots.iter().map(|s| s.assigned).sum()
    }

    pub fn assigned_old(&self) -> u32 {
        self.slots.iter().skip(1).map(|s| s.assigned).sum()
    }

    pub fn projected(&self) -> u32 {
        self.slots.iter().map(Slot::projected).sum::<u32>() + self.leaving
    }

    pub fn kept_available(&self) -> u32 {
        self.slots.iter().map(Slot::kept_available).sum()
    }
}

/// Every registered node's counts. Invariant: `hashes[0]` is the hash being
/// rolled out (the target); every node has one slot per hash.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    pub hashes: Vec<String>,
    pub nodes: Vec<NodeFacts>,
    /// Nodes with an assignment that are not registered: their agents are
    /// gone, their assignments are dropped at once.
    pub lost: Vec<String>,
    /// The earliest moment a ready container becomes available (`minReady`).
    pub next_available: Option<SystemTime>,
}

/// A node's counts while they are gathered: name, target, (hash index,
/// slot) pairs, leaving containers.
type Gathered = (String, u32, Vec<(usize, Slot)>, u32);

/// What facts are built from.
pub struct Sources<'a> {
    pub target_hash: &'a str,
    pub target: &'a BTreeMap<String, u32>,
    pub current: &'a BTreeMap<String, Assignment>,
    pub observed: &'a BTreeMap<String, Arc<Observed>>,
    pub registered: &'a BTreeSet<String>,
    pub min_ready: Duration,
    pub now: SystemTime,
}

fn leaving(c: &ObservedContainer) -> bool {
    matches!(
        c.phase,
        ContainerPhase::Draining | ContainerPhase::Stopping | ContainerPhase::Stopped
    )
}

/// Whether a ready container counts as available, and if not yet, when.
fn availability(
    c: &ObservedContainer,
    min_ready: Duration,
    now: SystemTime,
) -> (bool, Option<SystemTime>) {
    if c.phase != ContainerPhase::Ready {
        return (false, None);
    }
    if min_ready.is_zero() {
        return (true, None);
    }
    let Some(since) = c
        .ready_since
        .as_deref()
        .and_then(crate::util::parse_rfc3339)
    else {
        return (false, None);
    };
    let at = since + min_ready;
    (at <= now, (at > now).then_some(at))
}

impl Facts {
    pub fn build(s: &Sources) -> Facts {
        let mut hashes: Vec<String> = vec![s.target_hash.to_string()];
        let mut index: BTreeMap<String, usize> = BTreeMap::from([(s.target_hash.to_string(), 0)]);
        let mut idx = |h: &str, hashes: &mut Vec<String>| -> usize {
            if let Some(&i) = index.get(h) {
                return i;
            }
            hashes.push(h.to_string());
            index.insert(h.to_string(), hashes.len() - 1);
            hashes.len() - 1
        };
        let mut names: BTreeSet<&String> = s.target.keys().collect();
        names.extend(s.current.keys());
        names.extend(s.observed.keys().filter(|n| s.registered.contains(*n)));
        let mut lost = Vec::new();
        let mut raw: Vec<Gathered> = Vec::new();
        let mut next_available: Option<SystemTime> = None;
        for name in names {
            if !s.registered.contains(name) {
                if s.current.contains_key(name) {
                    lost.push(name.clone());
                }
                continue;
            }
            let mut slots: Vec<(usize, Slot)> = Vec::new();
            let slot = |i: usize, slots: &mut Vec<(usize, Slot)>| -> usize {
                match slots.iter().position(|(j, _)| *j == i) {
                    Some(p) => p,
                    None => {
                        slots.push((i, Slot::default()));
                        slots.len() - 1
                    }
                }
            };
            if let Some(a) = s.current.get(name) {
                for r in &a.revisions {
                    let p = slot(idx(&r.hash, &mut hashes), &mut slots);
                    let sl = &mut slots[p].1;
                    sl.assigned += r.replicas;
                    sl.replacing += r.replacing;
                    sl.removing += r.removing;
                }
            }
            let mut left = 0;
            if let Some(o) = s.observed.get(name) {
                for c in &o.containers {
                    if leaving(c) {
                        left += 1;
                        continue;
                    }
                    let p = slot(idx(&c.hash, &mut hashes), &mut slots);
                    let (avail, at) = availability(c, s.min_ready, s.now);
                    let sl = &mut slots[p].1;
                    sl.live += 1;
                    let sick = c.phase == ContainerPhase::Unhealthy;
                    sl.unhealthy += u32::from(sick);
                    sl.available += u32::from(avail);
                    let evicting = c.evicting && !sick;
                    sl.evicting += u32::from(evicting);
                    sl.evicting_available += u32::from(evicting && avail);
                    if let Some(at) = at {
                        next_available = Some(next_available.map_or(at, |n| n.min(at)));
                    }
                }
            }
            let target = s.target.get(name).copied().unwrap_or(0);
            raw.push((name.clone(), target, slots, left));
        }
        let width = hashes.len();
        let nodes = raw
            .into_iter()
            .map(|(name, target, sparse, leaving)| {
                let mut slots = vec![Slot::default(); width];
                for (i, sl) in sparse {
                    slots[i] = sl;
                }
                NodeFacts {
                    name,
                    target,
                    slots,
                    leaving,
                }
            })
            .collect();
        Facts {
            hashes,
            nodes,
            lost,
            next_available,
        }
    }

    /// Sum over nodes of one slot field.
    pub fn sum(&self, i: usize, f: impl Fn(&Slot) -> u32) -> u32 {
        self.nodes.iter().map(|n| f(&n.slots[i])).sum()
    }

    pub fn projected(&self) -> u32 {
        self.nodes.iter().map(NodeFacts::projected).sum()
    }

    pub fn kept_available(&self) -> u32 {
        self.nodes.iter().map(NodeFacts::kept_available).sum()
    }

    /// Replicas of the target placed within each node's target.
    pub fn placed_target(&self) -> u32 {
        self.nodes
            .iter()
            .map(|n| n.slots[0].assigned.min(n.target))
            .sum()
    }

    pub fn assigned(&self) -> u32 {
        self.nodes.iter().map(NodeFacts::assigned).sum()
    }

    /// Whether every node runs exactly its target of the target hash,
    /// nothing else is assigned, exists or is leaving, and `desired` of the
    /// target are available.
    pub fn converged(&self, desired: u32) -> bool {
        self.lost.is_empty()
            && self.nodes.iter().all(|n| {
                n.slots[0].assigned == n.target
                    && n.leaving == 0
                    && n.slots
                        .iter()
                        .skip(1)
                        .all(|s| s.assigned == 0 && s.live == 0)
            })
            && self.sum(0, |s| s.available) >= desired
    }
}
