//! The local SQL engine (feature `local-sql`): Databricks system tables in an in-memory SQLite
//! database, and a translator of the Databricks SQL subset floodgate's detections use into
//! SQLite SQL. `floodgate detections test --events` and `floodgate ingest audit-logs` run
//! detections with it, and the simulator (feature `sim`) answers the Statement Execution API
//! with it.
//!
//! It is SQLite behind a translator, not a Spark engine: the translator defines the subset, and
//! a statement outside it FAILs rather than running differently. Detections written in the
//! subset run identically here and on a Databricks SQL warehouse.
//!
//! ```text
//! let engine = floodgate_databricks::localsql::LocalSql::open().await?;
//! engine.load("system.access.audit", &rows).await?;
//! let result = engine.query(sql, &[SqlParam::timestamp("since", t0), SqlParam::timestamp("until", t1)]).await?;
//! // result.rows: JSON objects typed exactly as `Databricks::run_statement` types them.
//! ```
//!
//! # The SQL it runs
//! Real SQL over an in-memory SQLite database holding `system.access.audit`,
//! `system.access.table_lineage`, `system.data_classification.results` and
//! `system.information_schema.{catalog,schema,table}_privileges` (load rows with `LocalSql::load`). Statements are translated from this Databricks subset:
//! - `SELECT` queries only (`WITH` common table expressions, subqueries, `JOIN … ON`,
//!   `WHERE`, `GROUP BY` (expressions or ordinals), `HAVING`, `ORDER BY … [NULLS FIRST|LAST]`,
//!   `LIMIT`/`OFFSET`, `UNION [ALL]`, `EXCEPT`, `INTERSECT`, `DISTINCT`, `CASE`, `IN`,
//!   `BETWEEN`, `IS [NOT] NULL`, `IS [NOT] DISTINCT FROM`, `<=>`, window functions with `OVER`,
//!   aggregates with `FILTER (WHERE …)`);
//! - three-part table names (unknown ones fail with `TABLE_OR_VIEW_NOT_FOUND`), aliases;
//! - struct fields and map keys: `user_identity.email`, `response.status_code`,
//!   `request_params.key`, `request_params['key']`, `alias.request_params.key`;
//! - named parameters `:name` with types STRING, INT/BIGINT/SMALLINT/TINYINT, DOUBLE/FLOAT/
//!   DECIMAL, BOOLEAN, DATE, TIMESTAMP (positional `?` fails, as in Databricks; a marker without
//!   a parameter fails with `UNBOUND_SQL_PARAMETER`);
//! - Spark literals: `'…'` and `"…"` strings with backslash escapes, backtick identifiers,
//!   `TIMESTAMP '…'`, `DATE '…'`, numbers with `L`/`D` suffixes;
//! - `<timestamp or date> ± INTERVAL n SECOND|MINUTE|HOUR|DAY|WEEK|MONTH|YEAR[S]`;
//! - `LIKE` (case-sensitive), `ILIKE`, `RLIKE`/`REGEXP`, `regexp_like`;
//! - functions: `lower upper length trim ltrim rtrim substr substring replace instr locate
//!   left right concat concat_ws coalesce ifnull nvl nullif nvl2 if greatest least abs round
//!   startswith endswith contains to_json get_json_object element_at size array_size
//!   array_contains map_keys array count count(DISTINCT) count_if approx_count_distinct sum avg
//!   min max any_value first last collect_set collect_list array_agg row_number rank dense_rank
//!   ntile lag lead first_value last_value array_join split_part (parts 1 and 2) date_format
//!   (patterns of yyyy MM dd HH mm ss ss.SSS) cast/try_cast/:: (to STRING, INT, BIGINT, DOUBLE,
//!   DECIMAL, BOOLEAN, DATE, TIMESTAMP) date to_date timestamp to_timestamp current_timestamp
//!   current_date now date_trunc date_add date_sub dateadd timestampadd datediff timestampdiff
//!   unix_timestamp unix_millis from_unixtime timestamp_seconds timestamp_millis hour minute
//!   second day dayofmonth month year dayofweek dayofyear extract`.
//!
//! Outside the subset (DML/DDL, `QUALIFY`, `LATERAL VIEW`, `PIVOT`, `GROUP BY ALL`, `SEMI`/
//! `ANTI` joins, format arguments of date functions, …) a statement FAILs with
//! `UNSUPPORTED_FEATURE.FLOODGATE_SIMULATOR`; an unknown column or function fails with
//! `UNRESOLVED_COLUMN…` / `UNRESOLVED_ROUTINE`. Known differences: `to_json` returns the stored
//! JSON text (Databricks omits null fields), `DECIMAL` is computed as floating point, and result
//! types of arithmetic are inferred (integer arithmetic `LONG`, `/` `DOUBLE`).
//!
//! # Storage
//! So that SQLite compares like Databricks:
//! - `TIMESTAMP` columns hold UTC text `YYYY-MM-DD HH:MM:SS.fff` (sorts and compares as time);
//!   `DATE` columns `YYYY-MM-DD`; results are rendered back as `2026-03-10T21:14:01.120Z`.
//! - struct and map columns (`user_identity`, `response`, `request_params`, ...) and arrays
//!   (`samples`) hold JSON text; field and key access become `json_extract`.
//! - `LIKE` is made case-sensitive (`PRAGMA case_sensitive_like`), as in Databricks.
//!
//! Only queries run (`SELECT` / `WITH`); the tables are changed through `LocalSql::load` (or
//! the simulator handle).

