//! Pinned image identity (`agent::pin`) against a real etcd and the real
//! Docker engine: the first node that starts a revision records its image ID
//! in the revision document (compare-and-swap, first writer wins); a node
//! whose tag resolves to another image starts nothing of that revision and
//! says `ImageMismatch` until the tag matches again.
//!
//! Both agents share one engine, so "two machines with different builds
//! under one tag" is simulated by moving a test-unique tag between the two
//! test images between the two nodes' starts. Assignments are written
//! directly (`coordinate: false`), as the coordinator would.

use std::time::{Duration, Instant};

use berth::docker::Docker;
use berth::resource::component::{ImagePin, Template};
use berth::resource::observed::ContainerPhase;
use berth::resource::{Component, Observed, Revision};
use bollard::query_parameters::{RemoveImageOptions, TagImageOptions};
use serde_json::json;

use crate::agent::{web_spec, AgentProc, Harness, PROJECT};
use crate::support::images::{self, clean_up_in_thread, NodeContainers, WEB1, WEB2};

/// A tag unique to one test, removed when dropped (the images stay).
struct TestTag {
    name: String,
}

impl TestTag {
    /// `berth-test/pin-<8 hex>:1`, pointing at `source`.
    async fn new(docker: &Docker, source: &str) -> TestTag {
        let t = TestTag {
            name: format!("{}:1", images::unique("berth-test/pin")),
        };
        t.point_at(docker, source).await;
        t
    }

    /// Moves the tag to the image `source` names.
    async fn point_at(&self, docker: &Docker, source: &str) {
        let (repo, tag) = self.name.rsplit_once(':').expect("repo:tag");
        let options = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        docker
            .bollard()
            .tag_image(source, Some(options))
            .await
            .expect("docker tag");
    }
}

impl Drop for TestTag {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up_in_thread(move || async move {
            let docker = images::docker().await;
            // The images keep their own tags: this only untags.
            let options = RemoveImageOptions {
                force: true,
                noprune: true,
                ..Default::default()
            };
            let _ = docker
                .bollard()
                .remove_image(&name, Some(options), None)
                .await;
        });
    }
}

async fn image_id(docker: &Docker, reference: &str) -> String {
    docker
        .image_identity(reference)
        .await
        .expect("inspect image")
        .expect("image present")
        .id
}

fn short(id: &str) -> &str {
    &id.trim_start_matches("sha256:")[..12]
}

/// The template of `web` with this image (as `apply` records it).
fn template(image: &str) -> Template {
    let c: Component = serde_json::from_value(json!({
        "apiVersion": "berth/v1",
        "kind": "Component",
        "metadata": {"name": "web", "project": PROJECT},
        "spec": web_spec(image, 1),
    }))
    .expect("a valid component");
    c.spec.template()
}

fn revision_key(h: &Harness) -> String {
    h.store.keys().revision(PROJECT, "web", 1)
}

/// Writes revision 1 of `web` (no pin), as `apply` does.
async fn put_revision(h: &Harness, t: &Template) {
    let rev = Revision {
        seq: 1,
        hash: t.hash(),
        template: t.clone(),
        change_cause: "created".into(),
        created: "2026-01-01T00:00:00Z".into(),
        pin: None,
    };
    let body = serde_json::to_vec(&rev).expect("json");
    h.etcd.put(&revision_key(h), body).await;
}

/// The revision document's pin and the key's etcd version (1: as written,
/// 2: written once more).
async fn pin_and_version(h: &Harness) -> (Option<ImagePin>, i64) {
    let mut c = h.etcd.client().await;
    let r = c.get(revision_key(h), None).await.expect("get");
    let kv = r.kvs().first().expect("revision document");
    let rev: Revision = serde_json::from_slice(kv.value()).expect("revision");
    (rev.pin, kv.version())
}

fn assignment(t: &Template) -> String {
    json!({"generation": 1, "revisions": [
        {"revision": 1, "hash": t.hash(), "template": t, "replicas": 1}
    ]})
    .to_string()
}

fn assignment_key(h: &Harness, node: &str) -> String {
    h.etcd.key(&format!("assignments/{node}/{PROJECT}/web"))
}

