//! `berth describe KIND NAME`: everything a person needs about one object.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::args::{DescribeArgs, EtcdArgs};
use super::output::{counts, spec_desired, Table};
use super::CliError;
use crate::resource::component::Check;
use futures::{StreamExt, TryStreamExt};

use crate::resource::{Component, ComponentStatus, Object, Observed, Revision};
use crate::store::{Store, StoreError};

pub async fn run(etcd: &EtcdArgs, args: DescribeArgs) -> Result<ExitCode, CliError> {
    let kind = args.kind.0;
    let missing = "describe needs a name: berth describe KIND NAME (or KIND/NAME)";
    let name = args
        .kind
        .one_name(args.name.as_ref(), missing)
        .map_err(CliError::Usage)?;
    let project = kind.namespaced().then_some(args.project.as_str());
    let store = Store::connect(&etcd.store_config()).await?;
    let stored = store
        .get(kind, project, &name)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("{}/{}", kind.lower(), name)))?;
    let text = match &stored.object {
        Object::Component(c) => {
            let p = project.unwrap_or_default();
            let revisions = store.revisions(p, &name).await?;
            // The nodes: describe says which are eligible and why not.
            let nodes = nodes(&store).await?;
            // Only this component's observed documents, one read per node:
            // those its status names, or (no status yet) every listed node.
            let on: Vec<&String> = match &c.status {
                Some(st) => st.nodes.keys().collect(),
                None => nodes.iter().map(|n| &n.metadata.name).collect(),
            };
            let observed = observed_on(&store, p, &name, on.into_iter()).await?;
            let coordinator = store.coordinator().await?;
            let mut text = describe_component(c, &observed, &revisions, &nodes);
            text.insert_str(
                status_line_at(&text),
                &status_line(c.status.as_ref(), coordinator.as_deref()),
            );
            text.push_str(&super::describe_services::sections(&store, c).await?);
            text
        }
        Object::Node(n) => {
            let mut s = header(&stored.object);
            s.push_str(&node_lines(n));
            s.push_str(&super::output::yaml(&serde_json::json!({
                "spec": stored.object.spec_json(),
                "status": stored.object.to_json().get("status").cloned().unwrap_or(serde_json::Value::Null),
            })));
            s
        }
        other => {
            let mut s = header(other);
            s.push_str(&super::output::yaml(&serde_json::json!({
                "spec": other.spec_json(),
                "status": other.to_json().get("status").cloned().unwrap_or(serde_json::Value::Null),
            })));
            s
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

async fn nodes(store: &Store) -> Result<Vec<crate::resource::Node>, CliError> {
    Ok(store
        .list(crate::resource::Kind::Node, None)
        .await?
        .into_iter()
        .filter_map(|s| match s.object {
            Object::Node(n) => Some(n),
            _ => None,
        })
        .collect())
}

/// The observed documents of one component on the given nodes.
async fn observed_on(
    store: &Store,
    project: &str,
    component: &str,
    nodes: impl Iterator<Item = &String>,
) -> Result<Vec<Observed>, CliError> {
    let keys: Vec<String> = nodes
        .map(|n| store.keys().observed(n, project, component))
        .collect();
    let found: Vec<Option<Vec<u8>>> = futures::stream::iter(keys)
        .map(|k| async move { store.get_raw(&k).await })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(found
        .into_iter()
        .flatten()
        .filter_map(|v| serde_json::from_slice(&v).ok())
        .collect())
}

/// Where the status line goes: after the `Replicas:` line.
fn status_line_at(text: &str) -> usize {
    text.find("Replicas:")
        .and_then(|i| text[i..].find('\n').map(|j| i + j + 1))
        .unwrap_or(text.len())
}

/// Who wrote the status and when, or that it is stale, or that there is
/// none yet.
fn status_line(st: Option<&ComponentStatus>, coordinator: Option<&str>) -> String {
    let Some(st) = st else {
        return match coordinator {
            None => "Status:       none yet (no coordinator running)\n".into(),
            Some(_) => "Status:       none yet (the coordinator has not reached it)\n".into(),
        };
    };
    let when = st.last_update.as_deref().unwrap_or("an unknown time");
    let mut s = match coordinator {
        None => format!("Status:       stale since {when} (no coordinator running)\n"),
        Some(_) => format!(
            "Status:       written {when} by coordinator {}\n",
            st.coordinator.as_deref().unwrap_or("?")
        ),
    };
    if st.nodes.is_empty() {
        return s;
    }
    s.push_str("Nodes:\n");
    let mut t = Table::new(&[
        "  NODE", "DESIRED", "CURRENT", "READY", "DRAINING", "REVISION",
    ]);
    for (node, n) in &st.nodes {
        t.row(vec![
            format!("  {node}"),
            n.desired.to_string(),
            n.current.to_string(),
            n.ready.to_string(),
            n.draining.to_string(),
            n.revision.map(|r| r.to_string()).unwrap_or_default(),
        ]);
    }
    s.push_str(&t.render());
    s
}

/// Status, role, address and last heartbeat of a node.
fn node_lines(n: &crate::resource::Node) -> String {
    let st = n.status.clone().unwrap_or_default();
    let role = n
        .metadata
        .annotations
        .get(crate::store::ROLE_ANNOTATION)
        .map_or("<none>", String::as_str);
    format!(
        "Status:       {}\nRole:         {role}\nAddress:      {}\nAPI:          {}\nLast seen:    {} ({} ago)\n",
        super::output::node_status_word(n),
        if st.address.is_empty() {
            "<none>"
        } else {
            &st.address
        },
        if st.api_address.is_empty() {
            "<none>"
        } else {
            &st.api_address
        },
        st.last_heartbeat.as_deref().unwrap_or("?"),
        crate::util::age(st.last_heartbeat.as_deref()),
    )
}

fn header(o: &Object) -> String {
    let m = o.metadata();
    let mut s = String::new();
    let _ = writeln!(s, "Name:         {}", m.name);
    if let Some(p) = o.project() {
        let _ = writeln!(s, "Project:      {p}");
    }
    let _ = writeln!(s, "Kind:         {}", o.kind().name());
    let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        s,
        "Labels:       {}",
        if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(",")
        }
    );
    let _ = writeln!(
        s,
        "Created:      {} ({} ago)",
        m.creation_timestamp.as_deref().unwrap_or("?"),
        crate::util::age(m.creation_timestamp.as_deref())
    );
    let _ = writeln!(s, "UID:          {}", m.uid.as_deref().unwrap_or("?"));
    s
}

