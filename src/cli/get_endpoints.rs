//! `berth get endpoints [-p P | -A] [COMPONENT] [-w] [-o table|wide|json|yaml|name]`:
//! the ready, not draining containers each agent announces
//! (`endpoints/<project>/<component>/<node>/<container>`), one row each.
//!
//! Endpoints are no `Kind` (nobody applies them): this reads their prefix
//! with `runtime::watcher`, which lists then (with `-w`) follows changes,
//! so a compaction or reconnect loses nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use futures::StreamExt;

use super::args::{EtcdArgs, GetArgs, OutputFormat};
use super::output::{line, Table};
use super::CliError;
use crate::resource::endpoint::Endpoint;
use crate::resource::ComponentKey;
use crate::runtime::{watcher, Event, WatcherConfig};
use crate::store::Store;

const HEADER: &[&str] = &["COMPONENT", "NODE", "CONTAINER", "ROLE", "FORWARD", "PORTS"];

/// The elected container of each component with `roles.elect` (read once,
/// when the list is made: `-w` rows show the role as of then).
type Leaders = BTreeMap<ComponentKey, String>;

async fn leaders(store: &Store) -> Leaders {
    let prefix = store.keys().roles_prefix();
    let opts = etcd_client::GetOptions::new().with_prefix();
    let Ok(r) = store.client().get(prefix.as_str(), Some(opts)).await else {
        return Leaders::new();
    };
    r.kvs()
        .iter()
        .filter_map(|kv| {
            let rest = kv.key_str().ok()?.strip_prefix(&prefix)?;
            let mut parts = rest.split('/');
            let (p, c) = (parts.next()?, parts.next()?);
            let rec: crate::services::roles::LeaderRecord =
                serde_json::from_slice(kv.value()).ok()?;
            Some((ComponentKey::new(p, c), rec.container))
        })
        .collect()
}

/// `leader`, `follower` (a component with a leader), or `-`.
fn role(ep: &Endpoint, leaders: &Leaders) -> &'static str {
    match leaders.get(&ComponentKey::new(&ep.project, &ep.component)) {
        Some(c) if *c == ep.container => "leader",
        Some(_) => "follower",
        None => "-",
    }
}

