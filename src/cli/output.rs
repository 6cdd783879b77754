//! Rendering objects: kubectl-like tables, YAML, JSON and `kind/name`.

use std::collections::BTreeMap;

use crate::resource::{
    Component, ComponentStatus, Condition, ConditionType, Kind, Node, Object, Observed, Reason,
};

/// A plain-text table with columns padded to the widest cell, 3 spaces apart.
#[derive(Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    /// Column widths: the widest cell of each column.
    pub fn widths(&self) -> Vec<usize> {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    pub fn render(&self) -> String {
        let widths = self.widths();
        self.rows.iter().map(|r| line(r, &widths)).collect()
    }
}

/// One table line padded to `widths` (a cell wider than its column pushes
/// the rest right, as kubectl's watch rows do).
pub fn line(cells: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    for (c, cell) in cells.iter().enumerate() {
        if c + 1 == cells.len() {
            out.push_str(cell);
        } else {
            let w = widths.get(c).copied().unwrap_or(0);
            out.push_str(&format!("{cell:<w$}   "));
        }
    }
    let mut out = out.trim_end().to_string();
    out.push('\n');
    out
}

/// Replica counts of a component as `get` shows them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    pub desired: u32,
    pub ready: u32,
    pub updated: u32,
    pub available: u32,
    pub crash_loop: bool,
    /// No registered node is eligible.
    pub unschedulable: bool,
    /// Containers seen, and those that exited with code 0 / otherwise.
    pub containers: u32,
    pub completed: u32,
    pub failed: u32,
    pub conditions: Vec<String>,
}

/// What placement sees of the nodes `get`/`describe` listed: the agent's
/// labels with the user's on top, Ready, cordoned and draining.
pub fn node_views(nodes: &[Node]) -> Vec<crate::placement::NodeView> {
    nodes
        .iter()
        .map(|n| {
            let mut labels = n
                .status
                .as_ref()
                .map(|s| s.labels.clone())
                .unwrap_or_default();
            labels.extend(n.metadata.labels.clone());
            crate::placement::NodeView {
                name: n.metadata.name.clone(),
                labels,
                ready: n.is_ready(),
                cordoned: n.spec.unschedulable || n.spec.drain,
                draining: n.spec.drain,
            }
        })
        .collect()
}

/// Each node's eligibility for `c`, by the coordinator's own rules
/// (`crate::placement`).
pub fn eligibility(
    c: &Component,
    nodes: &[Node],
) -> Vec<(String, Result<(), crate::placement::Ineligible>)> {
    crate::placement::eligibility(&c.spec.placement, &node_views(nodes))
}

/// How many nodes `c` may get new replicas on.
pub fn eligible_nodes(c: &Component, nodes: &[Node]) -> usize {
    eligibility(c, nodes)
        .iter()
        .filter(|(_, r)| r.is_ok())
        .count()
}

