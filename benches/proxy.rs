//! The traffic proxy (issue 9): throughput, latency, CPU per request and
//! memory per idle connection, through berth's proxy, through HAProxy and
//! direct to the same backend, in one run.
//!
//! Each proxy runs in a process of its own, so its CPU time (utime + stime
//! from /proc) divided by the requests it carried is its cost per request:
//! berth's proxy is this bench binary re-run with `BENCH_ROLE=proxy` (the
//! `berth::proxy` module, as the agent runs it, with one TCP and one HTTP
//! route), HAProxy 2.6 from Debian with the same two frontends. Backends:
//! - busybox httpd in a container (the test image), published on 127.0.0.1;
//! - a fast hyper server, this binary with `BENCH_ROLE=backend`.
//!
//! Load: `wrk -t2 -c32 -d10s --latency` (Debian's wrk) for throughput; for
//! latency an open-loop generator in this bench at 50% of the fast
//! backend's direct peak rate, latencies measured from each request's
//! scheduled send time (no coordinated omission); p99 of each path minus
//! the direct p99 is the added latency. Memory: the proxy's RSS before and
//! after 1,000 HTTP keep-alive connections that each made one request and
//! stay open.
//!
//! Run: `hack/install-deps.sh --bench` (wrk, haproxy), then
//! `cargo bench --bench proxy`. `BENCH_SECS`
//! (default 10) sets each load's length; `BENCH_LATENCY_RATE` the open-loop
//! rate (default: 50% of the fast backend's direct peak);
//! `BENCH_FAST_ONLY=1` skips the busybox backend, `BENCH_BUSYBOX_ONLY=1`
//! the fast one. berth's proxy dials the busybox container inside its
//! network namespace (`proxy::dial`), as the agent does; `BENCH_NETNS=0`
//! makes it use the published port (docker-proxy) instead, as agents did
//! before `proxy::dial`. `BENCH_PROXY_THREADS` is the agent's
//! `--proxy-threads` (default 1). `BENCH_LATENCY_ONLY=1` (with
//! `BENCH_LATENCY_RATE`) skips the wrk rows.
//! `BENCH_PIN=1` pins the proxies to CPU 1 and the load and the fast
//! backend to CPU 0 (see [`Cpu`]).

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::docker::build::BusyboxImage;
use berth::docker::Docker;
use berth::proxy::dial::PidLookup;
use berth::proxy::metrics::ProxyMetrics;
use berth::proxy::routes::{Backend, Route, Routes};
use berth::proxy::{Proxy, ProxyConfig, ProxyRuntime};
use berth::resource::component::Protocol;
use berth::resource::ComponentKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IMAGE: &str = "berth-bench/roll:1";

fn free_port() -> u16 {
    berth::localetcd::free_port().expect("a free port")
}

