//! Posting a card to the Workflows webhook.
//!
//! The SDK's `HttpClient` puts a request's URL into its retry log lines and network errors;
//! here the URL is the secret. So this client sends each try with the SDK layer's in-call
//! retries switched off (no retry log line is ever written) and does its own short loop for
//! 429s, and every error message is scrubbed of the URL and its parts before it leaves.
//!
//! A webhook post is not idempotent (each accepted post is a new Teams message) and Teams has
//! no dedup handle. Only a 429 — a post the service certainly refused — is replayed in the
//! call. 5xx and network errors go back to the engine as retryable errors; the engine retries
//! with the same idempotency key, and a post already recorded in refs is not repeated.

use crate::card::Envelope;
use crate::config::TeamsSettings;
use floodgate_sdk::ActionError;
use floodgate_sdk::http::{HttpClient, Replay, Request, Response, RetryPolicy};
use serde::Deserialize;
use std::time::Duration;

/// Teams refuses messages over 28 KB.
pub const MAX_MESSAGE_BYTES: usize = 28 * 1024;
/// 429s replayed within one call.
const MAX_TRIES: u32 = 4;
/// The longest `Retry-After` waited for inside a call; longer waits go back to the engine.
const MAX_WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The webhook behind floodgate's HTTP layer.
#[derive(Clone)]
pub struct TeamsWebhook {
    http: HttpClient,
    url: Option<floodgate_sdk::Secret>,
    shown_url: String,
    backoff: Duration,
}

impl TeamsWebhook {
    pub fn new(settings: &TeamsSettings) -> Self {
        TeamsWebhook {
            http: single_try(HttpClient::new(RetryPolicy::default())).with_timeout(settings.timeout),
            url: Some(settings.webhook_url.clone()),
            shown_url: settings.shown_url.clone(),
            backoff: Duration::from_millis(500),
        }
    }

    /// For plans without configuration.
    pub(crate) fn unconfigured() -> Self {
        TeamsWebhook {
            http: single_try(HttpClient::new(RetryPolicy::default())),
            url: None,
            shown_url: "<teams-webhook-url>".into(),
            backoff: Duration::from_millis(500),
        }
    }

    /// Changes the timeout of one try and the backoff between 429s (tests use short ones).
    pub fn with_timing(mut self, timeout: Duration, backoff: Duration) -> Self {
        self.http = single_try(HttpClient::new(RetryPolicy::default())).with_timeout(timeout);
        self.backoff = backoff;
        self
    }

    /// The URL as plans and errors show it (`https://host/[redacted]`).
    pub fn shown_url(&self) -> &str {
        &self.shown_url
    }

    /// The body to send, refusing one over Teams' 28 KB limit.
    pub fn body(&self, envelope: &Envelope) -> Result<serde_json::Value, ActionError> {
        let size = envelope.size();
        if size > MAX_MESSAGE_BYTES {
            return Err(ActionError::permanent(
                "payload_too_large",
                format!(
                    "the Teams message is {size} bytes, over the 28 KB ({MAX_MESSAGE_BYTES} bytes) limit of Teams messages: \
                     shorten text, facts or links"
                ),
            ));
        }
        serde_json::to_value(envelope)
            .map_err(|e| ActionError::permanent("internal", format!("cannot serialize the card: {e}")))
    }

    /// The planned request: what would be sent, with the URL redacted.
    pub fn planned(&self, envelope: &Envelope) -> Result<floodgate_sdk::PlannedRequest, ActionError> {
        let body = self.body(envelope)?;
        let mut p = Request::post(self.shown_url.clone()).json(body).planned();
        p.url = self.shown_url.clone();
        Ok(p)
    }

    /// Posts the card. Ok means the webhook accepted it (202, or any 2xx); rendering failures
    /// inside the flow happen later and are not reported back by Teams.
    pub async fn post(&self, envelope: &Envelope) -> Result<u16, ActionError> {
        let body = self.body(envelope)?;
        let Some(url) = &self.url else {
            return Err(ActionError::not_configured("teams"));
        };
        let req = Request::post(url.expose()).json(body).replay(Replay::OnlyUnprocessed);
        let mut tries = 0;
        loop {
            tries += 1;
            let resp = self.http.send(&req).await.map_err(|e| self.scrub_error(e))?;
            if resp.is_success() {
                return Ok(resp.status);
            }
            if resp.status == 429 && tries < MAX_TRIES {
                let wait = resp.retry_after().unwrap_or(self.backoff * 2u32.pow(tries - 1));
                if wait <= MAX_WAIT {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Err(self.classify(&resp));
        }
    }

    fn classify(&self, resp: &Response) -> ActionError {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&resp.body) {
            Ok(b) => (b.error.code.unwrap_or_default(), b.error.message.unwrap_or_default()),
            Err(_) => (String::new(), floodgate_sdk::text::truncate(&resp.text(), 300)),
        };
        let detail = self.scrub(&format!(
            "Teams webhook {} answered HTTP {}{}: {message}",
            self.shown_url,
            resp.status,
            if code.is_empty() { String::new() } else { format!(" ({code})") }
        ));
        match resp.status {
            429 => ActionError::retry_after(
                "rate_limited",
                format!("{detail}; floodgate retries later"),
                resp.retry_after(),
            ),
            s if s >= 500 => ActionError::retry_after("teams_unavailable", detail, resp.retry_after()),
            401 | 403 | 404 => ActionError::permanent(
                "webhook_rejected",
                format!(
                    "{detail}; the webhook URL is wrong, expired or its flow was turned off: check the secret webhook_url refers to"
                ),
            ),
            413 => ActionError::permanent("payload_too_large", detail),
            s => ActionError::permanent(&format!("http_{s}"), detail),
        }
    }

    fn scrub_error(&self, e: ActionError) -> ActionError {
        match e {
            ActionError::Retryable { code, message, retry_after } => {
                ActionError::Retryable { code, message: self.scrub(&message), retry_after }
            }
            ActionError::Permanent { code, message } => ActionError::Permanent { code, message: self.scrub(&message) },
        }
    }

    /// Removes the URL and every distinctive part of it (path segments, query values such as
    /// the `sig`) from a message.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let Some(url) = &self.url else {
            return text.to_string();
        };
        let full = url.expose();
        let mut out = text.replace(full, &self.shown_url);
        if let Ok(parsed) = url::Url::parse(full) {
            let mut parts: Vec<String> = Vec::new();
            if let Some(q) = parsed.query() {
                parts.push(q.to_string());
            }
            parts.push(parsed.path().to_string());
            for (_, v) in parsed.query_pairs() {
                parts.push(v.into_owned());
            }
            parts.extend(parsed.path_segments().into_iter().flatten().map(str::to_string));
            for p in parts.into_iter().filter(|p| p.len() >= 8) {
                out = out.replace(&p, "[redacted]");
            }
        }
        out
    }
}

/// The SDK layer with its own retries off: it would log the (secret) URL when it retries.
fn single_try(http: HttpClient) -> HttpClient {
    let mut policy = http.policy().clone();
    policy.max_attempts = 1;
    policy.retry_statuses.clear();
    HttpClient::new(policy)
}
