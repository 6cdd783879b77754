//! `Component`: a set of identical containers, its rollout policy and checks.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::configs::ConfigFile;
use super::quantity::{ByteSize, Duration, IntOrPercent, Signal};
use super::services::{Job, Roles};
use super::{Condition, ObjectMeta};

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Component {
    /// Always `berth/v1`.
    pub api_version: String,
    /// Always `Component`.
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ComponentSpec,
    /// Written by the coordinator; ignored on apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ComponentStatus>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ComponentSpec {
    /// Image reference: `repo[:tag]` or `repo@sha256:<64 hex>`.
    pub image: String,
    /// Command and arguments; the image's entrypoint/cmd when omitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `user`, `uid` or `uid:gid` inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub placement: Placement,
    /// Checks that must pass before a container gets traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready_checks: Vec<Check>,
    /// Checks that keep running; a failing container is replaced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<Check>,
    /// A container not ready this long after start is replaced (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    #[serde(default, skip_serializing_if = "State::is_running")]
    pub state: State,
    /// Components of the same project whose volumes this one mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Host paths bound into the container (agents allow them per prefix).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    /// Files rendered inside the containers from other components'
    /// endpoints, re-rendered (and reloaded) when those change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ConfigFile>,
    /// Needs `berth agent --allow-privileged`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "RestartPolicy::is_always")]
    pub restart_policy: RestartPolicy,
    /// Set by `berth rollout restart` (RFC 3339): a new value is a new
    /// template, so every container is replaced through the budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<String>,
    // Cluster services (issue 10 items 3-5): see `super::services`.
    /// Scheduled commands run in the component's containers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<Job>,
    /// Leader election among the replicas, with hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Roles>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct PortSpec {
    /// Optional name, unique within the component; links refer to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port the container listens on.
    pub container: u16,
    /// Port on the node owned by the agent's traffic proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<u16>,
    /// How the proxy balances the external port: `tcp` (per connection, the
    /// default) or `http` (per request, HTTP/1.x only).
    #[serde(default, skip_serializing_if = "Protocol::is_tcp")]
    pub protocol: Protocol,
}

/// What the traffic proxy understands of an external port's bytes.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// Opaque bytes: each new connection goes to one backend.
    #[default]
    Tcp,
    /// HTTP/1.x: each request goes to one backend; client connections stay on the proxy.
    Http,
}

impl Protocol {
    // Skipped when default, so templates written before the field existed
    // hash (and so name their revision) exactly as before.
    fn is_tcp(&self) -> bool {
        *self == Protocol::Tcp
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
        }
    }
}

/// Where replicas run. Exactly one of `replicas` and `perNode`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Placement {
    /// Total replicas, spread over eligible nodes (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Replicas on every eligible node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_node: Option<u32>,
    /// Only nodes with all these labels are eligible.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Only these nodes are eligible (pinning).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

impl Placement {
    /// Replicas wanted in total, or per node with `perNode`.
    pub fn count(&self) -> u32 {
        self.per_node.or(self.replicas).unwrap_or(1)
    }
}

/// One probe (`http`, `tcp` or `exec`, exactly one) and its timing.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Check {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecProbe>,
    /// Time between probes (default 1s for ready checks, 5s for health checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Time one probe may take (default 2s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Consecutive failures that make a container unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
}

