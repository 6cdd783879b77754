//! The `berth` command line: kubectl-style verbs that talk to etcd directly
//! through [`crate::store`], plus `agent` and `up`.
//!
//! Invariant: commands print results on stdout and exactly one line per
//! error on stderr (`error: ...`), exit 0 on success and non-zero otherwise
//! (`diff`: 1 means "differences found").

mod agent;
mod apply;
mod args;
mod delete;
mod describe;
mod diff;
mod error;
mod get;
mod output;
mod rollout;
mod up;

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
    let cli = Cli::parse();
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
