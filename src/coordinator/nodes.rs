//! Node lifecycle: the coordinator's record of every node (`status/node/`),
//! kept after the agent's lease lapses so the node is listed as `NotReady`
//! (with when it was last seen) until `berth delete node`.

use crate::resource::{Node, NodePhase, NodeRecord};

/// The record a node should have, or `None` when `old` is still right.
/// `now` is RFC 3339.
pub fn record(
    registration: Option<&Node>,
    old: Option<&NodeRecord>,
    now: &str,
) -> Option<NodeRecord> {
    let mut new = old.cloned().unwrap_or_default();
    match registration {
        Some(node) => {
            let status = node.status.clone().unwrap_or_default();
            new.phase = NodePhase::Ready;
            new.address = status.address;
            new.labels = status.labels;
            new.first_seen = new
                .first_seen
                .or_else(|| node.metadata.creation_timestamp.clone())
                .or_else(|| Some(now.to_string()));
        }
        None => {
            let old = old?; // never seen registered: nothing to record
            if old.phase == NodePhase::NotReady {
                return None;
            }
            new.phase = NodePhase::NotReady;
            new.last_seen = Some(now.to_string());
        }
    }
    if old.is_some_and(|o| o.phase == new.phase) {
        new.since = old.and_then(|o| o.since.clone());
    } else {
        new.since = Some(now.to_string());
    }
    (old != Some(&new)).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{NodeStatus, ObjectMeta};

    fn node(address: &str) -> Node {
        Node {
            api_version: "berth/v1".into(),
            kind: "Node".into(),
            metadata: ObjectMeta {
                name: "n1".into(),
                creation_timestamp: Some("2026-01-01T00:00:00Z".into()),
                ..Default::default()
            },
            spec: Default::default(),
            status: Some(NodeStatus {
                address: address.into(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn lifecycle() {
        let t1 = "2026-01-02T00:00:00Z";
        let t2 = "2026-01-03T00:00:00Z";
        // First registration: Ready, first seen at its registration.
        let r = record(Some(&node("10.0.0.1")), None, t1).expect("new record");
        assert_eq!((r.phase, r.since.as_deref()), (NodePhase::Ready, Some(t1)));
        assert_eq!(r.first_seen.as_deref(), Some("2026-01-01T00:00:00Z"));
        // Unchanged: nothing to write (heartbeats do not rewrite it).
        assert_eq!(record(Some(&node("10.0.0.1")), Some(&r), t2), None);
        // Gone: NotReady, last seen now.
        let gone = record(None, Some(&r), t2).expect("not ready");
        assert_eq!(
            (gone.phase, gone.last_seen.as_deref()),
            (NodePhase::NotReady, Some(t2))
        );
        assert_eq!(gone.address, "10.0.0.1");
        assert_eq!(record(None, Some(&gone), t2), None);
        // Back: Ready again, first seen kept.
        let back = record(Some(&node("10.0.0.2")), Some(&gone), t2).expect("ready");
        assert_eq!(
            (back.phase, back.first_seen),
            (NodePhase::Ready, r.first_seen)
        );
        // Never registered: no record.
        assert_eq!(record(None, None, t1), None);
    }
}
