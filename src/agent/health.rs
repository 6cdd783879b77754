//! Check tracking: one task per running container runs its ready checks until
//! they pass, then its health checks for the rest of its life, and keeps the
//! container's [`CheckPhase`] in a shared map the planner reads.
//!
//! - The first ready probe runs at once; failed ready probes are retried
//!   quickly at first (25 ms doubling) up to the check's `interval`, so a
//!   container that answers 30 ms after its start is ready at ~30 ms, not
//!   after a whole interval.
//! - A container without ready checks is ready as soon as it is tracked
//!   (synchronously: no notification is sent for it).
//! - Health checks start one interval after the container became ready; each
//!   check counts its own consecutive failures in a [`CheckState`], and
//!   `failureThreshold` of them make the container `Unhealthy` (sticky: it
//!   is replaced, the planner waits for the replacement to be ready before
//!   stopping it).
//! - Every phase change sends the container's component key on the
//!   notification channel, so that component is reconciled at once.
//! - Every failed probe is handed to the [`OnFailure`] callback (metrics);
//!   some are marked [`Failure::notable`], for an event users see (why a
//!   container is not ready, or is failing health checks below the
//!   threshold): a container's first failure of a check, then at most one
//!   every [`REPORT_EVERY`], or one when the message changes (at most one
//!   every [`REPORT_CHANGED_MIN`]), so observed documents do not churn.
//!
//! The probes themselves are behind [`Prober`] (`crate::checks` in the agent,
//! a fake in tests). Every delay is a `tokio::time` one, so the tests run on
//! paused time and assert exact instants.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::plan::CheckPhase;
use crate::checks::CheckState;
use crate::resource::component::Check;
use crate::resource::quantity;

/// Default `interval` of a ready check.
pub const READY_INTERVAL: quantity::Duration = quantity::Duration::from_secs(1);
/// Default `interval` of a health check.
pub const HEALTH_INTERVAL: quantity::Duration = quantity::Duration::from_secs(5);
/// First retry delay of a failed ready probe (doubles up to the interval).
pub const FAST_RETRY: Duration = Duration::from_millis(25);
/// A check failing with the same message is reported again after this long.
pub const REPORT_EVERY: Duration = Duration::from_secs(30);
/// A check failing with a new message is reported at most this often.
pub const REPORT_CHANGED_MIN: Duration = Duration::from_secs(5);

/// Where a container's probes go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeTarget {
    pub id: String,
    /// Container port -> host port published on 127.0.0.1.
    pub ports: BTreeMap<u16, u16>,
}

/// Runs one probe of a check against a container; `Err` carries why it failed.
pub trait Prober: Send + Sync + 'static {
    fn probe<'a>(
        &'a self,
        target: &'a ProbeTarget,
        check: &'a Check,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// Which kind of check failed (for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckKind {
    Ready,
    Health,
}

/// A failed probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The component key the container was tracked with.
    pub key: String,
    pub container: String,
    pub kind: CheckKind,
    /// What failed and why, e.g. `ready check tcp :8080 failed: connect to
    /// 127.0.0.1:49000: Connection refused` (without the container).
    pub message: String,
    /// Worth an event (rate-limited, see the module docs).
    pub notable: bool,
}

impl Failure {
    /// The event reason: `ReadyCheckFailed` or `HealthCheckFailed`.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            CheckKind::Ready => "ReadyCheckFailed",
            CheckKind::Health => "HealthCheckFailed",
        }
    }
}

/// Called on every failed probe (metrics, events).
pub type OnFailure = Arc<dyn Fn(&Failure) + Send + Sync>;

/// Decides which failures of one check of one container are notable: the
/// first, then one every [`REPORT_EVERY`], or a changed message at most
/// every [`REPORT_CHANGED_MIN`]. Pure (the time is passed in).
#[derive(Debug, Default)]
pub struct ReportLimit {
    last: Option<(Instant, String)>,
}

impl ReportLimit {
    /// Whether a failure with `message` at `now` is to be reported; if so it
    /// counts as reported.
    pub fn notable(&mut self, message: &str, now: Instant) -> bool {
        let due = match &self.last {
            None => true,
            Some((at, last)) => {
                let since = now.saturating_duration_since(*at);
                since >= REPORT_EVERY || (last != message && since >= REPORT_CHANGED_MIN)
            }
        };
        if due {
            self.last = Some((now, message.to_string()));
        }
        due
    }
}