/// Counts from the component's status when the coordinator wrote one, else
/// rolled up from the agents' observed documents.
pub fn counts(c: &Component, observed: &[&Observed], nodes: &[Node]) -> Counts {
    use crate::resource::component::State;
    use crate::resource::observed::ContainerPhase;
    if let Some(st) = &c.status {
        return status_counts(st);
    }
    let placement = &c.spec.placement;
    let eligible = eligible_nodes(c, nodes);
    // As the coordinator places them: perNode on every eligible node, else
    // the total (pinned or not).
    let desired = match placement.per_node {
        Some(n) => n * eligible as u32,
        None => placement.count(),
    };
    let running = c.spec.state == State::Running;
    let mut out = Counts {
        desired: if running { desired } else { 0 },
        unschedulable: running && eligible == 0,
        ..Default::default()
    };
    let hash = c
        .metadata
        .annotations
        .get(crate::store::HASH_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let min_ready = c
        .spec
        .rollout()
        .min_ready
        .map(|d| d.std())
        .unwrap_or_default();
    for o in observed {
        for ct in &o.containers {
            let leaving = matches!(
                ct.phase,
                ContainerPhase::Stopping | ContainerPhase::Draining | ContainerPhase::Stopped
            );
            let ready = ct.phase == ContainerPhase::Ready;
            out.ready += u32::from(ready);
            out.updated += u32::from(!leaving && ct.hash == hash);
            // Like a Deployment's AVAILABLE: ready for at least minReady,
            // whatever its revision (old replicas still serve during a rollout).
            out.available += u32::from(ready && ready_for(ct.ready_since.as_deref(), min_ready));
            out.crash_loop |= ct.phase == ContainerPhase::CrashLoop;
            if ct.phase == ContainerPhase::Exited {
                match ct.last_exit_code {
                    Some(0) => out.completed += 1,
                    _ => out.failed += 1,
                }
            }
            out.containers += 1;
        }
        for cond in &o.conditions {
            if cond.is_true() && !out.conditions.contains(&cond.type_) {
                out.conditions.push(cond.type_.clone());
            }
        }
    }
    out
}

/// Counts as the coordinator's status states them (it decides what is
/// desired and whether the component can be placed).
fn status_counts(st: &ComponentStatus) -> Counts {
    let degraded = st
        .conditions
        .iter()
        .find(|c| c.is(ConditionType::Degraded) && c.is_true());
    let because = |r: Reason| degraded.is_some_and(|c| c.reason == r.as_str());
    let mut conditions: Vec<String> = st
        .conditions
        .iter()
        .filter(|c| c.is_true())
        .map(|c| c.type_.clone())
        .collect();
    // The coordinator says what is wrong in Degraded's reason.
    if because(Reason::Unschedulable) {
        conditions.push(ConditionType::Unschedulable.to_string());
    }
    Counts {
        desired: st.replicas,
        ready: st.ready_replicas,
        updated: st.updated_replicas,
        available: st.available_replicas,
        containers: st.current_replicas + st.draining_replicas,
        completed: st.completed_replicas,
        failed: st.failed_replicas,
        crash_loop: because(Reason::CrashLoop),
        unschedulable: because(Reason::Unschedulable),
        conditions,
    }
}

/// The status `get -o yaml|json` shows when no controller wrote one: the
/// same roll-up as the table's columns, plus the agents' conditions.
pub fn rolled_up_status(c: &Component, observed: &[&Observed], nodes: &[Node]) -> ComponentStatus {
    let n = counts(c, observed, nodes);
    let mut conditions: Vec<Condition> = Vec::new();
    for o in observed {
        for cond in &o.conditions {
            if !conditions.iter().any(|x| x.type_ == cond.type_) {
                conditions.push(cond.clone());
            }
        }
    }
    let word = status_word(c, &n);
    // Derived at read time: no transition time to report.
    let derived = |type_: ConditionType, ok: bool, reason: &str, message: String| Condition {
        last_transition_time: None,
        ..Condition::with_reason(type_, ok, reason, message)
    };
    conditions.push(derived(
        ConditionType::Available,
        n.available >= n.desired,
        if n.available >= n.desired {
            Reason::MinimumReplicasAvailable.as_str()
        } else {
            Reason::MinimumReplicasUnavailable.as_str()
        },
        format!("{}/{} available", n.available, n.desired),
    ));
    let done = n.updated >= n.desired && n.ready >= n.desired;
    conditions.push(derived(
        ConditionType::Progressing,
        !done,
        &word,
        format!(
            "{}/{} updated, {}/{} ready",
            n.updated, n.desired, n.ready, n.desired
        ),
    ));
    let revision = c
        .metadata
        .annotations
        .get(crate::store::REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok());
    ComponentStatus {
        observed_generation: observed.iter().map(|o| o.generation).min().unwrap_or(0),
        replicas: n.desired,
        ready_replicas: n.ready,
        updated_replicas: n.updated,
        available_replicas: n.available,
        current_revision: if done { revision } else { None },
        update_revision: revision,
        conditions,
        ..Default::default()
    }
}

/// Whether a container ready since `since` has been ready for `min_ready`.
fn ready_for(since: Option<&str>, min_ready: std::time::Duration) -> bool {
    if min_ready.is_zero() {
        return true;
    }
    since
        .and_then(crate::util::parse_rfc3339)
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .is_some_and(|d| d >= min_ready)
}

/// Observed documents grouped by (project, component).
pub type ObservedIndex = BTreeMap<(String, String), Vec<Observed>>;

pub fn header(kind: Kind, wide: bool, all_projects: bool) -> Vec<&'static str> {
    let mut h = vec!["NAME"];
    if all_projects && kind.namespaced() {
        h.insert(0, "PROJECT");
    }
    match kind {
        Kind::Component => {
            h.extend(["READY", "UP-TO-DATE", "AVAILABLE", "STATUS", "AGE"]);
            if wide {
                h.extend(["IMAGE", "REVISION", "PORTS"]);
            }
        }
        Kind::Project => h.extend(["COMPONENTS", "AGE"]),
        Kind::Node => {
            h.extend(["STATUS", "ROLE", "ADDRESS", "LAST SEEN", "AGE", "VERSION"]);
            if wide {
                h.extend(["DOCKER", "LABELS"]);
            }
        }
    }
    h
}

/// Context a row needs beyond the object itself.
pub struct RowContext<'a> {
    pub observed: &'a ObservedIndex,
    pub nodes: &'a [Node],
    pub components_per_project: &'a BTreeMap<String, usize>,
    /// No node holds the coordinator election: component status documents
    /// are stale.
    pub no_coordinator: bool,
}

