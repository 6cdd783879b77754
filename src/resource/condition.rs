//! Conditions in the Kubernetes style, and the closed sets of their types and
//! reasons. Code names a condition by [`ConditionType`] and [`Reason`]; the
//! stored form stays a string, so a document written by a newer berth with a
//! type this one does not know still decodes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Defines a string enum: each variant is written as its own name.
macro_rules! words {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $v:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => stringify!($v)),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("unknown {} {s:?}", stringify!($name)))
            }
        }
    };
}

words! {
    /// What a condition is about.
    ConditionType {
        /// A node's containers of the assigned revision are ready (observed),
        /// or an agent is ready (nodes).
        Ready,
        Available,
        Progressing,
        /// Something berth could not read or do; it keeps what runs.
        Degraded,
        Forbidden,
        ImagePullFailed,
        StartFailed,
        Unschedulable,
        /// The node's image for a revision's reference is not the image
        /// pinned in the revision: it starts nothing of that revision.
        ImageMismatch,
        /// An external port of the component cannot be bound on the node
        /// (another process holds it); the node's other ports are served.
        PortUnavailable,
        /// Every required link is defined by some component (False: which
        /// is not; its variables are left out, nothing else is written).
        LinksResolved,
        /// Every `configs` file rendered (False: the last good file stays).
        ConfigRendered,
        /// The last reload after a config change (exit code, time, error).
        ConfigReloaded,
    }
}

words! {
    /// Why a condition has its status, or why an event happened.
    Reason {
        ContainersReady,
        ContainersNotReady,
        AgentReady,
        /// A node's agent is gone (its lease expired): only the
        /// coordinator's record of it is left.
        AgentNotRegistered,
        DockerUnreachable,
        MinimumReplicasAvailable,
        MinimumReplicasUnavailable,
        Forbidden,
        ImagePullFailed,
        StartFailed,
        VolumesFromMissing,
        RestartFailed,
        /// An assignment in etcd does not decode: what runs is kept.
        UnreadableAssignment,
        /// A component spec in etcd does not decode: its assignment is kept.
        UnreadableSpec,
        /// Every replica is of the latest revision and ready.
        Complete,
        /// Replicas of the latest revision are still starting or missing.
        Updating,
        CrashLoop,
        /// Placement cannot place every replica (see the message).
        Unschedulable,
        /// Nothing wrong.
        AsExpected,
        /// A rollout made no progress for `progressDeadline`.
        ProgressDeadlineExceeded,
        /// A rollout is held by `rollout.paused`.
        RolloutPaused,
        /// A canary is up and waits for `berth rollout promote`.
        CanaryWaiting,
        /// The last stable revision was brought back after a failure.
        RolledBack,
        /// The containers of a revision never became ready.
        ReadyCheckFailed,
        ReadyTimeout,
        /// A node's image for the tag is not the revision's pinned image.
        ImageMismatch,
        /// The proxy cannot bind an external port.
        PortUnavailable,
        /// An administrator evicted the container (`berth evict`): it is
        /// replaced within the rollout budget, then drained and removed.
        Evicted,
        /// An administrator restarted the container (API): drained, stopped
        /// and started again in place.
        Restarted,
        LinksResolved,
        LinkNotDefined,
        /// A link's listener could not be bound inside a container.
        LinkUnbound,
        Rendered,
        TemplateFailed,
        Reloaded,
        ReloadFailed,
    }
}

/// A condition in the Kubernetes style: `type` is True/False/Unknown with a reason.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    pub fn new(type_: ConditionType, ok: bool, reason: Reason, message: impl Into<String>) -> Self {
        Condition::with_reason(type_, ok, reason.as_str(), message)
    }

    /// A condition whose reason is free text (e.g. a status word the CLI derives).
    pub fn with_reason(
        type_: ConditionType,
        ok: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            type_: type_.as_str().into(),
            status: if ok { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Some(crate::util::now_rfc3339()),
        }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }

    /// Whether this is a condition of type `t`.
    pub fn is(&self, t: ConditionType) -> bool {
        self.type_ == t.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for t in ConditionType::ALL {
            assert_eq!(t.as_str().parse::<ConditionType>(), Ok(*t));
        }
        for r in Reason::ALL {
            assert_eq!(r.as_str().parse::<Reason>(), Ok(*r));
        }
        let c = Condition::new(ConditionType::Ready, true, Reason::ContainersReady, "2/2");
        assert_eq!(
            (c.type_.as_str(), c.reason.as_str()),
            ("Ready", "ContainersReady")
        );
        assert!(c.is(ConditionType::Ready) && c.is_true());
    }
}
