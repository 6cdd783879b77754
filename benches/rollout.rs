//! Rolling update across nodes (issue 8), berth against Docker Swarm in the
//! same run.
//!
//! berth: four `berth agent` processes (release binary, one Docker engine,
//! distinct node names) on a throwaway local etcd. One component of 20
//! replicas of a busybox httpd image with an HTTP ready check at a 1 s
//! interval, `maxUnavailable: 1`; it is updated to a second image and timed
//! from the `apply` until the coordinator's status says the rollout is
//! complete (every replica of the new revision available, nothing
//! draining). Runs with `maxSurge: 1` and `maxSurge: 25%`. Meanwhile the
//! bench polls every node's observed document every 20 ms and records when
//! each new container first shows and when it first shows ready, to say
//! where the time goes: container start → ready (the probe wait), and the
//! gaps between one container becoming ready and the next one showing
//! (pacing: the coordinator's decision, the assignment's trip to an agent,
//! and its `docker create`/`start`).
//!
//! Swarm: a single-node swarm (`docker swarm init --advertise-addr
//! 127.0.0.1`, left again afterwards if this bench made it) updates 20
//! replicas of the same two images with `--update-parallelism 1
//! --update-order start-first` and a health check running the same HTTP GET
//! (busybox wget) at a 1 s interval, timed from `docker service update` to
//! its return (`--detach=false` waits until the update converged).
//!
//! Under load (issue 9): one more berth run with `maxSurge: 1` while `wrk
//! -t2 -c32` (keep-alive) requests through the first node's proxy on the
//! component's external port (`protocol: http`): 10 s before the update for
//! the baseline p99, then from 2 s before the update until about 10 s after
//! it; failed requests are wrk's non-2xx answers plus its socket errors.
//!
//! Run: `hack/install-deps.sh --bench` (wrk), then `cargo bench --bench
//! rollout` (prints Markdown tables for BENCHMARKS.md). `BENCH_RUNS`
//! (default 3) runs of each; medians. `BENCH_SKIP_SWARM=1` skips Swarm,
//! `BENCH_SKIP_LOAD=1` the run under load.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::docker::build::BusyboxImage;
use berth::docker::Docker;
use berth::localetcd::{LocalEtcd, LocalEtcdConfig};
use berth::resource::observed::ContainerPhase;
use berth::resource::{ComponentStatus, Observed, RolloutPhase};
use etcd_client::{Client, GetOptions};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const IMAGE1: &str = "berth-bench/roll:1";
const IMAGE2: &str = "berth-bench/roll:2";
const REPLICAS: u32 = 20;
const AGENTS: usize = 4;
const PROJECT: &str = "bench";
const WAIT: Duration = Duration::from_secs(300);
/// The container's command, in berth and in Swarm: busybox httpd behind a
/// shell that stops it on SIGTERM. httpd alone is PID 1 and has no SIGTERM
/// handler, so the kernel drops the signal and every stop would last the
/// whole grace period (2 s) before SIGKILL, as with any app that ignores
/// SIGTERM. berth counts a stopping container against `maxSurge` until it
/// is gone, so that would add 2 s to each of its steps (measured: 26 s
/// instead of ~10 s); Swarm does not wait for old tasks to exit.
const SERVE: &str = "/bin/httpd -f -p 8080 -h /www & trap 'kill $!; exit 0' TERM; wait";

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        // SIGTERM first would stop the containers; the bench removes them
        // itself (by label) so a kill is enough and faster.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_agent(endpoint: &str, root: &str, node: &str, i: usize) -> Agent {
    let addr = format!("127.0.0.{}", i + 2);
    let child = Command::new(BERTH)
        .args(["--etcd", endpoint, "--root", root, "agent", "--node", node])
        .args(["--address", &addr, "--proxy-bind", &addr])
        .args(["--lease-ttl", "5s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth agent");
    Agent(child)
}

/// The bench component; `external` is its proxied port (HTTP mode, so a
/// keep-alive client's requests move off a draining container).
fn manifest(image: &str, surge: &str, external: u16) -> String {
    format!(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: {PROJECT}}}\n---\n\
