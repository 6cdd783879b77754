//! Command-line arguments (clap derive). Every verb has an example in its help.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::resource::Kind;
use crate::store::{Password, StoreConfig, DEFAULT_ENDPOINT, DEFAULT_ROOT};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "Run containers on Docker hosts from declarative YAML, with etcd as the only server",
    after_help = "Examples:\n  berth up -f manifests/examples/hello.yaml\n  berth apply -f app.yaml\n  berth get components -A\n  berth describe component web -p shop"
)]
pub struct Cli {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach etcd; shared by every verb.
#[derive(Args, Debug, Clone)]
pub struct EtcdArgs {
    /// etcd endpoints, comma-separated.
    #[arg(long = "etcd", env = "BERTH_ETCD", default_value = DEFAULT_ENDPOINT, value_delimiter = ',', global = true)]
    pub endpoints: Vec<String>,
    /// Key prefix of this berth cluster (several clusters can share one etcd).
    #[arg(long, env = "BERTH_ROOT", default_value = DEFAULT_ROOT, global = true)]
    pub root: String,
    /// CA certificate (PEM) to verify etcd's TLS certificate.
    #[arg(long = "etcd-cacert", env = "BERTH_ETCD_CACERT", global = true)]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for etcd TLS.
    #[arg(long = "etcd-cert", env = "BERTH_ETCD_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// Client key (PEM) for etcd TLS.
    #[arg(long = "etcd-key", env = "BERTH_ETCD_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// etcd user; the password is read from BERTH_ETCD_PASSWORD.
    #[arg(long = "etcd-user", env = "BERTH_ETCD_USER", global = true)]
    pub user: Option<String>,
    /// Timeout for connecting to etcd and for each request.
    #[arg(long = "etcd-timeout", env = "BERTH_ETCD_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<crate::resource::quantity::Duration>()
        .map(|d| d.std())
}

impl EtcdArgs {
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            endpoints: self
                .endpoints
                .iter()
                .map(|e| e.trim().to_string())
                .collect(),
            root: self.root.clone(),
            ca_cert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            user: self.user.clone(),
            // From the environment only: a flag would show in `ps`.
            password: std::env::var("BERTH_ETCD_PASSWORD").ok().map(Password),
            timeout: self.timeout,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the node agent: make this machine's Docker engine run what etcd says.
    #[command(
        after_help = "Examples:\n  berth agent --node n1 --labels zone=a --http 127.0.0.1:9180\n  berth agent --allow-bind /srv/data --log-format json"
    )]
    Agent(Box<super::agent::AgentArgs>),
    /// One-machine quick start: etcd (started if none answers), an agent, and FILE applied.
    #[command(after_help = "Example:\n  berth up -f manifests/examples/hello.yaml")]
    Up(Box<super::up::UpArgs>),
    /// Create or update objects from YAML or JSON files.
    #[command(
        after_help = "Examples:\n  berth apply -f app.yaml\n  berth apply -f manifests/ --dry-run\n  cat app.yaml | berth apply -f -\n  berth apply -f prod/ --prune --applyset prod"
    )]
    Apply(ApplyArgs),
    /// List objects, or show one.
    ///
    /// Components: STATUS is `Stale` when a coordinator wrote their status
    /// but none runs now (the counts are as of its last update), `Pending`
    /// (READY `-/N`) before a coordinator has written any.
    /// Nodes: STATUS is `Ready`, `NotReady` (agent gone: listed until
    /// `berth delete node`, LAST SEEN says since when) or `Unknown`, followed
    /// by `,Cordoned` (cordon) or `,Draining` (drain); ROLE is `coordinator`
    /// on the node that coordinates.
    #[command(
        after_help = "Examples:\n  berth get components -p shop\n  berth get comp -A -o wide\n  berth get component web -p shop -o yaml\n  berth get components -A -w -o json\n  berth get nodes -o wide"
    )]
    Get(GetArgs),
    /// Show an object in detail: spec summary, status, conditions, revisions.
    #[command(
        after_help = "Examples:\n  berth describe component web -p shop\n  berth describe node n1"
    )]
    Describe(DescribeArgs),
    /// Delete objects by name or by file.
    ///
    /// `delete node` forgets a node whose agent is gone (its cordon, labels
    /// and record); it is refused while the agent is registered.
    #[command(
        after_help = "Examples:\n  berth delete component web -p shop\n  berth delete -f app.yaml\n  berth delete node n3"
    )]
    Delete(DeleteArgs),
    /// Show what `apply` would change: a unified diff of live objects against files.
    /// Exits 0 with no differences, 1 with differences, 2 or more on error.
    #[command(after_help = "Example:\n  berth diff -f app.yaml")]
    Diff(DiffArgs),
    /// Follow and steer rollouts: status, pause, resume, promote, undo, restart, history.
    #[command(
        subcommand,
        after_help = "Examples:\n  berth rollout status web -p shop\n  berth rollout undo web -p shop --to-revision 2\n  berth rollout history web -p shop"
    )]
    Rollout(RolloutCommand),
    /// Wait until a component meets a condition, or is deleted (for pipelines).
    /// Exits 0 when met, 1 on timeout (with the last status on stderr).
    #[command(
        after_help = "A condition counts once the status has observed the spec's current generation, so `apply` then `wait` never passes on the previous spec's status.\n\nExamples:\n  berth wait component/web -p shop --for=condition=Available\n  berth wait comp web -p shop --for=condition=Progressing=False --timeout 5m\n  berth delete comp web -p shop && berth wait comp/web -p shop --for=delete"
    )]
    Wait(WaitArgs),
    /// Scheduled jobs of a component: run one by hand.
    #[command(subcommand)]
    Job(JobCommand),
    /// Run a command while holding a cluster-wide lock (etcd, on a lease).
    /// The command gets BERTH_LOCK_KEY and BERTH_LOCK_TOKEN (a fencing token
    /// that only grows); berth exits with the command's exit code.
    #[command(after_help = LOCK_HELP)]
    Lock(LockArgs),
    /// Tools outside berth: render a file from a component's endpoints.
    #[command(subcommand)]
    Endpoints(super::endpoints_watch::EndpointsCommand),
    /// Show the cluster's events: containers started, ready, unhealthy,
    /// replaced, drained, killed; rollout steps; nodes lost. Kept about an hour.
    #[command(
        after_help = "Examples:\n  berth events -p shop\n  berth events -A -w\n  berth events -p shop -o json"
    )]
    Events(EventsArgs),
    /// Evict one container (an administrator's hand-removal): its node
    /// publishes it unhealthy (reason `Evicted`), the coordinator starts its
    /// replacement within the component's maxSurge/maxUnavailable, then the
    /// old one is drained and removed. The request is kept in etcd until
    /// then, so it survives an agent restart; evicting again is harmless.
    /// CONTAINER is a name or id (a prefix of 12+ characters) that
    /// `berth get containers` shows.
    #[command(
        after_help = "Examples:\n  berth evict shop-web-3f2a9c -p shop\n  berth get containers -p shop && berth evict 4be1f0c2a9d3 -p shop"
    )]
    Evict(EvictArgs),
    /// Mark a node unschedulable: it gets no new replicas; running ones stay.
    #[command(after_help = "Example:\n  berth cordon n1")]
    Cordon(NodeArgs),
    /// Make a node schedulable again (also ends a drain).
    #[command(after_help = "Example:\n  berth uncordon n1")]
    Uncordon(NodeArgs),
    /// Cordon a node and move every replica off it, then wait until it runs nothing.
    /// Exits 0 once the node runs no container (it stays cordoned; `uncordon`
    /// ends that), 1 on timeout with what is left on stderr.
    #[command(
        after_help = "Examples:\n  berth drain n1\n  berth drain n1 --timeout 10m && systemctl stop berth-agent"
    )]
    Drain(DrainArgs),
    /// Add, change or remove a node's labels (used by nodeSelector).
    /// KEY=VALUE sets, KEY- removes; changing an existing value needs --overwrite.
    /// Labels given to the agent (`--labels`) are kept under these.
    #[command(
        after_help = "Examples:\n  berth label node n1 zone=a disk=ssd\n  berth label node n1 zone=b --overwrite\n  berth label node/n1 disk-"
    )]
    Label(LabelArgs),
    /// Print the JSON Schema of a kind (for editors and CI validation).
    #[command(
        after_help = "Examples:\n  berth schema component > component.schema.json\n  berth schema component --crd"
    )]
    Schema(SchemaArgs),
    /// Print berth's version.
    #[command(after_help = "Example:\n  berth version")]
    Version,
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  berth completion bash > /etc/bash_completion.d/berth")]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A kind named on the command line: `component`, `comps`, `proj`, `nodes`...
/// or, as kubectl allows, `KIND/NAME` (`comp/web`).
#[derive(Clone, Debug)]
pub struct KindArg(pub Kind, pub Option<String>);

