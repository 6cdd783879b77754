//! `berth get containers [-p P | -A] [COMPONENT] [-o wide|json]`: every
//! container of the cluster, from the agents' observed documents (node,
//! component, revision, state, ports, age). One read of `observed/`; an
//! observed document that does not decode is left out with a warning.

use std::process::ExitCode;

use serde::Serialize;

use super::args::{EtcdArgs, GetArgs, OutputFormat};
use super::output::Table;
use super::CliError;
use crate::resource::observed::ObservedContainer;
use crate::resource::Observed;
use crate::store::Store;

/// One container and where it runs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    node: String,
    project: String,
    component: String,
    #[serde(flatten)]
    container: ObservedContainer,
}

pub async fn run(
    etcd: &EtcdArgs,
    args: &GetArgs,
    name: Option<String>,
) -> Result<ExitCode, CliError> {
    if args.watch {
        return Err(CliError::Usage(
            "get containers does not watch; follow them with `berth events -w` or the API's /api/v1/containers?watch=true".into(),
        ));
    }
    let store = Store::connect(&etcd.store_config()).await?;
    let prefix = store.keys().all_observed_prefix();
    let (kvs, _) = store.range_all(&prefix).await?;
    let mut rows = Vec::new();
    for kv in &kvs {
        let key = String::from_utf8_lossy(kv.key());
        let Some(parts) = store.keys().parts(&prefix, &key) else {
            continue;
        };
        let [node, project, component] = parts[..] else {
            continue;
        };
        let wanted = (args.all_projects || project == args.project)
            && name.as_deref().is_none_or(|n| n == component);
        if !wanted {
            continue;
        }
        let Ok(doc) = serde_json::from_slice::<Observed>(kv.value()) else {
            eprintln!("warning: {key} does not decode; its containers are left out");
            continue;
        };
        rows.extend(doc.containers.into_iter().map(|c| Row {
            node: node.to_string(),
            project: project.to_string(),
            component: component.to_string(),
            container: c,
        }));
    }
    print(&rows, args);
    Ok(ExitCode::SUCCESS)
}

fn print(rows: &[Row], args: &GetArgs) {
    let wide = args.output == OutputFormat::Wide;
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let items: Vec<_> = rows
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
            let v = serde_json::json!({"apiVersion": crate::resource::API_VERSION, "kind": "List", "items": items});
            if args.output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", super::output::yaml(&v));
            }
        }
        OutputFormat::Name => {
            for r in rows {
                println!("container/{}", r.container.name);
            }
        }
        _ if rows.is_empty() => eprintln!("No containers found."),
        _ => {
            let mut header = Vec::new();
            if args.all_projects {
                header.push("PROJECT");
            }
            header.extend([
                "COMPONENT",
                "NODE",
                "CONTAINER",
                "REVISION",
                "STATE",
                "PORTS",
                "AGE",
            ]);
            if wide {
                header.extend(["RESTARTS", "NAME"]);
            }
            let mut t = Table::new(&header);
            for r in rows {
                let c = &r.container;
                let mut cells = Vec::new();
                if args.all_projects {
                    cells.push(r.project.clone());
                }
                let ports: Vec<String> = c
                    .ports
                    .iter()
                    .map(|(cp, hp)| format!("{hp}->{cp}"))
                    .collect();
                cells.extend([
                    r.component.clone(),
                    r.node.clone(),
                    c.id.get(..12).unwrap_or(&c.id).to_string(),
                    c.revision.to_string(),
                    c.phase.to_string(),
                    if ports.is_empty() {
                        "-".into()
                    } else {
                        ports.join(",")
                    },
                    crate::util::age(c.started_at.as_deref()),
                ]);
                if wide {
                    cells.extend([c.restarts.to_string(), c.name.clone()]);
                }
                t.row(cells);
            }
            print!("{}", t.render());
        }
    }
}
