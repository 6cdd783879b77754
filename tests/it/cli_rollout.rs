//! `berth rollout status|pause|resume|promote|undo|restart` against a real
//! etcd. The coordinator is simulated by writing the component's status
//! (its rollout phase and counts); the rollout itself, with real agents, is
//! tested in `cluster_rollout`.

use serde_json::json;

use crate::support::cli::{berth, Output, Running};
use crate::support::etcd::TestEtcd;

fn shop(image: &str) -> String {
    format!(
        "apiVersion: berth/v1
kind: Project
metadata: {{name: shop}}
---
apiVersion: berth/v1
kind: Component
metadata: {{name: web, project: shop}}
spec:
  image: {image}
  placement: {{replicas: 2}}
"
    )
}

fn run(etcd: &TestEtcd, args: &[&str]) -> Output {
    berth(&etcd.endpoint(), etcd.root(), args, None)
}

fn apply(etcd: &TestEtcd, image: &str) {
    berth(
        &etcd.endpoint(),
        etcd.root(),
        &["apply", "-f", "-"],
        Some(&shop(image)),
    )
    .ok();
}

/// A coordinator's status of generation `generation` with this rollout.
fn status(generation: i64, phase: &str, revision: u64, updated: u32) -> String {
    let mut rollout = json!({"phase": phase, "revision": revision, "step": updated,
                             "message": format!("n1: {updated} of revision {revision}")});
    match phase {
        "Failed" | "RolledBack" => {
            rollout["cause"] = json!({"reason": "CrashLoop", "nodes": ["n1", "n2"],
                                      "message": "exit code 1"});
            rollout["stableRevision"] = json!(revision - 1);
        }
        _ => {}
    }
    json!({
        "observedGeneration": generation, "replicas": 2, "readyReplicas": 2,
        "updatedReplicas": updated, "availableReplicas": 2,
        "currentReplicas": 2, "drainingReplicas": 0,
        "updateRevision": revision, "rollout": rollout,
        "lastUpdate": "2026-01-01T00:00:00Z", "coordinator": "n1",
    })
    .to_string()
}

const STATUS: [&str; 4] = ["rollout", "status", "web", "-p"];

fn status_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = STATUS.to_vec();
    args.push("shop");
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn rollout_status_follows_steps_and_exits_by_outcome() {
    let etcd = TestEtcd::start().await;
    apply(&etcd, "bench/web:1");
    apply(&etcd, "bench/web:2");
    let key = etcd.key("status/component/shop/web");

    // Followed step by step until it completes: exit 0.
    etcd.put(&key, status(2, "Progressing", 2, 0)).await;
    let mut following = Running::start(&etcd, &status_args(&[]));
    following.line("[Progressing] revision 2 step 0: 0/2 updated");
    etcd.put(&key, status(2, "Progressing", 2, 1)).await;
    following.line("[Progressing] revision 2 step 1: 1/2 updated");
    etcd.put(&key, status(2, "Complete", 2, 2)).await;
    let out = following.finish();
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout.ends_with(
            "rollout of component/web to revision 2 complete: 2/2 updated, 2 ready, 2 available"
        ),
        "{out:#?}"
    );

    // Each end has its own exit code and last line.
    let ends = [
        ("Failed", 1, "failed: CrashLoop on n1, n2: exit code 1"),
        (
            "RolledBack",
            3,
            "failed (CrashLoop on n1, n2: exit code 1): rolled back to revision 1",
        ),
    ];
    for (phase, code, last) in ends {
        etcd.put(&key, status(2, phase, 2, 1)).await;
        let out = run(&etcd, &status_args(&[]));
        assert_eq!(out.code, code, "{phase}: {out:#?}");
        assert!(out.stdout.trim_end().ends_with(last), "{phase}: {out:#?}");
    }

    // Still progressing at --timeout: exit 4, why on stderr.
    etcd.put(&key, status(2, "Progressing", 2, 1)).await;
    let out = run(&etcd, &status_args(&["--timeout", "1s"]));
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.one_line_error()
            .contains("timed out after 1s waiting for the rollout of component/web: still Progressing at revision 2"),
        "{out:#?}"
    );

    // -o json: one event per line, the last one the end.
    etcd.put(&key, status(2, "RolledBack", 2, 1)).await;
    let out = run(&etcd, &status_args(&["-o", "json"]));
    assert_eq!(out.code, 3, "{out:#?}");
    let events: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event per line"))
        .collect();
    let last = events.last().expect("an event");
    assert_eq!(
        (&last["event"], &last["revision"], &last["rolledBackTo"]),
        (&json!("rolledBack"), &json!(2), &json!(1)),
        "{events:#?}"
    );

    // A status of an older generation is not this rollout's end.
    etcd.put(&key, status(1, "Complete", 1, 2)).await;
    let out = run(&etcd, &status_args(&["--timeout", "1s"]));
    assert_eq!(out.code, 4, "{out:#?}");
    assert!(
        out.stdout
            .contains("waiting for the coordinator to act on generation 2"),
        "{out:#?}"
    );

    // Usage and unknown component.
    let out = run(&etcd, &["rollout", "status", "nope", "-p", "shop"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.one_line_error().contains("not found"), "{out:#?}");
    let out = run(&etcd, &status_args(&["--timeout", "soon"]));
    assert_eq!(out.code, 2, "{out:#?}");
}

