//! Per-container routes (issues 10 and 11): one container by name or id
//! within its project, its logs, restart and eviction.
//!
//! The container is found in observed state, cluster-wide
//! (`services::actions::find`). When another node runs it, the request is
//! forwarded to that agent's advertised API address ([`forward`]) with the
//! caller's `Authorization`, so any agent answers for every container. A
//! forwarded request is never forwarded again: if the container is not
//! here (observed state moved on), it is answered 409.
//!
//! Logs are `text/plain`, sent chunked: with `?follow=true` the body goes on
//! with what the container writes until it stops or the client leaves.

pub mod forward;
pub mod local;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;
use serde::Deserialize;

use super::bodies::ContainerDone;
use super::error::ErrorBody;
use super::{json, Access, ApiError, ApiState};
use crate::resource::observed::ContainerRow;
use crate::resource::{Kind, Object};
use crate::services::actions::{find_container, request_eviction, ActionError};
use forward::{was_forwarded, SERVED_BY};
use local::{LocalContainers, LocalError, LogOptions};

type Result<T> = std::result::Result<T, ApiError>;

/// The answers of the per-container routes, for the OpenAPI document (each
/// with the JSON body `{"error", "status"}`).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // documentation only: answers are built from `ApiError`
pub enum ActionErrors {
    #[response(status = 400, description = "Bad input: one line naming the cause")]
    BadRequest(ErrorBody),
    #[response(status = 401, description = "No valid bearer token")]
    Unauthenticated(ErrorBody),
    #[response(status = 403, description = "The token may not do this")]
    Forbidden(ErrorBody),
    #[response(status = 404, description = "No such container in the project")]
    NotFound(ErrorBody),
    #[response(
        status = 409,
        description = "Its state forbids it, or a forwarded request reached a node that does not run it"
    )]
    Conflict(ErrorBody),
    #[response(status = 502, description = "The owning agent did not answer")]
    BadGateway(ErrorBody),
    #[response(status = 503, description = "etcd unreachable")]
    Unavailable(ErrorBody),
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> ApiError {
        match e {
            ActionError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            ActionError::Ambiguous { .. } => ApiError::BadRequest(e.to_string()),
            ActionError::Store(e) => ApiError::Store(e),
        }
    }
}

impl From<LocalError> for ApiError {
    fn from(e: LocalError) -> ApiError {
        match e {
            LocalError::NotHere(_) | LocalError::Refused(_) => ApiError::Conflict(e.to_string()),
            LocalError::Docker(_) => ApiError::BadGateway(e.to_string()),
        }
    }
}

/// Where a request for a container is served.
enum Serve {
    /// This agent (`local`) runs it.
    Here {
        local: Arc<dyn LocalContainers>,
        row: Box<ContainerRow>,
    },
    /// Another agent does, at this API address.
    Peer { node: String, base: String },
}

/// Finds the container and decides where it is served (see the module docs).
async fn locate(s: &ApiState, project: &str, wanted: &str, headers: &HeaderMap) -> Result<Serve> {
    let row = find_container(&s.store, project, wanted).await?;
    if let Some(local) = s.local.as_ref().filter(|l| l.node() == row.node) {
        return Ok(Serve::Here {
            local: local.clone(),
            row: Box::new(row),
        });
    }
    let here = s.local.as_ref().map(|l| l.node());
    if was_forwarded(headers) {
        return Err(ApiError::Conflict(format!(
            "container {} runs on node {}, not on node {}; a forwarded request is not forwarded again",
            row.container.name,
            row.node,
            here.unwrap_or("?")
        )));
    }
    let (base, ready) = match s.store.get(Kind::Node, None, &row.node).await? {
        Some(stored) => match stored.object {
            Object::Node(n) => (
                n.status
                    .as_ref()
                    .map(|st| st.api_address.clone())
                    .unwrap_or_default(),
                n.is_ready(),
            ),
            _ => (String::new(), false),
        },
        None => (String::new(), false),
    };
    if base.is_empty() {
        let why = if ready {
            "whose agent advertises no API address (it runs without --http, or binds 0.0.0.0 with no --address)"
        } else {
            "which is not ready (its agent is gone): nothing can act on the container now"
        };
        return Err(ApiError::BadGateway(format!(
            "container {} runs on node {}, {why}",
            row.container.name, row.node
        )));
    }
    Ok(Serve::Peer {
        node: row.node,
        base,
    })
}

/// One request for a container: where it came in, to be served here or
/// forwarded as it came.
struct Wanted<'a> {
    project: &'a str,
    container: &'a str,
    method: Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

