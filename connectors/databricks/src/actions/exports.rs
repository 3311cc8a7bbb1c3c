//! `exports.disable`: the export/download kill-switches of a workspace.
//!
//! Sets the workspace-conf keys `enableExportNotebook`, `enableResultsDownloading`,
//! `enableNotebookTableClipboard` and `enableDbfsFileBrowser` to `"false"`, and the typed
//! setting `sql_results_download` (settings v2) to false where the workspace has it (a 404 means
//! it does not). The values found before the first attempt are committed to refs before any
//! write, so a retry never mistakes its own "false" for the value to restore; `revert` restores
//! them. A key that was never set reads as null and is restored to its documented default
//! (export, results download and clipboard on; DBFS browser off), which behaves the same.

use super::common::{self, load_ref, plan_of, save_ref, target_from_state, target_state};
use crate::Databricks;
use crate::client::{Target, parse_json};
use floodgate_sdk::http::Request;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, Plan};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

const NS: &str = "databricks.exports.disable";
const SETTING_PATH: &str = "/api/2.0/settings/types/sql_results_download/names/default";

/// The workspace-conf keys and what each is when never set.
const KEYS: [(&str, &str); 4] = [
    ("enableExportNotebook", "true"),
    ("enableResultsDownloading", "true"),
    ("enableNotebookTableClipboard", "true"),
    ("enableDbfsFileBrowser", "false"),
];

/// Input of `exports.disable`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportsInput {
    /// Workspace name or id; default: the alert's workspace, else the default workspace.
    #[serde(default)]
    pub workspace: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Previous {
    /// Key → value before the change (`None`: never set).
    conf: BTreeMap<String, Option<String>>,
    /// `None` when the workspace has no `sql_results_download` setting.
    sql_results_download: Option<bool>,
}

#[derive(Deserialize)]
struct BooleanSetting {
    #[serde(default)]
    boolean_val: Option<BoolVal>,
    #[serde(default)]
    etag: Option<String>,
}

#[derive(Deserialize)]
struct BoolVal {
    #[serde(default)]
    value: Option<bool>,
}

fn conf_get(t: &Target) -> Request {
    let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    Request::get(t.url(&format!("/api/2.0/workspace-conf?keys={}", keys.join(","))))
}

fn conf_patch(t: &Target, values: &BTreeMap<String, String>) -> Request {
    Request::patch(t.url("/api/2.0/workspace-conf")).json(json!(values))
}

fn setting_get(t: &Target) -> Request {
    Request::get(t.url(SETTING_PATH))
}

fn setting_patch(t: &Target, value: bool, etag: &str) -> Request {
    Request::patch(t.url(SETTING_PATH)).json(json!({
        "allow_missing": true,
        "field_mask": "boolean_val.value",
        "setting": {"boolean_val": {"value": value}, "setting_name": "default", "etag": etag},
    }))
}

fn all_false() -> BTreeMap<String, String> {
    KEYS.iter().map(|(k, _)| (k.to_string(), "false".to_string())).collect()
}

pub fn plan(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    let input: ExportsInput = call.parse_input()?;
    let t = db.select_workspace(input.workspace.as_deref(), call.ctx)?;
    let reqs = [conf_get(t), setting_get(t), conf_patch(t, &all_false()), setting_patch(t, false, "{etag}")];
    Ok(plan_of(
        format!(
            "turn off notebook export, results download, table clipboard, DBFS file browser and SQL results download in {} (previous values kept for revert)",
            t.describe()
        ),
        &reqs.iter().collect::<Vec<_>>(),
    ))
}

/// The typed setting, or `None` when this workspace does not have it.
async fn read_setting(t: &Target) -> Result<Option<(bool, String)>, ActionError> {
    let req = setting_get(t);
    let resp = t.send(&req).await?;
    if resp.status == 404 {
        return Ok(None);
    }
    if !resp.is_success() {
        return Err(crate::error::api_error(&t.what(&req), &resp));
    }
    let s: BooleanSetting = parse_json(&resp, &t.what(&req))?;
    // An unset boolean setting reads as its default, which for downloads is "allowed".
    let value = s.boolean_val.and_then(|b| b.value).unwrap_or(true);
    Ok(Some((value, s.etag.unwrap_or_default())))
}

