//! Agent benchmarks of issue 3, against a throwaway local etcd and the local
//! Docker engine. The agent runs as a `berth agent` child process (the release
//! binary), with a root and node name of its own, so its CPU and memory can be
//! read from `/proc/<pid>`.
//!
//! 1. `berth apply` (the real binary) of one component — busybox httpd from a
//!    local image, HTTP ready check on 8080, `interval: 1s` — until a client
//!    gets the first HTTP 200 on the container's published port (the port is
//!    read from `observed/<node>/<project>/<component>`). Baseline in the same
//!    run, interleaved: raw bollard create + start + first HTTP 200 of the same
//!    container config. Each step is timed from outside the agent too (etcd
//!    watch of the whole root, Docker events), so the overhead can be broken
//!    down without touching the agent.
//! 2. 50 components applied at once (one file) until all 50 answer HTTP 200,
//!    against raw create + start + first HTTP 200 of 50 containers with the
//!    agent's reconcile concurrency (`AgentConfig::default().concurrency`).
//! 3. The agent idle with those 50 containers (each with an HTTP health
//!    check every 5 s): CPU from `/proc/<pid>/stat` (utime + stime) over
//!    `BENCH_IDLE_SECS` seconds (default 60, one full resync period), RSS
//!    from `/proc/<pid>/status` (VmRSS, VmHWM).
//!
//! Every container carries the agent's root label or a bench label, and a
//! guard removes them all when the bench ends, panics or is interrupted
//! (Ctrl-C). Ports are published on 127.0.0.1 only.
//!
//! Run: `cargo bench --bench agent` (prints Markdown tables for BENCHMARKS.md).
//! With `RUST_LOG=berth=debug` the agent logs each step; the log path is printed.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth::agent::AgentConfig;
use berth::docker::{BusyboxImage, ContainerConfig, Docker};
use berth::resource::observed::ContainerPhase;
use berth::resource::Observed;
use futures::StreamExt;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const IMAGE: &str = "berth-bench/web:1";
const PROJECT: &str = "bench";
const PORT: u16 = 8080;
/// Timed runs of benchmark 1 (after one warm-up run of each side).
const SINGLE_RUNS: usize = 10;
/// Components of benchmark 2.
const MANY: usize = 50;
const MANY_RUNS: usize = 3;
/// How often the client polls for the first HTTP 200 (both sides alike).
const POLL: Duration = Duration::from_millis(5);
/// Label on the baseline's containers (value: the bench id).
const BENCH_LABEL: &str = "berth.bench";
/// Label naming one baseline container (what the board is keyed by).
const BENCH_NAME_LABEL: &str = "berth.bench.name";
const WAIT: Duration = Duration::from_secs(60);

/// Milliseconds since the bench's clock base, for every mark alike.
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
    base_unix_ns: i128,
}

impl Clock {
    fn new() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            base: Instant::now(),
            base_unix_ns: unix.as_nanos() as i128,
        }
    }
    fn now(&self) -> f64 {
        self.base.elapsed().as_secs_f64() * 1e3
    }
    /// A Docker event time (Unix ns, the engine's clock: the same host).
    fn at_unix_ns(&self, ns: i64) -> f64 {
        (ns as i128 - self.base_unix_ns) as f64 / 1e6
    }
}

/// When each step of one container's life was seen from outside (ms on the
/// [`Clock`]). Keyed by component name (berth) or bench name (baseline).
#[derive(Clone, Copy, Debug, Default)]
struct Marks {
    /// The CLI's spec write (etcd watch).
    spec: Option<f64>,
    /// The agent's `assignments/` write (etcd watch).
    assign: Option<f64>,
    /// Docker `create` and `start` events (engine time).
    create: Option<f64>,
    start: Option<f64>,
    /// First `observed/` document with the published port (etcd watch).
    port: Option<f64>,
    /// First HTTP 200 from the client.
    http200: Option<f64>,
    /// First `observed/` document with the container `ready` (etcd watch).
    ready: Option<f64>,
}

type Board = Arc<Mutex<HashMap<String, Marks>>>;

fn mark(board: &Board, name: &str, f: impl FnOnce(&mut Marks)) {
    let mut b = board.lock().unwrap_or_else(|e| e.into_inner());
    f(b.entry(name.to_string()).or_default());
}

