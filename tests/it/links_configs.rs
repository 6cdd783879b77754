//! Links and configs end to end (issue 10 items 1–3): the three-tier example
//! (`manifests/examples/three-tier.yaml`) on two `berth agent` processes,
//! each on its own 127.0.0.x, one etcd, the one Docker engine; and
//! `berth endpoints watch`.
//!
//! The example is applied as written except its project name, its external
//! port and its image (the test image, the same busybox httpd), so the test
//! owns its names. Waits poll with a deadline; containers are removed by
//! guards even when a test fails.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::agents::{free_port, Agent, AgentConfig, Log, Proxy};
use crate::support::cli::{berth, BERTH};
use crate::support::etcd::TestEtcd;
use crate::support::images::{self, WEB1};

/// Bound of every wait for something that must happen.
const T: Duration = Duration::from_secs(90);

fn spawn_agent(etcd: &TestEtcd, dir: &std::path::Path, node: &str, ip: &str, fwd: u16) -> Agent {
    AgentConfig {
        labels: Some("zone=a".to_string()),
        address: Some(ip.to_string()),
        proxy: Some(Proxy {
            bind: ip.to_string(),
            forward_port: fwd,
        }),
        log: Log::Json(dir.join(format!("{node}.log"))),
        rust_log: Some("info".to_string()),
        ..AgentConfig::new(&etcd.endpoint(), etcd.root(), node)
    }
    .spawn()
}

