//! The controller runtime and the local etcd against a real etcd: ordering,
//! resume after a dropped connection, relist after compaction, timeouts
//! against a silent etcd, paging,
//! reflector readiness, and a controller end to end.

use std::sync::Arc;
use std::time::Duration;

use berth::localetcd::{LocalEtcd, LocalEtcdConfig};
use berth::runtime::watcher::Error as WatchError;
use berth::runtime::{
    self, reflector, store, trigger_keys, watcher, Action, BackoffConfig, Controller, Event, Kv,
    WatcherConfig,
};
use etcd_client::{Client, Txn, TxnOp};
use futures::{Stream, StreamExt};

use crate::support::etcd::{client_for, TestEtcd};

const STEP: Duration = Duration::from_secs(10);

fn fast_config() -> WatcherConfig {
    WatcherConfig {
        backoff: BackoffConfig {
            min: Duration::from_millis(20),
            max: Duration::from_millis(200),
            factor: 2.0,
            jitter: false,
        },
        ..WatcherConfig::default()
    }
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<Event, WatchError>> + Send>>;

fn watch(client: Client, prefix: String, cfg: WatcherConfig) -> Events {
    Box::pin(watcher(client, prefix, cfg))
}

/// The next item, failing the test after [`STEP`].
async fn next(s: &mut Events) -> Result<Event, WatchError> {
    match tokio::time::timeout(STEP, s.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the watcher ended"),
        Err(_) => panic!("no watcher event within {STEP:?}"),
    }
}

/// The next `Ok` event, skipping (and counting) errors.
async fn next_ok(s: &mut Events, errors: &mut usize) -> Event {
    loop {
        match next(s).await {
            Ok(e) => return e,
            Err(e) => {
                *errors += 1;
                eprintln!("watch error: {e:?}");
                assert!(*errors < 50, "too many watcher errors");
            }
        }
    }
}

/// A short summary of an event: `apply k=v@rev` etc. (keys relative to `root`).
fn show(root: &str, e: &Event) -> String {
    let rel = |kv: &Kv| kv.key.strip_prefix(root).unwrap_or(&kv.key).to_string();
    let val = |kv: &Kv| String::from_utf8_lossy(&kv.value).into_owned();
    match e {
        Event::Init => "init".into(),
        Event::InitDone => "done".into(),
        Event::InitApply(kv) => format!("init {}={}", rel(kv), val(kv)),
        Event::Apply(kv) => format!("apply {}={}", rel(kv), val(kv)),
        Event::Delete(kv) => format!("delete {} (was {})", rel(kv), val(kv)),
    }
}

async fn take(root: &str, s: &mut Events, n: usize) -> (Vec<String>, usize) {
    let mut errors = 0;
    let mut out = Vec::new();
    for _ in 0..n {
        let e = next_ok(s, &mut errors).await;
        out.push(show(root, &e));
    }
    (out, errors)
}

/// Nothing more arrives within a short while.
async fn assert_quiet(s: &mut Events) {
    if let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(300), s.next()).await {
        panic!("unexpected extra watcher item: {item:?}");
    }
}

#[tokio::test]
async fn local_etcd_starts_restarts_keeps_data_and_dies_on_drop() {
    crate::support::etcd::require_etcd();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut etcd = LocalEtcd::start(LocalEtcdConfig::new(dir.path().join("d")))
        .await
        .expect("start");
    let ep = etcd.endpoint();
    assert!(ep.starts_with("http://127.0.0.1:"));
    assert!(etcd.log_path().exists());
    let mut c = client_for(&ep).await;
    c.put("/k", "v", None).await.expect("put");

    etcd.restart().await.expect("restart");
    assert_eq!(etcd.endpoint(), ep, "same port after restart");
    let mut c = client_for(&ep).await;
    let got = c.get("/k", None).await.expect("get after restart");
    assert_eq!(
        got.kvs().first().map(|kv| kv.value()),
        Some(&b"v"[..]),
        "data kept"
    );

    etcd.stop().await.expect("stop");
    assert!(!berth::localetcd::answers(&ep).await);
    etcd.restart().await.expect("start again");
    assert!(berth::localetcd::answers(&ep).await);

    let pid = etcd.pid().expect("pid");
    drop(etcd);
    // kill_on_drop: the child goes away (the runtime reaps it in the background).
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let mut gone = false;
    for _ in 0..100 {
        let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        // Gone, or a zombie waiting to be reaped.
        if state.is_empty() || state.contains(") Z") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "etcd pid {pid} still running after drop");
}