struct Tracked {
    key: String,
    /// Which checks run (the template hash they come from; "" for none).
    tag: String,
    phase: CheckPhase,
    /// RFC 3339 time it became ready.
    ready_at: Option<String>,
    epoch: u64,
    task: Option<AbortHandle>,
}

struct Inner {
    map: Mutex<HashMap<String, Tracked>>,
    prober: Arc<dyn Prober>,
    notify: mpsc::UnboundedSender<String>,
    on_failure: Option<OnFailure>,
    epochs: std::sync::atomic::AtomicU64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Tracked>> {
        // Every update is a single assignment: a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the phase if `epoch` is still the container's current tracking.
    fn set_phase(&self, id: &str, epoch: u64, phase: CheckPhase) {
        let key = {
            let mut map = self.lock();
            match map.get_mut(id) {
                Some(t) if t.epoch == epoch => {
                    t.ready_at = match phase {
                        CheckPhase::Ready { .. } => Some(crate::util::now_rfc3339()),
                        _ => None,
                    };
                    t.phase = phase;
                    t.key.clone()
                }
                _ => return,
            }
        };
        let _ = self.notify.send(key);
    }

    /// Hands a failed probe to the callback.
    fn failed(
        &self,
        key: &str,
        target: &ProbeTarget,
        kind: CheckKind,
        message: String,
        notable: bool,
    ) {
        if let Some(f) = &self.on_failure {
            f(&Failure {
                key: key.to_string(),
                container: target.id.clone(),
                kind,
                message,
                notable,
            });
        }
    }
}

/// The shared check state of every tracked container. Cheap to clone.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

impl Tracker {
    /// `notify` receives the component key of every container whose phase changes.
    pub fn new(
        prober: Arc<dyn Prober>,
        notify: mpsc::UnboundedSender<String>,
        on_failure: Option<OnFailure>,
    ) -> Tracker {
        Tracker {
            inner: Arc::new(Inner {
                map: Mutex::new(HashMap::new()),
                prober,
                notify,
                on_failure,
                epochs: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    /// Starts (or restarts, after the container itself restarted) tracking a
    /// running container: phase `Starting` from now. `tag` names the checks
    /// (the hash of the template they come from).
    pub fn track(
        &self,
        key: &str,
        target: ProbeTarget,
        tag: &str,
        ready: Vec<Check>,
        health: Vec<Check>,
    ) {
        let epoch = self
            .inner
            .epochs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = target.id.clone();
        let since = Instant::now().into_std();
        {
            let mut map = self.inner.lock();
            if let Some(old) = map.remove(&id) {
                if let Some(t) = old.task {
                    t.abort();
                }
            }
            map.insert(
                id.clone(),
                Tracked {
                    key: key.to_string(),
                    tag: tag.to_string(),
                    // Without ready checks a container is ready at once.
                    phase: if ready.is_empty() {
                        CheckPhase::Ready { since }
                    } else {
                        CheckPhase::Starting { since }
                    },
                    ready_at: ready.is_empty().then(crate::util::now_rfc3339),
                    epoch,
                    task: None,
                },
            );
        }
        let inner = self.inner.clone();
        let handle = tokio::spawn(run_checks(
            inner,
            key.to_string(),
            epoch,
            target,
            ready,
            health,
        ))
        .abort_handle();
        let mut map = self.inner.lock();
        match map.get_mut(&id) {
            Some(t) if t.epoch == epoch => t.task = Some(handle),
            _ => handle.abort(),
        }
    }

    /// Tracks the container unless it is tracked already with the same `tag`.
    pub fn ensure(
        &self,
        key: &str,
        target: ProbeTarget,
        tag: &str,
        ready: Vec<Check>,
        health: Vec<Check>,
    ) {
        let same = self
            .inner
            .lock()
            .get(&target.id)
            .is_some_and(|t| t.tag == tag);
        if !same {
            self.track(key, target, tag, ready, health);
        }
    }

    pub fn is_tracked(&self, id: &str) -> bool {
        self.inner.lock().contains_key(id)
    }

    /// The container's phase; `None` when it is not tracked.
    pub fn phase(&self, id: &str) -> Option<CheckPhase> {
        self.inner.lock().get(id).map(|t| t.phase.clone())
    }

    /// The phase and, when ready, the RFC 3339 time it became ready.
    pub fn status(&self, id: &str) -> Option<(CheckPhase, Option<String>)> {
        self.inner
            .lock()
            .get(id)
            .map(|t| (t.phase.clone(), t.ready_at.clone()))
    }

    /// Stops tracking (the container stopped, exited or is gone).
    pub fn forget(&self, id: &str) {
        if let Some(t) = self.inner.lock().remove(id) {
            if let Some(task) = t.task {
                task.abort();
            }
        }
    }

    /// Ids of every tracked container.
    pub fn tracked(&self) -> Vec<String> {
        self.inner.lock().keys().cloned().collect()
    }

    /// Stops every probe task.
    pub fn shutdown(&self) {
        for (_, t) in self.inner.lock().drain() {
            if let Some(task) = t.task {
                task.abort();
            }
        }
    }
}

async fn probe_once(inner: &Inner, target: &ProbeTarget, check: &Check) -> Result<(), String> {
    let timeout = check.timeout();
    match tokio::time::timeout(timeout, inner.prober.probe(target, check)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {}", quantity::Duration(timeout))),
    }
}

async fn run_checks(
    inner: Arc<Inner>,
    key: String,
    epoch: u64,
    target: ProbeTarget,
    ready: Vec<Check>,
    health: Vec<Check>,
) {
    if !ready.is_empty() {
        wait_ready(&inner, &key, &target, &ready).await;
        inner.set_phase(
            &target.id,
            epoch,
            CheckPhase::Ready {
                since: Instant::now().into_std(),
            },
        );
    }
    if health.is_empty() {
        return;
    }
    // Each health check on its own interval; the first to reach its
    // threshold makes the container unhealthy.
    let loops = health
        .iter()
        .map(|check| Box::pin(until_unhealthy(&inner, &key, &target, check)));
    let (reason, _, _) = futures::future::select_all(loops).await;
    tracing::info!(container = %target.id, %reason, "container unhealthy");
    inner.set_phase(&target.id, epoch, CheckPhase::Unhealthy { reason });
}

/// Probes the ready checks until all pass in the same round, retrying fast
/// at first (see the module docs).
async fn wait_ready(inner: &Inner, key: &str, target: &ProbeTarget, ready: &[Check]) {
    let interval = ready
        .iter()
        .map(|c| c.interval_or(READY_INTERVAL))
        .min()
        .unwrap_or(READY_INTERVAL.std());
    let mut retry = FAST_RETRY;
    let mut limit = ReportLimit::default();
    loop {
        let mut all = true;
        for check in ready {
            if let Err(e) = probe_once(inner, target, check).await {
                tracing::trace!(container = %target.id, error = %e, "ready check failed");
                let message = format!("ready check {} failed: {e}", describe(check));
                let notable = limit.notable(&message, Instant::now());
                inner.failed(key, target, CheckKind::Ready, message, notable);
                all = false;
                break;
            }
        }
        if all {
            return;
        }
        tokio::time::sleep(retry.min(interval)).await;
        retry = retry.saturating_mul(2);
    }
}

/// Probes one health check every interval until `failureThreshold`
/// consecutive failures; returns why the container is unhealthy.
async fn until_unhealthy(inner: &Inner, key: &str, target: &ProbeTarget, check: &Check) -> String {
    let interval = check.interval_or(HEALTH_INTERVAL);
    let mut state = CheckState::for_check(check);
    let mut limit = ReportLimit::default();
    loop {
        tokio::time::sleep(interval).await;
        let Err(e) = probe_once(inner, target, check).await else {
            state.record(true);
            continue;
        };
        let verdict = state.record(false);
        let (failures, threshold) = (state.consecutive_failures(), state.failure_threshold());
        tracing::debug!(container = %target.id, failures, threshold, error = %e, "health check failed");
        if verdict.is_failed() {
            let reason = format!("{} failed {failures} times: {e}", describe(check));
            // Not notable: the planner records it (Unhealthy).
            inner.failed(key, target, CheckKind::Health, reason.clone(), false);
            return reason;
        }
        let message = format!(
            "health check {} failed ({failures}/{threshold}): {e}",
            describe(check)
        );
        let notable = limit.notable(&message, Instant::now());
        inner.failed(key, target, CheckKind::Health, message, notable);
    }
}

/// `http :8080/healthz`, `tcp :8080`, `exec [cat /ready]`.
pub fn describe(check: &Check) -> String {
    if let Some(h) = &check.http {
        format!("http :{}{}", h.port, h.path)
    } else if let Some(t) = &check.tcp {
        format!("tcp :{}", t.port)
    } else if let Some(e) = &check.exec {
        format!("exec {:?}", e.command)
    } else {
        "check".into()
    }
}

/// Every test runs on paused tokio time: a `tokio::time::sleep` in a test
/// returns at once, after the runtime has jumped from timer to timer (in
/// order) and run every probe task due on the way. So instants are exact,
/// and "nothing happened within an hour" is proven, not hoped for.
/// (`tokio::time::advance` is not used: it fires every timer it jumps past
/// at the same instant, in any order, and does not wait for them.)
#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::{HttpProbe, TcpProbe};
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A fake prober: fails the first `fail_first` probes, then follows
    /// `healthy`; a hanging one never answers. Records when each probe ran.
    struct FakeProber {
        start: Instant,
        fail_first: usize,
        hang: bool,
        healthy: AtomicBool,
        calls: Mutex<Vec<Duration>>,
    }

    impl FakeProber {
        fn failing_first(fail_first: usize) -> Arc<FakeProber> {
            Arc::new(FakeProber {
                start: Instant::now(),
                fail_first,
                hang: false,
                healthy: AtomicBool::new(true),
                calls: Mutex::new(Vec::new()),
            })
        }

        fn hanging() -> Arc<FakeProber> {
            let mut fake = FakeProber::failing_first(0);
            Arc::get_mut(&mut fake).expect("not shared yet").hang = true;
            fake
        }

        fn set_healthy(&self, healthy: bool) {
            self.healthy.store(healthy, Ordering::SeqCst);
        }

        /// When each probe ran, in ms since the fake was made.
        fn calls_ms(&self) -> Vec<u128> {
            let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            calls.iter().map(|d| d.as_millis()).collect()
        }
    }

    impl Prober for FakeProber {
        fn probe<'a>(
            &'a self,
            _: &'a ProbeTarget,
            _: &'a Check,
        ) -> BoxFuture<'a, Result<(), String>> {
            let n = {
                let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
                calls.push(self.start.elapsed());
                calls.len()
            };
            let fail = n <= self.fail_first || !self.healthy.load(Ordering::SeqCst);
            Box::pin(async move {
                if self.hang {
                    futures::future::pending::<()>().await;
                }
                if fail {
                    Err("connection refused".into())
                } else {
                    Ok(())
                }
            })
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn http(interval_ms: u64, threshold: u32) -> Check {
        Check {
            http: Some(HttpProbe {
                port: 8080,
                path: "/".into(),
            }),
            interval: Some(quantity::Duration::from_millis(interval_ms)),
            failure_threshold: Some(threshold),
            ..Default::default()
        }
    }

    /// A tracker over `fake`, its notifications and every failure it reported.
    struct Setup {
        tracker: Tracker,
        rx: mpsc::UnboundedReceiver<String>,
        failures: Arc<Mutex<Vec<Failure>>>,
    }

    impl Setup {
        fn new(fake: Arc<FakeProber>) -> Setup {
            let (tx, rx) = mpsc::unbounded_channel();
            let failures = Arc::new(Mutex::new(Vec::new()));
            let seen = failures.clone();
            let on_failure: OnFailure = Arc::new(move |f: &Failure| {
                seen.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(f.clone())
            });
            Setup {
                tracker: Tracker::new(fake, tx, Some(on_failure)),
                rx,
                failures,
            }
        }

        fn failures(&self) -> Vec<Failure> {
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
        }

        /// The next notification; fails after 5 s (of paused time).
        async fn next(&mut self) -> String {
            match tokio::time::timeout(Duration::from_secs(5), self.rx.recv()).await {
                Ok(Some(k)) => k,
                other => panic!("no notification: {other:?}"),
            }
        }
    }

    fn target(id: &str) -> ProbeTarget {
        ProbeTarget {
            id: id.into(),
            ports: BTreeMap::from([(8080, 49000)]),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn no_ready_checks_means_ready_at_once() {
        let mut s = Setup::new(FakeProber::failing_first(0));
        s.tracker.track("p/web", target("c1"), "h1", vec![], vec![]);
        assert!(matches!(
            s.tracker.status("c1"),
            Some((CheckPhase::Ready { .. }, Some(_)))
        ));
        tokio::time::sleep(HOUR).await;
        assert!(
            s.rx.try_recv().is_err(),
            "no notification for a phase set synchronously"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn first_probe_is_immediate_and_retries_are_fast() {
        let fake = FakeProber::failing_first(2);
        let mut s = Setup::new(fake.clone());
        let start = Instant::now();
        s.tracker
            .track("p/web", target("c1"), "h1", vec![http(1000, 3)], vec![]);
        assert!(matches!(
            s.tracker.phase("c1"),
            Some(CheckPhase::Starting { .. })
        ));
        assert_eq!(s.next().await, "p/web");
        // Two failures cost 25 ms + 50 ms of retries, not two whole intervals.
        assert_eq!(start.elapsed(), ms(75));
        assert_eq!(fake.calls_ms(), [0, 25, 75]);
        assert_eq!(s.failures().len(), 2);
        assert!(matches!(
            s.tracker.phase("c1"),
            Some(CheckPhase::Ready { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn ready_retries_are_capped_at_the_interval() {
        let fake = FakeProber::failing_first(6);
        let mut s = Setup::new(fake.clone());
        let start = Instant::now();
        s.tracker
            .track("p/web", target("c1"), "h1", vec![http(60, 3)], vec![]);
        assert_eq!(s.next().await, "p/web");
        // 25 + 50, then every 60 ms; uncapped doubling would take 1575 ms.
        assert_eq!(fake.calls_ms(), [0, 25, 75, 135, 195, 255, 315]);
        assert_eq!(start.elapsed(), ms(315));
    }

    #[tokio::test(start_paused = true)]
    async fn health_failures_reaching_the_threshold_make_it_unhealthy() {
        let fake = FakeProber::failing_first(0);
        let mut s = Setup::new(fake.clone());
        let start = Instant::now();
        s.tracker.track(
            "p/web",
            target("c1"),
            "h1",
            vec![http(1000, 3)],
            vec![http(50, 3)],
        );
        assert_eq!(s.next().await, "p/web");
        assert_eq!(start.elapsed(), ms(0), "ready at the first probe");
        // Health probes every 50 ms from then: two failures (50, 100), then
        // two passes (150, 200): still ready, nobody notified.
        fake.set_healthy(false);
        tokio::time::sleep(ms(125)).await;
        fake.set_healthy(true);
        tokio::time::sleep(ms(100)).await;
        assert!(matches!(
            s.tracker.phase("c1"),
            Some(CheckPhase::Ready { .. })
        ));
        assert!(s.rx.try_recv().is_err(), "no phase change");
        // Three in a row (250, 300, 350): unhealthy, notified at once.
        fake.set_healthy(false);
        assert_eq!(s.next().await, "p/web");
        assert_eq!(start.elapsed(), ms(350));
        assert_eq!(fake.calls_ms(), [0, 50, 100, 150, 200, 250, 300, 350]);
        match s.tracker.phase("c1") {
            Some(CheckPhase::Unhealthy { reason }) => {
                assert_eq!(reason, "http :8080/ failed 3 times: connection refused")
            }
            other => panic!("{other:?}"),
        }
        // Every failure was reported; only the first is worth an event (the
        // count after the passes started again from 1).
        let reported: Vec<(String, bool)> = s
            .failures()
            .into_iter()
            .map(|f| (f.message, f.notable))
            .collect();
        let below = |n: u32| {
            (
                format!("health check http :8080/ failed ({n}/3): connection refused"),
                n == 1,
            )
        };
        assert_eq!(
            reported,
            [
                below(1),
                (below(2).0, false),
                (below(1).0, false),
                (below(2).0, false),
                (
                    "http :8080/ failed 3 times: connection refused".to_string(),
                    false
                ),
            ]
        );
    }

    #[test]
    fn failures_are_notable_first_then_rate_limited() {
        let mut l = ReportLimit::default();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(l.notable("refused", t0), "the first failure");
        assert!(!l.notable("refused", at(25)));
        assert!(!l.notable("refused", at(29_000)));
        assert!(l.notable("refused", at(30_000)), "again after 30 s");
        // A new message: at once if the last report is 5 s old...
        assert!(l.notable("HTTP 500", at(35_000)));
        // ...but not faster, even when it keeps changing.
        assert!(!l.notable("refused", at(36_000)));
        assert!(l.notable("refused", at(40_000)));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_reach_the_callback_and_the_first_is_notable() {
        let fake = FakeProber::failing_first(usize::MAX);
        let s = Setup::new(fake.clone());
        s.tracker
            .track("p/web", target("c1"), "h1", vec![http(50, 3)], vec![]);
        tokio::time::sleep(ms(300)).await;
        s.tracker.shutdown();
        let seen = s.failures();
        assert_eq!(seen.len(), fake.calls_ms().len(), "every failed probe");
        assert!(seen.len() >= 3, "{seen:?}");
        assert_eq!(
            seen[0],
            Failure {
                key: "p/web".into(),
                container: "c1".into(),
                kind: CheckKind::Ready,
                message: "ready check http :8080/ failed: connection refused".into(),
                notable: true,
            }
        );
        assert_eq!(seen[0].reason(), "ReadyCheckFailed");
        assert!(seen[1..].iter().all(|f| !f.notable), "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_times_out() {
        let mut s = Setup::new(FakeProber::hanging());
        let mut check = Check {
            tcp: Some(TcpProbe { port: 1 }),
            ..Default::default()
        };
        check.timeout = Some(quantity::Duration::from_millis(50));
        check.interval = Some(quantity::Duration::from_millis(50));
        check.failure_threshold = Some(2);
        let start = Instant::now();
        s.tracker
            .track("p/web", target("c1"), "h1", vec![], vec![check]);
        assert!(matches!(
            s.tracker.phase("c1"),
            Some(CheckPhase::Ready { .. })
        ));
        assert_eq!(s.next().await, "p/web"); // unhealthy
                                             // Probes at 50 and 150 ms, each given up 50 ms later.
        assert_eq!(start.elapsed(), ms(200));
        match s.tracker.phase("c1") {
            Some(CheckPhase::Unhealthy { reason }) => {
                assert!(reason.contains("timed out after 50ms"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retracking_restarts_and_forget_stops() {
        let fake = FakeProber::failing_first(0);
        let mut s = Setup::new(fake.clone());
        let checks = || (vec![http(1000, 3)], vec![http(20, 1)]);
        let (ready, health) = checks();
        s.tracker.track("p/web", target("c1"), "h1", ready, health);
        assert_eq!(s.next().await, "p/web");
        // Restarted container: starting again, the old task is gone.
        let (ready, health) = checks();
        s.tracker.track("p/web", target("c1"), "h1", ready, health);
        assert!(matches!(
            s.tracker.phase("c1"),
            Some(CheckPhase::Starting { .. })
        ));
        assert_eq!(s.next().await, "p/web");
        assert!(matches!(
            s.tracker.phase("c1"),
            Some(CheckPhase::Ready { .. })
        ));
        // ensure() on a tracked container changes nothing.
        s.tracker
            .ensure("p/web", target("c1"), "h1", vec![], vec![]);
        assert!(matches!(
            s.tracker.status("c1"),
            Some((CheckPhase::Ready { .. }, Some(_)))
        ));
        // ensure() with other checks re-tracks.
        let (ready, health) = checks();
        s.tracker.ensure("p/web", target("c1"), "h2", ready, health);
        assert!(matches!(
            s.tracker.status("c1"),
            Some((CheckPhase::Starting { .. }, None))
        ));
        assert_eq!(s.next().await, "p/web");
        tokio::time::sleep(ms(50)).await;
        let calls = fake.calls_ms().len();
        assert!(calls >= 5, "health probes ran: {:?}", fake.calls_ms());
        s.tracker.forget("c1");
        assert_eq!(s.tracker.phase("c1"), None);
        tokio::time::sleep(HOUR).await;
        assert_eq!(fake.calls_ms().len(), calls, "no probes after forget");
        assert!(s.tracker.tracked().is_empty());
    }
}
