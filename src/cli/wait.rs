//! `berth wait KIND/NAME --for=condition=TYPE[=STATUS]|delete`: follows the
//! component's spec and status keys through [`crate::runtime::watcher`]
//! (no polling) and re-reads both on every change, so what it decides on is
//! always one consistent read.

use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;

use super::args::{EtcdArgs, WaitArgs, WaitFor};
use super::CliError;
use crate::resource::{Component, ConditionType, Kind, Object};
use crate::runtime::{watcher, Event, WatcherConfig};
use crate::store::{Store, StoreError};

/// Condition types a component's status has.
const COMPONENT_CONDITIONS: [ConditionType; 4] = [
    ConditionType::Available,
    ConditionType::Progressing,
    ConditionType::Degraded,
    ConditionType::Unschedulable,
];

/// What is waited for, checked.
struct Target {
    project: String,
    name: String,
    want: WaitFor,
}

pub async fn run(etcd: &EtcdArgs, args: WaitArgs) -> Result<ExitCode, CliError> {
    let target = target(&args)?;
    let store = Store::connect(&etcd.store_config()).await?;
    let mut last = read(&store, &target).await?;
    if last.is_none() {
        if let WaitFor::Condition { .. } = target.want {
            return Err(CliError::Store(StoreError::NotFound(target.display())));
        }
    }
    let mut etcd_error = None;
    let waited = tokio::time::timeout(
        args.timeout,
        follow(&store, &target, &mut last, &mut etcd_error),
    )
    .await;
    match waited {
        Ok(Ok(())) => {
            match target.want {
                WaitFor::Delete => println!("component/{} deleted", target.name),
                WaitFor::Condition { .. } => println!("component/{} condition met", target.name),
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(CliError::Timeout(timeout_message(
            &target,
            args.timeout,
            last.as_ref(),
            etcd_error.as_deref(),
        ))),
    }
}

/// The component and the condition, or a usage error (exit 2) for what
/// the command line gets wrong and an input error (exit 1) for an unknown
/// condition type.
fn target(args: &WaitArgs) -> Result<Target, CliError> {
    if args.kind.0 != Kind::Component {
        return Err(CliError::Usage(format!(
            "wait supports components only, not {} (berth wait component/NAME --for=...)",
            args.kind.0
        )));
    }
    let missing = "wait needs a name: berth wait component/NAME";
    let name = args
        .kind
        .one_name(args.name.as_ref(), missing)
        .map_err(CliError::Usage)?;
    if let WaitFor::Condition { type_, .. } = &args.for_ {
        let known = type_
            .parse::<ConditionType>()
            .is_ok_and(|t| COMPONENT_CONDITIONS.contains(&t));
        if !known {
            let names: Vec<&str> = COMPONENT_CONDITIONS.iter().map(|t| t.as_str()).collect();
            return Err(CliError::Input(format!(
                "unknown condition type {type_:?} for a component: expected one of {}",
                names.join(", ")
            )));
        }
    }
    Ok(Target {
        project: args.project.clone(),
        name,
        want: args.for_.clone(),
    })
}

impl Target {
    fn display(&self) -> String {
        format!("component/{} in project {}", self.name, self.project)
    }

    /// Whether the component as read (`None`: gone) is what is waited for.
    /// A condition counts only on a status that has seen the current
    /// generation: right after `apply`, the previous spec's status would
    /// otherwise pass the wait.
    fn met(&self, c: Option<&Component>) -> Result<bool, CliError> {
        let (type_, status) = match (&self.want, c) {
            (WaitFor::Delete, c) => return Ok(c.is_none()),
            (WaitFor::Condition { type_, status }, Some(_)) => (type_, status),
            (WaitFor::Condition { .. }, None) => {
                return Err(CliError::Input(format!(
                    "{} was deleted while waiting",
                    self.display()
                )))
            }
        };
        let Some(c) = c else { return Ok(false) };
        let Some(st) = &c.status else {
            return Ok(false);
        };
        let current = st.observed_generation >= c.metadata.generation.unwrap_or(0);
        Ok(current
            && st
                .conditions
                .iter()
                .any(|cond| cond.type_ == *type_ && cond.status == *status))
    }
}

async fn read(store: &Store, t: &Target) -> Result<Option<Component>, CliError> {
    read_component(store, &t.project, &t.name).await
}

/// The component with its status, `None` when there is no such component.
pub(super) async fn read_component(
    store: &Store,
    project: &str,
    name: &str,
) -> Result<Option<Component>, CliError> {
    Ok(
        match store.get(Kind::Component, Some(project), name).await? {
            Some(s) => match s.object {
                Object::Component(c) => Some(c),
                _ => None,
            },
            None => None,
        },
    )
}

/// Returns once the target is met (see [`follow_component`]). `last` keeps
/// the latest read for the timeout message.
async fn follow(
    store: &Store,
    t: &Target,
    last: &mut Option<Component>,
    etcd_error: &mut Option<String>,
) -> Result<(), CliError> {
    if t.met(last.as_ref())? {
        return Ok(());
    }
    follow_component(store, &t.project, &t.name, etcd_error, |c| {
        *last = c;
        t.met(last.as_ref())
    })
    .await
}

/// Re-reads a component (spec and status in one read) after every change
/// to either key, and after each watch's first listing (so a change between
/// an earlier read and the watch is not missed), and hands each read to
/// `on_read` until it returns `true`. Read errors are kept in `etcd_error`
/// and retried on the next event. `rollout status` follows the same way.
pub(super) async fn follow_component(
    store: &Store,
    project: &str,
    name: &str,
    etcd_error: &mut Option<String>,
    mut on_read: impl FnMut(Option<Component>) -> Result<bool, CliError>,
) -> Result<(), CliError> {
    let keys = store.keys();
    let cfg = || WatcherConfig::default();
    // Watch the two keys as prefixes: a neighbour (`web-2`) only causes a
    // needless re-read.
    let mut events = futures::stream::select(
        watcher(
            store.client(),
            keys.spec(Kind::Component, Some(project), name),
            cfg(),
        )
        .boxed(),
        watcher(
            store.client(),
            keys.status(Kind::Component, Some(project), name),
            cfg(),
        )
        .boxed(),
    );
    while let Some(item) = events.next().await {
        match item {
            Err(e) => *etcd_error = Some(e.to_string()),
            Ok(Event::Init | Event::InitApply(_)) => {}
            Ok(Event::InitDone | Event::Apply(_) | Event::Delete(_)) => {
                match read_component(store, project, name).await {
                    Ok(c) => {
                        if on_read(c)? {
                            return Ok(());
                        }
                    }
                    Err(e) => *etcd_error = Some(e.to_string()),
                }
            }
        }
    }
    // The watcher's stream never ends; should it, wait out the timeout.
    std::future::pending::<()>().await;
    Ok(())
}

/// One line: what was waited for, and the last status seen.
fn timeout_message(
    t: &Target,
    timeout: Duration,
    last: Option<&Component>,
    etcd_error: Option<&str>,
) -> String {
    let what = match &t.want {
        WaitFor::Delete => "to be deleted".to_string(),
        WaitFor::Condition { type_, status } => format!("for condition {type_}={status}"),
    };
    let mut msg = format!(
        "timed out after {} waiting {what} on {}; last status: {}",
        humantime::format_duration(timeout),
        t.display(),
        summary(last)
    );
    if let Some(e) = etcd_error {
        msg.push_str(&format!(" (last etcd error: {e})"));
    }
    msg.replace('\n', " ")
}

/// The status of a component in one line.
fn summary(c: Option<&Component>) -> String {
    let Some(c) = c else {
        return "deleted".into();
    };
    let Some(st) = &c.status else {
        return "none yet (no coordinator has written one)".into();
    };
    let mut parts = vec![
        format!(
            "generation {} (observed {})",
            c.metadata.generation.unwrap_or(0),
            st.observed_generation
        ),
        format!(
            "{}/{} ready, {} up-to-date, {} available",
            st.ready_replicas, st.replicas, st.updated_replicas, st.available_replicas
        ),
    ];
    for cond in &st.conditions {
        let mut s = format!("{}={}", cond.type_, cond.status);
        if !cond.reason.is_empty() || !cond.message.is_empty() {
            s.push_str(&format!(" ({}: {})", cond.reason, cond.message));
        }
        parts.push(s);
    }
    if let Some(at) = &st.last_update {
        parts.push(format!("updated {at}"));
    }
    parts.join(", ")
}