fn marks(board: &Board, name: &str) -> Marks {
    let b = board.lock().unwrap_or_else(|e| e.into_inner());
    b.get(name).copied().unwrap_or_default()
}

fn set(slot: &mut Option<f64>, t: f64) {
    if slot.is_none() {
        *slot = Some(t);
    }
}

/// Polls `127.0.0.1:port/` every [`POLL`] until HTTP 200; marks `http200`.
fn spawn_http_poller(board: Board, clock: Clock, name: String, port: u16) {
    tokio::spawn(async move {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(200) = berth::checks::http::status(port, "/").await {
                let t = clock.now();
                mark(&board, &name, |m| set(&mut m.http200, t));
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    });
}

/// Records spec, assignment and observed writes under the agent's root.
async fn watch_etcd(
    mut client: etcd_client::Client,
    root: String,
    node: String,
    board: Board,
    clock: Clock,
) {
    let opts = etcd_client::WatchOptions::new().with_prefix();
    let mut stream = client
        .watch(format!("{root}/"), Some(opts))
        .await
        .expect("watch etcd");
    let spec = format!("{root}/specs/component/{PROJECT}/");
    let assign = format!("{root}/assignments/{node}/{PROJECT}/");
    let observed = format!("{root}/observed/{node}/{PROJECT}/");
    while let Ok(Some(resp)) = stream.message().await {
        let t = clock.now();
        for ev in resp.events() {
            if ev.event_type() != etcd_client::EventType::Put {
                continue;
            }
            let Some(kv) = ev.kv() else { continue };
            let key = String::from_utf8_lossy(kv.key()).to_string();
            if let Some(name) = key.strip_prefix(&spec) {
                mark(&board, name, |m| set(&mut m.spec, t));
            } else if let Some(name) = key.strip_prefix(&assign) {
                mark(&board, name, |m| set(&mut m.assign, t));
            } else if let Some(name) = key.strip_prefix(&observed) {
                let Ok(o) = serde_json::from_slice::<Observed>(kv.value()) else {
                    continue;
                };
                let port = o
                    .containers
                    .iter()
                    .find_map(|c| c.ports.get(&PORT).copied());
                let ready = o
                    .containers
                    .iter()
                    .any(|c| c.phase == ContainerPhase::Ready);
                let before = marks(&board, name);
                if let (Some(p), None) = (port, before.port) {
                    mark(&board, name, |m| set(&mut m.port, t));
                    spawn_http_poller(board.clone(), clock, name.to_string(), p);
                }
                if ready {
                    mark(&board, name, |m| set(&mut m.ready, t));
                }
            }
        }
    }
}

/// Records Docker `create`/`start` events of containers with `label`,
/// naming each by the value of its label `name_label`.
fn watch_docker(
    docker: &Docker,
    since: i64,
    label: (String, String),
    name_label: &'static str,
    board: Board,
    clock: Clock,
) {
    let stream = docker.events(Some(since), &[label]);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(ev)) = stream.next().await {
            let Some(name) = ev.labels.get(name_label) else {
                continue;
            };
            let t = clock.at_unix_ns(ev.time_nano);
            match ev.action.as_str() {
                "create" => mark(&board, name, |m| set(&mut m.create, t)),
                "start" => mark(&board, name, |m| set(&mut m.start, t)),
                _ => {}
            }
        }
    });
}

