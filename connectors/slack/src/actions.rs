//! `slack.message.post` and `slack.message.update`: inputs, plans and the once-only logic.
//!
//! A message has a *name* within its incident (default `incident`). Its channel and `ts` are
//! kept in `call.refs` under `message:<incident>:<name>`, and the post that created it under
//! `post:<idempotency key>`. Slack has no idempotency key of its own, so a post is made
//! effective once like this:
//!
//! 1. the same idempotency key already posted → return that message, send nothing;
//! 2. the incident already has a message of that name in that channel → update it instead of
//!    posting a second one;
//! 3. (refs lost, or a crash between Slack's answer and `refs.put`) the message's first block
//!    carries a marker block id derived from incident and name; look for it in the channel
//!    history since the incident opened, and update what is found;
//! 4. otherwise post, and record the refs immediately.
//!
//! Nothing here may put a secret into refs, outputs or errors.

use crate::blocks::{MessageSpec, incident_message, is_mention_id, marker};
use crate::client::{PostedMessage, SlackApi};
use crate::config::check_channel_id;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, CallContext, Plan, RiskClass, input_schema};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use slack_morphism::prelude::*;
use std::collections::BTreeMap;

pub const POST: &str = "message.post";
pub const UPDATE: &str = "message.update";
const REFS_NS: &str = "slack";
const DEFAULT_NAME: &str = "incident";
/// History pages (of 200) searched for a lost message; bounded so a busy channel costs little.
const RECONCILE_PAGES: usize = 5;
const HISTORY_PAGE: u16 = 200;

/// Input of `slack.message.post`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostInput {
    /// Channel ID (`C…` or `G…`). Default: `default_channel` of `[connectors.slack]`.
    #[serde(default)]
    pub channel: Option<String>,
    /// Name of this message within the incident, so later steps can update it
    /// (`slack.message.update` with the same name). Lowercase letters, digits, `-` and `_`.
    /// Default `incident`.
    #[serde(default)]
    pub name: Option<String>,
    /// Headline. Default: the incident's title. Escaped: it cannot mention anyone or add links.
    #[serde(default)]
    pub title: Option<String>,
    /// Body text (Slack mrkdwn such as *bold* and `code` works; `<`, `>` and `&` are escaped so
    /// no mention or link can be injected). Default: the alert's description.
    #[serde(default)]
    pub text: Option<String>,
    /// Extra label → value facts shown after the evidence.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Show the alert evidence (severity, confidence, rule, source, entities). Default true.
    #[serde(default)]
    pub evidence: Option<bool>,
    /// A status line, e.g. "Containment pending approval".
    #[serde(default)]
    pub status: Option<String>,
    /// Slack user (`U…`, `W…`) or user-group (`S…`) IDs to mention: the only way a message
    /// notifies people by name.
    #[serde(default)]
    pub mention: Vec<String>,
}

/// Input of `slack.message.update`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    /// Name of the message to update, as given to `slack.message.post`. Default `incident`.
    #[serde(default)]
    pub name: Option<String>,
    /// Channel to search when floodgate has no record of the message. Default: the configured
    /// `default_channel`.
    #[serde(default)]
    pub channel: Option<String>,
    /// New headline. Default: the incident's title.
    #[serde(default)]
    pub title: Option<String>,
    /// New body text (escaped as for `message.post`). Default: the alert's description.
    #[serde(default)]
    pub text: Option<String>,
    /// Extra label → value facts.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Show the alert evidence. Default true.
    #[serde(default)]
    pub evidence: Option<bool>,
    /// A status line, e.g. "Contained: IP blocked".
    #[serde(default)]
    pub status: Option<String>,
}

