//! `berth lock` (issue 10 item 6): acquire and release, against raw
//! etcd-client in the same run, on one throwaway local etcd.
//!
//! - raw: what a script using etcd-client directly does for a lock on a
//!   lease: grant a lease, `lock` with it, `unlock`, revoke the lease.
//! - berth in process: [`berth::cli::lock::take`] (grant, lock while keeping
//!   the lease alive, read the fencing token) then `release` (revoke): the
//!   code `berth lock` runs, without the command.
//! - berth CLI: the whole `berth lock NAME -- true` process (start, connect,
//!   take, spawn `true`, release), what a shell script pays per call.
//!
//! Each is timed `BENCH_LOCKS` times (default 200; the CLI a quarter of
//! that), interleaved round by round so load on the shared machine hits
//! all alike; medians and p90s are printed as Markdown rows.
//!
//! Run: `cargo bench --bench lock`.

use std::process::Command;
use std::time::{Duration, Instant};

use berth::cli::lock::{take, Taken};
use berth::localetcd::{LocalEtcd, LocalEtcdConfig};
use berth::store::{Store, StoreConfig};
use etcd_client::{Client, LockOptions};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const TTL: Duration = Duration::from_secs(10);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn raw_round(client: &mut Client, name: &str) -> Duration {
    let start = Instant::now();
    let lease = client.lease_grant(10, None).await.expect("grant").id();
    let opts = LockOptions::new().with_lease(lease);
    let key = client
        .lock(name, Some(opts))
        .await
        .expect("lock")
        .key()
        .to_vec();
    client.unlock(key).await.expect("unlock");
    client.lease_revoke(lease).await.expect("revoke");
    start.elapsed()
}

async fn berth_round(store: &Store, name: &str) -> Duration {
    let start = Instant::now();
    let Taken::Held(held) = take(store, name, TTL, None).await.expect("take") else {
        panic!("no timeout was set");
    };
    assert!(held.token > 0, "a fencing token");
    held.held.release().await;
    start.elapsed()
}

fn cli_round(endpoint: &str, root: &str, name: &str) -> Duration {
    let start = Instant::now();
    let status = Command::new(BERTH)
        .args([
            "--etcd", endpoint, "--root", root, "lock", name, "--", "true",
        ])
        .status()
        .expect("berth lock");
    let took = start.elapsed();
    assert!(status.success(), "berth lock exited {status}");
    took
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = LocalEtcdConfig::new(dir.path().join("etcd"));
    cfg.fast = true;
    let etcd = LocalEtcd::start(cfg).await.expect("etcd");
    let endpoint = etcd.endpoint();
    let root = format!("/bench-lock-{}", std::process::id());
    let store = Store::connect(&StoreConfig {
        endpoints: vec![endpoint.clone()],
        root: root.clone(),
        ..Default::default()
    })
    .await
    .expect("store");
    let mut raw = Client::connect([endpoint.as_str()], None)
        .await
        .expect("client");
    let raw_name = format!("{root}/locks/raw");

    let n = env_usize("BENCH_LOCKS", 200);
    let (mut raws, mut berths, mut clis) = (Vec::new(), Vec::new(), Vec::new());
    // Warm-up: connections, etcd's first lock, the binary in the page cache.
    raw_round(&mut raw, &raw_name).await;
    berth_round(&store, "bench").await;
    cli_round(&endpoint, &root, "bench-cli");
    for i in 0..n {
        raws.push(raw_round(&mut raw, &raw_name).await);
        berths.push(berth_round(&store, "bench").await);
        if i % 4 == 0 {
            clis.push(cli_round(&endpoint, &root, "bench-cli"));
        }
    }
    let (r50, r90) = (quantile(&mut raws, 0.5), quantile(&mut raws, 0.9));
    let (b50, b90) = (quantile(&mut berths, 0.5), quantile(&mut berths, 0.9));
    let (c50, c90) = (quantile(&mut clis, 0.5), quantile(&mut clis, 0.9));
    let ratio = |a: Duration| a.as_secs_f64() / r50.as_secs_f64();
    println!("| path | runs | median | p90 | median vs raw |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw etcd-client: grant, lock, unlock, revoke | {} | {} | {} | 1.00x |",
        raws.len(),
        ms(r50),
        ms(r90)
    );
    println!(
        "| berth in process: `take` (grant, lock, token read), release (revoke) | {} | {} | {} | {:.2}x |",
        berths.len(), ms(b50), ms(b90), ratio(b50)
    );
    println!(
        "| `berth lock NAME -- true` (whole process) | {} | {} | {} | {:.2}x |",
        clis.len(),
        ms(c50),
        ms(c90),
        ratio(c50)
    );
}