/// Waits until `done` holds for the marks of every name; panics after [`WAIT`].
async fn wait_marks(board: &Board, names: &[String], done: impl Fn(&Marks) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let all = {
            let b = board.lock().unwrap_or_else(|e| e.into_inner());
            names.iter().all(|n| b.get(n).is_some_and(&done))
        };
        if all {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not done within {WAIT:?}: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Kills the agent and removes every container of the bench when dropped
/// (end, panic or Ctrl-C alike).
struct Cleanup {
    filters: Vec<Vec<(String, String)>>,
    agent: Option<Child>,
}

async fn remove_all(docker: &Docker, filters: &[Vec<(String, String)>]) {
    for f in filters {
        if let Ok(list) = docker.list(f).await {
            let removals = list.iter().map(|c| docker.remove(&c.id));
            futures::future::join_all(removals).await;
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
        let filters = self.filters.clone();
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(d) = Docker::connect(None).await {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(120), remove_all(&d, &filters))
                            .await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

fn component_yaml(name: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Component\nmetadata:\n  name: {name}\n  project: {PROJECT}\nspec:\n  image: {IMAGE}\n  command: [\"/bin/httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n  ports: [{{name: http, container: {PORT}}}]\n  placement: {{replicas: 1}}\n  readyChecks: [{{http: {{port: {PORT}, path: /}}, interval: 1s, timeout: 2s}}]\n  healthChecks: [{{http: {{port: {PORT}, path: /}}, interval: 5s, timeout: 2s, failureThreshold: 3}}]\n  termination: {{signals: [SIGKILL], gracePeriod: 1s, drainTimeout: 1s}}\n"
    )
}

fn manifest(names: &[String]) -> String {
    let mut s = format!("apiVersion: berth/v1\nkind: Project\nmetadata:\n  name: {PROJECT}\n");
    for n in names {
        s.push_str(&component_yaml(n));
    }
    s
}

/// The baseline's container: what the agent creates for the component above
/// (same image, command, port published on 127.0.0.1), with bench labels.
fn raw_config(id: &str, name: &str) -> ContainerConfig {
    ContainerConfig {
        name: format!("berth-bench-{id}-{name}"),
        image: IMAGE.into(),
        command: ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
            .map(String::from)
            .to_vec(),
        ports: vec![PORT],
        labels: BTreeMap::from([
            (BENCH_LABEL.to_string(), id.to_string()),
            (BENCH_NAME_LABEL.to_string(), name.to_string()),
        ]),
        ..Default::default()
    }
}

/// Runs the release binary to completion; panics on failure.
async fn berth_cli(endpoint: &str, root: &str, args: &[&str]) {
    let out = tokio::process::Command::new(BERTH)
        .args(["--etcd", endpoint, "--root", root])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("spawn berth");
    assert!(
        out.status.success(),
        "berth {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until Docker has no container matching `filter`.
async fn wait_gone(docker: &Docker, filter: &[(String, String)]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let n = docker.list(filter).await.map(|l| l.len()).unwrap_or(1);
        if n == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{n} containers still there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of `pid`, in clock ticks.
fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the `(comm)`, which may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

struct Bench {
    docker: Docker,
    clock: Clock,
    board: Board,
    endpoint: String,
    root: String,
    node: String,
    id: String,
    dir: std::path::PathBuf,
    /// The agent's pid and HTTP port, once it runs.
    agent: std::sync::OnceLock<(u32, u16)>,
}

impl Bench {
    /// Applies `names` in one file, waits until every one answers HTTP 200
    /// and is `ready` in observed. Returns the start time and the apply
    /// process' exit time.
    async fn berth_apply(&self, file_name: &str, names: &[String]) -> (f64, f64) {
        let file = self.dir.join(file_name);
        std::fs::write(&file, manifest(names)).expect("write manifest");
        let file = file.to_string_lossy().to_string();
        let t0 = self.clock.now();
        berth_cli(&self.endpoint, &self.root, &["apply", "-f", &file]).await;
        let exited = self.clock.now();
        wait_marks(&self.board, names, |m| {
            m.http200.is_some() && m.ready.is_some()
        })
        .await;
        (t0, exited)
    }

    async fn berth_delete(&self, file_name: &str) {
        let file = self.dir.join(file_name).to_string_lossy().to_string();
        berth_cli(&self.endpoint, &self.root, &["delete", "-f", &file]).await;
        wait_gone(
            &self.docker,
            &[("berth.root".to_string(), self.root.clone())],
        )
        .await;
    }

    /// Raw create + start (`parallel` at once) + first HTTP 200 of `names`;
    /// returns the start time and when every create + start had returned.
    async fn raw(&self, names: &[String], parallel: usize) -> (f64, f64) {
        let t0 = self.clock.now();
        let starts = futures::stream::iter(names.iter().cloned())
            .map(|name| {
                let docker = self.docker.clone();
                let cfg = raw_config(&self.id, &name);
                let board = self.board.clone();
                let clock = self.clock;
                async move {
                    let started = docker.create_and_start(&cfg).await.expect("raw start");
                    let port = started.ports[&PORT];
                    spawn_http_poller(board, clock, name, port);
                    started.id
                }
            })
            .buffer_unordered(parallel)
            .collect::<Vec<_>>()
            .await;
        let started = self.clock.now();
        wait_marks(&self.board, names, |m| m.http200.is_some()).await;
        let removals = futures::stream::iter(starts)
            .map(|id| {
                let docker = self.docker.clone();
                async move { docker.remove(&id).await.expect("remove") }
            })
            .buffer_unordered(parallel)
            .collect::<Vec<_>>();
        removals.await;
        (t0, started)
    }
}

/// The latest of one mark over `names`, after `t0`.
fn latest(board: &Board, names: &[String], t0: f64, f: fn(&Marks) -> Option<f64>) -> f64 {
    names
        .iter()
        .filter_map(|n| f(&marks(board, n)))
        .fold(f64::NAN, f64::max)
        - t0
}

/// The earliest of one mark over `names`, after `t0`.
fn earliest(board: &Board, names: &[String], t0: f64, f: fn(&Marks) -> Option<f64>) -> f64 {
    names
        .iter()
        .filter_map(|n| f(&marks(board, n)))
        .fold(f64::NAN, f64::min)
        - t0
}

/// One run of benchmark 2, in ms after its start.
#[derive(Clone, Copy)]
struct ManyRun {
    /// Every container answered HTTP 200.
    all_200: f64,
    /// berth: every component `ready` in observed; raw: every create +
    /// start call returned.
    all_done: f64,
    /// The first Docker `create` event.
    first_create: f64,
    /// The last Docker `start` event.
    last_start: f64,
    /// The agent's CPU time (s) and counters during the run (berth only).
    agent: AgentUse,
}

/// What the agent spent during one run: deltas of `/proc/<pid>/stat` and of
/// its `/metrics` counters.
#[derive(Clone, Copy)]
struct AgentUse {
    cpu_s: f64,
    reconciles: f64,
    observed_writes: f64,
    docker_events: f64,
    ready_probe_failures: f64,
}

impl AgentUse {
    const NONE: AgentUse = AgentUse {
        cpu_s: f64::NAN,
        reconciles: f64::NAN,
        observed_writes: f64::NAN,
        docker_events: f64::NAN,
        ready_probe_failures: f64::NAN,
    };

    /// A snapshot (totals so far).
    async fn now(pid: u32, http_port: u16) -> AgentUse {
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let m = agent_metrics(http_port).await;
        let get = |k: &str| m.get(k).copied().unwrap_or(f64::NAN);
        AgentUse {
            cpu_s: proc_cpu_ticks(pid).map_or(f64::NAN, |t| t as f64 / tck),
            reconciles: get("berth_agent_reconciles_total"),
            observed_writes: get("berth_agent_observed_writes_total"),
            docker_events: get("berth_agent_docker_events_total"),
            ready_probe_failures: get("berth_agent_check_failures_total{kind=\"ready\"}"),
        }
    }

    fn since(&self, before: &AgentUse) -> AgentUse {
        AgentUse {
            cpu_s: self.cpu_s - before.cpu_s,
            reconciles: self.reconciles - before.reconciles,
            observed_writes: self.observed_writes - before.observed_writes,
            docker_events: self.docker_events - before.docker_events,
            ready_probe_failures: self.ready_probe_failures - before.ready_probe_failures,
        }
    }
}

/// The agent's Prometheus counters: `name{labels}` -> value.
async fn agent_metrics(port: u16) -> HashMap<String, f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = HashMap::new();
    let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return out;
    };
    let req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut body = String::new();
    if conn.write_all(req.as_bytes()).await.is_err()
        || conn.read_to_string(&mut body).await.is_err()
    {
        return out;
    }
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        if let Some((k, v)) = line.rsplit_once(' ') {
            if let Ok(v) = v.parse() {
                out.insert(k.to_string(), v);
            }
        }
    }
    out
}

/// One measure of a [`ManyRun`].
type ManyStep = fn(&ManyRun) -> f64;

impl ManyRun {
    fn of(board: &Board, names: &[String], t0: f64, all_done: f64, agent: AgentUse) -> ManyRun {
        ManyRun {
            all_200: latest(board, names, t0, |m| m.http200),
            all_done,
            first_create: earliest(board, names, t0, |m| m.create),
            last_start: latest(board, names, t0, |m| m.start),
            agent,
        }
    }
}

impl Bench {
    /// One raw run of benchmark 1: (start, create + start returned, marks).
    async fn single_raw(&self, i: usize) -> (f64, f64, Marks) {
        let name = format!("raw{i}");
        let (t0, returned) = self.raw(std::slice::from_ref(&name), 1).await;
        (t0, returned, marks(&self.board, &name))
    }

    /// One berth run of benchmark 1: (start, apply exited, marks); the
    /// component is deleted again and its container gone on return.
    async fn single_berth(&self, i: usize) -> (f64, f64, Marks) {
        let name = format!("web{i}");
        let file = format!("one{i}.yaml");
        let (t0, exited) = self.berth_apply(&file, std::slice::from_ref(&name)).await;
        self.berth_delete(&file).await;
        (t0, exited, marks(&self.board, &name))
    }

    /// One raw run of benchmark 2: (all answered HTTP 200, all started), ms
    /// after the start; the containers are gone on return.
    async fn many_raw(&self, r: usize, parallel: usize) -> ManyRun {
        let names: Vec<String> = (0..MANY).map(|i| format!("raw-m{r}-{i}")).collect();
        let (t0, started) = self.raw(&names, parallel).await;
        let filter = [(BENCH_LABEL.to_string(), self.id.clone())];
        wait_gone(&self.docker, &filter).await;
        ManyRun::of(&self.board, &names, t0, started - t0, AgentUse::NONE)
    }

    /// One berth run of benchmark 2 (`all_done`: all observed ready).
    async fn many_berth(&self, r: usize, delete: bool) -> ManyRun {
        let names: Vec<String> = (0..MANY).map(|i| format!("m{r}-{i}")).collect();
        let file = format!("many{r}.yaml");
        let (pid, port) = *self.agent.get().expect("the agent runs");
        let before = AgentUse::now(pid, port).await;
        let (t0, _) = self.berth_apply(&file, &names).await;
        let used = AgentUse::now(pid, port).await.since(&before);
        let ready = latest(&self.board, &names, t0, |m| m.ready);
        let run = ManyRun::of(&self.board, &names, t0, ready, used);
        if delete {
            self.berth_delete(&file).await;
        }
        run
    }
}

fn fmt_ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.0} ms")
    } else {
        "–".into()
    }
}

/// Milliseconds for steps, plain numbers for rows that say what they are.
fn fmt_num(x: f64, what: &str) -> String {
    if !x.is_finite() {
        "–".into()
    } else if what.ends_with(')') || what.contains('%') {
        format!("{x:.1}")
    } else {
        fmt_ms(x)
    }
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

#[tokio::main]
async fn main() {
    let docker = Docker::connect(None)
        .await
        .expect("a Docker engine (start dockerd or set DOCKER_HOST)");
    docker
        .build_busybox_image(&BusyboxImage::web(IMAGE, "bench"))
        .await
        .expect("build the bench image");
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = berth::localetcd::LocalEtcd::start(berth::localetcd::LocalEtcdConfig::new(
        dir.path().join("etcd"),
    ))
    .await
    .expect("start etcd (run hack/install-deps.sh)");
    let id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let root = format!("/bench-{id}");
    let node = format!("bench-{id}");
    let mut cleanup = Cleanup {
        filters: vec![
            vec![("berth.root".to_string(), root.clone())],
            vec![(BENCH_LABEL.to_string(), id.clone())],
        ],
        agent: None,
    };
    let bench = Bench {
        docker: docker.clone(),
        clock: Clock::new(),
        board: Arc::new(Mutex::new(HashMap::new())),
        endpoint: etcd.endpoint(),
        root,
        node,
        id,
        dir: dir.path().to_path_buf(),
        agent: std::sync::OnceLock::new(),
    };
    tokio::select! {
        _ = run(&bench, &mut cleanup) => {}
        _ = tokio::signal::ctrl_c() => eprintln!("interrupted: cleaning up"),
    }
    drop(cleanup);
    drop(etcd);
}

async fn run(b: &Bench, cleanup: &mut Cleanup) {
    let load_start = loadavg();
    let engine = b.docker.version().await.map(|v| v.0).unwrap_or_default();
    let storage = b
        .docker
        .bollard()
        .info()
        .await
        .ok()
        .and_then(|i| i.driver)
        .unwrap_or_default();
    let etcd_version = Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.trim_start_matches("etcd Version: ").to_string())
        })
        .unwrap_or_default();
    let since = b.docker.engine_now().await;
    watch_docker(
        &b.docker,
        since,
        ("berth.root".to_string(), b.root.clone()),
        "berth.component",
        b.board.clone(),
        b.clock,
    );
    watch_docker(
        &b.docker,
        since,
        (BENCH_LABEL.to_string(), b.id.clone()),
        BENCH_NAME_LABEL,
        b.board.clone(),
        b.clock,
    );
    let client = etcd_client::Client::connect([b.endpoint.clone()], None)
        .await
        .expect("connect etcd");
    tokio::spawn(watch_etcd(
        client,
        b.root.clone(),
        b.node.clone(),
        b.board.clone(),
        b.clock,
    ));

    // The agent: a child process of the release binary.
    let http_port = free_port();
    let log_path = std::env::temp_dir().join(format!("berth-bench-agent-{}.log", b.id));
    let log = std::fs::File::create(&log_path).expect("agent log");
    let agent = Command::new(BERTH)
        .args(["--etcd", &b.endpoint, "--root", &b.root, "agent"])
        .args(["--node", &b.node, "--address", "127.0.0.1"])
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn berth agent");
    let pid = agent.id();
    cleanup.agent = Some(agent);
    let _ = b.agent.set((pid, http_port));
    let deadline = Instant::now() + WAIT;
    while berth::checks::http::status(http_port, "/readyz").await != Ok(200) {
        assert!(Instant::now() < deadline, "the agent never got ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let concurrency = AgentConfig::default().concurrency;
    eprintln!(
        "agent pid {pid}, root {}, node {}, log {} (RUST_LOG={})",
        b.root,
        b.node,
        log_path.display(),
        std::env::var("RUST_LOG").unwrap_or_else(|_| "unset: info".into())
    );

    // 1. apply -> ready, interleaved with the raw baseline; run 0 warms up.
    let mut berth_runs: Vec<(f64, f64, Marks)> = Vec::new();
    let mut raw_runs: Vec<(f64, f64, Marks)> = Vec::new();
    for i in 0..=SINGLE_RUNS {
        // Alternate which side goes first, so neither always follows the
        // other's clean-up.
        let (raw, berth) = if i % 2 == 0 {
            let raw = b.single_raw(i).await;
            (raw, b.single_berth(i).await)
        } else {
            let berth = b.single_berth(i).await;
            (b.single_raw(i).await, berth)
        };
        eprintln!(
            "run {i}: raw {:.0} ms, berth {:.0} ms",
            raw.2.http200.unwrap_or(f64::NAN) - raw.0,
            berth.2.http200.unwrap_or(f64::NAN) - berth.0
        );
        if i > 0 {
            raw_runs.push(raw);
            berth_runs.push(berth);
        }
    }
    let rel = |runs: &[(f64, f64, Marks)], f: &dyn Fn(&Marks) -> Option<f64>| -> f64 {
        median(
            &runs
                .iter()
                .map(|(t0, _, m)| f(m).map_or(f64::NAN, |t| t - t0))
                .collect::<Vec<_>>(),
        )
    };
    let berth_200 = rel(&berth_runs, &|m| m.http200);
    let raw_200 = rel(&raw_runs, &|m| m.http200);
    let berth_ready = rel(&berth_runs, &|m| m.ready);
    let overhead = berth_200 - raw_200;
    // Runs are interleaved (raw i, then berth i): the median of the paired
    // differences is less sensitive to the machine's load drifting.
    let paired = median(
        &berth_runs
            .iter()
            .zip(&raw_runs)
            .map(
                |((b0, _, bm), (r0, _, rm))| match (bm.http200, rm.http200) {
                    (Some(b), Some(r)) => (b - b0) - (r - r0),
                    _ => f64::NAN,
                },
            )
            .collect::<Vec<_>>(),
    );
    let step = |from: &dyn Fn(&Marks) -> Option<f64>, to: &dyn Fn(&Marks) -> Option<f64>| {
        median(
            &berth_runs
                .iter()
                .map(|(_, _, m)| match (from(m), to(m)) {
                    (Some(a), Some(b)) => b - a,
                    _ => f64::NAN,
                })
                .collect::<Vec<_>>(),
        )
    };
    let raw_step = |from: &dyn Fn(&Marks) -> Option<f64>, to: &dyn Fn(&Marks) -> Option<f64>| {
        median(
            &raw_runs
                .iter()
                .map(|(_, _, m)| match (from(m), to(m)) {
                    (Some(a), Some(b)) => b - a,
                    _ => f64::NAN,
                })
                .collect::<Vec<_>>(),
        )
    };
    // berth's own steps: everything but Docker's create and start and the
    // client's poll, which the baseline pays too.
    let own = rel(&berth_runs, &|m| m.spec)
        + step(&|m| m.spec, &|m| m.assign)
        + (step(&|m| m.assign, &|m| m.create) - rel(&raw_runs, &|m| m.create))
        + (step(&|m| m.start, &|m| m.http200) - raw_step(&|m| m.start, &|m| m.http200));
    let nan = f64::NAN;
    let breakdown = [
        (
            "apply spawned → spec written (CLI start, connect, txn)",
            rel(&berth_runs, &|m| m.spec),
            nan,
        ),
        (
            "spec written → assignment written (coordinator)",
            step(&|m| m.spec, &|m| m.assign),
            nan,
        ),
        (
            "assignment → Docker `create` event (raw: create called → event)",
            step(&|m| m.assign, &|m| m.create),
            rel(&raw_runs, &|m| m.create),
        ),
        (
            "Docker `create` event → `start` event",
            step(&|m| m.create, &|m| m.start),
            raw_step(&|m| m.create, &|m| m.start),
        ),
        (
            "`start` event → first observed document with the port",
            step(&|m| m.start, &|m| m.port),
            nan,
        ),
        (
            "`start` event → client's first HTTP 200",
            step(&|m| m.start, &|m| m.http200),
            raw_step(&|m| m.start, &|m| m.http200),
        ),
        (
            "`start` event → observed `ready`",
            step(&|m| m.start, &|m| m.ready),
            nan,
        ),
        (
            "apply process exit (raw: create + start returned)",
            median(
                &berth_runs
                    .iter()
                    .map(|(t0, e, _)| e - t0)
                    .collect::<Vec<_>>(),
            ),
            median(&raw_runs.iter().map(|(t0, e, _)| e - t0).collect::<Vec<_>>()),
        ),
    ];

    // 2. 50 components, interleaved with the raw baseline (same parallelism).
    let mut berth_many: Vec<ManyRun> = Vec::new();
    let mut raw_many: Vec<ManyRun> = Vec::new();
    for r in 0..MANY_RUNS {
        // Alternate the order; the last berth run stays up for the idle test.
        let last = r + 1 == MANY_RUNS;
        let (raw, berth) = if r % 2 == 0 || last {
            let raw = b.many_raw(r, concurrency).await;
            (raw, b.many_berth(r, !last).await)
        } else {
            let berth = b.many_berth(r, true).await;
            (b.many_raw(r, concurrency).await, berth)
        };
        eprintln!(
            "50 run {r}: raw {:.0} ms, berth {:.0} ms (observed ready {:.0} ms)",
            raw.all_200, berth.all_200, berth.all_done
        );
        raw_many.push(raw);
        berth_many.push(berth);
    }
    let med =
        |runs: &[ManyRun], f: fn(&ManyRun) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());

    // 3. Idle with the last 50 containers (and their health checks).
    let idle_secs: u64 = std::env::var("BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    tokio::time::sleep(Duration::from_secs(6)).await;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let c0 = proc_cpu_ticks(pid).expect("agent cpu");
    let w0 = Instant::now();
    let mut rss_max = 0;
    for _ in 0..idle_secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(proc_status(pid, "VmRSS:").unwrap_or(0));
    }
    let c1 = proc_cpu_ticks(pid).expect("agent cpu");
    let cpu = (c1 - c0) as f64 / tck / w0.elapsed().as_secs_f64() * 100.0;
    let rss = proc_status(pid, "VmRSS:").unwrap_or(0) as f64 / 1024.0;
    let hwm = proc_status(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    let rss_max = rss_max as f64 / 1024.0;
    let threads = proc_status(pid, "Threads:").unwrap_or(0);
    const FORTY_MB: f64 = 40e6 / 1048576.0;

    // Clean up through berth, then stop the agent with SIGTERM.
    let t = Instant::now();
    b.berth_delete(&format!("many{}.yaml", MANY_RUNS - 1)).await;
    let delete_50 = t.elapsed();
    if let Some(mut agent) = cleanup.agent.take() {
        // SAFETY: plain libc call on our own child's pid.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while agent.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = agent.kill();
        let _ = agent.wait();
    }
    let load_end = loadavg();

    let bm = med(&berth_many, |r| r.all_200);
    let rm = med(&raw_many, |r| r.all_200);
    println!(
        "| benchmark | berth (median) | baseline (median, same run) | ratio / overhead | target | met? |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| `berth apply` → first HTTP 200, 1 component ({SINGLE_RUNS} runs) | {} | raw create + start + first HTTP 200: {} | {:+.0} ms ({:.2}x); paired runs: {:+.0} ms; berth's own steps: {:.0} ms | < 500 ms, overhead < 100 ms | {} |",
        fmt_ms(berth_200),
        fmt_ms(raw_200),
        overhead,
        berth_200 / raw_200,
        paired,
        own,
        yes(berth_200 < 500.0 && overhead < 100.0)
    );
    println!(
        "| `berth apply` → observed `ready`, 1 component | {} | | | | |",
        fmt_ms(berth_ready)
    );
    println!(
        "| {MANY} components at once → all answer HTTP 200 ({MANY_RUNS} runs) | {} (observed all ready: {}) | raw, {concurrency} at once: {} (all started: {}) | {:.2}x | ≤ 1.2x | {} |",
        fmt_ms(bm),
        fmt_ms(med(&berth_many, |r| r.all_done)),
        fmt_ms(rm),
        fmt_ms(med(&raw_many, |r| r.all_done)),
        bm / rm,
        yes(bm / rm <= 1.2)
    );
    println!(
        "| idle agent, {MANY} containers, CPU over {idle_secs} s | {cpu:.2}% of one core | | | < 1% | {} |",
        yes(cpu < 1.0)
    );
    println!(
        "| idle agent, {MANY} containers, memory | VmRSS {rss:.1} MiB (max during idle {rss_max:.1} MiB), VmHWM {hwm:.1} MiB, {threads} threads | | | < 40 MB (38.1 MiB) | {} |",
        yes(rss_max < FORTY_MB && hwm < FORTY_MB)
    );
    println!();
    println!("Where the time goes, 1 component (medians over {SINGLE_RUNS} runs, seen from outside the agent: etcd watch of the root, Docker events):");
    println!();
    println!("| step | berth | raw baseline |");
    println!("|---|---|---|");
    for (what, berth, raw) in &breakdown {
        println!("| {what} | {} | {} |", fmt_ms(*berth), fmt_ms(*raw));
    }
    println!();
    println!("Where the time goes, {MANY} components (medians over {MANY_RUNS} runs):");
    println!();
    println!("| step | berth | raw baseline |");
    println!("|---|---|---|");
    let rows: [(&str, ManyStep); 9] = [
        ("start → first Docker `create` event", |r| r.first_create),
        ("start → last Docker `start` event", |r| r.last_start),
        ("last `start` event → all answer HTTP 200", |r| {
            r.all_200 - r.last_start
        }),
        ("agent CPU time during the run (ms)", |r| {
            r.agent.cpu_s * 1e3
        }),
        ("agent CPU, % of one core over the run", |r| {
            r.agent.cpu_s * 1e5 / r.all_200
        }),
        ("reconciles (count)", |r| r.agent.reconciles),
        ("observed documents written (count)", |r| {
            r.agent.observed_writes
        }),
        ("Docker events handled (count)", |r| r.agent.docker_events),
        ("failed ready probes (count)", |r| {
            r.agent.ready_probe_failures
        }),
    ];
    for (what, f) in rows {
        println!(
            "| {what} | {} | {} |",
            fmt_num(med(&berth_many, f), what),
            fmt_num(med(&raw_many, f), what)
        );
    }
    println!();
    println!(
        "Other: deleting the {MANY} components until their containers are gone took {:.1} s. Load average at start {load_start}, at end {load_end}; {} cores; Docker {engine} ({storage}); etcd {etcd_version}.",
        delete_50.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    std::io::stdout().flush().ok();
}