apiVersion: berth/v1\nkind: Component\nmetadata: {{name: web, project: {PROJECT}}}\nspec:\n  image: {image}\n  \
command: [/bin/sh, -c, \"{SERVE}\"]\n  \
ports: [{{name: http, container: 8080, external: {external}, protocol: http}}]\n  \
placement: {{replicas: {REPLICAS}}}\n  \
readyChecks: [{{http: {{port: 8080, path: /}}, interval: 1s, timeout: 2s}}]\n  \
termination: {{signals: [SIGTERM], gracePeriod: 2s}}\n  \
rollout: {{maxUnavailable: 1, maxSurge: {surge}}}\n"
    )
}

fn berth_cli(endpoint: &str, root: &str, args: &[&str], stdin: &str) {
    use std::io::Write;
    let mut child = Command::new(BERTH)
        .args(["--etcd", endpoint, "--root", root])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write manifest");
    assert!(
        child.wait().expect("berth").success(),
        "berth {args:?} failed"
    );
}

async fn status(client: &Client, root: &str) -> Option<ComponentStatus> {
    let key = format!("{root}/status/component/{PROJECT}/web");
    let resp = client.clone().get(key, None).await.ok()?;
    let kv = resp.kvs().first()?;
    serde_json::from_slice(kv.value()).ok()
}

async fn observed(client: &Client, root: &str) -> Vec<Observed> {
    let prefix = format!("{root}/observed/");
    let Ok(resp) = client
        .clone()
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
    else {
        return Vec::new();
    };
    resp.kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect()
}

/// Every replica of `revision` available and nothing else left.
fn complete(st: &ComponentStatus, revision: u64) -> bool {
    let rollout_done = st
        .rollout
        .as_ref()
        .is_none_or(|r| r.revision == revision && r.phase == RolloutPhase::Complete);
    rollout_done
        && st.update_revision == Some(revision)
        && st.updated_replicas == REPLICAS
        && st.available_replicas == REPLICAS
        && st.current_replicas == REPLICAS
        && st.draining_replicas == 0
}

/// When each container of `revision` was first seen, and first seen ready.
#[derive(Default)]
struct Timeline {
    seen: BTreeMap<String, Instant>,
    ready: BTreeMap<String, Instant>,
}

impl Timeline {
    fn record(&mut self, docs: &[Observed], revision: u64, now: Instant) {
        for c in docs.iter().flat_map(|o| &o.containers) {
            if c.revision != revision {
                continue;
            }
            self.seen.entry(c.id.clone()).or_insert(now);
            if c.phase == ContainerPhase::Ready {
                self.ready.entry(c.id.clone()).or_insert(now);
            }
        }
    }

    /// Mean start → ready, and mean gap from a container ready to the next
    /// new container seen.
    fn split(&self) -> (Duration, Duration) {
        let waits: Vec<Duration> = self
            .ready
            .iter()
            .filter_map(|(id, r)| Some(r.saturating_duration_since(*self.seen.get(id)?)))
            .collect();
        let mut readies: Vec<Instant> = self.ready.values().copied().collect();
        readies.sort();
        let mut starts: Vec<Instant> = self.seen.values().copied().collect();
        starts.sort();
        let gaps: Vec<Duration> = starts
            .iter()
            .filter_map(|s| {
                let before = readies.iter().rev().find(|r| *r <= s)?;
                Some(s.saturating_duration_since(*before))
            })
            .collect();
        (mean(&waits), mean(&gaps))
    }
}

fn mean(v: &[Duration]) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.iter().sum::<Duration>() / v.len() as u32
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct BerthRun {
    total: Duration,
    probe_wait: Duration,
    pacing: Duration,
    /// With load: wrk before the update and during it.
    load: Option<(Wrk, Wrk)>,
}

/// What one `wrk -t2 -c32` run saw.
#[derive(Clone, Copy, Debug, Default)]
struct Wrk {
    requests: u64,
    /// Non-2xx answers plus socket errors (connect, read, write, timeout).
    failed: u64,
    p99: Duration,
}

