//! `berth lock NAME [--timeout D] [--ttl D] -- CMD...`: runs a command while
//! holding an etcd lock on a lease of its own.
//!
//! The lock is etcd's (`locks/<NAME>` + the lease), so it is released when
//! the command exits, when berth is stopped, and — through the lease's
//! expiry — when berth is SIGKILLed or cut off from etcd. The command gets
//! `BERTH_LOCK_KEY` and `BERTH_LOCK_TOKEN` (the lock key's create revision,
//! a fencing token that only grows) to fence its own writes.
//!
//! Mutual exclusion holds only while the command cannot outlive the lock:
//! it dies with berth (`PR_SET_PDEATHSIG`), and it is killed as soon as the
//! lease can no longer be confirmed alive for most of its TTL, before etcd
//! could give the lock to another holder.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use etcd_client::{Client, LockOptions};

use super::args::{EtcdArgs, LockArgs};
use super::CliError;
use crate::store::Store;

/// Exit code when the lock was not taken within `--timeout`.
pub const EXIT_TIMEOUT: u8 = 75;
/// Exit code when the lock was lost while the command ran (it was killed).
pub const EXIT_LOST: u8 = 76;

/// A lock name: one key segment (no `/`), not empty.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a lock name must not be empty".into());
    }
    if name.contains('/') {
        return Err(format!(
            "invalid lock name {name:?}: it must not contain '/' (one name, not a path)"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "invalid lock name {name:?}: control characters are not allowed"
        ));
    }
    Ok(())
}

pub async fn run(etcd: &EtcdArgs, args: LockArgs) -> Result<ExitCode, CliError> {
    check_name(&args.name).map_err(CliError::Usage)?;
    let Some((program, rest)) = args.command.split_first() else {
        return Err(CliError::Usage(
            "lock needs a command: berth lock NAME -- CMD [ARGS...]".into(),
        ));
    };
    let store = Store::connect(&etcd.store_config()).await?;
    let taken = match take(&store, &args.name, args.ttl, args.timeout).await? {
        Taken::Held(t) => t,
        Taken::TimedOut => {
            eprintln!(
                "error: timed out after {} waiting for lock {}",
                humantime::format_duration(args.timeout.unwrap_or_default()),
                args.name
            );
            return Ok(ExitCode::from(EXIT_TIMEOUT));
        }
    };
    let code = supervise(
        program,
        rest,
        &taken.key,
        taken.token,
        &taken.held,
        args.ttl,
    )
    .await;
    taken.held.release().await;
    code
}

/// What [`take`] got.
pub enum Taken {
    // Boxed: etcd-client's `Client` makes a held lock some 3.7 KB.
    Held(Box<HeldLock>),
    TimedOut,
}

/// A lock held: its key, its fencing token (the key's create revision) and
/// the lease that holds it.
pub struct HeldLock {
    pub key: String,
    pub token: i64,
    pub held: Held,
}

/// Takes lock `name` on a lease of its own (`ttl`, at least 2 s), waiting at
/// most `timeout`; the lease is kept alive while waiting. Whatever fails
/// after the lease was granted revokes it, so nothing is left behind.
pub async fn take(
    store: &Store,
    name: &str,
    ttl: Duration,
    timeout: Option<Duration>,
) -> Result<Taken, CliError> {
    let ttl_secs = ttl.as_secs().max(2) as i64;
    let mut client = store.client();
    let lease = client
        .lease_grant(ttl_secs, None)
        .await
        .map_err(|e| CliError::Agent(format!("granting a lease for lock {name}: {e}")))?
        .id();
    let key = store.keys().lock(name);
    let held = Held {
        client: client.clone(),
        lease,
    };
    let opts = LockOptions::new().with_lease(lease);
    let mut locker = client.clone();
    let locked = tokio::select! {
        r = locker.lock(key, Some(opts)) => Some(r),
        _ = sleep_or_forever(timeout) => None,
        _ = keep_alive(client.clone(), lease, ttl) => {
            held.release().await;
            return Err(CliError::Agent(format!("lost the lease while waiting for lock {name}")));
        }
    };
    let key = match locked {
        None => {
            held.release().await;
            return Ok(Taken::TimedOut);
        }
        Some(Err(e)) => {
            held.release().await;
            return Err(CliError::Agent(format!("taking lock {name}: {e}")));
        }
        Some(Ok(r)) => r.key().to_vec(),
    };
    let token = match client.get(key.clone(), None).await {
        Ok(r) => r.kvs().first().map_or(0, |kv| kv.create_revision()),
        Err(e) => {
            held.release().await;
            return Err(CliError::Agent(format!("reading lock {name}: {e}")));
        }
    };
    let key = String::from_utf8_lossy(&key).into_owned();
    Ok(Taken::Held(Box::new(HeldLock { key, token, held })))
}

