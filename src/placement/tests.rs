//! Table-driven tests of `place` and `eligibility`.
//!
//! Inputs are written compactly:
//! - spec: the YAML of `spec.placement`, e.g. `{replicas: 3, nodes: [n1]}`;
//! - nodes: `;`-separated, each a name then `k=v` labels and the flags
//!   `notready`, `cordoned`, `draining`, e.g. `n1 zone=a; n2 cordoned`;
//! - current and the expected counts: `n1=2 n2=1`; an expected
//!   `Unschedulable` message follows ` | `.

use std::collections::BTreeMap;

use super::*;
use crate::resource::component::Placement as PlacementSpec;

pub(super) fn spec(yaml: &str) -> PlacementSpec {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
}

fn nodes(text: &str) -> Vec<NodeView> {
    text.split(';')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            let mut words = n.split_whitespace();
            let mut node = NodeView {
                name: words.next().unwrap().into(),
                ready: true,
                ..NodeView::default()
            };
            for w in words {
                match w {
                    "notready" => node.ready = false,
                    "cordoned" => node.cordoned = true,
                    "draining" => node.draining = true,
                    _ => {
                        let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{w}?"));
                        node.labels.insert(k.into(), v.into());
                    }
                }
            }
            node
        })
        .collect()
}

fn counts(text: &str) -> BTreeMap<String, u32> {
    text.split_whitespace()
        .map(|w| {
            let (n, c) = w.split_once('=').unwrap();
            (n.into(), c.parse().unwrap())
        })
        .collect()
}

fn render(d: &Decision) -> String {
    let counts: Vec<String> = d.per_node.iter().map(|(n, c)| format!("{n}={c}")).collect();
    let counts = counts.join(" ");
    match &d.unschedulable {
        Some(why) => format!("{counts} | {why}").trim_start().into(),
        None => counts,
    }
}

/// `place(spec, nodes, current)` renders as `expected`.
#[track_caller]
fn check(spec_yaml: &str, node_list: &str, current: &str, expected: &str) {
    let got = render(&place(
        &spec(spec_yaml),
        &nodes(node_list),
        &counts(current),
    ));
    assert_eq!(
        got, expected,
        "\nspec: {spec_yaml}\nnodes: {node_list}\ncurrent: {current}"
    );
}

const N3: &str = "n1; n2; n3";

#[test]
fn even_spread() {
    check("{replicas: 3}", N3, "", "n1=1 n2=1 n3=1");
    check("{replicas: 4}", N3, "", "n1=2 n2=1 n3=1");
    check("{replicas: 2}", N3, "", "n1=1 n2=1");
    check("{replicas: 7}", "n1", "", "n1=7");
    // No replicas nor perNode: one replica.
    check("{}", N3, "", "n1=1");
    // The caller's node order does not matter.
    check("{replicas: 4}", "n3; n1; n2", "", "n1=2 n2=1 n3=1");
    // A name given twice counts once (the first wins).
    check("{replicas: 2}", "n1; n1 notready", "", "n1=2");
    check("{replicas: 0}", N3, "n1=2", "");
    check("{replicas: 0}", "", "", "");
    // Scaling up adds to the least-loaded, ties by name.
    check("{replicas: 5}", N3, "n1=1 n2=1 n3=1", "n1=2 n2=2 n3=1");
    check("{replicas: 4}", N3, "n1=1 n2=1 n3=2", "n1=1 n2=1 n3=2");
    // Scaling down removes from the most-loaded, the later name first.
    check("{replicas: 4}", N3, "n1=2 n2=2 n3=1", "n1=2 n2=1 n3=1");
    check("{replicas: 2}", N3, "n1=1 n2=1 n3=1", "n1=1 n2=1");
    check("{replicas: 1}", N3, "n1=1 n2=2 n3=2", "n2=1");
    // An uneven spread is evened out by the fewest moves.
    check("{replicas: 6}", N3, "n1=6", "n1=2 n2=2 n3=2");
    check("{replicas: 4}", N3, "n2=3 n3=1", "n1=1 n2=2 n3=1");
}

