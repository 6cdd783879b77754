//! `berth get KIND [NAME]`, with `-w` streaming changes.

use std::collections::BTreeMap;
use std::process::ExitCode;

use etcd_client::{EventType, WatchOptions};

use super::args::{EtcdArgs, GetArgs, OutputFormat};
use super::output::{header, line, print_objects, row, ObservedIndex, RowContext, Table};
use super::CliError;
use crate::resource::selector::Selector;
use crate::resource::{Kind, Object, Observed};
use crate::store::{Store, StoreError};

pub async fn run(etcd: &EtcdArgs, mut args: GetArgs) -> Result<ExitCode, CliError> {
    let kind = args.kind.0;
    let extra: Vec<String> = args.name.iter().cloned().collect();
    args.name = args.kind.names(&extra).map_err(CliError::Usage)?.pop();
    if args.name.is_some() && args.all_projects {
        return Err(CliError::Usage(
            "a name and --all-projects (-A) exclude each other".into(),
        ));
    }
    let selector: Selector = match &args.selector {
        Some(s) => s.parse().map_err(CliError::Usage)?,
        None => Selector::default(),
    };
    let project = (kind.namespaced() && !args.all_projects).then_some(args.project.as_str());
    let store = Store::connect(&etcd.store_config()).await?;
    let (objects, revision) = match &args.name {
        Some(name) => {
            let found = store.get(kind, project, name).await?.ok_or_else(|| {
                StoreError::NotFound(match project {
                    Some(p) => format!("{}/{name} in project {p}", kind.lower()),
                    None => format!("{}/{name}", kind.lower()),
                })
            })?;
            (vec![found.object], 0)
        }
        None => {
            let (list, revision) = store.list_with_revision(kind, project).await?;
            let objs: Vec<Object> = list
                .into_iter()
                .map(|s| s.object)
                .filter(|o| selector.matches(&o.metadata().labels))
                .collect();
            (objs, revision)
        }
    };
    let wide = args.output == OutputFormat::Wide;
    let table_mode = matches!(args.output, OutputFormat::Table | OutputFormat::Wide);
    let mut widths = Vec::new();
    if table_mode {
        let ctx = Context::load(&store, kind, &objects).await?;
        let mut t = if args.no_headers {
            Table::default()
        } else {
            Table::new(&header(kind, wide, args.all_projects))
        };
        for o in &objects {
            t.row(row(o, wide, args.all_projects, &ctx.row_context()));
        }
        widths = t.widths();
        if objects.is_empty() && !args.watch {
            match project {
                Some(p) => eprintln!("No {}s found in project {p}.", kind.lower()),
                None => eprintln!("No {}s found.", kind.lower()),
            }
        } else {
            print!("{}", t.render());
        }
    } else {
        let ctx = Context::load(&store, kind, &objects).await?;
        let objects: Vec<Object> = objects.into_iter().map(|o| ctx.with_status(o)).collect();
        if args.watch && args.output == OutputFormat::Json {
            // One JSON document per line, so a pipeline can read it as a stream.
            for o in &objects {
                println!("{}", watch_line("ADDED", o));
            }
        } else {
            print_objects(&objects, args.output, args.name.is_some());
        }
    }
    if args.watch {
        let revision = if revision > 0 {
            revision
        } else {
            store.current_revision().await?
        };
        watch(
            &store,
            &args,
            kind,
            project,
            &selector,
            revision + 1,
            &widths,
        )
        .await?;
    }
    Ok(ExitCode::SUCCESS)
}

fn watch_line(kind: &str, o: &Object) -> String {
    serde_json::json!({"type": kind, "object": o.to_json()}).to_string()
}

/// What rows need besides the objects: observed state, node and component counts.
struct Context {
    observed: ObservedIndex,
    nodes: Vec<crate::resource::Node>,
    components_per_project: BTreeMap<String, usize>,
}

