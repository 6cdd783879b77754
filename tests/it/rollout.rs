//! Rollouts across three `berth agent` processes, one etcd and the one
//! Docker engine (issue 8): the budgets held at every moment (a watcher of
//! `observed/`), a never-ready image failing within its deadline and
//! rolled back, a crash loop ending `rollout status` early, canary with
//! pause and promote, undo and restart, a coordinator SIGKILLed
//! mid-rollout whose successor finishes the same rollout, an image
//! mismatch failing a rollout with the node named, and health replacements
//! held to the same surge budget.
//!
//! Each test uses its own etcd root and node names; the agents' guards
//! remove their containers even when a test fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use etcd_client::{EventType, WatchOptions};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::cluster::{wait_until, Cluster};
use crate::support::cli::{berth, Output};
use crate::support::images::{WEB1, WEB2};

const REPLICAS: u32 = 6;
/// Short, so failures show fast.
const DEADLINE_S: u64 = 8;

/// How the component's containers behave.
#[derive(Clone, Copy)]
enum Behaviour {
    Serves(&'static str),
    /// Runs, never answers its ready check.
    NeverReady,
    /// Exits 1 at once, every time.
    Crashes,
}

fn web(b: Behaviour, rollout: Value) -> String {
    let (image, command) = match b {
        Behaviour::Serves(image) => (
            image,
            json!(["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]),
        ),
        Behaviour::NeverReady => (WEB2, json!(["/bin/sleep", "3600"])),
        Behaviour::Crashes => (WEB2, json!(["/bin/sh", "-c", "exit 1"])),
    };
    let doc = json!({
        "apiVersion": "berth/v1", "kind": "Component",
        "metadata": {"name": "web", "project": "shop"},
        "spec": {
            "image": image,
            "command": command,
            "ports": [{"container": 8080}],
            "placement": {"replicas": REPLICAS},
            "readyChecks": [{"http": {"port": 8080, "path": "/"}, "interval": "1s"}],
            "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s", "drainTimeout": "2s"},
            "rollout": rollout,
        }
    });
    format!("apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\n{doc}\n")
}

fn run(c: &Cluster, args: &[&str]) -> Output {
    berth(&c.etcd.endpoint(), c.etcd.root(), args, None)
}

fn rollout_status(c: &Cluster, timeout: &str) -> Output {
    run(
        c,
        &[
            "rollout",
            "status",
            "web",
            "-p",
            "shop",
            "--timeout",
            timeout,
        ],
    )
}

/// `rollout_status` off the runtime's thread, so a watcher beside it runs.
async fn rollout_status_async(c: &Cluster, timeout: &str) -> Output {
    let (endpoint, root) = (c.etcd.endpoint(), c.etcd.root().to_string());
    let timeout = timeout.to_string();
    tokio::task::spawn_blocking(move || {
        let args = [
            "rollout",
            "status",
            "web",
            "-p",
            "shop",
            "--timeout",
            &timeout,
        ];
        berth(&endpoint, &root, &args, None)
    })
    .await
    .expect("rollout status ran")
}

fn last_line(o: &Output) -> String {
    o.stdout.lines().last().unwrap_or_default().to_string()
}

/// Three agents and `web` at revision 1, every replica available.
async fn started(prefix: &str, rollout: Value) -> Cluster {
    let c = Cluster::start(prefix, &["zone=a", "zone=a", "zone=a"]).await;
    c.apply(&web(Behaviour::Serves(WEB1), rollout));
    let out = rollout_status(&c, "120s");
    assert_eq!(out.code, 0, "first rollout: {out:?}");
    c
}

/// Containers of `web` per image hash over every node's observed document:
/// (not leaving, ready) per hash.
async fn running(c: &Cluster) -> BTreeMap<String, (u32, u32)> {
    let mut out: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for key in c.etcd.keys(&c.etcd.key("observed/")).await {
        if !key.ends_with("/shop/web") {
            continue;
        }
        let v: Value =
            serde_json::from_slice(&c.etcd.get(&key).await.unwrap_or_default()).unwrap_or_default();
        for ctr in v["containers"].as_array().into_iter().flatten() {
            let phase = ctr["phase"].as_str().unwrap_or_default();
            if matches!(phase, "draining" | "stopping" | "stopped") {
                continue;
            }
            let e = out
                .entry(ctr["hash"].as_str().unwrap_or_default().into())
                .or_default();
            e.0 += 1;
            e.1 += u32::from(phase == "ready");
        }
    }
    out
}

/// The container ids of `web` on every node.
async fn container_ids(c: &Cluster) -> Vec<String> {
    let mut ids = Vec::new();
    for key in c.etcd.keys(&c.etcd.key("observed/")).await {
        if !key.ends_with("/shop/web") {
            continue;
        }
        let v: Value =
            serde_json::from_slice(&c.etcd.get(&key).await.unwrap_or_default()).unwrap_or_default();
        for ctr in v["containers"].as_array().into_iter().flatten() {
            ids.extend(ctr["id"].as_str().map(String::from));
        }
    }
    ids
}

fn rollout_of(st: &Value) -> &Value {
    &st["rollout"]
}

/// What a watcher of `observed/` saw: the fewest ready and the most
/// containers (leaving ones included) at any revision of etcd.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Extremes {
    pub(crate) least_ready: u32,
    pub(crate) most_containers: u32,
    pub(crate) events: u32,
}

/// Follows `observed/` (of `shop/web`) from `from` on, one etcd revision
/// at a time, until it has seen the revision `until` names (0: not yet).
pub(crate) async fn watch_budgets(
    etcd: &crate::support::etcd::TestEtcd,
    from: i64,
    mut until: watch::Receiver<i64>,
) -> Extremes {
    let mut client = etcd.client().await;
    let prefix = etcd.key("observed/");
    // Start from the state at `from`.
    let mut docs: BTreeMap<String, Value> = BTreeMap::new();
    let resp = client
        .get(
            prefix.as_str(),
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_revision(from),
            ),
        )
        .await
        .expect("list observed");
    for kv in resp.kvs() {
        let v = serde_json::from_slice(kv.value()).unwrap_or_default();
        docs.insert(String::from_utf8_lossy(kv.key()).into_owned(), v);
    }
    let count = |docs: &BTreeMap<String, Value>| -> (u32, u32) {
        let (mut ready, mut all) = (0, 0);
        for (k, v) in docs {
            if !k.ends_with("/shop/web") {
                continue;
            }
            for ctr in v["containers"].as_array().into_iter().flatten() {
                all += 1;
                ready += u32::from(ctr["phase"] == "ready");
            }
        }
        (ready, all)
    };
    let (r, a) = count(&docs);
    let mut x = Extremes {
        least_ready: r,
        most_containers: a,
        events: 0,
    };
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(from + 1);
    let mut stream = client
        .watch(prefix.as_str(), Some(opts))
        .await
        .expect("watch");
    let mut seen = from;
    loop {
        let end = *until.borrow();
        if end > 0 && seen >= end {
            return x;
        }
        // Once told where to stop, events up to there come at once; the
        // last observed write may be older than `end` (other keys moved it).
        let patience = if end > 0 {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            _ = until.changed() => {}
            msg = tokio::time::timeout(patience, stream.message()) => {
                let Ok(Ok(Some(resp))) = msg else { return x };
                seen = seen.max(resp.header().map_or(0, |h| h.revision()));
                let mut revision = 0;
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    if kv.mod_revision() != revision && revision != 0 {
                        let (r, a) = count(&docs);
                        x.least_ready = x.least_ready.min(r);
                        x.most_containers = x.most_containers.max(a);
                    }
                    revision = kv.mod_revision();
                    x.events += 1;
                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                    match ev.event_type() {
                        EventType::Put => {
                            docs.insert(key, serde_json::from_slice(kv.value()).unwrap_or_default());
                        }
                        EventType::Delete => {
                            docs.remove(&key);
                        }
                    }
                }
                let (r, a) = count(&docs);
                x.least_ready = x.least_ready.min(r);
                x.most_containers = x.most_containers.max(a);
            }
        }
    }
}

