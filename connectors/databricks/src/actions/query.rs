//! `sql.query` and the `investigate.*` helpers: read-only SQL through the Statement Execution
//! API (`crate::sql`).
//!
//! `sql.query` runs the playbook author's statement with named parameters. The helpers run fixed
//! statements written here, over system tables, with every alert value passed as a parameter:
//! the SQL text of a helper never changes with its input. Their SQL sticks to the subset the
//! simulator understands (see `sim` module docs) so tests run the exact text Databricks gets.

use super::common::plan_of;
use crate::Databricks;
use crate::sql::{self, SqlParam, SqlType, StatementOptions, execute_request};
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, Plan};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

const DEFAULT_ROW_LIMIT: u64 = 1000;
const MAX_ROW_LIMIT: u64 = 100_000;

/// A parameter value: a plain JSON value (string → STRING, integer → BIGINT, number → DOUBLE,
/// boolean → BOOLEAN, null → NULL), or `{value, type}` with an explicit Databricks type
/// (STRING, INT, BIGINT, DOUBLE, DECIMAL, BOOLEAN, DATE, TIMESTAMP, ...).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ParamInput {
    Typed {
        value: Option<Value>,
        #[serde(rename = "type")]
        type_name: String,
    },
    Plain(Value),
}

/// Input of `sql.query`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlQueryInput {
    /// The SQL, with `:name` markers for values. Never template alert values into it: pass them
    /// in `parameters`.
    pub statement: String,
    /// Named parameters, e.g. `{user: "{{ alert.entities.user }}", since: {value: "...", type: TIMESTAMP}}`.
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamInput>,
    #[serde(default)]
    pub workspace: Option<String>,
    /// Overrides the workspace's configured warehouse.
    #[serde(default)]
    pub warehouse_id: Option<String>,
    /// Most rows returned (default 1000, at most 100000); `truncated` says when it cut.
    #[serde(default)]
    pub row_limit: Option<u64>,
    /// Seconds to wait for the statement (default: [connectors.databricks.sql] timeout_seconds).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// Input of `investigate.user_activity`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserActivityInput {
    /// The user's e-mail / userName (matched case-insensitively, also against failed logins).
    pub user: String,
    /// Window start (RFC 3339); default `until` minus `hours`.
    #[serde(default)]
    pub since: Option<String>,
    /// Window end (RFC 3339); default now.
    #[serde(default)]
    pub until: Option<String>,
    /// Window length when `since` is absent (default 24).
    #[serde(default)]
    pub hours: Option<u32>,
    /// Most events returned, newest first (default 200).
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub workspace: Option<String>,
}

/// Input of `investigate.ip_activity`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IpActivityInput {
    /// The source IP address (events logged as `ip:port` match too).
    pub ip: String,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub hours: Option<u32>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub workspace: Option<String>,
}

/// Input of `investigate.sensitive_tables`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SensitiveTablesInput {
    /// The user whose Unity Catalog table access is checked.
    pub user: String,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    /// Default 24.
    #[serde(default)]
    pub hours: Option<u32>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub workspace: Option<String>,
}

/// Input of `investigate.table_lineage`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableLineageInput {
    /// `catalog.schema.table`.
    pub table: String,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    /// Default 720 (30 days).
    #[serde(default)]
    pub hours: Option<u32>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub workspace: Option<String>,
}

/// Input of `investigate.privileges`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivilegesInput {
    /// `catalog`, `catalog.schema` or `catalog.schema.table`.
    pub securable: String,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub workspace: Option<String>,
}

const USER_ACTIVITY_SQL: &str = "\
SELECT event_time, workspace_id, service_name, action_name, source_ip_address, user_agent,
       response.status_code AS status_code, response.error_message AS error_message, request_params
FROM system.access.audit
WHERE event_date >= :since_date AND event_time >= :since AND event_time < :until
  AND (lower(user_identity.email) = lower(:user) OR lower(request_params.user) = lower(:user))
ORDER BY event_time DESC";

const IP_ACTIVITY_SQL: &str = "\
SELECT event_time, workspace_id, coalesce(user_identity.email, request_params.user) AS principal,
       service_name, action_name, source_ip_address, user_agent,
       response.status_code AS status_code, response.error_message AS error_message, request_params
FROM system.access.audit
WHERE event_date >= :since_date AND event_time >= :since AND event_time < :until
  AND (source_ip_address = :ip OR startswith(source_ip_address, :ip_with_port))
ORDER BY event_time DESC";

