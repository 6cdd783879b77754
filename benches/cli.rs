//! CLI benchmarks of issue 2, against a throwaway local etcd:
//!
//! 1. `berth apply -f` of one file with 1,000 components (process start to exit),
//!    against a baseline of writing the same 1,000 documents with raw etcd-client
//!    transactions in the same run.
//! 2. `berth get components -A` with 10,000 components stored: wall time and
//!    peak RSS, against a baseline raw prefix list of the same keys.
//! 3. `berth get -w -o json`: delay from a write's acknowledgement to the line
//!    appearing on the watcher's stdout, over 100 writes.
//!
//! Run: `cargo bench --bench cli` (prints a Markdown table for BENCHMARKS.md).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::localetcd::{LocalEtcd, LocalEtcdConfig};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const RUNS: usize = 7;

fn component_yaml(project: &str, i: usize, image: &str) -> String {
    format!(
        "---\napiVersion: berth/v1\nkind: Component\nmetadata:\n  name: c{i}\n  project: {project}\n  labels: {{app: bench, shard: \"s{}\"}}\nspec:\n  image: {image}\n  command: [\"/bin/httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n  env: {{GREETING: hello}}\n  ports: [{{name: http, container: 8080}}]\n  placement: {{replicas: 2}}\n  readyChecks: [{{http: {{port: 8080, path: /}}, interval: 1s}}]\n",
        i % 10
    )
}

fn manifest(project: &str, n: usize, image: &str) -> String {
    let mut s = format!("apiVersion: berth/v1\nkind: Project\nmetadata:\n  name: {project}\n");
    for i in 0..n {
        s.push_str(&component_yaml(project, i, image));
    }
    s
}

