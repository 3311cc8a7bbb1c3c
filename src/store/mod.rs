//! Persistence: one `Store` over SQLite and PostgreSQL.
//!
//! Every state change of the engine is one transaction through `Tx`. SQL is written once with
//! `$N` placeholders (SQLite accepts them too); where the dialects differ (row locks), the
//! caller picks the text with `dialect()`. Values cross as a handful of plain types (i64, f64,
//! text) so the same code binds and reads on both backends — no `Any` driver, no macros.
//!
//! SQLite runs in WAL mode with one writer connection; writes use `BEGIN IMMEDIATE` so a second
//! process (the CLI, another server) waits for the lock instead of failing on a read-to-write
//! upgrade. Reads use a small separate pool. PostgreSQL uses one pool; row locks (`FOR UPDATE`,
//! `SKIP LOCKED`) and advisory locks serialise what must not race between processes.
//!
//! Durability comes in two tiers, chosen per transaction:
//! - `begin_durable()` waits for the disk (SQLite `synchronous=FULL`, PostgreSQL's default
//!   synchronous commit) before the commit returns. It is for what floodgate could not
//!   recompute: accepted alerts (a 2xx promises they are stored), people's votes, and
//!   connectors' vendor references.
//! - `begin()` commits without waiting for the disk (SQLite `synchronous=NORMAL` in WAL mode,
//!   PostgreSQL `synchronous_commit=off`). It is for the engine's own progress. A process crash
//!   (SIGKILL, OOM) loses none of it — the data is in the OS already; only a power loss or kernel
//!   crash can roll back the last few transitions, and the engine then redoes those steps with
//!   the same idempotency keys, which connectors honour. Every later durable commit also makes
//!   all earlier ones durable. This keeps a step's overhead below a millisecond instead of one
//!   fsync (several milliseconds) per transition.

mod approvals;
pub mod audit;
pub mod detections;
mod intake;
pub mod model;
pub mod notices;
mod queries;
mod refs;
pub mod reverts;
mod runs;
pub mod web;

pub use approvals::{Ballot, VoteOutcome, VoteVerdict};
pub use audit::append_event;
pub use intake::{Accepted, NewAlert, Route, accept_alerts_in};
pub use model::*;
pub use queries::{ApprovalDetail, RunDetail, RunFilter, RunSummary};
pub use refs::StoreRefs;
pub use runs::{Claim, Fence};

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row as _, SqlSafeStr};
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
}

impl StoreError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Backend {
    Sqlite { write: SqlitePool, read: SqlitePool },
    Postgres(PgPool),
}

/// The database, whichever it is.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// A value bound to a query.
#[derive(Debug, Clone)]
pub enum Arg {
    Int(i64),
    Float(f64),
    Text(String),
    NullInt,
    NullText,
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<u32> for Arg {
    fn from(v: u32) -> Self {
        Arg::Int(i64::from(v))
    }
}
impl From<usize> for Arg {
    fn from(v: usize) -> Self {
        Arg::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Arg {
    fn from(v: f64) -> Self {
        Arg::Float(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        v.map_or(Arg::NullText, Arg::Text)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        v.map_or(Arg::NullText, |s| Arg::Text(s.to_string()))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

/// `args![a, b, c]` builds the bound values of a query.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { vec![$($crate::store::Arg::from($a)),*] };
}

/// One result row, whichever backend produced it.
pub enum Row {
    Sqlite(SqliteRow),
    Pg(PgRow),
}

impl Row {
    pub fn int(&self, col: &str) -> Result<i64> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<i64, _>(col)?,
            Row::Pg(r) => r.try_get::<i64, _>(col)?,
        })
    }
    pub fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<Option<i64>, _>(col)?,
            Row::Pg(r) => r.try_get::<Option<i64>, _>(col)?,
        })
    }
    pub fn float(&self, col: &str) -> Result<f64> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<f64, _>(col)?,
            Row::Pg(r) => r.try_get::<f64, _>(col)?,
        })
    }
    pub fn text(&self, col: &str) -> Result<String> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<String, _>(col)?,
            Row::Pg(r) => r.try_get::<String, _>(col)?,
        })
    }
    pub fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<Option<String>, _>(col)?,
            Row::Pg(r) => r.try_get::<Option<String>, _>(col)?,
        })
    }
    /// A JSON column (stored as text).
    pub fn json(&self, col: &str) -> Result<serde_json::Value> {
        let t = self.text(col)?;
        serde_json::from_str(&t).map_err(|e| StoreError::Invalid(format!("column {col} holds invalid JSON: {e}")))
    }
    pub fn opt_json(&self, col: &str) -> Result<Option<serde_json::Value>> {
        match self.opt_text(col)? {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| StoreError::Invalid(format!("column {col} holds invalid JSON: {e}"))),
        }
    }
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Float(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::NullInt => q.bind(None::<i64>),
                Arg::NullText => q.bind(None::<String>),
            };
        }
        q
    }};
}

