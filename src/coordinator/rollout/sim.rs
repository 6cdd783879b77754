//! A **simulation** of a cluster for the engine's tests: nodes whose
//! simulated agents follow the real agent's rules (`agent::plan`) closely
//! enough to check the budgets, with images that become ready after a few
//! ticks, never, or crash. Time is a tick counter (one tick = one second);
//! nothing here touches Docker, etcd or the clock.
//!
//! The simulated agent, per tick: each revision keeps its wanted count
//! (`replicas + replacing - removing`), ready containers first, evicted
//! ones after the others, unhealthy ones last; surplus containers that
//! serve nothing (starting, exited, unhealthy) leave at once; missing slots
//! start (newest revision first) while the node's live containers stay
//! within its wanted total + 1 (the swap in place the engine counts); a
//! ready surplus container leaves only while the ready containers that stay
//! number at least the assignment's replicas less its `removing`. An
//! unhealthy container is never replaced by the agent alone.
//! Leaving containers drain for `drain_ticks`. A container starting for
//! `ready_timeout` ticks turns `Unhealthy`, and [`Sim::sicken`] makes a
//! ready one so (health checks failing; sticky, as in the agent).
//! [`Sim::evict`] marks a container evicted: it keeps serving in its slot,
//! is the first ready one of its revision to leave when the count drops,
//! and leaves at once (uncovered) when `removing` takes it away.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{step, Input, Output, Rev, Spec};
use crate::placement::{self, NodeView};
use crate::resource::component::{Placement, Rollout, RolloutStatus, State, Template};
use crate::resource::observed::{ContainerPhase, ObservedContainer};
use crate::resource::{Assignment, Observed};

/// How a simulated image behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Image {
    /// Ready this many ticks after its start.
    Ready(u32),
    NeverReady,
    /// Exits with code 1 a tick after every start.
    Crash,
}

#[derive(Clone, Debug)]
struct Ctr {
    id: u64,
    hash: String,
    revision: u64,
    phase: ContainerPhase,
    age: u32,
    restarts: u32,
    ready_since: Option<u64>,
    /// Ticks left while leaving.
    leaving: Option<u32>,
    /// Evicted by an administrator ([`Sim::evict`]).
    evicting: bool,
}

#[derive(Clone, Debug, Default)]
pub struct SimNode {
    pub registered: bool,
    pub assignment: Option<Assignment>,
    ctrs: Vec<Ctr>,
}

/// The simulated cluster and the engine's memory.
pub struct Sim {
    pub t: u64,
    pub nodes: BTreeMap<String, SimNode>,
    pub images: BTreeMap<String, Image>,
    pub revs: Vec<Rev>,
    pub replicas: u32,
    pub rollout: Rollout,
    pub promoted: Option<u64>,
    pub status: Option<RolloutStatus>,
    pub drain_ticks: u32,
    /// Ticks a container may stay starting before it counts as unhealthy.
    pub ready_timeout: u32,
    next_id: u64,
    pub last: Option<Output>,
}

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A template for image `name` (its hash names the revision).
pub fn template(name: &str) -> Template {
    Template {
        image: name.to_string(),
        ..Default::default()
    }
}

impl Sim {
    pub fn new(nodes: usize, replicas: u32, rollout: Rollout) -> Sim {
        let nodes = (0..nodes)
            .map(|i| {
                let n = SimNode {
                    registered: true,
                    ..Default::default()
                };
                (format!("n{i}"), n)
            })
            .collect();
        Sim {
            t: 0,
            nodes,
            images: BTreeMap::new(),
            revs: Vec::new(),
            replicas,
            rollout,
            promoted: None,
            status: None,
            drain_ticks: 1,
            ready_timeout: 8,
            next_id: 0,
            last: None,
        }
    }

    pub fn now(&self) -> SystemTime {
        t0() + Duration::from_secs(self.t)
    }

    /// Applies a new revision of image `name` behaving as `image`.
    pub fn apply(&mut self, name: &str, image: Image) -> u64 {
        let t = template(name);
        let number = self.revs.iter().map(|r| r.number).max().unwrap_or(0) + 1;
        self.images.insert(t.hash(), image);
        self.revs.push(Rev {
            number,
            hash: t.hash(),
            template: t,
        });
        number
    }

    pub fn spec_rev(&self) -> Option<&Rev> {
        self.revs.last()
    }

