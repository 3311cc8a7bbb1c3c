//! The ServiceNow Table API client: paths, auth, query parameters and error bodies.
//!
//! Every request is built here as a `floodgate_sdk::http::Request` so `plan()` shows exactly
//! what `execute()` sends. Reads ask for `sysparm_exclude_reference_link=true`, so reference
//! fields come back as plain sys_id strings; `RefValue` still accepts the `{link, value}` form
//! and display-value objects, because an instance's ACLs or a proxy may not honour the flag.
//! This module must never put a secret in a URL, a body or an error message.

use crate::config::{Auth, Settings};
use floodgate_sdk::ActionError;
use floodgate_sdk::http::{HttpClient, Replay, Request, Response, RetryPolicy};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// ServiceNow's error body: `{"error": {"message", "detail"}, "status": "failure"}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

pub fn describe_error(method: &str, path: &str, resp: &Response) -> String {
    let detail = match serde_json::from_slice::<ErrorBody>(&resp.body) {
        Ok(b) => {
            let parts: Vec<String> = [b.error.message, b.error.detail]
                .into_iter()
                .flatten()
                .map(|s| s.trim().replace('\n', " "))
                .filter(|s| !s.is_empty())
                .collect();
            if parts.is_empty() { "no error details".to_string() } else { parts.join(": ") }
        }
        Err(_) => {
            let t = resp.text();
            if t.trim().is_empty() { "no error details".into() } else { floodgate_sdk::text::truncate(t.trim(), 300) }
        }
    };
    let hint = match resp.status {
        401 => " (check username/password or oauth_token)",
        403 => {
            " (the integration user lacks a role or ACL this needs, or a data policy refused the change; see docs/connectors/servicenow.md)"
        }
        404 => " (the record does not exist or an ACL hides it)",
        429 => " (an instance rate-limit rule was hit)",
        _ => "",
    };
    format!("ServiceNow answered HTTP {} to {method} {path}: {detail}{hint}", resp.status)
}

/// A reference field as the Table API may return it: a plain sys_id (with
/// `sysparm_exclude_reference_link=true`), `{"link", "value"}`, or a display-value object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RefValue {
    Plain(String),
    Linked {
        value: String,
        #[serde(default)]
        #[allow(dead_code)]
        link: Option<String>,
    },
    Display {
        display_value: String,
    },
}

impl RefValue {
    pub fn value(&self) -> &str {
        match self {
            RefValue::Plain(s) | RefValue::Linked { value: s, .. } | RefValue::Display { display_value: s } => s,
        }
    }
}

/// The fields floodgate reads back from an incident. Every Table API value is a string.
#[derive(Debug, Clone, Deserialize)]
pub struct IncidentRecord {
    pub sys_id: String,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub state: Option<RefValue>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub work_notes: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct One<T> {
    pub result: T,
}

#[derive(Debug, Deserialize)]
pub struct Many<T> {
    pub result: Vec<T>,
}

pub const INCIDENT_FIELDS: &str = "sys_id,number,state,correlation_id";

pub struct Client {
    pub settings: Settings,
    http: HttpClient,
}

fn encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

impl Client {
    pub fn new(settings: Settings, policy: RetryPolicy) -> Self {
        let mut http = HttpClient::new(policy).with_timeout(Duration::from_secs(settings.timeout_seconds));
        if let Some(rate) = settings.rate_limit_per_second {
            http = http.with_rate_limit(rate, rate.ceil().max(1.0) as u32);
        }
        Client { settings, http }
    }

    pub fn is_configured(&self) -> bool {
        !matches!(self.settings.auth, Auth::Unconfigured)
    }

    fn table(&self, table: &str, rest: &str, query: &[(&str, &str)]) -> String {
        let q = if query.is_empty() { String::new() } else { format!("?{}", encode(query)) };
        format!("{}/api/now/table/{table}{rest}{q}", self.settings.instance_url)
    }

