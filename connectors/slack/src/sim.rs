//! A local Slack Web API (feature `sim`) for tests and the demo.
//!
//! It serves `chat.postMessage`, `chat.update` and `conversations.history` under `/api` the way
//! Slack does: bearer or form tokens with scopes, JSON or form bodies, HTTP 200 with
//! `{"ok":false,"error":<code>}` for every API error (`not_authed`, `invalid_auth`,
//! `missing_scope`, `channel_not_found`, `not_in_channel`, `is_archived`, `no_text`,
//! `invalid_blocks`, `msg_too_long`, `message_not_found`, `cant_update_message`,
//! `invalid_arguments`, `invalid_json`, ...), stored messages with Slack-style `ts`, cursor
//! pagination, and `Retry-After` 429s with `{"ok":false,"error":"ratelimited"}` through
//! [`Faults`]. It also receives `response_url` posts (`/response/<id>`) so approval tests can
//! see ephemeral replies, and builds signed interaction requests as Slack would send them.
//!
//! Nothing in the product depends on this module.

mod blocks;
mod request;

use crate::signature::sign;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use floodgate_sdk::Secret;
use floodgate_sdk::sim::{CallLog, Faults, SimServer, instrument};
use request::{api_error, authorize, check_known, content, ok, parse_args, str_arg};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The bot token the simulator accepts by default (scopes: chat:write, channels:history,
/// groups:history).
pub const SIM_BOT_TOKEN: &str = "xoxb-0000000000-floodgate-sim";
/// The signing secret the simulator signs interaction requests with.
pub const SIM_SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// A public channel the bot is a member of.
pub const SOC_CHANNEL: &str = "C0SOC000001";
/// A private channel the bot is a member of.
pub const PRIVATE_CHANNEL: &str = "G0PRIV00001";
/// A public channel the bot was never invited to.
pub const OUTSIDE_CHANNEL: &str = "C0OUT000001";
/// An archived channel.
pub const ARCHIVED_CHANNEL: &str = "C0ARC000001";
const BOT_ID: &str = "B0FLOODGATE";
const APP_ID: &str = "A0FLOODGATE";

const POST_ARGS: &[&str] = &[
    "token",
    "as_user",
    "attachments",
    "blocks",
    "channel",
    "icon_emoji",
    "icon_url",
    "link_names",
    "mrkdwn",
    "parse",
    "reply_broadcast",
    "text",
    "thread_ts",
    "unfurl_links",
    "unfurl_media",
    "username",
];
const UPDATE_ARGS: &[&str] =
    &["token", "as_user", "attachments", "blocks", "channel", "link_names", "parse", "text", "ts"];
const HISTORY_ARGS: &[&str] = &["token", "channel", "cursor", "inclusive", "latest", "limit", "oldest"];

/// A message as the simulator stores it.
#[derive(Debug, Clone, Serialize)]
pub struct SimMessage {
    pub channel: String,
    pub ts: String,
    pub text: Option<String>,
    pub blocks: Vec<Value>,
    /// Set for messages posted by the bot.
    pub bot_id: Option<String>,
    /// Set for messages posted by people (`post_as_user`).
    pub user: Option<String>,
    pub thread_ts: Option<String>,
    /// How many times `chat.update` changed it.
    pub edits: u32,
    /// The arguments of the post that created it (`parse`, `unfurl_links`, ...), for assertions.
    pub post_args: Map<String, Value>,
}

impl SimMessage {
    fn to_api(&self) -> Value {
        let mut m = json!({"type": "message", "ts": self.ts, "text": self.text.clone().unwrap_or_default()});
        if !self.blocks.is_empty() {
            m["blocks"] = Value::Array(self.blocks.clone());
        }
        if let Some(b) = &self.bot_id {
            m["bot_id"] = json!(b);
            m["app_id"] = json!(APP_ID);
        }
        if let Some(u) = &self.user {
            m["user"] = json!(u);
        }
        if let Some(t) = &self.thread_ts {
            m["thread_ts"] = json!(t);
        }
        if self.edits > 0 {
            m["edited"] = json!({"user": "U0FLOODBOT", "ts": self.ts});
        }
        m
    }
}

struct Channel {
    is_archived: bool,
    bot_member: bool,
    messages: Vec<SimMessage>,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<String, Vec<String>>,
    channels: BTreeMap<String, Channel>,
    last_ts: (i64, u32),
    responses: Vec<(String, Value)>,
}

impl Inner {
    fn next_ts(&mut self) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.last_ts = if now > self.last_ts.0 { (now, 1) } else { (self.last_ts.0, self.last_ts.1 + 1) };
        format!("{}.{:06}", self.last_ts.0, self.last_ts.1)
    }
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running Slack simulator.
pub struct SlackSim {
    server: SimServer,
    state: Shared,
    log: CallLog,
    faults: Faults,
}

/// The body Slack sends with a 429 or an outage.
fn render_fault(status: u16, retry_after: Option<u64>) -> Response {
    let code = match status {
        429 => "ratelimited",
        503 => "service_unavailable",
        _ => "fatal_error",
    };
    let mut r = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({"ok": false, "error": code})),
    )
        .into_response();
    if let Some(v) = retry_after.and_then(|s| s.to_string().parse().ok()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

impl SlackSim {
    /// Starts a workspace with [`SIM_BOT_TOKEN`] and the four channels above.
    pub async fn start() -> std::io::Result<SlackSim> {
        let mut inner = Inner::default();
        inner.tokens.insert(
            SIM_BOT_TOKEN.to_string(),
            vec!["chat:write".into(), "channels:history".into(), "groups:history".into()],
        );
        for (id, member, archived) in [
            (SOC_CHANNEL, true, false),
            (PRIVATE_CHANNEL, true, false),
            (OUTSIDE_CHANNEL, false, false),
            (ARCHIVED_CHANNEL, true, true),
        ] {
            inner
                .channels
                .insert(id.to_string(), Channel { is_archived: archived, bot_member: member, messages: Vec::new() });
        }
        let state: Shared = Arc::new(Mutex::new(inner));
        let log = CallLog::default();
        let faults = Faults::new(Arc::new(render_fault));
        let router = Router::new()
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/chat.update", post(update_message))
            .route("/api/conversations.history", get(history).post(history))
            .route("/response/{id}", post(response_url))
            .fallback(unknown_method)
            .with_state(state.clone());
        let server = SimServer::start(instrument(router, log.clone(), faults.clone())).await?;
        Ok(SlackSim { server, state, log, faults })
    }

    /// The Web API base URL (`http://127.0.0.1:<port>/api`), for `api_base_url`.
    pub fn url(&self) -> String {
        format!("{}/api", self.server.url())
    }

    /// A `response_url` the simulator records posts to.
    pub fn response_url(&self, id: &str) -> String {
        format!("{}/response/{id}", self.server.url())
    }

    pub fn log(&self) -> &CallLog {
        &self.log
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Messages of a channel, oldest first.
    pub fn messages(&self, channel: &str) -> Vec<SimMessage> {
        lock(&self.state).channels.get(channel).map(|c| c.messages.clone()).unwrap_or_default()
    }

    pub fn message(&self, channel: &str, ts: &str) -> Option<SimMessage> {
        self.messages(channel).into_iter().find(|m| m.ts == ts)
    }

    /// Adds a token with these scopes (e.g. one without `channels:history`).
    pub fn add_token(&self, token: &str, scopes: &[&str]) {
        lock(&self.state).tokens.insert(token.to_string(), scopes.iter().map(|s| s.to_string()).collect());
    }

    /// A person posts in a channel (to fill its history).
    pub fn post_as_user(&self, channel: &str, user: &str, text: &str) -> String {
        let mut st = lock(&self.state);
        let ts = st.next_ts();
        if let Some(c) = st.channels.get_mut(channel) {
            c.messages.push(SimMessage {
                channel: channel.to_string(),
                ts: ts.clone(),
                text: Some(text.to_string()),
                blocks: Vec::new(),
                bot_id: None,
                user: Some(user.to_string()),
                thread_ts: None,
                edits: 0,
                post_args: Map::new(),
            });
        }
        ts
    }

    /// Bodies posted to `response_url`s, with their ids.
    pub fn responses(&self) -> Vec<(String, Value)> {
        lock(&self.state).responses.clone()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A `block_actions` payload as Slack sends it when someone presses a button.
pub fn block_actions_payload(
    user_id: &str,
    channel: &str,
    message_ts: &str,
    action_id: &str,
    value: &str,
    response_url: &str,
) -> Value {
    json!({
        "type": "block_actions",
        "team": {"id": "T0SIM0001", "domain": "floodgate-sim"},
        "user": {"id": user_id, "username": "sim-user", "name": "sim-user", "team_id": "T0SIM0001"},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": false},
        "trigger_id": "1234567890.0987654321.abcdef0123456789",
        "channel": {"id": channel, "name": "soc"},
        "message": {"type": "message", "ts": message_ts, "bot_id": BOT_ID, "text": "approval"},
        "response_url": response_url,
        "actions": [{
            "type": "button", "action_id": action_id, "block_id": "floodgate-approval",
            "text": {"type": "plain_text", "text": "Approve"}, "value": value,
            "action_ts": format!("{message_ts}1"),
        }],
    })
}

/// An interaction request as Slack sends it: form body `payload=<json>` and its two headers.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub body: Vec<u8>,
    /// `X-Slack-Request-Timestamp`
    pub timestamp: String,
    /// `X-Slack-Signature`
    pub signature: String,
}

/// Signs `payload` at unix time `timestamp` with `signing_secret`, as Slack does.
pub fn signed_interaction(signing_secret: &str, timestamp: i64, payload: &Value) -> SignedRequest {
    let body: String =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("payload", &payload.to_string()).finish();
    let signature = sign(&Secret::new(signing_secret), timestamp, body.as_bytes());
    SignedRequest { body: body.into_bytes(), timestamp: timestamp.to_string(), signature }
}

async fn post_message(State(state): State<Shared>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let args = match parse_args(&headers, &uri, &body) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let mut st = lock(&state);
    if let Err(r) =
        authorize(&st.tokens, &args, &["chat:write", "chat:write:bot"]).and_then(|_| check_known(&args, POST_ARGS))
    {
        return r.into_response();
    }
    let Some(channel) = str_arg(&args, "channel").map(str::to_string) else {
        return api_error("channel_not_found").into_response();
    };
    match st.channels.get(&channel) {
        None => return api_error("channel_not_found").into_response(),
        Some(c) if c.is_archived => return api_error("is_archived").into_response(),
        Some(c) if !c.bot_member => return api_error("not_in_channel").into_response(),
        Some(_) => {}
    }
    let (text, blocks) = match content(&args) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let thread_ts = str_arg(&args, "thread_ts").map(str::to_string);
    if let Some(t) = &thread_ts
        && !st.channels[&channel].messages.iter().any(|m| &m.ts == t)
    {
        return api_error("thread_not_found").into_response();
    }
    let ts = st.next_ts();
    let mut post_args = args.map.clone();
    post_args.remove("text");
    post_args.remove("blocks");
    let msg = SimMessage {
        channel: channel.clone(),
        ts: ts.clone(),
        text,
        blocks: blocks.unwrap_or_default(),
        bot_id: Some(BOT_ID.to_string()),
        user: None,
        thread_ts,
        edits: 0,
        post_args,
    };
    let api = msg.to_api();
    if let Some(c) = st.channels.get_mut(&channel) {
        c.messages.push(msg);
    }
    ok(json!({"channel": channel, "ts": ts, "message": api}), &args)
}

async fn update_message(State(state): State<Shared>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let args = match parse_args(&headers, &uri, &body) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let mut st = lock(&state);
    if let Err(r) =
        authorize(&st.tokens, &args, &["chat:write", "chat:write:bot"]).and_then(|_| check_known(&args, UPDATE_ARGS))
    {
        return r.into_response();
    }
    let Some(channel) = str_arg(&args, "channel").map(str::to_string) else {
        return api_error("channel_not_found").into_response();
    };
    let Some(ts) = str_arg(&args, "ts").map(str::to_string) else {
        return api_error("message_not_found").into_response();
    };
    let (text, blocks) = match content(&args) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let Some(ch) = st.channels.get_mut(&channel) else {
        return api_error("channel_not_found").into_response();
    };
    if ch.is_archived {
        return api_error("is_archived").into_response();
    }
    let Some(msg) = ch.messages.iter_mut().find(|m| m.ts == ts) else {
        return api_error("message_not_found").into_response();
    };
    if msg.bot_id.as_deref() != Some(BOT_ID) {
        return api_error("cant_update_message").into_response();
    }
    if let Some(t) = text {
        msg.text = Some(t);
    }
    if let Some(b) = blocks {
        msg.blocks = b;
    }
    msg.edits += 1;
    let api = msg.to_api();
    let text = msg.text.clone().unwrap_or_default();
    ok(json!({"channel": channel, "ts": ts, "text": text, "message": api}), &args)
}

fn ts_value(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

async fn history(State(state): State<Shared>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let args = match parse_args(&headers, &uri, &body) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let st = lock(&state);
    if let Err(r) = check_known(&args, HISTORY_ARGS) {
        return r.into_response();
    }
    let channel = str_arg(&args, "channel").unwrap_or("");
    let scope = if channel.starts_with('G') { "groups:history" } else { "channels:history" };
    if let Err(r) = authorize(&st.tokens, &args, &[scope]) {
        return r.into_response();
    }
    let Some(ch) = st.channels.get(channel) else {
        return api_error("channel_not_found").into_response();
    };
    if !ch.bot_member {
        return api_error("not_in_channel").into_response();
    }
    let limit = match str_arg(&args, "limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if n > 0 => n.min(999),
        Some(_) => return api_error("invalid_limit").into_response(),
    };
    let inclusive = matches!(str_arg(&args, "inclusive"), Some("true" | "1"));
    let oldest = match str_arg(&args, "oldest").map(ts_value) {
        None => None,
        Some(Some(v)) => Some(v),
        Some(None) => return api_error("invalid_ts_oldest").into_response(),
    };
    let latest = match str_arg(&args, "latest").map(ts_value) {
        None => None,
        Some(Some(v)) => Some(v),
        Some(None) => return api_error("invalid_ts_latest").into_response(),
    };
    // The cursor is the ts after which (going back in time) the next page starts.
    let before = match str_arg(&args, "cursor") {
        None => None,
        Some(c) => match c.strip_prefix("next_ts:").and_then(ts_value) {
            Some(v) => Some(v),
            None => return api_error("invalid_cursor").into_response(),
        },
    };
    let mut selected: Vec<&SimMessage> = ch
        .messages
        .iter()
        .filter(|m| m.thread_ts.is_none() || m.thread_ts.as_deref() == Some(m.ts.as_str()))
        .filter(|m| {
            let t = ts_value(&m.ts).unwrap_or(0.0);
            oldest.is_none_or(|o| if inclusive { t >= o } else { t > o })
                && latest.is_none_or(|l| if inclusive { t <= l } else { t < l })
                && before.is_none_or(|b| t < b)
        })
        .collect();
    selected.reverse();
    let has_more = selected.len() > limit;
    selected.truncate(limit);
    let mut body = json!({
        "messages": selected.iter().map(|m| m.to_api()).collect::<Vec<_>>(),
        "has_more": has_more,
        "pin_count": 0,
        "channel_actions_ts": null,
        "channel_actions_count": 0,
    });
    if has_more && let Some(last) = selected.last() {
        body["response_metadata"] = json!({"next_cursor": format!("next_ts:{}", last.ts)});
    }
    ok(body, &args)
}

async fn response_url(State(state): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            lock(&state).responses.push((id, v));
            (StatusCode::OK, "ok").into_response()
        }
        Err(_) => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
    }
}

async fn unknown_method(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        // Slack answers unknown methods with 404 and `unknown_method`.
        (StatusCode::NOT_FOUND, axum::Json(json!({"ok": false, "error": "unknown_method"}))).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
