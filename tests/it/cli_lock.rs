//! `berth lock` against a real etcd: holders never overlap, the command's
//! exit code is passed on, a SIGKILLed holder's lock frees within its TTL
//! (and its command dies with it), `--timeout` and bad names.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cli::{berth, BERTH};
use crate::support::etcd::TestEtcd;

fn lock_cmd(etcd: &TestEtcd, args: &[&str]) -> Command {
    let mut c = Command::new(BERTH);
    c.args(["--etcd", &etcd.endpoint(), "--root", etcd.root(), "lock"])
        .args(args)
        .stdin(Stdio::null());
    c
}

/// Three holders of one lock, each twice, write when they start and end:
/// no two intervals overlap, and the fencing tokens grow in lock order.
#[tokio::test]
async fn holders_never_overlap_and_tokens_grow() {
    let etcd = TestEtcd::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let script = format!(
        "echo \"$(date +%s%N) start $BERTH_LOCK_TOKEN\" >> {log}; sleep 0.2; echo \"$(date +%s%N) end $BERTH_LOCK_TOKEN\" >> {log}",
        log = log.display()
    );
    let mut children: Vec<_> = (0..6)
        .map(|_| {
            lock_cmd(&etcd, &["shared", "--", "sh", "-c", &script])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn berth lock")
        })
        .collect();
    for c in &mut children {
        let status = c.wait().expect("wait");
        assert!(status.success(), "a holder failed: {status:?}");
    }
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<(u128, String, i64)> = text
        .lines()
        .map(|l| {
            let mut f = l.split_whitespace();
            let t = f.next().and_then(|t| t.parse().ok()).expect("time");
            let what = f.next().expect("what").to_string();
            let token = f.next().and_then(|t| t.parse().ok()).expect("token");
            (t, what, token)
        })
        .collect();
    assert_eq!(lines.len(), 12, "{text}");
    // In time order the log must read start, end, start, end... each pair
    // with one token, the tokens growing.
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| l.0);
    let mut last_token = 0;
    for pair in sorted.chunks(2) {
        assert_eq!(
            (pair[0].1.as_str(), pair[1].1.as_str(), pair[0].2),
            ("start", "end", pair[1].2),
            "overlapping holders: {text}"
        );
        assert!(pair[0].2 > last_token, "tokens must grow: {text}");
        last_token = pair[0].2;
    }
}

#[tokio::test]
async fn exit_codes_timeout_and_bad_names() {
    let etcd = TestEtcd::start().await;
    let run = |args: &[&str]| berth(&etcd.endpoint(), etcd.root(), args, None);
    let out = run(&["lock", "job", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7, "{out:#?}");
    let out = run(&["lock", "job", "--", "sh", "-c", "echo $BERTH_LOCK_KEY"]);
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout
            .starts_with(&format!("{}/locks/job/", etcd.root())),
        "{out:#?}"
    );

    // Held elsewhere: --timeout gives up with 75.
    let mut holder = lock_cmd(
        &etcd,
        &["job", "--", "sh", "-c", "echo held; exec sleep 60"],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn holder");
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("held"));
    let out = run(&["lock", "job", "--timeout", "1s", "--", "true"]);
    assert_eq!(out.code, 75, "{out:#?}");
    assert!(
        out.one_line_error()
            .contains("timed out after 1s waiting for lock job"),
        "{out:#?}"
    );
    let _ = holder.kill();
    let _ = holder.wait();

    for (args, code, want) in [
        (
            &["lock", "a/b", "--", "true"][..],
            2,
            "must not contain '/'",
        ),
        (&["lock", "job"][..], 2, "required"),
    ] {
        let out = run(args);
        assert_eq!(out.code, code, "{args:?}: {out:#?}");
        assert!(out.one_line_error().contains(want), "{args:?}: {out:#?}");
    }
}

/// A holder SIGKILLed: its command dies with it, and the next holder gets
/// the lock within the lease TTL.
#[tokio::test]
async fn a_killed_holders_lock_frees_within_its_ttl() {
    let etcd = TestEtcd::start().await;
    let mut holder = lock_cmd(
        &etcd,
        &[
            "job",
            "--ttl",
            "2s",
            "--",
            "sh",
            "-c",
            "echo $$; exec sleep 60",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .expect("spawn holder");
    let mut lines = BufReader::new(holder.stdout.take().expect("stdout")).lines();
    let pid: u32 = lines
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.trim().parse().ok())
        .expect("the command's pid");
    holder.kill().expect("SIGKILL berth");
    let killed = Instant::now();
    holder.wait().expect("reap berth");
    // The command dies with berth (it must not run on without the lock).
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
    {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the command outlived its lock holder"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = berth(
        &etcd.endpoint(),
        etcd.root(),
        &["lock", "job", "--timeout", "10s", "--", "true"],
        None,
    );
    assert_eq!(out.code, 0, "{out:#?}");
    let waited = killed.elapsed();
    assert!(
        waited < Duration::from_secs(2) + Duration::from_secs(2),
        "the lock took {waited:?} to free (TTL 2 s)"
    );
}
