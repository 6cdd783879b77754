//! The controller: runs a level-triggered `reconcile(key)` for every key its
//! triggers name, through the [`Scheduler`].
//!
//! - Nothing is reconciled before the reader's cache (and every cache added with
//!   [`Controller::wait_for`]) has its first full list; triggers that arrive
//!   before are queued, deduplicated.
//! - One reconcile per key at a time; a key triggered while it runs runs once
//!   more afterwards. At most `concurrency` reconciles run at once.
//! - A reconcile returns an [`Action`]: requeue after a delay, await a change,
//!   or back off. Errors go through `error_policy(key, err, ctx) -> Action`;
//!   [`Action::backoff`] retries with per-key capped exponential backoff that a
//!   success resets. A panicking reconcile counts as an error with backoff.
//! - Each reconcile is a tokio task: it may use every core, and a panic in it
//!   does not take the controller down.
//!
//! The stream of results ends when the first trigger stream ends or the
//! shutdown future given to [`Controller::graceful_shutdown_on`] completes: no
//! new reconcile starts, running ones finish and their results are yielded.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, Stream, StreamExt};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::backoff::{BackoffConfig, Backoffs};
use super::reflector::{self, Reader};
use super::scheduler::Scheduler;
use super::watcher::Event;

/// What to do with a key after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reconcile again after this long (or sooner, if triggered).
    Requeue(Duration),
    /// Reconcile again only when triggered.
    AwaitChange,
    /// Reconcile again after the key's next backoff delay (capped exponential;
    /// reset by the next reconcile that returns another action).
    Backoff,
}

impl Action {
    /// Reconcile again after `after` (or sooner, if triggered).
    pub fn requeue(after: Duration) -> Self {
        Action::Requeue(after)
    }
    /// Reconcile again only when triggered.
    pub fn await_change() -> Self {
        Action::AwaitChange
    }
    /// Retry with this key's capped exponential backoff.
    pub fn backoff() -> Self {
        Action::Backoff
    }
}

/// What a controller reports besides successful reconciles.
#[derive(Debug, thiserror::Error)]
pub enum Error<E: std::error::Error + 'static> {
    /// A reconcile returned an error (the error policy decided what next).
    #[error("reconcile of {key} failed: {source}")]
    Reconcile {
        key: String,
        #[source]
        source: E,
    },
    /// A reconcile panicked (retried with backoff).
    #[error("reconcile of {key} panicked: {message}")]
    Panicked { key: String, message: String },
    /// A cache's writer went away before its first full list: the controller stops.
    #[error("the controller's cache never became ready: {0}")]
    NotReady(#[from] reflector::Error),
}

/// How a controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Most reconciles running at once (0: no limit).
    pub concurrency: usize,
    /// The per-key backoff of [`Action::Backoff`].
    pub backoff: BackoffConfig,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            concurrency: 16,
            backoff: BackoffConfig::default(),
        }
    }
}

/// Maps a watcher or reflector stream to the keys it touches (`InitApply`,
/// `Apply`, `Delete`); errors are logged and dropped.
pub fn trigger_keys<S, E>(stream: S) -> impl Stream<Item = String> + Send + 'static
where
    S: Stream<Item = Result<Event, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    stream.filter_map(|item| async move {
        match item {
            Ok(ev) => ev.key().map(str::to_string),
            Err(e) => {
                tracing::warn!(error = %e, "watch error");
                None
            }
        }
    })
}

/// A controller over the objects of one cache.
pub struct Controller<T> {
    reader: Reader<T>,
    primary: BoxStream<'static, String>,
    extra: Vec<BoxStream<'static, String>>,
    gates: Vec<BoxFuture<'static, Result<(), reflector::Error>>>,
    resync: Option<Duration>,
    shutdown: Option<BoxFuture<'static, ()>>,
    cfg: ControllerConfig,
}