    /// The record in the ServiceNow UI.
    pub fn record_url(&self, sys_id: &str) -> String {
        format!("{}/incident.do?sys_id={sys_id}", self.settings.instance_url)
    }

    fn authed(&self, req: Request) -> Request {
        let req = req.header("Accept", "application/json");
        match &self.settings.auth {
            Auth::Basic { user, password } => req.basic(user, password),
            Auth::Bearer(t) => req.bearer(t),
            Auth::Unconfigured => req,
        }
    }

    /// Incidents carrying this correlation_id, oldest first.
    pub fn find_by_correlation(&self, correlation_id: &str) -> Request {
        let q = format!("correlation_id={correlation_id}^ORDERBYsys_created_on");
        self.authed(Request::get(self.table(
            "incident",
            "",
            &[
                ("sysparm_query", &q),
                ("sysparm_fields", INCIDENT_FIELDS),
                ("sysparm_limit", "10"),
                ("sysparm_exclude_reference_link", "true"),
            ],
        )))
    }

    pub fn find_by_number(&self, number: &str) -> Request {
        let q = format!("number={number}");
        self.authed(Request::get(self.table(
            "incident",
            "",
            &[
                ("sysparm_query", &q),
                ("sysparm_fields", INCIDENT_FIELDS),
                ("sysparm_limit", "1"),
                ("sysparm_exclude_reference_link", "true"),
            ],
        )))
    }

    /// A `sys_user_group` by name or a `sys_user` by user_name, for references given by name.
    pub fn lookup(&self, table: &str, column: &str, name: &str) -> Request {
        let q = format!("{column}={name}");
        self.authed(Request::get(self.table(
            table,
            "",
            &[("sysparm_query", &q), ("sysparm_fields", "sys_id"), ("sysparm_limit", "1")],
        )))
    }

    pub fn create(&self, body: Value) -> Request {
        self.authed(Request::post(self.table(
            "incident",
            "",
            &[("sysparm_fields", INCIDENT_FIELDS), ("sysparm_exclude_reference_link", "true")],
        )))
        .header("Content-Type", "application/json")
        .json(body)
    }

    /// The incident's work-notes journal as text (only display values carry journal entries).
    pub fn work_notes(&self, sys_id: &str) -> Request {
        self.authed(Request::get(self.table(
            "incident",
            &format!("/{sys_id}"),
            &[("sysparm_fields", "sys_id,work_notes"), ("sysparm_display_value", "true")],
        )))
    }

    /// PATCH an incident. Appending a work note is not idempotent, so such a PATCH is only
    /// replayed when ServiceNow certainly did not process it.
    pub fn update(&self, sys_id: &str, body: Value, appends_journal: bool) -> Request {
        let req = self
            .authed(Request::patch(self.table(
                "incident",
                &format!("/{sys_id}"),
                &[("sysparm_fields", INCIDENT_FIELDS), ("sysparm_exclude_reference_link", "true")],
            )))
            .header("Content-Type", "application/json")
            .json(body);
        req.replay(if appends_journal { Replay::OnlyUnprocessed } else { Replay::Safe })
    }

    pub async fn send(&self, req: &Request) -> Result<Response, ActionError> {
        let resp = self.http.send(req).await?;
        if resp.is_success() {
            return Ok(resp);
        }
        let path = url::Url::parse(req.url()).map(|u| u.path().to_string()).unwrap_or_else(|_| req.url().to_string());
        let msg = describe_error(req.method().as_str(), &path, &resp);
        Err(ActionError::from_status(resp.status, msg, resp.retry_after()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values_in_every_shape() {
        let plain: RefValue = serde_json::from_str(r#""abc""#).unwrap();
        let linked: RefValue =
            serde_json::from_str(r#"{"link":"https://x/api/now/table/sys_user_group/abc","value":"abc"}"#).unwrap();
        let display: RefValue = serde_json::from_str(r#"{"display_value":"In Progress"}"#).unwrap();
        assert_eq!(plain.value(), "abc");
        assert_eq!(linked.value(), "abc");
        assert_eq!(display.value(), "In Progress");
    }
}
