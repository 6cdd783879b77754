//! Per-container actions (issues 10 and 11) across two `berth agent`
//! processes on 127.0.0.90 and .91, one etcd and the one Docker engine:
//! agent A answers for a container that runs on agent B (logs, follow,
//! restart, evict, forwarded with the caller's token), a forwarded request
//! is never forwarded again, the auth matrix of the new routes, and an
//! eviction (through A's API and through `berth evict`) replaces the
//! container surge-first: it serves until its replacement is ready, ready
//! never below replicas with `maxUnavailable: 0` (a watcher of `observed/`
//! replays every etcd revision); with `maxSurge: 0` it goes first, within
//! `maxUnavailable`.
//!
//! The test has its own etcd root, node names and addresses; the agents'
//! guards remove their containers even when it fails.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::cluster::wait_until;
use crate::rollout::watch_budgets;
use crate::support::agents::{free_port, Agent, AgentConfig, Log, Proxy};
use crate::support::cli::{berth, Output};
use crate::support::etcd::TestEtcd;
use crate::support::images::{self, WEB1};

const ADMIN: &str = "actions-admin-0123456789";
const VIEWER: &str = "actions-viewer-0123456789";
/// An admin of another project only.
const OTHER: &str = "actions-other-0123456789";
const REPLICAS: u32 = 2;
const SURGE: u32 = 1;

struct Two {
    etcd: TestEtcd,
    dir: tempfile::TempDir,
    agents: Vec<Agent>,
}

impl Two {
    async fn start() -> Two {
        images::ensure_test_images().await.expect("test images");
        let etcd = TestEtcd::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens.yaml");
        std::fs::write(
            &tokens,
            format!(
                "tokens:\n  - {{name: ci, token: {ADMIN}, role: admin}}\n  - {{name: viewer, token: {VIEWER}, role: read}}\n  - {{name: other, token: {OTHER}, role: admin, projects: [other]}}\n"
            ),
        )
        .expect("tokens file");
        let forward_port = free_port();
        let mut agents = Vec::new();
        for i in 0..2 {
            let node = images::unique(&format!("act{i}"));
            let ip = format!("127.0.0.{}", 90 + i);
            let agent = AgentConfig {
                labels: Some("zone=act".to_string()),
                address: Some(ip.clone()),
                proxy: Some(Proxy {
                    bind: ip.clone(),
                    forward_port,
                }),
                http: Some(format!("{ip}:{}", free_port())),
                extra: vec!["--api-tokens".to_string(), tokens.display().to_string()],
                log: Log::Json(dir.path().join(format!("{node}.log"))),
                ..AgentConfig::new(&etcd.endpoint(), etcd.root(), &node)
            }
            .spawn();
            agents.push(agent);
        }
        let two = Two { etcd, dir, agents };
        for a in &two.agents {
            let key = two.etcd.key(&format!("nodes/{}", a.node));
            let want = format!("http://{}", a.http());
            wait_until("registered with its API address", || async {
                let doc: Value = two
                    .etcd
                    .get(&key)
                    .await
                    .and_then(|v| serde_json::from_slice(&v).ok())
                    .unwrap_or_default();
                doc["status"]["apiAddress"] == want.as_str()
            })
            .await;
        }
        two
    }

    fn berth(&self, args: &[&str], stdin: Option<&str>) -> Output {
        berth(&self.etcd.endpoint(), self.etcd.root(), args, stdin)
    }

    /// `shop/web`'s containers on `node`, from its observed document.
    async fn containers_on(&self, node: &str) -> Vec<Value> {
        let key = self.etcd.key(&format!("observed/{node}/shop/web"));
        let doc: Value = self
            .etcd
            .get(&key)
            .await
            .and_then(|v| serde_json::from_slice(&v).ok())
            .unwrap_or_default();
        doc["containers"].as_array().cloned().unwrap_or_default()
    }

    /// The observed entry of container `id`, on whichever node has it.
    async fn observed_victim(&self, id: &str) -> Option<Value> {
        for a in &self.agents {
            if let Some(c) = self
                .containers_on(&a.node)
                .await
                .into_iter()
                .find(|c| c["id"] == id)
            {
                return Some(c);
            }
        }
        None
    }

