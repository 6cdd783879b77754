//! The kubectl-style CLI against a real etcd: apply/get/describe/delete/diff,
//! rollout history, bad input (nothing written), concurrency, unreachable etcd.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use berth::store::{Store, StoreConfig};

use crate::support::cli::{berth, Output};
use crate::support::etcd::TestEtcd;

const WEB: &str = "apiVersion: berth/v1
kind: Project
metadata:
  name: shop
---
apiVersion: berth/v1
kind: Component
metadata:
  name: web
  project: shop
  labels: {tier: frontend}
spec:
  image: bench/web:1
  command: [/bin/httpd, -f, -p, '8080', -h, /www]
  ports: [{name: http, container: 8080}]
  placement: {replicas: 2}
  readyChecks: [{http: {port: 8080, path: /}, interval: 1s}]
";

fn run(etcd: &TestEtcd, args: &[&str]) -> Output {
    berth(&etcd.endpoint(), etcd.root(), args, None)
}

fn apply_stdin(etcd: &TestEtcd, yaml: &str, extra: &[&str]) -> Output {
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(extra);
    berth(&etcd.endpoint(), etcd.root(), &args, Some(yaml))
}

/// Every key and value under the test's root: what "etcd unchanged" compares.
pub(crate) async fn snapshot(etcd: &TestEtcd) -> BTreeMap<String, Vec<u8>> {
    let mut client = etcd.client().await;
    let resp = client
        .get(
            format!("{}/", etcd.root()),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .expect("read etcd");
    resp.kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into(),
                kv.value().to_vec(),
            )
        })
        .collect()
}

async fn stored_json(etcd: &TestEtcd, key: &str) -> Option<serde_json::Value> {
    let mut client = etcd.client().await;
    let resp = client
        .get(format!("{}/{key}", etcd.root()), None)
        .await
        .expect("get");
    resp.kvs()
        .first()
        .map(|kv| serde_json::from_slice(kv.value()).expect("stored JSON"))
}

