//! Node verbs and coordinator-aware reads against a real etcd: `get nodes`
//! (status, role, NotReady nodes with last seen), `cordon`, `uncordon`,
//! `label node`, `delete node`, `drain`, `wait`, and stale component
//! status. Agents and the coordinator are simulated by writing their keys
//! (a registration on a lease, records, the election key, statuses).

use std::time::{Duration, SystemTime};

use etcd_client::PutOptions;
use serde_json::json;

use crate::cli::snapshot;
use crate::support::cli::{berth, Output, Running};
use crate::support::etcd::TestEtcd;

const SHOP: &str = "apiVersion: berth/v1
kind: Project
metadata: {name: shop}
---
apiVersion: berth/v1
kind: Component
metadata: {name: web, project: shop}
spec:
  image: bench/web:1
  placement: {replicas: 2}
";

fn run(etcd: &TestEtcd, args: &[&str]) -> Output {
    berth(&etcd.endpoint(), etcd.root(), args, None)
}

fn rfc3339_ago(secs: u64) -> String {
    let t = SystemTime::now() - Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Registers `name` as its agent would: `nodes/<name>` on a lease of its
/// own. Returns the lease (revoke it to make the agent "gone").
async fn register(etcd: &TestEtcd, name: &str, labels: serde_json::Value) -> i64 {
    let mut c = etcd.client().await;
    let lease = c.lease_grant(120, None).await.expect("lease").id();
    let node = json!({
        "apiVersion": "berth/v1", "kind": "Node",
        "metadata": {"name": name, "creationTimestamp": rfc3339_ago(30)},
        "status": {
            "address": format!("10.0.0.{}", name.len()), "agentVersion": "9.9.9",
            "labels": labels, "lastHeartbeat": rfc3339_ago(1),
            "conditions": [{"type": "Ready", "status": "True", "reason": "AgentReady"}]
        }
    });
    c.put(
        etcd.key(&format!("nodes/{name}")),
        node.to_string(),
        Some(PutOptions::new().with_lease(lease)),
    )
    .await
    .expect("register");
    lease
}

async fn revoke(etcd: &TestEtcd, lease: i64) {
    let mut c = etcd.client().await;
    c.lease_revoke(lease).await.expect("revoke");
}

/// The coordinator's record of a node.
async fn record(etcd: &TestEtcd, name: &str, phase: &str, last_seen_ago: u64) {
    let rec = json!({
        "phase": phase, "since": rfc3339_ago(last_seen_ago),
        "lastSeen": rfc3339_ago(last_seen_ago), "firstSeen": rfc3339_ago(7200),
        "address": "10.9.9.9", "labels": {"zone": "b"}
    });
    etcd.put(&etcd.key(&format!("status/node/{name}")), rec.to_string())
        .await;
}

async fn observed(etcd: &TestEtcd, node: &str, component: &str, containers: usize) {
    let cs: Vec<serde_json::Value> = (0..containers)
        .map(|i| {
            json!({"id": format!("c{i}"), "name": format!("{component}-{i}"),
                   "revision": 1, "hash": "h", "phase": "ready"})
        })
        .collect();
    let doc = json!({"node": node, "generation": 1, "revision": 1, "containers": cs});
    etcd.put(
        &etcd.key(&format!("observed/{node}/shop/{component}")),
        doc.to_string(),
    )
    .await;
}

async fn spec_json(etcd: &TestEtcd, rel: &str) -> Option<serde_json::Value> {
    etcd.get(&etcd.key(rel))
        .await
        .map(|v| serde_json::from_slice(&v).expect("stored JSON"))
}

/// The row of `name` in a table, split on runs of 3+ spaces.
fn table_row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"))
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn get_nodes_shows_status_role_address_and_not_ready_nodes() {
    let etcd = TestEtcd::start().await;
    register(&etcd, "n1", json!({"zone": "a"})).await;
    register(&etcd, "n22", json!({})).await;
    record(&etcd, "n1", "Ready", 2).await;
    // n3's agent is gone: only the coordinator's record is left.
    record(&etcd, "n3", "NotReady", 600).await;
    etcd.put(&etcd.key("election/coordinator"), "n1").await;
    run(&etcd, &["cordon", "n22"]).ok();

    let table = run(&etcd, &["get", "nodes"]).ok().stdout;
    let header = table.lines().next().unwrap_or_default();
    let cols: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cols,
        [
            "NAME",
            "STATUS",
            "ROLE",
            "ADDRESS",
            "LAST SEEN",
            "AGE",
            "VERSION"
        ],
        "{table}"
    );
    let n1 = table_row(&table, "n1");
    assert_eq!(n1[1..4], ["Ready", "coordinator", "10.0.0.2"], "{table}");
    // Age from the record's first sighting (2 h), not the registration's.
    assert_eq!(n1[5], "2h", "{table}");
    let n22 = table_row(&table, "n22");
    assert_eq!(n22[1..3], ["Ready,Cordoned", "<none>"], "{table}");
    let n3 = table_row(&table, "n3");
    assert_eq!(
        n3[1..7],
        ["NotReady", "<none>", "10.9.9.9", "10m", "2h", "<none>"],
        "{table}"
    );

    let wide = run(&etcd, &["get", "nodes", "-o", "wide"]).ok().stdout;
    assert!(wide.lines().next().unwrap_or_default().ends_with("LABELS"));
    assert!(table_row(&wide, "n1").last().is_some_and(|l| l == "zone=a"));
    assert!(table_row(&wide, "n3").last().is_some_and(|l| l == "zone=b"));

    let json: serde_json::Value =
        serde_json::from_str(&run(&etcd, &["get", "nodes", "-o", "json"]).ok().stdout)
            .expect("json");
    let items = json["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0]["metadata"]["annotations"]["berth/role"],
        "coordinator"
    );
    assert_eq!(items[2]["status"]["conditions"][0]["status"], "False");
    assert_eq!(
        items[2]["status"]["conditions"][0]["reason"],
        "AgentNotRegistered"
    );

    let d = run(&etcd, &["describe", "node", "n3"]).ok().stdout;
    assert!(d.contains("Status:       NotReady"), "{d}");
    assert!(d.contains("(10m ago)"), "{d}");
}

