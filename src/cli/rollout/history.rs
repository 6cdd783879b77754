//! `berth rollout history`: a component's revisions.

use std::process::ExitCode;

use crate::cli::args::{EtcdArgs, OutputFormat};
use crate::cli::output::{yaml, Table};
use crate::cli::CliError;
use crate::resource::Kind;
use crate::store::{Store, StoreError};

pub async fn run(
    etcd: &EtcdArgs,
    component: String,
    project: String,
    output: OutputFormat,
) -> Result<ExitCode, CliError> {
    {
        {
            let store = Store::connect(&etcd.store_config()).await?;
            let current = store
                .get(Kind::Component, Some(&project), &component)
                .await?
                .ok_or_else(|| {
                    StoreError::NotFound(format!("component/{component} in project {project}"))
                })?;
            let current_rev = current
                .object
                .metadata()
                .annotations
                .get(crate::store::REVISION_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            let revisions = store.revisions(&project, &component).await?;
            match output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&revisions).unwrap_or_default()
                ),
                OutputFormat::Yaml => print!(
                    "{}",
                    yaml(&serde_json::to_value(&revisions).unwrap_or_default())
                ),
                _ => {
                    let mut t =
                        Table::new(&["REVISION", "HASH", "IMAGE", "CREATED", "CHANGE-CAUSE"]);
                    for r in &revisions {
                        let mark = if r.seq.to_string() == current_rev {
                            " (current)"
                        } else {
                            ""
                        };
                        t.row(vec![
                            format!("{}{mark}", r.seq),
                            r.hash.clone(),
                            r.template.image.clone(),
                            r.created.clone(),
                            r.change_cause.clone(),
                        ]);
                    }
                    print!("{}", t.render());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