const SENSITIVE_TABLES_SQL: &str = "\
WITH touched AS (
  SELECT lower(coalesce(request_params.table_full_name, request_params.full_name_arg, request_params.securable_full_name)) AS table_full_name,
         count(*) AS access_count, min(event_time) AS first_access, max(event_time) AS last_access,
         collect_set(action_name) AS actions
  FROM system.access.audit
  WHERE service_name = 'unityCatalog'
    AND event_date >= :since_date AND event_time >= :since AND event_time < :until
    AND lower(coalesce(user_identity.email, request_params.user)) = lower(:user)
    AND coalesce(request_params.table_full_name, request_params.full_name_arg, request_params.securable_full_name) IS NOT NULL
  GROUP BY lower(coalesce(request_params.table_full_name, request_params.full_name_arg, request_params.securable_full_name))
), classified AS (
  SELECT lower(concat_ws('.', catalog_name, schema_name, table_name)) AS table_full_name,
         collect_set(class_tag) AS class_tags, collect_set(column_name) AS sensitive_columns
  FROM system.data_classification.results
  GROUP BY lower(concat_ws('.', catalog_name, schema_name, table_name))
)
SELECT t.table_full_name, t.access_count, t.first_access, t.last_access, t.actions,
       c.class_tags, c.sensitive_columns
FROM touched t JOIN classified c ON t.table_full_name = c.table_full_name
ORDER BY t.access_count DESC, t.table_full_name";

const TABLE_LINEAGE_SQL: &str = "\
SELECT event_time,
       CASE WHEN lower(source_table_full_name) = lower(:table) THEN 'downstream' ELSE 'upstream' END AS direction,
       source_table_full_name, source_type, target_table_full_name, target_type,
       entity_type, entity_id, created_by
FROM system.access.table_lineage
WHERE event_date >= :since_date AND event_time >= :since AND event_time < :until
  AND (lower(source_table_full_name) = lower(:table) OR lower(target_table_full_name) = lower(:table))
ORDER BY event_time DESC";

const CATALOG_PRIVILEGES_SQL: &str = "\
SELECT grantee, privilege_type, 'CATALOG' AS securable_type, catalog_name AS securable, inherited_from, grantor
FROM system.information_schema.catalog_privileges
WHERE lower(catalog_name) = lower(:catalog)
ORDER BY grantee, privilege_type";

const SCHEMA_PRIVILEGES_SQL: &str = "\
SELECT grantee, privilege_type, 'SCHEMA' AS securable_type, concat_ws('.', catalog_name, schema_name) AS securable,
       inherited_from, grantor
FROM system.information_schema.schema_privileges
WHERE lower(catalog_name) = lower(:catalog) AND lower(schema_name) = lower(:schema)
ORDER BY grantee, privilege_type";

const TABLE_PRIVILEGES_SQL: &str = "\
SELECT grantee, privilege_type, 'TABLE' AS securable_type,
       concat_ws('.', table_catalog, table_schema, table_name) AS securable, inherited_from, grantor
FROM system.information_schema.table_privileges
WHERE lower(table_catalog) = lower(:catalog) AND lower(table_schema) = lower(:schema) AND lower(table_name) = lower(:table)
ORDER BY grantee, privilege_type";

/// A statement ready to send: where, what, and with which parameters.
struct Prepared {
    workspace: Option<String>,
    warehouse_id: Option<String>,
    statement: String,
    params: Vec<SqlParam>,
    row_limit: u64,
    timeout: Option<Duration>,
    summary: String,
}

fn row_limit(v: Option<u64>, default: u64) -> Result<u64, ActionError> {
    match v.unwrap_or(default) {
        0 => Err(ActionError::invalid_input("row limit must be at least 1")),
        n if n > MAX_ROW_LIMIT => Err(ActionError::invalid_input(format!("row limit is at most {MAX_ROW_LIMIT}"))),
        n => Ok(n),
    }
}

fn parse_time(field: &str, v: &str) -> Result<OffsetDateTime, ActionError> {
    OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339).map_err(|_| {
        ActionError::invalid_input(format!("{field} {v:?} is not an RFC 3339 time such as 2026-03-10T21:00:00Z"))
    })
}