#[tokio::test]
async fn apply_get_describe_delete_round_trip() {
    let etcd = TestEtcd::start().await;
    let out = apply_stdin(&etcd, WEB, &[]).ok();
    assert_eq!(out.stdout, "project/shop created\ncomponent/web created\n");

    // etcd really holds the document, with berth's metadata.
    let doc = stored_json(&etcd, "specs/component/shop/web")
        .await
        .expect("spec stored");
    assert_eq!(doc["spec"]["image"], "bench/web:1");
    assert_eq!(doc["metadata"]["generation"], 1);
    assert!(doc["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| u.len() == 36));
    assert!(
        doc["metadata"].get("resourceVersion").is_none(),
        "resourceVersion is never stored"
    );
    assert!(stored_json(&etcd, "revisions/shop/web/0000000001")
        .await
        .is_some());

    // Same input again: unchanged, nothing written.
    let before = snapshot(&etcd).await;
    let out = apply_stdin(&etcd, WEB, &[]).ok();
    assert_eq!(
        out.stdout,
        "project/shop unchanged\ncomponent/web unchanged\n"
    );
    assert_eq!(snapshot(&etcd).await, before);

    // Scale: configured, generation 2, still revision 1. New image: revision 2.
    let scaled = WEB.replace("replicas: 2", "replicas: 3");
    assert!(apply_stdin(&etcd, &scaled, &[])
        .ok()
        .stdout
        .contains("component/web configured"));
    let v2 = scaled.replace("bench/web:1", "bench/web:2");
    apply_stdin(&etcd, &v2, &[]).ok();
    let doc = stored_json(&etcd, "specs/component/shop/web")
        .await
        .expect("spec");
    assert_eq!(doc["metadata"]["generation"], 3);
    assert_eq!(doc["metadata"]["annotations"]["berth/revision"], "2");

    // get: table, json with resourceVersion, yaml, name, selectors, -A.
    let table = run(&etcd, &["get", "components", "-p", "shop"]).ok().stdout;
    let mut lines = table.lines();
    let header = lines.next().expect("header");
    for col in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(lines.next().expect("row").starts_with("web "), "{table}");
    let json: serde_json::Value = serde_json::from_str(
        &run(&etcd, &["get", "comp", "web", "-p", "shop", "-o", "json"])
            .ok()
            .stdout,
    )
    .expect("json");
    assert_eq!(json["spec"]["placement"]["replicas"], 3);
    assert!(json["metadata"]["resourceVersion"]
        .as_str()
        .is_some_and(|r| r.parse::<i64>().is_ok()));
    let yaml = run(
        &etcd,
        &["get", "component", "web", "-p", "shop", "-o", "yaml"],
    )
    .ok()
    .stdout;
    assert!(yaml.contains("image: bench/web:2"), "{yaml}");
    assert_eq!(
        run(&etcd, &["get", "comps", "-A", "-o", "name"])
            .ok()
            .stdout,
        "component/web\n"
    );
    assert_eq!(
        run(
            &etcd,
            &["get", "comps", "-A", "-l", "tier=frontend", "-o", "name"]
        )
        .ok()
        .stdout,
        "component/web\n"
    );
    assert_eq!(
        run(
            &etcd,
            &["get", "comps", "-A", "-l", "tier!=frontend", "-o", "name"]
        )
        .ok()
        .stdout,
        ""
    );
    assert!(run(&etcd, &["get", "components", "-A"])
        .ok()
        .stdout
        .contains("PROJECT"));
    assert!(run(&etcd, &["get", "proj"]).ok().stdout.contains("shop"));

    // describe and rollout history.
    let d = run(&etcd, &["describe", "component", "web", "-p", "shop"])
        .ok()
        .stdout;
    for want in [
        "Name:         web",
        "Project:      shop",
        "Image:        bench/web:2",
        "Revisions:",
        "image bench/web:1 -> bench/web:2",
    ] {
        assert!(d.contains(want), "describe lacks {want:?}:\n{d}");
    }
    let h = run(&etcd, &["rollout", "history", "web", "-p", "shop"])
        .ok()
        .stdout;
    assert!(
        h.contains("bench/web:1") && h.contains("bench/web:2") && h.contains("(current)"),
        "{h}"
    );

    // Not found is a one-line error.
    let out = run(&etcd, &["get", "component", "nope", "-p", "shop"]);
    assert!(out.one_line_error().contains("component/nope"), "{out:?}");

    // delete by name removes spec and revisions; the project refuses while not empty.
    let out = run(&etcd, &["delete", "project", "shop"]);
    assert!(
        out.one_line_error().contains("still has 1 component"),
        "{out:?}"
    );
    assert_eq!(
        run(&etcd, &["delete", "component", "web", "-p", "shop"])
            .ok()
            .stdout,
        "component/web deleted\n"
    );
    assert!(stored_json(&etcd, "specs/component/shop/web")
        .await
        .is_none());
    assert!(stored_json(&etcd, "revisions/shop/web/0000000002")
        .await
        .is_none());
    run(&etcd, &["delete", "project", "shop"]).ok();
    assert!(snapshot(&etcd).await.is_empty());
}

#[tokio::test]
async fn delete_by_file_dry_run_and_missing_project() {
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, WEB).expect("write");
    let f = file.to_string_lossy().to_string();

    let out = run(&etcd, &["apply", "-f", &f, "--dry-run"]).ok();
    assert!(
        out.stdout.contains("component/web created (dry run)"),
        "{out:?}"
    );
    assert!(snapshot(&etcd).await.is_empty(), "dry run wrote something");

    // A component in a project that does not exist: error, nothing written.
    let only_component = WEB.split("---\n").nth(1).expect("second doc");
    let out = apply_stdin(&etcd, only_component, &[]);
    let line = out.one_line_error();
    assert!(line.contains("project \"shop\" does not exist"), "{out:?}");
    assert!(
        line.starts_with("error: <stdin>:1:1: document 1 (component/web): metadata.project: "),
        "{out:?}"
    );
    assert!(snapshot(&etcd).await.is_empty());

    run(&etcd, &["apply", "-f", &f]).ok();
    let out = run(&etcd, &["delete", "-f", &f]).ok();
    assert_eq!(out.stdout, "component/web deleted\nproject/shop deleted\n");
    assert!(snapshot(&etcd).await.is_empty());
    let out = run(&etcd, &["delete", "-f", &f]);
    assert!(out.one_line_error().contains("not found"), "{out:?}");
    run(&etcd, &["delete", "-f", &f, "--ignore-not-found"]).ok();
}

#[tokio::test]
async fn diff_exit_codes() {
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, WEB).expect("write");
    let f = file.to_string_lossy().to_string();
    let out = run(&etcd, &["diff", "-f", &f]);
    assert_eq!(out.code, 1, "new objects are differences: {out:?}");
    run(&etcd, &["apply", "-f", &f]).ok();
    let out = run(&etcd, &["diff", "-f", &f]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "");
    std::fs::write(&file, WEB.replace("bench/web:1", "bench/web:2")).expect("write");
    let out = run(&etcd, &["diff", "-f", &f]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("-  image: bench/web:1")
            && out.stdout.contains("+  image: bench/web:2"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("--- live/component/shop/web"),
        "{}",
        out.stdout
    );
    std::fs::write(&file, "kind: [").expect("write");
    let out = run(&etcd, &["diff", "-f", &f]);
    assert!(out.code > 1, "errors exit above 1: {out:?}");
}

#[tokio::test]
async fn prune_only_touches_its_applyset() {
    let etcd = TestEtcd::start().await;
    let comp = |name: &str| {
        format!("---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: {name}}}\nspec: {{image: 'bench/web:1'}}\n")
    };
    // "manual" is applied by hand, "other" by another applyset.
    apply_stdin(&etcd, &comp("manual"), &[]).ok();
    apply_stdin(&etcd, &comp("other"), &["--applyset", "b"]).ok();
    apply_stdin(
        &etcd,
        &(comp("a1") + &comp("a2")),
        &["--prune", "--applyset", "a"],
    )
    .ok();
    // a2 leaves the input: dry run lists it, real run deletes only it.
    let out = apply_stdin(
        &etcd,
        &comp("a1"),
        &["--prune", "--applyset", "a", "--dry-run"],
    )
    .ok();
    assert!(
        out.stdout.contains("component/a2 pruned (dry run)"),
        "{out:?}"
    );
    assert!(stored_json(&etcd, "specs/component/default/a2")
        .await
        .is_some());
    let out = apply_stdin(&etcd, &comp("a1"), &["--prune", "--applyset", "a"]).ok();
    assert_eq!(out.stdout, "component/a1 unchanged\ncomponent/a2 pruned\n");
    let names = run(&etcd, &["get", "comp", "-o", "name"]).ok().stdout;
    assert_eq!(names, "component/a1\ncomponent/manual\ncomponent/other\n");
    let out = apply_stdin(&etcd, &comp("a1"), &["--prune"]);
    assert_ne!(out.code, 0, "--prune without --applyset must fail");
}

/// Each bad input: non-zero exit, one line naming file and line:column (and
/// the field where there is one), and etcd exactly as it was.
#[tokio::test]
async fn bad_input_writes_nothing() {
    let etcd = TestEtcd::start().await;
    apply_stdin(&etcd, WEB, &[]).ok();
    let before = snapshot(&etcd).await;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bad");
    let mut cases: Vec<std::path::PathBuf> = std::fs::read_dir(fixtures)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the issue's bad-input fixtures, found {cases:?}"
    );
    for case in &cases {
        let path = case.to_string_lossy().to_string();
        let out = run(&etcd, &["apply", "-f", &path]);
        let line = out.one_line_error();
        let file = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(
            line.contains(&file) || case.is_dir(),
            "{path}: error does not name the file: {line}"
        );
        if !case.is_dir() && !line.contains("empty") && !line.contains("no objects") {
            let has_position = line.split(':').any(|p| p.trim().parse::<u32>().is_ok());
            assert!(has_position, "{path}: no line:column in {line}");
        }
        assert_eq!(snapshot(&etcd).await, before, "{path}: etcd changed");
    }
    // Generated: a 5 MB document and one nested 10,000 levels deep.
    let big = format!("{WEB}  env: {{BIG: '{}'}}\n", "x".repeat(5 << 20));
    let deep = format!("apiVersion: berth/v1\nkind: Component\nmetadata: {{name: deep}}\nspec: {{image: x, env: {}1{}}}\n", "[".repeat(10_000), "]".repeat(10_000));
    let deep_block: String = (0..10_000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    for (what, input) in [
        ("5 MB", big),
        ("deep flow", deep),
        ("deep block", deep_block),
    ] {
        let start = Instant::now();
        let out = apply_stdin(&etcd, &input, &[]);
        let line = out.one_line_error();
        assert!(line.contains("<stdin>"), "{what}: {line}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} took {:?}",
            start.elapsed()
        );
        assert_eq!(snapshot(&etcd).await, before, "{what}: etcd changed");
    }
}

/// Many applies of different versions of one component at once: every
/// command succeeds (a lost race is retried against a fresh read), the
/// final document is one of the versions whole, and no update is lost:
/// the generation counts every change and the revisions are consecutive.
#[tokio::test]
async fn concurrent_applies_have_one_coherent_winner() {
    let etcd = TestEtcd::start().await;
    apply_stdin(&etcd, WEB, &[]).ok();
    const N: usize = 8;
    let (ep, root) = (etcd.endpoint(), etcd.root().to_string());
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let (ep, root) = (ep.clone(), root.clone());
            std::thread::spawn(move || {
                let yaml = WEB
                    .replace("bench/web:1", &format!("bench/web:v{i}"))
                    .replace("tier: frontend", &format!("tier: frontend, writer: w{i}"));
                berth(&ep, &root, &["apply", "-f", "-"], Some(&yaml))
            })
        })
        .collect();
    // A lost race is retried against a fresh read: every apply succeeds.
    // (Each lost race is another writer's success, so with N writers an apply
    // loses at most N - 1 times; apply retries up to 8 times after its first try.)
    for h in handles {
        h.join().expect("thread").ok();
    }
    let doc = stored_json(&etcd, "specs/component/shop/web")
        .await
        .expect("spec");
    let image = doc["spec"]["image"].as_str().expect("image").to_string();
    let writer = doc["metadata"]["labels"]["writer"]
        .as_str()
        .expect("writer label")
        .to_string();
    assert_eq!(
        image.trim_start_matches("bench/web:v"),
        writer.trim_start_matches('w'),
        "torn document: {doc}"
    );
    // Each successful apply changed the template: one generation and one revision each.
    let generation = doc["metadata"]["generation"].as_i64().expect("generation");
    let revision: i64 = doc["metadata"]["annotations"]["berth/revision"]
        .as_str()
        .expect("rev")
        .parse()
        .expect("num");
    assert_eq!(
        generation, revision,
        "generation and revision disagree: {doc}"
    );
    assert_eq!(generation, 1 + N as i64, "lost update: {doc}");
    let hist = run(
        &etcd,
        &["rollout", "history", "web", "-p", "shop", "-o", "json"],
    )
    .ok()
    .stdout;
    let revs: Vec<serde_json::Value> = serde_json::from_str(&hist).expect("json");
    let seqs: Vec<i64> = revs
        .iter()
        .map(|r| r["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        ((N as i64 + 2 - 10).max(1)..=N as i64 + 1).collect::<Vec<_>>(),
        "revisions pruned to 10, consecutive"
    );
}

