//! The config loop: endpoint changes (debounced) and new containers →
//! render every file of every container that has `configs` → write what
//! changed into the container → reload it. Each pass reads the endpoint
//! cache once ([`Snapshot`]) and renders each distinct output once (the
//! containers of one component share their file's bytes).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::NodeServices;
use crate::docker::files::FileInContainer;
use crate::resource::component::State;
use crate::resource::configs::{ConfigFile, ReloadAction};
use crate::resource::endpoint::Endpoint;
use crate::resource::{ComponentKey, Condition, ConditionType, Reason};
use crate::services::config::{self, Context, Debounce, DebounceConfig, Decision};

/// Bounds a reload command (Docker cannot kill an exec; the result is
/// reported as a timeout).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// One file of one container: its debounce and settings.
type FileKey = (String, String);

pub async fn run(
    s: Arc<NodeServices>,
    mut changes: mpsc::UnboundedReceiver<()>,
    stop: CancellationToken,
) {
    // Each file debounces on its own (its own `debounce`); every endpoint
    // change touches every file (which sources changed is not worth
    // tracking: a render with nothing changed writes nothing).
    let mut pending: HashMap<FileKey, (Debounce, DebounceConfig)> = HashMap::new();
    let mut snap = Snapshot::take(&s);
    loop {
        let due = pending
            .iter()
            .filter_map(|(k, (d, cfg))| d.due(*cfg, snap.settled(&s, k)))
            .min();
        let kicked = tokio::select! {
            _ = stop.cancelled() => return,
            c = changes.recv() => {
                if c.is_none() {
                    return;
                }
                // A burst (a relist) is one change: one snapshot, not one
                // per endpoint.
                while changes.try_recv().is_ok() {}
                let now = Instant::now();
                for (key, cfg) in files(&s) {
                    pending.entry(key).or_insert((Debounce::Idle, cfg)).0.changed(now);
                }
                false
            }
            _ = s.kick.notified() => true,
            _ = async {
                match due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => false,
        };
        // One read of the endpoints per pass: settled, fired and rendered
        // below all see the same ones (a later change wakes the loop again).
        snap = Snapshot::take(&s);
        let fired = fire(&s, &snap, &mut pending, kicked);
        if !fired.is_empty() {
            render(&s, &snap, &fired).await;
        }
    }
}

/// The files whose debounce fires now, plus (after a kick) every file of
/// the containers registered since the last look.
fn fire(
    s: &NodeServices,
    snap: &Snapshot,
    pending: &mut HashMap<FileKey, (Debounce, DebounceConfig)>,
    kicked: bool,
) -> HashSet<FileKey> {
    let now = Instant::now();
    let mut fired: HashSet<FileKey> = HashSet::new();
    for (key, (d, cfg)) in pending.iter_mut() {
        // Settled again now: a change may have completed the wave.
        if d.fire(*cfg, now, snap.settled(s, key)) {
            fired.insert(key.clone());
        }
    }
    pending.retain(|_, (d, _)| *d != Debounce::Idle);
    if kicked {
        // Only the new containers' files: the others keep their debounce.
        let fresh = std::mem::take(&mut s.inner().fresh);
        fired.extend(
            files(s)
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| fresh.contains(&k.0)),
        );
    }
    fired
}

/// The endpoint cache as read once per pass, and how many endpoints each
/// `(project, component)` has.
struct Snapshot {
    endpoints: Vec<Arc<Endpoint>>,
    counts: HashMap<(String, String), usize>,
}

impl Snapshot {
    fn take(s: &NodeServices) -> Snapshot {
        let endpoints = s.endpoints.state();
        let mut counts = HashMap::new();
        for e in &endpoints {
            *counts
                .entry((e.project.clone(), e.component.clone()))
                .or_insert(0) += 1;
        }
        Snapshot { endpoints, counts }
    }

