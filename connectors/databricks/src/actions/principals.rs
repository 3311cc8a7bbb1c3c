//! `user.deactivate` (SCIM `active=false`, workspace or account; revertible) and `tokens.revoke`
//! (every personal access token of a user or service principal, via token management).
//!
//! User names come from alerts and so are untrusted: they only ever reach Databricks inside a
//! SCIM filter string literal, escaped as one (`userName eq "<escaped>"`), or as a URL-encoded
//! query value. floodgate refuses to revoke the tokens of the identity it authenticates as.

use super::common::{self, Level, load_ref, plan_of, q, save_ref, seg, target_from_state, target_state};
use crate::Databricks;
use crate::client::{Target, parse_json};
use floodgate_sdk::http::Request;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, Plan};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const NS_DEACTIVATE: &str = "databricks.user.deactivate";
const NS_REVOKE: &str = "databricks.tokens.revoke";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Input of `user.deactivate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateInput {
    /// The user's userName (usually the e-mail, e.g. `{{ alert.entities.user }}`) or SCIM id.
    pub user: String,
    /// `workspace` (default) or `account`.
    #[serde(default)]
    pub level: Level,
    #[serde(default)]
    pub workspace: Option<String>,
}

/// Input of `tokens.revoke`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeInput {
    /// A user's userName/e-mail, or a service principal's application id.
    pub principal: String,
    #[serde(default)]
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ScimResource {
    pub id: String,
    #[serde(default, rename = "userName")]
    pub user_name: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

#[derive(Deserialize)]
struct ScimList {
    #[serde(default, rename = "Resources")]
    resources: Vec<ScimResource>,
}

#[derive(Debug, Serialize, Deserialize)]
struct DeactivateRecord {
    user_id: String,
    user_name: String,
    was_active: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RevokeRecord {
    revoked: BTreeSet<String>,
}

#[derive(Debug, Deserialize)]
struct TokenInfo {
    token_id: String,
    #[serde(default)]
    created_by_username: Option<String>,
    #[serde(default)]
    created_by_id: Option<Value>,
    #[serde(default)]
    owner_id: Option<Value>,
}

#[derive(Deserialize)]
struct TokenList {
    #[serde(default)]
    token_infos: Vec<TokenInfo>,
}

fn scim_base(t: &Target) -> String {
    match t.account_id() {
        Some(a) => format!("/api/2.0/accounts/{a}/scim/v2"),
        None => "/api/2.0/preview/scim/v2".into(),
    }
}

/// A SCIM filter string literal: JSON string escaping (RFC 7644 §3.4.2.2 uses JSON strings).
fn scim_string(v: &str) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into())
}

fn check_principal(what: &str, v: &str) -> Result<String, ActionError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 256 || v.chars().any(char::is_control) {
        return Err(ActionError::invalid_input(format!("{what} {v:?} is empty, too long or has control characters")));
    }
    Ok(v.to_string())
}

fn looks_like_uuid(v: &str) -> bool {
    v.len() == 36 && v.chars().all(|c| c.is_ascii_hexdigit() || c == '-') && v.matches('-').count() == 4
}

fn user_lookup(t: &Target, user: &str) -> Request {
    if !user.is_empty() && user.chars().all(|c| c.is_ascii_digit()) {
        Request::get(t.url(&format!("{}/Users/{}", scim_base(t), seg(user))))
    } else {
        let filter = format!("userName eq {}", scim_string(user));
        Request::get(t.url(&format!("{}/Users?filter={}", scim_base(t), q(&filter))))
    }
}

fn sp_lookup(t: &Target, application_id: &str) -> Request {
    let filter = format!("applicationId eq {}", scim_string(application_id));
    Request::get(t.url(&format!("{}/ServicePrincipals?filter={}", scim_base(t), q(&filter))))
}

fn active_patch(t: &Target, user_id: &str, active: bool) -> Request {
    Request::patch(t.url(&format!("{}/Users/{}", scim_base(t), seg(user_id)))).json(json!({
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "active", "value": active}],
    }))
}

fn tokens_list(t: &Target) -> Request {
    Request::get(t.url("/api/2.0/token-management/tokens"))
}

fn token_delete(t: &Target, token_id: &str) -> Request {
    Request::delete(t.url(&format!("/api/2.0/token-management/tokens/{}", seg(token_id))))
}

/// Finds one SCIM resource; `Ok(None)` when there is none.
async fn find_one(t: &Target, req: &Request) -> Result<Option<ScimResource>, ActionError> {
    let resp = t.send(req).await?;
    if resp.status == 404 {
        return Ok(None);
    }
    if !resp.is_success() {
        return Err(crate::error::api_error(&t.what(req), &resp));
    }
    let v: Value = parse_json(&resp, &t.what(req))?;
    if v.get("Resources").is_some() || v.get("totalResults").is_some() {
        let list: ScimList = serde_json::from_value(v).map_err(|e| {
            ActionError::permanent("bad_response", format!("{}: unexpected SCIM list: {e}", t.what(req)))
        })?;
        if list.resources.len() > 1 {
            return Err(ActionError::permanent(
                "ambiguous_principal",
                format!("{} matched {} principals; name one by its id", t.what(req), list.resources.len()),
            ));
        }
        return Ok(list.resources.into_iter().next());
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| ActionError::permanent("bad_response", format!("{}: unexpected SCIM resource: {e}", t.what(req))))
}

pub fn plan_deactivate(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    let input: DeactivateInput = call.parse_input()?;
    let user = check_principal("user", &input.user)?;
    let t = common::target(db, call, input.level, input.workspace.as_deref())?;
    let lookup = user_lookup(t, &user);
    let patch = active_patch(t, "{user id}", false);
    Ok(plan_of(format!("deactivate user {user:?} in {} (SCIM active=false)", t.describe()), &[&lookup, &patch]))
}

pub async fn execute_deactivate(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    let input: DeactivateInput = call.parse_input()?;
    let user = check_principal("user", &input.user)?;
    let t = common::target(db, call, input.level, input.workspace.as_deref())?;
    let record = match load_ref::<DeactivateRecord>(call, NS_DEACTIVATE).await? {
        Some(r) => r,
        None => {
            let found = find_one(t, &user_lookup(t, &user)).await?.ok_or_else(|| {
                ActionError::permanent("user_not_found", format!("no user {user:?} in {}", t.describe()))
            })?;
            let r = DeactivateRecord {
                user_name: found.user_name.clone().unwrap_or_else(|| user.clone()),
                // SCIM omits `active` for active users in some responses.
                was_active: found.active.unwrap_or(true),
                user_id: found.id,
            };
            save_ref(call, NS_DEACTIVATE, &r).await?;
            r
        }
    };
    t.call(&active_patch(t, &record.user_id, false)).await?;
    let mut state = target_state(t);
    state["user_id"] = json!(record.user_id);
    state["user_name"] = json!(record.user_name);
    state["was_active"] = json!(record.was_active);
    let note = if record.was_active {
        format!("deactivated user {} in {}", record.user_name, t.describe())
    } else {
        format!("user {} was already inactive in {}", record.user_name, t.describe())
    };
    Ok(ActionOutput::new(json!({
        "target": target_state(t),
        "user_id": record.user_id,
        "user_name": record.user_name,
        "was_active": record.was_active,
        "active": false,
    }))
    .with_revert_state(state)
    .with_note(note))
}

fn revert_parts<'a>(db: &'a Databricks, state: &Value) -> Result<(&'a Target, String, String, bool), ActionError> {
    let t = target_from_state(db, state)?;
    let id = state.get("user_id").and_then(Value::as_str).ok_or_else(|| common::bad_state("user_id"))?;
    let name = state.get("user_name").and_then(Value::as_str).unwrap_or(id);
    let was_active = state.get("was_active").and_then(Value::as_bool).ok_or_else(|| common::bad_state("was_active"))?;
    Ok((t, id.to_string(), name.to_string(), was_active))
}

pub fn plan_revert_deactivate(db: &Databricks, state: &Value) -> Result<Plan, ActionError> {
    let (t, id, name, was_active) = revert_parts(db, state)?;
    if !was_active {
        return Ok(Plan::new(format!("nothing: user {name} was already inactive before the step")));
    }
    Ok(plan_of(format!("re-activate user {name} in {}", t.describe()), &[&active_patch(t, &id, true)]))
}

pub async fn revert_deactivate(db: &Databricks, state: &Value) -> Result<ActionOutput, ActionError> {
    let (t, id, name, was_active) = revert_parts(db, state)?;
    if !was_active {
        return Ok(ActionOutput::new(json!({"user_id": id, "active": false}))
            .with_note(format!("left user {name} inactive: it was inactive before floodgate acted")));
    }
    t.call(&active_patch(t, &id, true)).await?;
    Ok(ActionOutput::new(json!({"user_id": id, "active": true}))
        .with_note(format!("re-activated user {name} in {}", t.describe())))
}

fn principal_lookup(t: &Target, principal: &str) -> Request {
    if looks_like_uuid(principal) { sp_lookup(t, principal) } else { user_lookup(t, principal) }
}

fn same_id(v: &Option<Value>, id: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == id,
        Some(Value::Number(n)) => n.to_string() == id,
        _ => false,
    }
}

pub fn plan_revoke(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    let input: RevokeInput = call.parse_input()?;
    let principal = check_principal("principal", &input.principal)?;
    let t = db.select_workspace(input.workspace.as_deref(), call.ctx)?;
    let lookup = principal_lookup(t, &principal);
    let list = tokens_list(t);
    let delete = token_delete(t, "{token id}");
    Ok(plan_of(
        format!("revoke every personal access token of {principal:?} in {} (one DELETE per token)", t.describe()),
        &[&lookup, &list, &delete],
    ))
}

pub async fn execute_revoke(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    let input: RevokeInput = call.parse_input()?;
    let principal = check_principal("principal", &input.principal)?;
    let t = db.select_workspace(input.workspace.as_deref(), call.ctx)?;
    if t.oauth_client_id().is_some_and(|c| c.eq_ignore_ascii_case(&principal)) {
        return Err(ActionError::permanent(
            "refused_self",
            format!(
                "{principal} is the identity floodgate uses for {}; refusing to revoke its own tokens",
                t.describe()
            ),
        ));
    }
    let resolved = find_one(t, &principal_lookup(t, &principal)).await?;
    let principal_id = resolved.as_ref().map(|r| r.id.clone());
    let tokens: TokenList = t.call_json(&tokens_list(t)).await?;
    let mut record: RevokeRecord = load_ref(call, NS_REVOKE).await?.unwrap_or_default();
    let targets: Vec<String> = tokens
        .token_infos
        .iter()
        .filter(|tok| {
            tok.created_by_username.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(&principal))
                || principal_id
                    .as_deref()
                    .is_some_and(|id| same_id(&tok.owner_id, id) || same_id(&tok.created_by_id, id))
        })
        .map(|tok| tok.token_id.clone())
        .collect();
    record.revoked.extend(targets.iter().cloned());
    save_ref(call, NS_REVOKE, &record).await?;
    for id in &targets {
        let req = token_delete(t, id);
        let resp = t.send(&req).await?;
        // Already revoked (by an earlier attempt or someone else): that is the goal.
        if !resp.is_success() && resp.status != 404 {
            return Err(crate::error::api_error(&t.what(&req), &resp));
        }
    }
    let revoked: Vec<&String> = record.revoked.iter().collect();
    let mut out = ActionOutput::new(json!({
        "target": target_state(t),
        "principal": principal,
        "principal_id": principal_id,
        "revoked": revoked,
        "count": revoked.len(),
    }));
    out = out.with_note(if revoked.is_empty() {
        format!("{principal} has no personal access tokens in {}", t.describe())
    } else {
        format!("revoked {} token(s) of {principal} in {}", revoked.len(), t.describe())
    });
    Ok(out)
}