impl std::str::FromStr for KindArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('/') {
            Some((k, n)) if !n.is_empty() && !n.contains('/') => {
                Ok(KindArg(k.parse()?, Some(n.to_string())))
            }
            Some(_) => Err(format!("invalid {s:?}: expected KIND or KIND/NAME")),
            None => s.parse().map(|k| KindArg(k, None)),
        }
    }
}

/// What `get` lists: objects of a kind, or endpoints (no kind: agents
/// write them, nobody applies them).
#[derive(Clone, Debug)]
pub enum GetKind {
    Object(KindArg),
    /// `endpoints` / `ep`, optionally `ep/COMPONENT`.
    Endpoints(Option<String>),
    /// `containers` / `ctr`, optionally `ctr/COMPONENT`: every container
    /// of the cluster, from the agents' observed documents.
    Containers(Option<String>),
}

impl std::str::FromStr for GetKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, n) = match s.split_once('/') {
            Some((k, n)) => (k, Some(n)),
            None => (s, None),
        };
        match k.to_ascii_lowercase().as_str() {
            "endpoints" | "endpoint" | "ep" => match n {
                Some(n) if n.is_empty() || n.contains('/') => Err(format!(
                    "invalid {s:?}: expected endpoints or endpoints/COMPONENT"
                )),
                n => Ok(GetKind::Endpoints(n.map(str::to_string))),
            },
            "containers" | "container" | "ctr" => match n {
                Some(n) if n.is_empty() || n.contains('/') => Err(format!(
                    "invalid {s:?}: expected containers or containers/COMPONENT"
                )),
                n => Ok(GetKind::Containers(n.map(str::to_string))),
            },
            _ => s.parse().map(GetKind::Object),
        }
    }
}