fn check_line(c: &Check) -> String {
    use crate::resource::component::Probe;
    let probe = match c.probe() {
        Some(Probe::Http(h)) => format!("http :{}{}", h.port, h.path),
        Some(Probe::Tcp(t)) => format!("tcp :{}", t.port),
        Some(Probe::Exec(e)) => format!("exec {}", e.command.join(" ")),
        None => "invalid".into(),
    };
    let mut s = probe;
    if let Some(i) = c.interval {
        let _ = write!(s, " every {i}");
    }
    if let Some(t) = c.timeout {
        let _ = write!(s, " timeout {t}");
    }
    if let Some(f) = c.failure_threshold {
        let _ = write!(s, " failureThreshold {f}");
    }
    s
}

fn describe_component(
    c: &Component,
    observed: &[Observed],
    revisions: &[Revision],
    nodes: &[crate::resource::Node],
) -> String {
    let obj = Object::Component(c.clone());
    let mut s = header(&obj);
    let spec = &c.spec;
    let m = &c.metadata;
    let gen = m.generation.unwrap_or(0);
    let observed_gen = c.status.as_ref().map(|st| st.observed_generation);
    let _ = writeln!(
        s,
        "Generation:   {gen}{}",
        observed_gen
            .map(|g| format!(" (observed {g})"))
            .unwrap_or_default()
    );
    let _ = writeln!(
        s,
        "Revision:     {}",
        m.annotations
            .get(crate::store::REVISION_ANNOTATION)
            .map_or("?", String::as_str)
    );
    let _ = writeln!(s, "Image:        {}", spec.image);
    if !spec.command.is_empty() {
        let _ = writeln!(s, "Command:      {}", spec.command.join(" "));
    }
    for (k, v) in &spec.env {
        let _ = writeln!(s, "Env:          {k}={v}");
    }
    for p in &spec.ports {
        let _ = writeln!(
            s,
            "Port:         {}{}{}",
            p.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default(),
            p.container,
            p.external
                .map(|e| format!(" (external {e})"))
                .unwrap_or_default()
        );
    }
    let pl = &spec.placement;
    let mut placement = match pl.per_node {
        Some(n) => format!("perNode {n}"),
        None => format!("replicas {}", pl.count()),
    };
    if !pl.node_selector.is_empty() {
        let sel: Vec<String> = pl
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = write!(placement, ", nodeSelector {}", sel.join(","));
    }
    if !pl.nodes.is_empty() {
        let _ = write!(placement, ", nodes {}", pl.nodes.join(","));
    }
    let _ = writeln!(s, "Placement:    {placement}");
    let _ = writeln!(s, "Nodes:        {}", eligibility_line(c, nodes));
    for c in &spec.ready_checks {
        let _ = writeln!(s, "Ready check:  {}", check_line(c));
    }
    for c in &spec.health_checks {
        let _ = writeln!(s, "Health check: {}", check_line(c));
    }
    let _ = writeln!(s, "State:        {:?}", spec.state);
    match counts(c) {
        Some(n) => {
            let _ = writeln!(
                s,
                "Replicas:     {} desired | {} ready | {} up-to-date | {} available",
                n.desired, n.ready, n.updated, n.available
            );
        }
        // No status yet: what the spec wants, nothing guessed.
        None => {
            let desired = spec_desired(c, Some(nodes)).map_or("-".into(), |d| d.to_string());
            let _ = writeln!(
                s,
                "Replicas:     {desired} desired | - ready | - up-to-date | - available"
            );
        }
    }
    let mut conditions: Vec<(String, crate::resource::Condition)> = Vec::new();
    if let Some(st) = &c.status {
        conditions.extend(st.conditions.iter().map(|c| ("".to_string(), c.clone())));
    }
    for o in observed {
        conditions.extend(o.conditions.iter().map(|c| (o.node.clone(), c.clone())));
    }
    s.push_str("Conditions:\n");
    if conditions.is_empty() {
        s.push_str("  <none>\n");
    } else {
        let mut t = Table::new(&["  TYPE", "STATUS", "NODE", "REASON", "MESSAGE"]);
        for (node, c) in conditions {
            t.row(vec![
                format!("  {}", c.type_),
                c.status,
                node,
                c.reason,
                c.message,
            ]);
        }
        s.push_str(&t.render());
    }
    s.push_str("Containers:\n");
    let all: Vec<(&Observed, &crate::resource::observed::ObservedContainer)> = observed
        .iter()
        .flat_map(|o| o.containers.iter().map(move |c| (o, c)))
        .collect();
    if all.is_empty() {
        s.push_str("  <none>\n");
    } else {
        let mut t = Table::new(&[
            "  NODE",
            "CONTAINER",
            "IMAGE ID",
            "STATE",
            "REVISION",
            "RESTARTS",
            "AGE",
            "PORTS",
            "LAST EXIT",
        ]);
        for (o, ct) in all {
            let ports: Vec<String> = ct
                .ports
                .iter()
                .map(|(c, h)| format!("127.0.0.1:{h}->{c}"))
                .collect();
            let exit = match (&ct.last_exit_code, &ct.last_reason) {
                (Some(code), Some(r)) => format!("{code} ({r})"),
                (Some(code), None) => code.to_string(),
                (None, Some(r)) => r.clone(),
                (None, None) => String::new(),
            };
            t.row(vec![
                format!("  {}", o.node),
                ct.id.chars().take(12).collect(),
                image_id_cell(o.image_id_of(&ct.id)),
                state_cell(ct, std::time::SystemTime::now()),
                ct.revision.to_string(),
                ct.restarts.to_string(),
                crate::util::age(ct.started_at.as_deref()),
                ports.join(","),
                exit,
            ]);
        }
        s.push_str(&t.render());
    }
    s.push_str("Revisions:\n");
    let mut t = Table::new(&[
        "  REVISION",
        "HASH",
        "IMAGE",
        "IMAGE ID",
        "CREATED",
        "CHANGE-CAUSE",
    ]);
    for r in revisions {
        t.row(vec![
            format!("  {}", r.seq),
            r.hash.clone(),
            r.template.image.clone(),
            image_id_cell(r.pin.as_ref().map(|p| p.image_id.as_str())),
            r.created.clone(),
            r.change_cause.clone(),
        ]);
    }
    s.push_str(&t.render());
    let mut events: Vec<(&str, &crate::resource::observed::Event)> = observed
        .iter()
        .flat_map(|o| o.events.iter().map(move |e| (o.node.as_str(), e)))
        .collect();
    events.sort_by(|a, b| a.1.time.cmp(&b.1.time));
    s.push_str("Events:\n");
    if events.is_empty() {
        s.push_str("  <none>\n");
    } else {
        let mut t = Table::new(&["  TIME", "NODE", "REASON", "MESSAGE"]);
        for (node, e) in events {
            t.row(vec![
                format!("  {}", e.time),
                node.into(),
                e.reason.clone(),
                e.message.clone(),
            ]);
        }
        s.push_str(&t.render());
    }
    s
}

