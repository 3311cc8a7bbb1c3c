//! Turning view data into HTTP answers: the embedded templates, the headers every console page
//! carries (no caching, no framing, scripts and styles from this origin only), error pages, and
//! the time format people read at 3 a.m. (UTC, with the age next to it).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use std::sync::LazyLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("plan.html", include_str!("templates/plan.html")),
    ("decision_form.html", include_str!("templates/decision_form.html")),
    ("votes.html", include_str!("templates/votes.html")),
    ("login.html", include_str!("templates/login.html")),
    ("message.html", include_str!("templates/message.html")),
    ("incidents.html", include_str!("templates/incidents.html")),
    ("incident.html", include_str!("templates/incident.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("approvals.html", include_str!("templates/approvals.html")),
    ("approval.html", include_str!("templates/approval.html")),
    ("link.html", include_str!("templates/link.html")),
];

static TERA: LazyLock<Result<tera::Tera, String>> = LazyLock::new(|| {
    let mut t = tera::Tera::default();
    // The default already escapes *.html; said explicitly because the console depends on it.
    t.autoescape_on(vec![".html"]);
    t.add_raw_templates(TEMPLATES.iter().copied()).map_err(|e| format!("console templates: {e}"))?;
    Ok(t)
});

/// A page to send: a template, its data and a status.
pub struct Page {
    pub status: StatusCode,
    pub template: &'static str,
    pub data: Value,
    /// Extra `Referrer-Policy: no-referrer` (pages whose URL holds a capability).
    pub no_referrer: bool,
}

impl Page {
    pub fn new(template: &'static str, data: Value) -> Page {
        Page { status: StatusCode::OK, template, data, no_referrer: false }
    }
    pub fn status(mut self, status: StatusCode) -> Page {
        self.status = status;
        self
    }
}

/// Renders a template to a string (tests and pages).
pub fn render(template: &str, data: &Value) -> Result<String, String> {
    let tera = TERA.as_ref().map_err(Clone::clone)?;
    let ctx = tera::Context::from_serialize(data).map_err(|e| e.to_string())?;
    tera.render(template, &ctx).map_err(|e| format!("rendering {template}: {e}"))
}

/// Headers every console answer carries.
pub fn harden(resp: &mut Response, no_referrer: bool) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(if no_referrer { "no-referrer" } else { "same-origin" }),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut resp = match render(self.template, &self.data) {
            Ok(html) => (self.status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot render a console page");
                (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered; see the server log")
                    .into_response()
            }
        };
        harden(&mut resp, self.no_referrer);
        resp
    }
}

/// Why a console request did not get its page: each becomes a plain page that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    NotFound(String),
    /// A POST without a valid CSRF token or from another origin: nothing was changed.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    /// The session is missing or expired on a page view: go and sign in.
    #[error("sign in first")]
    SignIn { next: String },
    #[error("the database is unavailable; try again in a moment")]
    Unavailable,
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::NotFound(what) => PageError::NotFound(format!("{what} does not exist")),
            e => {
                tracing::error!(error = %e, "database error in the console");
                PageError::Unavailable
            }
        }
    }
}

impl From<crate::engine::EngineError> for PageError {
    fn from(e: crate::engine::EngineError) -> Self {
        match e {
            crate::engine::EngineError::Store(s) => s.into(),
            e => {
                tracing::error!(error = %e, "engine error in the console");
                PageError::Unavailable
            }
        }
    }
}

/// A page with one message (errors, refusals, confirmations).
pub fn message(status: StatusCode, title: &str, text: &str, tone: &str) -> Page {
    Page::new("message.html", json!({"title": title, "heading": title, "text": text, "tone": tone, "viewer": null}))
        .status(status)
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let text = self.to_string();
        match self {
            PageError::SignIn { next } => {
                let mut r = Redirect::to(&format!("/login?next={}", url_encode(&next))).into_response();
                harden(&mut r, false);
                r
            }
            PageError::NotFound(_) => message(StatusCode::NOT_FOUND, "Not found", &text, "neutral").into_response(),
            PageError::Forbidden(_) => {
                message(StatusCode::FORBIDDEN, "Refused — nothing was changed", &text, "bad").into_response()
            }
            PageError::BadRequest(_) => {
                message(StatusCode::BAD_REQUEST, "Check the form", &text, "bad").into_response()
            }
            PageError::Unavailable => {
                message(StatusCode::SERVICE_UNAVAILABLE, "Try again", &text, "bad").into_response()
            }
        }
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A redirect after a successful POST (303: the browser follows with a GET).
pub fn see_other(to: &str) -> Response {
    let mut r = Redirect::to(to).into_response();
    harden(&mut r, false);
    r
}

/// `2026-11-22 06:37:12 UTC`.
pub fn utc(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "unknown time".into())
}

/// "just now", "4 min ago", "in 23 min", "2 h 5 min ago", "3 d ago".
pub fn age(ms: i64, now: i64) -> String {
    let d = (now - ms) / 1000;
    let span = d.unsigned_abs();
    let text = if span < 10 {
        return "just now".into();
    } else if span < 60 {
        format!("{span} s")
    } else if span < 3600 {
        format!("{} min", span / 60)
    } else if span < 86_400 {
        let (h, m) = (span / 3600, span % 3600 / 60);
        if m == 0 { format!("{h} h") } else { format!("{h} h {m} min") }
    } else {
        format!("{} d", span / 86_400)
    };
    if d >= 0 { format!("{text} ago") } else { format!("in {text}") }
}

/// A time as templates show it.
pub fn when(ms: i64, now: i64) -> Value {
    json!({"utc": utc(ms), "iso": crate::clock::rfc3339(ms), "age": age(ms, now)})
}

pub fn when_opt(ms: Option<i64>, now: i64) -> Value {
    ms.map_or(Value::Null, |m| when(m, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        let now = 1_790_000_000_000;
        assert_eq!(age(now - 3_000, now), "just now");
        assert_eq!(age(now - 42_000, now), "42 s ago");
        assert_eq!(age(now - 300_000, now), "5 min ago");
        assert_eq!(age(now + 23 * 60_000, now), "in 23 min");
        assert_eq!(age(now - (2 * 3600 + 5 * 60) * 1000, now), "2 h 5 min ago");
        assert_eq!(age(now - 3 * 86_400_000, now), "3 d ago");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    }

    #[test]
    fn templates_need_nothing_the_content_security_policy_forbids() {
        for (name, text) in TEMPLATES {
            assert!(!text.contains(" style="), "{name}: inline styles are blocked by style-src 'self'");
            assert!(!text.contains("<script>"), "{name}: inline scripts are blocked by script-src 'self'");
            assert!(!text.contains(" on") || !text.contains("=\"javascript"), "{name}");
        }
    }

    #[test]
    fn every_template_compiles_and_escapes() {
        let html = render(
            "message.html",
            &json!({"title": "t", "heading": "<script>x</script>", "text": "a & b", "tone": "bad", "viewer": null}),
        )
        .unwrap();
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>x"), "{html}");
    }
}