    /// Whether the sources of one file have every endpoint their specs want
    /// (see [`config::settled`]); a file no longer running counts as settled.
    fn settled(&self, s: &NodeServices, (id, path): &FileKey) -> bool {
        let (ck, sources) = {
            let inner = s.inner();
            let Some(r) = inner.running.get(id) else {
                return true;
            };
            let Some(f) = r.template.configs.iter().find(|f| &f.path == path) else {
                return true;
            };
            (r.ck.clone(), f.sources.clone())
        };
        let counts: Vec<(usize, Option<u32>)> = sources
            .iter()
            .map(|src| {
                let (p, c) = config::context::source_key(&ck.project, src);
                let have = self
                    .counts
                    .get(&(p.to_string(), c.to_string()))
                    .copied()
                    .unwrap_or(0);
                (have, wanted(s, p, c))
            })
            .collect();
        config::settled(&counts)
    }
}

/// The replicas `p/c`'s spec wants, when it says (running, not per node).
fn wanted(s: &NodeServices, p: &str, c: &str) -> Option<u32> {
    let spec = s
        .specs
        .get(&s.keys.component_spec(&ComponentKey::new(p, c)))?;
    let pl = &spec.1.placement;
    match (pl.per_node, spec.1.state == State::Running) {
        (None, true) => Some(pl.replicas.unwrap_or(1)),
        _ => None,
    }
}

/// Every file of every running container, with its debounce.
fn files(s: &NodeServices) -> Vec<(FileKey, DebounceConfig)> {
    s.inner()
        .running
        .iter()
        .flat_map(|(id, r)| {
            r.template
                .configs
                .iter()
                .map(|f| ((id.clone(), f.path.clone()), f.debounce()))
        })
        .collect()
}

/// One file of one container to bring up to date.
#[derive(Clone, Debug, PartialEq)]
struct Job {
    id: String,
    ck: ComponentKey,
    file: ConfigFile,
    last: Option<String>,
}

/// The files `only` names, as jobs.
fn jobs(s: &NodeServices, only: &HashSet<FileKey>) -> Vec<Job> {
    let inner = s.inner();
    inner
        .running
        .iter()
        .flat_map(|(id, r)| {
            r.template
                .configs
                .iter()
                .filter(|f| only.contains(&(id.clone(), f.path.clone())))
                .map(|f| Job {
                    id: id.clone(),
                    ck: r.ck.clone(),
                    file: f.clone(),
                    last: r.files.get(&f.path).cloned().flatten(),
                })
        })
        .collect()
}

/// Jobs grouped by what their bytes depend on: the component, the path and
/// that file's template and sources (two revisions may differ there), so
/// each group renders once. Groups and jobs keep their first-seen order.
fn by_output(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        let same = |g: &&mut Vec<Job>| {
            g.first().is_some_and(|f| {
                f.ck == job.ck
                    && f.file.path == job.file.path
                    && f.file.template == job.file.template
                    && f.file.sources == job.file.sources
            })
        };
        match groups.iter_mut().find(same) {
            Some(g) => g.push(job),
            None => groups.push(vec![job]),
        }
    }
    groups
}

/// Renders the files `only` names: once per distinct
/// output, then each container's copy is decided on its own last file.
async fn render(s: &Arc<NodeServices>, snap: &Snapshot, only: &HashSet<FileKey>) {
    let jobs = jobs(s, only);
    if jobs.is_empty() {
        return;
    }
    let mut failed: std::collections::BTreeMap<ComponentKey, Vec<String>> = Default::default();
    let mut work = Vec::new();
    for group in by_output(jobs) {
        let Some(first) = group.first() else { continue };
        let ctx = Context::build(
            &first.ck.project,
            &first.ck.name,
            &first.file.sources,
            snap.endpoints.iter().map(|e| e.as_ref()),
        );
        let rendered = config::render(&first.file.template, &ctx);
        for job in group {
            let errors = failed.entry(job.ck.clone()).or_default();
            match config::decide(job.last.as_deref(), &rendered) {
                Decision::Unchanged => {}
                Decision::KeepLast { error } => errors.push(format!("{}: {error}", job.file.path)),
                Decision::Write => {
                    if let Ok(content) = &rendered {
                        work.push(apply(s.clone(), job, content.clone()));
                    }
                }
            }
        }
    }
    futures::future::join_all(work).await;
    for (ck, errors) in failed {
        s.render_condition(&ck, &errors);
    }
}