#[tokio::test]
async fn local_etcd_explicit_ports_and_a_clear_error_when_taken() {
    crate::support::etcd::require_etcd();
    let dir = tempfile::tempdir().expect("tempdir");
    let port = berth::localetcd::free_port().expect("port");
    let peer = berth::localetcd::free_port().expect("port");
    let mut cfg = LocalEtcdConfig::new(dir.path().join("a"));
    cfg.client_port = Some(port);
    cfg.peer_port = Some(peer);
    let etcd = LocalEtcd::start(cfg).await.expect("start");
    assert_eq!(etcd.endpoint(), format!("http://127.0.0.1:{port}"));

    // A second etcd on the same ports fails, naming the port.
    let mut cfg = LocalEtcdConfig::new(dir.path().join("b"));
    cfg.client_port = Some(port);
    cfg.peer_port = Some(peer);
    let err = LocalEtcd::start(cfg).await.expect_err("ports are taken");
    let msg = err.to_string();
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(msg.contains("already in use"), "{msg}");
    assert!(berth::localetcd::Error::NotInstalled
        .to_string()
        .contains("hack/install-deps.sh"));
}

#[tokio::test]
async fn watcher_lists_then_sees_puts_and_deletes_in_order() {
    let etcd = TestEtcd::start().await;
    let root = etcd.key("w/");
    etcd.put(&etcd.key("w/b"), "1").await;
    etcd.put(&etcd.key("w/a"), "1").await;
    etcd.put(&etcd.key("other"), "x").await;
    let mut s = watch(etcd.client().await, root.clone(), fast_config());
    let (got, errors) = take(&root, &mut s, 4).await;
    assert_eq!(got, ["init", "init a=1", "init b=1", "done"]);
    assert_eq!(errors, 0);

    etcd.put(&etcd.key("w/c"), "1").await;
    etcd.put(&etcd.key("w/a"), "2").await;
    etcd.put(&etcd.key("other"), "y").await; // outside the prefix
    etcd.delete(&etcd.key("w/b")).await;
    let mut c = etcd.client().await;
    c.txn(Txn::new().and_then([
        TxnOp::put(etcd.key("w/d"), "1", None),
        TxnOp::delete(etcd.key("w/c"), None),
    ]))
    .await
    .expect("txn");
    etcd.delete(&etcd.key("w/nothing-here")).await; // no event: nothing deleted

    let mut revs = Vec::new();
    let mut got = Vec::new();
    let mut errors = 0;
    for _ in 0..5 {
        let e = next_ok(&mut s, &mut errors).await;
        if let Event::Apply(kv) | Event::Delete(kv) = &e {
            revs.push(kv.mod_revision);
        }
        got.push(show(&root, &e));
    }
    assert_eq!(
        got,
        [
            "apply c=1",
            "apply a=2",
            "delete b (was 1)",
            "apply d=1",
            "delete c (was 1)"
        ]
    );
    assert!(revs.windows(2).all(|w| w[0] <= w[1]), "{revs:?}");
    assert_eq!(revs[3], revs[4], "one txn, one revision");
    assert_quiet(&mut s).await;
}

#[tokio::test]
async fn watcher_pages_a_list_at_one_revision() {
    let etcd = TestEtcd::start().await;
    let root = etcd.key("p/");
    let mut c = etcd.client().await;
    for chunk in (0..50).collect::<Vec<_>>().chunks(25) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|i| TxnOp::put(etcd.key(&format!("p/k{i:02}")), "v", None))
            .collect();
        c.txn(Txn::new().and_then(ops)).await.expect("txn");
    }
    let cfg = WatcherConfig {
        page_size: 7,
        ..fast_config()
    };
    let mut s = watch(etcd.client().await, root.clone(), cfg);
    // The stream is lazy: after the first item only the first page was read.
    let (first, _) = take(&root, &mut s, 2).await;
    assert_eq!(first, ["init", "init k00=v"]);
    // Changes made while the list is paged are not in it but come as events.
    etcd.delete(&etcd.key("p/k49")).await;
    etcd.put(&etcd.key("p/k50"), "new").await;
    etcd.put(&etcd.key("p/k01"), "changed").await;
    let (rest, _) = take(&root, &mut s, 50).await;
    let expected: Vec<String> = (1..50)
        .map(|i| format!("init k{i:02}=v"))
        .chain(["done".to_string()])
        .collect();
    assert_eq!(rest, expected);
    let (events, _) = take(&root, &mut s, 3).await;
    assert_eq!(
        events,
        ["delete k49 (was v)", "apply k50=new", "apply k01=changed"]
    );
}

