//! The container events stream: raw ([`Docker::events`]) and resilient
//! ([`Docker::event_stream`]: re-opened with `since` after the engine goes
//! away, with a [`EventItem::Resync`] marker after each (re)open).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptions;
use futures::stream::{BoxStream, Stream, StreamExt};

use super::{Docker, Error, Result};

/// Container life-cycle actions the streams report (exec and health noise is
/// filtered out by the engine).
pub const LIFECYCLE_ACTIONS: [&str; 12] = [
    "create", "start", "restart", "die", "oom", "kill", "stop", "pause", "unpause", "destroy",
    "rename", "update",
];

/// Attributes Docker adds to a container event besides the container's labels.
const NON_LABEL_ATTRIBUTES: [&str; 4] = ["image", "name", "exitCode", "signal"];

/// One container event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEvent {
    /// Container id.
    pub id: String,
    /// `create`, `start`, `die`, `oom`, `kill`, `stop`, `destroy`, ...
    pub action: String,
    /// Container name, without `/`.
    pub name: String,
    pub image: String,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// For `die`.
    pub exit_code: Option<i64>,
    /// For `kill`: the signal number.
    pub signal: Option<String>,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    pub time_nano: i64,
}

impl ContainerEvent {
    fn from_message(m: EventMessage) -> Option<ContainerEvent> {
        let actor = m.actor?;
        let mut attrs: HashMap<String, String> = actor.attributes.unwrap_or_default();
        let action = m.action?;
        // `exec_start: sh -c ...`, `health_status: healthy`: keep the verb.
        let action = action
            .split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let exit_code = attrs.get("exitCode").and_then(|c| c.parse().ok());
        let signal = attrs.get("signal").cloned();
        let name = attrs.get("name").cloned().unwrap_or_default();
        let image = attrs.get("image").cloned().unwrap_or_default();
        for k in NON_LABEL_ATTRIBUTES {
            attrs.remove(k);
        }
        let time = m.time.unwrap_or_default();
        Some(ContainerEvent {
            id: actor.id?,
            action,
            name,
            image,
            labels: attrs.into_iter().collect(),
            exit_code,
            signal,
            time,
            time_nano: m.time_nano.unwrap_or(time.saturating_mul(1_000_000_000)),
        })
    }
}

/// An item of the resilient stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventItem {
    /// The stream was (re)opened: events may have been missed, list the
    /// containers by label again. Always the first item.
    Resync,
    Event(ContainerEvent),
}

fn filters(label_filters: &[(String, String)]) -> HashMap<String, Vec<String>> {
    let mut f = HashMap::new();
    f.insert("type".to_string(), vec!["container".to_string()]);
    f.insert(
        "event".to_string(),
        LIFECYCLE_ACTIONS.iter().map(|s| s.to_string()).collect(),
    );
    if !label_filters.is_empty() {
        f.insert(
            "label".to_string(),
            label_filters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        );
    }
    f
}

/// `since` as Docker takes it: `seconds.nanoseconds`.
fn since_arg(nanos: i64) -> String {
    format!(
        "{}.{:09}",
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000)
    )
}

impl Docker {
    /// The engine's clock in Unix nanoseconds (from `/info`), or ours less a
    /// second when it cannot be read.
    pub async fn engine_now(&self) -> i64 {
        let local = || {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as i64 - 1_000_000_000
        };
        match self
            .call("info", "", super::CALL_TIMEOUT, self.inner.info())
            .await
        {
            Ok(info) => info
                .system_time
                .and_then(|t| humantime::parse_rfc3339_weak(&t).ok())
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as i64)
                .unwrap_or_else(local),
            Err(_) => local(),
        }
    }

    /// Container events with all the given labels, from `since` (Unix
    /// nanoseconds; `None`: from now on). Lazy: the request is sent on the
    /// first poll, so start polling before acting. Ends when the engine
    /// restarts.
    pub fn events(
        &self,
        since: Option<i64>,
        label_filters: &[(String, String)],
    ) -> impl Stream<Item = Result<ContainerEvent>> + Send + 'static {
        let options = EventsOptions {
            since: since.map(since_arg),
            until: None,
            filters: Some(filters(label_filters)),
        };
        let host = self.host.clone();
        self.inner.events(Some(options)).filter_map(move |r| {
            let item = match r {
                Ok(m) => ContainerEvent::from_message(m).map(Ok),
                Err(e) => Some(Err(Error::from_bollard(e, &host, "events"))),
            };
            futures::future::ready(item)
        })
    }

    /// A stream that never ends: [`Docker::events`] re-opened after every
    /// end or error (pinging the engine with exponential backoff until it
    /// answers), from the last event seen (or, before any, from `since`, Unix
    /// nanoseconds, or the engine's now). Emits [`EventItem::Resync`] after
    /// each open, the first included: list by label then, since events may
    /// have been missed. Events seen before a re-open are not repeated.
    pub fn event_stream(
        &self,
        since: Option<i64>,
        label_filters: &[(String, String)],
    ) -> impl Stream<Item = EventItem> + Send + 'static {
        let state = Resilient {
            docker: self.clone(),
            labels: label_filters.to_vec(),
            since,
            seen_at_since: HashSet::new(),
            inner: None,
            opened: Instant::now(),
            events_since_open: 0,
            backoff: None,
        };
        futures::stream::unfold(state, |mut s| async move {
            let item = s.next().await;
            Some((item, s))
        })
    }
}

