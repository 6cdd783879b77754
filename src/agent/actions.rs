//! The agent's side of the API's per-container routes (see
//! `api::container`): a restart in place and the logs of this node's own
//! containers. Evictions need nothing here: the API writes the request to
//! etcd and [`super::evictions`] acts on it.

use std::sync::Arc;

use futures::StreamExt;

use super::plan::StopHow;
use super::reconcile::{self, Ctx};
use crate::api::{LocalContainers, LocalError, LogOptions, LogStream};
use crate::resource::Reason;

pub struct LocalActions {
    ctx: Arc<Ctx>,
}

impl LocalActions {
    pub fn new(ctx: Arc<Ctx>) -> LocalActions {
        LocalActions { ctx }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

impl LocalContainers for LocalActions {
    fn node(&self) -> &str {
        &self.ctx.node
    }

    /// Drains (like every graceful stop: out of the balancer and the
    /// endpoints, open connections to zero or `drainTimeout`), stops with
    /// the template's signals and grace period, and starts the same
    /// container again through the crash-restart path (restart count,
    /// checks tracked anew). While it runs the container is marked
    /// `stopping` ([`StopHow::Restart`]): the planner takes no step on it
    /// and starts nothing in its slot, and its exit is no crash;
    /// the task is tracked like every stop, so shutdown waits for it.
    fn restart(&self, id: &str) -> Result<String, LocalError> {
        let ctx = &self.ctx;
        let r = ctx
            .containers
            .get(id)
            .ok_or_else(|| LocalError::NotHere(short(id).into()))?;
        if r.stopping.is_some() {
            return Err(LocalError::Refused(format!(
                "container {} is being stopped already",
                r.name
            )));
        }
        if !r.is_running() {
            return Err(LocalError::Refused(format!(
                "container {} is not running (its node restarts it after a crash by itself)",
                r.name
            )));
        }
        let ck = r.key();
        let key = ctx.key_of(&ck);
        let rev = match ctx.assignments.get(&key).as_deref() {
            Some(Ok(a)) => a.of_hash(&r.owner.hash).cloned(),
            _ => None,
        }
        .ok_or_else(|| {
            LocalError::Refused(format!(
                "container {} is no longer assigned to this node: it is leaving",
                r.name
            ))
        })?;
        let termination = rev.template.termination.clone().unwrap_or_default();
        ctx.containers.stopping(id, StopHow::Restart);
        ctx.tracker.forget(id);
        let drain = ctx.traffic.drain(&ck, id, termination.drain_timeout());
        let _ = ctx.trigger.send(key.clone());
        let (ctx2, id2, name) = (ctx.clone(), id.to_string(), r.name.clone());
        ctx.stops.spawn(async move {
            let (ctx, id) = (ctx2, id2);
            drain.await;
            let stopped = ctx.exec.stop(&id, &termination).await;
            ctx.traffic.restarted(&id);
            // `reconcile::restart` records its own failure; a container
            // gone meanwhile (it returns Ok) was not restarted.
            let event = match stopped {
                Err(e) => {
                    tracing::warn!(container = %short(&id), error = %e, "restart on request: stop failed");
                    let message = format!("container {}: restart on request failed: {e}", short(&id));
                    Some((Reason::RestartFailed, message))
                }
                Ok(()) => match reconcile::restart(&ctx, &key, &ck, &id, &rev).await {
                    Err(e) => {
                        tracing::warn!(container = %short(&id), error = %e, "restart on request failed");
                        None
                    }
                    Ok(()) => ctx.containers.get(&id).map(|r| {
                        let message = format!(
                            "container {} restarted on request (drained, stopped, started; restarts: {})",
                            short(&id),
                            r.restarts
                        );
                        (Reason::Restarted, message)
                    }),
                },
            };
            ctx.containers.not_stopping(&id);
            if let Some((reason, message)) = event {
                ctx.states.event(&ck, reason.as_str(), &message);
            }
            let _ = ctx.trigger.send(key);
        });
        Ok(format!("container {name} restarting: drain, stop, start"))
    }

    fn logs(&self, id: &str, opts: LogOptions) -> Result<LogStream, LocalError> {
        if self.ctx.containers.get(id).is_none() {
            return Err(LocalError::NotHere(short(id).into()));
        }
        Ok(self
            .ctx
            .exec
            .logs(id, opts.tail, opts.follow)
            .map(|r| r.map_err(|e| e.to_string()))
            .boxed())
    }
}
