//! The Jira HTTP client: one place that knows the paths of each flavor, how to authenticate,
//! and how to read Jira's error bodies.
//!
//! Every request is built here as a `floodgate_sdk::http::Request`, so `plan()` shows exactly
//! what `execute()` sends. Secrets only enter requests through `Request::basic`/`bearer`, which
//! redact them in plans and debug output; this module must never format a secret into a URL,
//! a body or an error message.

use crate::config::{Auth, Flavor, Settings};
use floodgate_sdk::ActionError;
use floodgate_sdk::http::{HttpClient, Request, Response, RetryPolicy};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Jira's error body (`ErrorCollection` in the v3 spec; the same shape in v2).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorCollection {
    #[serde(default)]
    pub error_messages: Vec<String>,
    #[serde(default)]
    pub errors: std::collections::BTreeMap<String, String>,
}

/// Turns a Jira error answer into one readable sentence with what to do about it.
pub fn describe_error(method: &str, path: &str, resp: &Response) -> String {
    let mut parts: Vec<String> = Vec::new();
    match serde_json::from_slice::<ErrorCollection>(&resp.body) {
        Ok(ec) if !ec.error_messages.is_empty() || !ec.errors.is_empty() => {
            parts.extend(ec.error_messages);
            parts.extend(ec.errors.into_iter().map(|(k, v)| format!("{k}: {v}")));
        }
        _ => {
            let t = resp.text();
            if !t.trim().is_empty() {
                parts.push(floodgate_sdk::text::truncate(t.trim(), 300));
            }
        }
    }
    let hint = match resp.status {
        401 => " (check the credentials: Jira Cloud takes email + api_token, Data Center a personal_access_token)",
        403 => " (the Jira account lacks a permission this action needs; see docs/connectors/jira.md)",
        404 => " (the issue or project does not exist, or the account cannot browse it)",
        429 => " (rate limited by Jira)",
        _ => "",
    };
    let reason = resp.header("ratelimit-reason").map(|r| format!(" [RateLimit-Reason: {r}]")).unwrap_or_default();
    let detail = if parts.is_empty() { "no error details".to_string() } else { parts.join("; ") };
    format!("Jira answered HTTP {} to {method} {path}: {detail}{hint}{reason}", resp.status)
}

/// `X-RateLimit-Reset` (ISO 8601, e.g. `2024-01-01T10:00Z`) as a wait, used when Jira sends
/// no `Retry-After`.
fn rate_limit_reset(resp: &Response) -> Option<Duration> {
    let raw = resp.header("x-ratelimit-reset")?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]Z");
    let at = time::PrimitiveDateTime::parse(raw.trim(), &fmt)
        .map(|p| p.assume_utc())
        .or_else(|_| time::OffsetDateTime::parse(raw.trim(), &time::format_description::well_known::Rfc3339))
        .ok()?;
    let delta = at - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