async fn wait_until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < T, "timed out after {T:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Running containers of `component` on every agent: (id).
async fn running(agents: &[Agent], component: &str) -> Vec<String> {
    node_containers(agents, component)
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

/// Running containers of `component`: (node, id).
async fn node_containers(agents: &[Agent], component: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in agents {
        for c in a.containers.list().await {
            if c.running && c.labels.get("berth.component").map(String::as_str) == Some(component) {
                out.push((a.node.clone(), c.id.clone()));
            }
        }
    }
    out
}

/// The nodes that run a container of `component`.
async fn nodes_running(agents: &[Agent], component: &str) -> Vec<String> {
    let mut nodes: Vec<String> = node_containers(agents, component)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    nodes.dedup();
    nodes
}

/// Waits until web container `web` has the db link's variables and gets
/// db's page through the link's address.
async fn reaches_db_through_the_link(web: &str, agents: &[Agent], dir: &std::path::Path) {
    let (_, env) = sh(web, "env | grep CLINK | sort").await;
    for want in [
        "DB_CLINK=tcp://127.0.0.1:5432",
        "DB_CLINK_5432_TCP=tcp://127.0.0.1:5432",
        "DB_CLINK_5432_TCP_ADDR=127.0.0.1",
        "DB_CLINK_5432_TCP_PORT=5432",
        "DB_CLINK_5432_TCP_PROTO=tcp",
    ] {
        assert!(env.contains(want), "{want} missing in {env}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = sh(
            web,
            "wget -q -O - http://$DB_CLINK_5432_TCP_ADDR:$DB_CLINK_5432_TCP_PORT/",
        )
        .await;
        if code == 0 && out.contains("db-ok") {
            return;
        }
        if Instant::now() > deadline {
            let (_, listen) = sh(web, "netstat -ltn").await;
            let logs: String = agents
                .iter()
                .map(|a| {
                    std::fs::read_to_string(dir.join(format!("{}.log", a.node))).unwrap_or_default()
                })
                .flat_map(|t| {
                    t.lines()
                        .filter(|l| l.contains("link") || l.contains("WARN"))
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
                .join("\n");
            panic!("web {web} cannot reach db through the link: wget {code} {out:?}; listening: {listen}; agent logs: {logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `sh -c script` in container `id`: (exit code, output).
async fn sh(id: &str, script: &str) -> (i64, String) {
    let d = images::docker().await;
    match d
        .exec_output(
            id,
            &["/bin/sh".into(), "-c".into(), script.into()],
            Duration::from_secs(10),
        )
        .await
    {
        Ok(o) => (o.exit_code, o.output),
        Err(e) => (-1, e.to_string()),
    }
}

/// The example with this test's project, external port and image.
fn example(project: &str, db_port: u16, web_replicas: u32) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/manifests/examples/three-tier.yaml"
    ))
    .expect("example");
    assert!(
        text.contains("replicas: 2"),
        "the example's web has 2 replicas"
    );
    text.replace("three-tier", project)
        .replace("15432", &db_port.to_string())
        .replace("berth-example/hello:1", WEB1)
        .replace("replicas: 2", &format!("replicas: {web_replicas}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_tier_example_links_and_configs() {
    images::ensure_test_images().await.expect("test images");
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fwd = free_port();
    let agents: Vec<Agent> = (0..2)
        .map(|i| {
            let node = images::unique(&format!("sv{i}"));
            spawn_agent(
                &etcd,
                dir.path(),
                &node,
                &format!("127.0.0.{}", 211 + i),
                fwd,
            )
        })
        .collect();
    for a in &agents {
        let key = etcd.key(&format!("nodes/{}", a.node));
        wait_until("registered", || async { etcd.get(&key).await.is_some() }).await;
    }
    let project = images::unique("tt");
    let db_port = free_port();
    let apply = |replicas: u32| {
        let out = berth(
            &etcd.endpoint(),
            etcd.root(),
            &["apply", "-f", "-"],
            Some(&example(&project, db_port, replicas)),
        );
        assert_eq!(out.code, 0, "{out:?}");
        out
    };
    let out = apply(2);
    assert!(!out.stderr.contains("warning"), "no link warning: {out:?}");

    // The lb's file lists the 2 web servers.
    wait_until("one lb container", || async {
        !running(&agents, "lb").await.is_empty()
    })
    .await;
    let lb = running(&agents, "lb").await.remove(0);
    let servers = |lb: String| async move {
        let (_, out) = sh(&lb, "cat /etc/lb/backends.conf").await;
        out.lines()
            .filter(|l| l.starts_with("server "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let reloads = |lb: String| async move {
        let (_, out) = sh(&lb, "cat /tmp/reloads 2>/dev/null | wc -l").await;
        out.trim().parse::<u32>().unwrap_or(0)
    };
    wait_until("the lb lists 2 web servers", || async {
        servers(lb.clone()).await.len() == 2
    })
    .await;
    // Settled before the scale-up: the last reload is the one listing 2.
    wait_until("the reload of the 2 web servers", || async {
        let (_, log) = sh(&lb, "cat /tmp/reloads").await;
        log.lines().last().is_some_and(|l| l.trim() == "reload 2")
    })
    .await;
    let before = reloads(lb.clone()).await;

    // Scale 2 -> 4: listed within 2 s, one reload.
    let started = Instant::now();
    apply(4);
    wait_until("the lb lists 4 web servers", || async {
        servers(lb.clone()).await.len() == 4
    })
    .await;
    let listed_after = started.elapsed();
    let after = reloads(lb.clone()).await;
    eprintln!("scale 2->4: listed after {listed_after:?}, reloads {before} -> {after}");
    assert!(
        listed_after < Duration::from_secs(2),
        "listed after {listed_after:?}"
    );
    let log = sh(&lb, "cat /tmp/reloads").await.1;
    assert_eq!(after, before + 1, "one reload for the scale-up: {log:?}");
    // No second reload follows (bounded by the debounce's max, 1 s).
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_eq!(reloads(lb.clone()).await, before + 1, "a second reload");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The reload shows in describe.
    let d = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["describe", "component", "lb", "-p", &project],
        None,
    );
    assert!(d.stdout.contains("ConfigReloaded"), "{}", d.stdout);
    assert!(d.stdout.contains("exited 0"), "{}", d.stdout);

    // Kill a web container (and remove it, so berth replaces it with a new
    // one rather than restarting it in place): its id leaves the config.
    let webs = running(&agents, "web").await;
    let victim = webs[0].clone();
    images::docker()
        .await
        .remove(&victim)
        .await
        .expect("kill and remove");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, conf) = sh(&lb, "cat /etc/lb/backends.conf").await;
        if !conf.contains(&victim[..12]) {
            break;
        }
        if Instant::now() > deadline {
            let (_, log) = sh(&lb, "cat /tmp/reloads").await;
            let eps = etcd.keys(&etcd.key("endpoints/")).await;
            panic!("the killed web container {victim} never left the config: reloads {log:?}, config {conf}, endpoints {eps:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until("the replacement is listed", || async {
        servers(lb.clone()).await.len() == 4
    })
    .await;

    // Every web container sees the db link and reaches db through it,
    // including one on the node that runs no db replica: its agent's
    // balancer forwards to the peer that has one.
    let db_nodes = nodes_running(&agents, "db").await;
    assert_eq!(db_nodes.len(), 1, "one db replica: {db_nodes:?}");
    let mut cross_node = 0;
    for (node, web) in node_containers(&agents, "web").await {
        if web == victim {
            continue;
        }
        if !db_nodes.contains(&node) {
            cross_node += 1;
        }
        reaches_db_through_the_link(&web, &agents, dir.path()).await;
    }
    assert!(
        cross_node > 0,
        "no web container on a node without db (db on {db_nodes:?}): the cross-node link path went untested"
    );
    drop(agents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_defined_nowhere_and_a_failing_render_show_conditions_and_write_nothing() {
    images::ensure_test_images().await.expect("test images");
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = images::unique("svl");
    let agent = spawn_agent(&etcd, dir.path(), &node, "127.0.0.215", free_port());
    let key = etcd.key(&format!("nodes/{node}"));
    wait_until("registered", || async { etcd.get(&key).await.is_some() }).await;
    let yaml = format!(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: lk}}\n---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: web, project: lk}}\nspec:\n  image: {WEB1}\n  command: [/bin/httpd, -f, -p, '8080', -h, /www]\n  termination: {{signals: [SIGKILL], gracePeriod: 1s}}\n  links: {{require: [{{name: cache}}]}}\n  configs: [{{path: /etc/app/x.conf, template: '{{{{ sources.db.endpoints[0].address }}}}', sources: [db]}}]\n"
    );
    let out = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["apply", "-f", "-"],
        Some(&yaml),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(
            "warning: component lk/web requires link \"cache\", which no component defines"
        ),
        "{out:?}"
    );
    // The container runs without the link's variables; the condition says why.
    let agents = [agent];
    wait_until("web runs", || async {
        !running(&agents, "web").await.is_empty()
    })
    .await;
    wait_until("the LinksResolved condition", || async {
        let d = berth(
            &etcd.endpoint(),
            etcd.root(),
            &["describe", "component", "web", "-p", "lk"],
            None,
        );
        d.stdout.contains("LinksResolved") && d.stdout.contains("LinkNotDefined")
    })
    .await;
    let web = running(&agents, "web").await.remove(0);
    let (_, env) = sh(&web, "env").await;
    assert!(!env.contains("CACHE_CLINK"), "{env}");
    // The template fails at render (no db endpoint: strict undefined): no
    // file, and the condition names the file and the error.
    wait_until("the ConfigRendered condition", || async {
        let d = berth(
            &etcd.endpoint(),
            etcd.root(),
            &["describe", "component", "web", "-p", "lk"],
            None,
        );
        d.stdout.contains("ConfigRendered")
            && d.stdout.contains("TemplateFailed")
            && d.stdout.contains("/etc/app/x.conf")
    })
    .await;
    let (code, _) = sh(&web, "test -e /etc/app/x.conf").await;
    assert_eq!(code, 1, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_watch_renders_atomically_and_execs_on_change() {
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tpl = dir.path().join("t.j2");
    std::fs::write(
        &tpl,
        "{% for e in sources.web.endpoints %}{{ e.container }} {{ e.hostPort }}\n{% endfor %}",
    )
    .expect("template");
    let out = dir.path().join("out.txt");
    let marks = dir.path().join("execs");
    let put = |id: &str, port: u16| {
        let ep = serde_json::json!({
            "project": "p", "component": "web", "node": "n1", "container": id,
            "ports": [{"container": 8080, "host": port}]
        });
        (
            etcd.key(&format!("endpoints/p/web/n1/{id}")),
            ep.to_string(),
        )
    };
    let (k, v) = put("c1", 40001);
    etcd.put(&k, v).await;
    let mut child = Command::new(BERTH)
        .args(["--etcd", &etcd.endpoint(), "--root", etcd.root()])
        .args(["endpoints", "watch", "web", "-p", "p"])
        .arg("--template")
        .arg(&tpl)
        .arg("--out")
        .arg(&out)
        .arg("--exec")
        .arg(format!("echo x >> {}", marks.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let execs = || read(&marks).lines().count();
    wait_until("first render", || async {
        read(&out) == "c1 40001\n" && execs() == 1
    })
    .await;
    let (k2, v2) = put("c2", 40002);
    etcd.put(&k2, v2).await;
    wait_until("second render", || async {
        read(&out) == "c1 40001\nc2 40002\n" && execs() == 2
    })
    .await;
    // The same content again (a rewrite of an unchanged endpoint), rendered
    // on its own (a debounce window apart from the next change): no exec,
    // so the next change is the third exec, not the fourth.
    let (k, v) = put("c1", 40001);
    etcd.put(&k, v).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (k3, v3) = put("c3", 40003);
    etcd.put(&k3, v3).await;
    wait_until("third render and exec", || async {
        read(&out).lines().count() == 3 && execs() >= 3
    })
    .await;
    assert_eq!(execs(), 3, "one exec per content change");
    // No temp file is left beside the output.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".berth-")), "{names:?}");
    let _ = child.kill();
    let _ = child.wait();
    // A template that does not parse: one line, file:line:column.
    std::fs::write(&tpl, "ok\n{% for %}").expect("template");
    let bad = berth(
        &etcd.endpoint(),
        etcd.root(),
        &[
            "endpoints",
            "watch",
            "web",
            "-p",
            "p",
            "--template",
            tpl.to_str().unwrap_or(""),
            "--out",
            out.to_str().unwrap_or(""),
            "--once",
        ],
        None,
    );
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("t.j2:2:"), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_reload_reaches_the_process_once_per_change() {
    images::ensure_test_images().await.expect("test images");
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = images::unique("svs");
    let agent = spawn_agent(&etcd, dir.path(), &node, "127.0.0.216", free_port());
    let key = etcd.key(&format!("nodes/{node}"));
    wait_until("registered", || async { etcd.get(&key).await.is_some() }).await;
    // PID 1 counts SIGHUPs (`wait` returns at once when the trap runs).
    let yaml = format!(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: sg}}\n---\napiVersion: berth/v1\nkind: Component\nmetadata: {{name: app, project: sg}}\nspec:\n  image: {WEB1}\n  command: [/bin/sh, -c, \"trap 'echo hup >> /tmp/hups' HUP; while :; do sleep 1 & wait $!; done\"]\n  termination: {{signals: [SIGKILL], gracePeriod: 1s}}\n  configs:\n  - path: /etc/app/peers\n    sources: [peers]\n    template: \"{{% for e in sources.peers.endpoints %}}{{{{ e.container }}}}\\n{{% endfor %}}\"\n    reload: {{signal: SIGHUP}}\n"
    );
    let out = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["apply", "-f", "-"],
        Some(&yaml),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let agents = [agent];
    wait_until("app runs", || async {
        !running(&agents, "app").await.is_empty()
    })
    .await;
    let app = running(&agents, "app").await.remove(0);
    // Written before the start, empty (no peer yet); no signal for it.
    let (code, _) = sh(&app, "test -e /etc/app/peers").await;
    assert_eq!(code, 0, "the file exists from the start");
    let hups = || async {
        sh(&app, "cat /tmp/hups 2>/dev/null | wc -l")
            .await
            .1
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
    };
    // Peers come as endpoint documents (a source with no spec: no hold).
    for (n, id) in ["p1", "p2"].iter().enumerate() {
        let ep = serde_json::json!({"project": "sg", "component": "peers", "node": "x", "container": id, "ports": []});
        etcd.put(
            &etcd.key(&format!("endpoints/sg/peers/x/{id}")),
            ep.to_string(),
        )
        .await;
        let want = n as u32 + 1;
        wait_until(&format!("SIGHUP {want}"), || async {
            hups().await == want && sh(&app, "cat /etc/app/peers").await.1.contains(id)
        })
        .await;
    }
    let d = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["describe", "component", "app", "-p", "sg"],
        None,
    );
    assert!(
        d.stdout.contains("ConfigReloaded") && d.stdout.contains("SIGHUP sent"),
        "{}",
        d.stdout
    );
}