    /// Every `shop/web` container: (node, id, phase).
    async fn all(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for a in &self.agents {
            for c in self.containers_on(&a.node).await {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                out.push((a.node.clone(), s("id"), s("phase")));
            }
        }
        out
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for a in &self.agents {
            let p = self.dir.path().join(format!("{}.log", a.node));
            all += &std::fs::read_to_string(p).unwrap_or_default();
        }
        all
    }
}

/// One HTTP/1.0 exchange: (status, lowercased head, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\n{auth}{extra}Content-Length: 0\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_lowercase(), body.to_string())
}

/// The `error` of a JSON error body (panics when the body is no such JSON).
fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["error"].as_str().unwrap_or_default().to_string()
}

/// Reads a `?follow=true` log stream (HTTP/1.1, chunked) until `marker`
/// shows, within `within`; the stream must still be open then.
fn follow_until(addr: &str, path: &str, token: &str, marker: &str, within: Duration) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .expect("write");
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => panic!("the follow stream ended: {}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if String::from_utf8_lossy(&got).contains(marker) {
            return String::from_utf8_lossy(&got).to_string();
        }
    }
    panic!(
        "no {marker:?} within {within:?}: {}",
        String::from_utf8_lossy(&got)
    );
}

/// `shop/web`: two replicas that print `hello-from-<hostname>` (Docker sets
/// the short container id) and then serve; one surge, none unavailable.
fn manifest() -> String {
    let web = json!({
        "apiVersion": "berth/v1", "kind": "Component",
        "metadata": {"name": "web", "project": "shop"},
        "spec": {
            "image": WEB1,
            "command": ["/bin/sh", "-c", "echo hello-from-$(hostname); exec /bin/httpd -f -p 8080 -h /www"],
            "ports": [{"container": 8080}],
            "placement": {"replicas": REPLICAS, "nodeSelector": {"zone": "act"}},
            "readyChecks": [{"http": {"port": 8080, "path": "/"}, "interval": "500ms"}],
            "termination": {"signals": ["SIGKILL"], "gracePeriod": "1s", "drainTimeout": "1s"},
            "rollout": {"maxSurge": SURGE, "maxUnavailable": 0, "progressDeadline": "60s"},
        }
    });
    format!(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\n\
         apiVersion: berth/v1\nkind: Project\nmetadata: {{name: other}}\n---\n{web}\n"
    )
}