    pub fn registered(&self) -> BTreeSet<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.registered)
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub fn observed(&self) -> BTreeMap<String, Arc<Observed>> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.registered)
            .map(|(name, n)| {
                let containers = n
                    .ctrs
                    .iter()
                    .map(|c| ObservedContainer {
                        id: c.id.to_string(),
                        name: format!("c{}", c.id),
                        revision: c.revision,
                        hash: c.hash.clone(),
                        phase: c.phase,
                        restarts: c.restarts,
                        last_exit_code: (c.restarts > 0).then_some(1),
                        ready_since: c
                            .ready_since
                            .map(|s| super::state::stamp(t0() + Duration::from_secs(s))),
                        evicting: c.evicting,
                        ..Default::default()
                    })
                    .collect();
                let o = Observed {
                    node: name.clone(),
                    containers,
                    ..Default::default()
                };
                (name.clone(), Arc::new(o))
            })
            .collect()
    }

    /// Runs the engine once and applies its assignments.
    pub fn engine(&mut self) -> Output {
        self.decide(step)
    }

    /// The engine's input as it stands, to `f` (the engine or a timer).
    fn decide(&mut self, f: impl FnOnce(&Input) -> Output) -> Output {
        let Some(rev) = self.spec_rev().cloned() else {
            panic!("the simulation needs a revision first");
        };
        let views: Vec<NodeView> = self
            .nodes
            .iter()
            .map(|(name, n)| NodeView {
                name: name.clone(),
                labels: BTreeMap::new(),
                ready: n.registered,
                cordoned: false,
                draining: false,
            })
            .collect();
        let current: BTreeMap<String, Assignment> = self
            .nodes
            .iter()
            .filter_map(|(k, n)| Some((k.clone(), n.assignment.clone()?)))
            .collect();
        let counts = current
            .iter()
            .map(|(k, a)| (k.clone(), a.replicas()))
            .collect();
        let p = Placement {
            replicas: Some(self.replicas),
            ..Default::default()
        };
        let decision = placement::place(&p, &views, &counts);
        let desired = decision.per_node.values().sum();
        let observed = self.observed();
        let registered = self.registered();
        let known: Vec<Rev> = self.revs.clone();
        let input = Input {
            spec: Spec {
                generation: 1,
                state: State::Running,
                rollout: &self.rollout,
                desired,
                promoted: self.promoted,
            },
            revision: &rev,
            known: &known,
            target: &decision.per_node,
            unschedulable: decision.unschedulable.as_deref(),
            current: &current,
            observed: &observed,
            registered: &registered,
            now: self.now(),
            prev: self.status.as_ref(),
        };
        let out = f(&input);
        for (name, n) in self.nodes.iter_mut() {
            n.assignment = out.assignments.get(name).cloned();
        }
        self.status = out.rollout.clone();
        self.last = Some(out.clone());
        out
    }

    /// Times `runs` steps on the same input (nothing is applied but the
    /// last); returns the fastest and the median.
    pub fn time_step(&mut self, runs: usize) -> (Duration, Duration) {
        let mut times = Vec::with_capacity(runs);
        self.decide(|input| {
            let mut last = None;
            for _ in 0..runs {
                let start = std::time::Instant::now();
                last = Some(step(input));
                times.push(start.elapsed());
            }
            last.unwrap_or_else(|| step(input))
        });
        times.sort();
        (times[0], times[times.len() / 2])
    }

    /// One agent pass on `node`.
    pub fn agent(&mut self, node: &str) {
        let t = self.t;
        let drain = self.drain_ticks;
        let ready_timeout = self.ready_timeout;
        let images = self.images.clone();
        let mut next_id = self.next_id;
        let Some(n) = self.nodes.get_mut(node).filter(|n| n.registered) else {
            return;
        };
        let wanted: Vec<(u64, String, u32)> = n
            .assignment
            .as_ref()
            .map(|a| {
                a.revisions
                    .iter()
                    .map(|r| (r.revision, r.hash.clone(), r.wanted()))
                    .collect()
            })
            .unwrap_or_default();
        let mut uncovered: BTreeMap<String, u32> = n
            .assignment
            .iter()
            .flat_map(|a| a.revisions.iter())
            .map(|r| (r.hash.clone(), r.removing))
            .collect();
        let total: u32 = wanted.iter().map(|w| w.2).sum();
        let replicas = n.assignment.as_ref().map_or(0, Assignment::covered);
        // Which live containers fill a slot: per hash, ready ones first
        // (evicted ones after the others), unhealthy ones last.
        let mut keep: BTreeSet<u64> = BTreeSet::new();
        for (_, hash, count) in &wanted {
            let mut mine: Vec<&Ctr> = n
                .ctrs
                .iter()
                .filter(|c| c.leaving.is_none() && &c.hash == hash)
                .collect();
            mine.sort_by_key(|c| {
                (
                    c.phase == ContainerPhase::Unhealthy,
                    c.evicting,
                    c.phase != ContainerPhase::Ready,
                    c.id,
                )
            });
            keep.extend(mine.iter().take(*count as usize).map(|c| c.id));
        }
        // Surplus serving nothing: leaves at once.
        for c in n.ctrs.iter_mut() {
            if c.leaving.is_none() && !keep.contains(&c.id) && c.phase != ContainerPhase::Ready {
                if let Some(u) = uncovered.get_mut(&c.hash) {
                    *u = u.saturating_sub(1);
                }
                c.leaving = Some(drain);
                c.phase = if c.phase == ContainerPhase::Unhealthy {
                    ContainerPhase::Draining
                } else {
                    ContainerPhase::Stopping
                };
            }
        }
        // Missing slots, newest revision first, within total + 1.
        for (revision, hash, count) in wanted.iter().rev() {
            loop {
                let live = n.ctrs.iter().filter(|c| c.leaving.is_none()).count() as u32;
                let have = n
                    .ctrs
                    .iter()
                    .filter(|c| c.leaving.is_none() && &c.hash == hash)
                    .count() as u32;
                if have >= *count || live > total {
                    break;
                }
                next_id += 1;
                keep.insert(next_id);
                n.ctrs.push(Ctr {
                    id: next_id,
                    hash: hash.clone(),
                    revision: *revision,
                    phase: ContainerPhase::Starting,
                    age: 0,
                    restarts: 0,
                    ready_since: None,
                    leaving: None,
                    evicting: false,
                });
            }
        }
        // Evicted ready surplus the coordinator took away (`removing`
        // beyond what served nothing): at once, uncovered.
        for c in n.ctrs.iter_mut() {
            let u = uncovered.get_mut(&c.hash);
            if let Some(u) = u.filter(|u| **u > 0) {
                if c.leaving.is_none() && c.evicting && !keep.contains(&c.id) {
                    *u -= 1;
                    c.leaving = Some(drain);
                    c.phase = ContainerPhase::Draining;
                }
            }
        }
        // Ready surplus: one at a time while the ready that stay cover the
        // total, evicted ones first.
        loop {
            let ready = n
                .ctrs
                .iter()
                .filter(|c| c.leaving.is_none() && c.phase == ContainerPhase::Ready)
                .count() as u32;
            let Some(c) = n
                .ctrs
                .iter_mut()
                .filter(|c| c.leaving.is_none() && !keep.contains(&c.id))
                .min_by_key(|c| (!c.evicting, c.revision, c.id))
            else {
                break;
            };
            if ready.saturating_sub(1) < replicas {
                break;
            }
            c.leaving = Some(drain);
            c.phase = ContainerPhase::Draining;
        }
        // Time passes for this node's containers.
        for c in n.ctrs.iter_mut() {
            if let Some(left) = c.leaving.as_mut() {
                *left = left.saturating_sub(1);
                continue;
            }
            c.age += 1;
            let image = images.get(&c.hash).copied().unwrap_or(Image::Ready(1));
            match (image, c.phase) {
                (_, ContainerPhase::Starting) if c.age > ready_timeout => {
                    c.phase = ContainerPhase::Unhealthy;
                }
                (Image::Ready(k), ContainerPhase::Starting) if c.age >= k => {
                    c.phase = ContainerPhase::Ready;
                    c.ready_since = Some(t);
                }
                (Image::Crash, ContainerPhase::Starting) => {
                    c.phase = if c.restarts >= 1 {
                        ContainerPhase::CrashLoop
                    } else {
                        ContainerPhase::Exited
                    };
                    c.restarts += 1;
                }
                (Image::Crash, ContainerPhase::Exited | ContainerPhase::CrashLoop) => {
                    // Restarted: its readyTimeout counts from here.
                    c.phase = ContainerPhase::Starting;
                    c.age = 0;
                }
                _ => {}
            }
        }
        n.ctrs.retain(|c| c.leaving != Some(0));
        self.next_id = next_id;
    }

    /// One line per node: assignment and containers (for debugging).
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (name, n) in &self.nodes {
            let a: Vec<String> = n
                .assignment
                .iter()
                .flat_map(|a| a.revisions.iter())
                .map(|r| {
                    format!(
                        "r{}x{}+{}-{}",
                        r.revision, r.replicas, r.replacing, r.removing
                    )
                })
                .collect();
            let c: Vec<String> = n
                .ctrs
                .iter()
                .map(|c| {
                    let l = if c.leaving.is_some() { "L" } else { "" };
                    let e = if c.evicting { "E" } else { "" };
                    format!("r{}:{}{l}{e}@{:?}", c.revision, c.phase, c.ready_since)
                })
                .collect();
            out.push_str(&format!("{name}[{}] {:?} {:?}\n", n.registered, a, c));
        }
        out
    }

    /// Every container, leaving ones included.
    pub fn containers(&self) -> u32 {
        self.nodes
            .values()
            .filter(|n| n.registered)
            .map(|n| n.ctrs.len() as u32)
            .sum()
    }

    /// Ready for at least `minReady`, not leaving, any revision.
    pub fn available(&self) -> u32 {
        let min_ready = self.rollout.min_ready.map_or(0, |d| d.std().as_secs());
        self.nodes
            .values()
            .filter(|n| n.registered)
            .flat_map(|n| n.ctrs.iter())
            .filter(|c| c.leaving.is_none() && c.phase == ContainerPhase::Ready)
            .filter(|c| c.ready_since.is_some_and(|s| s + min_ready <= self.t))
            .count() as u32
    }

    /// Available replicas the assignments in force keep: per node and
    /// revision, the fewer of assigned and available.
    pub fn kept_available(&self) -> u32 {
        let min_ready = self.rollout.min_ready.map_or(0, |d| d.std().as_secs());
        let mut kept = 0;
        for n in self.nodes.values().filter(|n| n.registered) {
            for r in n.assignment.iter().flat_map(|a| a.revisions.iter()) {
                let available = n
                    .ctrs
                    .iter()
                    .filter(|c| c.leaving.is_none() && c.hash == r.hash)
                    .filter(|c| c.phase == ContainerPhase::Ready)
                    .filter(|c| c.ready_since.is_some_and(|s| s + min_ready <= self.t))
                    .count() as u32;
                kept += available.min(r.replicas);
            }
        }
        kept
    }

    /// Containers of `hash` (leaving ones excluded).
    pub fn running(&self, hash: &str) -> u32 {
        self.nodes
            .values()
            .filter(|n| n.registered)
            .flat_map(|n| n.ctrs.iter())
            .filter(|c| c.leaving.is_none() && c.hash == hash)
            .count() as u32
    }

    /// The health checks of the `nth` ready container on `node` (in id
    /// order, wrapping) start failing; false if it has none.
    pub fn sicken(&mut self, node: &str, nth: usize) -> bool {
        let Some(n) = self.nodes.get_mut(node).filter(|n| n.registered) else {
            return false;
        };
        let ready: Vec<usize> = (0..n.ctrs.len())
            .filter(|&i| n.ctrs[i].leaving.is_none() && n.ctrs[i].phase == ContainerPhase::Ready)
            .collect();
        let Some(&i) = ready.get(nth % ready.len().max(1)) else {
            return false;
        };
        n.ctrs[i].phase = ContainerPhase::Unhealthy;
        n.ctrs[i].ready_since = None;
        true
    }

    /// An administrator evicts the `nth` live container on `node` (in id
    /// order, wrapping); false if it has none.
    pub fn evict(&mut self, node: &str, nth: usize) -> bool {
        let Some(n) = self.nodes.get_mut(node).filter(|n| n.registered) else {
            return false;
        };
        let live: Vec<usize> = (0..n.ctrs.len())
            .filter(|&i| n.ctrs[i].leaving.is_none())
            .collect();
        let Some(&i) = live.get(nth % live.len().max(1)) else {
            return false;
        };
        n.ctrs[i].evicting = true;
        true
    }

    /// Live evicted containers.
    pub fn evicting(&self) -> u32 {
        self.nodes
            .values()
            .filter(|n| n.registered)
            .flat_map(|n| n.ctrs.iter())
            .filter(|c| c.leaving.is_none() && c.evicting)
            .count() as u32
    }

    /// Live unhealthy containers.
    pub fn unhealthy(&self) -> u32 {
        self.nodes
            .values()
            .filter(|n| n.registered)
            .flat_map(|n| n.ctrs.iter())
            .filter(|c| c.leaving.is_none() && c.phase == ContainerPhase::Unhealthy)
            .count() as u32
    }

    /// A node's agent is gone: its containers are gone from the picture.
    pub fn lose(&mut self, node: &str) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.registered = false;
            n.ctrs.clear();
        }
    }

    /// Ticks: every agent, then the engine, `n` times.
    pub fn run(&mut self, n: u32) {
        for _ in 0..n {
            self.tick_all();
        }
    }

    pub fn tick_all(&mut self) {
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for name in names {
            self.agent(&name);
        }
        self.engine();
        self.t += 1;
    }

    pub fn phase(&self) -> Option<crate::resource::component::RolloutPhase> {
        self.status.as_ref().map(|s| s.phase)
    }
}
