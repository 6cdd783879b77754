//! The REST API under `/api/v1` (issue 11), served on every agent's
//! `--http` address beside `/healthz`, `/readyz` and `/metrics`.
//!
//! Reads go to etcd through the same [`Store`] the CLI uses, so an object's
//! JSON here is what `berth get -o json` prints, and a list is the same
//! `kind: List`. Every route under `/api/v1` passes [`auth::require`] first:
//! a bearer token from `--api-tokens`, or anonymous read when the agent
//! allows it. The probes and metrics outside `/api/v1` need no token.

mod auth;
mod bodies;
mod container;
mod error;
mod page;
mod read;
mod reject;
mod watch;
mod write;

use read::json;

use std::sync::Arc;

use axum::http::header;
use axum::routing::get;
use axum::Router;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::store::Store;

pub use auth::{Access, Role, Tokens, TokensError};
pub use container::local::{LocalContainers, LocalError, LogOptions, LogStream};
pub use error::ApiError;

/// Who may call the API.
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// Tokens from `--api-tokens FILE`; `None`: no token is valid.
    pub tokens: Option<Arc<Tokens>>,
    /// `--api-anonymous-read`: a request without a token may read.
    pub anonymous_read: bool,
}

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub store: Store,
    /// The agent this API runs in (its own containers); `None` in a
    /// router built without one, which forwards every container action.
    pub local: Option<Arc<dyn LocalContainers>>,
    /// Per-container requests for other nodes' containers.
    pub forwarder: container::forward::Forwarder,
}

/// The OpenAPI document's fixed parts; the paths come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "berth API",
        description = "Every agent's REST API: the resources `berth get` and `describe` show, the writes of `apply`, `delete`, `rollout` and node commands, and per-container logs, restart and evict (forwarded to the agent that runs the container). Bearer tokens from `--api-tokens`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(error::ErrorBody))
)]
struct ApiDoc;

/// Declares the `bearer` security scheme the document refers to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// Every route with its OpenAPI description: the router and the document
/// are built from this one list, so they cannot disagree.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(write::apply))
        .routes(routes!(read::projects))
        .routes(routes!(read::project, write::delete_project))
        .routes(routes!(read::components))
        .routes(routes!(read::all_components))
        .routes(routes!(read::component, write::delete_component))
        .routes(routes!(read::revisions))
        .routes(routes!(write::rollout))
        .routes(routes!(read::nodes))
        .routes(routes!(read::node))
        .routes(routes!(write::node_action))
        .routes(routes!(read::containers))
        .routes(routes!(container::container))
        .routes(routes!(container::logs))
        .routes(routes!(container::restart))
        .routes(routes!(container::evict))
        .routes(routes!(read::events))
        .routes(routes!(read::endpoints))
}

/// The OpenAPI 3.1 document of `/api/v1` (committed as `api/openapi.json`):
/// utoipa's paths, with every JSON body's schema from schemars
/// ([`bodies::document`]).
pub fn openapi() -> serde_json::Value {
    bodies::document(utoipa_openapi())
}

/// The document as utoipa builds it from the routes (body schemas are
/// placeholders there).
fn utoipa_openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<ApiState>::with_openapi(ApiDoc::openapi())
        .nest(PREFIX, routes())
        .into_openapi()
}

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";

/// The `/api/v1` routes and the status page, to merge into the agent's
/// HTTP router; `local` is the agent serving them (its containers).
pub fn router(store: Store, cfg: ApiConfig, local: Option<Arc<dyn LocalContainers>>) -> Router {
    let from = local.as_ref().map_or("api", |l| l.node()).to_string();
    let forwarder = container::forward::Forwarder::new(&from);
    let doc = serde_json::to_string_pretty(&openapi()).unwrap_or_default();
    let (api, _) = routes().split_for_parts();
    let api = api
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], doc) }),
        )
        .fallback(|| async { ApiError::NotFound("no such API route".into()) })
        .with_state(ApiState {
            store,
            local,
            forwarder,
        })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(cfg),
            auth::require,
        ))
        // Outermost: extractor rejections answer JSON like every API error.
        .layer(axum::middleware::map_response(reject::json_errors));
    page::router().nest(PREFIX, api)
}

#[cfg(test)]
mod tests {
    /// The committed `api/openapi.json` is the document the routes make.
    /// `BERTH_UPDATE_OPENAPI=1 cargo test --lib api::tests` rewrites it.
    #[test]
    fn committed_openapi_matches_the_routes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("api/openapi.json");
        let doc = match serde_json::to_string_pretty(&super::openapi()) {
            Ok(d) => d + "\n",
            Err(e) => panic!("the OpenAPI document does not serialize: {e}"),
        };
        if std::env::var_os("BERTH_UPDATE_OPENAPI").is_some_and(|v| v != "0" && !v.is_empty()) {
            let written = path
                .parent()
                .map(std::fs::create_dir_all)
                .and_then(Result::ok)
                .and_then(|()| std::fs::write(&path, &doc).ok());
            assert!(written.is_some(), "cannot write {}", path.display());
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == doc,
            "api/openapi.json differs from the routes: regenerate it with `BERTH_UPDATE_OPENAPI=1 cargo test --lib api::tests` and commit it"
        );
    }

    /// Every route of the API is in the document, with its method.
    #[test]
    fn every_route_is_documented() {
        let doc = super::utoipa_openapi();
        let mut got: Vec<String> = doc
            .paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                let mut m = Vec::new();
                if item.get.is_some() {
                    m.push(format!("GET {path}"));
                }
                if item.post.is_some() {
                    m.push(format!("POST {path}"));
                }
                if item.delete.is_some() {
                    m.push(format!("DELETE {path}"));
                }
                m
            })
            .collect();
        got.sort();
        let want = [
            "DELETE /api/v1/projects/{project}",
            "DELETE /api/v1/projects/{project}/components/{name}",
            "GET /api/v1/components",
            "GET /api/v1/containers",
            "GET /api/v1/events",
            "GET /api/v1/nodes",
            "GET /api/v1/nodes/{name}",
            "GET /api/v1/projects",
            "GET /api/v1/projects/{project}",
            "GET /api/v1/projects/{project}/components",
            "GET /api/v1/projects/{project}/components/{name}",
            "GET /api/v1/projects/{project}/components/{name}/revisions",
            "GET /api/v1/projects/{project}/containers/{container}",
            "GET /api/v1/projects/{project}/containers/{container}/logs",
            "GET /api/v1/projects/{project}/endpoints",
            "POST /api/v1/apply",
            "POST /api/v1/nodes/{name}/{action}",
            "POST /api/v1/projects/{project}/components/{name}/rollout/{action}",
            "POST /api/v1/projects/{project}/containers/{container}/evict",
            "POST /api/v1/projects/{project}/containers/{container}/restart",
        ];
        assert_eq!(got, want);
    }
}
