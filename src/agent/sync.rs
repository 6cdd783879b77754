//! Keeping [`Containers`](super::state::Containers) in step with the Docker engine: the container
//! events stream (only this agent's containers, by label) and full resyncs
//! (list by label, inspect each) after every (re)open of the stream and
//! periodically.
//!
//! The first resync is the adoption of the containers a previous run of the
//! agent left: nothing is reconciled before it completes (`adopted`), so a
//! healthy container is never started twice.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::executor::{node_filters, Owner};
use super::reconcile::Ctx;
use super::state::Change;
use crate::docker::{ContainerEvent, EventItem};

/// Inspects running at once during a resync.
const RESYNC_PARALLELISM: usize = 8;

/// Event inspections in flight at once; more events wait in the stream.
const EVENT_PARALLELISM: usize = 16;

/// What one event of this agent's containers asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventAction {
    /// The container is gone: forget it.
    Forget,
    /// Its state changed: inspect it and merge what Docker says.
    Inspect,
    /// Nothing (creation is the agent's own doing, or someone else's, seen
    /// at the start that follows; kills are followed by `die`).
    Ignore,
}

/// What Docker's event `action` asks for (pure).
pub fn event_action(action: &str) -> EventAction {
    match action {
        "destroy" => EventAction::Forget,
        "die" | "oom" | "start" | "restart" | "stop" | "unpause" | "pause" => EventAction::Inspect,
        _ => EventAction::Ignore,
    }
}

/// Work the loop has in flight: inspections after events, and at most one
/// resync. Running them beside the loop, not in it, keeps one slow inspect
/// (an engine under load) from stalling every other event.
type Work<'a> = futures::stream::FuturesUnordered<futures::future::BoxFuture<'a, Done>>;

enum Done {
    Event,
    Resync(Result<(), crate::docker::Error>),
}

/// The resync bookkeeping (pure): at most one resync runs; however often
/// one is asked for meanwhile, one more runs once it ends (what changed
/// while it listed may have been missed, and one more list sees it).
#[derive(Debug, Default, PartialEq, Eq)]
struct Resyncs {
    running: bool,
    again: bool,
}

impl Resyncs {
    /// A resync is wanted: `true` when one is to start now.
    fn want(&mut self) -> bool {
        if self.running {
            self.again = true;
            return false;
        }
        self.running = true;
        true
    }

    /// The running resync ended: `true` when another is to start now.
    fn done(&mut self) -> bool {
        self.running = false;
        std::mem::take(&mut self.again) && self.want()
    }
}

/// What the answer of an inspect after an event asks for (pure): forget
/// the checks of a container that exited; reconcile on any change.
fn after_inspect(change: Change) -> (bool, bool) {
    let forget_checks = change == Change::Exited;
    (forget_checks, change != Change::Unchanged)
}

/// Runs until `shutdown`; `adopted` turns true after the first full resync.
pub async fn run(
    ctx: Arc<Ctx>,
    root: String,
    resync_every: Duration,
    adopted: watch::Sender<bool>,
    shutdown: CancellationToken,
) {
    let filters = node_filters(&root, &ctx.node);
    let mut events = std::pin::pin!(ctx.exec.docker.event_stream(None, &filters));
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + resync_every, resync_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut work: Work = Default::default();
    let mut resyncs = Resyncs::default();
    loop {
        let busy = work.len() > EVENT_PARALLELISM;
        let mut start_resync = false;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            item = events.next(), if !busy => match item {
                Some(EventItem::Resync) => start_resync = resyncs.want(),
                Some(EventItem::Event(ev)) => {
                    let (ctx, root) = (ctx.clone(), root.clone());
                    work.push(Box::pin(async move {
                        handle(&ctx, &root, ev).await;
                        Done::Event
                    }));
                }
                None => return,
            },
            _ = tick.tick() => start_resync = resyncs.want(),
            Some(done) = work.next() => if let Done::Resync(r) = done {
                match r {
                    Ok(()) => { let _ = adopted.send(true); }
                    Err(e) => tracing::warn!(error = %e, "resync failed; retrying at the next tick"),
                }
                start_resync = resyncs.done();
            },
        }
        if start_resync {
            let (ctx, root) = (ctx.clone(), root.clone());
            work.push(Box::pin(
                async move { Done::Resync(resync(&ctx, &root).await) },
            ));
        }
    }
}

/// Acts on one event of this agent's containers.
async fn handle(ctx: &Arc<Ctx>, root: &str, ev: ContainerEvent) {
    ctx.metrics.docker_events.inc();
    let Some(owner) = Owner::from_labels(&ev.labels, root, &ctx.node) else {
        return;
    };
    let key = ctx.key_of(&owner.key());
    match event_action(&ev.action) {
        EventAction::Forget => {
            ctx.tracker.forget(&ev.id);
            if ctx.containers.remove(&ev.id).is_some() {
                let _ = ctx.trigger.send(key);
            }
        }
        EventAction::Inspect => inspect(ctx, &ev, owner, key).await,
        EventAction::Ignore => {}
    }
}

