//! The config loop: endpoint changes (debounced) and new containers →
//! render every file of every container that has `configs` → write what
//! changed into the container → reload it.

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
    loop {
        let settled: HashMap<FileKey, bool> = pending
            .keys()
            .map(|k| (k.clone(), is_settled(&s, k)))
            .collect();
        let due = pending
            .iter()
            .filter_map(|(k, (d, cfg))| d.due(*cfg, settled.get(k).copied().unwrap_or(true)))
            .min();
        let kicked = tokio::select! {
            _ = stop.cancelled() => return,
            c = changes.recv() => {
                if c.is_none() {
                    return;
                }
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
        let now = Instant::now();
        let mut fired: HashSet<FileKey> = HashSet::new();
        for (key, (d, cfg)) in pending.iter_mut() {
            // Settled again now: a change may have completed the wave.
            if d.fire(*cfg, now, is_settled(&s, key)) {
                fired.insert(key.clone());
            }
        }
        pending.retain(|_, (d, _)| *d != Debounce::Idle);
        if kicked {
            // Only the new containers' files: the others keep their debounce.
            let fresh = std::mem::take(&mut s.inner().fresh);
            fired.extend(
                files(&s)
                    .into_iter()
                    .map(|(k, _)| k)
                    .filter(|k| fresh.contains(&k.0)),
            );
        }
        if !fired.is_empty() {
            render(&s, Some(&fired)).await;
        }
    }
}

/// Whether the sources of one file have every endpoint their specs want
/// (see [`config::settled`]); a file no longer running counts as settled.
fn is_settled(s: &NodeServices, (id, path): &FileKey) -> bool {
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
    let endpoints = s.endpoints.state();
    let counts: Vec<(usize, Option<u32>)> = sources
        .iter()
        .map(|src| {
            let (p, c) = config::context::source_key(&ck.project, src);
            let have = endpoints
                .iter()
                .filter(|e| e.project == p && e.component == c)
                .count();
            let want = s
                .specs
                .get(&s.keys.component_spec(&ComponentKey::new(p, c)))
                .and_then(|spec| {
                    let pl = &spec.1.placement;
                    match (pl.per_node, spec.1.state == State::Running) {
                        (None, true) => Some(pl.replicas.unwrap_or(1)),
                        _ => None,
                    }
                });
            (have, want)
        })
        .collect();
    config::settled(&counts)
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
struct Job {
    id: String,
    ck: ComponentKey,
    file: ConfigFile,
    last: Option<String>,
}

/// Renders the files `only` names (all with `None`).
async fn render(s: &Arc<NodeServices>, only: Option<&HashSet<FileKey>>) {
    let jobs: Vec<Job> = {
        let inner = s.inner();
        inner
            .running
            .iter()
            .flat_map(|(id, r)| {
                r.template
                    .configs
                    .iter()
                    .filter(|f| only.is_none_or(|o| o.contains(&(id.clone(), f.path.clone()))))
                    .map(|f| Job {
                        id: id.clone(),
                        ck: r.ck.clone(),
                        file: f.clone(),
                        last: r.files.get(&f.path).cloned().flatten(),
                    })
            })
            .collect()
    };
    if jobs.is_empty() {
        return;
    }
    let endpoints = s.endpoints.state();
    let mut failed: std::collections::BTreeMap<ComponentKey, Vec<String>> = Default::default();
    let mut work = Vec::new();
    for job in jobs {
        let ctx = Context::build(
            &job.ck.project,
            &job.ck.name,
            &job.file.sources,
            endpoints.iter().map(|e| e.as_ref()),
        );
        let rendered = config::render(&job.file.template, &ctx);
        let errors = failed.entry(job.ck.clone()).or_default();
        match config::decide(job.last.as_deref(), &rendered) {
            Decision::Unchanged => {}
            Decision::KeepLast { error } => errors.push(format!("{}: {error}", job.file.path)),
            Decision::Write => {
                if let Ok(content) = rendered {
                    work.push(apply(s.clone(), job, content));
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
    // Docker ids are hex; `get` keeps any other id from panicking.
    let short = job.id.get(..12).unwrap_or(&job.id);
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
                    let tail = tail.get(tail.len().saturating_sub(200)..).unwrap_or("");
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