impl KindArg {
    /// The names given either as `KIND/NAME` or as separate arguments (not both).
    pub fn names(&self, extra: &[String]) -> Result<Vec<String>, String> {
        match (&self.1, extra.is_empty()) {
            (Some(n), true) => Ok(vec![n.clone()]),
            (Some(_), false) => {
                Err("give the name either as KIND/NAME or as a separate argument, not both".into())
            }
            (None, _) => Ok(extra.to_vec()),
        }
    }

    /// The one name of a verb that takes exactly one (`describe`, `wait`),
    /// given as `KIND/NAME` or as `name`; `missing` is the error without it.
    pub fn one_name(&self, name: Option<&String>, missing: &str) -> Result<String, String> {
        let extra: Vec<String> = name.into_iter().cloned().collect();
        self.names(&extra)?.pop().ok_or_else(|| missing.to_string())
    }
}

#[derive(Args, Debug)]
pub struct FileArgs {
    /// A file, a directory (read recursively) or - for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Validate and show what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete objects previously applied with the same --applyset that are not in the input.
    #[arg(long, requires = "applyset")]
    pub prune: bool,
    /// Name of the set of objects this apply manages (for --prune).
    #[arg(long)]
    pub applyset: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// component (comp), project (proj), node, endpoints (ep) or containers (ctr); or KIND/NAME.
    pub kind: GetKind,
    /// One object's name; all when omitted.
    pub name: Option<String>,
    /// Project of the components.
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
    /// All projects.
    #[arg(short = 'A', long, conflicts_with = "name")]
    pub all_projects: bool,
    /// Label selector: k=v, k!=v, k (exists), !k; comma-separated, all must match.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Leave out the header row of tables.
    #[arg(long)]
    pub no_headers: bool,
    /// After listing, keep printing changes as they happen.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// component (comp), project (proj) or node; or KIND/NAME.
    pub kind: KindArg,
    /// The object's name.
    pub name: Option<String>,
    /// Project of the component.
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// component (comp), project (proj) or node, or KIND/NAME; or use -f.
    pub kind: Option<KindArg>,
    /// The objects' names.
    pub names: Vec<String>,
    /// Project of the component.
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
    /// Delete the objects named in these files.
    #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "names"])]
    pub files: Vec<String>,
    /// Succeed when the object does not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Compare as `apply --applyset NAME` would write.
    #[arg(long)]
    pub applyset: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// List a component's revisions with their image and change cause.
    #[command(after_help = "Example:\n  berth rollout history web -p shop")]
    History {
        component: String,
        #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
        project: String,
        /// Output format (table, yaml or json).
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: OutputFormat,
    },
    /// Follow a component's rollout until it ends: one line per step.
    #[command(after_help = ROLLOUT_STATUS_HELP)]
    Status(RolloutStatusArgs),
    /// Hold the rollout where it is (sets `rollout.paused`).
    #[command(after_help = "Example:\n  berth rollout pause web -p shop")]
    Pause(RolloutTarget),
    /// Let a paused rollout go on (clears `rollout.paused`).
    #[command(after_help = "Example:\n  berth rollout resume web -p shop")]
    Resume(RolloutTarget),
    /// Let a rollout whose canary is waiting go on to every replica.
    #[command(after_help = "Example:\n  berth rollout promote web -p shop")]
    Promote(RolloutTarget),
    /// Roll back to the previous revision, or to --to-revision N, through
    /// the rollout budgets (the old template becomes the newest revision).
    #[command(
        after_help = "Examples:\n  berth rollout undo web -p shop\n  berth rollout undo web -p shop --to-revision 2"
    )]
    Undo(RolloutUndoArgs),
    /// Replace every container with a new one of the same template,
    /// through the rollout budgets (sets `restartedAt`: a new revision).
    #[command(after_help = "Example:\n  berth rollout restart web -p shop")]
    Restart(RolloutTarget),
}

