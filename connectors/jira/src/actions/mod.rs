//! The three Jira actions: their inputs, their plans, and how each takes effect once.
//!
//! - `issue.create`: one issue per floodgate incident. The issue key is kept in refs
//!   (`jira.issue` / incident id) and every issue carries the label `<prefix><incident id>`, so a
//!   create whose answer was lost (crash, timeout, 5xx after commit) is found again by JQL
//!   instead of being repeated.
//! - `issue.comment`: the comment id is kept in refs under the idempotency key, and the comment
//!   carries a hidden comment property `floodgate` with that key, so a retry after a lost answer
//!   finds it instead of posting twice.
//! - `issue.transition`: resolved by name at run time; the intent (issue, transition, target
//!   status) is written to refs before the POST, so a retry whose first POST went through sees
//!   the issue already in the target status and does not fail or move it again.
//!
//! Writes to one issue are serialised in-process (`locks`). Nothing here may put alert data into
//! JSON or markup as text: bodies are serde values, rich text comes from `adf`/`content`.

mod comment;
mod create;
mod transition;

use crate::Jira;
use crate::adf::{self, Doc};
use crate::client::{self, SearchPage, jql_string};
use crate::config::Flavor;
use crate::content;
use floodgate_sdk::http::Request;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, Plan, RiskClass, input_schema};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Refs namespace of an incident's issue (key: incident id).
pub const NS_ISSUE: &str = "jira.issue";
/// Refs namespace of posted comments (key: idempotency key).
pub const NS_COMMENT: &str = "jira.comment";
/// Refs namespace of transitions (key: idempotency key).
pub const NS_TRANSITION: &str = "jira.transition";
/// Key of the hidden comment property that marks floodgate's comments.
pub const COMMENT_PROPERTY: &str = "floodgate";

/// Input of `jira.issue.create`. Every field is optional: the defaults describe the incident.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    /// One-line summary (max 255 characters). Default: `[floodgate] <incident title> (<severity>)`.
    #[serde(default)]
    pub summary: Option<String>,
    /// Plain text shown first in the description (blank lines separate paragraphs). Default: a
    /// sentence naming the incident. The evidence table and the link back to floodgate follow.
    #[serde(default)]
    pub description: Option<String>,
    /// Add the alert evidence table and the alert's description. Default true.
    #[serde(default)]
    pub include_evidence: Option<bool>,
    /// Project key. Default: the connector's `project`.
    #[serde(default)]
    pub project: Option<String>,
    /// Issue type name (or numeric id). Default: the connector's `issue_type`.
    #[serde(default)]
    pub issue_type: Option<String>,
    /// Priority name. Default: the connector's `priorities` entry for the incident's severity, if any.
    #[serde(default)]
    pub priority: Option<String>,
    /// Extra labels (no spaces). The dedup label is always added.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Extra Jira fields by id, e.g. `{"customfield_10050": "x"}`; sent as given.
    #[serde(default)]
    pub fields: BTreeMap<String, Value>,
}

/// Input of `jira.issue.comment`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentInput {
    /// The comment, as plain text (blank lines separate paragraphs).
    pub body: String,
    /// Issue key (`SEC-12`). Default: the issue `jira.issue.create` opened for this incident.
    #[serde(default)]
    pub issue: Option<String>,
    /// Append a link to the incident in floodgate. Default true.
    #[serde(default)]
    pub include_link: Option<bool>,
}

/// Input of `jira.issue.transition`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionInput {
    /// The transition's name as the workflow shows it (e.g. `Done`, `Start Progress`), matched
    /// without regard to case; the name of the target status also matches.
    pub transition: String,
    /// Issue key. Default: the issue `jira.issue.create` opened for this incident.
    #[serde(default)]
    pub issue: Option<String>,
    /// A comment added with the transition (plain text).
    #[serde(default)]
    pub comment: Option<String>,
    /// Resolution name to set (e.g. `Done`, `Won't Do`), when the transition screen has it.
    #[serde(default)]
    pub resolution: Option<String>,
}

