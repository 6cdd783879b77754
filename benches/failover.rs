//! Coordinator failover (issue 7): three `berth agent` processes (the release
//! binary) on a throwaway local etcd, lease TTL 3 s. Each run SIGKILLs the
//! agent that coordinates and measures, from the kill:
//! - until another agent holds `election/coordinator`;
//! - until the new coordinator has written its first component status
//!   (`status/component/...` naming it as `coordinator`).
//!
//! The killed agent is replaced by a fresh one (new node name) before the
//! next run. The component is `state: stopped`, so no container is started
//! and the numbers are berth's own.
//!
//! Run: `cargo bench --bench failover` (prints a Markdown table for
//! BENCHMARKS.md). `BENCH_RUNS` sets the runs (default 5).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::localetcd::{LocalEtcd, LocalEtcdConfig};
use etcd_client::Client;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const TTL_SECS: u64 = 3;
const WAIT: Duration = Duration::from_secs(30);

struct Agent {
    node: String,
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(endpoint: &str, root: &str, node: &str) -> Agent {
    let child = Command::new(BERTH)
        .args(["--etcd", endpoint, "--root", root, "agent", "--node", node])
        .args(["--lease-ttl", &format!("{TTL_SECS}s")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth agent");
    Agent {
        node: node.to_string(),
        child,
    }
}

async fn get(client: &Client, key: &str) -> Option<Vec<u8>> {
    let resp = client.clone().get(key, None).await.ok()?;
    resp.kvs().first().map(|kv| kv.value().to_vec())
}

/// Polls `check` every millisecond until it is true; the time it took.
async fn until(what: &str, since: Instant, mut check: impl AsyncFnMut() -> bool) -> Duration {
    while !check().await {
        assert!(since.elapsed() < WAIT, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    since.elapsed()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = LocalEtcdConfig::new(dir.path().join("etcd"));
    cfg.fast = true;
    let etcd = LocalEtcd::start(cfg).await.expect("etcd");
    let endpoint = etcd.endpoint();
    let root = "/bench-failover";
    let client = Client::connect([endpoint.as_str()], None)
        .await
        .expect("client");
    let mut agents: Vec<Agent> = (0..3)
        .map(|i| spawn(&endpoint, root, &format!("f{i}")))
        .collect();
    let manifest = "apiVersion: berth/v1\nkind: Project\nmetadata: {name: p}\n---\n\
        apiVersion: berth/v1\nkind: Component\nmetadata: {name: c, project: p}\n\
        spec: {image: none:1, state: stopped, placement: {replicas: 3}}\n";
    let out = Command::new(BERTH)
        .args(["--etcd", &endpoint, "--root", root, "apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(manifest.as_bytes())?;
            c.wait()
        })
        .expect("apply");
    assert!(out.success(), "apply failed");
    let election = format!("{root}/election/coordinator");
    let status = format!("{root}/status/component/p/c");
    let (mut elected, mut first_status) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let start = Instant::now();
        until("a coordinator's status", start, async || {
            get(&client, &status).await.is_some()
        })
        .await;
        let old =
            String::from_utf8(get(&client, &election).await.expect("coordinator")).expect("utf8");
        let i = agents.iter().position(|a| a.node == old).expect("ours");
        let killed = Instant::now();
        agents.remove(i); // SIGKILL
        let new = async || {
            get(&client, &election)
                .await
                .filter(|v| v != old.as_bytes())
        };
        elected.push(until("a new coordinator", killed, async || new().await.is_some()).await);
        let name = String::from_utf8(new().await.expect("new")).expect("utf8");
        let by_new = async || {
            get(&client, &status)
                .await
                .and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
                .is_some_and(|s| s["coordinator"] == name.as_str())
        };
        first_status.push(until("the new coordinator's status", killed, by_new).await);
        eprintln!(
            "run {run}: elected {:?}, first status {:?}",
            elected[run], first_status[run]
        );
        agents.push(spawn(&endpoint, root, &format!("f{}", 3 + run)));
    }
    println!("| coordinator killed → | median of {runs} | min | max | target |");
    println!("|---|---|---|---|---|");
    for (what, v) in [
        ("new coordinator elected", &mut elected),
        ("its first status written", &mut first_status),
    ] {
        let (min, max) = (
            *v.iter().min().expect("runs"),
            *v.iter().max().expect("runs"),
        );
        println!(
            "| {what} | {:.2} s | {:.2} s | {:.2} s | < {} s (TTL + 2 s) |",
            median(v).as_secs_f64(),
            min.as_secs_f64(),
            max.as_secs_f64(),
            TTL_SECS + 2
        );
    }
}
