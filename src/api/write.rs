//! Write routes (admin tokens only; the middleware checks the role): apply,
//! delete, rollout actions and node actions. Each runs the same code as its
//! CLI command, so parsing, validation, the all-or-nothing rule and the
//! compare-and-swap writes are the same, and so are the messages.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Deserialize;

use super::bodies::{Applied, AppliedObject, Deleted, Done};
use super::error::ApiErrors;
use super::{json, Access, ApiError, ApiState};
use crate::cli::args::RolloutTarget;
use crate::cli::node::{set_cordon, start_drain};
use crate::cli::rollout::control::{control, Action};
use crate::cli::CliError;
use crate::manifest::{self, Limits};
use crate::resource::Kind;
use crate::store::ApplyOptions;

type Result<T> = std::result::Result<T, ApiError>;

impl From<CliError> for ApiError {
    fn from(e: CliError) -> ApiError {
        match e {
            CliError::Store(e) => ApiError::Store(e),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

/// `POST /apply`: a manifest (YAML or JSON, several documents) as the body.
/// Errors name `request:LINE:COLUMN` and the field path; nothing is written
/// unless every object is valid.
#[utoipa::path(post, path = "/apply", tag = "write",
    params(("dryRun" = Option<bool>, Query, description = "Validate and report, write nothing")),
    request_body(content = String, content_type = "application/yaml", description = "A manifest: YAML or JSON documents"),
    responses((status = 200, description = "What each object became: created, configured or unchanged", body = Applied), ApiErrors))]
pub async fn apply(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Query(q): Query<ApplyQuery>,
    body: String,
) -> Result<Response> {
    let loaded = manifest::parse_str("request", &body, &Limits::default())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    for l in &loaded {
        let project = l.object.project().unwrap_or(l.object.name());
        if l.object.kind() != Kind::Node {
            access.check_write(project)?;
        } else {
            access.check_write_cluster()?;
        }
    }
    let objects: Vec<_> = loaded.iter().map(|l| l.object.clone()).collect();
    let opts = ApplyOptions {
        dry_run: q.dry_run,
        ..Default::default()
    };
    let result = s
        .store
        .apply(&objects, &opts)
        .await
        .map_err(|e| ApiError::from(crate::cli::apply::at_source(e, &loaded)))?;
    let items = result
        .outcomes
        .into_iter()
        .map(|o| AppliedObject {
            kind: o.kind,
            project: o.project,
            name: o.name,
            change: o.change,
            dry_run: q.dry_run,
        })
        .collect();
    Ok(json(&Applied { items }))
}

/// `DELETE /projects/P/components/N`.
#[utoipa::path(delete, path = "/projects/{project}/components/{name}", tag = "write",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "Deleted", body = Deleted), ApiErrors))]
pub async fn delete_component(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((project, name)): Path<(String, String)>,
) -> Result<Response> {
    access.check_write(&project)?;
    delete(&s, Kind::Component, Some(&project), &name).await
}

/// `DELETE /projects/P`: refused while it holds components.
#[utoipa::path(delete, path = "/projects/{project}", tag = "write",
    params(("project" = String, Path)),
    responses((status = 200, description = "Deleted (refused while it holds components)", body = Deleted), ApiErrors))]
pub async fn delete_project(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path(project): Path<String>,
) -> Result<Response> {
    access.check_write(&project)?;
    delete(&s, Kind::Project, None, &project).await
}

async fn delete(s: &ApiState, kind: Kind, project: Option<&str>, name: &str) -> Result<Response> {
    if s.store.delete(kind, project, name, None).await? {
        let deleted = format!("{}/{name}", kind.lower());
        Ok(json(&Deleted { deleted }))
    } else {
        Err(ApiError::NotFound(format!(
            "{}/{name} not found",
            kind.lower()
        )))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RolloutQuery {
    // u32, not u64: the OpenAPI document says int64 for u64 and promises to
    // refuse what exceeds i64, which serde's u64 would take (schemathesis
    // found it). Revision numbers count templates; u32 is plenty.
    to_revision: Option<u32>,
}

/// `POST /projects/P/components/N/rollout/{pause|resume|promote|restart|undo}`
/// (`undo?toRevision=N`).
#[utoipa::path(post, path = "/projects/{project}/components/{name}/rollout/{action}", tag = "write",
    params(("project" = String, Path), ("name" = String, Path),
        ("action" = String, Path, description = "pause, resume, promote, restart or undo"),
        ("toRevision" = Option<u32>, Query, description = "undo: the revision to go back to")),
    responses((status = 200, description = "What was done", body = Done), ApiErrors))]
pub async fn rollout(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((project, component, action)): Path<(String, String, String)>,
    Query(q): Query<RolloutQuery>,
) -> Result<Response> {
    access.check_write(&project)?;
    let action = match action.as_str() {
        "pause" => Action::Pause,
        "resume" => Action::Resume,
        "promote" => Action::Promote,
        "restart" => Action::Restart,
        "undo" => Action::Undo(q.to_revision.map(u64::from)),
        other => {
            return Err(ApiError::NotFound(format!(
                "no rollout action {other:?}: pause, resume, promote, restart or undo"
            )))
        }
    };
    let target = RolloutTarget { component, project };
    let done = control(&s.store, &target, action).await?;
    let message = format!("component/{} {done}", target.component);
    Ok(json(&Done { message }))
}

/// `POST /nodes/N/{cordon|uncordon|drain}`; a drain answers 202 at once
/// (its progress shows in `/nodes/N` and `/containers?node=N`).
#[utoipa::path(post, path = "/nodes/{name}/{action}", tag = "write",
    params(("name" = String, Path), ("action" = String, Path, description = "cordon, uncordon or drain")),
    responses((status = 200, description = "Cordoned or uncordoned", body = Done),
        (status = 202, description = "Draining", body = Done), ApiErrors))]
pub async fn node_action(
    State(s): State<ApiState>,
    Extension(access): Extension<Access>,
    Path((node, action)): Path<(String, String)>,
) -> Result<Response> {
    access.check_write_cluster()?;
    let (status, message) = match action.as_str() {
        "cordon" | "uncordon" => {
            let done = set_cordon(&s.store, &node, action == "cordon").await?;
            (StatusCode::OK, format!("node/{node} {done}"))
        }
        "drain" => {
            start_drain(&s.store, &node).await?;
            (
                StatusCode::ACCEPTED,
                format!("node/{node} cordoned, draining"),
            )
        }
        other => {
            return Err(ApiError::NotFound(format!(
                "no node action {other:?}: cordon, uncordon or drain"
            )))
        }
    };
    Ok((status, json(&Done { message })).into_response())
}
