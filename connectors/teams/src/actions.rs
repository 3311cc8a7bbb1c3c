//! `teams.message.post`: an incident card posted through the Workflows webhook.
//!
//! Teams gives a webhook post no id and no dedup handle, and a webhook cannot edit what it
//! posted. A step is made effective once by recording the accepted post in `call.refs` under
//! its idempotency key before returning; a repeat of the step finds the record and sends
//! nothing. The one window left — a crash after Teams accepted the post and before the record
//! was written, or a 5xx/timeout whose effect is unknown — can show a second card; that is the
//! documented limit of a one-way webhook.

use crate::card::Envelope;
use crate::client::TeamsWebhook;
use crate::content::{CardSpec, fitted_incident_card};
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, Plan, RiskClass, input_schema};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

pub const POST: &str = "message.post";
const REFS_NS: &str = "teams";

/// A link button on the card.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    /// Button label.
    pub title: String,
    /// Absolute http(s) URL.
    pub url: String,
}

/// Input of `teams.message.post`. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostInput {
    /// Headline. Default: the incident's title. Shown as plain text (no markdown).
    #[serde(default)]
    pub title: Option<String>,
    /// Body text. Default: the alert's description. Shown as plain text (no markdown, no links).
    #[serde(default)]
    pub text: Option<String>,
    /// Extra label → value facts shown after the evidence.
    #[serde(default)]
    pub facts: BTreeMap<String, String>,
    /// Show the alert evidence (severity, confidence, rule, source, entities). Default true.
    #[serde(default)]
    pub evidence: Option<bool>,
    /// A status line, e.g. "Containment pending approval".
    #[serde(default)]
    pub status: Option<String>,
    /// Extra link buttons (Action.OpenUrl), after "Open in floodgate".
    #[serde(default)]
    pub links: Vec<LinkInput>,
}

pub(crate) fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new(
            POST,
            "Post an incident card (Adaptive Card) to a Teams channel through a Workflows webhook",
            RiskClass::Notify,
            input_schema::<PostInput>(),
        )
        .idempotency(
            "the accepted post is recorded per idempotency key and a repeat sends nothing; Teams webhooks have no \
             dedup handle, so a crash between Teams accepting and the record being written can show a second card",
        ),
    ]
}

fn envelope(call: &ActionCall<'_>) -> Result<Envelope, ActionError> {
    let input: PostInput = call.parse_input()?;
    let mut links = Vec::new();
    for l in &input.links {
        let ok = url::Url::parse(&l.url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok || l.title.trim().is_empty() {
            return Err(ActionError::invalid_input(format!(
                "link {:?} needs a title and an http(s) url",
                l.title.chars().take(60).collect::<String>()
            )));
        }
        links.push((l.title.clone(), l.url.clone()));
    }
    let spec = CardSpec {
        title: input.title,
        text: input.text,
        facts: input.facts.into_iter().collect(),
        evidence: input.evidence.unwrap_or(true),
        status: input.status,
        links,
    };
    Ok(fitted_incident_card(call.ctx, &spec))
}

pub(crate) fn plan(webhook: &TeamsWebhook, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    let env = envelope(call)?;
    let request = webhook.planned(&env)?;
    Ok(Plan { summary: format!("post an incident card to Teams ({} bytes)", env.size()), requests: vec![request] })
}

pub(crate) async fn execute(webhook: &TeamsWebhook, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    let env = envelope(call)?;
    let key = format!("post:{}", call.idempotency_key);
    if let Some(mut done) = call.refs.get(REFS_NS, &key).await? {
        done["outcome"] = json!("already_posted");
        return Ok(ActionOutput::new(done));
    }
    let status = webhook.post(&env).await?;
    let record = json!({"status": status, "bytes": env.size()});
    call.refs.put(REFS_NS, &key, &record).await?;
    let mut out = record;
    out["outcome"] = json!("posted");
    Ok(ActionOutput::new(out).with_note("posted an incident card to Teams"))
}

pub(crate) fn unknown(action: &str) -> ActionError {
    ActionError::permanent("unknown_action", format!("teams has no action {action:?} (it has {POST})"))
}
