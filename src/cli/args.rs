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
    #[command(
        after_help = "Examples:\n  berth get components -p shop\n  berth get comp -A -o wide\n  berth get component web -p shop -o yaml\n  berth get components -A -w -o json"
    )]
    Get(GetArgs),
    /// Show an object in detail: spec summary, status, conditions, revisions.
    #[command(after_help = "Example:\n  berth describe component web -p shop")]
    Describe(DescribeArgs),
    /// Delete objects by name or by file.
    #[command(
        after_help = "Examples:\n  berth delete component web -p shop\n  berth delete -f app.yaml"
    )]
    Delete(DeleteArgs),
    /// Show what `apply` would change: a unified diff of live objects against files.
    /// Exits 0 with no differences, 1 with differences, 2 or more on error.
    #[command(after_help = "Example:\n  berth diff -f app.yaml")]
    Diff(DiffArgs),
    /// Inspect rollouts.
    #[command(
        subcommand,
        after_help = "Example:\n  berth rollout history web -p shop"
    )]
    Rollout(RolloutCommand),
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
    /// component (comp), project (proj) or node; or KIND/NAME.
    pub kind: KindArg,
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
}

#[derive(Args, Debug)]
pub struct SchemaArgs {
    /// component (comp), project (proj) or node.
    pub kind: KindArg,
    /// Print the CRD-style document (openAPIV3Schema) instead.
    #[arg(long)]
    pub crd: bool,
}
