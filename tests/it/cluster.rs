//! Several `berth agent` processes against one etcd and the one Docker
//! engine, each with its own node name, labels and 127.0.0.x address: the
//! coordinator spreads replicas, fails over when killed, and a paused
//! coordinator's writes are fenced.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::agents::{Agent, AgentConfig, Log};
use crate::support::cli::berth;
use crate::support::etcd::TestEtcd;
use crate::support::etcd3::EtcdCluster;
use crate::support::images::{self, NodeContainers, WEB1};

pub(crate) const T: Duration = Duration::from_secs(60);
pub(crate) const TTL: Duration = Duration::from_secs(3);

pub(crate) struct Cluster {
    pub(crate) etcd: TestEtcd,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) agents: Vec<Agent>,
}

impl Cluster {
    pub(crate) async fn start(prefix: &str, labels: &[&str]) -> Cluster {
        images::ensure_test_images().await.expect("test images");
        let etcd = TestEtcd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster {
            etcd,
            dir,
            agents: Vec::new(),
        };
        for (i, l) in labels.iter().enumerate() {
            let agent = c.spawn(&images::unique(&format!("{prefix}{i}")), l, i + 2);
            c.agents.push(agent);
        }
        for i in 0..c.agents.len() {
            let key = c.etcd.key(&format!("nodes/{}", c.agents[i].node));
            wait_until("registered", || async { c.etcd.get(&key).await.is_some() }).await;
        }
        c
    }

    pub(crate) fn spawn(&self, node: &str, labels: &str, addr: usize) -> Agent {
        let (endpoint, root) = (self.etcd.endpoint(), self.etcd.root().to_string());
        spawn_agent(&endpoint, &root, node, labels, addr, self.dir.path())
    }

    pub(crate) fn apply(&self, yaml: &str) {
        let out = berth(
            &self.etcd.endpoint(),
            self.etcd.root(),
            &["apply", "-f", "-"],
            Some(yaml),
        );
        assert_eq!(out.code, 0, "{out:?}");
    }

    pub(crate) async fn coordinator(&self) -> Option<String> {
        self.etcd
            .get_string(&self.etcd.key("election/coordinator"))
            .await
    }

    /// Replicas assigned per node for `name`.
    pub(crate) async fn assigned(&self, name: &str) -> BTreeMap<String, u32> {
        let mut out = BTreeMap::new();
        for key in self.etcd.keys(&self.etcd.key("assignments/")).await {
            if !key.ends_with(&format!("/shop/{name}")) {
                continue;
            }
            let v: Value = serde_json::from_slice(&self.etcd.get(&key).await.unwrap_or_default())
                .unwrap_or_default();
            let node = key.split('/').rev().nth(2).unwrap_or_default().to_string();
            out.insert(node, assigned_replicas(&v));
        }
        out
    }

    pub(crate) async fn status(&self, name: &str) -> Value {
        let v = self
            .etcd
            .get(&self.etcd.key(&format!("status/component/shop/{name}")))
            .await;
        v.and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default()
    }
}

/// Starts `berth agent` for `node` against `endpoints` (comma-separated),
/// logging JSON to `<dir>/<node>.log`.
fn spawn_agent(
    endpoints: &str,
    root: &str,
    node: &str,
    labels: &str,
    addr: usize,
    dir: &std::path::Path,
) -> Agent {
    AgentConfig {
        labels: Some(labels.to_string()),
        address: Some(format!("127.0.0.{addr}")),
        log: Log::Json(dir.join(format!("{node}.log"))),
        ..AgentConfig::new(endpoints, root, node)
    }
    .spawn()
}

pub(crate) async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < T, "timed out after {T:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replicas an assignment document asks for over all its revisions (also
/// in the one-revision form older coordinators wrote).
fn assigned_replicas(v: &Value) -> u32 {
    let n = match v["revisions"].as_array() {
        Some(revs) => revs.iter().filter_map(|r| r["replicas"].as_u64()).sum(),
        None => v["replicas"].as_u64().unwrap_or(0),
    };
    n as u32
}