struct Resilient {
    docker: Docker,
    labels: Vec<(String, String)>,
    /// Time of the last event seen (ns, the engine's clock): where a re-open
    /// starts. Before any event: `since`, or the engine's clock at the open.
    since: Option<i64>,
    /// (id, action) of the events seen at exactly `since`, to skip replays.
    seen_at_since: HashSet<(String, String)>,
    inner: Option<BoxStream<'static, Result<ContainerEvent>>>,
    opened: Instant,
    events_since_open: u64,
    backoff: Option<backon::ExponentialBackoff>,
}

impl Resilient {
    fn new_backoff() -> backon::ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times()
            .build()
    }

    async fn next(&mut self) -> EventItem {
        loop {
            let Some(inner) = self.inner.as_mut() else {
                self.reopen().await;
                return EventItem::Resync;
            };
            match inner.next().await {
                Some(Ok(ev)) => {
                    let since = self.since.unwrap_or(i64::MIN);
                    if ev.time_nano < since {
                        continue;
                    }
                    let key = (ev.id.clone(), ev.action.clone());
                    if ev.time_nano == since {
                        if !self.seen_at_since.insert(key) {
                            continue;
                        }
                    } else {
                        self.since = Some(ev.time_nano);
                        self.seen_at_since.clear();
                        self.seen_at_since.insert(key);
                    }
                    self.events_since_open += 1;
                    return EventItem::Event(ev);
                }
                other => {
                    match other {
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "Docker events stream failed; re-opening")
                        }
                        _ => tracing::warn!("Docker events stream ended; re-opening"),
                    }
                    self.inner = None;
                    // A stream that worked for a while starts a fresh backoff.
                    if self.events_since_open > 0 || self.opened.elapsed() > Duration::from_secs(10)
                    {
                        self.backoff = None;
                    }
                    let delay = self.backoff.get_or_insert_with(Self::new_backoff).next();
                    tokio::time::sleep(delay.unwrap_or(Duration::from_secs(5))).await;
                }
            }
        }
    }

    /// Waits until the engine answers a ping, then opens the stream.
    async fn reopen(&mut self) {
        loop {
            match self
                .docker
                .call("ping", "", super::CONNECT_TIMEOUT, self.docker.inner.ping())
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    let delay = self.backoff.get_or_insert_with(Self::new_backoff).next();
                    tracing::debug!(error = %e, "Docker engine not answering; retrying");
                    tokio::time::sleep(delay.unwrap_or(Duration::from_secs(5))).await;
                }
            }
        }
        // The request goes out on the first poll, after the caller has had
        // the Resync: a `since` makes the engine replay what happens between.
        if self.since.is_none() {
            self.since = Some(self.docker.engine_now().await);
        }
        self.inner = Some(self.docker.events(self.since, &self.labels).boxed());
        self.opened = Instant::now();
        self.events_since_open = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    #[test]
    fn since_is_seconds_dot_nanos() {
        assert_eq!(since_arg(1_700_000_000_123_456_789), "1700000000.123456789");
        assert_eq!(since_arg(5), "0.000000005");
    }

    #[test]
    fn event_from_message() {
        let attrs = HashMap::from([
            ("exitCode".to_string(), "137".to_string()),
            ("name".to_string(), "c1".to_string()),
            ("image".to_string(), "img".to_string()),
            ("berth.node".to_string(), "n1".to_string()),
        ]);
        let m = EventMessage {
            action: Some("die".into()),
            actor: Some(EventActor {
                id: Some("abc".into()),
                attributes: Some(attrs),
            }),
            time: Some(10),
            time_nano: Some(10_000_000_001),
            ..Default::default()
        };
        let ev = ContainerEvent::from_message(m).expect("event");
        assert_eq!(ev.action, "die");
        assert_eq!(ev.exit_code, Some(137));
        assert_eq!(ev.name, "c1");
        assert_eq!(
            ev.labels,
            BTreeMap::from([("berth.node".to_string(), "n1".to_string())])
        );
    }
}
