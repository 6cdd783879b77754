//! Placement: which nodes run how many replicas of a component. Pure: no
//! etcd, no Docker. Shared by the coordinator and the CLI (`describe`).
//!
//! A node is *eligible* when it is named in `placement.nodes` (if pins are
//! given), its labels match `nodeSelector`, it is Ready, and it is neither
//! draining nor cordoned ([`eligibility`]). `replicas: N` spreads N over the
//! eligible nodes, pinned or not (pins narrow the set; they never multiply N);
//! `perNode: K` puts K on every eligible node.
//!
//! [`place`] is stable: it starts from what is assigned now and moves a
//! replica only for a reason (its node became ineligible, or the spread is
//! uneven by more than one). A cordon means "no new replicas": replicas already
//! on a cordoned node that is Ready and not draining stay and count toward N.
//! A drain, a lost node (NotReady) or a label change moves them.

mod eligibility;
mod message;
mod node;
mod place;
mod spread;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use eligibility::{eligibility, unknown_pins, Ineligible};
pub use node::NodeView;
pub use place::{place, Decision};
