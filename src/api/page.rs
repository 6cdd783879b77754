//! The live status page at `/`: static HTML, CSS and JS compiled into the
//! binary (no build step, no CDN). It reads `/api/v1` with the token the
//! user types (kept in the browser's localStorage) and follows the list
//! watches; it needs no token to load, only to read.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("page/index.html");
const STYLE: &str = include_str!("page/style.css");
const APP: &str = include_str!("page/app.js");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// `/`, `/ui/style.css` and `/ui/app.js`.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP) }),
        )
}

#[cfg(test)]
mod tests {
    /// A page with no icon of its own makes the browser fetch
    /// `/favicon.ico`, a 404 that shows as a console error (found by
    /// `hack/page-check.sh`).
    #[test]
    fn the_page_declares_its_icon_inline() {
        assert!(super::INDEX.contains(r#"<link rel="icon" href="data:,">"#));
    }
}
