//! `?watch=true` on the list routes: server-sent events from etcd watches.
//!
//! Each event is `event: ADDED|MODIFIED|DELETED` with `data: {"type",
//! "object"}`, as `kubectl get -w -o json` gives them. The stream starts
//! with an ADDED for everything that exists, then follows changes. One task
//! per watch runs berth's watcher (paged list, then watch from that
//! revision, re-listing after compaction) on the feed's prefixes; after
//! every (re)list it compares the whole feed with what it sent, otherwise it
//! reads only the object a changed key belongs to, so a watch costs O(changes)
//! (nodes, a short list, are read whole).

use std::collections::BTreeMap;
use std::convert::Infallible;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;

use super::read::{container_rows, endpoint_entry, ContainerFilter};
use super::{Access, ApiError, ApiState};
use crate::resource::Kind;
use crate::runtime::{watcher, Event, WatcherConfig};

type Result<T> = std::result::Result<T, ApiError>;

/// What one watch follows.
#[derive(Clone, Debug)]
pub enum Feed {
    Projects,
    /// One project's, or (`None`) every readable project's.
    Components {
        project: Option<String>,
    },
    Nodes,
    Containers(ContainerFilter),
    /// One project's endpoints.
    Endpoints {
        project: String,
    },
    /// One project's events, or every readable one's.
    Events {
        project: Option<String>,
    },
}

/// What the client was last sent, by object id.
type Shown = BTreeMap<String, Value>;

/// The SSE answer for `feed`; the watch task ends when the client goes.
pub fn respond(s: ApiState, access: Access, feed: Feed) -> Response {
    let (tx, rx) = mpsc::channel::<SseEvent>(64);
    tokio::spawn(run(s, access, feed, tx));
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn run(s: ApiState, access: Access, feed: Feed, tx: mpsc::Sender<SseEvent>) {
    let prefixes = feed.prefixes(&s);
    let mut listed = vec![false; prefixes.len()];
    let client = s.store.client();
    let mut events = futures::stream::select_all(prefixes.into_iter().enumerate().map(|(i, p)| {
        watcher(client.clone(), p, WatcherConfig::default())
            .map(move |e| (i, e))
            .boxed()
    }));
    let mut shown = Shown::new();
    while let Some((i, item)) = events.next().await {
        let changes = match item {
            Ok(Event::Init) => {
                listed[i] = false;
                continue;
            }
            Ok(Event::InitApply(_)) => continue,
            Ok(Event::InitDone) => {
                listed[i] = true;
                if !listed.iter().all(|l| *l) {
                    continue;
                }
                feed.list(&s, &access).await.map(|now| resync(&shown, now))
            }
            // Before every list is complete the resync will see it.
            Ok(Event::Apply(kv) | Event::Delete(kv)) if listed.iter().all(|l| *l) => {
                feed.changed(&s, &access, &kv.key, &shown).await
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "API watch: etcd watch error; the watcher retries");
                continue;
            }
        };
        let changes = match changes {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "API watch: read failed; waiting for the next change");
                continue;
            }
        };
        for (id, new) in changes {
            let Some(event) = event(shown.get(&id), new.as_ref()) else {
                continue;
            };
            match new {
                Some(v) => shown.insert(id, v),
                None => shown.remove(&id),
            };
            if tx.send(event).await.is_err() {
                return; // the client went away
            }
        }
    }
}

/// Every id whose object differs between `shown` and `now`.
fn resync(shown: &Shown, now: Shown) -> Vec<(String, Option<Value>)> {
    let mut out: Vec<(String, Option<Value>)> = shown
        .keys()
        .filter(|id| !now.contains_key(*id))
        .map(|id| (id.clone(), None))
        .collect();
    out.extend(now.into_iter().map(|(id, v)| (id, Some(v))));
    out
}

/// The SSE event taking the client from `old` to `new`, if they differ.
fn event(old: Option<&Value>, new: Option<&Value>) -> Option<SseEvent> {
    let (kind, object) = match (old, new) {
        (None, Some(n)) => ("ADDED", n),
        (Some(o), Some(n)) if o != n => ("MODIFIED", n),
        (Some(o), None) => ("DELETED", o),
        _ => return None,
    };
    let data = serde_json::json!({"type": kind, "object": object});
    Some(SseEvent::default().event(kind).data(data.to_string()))
}

impl Feed {
    fn prefixes(&self, s: &ApiState) -> Vec<String> {
        let keys = s.store.keys();
        match self {
            Feed::Projects => vec![
                keys.spec_prefix(Kind::Project, None),
                keys.status_prefix(Kind::Project, None),
            ],
            Feed::Components { project } => vec![
                keys.spec_prefix(Kind::Component, project.as_deref()),
                keys.status_prefix(Kind::Component, project.as_deref()),
            ],
            Feed::Nodes => vec![
                keys.nodes_prefix(),
                keys.spec_prefix(Kind::Node, None),
                keys.status_prefix(Kind::Node, None),
                keys.election(),
            ],
            Feed::Containers(_) => vec![keys.all_observed_prefix()],
            Feed::Events { project } => vec![keys.events_prefix(project.as_deref())],
            Feed::Endpoints { project } => vec![keys.project_endpoints_prefix(project)],
        }
    }