#[tokio::test]
async fn watcher_lists_10000_documents_of_500_bytes() {
    // ~5 MB: over etcd-client's default 4 MB decode limit in one response.
    let etcd = TestEtcd::start().await;
    let root = etcd.key("big/");
    let mut c = etcd.client().await;
    let value = vec![b'x'; 500];
    for chunk in (0..10_000).collect::<Vec<_>>().chunks(100) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|i| TxnOp::put(etcd.key(&format!("big/{i:05}")), value.clone(), None))
            .collect();
        c.txn(Txn::new().and_then(ops)).await.expect("txn");
    }
    for page_size in [1000, 0] {
        // 0 = one unpaged response: works because the decode limit is raised.
        let cfg = WatcherConfig {
            page_size,
            ..fast_config()
        };
        let mut s = watch(etcd.client().await, root.clone(), cfg);
        let mut n = 0;
        let mut errors = 0;
        loop {
            match next_ok(&mut s, &mut errors).await {
                Event::InitApply(_) => n += 1,
                Event::InitDone => break,
                _ => {}
            }
        }
        assert_eq!((n, errors), (10_000, 0), "page_size {page_size}");
    }
}

#[tokio::test]
async fn watcher_resumes_after_etcd_restart_from_the_last_revision() {
    let mut etcd = TestEtcd::start().await;
    let root = etcd.key("r/");
    etcd.put(&etcd.key("r/a"), "1").await;
    let cfg = WatcherConfig {
        // Long enough that the writes below happen while the watcher is away.
        backoff: BackoffConfig {
            min: Duration::from_secs(2),
            max: Duration::from_secs(2),
            factor: 2.0,
            jitter: false,
        },
        ..WatcherConfig::default()
    };
    let mut s = watch(etcd.client().await, root.clone(), cfg);
    let (got, _) = take(&root, &mut s, 3).await;
    assert_eq!(got, ["init", "init a=1", "done"]);
    etcd.put(&etcd.key("r/b"), "1").await;
    let (got, _) = take(&root, &mut s, 1).await;
    assert_eq!(got, ["apply b=1"]);

    etcd.restart().await;
    // Written after the restart, with a new client, before the watcher is back.
    etcd.put(&etcd.key("r/c"), "1").await;
    etcd.delete(&etcd.key("r/a")).await;
    etcd.put(&etcd.key("r/b"), "2").await;

    // The watcher reports the broken stream, then resumes: no Init (no relist),
    // nothing missed, nothing twice.
    let first = next(&mut s).await;
    assert!(
        first.is_err(),
        "expected the dropped connection first: {first:?}"
    );
    let (got, _) = take(&root, &mut s, 3).await;
    assert_eq!(got, ["apply c=1", "delete a (was 1)", "apply b=2"]);
    etcd.put(&etcd.key("r/d"), "1").await;
    let (got, _) = take(&root, &mut s, 1).await;
    assert_eq!(got, ["apply d=1"]);
    assert_quiet(&mut s).await;
}

#[tokio::test]
async fn watcher_resumes_after_a_cut_connection_with_writes_meanwhile() {
    let etcd = TestEtcd::start().await;
    let proxy = etcd.proxy().await;
    let root = etcd.key("x/");
    let mut s = watch(
        client_for(&proxy.endpoint()).await,
        root.clone(),
        fast_config(),
    );
    let (got, _) = take(&root, &mut s, 2).await;
    assert_eq!(got, ["init", "done"]);
    etcd.put(&etcd.key("x/a"), "1").await;
    assert_eq!(take(&root, &mut s, 1).await.0, ["apply a=1"]);

    proxy.cut();
    // The watcher notices (an error item) and keeps failing to reconnect.
    assert!(next(&mut s).await.is_err());
    for i in 0..20 {
        etcd.put(&etcd.key(&format!("x/n{i:02}")), "1").await;
    }
    etcd.delete(&etcd.key("x/a")).await;
    // Still cut off: only errors come.
    if let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(300), s.next()).await {
        panic!("saw {e:?} while cut off");
    }
    proxy.restore();
    let (got, _) = take(&root, &mut s, 21).await;
    let mut expected: Vec<String> = (0..20).map(|i| format!("apply n{i:02}=1")).collect();
    expected.push("delete a (was 1)".into());
    assert_eq!(got, expected);
    assert_quiet(&mut s).await;
}