#[tokio::test]
async fn unreachable_etcd_fails_fast_naming_endpoints() {
    let port = berth::localetcd::free_port().expect("port");
    let ep = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let out = berth(&ep, "/x", &["get", "components"], None);
    let line = out.one_line_error();
    assert!(line.contains(&ep), "{line}");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "took {:?}",
        start.elapsed()
    );
    // A listener that never answers (the handshake completes in the kernel,
    // then nothing): the command must still give up within the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_ep = format!("http://{}", silent.local_addr().expect("addr"));
    let start = Instant::now();
    let out = berth(
        &silent_ep,
        "/x",
        &["--etcd-timeout", "1s", "get", "components"],
        None,
    );
    assert!(out.one_line_error().contains(&silent_ep), "{out:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "took {:?}",
        start.elapsed()
    );
    drop(silent);
}

/// With several endpoints and one member down, commands still work, whichever
/// endpoint comes first (etcd-client alone would fail most requests).
#[tokio::test]
async fn one_dead_endpoint_of_several() {
    let etcd = TestEtcd::start().await;
    let dead = format!(
        "http://127.0.0.1:{}",
        berth::localetcd::free_port().expect("port")
    );
    for endpoints in [
        format!("{dead},{}", etcd.endpoint()),
        format!("{},{dead}", etcd.endpoint()),
    ] {
        for i in 0..5 {
            let yaml = format!("apiVersion: berth/v1\nkind: Component\nmetadata: {{name: c{i}}}\nspec: {{image: 'bench/web:1'}}\n");
            berth(&endpoints, etcd.root(), &["apply", "-f", "-"], Some(&yaml)).ok();
            berth(
                &endpoints,
                etcd.root(),
                &["get", "comp", &format!("c{i}")],
                None,
            )
            .ok();
        }
    }
}

