//! The REST API at scale (issue 11): one real `berth agent` (the release
//! binary, `--api-anonymous-read`) against one real local etcd holding
//! **500 simulated nodes × 20 containers**: their node registrations and
//! observed documents are written straight into etcd (no agent runs for
//! them, no container exists; the names say `sim-`). Measures:
//!
//! 1. `GET /api/v1/containers` (the cluster-wide list, 10,000 rows):
//!    p50/p99 latency over `BENCH_REQUESTS` (default 200) sequential
//!    requests, each on a new loopback connection, plus the response size;
//! 2. SSE fan-out: `BENCH_WATCHERS` (default 100) clients on
//!    `/api/v1/containers?watch=true&node=sim-0000`; per write (default 50,
//!    `BENCH_WRITES`) of one observed document, the time from just before
//!    the etcd put to the event's arrival at the first and the last watcher.
//!
//! Baselines in the same run: a raw etcd-client read of every observed
//! document (what the list reads), and put → event at one raw etcd watch.
//!
//! Run: `cargo bench --bench api` (prints a Markdown table for
//! BENCHMARKS.md). `BENCH_NODES` and `BENCH_PER_NODE` change the sizes.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::localetcd::{LocalEtcd, LocalEtcdConfig};
use berth::resource::observed::{ContainerPhase, ObservedContainer};
use berth::resource::Observed;
use etcd_client::{Client, GetOptions, Txn, TxnOp, WatchOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// Containers of one simulated node are spread over this many components.
const COMPONENTS_PER_NODE: usize = 4;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The agent child; killed on drop, so a panic leaves no process behind.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    berth::localetcd::free_port().expect("a free loopback port")
}

fn sim_node(i: usize) -> String {
    format!("sim-{i:04}")
}

/// A simulated node's registration, as an agent writes it.
fn node_doc(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "berth/v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {"address": "127.0.0.1", "labels": {"sim": "true"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    })
    .to_string()
}

/// What a simulated node reports for one of its components: `n` ready
/// containers, the first one with `restarts` (the fan-out's marker).
fn observed(node: &str, comp: usize, n: usize, restarts: u32) -> String {
    let containers = (0..n)
        .map(|i| ObservedContainer {
            id: format!("{node}-c{comp}-{i}"),
            name: format!("sim-c{comp}-{i}"),
            revision: 1,
            hash: "simhash".into(),
            phase: ContainerPhase::Ready,
            restarts: if i == 0 { restarts } else { 0 },
            started_at: Some("2026-12-04T00:00:00Z".into()),
            ready_since: Some("2026-12-04T00:00:01Z".into()),
            ports: [(8080, 30000 + i as u16)].into_iter().collect(),
            ..Default::default()
        })
        .collect();
    let doc = Observed {
        node: node.to_string(),
        generation: 1,
        revision: 1,
        containers,
        ..Default::default()
    };
    serde_json::to_string(&doc).expect("observed document")
}

/// Writes every simulated node's registration and observed documents, 100
/// puts per transaction (etcd allows 128).
async fn simulate(client: &Client, root: &str, nodes: usize, per_node: usize) {
    let per_comp = per_node.div_ceil(COMPONENTS_PER_NODE);
    let mut ops = Vec::new();
    for i in 0..nodes {
        let node = sim_node(i);
        ops.push(TxnOp::put(
            format!("{root}/nodes/{node}"),
            node_doc(&node),
            None,
        ));
        for c in 0..COMPONENTS_PER_NODE {
            let n = per_comp.min(per_node - (c * per_comp).min(per_node));
            ops.push(TxnOp::put(
                format!("{root}/observed/{node}/sim/c{c}"),
                observed(&node, c, n, 0),
                None,
            ));
        }
    }
    for chunk in ops.chunks(100) {
        client
            .clone()
            .txn(Txn::new().and_then(chunk.to_vec()))
            .await
            .expect("write the simulation");
    }
}

/// One HTTP/1.0 GET on a new connection: (status, body length).
fn get(addr: &str, path: &str) -> (u16, usize) {
    let (status, body) = get_body(addr, path);
    (status, body.len())
}