fn component(name: &str, placement: Value) -> String {
    let doc = json!({
        "apiVersion": "berth/v1", "kind": "Component",
        "metadata": {"name": name, "project": "shop"},
        "spec": {
            "image": WEB1,
            "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
            "ports": [{"container": 8080}],
            "placement": placement,
            "readyChecks": [{"http": {"port": 8080, "path": "/"}, "interval": "1s"}],
            "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s"},
        }
    });
    format!("apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\n{doc}\n")
}

/// Even spread, a selector and perNode over three agent processes; then the
/// coordinator is SIGKILLed: another takes over within lease TTL + 2 s, and
/// the dead node's replicas run elsewhere within lease TTL + 5 s.
#[tokio::test]
async fn three_agents_spread_and_survive_a_killed_coordinator() {
    let mut c = Cluster::start("cl", &["zone=a", "zone=a", "zone=b"]).await;
    let nodes: Vec<String> = c.agents.iter().map(|a| a.node.clone()).collect();
    c.apply(&component("web", json!({"replicas": 3})));
    c.apply(&component(
        "b-only",
        json!({"replicas": 2, "nodeSelector": {"zone": "b"}}),
    ));
    c.apply(&component("every", json!({"perNode": 1})));
    let one_each: BTreeMap<String, u32> = nodes.iter().map(|n| (n.clone(), 1)).collect();
    wait_until("web spread 1/1/1", || async {
        c.assigned("web").await == one_each
    })
    .await;
    wait_until("every on each node", || async {
        c.assigned("every").await == one_each
    })
    .await;
    let b = BTreeMap::from([(nodes[2].clone(), 2)]);
    wait_until("b-only on the zone=b node", || async {
        c.assigned("b-only").await == b
    })
    .await;
    wait_until("web 3 ready", || async {
        c.status("web").await["readyReplicas"] == 3
    })
    .await;

    let old = c.coordinator().await.expect("a coordinator");
    let i = c
        .agents
        .iter()
        .position(|a| a.node == old)
        .expect("coordinator is one of ours");
    let killed = Instant::now();
    c.agents[i].signal(libc::SIGKILL);
    wait_until("a new coordinator", || async {
        c.coordinator().await.is_some_and(|n| n != old)
    })
    .await;
    let failover = killed.elapsed();
    let new = c.coordinator().await.expect("new coordinator");
    wait_until("the new coordinator's first status", || async {
        c.status("web").await["coordinator"] == new.as_str()
    })
    .await;
    let first_status = killed.elapsed();
    wait_until("web's 3 replicas on the live nodes", || async {
        let a = c.assigned("web").await;
        !a.contains_key(&old) && a.values().sum::<u32>() == 3
    })
    .await;
    let replaced = killed.elapsed();
    eprintln!("failover {failover:?}, first status {first_status:?}, re-placed {replaced:?}");
    assert!(
        failover < TTL + Duration::from_secs(2),
        "failover took {failover:?}"
    );
    assert!(
        replaced < TTL + Duration::from_secs(5),
        "re-placing took {replaced:?}"
    );
    wait_until("web 3 ready again", || async {
        c.status("web").await["readyReplicas"] == 3
    })
    .await;
    let record = c.etcd.get(&c.etcd.key(&format!("status/node/{old}"))).await;
    let record: Value = serde_json::from_slice(&record.expect("record")).expect("json");
    assert_eq!(record["phase"], "NotReady");
    let out = berth(&c.etcd.endpoint(), c.etcd.root(), &["get", "nodes"], None);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&new))
        .unwrap_or_default()
        .to_string();
    assert!(row.contains("coordinator"), "{}", out.stdout);
    c.agents.remove(i);
}

