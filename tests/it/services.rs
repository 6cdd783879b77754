//! Cluster services with real agents (issue 10 items 3-5): jobs run exactly
//! once per tick across three agents (also while the coordinator is
//! SIGKILLed), a killed leader's container is replaced by a new leader with
//! the hooks run on both sides, and a backup job writes and prunes its
//! artifacts. Hooks and jobs append to a file under a host directory bound
//! into every container (`--allow-bind`), so the test reads what ran, in
//! the order it ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::{wait_until, TTL};
use crate::support::agents::{Agent, AgentConfig, Log};
use crate::support::cli::berth;
use crate::support::etcd::TestEtcd;
use crate::support::images::{self, WEB1};

struct Nodes {
    etcd: TestEtcd,
    /// Agent logs and the directory bound into the containers (`shared/`).
    dir: tempfile::TempDir,
    agents: Vec<Agent>,
}

impl Nodes {
    async fn start(prefix: &str, n: usize) -> Nodes {
        images::ensure_test_images().await.expect("test images");
        let etcd = TestEtcd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("shared")).expect("shared dir");
        let mut nodes = Nodes {
            etcd,
            dir,
            agents: Vec::new(),
        };
        for i in 0..n {
            let node = images::unique(&format!("{prefix}{i}"));
            let agent = nodes.spawn(&node, i + 2);
            nodes.agents.push(agent);
        }
        for a in &nodes.agents {
            let key = nodes.etcd.key(&format!("nodes/{}", a.node));
            wait_until("registered", || async {
                nodes.etcd.get(&key).await.is_some()
            })
            .await;
        }
        nodes
    }

    fn spawn(&self, node: &str, addr: usize) -> Agent {
        AgentConfig {
            labels: Some("svc=test".to_string()),
            address: Some(format!("127.0.0.{addr}")),
            extra: vec![
                "--allow-bind".to_string(),
                self.shared().display().to_string(),
            ],
            log: Log::Json(self.dir.path().join(format!("{node}.log"))),
            ..AgentConfig::new(&self.etcd.endpoint(), self.etcd.root(), node)
        }
        .spawn()
    }

    fn shared(&self) -> PathBuf {
        self.dir.path().join("shared")
    }

    fn apply(&self, spec: Value) {
        let doc = json!({
            "apiVersion": "berth/v1", "kind": "Component",
            "metadata": {"name": "db", "project": "shop"},
            "spec": spec,
        });
        let yaml =
            format!("apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\n{doc}\n");
        let out = berth(
            &self.etcd.endpoint(),
            self.etcd.root(),
            &["apply", "-f", "-"],
            Some(&yaml),
        );
        assert_eq!(out.code, 0, "{out:?}");
    }

    /// Run records of `job`: run id -> document.
    async fn runs(&self, job: &str) -> BTreeMap<String, Value> {
        let prefix = self.etcd.key(&format!("jobs/shop/db/{job}/"));
        let mut out = BTreeMap::new();
        for key in self.etcd.keys(&prefix).await {
            let v = self.etcd.get(&key).await.unwrap_or_default();
            let id = key.strip_prefix(&prefix).unwrap_or_default().to_string();
            out.insert(id, serde_json::from_slice(&v).unwrap_or_default());
        }
        out
    }

    async fn leader(&self) -> Option<(String, String, i64)> {
        let key = self.etcd.key("roles/shop/db/leader");
        let mut c = self.etcd.client().await;
        let r = c.get(key, None).await.ok()?;
        let kv = r.kvs().first()?;
        let v: Value = serde_json::from_slice(kv.value()).ok()?;
        Some((
            v["node"].as_str()?.to_string(),
            v["container"].as_str()?.to_string(),
            kv.create_revision(),
        ))
    }
}

/// The base spec: the web image (httpd, ready on 8080) on every node, the
/// shared directory bound at `/shared`.
fn base(shared: &Path) -> serde_json::Map<String, Value> {
    let spec = json!({
        "image": WEB1,
        "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"container": 8080}],
        "placement": {"perNode": 1},
        "readyChecks": [{"http": {"port": 8080, "path": "/"}, "interval": "1s"}],
        "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s"},
        "bindings": [{"host": shared.display().to_string(), "container": "/shared"}],
    });
    spec.as_object().cloned().unwrap_or_default()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A job on a per-second schedule (`on: any`) over three agents, each
