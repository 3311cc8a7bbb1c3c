//! The in-memory SQLite database behind the simulated system tables: creating them, loading
//! rows in the system-table shape, and running translated queries into `JSON_ARRAY` cells.

use super::{
    DType, SqlError, TABLES, TableDef, Translated, canonical_date, canonical_timestamp, column_type, render_timestamp,
    table, translate,
};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteRow};
use sqlx::{AssertSqlSafe, Column as _, Executor, Row, SqlSafeStr, Statement as _, TypeInfo, ValueRef};
use std::collections::HashMap;
use std::str::FromStr;

/// A statement parameter as the API received it.
#[derive(Debug, Clone)]
pub struct BoundParam {
    pub name: String,
    pub dtype: DType,
    pub value: Option<String>,
}

/// A finished query: column names and types, and rows of `JSON_ARRAY` cells.
#[derive(Debug, Clone, Default)]
pub struct QueryOutput {
    pub columns: Vec<(String, DType)>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// The simulated system tables.
#[derive(Clone)]
pub struct SqlDb {
    pool: SqlitePool,
}

impl SqlDb {
    pub async fn open() -> Result<SqlDb, String> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|e| e.to_string())?
            .with_regexp()
            // Databricks LIKE is case-sensitive; SQLite's is not by default.
            .pragma("case_sensitive_like", "ON");
        // One connection that never closes: an in-memory database lives as long as it.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await
            .map_err(|e| format!("cannot open the local SQL database: {e}"))?;
        for t in TABLES {
            let cols: Vec<String> = t
                .columns
                .iter()
                .map(|(c, ty)| {
                    let decl = match ty {
                        DType::Int | DType::Long | DType::Boolean => "INTEGER",
                        DType::Double => "REAL",
                        _ => "TEXT",
                    };
                    format!("\"{c}\" {decl}")
                })
                .collect();
            let ddl = format!("CREATE TABLE \"{}\" ({})", t.name, cols.join(", "));
            pool.execute(AssertSqlSafe(ddl)).await.map_err(|e| e.to_string())?;
        }
        Ok(SqlDb { pool })
    }

    /// Inserts rows (JSON objects keyed by column name) into a table. Struct, map and array
    /// values may be JSON values or JSON text; timestamps RFC 3339, `YYYY-MM-DD HH:MM:SS` or
    /// epoch milliseconds. All or nothing: the first bad row is an error naming it.
    pub async fn insert(&self, table_name: &str, rows: &[Value]) -> Result<usize, String> {
        let problems = self.insert_rows(table_name, rows, true).await?;
        match problems.into_iter().next() {
            Some((n, e)) => Err(format!("row {}: {e}", n + 1)),
            None => Ok(rows.len()),
        }
    }

    /// Inserts every good row and returns the others' problems as `(index in rows, message)`.
    pub async fn insert_good(&self, table_name: &str, rows: &[Value]) -> Result<Vec<(usize, String)>, String> {
        self.insert_rows(table_name, rows, false).await
    }

    async fn insert_rows(
        &self,
        table_name: &str,
        rows: &[Value],
        strict: bool,
    ) -> Result<Vec<(usize, String)>, String> {
        let t = table(table_name).ok_or_else(|| format!("the local SQL engine has no table {table_name}"))?;
        let names: Vec<String> = t.columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let marks: Vec<String> = (1..=t.columns.len()).map(|k| format!("?{k}")).collect();
        let sql = format!("INSERT INTO \"{}\" ({}) VALUES ({})", t.name, names.join(", "), marks.join(", "));
        let mut problems = Vec::new();
        let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
        for (n, row) in rows.iter().enumerate() {
            let q = match bind_row(&sql, t, row) {
                Ok(q) => q,
                Err(e) => {
                    problems.push((n, e));
                    if strict {
                        return Ok(problems);
                    }
                    continue;
                }
            };
            if let Err(e) = q.execute(&mut *tx).await {
                problems.push((n, e.to_string()));
                if strict {
                    return Ok(problems);
                }
            }
        }
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(problems)
    }

    /// Deletes rows whose `event_time` is before `before`.
    pub async fn delete_before(&self, table_name: &str, before: &str) -> Result<u64, String> {
        let t = table(table_name).ok_or_else(|| format!("the local SQL engine has no table {table_name}"))?;
        if !t.columns.iter().any(|(c, _)| *c == "event_time") {
            return Err(format!("{} has no event_time column", t.name));
        }
        let at = canonical_timestamp(before).ok_or_else(|| format!("{before:?} is not a timestamp"))?;
        let sql = format!("DELETE FROM \"{}\" WHERE event_time < ?1", t.name);
        let done = sqlx::query(AssertSqlSafe(sql)).bind(at).execute(&self.pool).await.map_err(|e| e.to_string())?;
        Ok(done.rows_affected())
    }

    /// Loads `system.access.audit` rows from JSON lines (the shape of
    /// `shared/samples/audit-events.jsonl`). Blank lines are skipped; a bad line is an error
    /// naming its line number.
    pub async fn load_audit_jsonl(&self, jsonl: &str) -> Result<usize, String> {
        let mut rows = Vec::new();
        for (n, line) in jsonl.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            rows.push(v);
        }
        self.insert("system.access.audit", &rows).await
    }

    /// Runs a Databricks statement: translates it, binds the parameters, and renders the rows.
    pub async fn run(&self, statement: &str, params: &[BoundParam]) -> Result<QueryOutput, SqlError> {
        let types: HashMap<String, DType> = params.iter().map(|p| (p.name.clone(), p.dtype)).collect();
        let tr: Translated = translate(statement, &types)?;
        let mut q = sqlx::query(AssertSqlSafe(tr.sql.clone()));
        for name in &tr.params {
            let p = params.iter().find(|p| &p.name == name).ok_or_else(|| {
                SqlError::new("UNBOUND_SQL_PARAMETER", "42P02", format!("Found the unbound parameter: {name}."))
            })?;
            q = bind_param(q, p)?;
        }
        let rows: Vec<SqliteRow> = q.fetch_all(&self.pool).await.map_err(|e| map_sqlite_error(&e))?;
        let names: Vec<String> = match rows.first() {
            Some(r) => r.columns().iter().map(|c| c.name().to_string()).collect(),
            None => {
                let st = (&self.pool)
                    .prepare(AssertSqlSafe(tr.sql.clone()).into_sql_str())
                    .await
                    .map_err(|e| map_sqlite_error(&e))?;
                st.columns().iter().map(|c| c.name().to_string()).collect()
            }
        };
        let inferred_usable = tr.columns.len() == names.len() && !tr.columns.iter().any(|(n, _)| n == "*");
        let columns: Vec<(String, DType)> = names
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let declared = if inferred_usable { tr.columns[k].1 } else { column_type(name) };
                let t = declared.filter(|t| *t != DType::Null).unwrap_or_else(|| runtime_type(&rows, k));
                (name.clone(), t)
            })
            .collect();
        let mut out_rows = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut cells = Vec::with_capacity(columns.len());
            for (k, (_, t)) in columns.iter().enumerate() {
                cells.push(render_cell(r, k, *t));
            }
            out_rows.push(cells);
        }
        Ok(QueryOutput { columns, rows: out_rows })
    }
}

