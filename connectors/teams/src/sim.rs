//! A local Teams Workflows webhook (feature `sim`) for tests and the demo.
//!
//! It serves `POST /workflows/<id>/triggers/manual/paths/invoke?api-version=…&sp=…&sv=…&sig=…`
//! like a Logic Apps / Power Automate HTTP trigger: the `sig` must match (401 otherwise), an
//! unknown workflow is 404, `api-version` is required, and errors use the Logic Apps shape
//! `{"error":{"code","message"}}`. The body must be the envelope the "Post to a channel when a
//! webhook request is received" template expects — `type: message` with Adaptive Card
//! attachments — and carry no `Action.Submit`/`Action.Execute`; malformed envelopes and
//! messages over 28 KB get 400 (the real flow accepts them and fails later, invisibly; the
//! simulator makes that failure visible to tests). Accepted posts get 202 with an empty body
//! and are stored as the channel's cards. 429 (`WorkflowRequestsThrottled`), 5xx and hangs
//! come from [`Faults`].
//!
//! Nothing in the product depends on this module.

use crate::card::{ADAPTIVE_CARD_CONTENT_TYPE, check_webhook_card};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use floodgate_sdk::sim::{CallLog, Faults, SimServer, instrument};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The workflow the simulator knows.
pub const SIM_WORKFLOW_ID: &str = "8d5c2a3e1f0b4c6d9e7f0a1b2c3d4e5f";
/// Its shared-access signature.
pub const SIM_SIG: &str = "SimS1gnatureF00dgate-abcdefghijklmnopq";
const MAX_BYTES: usize = 28 * 1024;

#[derive(Default)]
struct Inner {
    posts: Vec<Value>,
    runs: u64,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running Teams webhook simulator.
pub struct TeamsSim {
    server: SimServer,
    state: Shared,
    log: CallLog,
    faults: Faults,
}

fn logic_apps_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

fn render_fault(status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = match status {
        429 => logic_apps_error(
            code,
            "WorkflowRequestsThrottled",
            "Number of requests for the workflow exceeded the limit. Please retry later.",
        ),
        // Any other 4xx: a client error in Logic Apps' shape, not a server one.
        400..=499 => logic_apps_error(code, "BadRequest", "The request is invalid."),
        _ => logic_apps_error(code, "ServiceUnavailable", "The service is temporarily unavailable."),
    };
    if let Some(v) = retry_after.and_then(|s| s.to_string().parse().ok()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

impl TeamsSim {
    pub async fn start() -> std::io::Result<TeamsSim> {
        let state: Shared = Arc::default();
        let log = CallLog::default();
        let faults = Faults::new(Arc::new(render_fault));
        let router =
            Router::new().route("/workflows/{id}/triggers/manual/paths/invoke", post(invoke)).with_state(state.clone());
        let server = SimServer::start(instrument(router, log.clone(), faults.clone())).await?;
        Ok(TeamsSim { server, state, log, faults })
    }

    /// The full webhook URL, signature included (a secret in real life).
    pub fn webhook_url(&self) -> String {
        self.url_with(SIM_WORKFLOW_ID, SIM_SIG)
    }

    /// A webhook URL with another workflow id or signature (to test rejections).
    pub fn url_with(&self, workflow: &str, sig: &str) -> String {
        format!(
            "{}/workflows/{workflow}/triggers/manual/paths/invoke?api-version=2016-10-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={sig}",
            self.server.url()
        )
    }

    /// `http://127.0.0.1:<port>`
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    pub fn log(&self) -> &CallLog {
        &self.log
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The cards of every accepted post, in order.
    pub fn cards(&self) -> Vec<Value> {
        lock(&self.state).posts.clone()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Why an envelope would not render as the template expects.
fn envelope_problems(v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    if v.get("type").and_then(Value::as_str) != Some("message") {
        errs.push("'type' must be 'message'".to_string());
    }
    let Some(atts) = v.get("attachments").and_then(Value::as_array).filter(|a| !a.is_empty()) else {
        errs.push(
            "The 'foreach' expression '@triggerOutputs()?['body']?['attachments']' is of type 'Null' or empty".into(),
        );
        return errs;
    };
    for (i, a) in atts.iter().enumerate() {
        if a.get("contentType").and_then(Value::as_str) != Some(ADAPTIVE_CARD_CONTENT_TYPE) {
            errs.push(format!("attachments[{i}].contentType must be '{ADAPTIVE_CARD_CONTENT_TYPE}'"));
        }
        let card = a.get("content").unwrap_or(&Value::Null);
        if card.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
            errs.push(format!("attachments[{i}].content: Property 'type' must be 'AdaptiveCard'"));
        }
        if !card.get("version").is_some_and(Value::is_string) {
            errs.push(format!("attachments[{i}].content: 'version' is required"));
        }
        if !card.get("body").is_none_or(Value::is_array) {
            errs.push(format!("attachments[{i}].content: 'body' must be an array"));
        }
        if let Err(found) = check_webhook_card(card) {
            errs.extend(found.into_iter().map(|f| format!("attachments[{i}].content{f}")));
        }
    }
    errs
}

async fn invoke(
    State(state): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !q.contains_key("api-version") {
        return logic_apps_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    }
    if id != SIM_WORKFLOW_ID {
        return logic_apps_error(StatusCode::NOT_FOUND, "WorkflowNotFound", "The workflow could not be found.");
    }
    if q.get("sig").map(String::as_str) != Some(SIM_SIG) {
        return logic_apps_error(
            StatusCode::UNAUTHORIZED,
            "DirectApiInvalidAuthorizationSignature",
            "The provided authentication token is not valid.",
        );
    }
    let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ctype.starts_with("application/json") {
        return logic_apps_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content must be JSON ('Content-Type: application/json').",
        );
    }
    if body.len() > MAX_BYTES {
        return logic_apps_error(
            StatusCode::BAD_REQUEST,
            "MessageSizeExceeded",
            &format!("The message is {} bytes; Teams accepts at most 28 KB.", body.len()),
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return logic_apps_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            "The request content is not valid JSON.",
        );
    };
    let problems = envelope_problems(&v);
    if !problems.is_empty() {
        return logic_apps_error(StatusCode::BAD_REQUEST, "TriggerInputSchemaMismatch", &problems.join("; "));
    }
    let mut st = lock(&state);
    st.runs += 1;
    let run_id = format!("08584{:015}", st.runs);
    for a in v["attachments"].as_array().into_iter().flatten() {
        st.posts.push(a["content"].clone());
    }
    let mut r = StatusCode::ACCEPTED.into_response();
    if let Ok(h) = run_id.parse() {
        r.headers_mut().insert("x-ms-workflow-run-id", h);
    }
    r
}