/// A Jira issue key (`SEC-12`) or numeric id; anything else cannot be put in a URL path.
pub fn valid_issue_ref(s: &str) -> bool {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let Some((project, number)) = s.rsplit_once('-') else {
        return false;
    };
    !project.is_empty()
        && project.starts_with(|c: char| c.is_ascii_alphabetic())
        && project.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// Quotes a string for JQL.
pub fn jql_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub struct JiraClient {
    pub settings: Settings,
    http: HttpClient,
}

/// One issue as a search returns it.
#[derive(Debug, Clone)]
pub struct FoundIssue {
    pub id: String,
    pub key: String,
}

impl JiraClient {
    pub fn new(settings: Settings, policy: RetryPolicy) -> Self {
        let mut http = HttpClient::new(policy).with_timeout(Duration::from_secs(settings.timeout_seconds));
        if let Some(rate) = settings.rate_limit_per_second {
            // A burst of a few requests is fine; the per-second rate is what Jira enforces.
            http = http.with_rate_limit(rate, rate.ceil().max(1.0) as u32);
        }
        JiraClient { settings, http }
    }

    pub fn flavor(&self) -> Flavor {
        self.settings.flavor
    }

    pub fn is_configured(&self) -> bool {
        !matches!(self.settings.auth, Auth::Unconfigured)
    }

    /// The API path of a resource, e.g. `/rest/api/3/issue`.
    pub fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.settings.flavor.api())
    }

    fn url(&self, rest: &str) -> String {
        format!("{}{}", self.settings.base_url, self.path(rest))
    }

    /// The human URL of an issue.
    pub fn browse_url(&self, key: &str) -> String {
        format!("{}/browse/{key}", self.settings.base_url)
    }

    fn authed(&self, req: Request) -> Request {
        let req = req.header("Accept", "application/json");
        match &self.settings.auth {
            Auth::Basic { email, token } => req.basic(email, token),
            Auth::Bearer(pat) => req.bearer(pat),
            Auth::Unconfigured => req,
        }
    }

    pub fn create_issue(&self, body: Value) -> Request {
        self.authed(Request::post(self.url("/issue")).json(body))
    }

    /// One page of a JQL search: `/search/jql` with `nextPageToken` on Cloud (the old
    /// `/search` is deprecated there), `/search` with `startAt` on Data Center.
    pub fn search(&self, jql: &str, page: &SearchPage) -> Request {
        let mut body = json!({
            "jql": jql,
            "fields": ["summary", "status", "labels", "created"],
            "maxResults": 50,
        });
        match (self.settings.flavor, page) {
            (Flavor::Cloud, SearchPage::Token(t)) => body["nextPageToken"] = json!(t),
            (Flavor::DataCenter, SearchPage::StartAt(n)) => body["startAt"] = json!(n),
            _ => {}
        }
        let path = match self.settings.flavor {
            Flavor::Cloud => "/search/jql",
            Flavor::DataCenter => "/search",
        };
        // A search changes nothing, so replaying it after an unknown outcome is safe.
        self.authed(Request::post(self.url(path)).json(body)).replay(floodgate_sdk::http::Replay::Safe)
    }

    pub fn get_issue(&self, issue: &str) -> Request {
        self.authed(Request::get(self.url(&format!("/issue/{issue}?fields=status,labels,summary"))))
    }

    pub fn add_comment(&self, issue: &str, body: Value) -> Request {
        self.authed(Request::post(self.url(&format!("/issue/{issue}/comment"))).json(body))
    }

    /// The newest comments of an issue, newest first.
    pub fn recent_comments(&self, issue: &str) -> Request {
        self.authed(Request::get(self.url(&format!("/issue/{issue}/comment?orderBy=-created&maxResults=50"))))
    }

    /// Comments by id with their properties (where floodgate keeps its idempotency marker).
    pub fn comments_with_properties(&self, ids: &[i64]) -> Request {
        self.authed(Request::post(self.url("/comment/list?expand=properties")).json(json!({"ids": ids})))
            .replay(floodgate_sdk::http::Replay::Safe)
    }

    pub fn transitions(&self, issue: &str) -> Request {
        self.authed(Request::get(self.url(&format!("/issue/{issue}/transitions"))))
    }

    pub fn do_transition(&self, issue: &str, body: Value) -> Request {
        self.authed(Request::post(self.url(&format!("/issue/{issue}/transitions"))).json(body))
    }

    /// Sends and classifies: 2xx is returned; anything else becomes an `ActionError` whose
    /// message carries Jira's own error text (429/5xx retryable, other 4xx permanent).
    pub async fn send(&self, req: &Request) -> Result<Response, ActionError> {
        let resp = self.http.send(req).await?;
        self.check(req, resp)
    }

    /// Sends and returns the answer whatever its status (for callers that treat a status,
    /// such as 409, specially).
    pub async fn send_raw(&self, req: &Request) -> Result<Response, ActionError> {
        self.http.send(req).await
    }

    pub fn check(&self, req: &Request, resp: Response) -> Result<Response, ActionError> {
        if resp.is_success() {
            return Ok(resp);
        }
        let path = url::Url::parse(req.url()).map(|u| u.path().to_string()).unwrap_or_else(|_| req.url().to_string());
        let msg = describe_error(req.method().as_str(), &path, &resp);
        let wait = resp.retry_after().or_else(|| (resp.status == 429).then(|| rate_limit_reset(&resp)).flatten());
        Err(ActionError::from_status(resp.status, msg, wait))
    }

    /// Every issue a JQL query finds (up to `cap`), following the pagination of each flavor.
    pub async fn search_all(&self, jql: &str, cap: usize) -> Result<Vec<FoundIssue>, ActionError> {
        let mut out = Vec::new();
        let mut page = SearchPage::First;
        loop {
            let req = self.search(jql, &page);
            let resp = self.send(&req).await?;
            let body: SearchAnswer = resp.json()?;
            let n = body.issues.len();
            for i in body.issues {
                let key = i.key.unwrap_or_else(|| i.id.clone());
                out.push(FoundIssue { id: i.id, key });
            }
            if out.len() >= cap || n == 0 {
                break;
            }
            page = match self.settings.flavor {
                Flavor::Cloud => match body.next_page_token {
                    Some(t) if body.is_last != Some(true) => SearchPage::Token(t),
                    _ => break,
                },
                Flavor::DataCenter => {
                    let next = body.start_at.unwrap_or(0) + n as u64;
                    if body.total.is_some_and(|t| next >= t) {
                        break;
                    }
                    SearchPage::StartAt(next)
                }
            };
        }
        out.truncate(cap);
        Ok(out)
    }
}

/// Which page of a search to ask for.
#[derive(Debug, Clone)]
pub enum SearchPage {
    First,
    Token(String),
    StartAt(u64),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchAnswer {
    #[serde(default)]
    issues: Vec<SearchIssue>,
    #[serde(default)]
    next_page_token: Option<String>,
    #[serde(default)]
    is_last: Option<bool>,
    #[serde(default)]
    start_at: Option<u64>,
    #[serde(default)]
    total: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct SearchIssue {
    id: String,
    #[serde(default)]
    key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_refs_are_keys_or_ids_only() {
        for ok in ["SEC-1", "A_B2-99", "10001"] {
            assert!(valid_issue_ref(ok), "{ok}");
        }
        for bad in ["", "SEC", "-1", "SEC-", "../x-1", "SEC-1/comment", "1SEC-2", "SEC-1?x"] {
            assert!(!valid_issue_ref(bad), "{bad}");
        }
    }

    #[test]
    fn rate_limit_reset_is_the_wait_when_retry_after_is_missing() {
        let soon = time::OffsetDateTime::now_utc() + time::Duration::minutes(2);
        let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]Z");
        let mut headers = http::HeaderMap::new();
        headers.insert("x-ratelimit-reset", soon.format(&fmt).unwrap().parse().unwrap());
        let resp = Response { status: 429, headers, body: Default::default() };
        let wait = rate_limit_reset(&resp).unwrap();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(120), "{wait:?}");
    }

    #[test]
    fn jql_strings_are_escaped() {
        assert_eq!(jql_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