type Q = sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// One row's INSERT with its cells bound, or why the row does not fit the table.
fn bind_row(sql: &str, t: &TableDef, row: &Value) -> Result<Q, String> {
    let obj = row.as_object().ok_or("not a JSON object")?;
    if let Some(k) = obj.keys().find(|k| !t.columns.iter().any(|(c, _)| c == k)) {
        return Err(format!("{} has no column {k:?}", t.name));
    }
    let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
    for (c, ty) in t.columns {
        let mut v = obj.get(*c).cloned().unwrap_or(Value::Null);
        if *c == "event_date" && v.is_null() {
            v = obj.get("event_time").cloned().unwrap_or(Value::Null);
        }
        q = bind_cell(q, *ty, &v).map_err(|e| format!("column {c}: {e}"))?;
    }
    Ok(q)
}

fn bind_cell(q: Q, ty: DType, v: &Value) -> Result<Q, String> {
    if v.is_null() {
        return Ok(q.bind(None::<String>));
    }
    Ok(match ty {
        DType::Struct | DType::Map | DType::Array => match v {
            Value::String(s) => {
                serde_json::from_str::<Value>(s).map_err(|_| format!("{s:?} is not JSON"))?;
                q.bind(s.clone())
            }
            other => q.bind(other.to_string()),
        },
        DType::Timestamp => {
            let s = match v {
                Value::String(s) => canonical_timestamp(s).ok_or_else(|| format!("{s:?} is not a timestamp"))?,
                Value::Number(n) => {
                    let ms = n.as_i64().ok_or("not epoch milliseconds")?;
                    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                        .map_err(|e| e.to_string())?;
                    canonical_timestamp(
                        &t.format(&time::format_description::well_known::Rfc3339).map_err(|e| e.to_string())?,
                    )
                    .ok_or("bad timestamp")?
                }
                other => return Err(format!("{other} is not a timestamp")),
            };
            q.bind(s)
        }
        DType::Date => match v {
            Value::String(s) => q.bind(canonical_date(s).ok_or_else(|| format!("{s:?} is not a date"))?),
            other => return Err(format!("{other} is not a date")),
        },
        DType::Int | DType::Long => match v {
            Value::Number(n) => q.bind(n.as_i64().ok_or("not an integer")?),
            Value::String(s) => q.bind(s.trim().parse::<i64>().map_err(|_| format!("{s:?} is not an integer"))?),
            other => return Err(format!("{other} is not an integer")),
        },
        DType::Double => match v {
            Value::Number(n) => q.bind(n.as_f64().ok_or("not a number")?),
            Value::String(s) => q.bind(s.trim().parse::<f64>().map_err(|_| format!("{s:?} is not a number"))?),
            other => return Err(format!("{other} is not a number")),
        },
        DType::Boolean => match v {
            Value::Bool(b) => q.bind(i64::from(*b)),
            other => return Err(format!("{other} is not a boolean")),
        },
        DType::String | DType::Null => match v {
            Value::String(s) => q.bind(s.clone()),
            other => q.bind(other.to_string()),
        },
    })
}