/// Runs berth, returns (wall time, peak RSS in KiB, stdout).
/// The child is reaped with `wait4` (to read its own peak RSS), not `wait`.
#[allow(clippy::zombie_processes)]
fn run_berth(endpoint: &str, root: &str, args: &[&str]) -> (Duration, i64, String) {
    let start = Instant::now();
    let child = Command::new(BERTH)
        .args(["--etcd", endpoint, "--root", root])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).ok();
        s
    });
    let mut status = 0;
    // SAFETY: plain libc call on our own child's pid with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    let out = reader.join().unwrap_or_default();
    assert!(status == 0, "berth {args:?} failed with status {status}");
    (elapsed, usage.ru_maxrss, out)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = LocalEtcd::start(LocalEtcdConfig::new(dir.path().join("etcd")))
        .await
        .expect("start etcd (run hack/install-deps.sh)");
    let ep = etcd.endpoint();
    let client = etcd_client::Client::connect([ep.clone()], None)
        .await
        .expect("connect");
    println!("| benchmark | berth (median of {RUNS}) | baseline, same run | ratio |");
    println!("|---|---|---|---|");

    // 1. apply of 1,000 components, each run into a fresh root (all "created").
    let file = dir.path().join("apply-1000.yaml");
    std::fs::write(&file, manifest("bench", 1000, "bench/web:1")).expect("write manifest");
    let file = file.to_string_lossy().to_string();
    let mut times = Vec::new();
    for r in 0..RUNS {
        let (t, _, out) = run_berth(&ep, &format!("/apply{r}"), &["apply", "-f", &file]);
        assert_eq!(
            out.lines().filter(|l| l.ends_with(" created")).count(),
            1001
        );
        times.push(t);
    }
    let apply = median(times);
    // Unchanged re-apply (reads only).
    let mut times = Vec::new();
    for _ in 0..RUNS {
        times.push(run_berth(&ep, "/apply0", &["apply", "-f", &file]).0);
    }
    let reapply = median(times);
    // Baseline: the same 1,000 documents (as berth stores them) written raw
    // in 8 transactions.
    let docs: Vec<(Vec<u8>, Vec<u8>)> = {
        let mut kv = client.kv_client();
        let resp = kv
            .get(
                "/apply0/specs/component/bench/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .expect("get");
        resp.kvs()
            .iter()
            .map(|kv| (kv.key().to_vec(), kv.value().to_vec()))
            .collect()
    };
    let mut times = Vec::new();
    for r in 0..RUNS {
        let mut kv = client.kv_client();
        let start = Instant::now();
        for chunk in docs.chunks(125) {
            let ops: Vec<etcd_client::TxnOp> = chunk
                .iter()
                .map(|(k, v)| {
                    let key = [format!("/raw{r}").as_bytes(), k.as_slice()].concat();
                    etcd_client::TxnOp::put(key, v.clone(), None)
                })
                .collect();
            kv.txn(etcd_client::Txn::new().and_then(ops))
                .await
                .expect("txn");
        }
        times.push(start.elapsed());
    }
    let raw_write = median(times);
    println!(
        "| `berth apply -f` 1,000 components (new), process start to exit | {} | raw etcd-client: 1,000 puts in 8 txns {} | {:.1}x |",
        ms(apply),
        ms(raw_write),
        apply.as_secs_f64() / raw_write.as_secs_f64()
    );
    println!(
        "| `berth apply -f` same file again (all unchanged) | {} | | |",
        ms(reapply)
    );

    // 2. get -A over 10,000 components: 10 projects x 1,000.
    for p in 0..10 {
        let f = dir.path().join(format!("p{p}.yaml"));
        std::fs::write(&f, manifest(&format!("p{p}"), 1000, "bench/web:1")).expect("write");
        run_berth(&ep, "/big", &["apply", "-f", &f.to_string_lossy()]);
    }
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..RUNS {
        let (t, r, out) = run_berth(&ep, "/big", &["get", "components", "-A"]);
        assert_eq!(out.lines().count(), 10_001);
        times.push(t);
        rss.push(r);
    }
    rss.sort_unstable();
    let get = median(times);
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let mut kv = client.kv_client().max_decoding_message_size(64 << 20);
        let start = Instant::now();
        let resp = kv
            .get(
                "/big/specs/component/",
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .expect("list");
        assert_eq!(resp.kvs().len(), 10_000);
        times.push(start.elapsed());
    }
    let raw_list = median(times);
    println!(
        "| `berth get components -A`, 10,000 stored | {} (peak RSS {:.1} MB) | raw etcd-client list of the 10,000 keys {} | {:.1}x |",
        ms(get),
        rss[rss.len() / 2] as f64 / 1024.0,
        ms(raw_list),
        get.as_secs_f64() / raw_list.as_secs_f64()
    );

    // 3. get -w latency: write, then time until the watcher prints it.
    let f = dir.path().join("one.yaml");
    std::fs::write(&f, manifest("w", 1, "bench/web:1")).expect("write");
    run_berth(&ep, "/watch", &["apply", "-f", &f.to_string_lossy()]);
    let mut child = Command::new(BERTH)
        .args([
            "--etcd",
            &ep,
            "--root",
            "/watch",
            "get",
            "components",
            "-p",
            "w",
            "-w",
            "-o",
            "json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn watcher");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(first.contains("\"ADDED\""), "{first}");
    let (tx, rx) = std::sync::mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("MODIFIED") && tx.send(Instant::now()).is_err() {
                break;
            }
        }
    });
    let mut kv = client.kv_client();
    let key = "/watch/specs/component/w/c0";
    let base = kv.get(key, None).await.expect("get").kvs()[0]
        .value()
        .to_vec();
    let mut doc: serde_json::Value = serde_json::from_slice(&base).expect("json");
    let mut delays = Vec::new();
    for i in 0..100 {
        doc["metadata"]["labels"]["n"] = serde_json::Value::String(i.to_string());
        let bytes = serde_json::to_vec(&doc).expect("json");
        kv.put(key, bytes, None).await.expect("put");
        let written = Instant::now();
        let seen = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("watcher printed the change");
        delays.push(seen.saturating_duration_since(written));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut sorted = delays.clone();
    sorted.sort();
    println!(
        "| `berth get -w -o json`: write acknowledged to line printed (100 writes) | median {}, p90 {}, max {} | | |",
        ms(median(delays)),
        ms(sorted[89]),
        ms(sorted[99])
    );
    std::io::stdout().flush().ok();
}