mod db;
mod engine;
mod functions;
mod items;
mod lex;
mod translate;

pub use db::{BoundParam, QueryOutput, SqlDb};
pub use engine::LocalSql;
pub(crate) use translate::{Translated, translate};

use std::fmt;

/// A Databricks column type, as far as the local engine tracks types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    String,
    Int,
    Long,
    Double,
    Boolean,
    Date,
    Timestamp,
    Array,
    Map,
    Struct,
    Null,
}

impl DType {
    /// `(type_name, type_text)` for the statement manifest.
    pub fn manifest(self) -> (&'static str, &'static str) {
        match self {
            DType::String => ("STRING", "STRING"),
            DType::Int => ("INT", "INT"),
            DType::Long => ("LONG", "BIGINT"),
            DType::Double => ("DOUBLE", "DOUBLE"),
            DType::Boolean => ("BOOLEAN", "BOOLEAN"),
            DType::Date => ("DATE", "DATE"),
            DType::Timestamp => ("TIMESTAMP", "TIMESTAMP"),
            DType::Array => ("ARRAY", "ARRAY<STRING>"),
            DType::Map => ("MAP", "MAP<STRING, STRING>"),
            DType::Struct => ("STRUCT", "STRUCT"),
            DType::Null => ("NULL", "VOID"),
        }
    }

    /// The type of a statement parameter of this API type name.
    pub fn from_param_type(t: &str) -> Option<DType> {
        let t = t.trim().to_ascii_uppercase();
        let base = t.split('(').next().unwrap_or("");
        Some(match base {
            "STRING" | "VARCHAR" | "CHAR" => DType::String,
            "INT" | "INTEGER" | "SMALLINT" | "TINYINT" | "SHORT" | "BYTE" => DType::Int,
            "BIGINT" | "LONG" => DType::Long,
            "DOUBLE" | "FLOAT" | "REAL" | "DECIMAL" | "DEC" | "NUMERIC" => DType::Double,
            "BOOLEAN" => DType::Boolean,
            "DATE" => DType::Date,
            "TIMESTAMP" | "TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" => DType::Timestamp,
            _ => return None,
        })
    }
}

/// A statement failure, as Databricks reports it in `status.error` (HTTP 200, state FAILED).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// Spark error class, e.g. `TABLE_OR_VIEW_NOT_FOUND`.
    pub class: String,
    pub sql_state: &'static str,
    pub message: String,
}