/// One HTTP/1.0 GET on a new connection: (status, body).
fn get_body(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n").expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let head_end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(out.len(), |p| p + 4);
    let status = String::from_utf8_lossy(&out[..head_end.min(out.len())])
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out.split_off(head_end.min(out.len())))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// One SSE client: reports `(watcher, write)` each time the marker of the
/// next write (`"restarts":N`) arrives.
async fn watcher(addr: String, id: usize, first: u32, tx: mpsc::UnboundedSender<(usize, u32)>) {
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(b"GET /api/v1/containers?watch=true&node=sim-0000 HTTP/1.0\r\nHost: bench\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut next = first;
    loop {
        let n = match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let marker = format!("\"restarts\":{next}");
            let Some(at) = buf
                .windows(marker.len())
                .position(|w| w == marker.as_bytes())
            else {
                break;
            };
            if tx.send((id, next)).is_err() {
                return;
            }
            buf.drain(..at + marker.len());
            next += 1;
        }
        // Keep only a tail that could hold the start of a marker.
        if buf.len() > 4096 {
            buf.drain(..buf.len() - 64);
        }
    }
}

/// Baseline: one raw etcd-client range read of every observed document
/// (what the list route reads), `n` times.
async fn raw_list(client: &Client, root: &str, n: usize) -> Vec<Duration> {
    let prefix = format!("{root}/observed/");
    let mut out = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        let r = client
            .clone()
            .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await
            .expect("raw list");
        out.push(t0.elapsed());
        assert!(!r.kvs().is_empty());
    }
    out.sort();
    out
}

/// Baseline: put → event at one raw etcd-client watch of the same key.
async fn raw_watch(client: &Client, root: &str, writes: u32) -> Vec<Duration> {
    let key = format!("{root}/observed/{}/sim/c0", sim_node(0));
    let mut stream = client
        .clone()
        .watch(key.clone(), Some(WatchOptions::new()))
        .await
        .expect("watch");
    let per = env_or("BENCH_PER_NODE", 20).div_ceil(COMPONENTS_PER_NODE);
    let mut out = Vec::new();
    for w in 0..writes {
        let value = observed(&sim_node(0), 0, per, 500 + w);
        let t0 = Instant::now();
        client
            .clone()
            .put(key.clone(), value, None)
            .await
            .expect("put");
        loop {
            let resp = stream.message().await.expect("watch").expect("watch open");
            if !resp.events().is_empty() {
                break;
            }
        }
        out.push(t0.elapsed());
    }
    out.sort();
    out
}