pub(crate) fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new(
            POST,
            "Post an incident message (Block Kit) to a Slack channel",
            RiskClass::Notify,
            input_schema::<PostInput>(),
        )
        .idempotency(
            "channel+ts recorded per idempotency key and per (incident, name); a repeat returns or updates the \
             recorded message; after a crash the message is found again in the channel history by its marker block id",
        ),
        ActionSpec::new(
            UPDATE,
            "Replace the content of a message posted earlier for this incident",
            RiskClass::Notify,
            input_schema::<UpdateInput>(),
        )
        .idempotency("chat.update sets the message to the same content: repeating it changes nothing"),
    ]
}

fn check_name(name: &str) -> Result<(), ActionError> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ActionError::invalid_input(format!(
            "name {:?} must be 1-64 lowercase letters, digits, - or _",
            name.chars().take(70).collect::<String>()
        )))
    }
}

/// Refs are per incident; outside an incident (ad-hoc runs) per run.
pub(crate) fn scope(ctx: &CallContext) -> String {
    if ctx.incident_id.is_empty() { format!("run:{}", ctx.run_id) } else { ctx.incident_id.clone() }
}

fn message_key(scope: &str, name: &str) -> String {
    format!("message:{scope}:{name}")
}

fn post_key(idempotency_key: &str) -> String {
    format!("post:{idempotency_key}")
}

/// Everything `execute` and `plan` derive from the input, identically.
pub(crate) struct Prepared {
    pub channel: Option<String>,
    pub name: String,
    pub marker: String,
    pub content: SlackMessageContent,
}

fn resolve_channel(given: Option<&str>, default: Option<&str>) -> Result<Option<String>, ActionError> {
    match given.or(default) {
        Some(ch) => {
            check_channel_id(ch).map_err(ActionError::invalid_input)?;
            Ok(Some(ch.to_string()))
        }
        None => Ok(None),
    }
}

pub(crate) fn prepare_post(call: &ActionCall<'_>, default_channel: Option<&str>) -> Result<Prepared, ActionError> {
    let input: PostInput = call.parse_input()?;
    let name = input.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
    check_name(&name)?;
    for m in &input.mention {
        if !is_mention_id(m) {
            return Err(ActionError::invalid_input(format!(
                "mention {:?} is not a Slack user (U…/W…) or user-group (S…) ID",
                m.chars().take(40).collect::<String>()
            )));
        }
    }
    let marker = marker(&scope(call.ctx), &name);
    let spec = MessageSpec {
        marker: marker.clone(),
        title: input.title,
        text: input.text,
        fields: input.fields.into_iter().collect(),
        evidence: input.evidence.unwrap_or(true),
        status: input.status,
        mentions: input.mention,
    };
    Ok(Prepared {
        channel: resolve_channel(input.channel.as_deref(), default_channel)?,
        name,
        marker,
        content: incident_message(call.ctx, &spec),
    })
}

pub(crate) fn prepare_update(call: &ActionCall<'_>, default_channel: Option<&str>) -> Result<Prepared, ActionError> {
    let input: UpdateInput = call.parse_input()?;
    let name = input.name.clone().unwrap_or_else(|| DEFAULT_NAME.to_string());
    check_name(&name)?;
    let marker = marker(&scope(call.ctx), &name);
    let spec = MessageSpec {
        marker: marker.clone(),
        title: input.title,
        text: input.text,
        fields: input.fields.into_iter().collect(),
        evidence: input.evidence.unwrap_or(true),
        status: input.status,
        mentions: Vec::new(),
    };
    Ok(Prepared {
        channel: resolve_channel(input.channel.as_deref(), default_channel)?,
        name,
        marker,
        content: incident_message(call.ctx, &spec),
    })
}

pub(crate) fn post_request(channel: &str, content: SlackMessageContent) -> SlackApiChatPostMessageRequest {
    // No unfurling (a link in alert data must not fetch anything) and no name linking.
    SlackApiChatPostMessageRequest::new(SlackChannelId::new(channel.to_string()), content)
        .with_link_names(false)
        .with_parse("none".to_string())
        .with_unfurl_links(false)
        .with_unfurl_media(false)
}