/// A coordinator SIGSTOPped past its lease is replaced; when it wakes its
/// writes are refused by the fence and it steps down: the election key stays
/// with its successor, and etcd's history never shows more replicas assigned
/// than wanted.
#[tokio::test]
async fn a_paused_coordinator_is_fenced_when_it_wakes() {
    let c = Cluster::start("fz", &["zone=a", "zone=a"]).await;
    c.apply(&component("web", json!({"replicas": 2})));
    wait_until("web placed", || async {
        c.assigned("web").await.values().sum::<u32>() == 2
    })
    .await;
    let old = c.coordinator().await.expect("a coordinator");
    let paused = c.agents.iter().find(|a| a.node == old).expect("ours");
    paused.signal(libc::SIGSTOP);
    wait_until("a new coordinator", || async {
        c.coordinator().await.is_some_and(|n| n != old)
    })
    .await;
    let new = c.coordinator().await.expect("new");
    // The new coordinator moves everything off the paused (NotReady) node.
    wait_until("web on the new coordinator's node only", || async {
        c.assigned("web").await == BTreeMap::from([(new.clone(), 2)])
    })
    .await;
    paused.signal(libc::SIGCONT);
    // It wakes, finds its lease gone, re-registers; its term is over.
    let log = paused.log.clone().expect("agent log");
    wait_until("the old coordinator steps down", || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("no longer coordinating"))
    })
    .await;
    let key = c.etcd.key(&format!("nodes/{old}"));
    wait_until("the paused node registered again", || async {
        c.etcd.get(&key).await.is_some()
    })
    .await;
    assert_eq!(c.coordinator().await.as_deref(), Some(new.as_str()));
    let most = most_replicas_ever(&c.etcd, "web").await;
    assert!(
        most <= 2,
        "etcd history shows {most} replicas of web assigned at once"
    );
}

/// The most replicas of `name` assigned at once over etcd's whole history,
/// replayed one revision at a time.
async fn most_replicas_ever(etcd: &TestEtcd, name: &str) -> u32 {
    use etcd_client::{EventType, WatchOptions};
    let prefix = etcd.key("assignments/");
    let upto = etcd.revision().await;
    let mut client = etcd.client().await;
    let opts = WatchOptions::new().with_prefix().with_start_revision(1);
    let mut stream = client.watch(prefix, Some(opts)).await.expect("watch");
    let (mut by_node, mut most, mut seen) = (BTreeMap::<String, u32>::new(), 0, 0);
    // The history comes in the first answers after the watch is created;
    // once an answer with events is as new as `upto`, anything more would
    // follow at once, so stop waiting long.
    let mut patience = Duration::from_secs(5);
    while seen < upto {
        let Ok(Ok(Some(resp))) = tokio::time::timeout(patience, stream.message()).await else {
            break;
        };
        if !resp.events().is_empty() && resp.header().map_or(0, |h| h.revision()) >= upto {
            patience = Duration::from_millis(300);
        }
        let mut revision = 0;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            // One transaction's events share a revision: count between them.
            if kv.mod_revision() != revision {
                most = most.max(by_node.values().sum());
                revision = kv.mod_revision();
            }
            seen = seen.max(kv.mod_revision());
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            if !key.ends_with(&format!("/shop/{name}")) {
                continue;
            }
            let node = key.split('/').rev().nth(2).unwrap_or_default().to_string();
            match ev.event_type() {
                EventType::Put => {
                    let v: Value = serde_json::from_slice(kv.value()).unwrap_or_default();
                    by_node.insert(node, assigned_replicas(&v));
                }
                EventType::Delete => {
                    by_node.remove(&node);
                }
            }
        }
        most = most.max(by_node.values().sum());
    }
    most
}