/// A second agent (own node name, no coordinator) and the guard of its containers.
fn second_agent(h: &Harness, prefix: &str) -> (AgentProc, String, NodeContainers) {
    let mut cfg = h.cfg.clone();
    cfg.node = images::unique(prefix);
    let node = cfg.node.clone();
    let guard = NodeContainers {
        root: h.etcd.root().to_string(),
        node: node.clone(),
    };
    (AgentProc::start(cfg, h.etcd.endpoint()), node, guard)
}

async fn wait_registered(h: &Harness, node: &str) {
    let key = h.etcd.key(&format!("nodes/{node}"));
    let start = Instant::now();
    while h.etcd.get(&key).await.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{node} never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn one_ready(o: &Observed) -> bool {
    o.containers.len() == 1 && o.containers[0].phase == ContainerPhase::Ready
}

fn mismatch(o: &Observed) -> Option<&berth::resource::Condition> {
    o.conditions
        .iter()
        .find(|c| c.type_ == "ImageMismatch" && c.is_true())
}

/// Node a pins the tag's build X; the tag moves to build Y; node b, asked
/// for the same revision, says `ImageMismatch` (naming both IDs and both
/// nodes) and starts nothing, while a's container runs on untouched; the
/// tag back on X, b starts its container of X. The pin was written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_pin_a_node_whose_tag_points_elsewhere_starts_nothing_until_it_matches() {
    let mut h = Harness::new("agent-pin").await;
    h.cfg.coordinate = false;
    let tag = TestTag::new(&h.docker, WEB1).await;
    let (x, y) = (
        image_id(&h.docker, WEB1).await,
        image_id(&h.docker, WEB2).await,
    );
    assert_ne!(x, y);
    let t = template(&tag.name);
    // `apply` writes revision 1 (unpinned); nothing assigns it but this test.
    h.apply("web", web_spec(&tag.name, 1)).await;
    h.start_agent();
    let (mut agent_b, b, guard_b) = second_agent(&h, "agent-pin-b");
    h.wait_registered(Duration::from_secs(30)).await;
    let a = h.node().to_string();

    h.etcd.put(&assignment_key(&h, &a), assignment(&t)).await;
    let oa = h.wait_ready("web", 1).await;
    let (pin, version) = pin_and_version(&h).await;
    let pin = pin.expect("node a pinned the revision");
    assert_eq!(
        (pin.image_id.as_str(), pin.node.as_str(), version),
        (x.as_str(), a.as_str(), 2)
    );
    assert_eq!(oa.image_id_of(&oa.containers[0].id), Some(x.as_str()));
    let a_containers = h.container_ids().await;

    // The tag now names build Y on "node b's machine".
    tag.point_at(&h.docker, WEB2).await;
    wait_registered(&h, &b).await;
    h.etcd.put(&assignment_key(&h, &b), assignment(&t)).await;
    let long = Duration::from_secs(40);
    let ob = h
        .wait_on(&b, "web", "ImageMismatch", long, |o| mismatch(o).is_some())
        .await;
    assert!(
        guard_b.list().await.is_empty(),
        "node b started a container of another image"
    );
    assert!(ob.containers.is_empty(), "{ob:#?}");
    let m = &mismatch(&ob).expect("condition").message;
    for part in [short(&x), short(&y), &a, &b, &tag.name] {
        assert!(m.contains(part), "{part} missing from {m}");
    }
    assert_eq!(mismatch(&ob).expect("condition").reason, "ImageMismatch");
    assert!(
        ob.events.iter().any(|e| e.reason == "ImageMismatch"),
        "{ob:#?}"
    );
    // Node a's container is not affected.
    assert_eq!(h.container_ids().await, a_containers);
    assert!(one_ready(&h.observed("web").await.expect("a's document")));

    // The operator retags: node b starts its container, of build X.
    tag.point_at(&h.docker, WEB1).await;
    let ob = h
        .wait_on(&b, "web", "1 ready, no mismatch", long, |o| {
            one_ready(o) && mismatch(o).is_none()
        })
        .await;
    assert_eq!(ob.image_id_of(&ob.containers[0].id), Some(x.as_str()));
    let listed = guard_b.list().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].image_id, x);
    // The pin was written once, by a.
    assert_eq!(pin_and_version(&h).await, (Some(pin), 2));
    // `describe` shows the image ID of each node's container and the pin.
    let d = crate::support::cli::berth(
        &h.etcd.endpoint(),
        h.etcd.root(),
        &["describe", "component", "web", "-p", PROJECT],
        None,
    )
    .ok()
    .stdout;
    let (a_line, b_line) = (format!("  {a} "), format!("  {b} "));
    let rows: Vec<&str> = d
        .lines()
        .filter(|l| l.starts_with(&a_line) || l.starts_with(&b_line))
        .collect();
    assert_eq!(rows.len(), 2, "{d}");
    for row in rows {
        assert!(row.contains(short(&x)), "no image id in {row:?}:\n{d}");
    }
    let revision_row = d
        .lines()
        .find(|l| l.starts_with("  1 "))
        .unwrap_or_else(|| panic!("no revision row:\n{d}"));
    assert!(revision_row.contains(short(&x)), "{d}");
    // `get -o wide`: the IMAGE ID column holds the pin of the current revision.
    let g = crate::support::cli::berth(
        &h.etcd.endpoint(),
        h.etcd.root(),
        &["get", "components", "-p", PROJECT, "-o", "wide"],
        None,
    )
    .ok()
    .stdout;
    let mut lines = g.lines();
    let header = lines.next().expect("header");
    let web = lines.find(|l| l.starts_with("web ")).expect("web row");
    let column = header.find("IMAGE ID").unwrap_or_else(|| panic!("{g}"));
    assert_eq!(&web[column..column + 12], short(&x), "{g}");
    agent_b.finish(true);
    h.stop_agent();
}