/// `rollout status`'s help: its exit codes.
pub const ROLLOUT_STATUS_HELP: &str = "Exit codes:\n  0  the rollout completed\n  1  it failed (the classified cause is on the last line), or an error\n  2  usage error\n  3  it failed and was rolled back automatically\n  4  --timeout reached while it was still progressing\n\nA crash-looping or never-ready revision ends the rollout after its progressDeadline; status never waits for --timeout then.\n\nExamples:\n  berth rollout status web -p shop\n  berth rollout status web -p shop --timeout 10m -o json";

/// The component a rollout command acts on.
#[derive(Args, Debug)]
pub struct RolloutTarget {
    pub component: String,
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
}

#[derive(Args, Debug)]
pub struct RolloutStatusArgs {
    #[command(flatten)]
    pub target: RolloutTarget,
    /// Give up (exit 4) after this long; by default wait until it ends.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Output format: one line per step (table) or one JSON event per line (json).
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct RolloutUndoArgs {
    #[command(flatten)]
    pub target: RolloutTarget,
    /// The revision to go back to (see `rollout history`); default: the
    /// one before the current.
    #[arg(long)]
    pub to_revision: Option<u64>,
}

#[derive(Args, Debug)]
pub struct SchemaArgs {
    /// component (comp), project (proj) or node.
    pub kind: KindArg,
    /// Print the CRD-style document (openAPIV3Schema) instead.
    #[arg(long)]
    pub crd: bool,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's name (or node/NAME).
    pub node: String,
}

#[derive(Args, Debug)]
pub struct EvictArgs {
    /// The container's name or id (or an id prefix of at least 12 characters).
    pub container: String,
    /// The container's project.
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
}

#[derive(Args, Debug)]
pub struct DrainArgs {
    /// The node's name (or node/NAME).
    pub node: String,
    /// How long to wait for the node to run nothing.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[derive(Args, Debug)]
pub struct LabelArgs {
    /// node, or node/NAME.
    pub kind: KindArg,
    /// NAME (unless given as node/NAME), then KEY=VALUE or KEY- items.
    #[arg(required = true, num_args = 1..)]
    pub args: Vec<String>,
    /// Allow changing a label that already has a value.
    #[arg(long)]
    pub overwrite: bool,
}

#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Run a component's job now, in one ready replica (for `on: leader`,
    /// the leader), and stream its output. Exits with the job's exit code
    /// (1 if it could not run or timed out).
    #[command(
        after_help = "The run is recorded in the job's history like a scheduled one (`describe component`).\n\nExample:\n  berth job run db backup -p shop > dump.sql"
    )]
    Run(JobRunArgs),
}

