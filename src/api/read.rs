//! Read routes: the objects `get` and `describe` show, and the cluster-wide
//! container list from observed state.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bodies::{
    ComponentList, ContainerList, EndpointList, EventList, List, NodeList, ProjectList,
    RevisionList,
};
use super::error::ApiErrors;
use super::watch::{self, Feed};
use super::{Access, ApiError, ApiState};
use crate::resource::{Component, Kind, Node, Object, Project};

type Result<T> = std::result::Result<T, ApiError>;

/// A JSON answer.
pub(crate) fn json(v: &impl Serialize) -> Response {
    let body = serde_json::to_string_pretty(v).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The `kind: List` that `berth get -o json` prints.
fn list(items: Vec<Value>) -> Response {
    json(&List::new(items))
}

#[utoipa::path(get, path = "/projects", tag = "projects",
    params(("watch" = Option<bool>, Query, description = "Stream ADDED/MODIFIED/DELETED server-sent events")),
    responses((status = 200, description = "`kind: List` of the projects the token may read (or, with `?watch=true`, a server-sent event stream)", content((ProjectList = "application/json"), ("text/event-stream"))), ApiErrors))]
pub async fn projects(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    if q.watch {
        return Ok(watch::respond(s, access, Feed::Projects));
    }
    let all = s.store.list(Kind::Project, None).await?;
    Ok(list(
        all.iter()
            .filter(|p| access.may_read(p.object.name()))
            .map(|p| p.object.to_json())
            .collect(),
    ))
}

#[utoipa::path(get, path = "/projects/{project}", tag = "projects",
    params(("project" = String, Path)),
    responses((status = 200, description = "The project", body = Project), ApiErrors))]
pub async fn project(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path(project): Path<String>,
) -> Result<Response> {
    access.check_read(&project)?;
    Ok(json(
        &one(&s, Kind::Project, None, &project).await?.to_json(),
    ))
}

#[utoipa::path(get, path = "/projects/{project}/components", tag = "components",
    params(("project" = String, Path), ("watch" = Option<bool>, Query, description = "Stream server-sent events")),
    responses((status = 200, description = "`kind: List` of components with status (or, with `?watch=true`, a server-sent event stream)", content((ComponentList = "application/json"), ("text/event-stream"))), ApiErrors))]
pub async fn components(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    access.check_read(&project)?;
    list_components(s, access, Some(project), q).await
}

/// A project that holds nothing (or is the implicit `default`) lists no
/// components, as `berth get components -p P` does.
async fn list_components(
    s: ApiState,
    access: Access,
    project: Option<String>,
    q: ListQuery,
) -> Result<Response> {
    if q.watch {
        return Ok(watch::respond(s, access, Feed::Components { project }));
    }
    let all = s.store.list(Kind::Component, project.as_deref()).await?;
    Ok(list(
        all.iter()
            .filter(|c| access.may_read(c.object.project().unwrap_or_default()))
            .map(|c| c.object.to_json())
            .collect(),
    ))
}

#[utoipa::path(get, path = "/components", tag = "components",
    params(("watch" = Option<bool>, Query, description = "Stream server-sent events")),
    responses((status = 200, description = "`kind: List` of the components of every project the token may read (or, with `?watch=true`, a server-sent event stream)", content((ComponentList = "application/json"), ("text/event-stream"))), ApiErrors))]
pub async fn all_components(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    list_components(s, access, None, q).await
}

#[utoipa::path(get, path = "/projects/{project}/components/{name}", tag = "components",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "The component with its status, as `berth get -o json` prints it", body = Component), ApiErrors))]
pub async fn component(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Response> {
    access.check_read(&project)?;
    let c = one(&s, Kind::Component, Some(&project), &name).await?;
    Ok(json(&c.to_json()))
}

#[utoipa::path(get, path = "/projects/{project}/components/{name}/revisions", tag = "components",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "`kind: List` of the component's revisions", body = RevisionList), ApiErrors))]
pub async fn revisions(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Response> {
    access.check_read(&project)?;
    one(&s, Kind::Component, Some(&project), &name).await?;
    let revs = s.store.revisions(&project, &name).await?;
    Ok(list(
        revs.iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect(),
    ))
}

#[utoipa::path(get, path = "/nodes", tag = "nodes",
    params(("watch" = Option<bool>, Query, description = "Stream server-sent events")),
    responses((status = 200, description = "`kind: List` of nodes, NotReady ones included (or, with `?watch=true`, a server-sent event stream)", content((NodeList = "application/json"), ("text/event-stream"))), ApiErrors))]
pub async fn nodes(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    if q.watch {
        return Ok(watch::respond(s, access, Feed::Nodes));
    }
    let all = s.store.list(Kind::Node, None).await?;
    Ok(list(all.iter().map(|n| n.object.to_json()).collect()))
}

#[utoipa::path(get, path = "/nodes/{name}", tag = "nodes",
    params(("name" = String, Path)),
    responses((status = 200, description = "The node", body = Node), ApiErrors))]
pub async fn node(State(s): State<ApiState>, Path(name): Path<String>) -> Result<Response> {
    Ok(json(&one(&s, Kind::Node, None, &name).await?.to_json()))
}