/// Inspects a container after an event and merges the answer (ordered by
/// Docker's own clock, so answers arriving out of order are harmless).
async fn inspect(ctx: &Arc<Ctx>, ev: &ContainerEvent, owner: Owner, key: String) {
    let asked = tokio::time::Instant::now().into_std();
    match ctx.exec.docker.inspect(&ev.id).await {
        Ok(d) => {
            let change = ctx.containers.observe(&d, owner, ev.time, asked);
            let (forget_checks, trigger) = after_inspect(change);
            if forget_checks {
                ctx.tracker.forget(&ev.id);
                tracing::info!(container = %d.name, code = d.exit_code.unwrap_or(-1), oom = d.oom_killed, "container exited");
            }
            if trigger {
                let _ = ctx.trigger.send(key);
            }
        }
        Err(e) if e.is_not_found() => {
            ctx.tracker.forget(&ev.id);
            if ctx.containers.remove(&ev.id).is_some() {
                let _ = ctx.trigger.send(key);
            }
        }
        Err(e) => {
            tracing::warn!(container = %ev.id, error = %e, "inspecting after an event failed")
        }
    }
}

/// Lists this agent's containers and merges each; forgets the ones gone;
/// triggers every component with containers.
pub async fn resync(ctx: &Arc<Ctx>, root: &str) -> Result<(), crate::docker::Error> {
    ctx.metrics.resyncs.inc();
    let listed_at = tokio::time::Instant::now().into_std();
    let list = ctx.exec.docker.list(&node_filters(root, &ctx.node)).await?;
    let present: HashSet<String> = list.iter().map(|c| c.id.clone()).collect();
    let inspections = futures::stream::iter(list.into_iter().filter_map(|c| {
        let owner = Owner::from_labels(&c.labels, root, &ctx.node)?;
        Some(async move {
            let asked = tokio::time::Instant::now().into_std();
            (
                ctx.exec.docker.inspect(&c.id).await,
                owner,
                c.created,
                asked,
            )
        })
    }))
    .buffer_unordered(RESYNC_PARALLELISM)
    .collect::<Vec<_>>()
    .await;
    for (r, owner, created, asked) in inspections {
        match r {
            Ok(d) => {
                if ctx.containers.observe(&d, owner, created, asked) == Change::Exited {
                    ctx.tracker.forget(&d.id);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    for gone in ctx.containers.retain_listed(&present, listed_at) {
        ctx.tracker.forget(&gone.id);
        let _ = ctx.trigger.send(ctx.key_of(&gone.key()));
    }
    // Forget checks of containers no longer known.
    let known: HashSet<String> = ctx.containers.ids().into_iter().collect();
    for id in ctx.tracker.tracked() {
        if !known.contains(&id) {
            ctx.tracker.forget(&id);
        }
    }
    let (running, all) = ctx.containers.counts();
    ctx.metrics.containers.set(all as i64);
    ctx.metrics.containers_running.set(running as i64);
    for ck in ctx.containers.keys() {
        let _ = ctx.trigger.send(ctx.key_of(&ck));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_actions() {
        let check =
            |action: &str, want: EventAction| assert_eq!(event_action(action), want, "{action}");
        check("destroy", EventAction::Forget);
        for a in ["die", "oom", "start", "restart", "stop", "pause", "unpause"] {
            check(a, EventAction::Inspect);
        }
        for a in [
            "create",
            "kill",
            "attach",
            "exec_start",
            "health_status",
            "",
        ] {
            check(a, EventAction::Ignore);
        }
    }

    /// `asks`: `w` a resync is wanted, `d` the running one ended; `starts`:
    /// per ask, `s` when a resync starts then, `.` when none does.
    #[test]
    fn one_resync_at_a_time_and_one_more_after_asks_meanwhile() {
        fn check(asks: &str, starts: &str) {
            let mut r = Resyncs::default();
            let got: String = asks
                .chars()
                .map(|c| match c {
                    'w' => r.want(),
                    'd' => r.done(),
                    _ => unreachable!("w or d"),
                })
                .map(|start| if start { 's' } else { '.' })
                .collect();
            assert_eq!(got, starts, "{asks}");
        }
        check("w", "s");
        check("wd", "s.");
        check("ww", "s.");
        check("wwd", "s.s");
        // However often asked meanwhile: one more.
        check("wwwwd", "s...s");
        check("wwwdd", "s..s.");
        check("wdw", "s.s");
        check("wwdwd", "s.s.s");
        // A done with nothing running starts nothing.
        check("d", ".");
    }

    #[test]
    fn an_inspect_answer_triggers_on_change_and_forgets_exited_checks() {
        fn check(change: Change, forget_checks: bool, trigger: bool) {
            assert_eq!(
                after_inspect(change),
                (forget_checks, trigger),
                "{change:?}"
            );
        }
        check(Change::New, false, true);
        check(Change::Exited, true, true);
        check(Change::Started, false, true);
        check(Change::Updated, false, true);
        check(Change::Unchanged, false, false);
    }
}
