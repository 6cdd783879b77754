//! Forwarding a per-container request to the agent that owns the container,
//! at the API address its registration advertises.
//!
//! The caller's `Authorization` header goes along unchanged (the owner
//! checks it again; it is never logged), and the request is marked with
//! [`FORWARDED_BY`]: an agent never forwards a marked request again, so a
//! request crosses at most two agents, whatever observed state says.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Uri};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::api::ApiError;

/// The mark of a forwarded request (its value: the forwarding node).
pub const FORWARDED_BY: &str = "x-berth-forwarded-by";
/// On every per-container answer: the node that acted.
pub const SERVED_BY: &str = "x-berth-node";

/// How long the owner may take to answer with headers (a log stream's
/// body then runs as long as it runs).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// A pooled HTTP/1 client for peers. Cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// This node's name (the mark's value).
    from: String,
}

impl Forwarder {
    pub fn new(from: &str) -> Forwarder {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Forwarder {
            client: Client::builder(TokioExecutor::new()).build(connector),
            from: from.to_string(),
        }
    }

    /// Sends `method /api/v1<uri>` to `base` (`http://IP:PORT`) with the
    /// caller's `Authorization`, and answers with the owner's answer,
    /// streamed. `uri` is the route's (the router nests the API under
    /// `/api/v1` and strips it); `node` names the owner in errors.
    pub async fn forward(
        &self,
        base: &str,
        node: &str,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        if base.starts_with("https://") {
            return Err(ApiError::BadGateway(format!(
                "node {node} serves its API over TLS ({base}); forwarding to an https peer is not supported: ask that node directly"
            )));
        }
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let target: Uri = format!("{}{}{path}", base.trim_end_matches('/'), crate::api::PREFIX)
            .parse()
            .map_err(|e| ApiError::BadGateway(format!("node {node} advertises {base:?}: {e}")))?;
        let mut req = Request::builder().method(method).uri(target);
        if let Some(auth) = headers.get(header::AUTHORIZATION) {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let from = HeaderValue::from_str(&self.from).unwrap_or(HeaderValue::from_static("?"));
        let req = req
            .header(FORWARDED_BY, from)
            .body(Empty::new())
            .map_err(|e| ApiError::BadGateway(e.to_string()))?;
        let answer = tokio::time::timeout(ANSWER_WITHIN, self.client.request(req))
            .await
            .map_err(|_| {
                ApiError::BadGateway(format!(
                    "node {node} ({base}) did not answer within {ANSWER_WITHIN:?}"
                ))
            })?
            .map_err(|e| ApiError::BadGateway(format!("node {node} ({base}): {e}")))?;
        Ok(answer.map(Body::new))
    }
}

/// Whether the request was forwarded to us (it must not go on).
pub fn was_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_BY)
}
