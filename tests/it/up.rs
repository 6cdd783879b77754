//! `berth up`: the one-machine quick start, as a user runs it: starts its own
//! etcd when none answers, runs an agent, applies the file, prints where the
//! app answers, and on Ctrl-C stops the containers, the agent and etcd.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::cli::BERTH;
use crate::support::images::{self, NodeContainers, WEB1};

fn http_get(addr: &str) -> Option<String> {
    http_get_path(addr, "/")
}

fn http_get_path(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Kills `berth up` if the test fails before it stopped it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            // SIGINT first so berth stops its etcd and containers too.
            // SAFETY: sending a signal to our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            // Up to 10 s for that clean stop, then SIGKILL.
            let start = std::time::Instant::now();
            while matches!(c.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn up_serves_the_app_and_ctrl_c_stops_everything() {
    crate::support::etcd::require_etcd();
    images::ensure_test_images().await.expect("test images");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("hello.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: berth/v1\nkind: Component\nmetadata: {{name: hello}}\nspec:\n  image: {WEB1}\n  ports: [{{container: 8080}}]\n  readyChecks: [{{http: {{port: 8080}}}}]\n  termination: {{signals: [SIGKILL]}}\n"
        ),
    )
    .expect("write");
    let port = berth::localetcd::free_port().expect("port");
    let endpoint = format!("http://127.0.0.1:{port}");
    let node = images::unique("up");
    let root = format!("/{}", images::unique("uproot"));
    let guard = NodeContainers {
        root: root.clone(),
        node: node.clone(),
    };
    let page_addr = format!("127.0.0.1:{}", berth::localetcd::free_port().expect("port"));
    let mut child = Command::new(BERTH)
        .args(["--etcd", &endpoint, "--root", &root, "up", "-f"])
        .arg(&file)
        .args(["--http", &page_addr, "--node", &node, "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn berth up");
    let stdout = child.stdout.take().expect("stdout");
    let mut child = KillOnDrop(Some(child));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut url = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if let Some(rest) = line.split(" answers at http://").nth(1) {
            url = rest.split('/').next().map(str::to_string);
        }
        let done = line.starts_with("berth is up");
        seen.push(line);
        if done {
            break;
        }
    }
    let text = seen.join("\n");
    assert!(
        text.contains(&format!("Started etcd at {endpoint}")),
        "{text}"
    );
    assert!(text.contains("component/hello created"), "{text}");
    let addr = url.unwrap_or_else(|| panic!("no address printed:\n{text}"));
    let page = http_get(&addr).expect("the app answers");
    assert!(
        page.starts_with("HTTP/1.") && page.contains(" 200 ") && page.contains("web 1"),
        "{page}"
    );
    assert_eq!(guard.list().await.len(), 1);
    // The status page and the API, readable without a token on loopback.
    assert!(
        text.contains(&format!("Status page and API at http://{page_addr}/")),
        "{text}"
    );
    let page = http_get(&page_addr).unwrap_or_default();
    assert!(
        page.contains(" 200 ") && page.contains("<title>berth</title>"),
        "{page}"
    );
    let api =
        http_get_path(&page_addr, "/api/v1/projects/default/components/hello").unwrap_or_default();
    assert!(
        api.contains(" 200 ") && api.contains("\"readyReplicas\""),
        "{api}"
    );

    // Ctrl-C: containers, agent and etcd all stop; berth exits 0.
    // SAFETY: sending a signal to our own child.
    let mut proc = child.0.take().expect("child");
    unsafe { libc::kill(proc.id() as i32, libc::SIGINT) };
    let status = tokio::task::spawn_blocking(move || proc.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "berth up exited with {status}");
    assert!(guard.list().await.is_empty(), "containers left running");
    assert!(
        !berth::localetcd::answers(&endpoint).await,
        "etcd left running"
    );
    assert!(
        http_get(&addr).is_none_or(|p| !p.contains("web 1")),
        "app still answers"
    );
}