fn bad_param(p: &BoundParam) -> SqlError {
    SqlError::new(
        "INVALID_PARAMETER_MARKER_VALUE.INVALID_VALUE_FOR_DATA_TYPE",
        "22023",
        format!(
            "An invalid parameter mapping was provided: the value '{}' for parameter '{}' cannot be cast to {}.",
            p.value.clone().unwrap_or_default(),
            p.name,
            p.dtype.manifest().1
        ),
    )
}

fn bind_param(q: Q, p: &BoundParam) -> Result<Q, SqlError> {
    let Some(v) = p.value.as_deref() else {
        return Ok(q.bind(None::<String>));
    };
    Ok(match p.dtype {
        DType::Timestamp => q.bind(canonical_timestamp(v).ok_or_else(|| bad_param(p))?),
        DType::Date => q.bind(canonical_date(v).ok_or_else(|| bad_param(p))?),
        DType::Int | DType::Long => q.bind(v.trim().parse::<i64>().map_err(|_| bad_param(p))?),
        DType::Double => q.bind(v.trim().parse::<f64>().map_err(|_| bad_param(p))?),
        DType::Boolean => match v.trim().to_ascii_lowercase().as_str() {
            "true" => q.bind(1_i64),
            "false" => q.bind(0_i64),
            _ => return Err(bad_param(p)),
        },
        // Spark casts a string compared with a timestamp; storing timestamp-looking strings in
        // the canonical form gives the same answer for the comparisons detections make.
        _ => match canonical_timestamp(v).filter(|_| super::translate::looks_like_timestamp(v)) {
            Some(c) => q.bind(c),
            None => q.bind(v.to_string()),
        },
    })
}

