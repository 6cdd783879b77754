//! What must never happen with several agents and imperfect documents: a
//! component assigned to two nodes at once, or containers stopped because a
//! document could not be read. Real etcd, real Docker engine,
//! agents on runtimes of their own.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use berth::agent::AgentConfig;
use berth::resource::{ConditionType, Observed};
use etcd_client::{EventType, WatchOptions};
use serde_json::json;

use crate::agent::{AgentProc, Harness, PROJECT};
use crate::support::etcd::TestEtcd;
use crate::support::images::{self, NodeContainers, WEB1};

/// How long any one wait may take.
const T: Duration = Duration::from_secs(60);

/// Polls `check` every 50 ms until it is true; panics after `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The most nodes that held an assignment of `component` at the same
/// revision, over etcd's whole history under `root` (replayed from a
/// watch from revision 1).
async fn most_holders_ever(etcd: &TestEtcd, root: &str, component: &str) -> usize {
    let prefix = format!("{root}/assignments/");
    let upto = etcd.revision().await;
    let mut client = etcd.client().await;
    let opts = WatchOptions::new().with_prefix().with_start_revision(1);
    let mut stream = client
        .watch(prefix.clone(), Some(opts))
        .await
        .expect("watch");
    let (mut holders, mut most) = (BTreeSet::new(), 0);
    let mut seen = 0;
    // The history comes in the first answers after the watch is created;
    // once an answer with events is as new as `upto`, anything more would
    // follow at once, so stop waiting long.
    let mut patience = Duration::from_secs(5);
    while seen < upto {
        let resp = match tokio::time::timeout(patience, stream.message()).await {
            Ok(Ok(Some(r))) => r,
            _ => break, // no events past the last change under the prefix
        };
        // One transaction's events share a revision: count holders only
        // after each revision is applied whole (a move is put + delete).
        let mut revision = 0;
        if !resp.events().is_empty() && resp.header().map_or(0, |h| h.revision()) >= upto {
            patience = Duration::from_millis(300);
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            if kv.mod_revision() != revision {
                most = most.max(holders.len());
                revision = kv.mod_revision();
            }
            seen = seen.max(kv.mod_revision());
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let parts: Vec<&str> = key.trim_start_matches(&prefix).split('/').collect();
            let [node, project, name] = parts.as_slice() else {
                continue;
            };
            if (*project, *name) != (PROJECT, component) {
                continue;
            }
            match ev.event_type() {
                EventType::Put => holders.insert(node.to_string()),
                EventType::Delete => holders.remove(*node),
            };
        }
        most = most.max(holders.len());
    }
    most
}

fn component_spec(replicas: u32, state: &str) -> serde_json::Value {
    json!({
        "image": WEB1,
        "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"container": 8080}],
        "placement": {"replicas": replicas},
        "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s"},
        "state": state,
    })
}

/// Two agents that start at the same moment, with a component already
/// applied and assigned nowhere: one of them coordinates, and the
/// component runs on exactly one node: 20 rounds, each checked over etcd's
/// full history of assignments.
#[tokio::test]
async fn two_agents_started_together_place_a_component_once() {
    let h = Harness::new("twin").await;
    h.apply("web", component_spec(1, "stopped")).await;
    for round in 0..20 {
        let root = format!("{}/r{round}", h.etcd.root());
        let spec = h.etcd.get(&h.etcd.key("specs/component/shop/web")).await;
        let project = h.etcd.get(&h.etcd.key("specs/project/shop")).await;
        h.etcd
            .put(
                &format!("{root}/specs/project/shop"),
                project.expect("project"),
            )
            .await;
        h.etcd
            .put(
                &format!("{root}/specs/component/shop/web"),
                spec.expect("spec"),
            )
            .await;
        let cfg = |n: &str| AgentConfig {
            node: format!("{}-{n}", h.node()),
            root: root.clone(),
            ..h.cfg.clone()
        };
        let mut agents = [
            AgentProc::start(cfg("a"), h.etcd.endpoint()),
            AgentProc::start(cfg("b"), h.etcd.endpoint()),
        ];
        let assignments = format!("{root}/assignments/");
        let nodes = format!("{root}/nodes/");
        wait_until("both registered, web placed", T, async || {
            h.etcd.keys(&nodes).await.len() == 2 && !h.etcd.keys(&assignments).await.is_empty()
        })
        .await;
        let most = most_holders_ever(&h.etcd, &root, "web").await;
        assert_eq!(
            most, 1,
            "round {round}: web was assigned to {most} nodes at once"
        );
        for agent in &mut agents {
            agent.finish(true);
        }
    }
}