#[tokio::test]
async fn cordon_uncordon_and_label_write_the_node_spec() {
    let etcd = TestEtcd::start().await;
    register(&etcd, "n1", json!({"zone": "a"})).await;
    let spec = "specs/node/n1";

    assert_eq!(
        run(&etcd, &["cordon", "n1"]).ok().stdout,
        "node/n1 cordoned\n"
    );
    let doc = spec_json(&etcd, spec).await.expect("spec written");
    assert_eq!(doc["spec"]["unschedulable"], true, "{doc}");
    assert_eq!(
        run(&etcd, &["cordon", "node/n1"]).ok().stdout,
        "node/n1 already cordoned\n"
    );

    let out = run(&etcd, &["label", "node", "n1", "disk=ssd", "rack=r1"]).ok();
    assert_eq!(out.stdout, "node/n1 labeled\n");
    let doc = spec_json(&etcd, spec).await.expect("spec");
    assert_eq!(
        doc["metadata"]["labels"],
        json!({"disk": "ssd", "rack": "r1"})
    );
    // The cordon made before is kept.
    assert_eq!(doc["spec"]["unschedulable"], true);

    // Changing a value needs --overwrite, for the user's and the agent's labels.
    for item in ["disk=hdd", "zone=b"] {
        let before = snapshot(&etcd).await;
        let out = run(&etcd, &["label", "node", "n1", item]);
        assert_eq!(out.code, 1, "{out:#?}");
        assert!(out.one_line_error().contains("--overwrite"), "{out:#?}");
        assert_eq!(snapshot(&etcd).await, before, "{item}: nothing written");
    }
    run(&etcd, &["label", "node/n1", "disk=hdd", "--overwrite"]).ok();
    run(&etcd, &["label", "node", "n1", "zone=b", "--overwrite"]).ok();
    let out = run(&etcd, &["label", "node", "n1", "rack-"]).ok();
    assert_eq!(out.stdout, "node/n1 unlabeled\n");
    let doc = spec_json(&etcd, spec).await.expect("spec");
    assert_eq!(
        doc["metadata"]["labels"],
        json!({"disk": "hdd", "zone": "b"})
    );
    // Same value again: nothing to write.
    let before = snapshot(&etcd).await;
    assert_eq!(
        run(&etcd, &["label", "node", "n1", "disk=hdd"]).ok().stdout,
        "node/n1 not labeled\n"
    );
    assert_eq!(snapshot(&etcd).await, before);

    let wide = run(&etcd, &["get", "nodes", "-o", "wide"]).ok().stdout;
    let row = table_row(&wide, "n1");
    assert_eq!(row[1], "Ready,Cordoned", "{wide}");
    assert_eq!(row.last().map(String::as_str), Some("disk=hdd,zone=b"));

    assert_eq!(
        run(&etcd, &["uncordon", "n1"]).ok().stdout,
        "node/n1 uncordoned\n"
    );
    let doc = spec_json(&etcd, spec).await.expect("spec");
    assert!(doc["spec"].get("unschedulable").is_none(), "{doc}");
    let table = run(&etcd, &["get", "nodes"]).ok().stdout;
    assert_eq!(table_row(&table, "n1")[1], "Ready");

    // A node known only from its record can be cordoned too.
    record(&etcd, "n9", "NotReady", 60).await;
    run(&etcd, &["cordon", "n9"]).ok();
    let table = run(&etcd, &["get", "nodes"]).ok().stdout;
    assert_eq!(table_row(&table, "n9")[1], "NotReady,Cordoned", "{table}");
}