/// The spec as stored, and its etcd version.
async fn spec(etcd: &TestEtcd) -> (serde_json::Value, i64) {
    let key = etcd.key("specs/component/shop/web");
    let mut c = etcd.client().await;
    let resp = c.get(key, None).await.expect("get");
    let kv = resp.kvs().first().expect("the spec");
    (
        serde_json::from_slice(kv.value()).expect("json"),
        kv.mod_revision(),
    )
}

#[tokio::test]
async fn rollout_controls_write_the_spec_or_refuse_with_one_line() {
    let etcd = TestEtcd::start().await;
    apply(&etcd, "bench/web:1");
    apply(&etcd, "bench/web:2");
    apply(&etcd, "bench/web:3");
    let key = etcd.key("status/component/shop/web");
    let target = ["web", "-p", "shop"];
    let cmd = |verb: &'static str| {
        let mut v = vec!["rollout", verb];
        v.extend_from_slice(&target);
        v
    };

    // Refusals: one line, exit 1, nothing written.
    etcd.put(&key, status(3, "Complete", 3, 2)).await;
    let (_, before) = spec(&etcd).await;
    let refused: [(Vec<&str>, &str); 5] = [
        (cmd("pause"), "is Complete: there is nothing to pause"),
        (
            cmd("promote"),
            "no canary waiting to be promoted (the rollout is Complete)",
        ),
        (cmd("resume"), "is not paused"),
        (
            [cmd("undo"), vec!["--to-revision", "9"]].concat(),
            "has no revision 9 (it has 1, 2, 3",
        ),
        (
            [cmd("undo"), vec!["--to-revision", "3"]].concat(),
            "already runs the template of revision 3",
        ),
    ];
    for (args, want) in refused {
        let out = run(&etcd, &args);
        assert_eq!(out.code, 1, "{args:?}: {out:#?}");
        assert!(out.one_line_error().contains(want), "{args:?}: {out:#?}");
    }
    assert_eq!(
        spec(&etcd).await.1,
        before,
        "a refused command wrote the spec"
    );

    // Pause and resume a rollout in progress.
    etcd.put(&key, status(3, "Progressing", 3, 1)).await;
    run(&etcd, &cmd("pause")).ok();
    assert_eq!(
        spec(&etcd).await.0["spec"]["rollout"]["paused"],
        json!(true)
    );
    run(&etcd, &cmd("resume")).ok();
    assert_eq!(spec(&etcd).await.0["spec"]["rollout"].get("paused"), None);

    // Promote a waiting canary: the annotation names its revision.
    etcd.put(&key, status(5, "CanaryWaiting", 3, 1)).await;
    let out = run(&etcd, &cmd("promote")).ok();
    assert!(out.stdout.contains("revision 3"), "{out:#?}");
    assert_eq!(
        spec(&etcd).await.0["metadata"]["annotations"]["berth/promote"],
        json!("3")
    );

    // Undo: the previous template comes back as the newest revision.
    run(&etcd, &cmd("undo")).ok();
    let (s, _) = spec(&etcd).await;
    assert_eq!(s["spec"]["image"], json!("bench/web:2"));
    assert_eq!(s["metadata"]["annotations"]["berth/revision"], json!("4"));
    run(&etcd, &[cmd("undo"), vec!["--to-revision", "1"]].concat()).ok();
    assert_eq!(spec(&etcd).await.0["spec"]["image"], json!("bench/web:1"));

    // Restart: same image, a new template (restartedAt), a new revision.
    run(&etcd, &cmd("restart")).ok();
    let (s, _) = spec(&etcd).await;
    assert_eq!(s["spec"]["image"], json!("bench/web:1"));
    assert!(s["spec"]["restartedAt"].is_string(), "{s:#}");
    assert_eq!(s["metadata"]["annotations"]["berth/revision"], json!("6"));
}
