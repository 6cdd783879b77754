//! `rollout status`: follows the component's status (written by the
//! coordinator) and prints a line per step until the rollout ends. The exit
//! code says how it ended (see [`End`]); it never waits on a crash loop
//! longer than the rollout's `progressDeadline`, since the coordinator then
//! marks it failed.

use std::process::ExitCode;

use serde_json::json;

use crate::cli::args::EtcdArgs;
use crate::cli::args::{OutputFormat, RolloutStatusArgs};
use crate::cli::wait::{follow_component, read_component};
use crate::cli::CliError;
use crate::resource::{Component, RolloutPhase};
use crate::store::{Store, StoreError, REVISION_ANNOTATION};

/// How a followed rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Complete,
    Failed,
    RolledBack,
    /// `--timeout` ran out first.
    TimedOut,
}

impl End {
    /// The documented exit codes (`rollout status --help`).
    pub fn code(self) -> u8 {
        match self {
            End::Complete => 0,
            End::Failed => 1,
            End::RolledBack => 3,
            End::TimedOut => 4,
        }
    }

    fn word(self) -> &'static str {
        match self {
            End::Complete => "complete",
            End::Failed => "failed",
            End::RolledBack => "rolledBack",
            End::TimedOut => "timeout",
        }
    }
}

/// What one read of the component says about its rollout.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The coordinator has not acted on the current spec yet.
    Waiting(String),
    /// Going on.
    Step(Step),
    /// Over.
    Done(End, Step),
}

/// One step's numbers, as printed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Step {
    pub phase: String,
    pub revision: Option<u64>,
    pub step: u64,
    pub desired: u32,
    pub updated: u32,
    pub ready: u32,
    pub available: u32,
    pub draining: u32,
    pub message: String,
    /// `REASON on n1, n2: message` when it failed.
    pub cause: Option<String>,
    pub rolled_back_to: Option<u64>,
}

/// Reads the rollout out of one read of the component (pure).
pub fn progress(c: &Component) -> Progress {
    let name = &c.metadata.name;
    let Some(st) = &c.status else {
        return Progress::Waiting(format!(
            "component/{name} has no status yet: is a coordinator running? (berth get nodes)"
        ));
    };
    let generation = c.metadata.generation.unwrap_or(0);
    if st.observed_generation < generation {
        return Progress::Waiting(format!(
            "waiting for the coordinator to act on generation {generation} of component/{name}"
        ));
    }
    let target: Option<u64> = c
        .metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok());
    let mut step = Step {
        desired: st.replicas,
        updated: st.updated_replicas,
        ready: st.ready_replicas,
        available: st.available_replicas,
        draining: st.draining_replicas,
        revision: target.or(st.update_revision),
        ..Default::default()
    };
    let Some(r) = &st.rollout else {
        // No rollout recorded (nothing to roll out, or an older
        // coordinator): done once every replica is updated and available.
        let done = st.updated_replicas >= st.replicas && st.available_replicas >= st.replicas;
        step.phase = if done { "Complete" } else { "Progressing" }.into();
        return if done {
            Progress::Done(End::Complete, step)
        } else {
            Progress::Step(step)
        };
    };
    if target.is_some_and(|t| t != r.revision) {
        return Progress::Waiting(format!(
            "waiting for the coordinator to start the rollout of revision {}",
            target.unwrap_or_default()
        ));
    }
    step.phase = r.phase.to_string();
    step.revision = Some(r.revision);
    step.step = r.step;
    step.message = r.message.clone();
    step.cause = r.cause.as_ref().map(|c| {
        let mut s = c.reason.clone();
        if !c.nodes.is_empty() {
            s.push_str(&format!(" on {}", c.nodes.join(", ")));
        }
        if !c.message.is_empty() {
            s.push_str(&format!(": {}", c.message));
        }
        s
    });
    if r.phase == RolloutPhase::RolledBack {
        step.rolled_back_to = r.stable_revision;
    }
    match r.phase {
        RolloutPhase::Complete => Progress::Done(End::Complete, step),
        RolloutPhase::Failed => Progress::Done(End::Failed, step),
        RolloutPhase::RolledBack => Progress::Done(End::RolledBack, step),
        _ => Progress::Step(step),
    }
}

