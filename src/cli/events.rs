//! `berth events [-p P | -A] [-w] [-o json]`: the cluster's event log.

use std::process::ExitCode;

use futures::StreamExt;

use super::args::{EtcdArgs, EventsArgs, OutputFormat};
use super::output::Table;
use super::CliError;
use crate::events::{self, ClusterEvent};
use crate::runtime::{watcher, Event, WatcherConfig};
use crate::store::Store;

pub async fn run(etcd: &EtcdArgs, args: EventsArgs) -> Result<ExitCode, CliError> {
    let json = match args.output {
        None | Some(OutputFormat::Table) | Some(OutputFormat::Wide) => false,
        Some(OutputFormat::Json) => true,
        Some(other) => {
            return Err(CliError::Usage(format!(
                "events prints a table or JSON (-o json), not {other:?}"
            )))
        }
    };
    let project = (!args.all_projects).then_some(args.project.as_str());
    let store = Store::connect(&etcd.store_config()).await?;
    if args.watch {
        return watch(&store, project, json, args.all_projects).await;
    }
    let list = events::list(&store, project).await?;
    if json {
        let items: Vec<_> = list
            .iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect();
        let v = crate::resource::meta::list_json(items);
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if list.is_empty() {
        match project {
            Some(p) => eprintln!("No events in project {p} (events are kept about an hour)."),
            None => eprintln!("No events (events are kept about an hour)."),
        }
    } else {
        let mut t = Table::new(&header(args.all_projects));
        for e in &list {
            t.row(row(e, args.all_projects));
        }
        print!("{}", t.render());
    }
    Ok(ExitCode::SUCCESS)
}

fn header(all: bool) -> Vec<&'static str> {
    let mut h = vec!["AGE"];
    if all {
        h.push("PROJECT");
    }
    h.extend(["COMPONENT", "NODE", "REASON", "MESSAGE"]);
    h
}

fn row(e: &ClusterEvent, all: bool) -> Vec<String> {
    let mut r = vec![crate::util::age(Some(&e.time))];
    if all {
        r.push(e.project.clone());
    }
    r.push(e.component.clone().unwrap_or_else(|| "-".into()));
    r.push(e.node.clone().unwrap_or_else(|| "-".into()));
    r.push(e.reason.clone());
    r.push(e.message.clone());
    r
}

/// Prints the events there are, then each new one as it is written, until
/// interrupted. A table's columns are sized by the first lines.
async fn watch(
    store: &Store,
    project: Option<&str>,
    json: bool,
    all: bool,
) -> Result<ExitCode, CliError> {
    let prefix = store.keys().events_prefix(project);
    let mut stream = watcher(store.client(), prefix, WatcherConfig::default()).boxed();
    let mut listed = Vec::new();
    let mut widths: Option<Vec<usize>> = None;
    let print = |e: &ClusterEvent, widths: &[usize]| {
        if json {
            println!("{}", serde_json::to_string(e).unwrap_or_default());
        } else {
            println!("{}", super::output::line(&row(e, all), widths));
        }
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(kv)) => listed.extend(decode(&kv.value)),
            Ok(Event::InitDone) => {
                // Printed once: a re-list after a lost watch does not repeat them.
                if widths.is_none() {
                    listed.sort_by(|a: &ClusterEvent, b| a.time.cmp(&b.time));
                    let mut t = Table::new(&header(all));
                    for e in &listed {
                        t.row(row(e, all));
                    }
                    let w = t.widths();
                    if !json {
                        println!(
                            "{}",
                            super::output::line(
                                &header(all)
                                    .iter()
                                    .map(|s| s.to_string())
                                    .collect::<Vec<_>>(),
                                &w
                            )
                        );
                    }
                    for e in &listed {
                        print(e, &w);
                    }
                    widths = Some(w);
                }
            }
            Ok(Event::Apply(kv)) => {
                if let (Some(e), Some(w)) = (decode(&kv.value), &widths) {
                    print(&e, w);
                }
            }
            Ok(Event::Delete(_)) => {}
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn decode(value: &[u8]) -> Option<ClusterEvent> {
    serde_json::from_slice(value).ok()
}