/// An agent keeps every configured endpoint for its whole life: one that was
/// down when it connected is used once it answers, by every clone of the
/// client, so the endpoint that answered first may go away.
#[tokio::test]
async fn endpoint_down_at_connect_is_used_once_it_answers() {
    let etcd = TestEtcd::start().await;
    let first = etcd.proxy().await;
    let late_port = berth::localetcd::free_port().expect("port");
    let cfg = StoreConfig {
        endpoints: vec![first.endpoint(), format!("http://127.0.0.1:{late_port}")],
        ..StoreConfig::with_endpoint("", etcd.root())
    };
    let store = Store::connect(&cfg).await.expect("connect");
    // Callers hold clones of the client, not the store.
    let mut client = store.client();
    drop(store);
    client
        .put(etcd.key("k"), "1", None)
        .await
        .expect("put through the first endpoint");

    let late = etcd.proxy_on(late_port).await;
    drop(first);
    // Only the late endpoint leads to etcd now. Every request must succeed once
    // it is in use and the gone one is out (20 in a row: none lands on the gone one).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut in_a_row = 0;
    while in_a_row < 20 {
        assert!(
            Instant::now() < deadline,
            "the endpoint that came up late is not used"
        );
        let get = tokio::time::timeout(Duration::from_secs(2), client.get(etcd.key("k"), None));
        match get.await {
            Ok(Ok(r)) => {
                assert_eq!(r.kvs().first().map(|kv| kv.value()), Some(&b"1"[..]));
                in_a_row += 1;
            }
            _ => {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(late);
}

#[tokio::test]
async fn get_watch_streams_json_lines() {
    let etcd = TestEtcd::start().await;
    apply_stdin(&etcd, WEB, &[]).ok();
    let mut child = std::process::Command::new(crate::support::cli::BERTH)
        .args([
            "--etcd",
            &etcd.endpoint(),
            "--root",
            etcd.root(),
            "get",
            "comp",
            "-p",
            "shop",
            "-w",
            "-o",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("initial line");
    let ev: serde_json::Value = serde_json::from_str(&first).expect("json line");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "web");
    apply_stdin(&etcd, &WEB.replace("replicas: 2", "replicas: 5"), &[]).ok();
    let next: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10)).expect("change"))
            .expect("json");
    assert_eq!(next["type"], "MODIFIED");
    assert_eq!(next["object"]["spec"]["placement"]["replicas"], 5);
    run(&etcd, &["delete", "component", "web", "-p", "shop"]).ok();
    let gone: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(10)).expect("delete"))
            .expect("json");
    assert_eq!(gone["type"], "DELETED");
    let _ = child.kill();
    let _ = child.wait();
}