impl<T: Send + Sync + 'static> Controller<T> {
    /// A controller reconciling the keys `trigger` names, once `reader` is ready.
    /// Usually `trigger` is `trigger_keys(reflector(writer, watcher(...)))`.
    pub fn new(reader: Reader<T>, trigger: impl Stream<Item = String> + Send + 'static) -> Self {
        let gate_reader = reader.clone();
        Controller {
            gates: vec![async move { gate_reader.wait_until_ready().await }.boxed()],
            reader,
            primary: trigger.boxed(),
            extra: Vec::new(),
            resync: None,
            shutdown: None,
            cfg: ControllerConfig::default(),
        }
    }

    /// Sets the concurrency cap and backoff.
    pub fn with_config(mut self, cfg: ControllerConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// Adds a trigger stream (e.g. Docker events mapped to keys). Its end does
    /// not stop the controller.
    pub fn with_trigger(mut self, trigger: impl Stream<Item = String> + Send + 'static) -> Self {
        self.extra.push(trigger.boxed());
        self
    }

    /// Triggers every key of the reader every `period` (a periodic resync).
    pub fn with_resync(mut self, period: Duration) -> Self {
        self.resync = Some(period);
        self
    }

    /// Also waits for `other`'s first full list before reconciling anything.
    pub fn wait_for<U: Send + Sync + 'static>(mut self, other: Reader<U>) -> Self {
        self.gates
            .push(async move { other.wait_until_ready().await }.boxed());
        self
    }

    /// Stops when `signal` completes: nothing new starts, running reconciles finish.
    pub fn graceful_shutdown_on(
        mut self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        self.shutdown = Some(signal.boxed());
        self
    }

    /// Runs the controller; see the module docs. Poll the stream to drive it.
    pub fn run<Ctx, E, R, RFut, EP>(
        self,
        reconcile: R,
        error_policy: EP,
        ctx: Arc<Ctx>,
    ) -> impl Stream<Item = Result<(String, Action), Error<E>>> + Send + 'static
    where
        Ctx: Send + Sync + 'static,
        E: std::error::Error + Send + Sync + 'static,
        R: Fn(String, Arc<Ctx>) -> RFut + Send + Sync + 'static,
        RFut: Future<Output = Result<Action, E>> + Send + 'static,
        EP: Fn(&str, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
    {
        let resync = self.resync.map(|p| {
            let mut i = tokio::time::interval_at(Instant::now() + p, p);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        let mut extra = SelectAll::new();
        for s in self.extra {
            extra.push(s);
        }
        let runner = Runner {
            reader: self.reader,
            primary: self.primary,
            extra,
            gate: futures::future::try_join_all(self.gates)
                .map(|r| r.map(|_| ()))
                .boxed(),
            ready: false,
            resync,
            shutdown: self
                .shutdown
                .unwrap_or_else(|| futures::future::pending().boxed()),
            stopping: false,
            concurrency: self.cfg.concurrency,
            backoffs: Backoffs::new(self.cfg.backoff),
            scheduler: Scheduler::new(),
            tasks: JoinSet::new(),
            task_keys: HashMap::new(),
            out: VecDeque::new(),
            reconcile: Arc::new(reconcile),
            error_policy: Arc::new(error_policy),
            ctx,
        };
        futures::stream::unfold(runner, |mut r| async move {
            let item = r.next_output().await?;
            Some((item, r))
        })
    }
}

type Output<E> = Result<(String, Action), Error<E>>;
type Joined<E> = Result<(tokio::task::Id, (String, Result<Action, E>)), tokio::task::JoinError>;

struct Runner<T, Ctx, E: std::error::Error + 'static, R, EP> {
    reader: Reader<T>,
    primary: BoxStream<'static, String>,
    extra: SelectAll<BoxStream<'static, String>>,
    gate: BoxFuture<'static, Result<(), reflector::Error>>,
    ready: bool,
    resync: Option<tokio::time::Interval>,
    shutdown: BoxFuture<'static, ()>,
    stopping: bool,
    concurrency: usize,
    backoffs: Backoffs,
    scheduler: Scheduler,
    tasks: JoinSet<(String, Result<Action, E>)>,
    task_keys: HashMap<tokio::task::Id, String>,
    out: VecDeque<Output<E>>,
    reconcile: Arc<R>,
    error_policy: Arc<EP>,
    ctx: Arc<Ctx>,
}

impl<T, Ctx, E, R, RFut, EP> Runner<T, Ctx, E, R, EP>
where
    T: Send + Sync + 'static,
    Ctx: Send + Sync + 'static,
    E: std::error::Error + Send + Sync + 'static,
    R: Fn(String, Arc<Ctx>) -> RFut + Send + Sync + 'static,
    RFut: Future<Output = Result<Action, E>> + Send + 'static,
    EP: Fn(&str, &E, Arc<Ctx>) -> Action + Send + Sync + 'static,
{
    fn start_ready(&mut self) {
        if !self.ready || self.stopping {
            return;
        }
        self.scheduler.promote(Instant::now());
        while self.concurrency == 0 || self.tasks.len() < self.concurrency {
            let Some(key) = self.scheduler.pop() else {
                break;
            };
            let reconcile = self.reconcile.clone();
            let ctx = self.ctx.clone();
            let k = key.clone();
            let handle = self.tasks.spawn(async move {
                let result = reconcile(k.clone(), ctx).await;
                (k, result)
            });
            self.task_keys.insert(handle.id(), key);
        }
    }

    fn schedule_action(&mut self, key: &str, action: Action) {
        if self.stopping {
            return;
        }
        let now = Instant::now();
        match action {
            Action::Requeue(d) => self.scheduler.schedule(key.to_string(), now + d, now),
            Action::AwaitChange => {}
            Action::Backoff => {
                let d = self.backoffs.next(key);
                self.scheduler.schedule(key.to_string(), now + d, now);
            }
        }
    }

    fn finished(&mut self, joined: Joined<E>) {
        let now = Instant::now();
        match joined {
            Ok((id, (key, result))) => {
                self.task_keys.remove(&id);
                self.scheduler.done(&key, now);
                match result {
                    Ok(action) => {
                        if action != Action::Backoff {
                            self.backoffs.reset(&key);
                        }
                        self.schedule_action(&key, action);
                        self.out.push_back(Ok((key, action)));
                    }
                    Err(e) => {
                        let action = (self.error_policy)(&key, &e, self.ctx.clone());
                        self.schedule_action(&key, action);
                        self.out.push_back(Err(Error::Reconcile { key, source: e }));
                    }
                }
            }
            Err(join_err) => {
                let Some(key) = self.task_keys.remove(&join_err.id()) else {
                    tracing::error!(error = %join_err, "a reconcile task of unknown key failed");
                    return;
                };
                self.scheduler.done(&key, now);
                let message = if join_err.is_panic() {
                    let p = join_err.into_panic();
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(non-string panic)".into())
                } else {
                    "task cancelled".into()
                };
                self.schedule_action(&key, Action::Backoff);
                self.out.push_back(Err(Error::Panicked { key, message }));
            }
        }
    }

    fn trigger(&mut self, key: String) {
        let now = Instant::now();
        self.scheduler.schedule(key, now, now);
    }

    fn stop(&mut self) {
        self.stopping = true;
        self.scheduler.clear_waiting();
    }

    async fn next_output(&mut self) -> Option<Output<E>> {
        loop {
            self.start_ready();
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if self.stopping && self.tasks.is_empty() {
                return None;
            }
            let deadline = if self.ready && !self.stopping {
                self.scheduler.next_deadline()
            } else {
                None
            };
            let has_extra = !self.extra.is_empty();
            tokio::select! {
                biased;
                _ = &mut self.shutdown, if !self.stopping => self.stop(),
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(joined);
                }
                gate = &mut self.gate, if !self.ready => match gate {
                    Ok(()) => self.ready = true,
                    Err(e) => {
                        self.stop();
                        self.out.push_back(Err(Error::NotReady(e)));
                    }
                },
                key = self.primary.next(), if !self.stopping => match key {
                    Some(key) => self.trigger(key),
                    None => self.stop(),
                },
                Some(key) = self.extra.next(), if !self.stopping && has_extra => self.trigger(key),
                _ = tick(&mut self.resync), if self.ready && !self.stopping && self.resync.is_some() => {
                    for key in self.reader.keys() {
                        self.trigger(key);
                    }
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    self.scheduler.promote(Instant::now());
                }
            }
        }
    }
}

