//! `ip_access_list.block` / `ip_access_list.unblock`: floodgate's own BLOCK list, workspace or
//! account level.
//!
//! floodgate owns exactly one BLOCK list per workspace/account, found by its label
//! (`block_list_label`). It is always looked up before it is created, so a crash after the
//! create cannot produce a second list; within one process a lock per list serialises steps.
//! floodgate never edits lists it does not own, and never replaces ALLOW lists (that is how
//! operators lock themselves out).
//!
//! Refusals happen before any request: values that are not IPv4 addresses/ranges, ranges
//! broader than /16, values covering floodgate's own `egress_ips` (`INVALID_STATE`, as
//! Databricks itself answers when a change would block the caller), and additions that would
//! pass the 1000-value quota across all lists (`QUOTA_EXCEEDED`).
//!
//! Exactly-once: the values a step adds are written to refs *before* the write, merged with
//! what an earlier attempt recorded, so a retry after a crash reports (and revert removes) the
//! values this step added even when they are already on the list — and never a value another
//! step or person put there.

use super::common::{self, Level, OneOrMany, load_ref, plan_of, save_ref, target_from_state, target_state};
use crate::Databricks;
use crate::client::Target;
use crate::net::{Ipv4Net, MIN_BLOCK_PREFIX};
use floodgate_sdk::http::Request;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, Plan};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Databricks' limit on values across all IP access lists of a workspace or account.
pub const QUOTA: usize = 1000;
const NS_BLOCK: &str = "databricks.ip_access_list.block";

/// Input of `ip_access_list.block`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockInput {
    /// IPv4 addresses or CIDR ranges (at most /16 wide), one or a list, e.g.
    /// `{{ alert.entities.source_ip }}`. A `:port` suffix is dropped.
    pub ips: OneOrMany,
    /// `workspace` (default) or `account`.
    #[serde(default)]
    pub level: Level,
    /// Workspace name or id (workspace level only); default: the alert's workspace.
    #[serde(default)]
    pub workspace: Option<String>,
}

/// Input of `ip_access_list.unblock`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnblockInput {
    /// IPv4 addresses or CIDR ranges to take off floodgate's block list.
    pub ips: OneOrMany,
    #[serde(default)]
    pub level: Level,
    #[serde(default)]
    pub workspace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct IpAccessList {
    pub list_id: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub list_type: String,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    #[serde(default)]
    pub address_count: Option<usize>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub created_at: Option<i64>,
}

impl IpAccessList {
    fn count(&self) -> usize {
        self.address_count.unwrap_or(self.ip_addresses.len()).max(self.ip_addresses.len())
    }
}

#[derive(Deserialize)]
struct Lists {
    #[serde(default)]
    ip_access_lists: Vec<IpAccessList>,
}

#[derive(Deserialize)]
struct OneList {
    ip_access_list: IpAccessList,
}

/// What this step has added, committed before each write.
#[derive(Debug, Default, Serialize, Deserialize)]
struct BlockRecord {
    list_id: Option<String>,
    added: Vec<String>,
}

fn base_path(t: &Target) -> String {
    match t.account_id() {
        Some(a) => format!("/api/2.0/accounts/{a}/ip-access-lists"),
        None => "/api/2.0/ip-access-lists".into(),
    }
}

fn list_request(t: &Target) -> Request {
    Request::get(t.url(&base_path(t)))
}

/// Creating a list is not idempotent: the HTTP layer replays this POST only when Databricks
/// certainly did not process it (429, connection refused); the label lookup covers the rest.
fn create_request(t: &Target, label: &str, values: &[String]) -> Request {
    Request::post(t.url(&base_path(t))).json(json!({
        "label": label,
        "list_type": "BLOCK",
        "ip_addresses": values,
    }))
}

fn patch_request(t: &Target, list_id: &str, values: &[String], enable: bool) -> Request {
    let mut body = json!({"ip_addresses": values});
    if enable {
        body["enabled"] = json!(true);
    }
    Request::patch(t.url(&format!("{}/{}", base_path(t), common::seg(list_id)))).json(body)
}

fn get_one_request(t: &Target, list_id: &str) -> Request {
    Request::get(t.url(&format!("{}/{}", base_path(t), common::seg(list_id))))
}

