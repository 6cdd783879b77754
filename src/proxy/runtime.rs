//! The proxy's own tokio runtime, apart from the agent's.
//!
//! Why apart: the agent's control loops (etcd watches, Docker inspections,
//! reconciles, the API) must never delay a request, and a proxy that owns
//! its threads costs less per request. With one thread (the default, as
//! linkerd2-proxy does) the runtime is tokio's current-thread scheduler: no
//! work stealing and no cross-thread wake-up between a client connection
//! and its backend connection, which is most of the difference in CPU per
//! request and in tail latency against a multi-threaded scheduler on a
//! small machine (BENCHMARKS.md, "Traffic proxy"). `--proxy-threads N`
//! gives a busy node a multi-threaded one.

use std::io;
use std::num::NonZeroUsize;
use std::time::Duration;

use tokio::runtime::{Builder, Handle};
use tokio_util::sync::CancellationToken;

/// After shutdown, how long connections get to finish before the runtime
/// (and every socket still open on it) is dropped.
const LINGER: Duration = Duration::from_secs(2);

/// A runtime driven by a thread of its own until `shutdown`, then dropped.
/// Tasks are spawned on it through [`ProxyRuntime::handle`].
#[derive(Clone, Debug)]
pub struct ProxyRuntime {
    handle: Handle,
}

impl ProxyRuntime {
    /// Builds the runtime (`threads` workers; 1: current-thread) and the
    /// thread that drives it.
    pub fn start(threads: NonZeroUsize, shutdown: CancellationToken) -> io::Result<ProxyRuntime> {
        let rt = match threads.get() {
            1 => Builder::new_current_thread().enable_all().build()?,
            n => Builder::new_multi_thread()
                .worker_threads(n)
                .thread_name("berth-proxy")
                .enable_all()
                .build()?,
        };
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("berth-proxy".into())
            .spawn(move || {
                rt.block_on(async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(LINGER).await;
                });
                // Dropped here, on a plain thread: dropping a runtime inside
                // another runtime's task would panic.
                drop(rt);
            })?;
        Ok(ProxyRuntime { handle })
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tasks run on the proxy's own thread, whatever runtime asked, and
    /// keep running while the caller's runtime is busy elsewhere.
    #[tokio::test(flavor = "current_thread")]
    async fn runs_tasks_on_its_own_thread() {
        for threads in [1, 2] {
            let shutdown = CancellationToken::new();
            let rt =
                ProxyRuntime::start(NonZeroUsize::new(threads).unwrap(), shutdown.clone()).unwrap();
            let caller = std::thread::current().id();
            let (tx, rx) = std::sync::mpsc::channel();
            rt.handle().spawn(async move {
                let _ = tx.send(std::thread::current().id());
            });
            // Blocking the caller's only thread: the task still runs.
            let ran_on = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_ne!(ran_on, caller, "{threads} thread(s)");
            shutdown.cancel();
        }
    }
}
