//! Properties of `place` over random nodes, specs and current counts.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::resource::component::Placement as PlacementSpec;

/// Names come from a small set so pins, current counts and nodes overlap
/// often; n8 and n9 are never generated as nodes, so they stand for nodes
/// gone or never registered.
fn name() -> impl Strategy<Value = String> {
    (0..10u8).prop_map(|i| format!("n{i}"))
}

fn nodes() -> impl Strategy<Value = Vec<NodeView>> {
    let node = (
        prop::bool::weighted(0.8),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.1),
        prop::option::of(prop::sample::select(vec!["a", "b"])),
    );
    prop::collection::btree_map(0..8u8, node, 0..8).prop_map(|m| {
        m.into_iter()
            .map(|(i, (ready, cordoned, draining, zone))| NodeView {
                name: format!("n{i}"),
                labels: zone
                    .map(|z| BTreeMap::from([("zone".to_owned(), z.to_owned())]))
                    .unwrap_or_default(),
                ready,
                cordoned,
                draining,
            })
            .collect()
    })
}

fn spec() -> impl Strategy<Value = PlacementSpec> {
    let count = prop_oneof![
        (0..20u32).prop_map(|n| (Some(n), None)),
        (1..4u32).prop_map(|k| (None, Some(k))),
        Just((None, None)),
    ];
    let pins = prop_oneof![Just(Vec::new()), prop::collection::vec(name(), 1..4),];
    (count, prop::bool::ANY, pins).prop_map(|((replicas, per_node), zoned, nodes)| PlacementSpec {
        replicas,
        per_node,
        node_selector: if zoned {
            BTreeMap::from([("zone".to_owned(), "a".to_owned())])
        } else {
            BTreeMap::new()
        },
        nodes,
    })
}

fn current() -> impl Strategy<Value = BTreeMap<String, u32>> {
    prop::collection::btree_map(name(), 0..8u32, 0..6)
}

/// Eligible names, and the names whose current replicas may stay (kept).
fn classes(spec: &PlacementSpec, nodes: &[NodeView]) -> (Vec<String>, Vec<String>) {
    let e = eligibility(spec, nodes);
    let of = |want: Result<(), Ineligible>| -> Vec<String> {
        e.iter()
            .filter(|(_, r)| *r == want)
            .map(|(n, _)| n.clone())
            .collect()
    };
    (of(Ok(())), of(Err(Ineligible::Cordoned)))
}

fn at(m: &BTreeMap<String, u32>, n: &str) -> u32 {
    m.get(n).copied().unwrap_or(0)
}

proptest! {
    // The minimal failing input is printed; no regression file is written
    // into the source tree.
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn placement_properties(spec in spec(), nodes in nodes(), current in current()) {
        let d = place(&spec, &nodes, &current);
        let (eligible, cordoned) = classes(&spec, &nodes);

        // Only eligible nodes get replicas, or a cordoned one keeps at most
        // what it runs now.
        for (n, &c) in &d.per_node {
            prop_assert!(c > 0);
            prop_assert!(
                eligible.contains(n) || (cordoned.contains(n) && c <= at(&current, n)),
                "{n}={c} is neither eligible nor kept"
            );
        }

        let on_eligible: Vec<u32> = eligible.iter().map(|n| at(&d.per_node, n)).collect();
        match spec.per_node {
            Some(k) => {
                prop_assert!(on_eligible.iter().all(|&c| c == k));
                if spec.nodes.is_empty() {
                    prop_assert_eq!(d.unschedulable.is_some(), d.per_node.is_empty());
                }
            }
            None => {
                let wanted = u64::from(spec.count());
                // Never more than wanted; all of it when a node is eligible,
                // and a message exactly when short.
                prop_assert!(d.total() <= wanted);
                if !eligible.is_empty() {
                    prop_assert_eq!(d.total(), wanted);
                }
                prop_assert_eq!(d.unschedulable.is_some(), d.total() < wanted);

                // Eligible nodes are balanced among themselves (kept
                // replicas on cordoned nodes only lower their total).
                if let (Some(max), Some(min)) = (on_eligible.iter().max(), on_eligible.iter().min()) {
                    prop_assert!(max - min <= 1, "unbalanced: {on_eligible:?}");
                }

                // Stability: balance leaves a choice only of which nodes
                // hold one more; those are the ones holding the most now
                // (ties: the earlier name), so no replica moves that
                // balance does not need.
                let before: Vec<u32> = eligible.iter().map(|n| at(&current, n)).collect();
                for i in 0..eligible.len() {
                    for j in 0..eligible.len() {
                        if on_eligible[i] > on_eligible[j] {
                            prop_assert!(
                                (before[i], j) > (before[j], i),
                                "{} holds more than {} but had {} < {}",
                                eligible[i], eligible[j], before[i], before[j]
                            );
                        }
                    }
                }

                // Kept replicas are the first to go: they only fill what
                // the eligible nodes' replicas leave of `wanted`.
                let kept_before: u64 = cordoned.iter().map(|n| u64::from(at(&current, n))).sum();
                let kept_now: u64 = cordoned.iter().map(|n| u64::from(at(&d.per_node, n))).sum();
                let eligible_before: u64 = before.iter().map(|&c| u64::from(c)).sum();
                prop_assert_eq!(kept_now, kept_before.min(wanted.saturating_sub(eligible_before)));
            }
        }

        // Idempotent: its own output as current changes nothing.
        prop_assert_eq!(&place(&spec, &nodes, &d.per_node), &d);

        // Deterministic whatever the order the nodes come in.
        let mut reversed = nodes.clone();
        reversed.reverse();
        prop_assert_eq!(&place(&spec, &reversed, &current), &d);
    }
}
