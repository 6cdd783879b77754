//! The cluster-service fields of a component (issue 10): scheduled `jobs`
//! (optionally backups) and leader `roles`. They are part of the template:
//! hooks and job commands run inside the image, so they change with it, and
//! the agent reads them from the assignment's revision like everything else
//! it runs (no second watch of specs).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::quantity::Duration;
pub use crate::services::backup::Keep;

/// One scheduled command run inside a ready container of the component.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Job {
    /// Unique within the component (a DNS label).
    pub name: String,
    /// Cron expression (croner): 5 fields, or 6 with seconds first.
    pub schedule: String,
    /// Command run with `docker exec` in the container.
    pub exec: Vec<String>,
    /// Which replicas run a tick: `any` (exactly one, the default),
    /// `leader` (the elected replica; needs `roles.elect`), `all` (every one).
    #[serde(default, skip_serializing_if = "JobTarget::is_any")]
    pub on: JobTarget,
    /// Longest run (default 10m); the run is then recorded as timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Runs kept in etcd for `describe` (default 10, at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<u32>,
    /// Store each run's standard output as a file on the node, pruned by
    /// grandfather-father-son rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
}

impl Job {
    pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
    pub const DEFAULT_HISTORY: u32 = 10;

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.map_or(Self::DEFAULT_TIMEOUT, |d| d.std())
    }
    pub fn history(&self) -> u32 {
        self.history.unwrap_or(Self::DEFAULT_HISTORY).clamp(1, 100)
    }
}

/// Which replicas run a job's tick.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum JobTarget {
    /// The replica whose role is leader, once per tick.
    Leader,
    /// Any one ready replica, once per tick cluster-wide.
    #[default]
    Any,
    /// Every ready replica on every node.
    All,
}

impl JobTarget {
    fn is_any(&self) -> bool {
        *self == JobTarget::Any
    }
    pub fn as_str(self) -> &'static str {
        match self {
            JobTarget::Leader => "leader",
            JobTarget::Any => "any",
            JobTarget::All => "all",
        }
    }
}

/// Where a backup job's artifacts go and how many are kept.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct BackupSpec {
    /// Absolute directory on the node the agent writes to.
    pub destination: String,
    pub keep: Keep,
}

/// Leader election among the component's ready replicas.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Roles {
    /// Elect one ready replica as leader.
    pub elect: bool,
    /// Run in a replica when it becomes leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_leader: Option<Hook>,
    /// Run in a replica when it becomes (or starts as) a follower.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_follower: Option<Hook>,
}

/// A command run in the container at a role transition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Hook {
    pub exec: Vec<String>,
    /// Longest run (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl Hook {
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map_or(std::time::Duration::from_secs(30), |d| d.std())
    }
}