/// `?watch=true` on a list route.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    watch: bool,
}

/// `?project=` and `?node=` narrow the container list; `?watch=true`.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ContainerFilter {
    project: Option<String>,
    node: Option<String>,
    #[serde(default)]
    watch: bool,
}

#[utoipa::path(get, path = "/containers", tag = "containers",
    params(("project" = Option<String>, Query), ("node" = Option<String>, Query),
        ("watch" = Option<bool>, Query, description = "Stream server-sent events")),
    responses((status = 200, description = "`kind: List` of containers cluster-wide, from observed state (or, with `?watch=true`, a server-sent event stream)", content((ContainerList = "application/json"), ("text/event-stream"))), ApiErrors))]
pub async fn containers(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Query(filter): Query<ContainerFilter>,
) -> Result<Response> {
    if let Some(p) = &filter.project {
        access.check_read(p)?;
    }
    if filter.watch {
        return Ok(watch::respond(s, access, Feed::Containers(filter)));
    }
    let (kvs, _) = s
        .store
        .range_all(&s.store.keys().all_observed_prefix())
        .await?;
    let docs = kvs.iter().map(|kv| (kv.key(), kv.value()));
    Ok(list(
        container_rows(&s, &access, &filter, docs)
            .into_iter()
            .map(|(_, row)| row)
            .collect(),
    ))
}

/// The rows of observed documents `(key, value)` that `filter` and
/// `access` let through, each with its id `node/project/component/container`.
pub(crate) fn container_rows<'a>(
    s: &ApiState,
    access: &Access,
    filter: &ContainerFilter,
    docs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Vec<(String, Value)> {
    let (rows, bad) = crate::store::container_rows(s.store.keys(), docs, |node, c| {
        filter.project.as_deref().is_none_or(|p| p == c.project)
            && filter.node.as_deref().is_none_or(|n| n == node)
            && access.may_read(&c.project)
    });
    for key in bad {
        tracing::warn!(key = %key, "observed document does not decode; left out of /containers");
    }
    rows.iter()
        .filter_map(|r| Some((r.id(), serde_json::to_value(r).ok()?)))
        .collect()
}

#[utoipa::path(get, path = "/projects/{project}/endpoints", tag = "endpoints",
    params(("project" = String, Path), ("watch" = Option<bool>, Query, description = "Stream server-sent events")),
    responses((status = 200, description = "`kind: List` of the project's endpoints: every ready container with ports, as its agent announces it (or, with `?watch=true`, a server-sent event stream)", content((EndpointList = "application/json"), ("text/event-stream"))), ApiErrors))]
pub async fn endpoints(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path(project): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    access.check_read(&project)?;
    if q.watch {
        return Ok(watch::respond(s, access, Feed::Endpoints { project }));
    }
    let prefix = s.store.keys().project_endpoints_prefix(&project);
    let (kvs, _) = s.store.range_all(&prefix).await?;
    Ok(list(
        kvs.iter()
            .filter_map(|kv| endpoint_entry(kv.key(), kv.value()).map(|(_, v)| v))
            .collect(),
    ))
}

/// An endpoint document's id (its key) and JSON; `None` when it does not decode.
pub(crate) fn endpoint_entry(key: &[u8], value: &[u8]) -> Option<(String, Value)> {
    let e: crate::resource::endpoint::Endpoint = serde_json::from_slice(value).ok()?;
    Some((
        String::from_utf8_lossy(key).to_string(),
        serde_json::to_value(e).ok()?,
    ))
}

/// `?project=` narrows the events; `?watch=true`.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    project: Option<String>,
    #[serde(default)]
    watch: bool,
}

#[utoipa::path(get, path = "/events", tag = "events",
    params(("project" = Option<String>, Query), ("watch" = Option<bool>, Query, description = "Stream server-sent events")),
    responses((status = 200, description = "`kind: List` of cluster events, oldest first (kept about an hour) (or, with `?watch=true`, a server-sent event stream)", content((EventList = "application/json"), ("text/event-stream"))), ApiErrors))]
pub async fn events(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Query(filter): Query<EventFilter>,
) -> Result<Response> {
    if let Some(p) = &filter.project {
        access.check_read(p)?;
    }
    if filter.watch {
        let project = filter.project;
        return Ok(watch::respond(s, access, Feed::Events { project }));
    }
    let all = crate::events::list(&s.store, filter.project.as_deref()).await?;
    Ok(list(
        all.iter()
            .filter(|e| access.may_read(&e.project))
            .filter_map(|e| serde_json::to_value(e).ok())
            .collect(),
    ))
}

/// One object, or a 404 naming it.
async fn one(s: &ApiState, kind: Kind, project: Option<&str>, name: &str) -> Result<Object> {
    match s.store.get(kind, project, name).await? {
        Some(stored) => Ok(stored.object),
        None => Err(ApiError::NotFound(match project {
            Some(p) => format!("{} {name:?} not found in project {p:?}", kind.name()),
            None => format!("{} {name:?} not found", kind.name()),
        })),
    }
}
