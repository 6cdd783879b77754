//! Rendering objects: kubectl-like tables, YAML, JSON and `kind/name`.

use std::collections::BTreeMap;

use crate::resource::{Component, ComponentStatus, ConditionType, Kind, Node, Object, Reason};

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

/// Counts from the component's status, written by the coordinator; `None`
/// while it has none (just applied, not reached by a coordinator yet): the
/// CLI never rolls the agents' observed documents up itself.
pub fn counts(c: &Component) -> Option<Counts> {
    c.status.as_ref().map(status_counts)
}

/// What the spec alone says a component without a status wants: 0 when
/// stopped or killed, `replicas` when running; `None` for `perNode`, whose
/// count depends on the nodes (`nodes`, when given, decides it as the
/// coordinator would).
pub fn spec_desired(c: &Component, nodes: Option<&[Node]>) -> Option<u32> {
    use crate::resource::component::State;
    if c.spec.state != State::Running {
        return Some(0);
    }
    match (c.spec.placement.per_node, nodes) {
        (None, _) => Some(c.spec.placement.count()),
        (Some(k), Some(nodes)) => Some(k * eligible_nodes(c, nodes) as u32),
        (Some(_), None) => None,
    }
}

/// STATUS of a component without a status document: its spec's state, or
/// `Pending` (no coordinator has reached it yet).
pub fn pending_word(c: &Component) -> &'static str {
    use crate::resource::component::State;
    match c.spec.state {
        State::Stopped => "Stopped",
        State::Killed => "Killed",
        State::Running => "Pending",
    }
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

pub fn header(kind: Kind, wide: bool, all_projects: bool) -> Vec<&'static str> {
    let mut h = vec!["NAME"];
    if all_projects && kind.namespaced() {
        h.insert(0, "PROJECT");
    }
    match kind {
        Kind::Component => {
            h.extend(["READY", "UP-TO-DATE", "AVAILABLE", "STATUS", "AGE"]);
            if wide {
                h.extend(["IMAGE", "IMAGE ID", "REVISION", "PORTS"]);
            }
        }
        Kind::Project => h.extend(["COMPONENTS", "AGE"]),
        Kind::Node => {
            h.extend(["STATUS", "ROLE", "ADDRESS", "LAST SEEN", "AGE", "VERSION"]);
            if wide {
                h.extend(["DOCKER", "API", "LABELS"]);
            }
        }
    }
    h
}

/// Context a row needs beyond the object itself.
pub struct RowContext<'a> {
    pub components_per_project: &'a BTreeMap<String, usize>,
    /// No node holds the coordinator election: component status documents
    /// are stale.
    pub no_coordinator: bool,
    /// Wide component rows: the image ID pinned in each component's current
    /// revision, by (project, name); absent until a node started it.
    pub pins: &'a BTreeMap<(String, String), String>,
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
            match counts(c) {
                Some(n) => {
                    // Nobody updates a coordinator-written status any more:
                    // say so rather than show old counts as current.
                    let status = if ctx.no_coordinator {
                        "Stale".to_string()
                    } else {
                        status_word(c, &n)
                    };
                    r.extend([
                        format!("{}/{}", n.ready, n.desired),
                        n.updated.to_string(),
                        n.available.to_string(),
                        status,
                    ]);
                }
                // No status yet: what the spec wants, nothing guessed.
                None => {
                    let desired = spec_desired(c, None).map_or("-".into(), |d| d.to_string());
                    r.extend([
                        format!("-/{desired}"),
                        "-".into(),
                        "-".into(),
                        pending_word(c).into(),
                    ]);
                }
            }
            r.push(age);
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
                let key = (
                    c.metadata.project.clone().unwrap_or_default(),
                    c.metadata.name.clone(),
                );
                let image_id = ctx.pins.get(&key).map_or("-".into(), |id| {
                    crate::docker::image::short_id(id).to_string()
                });
                r.extend([c.spec.image.clone(), image_id, rev, ports.join(",")]);
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

/// STATUS, ROLE, ADDRESS, LAST SEEN, AGE, VERSION (and DOCKER, API, LABELS).
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
        cells.extend([
            or_none(st.docker_version),
            or_none(st.api_address),
            or_none(labels.join(",")),
        ]);
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
    // A rollout that waits or ended badly says so (the counts alone would
    // read "Progressing" forever after a rollback).
    let rollout = c.status.as_ref().and_then(|s| s.rollout.as_ref());
    if let Some(r) = rollout {
        use crate::resource::RolloutPhase::*;
        if matches!(r.phase, Paused | CanaryWaiting | Failed | RolledBack) {
            return r.phase.to_string();
        }
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
                crate::resource::meta::list_json(objs.iter().map(Object::to_json).collect())
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
