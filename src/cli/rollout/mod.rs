//! `berth rollout ...`: follow a rollout (`status`), steer it (`pause`,
//! `resume`, `promote`, `undo`, `restart`) and list revisions (`history`).
//! The coordinator carries rollouts out; these commands only read its status
//! and change the component's spec, each change a compare-and-swap.

pub(crate) mod control;
mod history;
mod status;

use std::process::ExitCode;

use super::args::{EtcdArgs, RolloutCommand};
use super::CliError;

pub async fn run(etcd: &EtcdArgs, cmd: RolloutCommand) -> Result<ExitCode, CliError> {
    match cmd {
        RolloutCommand::History {
            component,
            project,
            output,
        } => history::run(etcd, component, project, output).await,
        RolloutCommand::Status(args) => status::run(etcd, args).await,
        RolloutCommand::Pause(t) => control::run(etcd, t, control::Action::Pause).await,
        RolloutCommand::Resume(t) => control::run(etcd, t, control::Action::Resume).await,
        RolloutCommand::Promote(t) => control::run(etcd, t, control::Action::Promote).await,
        RolloutCommand::Restart(t) => control::run(etcd, t, control::Action::Restart).await,
        RolloutCommand::Undo(a) => {
            control::run(etcd, a.target, control::Action::Undo(a.to_revision)).await
        }
    }
}