/// Evicts with `evict` (which must have asked for `victim`'s eviction)
/// while a watcher of `observed/` replays every revision: the victim keeps
/// serving, published ready and `evicting`, until its replacement is ready
/// (surge-first), so with `maxUnavailable: 0` the ready count never drops
/// below `replicas`; never more than `replicas + maxSurge` containers at
/// once; the victim is gone at the end, every replica ready, and its
/// eviction request deleted.
async fn evicted_within_budget(two: &Two, victim: &str, evict: impl FnOnce()) {
    let from = two.etcd.revision().await;
    let (tx, rx) = watch::channel(0i64);
    let watcher = watch_budgets(&two.etcd, from, rx);
    let act = async {
        evict();
        wait_until("the victim published ready and evicting", || async {
            two.observed_victim(victim)
                .await
                .is_some_and(|c| c["phase"] == "ready" && c["evicting"] == true)
        })
        .await;
        wait_until("the evicted container replaced and gone", || async {
            let all = two.all().await;
            all.len() == REPLICAS as usize
                && all
                    .iter()
                    .all(|(_, id, phase)| id != victim && phase == "ready")
        })
        .await;
        wait_until("the eviction request deleted", || async {
            two.etcd.keys(&two.etcd.key("evictions/")).await.is_empty()
        })
        .await;
        let _ = tx.send(two.etcd.revision().await);
    };
    let (x, ()) = tokio::join!(watcher, act);
    eprintln!("watcher: {x:?}");
    assert!(x.events > 0, "the watcher saw nothing");
    assert_eq!(
        x.most_containers,
        REPLICAS + SURGE,
        "the replacement ran beside the evicted one, within maxSurge {SURGE}: {x:?}"
    );
    assert!(
        x.least_ready >= REPLICAS,
        "ready fell to {} below replicas {REPLICAS} with maxUnavailable 0: {x:?}",
        x.least_ready
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_agent_answers_for_every_container_logs_restart_and_evict() {
    let two = Two::start().await;
    let (a, b) = (&two.agents[0], &two.agents[1]);
    let out = two.berth(&["apply", "-f", "-"], Some(&manifest()));
    assert_eq!(out.code, 0, "{out:?}");
    let out = two.berth(
        &[
            "rollout",
            "status",
            "web",
            "-p",
            "shop",
            "--timeout",
            "120s",
        ],
        None,
    );
    assert_eq!(out.code, 0, "first rollout: {out:?}\n{}", two.logs());

    // Both agents advertise their API; `get nodes -o wide` shows it.
    let out = two.berth(&["get", "nodes", "-o", "wide"], None);
    for ag in &two.agents {
        assert!(
            out.stdout.contains(&format!("http://{}", ag.http())),
            "{out:?}"
        );
    }

    let on_b = two.containers_on(&b.node).await;
    assert_eq!(on_b.len(), 1, "one replica per node: {on_b:?}");
    let id = on_b[0]["id"].as_str().expect("id").to_string();
    let name = on_b[0]["name"].as_str().expect("name").to_string();
    let marker = format!("hello-from-{}", &id[..12]);
    let base = format!("/api/v1/projects/shop/containers/{name}");

    // Logs of B's container, asked of A with a read token: forwarded with
    // the token, answered by B, what the container printed.
    let (code, head, body) = http(
        a.http(),
        "GET",
        &format!("{base}/logs?tail=10"),
        Some(VIEWER),
        "",
    );
    assert_eq!(code, 200, "{head}\n{body}");
    assert!(
        head.contains(&format!("x-berth-node: {}", b.node.to_lowercase())),
        "{head}"
    );
    assert!(head.contains("content-type: text/plain"), "{head}");
    assert_eq!(body.trim(), marker, "{body}");
    // By id prefix too, and following: the stream is open and shows it.
    let got = follow_until(
        a.http(),
        &format!(
            "/api/v1/projects/shop/containers/{}/logs?follow=true",
            &id[..12]
        ),
        VIEWER,
        &marker,
        Duration::from_secs(20),
    );
    assert!(
        got.to_lowercase().contains("transfer-encoding: chunked"),
        "{got}"
    );
    // One container, from observed state.
    let (code, _, body) = http(a.http(), "GET", &base, Some(VIEWER), "");
    let row: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        (code, row["node"].as_str()),
        (200, Some(b.node.as_str())),
        "{body}"
    );

    // Unknown container: 404 with a JSON error, on either agent.
    for ag in &two.agents {
        let (code, _, body) = http(
            ag.http(),
            "POST",
            "/api/v1/projects/shop/containers/no-such-container/restart",
            Some(ADMIN),
            "",
        );
        assert_eq!(code, 404, "{body}");
        assert!(error_of(&body).contains("no-such-container"), "{body}");
    }
    // A forwarded request that reaches a node without the container is not
    // forwarded again: 409, JSON.
    let (code, _, body) = http(
        a.http(),
        "GET",
        &format!("{base}/logs"),
        Some(VIEWER),
        "x-berth-forwarded-by: elsewhere\r\n",
    );
    assert_eq!(code, 409, "{body}");
    assert!(error_of(&body).contains("not forwarded again"), "{body}");

    // The auth matrix of the new routes, on both agents.
    for ag in &two.agents {
        for action in ["restart", "evict"] {
            let path = format!("{base}/{action}");
            let (code, head, body) = http(ag.http(), "POST", &path, None, "");
            assert_eq!(code, 401, "{path}: {body}");
            assert!(head.contains("www-authenticate: bearer"), "{head}");
            assert!(!error_of(&body).is_empty());
            let (code, _, body) = http(ag.http(), "POST", &path, Some(VIEWER), "");
            assert_eq!(code, 403, "read token, {path}: {body}");
            assert!(error_of(&body).contains("read"), "{body}");
            let (code, _, body) = http(ag.http(), "POST", &path, Some(OTHER), "");
            assert_eq!(code, 403, "other project's token, {path}: {body}");
            assert!(error_of(&body).contains("shop"), "{body}");
        }
        let (code, _, body) = http(ag.http(), "GET", &format!("{base}/logs"), None, "");
        assert_eq!(code, 401, "{body}");
        let (code, _, body) = http(ag.http(), "GET", &format!("{base}/logs"), Some(OTHER), "");
        assert_eq!(code, 403, "{body}");
    }
    // Nothing was restarted or evicted by the refused requests.
    assert_eq!(two.containers_on(&b.node).await[0]["restarts"], 0);
    assert!(two.etcd.keys(&two.etcd.key("evictions/")).await.is_empty());

    // Restart via A: B drains, stops and starts the same container; the
    // restart count goes up and the container prints its line again.
    let (code, head, body) = http(
        a.http(),
        "POST",
        &format!("{base}/restart"),
        Some(ADMIN),
        "",
    );
    assert_eq!(code, 202, "{body}");
    assert!(
        head.contains(&format!("x-berth-node: {}", b.node.to_lowercase())),
        "{head}"
    );
    wait_until("restarted in place, ready again", || async {
        let c = two.containers_on(&b.node).await;
        c.len() == 1
            && c[0]["id"] == id.as_str()
            && c[0]["restarts"] == 1
            && c[0]["phase"] == "ready"
    })
    .await;
    let (_, _, body) = http(a.http(), "GET", &format!("{base}/logs"), Some(VIEWER), "");
    assert_eq!(body.matches(&marker).count(), 2, "{body}");
    let events = two.berth(&["events", "-p", "shop", "-o", "json"], None);
    assert!(events.stdout.contains("\"Restarted\""), "{events:?}");

    // Evict B's container via A's API.
    let victim = id.clone();
    let evict_path = format!("{base}/evict");
    evicted_within_budget(&two, &victim, || {
        let (code, head, body) = http(a.http(), "POST", &evict_path, Some(ADMIN), "");
        assert_eq!(code, 202, "{body}");
        assert!(
            head.contains(&format!("x-berth-node: {}", b.node.to_lowercase())),
            "{head}"
        );
        // Asking again while it is pending is harmless (once it is gone,
        // the container is simply not found).
        let (code, _, body) = http(b.http(), "POST", &evict_path, Some(ADMIN), "");
        assert!(code == 202 || code == 404, "{code} {body}");
        if code == 202 {
            assert!(body.contains("already being evicted"), "{body}");
        }
    })
    .await;
    let events = two.berth(&["events", "-p", "shop", "-o", "json"], None);
    assert!(events.stdout.contains("\"Evicted\""), "{events:?}");

    // Evict A's container with the CLI (it talks to etcd only).
    let on_a = two.containers_on(&a.node).await;
    let (a_id, a_name) = (
        on_a[0]["id"].as_str().expect("id").to_string(),
        on_a[0]["name"].as_str().expect("name").to_string(),
    );
    let out = two.berth(&["evict", "nope", "-p", "shop"], None);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("\"nope\" not found"), "{out:?}");
    evicted_within_budget(&two, &a_id, || {
        let out = two.berth(&["evict", &a_name, "-p", "shop"], None);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains("evicted"), "{out:?}");
    })
    .await;
}

