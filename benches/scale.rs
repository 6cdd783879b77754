//! Scale simulation (issue 7): one real coordinator (a `berth agent` release
//! binary) against one real local etcd, with 50, 200 and 500
//! **simulated agents** (`SimulatedAgent`: a fake container runtime that
//! starts nothing and reports every assigned replica ready at once) and
//! 2,000 components of 3 replicas. Measures, per scale:
//! - apply → every replica placed and every status `readyReplicas: 3`;
//! - 10% of the simulated nodes lost at once (their leases revoked) → every
//!   status back to 3 ready with none on a lost node;
//! - the coordinator's CPU seconds (utime + stime) and peak RSS (VmHWM);
//! - etcd write proposals per second over the run and its database size.
//!
//! The coordinator's own node is not eligible (the components select
//! `sim=true`), so it runs no container. Run: `cargo bench --bench scale`
//! (prints a Markdown table for BENCHMARKS.md). `BENCH_SCALES=50,200` and
//! `BENCH_COMPONENTS=2000` change the sizes.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::localetcd::{LocalEtcd, LocalEtcdConfig};
use berth::resource::observed::{ContainerPhase, ObservedContainer};
use berth::resource::{Assignment, Observed};
use etcd_client::{Client, EventType, GetOptions, PutOptions, WatchOptions};
use tokio_util::sync::CancellationToken;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// How long one phase may take (`BENCH_WAIT_SECS`, default 300).
fn wait() -> Duration {
    let secs = std::env::var("BENCH_WAIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    Duration::from_secs(secs)
}

/// A fake agent: registers a node on its own lease and answers every
/// assignment with an observed document of that many ready containers.
struct SimulatedAgent {
    lease: i64,
    stop: CancellationToken,
}

fn node_doc(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "berth/v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {"address": "127.0.0.1", "labels": {"sim": "true"},
                   "conditions": [{"type": "Ready", "status": "True"}]}
    })
    .to_string()
}

/// What a simulated node reports for `a`: every asked container, ready.
fn observed(node: &str, a: &Assignment) -> Observed {
    let containers = a
        .revisions
        .iter()
        .flat_map(|r| (0..r.replicas).map(move |i| (r, i)))
        .map(|(r, i)| ObservedContainer {
            id: format!("{node}-{}-{i}", r.hash),
            name: format!("sim-{i}"),
            revision: r.revision,
            hash: r.hash.clone(),
            phase: ContainerPhase::Ready,
            ..Default::default()
        })
        .collect();
    Observed {
        node: node.to_string(),
        generation: a.generation,
        revision: a.newest().map_or(0, |r| r.revision),
        containers,
        ..Default::default()
    }
}

impl SimulatedAgent {
    async fn start(client: Client, root: &str, name: &str) -> SimulatedAgent {
        let mut c = client.clone();
        let lease = c.lease_grant(10, None).await.expect("lease").id();
        let opts = PutOptions::new().with_lease(lease);
        c.put(format!("{root}/nodes/{name}"), node_doc(name), Some(opts))
            .await
            .expect("register");
        let stop = CancellationToken::new();
        tokio::spawn(keep_alive(client.clone(), lease, stop.clone()));
        tokio::spawn(answer(
            client,
            root.to_string(),
            name.to_string(),
            lease,
            stop.clone(),
        ));
        SimulatedAgent { lease, stop }
    }
}

/// Renews the lease every 3 s, reading each answer: answers left unread
/// fill the shared connection's flow-control window, and then every stream
/// on it (the watches too) stalls.
async fn keep_alive(mut c: Client, lease: i64, stop: CancellationToken) {
    let Ok((mut keeper, mut stream)) = c.lease_keep_alive(lease).await else {
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3)) => {
                if keeper.keep_alive().await.is_err() { return }
                if !matches!(stream.message().await, Ok(Some(_))) { return }
            }
        }
    }
}

