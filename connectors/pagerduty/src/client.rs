//! PagerDuty Events API v2 (`POST /v2/enqueue`): the event body as typed structs, and how
//! PagerDuty's answers map to floodgate errors.
//!
//! - 202 `{"status":"success","message":"Event processed","dedup_key":…}`: done.
//! - 400 `{"status","message","errors":[…]}`: the event is invalid; never retried.
//! - 429: too many events; retried with backoff (PagerDuty sends no `Retry-After`; its docs
//!   suggest waiting about 30 s, which is the hint handed to the engine).
//! - 5xx and network errors: retried.
//!
//! Replaying an event is safe: every event carries floodgate's deterministic `dedup_key`, and
//! PagerDuty applies repeats to the same open alert, so a request whose outcome is unknown is
//! sent again rather than guessed about.
//!
//! The routing key goes in the body (that is how the Events API authenticates). Plans redact
//! the `routing_key` field; no message built here includes the body.

use crate::config::PagerDutySettings;
use floodgate_sdk::ActionError;
use floodgate_sdk::http::{HttpClient, Replay, Request, Response, RetryPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;

/// What PagerDuty suggests waiting after a 429 when it gives no `Retry-After`.
const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(30);
/// The Events API refuses events larger than 512 KB.
pub const MAX_EVENT_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    Trigger,
    Acknowledge,
    Resolve,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Trigger => "trigger",
            EventAction::Acknowledge => "acknowledge",
            EventAction::Resolve => "resolve",
        }
    }
}

/// PagerDuty's severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    /// Maps a floodgate severity (or a PagerDuty one, passed through) to PagerDuty's scale.
    /// `high` pages as `error` (high urgency under PagerDuty's default dynamic urgency);
    /// `low` is `info`, because low-severity alerts should not wake anyone.
    pub fn from_name(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "error" => Severity::Error,
            "medium" | "warning" => Severity::Warning,
            "low" | "info" => Severity::Info,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Link {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `payload` of a trigger event.
#[derive(Debug, Clone, Serialize)]
pub struct Payload {
    pub summary: String,
    pub source: String,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(rename = "class", skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub custom_details: Map<String, Value>,
}

/// One event to `/v2/enqueue`, without the routing key (added when the request is built).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub event_action: EventAction,
    pub dedup_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
}

/// PagerDuty's 202 answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Accepted {
    pub status: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub dedup_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
}

/// The Events API behind floodgate's HTTP layer.
#[derive(Clone)]
pub struct EventsApi {
    http: HttpClient,
    url: String,
    routing_key: String,
}

impl EventsApi {
    pub fn new(settings: &PagerDutySettings) -> Self {
        let per_second = f64::from(settings.max_events_per_minute) / 60.0;
        EventsApi {
            http: HttpClient::new(RetryPolicy::default())
                .with_timeout(settings.timeout)
                .with_rate_limit(per_second, settings.max_events_per_minute.min(20)),
            url: format!("{}/v2/enqueue", settings.events_api_url),
            routing_key: settings.routing_key.expose().to_string(),
        }
    }

    /// For plans without configuration: PagerDuty's URL and a placeholder key.
    pub(crate) fn for_planning() -> Self {
        EventsApi {
            http: HttpClient::new(RetryPolicy::default()),
            url: format!("{}/v2/enqueue", crate::config::DEFAULT_EVENTS_API_URL),
            routing_key: "<routing_key>".to_string(),
        }
    }

    pub fn with_http(mut self, http: HttpClient) -> Self {
        self.http = http;
        self
    }

    /// The request for one event; `plan()` shows it with `routing_key` redacted.
    pub fn request(&self, event: &Event) -> Result<Request, ActionError> {
        let mut body = serde_json::to_value(event)
            .map_err(|e| ActionError::permanent("internal", format!("cannot serialize PagerDuty event: {e}")))?;
        if let Value::Object(m) = &mut body {
            m.insert("routing_key".into(), Value::String(self.routing_key.clone()));
        }
        let size = serde_json::to_vec(&body).map(|v| v.len()).unwrap_or(0);
        if size > MAX_EVENT_BYTES {
            return Err(ActionError::invalid_input(format!(
                "the PagerDuty event is {size} bytes, over the Events API limit of {MAX_EVENT_BYTES}: shorten custom_details"
            )));
        }
        Ok(Request::post(&self.url).json(body).replay(Replay::Safe))
    }

    /// Sends one event.
    pub async fn send(&self, event: &Event) -> Result<Accepted, ActionError> {
        let req = self.request(event)?;
        let resp = self.http.send(&req).await?;
        if !resp.is_success() {
            return Err(classify(event.event_action, &resp));
        }
        resp.json::<Accepted>()
    }
}

fn classify(action: EventAction, resp: &Response) -> ActionError {
    let body: Option<ErrorBody> = serde_json::from_slice(&resp.body).ok();
    let detail = match &body {
        Some(b) => {
            let mut s = b.message.clone().or_else(|| b.status.clone()).unwrap_or_default();
            if !b.errors.is_empty() {
                s.push_str(&format!(": {}", b.errors.join("; ")));
            }
            s
        }
        None => floodgate_sdk::text::truncate(&resp.text(), 300),
    };
    let what = format!("PagerDuty refused the {} event (HTTP {})", action.as_str(), resp.status);
    match resp.status {
        400 => ActionError::permanent(
            "invalid_event",
            format!("{what}: {detail}; PagerDuty does not accept it, retrying cannot help"),
        ),
        429 => ActionError::retry_after(
            "rate_limited",
            format!("{what}: too many events for this integration; floodgate retries later"),
            Some(resp.retry_after().unwrap_or(RATE_LIMIT_PAUSE)),
        ),
        s if s >= 500 => {
            ActionError::retry_after("pagerduty_unavailable", format!("{what}: {detail}"), resp.retry_after())
        }
        401 | 403 | 404 => ActionError::permanent(
            "not_authorized",
            format!("{what}: {detail}; check the routing key [connectors.pagerduty] refers to and events_api_url"),
        ),
        _ => ActionError::from_status(resp.status, format!("{what}: {detail}"), resp.retry_after()),
    }
}