/// SQLite's errors, reported the way Databricks names the same problems.
fn map_sqlite_error(e: &sqlx::Error) -> SqlError {
    let msg = match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        other => other.to_string(),
    };
    if let Some(col) = msg.strip_prefix("no such column: ") {
        return SqlError::new(
            "UNRESOLVED_COLUMN.WITHOUT_SUGGESTION",
            "42703",
            format!("A column, variable, or function parameter with name `{col}` cannot be resolved."),
        );
    }
    if let Some(f) = msg.strip_prefix("no such function: ") {
        return SqlError::new(
            "UNRESOLVED_ROUTINE",
            "42883",
            format!("Cannot resolve routine `{f}` on search path [`system`.`builtin`, `system`.`session`]."),
        );
    }
    if let Some(t) = msg.strip_prefix("no such table: ") {
        return SqlError::table_not_found(&[t.to_string()]);
    }
    if msg.contains("syntax error") {
        let near = msg.split('"').nth(1).map(str::to_string).unwrap_or_else(|| "end of input".into());
        return SqlError::syntax(&near);
    }
    if msg.contains("misuse of aggregate") || msg.contains("must appear in the GROUP BY") {
        return SqlError::new("MISSING_AGGREGATION", "42803", msg);
    }
    SqlError::new("INTERNAL_ERROR", "XX000", format!("the local SQL engine's SQLite failed: {msg}"))
}

/// A column's type from its values, when the query did not tell.
fn runtime_type(rows: &[SqliteRow], k: usize) -> DType {
    for r in rows {
        if let Ok(v) = r.try_get_raw(k)
            && !v.is_null()
        {
            return match v.type_info().name() {
                "INTEGER" => DType::Long,
                "REAL" => DType::Double,
                _ => DType::String,
            };
        }
    }
    DType::String
}

