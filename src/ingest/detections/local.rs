//! Detections on the local SQL engine (feature `local-sql`): the same SQL, parameters and
//! row-to-alert code as the poller, over rows loaded into an in-memory engine instead of a
//! SQL warehouse. `floodgate detections test --events` and `floodgate ingest audit-logs` use it.
//!
//! The engine is SQLite behind a translator of the Databricks SQL subset (see
//! `floodgate_databricks::localsql` and docs/detections.md); a statement outside the subset
//! fails here rather than running differently.

use super::finding::Window;
use super::model::Detection;
use super::poller::{self, DetectionError};
use crate::alert::Alert;
use floodgate_databricks::QueryResult;
use floodgate_databricks::localsql::LocalSql;
use serde_json::Value;

/// The table events are loaded into.
pub const AUDIT: &str = "system.access.audit";
/// The workspace local alerts name in `detection.workspace` (a warehouse run names the
/// configured workspace there instead; everything else in the alert is the same).
pub const WORKSPACE: &str = "local";

/// A line of an events file that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub col: Option<usize>,
    pub message: String,
}

impl BadLine {
    /// `path:line[:col]: message`.
    pub fn at(&self, path: &str) -> String {
        match self.col {
            Some(c) => format!("{path}:{}:{c}: {}", self.line, self.message),
            None => format!("{path}:{}: {}", self.line, self.message),
        }
    }
}

/// JSON lines as rows with their line numbers (1-based); blank lines are skipped, and a line
/// that is not a JSON object with an `event_time` is a `BadLine`.
pub fn parse_jsonl(text: &str) -> (Vec<(usize, Value)>, Vec<BadLine>) {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v @ Value::Object(_)) => match v.get("event_time") {
                Some(Value::String(_) | Value::Number(_)) => rows.push((line_no, v)),
                _ => bad.push(BadLine {
                    line: line_no,
                    col: None,
                    message: "no event_time: not a system.access.audit row".into(),
                }),
            },
            Ok(_) => bad.push(BadLine {
                line: line_no,
                col: None,
                message: "not a JSON object (one system.access.audit row per line)".into(),
            }),
            Err(e) => bad.push(BadLine { line: line_no, col: Some(e.column()), message: format!("invalid JSON: {e}") }),
        }
    }
    (rows, bad)
}

/// Loads rows into `table`; the rows that do not fit it (an unknown column, a value of the
/// wrong type) come back as `BadLine`s with their line numbers. Returns the rows loaded.
pub async fn load(engine: &LocalSql, table: &str, rows: &[(usize, Value)]) -> Result<(usize, Vec<BadLine>), String> {
    let values: Vec<Value> = rows.iter().map(|(_, v)| v.clone()).collect();
    let problems = engine.load_good(table, &values).await?;
    let bad: Vec<BadLine> =
        problems.into_iter().map(|(i, message)| BadLine { line: rows[i].0, col: None, message }).collect();
    Ok((rows.len() - bad.len(), bad))
}

/// The window that covers every loaded event: `[first event_time, last event_time + 1 ms)`;
/// `None` when the table is empty.
pub async fn events_window(engine: &LocalSql) -> Result<Option<Window>, String> {
    let r = engine
        .query("SELECT min(event_time) AS first, max(event_time) AS last FROM system.access.audit", &[])
        .await
        .map_err(|e| e.to_string())?;
    let at = |k: &str| -> Option<i64> {
        let s = r.rows.first()?.get(k)?.as_str()?;
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
    };
    Ok(match (at("first"), at("last")) {
        (Some(since), Some(last)) => Some(Window { since, until: last + 1 }),
        _ => None,
    })
}

/// Runs one detection's SQL over `window` with the parameters the poller would send, and turns
/// the rows into alerts exactly as the poller does.
pub async fn evaluate(
    engine: &LocalSql,
    d: &Detection,
    source: &str,
    workspace: &str,
    window: Window,
    now: i64,
) -> Result<(QueryResult, Vec<Alert>), DetectionError> {
    let result =
        engine.query(&d.sql, &poller::parameters(d, window)).await.map_err(|e| DetectionError::Local(e.to_string()))?;
    let alerts = poller::alerts_from(d, source, workspace, &result, window, now)?;
    Ok((result, alerts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_rows_or_named_problems() {
        let text =
            "{\"event_time\": \"2026-09-01T00:00:00Z\"}\n\n{\"event_time\": 1}\n[1]\n{\"a\": 1}\n{\"event_time\": \n";
        let (rows, bad) = parse_jsonl(text);
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 3]);
        let shown: Vec<String> = bad.iter().map(|b| b.at("e.jsonl")).collect();
        assert_eq!(shown[0], "e.jsonl:4: not a JSON object (one system.access.audit row per line)");
        assert_eq!(shown[1], "e.jsonl:5: no event_time: not a system.access.audit row");
        assert!(shown[2].starts_with("e.jsonl:6:15: invalid JSON: EOF while parsing"), "{}", shown[2]);
    }
}