async fn tick(i: &mut Option<tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => futures::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::reflector::{store, Writer};
    use crate::runtime::watcher::Kv;
    use futures::channel::mpsc;
    use std::sync::Mutex;

    #[derive(Debug, thiserror::Error)]
    #[error("test failure {0}")]
    struct TestError(u32);

    type Behave = Box<dyn Fn(&str, u32) -> (Duration, Result<Action, TestError>) + Send + Sync>;

    /// Records every run: which key, when it started (ms since the test's start),
    /// and how many ran at once.
    struct Ctx {
        start: Instant,
        behave: Behave,
        runs: Mutex<Vec<(String, u64)>>,
        per_key: Mutex<HashMap<String, u32>>,
        running: Mutex<(usize, usize, HashMap<String, usize>, usize)>,
    }

    impl Ctx {
        fn new(behave: Behave) -> Arc<Ctx> {
            Arc::new(Ctx {
                start: Instant::now(),
                behave,
                runs: Mutex::new(Vec::new()),
                per_key: Mutex::new(HashMap::new()),
                running: Mutex::new((0, 0, HashMap::new(), 0)),
            })
        }
        fn runs(&self) -> Vec<(String, u64)> {
            self.runs.lock().map(|r| r.clone()).unwrap_or_default()
        }
        fn times(&self, key: &str) -> Vec<u64> {
            self.runs()
                .into_iter()
                .filter(|(k, _)| k == key)
                .map(|(_, t)| t)
                .collect()
        }
        /// (most at once overall, most at once for one key)
        fn max_parallel(&self) -> (usize, usize) {
            let r = self.running.lock().expect("lock");
            (r.1, r.3)
        }
    }

    async fn reconcile(key: String, ctx: Arc<Ctx>) -> Result<Action, TestError> {
        let n = {
            let mut pk = ctx.per_key.lock().expect("lock");
            let n = pk.entry(key.clone()).or_insert(0);
            *n += 1;
            *n
        };
        ctx.runs
            .lock()
            .expect("lock")
            .push((key.clone(), ctx.start.elapsed().as_millis() as u64));
        {
            let mut r = ctx.running.lock().expect("lock");
            r.0 += 1;
            r.1 = r.1.max(r.0);
            let k = r.2.entry(key.clone()).or_insert(0);
            *k += 1;
            let k = *k;
            r.3 = r.3.max(k);
        }
        let (sleep, result) = (ctx.behave)(&key, n);
        if key == "panic" {
            panic!("boom");
        }
        tokio::time::sleep(sleep).await;
        {
            let mut r = ctx.running.lock().expect("lock");
            r.0 -= 1;
            if let Some(k) = r.2.get_mut(&key) {
                *k -= 1;
            }
        }
        result
    }

    fn backoff_policy(_key: &str, _e: &TestError, _ctx: Arc<Ctx>) -> Action {
        Action::backoff()
    }

    fn ready_store() -> (Reader<u32>, Writer<u32>) {
        let (reader, mut writer) =
            store(|kv: &Kv| std::str::from_utf8(&kv.value).ok()?.parse().ok());
        writer.apply_watcher_event(&Event::Init);
        for k in ["a", "b"] {
            writer.apply_watcher_event(&Event::InitApply(Kv {
                key: k.into(),
                value: b"1".to_vec(),
                mod_revision: 1,
                create_revision: 1,
            }));
        }
        writer.apply_watcher_event(&Event::InitDone);
        (reader, writer)
    }

    fn cfg(concurrency: usize) -> ControllerConfig {
        ControllerConfig {
            concurrency,
            backoff: BackoffConfig {
                min: Duration::from_secs(1),
                max: Duration::from_secs(8),
                factor: 2.0,
                jitter: false,
            },
        }
    }

    type Results = Vec<Output<TestError>>;

    /// Runs a controller for `for_` of (paused) time, feeding `keys` at the start.
    async fn drive(
        reader: Reader<u32>,
        ctx: Arc<Ctx>,
        concurrency: usize,
        keys: &[&str],
        for_: Duration,
        configure: impl FnOnce(Controller<u32>) -> Controller<u32>,
    ) -> Results {
        let (tx, rx) = mpsc::unbounded::<String>();
        let c = configure(Controller::new(reader, rx).with_config(cfg(concurrency)));
        let handle = tokio::spawn(c.run(reconcile, backoff_policy, ctx).collect::<Vec<_>>());
        for k in keys {
            let _ = tx.unbounded_send(k.to_string());
        }
        tokio::time::sleep(for_).await;
        drop(tx);
        handle.await.expect("controller task")
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[tokio::test(start_paused = true)]
    async fn burst_of_triggers_is_deduplicated() {
        let (reader, _w) = ready_store();
        let ctx = Ctx::new(Box::new(|_, _| (secs(1), Ok(Action::await_change()))));
        let results = drive(reader, ctx.clone(), 4, &["a"; 20], secs(10), |c| c).await;
        // The first trigger starts a run; the other 19 arrive while it runs: one re-run.
        assert_eq!(ctx.times("a"), vec![0, 1000]);
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.is_ok()));
    }

    #[tokio::test(start_paused = true)]
    async fn one_reconcile_per_key_at_a_time() {
        let (reader, _w) = ready_store();
        let ctx = Ctx::new(Box::new(|_, _| (secs(2), Ok(Action::await_change()))));
        let (tx, rx) = mpsc::unbounded::<String>();
        let c = Controller::new(reader, rx).with_config(cfg(10));
        let handle = tokio::spawn(
            c.run(reconcile, backoff_policy, ctx.clone())
                .collect::<Vec<_>>(),
        );
        for _ in 0..5 {
            let _ = tx.unbounded_send("a".into());
            let _ = tx.unbounded_send("b".into());
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        tokio::time::sleep(secs(10)).await;
        drop(tx);
        let _ = handle.await;
        assert_eq!(ctx.max_parallel().1, 1, "never two runs of one key at once");
        assert_eq!(ctx.max_parallel().0, 2, "different keys do run in parallel");
        // Runs at 0 and (triggered meanwhile) right after the first finished.
        assert_eq!(ctx.times("a"), vec![0, 2000]);
        assert_eq!(ctx.times("b"), vec![0, 2000]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_is_capped() {
        let (reader, _w) = ready_store();
        let ctx = Ctx::new(Box::new(|_, _| (secs(1), Ok(Action::await_change()))));
        let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let results = drive(reader, ctx.clone(), 3, &keys, secs(10), |c| c).await;
        assert_eq!(results.len(), 10);
        assert_eq!(ctx.max_parallel().0, 3);
        let mut starts: Vec<u64> = ctx.runs().into_iter().map(|(_, t)| t).collect();
        starts.sort();
        assert_eq!(
            starts,
            vec![0, 0, 0, 1000, 1000, 1000, 2000, 2000, 2000, 3000]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn requeue_after_runs_again_and_a_trigger_comes_sooner() {
        let (reader, _w) = ready_store();
        let ctx = Ctx::new(Box::new(|_, _| {
            (Duration::ZERO, Ok(Action::requeue(secs(10))))
        }));
        let (tx, rx) = mpsc::unbounded::<String>();
        let handle = tokio::spawn(
            Controller::new(reader, rx)
                .with_config(cfg(4))
                .run(reconcile, backoff_policy, ctx.clone())
                .collect::<Vec<_>>(),
        );
        let _ = tx.unbounded_send("a".into());
        tokio::time::sleep(secs(25)).await;
        // A trigger at 25 s beats the requeue due at 30 s.
        let _ = tx.unbounded_send("a".into());
        tokio::time::sleep(secs(11)).await;
        drop(tx);
        let _ = handle.await;
        assert_eq!(ctx.times("a"), vec![0, 10_000, 20_000, 25_000, 35_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_back_off_per_key_capped_and_reset_on_success() {
        let (reader, _w) = ready_store();
        // "a" fails 7 times, then succeeds and waits; "b" always succeeds.
        let ctx = Ctx::new(Box::new(|key, n| {
            if key == "a" && n <= 7 {
                (Duration::ZERO, Err(TestError(n)))
            } else {
                (Duration::ZERO, Ok(Action::await_change()))
            }
        }));
        let (tx, rx) = mpsc::unbounded::<String>();
        let handle = tokio::spawn(
            Controller::new(reader, rx)
                .with_config(cfg(4))
                .run(reconcile, backoff_policy, ctx.clone())
                .collect::<Vec<_>>(),
        );
        let _ = tx.unbounded_send("a".into());
        let _ = tx.unbounded_send("b".into());
        tokio::time::sleep(secs(60)).await;
        drop(tx);
        let results = handle.await.expect("controller");
        // Delays 1, 2, 4, 8 (cap), 8, 8, 8 seconds.
        assert_eq!(
            ctx.times("a"),
            vec![0, 1000, 3000, 7000, 15_000, 23_000, 31_000, 39_000]
        );
        assert_eq!(ctx.times("b"), vec![0]);
        let errors = results.iter().filter(|r| r.is_err()).count();
        assert_eq!(errors, 7);
        assert!(results.iter().any(|r| matches!(
            r,
            Err(Error::Reconcile { key, source: TestError(1) }) if key == "a"
        )));
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_restarts_from_the_bottom_after_a_success() {
        let (reader, _w) = ready_store();
        // Fails on runs 1-3, succeeds on 4 (await change), fails again on 5-6.
        let ctx = Ctx::new(Box::new(|_, n| match n {
            4 | 7.. => (Duration::ZERO, Ok(Action::await_change())),
            n => (Duration::ZERO, Err(TestError(n))),
        }));
        let (tx, rx) = mpsc::unbounded::<String>();
        let handle = tokio::spawn(
            Controller::new(reader, rx)
                .with_config(cfg(4))
                .run(reconcile, backoff_policy, ctx.clone())
                .collect::<Vec<_>>(),
        );
        let _ = tx.unbounded_send("a".into());
        tokio::time::sleep(secs(20)).await;
        let _ = tx.unbounded_send("a".into());
        tokio::time::sleep(secs(20)).await;
        drop(tx);
        let _ = handle.await;
        // 0 fail, +1 fail, +2 fail, +4 ok; trigger at 20: fail, +1 fail, +2 ok.
        assert_eq!(
            ctx.times("a"),
            vec![0, 1000, 3000, 7000, 20_000, 21_000, 23_000]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_runs_before_the_cache_is_ready() {
        let (reader, mut writer) =
            store(|kv: &Kv| std::str::from_utf8(&kv.value).ok()?.parse::<u32>().ok());
        let ctx = Ctx::new(Box::new(|_, _| {
            (Duration::ZERO, Ok(Action::await_change()))
        }));
        let (tx, rx) = mpsc::unbounded::<String>();
        let handle = tokio::spawn(
            Controller::new(reader, rx)
                .with_config(cfg(4))
                .run(reconcile, backoff_policy, ctx.clone())
                .collect::<Vec<_>>(),
        );
        let _ = tx.unbounded_send("a".into());
        let _ = tx.unbounded_send("a".into());
        tokio::time::sleep(secs(5)).await;
        assert!(ctx.runs().is_empty(), "ran before the first full list");
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        tokio::time::sleep(secs(1)).await;
        drop(tx);
        let _ = handle.await;
        assert_eq!(ctx.times("a"), vec![5000]);
    }

    #[tokio::test(start_paused = true)]
    async fn resync_and_extra_triggers() {
        let (reader, _w) = ready_store();
        let ctx = Ctx::new(Box::new(|_, _| {
            (Duration::ZERO, Ok(Action::await_change()))
        }));
        let (extra_tx, extra_rx) = mpsc::unbounded::<String>();
        let _ = extra_tx.unbounded_send("docker-event".into());
        drop(extra_tx); // an extra stream ending does not stop the controller
        drive(
            reader,
            ctx.clone(),
            4,
            &[],
            Duration::from_millis(12_500),
            |c| c.with_resync(secs(5)).with_trigger(extra_rx),
        )
        .await;
        assert_eq!(ctx.times("a"), vec![5000, 10_000]);
        assert_eq!(ctx.times("b"), vec![5000, 10_000]);
        assert_eq!(ctx.times("docker-event"), vec![0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_reconcile_is_an_error_retried_with_backoff() {
        let (reader, _w) = ready_store();
        let ctx = Ctx::new(Box::new(|_, _| {
            (Duration::ZERO, Ok(Action::await_change()))
        }));
        let results = drive(reader, ctx.clone(), 4, &["panic", "a"], secs(4), |c| c).await;
        assert_eq!(ctx.times("panic"), vec![0, 1000, 3000]);
        assert_eq!(ctx.times("a"), vec![0]);
        assert!(results
            .iter()
            .any(|r| matches!(r, Err(Error::Panicked { key, message }) if key == "panic" && message == "boom")));
    }

    #[tokio::test(start_paused = true)]
    async fn graceful_shutdown_lets_running_reconciles_finish() {
        let (reader, _w) = ready_store();
        let ctx = Ctx::new(Box::new(|_, _| (secs(3), Ok(Action::requeue(secs(1))))));
        let (tx, rx) = mpsc::unbounded::<String>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stream = Controller::new(reader, rx)
            .with_config(cfg(1))
            .graceful_shutdown_on(async move {
                let _ = stop_rx.await;
            })
            .run(reconcile, backoff_policy, ctx.clone());
        let handle = tokio::spawn(stream.collect::<Vec<_>>());
        let _ = tx.unbounded_send("a".into());
        let _ = tx.unbounded_send("b".into());
        tokio::time::sleep(secs(1)).await;
        let _ = stop_tx.send(());
        let results = handle.await.expect("controller");
        // "a" finished its run; "b" (queued) and the requeue never ran.
        assert_eq!(results.len(), 1);
        assert_eq!(ctx.times("a"), vec![0]);
        assert!(ctx.times("b").is_empty());
        assert_eq!(Instant::now() - ctx.start, secs(3));
        drop(tx);
    }
}