/// A fourth node joins without moving anything; a cordoned node gets no new
/// replica; a label makes a node eligible; `berth drain` moves a node's
/// replicas off (new ones first) and exits 0 once it runs nothing.
#[tokio::test]
async fn join_cordon_label_and_drain() {
    let mut c = Cluster::start("jn", &["zone=a", "zone=a", "zone=b"]).await;
    c.apply(&component("web", json!({"replicas": 3})));
    let nodes: Vec<String> = c.agents.iter().map(|a| a.node.clone()).collect();
    let spread: BTreeMap<String, u32> = nodes.iter().map(|n| (n.clone(), 1)).collect();
    wait_until("web 1/1/1", || async { c.assigned("web").await == spread }).await;
    wait_until("web ready", || async {
        c.status("web").await["readyReplicas"] == 3
    })
    .await;

    let fourth = c.spawn(&images::unique("jn3"), "zone=c", 5);
    let n3 = fourth.node.clone();
    c.agents.push(fourth);
    // perNode on all four proves the coordinator saw the new node...
    c.apply(&component("every", json!({"perNode": 1})));
    wait_until("every on 4 nodes", || async {
        c.assigned("every").await.len() == 4
    })
    .await;
    // ...and web did not move.
    assert_eq!(c.assigned("web").await, spread);

    let run = |args: &[&str]| berth(&c.etcd.endpoint(), c.etcd.root(), args, None);
    assert_eq!(run(&["cordon", &nodes[0]]).code, 0);
    c.apply(&component("more", json!({"replicas": 3})));
    wait_until("more placed", || async {
        c.assigned("more").await.values().sum::<u32>() == 3
    })
    .await;
    assert!(
        !c.assigned("more").await.contains_key(&nodes[0]),
        "a cordoned node got a replica"
    );
    let d = run(&["describe", "component", "more", "-p", "shop"]);
    let cordoned = format!("{} (cordoned)", nodes[0]);
    assert!(
        d.stdout.contains(&cordoned),
        "describe names the cordoned node: {}",
        d.stdout
    );
    assert_eq!(
        c.assigned("web").await,
        spread,
        "a cordon moved running replicas"
    );

    c.apply(&component(
        "ssd",
        json!({"replicas": 1, "nodeSelector": {"disk": "ssd"}}),
    ));
    wait_until("ssd unschedulable", || async {
        let st = c.status("ssd").await;
        st["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Degraded" && c["reason"] == "Unschedulable")
        })
    })
    .await;
    assert_eq!(run(&["label", "node", &n3, "disk=ssd"]).code, 0);
    let on_n3 = BTreeMap::from([(n3.clone(), 1)]);
    wait_until("ssd on the labelled node", || async {
        c.assigned("ssd").await == on_n3
    })
    .await;

    let out = run(&["drain", &nodes[1], "--timeout", "60s"]);
    assert_eq!(out.code, 0, "{out:?}");
    let drained = NodeContainers {
        root: c.etcd.root().to_string(),
        node: nodes[1].clone(),
    };
    assert!(
        drained.list().await.is_empty(),
        "the drained node still runs containers"
    );
    let web = c.assigned("web").await;
    assert!(
        !web.contains_key(&nodes[1]) && web.values().sum::<u32>() == 3,
        "{web:?}"
    );
    wait_until("web ready after the drain", || async {
        c.status("web").await["readyReplicas"] == 3
    })
    .await;
}

