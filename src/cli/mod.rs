//! The `berth` command line: kubectl-style verbs that talk to etcd directly
//! through [`crate::store`], plus `agent` and `up`.
//!
//! Invariant: commands print results on stdout and exactly one line per
//! error on stderr (`error: ...`), exit 0 on success and non-zero otherwise
//! (`diff`: 1 means "differences found"; `wait` and `drain`: 1 on timeout).

mod agent;
pub(crate) mod apply;
pub(crate) mod args;
mod delete;
mod describe;
mod describe_services;
mod diff;
mod endpoints_watch;
mod error;
mod events;
mod evict;
mod get;
mod get_containers;
mod get_endpoints;
mod job;
/// Public for its benchmark (`benches/lock.rs`): [`lock::take`].
pub mod lock;
pub(crate) mod node;
mod output;
pub(crate) mod rollout;
mod up;
mod wait;

pub use args::{Cli, Command, EtcdArgs};
pub use error::CliError;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// Reads and validates manifests (files, directories, `-`) with the default limits.
pub(crate) fn load_manifests(inputs: &[String]) -> Result<Vec<crate::manifest::Loaded>, CliError> {
    Ok(crate::manifest::load(
        inputs,
        &crate::manifest::Limits::default(),
    )?)
}

/// Entry point of the `berth` binary.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Like other Unix tools, end quietly when the reader of stdout goes away
/// (`berth get ... | head`): `println!` panics on a broken pipe, and this
/// turns that one panic into exit status 141 (128 + SIGPIPE) with no message.
/// SIGPIPE itself stays ignored, so a peer closing a network connection is an
/// error to handle, never a signal that kills the process.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Help and version print as clap renders them; every other command-line
/// error becomes one line, exit 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    let text = e.render().to_string();
    let body = text.split("\n\nUsage:").next().unwrap_or(&text);
    let body = body
        .split("\n\nFor more information")
        .next()
        .unwrap_or(body);
    let line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    eprintln!("error: {line} (see berth --help)");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let etcd = cli.etcd;
    match cli.command {
        Command::Agent(a) => agent::run(&etcd, *a).await,
        Command::Up(a) => up::run(&etcd, *a).await,
        Command::Apply(a) => apply::run(&etcd, a).await,
        Command::Get(a) => get::run(&etcd, a).await,
        Command::Describe(a) => describe::run(&etcd, a).await,
        Command::Delete(a) => delete::run(&etcd, a).await,
        Command::Diff(a) => diff::run(&etcd, a).await,
        Command::Rollout(a) => rollout::run(&etcd, a).await,
        Command::Wait(a) => wait::run(&etcd, a).await,
        Command::Job(a) => job::run(&etcd, a).await,
        Command::Lock(a) => lock::run(&etcd, a).await,
        Command::Endpoints(a) => endpoints_watch::run(&etcd, a).await,
        Command::Events(a) => events::run(&etcd, a).await,
        Command::Evict(a) => evict::run(&etcd, a).await,
        Command::Cordon(a) => node::cordon(&etcd, a).await,
        Command::Uncordon(a) => node::uncordon(&etcd, a).await,
        Command::Drain(a) => node::drain(&etcd, a).await,
        Command::Label(a) => node::label(&etcd, a).await,
        Command::Schema(a) => {
            print!("{}", crate::schema::render(a.kind.0, a.crd));
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("berth {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "berth", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}
