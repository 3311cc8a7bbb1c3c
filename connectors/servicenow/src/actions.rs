//! The two ServiceNow actions: their inputs, plans, and how each takes effect once.
//!
//! - `incident.create`: one ServiceNow incident per floodgate incident. Its sys_id and number
//!   are kept in refs (`servicenow.incident` / incident id), and every record carries
//!   `correlation_id = <prefix><incident id>`; before creating, the connector asks the Table API
//!   for that correlation_id, so a create whose answer was lost is found instead of repeated.
//!   The query result is checked to really carry our correlation_id: ServiceNow silently drops
//!   an invalid query condition and would otherwise return unrelated incidents.
//! - `incident.update`: PATCH with a work note (journal append) and/or state/close fields. The
//!   outcome is kept in refs under the idempotency key; each work note ends with a short
//!   `[floodgate ref …]` marker derived from that key, so a retry after a lost answer reads the
//!   journal and does not append the note twice.
//!
//! Bodies are serde values with string values only (the Table API's own type); alert data is
//! never put into an encoded query.

use crate::ServiceNow;
use crate::client::{IncidentRecord, Many, One};
use crate::config::query_safe;
use crate::content;
use floodgate_sdk::http::Request;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, Plan, RiskClass, input_schema};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Refs namespace of the ServiceNow incident of a floodgate incident (key: incident id).
pub const NS_INCIDENT: &str = "servicenow.incident";
/// Refs namespace of applied updates (key: idempotency key).
pub const NS_UPDATE: &str = "servicenow.update";

/// Input of `servicenow.incident.create`. Every field is optional.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInput {
    /// One line, max 160 characters. Default: `[floodgate] <incident title>`.
    #[serde(default)]
    pub short_description: Option<String>,
    /// Plain text shown first in the description; the evidence and the link follow.
    #[serde(default)]
    pub description: Option<String>,
    /// Add the alert evidence and the alert's description. Default true.
    #[serde(default)]
    pub include_evidence: Option<bool>,
    /// `1` (high), `2` or `3` (low). Default from the incident's severity.
    #[serde(default)]
    pub urgency: Option<String>,
    /// `1` (high), `2` or `3` (low). Default from the incident's severity.
    #[serde(default)]
    pub impact: Option<String>,
    /// Category choice value. Default: the connector's `category`.
    #[serde(default)]
    pub category: Option<String>,
    /// Assignment group sys_id or name. Default: the connector's `assignment_group`.
    #[serde(default)]
    pub assignment_group: Option<String>,
    /// Caller sys_id or user_name. Default: the connector's `caller`.
    #[serde(default)]
    pub caller: Option<String>,
    /// Extra incident fields by column name, as strings (the Table API's type).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// Input of `servicenow.incident.update`. At least one change is required.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {
    /// Incident sys_id or number (`INC0010002`). Default: the incident `incident.create` opened
    /// for this floodgate incident.
    #[serde(default)]
    pub incident: Option<String>,
    /// A work note to append to the journal (plain text).
    #[serde(default)]
    pub work_note: Option<String>,
    /// New state: `new`, `in_progress`, `on_hold`, `resolved`, `closed`, `canceled`, or its number.
    #[serde(default)]
    pub state: Option<String>,
    /// Resolution code (required by the default data policy when resolving or closing).
    #[serde(default)]
    pub close_code: Option<String>,
    /// Resolution notes (required by the default data policy when resolving or closing).
    #[serde(default)]
    pub close_notes: Option<String>,
    /// Extra incident fields by column name, as strings.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

pub fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new(
            "incident.create",
            "Open the floodgate incident's ServiceNow incident (Table API); returns the existing one if already open",
            RiskClass::Ticket,
            input_schema::<CreateInput>(),
        )
        .idempotency("one record per floodgate incident: sys_id kept in refs (servicenow.incident/<incident id>); every record carries correlation_id <prefix><incident id>, queried before creating, so a create whose answer was lost is reconciled instead of repeated"),
        ActionSpec::new(
            "incident.update",
            "Append a work note to the ServiceNow incident and/or change its state",
            RiskClass::Ticket,
            input_schema::<UpdateInput>(),
        )
        .idempotency("outcome kept in refs under the idempotency key; each work note ends with a [floodgate ref …] marker derived from the key, looked for in the journal on retries"),
    ]
}