async fn answer(mut c: Client, root: String, name: String, lease: i64, stop: CancellationToken) {
    let prefix = format!("{root}/assignments/{name}/");
    let opts = WatchOptions::new().with_prefix();
    let Ok(mut stream) = c.watch(prefix.clone(), Some(opts)).await else {
        return;
    };
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return,
            m = stream.message() => m,
        };
        let Ok(Some(resp)) = msg else { return };
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let rest = key.trim_start_matches(&prefix);
            let okey = format!("{root}/observed/{name}/{rest}");
            if ev.event_type() == EventType::Delete {
                let _ = c.delete(okey, None).await;
                continue;
            }
            let Ok(a) = serde_json::from_slice::<Assignment>(kv.value()) else {
                continue;
            };
            let Ok(doc) = serde_json::to_vec(&observed(&name, &a)) else {
                continue;
            };
            let _ = c
                .put(okey, doc, Some(PutOptions::new().with_lease(lease)))
                .await;
        }
    }
}

/// The project and `components` components, in manifests of at most
/// 10,000 components each: one `berth apply` takes at most 20,000 documents
/// (`manifest::Limits`), so 50,000 go in several applies, as a user would.
fn manifests(components: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut m = String::from("apiVersion: berth/v1\nkind: Project\nmetadata: {name: s}\n");
    for i in 0..components {
        if i > 0 && i % 10_000 == 0 {
            out.push(std::mem::take(&mut m));
        }
        m.push_str(&format!(
            "---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: c{i}, project: s}}\n\
             spec: {{image: 'sim:1', placement: {{replicas: 3, nodeSelector: {{sim: 'true'}}}}}}\n"
        ));
    }
    out.push(m);
    out
}