enum TxInner {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// A write transaction. Dropping it without `commit` rolls back.
pub struct Tx {
    inner: TxInner,
    /// The audit chain's head (sequence number and hash) once this transaction has read it.
    audit_head: Option<(i64, String)>,
}

impl Tx {
    fn new(inner: TxInner) -> Tx {
        Tx { inner, audit_head: None }
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner {
            TxInner::Sqlite(_) => Dialect::Sqlite,
            TxInner::Pg(_) => Dialect::Postgres,
        }
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn exec(&mut self, sql: &'static str, args: Vec<Arg>) -> Result<u64> {
        Ok(match &mut self.inner {
            TxInner::Sqlite(tx) => bind_all!(sqlx::query(sql), args).execute(&mut **tx).await?.rows_affected(),
            TxInner::Pg(tx) => bind_all!(sqlx::query(sql), args).execute(&mut **tx).await?.rows_affected(),
        })
    }

    pub async fn all(&mut self, sql: &'static str, args: Vec<Arg>) -> Result<Vec<Row>> {
        Ok(match &mut self.inner {
            TxInner::Sqlite(tx) => {
                bind_all!(sqlx::query(sql), args).fetch_all(&mut **tx).await?.into_iter().map(Row::Sqlite).collect()
            }
            TxInner::Pg(tx) => {
                bind_all!(sqlx::query(sql), args).fetch_all(&mut **tx).await?.into_iter().map(Row::Pg).collect()
            }
        })
    }

    pub async fn opt(&mut self, sql: &'static str, args: Vec<Arg>) -> Result<Option<Row>> {
        Ok(match &mut self.inner {
            TxInner::Sqlite(tx) => bind_all!(sqlx::query(sql), args).fetch_optional(&mut **tx).await?.map(Row::Sqlite),
            TxInner::Pg(tx) => bind_all!(sqlx::query(sql), args).fetch_optional(&mut **tx).await?.map(Row::Pg),
        })
    }

    pub async fn one(&mut self, sql: &'static str, args: Vec<Arg>) -> Result<Row> {
        self.opt(sql, args).await?.ok_or_else(|| StoreError::NotFound("expected a row".into()))
    }

    /// Same as `exec` for SQL assembled at run time from fixed fragments (multi-row `VALUES`
    /// lists), never from user text: values always travel as bound arguments.
    pub async fn exec_dynamic(&mut self, sql: String, args: Vec<Arg>) -> Result<u64> {
        Ok(match &mut self.inner {
            TxInner::Sqlite(tx) => {
                bind_all!(sqlx::query(AssertSqlSafe(sql)), args).execute(&mut **tx).await?.rows_affected()
            }
            TxInner::Pg(tx) => {
                bind_all!(sqlx::query(AssertSqlSafe(sql)), args).execute(&mut **tx).await?.rows_affected()
            }
        })
    }

    /// Same as `all` for SQL assembled at run time from fixed fragments (see `exec_dynamic`).
    pub async fn all_dynamic(&mut self, sql: String, args: Vec<Arg>) -> Result<Vec<Row>> {
        Ok(match &mut self.inner {
            TxInner::Sqlite(tx) => bind_all!(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            TxInner::Pg(tx) => bind_all!(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Pg)
                .collect(),
        })
    }

    /// Inserts (or updates from) many rows with few statements: runs `head VALUES (…), (…) tail`
    /// with `rows` bound, `cols` values each, flattened. `head` and `tail` take no parameters of
    /// their own (on SQLite the list uses anonymous `?` placeholders: sqlx looks every numbered
    /// one up by name, which SQLite answers with a linear scan — quadratic for thousands).
    ///
    /// The rows go in chunks whose sizes are powers of two up to `MAX_ROWS_PER_STATEMENT`, so a
    /// statement never nears either database's bound-parameter limit (SQLite 32766, PostgreSQL
    /// 65535) and each statement has at most nine shapes, which the prepared-statement caches
    /// keep instead of preparing a new text for every batch size.
    pub async fn exec_rows(&mut self, head: &str, tail: &str, cols: usize, rows: Vec<Arg>) -> Result<u64> {
        debug_assert!(cols > 0 && rows.len().is_multiple_of(cols));
        let total = rows.len() / cols;
        let mut rows = rows.into_iter();
        let mut changed = 0;
        for n in pow2_chunks(total) {
            let args: Vec<Arg> = rows.by_ref().take(n * cols).collect();
            let sql = format!("{head}{}{tail}", values_list(self.dialect(), n, cols));
            changed += self.exec_dynamic(sql, args).await?;
        }
        Ok(changed)
    }

    /// Looks many keys up with few statements: runs `head VALUES (…), (…) tail` with `keys`
    /// bound, `cols` values each (no other parameters, as for `exec_rows`), and returns every
    /// row found. A chunk is
    /// padded to a power of two by repeating its last key, so a lookup is one statement per
    /// `MAX_ROWS_PER_STATEMENT` keys with few statement shapes — the caller must accept the
    /// same row twice (e.g. collect into a map), as a join with a repeated key returns it twice.
    pub async fn all_rows(&mut self, head: &str, tail: &str, cols: usize, keys: &[Arg]) -> Result<Vec<Row>> {
        debug_assert!(cols > 0 && keys.len().is_multiple_of(cols));
        let mut out = Vec::new();
        for chunk in keys.chunks(MAX_ROWS_PER_STATEMENT * cols) {
            let n = chunk.len() / cols;
            let padded = n.next_power_of_two();
            let mut args = chunk.to_vec();
            let last = &chunk[chunk.len() - cols..];
            for _ in n..padded {
                args.extend_from_slice(last);
            }
            let sql = format!("{head}{}{tail}", values_list(self.dialect(), padded, cols));
            out.extend(self.all_dynamic(sql, args).await?);
        }
        Ok(out)
    }

    /// On PostgreSQL, holds a transaction-scoped advisory lock on `key` (serialising e.g. the
    /// grouping of alerts with the same key across processes). SQLite has one writer already.
    pub async fn lock_key(&mut self, key: &str) -> Result<()> {
        if let TxInner::Pg(tx) = &mut self.inner {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// `lock_key` for many keys, taken in sorted order (so two transactions locking overlapping
    /// sets cannot deadlock) with one statement per `MAX_ROWS_PER_STATEMENT` keys. No-op on
    /// SQLite.
    pub async fn lock_keys(&mut self, keys: &[String]) -> Result<()> {
        if self.dialect() != Dialect::Postgres || keys.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(MAX_ROWS_PER_STATEMENT) {
            // One row whose columns PostgreSQL evaluates left to right, so the locks are taken
            // in the sorted order. Padding repeats the last key: taking a lock this transaction
            // already holds again is harmless (all are released at commit or rollback).
            let padded = chunk.len().next_power_of_two();
            let mut sql = String::from("SELECT ");
            let mut args = Vec::with_capacity(padded);
            for i in 0..padded {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("pg_advisory_xact_lock(hashtextextended(${}, 0))", i + 1));
                args.push(Arg::from(chunk[i.min(chunk.len() - 1)]));
            }
            self.exec_dynamic(sql, args).await?;
        }
        Ok(())
    }

    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await?,
            TxInner::Pg(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

fn migrations(dialect: Dialect) -> Vec<Migration> {
    let files: &[(i64, &str, &'static str)] = match dialect {
        Dialect::Sqlite => &[
            (1, "engine", include_str!("../../migrations/sqlite/0001_engine.sql")),
            (2, "detections", include_str!("../../migrations/sqlite/0002_detections.sql")),
            (3, "web", include_str!("../../migrations/sqlite/0003_web.sql")),
            (4, "notices", include_str!("../../migrations/sqlite/0004_notices.sql")),
        ],
        Dialect::Postgres => &[
            (1, "engine", include_str!("../../migrations/postgres/0001_engine.sql")),
            (2, "detections", include_str!("../../migrations/postgres/0002_detections.sql")),
            (3, "web", include_str!("../../migrations/postgres/0003_web.sql")),
            (4, "notices", include_str!("../../migrations/postgres/0004_notices.sql")),
        ],
    };
    files
        .iter()
        .map(|(v, name, sql)| {
            Migration::new(*v, Cow::Borrowed(*name), MigrationType::Simple, sql.into_sql_str(), false)
        })
        .collect()
}

impl Store {
    /// Connects to `sqlite://PATH` (created if missing) or `postgres://...`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await?;
            return Ok(Store { backend: Backend::Postgres(pool) });
        }
        let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
            return Err(StoreError::Invalid(format!("database url {url:?} must start with sqlite:// or postgres://")));
        };
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .statement_cache_capacity(256);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(max_connections.clamp(1, 8))
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts.read_only(false))
            .await?;
        Ok(Store { backend: Backend::Sqlite { write, read } })
    }

    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite { .. } => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Applies the migrations this binary carries (idempotent; locked on PostgreSQL).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = Migrator::with_migrations(migrations(self.dialect()));
        match &self.backend {
            Backend::Sqlite { write, .. } => migrator.run(write).await?,
            Backend::Postgres(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Starts a write transaction for the engine's own progress (see the module docs: its
    /// commit does not wait for the disk).
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match &self.backend {
            Backend::Sqlite { write, .. } => {
                Tx::new(TxInner::Sqlite(write.begin_with("PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE").await?))
            }
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SET LOCAL synchronous_commit TO off").execute(&mut *tx).await?;
                Tx::new(TxInner::Pg(tx))
            }
        })
    }

    /// Starts a write transaction whose commit returns only once it is on disk.
    pub async fn begin_durable(&self) -> Result<Tx> {
        Ok(match &self.backend {
            Backend::Sqlite { write, .. } => {
                Tx::new(TxInner::Sqlite(write.begin_with("PRAGMA synchronous = FULL; BEGIN IMMEDIATE").await?))
            }
            Backend::Postgres(pool) => Tx::new(TxInner::Pg(pool.begin().await?)),
        })
    }

    /// Reads outside a transaction (each statement sees committed data).
    pub async fn all(&self, sql: &'static str, args: Vec<Arg>) -> Result<Vec<Row>> {
        Ok(match &self.backend {
            Backend::Sqlite { read, .. } => {
                bind_all!(sqlx::query(sql), args).fetch_all(read).await?.into_iter().map(Row::Sqlite).collect()
            }
            Backend::Postgres(pool) => {
                bind_all!(sqlx::query(sql), args).fetch_all(pool).await?.into_iter().map(Row::Pg).collect()
            }
        })
    }

    /// Same as `all` for SQL assembled at run time from fixed fragments (filters), never from
    /// user text: values always travel as bound arguments.
    pub async fn all_dynamic(&self, sql: String, args: Vec<Arg>) -> Result<Vec<Row>> {
        Ok(match &self.backend {
            Backend::Sqlite { read, .. } => bind_all!(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(read)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Backend::Postgres(pool) => bind_all!(sqlx::query(AssertSqlSafe(sql)), args)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Pg)
                .collect(),
        })
    }

    pub async fn opt(&self, sql: &'static str, args: Vec<Arg>) -> Result<Option<Row>> {
        Ok(self.all(sql, args).await?.into_iter().next())
    }

    /// Checks the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        self.all("SELECT 1 AS one", vec![]).await.map(|_| ())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// The most rows one multi-row statement carries (see `Tx::exec_rows`): 256 rows of up to 12
/// columns stay far below SQLite's 32766 and PostgreSQL's 65535 bound parameters.
pub const MAX_ROWS_PER_STATEMENT: usize = 256;

/// Splits `n` rows into chunks of at most `MAX_ROWS_PER_STATEMENT` rows whose sizes are powers
/// of two, largest first (300 → 256, 32, 8, 4).
fn pow2_chunks(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    while n > 0 {
        let c = if n >= MAX_ROWS_PER_STATEMENT { MAX_ROWS_PER_STATEMENT } else { 1 << n.ilog2() };
        out.push(c);
        n -= c;
    }
    out
}

/// `($1, $2), ($3, $4)` (PostgreSQL) or `(?, ?), (?, ?)` (SQLite) for `rows` rows of `cols`
/// placeholders.
fn values_list(dialect: Dialect, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut p = 1;
    for r in 0..rows {
        s.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            match dialect {
                Dialect::Sqlite => s.push('?'),
                Dialect::Postgres => {
                    s.push('$');
                    s.push_str(&p.to_string());
                }
            }
            p += 1;
        }
        s.push(')');
    }
    s
}

/// A new identifier: a readable prefix and a time-ordered UUID (`run_0192...`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_and_cover_every_row() {
        assert_eq!(pow2_chunks(0), Vec::<usize>::new());
        assert_eq!(pow2_chunks(1), vec![1]);
        assert_eq!(pow2_chunks(300), vec![256, 32, 8, 4]);
        assert_eq!(pow2_chunks(512), vec![256, 256]);
        for n in 0..2000 {
            let c = pow2_chunks(n);
            assert_eq!(c.iter().sum::<usize>(), n);
            assert!(c.iter().all(|x| x.is_power_of_two() && *x <= MAX_ROWS_PER_STATEMENT));
        }
    }

    #[test]
    fn values_lists_number_placeholders_in_order() {
        assert_eq!(values_list(Dialect::Postgres, 1, 1), "($1)");
        assert_eq!(values_list(Dialect::Postgres, 2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(Dialect::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }
}
