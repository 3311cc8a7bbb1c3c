//! The console's stylesheet and script, embedded in the binary and served from this origin
//! (the Content-Security-Policy allows nothing else).

use super::render::harden;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &str)] = &[
    ("console.css", "text/css; charset=utf-8", include_str!("static/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("static/console.js")),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, mime, body)) = FILES.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let mut resp = ([(header::CONTENT_TYPE, *mime)], *body).into_response();
    harden(&mut resp, false);
    // Short: a new release's files are picked up within minutes without fingerprinted names.
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
    resp
}
