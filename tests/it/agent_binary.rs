//! The `berth agent` binary as an operator runs it: flags, node registration
//! (`get nodes`), `/healthz` `/readyz` `/metrics`, a real SIGKILL and restart
//! (same containers), and SIGTERM (lease released, containers left running).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::{berth, BERTH};
use crate::support::etcd::TestEtcd;
use crate::support::images::{self, NodeContainers, WEB1};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(etcd: &TestEtcd, node: &str, http: &str) -> Agent {
    Agent(
        Command::new(BERTH)
            .args([
                "--etcd",
                &etcd.endpoint(),
                "--root",
                etcd.root(),
                "agent",
                "--node",
                node,
            ])
            .args([
                "--labels",
                "zone=a,disk=ssd",
                "--address",
                "10.9.8.7",
                "--http",
                http,
            ])
            .args(["--lease-ttl", "3s", "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn berth agent"),
    )
}

fn http(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

async fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The observed document at `observed_key` once the agent running now
/// wrote it with its containers all ready: bound to the lease that holds
/// `node_key`, once that is not `dead` (a killed agent's lease).
async fn fresh_observed(
    etcd: &TestEtcd,
    node_key: &str,
    observed_key: &str,
    dead: i64,
) -> berth::resource::Observed {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < Duration::from_secs(60) {
        let live = etcd.lease_of(node_key).await.filter(|l| *l != dead);
        if let (Some(live), Some((v, lease))) = (live, etcd.get_with_lease(observed_key).await) {
            let o: berth::resource::Observed = serde_json::from_slice(&v).expect("observed JSON");
            let ready = o
                .containers
                .iter()
                .all(|c| c.phase == berth::resource::observed::ContainerPhase::Ready);
            if lease == live && ready {
                return o;
            }
            last = Some((lease, o));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no observed document from the new agent (dead lease {dead:x}); last: {last:#?}");
}

fn signal(agent: &Agent, sig: i32) {
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(agent.0.id() as i32, sig) };
}

#[tokio::test]
async fn agent_binary_registers_serves_http_and_handles_signals() {
    images::ensure_test_images().await.expect("images");
    let etcd = TestEtcd::start().await;
    let node = images::unique("bin");
    let guard = NodeContainers {
        root: etcd.root().to_string(),
        node: node.clone(),
    };
    let addr = format!("127.0.0.1:{}", berth::localetcd::free_port().expect("port"));
    let mut agent = start_agent(&etcd, &node, &addr);

    let health = eventually("/healthz", Duration::from_secs(30), || {
        http(&addr, "/healthz").filter(|r| r.contains(" 200 "))
    })
    .await;
    assert!(health.starts_with("HTTP/1."), "{health}");
    eventually("/readyz", Duration::from_secs(30), || {
        http(&addr, "/readyz").filter(|r| r.contains(" 200 "))
    })
    .await;

    // The node is registered with its labels, versions and a Ready condition.
    let (ep, root) = (etcd.endpoint(), etcd.root().to_string());
    let nodes: serde_json::Value = eventually("node registration", Duration::from_secs(30), || {
        let out = berth(&ep, &root, &["get", "nodes", "-o", "json"], None);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        (v["items"].as_array()?.len() == 1).then_some(v)
    })
    .await;
    let n = &nodes["items"][0];
    assert_eq!(n["metadata"]["name"], node.as_str());
    assert_eq!(n["metadata"]["labels"]["zone"], "a", "{n}");
    assert_eq!(n["status"]["address"], "10.9.8.7");
    assert_eq!(n["status"]["agentVersion"], env!("CARGO_PKG_VERSION"));
    assert!(
        n["status"]["dockerApiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1.")),
        "{n}"
    );
    let ready = n["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .any(|c| c["type"] == "Ready" && c["status"] == "True");
    assert!(ready, "{n}");
    let table = berth(&ep, &root, &["get", "nodes"], None).ok().stdout;
    assert!(table.contains(&node) && table.contains("Ready"), "{table}");

    // A component pinned to this node runs and answers.
    let yaml = format!(
        "apiVersion: berth/v1\nkind: Component\nmetadata: {{name: web}}\nspec:\n  image: {WEB1}\n  ports: [{{container: 8080}}]\n  placement: {{replicas: 2, nodes: [{node}]}}\n  readyChecks: [{{http: {{port: 8080}}}}]\n  termination: {{signals: [SIGKILL]}}\n"
    );
    berth(&ep, &root, &["apply", "-f", "-"], Some(&yaml)).ok();
    eventually("2/2 ready", Duration::from_secs(60), || {
        let out = berth(&ep, &root, &["get", "comp", "web"], None);
        out.stdout.contains("2/2").then_some(())
    })
    .await;
    // Status for scripts: -o json carries the rolled-up status.
    let json: serde_json::Value = serde_json::from_str(
        &berth(&ep, &root, &["get", "comp", "web", "-o", "json"], None)
            .ok()
            .stdout,
    )
    .expect("json");
    assert_eq!(json["status"]["readyReplicas"], 2, "{json}");
    assert_eq!(json["status"]["replicas"], 2, "{json}");
    let available = json["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .any(|c| c["type"] == "Available" && c["status"] == "True");
    assert!(available, "{json}");
    // Run-to-completion components and unplaceable ones say so.
    let job = |name: &str, code: u8| {
        format!(
            "---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: {name}}}\nspec:\n  image: {WEB1}\n  command: [/bin/sh, -c, 'exit {code}']\n  restartPolicy: never\n  placement: {{nodes: [{node}]}}\n"
        )
    };
    let ghost = "---\napiVersion: berth/v1\nkind: Component\nmetadata: {name: ghostly}\nspec:\n  image: bench/web:1\n  placement: {nodes: [no-such-node]}\n";
    berth(
        &ep,
        &root,
        &["apply", "-f", "-"],
        Some(&(job("done", 0) + &job("broke", 4) + ghost)),
    )
    .ok();
    for (name, word) in [
        ("done", "Completed"),
        ("broke", "Failed"),
        ("ghostly", "Unschedulable"),
    ] {
        eventually(word, Duration::from_secs(30), || {
            let out = berth(&ep, &root, &["get", "comp", name], None).stdout;
            out.contains(word).then_some(())
        })
        .await;
    }
    berth(
        &ep,
        &root,
        &["delete", "comp", "done", "broke", "ghostly"],
        None,
    )
    .ok();
    let metrics = http(&addr, "/metrics").expect("metrics");
    assert!(metrics.contains("berth_agent_"), "{metrics}");
    let web_only =
        |list: Vec<berth::docker::ContainerSummary>| -> Vec<berth::docker::ContainerSummary> {
            list.into_iter()
                .filter(|c| c.labels.get("berth.component").map(String::as_str) == Some("web"))
                .collect()
        };
    let mut ids: Vec<String> = web_only(guard.list().await)
        .into_iter()
        .map(|c| c.id)
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2);

    // SIGKILL and a new agent process: the same containers, not new ones.
    let node_key = format!("{}/nodes/{node}", etcd.root());
    let dead = etcd.lease_of(&node_key).await.expect("registered");
    signal(&agent, libc::SIGKILL);
    let _ = agent.0.wait();
    agent = start_agent(&etcd, &node, &addr);
    eventually("/readyz after restart", Duration::from_secs(30), || {
        http(&addr, "/readyz").filter(|r| r.contains(" 200 "))
    })
    .await;
    // Judge by what the new agent published, not by what the dead one left
    // (bound to its lease until that expires).
    let observed_key = format!("{}/observed/{node}/default/web", etcd.root());
    let o = fresh_observed(&etcd, &node_key, &observed_key, dead).await;
    assert_eq!(o.containers.len(), 2, "{o:#?}");
    let mut after: Vec<String> = web_only(guard.list().await)
        .into_iter()
        .map(|c| c.id)
        .collect();
    after.sort();
    assert_eq!(after, ids, "containers recreated after SIGKILL + restart");
    let out = berth(&ep, &root, &["get", "comp", "web"], None).ok().stdout;
    assert!(out.contains("2/2"), "{out}");

    // SIGTERM: exits 0 promptly, releases its lease (the node disappears at
    // once, not after the TTL), and leaves the containers running.
    signal(&agent, libc::SIGTERM);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = agent.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "agent did not exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    assert!(
        etcd.get(&node_key).await.is_none(),
        "lease not released on SIGTERM"
    );
    let running: Vec<bool> = web_only(guard.list().await)
        .into_iter()
        .map(|c| c.running)
        .collect();
    assert_eq!(
        running,
        vec![true, true],
        "SIGTERM must leave containers running"
    );
}

/// A container killed for memory restarts with backoff, and `describe`
/// says why: `OOMKilled` with exit code 137, restarts counted, and the crash
/// loop visible in `get`.
#[tokio::test]
async fn oom_killed_containers_show_the_reason_and_crash_loop() {
    images::ensure_test_images().await.expect("images");
    let etcd = TestEtcd::start().await;
    let node = images::unique("oom");
    let _guard = NodeContainers {
        root: etcd.root().to_string(),
        node: node.clone(),
    };
    let addr = format!("127.0.0.1:{}", berth::localetcd::free_port().expect("port"));
    let _agent = start_agent(&etcd, &node, &addr);
    let yaml = format!(
        "apiVersion: berth/v1\nkind: Component\nmetadata: {{name: hog}}\nspec:\n  image: {WEB1}\n  command: [/bin/sh, -c, 'x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done']\n  placement: {{nodes: [{node}]}}\n  resources: {{memory: 8Mi}}\n"
    );
    let (ep, root) = (etcd.endpoint(), etcd.root().to_string());
    berth(&ep, &root, &["apply", "-f", "-"], Some(&yaml)).ok();
    let described = eventually("OOMKilled in describe", Duration::from_secs(60), || {
        let out = berth(&ep, &root, &["describe", "comp", "hog"], None);
        (out.stdout.contains("137 (OOMKilled)") && out.stdout.contains("CrashLoop"))
            .then_some(out.stdout)
    })
    .await;
    assert!(described.contains("Containers:"), "{described}");
    let table = eventually("CrashLoop in get", Duration::from_secs(30), || {
        let out = berth(&ep, &root, &["get", "comp", "hog"], None).stdout;
        out.contains("CrashLoop").then_some(out)
    })
    .await;
    assert!(table.contains("0/1"), "{table}");
}

/// Logs written to a pipe (a log file, journald) carry no ANSI colour codes:
/// they would be stored as escape-sequence garbage. Runs the real agent with
/// stderr to a pipe, as a service manager does, and `NO_COLOR` unset.
#[tokio::test]
async fn agent_logs_to_a_pipe_carry_no_colour_codes() {
    let etcd = TestEtcd::start().await;
    let node = images::unique("logs");
    let _guard = NodeContainers {
        root: etcd.root().to_string(),
        node: node.clone(),
    };
    let mut child = Command::new(BERTH)
        .args(["--etcd", &etcd.endpoint(), "--root", etcd.root()])
        .args(["agent", "--node", &node, "--lease-ttl", "3s"])
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env_remove("BERTH_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth agent");
    let stderr = child.stderr.take().expect("stderr");
    let agent = Agent(child);
    let lines = read_lines(stderr);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("agent starting")) {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => seen.push(line),
            Err(e) => panic!("no 'agent starting' log line ({e}); stderr so far: {seen:?}"),
        }
    }
    signal(&agent, libc::SIGTERM);
    // The rest, up to the exit (the pipe closes).
    loop {
        match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("the agent did not exit on SIGTERM ({e}): {seen:?}"),
        }
    }
    let log = seen.join("\n");
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains("\x1b["),
        "ANSI escape codes in piped logs: {log:?}"
    );
}

/// Sends each line `from` yields until it closes.
fn read_lines(from: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
