//! `berth evict CONTAINER [-p PROJECT]`: finds the container in observed
//! state and writes its eviction request (`services::actions::evict`); the
//! owning agent and the coordinator do the rest. Like every CLI command it
//! talks to etcd only.

use std::process::ExitCode;

use super::args::{EtcdArgs, EvictArgs};
use super::CliError;
use crate::services::actions::{find_container, request_eviction, ActionError};
use crate::store::Store;

impl From<ActionError> for CliError {
    fn from(e: ActionError) -> CliError {
        match e {
            ActionError::Store(e) => CliError::Store(e),
            other => CliError::Input(other.to_string()),
        }
    }
}

pub async fn run(etcd: &EtcdArgs, args: EvictArgs) -> Result<ExitCode, CliError> {
    let store = Store::connect(&etcd.store_config()).await?;
    let row = find_container(&store, &args.project, &args.container).await?;
    let done = request_eviction(&store, &row, "cli").await?;
    println!(
        "container/{} {} (node {}): replaced within the rollout budget, then drained and removed",
        row.container.name,
        done.as_str(),
        row.node
    );
    Ok(ExitCode::SUCCESS)
}