/// running a replica: every tick of a 30-tick window runs exactly once
/// (one line in the shared file, one record in etcd), also across the
/// SIGKILL of the coordinator's agent and then of the agent winning the
/// claims, in the middle of the window.
#[tokio::test]
async fn a_per_second_job_runs_exactly_once_per_tick_across_a_killed_coordinator() {
    let mut c = Nodes::start("job", 3).await;
    let mut spec = base(&c.shared());
    spec.insert(
        "jobs".into(),
        json!([{
            "name": "tick", "schedule": "* * * * * *", "history": 100,
            "exec": ["sh", "-c", "echo \"$BERTH_JOB_TICK $BERTH_NODE\" >> /shared/runs; echo ran $BERTH_JOB_TICK"],
        }]),
    );
    c.apply(Value::Object(spec));
    let runs_file = c.shared().join("runs");
    // Every agent has a ready replica (they all fire every tick).
    wait_until("3 ready endpoints", || async {
        c.etcd.keys(&c.etcd.key("endpoints/shop/db/")).await.len() == 3
    })
    .await;
    wait_until("a first run", || async { !lines(&runs_file).is_empty() }).await;
    let first: String = lines(&runs_file)[0]
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    // Ten ticks in, the coordinator's agent is SIGKILLed (its replica keeps
    // running, orphaned); ten ticks later, so is the agent that ran the
    // latest tick (an agent that was winning the claims); the survivor
    // goes on.
    let reached = |secs: i64| {
        let want = tick_plus(&first, secs);
        let file = runs_file.clone();
        move || {
            let want = want.clone();
            let file = file.clone();
            async move {
                lines(&file)
                    .iter()
                    .any(|l| l.split(' ').next() >= Some(want.as_str()))
            }
        }
    };
    wait_until("ten ticks", reached(10)).await;
    let coordinator = c
        .etcd
        .get_string(&c.etcd.key("election/coordinator"))
        .await
        .expect("a coordinator");
    let kill = |c: &mut Nodes, node: &str| {
        let i = c
            .agents
            .iter()
            .position(|a| a.node == node)
            .expect("one of ours");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.agents[i].child.id() as i32, libc::SIGKILL) };
        let _ = c.agents[i].child.wait();
    };
    kill(&mut c, &coordinator);
    wait_until("twenty ticks", reached(20)).await;
    let runner = lines(&runs_file)
        .last()
        .and_then(|l| l.split(' ').nth(1).map(str::to_string))
        .expect("a runner");
    assert_ne!(runner, coordinator, "a dead agent ran a tick");
    kill(&mut c, &runner);
    // Up to 34 ticks: every tick of the window is then past the 3 s grace
    // in which any agent could still fire it, so no duplicate can come.
    wait_until("34 ticks", reached(34)).await;
    let mut executions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in lines(&runs_file) {
        let mut parts = l.split(' ');
        let (tick, node) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        executions
            .entry(tick.to_string())
            .or_default()
            .push(node.to_string());
    }
    let records = c.runs("tick").await;
    let window: Vec<String> = (0..30).map(|i| tick_plus(&first, i)).collect();
    let mut nodes_seen = std::collections::BTreeSet::new();
    for t in &window {
        let ran = executions.get(t).cloned().unwrap_or_default();
        assert_eq!(
            ran.len(),
            1,
            "tick {t} ran {} times ({ran:?}); all: {executions:#?}",
            ran.len()
        );
        let rec = records
            .get(t)
            .unwrap_or_else(|| panic!("no record of tick {t}: {:?}", records.keys()));
        assert_eq!(
            rec["node"].as_str(),
            Some(ran[0].as_str()),
            "record of {t}: {rec}"
        );
        nodes_seen.insert(ran[0].clone());
    }
    // No tick ran twice anywhere in the file, inside the window or not.
    for (t, ran) in &executions {
        assert_eq!(ran.len(), 1, "tick {t} ran {ran:?}");
    }
    // The survivor ran the last ticks.
    let last_runners: std::collections::BTreeSet<&String> = window[25..]
        .iter()
        .filter_map(|t| executions.get(t).and_then(|r| r.first()))
        .collect();
    assert_eq!(last_runners.len(), 1, "{last_runners:?}");
    assert!(!last_runners.contains(&coordinator) && !last_runners.contains(&runner));
    assert!(records
        .values()
        .any(|r| r["output"].as_str().is_some_and(|o| o.starts_with("ran "))));
    eprintln!(
        "30 ticks from {first} ran once each on {nodes_seen:?}; coordinator {coordinator} killed after 10, runner {runner} after 20"
    );
}