/// The `[since, until)` window and its parameters (`since`, `until`, `since_date`).
fn window(
    since: &Option<String>,
    until: &Option<String>,
    hours: Option<u32>,
    default_hours: u32,
) -> Result<Vec<SqlParam>, ActionError> {
    let until = match until {
        Some(u) => parse_time("until", u)?,
        None => OffsetDateTime::now_utc(),
    };
    let since = match since {
        Some(s) => parse_time("since", s)?,
        None => {
            let h = hours.unwrap_or(default_hours);
            if h == 0 || h > 24 * 366 {
                return Err(ActionError::invalid_input("hours must be between 1 and 8784"));
            }
            until - time::Duration::hours(i64::from(h))
        }
    };
    if since >= until {
        return Err(ActionError::invalid_input("since must be before until"));
    }
    Ok(vec![
        SqlParam::timestamp("since", since),
        SqlParam::timestamp("until", until),
        SqlParam::date("since_date", since.to_offset(time::UtcOffset::UTC).date()),
    ])
}

fn text_value(what: &str, v: &str) -> Result<String, ActionError> {
    let v = v.trim();
    if v.is_empty() || v.len() > 512 || v.chars().any(char::is_control) {
        return Err(ActionError::invalid_input(format!("{what} {v:?} is empty, too long or has control characters")));
    }
    Ok(v.to_string())
}

