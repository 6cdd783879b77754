//! What must never happen with several agents and imperfect documents: a
//! component run on two nodes by local assignment, or containers stopped
//! because a document could not be read. Real etcd, real Docker engine,
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
    while seen < upto {
        let resp = match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(Ok(Some(r))) => r,
            _ => break, // no events past the last change under the prefix
        };
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
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
            most = most.max(holders.len());
        }
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
/// applied and assigned nowhere, never both take it: 20 rounds, each
/// checked over etcd's full history of assignments.
#[tokio::test]
async fn two_agents_started_together_never_both_take_a_component() {
    let h = Harness::new("twin").await;
    h.apply("web", component_spec(1, "stopped")).await;
    let mut taken = 0;
    for round in 0..20 {
        let root = format!("{}/r{round}", h.etcd.root());
        let store = berth::store::Store::from_client(h.etcd.client().await, &root);
        let spec = h.etcd.get(&h.etcd.key("specs/component/shop/web")).await;
        let project = h.etcd.get(&h.etcd.key("specs/project/shop")).await;
        drop(store);
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
        let (a, b) = (cfg("a"), cfg("b"));
        let mut agents = [
            AgentProc::start(a.clone(), h.etcd.endpoint()),
            AgentProc::start(b.clone(), h.etcd.endpoint()),
        ];
        let assignments = format!("{root}/assignments/");
        let nodes = format!("{root}/nodes/");
        // Settled: one node took web, or both saw each other first and
        // left it unscheduled (no coordinator), each saying so.
        let unscheduled = async |node: &str| {
            let key = format!("{root}/observed/{node}/{PROJECT}/web");
            let Some(v) = h.etcd.get(&key).await else {
                return false;
            };
            let o: Observed = serde_json::from_slice(&v).expect("observed");
            o.conditions
                .iter()
                .any(|c| c.is(ConditionType::Unschedulable) && c.is_true())
        };
        wait_until("both registered and web settled", T, async || {
            h.etcd.keys(&nodes).await.len() == 2
                && (!h.etcd.keys(&assignments).await.is_empty()
                    || (unscheduled(&a.node).await && unscheduled(&b.node).await))
        })
        .await;
        let most = most_holders_ever(&h.etcd, &root, "web").await;
        assert!(
            most <= 1,
            "round {round}: web was assigned to {most} nodes at once"
        );
        taken += most;
        for agent in &mut agents {
            agent.finish(true);
        }
    }
    eprintln!("web was taken by one node in {taken} of 20 rounds, left unscheduled in the rest");
}

/// A node cut off from etcd long enough for its lease to lapse keeps its
/// component: the other node sees it gone but never takes the component
/// (it says why), and when the node returns nothing was started twice.
#[tokio::test]
async fn a_node_cut_off_in_an_outage_keeps_its_component() {
    let mut h = Harness::new("cut").await;
    let proxy = h.etcd.proxy().await;
    h.start_agent_at(proxy.endpoint());
    h.wait_registered(Duration::from_secs(30)).await;
    h.apply("web", component_spec(1, "running")).await;
    let running = |o: &Observed| o.containers.iter().any(|c| c.phase.to_string() == "ready");
    let first = h
        .wait_on(h.node(), "web", "a ready container", T, running)
        .await;
    let id = first.containers[0].id.clone();

    let other = AgentConfig {
        node: format!("{}-b", h.node()),
        ..h.cfg.clone()
    };
    let _guard_b = NodeContainers {
        node: other.node.clone(),
        root: h.etcd.root().to_string(),
    };
    let mut b = AgentProc::start(other.clone(), h.etcd.endpoint());
    let b_key = h.etcd.key(&format!("nodes/{}", other.node));
    wait_until("b registered", Duration::from_secs(30), async || {
        h.etcd.get(&b_key).await.is_some()
    })
    .await;

    proxy.cut();
    wait_until("a's lease lapsed", Duration::from_secs(30), async || {
        h.node_doc().await.is_none()
    })
    .await;
    // B has decided with A gone: it says the component stays on A.
    let says = |o: &Observed| {
        o.conditions.iter().any(|c| {
            c.is(ConditionType::Unschedulable) && c.message.contains("which is not registered")
        })
    };
    h.wait_on(&other.node, "web", "b saying web stays on a", T, says)
        .await;
    let b_assignment = h
        .etcd
        .key(&format!("assignments/{}/{PROJECT}/web", other.node));
    assert_eq!(h.etcd.get(&b_assignment).await, None, "b took web");
    assert!(
        _guard_b.list().await.is_empty(),
        "b started a container of web"
    );

    proxy.restore();
    h.wait_registered(Duration::from_secs(30)).await;
    let same = |o: &Observed| o.containers.iter().any(|c| c.id == id);
    h.wait_on(h.node(), "web", "a's container kept", T, same)
        .await;
    assert!(
        _guard_b.list().await.is_empty(),
        "b started a container of web"
    );
    let most = most_holders_ever(&h.etcd, h.etcd.root(), "web").await;
    assert_eq!(most, 1, "web was assigned to {most} nodes at once");
    b.finish(true);
}

/// A spec or an assignment that does not decode never stops containers,
/// also for an agent that starts fresh and has never read a good one: what
/// runs keeps running, and the observed document says why (`Degraded`).
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
    let degraded = |reason: &'static str| {
        move |o: &Observed| {
            o.conditions
                .iter()
                .any(|c| c.is(ConditionType::Degraded) && c.reason == reason)
        }
    };

    let spec_key = h.etcd.key("specs/component/shop/web");
    h.etcd
        .put(&spec_key, "{\"apiVersion\": \"berth/v1\", \"kind\": ")
        .await;
    h.wait_on(
        &node,
        "web",
        "the spec reported unreadable",
        T,
        degraded("UnreadableSpec"),
    )
    .await;
    let assignment = h.etcd.key(&format!("assignments/{node}/{PROJECT}/web"));
    assert!(
        h.etcd.get(&assignment).await.is_some(),
        "the assignment was deleted"
    );

    h.etcd.put(&assignment, "not json").await;
    let o = h
        .wait_on(
            &node,
            "web",
            "assignment unreadable",
            T,
            degraded("UnreadableAssignment"),
        )
        .await;
    assert!(o.containers.iter().any(|c| c.id == id), "{o:#?}");

    // A fresh agent that never read a good assignment keeps it too.
    let dead = h.etcd.lease_of(&h.node_key()).await.expect("lease");
    h.kill_agent();
    h.start_agent();
    let o = h
        .wait_fresh(
            "web",
            dead,
            "the new agent reporting it",
            degraded("UnreadableAssignment"),
        )
        .await;
    assert_eq!(
        o.containers.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&id]
    );
    let d = images::docker().await;
    let details = d.inspect(&id).await.expect("the container still exists");
    assert!(details.running, "the container was stopped");
}