/// An image ID in its 12-hex short form (as `docker images` shows it), or
/// `-` when unknown (an older agent, or a revision not pinned yet).
fn image_id_cell(id: Option<&str>) -> String {
    id.map_or("-".into(), |id| {
        crate::docker::image::short_id(id).to_string()
    })
}

/// `eligible: n1, n2; not: n3 (cordoned), n4 (not ready)`.
fn eligibility_line(c: &Component, nodes: &[crate::resource::Node]) -> String {
    let all = super::output::eligibility(c, nodes);
    let ok: Vec<&str> = all
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(n, _)| n.as_str())
        .collect();
    let not: Vec<String> = all
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|why| format!("{n} ({why})")))
        .collect();
    let mut line = match ok.is_empty() {
        true => "none eligible".to_string(),
        false => format!("eligible: {}", ok.join(", ")),
    };
    if !not.is_empty() {
        line.push_str(&format!("; not: {}", not.join(", ")));
    }
    line
}

/// The STATE of a container; a draining one says how many connections
/// (tcp) or requests (http) are still open and how long until its stop
/// signals: `draining (3 open, 42s left)`.
fn state_cell(
    c: &crate::resource::observed::ObservedContainer,
    now: std::time::SystemTime,
) -> String {
    let Some(d) = &c.drain else {
        return c.phase_label();
    };
    let left = humantime::parse_rfc3339(&d.until)
        .ok()
        .map(|until| until.duration_since(now).unwrap_or_default().as_secs());
    match left {
        Some(s) => format!("{} ({} open, {s}s left)", c.phase, d.open),
        None => format!("{} ({} open)", c.phase, d.open),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::observed::{ContainerPhase, Drain, ObservedContainer};

    #[test]
    fn a_draining_container_shows_open_connections_and_time_left() {
        let now = humantime::parse_rfc3339("2026-01-01T00:00:00Z").expect("time");
        let mut c = ObservedContainer {
            phase: ContainerPhase::Draining,
            drain: Some(Drain {
                since: "2025-12-31T23:59:30Z".into(),
                until: "2026-01-01T00:00:42Z".into(),
                open: 3,
            }),
            ..Default::default()
        };
        assert_eq!(state_cell(&c, now), "draining (3 open, 42s left)");
        c.drain = None;
        c.phase = ContainerPhase::Ready;
        assert_eq!(state_cell(&c, now), "ready");
        c.evicting = true;
        assert_eq!(state_cell(&c, now), "ready,evicting");
    }

    /// The IMAGE ID column: each container's image in its short form under
    /// its header (`-` when the agent did not say), and each revision's pin.
    #[test]
    fn image_ids_per_container_and_revision() {
        let c: Component = serde_json::from_value(serde_json::json!({
            "apiVersion": "berth/v1", "kind": "Component",
            "metadata": {"name": "web", "project": "shop"},
            "spec": {"image": "web:1"},
        }))
        .expect("component");
        let x = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let ctr = |id: &str| ObservedContainer {
            id: id.into(),
            name: "n".into(),
            revision: 1,
            hash: "h1".into(),
            phase: ContainerPhase::Ready,
            ..Default::default()
        };
        let observed = vec![
            Observed {
                node: "node-one".into(),
                containers: vec![ctr("c1")],
                image_ids: [("c1".to_string(), x.clone())].into(),
                ..Default::default()
            },
            Observed {
                node: "n2".into(),
                containers: vec![ctr("c2")],
                ..Default::default()
            },
        ];
        let revision = Revision {
            seq: 1,
            hash: "h1".into(),
            template: c.spec.template(),
            change_cause: "created".into(),
            created: "2026-01-01T00:00:00Z".into(),
            pin: Some(crate::resource::component::ImagePin {
                image_id: x.clone(),
                repo_digest: None,
                node: "node-one".into(),
                pinned_at: String::new(),
            }),
        };
        let text = describe_component(&c, &observed, &[revision], &[]);
        let lines: Vec<&str> = text.lines().collect();
        let at = |prefix: &str| {
            *lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no line {prefix:?} in\n{text}"))
        };
        let column = at("  NODE").find("IMAGE ID").expect("IMAGE ID header");
        assert_eq!(&at("  node-one")[column..column + 13], "0123456789ab ");
        assert_eq!(&at("  n2 ")[column..column + 2], "- ");
        let column = at("  REVISION").find("IMAGE ID").expect("IMAGE ID header");
        assert_eq!(&at("  1 ")[column..column + 12], "0123456789ab");
    }
}