#[test]
fn selector() {
    let zones = "n1 zone=a; n2 zone=b; n3 zone=a disk=ssd";
    check(
        "{replicas: 3, nodeSelector: {zone: a}}",
        zones,
        "",
        "n1=2 n3=1",
    );
    check(
        "{replicas: 2, nodeSelector: {zone: a, disk: ssd}}",
        zones,
        "",
        "n3=2",
    );
    // A node whose labels stop matching loses its replicas to matching ones.
    check(
        "{replicas: 2, nodeSelector: {zone: a}}",
        zones,
        "n1=1 n2=1",
        "n1=1 n3=1",
    );
    check(
        "{replicas: 2, nodeSelector: {zone: b}}",
        "n1 zone=a; n2 zone=a; n3",
        "",
        "| no node matches nodeSelector zone=b (3 nodes: n1, n2, n3)",
    );
    check(
        "{replicas: 2, nodeSelector: {zone: b, disk: ssd}}",
        "n1 zone=b; n2; n3; n4; n5; n6; n7",
        "",
        "| no node matches nodeSelector disk=ssd,zone=b (7 nodes: n1, n2, n3, n4, n5, ...)",
    );
    check(
        "{perNode: 1, nodeSelector: {zone: b}}",
        "n1 zone=a",
        "",
        "| no node matches nodeSelector zone=b (1 node: n1)",
    );
}

#[test]
fn pins() {
    // replicas with pins spread N over the pinned nodes, not N on each.
    check("{replicas: 3, nodes: [n1, n3]}", N3, "", "n1=2 n3=1");
    check("{replicas: 1, nodes: [n3]}", N3, "", "n3=1");
    check("{replicas: 2, nodes: [n2, n2]}", N3, "", "n2=2");
    // A pin that cannot be used is no reason while another pin can.
    check("{replicas: 2, nodes: [n1, n9]}", N3, "", "n1=2");
    check(
        "{replicas: 3, nodes: [n1, n3]}",
        "n1; n2; n3 notready",
        "n1=1 n3=2",
        "n1=3",
    );
    // perNode with pins: K on each pinned node.
    check("{perNode: 2, nodes: [n1, n2]}", N3, "", "n1=2 n2=2");
    check(
        "{perNode: 2, nodes: [n1, n9]}",
        N3,
        "",
        "n1=2 | pinned node n9 is not registered; 2 of 4 replicas placed",
    );
    // Pins and selector must both hold.
    check(
        "{replicas: 2, nodes: [n1, n2], nodeSelector: {zone: a}}",
        "n1 zone=a; n2 zone=b; n3 zone=a",
        "",
        "n1=2",
    );
}

#[test]
fn per_node() {
    check("{perNode: 1}", N3, "", "n1=1 n2=1 n3=1");
    check("{perNode: 2}", "n1; n2 notready; n3 draining", "", "n1=2");
    // Current counts do not change perNode's target on eligible nodes.
    check("{perNode: 2}", N3, "n1=5 n2=1", "n1=2 n2=2 n3=2");
    check(
        "{perNode: 1, nodeSelector: {zone: a}}",
        "n1 zone=a; n2",
        "",
        "n1=1",
    );
    // A cordoned node keeps what it runs, up to K, and gets no new one.
    check(
        "{perNode: 2}",
        "n1; n2 cordoned; n3 cordoned; n4 cordoned",
        "n2=1 n3=3",
        "n1=2 n2=1 n3=2",
    );
    check("{perNode: 1}", "n1 cordoned; n2 cordoned", "n1=1", "n1=1");
    check(
        "{perNode: 1}",
        "n1 cordoned; n2 cordoned",
        "",
        "| all 2 nodes are cordoned",
    );
}