fn invalid(msg: impl Into<String>) -> ActionError {
    ActionError::invalid_input(msg)
}

/// A 32-character hexadecimal sys_id.
pub fn is_sys_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An incident number such as `INC0010002`.
fn is_number(s: &str) -> bool {
    let digits = s.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    digits.len() < s.len() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn level(name: &str, v: Option<&str>, default: &'static str) -> Result<String, ActionError> {
    match v.map(str::trim) {
        None => Ok(default.to_string()),
        Some(x @ ("1" | "2" | "3")) => Ok(x.to_string()),
        Some(x) => Err(invalid(format!("{name} {x:?} must be \"1\" (high), \"2\" (medium) or \"3\" (low)"))),
    }
}

/// The numeric value of an incident state given by name or number.
fn state_value(s: &str) -> Result<&'static str, ActionError> {
    Ok(match s.trim().to_ascii_lowercase().replace([' ', '-'], "_").as_str() {
        "1" | "new" => "1",
        "2" | "in_progress" => "2",
        "3" | "on_hold" => "3",
        "6" | "resolved" => "6",
        "7" | "closed" => "7",
        "8" | "canceled" | "cancelled" => "8",
        other => {
            return Err(invalid(format!(
                "state {other:?} is not an incident state; use new, in_progress, on_hold, resolved, closed or canceled"
            )));
        }
    })
}

/// The marker that ends floodgate's work notes, derived from the idempotency key.
pub fn marker(idempotency_key: &str) -> String {
    let digest = Sha256::digest(idempotency_key.as_bytes());
    format!("[floodgate ref {}]", &hex::encode(digest)[..16])
}

/// A reference field value: a sys_id now, or a name to look up at execute time.
struct Lookup {
    field: &'static str,
    table: &'static str,
    column: &'static str,
    name: String,
}

impl Lookup {
    fn placeholder(&self) -> String {
        format!("<sys_id of {} {}={}>", self.table, self.column, self.name)
    }
}

struct CreateDraft {
    correlation_id: String,
    find: Request,
    lookups: Vec<Lookup>,
    body: Map<String, Value>,
}

/// Columns the connector fills itself; `fields` may not override them.
const CREATE_RESERVED: [&str; 2] = ["correlation_id", "correlation_display"];

impl ServiceNow {
    fn incident_id<'a>(&self, call: &'a ActionCall<'_>) -> Result<&'a str, ActionError> {
        let id = call.ctx.incident_id.as_str();
        if id.is_empty() {
            return Err(invalid(format!(
                "servicenow.{} needs the incident of the call (the engine sets it); without it the record cannot be deduplicated",
                call.action
            )));
        }
        Ok(id)
    }

