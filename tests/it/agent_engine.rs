//! How the agent uses the Docker engine under load, seen through a
//! [`DockerProxy`] that reads its requests: bounded start fan-out with one
//! image check per wave, inspects that do not stall the events loop, and
//! stops that shutdown waits for.

use std::time::{Duration, Instant};

use berth::resource::observed::ContainerPhase;
use serde_json::json;

use crate::agent::{web_spec, Harness};
use crate::support::docker_proxy::{DockerProxy, Kind};
use crate::support::images::WEB1;

/// A 6-replica scale-up on an agent with `concurrency: 2` never has more
/// than 2 container creates/starts in flight, and checks the image once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_are_bounded_by_concurrency_and_check_the_image_once() {
    let mut h = Harness::new("eng-starts").await;
    let proxy = DockerProxy::start().await;
    h.cfg.docker_host = Some(proxy.host());
    h.cfg.concurrency = 2;
    // Slow creates make unbounded starts overlap for sure.
    proxy.delay(Kind::Create, Duration::from_millis(300));
    h.start_agent();
    h.apply("web", web_spec(WEB1, 6)).await;
    h.wait_ready("web", 6).await;
    assert_eq!(
        proxy.count(Kind::Create),
        6,
        "every create went through the proxy"
    );
    // Exactly 2: bounded, and still concurrent within the bound.
    let overlap = proxy.max_in_flight(&[Kind::Create, Kind::Start]);
    assert_eq!(overlap, 2, "creates and starts in flight at once");
    assert_eq!(
        proxy.count(Kind::ImageInspect),
        1,
        "image checks for one wave"
    );
    h.stop_agent();
}

/// While the inspect after one container's `die` hangs, another
/// container's `die` is still seen and it is restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_inspect_does_not_stall_other_events() {
    let mut h = Harness::new("eng-inspect").await;
    let proxy = DockerProxy::start().await;
    h.cfg.docker_host = Some(proxy.host());
    // Only the events may tell the agent about the exits.
    h.cfg.resync_interval = Duration::from_secs(600);
    h.start_agent();
    h.apply("slow", web_spec(WEB1, 1)).await;
    h.apply("fast", web_spec(WEB1, 1)).await;
    let slow = h.wait_ready("slow", 1).await.containers[0].id.clone();
    let fast = h.wait_ready("fast", 1).await.containers[0].id.clone();
    let slow_inspect = format!("/containers/{slow}/json");
    proxy.hold(&slow_inspect);
    h.docker.kill(&slow).await.expect("docker kill");
    // The agent is inspecting `slow` after its `die`, and that hangs.
    proxy.wait_in_flight(&slow_inspect).await;
    let first_start = h.docker.inspect(&fast).await.expect("inspect").started_at;
    h.docker.kill(&fast).await.expect("docker kill");
    wait_restarted(&h, &fast, &first_start).await;
    assert_eq!(
        proxy.in_flight(&slow_inspect),
        1,
        "restarted only after the hanging inspect ended: no proof"
    );
    // Once its inspect answers, the other one is restarted too.
    proxy.release(&slow_inspect);
    h.wait("slow", "restarted", Duration::from_secs(30), |o| {
        o.containers.len() == 1
            && o.containers[0].restarts == 1
            && o.containers[0].phase == ContainerPhase::Ready
    })
    .await;
    h.stop_agent();
}

/// Waits until container `id` runs again, started after `before`.
async fn wait_restarted(h: &Harness, id: &str, before: &Option<String>) {
    let start = Instant::now();
    loop {
        let d = h.docker.inspect(id).await.expect("inspect");
        if d.running && &d.started_at != before {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "container {id} not restarted within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A graceful shutdown during a graceful stop (a signal the container
/// ignores, a 5 s grace period) waits for the stop: when `agent::run`
/// returns, the container is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_stop_in_flight() {
    let mut h = Harness::new("eng-stop").await;
    h.start_agent();
    // busybox httpd as PID 1 ignores SIGTERM: the stop lasts the whole grace.
    let spec = |replicas| {
        let mut s = web_spec(WEB1, replicas);
        s["termination"] = json!({"signals": ["SIGTERM"], "gracePeriod": "5s"});
        s
    };
    h.apply("web", spec(1)).await;
    let id = h.wait_ready("web", 1).await.containers[0].id.clone();
    h.apply("web", spec(0)).await;
    h.wait("web", "draining", Duration::from_secs(30), |o| {
        o.containers
            .iter()
            .any(|c| c.id == id && c.phase == ContainerPhase::Draining)
    })
    .await;
    let d = h.docker.inspect(&id).await.expect("inspect");
    assert!(d.running, "the stop must still be in flight at shutdown");
    let asked = Instant::now();
    h.stop_agent();
    eprintln!("shutdown with a stop in flight took {:?}", asked.elapsed());
    assert_eq!(h.container_ids().await, Vec::<String>::new(), "left behind");
}
