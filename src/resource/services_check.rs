//! Validation of the cluster-service fields (`spec.jobs`, `spec.roles`):
//! each violation names its field path, so the manifest reader points it at
//! a line and column and nothing is written.

use std::collections::HashSet;

use super::component::ComponentSpec;
use super::services::{Hook, JobTarget};
use super::validate::{is_dns_label, path_error, Violation};
use crate::services::jobs::Schedule;

/// Every broken rule of `s.jobs` and `s.roles`.
pub fn violations(s: &ComponentSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut add = |path: String, message: String| out.push(Violation { path, message });
    let elect = s.roles.as_ref().is_some_and(|r| r.elect);
    let mut names = HashSet::new();
    for (i, j) in s.jobs.iter().enumerate() {
        let p = format!("spec.jobs[{i}]");
        if !is_dns_label(&j.name) {
            add(
                format!("{p}.name"),
                format!("invalid job name {:?}: must be a DNS label (lower-case letters, digits and '-')", j.name),
            );
        } else if !names.insert(j.name.as_str()) {
            add(
                format!("{p}.name"),
                format!("job {:?} is defined twice", j.name),
            );
        }
        if let Err(e) = Schedule::parse(&j.schedule) {
            add(format!("{p}.schedule"), e.to_string());
        }
        exec(&mut add, &format!("{p}.exec"), &j.exec);
        if j.timeout.is_some_and(|d| d.std().is_zero()) {
            add(format!("{p}.timeout"), "must be more than 0s".into());
        }
        if let Some(h) = j.history {
            if !(1..=100).contains(&h) {
                add(
                    format!("{p}.history"),
                    format!("{h} is not between 1 and 100"),
                );
            }
        }
        if j.on == JobTarget::Leader && !elect {
            add(
                format!("{p}.on"),
                "`leader` needs `spec.roles.elect: true` (no replica is ever leader otherwise)"
                    .into(),
            );
        }
        if let Some(b) = &j.backup {
            if let Some(e) = path_error(&b.destination) {
                add(
                    format!("{p}.backup.destination"),
                    format!("{:?} {e}", b.destination),
                );
            }
            if b.keep.is_empty() {
                add(
                    format!("{p}.backup.keep"),
                    "hourly, daily, weekly and monthly are all 0: no backup but the newest would ever be kept".into(),
                );
            }
        }
    }
    if let Some(r) = &s.roles {
        for (field, hook) in [("onLeader", &r.on_leader), ("onFollower", &r.on_follower)] {
            let Some(h) = hook else { continue };
            let p = format!("spec.roles.{field}");
            if !r.elect {
                add(
                    p.clone(),
                    "a role hook needs `elect: true`: without an election no replica changes role"
                        .into(),
                );
            }
            hook_rules(&mut add, &p, h);
        }
    }
    out
}

fn hook_rules(add: &mut impl FnMut(String, String), p: &str, h: &Hook) {
    exec(add, &format!("{p}.exec"), &h.exec);
    if h.timeout.is_some_and(|d| d.std().is_zero()) {
        add(format!("{p}.timeout"), "must be more than 0s".into());
    }
}

fn exec(add: &mut impl FnMut(String, String), p: &str, cmd: &[String]) {
    match cmd.first() {
        None => add(p.to_string(), "must name a command".into()),
        Some(c) if c.is_empty() => add(format!("{p}[0]"), "the program must not be empty".into()),
        Some(_) => {}
    }
}
