//! `berth apply -f`: parse and validate everything first, then write.

use std::process::ExitCode;

use super::args::{ApplyArgs, EtcdArgs};
use super::load_manifests;
use super::CliError;
use crate::store::{ApplyOptions, Store};

pub async fn run(etcd: &EtcdArgs, args: ApplyArgs) -> Result<ExitCode, CliError> {
    // The whole input is parsed and validated before anything is written.
    let loaded = load_manifests(&args.files.files)?;
    let objects: Vec<_> = loaded.into_iter().map(|l| l.object).collect();
    if let Some(set) = &args.applyset {
        if set.is_empty()
            || set.len() > 63
            || !set.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(CliError::Usage(format!(
                "invalid --applyset {set:?}: use letters, digits and '-' (at most 63)"
            )));
        }
    }
    let store = Store::connect(&etcd.store_config()).await?;
    let opts = ApplyOptions {
        dry_run: args.dry_run,
        applyset: args.applyset.clone(),
        prune: args.prune,
    };
    let result = store.apply(&objects, &opts).await?;
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    for o in &result.outcomes {
        println!("{}/{} {}{suffix}", o.kind.lower(), o.name, o.change);
    }
    tracing::debug!(round_trips = result.round_trips, "apply done");
    Ok(ExitCode::SUCCESS)
}
