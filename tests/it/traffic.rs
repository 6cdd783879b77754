//! The traffic proxy in real agents: several `berth agent` processes, each
//! on its own 127.0.0.x (`--proxy-bind`, `--address`) with its own
//! forwarding port, one etcd, the one Docker engine. A test-side client
//! keeps requesting through every node's external port while containers are
//! updated, replaced, scaled down, drained, killed and stopped, and the tests
//! assert that no request failed.
//!
//! Every test has its own etcd root, node names, addresses and ports (picked
//! free by the kernel), so tests run in parallel; the agents' containers are
//! removed by guards even when a test fails. Nothing sleeps to prove an
//! absence: waits are for positive signals, bounded by `T`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::agents::{free_port, Agent, AgentConfig, Log, Proxy};
use crate::support::cli::{berth, Running};
use crate::support::etcd::TestEtcd;
use crate::support::images::{self, WEB1, WEB2};

/// Bound of every wait for something that must happen.
const T: Duration = Duration::from_secs(90);
/// One request's bound: longer means failed.
const REQUEST: Duration = Duration::from_secs(10);

struct Cluster {
    etcd: TestEtcd,
    dir: tempfile::TempDir,
    agents: Vec<Agent>,
    /// The component's external port.
    port: u16,
    forward_port: u16,
    /// Every agent's `--http` (metrics) port, on its own address.
    metrics_port: u16,
}

impl Cluster {
    /// Agents with `labels` each, on 127.0.0.`first_ip`, `first_ip + 1`, ...
    async fn start(prefix: &str, first_ip: u8, labels: &[&str]) -> Cluster {
        images::ensure_test_images().await.expect("test images");
        let etcd = TestEtcd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Cluster {
            etcd,
            dir,
            agents: Vec::new(),
            port: free_port(),
            forward_port: free_port(),
            metrics_port: free_port(),
        };
        for (i, l) in labels.iter().enumerate() {
            let node = images::unique(&format!("{prefix}{i}"));
            let ip = format!("127.0.0.{}", first_ip as usize + i);
            let agent = c.spawn(&node, &ip, l);
            c.agents.push(agent);
        }
        for a in &c.agents {
            let key = c.etcd.key(&format!("nodes/{}", a.node));
            wait_until("registered", || async { c.etcd.get(&key).await.is_some() }).await;
        }
        c
    }

    fn spawn(&self, node: &str, ip: &str, labels: &str) -> Agent {
        AgentConfig {
            labels: Some(labels.to_string()),
            address: Some(ip.to_string()),
            proxy: Some(Proxy {
                bind: ip.to_string(),
                forward_port: self.forward_port,
            }),
            http: Some(format!("{ip}:{}", self.metrics_port)),
            log: Log::Json(self.dir.path().join(format!("{node}.log"))),
            rust_log: Some("info,berth::proxy=debug".to_string()),
            ..AgentConfig::new(&self.etcd.endpoint(), self.etcd.root(), node)
        }
        .spawn()
    }

    fn berth(&self, args: &[&str], stdin: Option<&str>) -> crate::support::cli::Output {
        berth(&self.etcd.endpoint(), self.etcd.root(), args, stdin)
    }

    fn apply(&self, yaml: &str) {
        let out = self.berth(&["apply", "-f", "-"], Some(yaml));
        assert_eq!(out.code, 0, "{out:?}");
    }

    /// Every node's external port.
    fn addrs(&self) -> Vec<SocketAddr> {
        self.agents
            .iter()
            .map(|a| {
                format!("{}:{}", a.address(), self.port)
                    .parse()
                    .expect("addr")
            })
            .collect()
    }

    /// Running containers per node (all of the test's nodes).
    async fn running(&self) -> Vec<usize> {
        let mut out = Vec::new();
        for a in &self.agents {
            out.push(
                a.containers
                    .list()
                    .await
                    .iter()
                    .filter(|c| c.running)
                    .count(),
            );
        }
        out
    }

