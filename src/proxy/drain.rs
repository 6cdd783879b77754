//! Per-container load: what is open on each backend (tcp connections, http
//! requests in flight), the draining mark, and waiting for zero.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// How a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Nothing was open on the container any more.
    Drained,
    /// The timeout passed with this many still open.
    TimedOut { open: u64 },
}

/// One container's load. Shared by the tracker, every open guard and every
/// drain waiting on it, so a container pruned from the table while a
/// connection is still open keeps being counted until that connection ends.
#[derive(Debug)]
pub(crate) struct BackendState {
    // A watch rather than an atomic: a drain waits for zero without polling.
    open: watch::Sender<u64>,
    draining: AtomicBool,
}

impl BackendState {
    fn new() -> BackendState {
        BackendState {
            open: watch::Sender::new(0),
            draining: AtomicBool::new(false),
        }
    }

    pub(crate) fn open(&self) -> u64 {
        *self.open.borrow()
    }

    pub(crate) fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Counts one connection or request on a backend for as long as it lives.
#[derive(Debug)]
pub(crate) struct OpenGuard {
    state: Arc<BackendState>,
}

impl OpenGuard {
    pub(crate) fn new(state: Arc<BackendState>) -> OpenGuard {
        state.open.send_modify(|n| *n += 1);
        OpenGuard { state }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.state.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Every container the proxy knows, by container id.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    backends: Mutex<HashMap<String, Arc<BackendState>>>,
}

impl Tracker {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<BackendState>>> {
        // No code holding the lock panics; if one ever did, the map is still
        // consistent (every change is one insert or remove).
        self.backends.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self, container_id: &str) -> Arc<BackendState> {
        let mut map = self.map();
        if let Some(s) = map.get(container_id) {
            return s.clone();
        }
        let s = Arc::new(BackendState::new());
        map.insert(container_id.to_string(), s.clone());
        s
    }

    /// Clears the drain mark: the container was restarted in place and
    /// may take new connections once routed again. Without this, a mark
    /// kept alive by connections still open when the routes changed would
    /// outlast the restart.
    pub(crate) fn undrain(&self, container_id: &str) {
        if let Some(s) = self.map().get(container_id) {
            s.draining.store(false, Ordering::Release);
        }
    }

    /// Knows exactly the routed containers (each listed, at 0 if idle) plus
    /// those with something still open; a drain mark lives as long as the
    /// container is routed.
    pub(crate) fn sync(&self, routed: &HashSet<&str>) {
        let mut map = self.map();
        map.retain(|id, s| routed.contains(id.as_str()) || s.open() > 0);
        for id in routed {
            if !map.contains_key(*id) {
                map.insert(id.to_string(), Arc::new(BackendState::new()));
            }
        }
    }

    pub(crate) fn open_counts(&self) -> BTreeMap<String, u64> {
        self.map()
            .iter()
            .map(|(id, s)| (id.clone(), s.open()))
            .collect()
    }

    /// Marks the container draining at once (it takes nothing new from the
    /// call on, before the future is first polled) and returns the wait
    /// until nothing is open on it, or `timeout`.
    pub(crate) fn drain(
        &self,
        container_id: &str,
        timeout: Duration,
    ) -> impl Future<Output = DrainOutcome> + Send + 'static {
        let state = self.state(container_id);
        state.draining.store(true, Ordering::Release);
        let mut rx = state.open.subscribe();
        async move {
            // The sender lives in `state`, which this future holds: the wait
            // cannot fail, but an error would mean "nothing left" too.
            let zero = async { rx.wait_for(|n| *n == 0).await.is_ok() };
            match tokio::time::timeout(timeout, zero).await {
                Ok(_) => DrainOutcome::Drained,
                Err(_) => DrainOutcome::TimedOut { open: state.open() },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_the_last_guard() {
        let t = Arc::new(Tracker::default());
        let g1 = OpenGuard::new(t.state("a"));
        let g2 = OpenGuard::new(t.state("a"));
        assert_eq!(t.open_counts().get("a"), Some(&2));
        let waiter = tokio::spawn(t.drain("a", Duration::from_secs(60)));
        assert!(t.state("a").draining());
        drop(g1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(g2);
        assert_eq!(waiter.await.ok(), Some(DrainOutcome::Drained));
    }

    /// A restart in place whose drain timed out with a connection open:
    /// the mark survives the routes dropping the container (something is
    /// open), so only `undrain` lets it take new connections again.
    #[tokio::test(start_paused = true)]
    async fn undrain_ends_a_mark_kept_by_an_open_connection() {
        let t = Tracker::default();
        let g = OpenGuard::new(t.state("a"));
        let _ = t.drain("a", Duration::from_secs(1)).await;
        t.sync(&HashSet::new());
        drop(g);
        t.sync(&HashSet::from(["a"]));
        assert!(t.state("a").draining());
        t.undrain("a");
        assert!(!t.state("a").draining());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_times_out_with_what_is_left() {
        let t = Tracker::default();
        let _g = OpenGuard::new(t.state("a"));
        assert_eq!(
            t.drain("a", Duration::from_secs(5)).await,
            DrainOutcome::TimedOut { open: 1 }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn drain_of_an_idle_or_unknown_container_is_immediate() {
        let t = Tracker::default();
        assert_eq!(
            t.drain("nobody", Duration::from_secs(5)).await,
            DrainOutcome::Drained
        );
    }

    #[test]
    fn sync_keeps_routed_and_busy() {
        let t = Tracker::default();
        t.state("gone");
        let _busy = OpenGuard::new(t.state("busy"));
        t.sync(&HashSet::from(["routed"]));
        assert_eq!(
            t.open_counts(),
            BTreeMap::from([("busy".into(), 1), ("routed".into(), 0)])
        );
    }
}