/// Two nodes asked for a new revision at the same moment: exactly one
/// writes the pin (the key is written once), the other adopts it, and both
/// run the pinned image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_pin_two_nodes_starting_a_revision_at_once_pin_it_once() {
    let mut h = Harness::new("agent-pin2").await;
    h.cfg.coordinate = false;
    let tag = TestTag::new(&h.docker, WEB2).await;
    let x = image_id(&h.docker, WEB2).await;
    let t = template(&tag.name);
    put_revision(&h, &t).await;
    h.start_agent();
    let (mut agent_b, b, _guard_b) = second_agent(&h, "agent-pin2-b");
    h.wait_registered(Duration::from_secs(30)).await;
    wait_registered(&h, &b).await;
    let a = h.node().to_string();
    // Both assignments in one transaction: both agents wake together.
    let mut c = h.etcd.client().await;
    let body = assignment(&t);
    let txn = etcd_client::Txn::new().and_then([
        etcd_client::TxnOp::put(assignment_key(&h, &a), body.clone(), None),
        etcd_client::TxnOp::put(assignment_key(&h, &b), body, None),
    ]);
    c.txn(txn).await.expect("assign both");
    let long = Duration::from_secs(40);
    let oa = h.wait_on(&a, "web", "1 ready", long, one_ready).await;
    let ob = h.wait_on(&b, "web", "1 ready", long, one_ready).await;
    let (pin, version) = pin_and_version(&h).await;
    let pin = pin.expect("pinned");
    assert_eq!(
        version, 2,
        "the revision document was written more than once"
    );
    assert!(pin.node == a || pin.node == b, "{pin:?}");
    assert_eq!(pin.image_id, x);
    for o in [&oa, &ob] {
        assert_eq!(o.image_id_of(&o.containers[0].id), Some(x.as_str()));
        assert!(mismatch(o).is_none(), "{o:#?}");
    }
    agent_b.finish(true);
    h.stop_agent();
}

