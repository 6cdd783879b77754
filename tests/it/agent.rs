//! The node agent against a real etcd and a real Docker engine.
//!
//! Each test has its own etcd (and root), its own node name, and a guard that
//! removes every container labelled for that node when the test ends, pass or
//! fail. The agent runs on a tokio runtime of its own, on its own thread, so
//! a test can kill it abruptly (like SIGKILL: no lease revoked, nothing
//! cleaned up) and start another one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth::agent::{self, AgentConfig};
use berth::docker::Docker;
use berth::resource::observed::ContainerPhase;
use berth::resource::{Component, Object, Observed};
use berth::store::{ApplyOptions, Store};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::docker_proxy::DockerProxy;
use crate::support::etcd::{client_for, TestEtcd};
use crate::support::images::{self, NodeContainers, WEB1, WEB2};

pub(crate) const PROJECT: &str = "shop";

/// An agent on a runtime of its own.
pub(crate) struct AgentProc {
    stop: std::sync::mpsc::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AgentProc {
    pub(crate) fn start(cfg: AgentConfig, endpoint: String) -> AgentProc {
        let (stop, stop_rx) = std::sync::mpsc::channel::<bool>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("agent runtime");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let handle = rt.spawn(async move {
                let client = client_for(&endpoint).await;
                let r = agent::run(cfg, client, async {
                    let _ = rx.await;
                })
                .await;
                if let Err(e) = r {
                    eprintln!("agent failed: {e}");
                }
            });
            // true: graceful shutdown; false (or the harness gone): kill.
            if let Ok(true) = stop_rx.recv() {
                let _ = tx.send(());
                let _ = rt.block_on(handle);
            }
            rt.shutdown_background();
        });
        AgentProc {
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn finish(&mut self, graceful: bool) {
        let _ = self.stop.send(graceful);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        self.finish(false);
    }
}

pub(crate) struct Harness {
    pub(crate) etcd: TestEtcd,
    pub(crate) store: Store,
    pub(crate) cfg: AgentConfig,
    agent: Option<AgentProc>,
    pub(crate) docker: Docker,
    // Dropped last: the agent is gone before its containers are removed.
    _guard: NodeContainers,
}

impl Harness {
    pub(crate) async fn new(prefix: &str) -> Harness {
        images::ensure_test_images()
            .await
            .expect("building the test images");
        let docker = images::docker().await;
        let etcd = TestEtcd::start().await;
        let node = images::unique(prefix);
        let store = Store::from_client(etcd.client().await, etcd.root());
        let cfg = AgentConfig {
            node: node.clone(),
            labels: BTreeMap::from([("test".to_string(), prefix.to_string())]),
            address: "127.0.0.1".into(),
            root: etcd.root().to_string(),
            lease_ttl: Duration::from_secs(3),
            resync_interval: Duration::from_secs(10),
            ..Default::default()
        };
        let guard = NodeContainers {
            node,
            root: etcd.root().to_string(),
        };
        Harness {
            etcd,
            store,
            cfg,
            agent: None,
            docker,
            _guard: guard,
        }
    }

    pub(crate) fn node(&self) -> &str {
        &self.cfg.node
    }

    pub(crate) fn start_agent(&mut self) {
        self.agent = Some(AgentProc::start(self.cfg.clone(), self.etcd.endpoint()));
    }

    /// Starts the agent with etcd at `endpoint` (e.g. an [`EtcdProxy`]'s).
    ///
    /// [`EtcdProxy`]: crate::support::etcd::EtcdProxy
    pub(crate) fn start_agent_at(&mut self, endpoint: String) {
        self.agent = Some(AgentProc::start(self.cfg.clone(), endpoint));
    }

    pub(crate) fn node_key(&self) -> String {
        self.etcd.key(&format!("nodes/{}", self.node()))
    }

    /// Waits until `nodes/<node>` exists; returns how long that took.
    pub(crate) async fn wait_registered(&self, timeout: Duration) -> Duration {
        let start = Instant::now();
        while self.node_doc().await.is_none() {
            assert!(
                start.elapsed() < timeout,
                "node {} not registered within {timeout:?}",
                self.node()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        start.elapsed()
    }

    /// Like SIGKILL: the runtime is dropped with everything in it.
    pub(crate) fn kill_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.finish(false);
        }
    }