fn secs() -> u64 {
    std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// Re-runs this binary in `role`, waiting for its first stdout line.
fn spawn_role(role: &str, env: &[(&str, String)]) -> (Proc, String) {
    let exe = std::env::current_exe().expect("current exe");
    let cpu = if role == "proxy" {
        Cpu::Proxy
    } else {
        Cpu::Load
    };
    let mut cmd = on_cpu(&exe.to_string_lossy(), cpu);
    cmd.env("BENCH_ROLE", role)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn role");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).expect("role line");
    (Proc(child), line.trim().to_string())
}

/// Where a process runs under `BENCH_PIN=1`: the proxies (berth's and
/// HAProxy) alone on CPU 1; the load (wrk, the open-loop generator) and the
/// fast backend on CPU 0. Pinned, a proxy never waits for a CPU behind the
/// generator or the backend, which is what "added latency" should measure
/// (on a real node the load comes from elsewhere); the direct path is
/// measured pinned too, so the fast backend's peak is its peak on CPU 0.
#[derive(Clone, Copy)]
enum Cpu {
    Load,
    Proxy,
}

fn pinning() -> bool {
    std::env::var("BENCH_PIN").as_deref() == Ok("1")
}

/// `program` as a command, under `taskset` when pinning.
fn on_cpu(program: &str, cpu: Cpu) -> Command {
    if !pinning() {
        return Command::new(program);
    }
    let mut c = Command::new("taskset");
    c.args([
        "-c",
        match cpu {
            Cpu::Load => "0",
            Cpu::Proxy => "1",
        },
    ])
    .arg(program);
    c
}

/// Pins this process (the generator, and what it spawns unless told
/// otherwise) to CPU 0, before any thread exists.
fn pin_self() {
    if !pinning() {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it;
    // pid 0 is this thread, and threads made later inherit its mask.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        ok,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// CPU seconds (utime + stime) and RSS in KiB of a process.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    ((ticks(11) + ticks(12)) / 100.0, rss)
}

/// `wrk` against `port`: requests per second and total requests.
fn wrk(port: u16) -> (f64, f64) {
    let out = on_cpu("wrk", Cpu::Load)
        .args(["-t2", "-c32", &format!("-d{}s", secs()), "--latency"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:")?.trim().parse().ok())
        .unwrap_or(0.0);
    let total = text
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let (n, rest) = l.split_once(' ')?;
            rest.starts_with("requests in").then(|| n.parse().ok())?
        })
        .unwrap_or(0.0);
    let errors = text
        .lines()
        .any(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if errors {
        eprintln!("wrk reported errors on port {port}:\n{text}");
    }
    (rps, total)
}

/// Open-loop load at `rate` requests/s over `BENCH_LATENCY_CONNS` (32)
/// keep-alive connections for `secs()`: the p50 and p99 latency from each
/// request's scheduled time (tokio's timer ticks in whole milliseconds, the
/// same for every path). 128 connections made every path's tail worse,
/// HAProxy's included: more sockets, same rate.
async fn open_loop(port: u16, rate: f64) -> (Duration, Duration) {
    let conns: usize = std::env::var("BENCH_LATENCY_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let per_conn = Duration::from_secs_f64(conns as f64 / rate);
    let until = Instant::now() + Duration::from_secs(secs());
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    return lat;
                };
                let _ = s.set_nodelay(true);
                let mut next = Instant::now() + per_conn.mul_f64(i as f64 / conns as f64);
                let mut buf = vec![0u8; 4096];
                while next < until {
                    tokio::time::sleep_until(next.into()).await;
                    let req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
                    if s.write_all(req).await.is_err() {
                        break;
                    }
                    if !read_response(&mut s, &mut buf).await {
                        break;
                    }
                    lat.push(next.elapsed());
                    next += per_conn;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort();
    let at = |q: f64| {
        all.get(((all.len() as f64) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    (at(0.5), at(0.99))
}

/// Reads one HTTP/1.1 response with a Content-Length body.
async fn read_response(s: &mut tokio::net::TcpStream, buf: &mut [u8]) -> bool {
    let mut have = Vec::new();
    loop {
        let Ok(n) = s.read(buf).await else {
            return false;
        };
        if n == 0 {
            return false;
        }
        have.extend_from_slice(&buf[..n]);
        let Some(end) = find(&have, b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&have[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok())
            .unwrap_or(0);
        if have.len() >= end + 4 + len {
            return true;
        }
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// RSS growth of `pid` (KiB) for 1,000 idle keep-alive connections to `port`.
async fn idle_memory(pid: u32, port: u16) -> f64 {
    let (_, before) = usage(pid);
    let mut held = Vec::new();
    let mut buf = vec![0u8; 4096];
    for _ in 0..1000 {
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            break;
        };
        if s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await
            .is_ok()
            && read_response(&mut s, &mut buf).await
        {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, after) = usage(pid);
    assert_eq!(held.len(), 1000, "not every connection was served");
    after - before
}

fn haproxy(backend: u16, tcp: u16, http: u16, dir: &std::path::Path) -> Proc {
    let cfg = format!(
        "global\n  maxconn 4096\n  nbthread 1\ndefaults\n  timeout connect 3s\n  timeout client 60s\n  timeout server 60s\n\
frontend ft_tcp\n  mode tcp\n  bind 127.0.0.1:{tcp}\n  default_backend bk_tcp\n\
backend bk_tcp\n  mode tcp\n  server s1 127.0.0.1:{backend}\n\
frontend ft_http\n  mode http\n  option forwardfor\n  bind 127.0.0.1:{http}\n  default_backend bk_http\n\
backend bk_http\n  mode http\n  http-reuse always\n  server s1 127.0.0.1:{backend}\n"
    );
    let path = dir.join(format!("haproxy-{backend}.cfg"));
    std::fs::write(&path, cfg).expect("haproxy config");
    let child = on_cpu("haproxy", Cpu::Proxy)
        .args(["-db", "-f"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (apt-get install haproxy)");
    wait_port(tcp);
    wait_port(http);
    Proc(child)
}

fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One row: a path's throughput, CPU per request, and open-loop latency.
struct Row {
    what: String,
    rps: f64,
    cpu_us: Option<f64>,
}

fn measure(what: &str, port: u16, pid: Option<u32>) -> Row {
    let before = pid.map(|p| usage(p).0);
    let (rps, total) = wrk(port);
    let cpu_us = pid
        .zip(before)
        .map(|(p, b)| (usage(p).0 - b) / total.max(1.0) * 1e6);
    eprintln!("{what}: {rps:.0} req/s, cpu/req {cpu_us:?} µs");
    Row {
        what: what.to_string(),
        rps,
        cpu_us,
    }
}

async fn role_proxy() {
    let env = |k: &str| -> u16 { std::env::var(k).ok().and_then(|v| v.parse().ok()).expect(k) };
    let (backend, tcp, http) = (env("BACKEND"), env("TCP_PORT"), env("HTTP_PORT"));
    // The backend container's pid, when the proxy dials in its namespace.
    let netns: Option<u32> = std::env::var("BACKEND_PID")
        .ok()
        .and_then(|v| v.parse().ok());
    let route = |protocol| {
        let mut r = Route::new(ComponentKey::new("bench", "web"), protocol);
        r.backends.push(Backend {
            container_id: "backend".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], backend)),
            container_port: netns.map(|_| 8080),
        });
        r
    };
    let routes = Routes {
        ports: [(tcp, route(Protocol::Tcp)), (http, route(Protocol::Http))].into(),
    };
    let (_tx, rx) = tokio::sync::watch::channel(routes);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut cfg = ProxyConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
    if let Some(pid) = netns {
        cfg.pid_lookup = Some(PidLookup(std::sync::Arc::new(move |_| {
            Box::pin(async move { Some(pid) })
        })));
    }
    // As the agent runs it: on the proxy's own runtime, `--proxy-threads`
    // (BENCH_PROXY_THREADS, default 1 as the agent's) threads.
    let threads = std::env::var("BENCH_PROXY_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(std::num::NonZeroUsize::MIN);
    let rt = ProxyRuntime::start(threads, shutdown.clone()).expect("the proxy's runtime");
    let proxy = Proxy::start_on(&rt, cfg, ProxyMetrics::new(), rx, shutdown.clone());
    // Bound as the proxy itself reports it.
    let mut ports = proxy.ports();
    let _ = ports
        .wait_for(|p| {
            [tcp, http]
                .iter()
                .all(|n| matches!(p.get(n), Some(berth::proxy::PortStatus::Bound(_))))
        })
        .await;
    println!("ready");
    let _ = std::io::stdout().flush();
    // Until the bench closes our stdin.
    let _ = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
    })
    .await;
    shutdown.cancel();
}

async fn role_backend() {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    println!("{port}");
    let _ = std::io::stdout().flush();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok\n")),
                    ))
                });
                let io = hyper_util::rt::TokioIo::new(s);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    let _ = tokio::task::spawn_blocking(|| {
        let mut s = String::new();
        let _ = std::io::stdin().read_line(&mut s);
    })
    .await;
}

/// A busybox httpd container of the test image, published on 127.0.0.1.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .status();
    }
}

fn busybox_backend() -> (Container, u16) {
    let out = Command::new("docker")
        .args([
            "run",
            "-d",
            "--rm",
            "--label",
            "berth.bench=proxy",
            "-p",
            "127.0.0.1::8080",
            IMAGE,
        ])
        .output()
        .expect("docker run");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !id.is_empty(),
        "docker run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Container(id);
    let out = Command::new("docker")
        .args(["port", &c.0, "8080"])
        .output()
        .expect("docker port");
    let text = String::from_utf8_lossy(&out.stdout);
    let port = text
        .lines()
        .find_map(|l| l.rsplit(':').next()?.trim().parse().ok())
        .expect("published port");
    wait_port(port);
    (c, port)
}

/// The main pid of a container (`docker inspect`).
fn container_pid(id: &str) -> Option<u32> {
    let out = Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", id])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

fn main() {
    let multi = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    match std::env::var("BENCH_ROLE").as_deref() {
        // The bench's own runtime only waits; the proxy runs on its own.
        Ok("proxy") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(role_proxy()),
        Ok("backend") => multi().block_on(role_backend()),
        _ => {
            pin_self();
            multi().block_on(bench())
        }
    }
}

async fn bench() {
    let docker = Docker::connect(None).await.expect("docker");
    docker
        .build_busybox_image(&BusyboxImage::web(IMAGE, "v1"))
        .await
        .expect("build the bench image");
    let dir = tempfile::tempdir().expect("tempdir");
    let (bb, bb_port) = busybox_backend();
    let (_fast, fast_line) = spawn_role("backend", &[]);
    let fast_port: u16 = fast_line.parse().expect("backend port");
    let mut tables = Vec::new();
    let fast_only = std::env::var_os("BENCH_FAST_ONLY").is_some();
    let busybox_only = std::env::var_os("BENCH_BUSYBOX_ONLY").is_some();
    let bb_pid = match std::env::var("BENCH_NETNS").as_deref() {
        Ok("0") => None,
        // Asked for (the default): a missing pid would silently measure
        // the published-port path under the wrong label.
        _ => Some(
            container_pid(&bb.0)
                .expect("the busybox container's pid (BENCH_NETNS=0 to dial its published port)"),
        ),
    };
    let backends = [("busybox httpd", bb_port), ("hyper (fast)", fast_port)];
    for (name, backend) in backends
        .into_iter()
        .filter(|(_, b)| !fast_only || *b == fast_port)
        .filter(|(_, b)| !busybox_only || *b == bb_port)
    {
        let (tcp, http) = (free_port(), free_port());
        let mut env = vec![
            ("BACKEND", backend.to_string()),
            ("TCP_PORT", tcp.to_string()),
            ("HTTP_PORT", http.to_string()),
        ];
        if let Some(pid) = bb_pid.filter(|_| backend == bb_port) {
            env.push(("BACKEND_PID", pid.to_string()));
        }
        let (berth_proxy, _) = spawn_role("proxy", &env);
        let (htcp, hhttp) = (free_port(), free_port());
        let ha = haproxy(backend, htcp, hhttp, dir.path());
        // BENCH_LATENCY_ONLY=1 (with BENCH_LATENCY_RATE): no wrk rows.
        let latency_only = std::env::var_os("BENCH_LATENCY_ONLY").is_some();
        let rows = if latency_only {
            Vec::new()
        } else {
            vec![
                measure(&format!("{name}: direct"), backend, None),
                measure(&format!("{name}: berth tcp"), tcp, Some(berth_proxy.pid())),
                measure(
                    &format!("{name}: berth http"),
                    http,
                    Some(berth_proxy.pid()),
                ),
                measure(&format!("{name}: haproxy tcp"), htcp, Some(ha.pid())),
                measure(&format!("{name}: haproxy http"), hhttp, Some(ha.pid())),
            ]
        };
        let mut latency = Vec::new();
        if backend == fast_port {
            // BENCH_LATENCY_RATE (req/s) overrides 50% of the direct peak:
            // on 2 shared cores that rate can exceed what any proxy
            // sustains beside the generator and the backend.
            let rate = std::env::var("BENCH_LATENCY_RATE")
                .ok()
                .and_then(|v| v.parse().ok())
                .or_else(|| rows.first().map(|r| r.rps * 0.5))
                .expect("BENCH_LATENCY_ONLY needs BENCH_LATENCY_RATE");
            for (what, port) in [
                ("direct", backend),
                ("berth tcp", tcp),
                ("berth http", http),
                ("haproxy tcp", htcp),
                ("haproxy http", hhttp),
            ] {
                let (p50, p99) = open_loop(port, rate).await;
                eprintln!("latency at {rate:.0} req/s, {what}: p50 {p50:?} p99 {p99:?}");
                latency.push((what, p50, p99));
            }
            let memory = (
                idle_memory(berth_proxy.pid(), http).await,
                idle_memory(ha.pid(), hhttp).await,
            );
            tables.push((
                name,
                rows,
                Some(Latency {
                    rate,
                    latency,
                    memory,
                }),
            ));
        } else {
            tables.push((name, rows, None));
        }
        drop(ha);
        drop(berth_proxy);
    }
    drop(bb);
    print_tables(&tables);
}

/// Open-loop latency per path (p50, p99) at `rate`, and the RSS growth
/// (KiB) for 1,000 idle connections: berth's, HAProxy's.
struct Latency {
    rate: f64,
    latency: Vec<(&'static str, Duration, Duration)>,
    memory: (f64, f64),
}

fn print_tables(tables: &[(&str, Vec<Row>, Option<Latency>)]) {
    println!("| backend · path | req/s (wrk -c32) | vs direct | CPU per request | vs HAProxy |");
    println!("|---|---|---|---|---|");
    for (_, rows, _) in tables {
        let Some(direct) = rows.first().map(|r| r.rps) else {
            continue;
        };
        for r in rows {
            let peer = if r.what.contains("berth tcp") {
                rows.iter().find(|x| x.what.contains("haproxy tcp"))
            } else if r.what.contains("berth http") {
                rows.iter().find(|x| x.what.contains("haproxy http"))
            } else {
                None
            };
            let vs_ha = peer
                .and_then(|p| Some(r.cpu_us? / p.cpu_us?))
                .map_or("-".to_string(), |x| format!("{x:.2}x"));
            println!(
                "| {} | {:.0} | {:.2}x | {} | {vs_ha} |",
                r.what,
                r.rps,
                r.rps / direct,
                r.cpu_us.map_or("-".into(), |c| format!("{c:.1} µs")),
            );
        }
    }
    for (name, _, lat) in tables {
        let Some(Latency {
            rate,
            latency: lat,
            memory,
        }) = lat
        else {
            continue;
        };
        let mut source = if std::env::var_os("BENCH_LATENCY_RATE").is_some() {
            "BENCH_LATENCY_RATE".to_string()
        } else {
            "50% of its direct peak".to_string()
        };
        if pinning() {
            source.push_str("; pinned: proxies on CPU 1, load and backend on CPU 0");
        }
        if let Ok(t) = std::env::var("BENCH_PROXY_THREADS") {
            source.push_str(&format!("; berth's proxy on {t} thread(s)"));
        }
        println!("\nOpen-loop latency, {name} backend, {rate:.0} req/s ({source}):\n");
        println!("| path | p50 | p99 | added p99 |");
        println!("|---|---|---|---|");
        let direct = lat
            .iter()
            .find(|l| l.0 == "direct")
            .map(|l| l.2)
            .unwrap_or_default();
        for (what, p50, p99) in lat {
            let added = p99.as_secs_f64() - direct.as_secs_f64();
            println!("| {what} | {p50:.2?} | {p99:.2?} | {:.3} ms |", added * 1e3);
        }
        println!(
            "\nRSS for 1,000 idle keep-alive connections: berth {:.0} KiB, HAProxy {:.0} KiB",
            memory.0, memory.1
        );
    }
}
