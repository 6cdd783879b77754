//! `berth get containers [-p P | -A] [COMPONENT] [-o wide|json]`: every
//! container of the cluster, from the agents' observed documents (node,
//! component, revision, state, ports, age). One read of `observed/`; an
//! observed document that does not decode is left out with a warning.

use std::process::ExitCode;

use super::args::{EtcdArgs, GetArgs, OutputFormat};
use super::output::Table;
use super::CliError;
use crate::resource::observed::ContainerRow;
use crate::store::Store;

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
    let (rows, bad) = store
        .observed_rows(|_, c| {
            (args.all_projects || c.project == args.project)
                && name.as_deref().is_none_or(|n| n == c.name)
        })
        .await?;
    for key in bad {
        eprintln!("warning: {key} does not decode; its containers are left out");
    }
    print(&rows, args);
    Ok(ExitCode::SUCCESS)
}

fn print(rows: &[ContainerRow], args: &GetArgs) {
    let wide = args.output == OutputFormat::Wide;
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let items: Vec<_> = rows
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
            let v = crate::resource::meta::list_json(items);
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
                    c.phase_label(),
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