/// An eviction asked for while the node's agent is down is carried out by
/// the next agent of that node: the request is in etcd, not in the old
/// agent's memory. The replacement comes from the coordinator (beside the
/// evicted one: never more than replicas + 1), the evicted container is
/// removed, the request deleted, and the `Evicted` event recorded by the
/// new agent (the old one never saw the request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_survives_an_agent_restart() {
    let mut h = crate::agent::Harness::new("evict-restart").await;
    h.start_agent();
    h.apply("web", crate::agent::web_spec(WEB1, 1)).await;
    let o = h.wait_ready("web", 1).await;
    let victim = o.containers[0].id.clone();
    // Stopped gracefully: its containers keep running, nobody acts.
    h.stop_agent();
    let key = h
        .etcd
        .key(&format!("evictions/{}/shop/web/{victim}", h.node()));
    h.etcd
        .put(
            &key,
            json!({"requestedAt": "2026-01-01T00:00:00Z", "by": "test"}).to_string(),
        )
        .await;
    assert_eq!(h.container_ids().await, vec![victim.clone()]);

    h.start_agent();
    let start = Instant::now();
    let mut most = 0;
    loop {
        let ids = h.container_ids().await;
        most = most.max(ids.len());
        let o = h.observed_on(h.node(), "web").await;
        let done = !ids.contains(&victim)
            && o.as_ref().is_some_and(|o| {
                o.containers.len() == 1
                    && o.containers[0].phase == berth::resource::observed::ContainerPhase::Ready
            });
        if done && h.etcd.get(&key).await.is_none() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not replaced: containers {ids:?}, observed {o:?}, request {:?}",
            h.etcd
                .get(&key)
                .await
                .map(|v| String::from_utf8_lossy(&v).to_string())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        most <= 2,
        "{most} containers at once (replicas 1, maxSurge 1)"
    );
    let events = berth(
        &h.etcd.endpoint(),
        h.etcd.root(),
        &["events", "-p", "shop", "-o", "json"],
        None,
    );
    assert!(events.stdout.contains("\"Evicted\""), "{events:?}");
    h.stop_agent();
}

