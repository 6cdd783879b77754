//! Error answers that do not come from [`ApiError`](super::ApiError) made
//! JSON too. axum's extractors refuse a bad query string or path parameter
//! (`?watch=maybe`, `?toRevision=-1`) with a `text/plain` 400 before a handler
//! runs; the document promises `{"error", "status"}` for every error, and
//! schemathesis (`hack/fuzz-api.sh`) found these. Rewriting them here, in one
//! layer, keeps every handler's extractors as they are.

use axum::body::to_bytes;
use axum::http::header;
use axum::response::Response;

use super::error::ErrorBody;

/// A rejection's text is a line or two; anything longer is cut.
const MAX_MESSAGE: usize = 4096;

/// `r` unchanged unless it is an error answer that is not JSON; then the
/// same status with its text as `{"error", "status"}` (headers such as
/// `Allow` kept).
pub async fn json_errors(r: Response) -> Response {
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let (parts, body) = r.into_parts();
    let text = to_bytes(body, MAX_MESSAGE)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        // One line, as every other error of the API.
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let mut out = ErrorBody::respond(status, message);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{HeaderValue, StatusCode};

    /// A response with this status, content type and body.
    fn response(status: u16, content_type: Option<&str>, body: &str) -> Response {
        let mut r = Response::new(Body::from(body.to_string()));
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        if let Some(ct) = content_type {
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        r
    }

    /// (status, content type, body) -> (status, content type, body) after.
    async fn check(input: (u16, Option<&str>, &str), expected: (u16, Option<&str>, &str)) {
        let out = json_errors(response(input.0, input.1, input.2)).await;
        let ct = out
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        let status = out.status().as_u16();
        let body = to_bytes(out.into_body(), usize::MAX).await.unwrap();
        assert_eq!(
            (
                status,
                ct.as_deref(),
                String::from_utf8_lossy(&body).as_ref()
            ),
            expected,
            "{input:?}"
        );
    }

    #[tokio::test]
    async fn error_answers_become_json_and_others_pass() {
        const JSON: Option<&str> = Some("application/json");
        let cases = [
            // axum's query rejection, as the fuzzer met it.
            (
                (
                    400,
                    Some("text/plain; charset=utf-8"),
                    "Failed to deserialize query string: toRevision: invalid digit found in string",
                ),
                (
                    400,
                    JSON,
                    r#"{"error":"Failed to deserialize query string: toRevision: invalid digit found in string","status":400}"#,
                ),
            ),
            // No body at all (e.g. 405): the status's reason.
            (
                (405, None, ""),
                (405, JSON, r#"{"error":"Method Not Allowed","status":405}"#),
            ),
            // Several lines are joined into one.
            (
                (422, Some("text/plain"), "a\n  b\n"),
                (422, JSON, r#"{"error":"a b","status":422}"#),
            ),
            // Already JSON, or not an error: untouched.
            (
                (404, JSON, r#"{"error":"x","status":404}"#),
                (404, JSON, r#"{"error":"x","status":404}"#),
            ),
            (
                (200, Some("text/html"), "<p>page</p>"),
                (200, Some("text/html"), "<p>page</p>"),
            ),
        ];
        for (input, expected) in cases {
            check(input, expected).await;
        }
    }

    #[tokio::test]
    async fn other_headers_are_kept() {
        let mut r = response(405, None, "");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
        // A header given twice keeps both values.
        for v in ["accept", "authorization"] {
            r.headers_mut()
                .append(header::VARY, HeaderValue::from_static(v));
        }
        let out = json_errors(r).await;
        assert_eq!(out.headers().get(header::ALLOW).unwrap(), "GET,HEAD");
        let vary: Vec<&str> = out
            .headers()
            .get_all(header::VARY)
            .iter()
            .map(|v| v.to_str().unwrap_or("?"))
            .collect();
        assert_eq!(vary, ["accept", "authorization"]);
    }
}