impl SqlError {
    pub fn new(class: &str, sql_state: &'static str, message: impl Into<String>) -> SqlError {
        SqlError { class: class.to_string(), sql_state, message: message.into() }
    }
    pub fn syntax(near: &str) -> SqlError {
        SqlError::new("PARSE_SYNTAX_ERROR", "42601", format!("Syntax error at or near '{near}'."))
    }
    /// Something Databricks runs but the local engine does not.
    pub fn unsupported(what: &str) -> SqlError {
        SqlError::new(
            "UNSUPPORTED_FEATURE.FLOODGATE_SIMULATOR",
            "0A000",
            format!(
                "The floodgate local SQL engine (the Databricks simulator's) does not support {what}; see the supported subset in docs/detections.md."
            ),
        )
    }
    pub fn table_not_found(parts: &[String]) -> SqlError {
        let shown: Vec<String> = parts.iter().map(|p| format!("`{p}`")).collect();
        SqlError::new(
            "TABLE_OR_VIEW_NOT_FOUND",
            "42P01",
            format!(
                "The table or view {} cannot be found. Verify the spelling and correctness of the schema and catalog.",
                shown.join(".")
            ),
        )
    }
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {} SQLSTATE: {}", self.class, self.message, self.sql_state)
    }
}

/// One system table: its Databricks name and columns.
pub struct TableDef {
    pub name: &'static str,
    pub columns: &'static [(&'static str, DType)],
}

use DType::{Array, Date, Double, Int, Map, String as Str, Struct, Timestamp};

pub const AUDIT: TableDef = TableDef {
    name: "system.access.audit",
    columns: &[
        ("account_id", Str),
        ("workspace_id", Str),
        ("version", Str),
        ("event_time", Timestamp),
        ("event_date", Date),
        ("source_ip_address", Str),
        ("user_agent", Str),
        ("session_id", Str),
        ("user_identity", Struct),
        ("service_name", Str),
        ("action_name", Str),
        ("request_id", Str),
        ("request_params", Map),
        ("response", Struct),
        ("audit_level", Str),
        ("event_id", Str),
        ("identity_metadata", Struct),
    ],
};

pub const TABLE_LINEAGE: TableDef = TableDef {
    name: "system.access.table_lineage",
    columns: &[
        ("account_id", Str),
        ("metastore_id", Str),
        ("workspace_id", Str),
        ("entity_type", Str),
        ("entity_id", Str),
        ("entity_run_id", Str),
        ("source_table_full_name", Str),
        ("source_table_catalog", Str),
        ("source_table_schema", Str),
        ("source_table_name", Str),
        ("source_path", Str),
        ("source_type", Str),
        ("target_table_full_name", Str),
        ("target_table_catalog", Str),
        ("target_table_schema", Str),
        ("target_table_name", Str),
        ("target_path", Str),
        ("target_type", Str),
        ("created_by", Str),
        ("event_time", Timestamp),
        ("event_date", Date),
        ("event_id", Str),
        ("statement_id", Str),
    ],
};

pub const DATA_CLASSIFICATION: TableDef = TableDef {
    name: "system.data_classification.results",
    columns: &[
        ("latest_detected_time", Timestamp),
        ("first_detected_time", Timestamp),
        ("catalog_id", Str),
        ("table_id", Str),
        ("catalog_name", Str),
        ("schema_name", Str),
        ("table_name", Str),
        ("column_name", Str),
        ("data_type", Str),
        ("class_tag", Str),
        ("samples", Array),
        ("confidence", Str),
        ("frequency", Double),
    ],
};

pub const TABLE_PRIVILEGES: TableDef = TableDef {
    name: "system.information_schema.table_privileges",
    columns: &[
        ("grantor", Str),
        ("grantee", Str),
        ("table_catalog", Str),
        ("table_schema", Str),
        ("table_name", Str),
        ("privilege_type", Str),
        ("is_grantable", Str),
        ("inherited_from", Str),
    ],
};