/// Serves the request with `here` when this agent runs the container, and
/// otherwise forwards it to the agent that does (see the module docs).
async fn here_or_forward<F, Fut>(s: &ApiState, wanted: Wanted<'_>, here: F) -> Result<Response>
where
    F: FnOnce(Arc<dyn LocalContainers>, Box<ContainerRow>) -> Fut,
    Fut: std::future::Future<Output = Result<Response>>,
{
    match locate(s, wanted.project, wanted.container, wanted.headers).await? {
        Serve::Here { local, row } => here(local, row).await,
        Serve::Peer { node, base } => {
            s.forwarder
                .forward(&base, &node, wanted.method, wanted.uri, wanted.headers)
                .await
        }
    }
}

/// A JSON answer naming the node that acted.
fn served(status: StatusCode, node: &str, body: &ContainerDone) -> Response {
    let mut r = (status, json(body)).into_response();
    name_served_by(&mut r, node);
    r
}

/// Names the node that acted in the answer's `SERVED_BY` header.
fn name_served_by(r: &mut Response, node: &str) {
    if let Ok(v) = HeaderValue::from_str(node) {
        r.headers_mut().insert(SERVED_BY, v);
    }
}

/// `GET .../containers/C`: one container from observed state (no forwarding).
#[utoipa::path(get, path = "/projects/{project}/containers/{container}", tag = "containers",
    params(("project" = String, Path), ("container" = String, Path, description = "Name, id, or an id prefix of at least 12 characters")),
    responses((status = 200, description = "The container as `/containers` lists it: node, component, revision, phase, ports", body = ContainerRow), ActionErrors))]
pub async fn container(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((project, wanted)): Path<(String, String)>,
) -> Result<Response> {
    access.check_read(&project)?;
    let row = find_container(&s.store, &project, &wanted).await?;
    Ok(json(&row))
}

/// `POST .../restart`: the owning agent drains the container, stops it
/// (its termination signals and grace period) and starts the same container
/// again; its restart count goes up and a `Restarted` event is recorded.
/// Answers 202 once the restart has begun.
#[utoipa::path(post, path = "/projects/{project}/containers/{container}/restart", tag = "containers",
    params(("project" = String, Path), ("container" = String, Path, description = "Name, id, or an id prefix of at least 12 characters")),
    responses((status = 202, description = "Restarting: drained, stopped and started again in place", body = ContainerDone), ActionErrors))]
pub async fn restart(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((project, wanted)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response> {
    access.check_write(&project)?;
    let wanted = Wanted {
        project: &project,
        container: &wanted,
        method: Method::POST,
        uri: &uri,
        headers: &headers,
    };
    here_or_forward(&s, wanted, |local, row| async move {
        let message = local.restart(&row.container.id)?;
        tracing::info!(token = %access.name, container = %row.container.name, "restart requested");
        let body = ContainerDone {
            message,
            node: row.node.clone(),
        };
        Ok(served(StatusCode::ACCEPTED, &row.node, &body))
    })
    .await
}

/// `POST .../evict`: the container keeps serving, marked `evicting`, until
/// the coordinator's replacement is ready (within `maxSurge`; with
/// `maxSurge` 0 it goes first, within `maxUnavailable`), then it is drained
/// and removed.
/// The request is kept in etcd until then (idempotent: asking again
/// answers 202 "already being evicted").
#[utoipa::path(post, path = "/projects/{project}/containers/{container}/evict", tag = "containers",
    params(("project" = String, Path), ("container" = String, Path, description = "Name, id, or an id prefix of at least 12 characters")),
    responses((status = 202, description = "Evicted: it is replaced within the rollout budget, then removed", body = ContainerDone), ActionErrors))]
pub async fn evict(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((project, wanted)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response> {
    access.check_write(&project)?;
    let wanted = Wanted {
        project: &project,
        container: &wanted,
        method: Method::POST,
        uri: &uri,
        headers: &headers,
    };
    let store = &s.store;
    here_or_forward(&s, wanted, |_, row| async move {
        let done = request_eviction(store, &row, &access.name).await?;
        tracing::info!(token = %access.name, container = %row.container.name, "eviction requested");
        let message = format!("container {} {}", row.container.name, done.as_str());
        let body = ContainerDone {
            message,
            node: row.node.clone(),
        };
        Ok(served(StatusCode::ACCEPTED, &row.node, &body))
    })
    .await
}

/// `?tail=N&follow=true`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    tail: Option<u32>,
    #[serde(default)]
    follow: bool,
}

/// `GET .../logs`: the container's stdout and stderr as `text/plain`,
/// chunked; `?follow=true` keeps streaming until it stops.
#[utoipa::path(get, path = "/projects/{project}/containers/{container}/logs", tag = "containers",
    params(("project" = String, Path), ("container" = String, Path, description = "Name, id, or an id prefix of at least 12 characters"),
        ("tail" = Option<u32>, Query, description = "Only the last N lines"),
        ("follow" = Option<bool>, Query, description = "Keep the body open with what the container writes (chunked text/plain)")),
    responses((status = 200, description = "Its output (stdout and stderr interleaved), chunked", content_type = "text/plain"), ActionErrors))]
pub async fn logs(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((project, wanted)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response> {
    access.check_read(&project)?;
    let wanted = Wanted {
        project: &project,
        container: &wanted,
        method: Method::GET,
        uri: &uri,
        headers: &headers,
    };
    here_or_forward(&s, wanted, |local, row| async move {
        let opts = LogOptions {
            tail: q.tail,
            follow: q.follow,
        };
        let stream = local
            .logs(&row.container.id, opts)?
            .map(|r| r.map_err(std::io::Error::other));
        let mut r = (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            Body::from_stream(stream),
        )
            .into_response();
        name_served_by(&mut r, &row.node);
        Ok(r)
    })
    .await
}