/// The lease that holds the lock.
pub struct Held {
    client: Client,
    lease: i64,
}

impl Held {
    /// Revoking the lease deletes the lock key: the next waiter gets it.
    pub async fn release(&self) {
        let mut c = self.client.clone();
        if let Err(e) = c.lease_revoke(self.lease).await {
            eprintln!(
                "warning: releasing the lock failed ({e}); it frees itself when its lease expires"
            );
        }
    }
}

async fn sleep_or_forever(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Runs the command, keeping the lease alive; kills it if the lease is lost
/// and passes on a stop signal to it.
async fn supervise(
    program: &str,
    rest: &[String],
    key: &str,
    token: i64,
    held: &Held,
    ttl: Duration,
) -> Result<ExitCode, CliError> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        .env("BERTH_LOCK_KEY", key)
        .env("BERTH_LOCK_TOKEN", token.to_string())
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::Input(format!("running {program}: {e}")))?;
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    tokio::select! {
        status = child.wait() => Ok(exit_code(status?)),
        _ = keep_alive(held.client.clone(), held.lease, ttl) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            eprintln!("error: lost the lock at {key} (its lease could not be kept alive); the command was killed");
            Ok(ExitCode::from(EXIT_LOST))
        }
        _ = term.recv() => forward(&mut child, libc::SIGTERM).await,
        _ = int.recv() => forward(&mut child, libc::SIGINT).await,
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, CliError> {
    Ok(tokio::signal::unix::signal(kind)?)
}

/// Passes a stop signal on and waits for the command to end.
async fn forward(
    child: &mut tokio::process::Child,
    sig: libc::c_int,
) -> Result<ExitCode, CliError> {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on the pid of our own child, which we have not
        // reaped yet, so the pid cannot have been reused.
        unsafe {
            libc::kill(pid as libc::pid_t, sig);
        }
    }
    Ok(exit_code(child.wait().await?))
}

/// The command's own exit code, or 128 + the signal that ended it (as a
/// shell reports it).
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The command is killed when berth dies, even by SIGKILL: it must never
/// run on without the lock.
fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl(2) is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Keeps the lease alive; returns once it can no longer be trusted to be:
/// etcd says it is gone, or no keep-alive was confirmed for 3/4 of its TTL
/// (the command must stop before etcd could expire it and let another in).
async fn keep_alive(mut client: Client, lease: i64, ttl: Duration) {
    let period = ttl / 4;
    let limit = ttl * 3 / 4;
    let mut confirmed = Instant::now();
    let mut pair = None;
    loop {
        tokio::time::sleep(period).await;
        if confirmed.elapsed() > limit {
            return;
        }
        if pair.is_none() {
            let sent = Instant::now();
            match tokio::time::timeout(period, client.lease_keep_alive(lease)).await {
                Ok(Ok(p)) => {
                    pair = Some(p);
                    confirmed = sent;
                }
                Ok(Err(_)) | Err(_) => continue,
            }
        }
        let Some((keeper, stream)) = pair.as_mut() else {
            continue;
        };
        let sent = Instant::now();
        let answer = async {
            keeper.keep_alive().await?;
            stream.message().await
        };
        match tokio::time::timeout(period, answer).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => confirmed = sent,
            Ok(Ok(Some(_))) => return,
            _ => pair = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names() {
        fn check(name: &str, want: Result<(), &str>) {
            let got = check_name(name);
            match (&got, want) {
                (Ok(()), Ok(())) => {}
                (Err(m), Err(part)) => assert!(m.contains(part), "{m}"),
                _ => panic!("{name:?}: got {got:?}, want {want:?}"),
            }
        }
        check("backup", Ok(()));
        check("db-migrate.v2", Ok(()));
        check("", Err("must not be empty"));
        check("a/b", Err("must not contain '/'"));
        check("a\nb", Err("control characters"));
    }
}