pub(crate) fn update_request(target: &PostedMessage, content: SlackMessageContent) -> SlackApiChatUpdateRequest {
    // chat.update defaults to `parse=client`, which would turn names into links: ask for none.
    SlackApiChatUpdateRequest::new(
        SlackChannelId::new(target.channel.clone()),
        content,
        SlackTs::new(target.ts.clone()),
    )
    .with_parse("none".to_string())
}

pub(crate) fn plan_post(
    api: &SlackApi,
    call: &ActionCall<'_>,
    default_channel: Option<&str>,
) -> Result<Plan, ActionError> {
    let p = prepare_post(call, default_channel)?;
    let channel = p.channel.unwrap_or_else(|| "<default_channel>".to_string());
    let req = api.post_message_request(&post_request(&channel, p.content))?;
    Ok(Plan {
        summary: format!(
            "post Slack message {:?} of incident {} to channel {channel} (or update it if it was already posted)",
            p.name,
            scope(call.ctx)
        ),
        requests: vec![req.planned()],
    })
}

pub(crate) fn plan_update(
    api: &SlackApi,
    call: &ActionCall<'_>,
    default_channel: Option<&str>,
) -> Result<Plan, ActionError> {
    let p = prepare_update(call, default_channel)?;
    let target = PostedMessage {
        channel: p.channel.unwrap_or_else(|| format!("<channel of message {:?}>", p.name)),
        ts: format!("<ts of message {:?}>", p.name),
    };
    let req = api.update_message_request(&update_request(&target, p.content))?;
    Ok(Plan {
        summary: format!("update Slack message {:?} of incident {}", p.name, scope(call.ctx)),
        requests: vec![req.planned()],
    })
}

async fn get_ref(call: &ActionCall<'_>, key: &str) -> Result<Option<PostedMessage>, ActionError> {
    match call.refs.get(REFS_NS, key).await? {
        Some(v) => Ok(serde_json::from_value(v).ok()),
        None => Ok(None),
    }
}

async fn put_ref(call: &ActionCall<'_>, key: &str, m: &PostedMessage) -> Result<(), ActionError> {
    call.refs.put(REFS_NS, key, &json!({"channel": m.channel, "ts": m.ts})).await
}

/// `oldest` for the history search: when the incident opened (a message of it cannot be older).
fn search_from(ctx: &CallContext) -> Option<String> {
    let opened = ctx.incident.get("opened_at")?.as_str()?;
    let t = time::OffsetDateTime::parse(opened, &time::format_description::well_known::Rfc3339).ok()?;
    // A minute of slack for clock differences between floodgate and Slack.
    Some(format!("{}.000000", (t.unix_timestamp() - 60).max(0)))
}

/// Finds the message whose first block carries `marker` in the channel history.
async fn find_by_marker(
    api: &SlackApi,
    ctx: &CallContext,
    channel: &str,
    marker: &str,
) -> Result<Option<PostedMessage>, ActionError> {
    let oldest = search_from(ctx);
    // Without a start time, only the most recent page is searched.
    let pages = if oldest.is_some() { RECONCILE_PAGES } else { 1 };
    let mut cursor: Option<String> = None;
    for _ in 0..pages {
        let page = api.history_page(channel, oldest.as_deref(), cursor.as_deref(), HISTORY_PAGE).await.map_err(
            |e| match e {
                ActionError::Permanent { code, message } if code == "missing_scope" => ActionError::Permanent {
                    message: format!(
                        "{message}; floodgate reads the channel history to avoid duplicate messages after a crash: \
                         grant channels:history (public) / groups:history (private), or set \
                         reconcile_from_history = false in [connectors.slack]"
                    ),
                    code,
                },
                other => other,
            },
        )?;
        if let Some(m) =
            page.messages.iter().find(|m| m.blocks.first().and_then(|b| b.block_id.as_deref()) == Some(marker))
        {
            return Ok(Some(PostedMessage { channel: channel.to_string(), ts: m.ts.clone() }));
        }
        cursor = page.response_metadata.and_then(|md| md.next_cursor).filter(|c| !c.is_empty());
        if !page.has_more || cursor.is_none() {
            break;
        }
    }
    Ok(None)
}