#[tokio::test]
async fn bad_node_input_is_one_line_and_writes_nothing() {
    let etcd = TestEtcd::start().await;
    register(&etcd, "n1", json!({"zone": "a"})).await;
    let cases: &[(&[&str], i32, &str)] = &[
        (&["cordon", "ghost"], 1, "node/ghost"),
        (&["uncordon", "ghost"], 1, "node/ghost"),
        (&["drain", "ghost", "--timeout", "1s"], 1, "node/ghost"),
        (&["label", "node", "ghost", "a=b"], 1, "node/ghost"),
        (&["label", "node", "n1", "bad key=x"], 1, "invalid key"),
        (&["label", "node", "n1", "tier=-x"], 1, "invalid value"),
        (&["label", "node", "n1", "tier"], 1, "KEY=VALUE"),
        (&["label", "node", "n1", "zone-"], 1, "--labels"),
        (&["label", "node", "n1"], 2, "at least one"),
        (&["label", "comp", "web", "a=b"], 2, "nodes only"),
        (&["cordon", "comp/web"], 2, "node/NAME"),
    ];
    let before = snapshot(&etcd).await;
    for (args, code, text) in cases {
        let out = run(&etcd, args);
        assert_eq!(out.code, *code, "{args:?}: {out:#?}");
        assert!(out.one_line_error().contains(text), "{args:?}: {out:#?}");
        assert_eq!(snapshot(&etcd).await, before, "{args:?} wrote something");
    }
}