/// PATCHes the typed setting; on an etag conflict (409) reads again and retries once.
async fn write_setting(t: &Target, value: bool, etag: String) -> Result<(), ActionError> {
    let req = setting_patch(t, value, &etag);
    let resp = t.send(&req).await?;
    if resp.is_success() {
        return Ok(());
    }
    if resp.status == 409
        && let Some((_, fresh)) = read_setting(t).await?
    {
        t.call(&setting_patch(t, value, &fresh)).await?;
        return Ok(());
    }
    Err(crate::error::api_error(&t.what(&req), &resp))
}

pub async fn execute(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    let input: ExportsInput = call.parse_input()?;
    let t = db.select_workspace(input.workspace.as_deref(), call.ctx)?;
    let prior: Option<Previous> = load_ref(call, NS).await?;
    let setting = read_setting(t).await?;
    let previous = match prior {
        Some(p) => p,
        None => {
            let conf: Map<String, Value> = t.call_json(&conf_get(t)).await?;
            let p = Previous {
                conf: KEYS
                    .iter()
                    .map(|(k, _)| (k.to_string(), conf.get(*k).and_then(Value::as_str).map(str::to_string)))
                    .collect(),
                sql_results_download: setting.as_ref().map(|(v, _)| *v),
            };
            save_ref(call, NS, &p).await?;
            p
        }
    };
    t.call(&conf_patch(t, &all_false())).await?;
    let mut changed: Vec<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
    if let Some((_, etag)) = setting {
        write_setting(t, false, etag).await?;
        changed.push("sql_results_download".into());
    }
    let mut state = target_state(t);
    state["conf"] = json!(previous.conf);
    state["sql_results_download"] = json!(previous.sql_results_download);
    Ok(ActionOutput::new(json!({
        "target": target_state(t),
        "disabled": changed,
        "previous": {"conf": previous.conf, "sql_results_download": previous.sql_results_download},
    }))
    .with_revert_state(state)
    .with_note(format!("turned off exports and downloads in {} ({})", t.describe(), changed.join(", "))))
}

fn restore_values(state: &Value) -> Result<(BTreeMap<String, String>, Option<bool>), ActionError> {
    let conf = state.get("conf").and_then(Value::as_object).ok_or_else(|| common::bad_state("conf"))?;
    let mut values = BTreeMap::new();
    for (k, default) in KEYS {
        let v = match conf.get(k) {
            Some(Value::String(s)) => s.clone(),
            _ => default.to_string(),
        };
        values.insert(k.to_string(), v);
    }
    let typed = state.get("sql_results_download").and_then(Value::as_bool);
    Ok((values, typed))
}

pub fn plan_revert(db: &Databricks, state: &Value) -> Result<Plan, ActionError> {
    let t = target_from_state(db, state)?;
    let (values, typed) = restore_values(state)?;
    let patch = conf_patch(t, &values);
    let get = setting_get(t);
    let mut reqs = vec![&patch];
    let typed_patch = typed.map(|v| setting_patch(t, v, "{etag}"));
    if let Some(p) = &typed_patch {
        reqs.push(&get);
        reqs.push(p);
    }
    Ok(plan_of(format!("restore the export/download settings of {}", t.describe()), &reqs))
}

pub async fn revert(db: &Databricks, state: &Value) -> Result<ActionOutput, ActionError> {
    let t = target_from_state(db, state)?;
    let (values, typed) = restore_values(state)?;
    t.call(&conf_patch(t, &values)).await?;
    if let Some(v) = typed
        && let Some((_, etag)) = read_setting(t).await?
    {
        write_setting(t, v, etag).await?;
    }
    Ok(ActionOutput::new(json!({"restored": {"conf": values, "sql_results_download": typed}}))
        .with_note(format!("restored the export/download settings of {}", t.describe())))
}