/// `berth get ARGS` as a child whose stdout lines and stderr text arrive as
/// they are written. The child is killed on drop.
struct Watching {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watching {
    fn start(endpoint: &str, root: &str, args: &[&str]) -> Watching {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(crate::support::cli::BERTH)
            .args(["--etcd", endpoint, "--root", root, "get"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (err_out, err_in) = (stderr.clone(), child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err_in)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut s) = err_out.lock() {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Watching {
            child,
            lines,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Reads JSON event lines into `seen` (name -> (type, object)) until
    /// `done(seen)` holds; fails after `within`.
    fn until(
        &self,
        seen: &mut BTreeMap<String, (String, serde_json::Value)>,
        within: Duration,
        done: impl Fn(&BTreeMap<String, (String, serde_json::Value)>) -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !done(seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "not seen within {within:?}; last events: {seen:#?}\nstderr: {}",
                    self.stderr()
                );
            };
            let ev: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            let name = ev["object"]["metadata"]["name"]
                .as_str()
                .expect("name")
                .to_string();
            let kind = ev["type"].as_str().expect("type").to_string();
            seen.insert(name, (kind, ev["object"].clone()));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn component(name: &str, image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: berth/v1\nkind: Component\nmetadata: {{name: {name}, project: shop}}\nspec: {{image: '{image}', placement: {{replicas: {replicas}}}}}\n"
    )
}

/// `get -w` whose watch falls behind a compaction (its connection is cut
/// while objects change and etcd compacts past the changes) lists again and
/// prints every change it missed with its final value, deletions included.
// Multi-threaded: the proxy's tasks run while this test blocks on the child's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_after_compaction_loses_no_change() {
    let etcd = TestEtcd::start().await;
    apply_stdin(&etcd, WEB, &[]).ok();
    for (name, image) in [("api", "bench/api:1"), ("old", "bench/old:1")] {
        apply_stdin(&etcd, &component(name, image, 1), &[]).ok();
    }
    let proxy = etcd.proxy().await;
    let args = ["comp", "-p", "shop", "-w", "-o", "json"];
    let w = Watching::start(&proxy.endpoint(), etcd.root(), &args);
    let mut seen = BTreeMap::new();
    w.until(&mut seen, Duration::from_secs(15), |s| s.len() == 3);
    assert!(seen.values().all(|(t, _)| t == "ADDED"), "{seen:#?}");
    // Live: a change shows up.
    apply_stdin(&etcd, &component("api", "bench/api:2", 1), &[]).ok();
    w.until(&mut seen, Duration::from_secs(15), |s| {
        s["api"].1["spec"]["image"] == "bench/api:2"
    });

    proxy.cut();
    apply_stdin(&etcd, &WEB.replace("replicas: 2", "replicas: 7"), &[]).ok();
    apply_stdin(&etcd, &component("api", "bench/api:3", 1), &[]).ok();
    apply_stdin(&etcd, &component("fresh", "bench/fresh:1", 1), &[]).ok();
    run(&etcd, &["delete", "component", "old", "-p", "shop"]).ok();
    apply_stdin(&etcd, &component("api", "bench/api:4", 2), &[]).ok();
    etcd.compact().await;
    proxy.restore();

    w.until(&mut seen, Duration::from_secs(30), |s| {
        s["web"].1["spec"]["placement"]["replicas"] == 7
            && s["api"].1["spec"]["image"] == "bench/api:4"
            && s["old"].0 == "DELETED"
            && s.get("fresh").is_some_and(|f| f.0 == "ADDED")
    });
    assert_eq!(seen["api"].1["spec"]["placement"]["replicas"], 2);
    assert_eq!(seen["web"].0, "MODIFIED");
    assert!(w.stderr().contains("compaction"), "{}", w.stderr());
}

/// A coordinator-written status of a 2-replica component, `ready` of them ready.
fn status_doc(ready: u32) -> String {
    serde_json::json!({
        "observedGeneration": 1, "replicas": 2, "readyReplicas": ready,
        "updatedReplicas": 2, "availableReplicas": ready, "currentReplicas": 2,
        "drainingReplicas": 0, "conditions": [],
        "lastUpdate": "2026-01-01T00:00:00Z", "coordinator": "n1",
    })
    .to_string()
}

/// An agent's report of a dozen ready containers of shop/`name` on `node`
/// (about 1.4 KB).
fn observed_doc(node: &str, name: &str) -> String {
    let containers: Vec<serde_json::Value> = (0..12)
        .map(|i| {
            serde_json::json!({"id": format!("{node}{name}{i:0>40}"), "name": format!("{name}-{i}"),
                   "revision": 1, "hash": "h", "phase": "ready"})
        })
        .collect();
    serde_json::json!({"node": node, "generation": 1, "revision": 1, "containers": containers})
        .to_string()
}

/// The cells of a table line (columns are 3+ spaces apart).
fn cells(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// `get`, `describe` and `get -w` read the coordinator's status, never the
/// agents' observed documents: a component without a status shows its
/// spec's count and `Pending` whatever agents report, and `get -w` watches
/// only specs/, status/ and the election key. Proof for the watch: after
/// 300 observed writes (~400 KB), the next line it prints is the
/// status change that followed them (so they printed nothing), and etcd sent
/// it a small fraction of those bytes (so they were not even delivered).
// Multi-threaded: the proxy's tasks run while this test blocks on the child's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_ignores_observed_documents() {
    let etcd = TestEtcd::start().await;
    apply_stdin(&etcd, WEB, &[]).ok();
    apply_stdin(&etcd, &component("api", "bench/api:1", 2), &[]).ok();
    let observed = |node: &str, name: &str| etcd.key(&format!("observed/{node}/shop/{name}"));
    for node in ["n1", "n2"] {
        etcd.put(&observed(node, "web"), observed_doc(node, "web"))
            .await;
    }

    // No status yet, no coordinator: the spec's count and Pending, and a
    // warning that none will come until a coordinator runs.
    let out = run(&etcd, &["get", "comp", "-p", "shop"]).ok();
    let web = out
        .stdout
        .lines()
        .find(|l| l.starts_with("web "))
        .expect("web row");
    assert_eq!(cells(web)[1..5], ["-/2", "-", "-", "Pending"], "{out:#?}");
    assert!(
        out.stderr
            .contains("no coordinator is running: 2 component(s) have no status yet"),
        "{out:#?}"
    );
    let d = run(&etcd, &["describe", "comp", "web", "-p", "shop"])
        .ok()
        .stdout;
    assert!(
        d.contains("Replicas:     2 desired | - ready | - up-to-date | - available"),
        "{d}"
    );
    assert!(
        d.contains("Status:       none yet (no coordinator running)"),
        "{d}"
    );
    let json: serde_json::Value = serde_json::from_str(
        &run(&etcd, &["get", "comp", "web", "-p", "shop", "-o", "json"])
            .ok()
            .stdout,
    )
    .expect("json");
    assert!(json.get("status").is_none(), "{json}");

    etcd.put(&etcd.key("election/coordinator"), "n1").await;
    let api_status = etcd.key("status/component/shop/api");
    etcd.put(&api_status, status_doc(2)).await;
    let proxy = etcd.proxy().await;
    let w = Watching::start(
        &proxy.endpoint(),
        etcd.root(),
        &["comp", "-p", "shop", "-w"],
    );
    let next = || {
        w.lines
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("no line ({e}); stderr: {}", w.stderr()))
    };
    assert!(next().starts_with("NAME "));
    assert_eq!(cells(&next())[..5], ["api", "2/2", "2", "2", "Running"]);
    assert_eq!(cells(&next())[..5], ["web", "-/2", "-", "-", "Pending"]);
    // A status change prints its row (and shows the watch is live).
    etcd.put(&api_status, status_doc(1)).await;
    assert_eq!(cells(&next())[..5], ["api", "1/2", "2", "1", "Progressing"]);

    let before = proxy.received();
    let mut written = 0;
    for i in 0..150 {
        for name in ["web", "api"] {
            let node = format!("n{i}");
            let doc = observed_doc(&node, name);
            written += doc.len();
            etcd.put(&observed(&node, name), doc).await;
        }
    }
    etcd.put(&etcd.key("status/component/shop/web"), status_doc(2))
        .await;
    assert_eq!(
        cells(&next())[..5],
        ["web", "2/2", "2", "2", "Running"],
        "the first line after the observed writes is the status change"
    );
    let got = proxy.received() - before;
    assert!(
        (got as usize) < written / 10,
        "etcd sent the watcher {got} bytes while {written} bytes of observed documents were written"
    );
    assert!(written > 400_000, "{written}");
    eprintln!("observed written: {written} bytes; etcd to the watcher meanwhile: {got} bytes");
}

#[test]
fn help_version_completion_schema() {
    let ep = "http://127.0.0.1:1";
    let out = berth(ep, "/x", &["version"], None).ok();
    assert!(out.stdout.starts_with("berth "), "{out:?}");
    for verb in [
        "apply",
        "get",
        "describe",
        "delete",
        "diff",
        "evict",
        "schema",
        "completion",
    ] {
        let out = berth(ep, "/x", &[verb, "--help"], None).ok();
        assert!(
            out.stdout.contains("Example"),
            "{verb} --help has no example: {}",
            out.stdout
        );
    }
    let out = berth(ep, "/x", &["rollout", "history", "--help"], None).ok();
    assert!(out.stdout.contains("Example"));
    for shell in ["bash", "zsh", "fish"] {
        let out = berth(ep, "/x", &["completion", shell], None).ok();
        assert!(out.stdout.contains("berth"), "{shell}");
    }
    let out = berth(ep, "/x", &["schema", "component"], None).ok();
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).expect("schema is JSON");
    assert!(schema.to_string().contains("readyChecks"));
    let out = berth(ep, "/x", &["get", "widgets"], None);
    assert!(out.stderr.contains("unknown resource type"), "{out:?}");
}

/// The round trips `apply` makes, as BENCHMARKS.md states them: one range
/// read per (kind, project) group plus one transaction per 40 objects —
/// for 1,000 new components 1 + 25, about 0.026 per component.
#[tokio::test]
async fn apply_round_trips_per_component() {
    let etcd = TestEtcd::start().await;
    let mut yaml = String::new();
    for i in 0..1000 {
        yaml.push_str(&format!("---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: c{i}}}\nspec: {{image: 'bench/web:1'}}\n"));
    }
    let loaded =
        berth::manifest::parse_str("many.yaml", &yaml, &berth::manifest::Limits::default())
            .expect("valid");
    let objects: Vec<_> = loaded.into_iter().map(|l| l.object).collect();
    let store = berth::store::Store::from_client(etcd.client().await, etcd.root());
    let result = store
        .apply(&objects, &berth::store::ApplyOptions::default())
        .await
        .expect("apply");
    assert_eq!(result.outcomes.len(), 1000);
    assert_eq!(result.round_trips, 1 + 25, "1 range read + 25 transactions");
    assert_eq!(
        etcd.keys(&format!("{}/specs/component/default/", etcd.root()))
            .await
            .len(),
        1000
    );
    assert_eq!(
        etcd.keys(&format!("{}/revisions/default/", etcd.root()))
            .await
            .len(),
        1000
    );
    // Unchanged: the read only.
    let again = store
        .apply(&objects, &berth::store::ApplyOptions::default())
        .await
        .expect("apply");
    assert_eq!(again.round_trips, 1);
    assert!(again
        .outcomes
        .iter()
        .all(|o| o.change == berth::store::Change::Unchanged));
}

/// Large objects are split into transactions by size (etcd refuses requests
/// over 1.5 MiB); one too large to store fails before anything is written.
#[tokio::test]
async fn large_objects_are_chunked_by_size_and_oversized_ones_refused() {
    let etcd = TestEtcd::start().await;
    let comp = |name: &str, bytes: usize| {
        format!("---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: {name}}}\nspec:\n  image: 'bench/web:1'\n  env: {{BLOB: '{}'}}\n", "x".repeat(bytes))
    };
    let five: String = (0..5).map(|i| comp(&format!("big{i}"), 200_000)).collect();
    let out = apply_stdin(&etcd, &five, &[]).ok();
    assert_eq!(out.stdout.lines().count(), 5, "{out:?}");
    assert_eq!(
        etcd.keys(&format!("{}/specs/component/default/", etcd.root()))
            .await
            .len(),
        5
    );
    // 40 medium objects plus one too large: nothing at all is written.
    let before = snapshot(&etcd).await;
    let mut input: String = (0..40).map(|i| comp(&format!("m{i}"), 30_000)).collect();
    input.push_str(&comp("huge", 900_000));
    let out = apply_stdin(&etcd, &input, &[]);
    assert!(
        out.one_line_error()
            .contains("component/huge: too large to store"),
        "{out:?}"
    );
    assert_eq!(snapshot(&etcd).await, before);
}

#[tokio::test]
async fn diff_agrees_with_apply_about_applysets() {
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, WEB).expect("write");
    let f = file.to_string_lossy().to_string();
    run(&etcd, &["apply", "-f", &f, "--applyset", "s1"]).ok();
    assert!(run(&etcd, &["apply", "-f", &f])
        .ok()
        .stdout
        .contains("component/web unchanged"));
    assert_eq!(run(&etcd, &["diff", "-f", &f]).code, 0);
    assert_eq!(run(&etcd, &["diff", "-f", &f, "--applyset", "s1"]).code, 0);
    assert_eq!(run(&etcd, &["diff", "-f", &f, "--applyset", "s2"]).code, 1);
}

#[test]
fn usage_errors_are_one_line_and_broken_pipes_quiet() {
    let ep = "http://127.0.0.1:1";
    for args in [
        &["get", "pods"][..],
        &["get", "a/b/c"],
        &["apply"],
        &["get", "comp", "-o", "xml"],
    ] {
        let out = berth(ep, "/x", args, None);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.one_line_error().starts_with("error: "),
            "{args:?}: {out:?}"
        );
    }
    // `berth completion bash | head -1`: no panic, no message.
    let mut child = std::process::Command::new(crate::support::cli::BERTH)
        .args(["completion", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "{:?}",
        out.status
    );
}

/// `get -o yaml` output applies back; its resourceVersion makes the apply
/// conditional, so editing a stale copy is a conflict, not an overwrite.
#[tokio::test]
async fn get_yaml_round_trips_and_stale_resource_version_conflicts() {
    let etcd = TestEtcd::start().await;
    apply_stdin(&etcd, WEB, &[]).ok();
    let live = run(&etcd, &["get", "comp", "web", "-p", "shop", "-o", "yaml"])
        .ok()
        .stdout;
    assert!(live.contains("resourceVersion:"), "{live}");
    // Applying what get printed, unchanged: accepted, nothing to do.
    assert_eq!(
        apply_stdin(&etcd, &live, &[]).ok().stdout,
        "component/web unchanged\n"
    );
    // Edit and apply the copy: fine while nobody else wrote.
    let edited = live.replace("replicas: 2", "replicas: 4");
    assert_eq!(
        apply_stdin(&etcd, &edited, &[]).ok().stdout,
        "component/web configured\n"
    );
    // The same copy again is now stale.
    let before = snapshot(&etcd).await;
    let out = apply_stdin(&etcd, &live.replace("replicas: 2", "replicas: 6"), &[]);
    let line = out.one_line_error();
    assert!(
        line.contains("conflict: component/web: the input has resourceVersion"),
        "{line}"
    );
    assert_eq!(snapshot(&etcd).await, before);
    // `get -A -o json` (a List) applies back too, e.g. into another cluster.
    let all = run(&etcd, &["get", "comp", "-A", "-o", "json"]).ok().stdout;
    let out = berth(
        &etcd.endpoint(),
        "/elsewhere",
        &["apply", "-f", "-"],
        Some(&all.replace("\"resourceVersion\"", "\"x-rv\"")),
    );
    assert!(
        out.stderr.contains("unknown field `x-rv`"),
        "items are validated like documents: {out:?}"
    );
    let other = format!("{}-copy", etcd.root());
    let stripped: serde_json::Value = {
        let mut v: serde_json::Value = serde_json::from_str(&all).expect("json");
        for item in v["items"].as_array_mut().expect("items") {
            item["metadata"]
                .as_object_mut()
                .expect("meta")
                .remove("resourceVersion");
        }
        v
    };
    berth(
        &etcd.endpoint(),
        &other,
        &["apply", "-f", "-"],
        Some("apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop}\n"),
    )
    .ok();
    let out = berth(
        &etcd.endpoint(),
        &other,
        &["apply", "-f", "-"],
        Some(&stripped.to_string()),
    )
    .ok();
    assert_eq!(out.stdout, "component/web created\n");
    // Without resourceVersion it is a plain declarative apply again.
    let plain: String = live
        .lines()
        .filter(|l| !l.contains("resourceVersion"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        apply_stdin(&etcd, &plain.replace("replicas: 2", "replicas: 6"), &[])
            .ok()
            .stdout
            .contains("configured")
    );
}

/// kubectl habits: KIND/NAME, several names to delete, --no-headers.
#[tokio::test]
async fn kind_slash_name_several_names_and_no_headers() {
    let etcd = TestEtcd::start().await;
    let comp = |name: &str| {
        format!("---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: {name}}}\nspec: {{image: 'bench/web:1'}}\n")
    };
    apply_stdin(&etcd, &(comp("a") + &comp("b") + &comp("c")), &[]).ok();
    assert_eq!(
        run(&etcd, &["get", "comp/b", "-o", "name"]).ok().stdout,
        "component/b\n"
    );
    assert!(run(&etcd, &["describe", "component/c"])
        .ok()
        .stdout
        .contains("Name:         c"));
    let rows = run(&etcd, &["get", "comps", "--no-headers"]).ok().stdout;
    assert_eq!(rows.lines().count(), 3, "{rows}");
    assert!(rows.starts_with("a "), "{rows}");
    let out = run(&etcd, &["get", "comp/b", "c"]);
    assert!(out.one_line_error().contains("not both"), "{out:?}");
    assert_eq!(
        run(&etcd, &["delete", "comp", "a", "b"]).ok().stdout,
        "component/a deleted\ncomponent/b deleted\n"
    );
    assert_eq!(
        run(&etcd, &["delete", "comp/c"]).ok().stdout,
        "component/c deleted\n"
    );
    assert_eq!(run(&etcd, &["get", "comps", "-o", "name"]).ok().stdout, "");
}

/// Going back to an earlier template moves that revision to the new number
/// instead of keeping the same template twice (one revision per template).
#[tokio::test]
async fn rollback_reuses_the_revision_of_the_same_template() {
    let etcd = TestEtcd::start().await;
    for image in ["bench/web:1", "bench/web:2", "bench/web:1"] {
        apply_stdin(&etcd, &WEB.replace("bench/web:1", image), &[]).ok();
    }
    let hist = run(
        &etcd,
        &["rollout", "history", "web", "-p", "shop", "-o", "json"],
    )
    .ok()
    .stdout;
    let revs: Vec<serde_json::Value> = serde_json::from_str(&hist).expect("json");
    let seqs: Vec<(i64, &str)> = revs
        .iter()
        .map(|r| {
            (
                r["seq"].as_i64().unwrap_or(0),
                r["template"]["image"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(seqs, vec![(2, "bench/web:2"), (3, "bench/web:1")], "{hist}");
    assert_eq!(revs[1]["changeCause"], "rollback to revision 1: created");
    let doc = stored_json(&etcd, "specs/component/shop/web")
        .await
        .expect("spec");
    assert_eq!(doc["metadata"]["annotations"]["berth/revision"], "3");
}

/// An image bump of many components costs one read of their revisions, not
/// one per component, and a bulk rollback still reuses the old revisions.
#[tokio::test]
async fn bulk_template_change_reads_revisions_once() {
    let etcd = TestEtcd::start().await;
    let many = |image: &str| -> Vec<berth::resource::Object> {
        let yaml: String = (0..100)
            .map(|i| format!("---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: c{i}}}\nspec: {{image: '{image}'}}\n"))
            .collect();
        berth::manifest::parse_str("many.yaml", &yaml, &berth::manifest::Limits::default())
            .expect("valid")
            .into_iter()
            .map(|l| l.object)
            .collect()
    };
    let store = berth::store::Store::from_client(etcd.client().await, etcd.root());
    let opts = berth::store::ApplyOptions::default();
    store
        .apply(&many("bench/web:1"), &opts)
        .await
        .expect("create");
    let bump = store
        .apply(&many("bench/web:2"), &opts)
        .await
        .expect("bump");
    // 1 spec read + 1 revisions read + 3 transactions.
    assert_eq!(bump.round_trips, 1 + 1 + 3);
    let back = store
        .apply(&many("bench/web:1"), &opts)
        .await
        .expect("rollback");
    assert_eq!(back.round_trips, 1 + 1 + 3);
    let revs = store.revisions("default", "c42").await.expect("revisions");
    let seqs: Vec<u64> = revs.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![2, 3], "revision 1 moved to 3");
    assert!(
        revs[1].change_cause.starts_with("rollback to revision 1"),
        "{revs:?}"
    );
}
