//! berth::docker and berth::checks against the real engine.
//!
//! Every test labels its containers with a unique `berth.test` value and
//! removes them through a [`Containers`] guard, pass or fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth::checks::{self, ProbeTarget};
use berth::docker::{ContainerConfig, Docker, Error, EventItem, Started};
use berth::resource::component::{Check, ExecProbe, HttpProbe, TcpProbe};
use berth::resource::quantity::Signal;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::images::{self, Containers, WEB1, WEB2, WEB_PORT};

async fn setup(prefix: &str) -> (Docker, Containers) {
    let d = images::docker().await;
    images::ensure_test_images()
        .await
        .expect("building the test images");
    (d, Containers::new(prefix))
}

fn web(guard: &Containers, image: &str) -> ContainerConfig {
    ContainerConfig {
        name: images::unique("berth-it"),
        image: image.into(),
        ports: vec![WEB_PORT],
        labels: guard.labels(&[]),
        ..Default::default()
    }
}

fn target(s: &Started) -> ProbeTarget {
    ProbeTarget {
        container_id: s.id.clone(),
        ports: s.ports.clone(),
    }
}

fn http_check(port: u16) -> Check {
    Check {
        http: Some(HttpProbe {
            port,
            path: "/".into(),
        }),
        ..Default::default()
    }
}

fn tcp_check(port: u16) -> Check {
    Check {
        tcp: Some(TcpProbe { port }),
        ..Default::default()
    }
}

fn exec_check(cmd: &[&str]) -> Check {
    Check {
        exec: Some(ExecProbe {
            command: cmd.iter().map(|s| s.to_string()).collect(),
        }),
        ..Default::default()
    }
}