impl Context {
    async fn load(store: &Store, kind: Kind, objects: &[Object]) -> Result<Context, CliError> {
        let mut ctx = Context {
            observed: ObservedIndex::new(),
            nodes: Vec::new(),
            components_per_project: BTreeMap::new(),
        };
        match kind {
            Kind::Component if !objects.is_empty() => {
                let prefix = store.keys().all_observed_prefix();
                let (kvs, _) = store.range_all(&prefix).await?;
                for kv in kvs {
                    let key = String::from_utf8_lossy(kv.key()).to_string();
                    let parts: Vec<&str> = key
                        .strip_prefix(&prefix)
                        .unwrap_or_default()
                        .split('/')
                        .collect();
                    if let [_, project, component] = parts[..] {
                        if let Ok(o) = serde_json::from_slice::<Observed>(kv.value()) {
                            ctx.observed
                                .entry((project.into(), component.into()))
                                .or_default()
                                .push(o);
                        }
                    }
                }
                ctx.nodes = store
                    .list(Kind::Node, None)
                    .await?
                    .into_iter()
                    .filter_map(|s| match s.object {
                        Object::Node(n) => Some(n),
                        _ => None,
                    })
                    .collect();
            }
            Kind::Project => {
                let (kvs, _) = store
                    .range_all(&store.keys().spec_prefix(Kind::Component, None))
                    .await?;
                let prefix = store.keys().spec_prefix(Kind::Component, None);
                for kv in kvs {
                    let key = String::from_utf8_lossy(kv.key()).to_string();
                    if let Some((p, _)) = key.strip_prefix(&prefix).and_then(|k| k.split_once('/'))
                    {
                        *ctx.components_per_project.entry(p.to_string()).or_default() += 1;
                    }
                }
            }
            _ => {}
        }
        Ok(ctx)
    }

    /// Gives components without a controller-written status the rolled-up one.
    fn with_status(&self, mut o: Object) -> Object {
        if let Object::Component(c) = &mut o {
            if c.status.is_none() {
                let key = (
                    c.metadata
                        .project
                        .clone()
                        .unwrap_or_else(|| crate::resource::DEFAULT_PROJECT.into()),
                    c.metadata.name.clone(),
                );
                let obs: Vec<&Observed> = self
                    .observed
                    .get(&key)
                    .map(|v| v.iter().collect())
                    .unwrap_or_default();
                c.status = Some(super::output::rolled_up_status(c, &obs, &self.nodes));
            }
        }
        o
    }

    fn row_context(&self) -> RowContext<'_> {
        RowContext {
            observed: &self.observed,
            nodes: &self.nodes,
            components_per_project: &self.components_per_project,
        }
    }
}

