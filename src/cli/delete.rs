//! `berth delete KIND NAME` and `berth delete -f FILE`.

use std::process::ExitCode;

use super::args::{DeleteArgs, EtcdArgs};
use super::load_manifests;
use super::CliError;
use crate::resource::Kind;
use crate::store::Store;

pub async fn run(etcd: &EtcdArgs, args: DeleteArgs) -> Result<ExitCode, CliError> {
    let targets: Vec<(Kind, Option<String>, String)> =
        if !args.files.is_empty() {
            load_manifests(&args.files)?
                .into_iter()
                .map(|l| {
                    (
                        l.object.kind(),
                        l.object.project().map(str::to_string),
                        l.object.name().to_string(),
                    )
                })
                .collect()
        } else {
            let names = match &args.kind {
                Some(k) => k.names(&args.names).map_err(CliError::Usage)?,
                None => Vec::new(),
            };
            match (&args.kind, names.is_empty()) {
                (Some(k), false) => names
                    .into_iter()
                    .map(|n| (k.0, k.0.namespaced().then(|| args.project.clone()), n))
                    .collect(),
                _ => return Err(CliError::Usage(
                    "delete needs KIND NAME or -f FILE (e.g. berth delete component web -p shop)"
                        .into(),
                )),
            }
        };
    let store = Store::connect(&etcd.store_config()).await?;
    // Components first, so deleting a file with a project and its components works.
    let mut ordered = targets;
    ordered.sort_by_key(|(k, _, _)| *k != Kind::Component);
    let mut missing = Vec::new();
    for (kind, project, name) in ordered {
        if store.delete(kind, project.as_deref(), &name, None).await? {
            println!("{}/{name} deleted", kind.lower());
        } else {
            missing.push(match &project {
                Some(p) => format!("{}/{name} in project {p}", kind.lower()),
                None => format!("{}/{name}", kind.lower()),
            });
        }
    }
    if !missing.is_empty() && !args.ignore_not_found {
        return Err(CliError::Store(crate::store::StoreError::NotFound(
            missing.join(", "),
        )));
    }
    Ok(ExitCode::SUCCESS)
}
