//! The REST API under `/api/v1` (issue 11), served on every agent's
//! `--http` address beside `/healthz`, `/readyz` and `/metrics`.
//!
//! Reads go to etcd through the same [`Store`] the CLI uses, so an object's
//! JSON here is what `berth get -o json` prints, and a list is the same
//! `kind: List`. Every route under `/api/v1` passes [`auth::require`] first:
//! a bearer token from `--api-tokens`, or anonymous read when the agent
//! allows it. The probes and metrics outside `/api/v1` need no token.

mod auth;
mod error;
mod read;
mod watch;
mod write;

use read::json;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::store::Store;

pub use auth::{Access, Role, Tokens, TokensError};
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
}

/// The `/api/v1` routes, to merge into the agent's HTTP router.
pub fn router(store: Store, cfg: ApiConfig) -> Router {
    let api = Router::new()
        .route("/apply", post(write::apply))
        .route("/projects", get(read::projects))
        .route(
            "/projects/{project}",
            get(read::project).delete(write::delete_project),
        )
        .route("/projects/{project}/components", get(read::components))
        .route(
            "/projects/{project}/components/{name}",
            get(read::component).delete(write::delete_component),
        )
        .route(
            "/projects/{project}/components/{name}/revisions",
            get(read::revisions),
        )
        .route(
            "/projects/{project}/components/{name}/rollout/{action}",
            post(write::rollout),
        )
        .route("/nodes", get(read::nodes))
        .route("/nodes/{name}", get(read::node))
        .route("/nodes/{name}/{action}", post(write::node_action))
        .route("/containers", get(read::containers))
        .fallback(|| async { ApiError::NotFound("no such API route".into()) })
        .with_state(ApiState { store })
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(cfg),
            auth::require,
        ));
    Router::new().nest("/api/v1", api)
}