fn apply(endpoint: &str, root: &str, yaml: &str) {
    let mut child = Command::new(BERTH)
        .args(["--etcd", endpoint, "--root", root, "apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("berth apply");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write");
    assert!(child.wait().expect("wait").success(), "apply failed");
}

/// Whether every component's status says 3 ready, on none of `lost`.
/// Read in pages of 1,000: 50,000 statuses exceed one 4 MB answer.
async fn all_ready(c: &Client, root: &str, components: usize, lost: &[String]) -> bool {
    let prefix = format!("{root}/status/component/s/");
    let end = format!("{root}/status/component/s0");
    let mut from = prefix.clone();
    let mut ok = 0;
    loop {
        let opts = GetOptions::new().with_range(end.clone()).with_limit(1000);
        let Ok(resp) = c.clone().get(from.clone(), Some(opts)).await else {
            return false;
        };
        for kv in resp.kvs() {
            let st: serde_json::Value = serde_json::from_slice(kv.value()).unwrap_or_default();
            let on_lost = lost.iter().any(|n| st["nodes"].get(n).is_some());
            if st["readyReplicas"] == 3 && !on_lost {
                ok += 1;
            } else {
                // One not ready is enough to say no.
                return false;
            }
        }
        match resp.kvs().last() {
            Some(kv) if resp.more() => {
                let mut next = kv.key().to_vec();
                next.push(0);
                from = String::from_utf8_lossy(&next).into_owned();
            }
            _ => break,
        }
    }
    ok == components
}

async fn until_ready(c: &Client, root: &str, components: usize, lost: &[String]) -> Duration {
    let start = Instant::now();
    while !all_ready(c, root, components, lost).await {
        assert!(
            start.elapsed() < wait(),
            "not all ready within {:?}",
            wait()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

/// CPU seconds (utime + stime) and peak RSS in MiB of a process.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm / 1024.0)
}

/// One gauge or counter from etcd's `/metrics`.
fn etcd_metric(port: u16, name: &str) -> f64 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0)
}

struct Row {
    nodes: usize,
    placed: Duration,
    replaced: Duration,
    cpu: f64,
    rss: f64,
    writes_per_s: f64,
    db_mib: f64,
}

async fn run_scale(etcd: &LocalEtcd, client: &Client, nodes: usize, components: usize) -> Row {
    let root = format!("/scale-{nodes}");
    let endpoint = etcd.endpoint();
    let mut coordinator: Child = Command::new(BERTH)
        .args([
            "--etcd",
            &endpoint,
            "--root",
            &root,
            "agent",
            "--node",
            "coordinator",
        ])
        .args(["--lease-ttl", "10s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("coordinator");
    let start = Instant::now();
    while client
        .clone()
        .get(format!("{root}/election/coordinator"), None)
        .await
        .map_or(true, |r| r.kvs().is_empty())
    {
        assert!(start.elapsed() < wait(), "no coordinator");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let names: Vec<String> = (0..nodes).map(|i| format!("sim-{i}")).collect();
    // One connection per 250 simulated agents: one HTTP/2 connection for
    // thousands of watches and lease streams would be the bottleneck, and
    // real agents each have their own.
    let mut conns = Vec::new();
    for _ in 0..nodes.div_ceil(250) {
        conns.push(
            Client::connect([endpoint.clone()], None)
                .await
                .expect("client"),
        );
    }
    let mut sims = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let c = conns[i % conns.len()].clone();
        sims.push(SimulatedAgent::start(c, &root, n).await);
    }
    let writes_before = etcd_metric(etcd.client_port(), "etcd_server_proposals_committed_total");
    let t0 = Instant::now();
    for m in manifests(components) {
        apply(&endpoint, &root, &m);
    }
    until_ready(client, &root, components, &[]).await;
    let placed = t0.elapsed();
    let lost: Vec<String> = names.iter().take(nodes / 10).cloned().collect();
    let t1 = Instant::now();
    for sim in sims.iter().take(nodes / 10) {
        sim.stop.cancel();
        let _ = client.clone().lease_revoke(sim.lease).await;
    }
    until_ready(client, &root, components, &lost).await;
    let replaced = t1.elapsed();
    let run_secs = t0.elapsed().as_secs_f64();
    let writes =
        etcd_metric(etcd.client_port(), "etcd_server_proposals_committed_total") - writes_before;
    let (cpu, rss) = usage(coordinator.id());
    let db =
        etcd_metric(etcd.client_port(), "etcd_mvcc_db_total_size_in_bytes") / (1024.0 * 1024.0);
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    for sim in &sims {
        sim.stop.cancel();
    }
    Row {
        nodes,
        placed,
        replaced,
        cpu,
        rss,
        writes_per_s: writes / run_secs,
        db_mib: db,
    }
}

#[tokio::main]
async fn main() {
    let scales: Vec<usize> = std::env::var("BENCH_SCALES")
        .unwrap_or_else(|_| "50,200,500".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let components: usize = std::env::var("BENCH_COMPONENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = LocalEtcdConfig::new(dir.path().join("etcd"));
    cfg.fast = true;
    let etcd = LocalEtcd::start(cfg).await.expect("etcd");
    // 2,000 statuses of about 600 bytes are well inside the 4 MB answer limit.
    let client = Client::connect([etcd.endpoint()], None)
        .await
        .expect("client");
    let mut rows = Vec::new();
    for n in scales {
        let row = run_scale(&etcd, &client, n, components).await;
        eprintln!(
            "{n} nodes: placed {:?}, re-placed {:?}",
            row.placed, row.replaced
        );
        rows.push(row);
    }
    println!("| simulated nodes | components × 3 | apply → all ready | 10% nodes lost → all ready again | coordinator CPU | coordinator peak RSS | etcd writes/s | etcd db |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {components} | {:.2} s | {:.2} s | {:.1} s | {:.0} MiB | {:.0} | {:.0} MiB |",
            r.nodes,
            r.placed.as_secs_f64(),
            r.replaced.as_secs_f64(),
            r.cpu,
            r.rss,
            r.writes_per_s,
            r.db_mib
        );
    }
}