/// On a 3-member etcd, the etcd leader is killed right after an apply and
/// the component is scaled: the agents (given every member) and the
/// coordinator carry on, and every replica is placed and ready.
#[tokio::test]
async fn placement_completes_when_the_etcd_leader_dies() {
    images::ensure_test_images().await.expect("test images");
    let mut etcd = EtcdCluster::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoints = etcd.endpoints();
    let root = etcd.root.clone();
    let _agents: Vec<Agent> = (0..2)
        .map(|i| {
            spawn_agent(
                &endpoints,
                &root,
                &images::unique(&format!("l{i}")),
                "zone=a",
                i + 2,
                dir.path(),
            )
        })
        .collect();
    let status_key = format!("{root}/status/component/shop/web");
    let out = berth(
        &endpoints,
        &root,
        &["apply", "-f", "-"],
        Some(&component("web", json!({"replicas": 4}))),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let killed = etcd.kill_leader().await;
    eprintln!("killed the etcd leader at {killed}");
    // Also a change made after the loss is placed.
    let live: Vec<&str> = endpoints.split(',').filter(|e| *e != killed).collect();
    let scaled = component("web", json!({"replicas": 4}));
    let out = berth(
        &live.join(","),
        &root,
        &["apply", "-f", "-"],
        Some(&scaled.replace("\"replicas\":4", "\"replicas\":5")),
    );
    assert_eq!(out.code, 0, "{out:?}");
    wait_until("5 replicas placed and ready", || async {
        let mut c = etcd.client().await;
        let Ok(resp) = c.get(status_key.as_str(), None).await else {
            return false;
        };
        let st: Value = resp
            .kvs()
            .first()
            .and_then(|kv| serde_json::from_slice(kv.value()).ok())
            .unwrap_or_default();
        st["readyReplicas"] == 5 && st["replicas"] == 5
    })
    .await;
}

/// Pins spread `replicas` over the named nodes only. Then an agent that is
/// not the coordinator is SIGKILLed: its replicas run elsewhere within lease
/// TTL + 5 s; when it comes back under the same name (cordoned meanwhile)
/// it finds no assignment for its old containers and stops them, so no slot
/// keeps two replicas.
#[tokio::test]
async fn pins_and_a_lost_agent_replaced_then_cleaned_up_when_it_returns() {
    let mut c = Cluster::start("ls", &["zone=a", "zone=a", "zone=a"]).await;
    wait_until("a coordinator", || async {
        c.coordinator().await.is_some()
    })
    .await;
    let coordinator = c.coordinator().await.expect("a coordinator");
    // The node to lose is not the coordinator, and not one of the pins, so
    // nothing is placed back on it when it returns.
    let i = c
        .agents
        .iter()
        .position(|a| a.node != coordinator)
        .expect("a node that does not coordinate");
    let pins: Vec<String> = (0..3)
        .filter(|&j| j != i)
        .map(|j| c.agents[j].node.clone())
        .collect();
    c.apply(&component("pinned", json!({"replicas": 4, "nodes": pins})));
    let two_each = BTreeMap::from([(pins[0].clone(), 2), (pins[1].clone(), 2)]);
    wait_until("pinned 2/2 on the named nodes", || async {
        c.assigned("pinned").await == two_each
    })
    .await;
    c.apply(&component("web", json!({"replicas": 3})));
    wait_until("web 3 ready", || async {
        c.status("web").await["readyReplicas"] == 3
    })
    .await;

    let (lost, addr) = (c.agents[i].node.clone(), i + 2);
    let old = NodeContainers {
        root: c.etcd.root().to_string(),
        node: lost.clone(),
    };
    assert!(!old.list().await.is_empty(), "the lost node ran containers");
    let killed = Instant::now();
    c.agents[i].signal(libc::SIGKILL);
    wait_until("web's 3 replicas on the live nodes", || async {
        let a = c.assigned("web").await;
        !a.contains_key(&lost) && a.values().sum::<u32>() == 3
    })
    .await;
    let replaced = killed.elapsed();
    eprintln!("lost node's replicas re-placed after {replaced:?}");
    assert!(
        replaced < TTL + Duration::from_secs(5),
        "re-placing took {replaced:?}"
    );
    wait_until("web 3 ready elsewhere", || async {
        c.status("web").await["readyReplicas"] == 3
    })
    .await;
    // Its containers still run while it is gone (the agent died, not Docker).
    assert!(!old.list().await.is_empty());

    // Cordoned while away, so balance does not bring a replica back and
    // every container it ran is one nobody asks of it any more. (Uncordoned,
    // it would get one web replica back: 2/1/0 is uneven by two.)
    let out = berth(&c.etcd.endpoint(), c.etcd.root(), &["cordon", &lost], None);
    assert_eq!(out.code, 0, "{out:?}");
    // The dead agent's struct stays alive until the end, so its containers
    // are removed by the returning agent, not by the test's guard.
    let returning = c.spawn(&lost, "zone=a", addr);
    c.agents.push(returning);
    wait_until("the returning agent stopped its old containers", || async {
        old.list().await.is_empty()
    })
    .await;
    let a = c.assigned("web").await;
    assert_eq!(a.values().sum::<u32>(), 3, "{a:?}");
    wait_until("web still 3 ready", || async {
        c.status("web").await["readyReplicas"] == 3
    })
    .await;
}
