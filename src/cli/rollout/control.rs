//! `rollout pause|resume|promote|undo|restart`: each is a change to the
//! component's spec (or, for `promote`, an annotation), checked against the
//! rollout's status first and written as a compare-and-swap on the version
//! read, so a concurrent `apply` is never overwritten.
//!
//! Each refusal is one line and writes nothing.

use std::process::ExitCode;

use crate::cli::args::{EtcdArgs, RolloutTarget};
use crate::cli::CliError;
use crate::resource::meta::PROMOTE_ANNOTATION;
use crate::resource::{Component, Kind, Object, Revision, RolloutPhase};
use crate::store::{ApplyOptions, Store, StoreError, REVISION_ANNOTATION};

/// What a control command does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Promote,
    Restart,
    /// Back to this revision, or the one before the current.
    Undo(Option<u64>),
}

/// Tries of the read-check-write cycle when a concurrent write wins.
const TRIES: usize = 3;

pub async fn run(etcd: &EtcdArgs, t: RolloutTarget, action: Action) -> Result<ExitCode, CliError> {
    let store = Store::connect(&etcd.store_config()).await?;
    let done = control(&store, &t, action).await?;
    println!("component/{} {done}", t.component);
    Ok(ExitCode::SUCCESS)
}

/// Reads the component, applies `action` and writes the spec over exactly
/// the version read (read again on a lost race). Returns what was done, in
/// words; a refusal writes nothing. The CLI and the API share it.
pub async fn control(store: &Store, t: &RolloutTarget, action: Action) -> Result<String, CliError> {
    let revisions = match action {
        Action::Undo(_) => store.revisions(&t.project, &t.component).await?,
        _ => Vec::new(),
    };
    let mut attempt = 1;
    loop {
        let (mut c, version) = read(store, t).await?;
        let done = change(&mut c, action, &revisions, &crate::util::now_rfc3339())
            .map_err(CliError::Input)?;
        c.metadata.resource_version = Some(version.to_string());
        c.status = None;
        match store
            .apply(&[Object::Component(c)], &ApplyOptions::default())
            .await
        {
            Ok(_) => return Ok(done),
            Err(StoreError::Conflict(_)) if attempt < TRIES => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The component (spec and status) and the version of its spec.
async fn read(store: &Store, t: &RolloutTarget) -> Result<(Component, i64), CliError> {
    let missing = || {
        StoreError::NotFound(format!(
            "component/{} in project {}",
            t.component, t.project
        ))
    };
    let stored = store
        .get(Kind::Component, Some(&t.project), &t.component)
        .await?
        .ok_or_else(missing)?;
    match stored.object {
        Object::Component(c) => Ok((c, stored.mod_revision)),
        _ => Err(missing().into()),
    }
}

/// Applies `action` to `c` (pure); returns what was done, in words, or why
/// it is refused.
pub fn change(
    c: &mut Component,
    action: Action,
    revisions: &[Revision],
    now: &str,
) -> Result<String, String> {
    let rollout = c.status.as_ref().and_then(|s| s.rollout.as_ref());
    let phase = rollout.map(|r| r.phase);
    match action {
        Action::Pause => {
            if let Some(p) = phase.filter(|p| p.is_final()) {
                return Err(format!(
                    "the rollout of component/{} is {p}: there is nothing to pause",
                    c.metadata.name
                ));
            }
            if phase.is_none() {
                return Err(format!(
                    "component/{} has no rollout in progress: there is nothing to pause",
                    c.metadata.name
                ));
            }
            let r = c.spec.rollout.get_or_insert_with(Default::default);
            if r.paused {
                return Err(format!("component/{} is already paused", c.metadata.name));
            }
            r.paused = true;
            Ok("paused".into())
        }
        Action::Resume => {
            match c.spec.rollout.as_mut().filter(|r| r.paused) {
                Some(r) => r.paused = false,
                None => return Err(format!("component/{} is not paused", c.metadata.name)),
            }
            Ok("resumed".into())
        }
        Action::Promote => {
            let waiting = rollout.filter(|r| r.phase == RolloutPhase::CanaryWaiting);
            let Some(r) = waiting else {
                let now = phase.map_or("no rollout in progress".to_string(), |p| {
                    format!("the rollout is {p}")
                });
                return Err(format!(
                    "component/{} has no canary waiting to be promoted ({now})",
                    c.metadata.name
                ));
            };
            let revision = r.revision;
            c.metadata
                .annotations
                .insert(PROMOTE_ANNOTATION.into(), revision.to_string());
            Ok(format!(
                "promoted: revision {revision} goes on to every replica"
            ))
        }
        Action::Restart => {
            c.spec.restarted_at = Some(now.to_string());
            Ok("restarting: every container is replaced through the rollout budgets".into())
        }
        Action::Undo(to) => undo(c, to, revisions),
    }
}

/// `rollout undo`: the template of revision `to` (or of the one before the
/// current) becomes the spec's.
fn undo(c: &mut Component, to: Option<u64>, revisions: &[Revision]) -> Result<String, String> {
    let name = c.metadata.name.clone();
    let current: Option<u64> = c
        .metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|v| v.parse().ok());
    let known = || {
        let seqs: Vec<String> = revisions.iter().map(|r| r.seq.to_string()).collect();
        if seqs.is_empty() {
            "it has none".to_string()
        } else {
            format!("it has {}", seqs.join(", "))
        }
    };
    let target = match to {
        Some(n) => revisions.iter().find(|r| r.seq == n).ok_or_else(|| {
            format!(
                "component/{name} has no revision {n} ({}; see berth rollout history {name})",
                known()
            )
        })?,
        None => revisions
            .iter()
            .filter(|r| current.is_some_and(|cur| r.seq < cur))
            .max_by_key(|r| r.seq)
            .ok_or_else(|| {
                format!(
                    "component/{name} has no revision before {} to go back to",
                    current.map_or("the current one".into(), |c| format!("revision {c}"))
                )
            })?,
    };
    if Some(target.seq) == current || target.hash == c.spec.template().hash() {
        return Err(format!(
            "component/{name} already runs the template of revision {}",
            target.seq
        ));
    }
    c.spec.set_template(target.template.clone());
    Ok(format!(
        "rolled back to the template of revision {}",
        target.seq
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::{ComponentStatus, Rollout, Template};
    use crate::resource::RolloutStatus;

    fn component(phase: Option<RolloutPhase>, paused: bool) -> Component {
        let mut c: Component = serde_json::from_value(serde_json::json!({
            "apiVersion": "berth/v1", "kind": "Component",
            "metadata": {"name": "web", "project": "shop",
                         "annotations": {"berth/revision": "3"}},
            "spec": {"image": "web:3"},
        }))
        .expect("a component");
        c.spec.rollout = Some(Rollout {
            paused,
            ..Default::default()
        });
        c.status = phase.map(|phase| ComponentStatus {
            rollout: Some(RolloutStatus {
                phase,
                revision: 3,
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    }

    fn revision(seq: u64, image: &str) -> Revision {
        let template = Template {
            image: image.into(),
            ..Default::default()
        };
        Revision {
            seq,
            hash: template.hash(),
            template,
            change_cause: String::new(),
            created: String::new(),
            pin: None,
        }
    }

    /// `want`: `Ok(part of the message)` or `Err(part of the refusal)`;
    /// a refusal must leave the component as it was.
    fn check(mut c: Component, action: Action, want: Result<&str, &str>) -> Component {
        let before = c.clone();
        let revisions = [
            revision(1, "web:1"),
            revision(2, "web:2"),
            revision(3, "web:3"),
        ];
        let got = change(&mut c, action, &revisions, "2026-12-04T10:00:00Z");
        match (&got, want) {
            (Ok(m), Ok(part)) | (Err(m), Err(part)) => assert!(m.contains(part), "{m}"),
            _ => panic!("{action:?}: got {got:?}, want {want:?}"),
        }
        if got.is_err() {
            assert_eq!(c, before, "a refusal changed the component");
        }
        c
    }

    #[test]
    fn control_commands() {
        use RolloutPhase::*;
        let p = check(
            component(Some(Progressing), false),
            Action::Pause,
            Ok("paused"),
        );
        assert!(p.spec.rollout.as_ref().is_some_and(|r| r.paused));
        check(
            component(Some(Complete), false),
            Action::Pause,
            Err("is Complete"),
        );
        check(component(None, false), Action::Pause, Err("no rollout"));
        check(
            component(Some(Paused), true),
            Action::Pause,
            Err("already paused"),
        );
        let r = check(component(Some(Paused), true), Action::Resume, Ok("resumed"));
        assert!(r.spec.rollout.as_ref().is_some_and(|r| !r.paused));
        check(
            component(Some(Progressing), false),
            Action::Resume,
            Err("not paused"),
        );
        let p = check(
            component(Some(CanaryWaiting), false),
            Action::Promote,
            Ok("revision 3"),
        );
        assert_eq!(
            p.metadata
                .annotations
                .get(PROMOTE_ANNOTATION)
                .map(String::as_str),
            Some("3")
        );
        check(
            component(Some(Progressing), false),
            Action::Promote,
            Err("no canary waiting"),
        );
        check(
            component(None, false),
            Action::Promote,
            Err("no rollout in progress"),
        );
        let r = check(component(None, false), Action::Restart, Ok("restarting"));
        assert_eq!(r.spec.restarted_at.as_deref(), Some("2026-12-04T10:00:00Z"));
        assert_ne!(
            r.spec.template().hash(),
            component(None, false).spec.template().hash()
        );
    }

    #[test]
    fn undo_picks_the_revision_and_refuses_what_does_not_exist() {
        let u = check(component(None, false), Action::Undo(None), Ok("revision 2"));
        assert_eq!(u.spec.image, "web:2");
        assert_eq!(u.spec.template().hash(), revision(2, "web:2").hash);
        let u = check(
            component(None, false),
            Action::Undo(Some(1)),
            Ok("revision 1"),
        );
        assert_eq!(u.spec.image, "web:1");
        check(
            component(None, false),
            Action::Undo(Some(9)),
            Err("no revision 9 (it has 1, 2, 3"),
        );
        check(
            component(None, false),
            Action::Undo(Some(3)),
            Err("already runs"),
        );
        let mut first = component(None, false);
        first
            .metadata
            .annotations
            .insert(REVISION_ANNOTATION.into(), "1".into());
        first.spec.image = "web:1".into();
        check(
            first,
            Action::Undo(None),
            Err("no revision before revision 1"),
        );
    }
}