/// Probes until it passes or `within` is over; returns the time it took.
async fn until_pass(d: &Docker, t: &ProbeTarget, c: &Check, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let r = checks::probe(d, t, c).await;
        if r.ok {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "probe still failing after {within:?}: {}",
            r.message
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /` on 127.0.0.1:port: the response body.
async fn get_body(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn sig(name: &str) -> Signal {
    name.parse().expect("signal name")
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

#[tokio::test]
async fn connects_and_negotiates() {
    let d = images::docker().await;
    let (engine, api) = d.version().await.expect("version");
    assert!(!engine.is_empty() && !api.is_empty());
    // The client speaks what the engine speaks (1.41 on 20.10), not newer.
    let ours: Vec<u32> = d
        .api_version()
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    let theirs: Vec<u32> = api.split('.').filter_map(|p| p.parse().ok()).collect();
    assert!(
        ours <= theirs,
        "client API {} newer than engine's {api}",
        d.api_version()
    );
}

#[tokio::test]
async fn missing_engine_is_a_quick_clear_error() {
    let start = Instant::now();
    let err = Docker::connect(Some("unix:///nonexistent/berth-test.sock"))
        .await
        .expect_err("no engine there");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    assert!(err.is_unreachable(), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/berth-test.sock"),
        "{err}"
    );
    // A port where nothing listens.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    let err = Docker::connect(Some(&format!("tcp://127.0.0.1:{port}")))
        .await
        .expect_err("no engine there");
    assert!(err.is_unreachable(), "{err:?}");
}

#[tokio::test]
async fn web_container_serves_on_loopback_and_http_probe_passes() {
    let (d, guard) = setup("web").await;
    let s1 = d
        .create_and_start(&web(&guard, WEB1))
        .await
        .expect("start web:1");
    let s2 = d
        .create_and_start(&web(&guard, WEB2))
        .await
        .expect("start web:2");
    for s in [&s1, &s2] {
        assert!(
            s.ports.contains_key(&WEB_PORT),
            "published ports {:?}",
            s.ports
        );
        // Published on 127.0.0.1 only.
        let raw = d
            .bollard()
            .inspect_container(&s.id, None)
            .await
            .expect("inspect");
        let ports = raw
            .network_settings
            .and_then(|n| n.ports)
            .unwrap_or_default();
        let bindings = ports.get("8080/tcp").cloned().flatten().unwrap_or_default();
        assert!(!bindings.is_empty());
        assert!(
            bindings
                .iter()
                .all(|b| b.host_ip.as_deref() == Some("127.0.0.1")),
            "{bindings:?}"
        );
        until_pass(
            &d,
            &target(s),
            &http_check(WEB_PORT),
            Duration::from_secs(10),
        )
        .await;
    }
    assert_eq!(get_body(s1.ports[&WEB_PORT]).await.trim(), "web 1");
    assert_eq!(get_body(s2.ports[&WEB_PORT]).await.trim(), "web 2");

    // A path that is not there is a 404: the probe fails and says so.
    let c = Check {
        http: Some(HttpProbe {
            port: WEB_PORT,
            path: "/nope".into(),
        }),
        ..Default::default()
    };
    let r = checks::probe(&d, &target(&s1), &c).await;
    assert!(!r.ok && r.message.contains("404"), "{r:?}");
    // A port that is not published fails clearly.
    let r = checks::probe(&d, &target(&s1), &http_check(9999)).await;
    assert!(!r.ok && r.message.contains("not published"), "{r:?}");
    let r = checks::probe(&d, &target(&s1), &tcp_check(9999)).await;
    assert!(!r.ok && r.message.contains("not published"), "{r:?}");
}

#[tokio::test]
async fn tcp_probe_fails_until_the_container_listens() {
    let (d, guard) = setup("tcp").await;
    let mut config = web(&guard, WEB1);
    config.command = [
        "/bin/sh",
        "-c",
        "while [ ! -f /tmp/go ]; do sleep 0.05; done; exec httpd -f -p 8080 -h /www",
    ]
    .map(String::from)
    .to_vec();
    let s = d.create_and_start(&config).await.expect("start");
    let t = target(&s);
    // docker-proxy accepts the connection, but nothing listens behind it.
    for _ in 0..3 {
        let r = checks::probe(&d, &t, &tcp_check(WEB_PORT)).await;
        assert!(
            !r.ok,
            "tcp probe passed before the container listens: {r:?}"
        );
        let r = checks::probe(&d, &t, &http_check(WEB_PORT)).await;
        assert!(
            !r.ok,
            "http probe passed before the container listens: {r:?}"
        );
    }
    assert_eq!(
        d.exec(
            &s.id,
            &["touch".to_string(), "/tmp/go".to_string()],
            Duration::from_secs(5)
        )
        .await
        .expect("exec"),
        0
    );
    until_pass(&d, &t, &tcp_check(WEB_PORT), Duration::from_secs(5)).await;
    until_pass(&d, &t, &http_check(WEB_PORT), Duration::from_secs(5)).await;
}

#[tokio::test]
async fn exec_probe_and_exit_codes() {
    let (d, guard) = setup("exec").await;
    let s = d.create_and_start(&web(&guard, WEB1)).await.expect("start");
    let t = target(&s);
    assert!(checks::probe(&d, &t, &exec_check(&["true"])).await.ok);
    let r = checks::probe(
        &d,
        &t,
        &exec_check(&["sh", "-c", "echo broken >&2; exit 3"]),
    )
    .await;
    assert!(
        !r.ok && r.message.contains("exit code 3") && r.message.contains("broken"),
        "{r:?}"
    );
    let cmd = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
    assert_eq!(
        d.exec(&s.id, &cmd("exit 42"), Duration::from_secs(5))
            .await
            .expect("exec"),
        42
    );
    // The check's timeout bounds the probe.
    let mut slow = exec_check(&["sleep", "5"]);
    slow.timeout = Some(berth::resource::quantity::Duration::from_millis(300));
    let start = Instant::now();
    let r = checks::probe(&d, &t, &slow).await;
    assert!(
        !r.ok && start.elapsed() < Duration::from_secs(2),
        "{r:?} after {:?}",
        start.elapsed()
    );
    // Exec in a missing container fails (as a failed probe, not a panic).
    let gone = ProbeTarget {
        container_id: "berth-no-such-container".into(),
        ports: BTreeMap::new(),
    };
    assert!(!checks::probe(&d, &gone, &exec_check(&["true"])).await.ok);
}

#[tokio::test]
async fn stop_sends_signals_then_kills_after_grace() {
    let (d, guard) = setup("stop").await;
    // busybox httpd as PID 1 ignores SIGINT and SIGTERM: SIGKILL at the end of the grace.
    let s = d.create_and_start(&web(&guard, WEB1)).await.expect("start");
    let start = Instant::now();
    d.stop(&s.id, &[sig("SIGINT")], Duration::from_millis(1500))
        .await
        .expect("stop");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    let i = d.inspect(&s.id).await.expect("inspect");
    assert!(!i.running);
    assert_eq!(i.exit_code, Some(137));

    // A container that exits on SIGINT: the stop returns right after it, the
    // second signal being sent halfway through the grace period.
    let mut config = web(&guard, WEB1);
    config.command = [
        "/bin/sh",
        "-c",
        "trap 'exit 7' INT; while :; do sleep 0.05; done",
    ]
    .map(String::from)
    .to_vec();
    let s = d.create_and_start(&config).await.expect("start");
    tokio::time::sleep(Duration::from_millis(200)).await; // let sh install its trap
    let start = Instant::now();
    let signals = [Signal::TERM, sig("SIGINT")];
    d.stop(&s.id, &signals, Duration::from_secs(4))
        .await
        .expect("stop");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "took {took:?}"
    );
    assert_eq!(d.inspect(&s.id).await.expect("inspect").exit_code, Some(7));

    // A stopped container starts again, with its ports published anew.
    let ports = d.start(&s.id).await.expect("start again");
    assert!(ports.contains_key(&WEB_PORT), "{ports:?}");
    let again = ProbeTarget {
        container_id: s.id.clone(),
        ports,
    };
    d.start(&s.id).await.expect("start a running container");
    tokio::time::sleep(Duration::from_millis(200)).await; // the trap again
    d.stop(&s.id, &[sig("SIGINT")], Duration::from_secs(10))
        .await
        .expect("stop");
    assert!(!checks::probe(&d, &again, &exec_check(&["true"])).await.ok);

    // Stopping, killing, removing what is stopped or gone is fine.
    d.stop(&s.id, &[Signal::TERM], Duration::from_secs(10))
        .await
        .expect("stop stopped");
    d.kill(&s.id).await.expect("kill stopped");
    d.remove(&s.id).await.expect("remove");
    d.remove(&s.id).await.expect("remove again");
    d.stop(&s.id, &[Signal::TERM], Duration::from_secs(10))
        .await
        .expect("stop gone");
    d.kill(&s.id).await.expect("kill gone");
    assert!(matches!(d.inspect(&s.id).await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn kill_shows_a_die_event_within_a_second() {
    let (d, guard) = setup("events").await;
    let s = d.create_and_start(&web(&guard, WEB1)).await.expect("start");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let since = now_nanos();
    let stream = d.events(Some(since), &[guard.label()]);
    let reader = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            if tx.send((ev, Instant::now())).is_err() {
                break;
            }
        }
    });
    let killed = Instant::now();
    d.kill(&s.id).await.expect("kill");
    let die = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some((ev, at)) = rx.recv().await {
            let ev = ev.expect("event");
            if ev.action == "die" {
                return (ev, at);
            }
        }
        panic!("events stream ended");
    })
    .await
    .expect("no die event within 5 s");
    reader.abort();
    let (ev, at) = die;
    assert!(
        at.duration_since(killed) < Duration::from_secs(1),
        "die after {:?}",
        at.duration_since(killed)
    );
    assert_eq!(ev.id, s.id);
    assert_eq!(ev.exit_code, Some(137));
    assert_eq!(ev.labels.get(images::TEST_LABEL), Some(&guard.value));
}

#[tokio::test]
async fn event_stream_starts_with_resync_and_filters_by_label() {
    let (d, guard) = setup("evstream").await;
    let other = Containers::new("evother");
    let mut stream = Box::pin(d.event_stream(None, &[guard.label()]));
    assert_eq!(stream.next().await, Some(EventItem::Resync));
    let theirs = d
        .create_and_start(&web(&other, WEB1))
        .await
        .expect("start other");
    let ours = d
        .create_and_start(&web(&guard, WEB1))
        .await
        .expect("start ours");
    d.kill(&theirs.id).await.expect("kill");
    d.kill(&ours.id).await.expect("kill");
    let mut actions = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(item) = stream.next().await {
            if let EventItem::Event(ev) = item {
                assert_eq!(ev.id, ours.id, "an event of another container: {ev:?}");
                actions.push(ev.action.clone());
                if ev.action == "die" {
                    break;
                }
            }
        }
    })
    .await
    .expect("no die event within 5 s");
    assert!(
        actions.contains(&"start".to_string()) && actions.contains(&"die".to_string()),
        "{actions:?}"
    );
}

/// A TCP front for the engine's socket whose connections can be cut, to
/// see the events stream end as it does when the engine restarts.
struct CuttableProxy {
    port: u16,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    async fn start() -> CuttableProxy {
        let host = std::env::var("DOCKER_HOST").unwrap_or_default();
        let socket = host
            .strip_prefix("unix://")
            .unwrap_or("/var/run/docker.sock")
            .to_string();
        let tcp_upstream = host.strip_prefix("tcp://").map(|s| s.to_string());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let c2 = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = l.accept().await {
                let socket = socket.clone();
                let tcp_upstream = tcp_upstream.clone();
                let task = tokio::spawn(async move {
                    if let Some(addr) = tcp_upstream {
                        if let Ok(mut up) = tokio::net::TcpStream::connect(addr).await {
                            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                        }
                    } else if let Ok(mut up) = tokio::net::UnixStream::connect(socket).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                if let Ok(mut v) = c2.lock() {
                    v.push(task);
                }
            }
        });
        CuttableProxy {
            port,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        if let Ok(mut v) = self.conns.lock() {
            for t in v.drain(..) {
                t.abort();
            }
        }
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test]
async fn event_stream_reopens_and_resyncs_after_the_connection_drops() {
    let (direct, guard) = setup("evreopen").await;
    let proxy = CuttableProxy::start().await;
    let d = Docker::connect(Some(&format!("tcp://127.0.0.1:{}", proxy.port)))
        .await
        .expect("connect via proxy");
    let mut stream = Box::pin(d.event_stream(None, &[guard.label()]));
    assert_eq!(stream.next().await, Some(EventItem::Resync));
    let first = direct
        .create_and_start(&web(&guard, WEB1))
        .await
        .expect("start");
    let ev = next_start(&mut stream).await;
    assert_eq!(ev.id, first.id);

    // Cut every connection: the stream ends, is re-opened, says Resync.
    proxy.cut();
    let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("resync in time");
    assert_eq!(item, Some(EventItem::Resync));
    // Events after the re-open still arrive, and the one before is not repeated.
    let second = direct
        .create_and_start(&web(&guard, WEB1))
        .await
        .expect("start");
    let ev = next_start(&mut stream).await;
    assert_eq!(ev.id, second.id);
}

/// The next `start` event, within 5 s (a Resync or the end of the stream fails).
async fn next_start(
    stream: &mut (impl futures::Stream<Item = EventItem> + Unpin),
) -> berth::docker::ContainerEvent {
    let fut = async {
        loop {
            match stream.next().await {
                Some(EventItem::Event(ev)) if ev.action == "start" => return ev,
                Some(EventItem::Event(_)) => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .expect("start event within 5 s")
}

#[tokio::test]
async fn ensure_image_fast_path_and_failed_pull() {
    let d = images::docker().await;
    images::ensure_test_images().await.expect("images");
    let start = Instant::now();
    d.ensure_image(WEB1).await.expect("local image");
    assert!(start.elapsed() < Duration::from_secs(1));
    let missing = images::unique("berth-test/missing") + ":1";
    let err = d
        .ensure_image(&missing)
        .await
        .expect_err("no registry: the pull fails");
    match &err {
        Error::ImagePull { image, message } => {
            assert_eq!(image, &missing);
            assert!(!message.is_empty());
        }
        other => panic!("expected ImagePull, got {other:?}"),
    }
    assert!(!err.docker_message().is_empty());
    // Starting from a missing image fails without leaving a container.
    let guard = Containers::new("noimage");
    let mut c = web(&guard, &missing);
    c.ports.clear();
    assert!(d.create_and_start(&c).await.is_err());
    assert!(d.list(&[guard.label()]).await.expect("list").is_empty());
}

#[tokio::test]
async fn failed_start_removes_the_container() {
    let (d, guard) = setup("badstart").await;
    let mut c = web(&guard, WEB1);
    c.command = vec!["/no/such/binary".into()];
    let err = d.create_and_start(&c).await.expect_err("cannot start");
    assert!(err.to_string().contains("no/such/binary"), "{err}");
    assert!(d.list(&[guard.label()]).await.expect("list").is_empty());
}

#[tokio::test]
async fn list_by_label_finds_only_ours() {
    let (d, guard) = setup("list").await;
    let other = Containers::new("list-other");
    let mut a = web(&guard, WEB1);
    a.ports.clear();
    let mut b = web(&guard, WEB2);
    b.ports.clear();
    let mut c = web(&other, WEB1);
    c.ports.clear();
    let a = d.create_and_start(&a).await.expect("a");
    let b = d.create_and_start(&b).await.expect("b");
    let _c = d.create_and_start(&c).await.expect("c");
    d.kill(&b.id).await.expect("kill b");
    let mut found = d.list(&[guard.label()]).await.expect("list");
    found.sort_by_key(|s| (s.id != a.id, s.id.clone()));
    let ids: Vec<&str> = found.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{found:?}");
    assert!(ids.contains(&a.id.as_str()) && ids.contains(&b.id.as_str()));
    let sa = found.iter().find(|s| s.id == a.id).expect("a listed");
    assert!(sa.running && sa.state == "running" && sa.image == WEB1 && sa.created > 0);
    let sb = found.iter().find(|s| s.id == b.id).expect("b listed");
    assert!(!sb.running, "{sb:?}");
    // Two labels: both must match.
    let none = d
        .list(&[guard.label(), ("berth.other".into(), "x".into())])
        .await
        .expect("list");
    assert!(none.is_empty());
}

#[tokio::test]
async fn inspect_shows_limits_labels_and_not_found() {
    let (d, guard) = setup("inspect").await;
    let mut c = web(&guard, WEB1);
    c.memory = Some(64 << 20);
    c.cpus = Some(0.5);
    c.env = BTreeMap::from([("GREETING".to_string(), "hello".to_string())]);
    c.labels = guard.labels(&[("berth.project", "shop"), ("berth.component", "web")]);
    let s = d.create_and_start(&c).await.expect("start");
    let i = d.inspect(&s.id).await.expect("inspect");
    assert_eq!(i.id, s.id);
    assert_eq!(i.name, c.name);
    assert_eq!(i.image, WEB1);
    assert!(
        i.running && i.exit_code.is_none() && i.started_at.is_some() && i.finished_at.is_none()
    );
    assert_eq!(i.memory, Some(64 << 20));
    assert_eq!(i.nano_cpus, Some(500_000_000));
    assert_eq!(
        i.labels.get("berth.project").map(String::as_str),
        Some("shop")
    );
    assert_eq!(
        i.labels.get("berth.component").map(String::as_str),
        Some("web")
    );
    assert_eq!(i.ports, s.ports);
    let test_env = ["sh", "-c", "test \"$GREETING\" = hello"].map(String::from);
    assert_eq!(
        d.exec(&s.id, &test_env, Duration::from_secs(5))
            .await
            .expect("exec"),
        0
    );
    // Docker's restart policy stays off.
    let raw = d
        .bollard()
        .inspect_container(&s.id, None)
        .await
        .expect("raw inspect");
    let policy = raw
        .host_config
        .and_then(|h| h.restart_policy)
        .and_then(|p| p.name)
        .map(|n| n.to_string());
    assert_eq!(policy.as_deref(), Some("no"));

    let err = d
        .inspect("berth-no-such-container-x")
        .await
        .expect_err("missing");
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn user_binds_volumes_from_and_privileged() {
    let (d, guard) = setup("mounts").await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello.txt"), "from the host").expect("write");
    let host = dir.path().to_string_lossy().into_owned();
    let mut a = web(&guard, WEB1);
    a.ports.clear();
    a.user = Some("65534".into());
    a.privileged = true;
    a.binds = vec![berth::docker::Bind {
        host,
        container: "/data".into(),
        read_only: true,
    }];
    let a = d.create_and_start(&a).await.expect("start a");
    let sh = |s: &str| ["sh", "-c", s].map(String::from);
    let t = Duration::from_secs(5);
    let out = d
        .exec_output(&a.id, &sh("id -u; cat /data/hello.txt"), t)
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert!(
        out.output.contains("65534") && out.output.contains("from the host"),
        "{out:?}"
    );
    assert_ne!(
        d.exec(&a.id, &sh("echo x > /data/new.txt"), t)
            .await
            .expect("exec"),
        0,
        "read-only bind"
    );
    assert!(d.inspect(&a.id).await.expect("inspect").privileged);

    let mut b = web(&guard, WEB1);
    b.ports.clear();
    b.volumes_from = vec![a.id.clone()];
    let b = d.create_and_start(&b).await.expect("start b");
    assert_eq!(
        d.exec(&b.id, &sh("grep -q host /data/hello.txt"), t)
            .await
            .expect("exec"),
        0
    );
    assert!(!d.inspect(&b.id).await.expect("inspect").privileged);
}

#[tokio::test]
async fn oom_kill_is_reported() {
    let (d, guard) = setup("oom").await;
    let mut c = web(&guard, WEB1);
    c.ports.clear();
    c.memory = Some(8 << 20);
    // Grows a shell variable until the 8 MiB limit kills it.
    c.command = [
        "/bin/sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done",
    ]
    .map(String::from)
    .to_vec();
    let s = d.create_and_start(&c).await.expect("start");
    d.wait_exit(&s.id).await.expect("wait");
    // Docker sets OOMKilled from containerd's OOM event, which can arrive
    // after the exit event: the flag may show up a moment after the exit
    // (the agent's state handles that late flag too).
    let deadline = Instant::now() + Duration::from_secs(5);
    let i = loop {
        let i = d.inspect(&s.id).await.expect("inspect");
        if i.oom_killed || Instant::now() > deadline {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!i.running);
    assert!(i.oom_killed, "{i:?}");
    assert_eq!(i.exit_code, Some(137));
}

/// Not a test: raw create + start + first HTTP 200 of a web:1 container
/// (`cargo test --test it docker::measure -- --ignored --nocapture`).
#[tokio::test]
#[ignore]
async fn measure_create_start_first_200() {
    let (d, guard) = setup("measure").await;
    let mut start_only = Vec::new();
    let mut to_200 = Vec::new();
    for _ in 0..11 {
        let t0 = Instant::now();
        let s = d.create_and_start(&web(&guard, WEB1)).await.expect("start");
        start_only.push(t0.elapsed());
        let port = s.ports[&WEB_PORT];
        loop {
            if matches!(checks::http::status(port, "/").await, Ok(200)) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        to_200.push(t0.elapsed());
        d.remove(&s.id).await.expect("remove");
    }
    start_only.sort();
    to_200.sort();
    println!(
        "create+start (incl. inspect): median {:?} (min {:?}, max {:?}); to first HTTP 200: median {:?} (min {:?}, max {:?})",
        start_only[5], start_only[0], start_only[10], to_200[5], to_200[0], to_200[10]
    );
}