/// `catalog[.schema[.table]]` with plain identifiers (backticks are not accepted).
fn securable_parts(v: &str, max: usize) -> Result<Vec<String>, ActionError> {
    let parts: Vec<String> = v.trim().split('.').map(str::to_string).collect();
    let ok = !parts.is_empty()
        && parts.len() <= max
        && parts.iter().all(|p| {
            !p.is_empty() && p.len() <= 255 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    if ok {
        Ok(parts)
    } else {
        Err(ActionError::invalid_input(format!(
            "{v:?} is not a securable name like catalog, catalog.schema or catalog.schema.table"
        )))
    }
}

fn sql_params(input: &BTreeMap<String, ParamInput>) -> Result<Vec<SqlParam>, ActionError> {
    let mut out = Vec::new();
    for (name, p) in input {
        let param = match p {
            ParamInput::Typed { value, type_name } => {
                let t = SqlType::parse(type_name).ok_or_else(|| {
                    ActionError::invalid_input(format!("parameter {name:?}: unknown type {type_name:?}"))
                })?;
                let text = match value {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    Some(_) => {
                        return Err(ActionError::invalid_input(format!(
                            "parameter {name:?}: arrays and objects cannot be statement parameters"
                        )));
                    }
                };
                SqlParam::typed(name, t, text.as_deref())?
            }
            ParamInput::Plain(v) => match v {
                Value::Null => SqlParam::null(name, SqlType::String),
                Value::String(s) => SqlParam::string(name, s.clone()),
                Value::Bool(b) => SqlParam::boolean(name, *b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => SqlParam::bigint(name, i),
                    None => SqlParam::double(name, n.as_f64().unwrap_or_default()),
                },
                _ => {
                    return Err(ActionError::invalid_input(format!(
                        "parameter {name:?}: arrays and objects cannot be statement parameters"
                    )));
                }
            },
        };
        out.push(param);
    }
    Ok(out)
}

fn prepare_sql(call: &ActionCall<'_>) -> Result<Prepared, ActionError> {
    let input: SqlQueryInput = call.parse_input()?;
    let params = sql_params(&input.parameters)?;
    sql::check_statement(&input.statement, &params)?;
    Ok(Prepared {
        workspace: input.workspace,
        warehouse_id: input.warehouse_id,
        summary: "run a read-only SQL statement".into(),
        statement: input.statement,
        params,
        row_limit: row_limit(input.row_limit, DEFAULT_ROW_LIMIT)?,
        timeout: input.timeout_seconds.map(Duration::from_secs),
    })
}

fn prepare_investigate(call: &ActionCall<'_>) -> Result<Prepared, ActionError> {
    let prepared = match call.action {
        "investigate.user_activity" => {
            let i: UserActivityInput = call.parse_input()?;
            let user = text_value("user", &i.user)?;
            let mut params = window(&i.since, &i.until, i.hours, 24)?;
            params.push(SqlParam::string("user", user.clone()));
            Prepared {
                workspace: i.workspace,
                warehouse_id: None,
                statement: USER_ACTIVITY_SQL.into(),
                params,
                row_limit: row_limit(i.limit, 200)?,
                timeout: None,
                summary: format!("read recent audit activity of {user}"),
            }
        }
        "investigate.ip_activity" => {
            let i: IpActivityInput = call.parse_input()?;
            let ip: std::net::IpAddr =
                i.ip.trim()
                    .parse()
                    .map_err(|_| ActionError::invalid_input(format!("{:?} is not an IP address", i.ip)))?;
            let mut params = window(&i.since, &i.until, i.hours, 24)?;
            params.push(SqlParam::string("ip", ip.to_string()));
            params.push(SqlParam::string("ip_with_port", format!("{ip}:")));
            Prepared {
                workspace: i.workspace,
                warehouse_id: None,
                statement: IP_ACTIVITY_SQL.into(),
                params,
                row_limit: row_limit(i.limit, 200)?,
                timeout: None,
                summary: format!("read recent audit activity from {ip}"),
            }
        }
        "investigate.sensitive_tables" => {
            let i: SensitiveTablesInput = call.parse_input()?;
            let user = text_value("user", &i.user)?;
            let mut params = window(&i.since, &i.until, i.hours, 24)?;
            params.push(SqlParam::string("user", user.clone()));
            Prepared {
                workspace: i.workspace,
                warehouse_id: None,
                statement: SENSITIVE_TABLES_SQL.into(),
                params,
                row_limit: row_limit(i.limit, 200)?,
                timeout: None,
                summary: format!("list classified sensitive tables {user} touched"),
            }
        }
        "investigate.table_lineage" => {
            let i: TableLineageInput = call.parse_input()?;
            let parts = securable_parts(&i.table, 3)?;
            if parts.len() != 3 {
                return Err(ActionError::invalid_input(format!("{:?} must be catalog.schema.table", i.table)));
            }
            let table = parts.join(".");
            let mut params = window(&i.since, &i.until, i.hours, 720)?;
            params.push(SqlParam::string("table", table.clone()));
            Prepared {
                workspace: i.workspace,
                warehouse_id: None,
                statement: TABLE_LINEAGE_SQL.into(),
                params,
                row_limit: row_limit(i.limit, 500)?,
                timeout: None,
                summary: format!("read the lineage of {table}"),
            }
        }
        "investigate.privileges" => {
            let i: PrivilegesInput = call.parse_input()?;
            let parts = securable_parts(&i.securable, 3)?;
            let names = ["catalog", "schema", "table"];
            let params = parts.iter().zip(names).map(|(v, n)| SqlParam::string(n, v.clone())).collect();
            let statement = match parts.len() {
                1 => CATALOG_PRIVILEGES_SQL,
                2 => SCHEMA_PRIVILEGES_SQL,
                _ => TABLE_PRIVILEGES_SQL,
            };
            Prepared {
                workspace: i.workspace,
                warehouse_id: None,
                statement: statement.into(),
                params,
                row_limit: row_limit(i.limit, 1000)?,
                timeout: None,
                summary: format!("list principals holding privileges on {}", parts.join(".")),
            }
        }
        other => {
            return Err(ActionError::permanent("unknown_action", format!("databricks has no action {other:?}")));
        }
    };
    Ok(prepared)
}

fn plan_prepared(db: &Databricks, call: &ActionCall<'_>, p: Prepared) -> Result<Plan, ActionError> {
    let t = db.select_workspace(p.workspace.as_deref(), call.ctx)?;
    let warehouse = db.warehouse_of(t, p.warehouse_id.as_deref())?;
    let req = execute_request(t, &db.config.sql, &warehouse, &p.statement, &p.params, Some(p.row_limit));
    Ok(plan_of(format!("{} on {} (warehouse {warehouse})", p.summary, t.describe()), &[&req]))
}

async fn execute_prepared(db: &Databricks, call: &ActionCall<'_>, p: Prepared) -> Result<ActionOutput, ActionError> {
    let t = db.select_workspace(p.workspace.as_deref(), call.ctx)?;
    let warehouse = db.warehouse_of(t, p.warehouse_id.as_deref())?;
    let opts = StatementOptions { warehouse_id: None, row_limit: Some(p.row_limit), timeout: p.timeout };
    let r = sql::run(t, &db.config.sql, &warehouse, &p.statement, &p.params, &opts).await?;
    let n = r.rows.len();
    let mut out = ActionOutput::new(json!({
        "statement_id": r.statement_id,
        "columns": r.columns,
        "rows": r.rows,
        "row_count": n,
        "truncated": r.truncated,
    }));
    if r.truncated {
        out = out.with_note(format!("{}: result cut at {} rows", p.summary, p.row_limit));
    }
    Ok(out)
}

pub fn plan_sql(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    plan_prepared(db, call, prepare_sql(call)?)
}

pub async fn execute_sql(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    execute_prepared(db, call, prepare_sql(call)?).await
}

pub fn plan_investigate(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    plan_prepared(db, call, prepare_investigate(call)?)
}

pub async fn execute_investigate(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    execute_prepared(db, call, prepare_investigate(call)?).await
}
