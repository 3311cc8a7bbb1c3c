//! `LocalSql`: the public face of the local engine. Rows go in as JSON objects in the system
//! tables' shape; a detection's SQL runs with typed named parameters; rows come back typed
//! exactly as the Statement Execution client types a warehouse's answer, so whatever turns
//! result rows into alerts cannot tell the two apart.

use super::{BoundParam, DType, SqlDb, SqlError};
use crate::sql::{Column, QueryResult, SqlParam, typed_value};
use serde_json::{Map, Value};

/// An in-memory engine holding the system tables (empty when opened).
#[derive(Clone)]
pub struct LocalSql {
    db: SqlDb,
}

impl LocalSql {
    /// A new, empty in-memory database with every system table the engine knows.
    pub async fn open() -> Result<LocalSql, String> {
        Ok(LocalSql { db: SqlDb::open().await? })
    }

    /// Loads rows (JSON objects keyed by column name) into a table such as
    /// `system.access.audit`. All or nothing: the first row that does not fit is an error
    /// naming it (`row N: …`).
    pub async fn load(&self, table: &str, rows: &[Value]) -> Result<usize, String> {
        self.db.insert(table, rows).await
    }

    /// Loads every row that fits and returns the others as `(index in rows, problem)`: an
    /// unknown column, or a value that is not of its column's type.
    pub async fn load_good(&self, table: &str, rows: &[Value]) -> Result<Vec<(usize, String)>, String> {
        self.db.insert_good(table, rows).await
    }

    /// Deletes the rows of `table` whose `event_time` is before `before` (RFC 3339), so an
    /// engine kept across reads does not grow without end. Returns how many went.
    pub async fn prune(&self, table: &str, before: &str) -> Result<u64, String> {
        self.db.delete_before(table, before).await
    }

    /// Runs one statement of the supported subset with named parameters (`:name`). The
    /// statement id of the result is `local`; nothing is ever truncated.
    pub async fn query(&self, sql: &str, params: &[SqlParam]) -> Result<QueryResult, SqlError> {
        let mut bound = Vec::with_capacity(params.len());
        for p in params {
            let dtype = DType::from_param_type(p.type_name.as_str())
                .ok_or_else(|| SqlError::unsupported(&format!("parameters of type {}", p.type_name.as_str())))?;
            bound.push(BoundParam { name: p.name.clone(), dtype, value: p.value.clone() });
        }
        let out = self.db.run(sql, &bound).await?;
        let columns: Vec<Column> = out
            .columns
            .iter()
            .map(|(name, t)| Column { name: name.clone(), type_name: t.manifest().0.to_string() })
            .collect();
        let rows = out
            .rows
            .into_iter()
            .map(|cells| {
                let mut row = Map::new();
                for (c, cell) in columns.iter().zip(cells) {
                    row.insert(c.name.clone(), typed_value(&c.type_name, cell.as_deref()));
                }
                row
            })
            .collect();
        Ok(QueryResult { statement_id: "local".into(), columns, rows, truncated: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn rows_in_typed_rows_out() {
        let e = LocalSql::open().await.unwrap();
        let rows = [
            json!({"event_time": "2026-09-01T03:00:00Z", "service_name": "accounts", "action_name": "login",
                   "user_identity": {"email": "eve@corp.example"}, "response": {"status_code": 401}}),
            json!({"event_time": "2026-09-01T03:05:00Z", "service_name": "accounts", "action_name": "login",
                   "user_identity": {"email": "eve@corp.example"}, "response": {"status_code": 401}}),
            json!({"event_time": "2026-09-02T03:05:00Z", "service_name": "accounts", "action_name": "login",
                   "user_identity": {"email": "eve@corp.example"}, "response": {"status_code": 401}}),
        ];
        assert_eq!(e.load("system.access.audit", &rows).await.unwrap(), 3);
        let since = time::macros::datetime!(2026-09-01 00:00 UTC);
        let until = time::macros::datetime!(2026-09-02 00:00 UTC);
        let r = e
            .query(
                "SELECT user_identity.email AS who, count(*) AS n, min(event_time) AS first, collect_set(action_name) AS a
                 FROM system.access.audit WHERE event_time >= :since AND event_time < :until AND response.status_code = :code
                 GROUP BY user_identity.email",
                &[SqlParam::timestamp("since", since), SqlParam::timestamp("until", until), SqlParam::int("code", 401)],
            )
            .await
            .unwrap();
        assert_eq!(r.rows.len(), 1);
        assert_eq!(
            Value::Object(r.rows[0].clone()),
            json!({"who": "eve@corp.example", "n": 2, "first": "2026-09-01T03:00:00.000Z", "a": ["login"]})
        );
        let types: Vec<&str> = r.columns.iter().map(|c| c.type_name.as_str()).collect();
        assert_eq!(types, ["STRING", "LONG", "TIMESTAMP", "ARRAY"]);
        let e2 = e.query("SELECT * FROM system.access.audit WHERE x = :v", &[]).await.unwrap_err();
        assert_eq!(e2.class, "UNBOUND_SQL_PARAMETER");
    }

    #[tokio::test]
    async fn load_good_keeps_the_good_rows_and_names_the_bad() {
        let e = LocalSql::open().await.unwrap();
        let rows = [
            json!({"event_time": "2026-09-01T03:00:00Z", "action_name": "login"}),
            json!({"event_time": "yesterday"}),
            json!({"bogus": 1}),
            json!([1, 2]),
        ];
        let bad = e.load_good("system.access.audit", &rows).await.unwrap();
        let idx: Vec<usize> = bad.iter().map(|b| b.0).collect();
        assert_eq!(idx, [1, 2, 3]);
        assert!(bad[0].1.contains("event_time") && bad[1].1.contains("no column \"bogus\""), "{bad:?}");
        let r = e.query("SELECT count(*) AS n FROM system.access.audit", &[]).await.unwrap();
        assert_eq!(r.rows[0]["n"], 1);
        assert!(e.load("system.access.audit", &rows).await.unwrap_err().starts_with("row 2: "));
        assert!(e.load("system.nope", &rows).await.is_err());
    }
}