/// An etcd that accepts connections and never answers: the list and the
/// watch-open each give a timeout error within the configured bound (instead of
/// hanging), and the watcher goes on where it was once etcd answers again.
#[tokio::test]
async fn watcher_times_out_on_a_silent_etcd_and_goes_on() {
    let etcd = TestEtcd::start().await;
    let proxy = etcd.proxy().await;
    let root = etcd.key("s/");
    etcd.put(&etcd.key("s/a"), "1").await;
    proxy.stall();
    let bound = Duration::from_millis(500);
    let cfg = WatcherConfig {
        timeout: bound,
        ..fast_config()
    };
    let mut s = watch(client_for(&proxy.endpoint()).await, root.clone(), cfg);
    // The first list gets no answer: an error item within the bound.
    let start = std::time::Instant::now();
    match next(&mut s).await {
        Err(WatchError::ListTimeout { after, .. }) => assert_eq!(after, bound),
        other => panic!("expected a list timeout, got {other:?}"),
    }
    assert!(start.elapsed() < bound * 4, "took {:?}", start.elapsed());
    proxy.restore();
    assert_eq!(take(&root, &mut s, 3).await.0, ["init", "init a=1", "done"]);

    // Silent again while watching: the stream breaks, re-opening the watch
    // times out (again and again), and nothing is delivered meanwhile.
    proxy.stall();
    etcd.put(&etcd.key("s/b"), "2").await;
    loop {
        match next(&mut s).await {
            Err(WatchError::WatchTimeout { after, .. }) => {
                assert_eq!(after, bound);
                break;
            }
            Err(_) => {}
            Ok(e) => panic!("saw {e:?} while etcd was silent"),
        }
    }
    proxy.restore();
    // Resumed from the last delivered revision: the write made meanwhile, no re-list.
    assert_eq!(take(&root, &mut s, 1).await.0, ["apply b=2"]);
    assert_quiet(&mut s).await;
}

#[tokio::test]
async fn watcher_relists_after_compaction_while_cut_off() {
    let etcd = TestEtcd::start().await;
    let proxy = etcd.proxy().await;
    let root = etcd.key("c/");
    for k in ["a", "b", "c"] {
        etcd.put(&etcd.key(&format!("c/{k}")), "1").await;
    }
    let (reader, writer) = store(|kv: &Kv| String::from_utf8(kv.value.clone()).ok());
    let mut s: Events = Box::pin(reflector(
        writer,
        watcher(
            client_for(&proxy.endpoint()).await,
            root.clone(),
            fast_config(),
        ),
    ));
    let (got, _) = take(&root, &mut s, 5).await;
    assert_eq!(got, ["init", "init a=1", "init b=1", "init c=1", "done"]);

    proxy.cut();
    assert!(next(&mut s).await.is_err());
    // Meanwhile: changes, then compaction past them: the watcher cannot resume.
    etcd.put(&etcd.key("c/d"), "1").await;
    etcd.delete(&etcd.key("c/a")).await;
    etcd.put(&etcd.key("c/b"), "2").await;
    let compacted = etcd.compact().await;
    proxy.restore();

    // It reports the compaction, re-lists at a new revision, and the reflector
    // reports the key that vanished meanwhile.
    let mut saw_compaction = false;
    let ev = loop {
        match next(&mut s).await {
            Ok(ev) => break ev,
            Err(WatchError::Compacted {
                compact_revision, ..
            }) => {
                assert_eq!(compact_revision, compacted);
                saw_compaction = true;
            }
            Err(_) => {}
        }
    };
    assert!(saw_compaction, "the compaction is reported");
    assert_eq!(show(&root, &ev), "init");
    let (got, _) = take(&root, &mut s, 5).await;
    assert_eq!(
        got,
        [
            "init b=2",
            "init c=1",
            "init d=1",
            "done",
            "delete a (was )"
        ]
    );
    assert_eq!(
        reader.keys(),
        [etcd.key("c/b"), etcd.key("c/c"), etcd.key("c/d")]
    );
    assert_eq!(
        reader.get(&etcd.key("c/b")).as_deref().map(String::as_str),
        Some("2")
    );

    // And watches on from the new list's revision.
    etcd.put(&etcd.key("c/e"), "1").await;
    assert_eq!(take(&root, &mut s, 1).await.0, ["apply e=1"]);
    assert_quiet(&mut s).await;
}