/// The probe of a check, once validation has made sure there is exactly one.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe<'a> {
    Http(&'a HttpProbe),
    Tcp(&'a TcpProbe),
    Exec(&'a ExecProbe),
}

impl Check {
    pub fn probe(&self) -> Option<Probe<'_>> {
        match (&self.http, &self.tcp, &self.exec) {
            (Some(h), None, None) => Some(Probe::Http(h)),
            (None, Some(t), None) => Some(Probe::Tcp(t)),
            (None, None, Some(e)) => Some(Probe::Exec(e)),
            _ => None,
        }
    }
    pub fn interval_or(&self, default: Duration) -> std::time::Duration {
        self.interval.unwrap_or(default).std()
    }
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.unwrap_or(Duration::from_secs(2)).std()
    }
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold.unwrap_or(3).max(1)
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct HttpProbe {
    /// Container port to send `GET path` to; any 2xx/3xx passes.
    pub port: u16,
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    "/".into()
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct TcpProbe {
    /// Container port that must accept a connection.
    pub port: u16,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ExecProbe {
    /// Command run inside the container; exit code 0 passes.
    pub command: Vec<String>,
}

/// How containers are stopped.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Termination {
    /// Sent in order, spread over the grace period (default [SIGTERM]); SIGKILL follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<Signal>,
    /// Time from the first signal to SIGKILL (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<Duration>,
    /// Longest wait for open connections to close before signalling (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<Duration>,
}

impl Termination {
    pub fn signals(&self) -> Vec<Signal> {
        if self.signals.is_empty() {
            vec![Signal::TERM]
        } else {
            self.signals.clone()
        }
    }
    pub fn grace_period(&self) -> std::time::Duration {
        self.grace_period.unwrap_or(Duration::from_secs(30)).std()
    }
    pub fn drain_timeout(&self) -> std::time::Duration {
        self.drain_timeout.unwrap_or(Duration::from_secs(60)).std()
    }
}

/// Progressive rollout policy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Rollout {
    /// Replicas that may be unavailable during an update (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    /// Extra replicas that may run during an update (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrPercent>,
    /// Time a new container must stay ready to count as available (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready: Option<Duration>,
    /// A rollout without progress this long fails (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<Duration>,
    /// Replicas updated first, then the rollout pauses (default 0: no canary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<u32>,
    /// Restore the previous revision when the rollout fails (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
    /// Revisions kept for history and undo (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history: Option<u32>,
    /// Holds the rollout where it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

impl Rollout {
    pub fn revision_history(&self) -> u32 {
        self.revision_history.unwrap_or(10)
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// Containers run (the default).
    #[default]
    Running,
    /// Containers are drained, then stopped with the termination signals.
    Stopped,
    /// Containers are killed at once.
    Killed,
}

impl State {
    fn is_running(&self) -> bool {
        *self == State::Running
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum RestartPolicy {
    /// Restart whenever the container exits (the default).
    #[default]
    Always,
    /// Restart only after a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

impl RestartPolicy {
    fn is_always(&self) -> bool {
        *self == RestartPolicy::Always
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Binding {
    /// Absolute path on the node.
    pub host: String,
    /// Absolute path in the container.
    pub container: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Named connections between components.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Links {
    /// Links this component offers to others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub define: Vec<LinkDefine>,
    /// Links this component needs: `project/link` or `link` (same project).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<LinkRequire>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct LinkDefine {
    pub name: String,
    /// A container port of this component (number or port name).
    pub port: String,
    /// What the link carries: `tcp` (the default) or `http`; names the
    /// consumer's `{ALIAS}_CLINK_{PORT}_{KIND}` variables.
    #[serde(default, skip_serializing_if = "LinkKind::is_tcp")]
    pub kind: LinkKind,
}

/// The protocol a link announces to its consumers.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase")]
pub enum LinkKind {
    #[default]
    Tcp,
    Http,
}

impl LinkKind {
    // Skipped when default, so templates written before the field existed
    // keep their hash.
    fn is_tcp(&self) -> bool {
        *self == LinkKind::Tcp
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Tcp => "tcp",
            LinkKind::Http => "http",
        }
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct LinkRequire {
    pub name: String,
    /// Prefix of the link's environment variables (`{ALIAS}_CLINK...`;
    /// default: the link name upper-cased, `-` as `_`). `env` is its old name.
    #[serde(default, alias = "env", skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit, e.g. `256Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// CPU limit in cores, e.g. 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
}

/// The part of a spec that defines the containers themselves ("pod template"):
/// everything but placement, rollout and state. Each distinct template is a
/// revision.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ready_checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<Check>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<Termination>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ConfigFile>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "RestartPolicy::is_always")]
    pub restart_policy: RestartPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<Job>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Roles>,
}

impl ComponentSpec {
    pub fn template(&self) -> Template {
        Template {
            image: self.image.clone(),
            command: self.command.clone(),
            env: self.env.clone(),
            user: self.user.clone(),
            ports: self.ports.clone(),
            ready_checks: self.ready_checks.clone(),
            health_checks: self.health_checks.clone(),
            ready_timeout: self.ready_timeout,
            termination: self.termination.clone(),
            volumes_from: self.volumes_from.clone(),
            bindings: self.bindings.clone(),
            links: self.links.clone(),
            configs: self.configs.clone(),
            privileged: self.privileged,
            resources: self.resources.clone(),
            restart_policy: self.restart_policy,
            restarted_at: self.restarted_at.clone(),
            jobs: self.jobs.clone(),
            roles: self.roles.clone(),
        }
    }

    /// Makes the spec's template fields those of `t` (placement, rollout and
    /// state stay): `template()` of the result is `t`. `rollout undo` uses it.
    pub fn set_template(&mut self, t: Template) {
        let Template {
            image,
            command,
            env,
            user,
            ports,
            ready_checks,
            health_checks,
            ready_timeout,
            termination,
            volumes_from,
            bindings,
            links,
            configs,
            privileged,
            resources,
            restart_policy,
            restarted_at,
            jobs,
            roles,
        } = t;
        self.image = image;
        self.command = command;
        self.env = env;
        self.user = user;
        self.ports = ports;
        self.ready_checks = ready_checks;
        self.health_checks = health_checks;
        self.ready_timeout = ready_timeout;
        self.termination = termination;
        self.volumes_from = volumes_from;
        self.bindings = bindings;
        self.links = links;
        self.configs = configs;
        self.privileged = privileged;
        self.resources = resources;
        self.restart_policy = restart_policy;
        self.restarted_at = restarted_at;
        self.jobs = jobs;
        self.roles = roles;
    }
    pub fn rollout(&self) -> Rollout {
        self.rollout.clone().unwrap_or_default()
    }
    pub fn termination(&self) -> Termination {
        self.termination.clone().unwrap_or_default()
    }
}

impl Template {
    /// Short content hash: the first 10 hex digits of SHA-256 over the
    /// template's canonical JSON (maps are sorted, so equal templates hash equal).
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&json);
        digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
    }
}

/// An immutable record of one template, stored at
/// `revisions/<project>/<component>/<seq>`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub seq: u64,
    pub hash: String,
    pub template: Template,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub change_cause: String,
    pub created: String,
    /// The image every node runs for this revision: recorded by the first
    /// node that starts it (compare-and-swap on this key: first writer
    /// wins). Absent until then, and in documents of older berths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<ImagePin>,
}

/// What a revision's image reference resolved to on the node that pinned it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImagePin {
    /// Docker image ID (`sha256:<64 hex>`): the identity of the bits.
    pub image_id: String,
    /// `repo@sha256:...`: the reference itself for `image: repo@sha256:...`
    /// (compared instead of the ID), else the repository's digest if the
    /// image came from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_digest: Option<String>,
    /// The node that pinned it.
    pub node: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pinned_at: String,
}

/// Rolled up by the coordinator (or, until it exists, the agents).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    #[serde(default)]
    pub observed_generation: i64,
    #[serde(default)]
    pub replicas: u32,
    #[serde(default)]
    pub ready_replicas: u32,
    #[serde(default)]
    pub updated_replicas: u32,
    #[serde(default)]
    pub available_replicas: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Containers that exist and are not leaving (any revision).
    #[serde(default)]
    pub current_replicas: u32,
    /// Containers being drained or stopped.
    #[serde(default)]
    pub draining_replicas: u32,
    /// Containers that exited for good with code 0 / otherwise (run-to-completion).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub completed_replicas: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_replicas: u32,
    /// Per node: what it was asked for and what it runs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, NodeSummary>,
    /// When the coordinator last wrote this status (RFC 3339), and which
    /// node it was: with no coordinator running, readers say the status is
    /// stale since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
    /// The rollout the coordinator is carrying out (or last carried out).
    /// It is also the rollout engine's memory across coordinator terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
}

/// Where a rollout is (`berth rollout status` prints and exits on it).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RolloutPhase {
    /// Replicas are being moved to the new revision within the budgets.
    #[default]
    Progressing,
    /// Held by `rollout.paused` (`berth rollout pause`).
    Paused,
    /// `canary` replicas of the new revision run; waits for `promote`.
    CanaryWaiting,
    /// Every replica is of the new revision and available.
    Complete,
    /// No progress for `progressDeadline` (see `cause`), no rollback.
    Failed,
    /// Failed, and the last stable revision was brought back.
    RolledBack,
}

impl RolloutPhase {
    /// Whether the rollout is over (`rollout status` returns).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RolloutPhase::Complete | RolloutPhase::Failed | RolloutPhase::RolledBack
        )
    }
}

impl std::fmt::Display for RolloutPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Why a rollout failed, classified, with the nodes where it was seen.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCause {
    /// `CrashLoop`, `ReadyCheckFailed`, `ReadyTimeout`, `ImagePullFailed`,
    /// `ImageMismatch`, `Unschedulable` or `Forbidden`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One rollout: from which revision to which, its phase, and its clock.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub phase: RolloutPhase,
    /// The revision being rolled out.
    pub revision: u64,
    /// The revision it replaces, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<u64>,
    /// The newest revision whose replicas were all available: what an
    /// automatic rollback brings back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<u64>,
    /// When a rollback happened: the revision that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_from: Option<u64>,
    /// Counts up at every step (assignment change) of this rollout.
    #[serde(default)]
    pub step: u64,
    /// RFC 3339: when it started, and when it last made progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress: Option<String>,
    /// Set when it failed (also when it was then rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<RolloutCause>,
    /// One line on the last step: which node, which revision, counts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The most replicas of the rolled-out revision seen available during
    /// this rollout: more than this is progress (the engine's memory).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub available: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One node's part of a component's status.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    /// Replicas assigned to the node.
    #[serde(default)]
    pub desired: u32,
    #[serde(default)]
    pub current: u32,
    #[serde(default)]
    pub ready: u32,
    #[serde(default)]
    pub draining: u32,
    /// Revision the node was asked to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template is the spec minus placement, rollout and state: a field
    /// added to `ComponentSpec` but forgotten in `Template` would silently
    /// drop out of revisions and their hash. Every spec field is set here,
    /// so a forgotten one shows up as a difference.
    #[test]
    fn template_is_the_spec_minus_placement_rollout_and_state() {
        let spec: ComponentSpec = serde_json::from_value(serde_json::json!({
            "image": "web:1",
            "command": ["a"],
            "env": {"A": "1"},
            "user": "1000",
            "ports": [{"container": 80}],
            "placement": {"replicas": 2},
            "readyChecks": [{"tcp": {"port": 80}}],
            "healthChecks": [{"tcp": {"port": 80}}],
            "readyTimeout": "5s",
            "termination": {"gracePeriod": "1s"},
            "rollout": {"maxSurge": 1},
            "state": "stopped",
            "volumesFrom": ["db"],
            "bindings": [{"host": "/a", "container": "/b"}],
            "links": {"require": [{"name": "db"}]},
            "configs": [{"path": "/etc/x", "template": "{{ a }}", "sources": ["db"]}],
            "privileged": true,
            "resources": {"memory": "64Mi"},
            "restartPolicy": "never",
            "restartedAt": "2026-12-04T10:00:00Z",
            "jobs": [{"name": "dump", "schedule": "0 * * * *", "exec": ["date"]}],
            "roles": {"elect": true}
        }))
        .expect("spec");
        let mut back = ComponentSpec::default();
        back.set_template(spec.template());
        assert_eq!(
            back.template(),
            spec.template(),
            "set_template is template's inverse"
        );
        let mut from_spec = serde_json::to_value(&spec).expect("json");
        let fields = from_spec.as_object_mut().expect("object");
        for key in ["placement", "rollout", "state"] {
            assert!(
                fields.remove(key).is_some(),
                "{key} not set in the test spec"
            );
        }
        let template = serde_json::to_value(spec.template()).expect("json");
        assert_eq!(serde_json::Value::Object(fields.clone()), template);
        // And every field of the spec type is exercised above.
        let schema = serde_json::to_value(schemars::schema_for!(ComponentSpec)).expect("schema");
        let declared = schema["properties"].as_object().expect("properties").len();
        assert_eq!(
            declared,
            fields.len() + 3,
            "a ComponentSpec field is missing from this test"
        );
    }

    /// `protocol` defaults to tcp and is then left out, so a template written
    /// before the field existed keeps its hash (its revision's name).
    #[test]
    fn default_protocol_is_tcp_and_not_serialized() {
        let p: PortSpec =
            serde_json::from_value(serde_json::json!({"container": 80, "external": 8080}))
                .expect("port");
        assert_eq!(p.protocol, Protocol::Tcp);
        assert_eq!(
            serde_json::to_value(&p).expect("json"),
            serde_json::json!({"container": 80, "external": 8080})
        );
        let h: PortSpec = serde_json::from_value(
            serde_json::json!({"container": 80, "external": 8080, "protocol": "http"}),
        )
        .expect("port");
        assert_eq!(h.protocol, Protocol::Http);
        assert_eq!(serde_json::to_value(h).expect("json")["protocol"], "http");
    }
}