/// `wrk -t2 -c32 -d{secs}s --latency` against `addr` (`host:port`).
fn wrk(addr: &str, secs: u64) -> Wrk {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{secs}s"), "--latency"])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("wrk (hack/install-deps.sh --bench)");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn parse_wrk(text: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in text.lines().map(str::trim) {
        if let Some((n, _)) = line.split_once(" requests in") {
            w.requests = n.parse().unwrap_or(0);
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.failed += n.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            w.failed += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = line.strip_prefix("99%") {
            w.p99 = wrk_duration(v.trim()).unwrap_or_default();
        }
    }
    w
}

/// wrk's latency format: `812.00us`, `1.23ms`, `2.01s`.
fn wrk_duration(v: &str) -> Option<Duration> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// Waits until the status says `revision` is complete.
async fn until_complete(client: &Client, root: &str, revision: u64) {
    let start = Instant::now();
    while !status(client, root)
        .await
        .is_some_and(|s| complete(&s, revision))
    {
        assert!(
            start.elapsed() < WAIT,
            "revision {revision} never completed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One berth rollout from IMAGE1 to IMAGE2 on a fresh root. With
/// `load_secs`, wrk requests through the first node's proxy for 10 s before
/// the update and for `load_secs` from 2 s before it.
async fn berth_run(
    endpoint: &str,
    client: &Client,
    run: usize,
    surge: &str,
    load_secs: Option<u64>,
) -> BerthRun {
    let root = format!(
        "/bench-roll-{}-{run}-{}{}",
        std::process::id(),
        surge.replace('%', "p"),
        if load_secs.is_some() { "-load" } else { "" }
    );
    let external = berth::localetcd::free_port().expect("a free port");
    let target = format!("127.0.0.2:{external}");
    let agents: Vec<Agent> = (0..AGENTS)
        .map(|i| spawn_agent(endpoint, &root, &format!("roll{run}-n{i}"), i))
        .collect();
    let apply = |image| {
        berth_cli(
            endpoint,
            &root,
            &["apply", "-f", "-"],
            &manifest(image, surge, external),
        )
    };
    apply(IMAGE1);
    until_complete(client, &root, 1).await;
    let before = load_secs.map(|_| wrk(&target, 10));
    let during = load_secs.map(|secs| {
        let target = target.clone();
        let t = std::thread::spawn(move || wrk(&target, secs));
        std::thread::sleep(Duration::from_secs(2));
        t
    });
    let mut timeline = Timeline::default();
    let start = Instant::now();
    apply(IMAGE2);
    let total = loop {
        let now = Instant::now();
        timeline.record(&observed(client, &root).await, 2, now);
        if status(client, &root).await.is_some_and(|s| complete(&s, 2)) {
            break start.elapsed();
        }
        assert!(start.elapsed() < WAIT, "the rollout never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let during = during.map(|t| t.join().expect("wrk thread"));
    drop(agents);
    remove_containers(&root);
    let (probe_wait, pacing) = timeline.split();
    BerthRun {
        total,
        probe_wait,
        pacing,
        load: before.zip(during),
    }
}

/// Removes the containers the agents of `root` made (killed agents leave them).
fn remove_containers(root: &str) {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label=berth.root={root}")])
        .output()
        .expect("docker ps");
    let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if !ids.is_empty() {
        let _ = Command::new("docker")
            .args(["rm", "-f"])
            .args(&ids)
            .stdout(Stdio::null())
            .status();
    }
}

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("docker");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// One Swarm update of 20 replicas from IMAGE1 to IMAGE2.
fn swarm_run(run: usize) -> Duration {
    let name = format!("berth-bench-roll-{run}");
    let health = "wget -q -O /dev/null http://127.0.0.1:8080/ || exit 1";
    let (ok, _) = docker(&[
        "service",
        "create",
        "--quiet",
        "--detach=false",
        "--name",
        &name,
        "--replicas",
        &REPLICAS.to_string(),
        "--no-resolve-image",
        "--health-cmd",
        health,
        "--health-interval",
        "1s",
        "--health-timeout",
        "2s",
        "--health-retries",
        "3",
        "--update-parallelism",
        "1",
        "--update-order",
        "start-first",
        "--stop-grace-period",
        "2s",
        IMAGE1,
        "/bin/sh",
        "-c",
        SERVE,
    ]);
    assert!(ok, "docker service create failed");
    let start = Instant::now();
    let (ok, _) = docker(&[
        "service",
        "update",
        "--quiet",
        "--detach=false",
        "--no-resolve-image",
        "--image",
        IMAGE2,
        &name,
    ]);
    let took = start.elapsed();
    assert!(ok, "docker service update failed");
    docker(&["service", "rm", &name]);
    took
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let docker_api = Docker::connect(None).await.expect("docker");
    for (tag, body) in [(IMAGE1, "v1"), (IMAGE2, "v2")] {
        docker_api
            .build_busybox_image(&BusyboxImage::web(tag, body))
            .await
            .expect("build the bench image");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = LocalEtcdConfig::new(dir.path().join("etcd"));
    cfg.fast = true;
    let etcd = LocalEtcd::start(cfg).await.expect("etcd");
    let endpoint = etcd.endpoint();
    let client = Client::connect([endpoint.clone()], None)
        .await
        .expect("etcd client");

    let mut rows = Vec::new();
    for surge in ["1", "25%"] {
        let mut totals = Vec::new();
        let mut probes = Vec::new();
        let mut pacing = Vec::new();
        for run in 0..runs {
            let r = berth_run(&endpoint, &client, run, surge, None).await;
            eprintln!(
                "berth maxSurge {surge} run {run}: {:.2?} (start→ready {:.2?}, ready→next start {:.2?})",
                r.total, r.probe_wait, r.pacing
            );
            totals.push(r.total);
            probes.push(r.probe_wait);
            pacing.push(r.pacing);
        }
        rows.push((
            format!("berth, maxSurge {surge}, maxUnavailable 1"),
            median(&mut totals),
            Some((median(&mut probes), median(&mut pacing))),
        ));
    }
    let load = if std::env::var_os("BENCH_SKIP_LOAD").is_none() {
        // Long enough to cover the update (its median without load + 10 s).
        let secs = rows[0].1.as_secs() + 12;
        let r = berth_run(&endpoint, &client, runs, "1", Some(secs)).await;
        eprintln!("berth under wrk -c32: {:.2?}, {:?}", r.total, r.load);
        r.load.map(|l| (l, r.total))
    } else {
        None
    };
    if std::env::var_os("BENCH_SKIP_SWARM").is_none() {
        let (_, state) = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let made = state != "active";
        if made {
            let (ok, _) = docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
            assert!(ok, "docker swarm init failed");
        }
        let mut totals = Vec::new();
        for run in 0..runs {
            let t = swarm_run(run);
            eprintln!("swarm run {run}: {t:.2?}");
            totals.push(t);
        }
        if made {
            docker(&["swarm", "leave", "--force"]);
        }
        rows.push((
            "Docker Swarm, parallelism 1, start-first".into(),
            median(&mut totals),
            None,
        ));
    }
    let swarm = rows.iter().find(|r| r.2.is_none()).map(|r| r.1);
    println!("| rollout of {REPLICAS} replicas over {AGENTS} agents | total (median of {runs}) | vs Swarm | start → ready | ready → next start |");
    println!("|---|---|---|---|---|");
    for (what, total, split) in &rows {
        let ratio = swarm.map_or("-".to_string(), |s| {
            format!("{:.2}x", total.as_secs_f64() / s.as_secs_f64())
        });
        let (probe, pace) = split.map_or(("-".into(), "-".into()), |(p, g)| {
            (format!("{p:.2?}"), format!("{g:.2?}"))
        });
        println!("| {what} | {total:.2?} | {ratio} | {probe} | {pace} |");
    }
    if let Some(((before, during), total)) = load {
        println!();
        println!("| berth, maxSurge 1, under `wrk -t2 -c32` through one node's proxy (HTTP mode) | requests | failed | p99 |");
        println!("|---|---|---|---|");
        println!(
            "| 10 s before the update | {} | {} | {:.2?} |",
            before.requests, before.failed, before.p99
        );
        println!(
            "| during the update ({total:.2?} of the run) | {} | {} | {:.2?} |",
            during.requests, during.failed, during.p99
        );
    }
}