/// With `maxSurge: 0` an eviction cannot be covered: `berth evict` takes
/// the container away first, within `maxUnavailable: 1` (a watcher of
/// `observed/` replays every revision: never more than `replicas`
/// containers, ready down to `replicas - 1` and no further), then its
/// replacement starts; in the end the victim is gone, both replicas ready
/// and the request deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eviction_with_no_surge_goes_first_within_max_unavailable() {
    let mut h = crate::agent::Harness::new("evict-nosurge").await;
    h.start_agent();
    let mut spec = crate::agent::web_spec(WEB1, 2);
    spec["rollout"] = json!({"maxSurge": 0, "maxUnavailable": 1, "progressDeadline": "60s"});
    h.apply("web", spec).await;
    let o = h.wait_ready("web", 2).await;
    let victim = o.containers[0].id.clone();

    let from = h.etcd.revision().await;
    let (tx, rx) = watch::channel(0i64);
    let watcher = watch_budgets(&h.etcd, from, rx);
    let act = async {
        let out = berth(
            &h.etcd.endpoint(),
            h.etcd.root(),
            &["evict", &victim, "-p", "shop"],
            None,
        );
        assert_eq!(out.code, 0, "berth evict: {out:?}");
        wait_until("the evicted container replaced and gone", || async {
            let ids = h.container_ids().await;
            let o = h.observed_on(h.node(), "web").await;
            !ids.contains(&victim)
                && o.as_ref().is_some_and(|o| {
                    o.containers.len() == 2
                        && o.containers.iter().all(|c| {
                            c.phase == berth::resource::observed::ContainerPhase::Ready
                                && c.id != victim
                        })
                })
        })
        .await;
        wait_until("the eviction request deleted", || async {
            h.etcd.keys(&h.etcd.key("evictions/")).await.is_empty()
        })
        .await;
        let _ = tx.send(h.etcd.revision().await);
    };
    let (x, ()) = tokio::join!(watcher, act);
    eprintln!("watcher: {x:?}");
    assert!(x.events > 0, "the watcher saw nothing");
    assert_eq!(
        x.most_containers, 2,
        "maxSurge 0: the victim leaves before its replacement starts: {x:?}"
    );
    assert_eq!(
        x.least_ready, 1,
        "drain-first within maxUnavailable 1 (one out, no more): {x:?}"
    );
    h.stop_agent();
}