#[tokio::test]
async fn reflector_is_ready_only_after_the_full_list() {
    let etcd = TestEtcd::start().await;
    let root = etcd.key("f/");
    for i in 0..25 {
        etcd.put(&etcd.key(&format!("f/{i:02}")), format!("{i}"))
            .await;
    }
    etcd.put(&etcd.key("f/zz-bad"), "not a number").await;
    let (reader, writer) =
        store(|kv: &Kv| std::str::from_utf8(&kv.value).ok()?.parse::<u32>().ok());
    let cfg = WatcherConfig {
        page_size: 10,
        ..fast_config()
    };
    let waiter = {
        let reader = reader.clone();
        tokio::spawn(async move {
            reader.wait_until_ready().await.expect("ready");
            reader.len()
        })
    };
    let mut s: Events = Box::pin(reflector(
        writer,
        watcher(etcd.client().await, root.clone(), cfg),
    ));
    let mut seen = 0;
    loop {
        let ev = next(&mut s).await.expect("no errors");
        assert!(!reader.is_ready() || ev == Event::InitDone || seen > 26);
        seen += 1;
        if ev == Event::InitDone {
            break;
        }
        assert!(!reader.is_ready(), "ready before InitDone");
        assert_eq!(reader.len(), 0, "half a list is never visible");
    }
    assert!(reader.is_ready());
    // The undecodable value is skipped, not fatal.
    assert_eq!(reader.len(), 25);
    assert_eq!(waiter.await.expect("waiter"), 25);
    assert_eq!(reader.get(&etcd.key("f/07")).as_deref(), Some(&7));
    assert!(reader.get(&etcd.key("f/zz-bad")).is_none());
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReconcileError(String);

struct Ctx {
    client: Client,
    specs: runtime::Reader<String>,
    root: String,
}

/// Mirrors `specs/<name>` into `status/<name>` (upper-cased); deletes the
/// status when the spec is gone. Level-triggered: reads the cache, not the event.
async fn mirror(key: String, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let name = key.rsplit('/').next().unwrap_or_default().to_string();
    let status = format!("{}/status/{name}", ctx.root);
    let mut c = ctx.client.clone();
    match ctx.specs.get(&key) {
        Some(spec) => c
            .put(status, spec.to_uppercase(), None)
            .await
            .map(|_| ())
            .map_err(|e| ReconcileError(e.to_string()))?,
        None => c
            .delete(status, None)
            .await
            .map(|_| ())
            .map_err(|e| ReconcileError(e.to_string()))?,
    }
    Ok(Action::await_change())
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn controller_reconciles_every_key_end_to_end() {
    let etcd = TestEtcd::start().await;
    let specs = etcd.key("specs/");
    etcd.put(&etcd.key("specs/one"), "a").await;
    etcd.put(&etcd.key("specs/two"), "b").await;
    let (reader, writer) = store(|kv: &Kv| String::from_utf8(kv.value.clone()).ok());
    let triggers = trigger_keys(reflector(
        writer,
        watcher(etcd.client().await, specs, fast_config()),
    ));
    let ctx = Arc::new(Ctx {
        client: etcd.client().await,
        specs: reader.clone(),
        root: etcd.root().to_string(),
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let results = tokio::spawn(
        Controller::new(reader, triggers)
            .graceful_shutdown_on(async move {
                let _ = stop_rx.await;
            })
            .run(mirror, |_, _, _| Action::backoff(), ctx)
            .collect::<Vec<_>>(),
    );
    let status = etcd.key("status/");
    wait_for("both statuses", async || {
        etcd.keys(&status).await.len() == 2
    })
    .await;
    assert_eq!(
        etcd.get_string(&etcd.key("status/one")).await.as_deref(),
        Some("A")
    );

    etcd.put(&etcd.key("specs/three"), "c").await;
    etcd.put(&etcd.key("specs/one"), "z").await;
    etcd.delete(&etcd.key("specs/two")).await;
    wait_for("the changes", async || {
        etcd.keys(&status).await == [etcd.key("status/one"), etcd.key("status/three")]
            && etcd.get_string(&etcd.key("status/one")).await.as_deref() == Some("Z")
    })
    .await;
    let _ = stop_tx.send(());
    let results = tokio::time::timeout(STEP, results)
        .await
        .expect("controller stops")
        .expect("controller task");
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    assert!(results.len() >= 5);
}