#[tokio::test]
async fn delete_node_is_refused_while_registered_then_forgets_it() {
    let etcd = TestEtcd::start().await;
    let lease = register(&etcd, "n1", json!({})).await;
    record(&etcd, "n1", "Ready", 1).await;
    run(&etcd, &["label", "node", "n1", "disk=ssd"]).ok();

    let before = snapshot(&etcd).await;
    let out = run(&etcd, &["delete", "node", "n1"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.one_line_error().contains("registered"), "{out:#?}");
    assert!(out.one_line_error().contains("drain"), "{out:#?}");
    assert_eq!(snapshot(&etcd).await, before);

    // The agent goes away: the node stays listed, NotReady, until deleted.
    revoke(&etcd, lease).await;
    record(&etcd, "n1", "NotReady", 1).await;
    let table = run(&etcd, &["get", "nodes"]).ok().stdout;
    assert_eq!(table_row(&table, "n1")[1], "NotReady", "{table}");
    assert_eq!(
        run(&etcd, &["delete", "node", "n1"]).ok().stdout,
        "node/n1 deleted\n"
    );
    assert_eq!(etcd.get(&etcd.key("specs/node/n1")).await, None);
    assert_eq!(etcd.get(&etcd.key("status/node/n1")).await, None);
    let out = run(&etcd, &["get", "nodes"]).ok();
    assert!(!out.stdout.contains("n1"), "{out:#?}");
    let out = run(&etcd, &["delete", "node", "n1"]);
    assert_eq!(out.code, 1);
    assert!(out.one_line_error().contains("not found"), "{out:#?}");
}

#[tokio::test]
async fn drain_ends_when_the_node_runs_nothing() {
    let etcd = TestEtcd::start().await;
    register(&etcd, "n1", json!({})).await;
    observed(&etcd, "n1", "web", 2).await;
    observed(&etcd, "n1", "api", 0).await;

    let mut drain = Running::start(&etcd, &["drain", "n1", "--timeout", "60s"]);
    drain.line("node/n1 cordoned, draining");
    // The agent drains: one container left, then the document empties.
    drain.line("2 container(s) left (shop/web 2)");
    let spec = spec_json(&etcd, "specs/node/n1").await.expect("spec");
    assert_eq!(spec["spec"], json!({"unschedulable": true, "drain": true}));
    observed(&etcd, "n1", "web", 1).await;
    drain.line("1 container(s) left (shop/web 1)");
    observed(&etcd, "n1", "web", 0).await;
    let out = drain.finish();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stdout.ends_with("node/n1 drained"), "{out:#?}");

    let table = run(&etcd, &["get", "nodes"]).ok().stdout;
    assert_eq!(table_row(&table, "n1")[1], "Ready,Draining", "{table}");
    // Nothing left at all: a second drain ends at once.
    etcd.delete(&etcd.key("observed/n1/shop/web")).await;
    run(&etcd, &["drain", "n1"]).ok();
    run(&etcd, &["uncordon", "n1"]).ok();
    let spec = spec_json(&etcd, "specs/node/n1").await.expect("spec");
    assert_eq!(spec["spec"], json!({}));
}

#[tokio::test]
async fn drain_times_out_naming_what_is_left() {
    let etcd = TestEtcd::start().await;
    register(&etcd, "n1", json!({})).await;
    observed(&etcd, "n1", "web", 1).await;
    let out = run(&etcd, &["drain", "n1", "--timeout", "1s"]);
    assert_eq!(out.code, 1, "{out:#?}");
    let err = out.one_line_error();
    assert!(err.contains("not drained after 1s"), "{err}");
    assert!(err.contains("1 container(s) left (shop/web 1)"), "{err}");
    // It stays cordoned and draining.
    let table = run(&etcd, &["get", "nodes"]).ok().stdout;
    assert_eq!(table_row(&table, "n1")[1], "Ready,Draining", "{table}");
}

/// A coordinator-written status of shop/web.
fn status(generation: i64, available: bool, progressing: bool) -> String {
    let cond = |t: &str, ok: bool| {
        json!({"type": t, "status": if ok { "True" } else { "False" },
               "reason": "R", "message": format!("{t} is {ok}")})
    };
    json!({
        "observedGeneration": generation, "replicas": 2,
        "readyReplicas": if available { 2 } else { 1 },
        "updatedReplicas": 2, "availableReplicas": if available { 2 } else { 1 },
        "currentReplicas": 2, "drainingReplicas": 0,
        "conditions": [cond("Available", available), cond("Progressing", progressing)],
        "lastUpdate": "2026-01-01T00:00:00Z", "coordinator": "n1",
        "nodes": {"n1": {"desired": 2, "current": 2, "ready": 2, "draining": 0, "revision": 1}}
    })
    .to_string()
}