/// Whether lists are enforced: workspace-conf `enableIpAccessLists`, or the account setting
/// `acct_ip_acl_enable`.
fn enforcement_request(t: &Target) -> Request {
    match t.account_id() {
        Some(a) => {
            Request::get(t.url(&format!("/api/2.0/accounts/{a}/settings/types/acct_ip_acl_enable/names/default")))
        }
        None => Request::get(t.url("/api/2.0/workspace-conf?keys=enableIpAccessLists")),
    }
}

/// Reads whether lists are enforced; `None` when Databricks does not say (no such setting).
async fn enforced(t: &Target) -> Result<Option<bool>, ActionError> {
    let req = enforcement_request(t);
    let resp = t.send(&req).await?;
    if resp.status == 404 {
        return Ok(None);
    }
    if !resp.is_success() {
        return Err(crate::error::api_error(&t.what(&req), &resp));
    }
    let v: Value = crate::client::parse_json(&resp, &t.what(&req))?;
    Ok(Some(match t.account_id() {
        Some(_) => v.pointer("/acct_ip_acl_enable/value").and_then(Value::as_bool) == Some(true),
        None => v.get("enableIpAccessLists").and_then(Value::as_str) == Some("true"),
    }))
}

/// Parses, normalises and checks the requested values.
fn parse_ips(values: OneOrMany, db: &Databricks, for_block: bool) -> Result<Vec<Ipv4Net>, ActionError> {
    let mut out = BTreeSet::new();
    let mut problems = Vec::new();
    for raw in values.into_vec() {
        let v = raw.trim();
        if v.is_empty() {
            continue;
        }
        // Audit rows carry "ip:port" sometimes; the port is not part of an access list value.
        let v = match v.rsplit_once(':') {
            Some((ip, port)) if !ip.contains(':') && port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => ip,
            _ => v,
        };
        match v.parse::<Ipv4Net>() {
            Ok(n) if for_block && n.prefix() < MIN_BLOCK_PREFIX => problems
                .push(format!("{n} is broader than /{MIN_BLOCK_PREFIX}; floodgate refuses to block ranges that wide")),
            Ok(n) => {
                out.insert(n);
            }
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(ActionError::invalid_input(problems.join("; ")));
    }
    if out.is_empty() {
        return Err(ActionError::invalid_input("no IP address or range was given"));
    }
    if for_block {
        let mine: Vec<String> =
            out.iter().filter(|n| db.config.egress.iter().any(|e| e.overlaps(n))).map(ToString::to_string).collect();
        if !mine.is_empty() {
            return Err(ActionError::permanent(
                "INVALID_STATE",
                format!(
                    "refusing to block {}: it covers floodgate's own egress address (egress_ips in [connectors.databricks]); blocking it would lock floodgate out",
                    mine.join(", ")
                ),
            ));
        }
    }
    Ok(out.into_iter().collect())
}

fn normalise(values: &[String]) -> BTreeSet<String> {
    values
        .iter()
        .map(|v| v.parse::<Ipv4Net>().map(|n| n.to_string()).unwrap_or_else(|_| v.trim().to_string()))
        .collect()
}

/// floodgate's list: BLOCK, our label; the oldest if somebody made two.
fn find_ours<'a>(lists: &'a [IpAccessList], label: &str) -> Option<&'a IpAccessList> {
    lists
        .iter()
        .filter(|l| l.list_type == "BLOCK" && l.label == label)
        .min_by(|a, b| (a.created_at, &a.list_id).cmp(&(b.created_at, &b.list_id)))
}

fn where_(t: &Target) -> String {
    t.describe()
}

pub fn plan_block(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    let input: BlockInput = call.parse_input()?;
    let nets = parse_ips(input.ips, db, true)?;
    let t = common::target(db, call, input.level, input.workspace.as_deref())?;
    let values: Vec<String> = nets.iter().map(ToString::to_string).collect();
    let label = &db.config.block_list_label;
    let list = list_request(t);
    let create = create_request(t, label, &values);
    let patch = patch_request(t, "{floodgate list id}", &values, true);
    let enforce = enforcement_request(t);
    let reqs = vec![&list, &enforce, &create, &patch];
    Ok(plan_of(
        format!(
            "add {} to BLOCK list {label:?} in {} (the list is created if absent; existing values are kept)",
            values.join(", "),
            where_(t)
        ),
        &reqs,
    ))
}