    fn draft_create(&self, call: &ActionCall<'_>) -> Result<CreateDraft, ActionError> {
        let input: CreateInput = call.parse_input()?;
        let incident = self.incident_id(call)?;
        let s = &self.client.settings;
        let cid = content::correlation_id(&s.correlation_prefix, incident);
        let severity = content::severity(call.ctx);
        let (u, i) = content::urgency_impact(severity.as_deref());
        let short = input
            .short_description
            .as_deref()
            .map(|t| content::one_line(t, content::SHORT_MAX))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| content::default_short_description(call.ctx));
        let mut body = Map::new();
        body.insert("short_description".into(), json!(short));
        body.insert(
            "description".into(),
            json!(content::description(call.ctx, input.description.as_deref(), input.include_evidence.unwrap_or(true))),
        );
        body.insert("urgency".into(), json!(level("urgency", input.urgency.as_deref(), u)?));
        body.insert("impact".into(), json!(level("impact", input.impact.as_deref(), i)?));
        if let Some(c) = input.category.as_ref().or(s.category.as_ref()) {
            body.insert("category".into(), json!(c));
        }
        body.insert("correlation_id".into(), json!(cid));
        body.insert("correlation_display".into(), json!(s.correlation_display));
        let mut lookups = Vec::new();
        let refs = [
            (
                "assignment_group",
                "sys_user_group",
                "name",
                input.assignment_group.as_ref().or(s.assignment_group.as_ref()),
            ),
            ("caller_id", "sys_user", "user_name", input.caller.as_ref().or(s.caller.as_ref())),
        ];
        for (field, table, column, value) in refs {
            let Some(v) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) else {
                continue;
            };
            if is_sys_id(v) {
                body.insert(field.into(), json!(v));
            } else if query_safe(v) {
                let l = Lookup { field, table, column, name: v.to_string() };
                body.insert(field.into(), json!(l.placeholder()));
                lookups.push(l);
            } else {
                return Err(invalid(format!("{field} {v:?} must be a sys_id or a name without '^'")));
            }
        }
        for (k, v) in &input.fields {
            if CREATE_RESERVED.contains(&k.as_str()) {
                return Err(invalid(format!("fields.{k} is set by the connector for deduplication")));
            }
            body.insert(k.clone(), json!(v));
        }
        Ok(CreateDraft { find: self.client.find_by_correlation(&cid), correlation_id: cid, lookups, body })
    }

    pub(crate) fn plan_create(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        let d = self.draft_create(call)?;
        let mut requests = vec![d.find.planned()];
        requests.extend(d.lookups.iter().map(|l| self.client.lookup(l.table, l.column, &l.name).planned()));
        requests.push(self.client.create(Value::Object(d.body.clone())).planned());
        Ok(Plan {
            summary: format!(
                "open a ServiceNow incident {:?} with correlation_id {} (or reuse the one already open)",
                d.body.get("short_description").and_then(Value::as_str).unwrap_or_default(),
                d.correlation_id
            ),
            requests,
        })
    }

    fn create_output(&self, r: &IncidentRecord, cid: &str, created: bool, found_by: Option<&str>) -> Value {
        json!({
            "sys_id": r.sys_id,
            "number": r.number,
            "url": self.client.record_url(&r.sys_id),
            "correlation_id": cid,
            "created": created,
            "found_by": found_by,
        })
    }

    async fn record_incident(
        &self,
        call: &ActionCall<'_>,
        incident: &str,
        r: &IncidentRecord,
        cid: &str,
    ) -> Result<(), ActionError> {
        call.refs
            .put(NS_INCIDENT, incident, &json!({"sys_id": r.sys_id, "number": r.number, "correlation_id": cid}))
            .await
    }

    /// Incidents whose correlation_id really is `cid`, oldest first.
    async fn find_by_correlation(&self, cid: &str) -> Result<Vec<IncidentRecord>, ActionError> {
        let found: Many<IncidentRecord> = self.client.send(&self.client.find_by_correlation(cid)).await?.json()?;
        Ok(found.result.into_iter().filter(|r| r.correlation_id.as_deref() == Some(cid)).collect())
    }

    pub(crate) async fn create(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        let mut d = self.draft_create(call)?;
        let incident = self.incident_id(call)?;
        let _guard = self.locks.lock(&format!("incident:{incident}")).await;
        if let Some(r) = call.refs.get(NS_INCIDENT, incident).await?
            && let Ok(rec) = serde_json::from_value::<IncidentRecord>(r)
        {
            return Ok(ActionOutput::new(self.create_output(&rec, &d.correlation_id, false, Some("refs"))).with_note(
                format!("incident already has ServiceNow incident {}", rec.number.as_deref().unwrap_or(&rec.sys_id)),
            ));
        }
        let found = self.find_by_correlation(&d.correlation_id).await?;
        if let Some(first) = found.first() {
            self.record_incident(call, incident, first, &d.correlation_id).await?;
            let mut out = ActionOutput::new(self.create_output(first, &d.correlation_id, false, Some("query")))
                .with_note(format!(
                    "found ServiceNow incident {} by correlation_id {}; not creating another",
                    first.number.as_deref().unwrap_or(&first.sys_id),
                    d.correlation_id
                ));
            if found.len() > 1 {
                out = out.with_note(format!(
                    "{} incidents carry correlation_id {}; using the oldest",
                    found.len(),
                    d.correlation_id
                ));
            }
            return Ok(out);
        }
        for l in &d.lookups {
            let sys_id = self.resolve_reference(l).await?;
            d.body.insert(l.field.into(), json!(sys_id));
        }
        let created: One<IncidentRecord> =
            self.client.send(&self.client.create(Value::Object(d.body))).await?.json()?;
        let rec = created.result;
        self.record_incident(call, incident, &rec, &d.correlation_id).await?;
        Ok(ActionOutput::new(self.create_output(&rec, &d.correlation_id, true, None))
            .with_note(format!("opened ServiceNow incident {}", rec.number.as_deref().unwrap_or(&rec.sys_id))))
    }

    async fn resolve_reference(&self, l: &Lookup) -> Result<String, ActionError> {
        let cache_key = format!("{}/{}", l.table, l.name);
        if let Some(hit) = self.lookup_cache.lock().unwrap_or_else(|p| p.into_inner()).get(&cache_key) {
            return Ok(hit.clone());
        }
        #[derive(Deserialize)]
        struct Row {
            sys_id: String,
        }
        let rows: Many<Row> = self.client.send(&self.client.lookup(l.table, l.column, &l.name)).await?.json()?;
        let Some(row) = rows.result.into_iter().next() else {
            return Err(ActionError::permanent(
                "reference_not_found",
                format!(
                    "no {} with {} {:?}: set {} to an existing name or a sys_id",
                    l.table, l.column, l.name, l.field
                ),
            ));
        };
        self.lookup_cache.lock().unwrap_or_else(|p| p.into_inner()).insert(cache_key, row.sys_id.clone());
        Ok(row.sys_id)
    }

    fn parse_update(call: &ActionCall<'_>) -> Result<(UpdateInput, Map<String, Value>), ActionError> {
        let input: UpdateInput = call.parse_input()?;
        let mut body = Map::new();
        if let Some(n) = input.work_note.as_deref().filter(|n| !n.trim().is_empty()) {
            let text = floodgate_sdk::text::truncate(&content::clean(n), content::TEXT_MAX - 40);
            body.insert("work_notes".into(), json!(format!("{text}\n\n{}", marker(call.idempotency_key))));
        }
        if let Some(s) = input.state.as_deref() {
            body.insert("state".into(), json!(state_value(s)?));
        }
        if let Some(c) = input.close_code.as_deref() {
            body.insert("close_code".into(), json!(c));
        }
        if let Some(c) = input.close_notes.as_deref() {
            body.insert("close_notes".into(), json!(content::clean(c)));
        }
        for (k, v) in &input.fields {
            if matches!(k.as_str(), "work_notes" | "state" | "close_code" | "close_notes" | "correlation_id") {
                return Err(invalid(format!("fields.{k}: use the {k} input (or leave correlation_id alone)")));
            }
            body.insert(k.clone(), json!(v));
        }
        if body.is_empty() {
            return Err(invalid("incident.update needs a work_note, a state, close fields or fields to change"));
        }
        if let Some(i) = input.incident.as_deref()
            && !is_sys_id(i)
            && !is_number(i)
        {
            return Err(invalid(format!(
                "incident {i:?} is neither a sys_id nor an incident number such as INC0010002"
            )));
        }
        Ok((input, body))
    }

    pub(crate) fn plan_update(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        let (input, body) = Self::parse_update(call)?;
        let mut requests = Vec::new();
        let target = match input.incident.as_deref() {
            Some(i) if is_sys_id(i) => i.to_string(),
            Some(n) => {
                requests.push(self.client.find_by_number(n).planned());
                format!("<sys_id of {n}>")
            }
            None => format!("<sys_id of the ServiceNow incident of {}>", call.ctx.incident_id),
        };
        let journal = body.contains_key("work_notes");
        requests.push(self.client.update(&target, Value::Object(body), journal).planned());
        Ok(Plan {
            summary: format!("update ServiceNow incident {}", input.incident.as_deref().unwrap_or(&target)),
            requests,
        })
    }

    /// The sys_id an update targets.
    async fn target(&self, call: &ActionCall<'_>, incident: Option<&str>) -> Result<String, ActionError> {
        match incident {
            Some(i) if is_sys_id(i) => return Ok(i.to_string()),
            Some(n) => {
                let found: Many<IncidentRecord> = self.client.send(&self.client.find_by_number(n)).await?.json()?;
                return found.result.into_iter().next().map(|r| r.sys_id).ok_or_else(|| {
                    ActionError::permanent(
                        "no_incident",
                        format!("ServiceNow has no incident {n} (or an ACL hides it)"),
                    )
                });
            }
            None => {}
        }
        let fg = self.incident_id(call)?;
        if let Some(r) = call.refs.get(NS_INCIDENT, fg).await?
            && let Some(s) = r.get("sys_id").and_then(Value::as_str)
        {
            return Ok(s.to_string());
        }
        let cid = content::correlation_id(&self.client.settings.correlation_prefix, fg);
        if let Some(first) = self.find_by_correlation(&cid).await?.into_iter().next() {
            self.record_incident(call, fg, &first, &cid).await?;
            return Ok(first.sys_id);
        }
        Err(ActionError::permanent(
            "no_incident",
            format!(
                "incident {fg} has no ServiceNow incident yet (none recorded, none with correlation_id {cid}): run servicenow.incident.create first, or pass `incident`"
            ),
        ))
    }

    pub(crate) async fn update(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        let (input, body) = Self::parse_update(call)?;
        let sys_id = self.target(call, input.incident.as_deref()).await?;
        let _guard = self.locks.lock(&format!("record:{sys_id}")).await;
        if let Some(done) = call.refs.get(NS_UPDATE, call.idempotency_key).await? {
            return Ok(ActionOutput::new(done));
        }
        let journal = body.contains_key("work_notes");
        let mark = marker(call.idempotency_key);
        // Attempt 1 cannot have appended before; later attempts may have, with the answer lost.
        if journal && call.ctx.attempt != 1 {
            let rec: One<IncidentRecord> = self.client.send(&self.client.work_notes(&sys_id)).await?.json()?;
            if rec.result.work_notes.as_deref().is_some_and(|w| w.contains(&mark)) {
                // One PATCH carries the note and any state change, so finding the note means all of it applied.
                let out = json!({"sys_id": sys_id, "work_note_added": true, "updated": true, "url": self.client.record_url(&sys_id)});
                call.refs.put(NS_UPDATE, call.idempotency_key, &out).await?;
                return Ok(ActionOutput::new(out).with_note("the work note was already appended by an earlier attempt"));
            }
        }
        let resp = self.client.send(&self.client.update(&sys_id, Value::Object(body), journal)).await?;
        let rec: One<IncidentRecord> = resp.json()?;
        let out = json!({
            "sys_id": rec.result.sys_id,
            "number": rec.result.number,
            "state": rec.result.state.as_ref().map(|s| s.value().to_string()),
            "work_note_added": journal,
            "updated": true,
            "url": self.client.record_url(&rec.result.sys_id),
        });
        call.refs.put(NS_UPDATE, call.idempotency_key, &out).await?;
        Ok(ActionOutput::new(out)
            .with_note(format!("updated ServiceNow incident {}", rec.result.number.as_deref().unwrap_or(&sys_id))))
    }
}