/// `20261204T100000Z` plus `secs` seconds, in the same format.
fn tick_plus(tick: &str, secs: i64) -> String {
    let t = chrono::NaiveDateTime::parse_from_str(tick, "%Y%m%dT%H%M%SZ").expect("tick format");
    (t + chrono::Duration::seconds(secs))
        .format("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// A per-second job on the leader that appends `<tick> <hostname>` to
/// `/shared/lead`: its lines say where the leader was, tick by tick.
fn leader_job() -> Value {
    json!([{"name": "lead", "schedule": "* * * * * *", "on": "leader",
            "exec": ["sh", "-c", "echo \"$BERTH_JOB_TICK $HOSTNAME\" >> /shared/lead"]}])
}

/// The base spec with `roles.elect` and hooks that append
/// `<role> <hostname> <term>` to `/shared/hooks`.
fn elected(shared: &Path) -> serde_json::Map<String, Value> {
    let hook = |role: &str| json!({"exec": ["sh", "-c", format!("echo \"{role} $HOSTNAME $BERTH_ROLE_TERM\" >> /shared/hooks")]});
    let mut spec = base(shared);
    spec.insert(
        "roles".into(),
        json!({"elect": true, "onLeader": hook("leader"), "onFollower": hook("follower")}),
    );
    spec
}

/// Three replicas elect one leader (hooks: one `leader`, two `follower`;
/// the role file says so in each). The leader's container is SIGKILLed: a
/// new leader is elected within the lease TTL, its hook runs, and the old
/// container, restarted in place, gets the follower hook after that.
#[tokio::test]
async fn a_killed_leader_is_replaced_and_the_hooks_run_on_both_sides() {
    let c = Nodes::start("role", 3).await;
    let mut spec = elected(&c.shared());
    // A per-second job on the leader: it runs where the leader is.
    spec.insert("jobs".into(), leader_job());
    c.apply(Value::Object(spec));
    let hooks = c.shared().join("hooks");
    let lead = c.shared().join("lead");
    wait_until("one leader and two followers", || async {
        let l = lines(&hooks);
        l.iter().filter(|x| x.starts_with("leader ")).count() == 1
            && l.iter().filter(|x| x.starts_with("follower ")).count() == 2
    })
    .await;
    let (_, old, old_term) = c.leader().await.expect("a leader key");
    let docker = images::docker().await;
    let role_of = |id: String| {
        let docker = docker.clone();
        async move {
            docker
                .exec_output(
                    &id,
                    &["cat".into(), "/run/berth/role".into()],
                    Duration::from_secs(5),
                )
                .await
                .map(|o| o.output.trim().to_string())
                .unwrap_or_default()
        }
    };
    assert_eq!(role_of(old.clone()).await, "leader");
    let all: Vec<String> = c
        .etcd
        .keys(&c.etcd.key("endpoints/shop/db/"))
        .await
        .iter()
        .filter_map(|k| k.rsplit('/').next().map(str::to_string))
        .collect();
    assert_eq!(all.len(), 3, "{all:?}");
    for id in all.iter().filter(|id| **id != old) {
        assert_eq!(role_of(id.clone()).await, "follower", "{id}");
    }
    // An exec sees the container's environment: BERTH_ROLE as set at start.
    let env = docker
        .exec_output(
            &old,
            &["sh".into(), "-c".into(), "echo $BERTH_ROLE".into()],
            Duration::from_secs(5),
        )
        .await
        .expect("printenv");
    assert_eq!(env.output.trim(), "follower", "BERTH_ROLE at start");
    // The leader job runs on the leader before the kill.
    wait_until("the leader job on the first leader", || async {
        lines(&lead).iter().any(|l| l.ends_with(&old[..12]))
    })
    .await;
    let before = lines(&hooks).len();
    let killed = Instant::now();
    docker
        .kill(&old)
        .await
        .expect("kill the leader's container");
    // A new leader within the lease TTL.
    let mut new = None;
    while killed.elapsed() < TTL {
        if let Some((_, id, term)) = c.leader().await {
            if id != old {
                assert!(term > old_term);
                new = Some(id);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new = new.unwrap_or_else(|| panic!("no new leader within {TTL:?}"));
    eprintln!("new leader after {:?}", killed.elapsed());
    let short = |id: &str| id.get(..12).unwrap_or(id).to_string();
    // Hostnames in the hook lines are the containers' short ids.
    wait_until(
        "the new leader's hook, then the old one's follower hook",
        || async {
            let l = lines(&hooks)[before..].to_vec();
            let lead = l
                .iter()
                .position(|x| x.starts_with(&format!("leader {}", short(&new))));
            let follow = l
                .iter()
                .position(|x| x.starts_with(&format!("follower {}", short(&old))));
            matches!((lead, follow), (Some(a), Some(b)) if a < b)
        },
    )
    .await;
    assert_eq!(role_of(new.clone()).await, "leader");
    assert_eq!(role_of(old.clone()).await, "follower");
    // Never two leaders: after the kill, only the new one became leader.
    let after: Vec<String> = lines(&hooks)[before..].to_vec();
    assert_eq!(
        after.iter().filter(|x| x.starts_with("leader ")).count(),
        1,
        "{after:?}"
    );
    // `get endpoints` shows the roles.
    let out = berth(
        &c.etcd.endpoint(),
        c.etcd.root(),
        &["get", "endpoints", "-p", "shop"],
        None,
    )
    .ok();
    let lead_row = out
        .stdout
        .lines()
        .find(|l| l.contains(&short(&new)))
        .unwrap_or_default()
        .to_string();
    assert!(lead_row.contains("leader"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("leader").count(), 1, "{}", out.stdout);
    // The leader job ran on the old leader, then on the new one, once per tick.
    wait_until("the leader job on the new leader", || async {
        lines(&lead).iter().any(|l| l.ends_with(&short(&new)))
    })
    .await;
    let runs = lines(&lead);
    let hosts: std::collections::BTreeSet<&str> =
        runs.iter().filter_map(|l| l.split(' ').nth(1)).collect();
    assert!(
        hosts.iter().all(|h| *h == short(&old) || *h == short(&new)),
        "only leaders run it: {runs:?}"
    );
    assert!(hosts.contains(short(&old).as_str()), "{runs:?}");
    let ticks: std::collections::BTreeSet<&str> =
        runs.iter().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(ticks.len(), runs.len(), "a tick ran twice: {runs:?}");
    // Role changes are cluster events.
    let ev = berth(
        &c.etcd.endpoint(),
        c.etcd.root(),
        &["events", "-p", "shop"],
        None,
    )
    .ok();
    assert!(
        ev.stdout.contains("BecameLeader") && ev.stdout.contains("BecameFollower"),
        "{}",
        ev.stdout
    );
    // So does `describe`.
    let d = berth(
        &c.etcd.endpoint(),
        c.etcd.root(),
        &["describe", "component", "db", "-p", "shop"],
        None,
    )
    .ok();
    assert!(
        d.stdout
            .contains(&format!("Roles:        leader {}", short(&new))),
        "{}",
        d.stdout
    );
    assert!(
        d.stdout.contains(&format!("{} on ", short(&old))) && d.stdout.contains(": follower"),
        "{}",
        d.stdout
    );
}

/// A leader whose container turns unhealthy but still runs steps down
/// before its key goes: its follower hook runs once (not again while the
/// agent's cache of `roles/` catches up with the deletion), before the
/// next leader's hook.
#[tokio::test]
async fn an_unhealthy_leader_steps_down_once_before_the_next_one_leads() {
    let c = Nodes::start("roleu", 2).await;
    let mut spec = elected(&c.shared());
    spec.insert(
        "healthChecks".into(),
        json!([{"exec": {"command": ["test", "!", "-e", "/tmp/sick"]},
                "interval": "300ms", "failureThreshold": 1}]),
    );
    // A per-second job on the leader: its runs mark election passes.
    spec.insert("jobs".into(), leader_job());
    c.apply(Value::Object(spec));
    let hooks = c.shared().join("hooks");
    let lead = c.shared().join("lead");
    wait_until("one leader and one follower", || async {
        lines(&hooks).len() == 2
    })
    .await;
    let (_, old, old_term) = c.leader().await.expect("a leader key");
    let before = lines(&hooks).len();
    let docker = images::docker().await;
    let touch = ["/bin/touch".to_string(), "/tmp/sick".to_string()];
    let code = docker
        .exec(&old, &touch, Duration::from_secs(10))
        .await
        .expect("exec");
    assert_eq!(code, 0);
    let short = |id: &str| id.get(..12).unwrap_or(id).to_string();
    let stepped_down = format!("follower {} {old_term}", short(&old));
    wait_until(
        "the old leader's follower hook, then a new leader's",
        || async {
            let l = lines(&hooks)[before..].to_vec();
            let follow = l.iter().position(|x| *x == stepped_down);
            let lead = l.iter().position(|x| x.starts_with("leader "));
            matches!((follow, lead), (Some(a), Some(b)) if a < b)
        },
    )
    .await;
    let (_, new, new_term) = c.leader().await.expect("a new leader key");
    assert_ne!(new, old);
    assert!(new_term > old_term, "{new_term} > {old_term}");
    // Two runs of the leader job on the new leader: over a second of
    // election passes after the step-down.
    wait_until("two leader job runs on the new leader", || async {
        lines(&lead)
            .iter()
            .filter(|l| l.ends_with(&short(&new)))
            .count()
            >= 2
    })
    .await;
    let after = lines(&hooks)[before..].to_vec();
    let count = |p: &str| after.iter().filter(|x| x.starts_with(p)).count();
    assert_eq!(
        after.iter().filter(|x| **x == stepped_down).count(),
        1,
        "{after:?}"
    );
    assert_eq!(count("leader "), 1, "one new leader: {after:?}");
    assert!(
        after.contains(&format!("leader {} {new_term}", short(&new))),
        "{after:?}"
    );
}

/// The leader's agent is SIGKILLed: its leader key goes with its lease and
/// another node's replica leads within the lease TTL (plus etcd's expiry
/// check, which runs every 500 ms), its leader hook run.
#[tokio::test]
async fn a_killed_leaders_agent_is_replaced_within_the_lease_ttl() {
    let mut c = Nodes::start("rolek", 3).await;
    c.apply(Value::Object(elected(&c.shared())));
    let hooks = c.shared().join("hooks");
    wait_until("one leader and two followers", || async {
        lines(&hooks).len() == 3
    })
    .await;
    let (node, old, _) = c.leader().await.expect("a leader key");
    let victim = c
        .agents
        .iter()
        .position(|a| a.node == node)
        .expect("our node");
    let killed = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(c.agents[victim].child.id() as i32, libc::SIGKILL) };
    let _ = c.agents[victim].child.wait();
    let bound = TTL + Duration::from_millis(1000);
    let new = loop {
        if let Some((n, id, _)) = c.leader().await {
            if id != old {
                assert_ne!(n, node);
                break id;
            }
        }
        assert!(killed.elapsed() < bound, "no new leader within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "new leader {} after {:?} (lease TTL {TTL:?})",
        &new[..12],
        killed.elapsed()
    );
    wait_until("the new leader's hook", || async {
        lines(&hooks)
            .iter()
            .any(|l| l.starts_with(&format!("leader {}", &new[..12])))
    })
    .await;
}

/// A backup job: each run's stdout becomes `<job>-<stamp>.out` in the
/// destination on the node; keep hourly 1 prunes all but the newest of the
/// job's files, and a file berth did not write stays.
#[tokio::test]
async fn a_backup_job_writes_artifacts_and_prunes_them() {
    let c = Nodes::start("bak", 1).await;
    let dest = c.dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("dest");
    std::fs::write(dest.join("notes.txt"), "not a backup").expect("notes");
    std::fs::write(dest.join("dump-20200101T000000Z.out"), "old").expect("old");
    let mut spec = base(&c.shared());
    spec.insert(
        "jobs".into(),
        json!([{
            "name": "dump", "schedule": "*/2 * * * * *",
            "exec": ["sh", "-c", "echo \"backup $BERTH_JOB_TICK\"; echo to-stderr >&2"],
            "backup": {"destination": dest.display().to_string(), "keep": {"hourly": 1}},
        }, {
            "name": "fail", "schedule": "0 0 1 1 *",
            "exec": ["sh", "-c", "echo first; sleep 1; echo oops; exit 3"],
        }]),
    );
    c.apply(Value::Object(spec));
    wait_until("three backups recorded", || async {
        c.runs("dump")
            .await
            .values()
            .filter(|r| r["artifact"].is_string())
            .count()
            >= 3
    })
    .await;
    let runs = c.runs("dump").await;
    let newest = runs
        .values()
        .rfind(|r| r["artifact"].is_string())
        .expect("a run")
        .clone();
    let files = || {
        let mut f: Vec<String> = std::fs::read_dir(&dest)
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .collect();
        f.sort();
        f
    };
    let left = files();
    assert_eq!(left.len(), 2, "the newest backup and notes.txt: {left:?}");
    assert!(left.contains(&"notes.txt".to_string()));
    let artifact = left
        .iter()
        .find(|f| f.starts_with("dump-"))
        .expect("a backup")
        .clone();
    assert_ne!(
        artifact, "dump-20200101T000000Z.out",
        "the old backup was pruned"
    );
    let content = std::fs::read_to_string(dest.join(&artifact)).expect("read");
    assert!(content.starts_with("backup "), "stdout only: {content:?}");
    assert!(!content.contains("to-stderr"));
    assert!(
        newest["artifact"]
            .as_str()
            .is_some_and(|a| a.ends_with(".out")),
        "{newest}"
    );

    // `describe` shows the history.
    let (ep, root) = (c.etcd.endpoint(), c.etcd.root().to_string());
    let d = berth(
        &ep,
        &root,
        &["describe", "component", "db", "-p", "shop"],
        None,
    )
    .ok();
    assert!(
        d.stdout.contains("Jobs:") && d.stdout.contains("dump: \"*/2 * * * * *\" on any"),
        "{}",
        d.stdout
    );
    assert!(d.stdout.contains("Succeeded"), "{}", d.stdout);
    // `berth job run` streams the output and passes the exit code on.
    let out = berth(
        &ep,
        &root,
        &["job", "run", "db", "fail", "-p", "shop"],
        None,
    );
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "first\noops\n", "{out:?}");
    let runs = c.runs("fail").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let (id, rec) = runs.iter().next().expect("a run");
    assert!(id.starts_with("manual-"), "{id}");
    assert_eq!(rec["exitCode"], 3, "{rec}");
    let out = berth(
        &ep,
        &root,
        &["job", "run", "db", "dump", "-p", "shop"],
        None,
    )
    .ok();
    // stdout and stderr stay apart: `> dump.txt` gets the dump only.
    assert!(
        out.stdout.starts_with("backup ") && !out.stdout.contains("to-stderr"),
        "{out:?}"
    );
    assert_eq!(out.stderr, "to-stderr\n", "{out:?}");
    let out = berth(
        &ep,
        &root,
        &["job", "run", "db", "nope", "-p", "shop"],
        None,
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("has no job \"nope\" (its jobs: dump, fail)"),
        "{out:?}"
    );
}

/// The fence itself against a real etcd: eight agents claiming the same
/// tick at once (each its own client, as separate agents), and an agent
/// whose clock is a second behind claiming it later: exactly one claim
/// wins, and the record is on a lease (it goes by itself).
#[tokio::test]
async fn concurrent_claims_of_one_tick_let_exactly_one_run() {
    use berth::resource::ComponentKey;
    use berth::services::jobs::claim::Records;
    use berth::services::jobs::record::run_id;
    use berth::services::jobs::{JobRun, RunPhase, Trigger};

    let etcd = TestEtcd::start().await;
    let keys = berth::store::Keys::new(etcd.root());
    let ck = ComponentKey::new("shop", "db");
    let tick = chrono::Utc::now();
    let run = |node: &str| JobRun {
        job: "tick".into(),
        tick: tick.to_rfc3339(),
        trigger: Trigger::Schedule,
        node: node.into(),
        container: "c".into(),
        phase: RunPhase::Running,
        started: tick.to_rfc3339(),
        duration_ms: None,
        exit_code: None,
        output: String::new(),
        message: None,
        artifact: None,
    };
    let mut claims = Vec::new();
    for i in 0..8 {
        let records = Records::new(etcd.client().await, keys.clone());
        let (key, doc) = (
            records.key(&ck, "tick", &run_id(tick, None)),
            run(&format!("n{i}")),
        );
        claims.push(tokio::spawn(async move {
            records.claim(&key, &doc).await.expect("claim")
        }));
    }
    let mut won = 0;
    for c in claims {
        won += usize::from(c.await.expect("task"));
    }
    assert_eq!(won, 1, "exactly one of eight concurrent claims wins");
    // A clock a second behind fires the same scheduled tick a second later:
    // same run id, same key, refused.
    let late = Records::new(etcd.client().await, keys.clone());
    let key = late.key(&ck, "tick", &run_id(tick, None));
    assert!(!late.claim(&key, &run("skewed")).await.expect("claim"));
    let (_, lease) = etcd.get_with_lease(&key).await.expect("the record");
    assert_ne!(lease, 0, "records live on a lease");
}

/// Issue 10's bad input for jobs and roles through `berth apply`: each is
/// refused with one line naming the position and the field path, and
/// nothing is written to etcd.
#[tokio::test]
async fn bad_jobs_and_roles_are_refused_at_apply_writing_nothing() {
    let etcd = TestEtcd::start().await;
    let check = |spec: &str, want: &[&str]| {
        let yaml = format!(
            "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\napiVersion: berth/v1\nkind: Component\nmetadata:\n  name: db\n  project: shop\nspec:\n  image: {WEB1}\n{spec}"
        );
        let out = berth(
            &etcd.endpoint(),
            etcd.root(),
            &["apply", "-f", "-"],
            Some(&yaml),
        );
        let line = out.one_line_error().to_string();
        for w in want {
            assert!(line.contains(w), "{line:?} lacks {w:?}");
        }
    };
    for (spec, want) in [
        (
            "  jobs:\n  - name: dump\n    schedule: '99 * * * *'\n    exec: [date]\n",
            &["<stdin>:14:15:", "spec.jobs[0].schedule: invalid cron expression \"99 * * * *\""][..],
        ),
        (
            "  jobs:\n  - name: dump\n    schedule: '0 * * * *'\n    exec: [date]\n    backup: {destination: /b, keep: {hourly: 0, daily: 0}}\n",
            &[":16:", "spec.jobs[0].backup.keep: hourly, daily, weekly and monthly are all 0"][..],
        ),
        (
            "  roles:\n    elect: false\n    onFollower: {exec: [date]}\n",
            &[":14:5:", "spec.roles.onFollower: a role hook needs `elect: true`"][..],
        ),
        (
            "  jobs:\n  - name: dump\n    schedule: '* * * * *'\n    on: leader\n    exec: [date]\n",
            &[":15:", "spec.jobs[0].on: `leader` needs `spec.roles.elect: true`"][..],
        ),
    ] {
        check(spec, want);
    }
    assert!(
        etcd.keys(&etcd.key("")).await.is_empty(),
        "nothing written: {:?}",
        etcd.keys(&etcd.key("")).await
    );
    // The same input made valid is written (the check above can see keys).
    let yaml = format!(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\napiVersion: berth/v1\nkind: Component\nmetadata:\n  name: db\n  project: shop\nspec:\n  image: {WEB1}\n  roles: {{elect: true, onFollower: {{exec: [date]}}}}\n  jobs: [{{name: dump, schedule: '0 * * * *', on: leader, exec: [date]}}]\n"
    );
    berth(
        &etcd.endpoint(),
        etcd.root(),
        &["apply", "-f", "-"],
        Some(&yaml),
    )
    .ok();
    assert!(etcd
        .get(&etcd.key("specs/component/shop/db"))
        .await
        .is_some());
}
