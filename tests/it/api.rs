//! The REST API (`/api/v1`) against a real etcd: the JSON is what `berth get
//! -o json` prints, tokens and roles decide who sees what, errors are JSON;
//! and a real `berth agent` serves it on its `--http` address.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::api::{ApiConfig, Tokens};
use berth::store::Store;
use serde_json::{json, Value};

use crate::support::agents::AgentConfig;
use crate::support::cli::berth;
use crate::support::etcd::TestEtcd;
use crate::support::images;

const ADMIN: &str = "admin-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";

const MANIFEST: &str = "apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop}\n---\n\
apiVersion: berth/v1\nkind: Project\nmetadata: {name: other}\n---\n\
apiVersion: berth/v1\nkind: Component\nmetadata: {name: web, project: shop}\n\
spec: {image: 'busybox:1', state: stopped, placement: {replicas: 2}}\n---\n\
apiVersion: berth/v1\nkind: Component\nmetadata: {name: db, project: other}\n\
spec: {image: 'busybox:1', state: stopped}\n";

/// A plain HTTP/1.0 request: (status, headers, JSON body).
fn request(addr: &str, method: &str, path: &str, token: Option<&str>) -> (u16, String, Value) {
    send(addr, method, path, token, "")
}

/// [`request`] with a body.
fn send(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String, Value) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, head.to_lowercase(), body)
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Serves the API router in this process on a free loopback port.
async fn serve(etcd: &TestEtcd, tokens: &str) -> String {
    let tokens = Tokens::parse(tokens, "tokens.yaml").expect("tokens");
    let cfg = ApiConfig {
        tokens: Some(std::sync::Arc::new(tokens)),
        anonymous_read: false,
    };
    let store = Store::from_client(etcd.client().await, etcd.root());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, berth::api::router(store, cfg, None)).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_reads_what_get_shows_and_tokens_decide_who_sees_what() {
    let etcd = TestEtcd::start().await;
    let (ep, root) = (etcd.endpoint(), etcd.root().to_string());
    assert_eq!(
        berth(&ep, &root, &["apply", "-f", "-"], Some(MANIFEST)).code,
        0
    );
    let container =
        json!({"id": "c1", "name": "shop-web-1", "revision": 1, "hash": "h", "phase": "ready"});
    let observed = json!({"node": "n1", "generation": 1, "revision": 1, "containers": [container]});
    etcd.put(&etcd.key("observed/n1/shop/web"), observed.to_string())
        .await;
    etcd.put(&etcd.key("observed/n2/other/db"), observed.to_string())
        .await;
    etcd.put(&etcd.key("observed/n3/shop/broken"), "not json")
        .await;
    let tokens = format!(
        "tokens:\n  - {{name: ci, token: {ADMIN}, role: admin}}\n  - {{name: viewer, token: {VIEWER}, role: read, projects: [shop]}}\n"
    );
    let api = serve(&etcd, &tokens).await;
    let addr = api.as_str();
    let get = |path: &str, token: Option<&str>| request(addr, "GET", path, token);

    // No token, or a wrong one: 401 with a JSON body.
    let (code, head, body) = get("/api/v1/projects", None);
    assert_eq!(code, 401);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("Bearer")),
        "{body}"
    );
    let (code, _, body) = get("/api/v1/projects", Some("not-a-token-at-all"));
    assert_eq!((code, body["error"].as_str()), (401, Some("invalid token")));

    // The admin sees every project; the viewer only its own.
    let (code, _, body) = get("/api/v1/projects", Some(ADMIN));
    assert_eq!(
        (code, names(&body)),
        (200, vec!["other".into(), "shop".into()])
    );
    let (_, _, body) = get("/api/v1/projects", Some(VIEWER));
    assert_eq!(names(&body), vec!["shop".to_string()]);
    let (code, _, body) = get("/api/v1/projects/other/components", Some(VIEWER));
    assert_eq!(code, 403, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("other")));

    // One component: exactly what `berth get -o json` prints.
    let (code, _, body) = get("/api/v1/projects/shop/components/web", Some(VIEWER));
    assert_eq!(code, 200);
    let cli = berth(
        &ep,
        &root,
        &["get", "component", "web", "-p", "shop", "-o", "json"],
        None,
    );
    let cli: Value = serde_json::from_str(&cli.stdout).expect("get -o json");
    assert_eq!(body, cli);
    let (code, _, body) = get("/api/v1/projects/shop/components", Some(VIEWER));
    assert_eq!((code, names(&body)), (200, vec!["web".to_string()]));
    let (code, _, body) = get(
        "/api/v1/projects/shop/components/web/revisions",
        Some(VIEWER),
    );
    assert_eq!(code, 200);
    assert_eq!(body["items"][0]["seq"], 1, "{body}");
    let (code, _, body) = get("/api/v1/projects/shop/components/nope", Some(VIEWER));
    assert_eq!(code, 404);
    assert_eq!(
        body["error"],
        "Component \"nope\" not found in project \"shop\""
    );
    // As `get components -p nope`: an empty list, not an error.
    let (code, _, body) = get("/api/v1/projects/nope/components", Some(ADMIN));
    assert_eq!((code, names(&body).len()), (200, 0));
    let (_, _, body) = get("/api/v1/components", Some(ADMIN));
    assert_eq!(names(&body), vec!["db".to_string(), "web".to_string()]);
    let (_, _, body) = get("/api/v1/components", Some(VIEWER));
    assert_eq!(names(&body), vec!["web".to_string()]);
    let (code, _, _) = get("/api/v1/no/such/route", Some(ADMIN));
    assert_eq!(code, 404);

    // Containers, cluster-wide from observed state; an undecodable document
    // is left out, not guessed at; a viewer sees its projects only.
    let (code, _, body) = get("/api/v1/containers", Some(ADMIN));
    assert_eq!(code, 200);
    let rows = body["items"].as_array().cloned().unwrap_or_default();
    let seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap_or_default().to_string(),
                r["component"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![("n1".into(), "web".into()), ("n2".into(), "db".into())]
    );
    assert_eq!(rows[0]["phase"], "ready");
    let (_, _, body) = get("/api/v1/containers", Some(VIEWER));
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
    let (_, _, body) = get("/api/v1/containers?node=n2", Some(ADMIN));
    assert_eq!(body["items"][0]["project"], "other");
    let (code, _, _) = get("/api/v1/containers?project=other", Some(VIEWER));
    assert_eq!(code, 403);
    // A query axum's extractor refuses answers JSON too (schemathesis found
    // it text/plain): one line naming the parameter.
    let (code, head, body) = get("/api/v1/containers?watch=maybe", Some(VIEWER));
    assert_eq!(code, 400, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("watch")) && body["status"] == 400,
        "{body}"
    );

    // The OpenAPI document is served, and is the committed one.
    let (code, _, body) = get("/api/v1/openapi.json", Some(VIEWER));
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.json"))
            .expect("api/openapi.json"),
    )
    .expect("JSON");
    assert_eq!((code, &body), (200, &committed));

    // A read token may not write, whatever the route.
    let (code, _, body) = request(addr, "DELETE", "/api/v1/projects/shop", Some(VIEWER));
    assert_eq!(code, 403, "{body}");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("read role")));
}