    /// Everything the feed shows now, by id.
    async fn list(&self, s: &ApiState, access: &Access) -> Result<Shown> {
        let (kind, project) = match self {
            Feed::Projects => (Kind::Project, None),
            Feed::Components { project } => (Kind::Component, project.as_deref()),
            Feed::Nodes => (Kind::Node, None),
            Feed::Endpoints { project } => {
                let prefix = s.store.keys().project_endpoints_prefix(project);
                let (kvs, _) = s.store.range_all(&prefix).await?;
                return Ok(kvs
                    .iter()
                    .filter_map(|kv| endpoint_entry(kv.key(), kv.value()))
                    .collect());
            }
            Feed::Events { project } => {
                let prefix = s.store.keys().events_prefix(project.as_deref());
                let (kvs, _) = s.store.range_all(&prefix).await?;
                return Ok(kvs
                    .iter()
                    .filter_map(|kv| event_entry(access, kv.key(), kv.value()))
                    .collect());
            }
            Feed::Containers(filter) => {
                let (kvs, _) = s
                    .store
                    .range_all(&s.store.keys().all_observed_prefix())
                    .await?;
                let docs = kvs.iter().map(|kv| (kv.key(), kv.value()));
                return Ok(container_rows(s, access, filter, docs)
                    .into_iter()
                    .collect());
            }
        };
        let all = s.store.list(kind, project).await?;
        Ok(all
            .iter()
            .filter(|o| {
                kind == Kind::Node || access.may_read(o.object.project().unwrap_or(o.object.name()))
            })
            .map(|o| (id(o.object.project(), o.object.name()), o.object.to_json()))
            .collect())
    }

    /// What changed with `key`: the objects it concerns, `None` for gone.
    async fn changed(
        &self,
        s: &ApiState,
        access: &Access,
        key: &str,
        shown: &Shown,
    ) -> Result<Vec<(String, Option<Value>)>> {
        let keys = s.store.keys();
        let (kind, project) = match self {
            Feed::Nodes => return Ok(resync(shown, self.list(s, access).await?)),
            Feed::Endpoints { .. } => {
                let value = s.store.get_raw(key).await?;
                let entry = value.and_then(|v| endpoint_entry(key.as_bytes(), &v));
                return Ok(vec![match entry {
                    Some((id, v)) => (id, Some(v)),
                    None => (key.to_string(), None),
                }]);
            }
            Feed::Events { .. } => {
                let value = s.store.get_raw(key).await?;
                let id = String::from_utf8_lossy(key.as_bytes()).to_string();
                return Ok(match value {
                    Some(v) => event_entry(access, key.as_bytes(), &v)
                        .into_iter()
                        .map(|(i, v)| (i, Some(v)))
                        .collect(),
                    None => vec![(id, None)],
                });
            }
            Feed::Containers(filter) => {
                return container_changes(s, access, filter, key, shown).await
            }
            Feed::Projects => (Kind::Project, None),
            Feed::Components { project } => (Kind::Component, project.as_deref()),
        };
        let rest = [
            keys.spec_prefix(kind, project),
            keys.status_prefix(kind, project),
        ]
        .into_iter()
        .find_map(|p| key.strip_prefix(p.as_str()).map(str::to_string));
        // Below a project's prefix the rest is a name; below every
        // project's, `project/name`.
        let parts: Vec<&str> = rest.as_deref().unwrap_or_default().split('/').collect();
        let (project, name) = match (kind, project, &parts[..]) {
            (Kind::Component, None, [p, n]) => (Some(*p), *n),
            (_, p, [n]) => (p, *n),
            _ => return Ok(Vec::new()),
        };
        if name.is_empty() || !access.may_read(project.unwrap_or(name)) {
            return Ok(Vec::new());
        }
        let now = s.store.get(kind, project, name).await?;
        Ok(vec![(id(project, name), now.map(|o| o.object.to_json()))])
    }
}

/// An event's id (its key) and JSON, if the caller may read its project.
fn event_entry(access: &Access, key: &[u8], value: &[u8]) -> Option<(String, Value)> {
    let event: crate::events::ClusterEvent = serde_json::from_slice(value).ok()?;
    if !access.may_read(&event.project) {
        return None;
    }
    let v = serde_json::to_value(&event).ok()?;
    Some((String::from_utf8_lossy(key).to_string(), v))
}

/// An object's id in a feed: `project/name`, or the name.
fn id(project: Option<&str>, name: &str) -> String {
    match project {
        Some(p) => format!("{p}/{name}"),
        None => name.to_string(),
    }
}

/// The container rows of the observed document at `key`, against the rows
/// of that document shown before.
async fn container_changes(
    s: &ApiState,
    access: &Access,
    filter: &ContainerFilter,
    key: &str,
    shown: &Shown,
) -> Result<Vec<(String, Option<Value>)>> {
    let prefix = s.store.keys().all_observed_prefix();
    let Some(doc) = key.strip_prefix(&prefix) else {
        return Ok(Vec::new());
    };
    let value = s.store.get_raw(key).await?;
    let docs = value.iter().map(|v| (key.as_bytes(), v.as_slice()));
    let now: Shown = container_rows(s, access, filter, docs)
        .into_iter()
        .collect();
    let before = format!("{doc}/");
    let mut out: Vec<(String, Option<Value>)> = shown
        .keys()
        .filter(|id| id.starts_with(&before) && !now.contains_key(*id))
        .map(|id| (id.clone(), None))
        .collect();
    out.extend(now.into_iter().map(|(id, v)| (id, Some(v))));
    Ok(out)
}