#[test]
fn node_joins_without_reshuffle() {
    let n4 = "n1; n2; n3; n4";
    check("{replicas: 3}", n4, "n1=1 n2=1 n3=1", "n1=1 n2=1 n3=1");
    // Only an unevenness of more than one moves replicas, and then the
    // fewest, from the most-loaded (the later name first).
    check("{replicas: 5}", n4, "n1=2 n2=2 n3=1", "n1=2 n2=1 n3=1 n4=1");
    check("{replicas: 6}", n4, "n1=2 n2=2 n3=2", "n1=2 n2=2 n3=1 n4=1");
    check("{replicas: 4}", n4, "n1=2 n2=1 n3=1", "n1=1 n2=1 n3=1 n4=1");
    // Scaling up after the join fills the new node first.
    check("{replicas: 4}", n4, "n1=1 n2=1 n3=1", "n1=1 n2=1 n3=1 n4=1");
}

#[test]
fn node_lost() {
    // A NotReady node's replicas go to the least-loaded; nothing else moves.
    check(
        "{replicas: 4}",
        "n1; n2 notready; n3; n4",
        "n1=1 n2=1 n3=1 n4=1",
        "n1=2 n3=1 n4=1",
    );
    check(
        "{replicas: 6}",
        "n1; n2 notready; n3; n4",
        "n1=2 n2=2 n3=1 n4=1",
        "n1=2 n3=2 n4=2",
    );
    // A node no longer registered at all: the same.
    check("{replicas: 3}", N3, "n1=1 n2=1 n9=1", "n1=1 n2=1 n3=1");
    // When it comes back, balance takes one back from the most-loaded.
    check(
        "{replicas: 4}",
        "n1; n2; n3; n4",
        "n1=2 n3=1 n4=1",
        "n1=1 n2=1 n3=1 n4=1",
    );
    check(
        "{replicas: 2}",
        "n1 notready",
        "n1=2",
        "| the only node, n1, is not ready",
    );
}

#[test]
fn cordoned() {
    let c = "n1; n2 cordoned; n3";
    // Running replicas stay and count toward replicas.
    check("{replicas: 3}", c, "n1=1 n2=1 n3=1", "n1=1 n2=1 n3=1");
    check("{replicas: 3}", c, "n2=3", "n2=3");
    // New ones go elsewhere.
    check("{replicas: 3}", c, "", "n1=2 n3=1");
    check("{replicas: 5}", c, "n1=1 n2=1 n3=1", "n1=2 n2=1 n3=2");
    // Scaling down takes from the cordoned node first.
    check("{replicas: 2}", c, "n1=1 n2=1 n3=1", "n1=1 n3=1");
    check("{replicas: 4}", c, "n1=1 n2=2 n3=1", "n1=1 n2=2 n3=1");
    check("{replicas: 3}", c, "n1=1 n2=2 n3=1", "n1=1 n2=1 n3=1");
    check(
        "{replicas: 3}",
        "n1; n2 cordoned; n3 cordoned",
        "n2=2 n3=2",
        "n2=2 n3=1",
    );
    // Cordoned and NotReady, or no longer matching: moved like any other.
    check(
        "{replicas: 3}",
        "n1; n2 cordoned notready; n3",
        "n1=1 n2=1 n3=1",
        "n1=2 n3=1",
    );
    check(
        "{replicas: 2, nodeSelector: {zone: a}}",
        "n1 zone=a; n2 cordoned zone=b",
        "n1=1 n2=1",
        "n1=2",
    );
    // All cordoned: enough kept is fine, too few is said.
    check(
        "{replicas: 2}",
        "n1 cordoned; n2 cordoned",
        "n1=1 n2=1",
        "n1=1 n2=1",
    );
    check(
        "{replicas: 3}",
        "n1 cordoned; n2 cordoned; n3 cordoned",
        "n2=1",
        "n2=1 | all 3 nodes are cordoned; 1 of 3 replicas placed",
    );
}