pub fn row(obj: &Object, wide: bool, all_projects: bool, ctx: &RowContext) -> Vec<String> {
    let meta = obj.metadata();
    let mut r = vec![meta.name.clone()];
    if all_projects && obj.kind().namespaced() {
        r.insert(0, obj.project().unwrap_or_default().to_string());
    }
    let age = crate::util::age(meta.creation_timestamp.as_deref());
    match obj {
        Object::Component(c) => {
            let key = (
                obj.project().unwrap_or_default().to_string(),
                meta.name.clone(),
            );
            let obs: Vec<&Observed> = ctx
                .observed
                .get(&key)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            let n = counts(c, &obs, ctx.nodes);
            // Nobody updates a coordinator-written status any more: say so
            // rather than show old counts as current.
            let status = if c.status.is_some() && ctx.no_coordinator {
                "Stale".to_string()
            } else {
                status_word(c, &n)
            };
            r.extend([
                format!("{}/{}", n.ready, n.desired),
                n.updated.to_string(),
                n.available.to_string(),
                status,
                age,
            ]);
            if wide {
                let rev = meta
                    .annotations
                    .get(crate::store::REVISION_ANNOTATION)
                    .cloned()
                    .unwrap_or_default();
                let ports: Vec<String> = c
                    .spec
                    .ports
                    .iter()
                    .map(|p| match p.external {
                        Some(e) => format!("{e}->{}", p.container),
                        None => p.container.to_string(),
                    })
                    .collect();
                r.extend([c.spec.image.clone(), rev, ports.join(",")]);
            }
        }
        Object::Project(p) => {
            let n = ctx
                .components_per_project
                .get(&p.metadata.name)
                .copied()
                .unwrap_or(0);
            r.extend([n.to_string(), age]);
        }
        Object::Node(node) => r.extend(node_cells(node, wide)),
    }
    r
}

/// STATUS, ROLE, ADDRESS, LAST SEEN, AGE, VERSION (and DOCKER, LABELS).
fn node_cells(node: &Node, wide: bool) -> Vec<String> {
    let st = node.status.clone().unwrap_or_default();
    let or_none = |s: String| if s.is_empty() { "<none>".into() } else { s };
    let role = node
        .metadata
        .annotations
        .get(crate::store::ROLE_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    let mut cells = vec![
        node_status_word(node),
        or_none(role),
        or_none(st.address),
        crate::util::age(st.last_heartbeat.as_deref()),
        crate::util::age(node.metadata.creation_timestamp.as_deref()),
        or_none(st.agent_version),
    ];
    if wide {
        let labels: Vec<String> = node
            .metadata
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        cells.extend([or_none(st.docker_version), or_none(labels.join(","))]);
    }
    cells
}

/// `Ready`, `NotReady` or `Unknown` (no agent ever registered, no record),
/// then `,Cordoned` (spec.unschedulable) or `,Draining` (spec.drain, which
/// implies a cordon): kubectl's `Ready,SchedulingDisabled` in berth's words.
pub fn node_status_word(node: &Node) -> String {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.is(ConditionType::Ready)))
        .map(|c| c.is_true());
    let mut status = match ready {
        Some(true) => "Ready".to_string(),
        Some(false) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.spec.drain {
        status.push_str(",Draining");
    } else if node.spec.unschedulable {
        status.push_str(",Cordoned");
    }
    status
}

/// One word for the STATUS column: the most important thing to know.
fn status_word(c: &Component, n: &Counts) -> String {
    use crate::resource::component::{RestartPolicy, State};
    match c.spec.state {
        State::Stopped => return "Stopped".into(),
        State::Killed => return "Killed".into(),
        State::Running => {}
    }
    if n.crash_loop {
        return "CrashLoop".into();
    }
    for bad in [
        "ImagePullFailed",
        "Forbidden",
        "StartFailed",
        "Unschedulable",
        "Failed",
        "Degraded",
    ] {
        if n.conditions.iter().any(|c| c == bad) {
            return bad.into();
        }
    }
    if n.unschedulable && n.containers == 0 {
        return "Unschedulable".into();
    }
    // Run-to-completion components: every container has exited for good.
    let finished = n.containers > 0 && n.completed + n.failed == n.containers;
    if finished && c.spec.restart_policy != RestartPolicy::Always {
        return if n.failed > 0 { "Failed" } else { "Completed" }.into();
    }
    if n.desired == 0 {
        "Idle".into()
    } else if n.updated >= n.desired && n.available >= n.desired && n.ready >= n.desired {
        "Running".into()
    } else {
        "Progressing".into()
    }
}

/// YAML of one object.
pub fn yaml(value: &serde_json::Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot render YAML: {e}\n"))
}

pub fn print_objects(objs: &[Object], format: super::args::OutputFormat, single: bool) {
    use super::args::OutputFormat::*;
    match format {
        Json => {
            let v = if single && objs.len() == 1 {
                objs[0].to_json()
            } else {
                serde_json::json!({
                    "apiVersion": crate::resource::API_VERSION,
                    "kind": "List",
                    "items": objs.iter().map(Object::to_json).collect::<Vec<_>>(),
                })
            };
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        Yaml => {
            for (i, o) in objs.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", yaml(&o.to_json()));
            }
        }
        Name => {
            for o in objs {
                println!("{}", o.display_name());
            }
        }
        Table | Wide => {}
    }
}