/// (a) 6 replicas over 3 nodes, maxSurge 1 and maxUnavailable 1: at every
/// revision of etcd, ready >= 5 and containers (draining ones too) <= 7.
#[tokio::test]
async fn rolling_update_holds_the_budgets_at_every_moment() {
    let policy = json!({"maxSurge": 1, "maxUnavailable": 1, "progressDeadline": "60s"});
    let c = started("ru", policy.clone()).await;
    let from = c.etcd.revision().await;
    let (tx, rx) = watch::channel(0i64);
    let watcher = {
        let c = &c;
        async move { watch_budgets(&c.etcd, from, rx).await }
    };
    let roll = async {
        c.apply(&web(Behaviour::Serves(WEB2), policy.clone()));
        let out = rollout_status_async(&c, "180s").await;
        // The watcher stops once it has seen everything up to now.
        let _ = tx.send(c.etcd.revision().await);
        out
    };
    let (x, out) = tokio::join!(watcher, roll);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(last_line(&out).contains("complete"), "{out:?}");
    eprintln!("watcher: {x:?}");
    assert!(x.events > 0, "the watcher saw nothing");
    assert!(
        x.least_ready >= REPLICAS - 1,
        "ready fell to {}",
        x.least_ready
    );
    assert!(
        x.most_containers <= REPLICAS + 1,
        "{} containers at once",
        x.most_containers
    );
    let by_hash = running(&c).await;
    assert_eq!(by_hash.len(), 1, "{by_hash:?}");
    assert_eq!(by_hash.values().next().copied(), Some((REPLICAS, REPLICAS)));
    // The coordinator's events: one per step, then the end (written in the
    // background, so they may trail the status a moment).
    let start = std::time::Instant::now();
    loop {
        let out = run(&c, &["events", "-p", "shop", "-o", "json"]);
        let steps = out.stdout.matches("\"RolloutStep\"").count();
        if steps >= REPLICAS as usize && out.stdout.contains("\"RolloutComplete\"") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{steps} RolloutStep events: {}",
            out.stdout
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (b) An image that never becomes ready: the rollout fails within its
/// deadline with the cause, the old revision is brought back through the
/// budgets, and `berth rollout status` exits 3 with the cause on its last
/// line. The old revision never lost more than maxUnavailable.
#[tokio::test]
async fn a_never_ready_image_is_rolled_back() {
    let policy =
        json!({"maxSurge": 1, "maxUnavailable": 1, "progressDeadline": format!("{DEADLINE_S}s")});
    let c = started("nr", policy.clone()).await;
    let before = running(&c).await;
    let old_hash = before.keys().next().cloned().unwrap_or_default();
    let applied = Instant::now();
    c.apply(&web(Behaviour::NeverReady, policy));
    let out = rollout_status(&c, "120s");
    let took = applied.elapsed();
    assert_eq!(out.code, 3, "{out:?}");
    let last = last_line(&out);
    assert!(
        last.contains("ReadyCheckFailed") && last.contains("rolled back to revision 1"),
        "{last}"
    );
    assert!(took < Duration::from_secs(DEADLINE_S + 20), "took {took:?}");
    let st = c.status("web").await;
    let r = rollout_of(&st);
    assert_eq!(
        (r["phase"].as_str(), r["rolledBackFrom"].as_u64()),
        (Some("RolledBack"), Some(2)),
        "{st}"
    );
    assert_eq!(r["cause"]["reason"], "ReadyCheckFailed", "{st}");
    assert!(
        r["cause"]["nodes"]
            .as_array()
            .is_some_and(|n| !n.is_empty()),
        "{st}"
    );
    wait_until("only revision 1 runs, all ready", || async {
        let now = running(&c).await;
        now.len() == 1 && now.get(&old_hash) == Some(&(REPLICAS, REPLICAS))
    })
    .await;
    let get = run(&c, &["get", "comp", "web", "-p", "shop"]).ok();
    assert!(get.stdout.contains("RolledBack"), "{}", get.stdout);
}

/// (c) A crash-looping image: `rollout status` ends within the deadline
/// (exit 1, `CrashLoop` on the last line), not at its own timeout.
#[tokio::test]
async fn a_crash_loop_ends_rollout_status_at_the_deadline() {
    let policy = json!({"maxSurge": 1, "maxUnavailable": 1, "autoRollback": false,
                        "progressDeadline": format!("{DEADLINE_S}s")});
    let c = started("cr", policy.clone()).await;
    let applied = Instant::now();
    c.apply(&web(Behaviour::Crashes, policy));
    let out = rollout_status(&c, "300s");
    let took = applied.elapsed();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(last_line(&out).contains("CrashLoop"), "{out:?}");
    assert!(took < Duration::from_secs(DEADLINE_S + 20), "took {took:?}");
    // Still only maxUnavailable out of service: the old ones serve.
    let now = running(&c).await;
    let ready: u32 = now.values().map(|v| v.1).sum();
    assert!(ready >= REPLICAS - 1, "{now:?}");
}

/// (d) Canary 2: two of revision 2 come up, then `CanaryWaiting`; a pause
/// holds it (`Paused`), a resume returns to waiting, a promote finishes it.
#[tokio::test]
async fn canary_pause_resume_and_promote() {
    let policy =
        json!({"maxSurge": 1, "maxUnavailable": 1, "canary": 2, "progressDeadline": "60s"});
    let c = started("cn", policy.clone()).await;
    c.apply(&web(Behaviour::Serves(WEB2), policy));
    let phase = |st: &Value| {
        rollout_of(st)["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    wait_until("canary waiting", || async {
        let st = c.status("web").await;
        phase(&st) == "CanaryWaiting" && rollout_of(&st)["revision"] == 2
    })
    .await;
    let new_ready = |m: &BTreeMap<String, (u32, u32)>| m.values().filter(|v| v.0 == 2).count();
    let now = running(&c).await;
    assert_eq!(new_ready(&now), 1, "two of revision 2: {now:?}");
    // rollout status shows the wait and keeps following (times out: 4).
    let out = rollout_status(&c, "2s");
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stdout.contains("CanaryWaiting"), "{out:?}");

    run(&c, &["rollout", "pause", "web", "-p", "shop"]).ok();
    wait_until("paused", || async {
        phase(&c.status("web").await) == "Paused"
    })
    .await;
    let refused = run(&c, &["rollout", "promote", "web", "-p", "shop"]);
    assert!(
        refused.one_line_error().contains("no canary waiting"),
        "{refused:?}"
    );
    run(&c, &["rollout", "resume", "web", "-p", "shop"]).ok();
    wait_until("waiting again", || async {
        phase(&c.status("web").await) == "CanaryWaiting"
    })
    .await;
    assert_eq!(new_ready(&running(&c).await), 1);
    run(&c, &["rollout", "promote", "web", "-p", "shop"]).ok();
    let out = rollout_status(&c, "120s");
    assert_eq!(out.code, 0, "{out:?}");
    let now = running(&c).await;
    assert_eq!(now.len(), 1, "{now:?}");
}

/// (e) `rollout undo --to-revision 1` brings revision 1's template back as
/// revision 3 through the budgets; `rollout restart` replaces every
/// container of it with new ones.
#[tokio::test]
async fn undo_to_revision_and_restart() {
    let policy = json!({"maxSurge": 1, "maxUnavailable": 1, "progressDeadline": "60s"});
    let c = started("ud", policy.clone()).await;
    let first = running(&c).await;
    c.apply(&web(Behaviour::Serves(WEB2), policy));
    assert_eq!(rollout_status(&c, "120s").code, 0);
    run(
        &c,
        &["rollout", "undo", "web", "-p", "shop", "--to-revision", "1"],
    )
    .ok();
    let out = rollout_status(&c, "120s");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(last_line(&out).contains("revision 3 complete"), "{out:?}");
    wait_until("revision 1's template runs again", || async {
        running(&c).await.keys().collect::<Vec<_>>() == first.keys().collect::<Vec<_>>()
    })
    .await;
    let before = container_ids(&c).await;
    run(&c, &["rollout", "restart", "web", "-p", "shop"]).ok();
    let out = rollout_status(&c, "120s");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(last_line(&out).contains("revision 4 complete"), "{out:?}");
    wait_until("only new containers", || async {
        let now = container_ids(&c).await;
        now.len() == REPLICAS as usize && now.iter().all(|id| !before.contains(id))
    })
    .await;
}

/// (f) The coordinator is SIGKILLed mid-rollout: its successor finishes
/// the same rollout (same `started`, the step count goes on).
#[tokio::test]
async fn a_new_coordinator_finishes_the_same_rollout() {
    // maxUnavailable 0: one at a time, slow enough to be caught midway.
    let policy = json!({"maxSurge": 1, "maxUnavailable": 0, "progressDeadline": "90s"});
    let mut c = started("kc", policy.clone()).await;
    c.apply(&web(Behaviour::Serves(WEB2), policy));
    wait_until("the rollout under way", || async {
        let st = c.status("web").await;
        let r = rollout_of(&st);
        r["revision"] == 2 && r["phase"] == "Progressing" && r["step"].as_u64() >= Some(2)
    })
    .await;
    let st = c.status("web").await;
    let (started_at, step) = (
        rollout_of(&st)["started"].clone(),
        rollout_of(&st)["step"].as_u64(),
    );
    let old = c.coordinator().await.expect("a coordinator");
    let i = c.agents.iter().position(|a| a.node == old).expect("ours");
    c.agents[i].signal(libc::SIGKILL);
    wait_until("a new coordinator", || async {
        c.coordinator().await.is_some_and(|n| n != old)
    })
    .await;
    let out = rollout_status(&c, "180s");
    assert_eq!(out.code, 0, "{out:?}");
    let st = c.status("web").await;
    let r = rollout_of(&st);
    assert_eq!(r["started"], started_at, "a new rollout was started: {st}");
    assert!(r["step"].as_u64() > step, "{st}");
    assert_ne!(st["coordinator"].as_str(), Some(old.as_str()));
    c.agents.remove(i);
}

/// (g) Every node's tag resolves to another image than the one pinned in
/// the revision: the rollout fails at its deadline as `ImageMismatch`
/// naming the node that was asked for it, and is rolled back. (The pin is
/// written by the test while the new rollout is held by `paused`, as if
/// another machine had pinned another build.)
#[tokio::test]
async fn an_image_mismatch_fails_the_rollout_naming_the_node() {
    let policy =
        json!({"maxSurge": 1, "maxUnavailable": 0, "progressDeadline": format!("{DEADLINE_S}s")});
    let c = started("im", policy.clone()).await;
    let mut held = policy.clone();
    held["paused"] = json!(true);
    c.apply(&web(Behaviour::Serves(WEB2), held));
    wait_until("revision 2 held", || async {
        let st = c.status("web").await;
        rollout_of(&st)["revision"] == 2 && rollout_of(&st)["phase"] == "Paused"
    })
    .await;
    let keys = c.etcd.keys(&c.etcd.key("revisions/shop/web/")).await;
    let key = keys.last().cloned().expect("revision 2's document");
    let mut doc: Value =
        serde_json::from_slice(&c.etcd.get(&key).await.unwrap_or_default()).expect("revision");
    assert_eq!(doc["seq"], 2, "{doc}");
    doc["pin"] = json!({"imageId": format!("sha256:{}", "0".repeat(64)), "node": "elsewhere"});
    c.etcd
        .put(&key, serde_json::to_vec(&doc).expect("json"))
        .await;
    run(&c, &["rollout", "resume", "web", "-p", "shop"]).ok();
    let out = rollout_status_async(&c, "120s").await;
    assert_eq!(out.code, 3, "{out:?}");
    let st = c.status("web").await;
    let cause = &rollout_of(&st)["cause"];
    assert_eq!(cause["reason"], "ImageMismatch", "{st}");
    let nodes: Vec<&str> = cause["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(nodes.len(), 1, "{st}");
    assert!(
        last_line(&out).contains(&format!("ImageMismatch on {}", nodes[0])),
        "{out:?}"
    );
    // Nothing of revision 2 ever ran: revision 1 serves on.
    let now = running(&c).await;
    assert_eq!(
        now.values().copied().collect::<Vec<_>>(),
        [(REPLICAS, REPLICAS)],
        "{now:?}"
    );
}

/// `web` serving revision 1 with an exec health check on `/tmp/sick`, so a
/// test breaks one container by creating that file in it.
fn web_with_health(rollout: Value) -> String {
    let doc = json!({
        "apiVersion": "berth/v1", "kind": "Component",
        "metadata": {"name": "web", "project": "shop"},
        "spec": {
            "image": WEB1,
            "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
            "ports": [{"container": 8080}],
            "placement": {"replicas": REPLICAS},
            "readyChecks": [{"http": {"port": 8080, "path": "/"}, "interval": "1s"}],
            "healthChecks": [{"exec": {"command": ["test", "!", "-e", "/tmp/sick"]},
                "interval": "500ms", "failureThreshold": 2}],
            "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s", "drainTimeout": "2s"},
            "rollout": rollout,
        }
    });
    format!("apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\n{doc}\n")
}

/// One container's health check starts failing (no rollout in progress):
/// the coordinator has it replaced through the surge budget, so a watcher
/// of `observed/` never sees more than `replicas + surge` containers
/// (draining ones included) nor fewer than `replicas - 1` ready; the sick
/// container is gone and every replica ready at the end.
async fn health_replacement_within(prefix: &str, surge: u32) {
    let policy = json!({"maxSurge": surge, "maxUnavailable": 1, "progressDeadline": "60s"});
    let c = Cluster::start(prefix, &["zone=a", "zone=a", "zone=a"]).await;
    c.apply(&web_with_health(policy));
    let out = rollout_status(&c, "120s");
    assert_eq!(out.code, 0, "first rollout: {out:?}");
    let ids = container_ids(&c).await;
    assert_eq!(ids.len(), REPLICAS as usize, "{ids:?}");
    let sick = ids[0].clone();
    let from = c.etcd.revision().await;
    let (tx, rx) = watch::channel(0i64);
    let watcher = {
        let c = &c;
        async move { watch_budgets(&c.etcd, from, rx).await }
    };
    let replace = async {
        let docker = crate::support::images::docker().await;
        let touch = ["/bin/touch".to_string(), "/tmp/sick".to_string()];
        let code = docker
            .exec(&sick, &touch, Duration::from_secs(10))
            .await
            .expect("exec");
        assert_eq!(code, 0);
        wait_until(
            "the sick container replaced, every replica ready",
            || async {
                let ids = container_ids(&c).await;
                let by_hash = running(&c).await;
                !ids.contains(&sick)
                    && ids.len() == REPLICAS as usize
                    && by_hash.values().next().copied() == Some((REPLICAS, REPLICAS))
            },
        )
        .await;
        let _ = tx.send(c.etcd.revision().await);
    };
    let (x, ()) = tokio::join!(watcher, replace);
    eprintln!("watcher: {x:?}");
    assert!(x.events > 0, "the watcher saw nothing");
    assert!(
        x.most_containers <= REPLICAS + surge,
        "{} containers at once (maxSurge {surge})",
        x.most_containers
    );
    assert!(
        x.least_ready >= REPLICAS - 1,
        "ready fell to {}",
        x.least_ready
    );
    if surge > 0 {
        // The replacement ran beside the sick one: ready first.
        assert_eq!(x.most_containers, REPLICAS + 1, "{x:?}");
    }
    // No rollout came of it: the same revision, still complete.
    let st = c.status("web").await;
    assert_eq!(rollout_of(&st)["phase"], "Complete", "{st}");
    assert_eq!(rollout_of(&st)["revision"], 1, "{st}");
}

#[tokio::test]
async fn a_health_replacement_holds_the_surge_budget() {
    health_replacement_within("hr", 1).await;
}

/// With `maxSurge: 0` the unhealthy container is taken away first: never
/// more than `replicas` containers.
#[tokio::test]
async fn a_health_replacement_with_no_surge_takes_the_sick_one_away_first() {
    health_replacement_within("hr0", 0).await;
}