pub fn plan_unblock(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    let input: UnblockInput = call.parse_input()?;
    let nets = parse_ips(input.ips, db, false)?;
    let t = common::target(db, call, input.level, input.workspace.as_deref())?;
    let values: Vec<String> = nets.iter().map(ToString::to_string).collect();
    let label = &db.config.block_list_label;
    let list = list_request(t);
    let patch = patch_request(t, "{floodgate list id}", &["{remaining values}".to_string()], false);
    Ok(plan_of(format!("remove {} from BLOCK list {label:?} in {}", values.join(", "), where_(t)), &[&list, &patch]))
}

pub async fn execute_block(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    let input: BlockInput = call.parse_input()?;
    let nets = parse_ips(input.ips, db, true)?;
    let t = common::target(db, call, input.level, input.workspace.as_deref())?;
    let label = db.config.block_list_label.clone();
    let lock = db.list_lock(&format!("{}|{label}", t.host));
    let _guard = lock.lock().await;

    let prior: BlockRecord = load_ref(call, NS_BLOCK).await?.unwrap_or_default();
    let lists: Lists = t.call_json(&list_request(t)).await?;
    let ours = find_ours(&lists.ip_access_lists, &label).cloned();
    let existing_raw: Vec<String> = ours.as_ref().map(|l| l.ip_addresses.clone()).unwrap_or_default();
    let existing = normalise(&existing_raw);
    let requested: Vec<String> = nets.iter().map(ToString::to_string).collect();
    let to_add: Vec<String> = requested.iter().filter(|v| !existing.contains(*v)).cloned().collect();
    let added: Vec<String> =
        prior.added.iter().cloned().chain(to_add.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect();

    let mut list_id = ours.as_ref().map(|l| l.list_id.clone());
    let mut notes = Vec::new();
    if !to_add.is_empty() {
        let total: usize = lists.ip_access_lists.iter().map(IpAccessList::count).sum();
        if total + to_add.len() > QUOTA {
            return Err(ActionError::permanent(
                "QUOTA_EXCEEDED",
                format!(
                    "blocking {} would put {} values on the IP access lists of {}, above the Databricks limit of {QUOTA}; remove stale entries (ip_access_list.unblock) or block a range instead",
                    to_add.join(", "),
                    total + to_add.len(),
                    where_(t)
                ),
            ));
        }
        save_ref(call, NS_BLOCK, &BlockRecord { list_id: list_id.clone(), added: added.clone() }).await?;
        match &ours {
            None => {
                let created: OneList = t.call_json(&create_request(t, &label, &to_add)).await?;
                list_id = Some(created.ip_access_list.list_id.clone());
                save_ref(call, NS_BLOCK, &BlockRecord { list_id: list_id.clone(), added: added.clone() }).await?;
                notes.push(format!("created BLOCK list {label:?} in {}", where_(t)));
            }
            Some(l) => {
                let mut values = existing_raw.clone();
                values.extend(to_add.iter().cloned());
                let enable = l.enabled == Some(false);
                t.call(&patch_request(t, &l.list_id, &values, enable)).await?;
                if enable {
                    notes.push(format!("re-enabled BLOCK list {label:?}, which was disabled"));
                }
            }
        }
        notes.push(format!("blocked {} in {}", to_add.join(", "), where_(t)));
    } else if ours.as_ref().is_some_and(|l| l.enabled == Some(false)) {
        let l = ours.as_ref().map(|l| l.list_id.clone()).unwrap_or_default();
        t.call(&patch_request(t, &l, &existing_raw, true)).await?;
        notes.push(format!("re-enabled BLOCK list {label:?}, which was disabled"));
    }

    // A block list does nothing until IP access lists are enforced: say so.
    let enforced = enforced(t).await?;
    if enforced == Some(false) {
        let switch = if t.account_id().is_some() {
            "the account setting acct_ip_acl_enable is off"
        } else {
            "workspace-conf enableIpAccessLists is not \"true\""
        };
        notes.push(format!(
            "IP access lists are not enforced in {} ({switch}): the block has no effect until an admin enables them",
            where_(t)
        ));
    }

    let list_id = list_id.unwrap_or_default();
    let already: Vec<&String> = requested.iter().filter(|v| !added.contains(*v)).collect();
    let mut out = ActionOutput::new(json!({
        "list_id": list_id,
        "label": label,
        "target": target_state(t),
        "added": added,
        "already_blocked": already,
        "enforced": enforced,
    }));
    let mut state = target_state(t);
    state["list_id"] = json!(list_id);
    state["label"] = json!(label);
    state["added"] = json!(added);
    out = out.with_revert_state(state);
    out.notes = notes;
    Ok(out)
}

pub async fn execute_unblock(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    let input: UnblockInput = call.parse_input()?;
    let nets = parse_ips(input.ips, db, false)?;
    let t = common::target(db, call, input.level, input.workspace.as_deref())?;
    let label = db.config.block_list_label.clone();
    let lock = db.list_lock(&format!("{}|{label}", t.host));
    let _guard = lock.lock().await;
    let wanted: BTreeSet<String> = nets.iter().map(ToString::to_string).collect();
    let lists: Lists = t.call_json(&list_request(t)).await?;
    let mut removed = BTreeSet::new();
    for l in lists.ip_access_lists.iter().filter(|l| l.list_type == "BLOCK" && l.label == label) {
        let (gone, kept) = split_values(&l.ip_addresses, &wanted);
        if !gone.is_empty() {
            t.call(&patch_request(t, &l.list_id, &kept, false)).await?;
            removed.extend(gone);
        }
    }
    let not_found: Vec<&String> = wanted.iter().filter(|v| !removed.contains(*v)).collect();
    let mut out = ActionOutput::new(json!({
        "label": label,
        "target": target_state(t),
        "removed": removed,
        "not_found": not_found,
    }));
    if !removed.is_empty() {
        out = out.with_note(format!(
            "unblocked {} in {}",
            removed.iter().cloned().collect::<Vec<_>>().join(", "),
            where_(t)
        ));
    }
    Ok(out)
}

/// Splits a list's values into (removed, kept) against normalised `wanted` values.
fn split_values(values: &[String], wanted: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
    let mut gone = Vec::new();
    let mut kept = Vec::new();
    for v in values {
        let n = v.parse::<Ipv4Net>().map(|n| n.to_string()).unwrap_or_else(|_| v.trim().to_string());
        if wanted.contains(&n) {
            gone.push(n);
        } else {
            kept.push(v.clone());
        }
    }
    (gone, kept)
}

fn revert_parts<'a>(db: &'a Databricks, state: &Value) -> Result<(&'a Target, String, BTreeSet<String>), ActionError> {
    let t = target_from_state(db, state)?;
    let list_id = state.get("list_id").and_then(Value::as_str).ok_or_else(|| common::bad_state("list_id"))?.to_string();
    let added = state
        .get("added")
        .and_then(Value::as_array)
        .ok_or_else(|| common::bad_state("added"))?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    Ok((t, list_id, added))
}