pub async fn run(
    etcd: &EtcdArgs,
    args: &GetArgs,
    name: Option<String>,
) -> Result<ExitCode, CliError> {
    let store = Store::connect(&etcd.store_config()).await?;
    let keys = store.keys();
    let prefix = match (&name, args.all_projects) {
        (Some(n), _) => {
            keys.component_endpoints_prefix(&ComponentKey::new(args.project.clone(), n.clone()))
        }
        (None, true) => keys.endpoints_prefix(),
        (None, false) => keys.project_endpoints_prefix(&args.project),
    };
    let leaders = leaders(&store).await;
    let mut events = std::pin::pin!(watcher(store.client(), prefix, WatcherConfig::default()));
    let mut listed: BTreeMap<String, Endpoint> = BTreeMap::new();
    let mut widths: Vec<usize> = Vec::new();
    let mut first = true;
    while let Some(item) = events.next().await {
        match item {
            // Reading fails the command; watching retries (as `get -w`).
            Err(e) if first => return Err(CliError::Io(std::io::Error::other(e.to_string()))),
            Err(e) => eprintln!("warning: {e}"),
            Ok(Event::Init) => listed.clear(),
            Ok(Event::InitApply(kv)) => {
                if let Ok(ep) = serde_json::from_slice::<Endpoint>(&kv.value) {
                    listed.insert(kv.key, ep);
                }
            }
            Ok(Event::InitDone) if first => {
                first = false;
                widths = print_list(&listed, args, &leaders);
                if !args.watch {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Ok(Event::InitDone) => {}
            Ok(Event::Apply(kv)) => {
                let Ok(ep) = serde_json::from_slice::<Endpoint>(&kv.value) else {
                    continue;
                };
                let event = if listed.contains_key(&kv.key) {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                if listed.get(&kv.key) != Some(&ep) {
                    print_change(event, &ep, args, &widths, &leaders);
                }
                listed.insert(kv.key, ep);
            }
            Ok(Event::Delete(kv)) => {
                if let Some(ep) = listed.remove(&kv.key) {
                    print_change("DELETED", &ep, args, &widths, &leaders);
                }
            }
        }
        let _ = std::io::stdout().flush();
    }
    Ok(ExitCode::SUCCESS)
}

fn cells(ep: &Endpoint, all_projects: bool, leaders: &Leaders) -> Vec<String> {
    let component = if all_projects {
        format!("{}/{}", ep.project, ep.component)
    } else {
        ep.component.clone()
    };
    let ports = ep
        .ports
        .iter()
        .map(|p| match p.external {
            Some(e) => format!("{e}->{}:{}/{}", p.host, p.container, p.protocol.as_str()),
            None => format!("{}:{}", p.host, p.container),
        })
        .collect::<Vec<_>>()
        .join(",");
    vec![
        component,
        ep.node.clone(),
        ep.container.get(..12).unwrap_or(&ep.container).to_string(),
        role(ep, leaders).to_string(),
        ep.forward.clone().unwrap_or_else(|| "-".into()),
        ports,
    ]
}

fn print_list(
    listed: &BTreeMap<String, Endpoint>,
    args: &GetArgs,
    leaders: &Leaders,
) -> Vec<usize> {
    match args.output {
        OutputFormat::Table | OutputFormat::Wide => {
            let mut t = Table::new(HEADER);
            for ep in listed.values() {
                t.row(cells(ep, args.all_projects, leaders));
            }
            let widths = t.widths();
            let text = t.render();
            let text = if args.no_headers {
                text.split_once('\n')
                    .map_or("", |(_, rest)| rest)
                    .to_string()
            } else {
                text
            };
            print!("{text}");
            if listed.is_empty() {
                eprintln!("No endpoints found.");
            }
            widths
        }
        OutputFormat::Json | OutputFormat::Yaml => {
            let list = crate::resource::meta::list_json(
                listed
                    .values()
                    .filter_map(|e| {
                        let mut v = serde_json::to_value(e).ok()?;
                        // The role is no part of the stored endpoint: added
                        // here from the leader keys, for elected components.
                        if let (Some(o), r) = (v.as_object_mut(), role(e, leaders)) {
                            if r != "-" {
                                o.insert("role".into(), r.into());
                            }
                        }
                        Some(v)
                    })
                    .collect(),
            );
            if args.output == OutputFormat::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                print!("{}", super::output::yaml(&list));
            }
            Vec::new()
        }
        OutputFormat::Name => {
            for ep in listed.values() {
                println!("endpoint/{}/{}/{}", ep.component, ep.node, ep.container);
            }
            Vec::new()
        }
    }
}

fn print_change(event: &str, ep: &Endpoint, args: &GetArgs, widths: &[usize], leaders: &Leaders) {
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            println!("{}", serde_json::json!({"type": event, "object": ep}));
        }
        OutputFormat::Name => println!("endpoint/{}/{}/{}", ep.component, ep.node, ep.container),
        OutputFormat::Table | OutputFormat::Wide => {
            let mut c = cells(ep, args.all_projects, leaders);
            if event == "DELETED" {
                c[0] = format!("{} (deleted)", c[0]);
            }
            print!("{}", line(&c, widths));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::Protocol;
    use crate::resource::endpoint::EndpointPort;

    #[test]
    fn a_row_names_component_node_container_forward_and_ports() {
        let ep = Endpoint {
            project: "shop".into(),
            component: "web".into(),
            node: "n1".into(),
            container: "0123456789abcdef".into(),
            forward: Some("10.0.0.1:7946".into()),
            ports: vec![
                EndpointPort {
                    container: 8080,
                    host: 32001,
                    external: Some(18080),
                    protocol: Protocol::Http,
                },
                EndpointPort {
                    container: 9090,
                    host: 32002,
                    external: None,
                    protocol: Protocol::Tcp,
                },
            ],
        };
        let none = Leaders::new();
        assert_eq!(
            cells(&ep, false, &none),
            [
                "web",
                "n1",
                "0123456789ab",
                "-",
                "10.0.0.1:7946",
                "18080->32001:8080/http,32002:9090"
            ]
        );
        assert_eq!(cells(&ep, true, &none)[0], "shop/web");
        let key = ComponentKey::new("shop", "web");
        let lead = Leaders::from([(key.clone(), ep.container.clone())]);
        assert_eq!(cells(&ep, false, &lead)[3], "leader");
        let other = Leaders::from([(key, "ffff".to_string())]);
        assert_eq!(cells(&ep, false, &other)[3], "follower");
    }
}