/// Streams changes under the cluster root that affect objects of `kind`:
/// their spec, status, or (for components) the agents' observed state.
async fn watch(
    store: &Store,
    args: &GetArgs,
    kind: Kind,
    project: Option<&str>,
    selector: &Selector,
    from_revision: i64,
    widths: &[usize],
) -> Result<(), CliError> {
    let keys = store.keys().clone();
    let spec_prefix = keys.spec_prefix(kind, project);
    let status_prefix = keys.status_prefix(kind, project);
    let observed_prefix = keys.all_observed_prefix();
    let node_prefix = keys.nodes_prefix();
    let root = format!("{}/", keys.root());
    let wide = args.output == OutputFormat::Wide;
    let table_mode = matches!(args.output, OutputFormat::Table | OutputFormat::Wide);
    let mut start = from_revision;
    let mut last: std::collections::HashMap<(Option<String>, String), String> = Default::default();
    loop {
        let mut client = store.client();
        let mut opts = WatchOptions::new().with_prefix().with_prev_key();
        if start > 0 {
            opts = opts.with_start_revision(start);
        }
        let mut stream = match client.watch(root.clone(), Some(opts)).await {
            Ok(w) => w,
            Err(e) => {
                eprintln!(
                    "warning: watch interrupted ({}); reconnecting",
                    store.map_err(e)
                );
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let resp = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) | Err(_) => break,
            };
            if resp.compact_revision() > 0 {
                start = 0;
                break;
            }
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                start = kv.mod_revision() + 1;
                let key = String::from_utf8_lossy(kv.key()).to_string();
                // Which object does this key concern?
                let target: Option<(Option<String>, String)> =
                    if let Some(rest) = key.strip_prefix(&spec_prefix) {
                        Some(split_target(kind, project, rest))
                    } else if let Some(rest) = key.strip_prefix(&status_prefix) {
                        Some(split_target(kind, project, rest))
                    } else if kind == Kind::Component {
                        key.strip_prefix(&observed_prefix).and_then(|rest| {
                            let parts: Vec<&str> = rest.split('/').collect();
                            match parts[..] {
                                [_, p, c] if project.is_none_or(|want| want == p) => {
                                    Some((Some(p.into()), c.into()))
                                }
                                _ => None,
                            }
                        })
                    } else if kind == Kind::Node {
                        key.strip_prefix(&node_prefix)
                            .map(|n| (None, n.to_string()))
                    } else {
                        None
                    };
                let Some((obj_project, name)) = target else {
                    continue;
                };
                if args.name.as_ref().is_some_and(|n| *n != name) {
                    continue;
                }
                let deleted = ev.event_type() == EventType::Delete && key.starts_with(&spec_prefix);
                let object = if deleted {
                    ev.prev_kv()
                        .and_then(|p| Object::from_json(kind, p.value()).ok())
                } else {
                    store
                        .get(kind, obj_project.as_deref(), &name)
                        .await?
                        .map(|s| s.object)
                };
                let Some(object) = object else { continue };
                if !selector.matches(&object.metadata().labels) {
                    continue;
                }
                let event = if deleted {
                    "DELETED"
                } else if ev.event_type() == EventType::Put
                    && kv.create_revision() == kv.mod_revision()
                    && key.starts_with(&spec_prefix)
                {
                    "ADDED"
                } else {
                    "MODIFIED"
                };
                if table_mode {
                    let Ok(ctx) = Context::load(store, kind, std::slice::from_ref(&object)).await
                    else {
                        continue;
                    };
                    let text = line(
                        &row(&object, wide, args.all_projects, &ctx.row_context()),
                        widths,
                    );
                    // Agents rewrite their reports often; print only what changed.
                    if last
                        .insert((obj_project.clone(), name.clone()), text.clone())
                        .as_ref()
                        == Some(&text)
                    {
                        continue;
                    }
                    print!("{text}");
                } else {
                    // A deleted object is shown as it was: no status to read.
                    let object = if deleted {
                        object
                    } else {
                        match Context::load(store, kind, std::slice::from_ref(&object)).await {
                            Ok(ctx) => ctx.with_status(object),
                            Err(_) => object,
                        }
                    };
                    if args.output == OutputFormat::Json {
                        let text = watch_line(event, &object);
                        if last
                            .insert((obj_project.clone(), name.clone()), text.clone())
                            .as_ref()
                            == Some(&text)
                        {
                            continue;
                        }
                        println!("{text}");
                        use std::io::Write;
                        let _ = std::io::stdout().flush();
                        continue;
                    }
                    print_objects(std::slice::from_ref(&object), args.output, true);
                    if args.output == OutputFormat::Yaml {
                        println!("---");
                    }
                }
                use std::io::Write;
                let _ = std::io::stdout().flush();
            }
        }
    }
}

fn split_target(kind: Kind, project: Option<&str>, rest: &str) -> (Option<String>, String) {
    if kind.namespaced() && project.is_none() {
        match rest.split_once('/') {
            Some((p, n)) => (Some(p.into()), n.into()),
            None => (None, rest.into()),
        }
    } else {
        (project.map(str::to_string), rest.into())
    }
}