pub fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new(
            "issue.create",
            "Open the incident's Jira issue (ADF on Cloud, plain text on Data Center); returns the existing one if already open",
            RiskClass::Ticket,
            input_schema::<CreateInput>(),
        )
        .idempotency("one issue per incident: issue key kept in refs (jira.issue/<incident id>); every issue is labelled <label_prefix><incident id> and a create is preceded by a JQL search on that label, so a create whose answer was lost is reconciled instead of repeated"),
        ActionSpec::new(
            "issue.comment",
            "Add a comment to the incident's Jira issue",
            RiskClass::Ticket,
            input_schema::<CommentInput>(),
        )
        .idempotency("comment id kept in refs under the idempotency key; each comment carries a hidden comment property `floodgate` holding the key, searched on retries"),
        ActionSpec::new(
            "issue.transition",
            "Move the incident's Jira issue through its workflow by transition name",
            RiskClass::Ticket,
            input_schema::<TransitionInput>(),
        )
        .idempotency("intent (transition id, target status) written to refs before the POST; a retry that finds the issue in the target status does nothing"),
    ]
}

fn invalid(msg: impl Into<String>) -> ActionError {
    ActionError::invalid_input(msg)
}

/// The issue a comment or transition targets: known now, or "the incident's issue" (resolved
/// at execute time from refs, then by label).
enum Target {
    Key(String),
    IncidentIssue,
}

fn target(explicit: Option<&str>) -> Result<Target, ActionError> {
    match explicit.map(str::trim).filter(|s| !s.is_empty()) {
        Some(k) if client::valid_issue_ref(k) => Ok(Target::Key(k.to_string())),
        Some(k) => Err(invalid(format!("issue {k:?} is not a Jira issue key such as SEC-12"))),
        None => Ok(Target::IncidentIssue),
    }
}
fn named(v: &str) -> Value {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) { json!({"id": v}) } else { json!({"name": v}) }
}
impl Jira {
    fn incident_id<'a>(&self, call: &'a ActionCall<'_>) -> Result<&'a str, ActionError> {
        let id = call.ctx.incident_id.as_str();
        if id.is_empty() {
            return Err(invalid(format!(
                "jira.{} needs the incident of the call (the engine sets it); without it the ticket cannot be deduplicated",
                call.action
            )));
        }
        Ok(id)
    }

    async fn record_issue(
        &self,
        call: &ActionCall<'_>,
        incident: &str,
        key: &str,
        id: &str,
        label: &str,
    ) -> Result<(), ActionError> {
        call.refs.put(NS_ISSUE, incident, &json!({"key": key, "id": id, "label": label})).await
    }

    /// The key of the issue a comment or transition targets.
    async fn resolve(&self, call: &ActionCall<'_>, t: Target) -> Result<String, ActionError> {
        if let Target::Key(k) = t {
            return Ok(k);
        }
        let incident = self.incident_id(call)?;
        if let Some(r) = call.refs.get(NS_ISSUE, incident).await?
            && let Some(key) = r.get("key").and_then(Value::as_str)
        {
            return Ok(key.to_string());
        }
        let label = content::label_for(&self.client.settings.label_prefix, incident);
        let jql = format!("labels = {} ORDER BY created ASC", jql_string(&label));
        if let Some(first) = self.client.search_all(&jql, 1).await?.first() {
            self.record_issue(call, incident, &first.key, &first.id, &label).await?;
            return Ok(first.key.clone());
        }
        Err(ActionError::permanent(
            "no_issue",
            format!(
                "incident {incident} has no Jira issue yet (none recorded, none labelled {label}): run jira.issue.create first, or pass `issue`"
            ),
        ))
    }

    fn placeholder(call: &ActionCall<'_>) -> String {
        format!("<issue of incident {}>", call.ctx.incident_id)
    }

    fn rich_text(&self, call: &ActionCall<'_>, text: &str, link: bool) -> Value {
        let url = if link { content::incident_url(call.ctx) } else { None };
        match self.client.flavor() {
            Flavor::Cloud => {
                let mut doc = Doc::from_plain(&floodgate_sdk::text::truncate(text, content::TEXT_MAX));
                if let Some(u) = url {
                    doc.push(adf::paragraph(adf::link("Open the incident in floodgate", &u)));
                }
                doc.to_value()
            }
            Flavor::DataCenter => {
                let mut s = content::wiki_escape(&adf::clean(&floodgate_sdk::text::truncate(text, content::TEXT_MAX)));
                if let Some(u) = url {
                    s.push_str(&format!(
                        "\n\n[Open the incident in floodgate|{}]",
                        u.replace('|', "%7C").replace(']', "%5D")
                    ));
                }
                Value::String(s)
            }
        }
    }
}