/// The line printed for a step, or the last line for an end.
pub fn line(name: &str, p: &Progress) -> String {
    let counts = |s: &Step| {
        let mut out = format!(
            "{}/{} updated, {} ready, {} available",
            s.updated, s.desired, s.ready, s.available
        );
        if s.draining > 0 {
            out.push_str(&format!(", {} draining", s.draining));
        }
        out
    };
    let revision = |s: &Step| s.revision.map_or("-".to_string(), |r| r.to_string());
    match p {
        Progress::Waiting(why) => why.clone(),
        Progress::Step(s) => {
            let mut out = format!(
                "[{}] revision {} step {}: {}",
                s.phase,
                revision(s),
                s.step,
                counts(s)
            );
            if !s.message.is_empty() {
                out.push_str(&format!(" ({})", s.message));
            }
            out
        }
        Progress::Done(End::Complete, s) => format!(
            "rollout of component/{name} to revision {} complete: {}",
            revision(s),
            counts(s)
        ),
        Progress::Done(End::RolledBack, s) => format!(
            "rollout of component/{name} to revision {} failed ({}): rolled back to revision {}",
            revision(s),
            s.cause.as_deref().unwrap_or("no cause recorded"),
            s.rolled_back_to.map_or("-".to_string(), |r| r.to_string())
        ),
        Progress::Done(_, s) => format!(
            "rollout of component/{name} to revision {} failed: {}",
            revision(s),
            s.cause.as_deref().unwrap_or("no cause recorded")
        ),
    }
}

/// One JSON event per line (`-o json`).
fn event(name: &str, project: &str, p: &Progress) -> serde_json::Value {
    let time = crate::util::now_rfc3339();
    match p {
        Progress::Waiting(why) => json!({"event": "waiting", "time": time,
            "component": name, "project": project, "message": why}),
        Progress::Step(s) | Progress::Done(_, s) => {
            let kind = match p {
                Progress::Done(end, _) => end.word(),
                _ => "step",
            };
            json!({"event": kind, "time": time, "component": name, "project": project,
                "phase": s.phase, "revision": s.revision, "step": s.step,
                "desired": s.desired, "updated": s.updated, "ready": s.ready,
                "available": s.available, "draining": s.draining,
                "message": s.message, "cause": s.cause, "rolledBackTo": s.rolled_back_to})
        }
    }
}

/// Prints what changed since the last print.
struct Printer<'a> {
    name: &'a str,
    project: &'a str,
    json: bool,
    last: Option<Progress>,
}

impl Printer<'_> {
    fn show(&mut self, p: Progress) {
        if self.last.as_ref() == Some(&p) {
            return;
        }
        if self.json {
            println!("{}", event(self.name, self.project, &p));
        } else {
            println!("{}", line(self.name, &p));
        }
        self.last = Some(p);
    }

    /// The timeout's last line (stdout for JSON, stderr for people).
    fn timed_out(&self, after: std::time::Duration) {
        let still = match &self.last {
            Some(Progress::Step(s)) => format!(
                "still {} at revision {}",
                s.phase,
                s.revision.map_or("-".into(), |r| r.to_string())
            ),
            Some(Progress::Waiting(why)) => why.clone(),
            _ => "no status read".into(),
        };
        let after = humantime::format_duration(after);
        if self.json {
            println!(
                "{}",
                json!({"event": End::TimedOut.word(), "time": crate::util::now_rfc3339(),
                    "component": self.name, "project": self.project,
                    "message": format!("timed out after {after}: {still}")})
            );
        } else {
            eprintln!(
                "error: timed out after {after} waiting for the rollout of component/{}: {still}",
                self.name
            );
        }
    }
}