    pub(crate) fn stop_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.finish(true);
        }
    }

    pub(crate) async fn apply(&self, name: &str, spec: serde_json::Value) {
        let c: Component = serde_json::from_value(json!({
            "apiVersion": "berth/v1",
            "kind": "Component",
            "metadata": {"name": name, "project": PROJECT},
            "spec": spec,
        }))
        .expect("a valid component");
        let project: berth::resource::Project = serde_json::from_value(json!({
            "apiVersion": "berth/v1",
            "kind": "Project",
            "metadata": {"name": PROJECT},
        }))
        .expect("a valid project");
        self.store
            .apply(
                &[Object::Project(project), Object::Component(c)],
                &ApplyOptions::default(),
            )
            .await
            .expect("apply");
    }

    pub(crate) async fn delete(&self, name: &str) {
        self.store
            .delete(berth::resource::Kind::Component, Some(PROJECT), name, None)
            .await
            .expect("delete");
    }

    /// The node's registration document, if there is one now.
    pub(crate) async fn node_doc(&self) -> Option<Vec<u8>> {
        self.etcd.get(&self.node_key()).await
    }

    pub(crate) fn observed_key(&self, name: &str) -> String {
        self.etcd
            .key(&format!("observed/{}/{PROJECT}/{name}", self.node()))
    }

    pub(crate) async fn observed(&self, name: &str) -> Option<Observed> {
        self.observed_on(self.node(), name).await
    }

    /// The observed document of `name` on `node`.
    pub(crate) async fn observed_on(&self, node: &str, name: &str) -> Option<Observed> {
        let key = self.etcd.key(&format!("observed/{node}/{PROJECT}/{name}"));
        let v = self.etcd.get(&key).await?;
        Some(serde_json::from_slice(&v).expect("observed document"))
    }

    /// Waits until the observed state of `name` was written by the agent
    /// running now and satisfies `pred`. "Now" is the lease that holds the
    /// node's registration, once it is not `dead_lease`: a killed agent's
    /// documents linger on its lease until that expires, so they prove
    /// nothing about its successor.
    pub(crate) async fn wait_fresh(
        &self,
        name: &str,
        dead_lease: i64,
        what: &str,
        pred: impl Fn(&Observed) -> bool,
    ) -> Observed {
        let timeout = Duration::from_secs(60);
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < timeout {
            let live = self.etcd.lease_of(&self.node_key()).await;
            let doc = self.etcd.get_with_lease(&self.observed_key(name)).await;
            if let (Some(live), Some((v, lease))) = (live, doc) {
                let o: Observed = serde_json::from_slice(&v).expect("observed document");
                if live != dead_lease && lease == live && pred(&o) {
                    return o;
                }
                last = Some((lease, o));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out after {timeout:?} waiting for {name} written by the new agent (not on lease {dead_lease:x}): {what}; last (lease, observed): {last:#?}"
        );
    }

    /// Serves the agent's `/metrics` on a free loopback port (before `start_agent`).
    fn serve_metrics(&mut self) {
        let port = berth::localetcd::free_port().expect("a free port");
        self.cfg.http_addr = Some(format!("127.0.0.1:{port}"));
    }

    /// The agent's value of `series` (a metric's name and labels, as
    /// `/metrics` writes them), if it answers.
    async fn metric(&self, series: &str) -> Option<f64> {
        let addr = self
            .cfg
            .http_addr
            .as_deref()
            .expect("serve_metrics() first");
        let port = addr.rsplit(':').next()?.parse().ok()?;
        let body = http_get_path(port, "/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits until `pred` holds for the agent's value of `series`.
    async fn wait_metric(&self, series: &str, what: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let start = Instant::now();
        loop {
            let v = self.metric(series).await;
            if let Some(v) = v.filter(|v| pred(*v)) {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{series} never {what}; last: {v:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the observed state of `name` satisfies `pred`.
    pub(crate) async fn wait(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Observed) -> bool,
    ) -> Observed {
        self.wait_on(self.node(), name, what, timeout, pred).await
    }

    /// Waits until the observed state of `name` on `node` satisfies `pred`.
    pub(crate) async fn wait_on(
        &self,
        node: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Observed) -> bool,
    ) -> Observed {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < timeout {
            if let Some(o) = self.observed_on(node, name).await {
                if pred(&o) {
                    return o;
                }
                last = Some(o);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "timed out after {timeout:?} waiting for {name} on {node}: {what}; last observed: {last:#?}"
        );
    }

    /// Waits for `n` ready containers of the latest revision and nothing else.
    pub(crate) async fn wait_ready(&self, name: &str, n: usize) -> Observed {
        self.wait(
            name,
            &format!("{n} ready containers"),
            Duration::from_secs(60),
            all_ready(n),
        )
        .await
    }

    pub(crate) async fn container_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .docker
            .list(&berth::agent::executor::node_filters(
                self.etcd.root(),
                self.node(),
            ))
            .await
            .expect("list")
            .into_iter()
            .map(|c| c.id)
            .collect();
        ids.sort();
        ids
    }
}

/// Exactly `n` containers, all ready.
fn all_ready(n: usize) -> impl Fn(&Observed) -> bool {
    move |o| {
        o.containers.len() == n
            && o.containers
                .iter()
                .all(|c| c.phase == ContainerPhase::Ready)
    }
}

/// `spec` of a busybox web component with an HTTP ready check and a short grace period.
pub(crate) fn web_spec(image: &str, replicas: u32) -> serde_json::Value {
    json!({
        "image": image,
        "ports": [{"name": "http", "container": 8080}],
        "placement": {"replicas": replicas},
        "readyChecks": [{"http": {"port": 8080, "path": "/"}, "interval": "1s"}],
        "termination": {"gracePeriod": "1s"},
    })
}

/// The body of `GET /` on 127.0.0.1:port, if it answers 200.
async fn http_get(port: u16) -> Option<String> {
    http_get_path(port, "/").await
}

/// The body of `GET path` on 127.0.0.1:port, if it answers 200.
async fn http_get_path(port: u16, path: &str) -> Option<String> {
    let run = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        if !out.starts_with("HTTP/1.0 200") && !out.starts_with("HTTP/1.1 200") {
            return None;
        }
        out.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
    };
    tokio::time::timeout(Duration::from_secs(3), run)
        .await
        .ok()
        .flatten()
}

/// What container `id` answers on `GET /` through its published port 8080
/// now (a restart may publish it on another port).
async fn answer(docker: &Docker, id: &str) -> Option<String> {
    let d = docker.inspect(id).await.expect("inspect");
    http_get(*d.ports.get(&8080)?).await
}

/// The agent's gauge: 1 while it holds a live etcd lease.
const LEASE_UP: &str = "berth_agent_etcd_lease_up";
/// The agent's count of failed ready probes.
const READY_FAILURES: &str = "berth_agent_check_failures_total{kind=\"ready\"}";

fn port_of(o: &Observed, i: usize) -> u16 {
    *o.containers[i]
        .ports
        .get(&8080)
        .expect("published port 8080")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_runs_a_container_that_answers_http() {
    let mut h = Harness::new("agent-apply").await;
    // Docker's start time must reach the observed document by itself, not
    // with the next periodic resync.
    h.cfg.resync_interval = Duration::from_secs(120);
    h.start_agent();
    // Wait for the agent to register, so the timing below is apply → ready.
    h.wait_registered(Duration::from_secs(20)).await;
    let applied = Instant::now();
    h.apply("web", web_spec(WEB1, 1)).await;
    let o = h.wait_ready("web", 1).await;
    eprintln!("apply -> observed ready: {:?}", applied.elapsed());
    assert_eq!(o.node, h.node());
    assert_eq!(o.revision, 1);
    assert_eq!(http_get(port_of(&o, 0)).await.as_deref(), Some("web 1"));
    assert!(
        o.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.is_true()),
        "{o:#?}"
    );
    // Every container shows Docker's start time (AGE), also one without
    // ready checks (ready, and published, before Docker's `start` event is
    // handled).
    h.apply(
        "plain",
        json!({"image": WEB1, "termination": {"gracePeriod": "1s"}}),
    )
    .await;
    h.wait_ready("plain", 1).await;
    for name in ["web", "plain"] {
        let o = h
            .wait(name, "started_at published", Duration::from_secs(5), |o| {
                o.containers.iter().all(|c| c.started_at.is_some())
            })
            .await;
        for c in &o.containers {
            let d = h.docker.inspect(&c.id).await.expect("inspect");
            assert_eq!(c.started_at, d.started_at, "{name}: {o:#?}");
        }
    }
    h.delete("plain").await;
    // The node is registered, with the engine's versions and a Ready condition.
    let node = h.node_doc().await.expect("node document");
    let node: berth::resource::Node = serde_json::from_slice(&node).expect("node JSON");
    let status = node.status.expect("node status");
    assert!(
        !status.docker_version.is_empty() && !status.docker_api_version.is_empty(),
        "{status:?}"
    );
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.is_true()),
        "{status:?}"
    );
    // The container carries berth's labels.
    let d = h
        .docker
        .inspect(&o.containers[0].id)
        .await
        .expect("inspect");
    assert_eq!(
        d.labels.get("berth.node").map(String::as_str),
        Some(h.node())
    );
    assert_eq!(
        d.labels.get("berth.project").map(String::as_str),
        Some(PROJECT)
    );
    assert_eq!(
        d.labels.get("berth.component").map(String::as_str),
        Some("web")
    );
    assert_eq!(
        d.labels.get("berth.revision").map(String::as_str),
        Some("1")
    );
    assert!(
        d.name.starts_with(&format!("berth-{PROJECT}-web-")),
        "{}",
        d.name
    );
    // Deleting the component removes its containers and its observed state.
    h.delete("web").await;
    let start = Instant::now();
    while !h.container_ids().await.is_empty() || h.observed("web").await.is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "containers not removed after delete"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_image_is_rolled_out_new_container_ready_first() {
    let mut h = Harness::new("agent-roll").await;
    h.start_agent();
    h.apply("web", web_spec(WEB1, 1)).await;
    let o = h.wait_ready("web", 1).await;
    let old = o.containers[0].id.clone();
    h.apply("web", web_spec(WEB2, 1)).await;
    // Sample the rollout: a ready container exists at every point.
    let start = Instant::now();
    let mut saw_both = false;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "rollout did not finish"
        );
        let Some(o) = h.observed("web").await else {
            continue;
        };
        let ready = o
            .containers
            .iter()
            .filter(|c| c.phase == ContainerPhase::Ready)
            .count();
        assert!(ready >= 1, "no ready container during the rollout: {o:#?}");
        if o.containers.len() >= 2 {
            saw_both = true;
        }
        if o.revision == 2 && o.containers.len() == 1 && o.containers[0].revision == 2 && ready == 1
        {
            assert_ne!(o.containers[0].id, old);
            assert_eq!(http_get(port_of(&o, 0)).await.as_deref(), Some("web 2"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_both,
        "the new container was never running beside the old one"
    );
    assert!(
        h.docker
            .inspect(&old)
            .await
            .is_err_and(|e| e.is_not_found()),
        "old container left behind"
    );
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_restarted() {
    let mut h = Harness::new("agent-kill").await;
    h.start_agent();
    h.apply("web", web_spec(WEB1, 1)).await;
    let o = h.wait_ready("web", 1).await;
    let id = o.containers[0].id.clone();
    let first_start = h.docker.inspect(&id).await.expect("inspect").started_at;
    h.docker.kill(&id).await.expect("docker kill");
    let killed = Instant::now();
    // Acted on at once: the first crash restarts without backoff.
    loop {
        let d = h.docker.inspect(&id).await.expect("inspect");
        if d.running && d.started_at != first_start {
            break;
        }
        assert!(killed.elapsed() < Duration::from_secs(10), "not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("docker kill -> running again: {:?}", killed.elapsed());
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "restart took {:?}",
        killed.elapsed()
    );
    h.wait(
        "web",
        "restarted once and ready",
        Duration::from_secs(30),
        |o| {
            o.containers.len() == 1
                && o.containers[0].restarts == 1
                && o.containers[0].phase == ContainerPhase::Ready
        },
    )
    .await;
    let o = h
        .wait(
            "web",
            "the restart's start time published",
            Duration::from_secs(5),
            |o| o.containers.first().is_some_and(|c| c.started_at.is_some()),
        )
        .await;
    let c = &o.containers[0];
    assert_eq!(c.id, id, "restarted in place");
    let now = h.docker.inspect(&id).await.expect("inspect").started_at;
    assert_eq!(c.started_at, now);
    assert_ne!(c.started_at, first_start);
    assert_eq!(c.last_exit_code, Some(137));
    assert_eq!(c.last_reason.as_deref(), Some("Error"));
    assert!(o.events.iter().any(|e| e.reason == "Restarted"), "{o:#?}");
    assert_eq!(http_get(port_of(&o, 0)).await.as_deref(), Some("web 1"));
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_health_check_replaces_the_container_new_one_ready_first() {
    let mut h = Harness::new("agent-health").await;
    h.start_agent();
    let mut spec = web_spec(WEB1, 1);
    spec["healthChecks"] = json!([{"http": {"port": 8080, "path": "/index.html"}, "interval": "300ms", "failureThreshold": 2}]);
    h.apply("web", spec).await;
    let o = h.wait_ready("web", 1).await;
    let old = o.containers[0].id.clone();
    // Break the old container: its page goes away, httpd answers 404.
    let code = h
        .docker
        .exec(
            &old,
            &["/bin/rm".to_string(), "/www/index.html".to_string()],
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(code, 0);
    let start = Instant::now();
    let mut replacement_ready_beside_old = false;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "unhealthy container not replaced"
        );
        let Some(o) = h.observed("web").await else {
            continue;
        };
        let old_there = o.containers.iter().any(|c| c.id == old);
        let new_ready = o
            .containers
            .iter()
            .any(|c| c.id != old && c.phase == ContainerPhase::Ready);
        if old_there && new_ready {
            replacement_ready_beside_old = true;
        }
        if !old_there && o.containers.len() == 1 && new_ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        replacement_ready_beside_old,
        "the old container stopped before its replacement was ready"
    );
    let o = h.observed("web").await.expect("observed");
    assert!(o.events.iter().any(|e| e.reason == "Unhealthy"), "{o:#?}");
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_and_restarted_keeps_the_same_containers() {
    let mut h = Harness::new("agent-adopt").await;
    h.start_agent();
    h.apply("web", web_spec(WEB1, 2)).await;
    let o = h.wait_ready("web", 2).await;
    // One container crashes once first: its restart count must survive.
    let crashed = o.containers[0].id.clone();
    h.docker.kill(&crashed).await.expect("docker kill");
    h.wait("web", "restarted", Duration::from_secs(30), |o| {
        o.containers
            .iter()
            .any(|c| c.id == crashed && c.restarts == 1 && c.phase == ContainerPhase::Ready)
    })
    .await;
    let before = h.container_ids().await;
    assert_eq!(before.len(), 2);
    let dead = h.etcd.lease_of(&h.node_key()).await.expect("registered");
    h.kill_agent();
    h.start_agent();
    // The new agent has adopted, reconciled and published: its own document.
    let o = h.wait_fresh("web", dead, "2 ready", all_ready(2)).await;
    let mut observed: Vec<String> = o.containers.iter().map(|c| c.id.clone()).collect();
    observed.sort();
    assert_eq!(observed, before);
    assert_eq!(
        h.container_ids().await,
        before,
        "containers recreated after an agent restart"
    );
    for c in &o.containers {
        assert_eq!(c.restarts, u32::from(c.id == crashed), "{o:#?}");
    }
    // A graceful stop leaves them running too.
    let stopped = h.etcd.lease_of(&h.node_key()).await.expect("registered");
    h.stop_agent();
    assert_eq!(h.container_ids().await, before);
    for id in &before {
        assert!(h.docker.inspect(id).await.expect("inspect").running);
    }
    h.start_agent();
    let o = h.wait_fresh("web", stopped, "2 ready", all_ready(2)).await;
    let mut observed: Vec<String> = o.containers.iter().map(|c| c.id.clone()).collect();
    observed.sort();
    assert_eq!(observed, before);
    assert_eq!(h.container_ids().await, before);
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_keep_running_while_etcd_is_down() {
    let mut h = Harness::new("agent-etcd").await;
    h.serve_metrics();
    h.start_agent();
    h.apply("web", web_spec(WEB1, 1)).await;
    let o = h.wait_ready("web", 1).await;
    let id = o.containers[0].id.clone();
    h.wait_metric(LEASE_UP, "1", |v| v == 1.0).await;
    h.etcd.stop().await;
    // The agent sees etcd gone: no keep-alive for a whole TTL, so it gives
    // its lease up (what an agent that stopped containers with its lease
    // would act on). The container answers all along.
    let down = Instant::now();
    loop {
        assert_eq!(
            answer(&h.docker, &id).await.as_deref(),
            Some("web 1"),
            "container stopped answering with etcd down"
        );
        if h.metric(LEASE_UP).await == Some(0.0) {
            break;
        }
        assert!(
            down.elapsed() < Duration::from_secs(30),
            "the agent never gave its lease up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // With etcd down and the lease gone, a crash is still handled.
    h.docker.kill(&id).await.expect("docker kill");
    let t = Instant::now();
    while answer(&h.docker, &id).await.as_deref() != Some("web 1") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "not restarted with etcd down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.etcd.restart().await;
    // The agent registers again and reports the restart.
    let o = h
        .wait(
            "web",
            "observed after etcd returned",
            Duration::from_secs(60),
            |o| {
                o.containers.len() == 1
                    && o.containers[0].restarts == 1
                    && o.containers[0].phase == ContainerPhase::Ready
            },
        )
        .await;
    assert_eq!(o.containers[0].id, id);
    h.wait_registered(Duration::from_secs(30)).await;
    assert_eq!(h.container_ids().await, vec![id]);
    h.stop_agent();
}

/// With etcd down there is no budget to draw on: an unhealthy container
/// keeps running, unreplaced (no second container appears); once etcd is
/// back the coordinator has it replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_waits_for_etcd_to_be_replaced() {
    let mut h = Harness::new("agent-sick-etcd").await;
    h.start_agent();
    let mut spec = web_spec(WEB1, 1);
    spec["healthChecks"] = json!([{"exec": {"command": ["test", "!", "-e", "/tmp/sick"]},
        "interval": "300ms", "failureThreshold": 2}]);
    h.apply("web", spec).await;
    let o = h.wait_ready("web", 1).await;
    let sick = o.containers[0].id.clone();
    h.etcd.stop().await;
    let touch = ["/bin/touch".to_string(), "/tmp/sick".to_string()];
    let code = h
        .docker
        .exec(&sick, &touch, Duration::from_secs(10))
        .await
        .expect("exec");
    assert_eq!(code, 0);
    // Well past the failure threshold: still the one container, running.
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(5) {
        assert_eq!(
            h.container_ids().await,
            vec![sick.clone()],
            "replaced with etcd down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(h.docker.inspect(&sick).await.expect("inspect").running);
    h.etcd.restart().await;
    h.wait(
        "web",
        "the unhealthy container replaced once etcd returned",
        Duration::from_secs(60),
        |o| {
            o.containers.len() == 1
                && o.containers[0].id != sick
                && o.containers[0].phase == ContainerPhase::Ready
        },
    )
    .await;
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_get_a_clear_condition_and_disturb_nothing_else() {
    let mut h = Harness::new("agent-bad").await;
    h.cfg.allow_bind = vec!["/srv/berth-allowed".to_string()];
    h.start_agent();
    h.apply("good", web_spec(WEB1, 1)).await;
    let good = h.wait_ready("good", 1).await.containers[0].id.clone();

    h.apply("nope", web_spec("berth-test/does-not-exist:1", 1))
        .await;
    let mut bind = web_spec(WEB1, 1);
    bind["bindings"] = json!([{"host": "/etc", "container": "/host-etc", "readOnly": true}]);
    h.apply("bind", bind).await;
    let mut privileged = web_spec(WEB1, 1);
    privileged["privileged"] = json!(true);
    h.apply("priv", privileged).await;

    let cond = |o: &Observed, t: &str| {
        o.conditions
            .iter()
            .find(|c| c.type_ == t && c.is_true())
            .cloned()
    };
    let o = h
        .wait("nope", "ImagePullFailed", Duration::from_secs(60), |o| {
            cond(o, "ImagePullFailed").is_some()
        })
        .await;
    let c = cond(&o, "ImagePullFailed").expect("condition");
    assert!(c.message.contains("does-not-exist"), "{c:?}");
    assert!(o.containers.is_empty());
    let o = h
        .wait("bind", "Forbidden", Duration::from_secs(30), |o| {
            cond(o, "Forbidden").is_some()
        })
        .await;
    let c = cond(&o, "Forbidden").expect("condition");
    assert!(
        c.message.contains("/etc") && c.message.contains("/srv/berth-allowed"),
        "{c:?}"
    );
    let o = h
        .wait("priv", "Forbidden", Duration::from_secs(30), |o| {
            cond(o, "Forbidden").is_some()
        })
        .await;
    assert!(cond(&o, "Forbidden")
        .expect("condition")
        .message
        .contains("--allow-privileged"));

    // Nothing else was disturbed.
    let o = h.wait_ready("good", 1).await;
    assert_eq!(o.containers[0].id, good);
    assert_eq!(h.container_ids().await, vec![good.clone()]);

    // A failed pull on an update leaves the old container serving.
    h.apply("good", web_spec("berth-test/does-not-exist:2", 1))
        .await;
    let o = h
        .wait("good", "ImagePullFailed", Duration::from_secs(60), |o| {
            cond(o, "ImagePullFailed").is_some()
        })
        .await;
    assert_eq!(o.containers.len(), 1);
    assert_eq!(o.containers[0].id, good);
    assert_eq!(o.containers[0].phase, ContainerPhase::Ready);
    assert_eq!(http_get(port_of(&o, 0)).await.as_deref(), Some("web 1"));
    // Reverting the spec clears the condition; the same container stays.
    h.apply("good", web_spec(WEB1, 1)).await;
    let o = h
        .wait(
            "good",
            "ImagePullFailed cleared",
            Duration::from_secs(60),
            |o| cond(o, "ImagePullFailed").is_none() && o.revision != 2,
        )
        .await;
    assert_eq!(o.containers.len(), 1);
    assert_eq!(o.containers[0].id, good);
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_killed_and_running_again() {
    let mut h = Harness::new("agent-state").await;
    h.start_agent();
    h.apply("web", web_spec(WEB1, 2)).await;
    h.wait_ready("web", 2).await;
    let mut stopped = web_spec(WEB1, 2);
    stopped["state"] = json!("stopped");
    h.apply("web", stopped).await;
    h.wait("web", "no containers", Duration::from_secs(30), |o| {
        o.containers.is_empty()
    })
    .await;
    assert!(h.container_ids().await.is_empty());
    h.apply("web", web_spec(WEB1, 2)).await;
    h.wait_ready("web", 2).await;
    let mut killed = web_spec(WEB1, 2);
    killed["state"] = json!("killed");
    h.apply("web", killed).await;
    h.wait("web", "no containers", Duration::from_secs(30), |o| {
        o.containers.is_empty()
    })
    .await;
    assert!(h.container_ids().await.is_empty());
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_containers_are_left_alone_and_strays_removed() {
    let mut h = Harness::new("agent-own").await;
    let guard = images::Containers::new("agent-own-foreign");
    // A container without berth's labels, and a stray of this node for a
    // component nobody asked for.
    let foreign = h
        .docker
        .create_and_start(&berth::docker::ContainerConfig {
            image: WEB1.into(),
            labels: guard.labels(&[]),
            ..Default::default()
        })
        .await
        .expect("foreign container");
    let owner = berth::agent::executor::Owner {
        project: PROJECT.into(),
        component: "stray".into(),
        revision: 1,
        hash: "0000000000".into(),
    };
    let mut labels = owner.labels(h.etcd.root(), h.node());
    labels.extend(guard.labels(&[]));
    let stray = h
        .docker
        .create_and_start(&berth::docker::ContainerConfig {
            image: WEB1.into(),
            labels,
            ..Default::default()
        })
        .await
        .expect("stray container");
    h.start_agent();
    let start = Instant::now();
    while h.docker.inspect(&stray.id).await.is_ok() {
        // No template is known for it: the default termination (SIGTERM, 30 s grace).
        assert!(
            start.elapsed() < Duration::from_secs(50),
            "stray container not removed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        h.docker
            .inspect(&foreign.id)
            .await
            .expect("foreign container")
            .running
    );
    h.stop_agent();
    guard.clean().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_backs_off_and_shows_as_crashloop() {
    let mut h = Harness::new("agent-crash").await;
    h.start_agent();
    h.apply(
        "crash",
        json!({
            "image": WEB1,
            "command": ["/bin/sh", "-c", "exit 3"],
            "termination": {"gracePeriod": "1s"},
        }),
    )
    .await;
    let o = h
        .wait("crash", "CrashLoop", Duration::from_secs(30), |o| {
            o.containers.len() == 1
                && o.containers[0].phase == ContainerPhase::CrashLoop
                && o.containers[0].restarts >= 2
        })
        .await;
    let c = &o.containers[0];
    assert_eq!(c.last_exit_code, Some(3));
    assert_eq!(c.last_reason.as_deref(), Some("Error"));
    // Backoff: 0 s, 1 s, 2 s, 4 s...: from the 2nd restart on, the next two
    // wait at least 2 s + 4 s; without backoff they take well under 1 s.
    let seen = Instant::now();
    let r0 = c.restarts;
    let o = h
        .wait("crash", "two more restarts", Duration::from_secs(60), |o| {
            o.containers.iter().any(|c| c.restarts >= r0 + 2)
        })
        .await;
    let took = seen.elapsed();
    assert_eq!(o.containers.len(), 1, "crashes restart in place: {o:#?}");
    assert!(
        took >= Duration::from_secs(5),
        "no backoff: restarts {r0} -> {} in {took:?}",
        o.containers[0].restarts
    );
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_never_ready_is_replaced_after_the_ready_timeout() {
    let mut h = Harness::new("agent-timeout").await;
    h.start_agent();
    let mut spec = web_spec(WEB1, 1);
    spec["readyChecks"] =
        json!([{"http": {"port": 8080, "path": "/missing"}, "interval": "200ms"}]);
    spec["readyTimeout"] = json!("2s");
    h.apply("web", spec).await;
    let o = h
        .wait(
            "web",
            "a starting container",
            Duration::from_secs(30),
            |o| o.containers.len() == 1 && o.containers[0].phase == ContainerPhase::Starting,
        )
        .await;
    let first = o.containers[0].id.clone();
    let o = h
        .wait(
            "web",
            "replaced after readyTimeout",
            Duration::from_secs(30),
            |o| {
                o.events.iter().any(|e| e.reason == "ReadyTimeout")
                    && o.containers.iter().all(|c| c.id != first)
            },
        )
        .await;
    assert!(!o.containers.is_empty(), "a replacement runs: {o:#?}");
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_check_that_never_passes_says_why() {
    let mut h = Harness::new("agent-why").await;
    h.serve_metrics();
    h.start_agent();
    // The server listens on 8080; the ready check asks 9090 (published,
    // nothing listening there).
    let mut spec = web_spec(WEB1, 1);
    spec["ports"] = json!([
        {"name": "http", "container": 8080},
        {"name": "other", "container": 9090},
    ]);
    spec["readyChecks"] = json!([{"tcp": {"port": 9090}, "interval": "200ms"}]);
    spec["readyTimeout"] = json!("5m");
    h.apply("web", spec.clone()).await;
    let o = h
        .wait(
            "web",
            "a ReadyCheckFailed event",
            Duration::from_secs(30),
            |o| o.events.iter().any(|e| e.reason == "ReadyCheckFailed"),
        )
        .await;
    assert_eq!(o.containers.len(), 1, "{o:#?}");
    assert_eq!(o.containers[0].phase, ContainerPhase::Starting, "{o:#?}");
    let e = o
        .events
        .iter()
        .find(|e| e.reason == "ReadyCheckFailed")
        .expect("event");
    let id = &o.containers[0].id[..12];
    assert!(
        e.message
            .starts_with(&format!("container {id}: ready check tcp :9090 failed: ")),
        "{e:?}"
    );
    // Rate-limited: the failures every 200 ms make no new events. Proven
    // once ten more failures were counted and a document published after
    // them (a rollout-only change: a new generation, the same container).
    let first_generation = o.generation;
    let counted = h.wait_metric(READY_FAILURES, "counted", |_| true).await;
    h.wait_metric(READY_FAILURES, "10 more", |v| v >= counted + 10.0)
        .await;
    spec["rollout"] = json!({"revisionHistory": 5});
    h.apply("web", spec).await;
    let later = h
        .wait("web", "the new generation", Duration::from_secs(30), |o| {
            o.generation > first_generation
        })
        .await;
    assert_eq!(later.containers.len(), 1, "{later:#?}");
    assert_eq!(later.containers[0].id, o.containers[0].id);
    let failed: Vec<_> = later
        .events
        .iter()
        .filter(|e| e.reason == "ReadyCheckFailed")
        .collect();
    assert_eq!(failed, vec![e], "{later:#?}");
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_containers_on_exit_stops_them_and_the_lease_is_released() {
    let mut h = Harness::new("agent-exit").await;
    h.cfg.stop_containers_on_exit = true;
    h.cfg.lease_ttl = Duration::from_secs(30);
    h.start_agent();
    h.apply("web", web_spec(WEB1, 2)).await;
    h.wait_ready("web", 2).await;
    h.stop_agent();
    assert!(
        h.container_ids().await.is_empty(),
        "containers left running"
    );
    // Revoked, not expired: gone long before the 30 s TTL.
    assert!(h.node_doc().await.is_none());
    assert!(h.observed("web").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_events_stream_is_reopened_and_resynced() {
    let mut h = Harness::new("agent-events").await;
    let proxy = DockerProxy::start().await;
    h.cfg.docker_host = Some(proxy.host());
    h.start_agent();
    h.apply("web", web_spec(WEB1, 1)).await;
    let o = h.wait_ready("web", 1).await;
    let id = o.containers[0].id.clone();
    // Cut the agent off Docker, and kill the container meanwhile: the agent
    // cannot see the `die` event.
    proxy.cut(true);
    h.docker.kill(&id).await.expect("docker kill");
    // The agent tries the engine again (reopening its events stream) after
    // the kill and is turned away: it cannot have restarted the container.
    proxy.wait_refused().await;
    assert!(
        !h.docker.inspect(&id).await.expect("inspect").running,
        "restarted while cut off?"
    );
    // Reconnected: the stream is re-opened, the resync finds the exit, and
    // the container is restarted in place.
    proxy.cut(false);
    let o = h
        .wait(
            "web",
            "restarted after the events stream came back",
            Duration::from_secs(30),
            |o| {
                o.containers.len() == 1
                    && o.containers[0].restarts == 1
                    && o.containers[0].phase == ContainerPhase::Ready
            },
        )
        .await;
    assert_eq!(o.containers[0].id, id);
    assert_eq!(o.containers[0].last_exit_code, Some(137));
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_options_reach_docker() {
    // (privileged: true with --allow-privileged is not run here: this
    // sandbox's runc cannot apply the capabilities.)
    let mut h = Harness::new("agent-opts").await;
    let shared = tempfile::tempdir().expect("temp dir");
    std::fs::write(shared.path().join("hello"), "from the host\n").expect("write");
    let prefix = shared.path().to_string_lossy().to_string();
    h.cfg.allow_bind = vec![prefix.clone()];
    h.cfg.allow_privileged = true;
    h.start_agent();
    let mut store = web_spec(WEB1, 1);
    store["bindings"] = json!([{"host": prefix, "container": "/shared", "readOnly": true}]);
    h.apply("store", store).await;
    h.wait_ready("store", 1).await;
    let mut app = web_spec(WEB1, 1);
    app["env"] = json!({"GREETING": "hello"});
    app["user"] = json!("1234:1234");
    app["resources"] = json!({"memory": "64Mi", "cpus": 0.5});
    app["volumesFrom"] = json!(["store"]);
    // httpd as a non-root user cannot bind port 80, but 8080 is fine.
    h.apply("app", app).await;
    let app_id = h.wait_ready("app", 1).await.containers[0].id.clone();

    let run = |id: String, cmd: &'static [&'static str]| {
        let d = h.docker.clone();
        async move {
            let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            d.exec_output(&id, &cmd, Duration::from_secs(10))
                .await
                .expect("exec")
        }
    };
    let env = run(
        app_id.clone(),
        &["/bin/busybox", "sh", "-c", "echo $GREETING"],
    )
    .await;
    assert_eq!(env.output.trim(), "hello");
    let id = run(app_id.clone(), &["/bin/busybox", "id", "-u"]).await;
    assert_eq!(id.output.trim(), "1234");
    let file = run(app_id.clone(), &["/bin/busybox", "cat", "/shared/hello"]).await;
    assert_eq!(
        file.output.trim(),
        "from the host",
        "volumesFrom brings the store's bind"
    );
    let d = h.docker.inspect(&app_id).await.expect("inspect");
    assert_eq!(d.memory, Some(64 << 20));
    assert_eq!(d.nano_cpus, Some(500_000_000));
    assert!(!d.privileged);

    // volumesFrom naming a component with no container here: a clear condition.
    let mut orphan = web_spec(WEB1, 1);
    orphan["volumesFrom"] = json!(["nothing-here"]);
    h.apply("orphan", orphan).await;
    let o = h
        .wait("orphan", "StartFailed", Duration::from_secs(30), |o| {
            o.conditions
                .iter()
                .any(|c| c.type_ == "StartFailed" && c.reason == "VolumesFromMissing")
        })
        .await;
    assert!(o.containers.is_empty());
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lost_in_a_long_outage_is_re_created() {
    let mut h = Harness::new("agent-lease").await;
    h.cfg.lease_ttl = Duration::from_secs(3);
    let proxy = h.etcd.proxy().await;
    h.start_agent_at(proxy.endpoint());
    h.apply("web", web_spec(WEB1, 2)).await;
    h.wait_ready("web", 2).await;
    let before = h.container_ids().await;
    let mut started = Vec::new();
    for id in &before {
        started.push(h.docker.inspect(id).await.expect("inspect").started_at);
    }
    // The agent loses etcd; etcd itself goes on (and is written to), so the
    // agent's lease expires with the node and observed documents on it.
    proxy.cut();
    let cut = Instant::now();
    let mut n = 0;
    while h.etcd.get(&h.node_key()).await.is_some() || h.observed("web").await.is_some() {
        assert!(
            cut.elapsed() < Duration::from_secs(20),
            "the lease did not expire while the agent was cut off"
        );
        n += 1;
        h.etcd.put(&h.etcd.key("test/tick"), format!("{n}")).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    proxy.restore();
    // A new lease: the node, and the observed documents, are back at once.
    let took = h.wait_registered(Duration::from_secs(15)).await;
    eprintln!("etcd restored -> node registered again: {took:?}");
    let o = h
        .wait(
            "web",
            "observed again on the new lease",
            Duration::from_secs(10),
            |o| {
                o.containers.len() == 2
                    && o.containers
                        .iter()
                        .all(|c| c.phase == ContainerPhase::Ready && c.restarts == 0)
            },
        )
        .await;
    assert!(
        o.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.is_true() && c.message.starts_with("2/2")),
        "{o:#?}"
    );
    // Both bound to the agent's (new, live) lease.
    let lease = h.etcd.lease_of(&h.node_key()).await.expect("registered");
    assert_ne!(lease, 0, "the node is not bound to a lease");
    assert_eq!(h.etcd.lease_of(&h.observed_key("web")).await, Some(lease));
    // The containers were never touched.
    assert_eq!(h.container_ids().await, before);
    for (id, s) in before.iter().zip(&started) {
        let d = h.docker.inspect(id).await.expect("inspect");
        assert!(d.running);
        assert_eq!(&d.started_at, s, "container {id} restarted");
    }
    // And the registration stays: the new lease is kept alive (renewed five
    // times, over its 3 s TTL), with both documents still on it.
    h.etcd
        .wait_renewals(lease, 5, Duration::from_secs(20))
        .await;
    assert_eq!(h.etcd.lease_of(&h.node_key()).await, Some(lease));
    assert_eq!(h.etcd.lease_of(&h.observed_key("web")).await, Some(lease));
    h.stop_agent();
}

/// A second node joins: nothing running moves (same container), a new
/// component spreads over both, a pinned one runs on its node only, and
/// when the second node leaves its replica moves to the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_joins_without_moving_anything() {
    let mut h = Harness::new("agent-two").await;
    h.start_agent();
    h.apply("web", web_spec(WEB1, 1)).await;
    h.wait_ready("web", 1).await;
    let before = h.container_ids().await;
    let mut cfg_b = h.cfg.clone();
    cfg_b.node = images::unique("agent-two-b");
    let b = cfg_b.node.clone();
    let _guard_b = NodeContainers {
        root: h.etcd.root().to_string(),
        node: b.clone(),
    };
    let mut agent_b = AgentProc::start(cfg_b, h.etcd.endpoint());
    let one_ready =
        |o: &Observed| o.containers.len() == 1 && o.containers[0].phase == ContainerPhase::Ready;
    let long = Duration::from_secs(60);
    // A new component of 2 replicas: one on each node, which proves the
    // coordinator saw the second node.
    h.apply("api", web_spec(WEB1, 2)).await;
    h.wait_on(h.node(), "api", "1 ready on a", long, one_ready)
        .await;
    h.wait_on(&b, "api", "1 ready on b", long, one_ready).await;
    // web did not move.
    assert!(h.observed_on(&b, "web").await.is_none());
    let mut ids = h.container_ids().await;
    ids.retain(|id| id == &before[0]);
    assert_eq!(ids, before, "web's container replaced");
    // Pinned: on the named node only.
    let mut pinned = web_spec(WEB1, 1);
    pinned["placement"]["nodes"] = json!([b.clone()]);
    h.apply("pinned", pinned).await;
    h.wait_on(&b, "pinned", "1 ready", long, one_ready).await;
    assert!(h.observed("pinned").await.is_none());
    // The second node leaves: its api replica comes to the first.
    agent_b.finish(true);
    let two = |o: &Observed| {
        o.containers.len() == 2
            && o.containers
                .iter()
                .all(|c| c.phase == ContainerPhase::Ready)
    };
    h.wait("api", "both replicas on a", long, two).await;
    let mut ids = h.container_ids().await;
    ids.retain(|id| id == &before[0]);
    assert_eq!(ids, before, "web's container replaced");
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_with_the_same_node_name_refuses_to_start() {
    let mut h = Harness::new("agent-same").await;
    h.start_agent();
    h.apply("web", web_spec(WEB1, 1)).await;
    h.wait_ready("web", 1).await;
    // The same node name on the same root, in this same process.
    let start = Instant::now();
    let client = client_for(&h.etcd.endpoint()).await;
    let second = agent::run(h.cfg.clone(), client, futures::future::pending());
    let r = tokio::time::timeout(Duration::from_secs(15), second)
        .await
        .expect("the second agent refuses quickly, not runs");
    let e = r
        .expect_err("the second agent refuses to start")
        .to_string();
    assert!(
        e.starts_with(&format!(
            "node {} is already registered by a running agent (lease ",
            h.node()
        )) && e.ends_with("); stop it or use another --node"),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    // The first agent is untouched and still reports.
    assert!(h.etcd.get(&h.node_key()).await.is_some());
    h.wait_ready("web", 1).await;
    // An observed document deleted behind the agent's back is written again
    // (checked every resync: 10 s here).
    h.etcd.delete(&h.observed_key("web")).await;
    h.wait_ready("web", 1).await;
    h.stop_agent();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_in_this_process_is_taken_over_at_once() {
    let mut h = Harness::new("agent-takeover").await;
    h.cfg.lease_ttl = Duration::from_secs(30);
    h.start_agent();
    h.wait_registered(Duration::from_secs(20)).await;
    h.kill_agent();
    // Its lease lives on for 30 s; this process knows its agent is gone.
    let start = Instant::now();
    h.start_agent();
    h.apply("web", web_spec(WEB1, 1)).await;
    h.wait_ready("web", 1).await;
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    h.stop_agent();
}

/// An assignment of `(image, replicas)` per revision, revision numbers
/// counting from 1, as the coordinator writes it.
fn revisions_assignment(revisions: &[(&str, u32)]) -> serde_json::Value {
    let revisions: Vec<serde_json::Value> = revisions
        .iter()
        .enumerate()
        .map(|(i, (image, replicas))| {
            let c: Component = serde_json::from_value(json!({
                "apiVersion": "berth/v1",
                "kind": "Component",
                "metadata": {"name": "web", "project": PROJECT},
                "spec": web_spec(image, 1),
            }))
            .expect("a valid component");
            let template = c.spec.template();
            json!({"revision": i + 1, "hash": template.hash(), "template": template,
                   "replicas": replicas})
        })
        .collect();
    json!({"generation": 1, "revisions": revisions})
}

/// Ready containers per revision in `o`, and ready ones in all.
fn ready_by_revision(o: &Observed) -> (BTreeMap<u64, usize>, usize) {
    let mut by = BTreeMap::new();
    for c in &o.containers {
        if c.phase == ContainerPhase::Ready {
            *by.entry(c.revision).or_insert(0) += 1;
        }
    }
    let all = by.values().sum();
    (by, all)
}

/// An assignment that asks for a count of each of two revisions is run as
/// asked, each container serving its own image; a step that moves one
/// replica from the old revision to the new starts the new one first and
/// removes one of the old (which one: `agent::plan` tests); the node never
/// has fewer ready containers than asked while it moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_the_count_asked_of_each_revision() {
    let mut h = Harness::new("agent-revs").await;
    h.cfg.coordinate = false;
    h.start_agent();
    h.wait_registered(Duration::from_secs(30)).await;
    let key = h
        .etcd
        .key(&format!("assignments/{}/{PROJECT}/web", h.node()));
    let put = |revisions: &[(&str, u32)]| revisions_assignment(revisions).to_string();
    h.etcd.put(&key, put(&[(WEB1, 2), (WEB2, 1)])).await;
    let exactly = |want: Vec<(u64, usize)>| {
        let total: usize = want.iter().map(|w| w.1).sum();
        move |o: &Observed| {
            let (by, all) = ready_by_revision(o);
            o.containers.len() == total && all == total && by == want.iter().copied().collect()
        }
    };
    let o = h
        .wait(
            "web",
            "2 of revision 1, 1 of revision 2",
            Duration::from_secs(60),
            exactly(vec![(1, 2), (2, 1)]),
        )
        .await;
    for (i, c) in o.containers.iter().enumerate() {
        let body = http_get(port_of(&o, i)).await;
        assert_eq!(
            body.as_deref(),
            Some(if c.revision == 1 { "web 1" } else { "web 2" })
        );
    }
    let old: Vec<String> = o
        .containers
        .iter()
        .filter(|c| c.revision == 1)
        .map(|c| c.id.clone())
        .collect();

    // One replica moves from revision 1 to revision 2.
    h.etcd.put(&key, put(&[(WEB1, 1), (WEB2, 2)])).await;
    let start = Instant::now();
    let o = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the step never completed"
        );
        if let Some(o) = h.observed("web").await {
            let (_, ready) = ready_by_revision(&o);
            assert!(
                ready >= 3,
                "fewer ready containers than asked while moving: {o:#?}"
            );
            if exactly(vec![(1, 1), (2, 2)])(&o) {
                break o;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kept: Vec<&String> = o
        .containers
        .iter()
        .filter(|c| c.revision == 1)
        .map(|c| &c.id)
        .collect();
    assert!(
        kept.len() == 1 && old.contains(kept[0]),
        "one of revision 1's running containers stays, none is started: {kept:?} of {old:?}"
    );

    // Revision 1 no longer asked for: its container goes, revision 2's stay.
    h.etcd.put(&key, put(&[(WEB2, 2)])).await;
    h.wait(
        "web",
        "2 of revision 2 only",
        Duration::from_secs(60),
        exactly(vec![(2, 2)]),
    )
    .await;
    assert_eq!(h.container_ids().await.len(), 2);
    h.stop_agent();
}