#[derive(Args, Debug)]
pub struct JobRunArgs {
    pub component: String,
    pub job: String,
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
    /// Give up when no agent has taken the run within this long.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub start_timeout: Duration,
}

/// `lock`'s help: release rules and exit codes.
pub const LOCK_HELP: &str = "The lock is released when the command exits, when berth is stopped (SIGTERM/SIGINT are passed on to the command), and within --ttl when berth is killed or cut off from etcd. The command never outlives the lock: it is killed with berth, and killed if the lease can no longer be kept alive.\n\nExit codes: the command's own (128+N if it died of signal N); 75 the lock was not taken within --timeout; 76 the lock was lost and the command killed; 2 usage; 1 other errors.\n\nExamples:\n  berth lock nightly-backup -- /usr/local/bin/backup.sh\n  berth lock db-migrate --timeout 5m -- ./migrate --fence \"$BERTH_LOCK_TOKEN\"";

#[derive(Args, Debug)]
pub struct LockArgs {
    /// The lock's name (no '/').
    pub name: String,
    /// Give up (exit 75) if the lock is not taken within this long; by
    /// default wait as long as it takes.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// The lease's TTL: how long a killed or cut-off holder keeps the lock.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// component (comp), or component/NAME.
    pub kind: KindArg,
    /// The component's name (unless given as KIND/NAME).
    pub name: Option<String>,
    /// Project of the component.
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
    /// condition=TYPE (True), condition=TYPE=True|False|Unknown, or delete.
    /// TYPE: Available, Progressing, Degraded or Unschedulable.
    #[arg(long = "for", value_parser = parse_wait_for)]
    pub for_: WaitFor,
    /// How long to wait.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// What `wait --for` waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// A status condition of this type (checked against the known types
    /// later, so an unknown one is an input error, not a usage error) with
    /// this status (`True`, `False` or `Unknown`).
    Condition { type_: String, status: String },
    /// The object is gone.
    Delete,
}

/// kubectl's `--for` syntax: `delete`, `condition=TYPE[=STATUS]`.
pub fn parse_wait_for(s: &str) -> Result<WaitFor, String> {
    let bad = || {
        format!("invalid --for {s:?}: expected condition=TYPE, condition=TYPE=True|False|Unknown, or delete")
    };
    if s == "delete" {
        return Ok(WaitFor::Delete);
    }
    let cond = s.strip_prefix("condition=").ok_or_else(bad)?;
    let (type_, status) = match cond.split_once('=') {
        Some((t, v)) => (t, v),
        None => (cond, "True"),
    };
    let status = ["True", "False", "Unknown"]
        .into_iter()
        .find(|w| w.eq_ignore_ascii_case(status))
        .ok_or_else(bad)?;
    if type_.is_empty() || !type_.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok(WaitFor::Condition {
        type_: type_.to_string(),
        status: status.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_syntax() {
        let c = |t: &str, s: &str| WaitFor::Condition {
            type_: t.into(),
            status: s.into(),
        };
        assert_eq!(parse_wait_for("delete"), Ok(WaitFor::Delete));
        assert_eq!(
            parse_wait_for("condition=Available"),
            Ok(c("Available", "True"))
        );
        assert_eq!(
            parse_wait_for("condition=Progressing=false"),
            Ok(c("Progressing", "False"))
        );
        // Syntax only: an unknown type is the command's to refuse.
        assert_eq!(parse_wait_for("condition=Bogus"), Ok(c("Bogus", "True")));
        for bad in [
            "",
            "deleted",
            "condition",
            "condition=",
            "condition=Available=maybe",
            "condition=A=B=C",
            "jsonpath={.x}",
        ] {
            assert!(parse_wait_for(bad).is_err(), "{bad}");
        }
    }
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
    /// Events of every project and of the cluster (nodes).
    #[arg(short = 'A', long)]
    pub all_projects: bool,
    /// Keep printing events as they happen.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// table (default) or json (a List; with -w one event per line).
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<OutputFormat>,
}