/// A node cut off from etcd past its lease: its replica is placed on the
/// other node within lease TTL + 5 s, the node is recorded `NotReady`, and
/// when it comes back its agent finds no assignment and removes its old
/// container. Never two nodes assigned at once.
#[tokio::test]
async fn a_node_cut_off_past_its_lease_is_replaced_and_drains_on_return() {
    let mut h = Harness::new("cut").await;
    let proxy = h.etcd.proxy().await;
    h.start_agent_at(proxy.endpoint());
    h.wait_registered(T).await;
    h.apply("web", component_spec(1, "running")).await;
    let ready = |o: &Observed| o.containers.iter().any(|c| c.phase.to_string() == "ready");
    h.wait_on(h.node(), "web", "a ready container", T, ready)
        .await;

    let other = AgentConfig {
        node: format!("{}-b", h.node()),
        ..h.cfg.clone()
    };
    let guard_b = NodeContainers {
        node: other.node.clone(),
        root: h.etcd.root().to_string(),
    };
    let mut b = AgentProc::start(other.clone(), h.etcd.endpoint());
    let b_key = h.etcd.key(&format!("nodes/{}", other.node));
    wait_until("b registered", T, async || {
        h.etcd.get(&b_key).await.is_some()
    })
    .await;

    let cut = Instant::now();
    proxy.cut();
    h.wait_on(&other.node, "web", "web ready on b", T, ready)
        .await;
    let took = cut.elapsed();
    let ttl = h.cfg.lease_ttl;
    assert!(
        took < ttl + Duration::from_secs(5),
        "re-placed after {took:?} (TTL {ttl:?})"
    );
    let record = h
        .etcd
        .get(&h.etcd.key(&format!("status/node/{}", h.node())))
        .await;
    let record: serde_json::Value =
        serde_json::from_slice(&record.expect("a node record")).expect("json");
    assert_eq!(record["phase"], "NotReady", "{record}");

    proxy.restore();
    h.wait_registered(T).await;
    let a = NodeContainers {
        node: h.node().to_string(),
        root: h.etcd.root().to_string(),
    };
    wait_until("a's old container removed", T, async || {
        a.list().await.is_empty()
    })
    .await;
    assert_eq!(guard_b.list().await.len(), 1, "b runs web once");
    let most = most_holders_ever(&h.etcd, h.etcd.root(), "web").await;
    assert_eq!(most, 1, "web was assigned to {most} nodes at once");
    b.finish(true);
}

/// A spec or an assignment that does not decode never stops containers,
/// also for an agent that starts fresh and has never read a good one: what
/// runs keeps running, and the status and observed document say why
/// (`Degraded`).
#[tokio::test]
async fn unreadable_documents_never_stop_containers() {
    let mut h = Harness::new("unread").await;
    h.start_agent();
    h.apply("web", component_spec(1, "running")).await;
    let node = h.node().to_string();
    let ready = |o: &Observed| o.containers.iter().any(|c| c.phase.to_string() == "ready");
    let id = h
        .wait_on(&node, "web", "a ready container", T, ready)
        .await
        .containers[0]
        .id
        .clone();

    let spec_key = h.etcd.key("specs/component/shop/web");
    let status_key = h.etcd.key("status/component/shop/web");
    h.etcd
        .put(&spec_key, "{\"apiVersion\": \"berth/v1\", \"kind\": ")
        .await;
    wait_until("the status says the spec is unreadable", T, async || {
        let Some(v) = h.etcd.get(&status_key).await else {
            return false;
        };
        let st: serde_json::Value = serde_json::from_slice(&v).expect("status json");
        st["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Degraded" && c["reason"] == "UnreadableSpec")
        })
    })
    .await;
    let assignment = h.etcd.key(&format!("assignments/{node}/{PROJECT}/web"));
    assert!(
        h.etcd.get(&assignment).await.is_some(),
        "the assignment was deleted"
    );

    let degraded = |o: &Observed| {
        o.conditions
            .iter()
            .any(|c| c.is(ConditionType::Degraded) && c.reason == "UnreadableAssignment")
    };
    h.etcd.put(&assignment, "not json").await;
    let o = h
        .wait_on(&node, "web", "assignment unreadable", T, degraded)
        .await;
    assert!(o.containers.iter().any(|c| c.id == id), "{o:#?}");

    // A fresh agent that never read a good assignment keeps it too.
    let dead = h.etcd.lease_of(&h.node_key()).await.expect("lease");
    h.kill_agent();
    h.start_agent();
    let o = h
        .wait_fresh("web", dead, "the new agent reporting it", degraded)
        .await;
    assert_eq!(
        o.containers.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&id]
    );
    let d = images::docker().await;
    let details = d.inspect(&id).await.expect("the container still exists");
    assert!(details.running, "the container was stopped");
}