/// Writes the file, records it, and reloads.
async fn apply(s: Arc<NodeServices>, job: Job, content: String) {
    let file = FileInContainer {
        path: job.file.path.clone(),
        content: content.clone().into_bytes(),
    };
    if let Err(e) = s.docker.put_file(&job.id, &file).await {
        // Not recorded: the next render tries again.
        tracing::warn!(container = %job.id, path = %job.file.path, error = %e, "writing a config file");
        return;
    }
    if let Some(r) = s.inner().running.get_mut(&job.id) {
        r.files.insert(job.file.path.clone(), Some(content));
    }
    let Some(action) = job.file.reload.as_ref().and_then(|r| r.action()) else {
        return;
    };
    let at = humantime::format_rfc3339_millis(std::time::SystemTime::now());
    let short = crate::docker::image::short_id(&job.id);
    let (ok, message) = match action {
        ReloadAction::Signal(sig) => match s.docker.signal(&job.id, sig).await {
            Ok(true) => (
                true,
                format!("{}: {sig} sent to {short} at {at}", job.file.path),
            ),
            Ok(false) => (
                false,
                format!("{}: {short} is not running ({at})", job.file.path),
            ),
            Err(e) => (
                false,
                format!("{}: {sig} to {short} failed at {at}: {e}", job.file.path),
            ),
        },
        ReloadAction::Exec(cmd) => {
            match s.docker.exec_output(&job.id, &cmd, RELOAD_TIMEOUT).await {
                Ok(o) => {
                    let tail = o.output.trim();
                    let tail = crate::util::tail(tail, 200);
                    (
                        o.exit_code == 0,
                        format!(
                            "{}: reload in {short} exited {} at {at}{}",
                            job.file.path,
                            o.exit_code,
                            if tail.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", tail.replace('\n', " "))
                            }
                        ),
                    )
                }
                Err(e) => (
                    false,
                    format!("{}: reload in {short} failed at {at}: {e}", job.file.path),
                ),
            }
        }
    };
    tracing::info!(container = %job.id, path = %job.file.path, ok, "config reloaded");
    s.set_condition(
        &job.ck,
        Condition::new(
            ConditionType::ConfigReloaded,
            ok,
            if ok {
                Reason::Reloaded
            } else {
                Reason::ReloadFailed
            },
            message,
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job from `(container, component, path, template, source)`.
    fn job((id, c, path, template, source): (&str, &str, &str, &str, &str)) -> Job {
        Job {
            id: id.into(),
            ck: ComponentKey::new("p", c),
            file: ConfigFile {
                path: path.into(),
                template: template.into(),
                sources: vec![source.into()],
                ..ConfigFile::default()
            },
            last: None,
        }
    }

    fn check(input: &[(&str, &str, &str, &str, &str)], expected: &[&[&str]]) {
        let got: Vec<Vec<String>> = by_output(input.iter().copied().map(job).collect())
            .iter()
            .map(|g| g.iter().map(|j| j.id.clone()).collect())
            .collect();
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn one_render_per_component_path_template_and_sources() {
        check(&[], &[]);
        // Three replicas of one component: one render.
        check(
            &[
                ("a", "lb", "/f", "t", "web"),
                ("b", "lb", "/f", "t", "web"),
                ("c", "lb", "/f", "t", "web"),
            ],
            &[&["a", "b", "c"]],
        );
        // Another path, component, template (a new revision) or source
        // renders on its own.
        check(
            &[
                ("a", "lb", "/f", "t", "web"),
                ("a", "lb", "/g", "t", "web"),
                ("b", "db", "/f", "t", "web"),
                ("c", "lb", "/f", "t2", "web"),
                ("d", "lb", "/f", "t", "api"),
                ("e", "lb", "/f", "t", "web"),
            ],
            &[&["a", "e"], &["a"], &["b"], &["c"], &["d"]],
        );
    }
}