    /// Waits until every node's port answers `body`, `n` times in a row.
    async fn serves_everywhere(&self, body: &str) {
        for addr in self.addrs() {
            wait_until(&format!("{addr} answers {body:?}"), || async move {
                for _ in 0..5 {
                    match get_once(addr).await {
                        Ok(b) if b.contains(body) => {}
                        _ => return false,
                    }
                }
                true
            })
            .await;
        }
    }

    /// Waits until the containers per node are `want`, each running one.
    async fn containers_are(&self, want: &[usize]) {
        wait_until(&format!("containers per node {want:?}"), || async {
            self.running().await == want
        })
        .await;
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for a in &self.agents {
            let p = self.dir.path().join(format!("{}.log", a.node));
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- {} ---\n", a.node));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
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

/// A component of the busybox web image, one port through the proxy.
fn component(name: &str, port: u16, image: &str, protocol: &str, extra: Value) -> String {
    let mut spec = json!({
        "image": image,
        "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
        "ports": [{"container": 8080, "external": port, "protocol": protocol}],
        "placement": {"replicas": 3},
        "readyChecks": [{"http": {"port": 8080, "path": "/"}, "interval": "1s"}],
        // busybox httpd as PID 1 ignores SIGTERM: SIGKILL after the drain.
        "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s", "drainTimeout": "10s"},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    let doc = json!({
        "apiVersion": "berth/v1", "kind": "Component",
        "metadata": {"name": name, "project": "shop"},
        "spec": spec,
    });
    format!("apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\n{doc}\n")
}

/// One HTTP/1.0 request on a new connection (the `tcp` mode's unit): the
/// body of a 200, or why not.
async fn get_once(addr: SocketAddr) -> Result<String, String> {
    let exchange = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(b"GET / HTTP/1.0\r\nHost: t\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        if !text.starts_with("HTTP/1.0 200") && !text.starts_with("HTTP/1.1 200") {
            return Err(format!("answer {text:?}"));
        }
        Ok(text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .to_string())
    };
    match tokio::time::timeout(REQUEST, exchange).await {
        Ok(r) => r,
        Err(_) => Err("timed out".into()),
    }
}

/// What the load saw.
#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    /// (phase, node address, error)
    failures: Vec<(String, SocketAddr, String)>,
    bodies: BTreeMap<String, u64>,
}

/// A test-side client requesting through every node's port without pause
/// until stopped: new connections (`tcp`), or keep-alive (`http`).
struct Load {
    stop: Arc<AtomicBool>,
    phase: Arc<Mutex<String>>,
    tally: Arc<Mutex<Tally>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addrs: &[SocketAddr], keep_alive: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(Mutex::new("start".to_string()));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let tasks = addrs
            .iter()
            .map(|&addr| {
                let (stop, phase, tally) = (stop.clone(), phase.clone(), tally.clone());
                tokio::spawn(async move {
                    let mut conn: Option<KeepAlive> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let r = if keep_alive {
                            keep_alive_get(addr, &mut conn).await
                        } else {
                            get_once(addr).await
                        };
                        {
                            let mut t = tally.lock().expect("tally");
                            match r {
                                Ok(body) => {
                                    t.ok += 1;
                                    *t.bodies.entry(body.trim().to_string()).or_default() += 1;
                                }
                                Err(e) => {
                                    let p = phase.lock().expect("phase").clone();
                                    t.failures.push((p, addr, e));
                                }
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            phase,
            tally,
            tasks,
        }
    }

    fn phase(&self, p: &str) {
        *self.phase.lock().expect("phase") = p.to_string();
    }

    fn ok(&self) -> u64 {
        self.tally.lock().expect("tally").ok
    }

    /// Waits until `n` more requests succeeded (the load is really flowing).
    async fn flowing(&self, n: u64) {
        let start = self.ok();
        wait_until("requests flowing", || async { self.ok() >= start + n }).await;
    }

    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        Arc::try_unwrap(self.tally)
            .map(|m| m.into_inner().expect("tally"))
            .unwrap_or_default()
    }
}

type KeepAlive = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// One GET on the kept connection (a new one after an error: the failure is
/// counted, then the client reconnects, as a browser would).
async fn keep_alive_get(addr: SocketAddr, conn: &mut Option<KeepAlive>) -> Result<String, String> {
    let exchange = async {
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            let s = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (send, c) = hyper::client::conn::http1::handshake(TokioIo::new(s))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(c);
            *conn = Some(send);
        }
        let Some(send) = conn.as_mut() else {
            return Err("no connection".to_string());
        };
        send.ready().await.map_err(|e| format!("ready: {e}"))?;
        let req = hyper::Request::builder()
            .uri("/")
            .header("host", "t")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        if status != 200 {
            return Err(format!("status {status}: {body:?}"));
        }
        Ok(body)
    };
    let r = match tokio::time::timeout(REQUEST, exchange).await {
        Ok(r) => r,
        Err(_) => Err("timed out".into()),
    };
    if r.is_err() {
        *conn = None;
    }
    r
}

fn assert_no_failures(c: &Cluster, tally: &Tally) {
    assert!(
        tally.failures.is_empty(),
        "{} of {} requests failed: {:#?}\n{}",
        tally.failures.len(),
        tally.ok + tally.failures.len() as u64,
        tally.failures.iter().take(20).collect::<Vec<_>>(),
        c.logs()
    );
}

/// Three nodes, one client per node's port requesting without pause: a
/// rolling update, a health replacement, a SIGKILLed container, `berth
/// drain` of a node, and a scale-down to one replica (two nodes then answer
/// by forwarding) fail no request.
async fn no_request_fails(prefix: &str, first_ip: u8, protocol: &str, keep_alive: bool) {
    let c = Cluster::start(prefix, first_ip, &["zone=a", "zone=a", "zone=a"]).await;
    let health = json!({"healthChecks": [{"exec": {"command": ["test", "!", "-e", "/tmp/sick"]},
        "interval": "1s", "failureThreshold": 1}]});
    c.apply(&component("web", c.port, WEB1, protocol, health.clone()));
    c.containers_are(&[1, 1, 1]).await;
    c.serves_everywhere("web 1").await;
    let load = Load::start(&c.addrs(), keep_alive);
    load.flowing(30).await;

    load.phase("rolling update");
    c.apply(&component("web", c.port, WEB2, protocol, health.clone()));
    c.serves_everywhere("web 2").await;
    c.containers_are(&[1, 1, 1]).await;
    load.flowing(30).await;

    load.phase("health replacement");
    let docker = images::docker().await;
    let sick = c.agents[0].containers.list().await.remove(0).id;
    let touch = ["touch", "/tmp/sick"].map(String::from);
    docker
        .exec(&sick, &touch, Duration::from_secs(10))
        .await
        .expect("exec");
    wait_until("the sick container replaced", || async {
        let now = c.agents[0].containers.list().await;
        now.len() == 1 && now[0].id != sick && now[0].running
    })
    .await;
    load.flowing(30).await;

    load.phase("container killed");
    let victim = c.agents[1].containers.list().await.remove(0).id;
    let started = docker.inspect(&victim).await.expect("inspect").started_at;
    docker.kill(&victim).await.expect("kill");
    // The agent restarts it (crash backoff) or replaces it; meanwhile the
    // proxy retries new connections (requests) on the other containers.
    wait_until("the killed container seen dead", || async {
        let d = images::docker().await;
        d.inspect(&victim)
            .await
            .map_or(true, |i| !i.running || i.started_at != started)
    })
    .await;
    c.containers_are(&[1, 1, 1]).await;
    load.flowing(30).await;

    load.phase("node drain");
    let drained = c.agents[2].node.clone();
    let out = c.berth(&["drain", &drained, "--timeout", "60s"], None);
    assert_eq!(out.code, 0, "{out:?}");
    c.containers_are(&[2, 1, 0]).await;
    load.flowing(30).await;

    load.phase("scale-down");
    let mut down = health.clone();
    down["placement"] = json!({"replicas": 1});
    c.apply(&component("web", c.port, WEB2, protocol, down));
    wait_until("one replica left", || async {
        c.running().await.iter().sum::<usize>() == 1
    })
    .await;
    load.flowing(60).await;

    let tally = load.finish().await;
    assert_no_failures(&c, &tally);
    assert!(tally.bodies.contains_key("web 1") && tally.bodies.contains_key("web 2"));
    // The proxies reached their containers inside the containers' network
    // namespaces (skipping docker-proxy), not only through published ports.
    let mut dials = 0.0;
    for i in 0..c.agents.len() {
        dials += metric_sum(&c, i, "berth_proxy_netns_dials_total").await;
    }
    assert!(
        dials > 0.0,
        "no connect went through a container's namespace\n{}",
        c.logs()
    );
}

/// Agent `i`'s `/metrics` text (empty when it cannot be read).
async fn metrics_text(c: &Cluster, i: usize) -> String {
    let addr: SocketAddr = c.agents[i].http().parse().expect("addr");
    let mut text = String::new();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return text;
    };
    if s.write_all(b"GET /metrics HTTP/1.0\r\nHost: t\r\n\r\n")
        .await
        .is_ok()
    {
        let _ = s.read_to_string(&mut text).await;
    }
    text
}

/// The sum of every series of `name` on agent `i`'s `/metrics`.
async fn metric_sum(c: &Cluster, i: usize, name: &str) -> f64 {
    let text = metrics_text(c, i).await;
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `protocol: tcp`, a new connection per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_no_request_fails_through_update_replacement_kill_drain_and_scale_down() {
    no_request_fails("tt", 20, "tcp", false).await;
}

/// `protocol: http` with a keep-alive client per node: the same, and the
/// client's connections are never cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_keep_alive_no_request_fails_through_update_replacement_kill_drain_and_scale_down() {
    no_request_fails("th", 30, "http", true).await;
}

/// The observed document of `component` on `node`.
async fn observed(c: &Cluster, node: &str, component: &str) -> Value {
    let key = c.etcd.key(&format!("observed/{node}/shop/{component}"));
    c.etcd
        .get(&key)
        .await
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default()
}

/// A long-lived tcp connection (a request head sent but not finished)
/// keeps its old container through an update: the container drains, shows
/// its open connection in `observed`, and the connection still gets its
/// answer. Another one left open is cut only when `drainTimeout` runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_tcp_connection_lives_through_an_update_until_drain_timeout() {
    let c = Cluster::start("tl", 40, &["zone=a"]).await;
    let node = c.agents[0].node.clone();
    let one = |image: &str, drain: &str| {
        component(
            "stream",
            c.port,
            image,
            "tcp",
            json!({"placement": {"replicas": 1},
                "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s", "drainTimeout": drain}}),
        )
    };
    c.apply(&one(WEB1, "60s"));
    c.serves_everywhere("web 1").await;
    let addr = c.addrs()[0];

    // Kept open through the update; it finishes once the new one serves.
    let mut long = TcpStream::connect(addr).await.expect("connect");
    long.write_all(b"GET / HTTP/1.0\r\n").await.expect("write");
    // The proxy has connected it to the container before the update.
    wait_until("connection counted", || async {
        open_connections(&c, 0).await >= 1.0
    })
    .await;
    c.apply(&one(WEB2, "60s"));
    c.serves_everywhere("web 2").await;
    wait_until("old container draining with 1 open", || async {
        let o = observed(&c, &node, "stream").await;
        o["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|x| x["phase"] == "draining" && x["drain"]["open"] == 1)
    })
    .await;
    long.write_all(b"\r\n").await.expect("finish the request");
    let mut answer = String::new();
    tokio::time::timeout(REQUEST, long.read_to_string(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    assert!(answer.contains("web 1"), "{answer:?}");
    // The client closes its side too: the proxy's pipe (and the drain) ends.
    drop(long);
    c.containers_are(&[1]).await;

    // Left open: cut only once drainTimeout (3 s) has run out. First the
    // 3 s template replaces the running container (same image).
    let before = c.agents[0].containers.list().await;
    c.apply(&one(WEB2, "3s"));
    wait_until("the 3 s template runs alone", || async {
        let now = c.agents[0].containers.list().await;
        now.len() == 1 && before.iter().all(|b| b.id != now[0].id)
    })
    .await;
    c.serves_everywhere("web 2").await;
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET / HTTP/1.0\r\n").await.expect("write");
    wait_until("connection counted", || async {
        open_connections(&c, 0).await >= 1.0
    })
    .await;
    let applied = Instant::now();
    c.apply(&one(WEB1, "3s"));
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(T, idle.read_to_end(&mut rest)).await;
    let lived = applied.elapsed();
    assert!(
        lived >= Duration::from_millis(2900),
        "cut after {lived:?}, before drainTimeout (3 s)"
    );
    // ...and then: drainTimeout, the grace period (1 s), and slack.
    assert!(lived < Duration::from_secs(15), "cut only after {lived:?}");
    assert!(rest.is_empty(), "the cut connection got {rest:?}");
    c.serves_everywhere("web 1").await;
}

/// `berth_proxy_connections_open` of the test's port on agent `i`, from its
/// `/metrics`.
async fn open_connections(c: &Cluster, i: usize) -> f64 {
    let text = metrics_text(c, i).await;
    let series = format!("port=\"{}\"}}", c.port);
    text.lines()
        .filter(|l| l.starts_with("berth_proxy_connections_open{") && l.contains(&series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A node with no replica answers through forwarding; with etcd stopped,
/// both nodes keep serving (local containers and cached peer endpoints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_and_serving_with_etcd_down() {
    let mut c = Cluster::start("tf", 50, &["zone=a", "zone=b"]).await;
    c.apply(&component(
        "fwd",
        c.port,
        WEB1,
        "tcp",
        json!({"placement": {"replicas": 1, "nodeSelector": {"zone": "a"}}}),
    ));
    c.containers_are(&[1, 0]).await;
    // Node b has no replica and answers anyway.
    c.serves_everywhere("web 1").await;
    let eps = c.berth(&["get", "endpoints", "-p", "shop", "-o", "json"], None);
    assert_eq!(eps.code, 0, "{eps:?}");
    let list: Value = serde_json::from_str(&eps.stdout).expect("json");
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["node"], c.agents[0].node.as_str());
    let table = c.berth(&["get", "endpoints", "fwd", "-p", "shop"], None);
    assert!(table.stdout.contains(&c.agents[0].node), "{table:?}");

    let load = Load::start(&c.addrs(), false);
    load.flowing(30).await;
    load.phase("etcd down");
    c.etcd.stop().await;
    load.flowing(100).await;
    c.etcd.restart().await;
    let tally = load.finish().await;
    assert_no_failures(&c, &tally);

    // `get endpoints -w`: the replica moving to node b shows as events.
    let mut watch = Running::start(
        &c.etcd,
        &["get", "endpoints", "-p", "shop", "-w", "-o", "json"],
    );
    watch.line("\"items\"");
    c.apply(&component(
        "fwd",
        c.port,
        WEB1,
        "tcp",
        json!({"placement": {"replicas": 1, "nodeSelector": {"zone": "b"}}}),
    ));
    // In either order: b's container may be ready before or after a's
    // starts draining.
    let (mut added, mut deleted) = (false, false);
    while !(added && deleted) {
        let ev = watch.line("\"type\"");
        added |= ev.contains("\"ADDED\"") && ev.contains(&c.agents[1].node);
        deleted |= ev.contains("\"DELETED\"") && ev.contains(&c.agents[0].node);
    }
}

/// Two components claiming one external port are refused at apply (across
/// projects, naming both, writing nothing); a port another process holds
/// is reported as `PortUnavailable` and the component's other port served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_conflicts_are_refused_and_unbindable_ports_reported() {
    let c = Cluster::start("tp", 60, &["zone=a"]).await;
    let node = c.agents[0].node.clone();
    let held_port = free_port();
    let _holder = std::net::TcpListener::bind(("127.0.0.60", held_port)).expect("hold the port");
    let doc = json!({
        "apiVersion": "berth/v1", "kind": "Component",
        "metadata": {"name": "two", "project": "shop"},
        "spec": {
            "image": WEB1,
            "command": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
            "ports": [{"container": 8080, "external": c.port}, {"container": 8081, "external": held_port}],
            "placement": {"replicas": 1},
            "readyChecks": [{"http": {"port": 8080, "path": "/"}, "interval": "1s"}],
            "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s", "drainTimeout": "2s"},
        }
    });
    c.apply(&format!(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\n{doc}\n"
    ));
    c.serves_everywhere("web 1").await;
    wait_until("PortUnavailable reported", || async {
        let o = observed(&c, &node, "two").await;
        o["conditions"].as_array().into_iter().flatten().any(|x| {
            x["type"] == "PortUnavailable"
                && x["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&held_port.to_string()))
        })
    })
    .await;

    let other = component("thief", c.port, WEB1, "tcp", json!({}))
        .replace("name: shop", "name: other")
        .replace("\"project\":\"shop\"", "\"project\":\"other\"");
    let out = c.berth(&["apply", "-f", "-"], Some(&other));
    let err = out.one_line_error();
    assert!(
        err.contains("shop/two")
            && err.contains("other/thief")
            && err.contains(&c.port.to_string()),
        "{err}"
    );
    assert!(c
        .etcd
        .get(&c.etcd.key("specs/component/other/thief"))
        .await
        .is_none());
    assert!(c
        .etcd
        .get(&c.etcd.key("specs/project/other"))
        .await
        .is_none());
}

/// `state: stopped` and `berth delete component` drain like every other
/// stop: a request in flight is answered (its container shows in `describe`
/// as draining with it open), and only then the container goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_and_deleted_components_drain_before_their_stop() {
    let c = Cluster::start("ts", 70, &["zone=a"]).await;
    let node = c.agents[0].node.clone();
    let spec = |state: &str| {
        component(
            "halt",
            c.port,
            WEB1,
            "tcp",
            json!({"placement": {"replicas": 1}, "state": state,
                "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s", "drainTimeout": "60s"}}),
        )
    };
    let addr = c.addrs()[0];
    for how in ["state: stopped", "delete"] {
        c.apply(&spec("running"));
        c.serves_everywhere("web 1").await;
        let mut open = TcpStream::connect(addr).await.expect("connect");
        open.write_all(b"GET / HTTP/1.0\r\n").await.expect("write");
        wait_until("connection counted", || async {
            open_connections(&c, 0).await >= 1.0
        })
        .await;
        if how == "delete" {
            let out = c.berth(&["delete", "component", "halt", "-p", "shop"], None);
            assert_eq!(out.code, 0, "{out:?}");
        } else {
            c.apply(&spec("stopped"));
        }
        wait_until(&format!("{how}: draining with 1 open"), || async {
            let o = observed(&c, &node, "halt").await;
            o["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|x| x["phase"] == "draining" && x["drain"]["open"] == 1)
        })
        .await;
        if how != "delete" {
            let d = c.berth(&["describe", "component", "halt", "-p", "shop"], None);
            assert!(d.stdout.contains("draining (1 open, "), "{d:?}");
        }
        open.write_all(b"\r\n").await.expect("finish the request");
        let mut answer = String::new();
        tokio::time::timeout(REQUEST, open.read_to_string(&mut answer))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(answer.contains("web 1"), "{how}: {answer:?}");
        drop(open);
        c.containers_are(&[0]).await;
    }
}