fn render_cell(r: &SqliteRow, k: usize, t: DType) -> Option<String> {
    let raw = r.try_get_raw(k).ok()?;
    if raw.is_null() {
        return None;
    }
    let class = raw.type_info().name().to_string();
    let text = || r.try_get_unchecked::<String, _>(k).ok();
    let int = || r.try_get_unchecked::<i64, _>(k).ok();
    let real = || r.try_get_unchecked::<f64, _>(k).ok();
    match (t, class.as_str()) {
        (DType::Boolean, "INTEGER") => int().map(|i| (i != 0).to_string()),
        (DType::Timestamp, "TEXT") => text().map(|s| render_timestamp(&s)),
        (DType::Int | DType::Long, "REAL") => real().map(|f| (f.trunc() as i64).to_string()),
        (DType::Int | DType::Long, "INTEGER") => int().map(|i| i.to_string()),
        (DType::Double, "INTEGER") => int().map(|i| format!("{i}.0")),
        (DType::Double, "REAL") | (_, "REAL") => {
            real().map(|f| if f.fract() == 0.0 && f.abs() < 1e15 { format!("{f:.1}") } else { f.to_string() })
        }
        (_, "INTEGER") => int().map(|i| i.to_string()),
        _ => text(),
    }
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use super::*;
    use serde_json::json;

    async fn db() -> SqlDb {
        let db = SqlDb::open().await.unwrap();
        assert_eq!(db.load_audit_jsonl(&crate::sim::testdata::story_jsonl()).await.unwrap(), 19);
        db
    }

    fn p(name: &str, t: DType, v: &str) -> BoundParam {
        BoundParam { name: name.into(), dtype: t, value: Some(v.into()) }
    }

    #[tokio::test]
    async fn failed_logins_per_user_hour() {
        let db = db().await;
        let out = db
            .run(
                "SELECT coalesce(user_identity.email, request_params.user) AS user_name, date_trunc('HOUR', event_time) AS window_start,
                        count(*) AS total, collect_set(action_name) AS actions
                 FROM system.access.audit
                 WHERE action_name IN ('login', 'samlLogin', 'tokenLogin') AND response.status_code IN (401, 403)
                   AND event_time >= :since
                 GROUP BY coalesce(user_identity.email, request_params.user), date_trunc('HOUR', event_time)
                 HAVING count(*) > 1",
                &[p("since", DType::Timestamp, "2026-04-01T00:00:00Z")],
            )
            .await
            .unwrap();
        assert_eq!(
            out.rows,
            vec![vec![
                Some("mallory@corp.example".into()),
                Some("2026-04-01T22:00:00.000Z".into()),
                Some("9".into()),
                Some("[\"login\"]".into()),
            ]]
        );
        let types: Vec<DType> = out.columns.iter().map(|c| c.1).collect();
        assert_eq!(types, vec![DType::String, DType::Timestamp, DType::Long, DType::Array]);
    }

    #[tokio::test]
    async fn long_lived_tokens_and_like_is_case_sensitive() {
        let db = db().await;
        let out = db
            .run(
                "SELECT user_identity.email AS email,
                        (cast(request_params.tokenExpirationTime AS BIGINT) / 1000 - unix_timestamp(event_time)) / 3600 AS hours
                 FROM system.access.audit WHERE action_name = 'generateDbToken'
                   AND (cast(request_params.tokenExpirationTime AS BIGINT) / 1000 - unix_timestamp(event_time)) > 72 * 3600
                 ORDER BY event_time",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(out.rows.len(), 1);
        assert_eq!(out.rows[0][1].as_deref(), Some("9600.0"));
        let out = db.run("SELECT count(*) FROM system.access.audit WHERE action_name LIKE 'LOGIN'", &[]).await.unwrap();
        assert_eq!(out.rows[0][0].as_deref(), Some("0"));
        let out =
            db.run("SELECT count(*) AS n FROM system.access.audit WHERE action_name ILIKE 'LOGIN'", &[]).await.unwrap();
        assert_eq!(out.rows[0][0].as_deref(), Some("10"));
        let out = db
            .run(
                "SELECT count(*) AS n FROM system.access.audit WHERE source_ip_address RLIKE '^203\\\\.0\\\\.113\\\\.'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(out.rows[0][0].as_deref(), Some("15"));
    }

    #[tokio::test]
    async fn sqlite_errors_read_like_databricks() {
        let db = db().await;
        let e = db.run("SELECT nope FROM system.access.audit", &[]).await.unwrap_err();
        assert_eq!(e.class, "UNRESOLVED_COLUMN.WITHOUT_SUGGESTION");
        let e = db.run("SELECT frobnicate(1)", &[]).await.unwrap_err();
        assert_eq!(e.class, "UNRESOLVED_ROUTINE");
        let e = db
            .run("SELECT * FROM system.access.audit WHERE event_time > :t", &[p("t", DType::Timestamp, "soon")])
            .await
            .unwrap_err();
        assert!(e.class.starts_with("INVALID_PARAMETER_MARKER_VALUE"));
    }

    #[tokio::test]
    async fn star_selects_and_empty_results_keep_columns() {
        let db = db().await;
        let out = db.run("SELECT * FROM system.access.audit WHERE event_id = 'none'", &[]).await.unwrap();
        assert!(out.rows.is_empty());
        assert_eq!(out.columns.len(), 17);
        assert_eq!(out.columns[3], ("event_time".to_string(), DType::Timestamp));
        db.insert(
            "system.data_classification.results",
            &[json!({"catalog_name": "main", "schema_name": "hr", "table_name": "employees_pii", "column_name": "ssn",
                     "class_tag": "class.us_ssn", "samples": ["123-45-6789"], "confidence": "HIGH", "frequency": 0.9,
                     "latest_detected_time": "2026-03-01T00:00:00Z"})],
        )
        .await
        .unwrap();
        let out = db
            .run("SELECT samples, frequency, latest_detected_time FROM system.data_classification.results", &[])
            .await
            .unwrap();
        assert_eq!(
            out.rows[0],
            vec![Some("[\"123-45-6789\"]".into()), Some("0.9".into()), Some("2026-03-01T00:00:00.000Z".into())]
        );
        assert!(db.insert("system.access.audit", &[json!({"bogus": 1})]).await.is_err());
    }

    /// The shared sample (not in this repository) loads and answers, when it is present.
    #[tokio::test]
    async fn shared_sample_loads_when_present() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/samples/audit-events.jsonl");
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("SKIPPED: {path} not found");
            return;
        };
        let db = SqlDb::open().await.unwrap();
        let n = db.load_audit_jsonl(&text).await.unwrap();
        let out = db.run("SELECT count(*) AS n FROM system.access.audit", &[]).await.unwrap();
        assert_eq!(out.rows[0][0].as_deref(), Some(n.to_string().as_str()));
    }
}