#[tokio::test]
async fn the_agent_serves_the_api_and_refuses_a_bad_tokens_file() {
    images::ensure_test_images().await.expect("test images");
    let etcd = TestEtcd::start().await;
    let node = images::unique("api");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("tokens.yaml");
    std::fs::write(&bad, "tokens: [{name: a, token: short, role: read}]\n").expect("write");
    let port = berth::localetcd::free_port().expect("port");
    let http = format!("127.0.0.1:{port}");
    let agent = |extra: &[&str]| AgentConfig {
        http: Some(http.clone()),
        extra: extra.iter().map(|e| e.to_string()).collect(),
        ..AgentConfig::new(&etcd.endpoint(), etcd.root(), &node)
    };
    let out = agent(&["--api-tokens", &bad.display().to_string()])
        .command()
        .stderr(Stdio::piped())
        .output()
        .expect("agent exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("tokens.yaml: tokens[0] (a): token: at least 16 characters"),
        "{err}"
    );

    let _agent = agent(&["--api-anonymous-read"]).spawn();
    let start = Instant::now();
    let nodes = loop {
        if std::net::TcpStream::connect(&http).is_ok() {
            let (code, _, body) = request(&http, "GET", "/api/v1/nodes", None);
            if code == 200 && names(&body).contains(&node) {
                break body;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the agent's API never listed its node"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(nodes["kind"], "List");
    // The status page loads without a token; its script reads the API.
    for (path, kind) in [
        ("/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let mut s = std::net::TcpStream::connect(&http).expect("connect");
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        assert!(
            out.starts_with("HTTP/1.0 200") && out.to_lowercase().contains(kind),
            "{path}: {out:.200}"
        );
    }
    // Anonymous read is read only.
    let (code, _, _) = request(&http, "POST", "/api/v1/projects", None);
    assert_eq!(code, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_writes_run_the_cli_code_and_refuse_bad_input_writing_nothing() {
    let etcd = TestEtcd::start().await;
    let (ep, root) = (etcd.endpoint(), etcd.root().to_string());
    let tokens = format!(
        "tokens:\n  - {{name: ci, token: {ADMIN}, role: admin}}\n  - {{name: viewer, token: {VIEWER}, role: read}}\n  - {{name: shop-admin, token: shop-admin-0123456789, role: admin, projects: [shop]}}\n"
    );
    let api = serve(&etcd, &tokens).await;
    let addr = api.as_str();
    let apply = |body: &str, token: &str| send(addr, "POST", "/api/v1/apply", Some(token), body);

    // A bad manifest: 400 naming request:line:column and the field; nothing written.
    let bad = MANIFEST.replace("replicas: 2", "replicas: -2");
    let (code, _, body) = apply(&bad, ADMIN);
    assert_eq!(code, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("request:") && error.contains("replicas"),
        "{error}"
    );
    assert!(!error.contains('\n'), "{error}");
    assert!(
        etcd.keys(&etcd.key("specs/")).await.is_empty(),
        "a refused apply wrote"
    );
    // A read token, or an admin of another project, may not write.
    assert_eq!(apply(MANIFEST, VIEWER).0, 403);
    assert_eq!(apply(MANIFEST, "shop-admin-0123456789").0, 403);
    assert!(etcd.keys(&etcd.key("specs/")).await.is_empty());

    // Dry run, then the real apply: what `berth apply` prints, as JSON.
    let (code, _, body) = send(
        addr,
        "POST",
        "/api/v1/apply?dryRun=true",
        Some(ADMIN),
        MANIFEST,
    );
    assert_eq!(
        (code, body["items"][2]["change"].as_str()),
        (200, Some("created"))
    );
    assert!(etcd.keys(&etcd.key("specs/")).await.is_empty());
    let (code, _, body) = apply(MANIFEST, ADMIN);
    assert_eq!(code, 200, "{body}");
    let changes: Vec<&str> = body["items"]
        .as_array()
        .map(|i| i.iter().filter_map(|o| o["change"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(changes, vec!["created"; 4]);
    let cli = berth(
        &ep,
        &root,
        &["get", "component", "web", "-p", "shop", "-o", "json"],
        None,
    );
    assert_eq!(cli.code, 0);
    assert_eq!(apply(MANIFEST, ADMIN).2["items"][2]["change"], "unchanged");

    // Rollout actions: the CLI's refusal, one line, nothing written; restart works.
    let (code, _, body) = send(
        addr,
        "POST",
        "/api/v1/projects/shop/components/web/rollout/pause",
        Some(ADMIN),
        "",
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("nothing to pause")),
        "{body}"
    );
    let before = etcd.get(&etcd.key("specs/component/shop/web")).await;
    let (code, _, _) = send(
        addr,
        "POST",
        "/api/v1/projects/shop/components/web/rollout/fly",
        Some(ADMIN),
        "",
    );
    assert_eq!(code, 404);
    assert_eq!(
        etcd.get(&etcd.key("specs/component/shop/web")).await,
        before
    );
    let (code, _, body) = send(
        addr,
        "POST",
        "/api/v1/projects/shop/components/web/rollout/restart",
        Some("shop-admin-0123456789"),
        "",
    );
    assert_eq!(code, 200, "{body}");
    let spec: Value = serde_json::from_slice(
        &etcd
            .get(&etcd.key("specs/component/shop/web"))
            .await
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert!(spec["spec"]["restartedAt"].is_string(), "{spec}");

    // Nodes: unknown is 404; a project-scoped admin may not touch nodes.
    let (code, _, body) = send(addr, "POST", "/api/v1/nodes/ghost/cordon", Some(ADMIN), "");
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        send(
            addr,
            "POST",
            "/api/v1/nodes/ghost/cordon",
            Some("shop-admin-0123456789"),
            ""
        )
        .0,
        403
    );

    // Delete: a project with components is refused; the component goes.
    let (code, _, _) = send(addr, "DELETE", "/api/v1/projects/shop", Some(ADMIN), "");
    assert_eq!(code, 400);
    let (code, _, body) = send(
        addr,
        "DELETE",
        "/api/v1/projects/shop/components/web",
        Some(ADMIN),
        "",
    );
    assert_eq!(
        (code, body["deleted"].as_str()),
        (200, Some("component/web"))
    );
    assert!(etcd
        .get(&etcd.key("specs/component/shop/web"))
        .await
        .is_none());
    let (code, _, _) = send(
        addr,
        "DELETE",
        "/api/v1/projects/shop/components/web",
        Some(ADMIN),
        "",
    );
    assert_eq!(code, 404);
}

/// A `?watch=true` stream: each `data:` line's JSON, as it arrives.
struct SseClient(std::sync::mpsc::Receiver<Value>);

impl SseClient {
    fn open(addr: &str, path: &str, token: &str) -> SseClient {
        use std::io::BufRead;
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .expect("write");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(s).lines().map_while(Result::ok) {
                if let Some(data) = line.strip_prefix("data: ") {
                    if let Ok(v) = serde_json::from_str(data) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        SseClient(rx)
    }

    /// The next event's (type, object), within 10 s.
    fn next(&self) -> (String, Value) {
        let v = self
            .0
            .recv_timeout(Duration::from_secs(10))
            .expect("an event within 10 s");
        (
            v["type"].as_str().unwrap_or_default().to_string(),
            v["object"].clone(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_added_modified_deleted_as_server_sent_events() {
    let etcd = TestEtcd::start().await;
    let (ep, root) = (etcd.endpoint(), etcd.root().to_string());
    assert_eq!(
        berth(&ep, &root, &["apply", "-f", "-"], Some(MANIFEST)).code,
        0
    );
    let tokens = format!("tokens:\n  - {{name: ci, token: {ADMIN}, role: admin}}\n");
    let api = serve(&etcd, &tokens).await;

    let comps = SseClient::open(&api, "/api/v1/projects/shop/components?watch=true", ADMIN);
    let (kind, obj) = comps.next();
    assert_eq!(
        (kind.as_str(), &obj["metadata"]["name"]),
        ("ADDED", &json!("web"))
    );
    let scaled = MANIFEST.replace("replicas: 2", "replicas: 5");
    assert_eq!(
        berth(&ep, &root, &["apply", "-f", "-"], Some(&scaled)).code,
        0
    );
    let (kind, obj) = comps.next();
    assert_eq!(kind, "MODIFIED");
    assert_eq!(obj["spec"]["placement"]["replicas"], 5);
    assert_eq!(
        berth(
            &ep,
            &root,
            &["delete", "component", "web", "-p", "shop"],
            None
        )
        .code,
        0
    );
    let (kind, obj) = comps.next();
    assert_eq!(
        (kind.as_str(), &obj["metadata"]["name"]),
        ("DELETED", &json!("web"))
    );

    let containers = SseClient::open(&api, "/api/v1/containers?watch=true&project=shop", ADMIN);
    let c = |id: &str| json!({"id": id, "name": id, "revision": 1, "hash": "h", "phase": "ready"});
    let doc = |ids: &[&str]| {
        json!({"node": "n1", "generation": 1, "revision": 1,
               "containers": ids.iter().map(|i| c(i)).collect::<Vec<_>>()})
        .to_string()
    };
    let key = etcd.key("observed/n1/shop/web");
    etcd.put(&etcd.key("observed/n1/other/db"), doc(&["x"]))
        .await;
    etcd.put(&key, doc(&["a"])).await;
    let (kind, obj) = containers.next();
    assert_eq!(
        (kind.as_str(), &obj["id"], &obj["node"]),
        ("ADDED", &json!("a"), &json!("n1"))
    );
    etcd.put(&key, doc(&["b"])).await;
    let mut got: Vec<(String, Value)> = vec![containers.next(), containers.next()];
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!((got[0].0.as_str(), &got[0].1["id"]), ("ADDED", &json!("b")));
    assert_eq!(
        (got[1].0.as_str(), &got[1].1["id"]),
        ("DELETED", &json!("a"))
    );
    etcd.delete(&key).await;
    let (kind, obj) = containers.next();
    assert_eq!((kind.as_str(), &obj["id"]), ("DELETED", &json!("b")));
}

#[tokio::test]
async fn the_agent_serves_the_api_over_tls_when_given_a_certificate() {
    images::ensure_test_images().await.expect("test images");
    let etcd = TestEtcd::start().await;
    let node = images::unique("apitls");
    let dir = tempfile::tempdir().expect("tempdir");
    crate::security::make_certs(dir.path());
    let port = berth::localetcd::free_port().expect("port");
    let http = format!("127.0.0.1:{port}");
    let p = |f: &str| dir.path().join(f).display().to_string();
    let tls = |key: &str| AgentConfig {
        http: Some(http.clone()),
        extra: vec![
            "--api-cert".to_string(),
            p("server.pem"),
            "--api-key".to_string(),
            p(key),
        ],
        ..AgentConfig::new(&etcd.endpoint(), etcd.root(), &node)
    };
    let mut anonymous = tls("server-key.pem");
    anonymous
        .extra
        .insert(0, "--api-anonymous-read".to_string());
    let agent = anonymous.spawn();
    let curl = |extra: &[&str]| {
        Command::new("curl")
            .args(["-sS", "--max-time", "3", "-o", "-", "-w", "\n%{http_code}"])
            .args(extra)
            .output()
            .expect("curl is installed")
    };
    let url = format!("https://{http}/api/v1/nodes");
    let start = Instant::now();
    let listed = loop {
        let out = curl(&["--cacert", &p("ca.pem"), &url]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.ends_with("\n200") && text.contains(&node) {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no HTTPS answer: {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(listed.contains("\"kind\": \"List\""), "{listed}");
    // Plain HTTP on the TLS port gets no API answer.
    let plain = curl(&[&format!("http://{http}/api/v1/nodes")]);
    assert!(!String::from_utf8_lossy(&plain.stdout).ends_with("\n200"));
    drop(agent);

    // A key that does not load stops the agent at start, naming the file.
    std::fs::write(dir.path().join("bad-key.pem"), "not a key\n").expect("write");
    let out = tls("bad-key.pem")
        .command()
        .stderr(Stdio::piped())
        .output()
        .expect("agent exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--api-key") && err.contains("bad-key.pem"),
        "{err}"
    );
}

/// Per-container routes served without an agent (every container is
/// another node's): the row from observed state, scoped like the other
/// routes; an owner that advertises no API address, or does not answer,
/// is a 502 naming it, never a hang; an unknown container is a 404. All
/// errors are JSON; nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_routes_find_the_owner_and_say_why_it_cannot_be_reached() {
    let etcd = TestEtcd::start().await;
    let (ep, root) = (etcd.endpoint(), etcd.root().to_string());
    assert_eq!(
        berth(&ep, &root, &["apply", "-f", "-"], Some(MANIFEST)).code,
        0
    );
    let ctr = |id: &str, name: &str| json!({"id": id, "name": name, "revision": 1, "hash": "h", "phase": "ready"});
    let doc = |c: Value| json!({"node": "x", "generation": 1, "revision": 1, "containers": [c]});
    etcd.put(
        &etcd.key("observed/n1/shop/web"),
        doc(ctr("aaaaaaaaaaaa0001", "shop-web-1")).to_string(),
    )
    .await;
    etcd.put(
        &etcd.key("observed/n2/shop/web"),
        doc(ctr("bbbbbbbbbbbb0002", "shop-web-2")).to_string(),
    )
    .await;
    etcd.put(
        &etcd.key("observed/n3/shop/web"),
        doc(ctr("cccccccccccc0003", "shop-web-3")).to_string(),
    )
    .await;
    // n1 registered without an API address; n2's address answers nothing.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let node = |name: &str, api: &str| {
        json!({"apiVersion": "berth/v1", "kind": "Node", "metadata": {"name": name},
            "status": {"address": "127.0.0.1", "apiAddress": api,
                "conditions": [{"type": "Ready", "status": "True"}]}})
        .to_string()
    };
    etcd.put(&etcd.key("nodes/n1"), node("n1", "")).await;
    etcd.put(
        &etcd.key("nodes/n2"),
        node("n2", &format!("http://127.0.0.1:{closed}")),
    )
    .await;
    let tokens = format!(
        "tokens:\n  - {{name: ci, token: {ADMIN}, role: admin}}\n  - {{name: viewer, token: {VIEWER}, role: read, projects: [other]}}\n"
    );
    let api = serve(&etcd, &tokens).await;
    let before = etcd.revision().await;

    let (code, _, body) = request(
        &api,
        "GET",
        "/api/v1/projects/shop/containers/shop-web-2",
        Some(ADMIN),
    );
    assert_eq!((code, body["node"].as_str()), (200, Some("n2")), "{body}");
    let (code, _, body) = request(
        &api,
        "GET",
        "/api/v1/projects/shop/containers/bbbbbbbbbbbb",
        Some(ADMIN),
    );
    assert_eq!(
        (code, body["name"].as_str()),
        (200, Some("shop-web-2")),
        "{body}"
    );
    let (code, _, body) = request(
        &api,
        "GET",
        "/api/v1/projects/shop/containers/shop-web-2",
        Some(VIEWER),
    );
    assert_eq!(code, 403, "{body}");

    let (code, _, body) = request(
        &api,
        "POST",
        "/api/v1/projects/shop/containers/shop-web-1/restart",
        Some(ADMIN),
    );
    assert_eq!(code, 502, "{body}");
    let e = body["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("n1") && e.contains("advertises no API address"),
        "{body}"
    );

    let started = Instant::now();
    let (code, _, body) = request(
        &api,
        "GET",
        "/api/v1/projects/shop/containers/shop-web-2/logs",
        Some(ADMIN),
    );
    assert_eq!(code, 502, "{body}");
    let e = body["error"].as_str().unwrap_or_default();
    assert!(
        e.contains(&format!("node n2 (http://127.0.0.1:{closed})")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // A node whose agent is gone (no registration): said so.
    let (code, _, body) = request(
        &api,
        "POST",
        "/api/v1/projects/shop/containers/shop-web-3/evict",
        Some(ADMIN),
    );
    assert_eq!(code, 502, "{body}");
    let e = body["error"].as_str().unwrap_or_default();
    assert!(e.contains("node n3, which is not ready"), "{body}");

    let (code, _, body) = request(
        &api,
        "POST",
        "/api/v1/projects/shop/containers/nope/evict",
        Some(ADMIN),
    );
    assert_eq!(code, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("\"nope\" not found"),
        "{body}"
    );
    // The other project's containers are not found from this one.
    let (code, _, _) = request(
        &api,
        "GET",
        "/api/v1/projects/other/containers/shop-web-1",
        Some(ADMIN),
    );
    assert_eq!(code, 404);
    assert_eq!(etcd.revision().await, before, "nothing written");
}
