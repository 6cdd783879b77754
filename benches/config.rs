//! Config templating (issue 10 item 2), two numbers:
//! - render: one template over 1,000 endpoints (the lb's kind of loop), in
//!   process, median of `BENCH_RENDERS` (default 200) renders; target < 50 ms.
//! - reload: endpoint change → file re-rendered in the consumer's container
//!   and its reload hook run. One `berth agent` (the release binary) on a
//!   throwaway local etcd and the local Docker engine runs a consumer whose
//!   config lists the endpoints of `backends`; each run puts one more
//!   endpoint document of `backends` into etcd (the change) and times until
//!   the reload hook appended its line to a file on the host (a bind mount,
//!   polled every millisecond). `backends` has no spec, so nothing holds the
//!   render: the time is the default debounce (300 ms quiet) plus the watch,
//!   the copy into the container and the exec. Median of `BENCH_RUNS`
//!   (default 15); target < 500 ms.
//!
//! Run: `cargo bench --bench config` (prints Markdown rows for BENCHMARKS.md).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::docker::{BusyboxImage, Docker};
use berth::localetcd::{LocalEtcd, LocalEtcdConfig};
use berth::resource::component::Protocol;
use berth::resource::endpoint::{Endpoint, EndpointPort};
use berth::services::config::{render, Context};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const IMAGE: &str = "berth-bench/config:1";
const WAIT: Duration = Duration::from_secs(60);

const TEMPLATE: &str = "# {{ sources.backends.endpoints | length }} servers\n\
{% for e in sources.backends.endpoints -%}\n\
server {{ e.container[:12] }} {{ e.address }}:{{ e.hostPort }} check # {{ e.node }}\n\
{% endfor %}";

fn endpoint(i: usize) -> Endpoint {
    Endpoint {
        project: "p".into(),
        component: "backends".into(),
        node: format!("n{}", i % 10),
        container: format!("{i:064x}"),
        forward: Some(format!("127.0.0.{}:7946", 1 + i % 10)),
        ports: vec![EndpointPort {
            container: 8080,
            host: 30000 + (i % 30000) as u16,
            external: None,
            protocol: Protocol::Tcp,
        }],
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn render_bench() -> (Duration, Duration, Duration) {
    let eps: Vec<Endpoint> = (0..1000).map(endpoint).collect();
    let n = env_usize("BENCH_RENDERS", 200);
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        // The context is built per render, as the agent does.
        let ctx = Context::build("p", "lb", &["backends".to_string()], &eps);
        let out = render(TEMPLATE, &ctx).expect("render");
        times.push(start.elapsed());
        assert_eq!(
            out.lines().filter(|l| l.starts_with("server ")).count(),
            1000
        );
    }
    let (min, max) = (
        *times.iter().min().expect("runs"),
        *times.iter().max().expect("runs"),
    );
    (median(&mut times), min, max)
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn reload_bench() -> (Duration, Duration, Duration, usize) {
    let docker = Docker::connect(None).await.expect("docker");
    docker
        .build_busybox_image(&BusyboxImage::web(IMAGE, "bench"))
        .await
        .expect("image");
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    let reloads = out_dir.join("reloads");
    let mut cfg = LocalEtcdConfig::new(dir.path().join("etcd"));
    cfg.fast = true;
    let etcd = LocalEtcd::start(cfg).await.expect("etcd");
    let endpoint_url = etcd.endpoint();
    let root = format!("/bench-config-{}", std::process::id());
    let node = format!("cfg{}", std::process::id());
    let _agent = Agent(
        Command::new(BERTH)
            .args([
                "--etcd",
                &endpoint_url,
                "--root",
                &root,
                "agent",
                "--node",
                &node,
            ])
            .args(["--allow-bind", &out_dir.to_string_lossy()])
            .args(["--proxy-bind", "127.0.0.1", "--forward-port", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth agent"),
    );
    let manifest = format!(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: p}}\n---\n\
apiVersion: berth/v1\nkind: Component\nmetadata: {{name: lb, project: p}}\nspec:\n  image: {IMAGE}\n  \
command: [/bin/httpd, -f, -p, '8080', -h, /www]\n  termination: {{signals: [SIGKILL], gracePeriod: 1s}}\n  \
bindings: [{{host: {}, container: /out}}]\n  configs:\n  - path: /etc/lb.conf\n    sources: [backends]\n    \
template: {}\n    reload: {{exec: [/bin/sh, -c, 'echo r >> /out/reloads']}}\n",
        out_dir.display(),
        serde_json::to_string(TEMPLATE).expect("json")
    );
    let status = Command::new(BERTH)
        .args(["--etcd", &endpoint_url, "--root", &root, "apply", "-f", "-"])
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
    assert!(status.success(), "apply failed");
    let mut client = etcd_client::Client::connect([endpoint_url.as_str()], None)
        .await
        .expect("client");
    let count = || {
        std::fs::read_to_string(&reloads)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    // The container runs and its first reload happened (first endpoint).
    let put = |i: usize| {
        let e = endpoint(i);
        (
            format!("{root}/endpoints/p/backends/{}/{}", e.node, e.container),
            serde_json::to_vec(&e).expect("json"),
        )
    };
    let started = Instant::now();
    let mut i = 0;
    while count() == 0 {
        assert!(started.elapsed() < WAIT, "the consumer never reloaded");
        let (k, v) = put(i);
        client.put(k, v, None).await.expect("put");
        i += 1;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let runs = env_usize("BENCH_RUNS", 15);
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        // Quiet first: nothing pending from the last change.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let before = count();
        let (k, v) = put(i);
        i += 1;
        let t0 = Instant::now();
        client.put(k, v, None).await.expect("put");
        while count() == before {
            assert!(t0.elapsed() < WAIT, "run {run}: no reload");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let took = t0.elapsed();
        eprintln!("run {run}: {took:?}");
        times.push(took);
    }
    // Remove the consumer's containers (the agent was started without
    // --stop-containers-on-exit).
    let filters = berth::agent::executor::node_filters(&root, &node);
    drop(_agent);
    if let Ok(list) = docker.list(&filters).await {
        for c in list {
            let _ = docker.remove(&c.id).await;
        }
    }
    let (min, max) = (
        *times.iter().min().expect("runs"),
        *times.iter().max().expect("runs"),
    );
    (median(&mut times), min, max, runs)
}

#[tokio::main]
async fn main() {
    let (r_med, r_min, r_max) = render_bench();
    let (c_med, c_min, c_max, runs) = reload_bench().await;
    println!("| measure | median | min | max | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| template over 1,000 endpoints: render (context built + render) | {r_med:.2?} | {r_min:.2?} | {r_max:.2?} | < 50 ms |"
    );
    println!(
        "| endpoint change → file re-rendered in the container and reload hook run ({runs} runs) | {c_med:.0?} | {c_min:.0?} | {c_max:.0?} | < 500 ms |"
    );
}