fn output(m: &PostedMessage, name: &str, outcome: &str) -> ActionOutput {
    ActionOutput::new(json!({"channel": m.channel, "ts": m.ts, "name": name, "outcome": outcome}))
}

fn need_channel(p: &Prepared) -> Result<String, ActionError> {
    p.channel.clone().ok_or_else(|| {
        ActionError::invalid_input("no channel: give `channel` or set default_channel in [connectors.slack]")
    })
}

pub(crate) async fn execute_post(
    api: &SlackApi,
    call: &ActionCall<'_>,
    default_channel: Option<&str>,
    reconcile: bool,
) -> Result<ActionOutput, ActionError> {
    let p = prepare_post(call, default_channel)?;
    let channel = need_channel(&p)?;
    let scope = scope(call.ctx);
    let pkey = post_key(call.idempotency_key);
    let mkey = message_key(&scope, &p.name);

    // 1. This very step already posted.
    if let Some(done) = get_ref(call, &pkey).await? {
        return Ok(output(&done, &p.name, "already_posted"));
    }
    // 2. The incident already has this message here: one message per incident and name.
    let mut existing = get_ref(call, &mkey).await?.filter(|m| m.channel == channel);
    let mut outcome = "updated";
    // 3. floodgate lost track of it (crash after Slack's answer, or refs lost).
    if existing.is_none() && reconcile {
        existing = find_by_marker(api, call.ctx, &channel, &p.marker).await?;
        outcome = "reconciled";
    }
    if let Some(target) = existing {
        match api.update_message(&update_request(&target, p.content.clone())).await {
            Ok(_) => {
                put_ref(call, &mkey, &target).await?;
                put_ref(call, &pkey, &target).await?;
                return Ok(output(&target, &p.name, outcome)
                    .with_note(format!("Slack message {:?} already existed; updated it", p.name)));
            }
            // Someone deleted it: post a fresh one below.
            Err(e) if e.code() == "message_not_found" => {}
            Err(e) => return Err(e),
        }
    }
    // 4. Post, and record at once: the incident's message first, then this step's.
    let posted = api.post_message(&post_request(&channel, p.content)).await?;
    put_ref(call, &mkey, &posted).await?;
    put_ref(call, &pkey, &posted).await?;
    Ok(output(&posted, &p.name, "posted").with_note(format!("posted Slack message {:?} to {}", p.name, posted.channel)))
}

pub(crate) async fn execute_update(
    api: &SlackApi,
    call: &ActionCall<'_>,
    default_channel: Option<&str>,
    reconcile: bool,
) -> Result<ActionOutput, ActionError> {
    let p = prepare_update(call, default_channel)?;
    let scope = scope(call.ctx);
    let mkey = message_key(&scope, &p.name);
    let mut target = get_ref(call, &mkey).await?;
    if target.is_none()
        && reconcile
        && let Some(channel) = &p.channel
    {
        target = find_by_marker(api, call.ctx, channel, &p.marker).await?;
        if let Some(t) = &target {
            put_ref(call, &mkey, t).await?;
        }
    }
    let Some(target) = target else {
        return Err(ActionError::permanent(
            "message_not_posted",
            format!(
                "no Slack message named {:?} was posted for incident {scope}: post it first with slack.message.post (name: {})",
                p.name, p.name
            ),
        ));
    };
    let updated = api.update_message(&update_request(&target, p.content)).await?;
    Ok(output(&updated, &p.name, "updated"))
}

/// The error for an action name this connector does not have.
pub(crate) fn unknown(action: &str) -> ActionError {
    ActionError::permanent("unknown_action", format!("slack has no action {action:?} (it has {POST} and {UPDATE})"))
}