pub async fn run(etcd: &EtcdArgs, args: RolloutStatusArgs) -> Result<ExitCode, CliError> {
    let t = &args.target;
    let json = match args.output {
        OutputFormat::Json => true,
        OutputFormat::Table => false,
        other => {
            return Err(CliError::Usage(format!(
                "rollout status prints table or json lines, not {other:?}"
            )))
        }
    };
    let store = Store::connect(&etcd.store_config()).await?;
    if read_component(&store, &t.project, &t.component)
        .await?
        .is_none()
    {
        return Err(StoreError::NotFound(format!(
            "component/{} in project {}",
            t.component, t.project
        ))
        .into());
    }
    let mut printer = Printer {
        name: &t.component,
        project: &t.project,
        json,
        last: None,
    };
    let mut end = None;
    let mut etcd_error = None;
    let follow = follow_component(&store, &t.project, &t.component, &mut etcd_error, |c| {
        let Some(c) = c else {
            return Err(CliError::Input(format!(
                "component/{} was deleted during its rollout",
                t.component
            )));
        };
        let p = progress(&c);
        if let Progress::Done(e, _) = &p {
            end = Some(*e);
        }
        printer.show(p);
        Ok(end.is_some())
    });
    let followed = match args.timeout {
        Some(d) => tokio::time::timeout(d, follow).await.ok(),
        None => Some(follow.await),
    };
    match followed {
        Some(r) => r?,
        None => {
            let d = args.timeout.unwrap_or_default();
            printer.timed_out(d);
            return Ok(ExitCode::from(End::TimedOut.code()));
        }
    }
    Ok(ExitCode::from(end.map_or(1, End::code)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::ComponentStatus;
    use crate::resource::{RolloutCause, RolloutStatus};

    fn component(generation: i64, status: Option<ComponentStatus>) -> Component {
        let mut c: Component = serde_json::from_value(json!({
            "apiVersion": "berth/v1", "kind": "Component",
            "metadata": {"name": "web", "project": "shop", "generation": generation,
                         "annotations": {"berth/revision": "4"}},
            "spec": {"image": "web:4"},
        }))
        .expect("a component");
        c.status = status;
        c
    }

    fn status(observed: i64, rollout: Option<RolloutStatus>) -> ComponentStatus {
        ComponentStatus {
            observed_generation: observed,
            replicas: 6,
            updated_replicas: 2,
            ready_replicas: 6,
            available_replicas: 5,
            draining_replicas: 1,
            rollout,
            ..Default::default()
        }
    }

    fn rollout(phase: RolloutPhase, revision: u64) -> RolloutStatus {
        RolloutStatus {
            phase,
            revision,
            step: 3,
            message: "n2: +1 of revision 4".into(),
            ..Default::default()
        }
    }

    /// One read in, the line printed and the exit code it ends with (if any).
    fn check(c: Component, want_line: &str, want_end: Option<End>) {
        let p = progress(&c);
        let end = match &p {
            Progress::Done(e, _) => Some(*e),
            _ => None,
        };
        assert_eq!((line("web", &p).as_str(), end), (want_line, want_end));
    }

    #[test]
    fn lines_and_ends() {
        use RolloutPhase::*;
        check(
            component(2, None),
            "component/web has no status yet: is a coordinator running? (berth get nodes)",
            None,
        );
        check(
            component(2, Some(status(1, None))),
            "waiting for the coordinator to act on generation 2 of component/web",
            None,
        );
        check(
            component(2, Some(status(2, Some(rollout(Progressing, 3))))),
            "waiting for the coordinator to start the rollout of revision 4",
            None,
        );
        check(
            component(2, Some(status(2, Some(rollout(Progressing, 4))))),
            "[Progressing] revision 4 step 3: 2/6 updated, 6 ready, 5 available, 1 draining (n2: +1 of revision 4)",
            None,
        );
        check(
            component(2, Some(status(2, Some(rollout(CanaryWaiting, 4))))),
            "[CanaryWaiting] revision 4 step 3: 2/6 updated, 6 ready, 5 available, 1 draining (n2: +1 of revision 4)",
            None,
        );
        let mut done = status(2, Some(rollout(Complete, 4)));
        (
            done.updated_replicas,
            done.available_replicas,
            done.draining_replicas,
        ) = (6, 6, 0);
        check(
            component(2, Some(done)),
            "rollout of component/web to revision 4 complete: 6/6 updated, 6 ready, 6 available",
            Some(End::Complete),
        );
        let cause = RolloutCause {
            reason: "CrashLoop".into(),
            nodes: vec!["n1".into(), "n3".into()],
            message: "exit code 1".into(),
        };
        let mut failed = rollout(Failed, 4);
        failed.cause = Some(cause.clone());
        check(
            component(2, Some(status(2, Some(failed)))),
            "rollout of component/web to revision 4 failed: CrashLoop on n1, n3: exit code 1",
            Some(End::Failed),
        );
        let mut back = rollout(RolledBack, 4);
        back.cause = Some(cause);
        back.stable_revision = Some(3);
        check(
            component(2, Some(status(2, Some(back)))),
            "rollout of component/web to revision 4 failed (CrashLoop on n1, n3: exit code 1): rolled back to revision 3",
            Some(End::RolledBack),
        );
    }

    #[test]
    fn without_a_recorded_rollout_it_ends_on_the_counts() {
        let mut st = status(2, None);
        st.update_revision = Some(4);
        check(
            component(2, Some(st.clone())),
            "[Progressing] revision 4 step 0: 2/6 updated, 6 ready, 5 available, 1 draining",
            None,
        );
        (
            st.updated_replicas,
            st.available_replicas,
            st.draining_replicas,
        ) = (6, 6, 0);
        check(
            component(2, Some(st)),
            "rollout of component/web to revision 4 complete: 6/6 updated, 6 ready, 6 available",
            Some(End::Complete),
        );
    }

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let codes: Vec<u8> = [End::Complete, End::Failed, End::RolledBack, End::TimedOut]
            .into_iter()
            .map(End::code)
            .collect();
        assert_eq!(codes, [0, 1, 3, 4]);
        for (code, what) in [
            (0, "completed"),
            (1, "failed"),
            (2, "usage"),
            (3, "rolled back"),
            (4, "--timeout"),
        ] {
            assert!(
                crate::cli::args::ROLLOUT_STATUS_HELP.contains(&format!("  {code}  ")),
                "exit code {code} ({what}) is not in --help"
            );
        }
    }
}