#[tokio::test]
async fn wait_exit_codes() {
    let etcd = TestEtcd::start().await;
    berth(
        &etcd.endpoint(),
        etcd.root(),
        &["apply", "-f", "-"],
        Some(SHOP),
    )
    .ok();
    let status_key = etcd.key("status/component/shop/web");
    etcd.put(&status_key, status(1, false, true)).await;
    let wait_available = [
        "wait",
        "component/web",
        "-p",
        "shop",
        "--for=condition=Available",
    ];

    // Not met before the timeout: exit 1, the last status on one line.
    let mut args = wait_available.to_vec();
    args.extend(["--timeout", "1s"]);
    let out = run(&etcd, &args);
    assert_eq!(out.code, 1, "{out:#?}");
    let err = out.one_line_error();
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(
        err.contains("1/2 ready") && err.contains("Available=False"),
        "{err}"
    );
    // Available, but for an older generation: not met either.
    etcd.put(&status_key, status(0, true, false)).await;
    let out = run(&etcd, &args);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.one_line_error().contains("observed 0"), "{out:#?}");

    // Met while waiting: exit 0.
    etcd.put(&status_key, status(1, false, true)).await;
    let waiting = Running::start(&etcd, &wait_available);
    etcd.put(&status_key, status(1, true, false)).await;
    let out = waiting.finish();
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stdout, "component/web condition met");
    let out = run(
        &etcd,
        &[
            "wait",
            "comp",
            "web",
            "-p",
            "shop",
            "--for=condition=Progressing=False",
        ],
    )
    .ok();
    assert_eq!(out.stdout, "component/web condition met\n");

    // Unknown object or condition: exit 1; bad syntax or kind: exit 2.
    let bad: &[(&[&str], i32, &str)] = &[
        (
            &[
                "wait",
                "comp/nope",
                "-p",
                "shop",
                "--for=condition=Available",
            ],
            1,
            "not found",
        ),
        (
            &["wait", "comp/web", "-p", "shop", "--for=condition=Bogus"],
            1,
            "Bogus",
        ),
        (
            &["wait", "comp/web", "-p", "shop", "--for=ready"],
            2,
            "--for",
        ),
        (
            &[
                "wait",
                "comp/web",
                "-p",
                "shop",
                "--for=condition=Available=maybe",
            ],
            2,
            "--for",
        ),
        (
            &["wait", "project/shop", "--for=delete"],
            2,
            "components only",
        ),
    ];
    let before = snapshot(&etcd).await;
    for (args, code, text) in bad {
        let out = run(&etcd, args);
        assert_eq!(out.code, *code, "{args:?}: {out:#?}");
        assert!(out.one_line_error().contains(text), "{args:?}: {out:#?}");
    }
    assert_eq!(snapshot(&etcd).await, before);

    // --for=delete: ends when the component is deleted, at once when gone.
    let waiting = Running::start(&etcd, &["wait", "comp/web", "-p", "shop", "--for=delete"]);
    run(&etcd, &["delete", "component", "web", "-p", "shop"]).ok();
    let out = waiting.finish();
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "component/web deleted"),
        "{out:#?}"
    );
    run(&etcd, &["wait", "comp/web", "-p", "shop", "--for=delete"]).ok();
}

#[tokio::test]
async fn component_status_is_stale_without_a_coordinator() {
    let etcd = TestEtcd::start().await;
    berth(
        &etcd.endpoint(),
        etcd.root(),
        &["apply", "-f", "-"],
        Some(SHOP),
    )
    .ok();
    etcd.put(
        &etcd.key("status/component/shop/web"),
        status(1, true, false),
    )
    .await;
    // Observed state says otherwise: with a status it is not looked at.
    observed(&etcd, "n1", "web", 0).await;

    let out = run(&etcd, &["get", "comp", "-p", "shop"]).ok();
    let row = table_row(&out.stdout, "web");
    assert_eq!(row[1..5], ["2/2", "2", "2", "Stale"], "{out:#?}");
    assert!(
        out.stderr.contains("stale") && out.stderr.contains("2026-01-01T00:00:00Z"),
        "{out:#?}"
    );
    let d = run(&etcd, &["describe", "comp", "web", "-p", "shop"])
        .ok()
        .stdout;
    assert!(
        d.contains("stale since 2026-01-01T00:00:00Z (no coordinator running)"),
        "{d}"
    );
    assert!(d.contains("Replicas:     2 desired | 2 ready"), "{d}");

    // A coordinator runs: the status is current.
    etcd.put(&etcd.key("election/coordinator"), "n1").await;
    let out = run(&etcd, &["get", "comp", "-p", "shop"]).ok();
    assert_eq!(table_row(&out.stdout, "web")[4], "Running", "{out:#?}");
    assert_eq!(out.stderr, "");
    let d = run(&etcd, &["describe", "comp", "web", "-p", "shop"])
        .ok()
        .stdout;
    assert!(d.contains("by coordinator n1"), "{d}");
    assert!(d.contains("Nodes:"), "{d}");
}
