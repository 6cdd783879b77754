//! Cluster events: a real agent records what happens to its containers in
//! etcd; `berth events` lists and follows them, and `/api/v1/events`
//! serves the same.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::agents::AgentConfig;
use crate::support::cli::{berth, Running};
use crate::support::etcd::TestEtcd;
use crate::support::images::{self, WEB1};

fn manifest(replicas: u32) -> String {
    format!(
        "apiVersion: berth/v1\nkind: Project\nmetadata: {{name: shop}}\n---\n\
apiVersion: berth/v1\nkind: Component\nmetadata: {{name: web, project: shop}}\nspec:\n  image: {WEB1}\n  \
command: [/bin/httpd, -f, -p, '8080', -h, /www]\n  ports: [{{container: 8080}}]\n  \
placement: {{replicas: {replicas}}}\n  readyChecks: [{{http: {{port: 8080, path: /}}, interval: 1s}}]\n  \
termination: {{signals: [SIGTERM], gracePeriod: 2s, drainTimeout: 1s}}\n"
    )
}

/// The reasons `berth events -p shop -o json` lists, in order.
fn reasons(etcd: &TestEtcd) -> Vec<(String, Value)> {
    let out = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["events", "-p", "shop", "-o", "json"],
        None,
    );
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    (
                        e["reason"].as_str().unwrap_or_default().to_string(),
                        e.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_agent_records_events_that_cli_and_api_show() {
    images::ensure_test_images().await.expect("test images");
    let etcd = TestEtcd::start().await;
    let node = images::unique("ev");
    let http = format!("127.0.0.1:{}", berth::localetcd::free_port().expect("port"));
    let _agent = AgentConfig {
        address: Some("127.0.0.1".to_string()),
        http: Some(http.clone()),
        extra: vec!["--api-anonymous-read".to_string()],
        ..AgentConfig::new(&etcd.endpoint(), etcd.root(), &node)
    }
    .spawn();
    let apply = |yaml: &str| {
        let out = berth(
            &etcd.endpoint(),
            etcd.root(),
            &["apply", "-f", "-"],
            Some(yaml),
        );
        assert_eq!(out.code, 0, "{out:?}");
    };
    apply(&manifest(1));

    // Started, then Ready, both naming the component and the node.
    let start = Instant::now();
    let events = loop {
        let r = reasons(&etcd);
        let names: Vec<&str> = r.iter().map(|(n, _)| n.as_str()).collect();
        if names.contains(&"Started") && names.contains(&"Ready") {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no Started and Ready events: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let started = &events
        .iter()
        .find(|(n, _)| n == "Started")
        .expect("Started")
        .1;
    assert_eq!(started["component"], "web");
    assert_eq!(started["node"], node.as_str());
    let first = events.iter().position(|(n, _)| n == "Started");
    let ready = events.iter().position(|(n, _)| n == "Ready");
    assert!(first < ready, "Started comes before Ready: {events:?}");

    // The table, across projects.
    let table = berth(&etcd.endpoint(), etcd.root(), &["events", "-A"], None);
    let header: Vec<&str> = table
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["AGE", "PROJECT", "COMPONENT", "NODE", "REASON", "MESSAGE"]
    );
    assert!(table.stdout.contains("Started"), "{}", table.stdout);

    // The API serves the same events.
    let api: Value = loop {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "3",
                &format!("http://{http}/api/v1/events?project=shop"),
            ])
            .output()
            .expect("curl");
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout) {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the API did not answer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let api_reasons: Vec<&str> = api["items"]
        .as_array()
        .map(|i| i.iter().filter_map(|e| e["reason"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        api_reasons.contains(&"Started") && api_reasons.contains(&"Ready"),
        "{api}"
    );

    // The API's endpoints route: the ready container, as its agent announces it.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "3",
            &format!("http://{http}/api/v1/projects/shop/endpoints"),
        ])
        .output()
        .expect("curl");
    let endpoints: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(endpoints["items"][0]["node"], node.as_str(), "{endpoints}");
    assert_eq!(
        endpoints["items"][0]["ports"][0]["container"], 8080,
        "{endpoints}"
    );

    // `get containers`: the container, cluster-wide, with its node.
    let ctr = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["get", "containers", "-p", "shop"],
        None,
    );
    let header: Vec<&str> = ctr
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "COMPONENT",
            "NODE",
            "CONTAINER",
            "REVISION",
            "STATE",
            "PORTS",
            "AGE"
        ],
        "{ctr:?}"
    );
    let row = ctr.stdout.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        row.starts_with("web") && row.contains(&node) && row.contains("ready"),
        "{}",
        ctr.stdout
    );
    let json = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["get", "ctr", "-A", "-o", "json"],
        None,
    );
    let v: Value = serde_json::from_str(&json.stdout).unwrap_or_default();
    assert_eq!(
        (
            v["items"][0]["project"].as_str(),
            v["items"][0]["node"].as_str()
        ),
        (Some("shop"), Some(node.as_str()))
    );
    let none = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["get", "containers", "-p", "other"],
        None,
    );
    assert_eq!(none.code, 0);
    assert!(none.stdout.is_empty(), "{none:?}");

    // Followed as they happen: deleting the component drains and stops it.
    let mut watch = Running::start(&etcd, &["events", "-p", "shop", "-w", "-o", "json"]);
    watch.line("\"reason\":\"Ready\"");
    let out = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["delete", "component", "web", "-p", "shop"],
        None,
    );
    assert_eq!(out.code, 0, "{out:?}");
    watch.line("\"reason\":\"Drained\"");
    watch.line("\"reason\":\"Stopped\"");
}
