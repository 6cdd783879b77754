//! Which cluster events a coordinator's write means (pure): a rollout step,
//! a rollout's end (complete, failed, rolled back), a node lost or back.

use crate::resource::{NodePhase, RolloutPhase, RolloutStatus};

/// Reason and message of each event the rollout's change from `old` to
/// `new` makes (in the order they happened).
pub fn rollout(
    old: Option<&RolloutStatus>,
    new: Option<&RolloutStatus>,
) -> Vec<(&'static str, String)> {
    let Some(new) = new else { return Vec::new() };
    let same_rollout = old.filter(|o| o.revision == new.revision && o.started == new.started);
    let mut out = Vec::new();
    let stepped = match same_rollout {
        Some(o) => new.step > o.step,
        None => new.step > 0,
    };
    if stepped && !new.message.is_empty() {
        out.push((
            "RolloutStep",
            format!("revision {}: {}", new.revision, new.message),
        ));
    }
    let was = same_rollout.map(|o| o.phase);
    if was != Some(new.phase) {
        let end = match new.phase {
            RolloutPhase::Complete if same_rollout.is_some() => Some("RolloutComplete"),
            RolloutPhase::Failed => Some("RolloutFailed"),
            RolloutPhase::RolledBack => Some("RolledBack"),
            _ => None,
        };
        if let Some(reason) = end {
            let cause = new
                .cause
                .as_ref()
                .map(|c| format!(": {}", c.message))
                .unwrap_or_default();
            out.push((
                reason,
                format!("revision {} {}{cause}", new.revision, new.phase),
            ));
        }
    }
    out
}

/// The event a node record's change makes, if any.
pub fn node(old: Option<NodePhase>, new: NodePhase) -> Option<(&'static str, &'static str)> {
    match (old, new) {
        (Some(NodePhase::Ready), NodePhase::NotReady) => Some((
            "NodeLost",
            "its agent stopped renewing its lease; its replicas go elsewhere",
        )),
        (Some(NodePhase::NotReady), NodePhase::Ready) => {
            Some(("NodeBack", "its agent registered again"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(revision: u64, step: u64, phase: RolloutPhase) -> RolloutStatus {
        RolloutStatus {
            phase,
            revision,
            step,
            started: Some(format!("t{revision}")),
            message: format!("step {step}"),
            ..Default::default()
        }
    }

    fn check(old: Option<RolloutStatus>, new: Option<RolloutStatus>, expected: &[&str]) {
        let got: Vec<&str> = rollout(old.as_ref(), new.as_ref())
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(got, expected, "{old:?} -> {new:?}");
    }

    #[test]
    fn rollout_events() {
        use RolloutPhase::*;
        check(None, None, &[]);
        check(None, Some(st(2, 0, Progressing)), &[]);
        check(None, Some(st(2, 1, Progressing)), &["RolloutStep"]);
        check(
            Some(st(2, 1, Progressing)),
            Some(st(2, 1, Progressing)),
            &[],
        );
        check(
            Some(st(2, 1, Progressing)),
            Some(st(2, 2, Progressing)),
            &["RolloutStep"],
        );
        check(
            Some(st(2, 5, Progressing)),
            Some(st(2, 6, Complete)),
            &["RolloutStep", "RolloutComplete"],
        );
        check(Some(st(2, 6, Complete)), Some(st(2, 6, Complete)), &[]);
        check(
            Some(st(2, 3, Progressing)),
            Some(st(2, 3, Failed)),
            &["RolloutFailed"],
        );
        check(
            Some(st(2, 3, Failed)),
            Some(st(2, 4, RolledBack)),
            &["RolloutStep", "RolledBack"],
        );
        // A new revision's rollout counts its steps from its own start.
        check(
            Some(st(2, 6, Complete)),
            Some(st(3, 1, Progressing)),
            &["RolloutStep"],
        );
        // A new coordinator reading a finished rollout does not announce it again.
        check(None, Some(st(2, 0, Complete)), &[]);
    }

    #[test]
    fn node_events() {
        use NodePhase::*;
        assert_eq!(node(Some(Ready), NotReady).map(|e| e.0), Some("NodeLost"));
        assert_eq!(node(Some(NotReady), Ready).map(|e| e.0), Some("NodeBack"));
        assert_eq!(node(None, Ready), None);
        assert_eq!(node(Some(Ready), Ready), None);
    }
}