#[test]
fn draining() {
    // A drain moves replicas, whether or not the node is also cordoned.
    check(
        "{replicas: 3}",
        "n1; n2 cordoned draining; n3",
        "n1=1 n2=1 n3=1",
        "n1=2 n3=1",
    );
    check("{replicas: 2}", "n1; n2 draining", "n1=1 n2=1", "n1=2");
    check(
        "{perNode: 1}",
        "n1 draining; n2 draining",
        "n1=1 n2=1",
        "| all 2 nodes are draining",
    );
}

#[test]
fn unschedulable_messages() {
    check("{replicas: 1}", "", "", "| no node is registered");
    check("{perNode: 1}", "", "", "| no node is registered");
    check(
        "{replicas: 2, nodeSelector: {zone: a}}",
        "n1 zone=a cordoned; n2 zone=a cordoned; n3 zone=a cordoned; n4",
        "",
        "| all 3 matching nodes are cordoned",
    );
    check(
        "{replicas: 2}",
        "n1 notready; n2 notready",
        "",
        "| all 2 nodes are not ready",
    );
    check(
        "{replicas: 2, nodeSelector: {zone: a}}",
        "n1 zone=a draining; n2",
        "",
        "| the only matching node, n1, is draining",
    );
    check(
        "{replicas: 2}",
        "n1 notready; n2 draining cordoned; n3 cordoned; n4 notready cordoned",
        "",
        "| none of the 4 nodes is eligible: 2 not ready, 1 draining, 1 cordoned",
    );
    check(
        "{replicas: 2, nodes: [n9]}",
        N3,
        "",
        "| pinned node n9 is not registered",
    );
    check(
        "{replicas: 2, nodes: [n9, n2, n1, n3], nodeSelector: {zone: a}}",
        "n1 notready zone=a; n2 zone=b; n3 zone=a draining; n4 zone=a",
        "",
        "| pinned node n1 is not ready; pinned node n2 does not match nodeSelector zone=a; \
         pinned node n3 is draining; pinned node n9 is not registered",
    );
    check(
        "{replicas: 3, nodes: [n1, n2]}",
        "n1 cordoned; n2 cordoned",
        "n1=1",
        "n1=1 | pinned node n1 is cordoned; pinned node n2 is cordoned; 1 of 3 replicas placed",
    );
    check(
        "{perNode: 2, nodes: [n1, n2, n3]}",
        "n1; n2 cordoned; n3 notready",
        "n2=1",
        "n1=2 n2=1 | pinned node n2 is cordoned; pinned node n3 is not ready; 3 of 6 replicas placed",
    );
}

#[test]
fn eligibility_reasons() {
    let placement = spec("{nodeSelector: {disk: ssd, zone: a}, nodes: [n1, n2, n3, n4, n5, n6]}");
    let nodes = nodes(
        "n7 zone=a disk=ssd; n6 zone=a disk=ssd cordoned; n5 zone=a disk=ssd draining cordoned; \
         n4 zone=a disk=ssd notready draining; n3 zone=a notready; n2 zone=b disk=ssd; \
         n1 zone=a disk=ssd",
    );
    let got: Vec<String> = eligibility(&placement, &nodes)
        .into_iter()
        .map(|(n, r)| match r {
            Ok(()) => format!("{n}: eligible"),
            Err(why) => format!("{n}: {why}"),
        })
        .collect();
    assert_eq!(
        got,
        [
            "n1: eligible",
            "n2: does not match nodeSelector key zone",
            "n3: does not match nodeSelector key disk",
            "n4: not ready",
            "n5: draining",
            "n6: cordoned",
            "n7: not in placement.nodes",
        ]
    );
    assert_eq!(
        eligibility(&placement, &nodes)[1].1,
        Err(Ineligible::SelectorMismatch { key: "zone".into() })
    );
    let pinned = spec("{nodes: [n9, n1, n8, n9]}");
    assert_eq!(unknown_pins(&pinned, &nodes), ["n8", "n9"]);
}
