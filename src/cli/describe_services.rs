//! The cluster-service part of `describe component`: the elected leader
//! (roles) and each job's schedule with its last runs (from etcd's
//! `roles/` and `jobs/` keys).

use std::fmt::Write as _;

use crate::resource::component::Component;
use crate::resource::ComponentKey;
use crate::services::jobs::JobRun;
use crate::services::roles::LeaderRecord;
use crate::store::{Store, StoreError};

use super::output::Table;

/// The `Roles:` and `Jobs:` sections; empty when the component has neither.
pub async fn sections(store: &Store, c: &Component) -> Result<String, StoreError> {
    let spec = &c.spec;
    let mut s = String::new();
    let ck = ComponentKey::new(
        c.metadata.project.clone().unwrap_or_default(),
        c.metadata.name.clone(),
    );
    if spec.roles.as_ref().is_some_and(|r| r.elect) {
        let (kvs, _) = store.range_all(&store.keys().role_leader(&ck)).await?;
        let leader = kvs.first().and_then(|kv| {
            let rec: LeaderRecord = serde_json::from_slice(kv.value()).ok()?;
            Some((rec, kv.create_revision()))
        });
        s.push_str(&roles_line(leader.as_ref()));
        // Every ready replica (its endpoint) with its role.
        let (eps, _) = store
            .range_all(&store.keys().component_endpoints_prefix(&ck))
            .await?;
        let replicas: Vec<(String, String)> = eps
            .iter()
            .filter_map(|kv| {
                let ep: crate::resource::endpoint::Endpoint =
                    serde_json::from_slice(kv.value()).ok()?;
                Some((ep.node, ep.container))
            })
            .collect();
        s.push_str(&replica_roles(&replicas, leader.as_ref().map(|l| &l.0)));
    }
    if spec.jobs.is_empty() {
        return Ok(s);
    }
    let prefix = store.keys().jobs_prefix(&ck);
    let (kvs, _) = store.range_all(&prefix).await?;
    let runs: Vec<JobRun> = kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect();
    s.push_str("Jobs:\n");
    for job in &spec.jobs {
        let _ = writeln!(
            s,
            "  {}: {:?} on {} (timeout {:?}{})",
            job.name,
            job.schedule,
            job.on.as_str(),
            job.timeout(),
            job.backup
                .as_ref()
                .map_or(String::new(), |b| format!(", backup to {}", b.destination)),
        );
        let mine: Vec<&JobRun> = runs.iter().filter(|r| r.job == job.name).collect();
        s.push_str(&history(&mine));
    }
    Ok(s)
}

fn roles_line(leader: Option<&(LeaderRecord, i64)>) -> String {
    match leader {
        Some((rec, term)) => format!(
            "Roles:        leader {} on {} (term {term})\n",
            rec.container.get(..12).unwrap_or(&rec.container),
            rec.node
        ),
        None => "Roles:        no leader elected\n".to_string(),
    }
}

/// One line per ready replica: `  <container> on <node>: leader|follower`.
fn replica_roles(replicas: &[(String, String)], leader: Option<&LeaderRecord>) -> String {
    let mut s = String::new();
    for (node, container) in replicas {
        let role = if leader.is_some_and(|l| &l.container == container) {
            "leader"
        } else {
            "follower"
        };
        let _ = writeln!(
            s,
            "  {} on {node}: {role}",
            container.get(..12).unwrap_or(container)
        );
    }
    s
}

/// The runs newest first: tick, node, container, phase, exit code,
/// duration, and the last line of output.
fn history(runs: &[&JobRun]) -> String {
    if runs.is_empty() {
        return "    <no runs yet>\n".to_string();
    }
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| b.tick.cmp(&a.tick).then(b.started.cmp(&a.started)));
    let mut t = Table::new(&[
        "    TICK",
        "NODE",
        "CONTAINER",
        "PHASE",
        "EXIT",
        "DURATION",
        "OUTPUT",
    ]);
    for r in sorted {
        let last = r.output.lines().last().unwrap_or("");
        let out = r.message.as_deref().unwrap_or(last);
        t.row(vec![
            format!("    {}", r.tick),
            r.node.clone(),
            r.container.get(..12).unwrap_or(&r.container).to_string(),
            format!("{:?}", r.phase),
            r.exit_code.map_or("-".into(), |c| c.to_string()),
            r.duration_ms.map_or("-".into(), |d| format!("{d}ms")),
            out.chars().take(60).collect(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::jobs::{RunPhase, Trigger};

    fn run(tick: &str, phase: RunPhase, code: Option<i64>, output: &str) -> JobRun {
        JobRun {
            job: "dump".into(),
            tick: tick.into(),
            trigger: Trigger::Schedule,
            node: "n1".into(),
            container: "0123456789abcdef".into(),
            phase,
            started: tick.into(),
            duration_ms: code.map(|_| 12),
            exit_code: code,
            output: output.into(),
            message: None,
            artifact: None,
        }
    }

    #[test]
    fn history_is_newest_first_with_exit_codes_and_output() {
        let a = run(
            "2026-12-04T10:00:00.000Z",
            RunPhase::Succeeded,
            Some(0),
            "one\ntwo\n",
        );
        let b = run("2026-12-04T10:00:01.000Z", RunPhase::Running, None, "");
        let text = history(&[&a, &b]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("TICK"), "{text}");
        assert!(
            lines[1].contains("10:00:01") && lines[1].contains("Running"),
            "{text}"
        );
        assert!(
            lines[2].contains("Succeeded")
                && lines[2].contains("12ms")
                && lines[2].ends_with("two"),
            "{text}"
        );
        assert_eq!(history(&[]), "    <no runs yet>\n");
        let rec = LeaderRecord {
            node: "n2".into(),
            container: "abcdefabcdef99".into(),
        };
        assert_eq!(
            roles_line(Some(&(rec.clone(), 42))),
            "Roles:        leader abcdefabcdef on n2 (term 42)\n"
        );
        let replicas = vec![
            ("n2".to_string(), "abcdefabcdef99".to_string()),
            ("n1".to_string(), "0123456789abcdef".to_string()),
        ];
        assert_eq!(
            replica_roles(&replicas, Some(&rec)),
            "  abcdefabcdef on n2: leader\n  0123456789ab on n1: follower\n"
        );
    }
}
