//! Why a rollout makes no progress, classified from what the nodes report
//! about the revision being rolled out (pure).
//!
//! In this order (the first that any node shows wins, naming every node
//! that shows it): `ImageMismatch`, `ImagePullFailed`, `Forbidden` (node
//! conditions), `CrashLoop` (a container crash-looping or exited with a
//! non-zero code), `ReadyTimeout` (replaced for not being ready within
//! `readyTimeout`), `ReadyCheckFailed` (running, never ready),
//! `Unschedulable` (placement could not place every replica). With none
//! of these, `ReadyCheckFailed` with what is known.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::resource::component::RolloutCause;
use crate::resource::observed::ContainerPhase;
use crate::resource::{ConditionType, Observed, Reason};

/// The cause of a stalled rollout of `hash` (revision `revision`).
pub fn classify(
    hash: &str,
    revision: u64,
    observed: &BTreeMap<String, Arc<Observed>>,
    unschedulable: Option<&str>,
) -> RolloutCause {
    let conditions = [
        (ConditionType::ImageMismatch, Reason::ImageMismatch),
        (ConditionType::ImagePullFailed, Reason::ImagePullFailed),
        (ConditionType::Forbidden, Reason::Forbidden),
    ];
    for (t, reason) in conditions {
        let hits: Vec<(&String, &str)> = observed
            .iter()
            .filter_map(|(node, o)| {
                let c = o.conditions.iter().find(|c| c.is(t) && c.is_true())?;
                Some((node, c.message.as_str()))
            })
            .collect();
        if let Some((_, message)) = hits.first() {
            return cause(reason, hits.iter().map(|h| h.0), message.to_string());
        }
    }
    let mut crash: Vec<&String> = Vec::new();
    let mut timeout: Vec<&String> = Vec::new();
    let mut never: Vec<&String> = Vec::new();
    let mut exit: Option<i64> = None;
    for (node, o) in observed {
        let mine = o.containers.iter().filter(|c| c.hash == hash);
        let (mut crashed, mut timed_out, mut waiting) = (false, false, false);
        for c in mine {
            let failed_exit = c.last_exit_code.is_some_and(|code| code != 0);
            if c.phase == ContainerPhase::CrashLoop
                || (c.phase == ContainerPhase::Exited && failed_exit)
                || (c.restarts > 0 && failed_exit)
            {
                crashed = true;
                exit = exit.or(c.last_exit_code);
            } else if c.last_reason.as_deref() == Some(Reason::ReadyTimeout.as_str()) {
                timed_out = true;
            } else if matches!(
                c.phase,
                ContainerPhase::Starting | ContainerPhase::Unhealthy
            ) {
                waiting = true;
            }
        }
        if crashed {
            crash.push(node);
        }
        if timed_out {
            timeout.push(node);
        }
        if waiting {
            never.push(node);
        }
    }
    if !crash.is_empty() {
        let code = exit.map_or(String::new(), |c| format!(" (exit code {c})"));
        let message = format!("containers of revision {revision} keep crashing{code}");
        return cause(Reason::CrashLoop, crash, message);
    }
    if !timeout.is_empty() {
        let message =
            format!("containers of revision {revision} were not ready within readyTimeout");
        return cause(Reason::ReadyTimeout, timeout, message);
    }
    if !never.is_empty() {
        let message = format!("containers of revision {revision} run but their ready checks fail");
        return cause(Reason::ReadyCheckFailed, never, message);
    }
    if let Some(why) = unschedulable {
        return cause(
            Reason::Unschedulable,
            Vec::<&String>::new(),
            why.to_string(),
        );
    }
    let message = format!("no progress: replicas of revision {revision} did not become available");
    cause(Reason::ReadyCheckFailed, Vec::<&String>::new(), message)
}

fn cause<'a>(
    reason: Reason,
    nodes: impl IntoIterator<Item = &'a String>,
    message: String,
) -> RolloutCause {
    RolloutCause {
        reason: reason.as_str().to_string(),
        nodes: nodes.into_iter().cloned().collect(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::observed::ObservedContainer;
    use crate::resource::Condition;

    /// One node's report: its true condition (if any) and its containers of
    /// the rolled-out hash as (phase, restarts, last exit code, last reason).
    type Node = (
        &'static str,
        Option<ConditionType>,
        &'static [(ContainerPhase, u32, Option<i64>, Option<&'static str>)],
    );

    fn check(nodes: &[Node], unschedulable: Option<&str>, want: (Reason, &[&str])) {
        let observed: BTreeMap<String, Arc<Observed>> = nodes
            .iter()
            .map(|(name, cond, ctrs)| {
                let o = Observed {
                    node: name.to_string(),
                    conditions: cond
                        .iter()
                        .map(|t| Condition::new(*t, true, Reason::StartFailed, "why"))
                        .collect(),
                    containers: ctrs
                        .iter()
                        .map(|(phase, restarts, code, reason)| ObservedContainer {
                            hash: "h2".into(),
                            phase: *phase,
                            restarts: *restarts,
                            last_exit_code: *code,
                            last_reason: reason.map(String::from),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                (name.to_string(), Arc::new(o))
            })
            .collect();
        let c = classify("h2", 2, &observed, unschedulable);
        let nodes: Vec<String> = want.1.iter().map(|s| s.to_string()).collect();
        assert_eq!((c.reason.as_str(), c.nodes), (want.0.as_str(), nodes));
    }

    #[test]
    fn causes_in_order_naming_the_nodes() {
        use ContainerPhase::*;
        let starting: &[_] = &[(Starting, 0, None, None)];
        let crashing: &[_] = &[(CrashLoop, 3, Some(1), Some("Error"))];
        let timed_out: &[_] = &[(Starting, 0, None, Some("ReadyTimeout"))];
        check(
            &[("a", None, starting), ("b", None, starting)],
            None,
            (Reason::ReadyCheckFailed, &["a", "b"]),
        );
        check(
            &[("a", None, starting), ("b", None, crashing)],
            None,
            (Reason::CrashLoop, &["b"]),
        );
        check(
            &[("a", None, timed_out), ("b", None, starting)],
            None,
            (Reason::ReadyTimeout, &["a"]),
        );
        check(
            &[
                ("a", Some(ConditionType::ImageMismatch), &[]),
                ("b", None, crashing),
            ],
            None,
            (Reason::ImageMismatch, &["a"]),
        );
        check(
            &[
                ("a", Some(ConditionType::ImagePullFailed), &[]),
                ("b", Some(ConditionType::Forbidden), &[]),
            ],
            None,
            (Reason::ImagePullFailed, &["a"]),
        );
        check(
            &[("a", Some(ConditionType::Forbidden), &[])],
            None,
            (Reason::Forbidden, &["a"]),
        );
        // An exited container with a failed code is a crash even before the loop.
        check(
            &[("a", None, &[(Exited, 1, Some(2), None)])],
            None,
            (Reason::CrashLoop, &["a"]),
        );
        check(
            &[("a", None, &[])],
            Some("no eligible node"),
            (Reason::Unschedulable, &[]),
        );
        check(&[("a", None, &[])], None, (Reason::ReadyCheckFailed, &[]));
    }
}