pub fn plan_revert_block(db: &Databricks, state: &Value) -> Result<Plan, ActionError> {
    let (t, list_id, added) = revert_parts(db, state)?;
    let get = get_one_request(t, &list_id);
    let patch = patch_request(t, &list_id, &["{remaining values}".to_string()], false);
    let values: Vec<String> = added.into_iter().collect();
    Ok(plan_of(
        format!("remove {} (added by this step) from BLOCK list {list_id} in {}", values.join(", "), t.describe()),
        &[&get, &patch],
    ))
}

pub async fn revert_block(db: &Databricks, _call: &ActionCall<'_>, state: &Value) -> Result<ActionOutput, ActionError> {
    let (t, list_id, added) = revert_parts(db, state)?;
    if list_id.is_empty() || added.is_empty() {
        return Ok(ActionOutput::new(json!({"removed": [], "list_id": list_id}))
            .with_note("nothing to revert: the step added no values"));
    }
    let lock = db.list_lock(&format!("{}|{}", t.host, db.config.block_list_label));
    let _guard = lock.lock().await;
    let get = get_one_request(t, &list_id);
    let resp = t.send(&get).await?;
    if resp.status == 404 {
        return Ok(ActionOutput::new(json!({"removed": [], "list_id": list_id}))
            .with_note(format!("BLOCK list {list_id} no longer exists in {}; nothing to revert", t.describe())));
    }
    if !resp.is_success() {
        return Err(crate::error::api_error(&t.what(&get), &resp));
    }
    let one: OneList = crate::client::parse_json(&resp, &t.what(&get))?;
    let (gone, kept) = split_values(&one.ip_access_list.ip_addresses, &added);
    if !gone.is_empty() {
        t.call(&patch_request(t, &list_id, &kept, false)).await?;
    }
    let mut out = ActionOutput::new(json!({"removed": gone, "list_id": list_id}));
    if !gone.is_empty() {
        out = out.with_note(format!("removed {} from the block list in {}", gone.join(", "), t.describe()));
    }
    Ok(out)
}
