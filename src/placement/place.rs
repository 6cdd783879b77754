//! Placing one component: the target count per node.

use std::collections::BTreeMap;

use super::eligibility::{check, pins, Ineligible};
use super::message;
use super::node::by_name;
use super::spread::{spread, trim};
use super::NodeView;
use crate::resource::component::Placement as PlacementSpec;

/// The result of placing one component.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Decision {
    /// Replicas per node (only nodes with > 0). This is the target; the
    /// caller diffs it against what is assigned.
    pub per_node: BTreeMap<String, u32>,
    /// Set when fewer replicas were placed than wanted; a human message that
    /// says why.
    pub unschedulable: Option<String>,
}

impl Decision {
    /// Replicas placed over all nodes.
    pub fn total(&self) -> u64 {
        self.per_node.values().map(|&c| u64::from(c)).sum()
    }
}

/// Places `spec` over `nodes`, given `current` (replicas per node assigned
/// now, any node, eligible or not).
///
/// Replicas on eligible nodes stay unless balance needs them to move.
/// Replicas on a *kept* node (cordoned, but Ready, not draining and still
/// matching pins and selector) stay too and count toward `replicas`: a cordon
/// stops new replicas, it does not evict; on scale-down they are the first to
/// go, since the operator is emptying that node. Replicas anywhere else (a
/// node NotReady, draining, no longer matching, or gone) are placed again on
/// eligible nodes; the caller keeps or drains the old ones. Feeding the result
/// back as `current` gives the same result.
pub fn place(
    spec: &PlacementSpec,
    nodes: &[NodeView],
    current: &BTreeMap<String, u32>,
) -> Decision {
    let nodes = by_name(nodes);
    let checks: Vec<Result<(), Ineligible>> = nodes.iter().map(|n| check(spec, n)).collect();
    let now = |i: usize| current.get(&nodes[i].name).copied().unwrap_or(0);
    let eligible: Vec<usize> = (0..nodes.len()).filter(|&i| checks[i].is_ok()).collect();
    let kept: Vec<usize> = (0..nodes.len())
        .filter(|&i| checks[i] == Err(Ineligible::Cordoned) && now(i) > 0)
        .collect();

    let mut per_node = BTreeMap::new();
    let mut put = |i: usize, count: u32| {
        if count > 0 {
            per_node.insert(nodes[i].name.clone(), count);
        }
    };
    // When short: the pins that fall short (all of them when any do), and
    // the replicas wanted, for the message.
    let short: Option<(Vec<&str>, u64)> = match spec.per_node {
        Some(k) => {
            for &i in &eligible {
                put(i, k);
            }
            for &i in &kept {
                put(i, now(i).min(k));
            }
            if spec.nodes.is_empty() {
                // "On every eligible node": short only when that is nowhere
                // and nothing is kept either.
                (k > 0 && per_node.is_empty()).then(|| (Vec::new(), u64::from(k)))
            } else {
                // Each named node must run K.
                let short: Vec<&str> = pins(spec)
                    .into_iter()
                    .filter(|p| per_node.get(*p).copied().unwrap_or(0) < k)
                    .collect();
                let wanted = u64::from(k) * pins(spec).len() as u64;
                (!short.is_empty()).then_some((short, wanted))
            }
        }
        None => {
            let wanted = spec.count();
            let eligible_now: Vec<u32> = eligible.iter().map(|&i| now(i)).collect();
            // Kept replicas are the first to go on scale-down: they may fill
            // only what the eligible nodes' replicas leave of `wanted`.
            let on_eligible: u64 = eligible_now.iter().map(|&c| u64::from(c)).sum();
            let budget = u64::from(wanted).saturating_sub(on_eligible) as u32;
            let kept_now: Vec<u32> = kept.iter().map(|&i| now(i)).collect();
            let kept_counts = trim(&kept_now, budget);
            let rest = wanted - kept_counts.iter().sum::<u32>();
            for (&i, count) in kept.iter().zip(kept_counts) {
                put(i, count);
            }
            for (&i, count) in eligible.iter().zip(spread(&eligible_now, rest)) {
                put(i, count);
            }
            // Short only when no node is eligible; then every pin is a reason.
            (rest > 0 && eligible.is_empty())
                .then(|| (pins(spec).into_iter().collect(), u64::from(wanted)))
        }
    };

    let mut decision = Decision {
        per_node,
        unschedulable: None,
    };
    if let Some((short_pins, wanted)) = short {
        let placed = decision.total();
        decision.unschedulable = Some(message::unschedulable(
            spec,
            &nodes,
            &checks,
            &short_pins,
            placed,
            wanted,
        ));
    }
    decision
}