/// Eight writers (each a node with its own build) resolve the pin of one
/// revision at once: one compare-and-swap lands, every other writer adopts
/// that pin. A missing revision document, or one of another template,
/// leaves the revision unpinned and is not written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_pin_concurrent_writers_agree_on_one_pin() {
    use berth::agent::pin::{Pins, Resolved};
    use berth::docker::image::ImageIdentity;
    use berth::resource::{ComponentKey, RevisionReplicas};

    let etcd = crate::support::etcd::TestEtcd::start().await;
    let store = berth::store::Store::from_client(etcd.client().await, etcd.root());
    let key = store.keys().revision(PROJECT, "web", 1);
    let t = template("berth-test/pin:any");
    let rev = RevisionReplicas {
        revision: 1,
        hash: t.hash(),
        template: t.clone(),
        replicas: 1,
        replacing: 0,
        removing: 0,
    };
    let ck = ComponentKey::new(PROJECT, "web");
    let ident = |i: usize| ImageIdentity {
        id: format!("sha256:{i:064}"),
        repo_digest: None,
    };
    let pins = |i: usize| {
        let client = etcd.client();
        let keys = store.keys().clone();
        async move { Pins::new(client.await, keys, format!("n{i}")) }
    };

    // No document: unpinned, nothing written.
    let p0 = pins(0).await;
    assert!(matches!(
        p0.resolve(&ck, &rev, &ident(0)).await,
        Resolved::Unpinned(_)
    ));
    assert!(etcd.get(&key).await.is_none());
    // A document of another template: unpinned, left as it is.
    let other = Revision {
        seq: 1,
        hash: "0000000000".into(),
        template: t.clone(),
        change_cause: String::new(),
        created: "2026-01-01T00:00:00Z".into(),
        pin: None,
    };
    etcd.put(&key, serde_json::to_vec(&other).expect("json"))
        .await;
    assert!(matches!(
        p0.resolve(&ck, &rev, &ident(0)).await,
        Resolved::Unpinned(_)
    ));
    let written: Revision =
        serde_json::from_slice(&etcd.get(&key).await.expect("doc")).expect("revision");
    assert_eq!(written, other);

    // The revision's own document: eight writers at once.
    let doc = Revision {
        hash: rev.hash.clone(),
        ..other
    };
    etcd.put(&key, serde_json::to_vec(&doc).expect("json"))
        .await;
    let mut writers = Vec::new();
    for i in 1..=8 {
        writers.push(pins(i).await);
    }
    let resolved = futures::future::join_all(writers.iter().enumerate().map(|(i, p)| {
        let (ck, rev) = (ck.clone(), rev.clone());
        async move { p.resolve(&ck, &rev, &ident(i + 1)).await }
    }))
    .await;
    let got: Vec<ImagePin> = resolved
        .into_iter()
        .map(|r| match r {
            Resolved::Pinned(p) => p,
            other => panic!("not pinned: {other:?}"),
        })
        .collect();
    let first = &got[0];
    assert!(got.iter().all(|p| p == first), "writers disagree: {got:#?}");
    let mut c = etcd.client().await;
    let r = c.get(key.as_str(), None).await.expect("get");
    let kv = r.kvs().first().expect("doc");
    // Put twice above, then exactly one pin.
    assert_eq!(kv.version(), 3, "the pin was written more than once");
    let stored: Revision = serde_json::from_slice(kv.value()).expect("revision");
    assert_eq!(stored.pin.as_ref(), Some(first));
    let n: usize = first.node[1..].parse().expect("node number");
    assert_eq!(
        first.image_id,
        ident(n).id,
        "the pin is its writer's own image"
    );
    // Cached: a writer answers with no etcd (it is stopped now).
    drop(c);
    let mut etcd = etcd;
    etcd.stop().await;
    let again = writers[0].resolve(&ck, &rev, &ident(1)).await;
    assert!(matches!(again, Resolved::Pinned(p) if &p == first));
}

/// A rollback to an older template moves its revision to the new number
/// with its pin: the same template runs the same bits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_pin_a_rollback_keeps_the_pin_of_the_revision_it_brings_back() {
    let h = Harness::new("agent-pin-undo").await;
    h.apply("web", web_spec(WEB1, 1)).await;
    // Revision 1 as a node pinned it.
    let key = revision_key(&h);
    let mut rev: Revision =
        serde_json::from_slice(&h.etcd.get(&key).await.expect("revision 1")).expect("revision");
    let pin = ImagePin {
        image_id: image_id(&h.docker, WEB1).await,
        repo_digest: None,
        node: "n1".into(),
        pinned_at: "2026-01-01T00:00:00Z".into(),
    };
    rev.pin = Some(pin.clone());
    h.etcd
        .put(&key, serde_json::to_vec(&rev).expect("json"))
        .await;
    h.apply("web", web_spec(WEB2, 1)).await;
    h.apply("web", web_spec(WEB1, 1)).await;
    let revs = h.store.revisions(PROJECT, "web").await.expect("revisions");
    let seqs: Vec<(u64, Option<&ImagePin>)> =
        revs.iter().map(|r| (r.seq, r.pin.as_ref())).collect();
    assert_eq!(seqs, [(2, None), (3, Some(&pin))], "{revs:#?}");
    assert!(
        revs[1].change_cause.starts_with("rollback to revision 1"),
        "{revs:#?}"
    );
}