pub const SCHEMA_PRIVILEGES: TableDef = TableDef {
    name: "system.information_schema.schema_privileges",
    columns: &[
        ("grantor", Str),
        ("grantee", Str),
        ("catalog_name", Str),
        ("schema_name", Str),
        ("privilege_type", Str),
        ("is_grantable", Str),
        ("inherited_from", Str),
    ],
};

pub const CATALOG_PRIVILEGES: TableDef = TableDef {
    name: "system.information_schema.catalog_privileges",
    columns: &[
        ("grantor", Str),
        ("grantee", Str),
        ("catalog_name", Str),
        ("privilege_type", Str),
        ("is_grantable", Str),
        ("inherited_from", Str),
    ],
};

pub const TABLES: [&TableDef; 6] =
    [&AUDIT, &TABLE_LINEAGE, &DATA_CLASSIFICATION, &TABLE_PRIVILEGES, &SCHEMA_PRIVILEGES, &CATALOG_PRIVILEGES];

/// Fields of the struct columns, and the value type of map columns.
pub fn field_type(column: &str, field: &str) -> DType {
    match (column, field) {
        ("response", "status_code") => Int,
        _ => Str,
    }
}

/// Columns stored as JSON whose fields/keys can be read with `.` or `[...]`.
pub fn is_nested(column: &str) -> bool {
    matches!(column, "user_identity" | "response" | "request_params" | "identity_metadata")
}

/// The type of a column name in any of the tables.
pub fn column_type(name: &str) -> Option<DType> {
    TABLES.iter().flat_map(|t| t.columns.iter()).find(|(c, _)| c.eq_ignore_ascii_case(name)).map(|(_, t)| *t)
}

pub fn table(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().copied().find(|t| t.name.eq_ignore_ascii_case(name))
}

/// Canonical stored form of a timestamp: UTC `YYYY-MM-DD HH:MM:SS.fff`. Accepts RFC 3339,
/// `YYYY-MM-DD HH:MM:SS[.f]` (taken as UTC) and a bare date (midnight).
pub fn canonical_timestamp(s: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let s = s.trim();
    let dt = if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        t.to_offset(time::UtcOffset::UTC)
    } else if let Ok(t) = time::PrimitiveDateTime::parse(
        &s.replacen('T', " ", 1),
        &time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"),
    ) {
        t.assume_utc()
    } else if let Ok(d) = time::Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]")) {
        d.midnight().assume_utc()
    } else {
        return None;
    };
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    ))
}

/// Stored timestamp → the text Databricks returns in `JSON_ARRAY` results.
pub fn render_timestamp(stored: &str) -> String {
    match canonical_timestamp(stored) {
        Some(c) => format!("{}T{}Z", &c[..10], &c[11..]),
        None => stored.to_string(),
    }
}

pub fn canonical_date(s: &str) -> Option<String> {
    let s = s.trim();
    if let Ok(d) = time::Date::parse(s, &time::macros::format_description!("[year]-[month]-[day]")) {
        return Some(format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()));
    }
    canonical_timestamp(s).map(|t| t[..10].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_normalise_to_one_sortable_form() {
        assert_eq!(canonical_timestamp("2026-03-10T08:55:02.114+00:00").unwrap(), "2026-03-10 08:55:02.114");
        assert_eq!(canonical_timestamp("2026-03-10T10:55:02+02:00").unwrap(), "2026-03-10 08:55:02.000");
        assert_eq!(canonical_timestamp("2026-03-10 21:00:00").unwrap(), "2026-03-10 21:00:00.000");
        assert_eq!(canonical_timestamp("2026-03-10").unwrap(), "2026-03-10 00:00:00.000");
        assert_eq!(render_timestamp("2026-03-10 21:14:01.120"), "2026-03-10T21:14:01.120Z");
        assert!(canonical_timestamp("yesterday").is_none());
        assert_eq!(canonical_date("2026-03-10T23:00:00Z").unwrap(), "2026-03-10");
    }
}