async fn fan_out(
    client: &Client,
    root: &str,
    addr: &str,
    watchers: usize,
    writes: u32,
) -> (Vec<Duration>, Vec<Duration>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Marker 1000 is the warm-up write: every watch is live once it arrives.
    let warm = 1000;
    for id in 0..watchers {
        tokio::spawn(watcher(addr.to_string(), id, warm, tx.clone()));
    }
    drop(tx);
    let key = format!("{root}/observed/{}/sim/c0", sim_node(0));
    let per = env_or("BENCH_PER_NODE", 20).div_ceil(COMPONENTS_PER_NODE);
    let mut firsts = Vec::new();
    let mut lasts = Vec::new();
    for w in 0..=writes {
        let marker = warm + w;
        let value = observed(&sim_node(0), 0, per, marker);
        let put = || async {
            client
                .clone()
                .put(key.clone(), value.clone(), None)
                .await
                .expect("put")
        };
        let mut seen = vec![false; watchers];
        let (mut first, mut last, mut count) = (None, Duration::ZERO, 0);
        let t0 = Instant::now();
        put().await;
        let mut last_put = Instant::now();
        while count < watchers {
            // The warm-up write is repeated until every watcher has it: a
            // watch opened after a put shows it in its first list instead.
            if w == 0 && last_put.elapsed() > Duration::from_secs(2) {
                put().await;
                last_put = Instant::now();
            }
            let got = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
            match got {
                Ok(Some((id, m))) if m == marker && !seen[id] => {
                    seen[id] = true;
                    count += 1;
                    last = t0.elapsed();
                    first.get_or_insert(last);
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("every watcher ended"),
                Err(_) => assert!(
                    t0.elapsed() < Duration::from_secs(120),
                    "write {w}: only {count} of {watchers} watchers got it"
                ),
            }
        }
        if w > 0 {
            firsts.push(first.unwrap_or_default());
            lasts.push(last);
        }
        // Let the etcd watch and the agent settle between writes.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (firsts, lasts)
}

#[tokio::main]
async fn main() {
    let nodes = env_or("BENCH_NODES", 500);
    let per_node = env_or("BENCH_PER_NODE", 20);
    let requests = env_or("BENCH_REQUESTS", 200);
    let watchers = env_or("BENCH_WATCHERS", 100);
    let writes = env_or("BENCH_WRITES", 50) as u32;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = LocalEtcdConfig::new(dir.path().join("etcd"));
    cfg.fast = true;
    let etcd = LocalEtcd::start(cfg).await.expect("etcd");
    let client = Client::connect([etcd.endpoint()], None)
        .await
        .expect("client");
    let id = std::process::id();
    let root = format!("/bench-api-{id}");
    let t = Instant::now();
    simulate(&client, &root, nodes, per_node).await;
    eprintln!(
        "simulated {nodes} nodes × {per_node} containers written in {:?}",
        t.elapsed()
    );

    let http = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("log");
    let agent = Agent(
        Command::new(BERTH)
            .args(["agent", "--etcd", &etcd.endpoint(), "--root", &root])
            .args(["--node", &format!("bench-api-{id}"), "--http", &http])
            .args(["--api-anonymous-read", "--forward-port", "0"])
            .args(["--proxy-bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("berth agent"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = std::net::TcpStream::connect(&http).is_ok();
        if up && get(&http, "/readyz").0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the agent did not get ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 1. The cluster-wide list.
    let (status, body) = get_body(&http, "/api/v1/containers");
    assert_eq!(status, 200, "GET /api/v1/containers");
    let list: serde_json::Value = serde_json::from_slice(&body).expect("a JSON list");
    let rows = list["items"].as_array().map_or(0, Vec::len);
    assert_eq!(
        rows,
        nodes * per_node,
        "every simulated container is listed"
    );
    let size = body.len();
    let mut lat = Vec::new();
    for _ in 0..requests {
        let addr = http.clone();
        let t0 = Instant::now();
        let (status, len) = tokio::task::spawn_blocking(move || get(&addr, "/api/v1/containers"))
            .await
            .expect("request");
        lat.push(t0.elapsed());
        assert_eq!((status, len), (200, size));
    }
    lat.sort();

    let raw = raw_list(&client, &root, 50).await;

    // 2. Fan-out.
    let raw_events = raw_watch(&client, &root, writes).await;
    let (mut firsts, mut lasts) = fan_out(&client, &root, &http, watchers, writes).await;
    firsts.sort();
    lasts.sort();
    drop(agent);

    println!("| benchmark | p50 | p99 | notes |");
    println!("|---|---|---|---|");
    println!(
        "| `GET /api/v1/containers`, {nodes} simulated nodes × {per_node} containers ({} rows), {requests} requests | {} | {} | response {:.2} MB; baseline: raw etcd-client read of the {} observed documents p50 {}, p99 {} |",
        nodes * per_node,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        size as f64 / 1e6,
        nodes * COMPONENTS_PER_NODE,
        ms(percentile(&raw, 0.5)),
        ms(percentile(&raw, 0.99)),
    );
    println!(
        "| SSE fan-out: etcd put → event at the last of {watchers} watchers, {writes} writes | {} | {} | first watcher: p50 {}, p99 {}; baseline: put → event at one raw etcd-client watch p50 {}, p99 {} |",
        ms(percentile(&lasts, 0.5)),
        ms(percentile(&lasts, 0.99)),
        ms(percentile(&firsts, 0.5)),
        ms(percentile(&firsts, 0.99)),
        ms(percentile(&raw_events, 0.5)),
        ms(percentile(&raw_events, 0.99)),
    );
}
