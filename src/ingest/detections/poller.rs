//! The detection poller: runs each enabled detection on its schedule, window after window, and
//! commits each window's alerts together with the watermark that says the window is done.
//!
//! One window, start to end:
//! 1. take the lease on the detection's watermark row (another process holding it: skip);
//! 2. plan the window: new events are `[watermark, now − lag)`, at most `max_lookback` long; the
//!    statement's `:since` reaches back `max(overlap, lookback)` before the watermark so late
//!    events and aggregation periods are seen;
//! 3. run the SQL through the Statement Execution API with `:since`/`:until` (and their dates)
//!    as typed parameters, renewing the lease while it runs;
//! 4. turn rows into alerts (external id = detection id + row key) and, in ONE durable
//!    transaction, store them and move the watermark — fenced on the lease and on the old
//!    watermark, so a process that lost its lease commits nothing.
//!
//! A crash anywhere before the commit leaves the watermark where it was: the window runs again
//! and its rows are duplicates of nothing. A crash after it leaves nothing to redo. Errors
//! release the lease with the error recorded and the same window is tried on the next tick,
//! with backoff; each detection runs in its own task, so one failing or slow detection never
//! holds up another. This module never builds SQL from values.

use super::finding::{self, RowError, Window};
use super::model::Detection;
use crate::alert::Alert;
use crate::engine::Engine;
use crate::store::{self, StoreError, new_id};
use floodgate_databricks::{Databricks, QueryResult, SqlParam, StatementOptions};
use floodgate_sdk::ActionError;
use std::sync::Arc;
use std::time::Duration;

/// Most rows one window may return. A window that returns more is an error rather than a
/// silently dropped tail: narrow the SQL (aggregate) or shorten `max_lookback`.
pub const MAX_ROWS: u64 = 10_000;
/// Longest wait between attempts of a failing detection.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// How windows are cut, and who this process is.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// The alerts' source (`databricks-detection`).
    pub source: String,
    pub overlap: Duration,
    pub lag: Duration,
    pub max_lookback: Duration,
    /// How long a claim on a watermark row lasts without renewal.
    pub lease: Duration,
    /// Workspace for detections that name none (else the connector's default).
    pub workspace: Option<String>,
    /// This process's lease-owner id.
    pub owner: String,
}

/// One detection in one workspace: what gets a watermark and a schedule.
#[derive(Debug, Clone)]
pub struct Job {
    pub detection: Arc<Detection>,
    pub workspace: String,
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not due: less than the detection's interval of new events since the watermark.
    Idle,
    /// Another process holds the lease.
    Busy,
    /// The window's alerts and watermark are committed.
    Committed(Committed),
    /// The lease was lost while the statement ran; another process owns the window now and
    /// nothing was stored.
    Lost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new events' window: the watermark moved from `since` to `until`.
    pub window: Window,
    /// What the statement was asked for (`:since` includes overlap and lookback).
    pub statement: Window,
    pub rows: usize,
    pub new_alerts: usize,
    pub duplicates: usize,
    /// More windows are due at once (the detection is catching up).
    pub behind: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DetectionError {
    #[error("statement failed ({}): {}", .0.code(), .0.message())]
    Statement(ActionError),
    /// The local SQL engine could not run the statement (outside the subset, or wrong SQL).
    #[error("statement failed on the local SQL engine: {0}")]
    Local(String),
    #[error(
        "the statement returned more than {MAX_ROWS} rows for one window; aggregate in the SQL or lower [detections] max_lookback"
    )]
    TooManyRows,
    #[error("{0}")]
    Row(#[from] RowError),
    #[error("cannot store the window: {0}")]
    Store(#[from] StoreError),
}

impl DetectionError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            DetectionError::Statement(e) => e.retry_after_hint(),
            _ => None,
        }
    }
}

/// The window a watermark and a clock call for, or `None` when less than `interval` of new
/// events has accumulated (the window is not due yet). Deciding "due" from the watermark rather
/// than from a timer in memory keeps the schedule when several processes share the work or one
/// restarts. Returns `(new events' window, statement window)`.
pub fn plan_window(
    watermark: i64,
    now: i64,
    s: &PollerSettings,
    interval: Duration,
    lookback: Duration,
) -> Option<(Window, Window)> {
    let end = now - s.lag.as_millis() as i64;
    if end <= watermark || end - watermark < interval.as_millis() as i64 {
        return None;
    }
    let until = end.min(watermark.saturating_add(s.max_lookback.as_millis() as i64));
    let reach = s.overlap.max(lookback).as_millis() as i64;
    Some((Window { since: watermark, until }, Window { since: watermark - reach, until }))
}

/// Where a detection with no watermark yet starts.
pub fn initial_watermark(now: i64, s: &PollerSettings) -> i64 {
    now - s.lag.as_millis() as i64 - s.max_lookback.as_millis() as i64
}

fn instant(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// The statement's parameters: the window markers the SQL uses, then the detection's own.
pub fn parameters(d: &Detection, w: Window) -> Vec<SqlParam> {
    let mut out = Vec::new();
    for name in &d.markers {
        match name.as_str() {
            "since" => out.push(SqlParam::timestamp("since", instant(w.since))),
            "until" => out.push(SqlParam::timestamp("until", instant(w.until))),
            "since_date" => out.push(SqlParam::date("since_date", instant(w.since).date())),
            // The last day the window touches (`until` itself is excluded).
            "until_date" => out.push(SqlParam::date("until_date", instant(w.until - 1).date())),
            _ => {}
        }
    }
    out.extend(d.params.iter().cloned());
    out
}

/// Runs a detection's statement over `statement` and builds its alerts, storing nothing
/// (also what `floodgate detections test` prints).
pub async fn evaluate(
    dbx: &Databricks,
    job: &Job,
    source: &str,
    window: Window,
    statement: Window,
    now: i64,
) -> Result<(QueryResult, Vec<Alert>), DetectionError> {
    let d = &job.detection;
    let opts = StatementOptions { row_limit: Some(MAX_ROWS + 1), ..StatementOptions::default() };
    let result = dbx
        .run_statement_with(Some(&job.workspace), &d.sql, &parameters(d, statement), &opts)
        .await
        .map_err(DetectionError::Statement)?;
    let alerts = alerts_from(d, source, &job.workspace, &result, window, now)?;
    Ok((result, alerts))
}

/// A statement's rows as alerts, one per row: the one place result rows become alerts, for
/// the poller (rows from a warehouse) and for local runs (rows from the local SQL engine).
pub fn alerts_from(
    d: &Detection,
    source: &str,
    workspace: &str,
    result: &QueryResult,
    window: Window,
    now: i64,
) -> Result<Vec<Alert>, DetectionError> {
    if result.truncated || result.rows.len() as u64 > MAX_ROWS {
        return Err(DetectionError::TooManyRows);
    }
    let mut alerts = Vec::with_capacity(result.rows.len());
    for row in &result.rows {
        alerts.push(finding::alert(d, source, workspace, row, window, new_id("alr"), now)?);
    }
    Ok(alerts)
}

/// Runs detections against one Databricks connector, committing through one engine.
pub struct Poller {
    engine: Engine,
    dbx: Arc<Databricks>,
    jobs: Vec<Job>,
    settings: PollerSettings,
}

impl Poller {
    /// One job per enabled detection and workspace. Every workspace must be configured with a
    /// warehouse; problems are all reported at once.
    pub fn new(
        engine: Engine,
        dbx: Arc<Databricks>,
        detections: Vec<Detection>,
        settings: PollerSettings,
    ) -> Result<Poller, String> {
        let mut jobs = Vec::new();
        let mut problems = Vec::new();
        let default = settings.workspace.clone().or_else(|| dbx.config().default_workspace.clone());
        for d in detections.into_iter().filter(|d| d.enabled) {
            let d = Arc::new(d);
            let names =
                if d.workspaces.is_empty() { default.clone().into_iter().collect() } else { d.workspaces.clone() };
            if names.is_empty() {
                problems.push(format!(
                    "{}: names no workspace, and neither [detections] workspace nor [connectors.databricks] default_workspace is set",
                    d.path
                ));
            }
            for name in names {
                match dbx.config().workspace(&name) {
                    Some(w) if w.warehouse_id.is_some() => {
                        jobs.push(Job { detection: d.clone(), workspace: w.name.clone() })
                    }
                    Some(w) => problems.push(format!(
                        "{}: workspace {:?} has no warehouse_id in [connectors.databricks.workspaces.{}]",
                        d.path, w.name, w.name
                    )),
                    None => problems.push(format!(
                        "{}: workspace {name:?} is not configured under [connectors.databricks.workspaces]",
                        d.path
                    )),
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        Ok(Poller { engine, dbx, jobs, settings })
    }

    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    pub fn settings(&self) -> &PollerSettings {
        &self.settings
    }

    /// One attempt at the job's next window (see the module docs).
    pub async fn run_window(&self, job: &Job) -> Result<Outcome, DetectionError> {
        let store = self.engine.store();
        let (id, ws, owner) = (job.detection.id.as_str(), job.workspace.as_str(), self.settings.owner.as_str());
        let lease_ms = self.settings.lease.as_millis() as i64;
        let now = self.engine.now();
        let Some(claimed) =
            store.claim_detection(id, ws, owner, now, now + lease_ms, initial_watermark(now, &self.settings)).await?
        else {
            return Ok(Outcome::Busy);
        };
        let d = &job.detection;
        let Some((window, statement)) = plan_window(claimed.watermark, now, &self.settings, d.interval, d.lookback)
        else {
            store.release_detection(id, ws, owner, None, now).await?;
            return Ok(Outcome::Idle);
        };
        let result = self.evaluate_leased(job, window, statement, now).await;
        let alerts = match result {
            Ok((_, alerts)) => alerts,
            Err(e) => {
                let _ = store.release_detection(id, ws, owner, Some(&e.to_string()), self.engine.now()).await;
                return Err(e);
            }
        };
        match self.commit(job, claimed.watermark, window, &alerts).await {
            Ok(Some((new_alerts, duplicates))) => Ok(Outcome::Committed(Committed {
                window,
                statement,
                rows: alerts.len(),
                new_alerts,
                duplicates,
                behind: window.until < now - self.settings.lag.as_millis() as i64,
            })),
            Ok(None) => Ok(Outcome::Lost),
            Err(e) => {
                let _ = store.release_detection(id, ws, owner, Some(&e.to_string()), self.engine.now()).await;
                Err(e.into())
            }
        }
    }

    /// `evaluate`, renewing the lease while the statement runs (a warehouse may take minutes
    /// to start).
    async fn evaluate_leased(
        &self,
        job: &Job,
        window: Window,
        statement: Window,
        now: i64,
    ) -> Result<(QueryResult, Vec<Alert>), DetectionError> {
        let heartbeat = {
            let store = self.engine.store().clone();
            let engine = self.engine.clone();
            let (id, ws, owner) = (job.detection.id.clone(), job.workspace.clone(), self.settings.owner.clone());
            let lease = self.settings.lease;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    let until = engine.now() + lease.as_millis() as i64;
                    match store.renew_detection_lease(&id, &ws, &owner, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(detection = %id, workspace = %ws, "detection lease lost; this window will not be committed here");
                            return;
                        }
                        Err(e) => tracing::warn!(detection = %id, error = %e, "cannot renew the detection lease"),
                    }
                }
            })
        };
        let result = evaluate(&self.dbx, job, &self.settings.source, window, statement, now).await;
        heartbeat.abort();
        result
    }

    /// Stores the alerts and moves the watermark in one durable transaction. `None`: fenced
    /// out (lease lost or the watermark moved), nothing stored.
    async fn commit(
        &self,
        job: &Job,
        from: i64,
        window: Window,
        alerts: &[Alert],
    ) -> Result<Option<(usize, usize)>, StoreError> {
        let engine = &self.engine;
        let batch: Vec<_> = alerts.iter().map(|a| crate::ingest::route(engine, a)).collect();
        let now = engine.now();
        let mut tx = engine.store().begin_durable().await?;
        let accepted = store::accept_alerts_in(&mut tx, &batch, now).await?;
        let new_alerts = accepted.iter().filter(|a| !a.duplicate).count();
        let moved = store::detections::advance_watermark_in(
            &mut tx,
            &job.detection.id,
            &job.workspace,
            &self.settings.owner,
            from,
            window.until,
            new_alerts as i64,
            now,
        )
        .await?;
        if !moved {
            tracing::warn!(detection = %job.detection.id, workspace = %job.workspace, "another process committed this window first; discarding ours");
            return Ok(None);
        }
        crate::failpoint!("detections.before_commit");
        tx.commit().await?;
        let mut started = false;
        for a in &accepted {
            started |= a.started_run();
            let outcome = a.outcome();
            engine.metrics().alert(&self.settings.source, outcome);
        }
        if started {
            engine.wake();
        }
        Ok(Some((new_alerts, accepted.len() - new_alerts)))
    }

    /// Runs every job until it is caught up (or fails), one after the other. For tests and
    /// `floodgate detections run-once`; `floodgate serve` uses `start`.
    pub async fn run_until_caught_up(&self) -> Vec<(Job, Result<Outcome, DetectionError>)> {
        let mut out = Vec::new();
        for job in &self.jobs {
            loop {
                let r = self.run_window(job).await;
                let again = matches!(&r, Ok(Outcome::Committed(c)) if c.behind);
                out.push((job.clone(), r));
                if !again {
                    break;
                }
            }
        }
        out
    }

    /// Starts one task per job; aborting the returned task stops them all.
    pub fn start(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut set = tokio::task::JoinSet::new();
            for (n, job) in self.jobs.iter().cloned().enumerate() {
                let poller = self.clone();
                // Spread the first statements out instead of starting every warehouse query at
                // once, and let `serve` finish starting before the first window.
                let first = Duration::from_millis(250 * (n as u64 + 1)).min(job.detection.interval);
                set.spawn(async move { poller.job_loop(job, first).await });
            }
            while set.join_next().await.is_some() {}
        })
    }

    async fn job_loop(&self, job: Job, first: Duration) {
        tokio::time::sleep(first).await;
        let mut failures: u32 = 0;
        loop {
            let d = &job.detection;
            let wait = match self.run_window(&job).await {
                Ok(outcome) => {
                    if failures > 0 {
                        tracing::info!(detection = %d.id, workspace = %job.workspace, "detection recovered");
                    }
                    failures = 0;
                    match outcome {
                        Outcome::Committed(c) => {
                            tracing::info!(
                                detection = %d.id, workspace = %job.workspace,
                                since = %crate::clock::rfc3339(c.window.since), until = %crate::clock::rfc3339(c.window.until),
                                rows = c.rows, new_alerts = c.new_alerts, duplicates = c.duplicates,
                                "detection window committed"
                            );
                            if c.behind { Duration::ZERO } else { d.interval }
                        }
                        // Another process holds the lease: if it died, the lease expires
                        // within `lease`, and this process takes the window over.
                        Outcome::Busy => d.interval.min(self.settings.lease + Duration::from_secs(1)),
                        Outcome::Lost | Outcome::Idle => d.interval,
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let backoff = d.interval.saturating_mul(1 << (failures - 1).min(16)).min(MAX_BACKOFF);
                    let wait = backoff.max(e.retry_after().unwrap_or(Duration::ZERO));
                    tracing::error!(
                        detection = %d.id, workspace = %job.workspace, failures, retry_in = %crate::duration::format(wait),
                        error = %e,
                        "detection window failed; the watermark did not move and the same window will be tried again"
                    );
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PollerSettings {
        PollerSettings {
            source: "databricks-detection".into(),
            overlap: Duration::from_secs(600),
            lag: Duration::from_secs(60),
            max_lookback: Duration::from_secs(3600),
            lease: Duration::from_secs(30),
            workspace: None,
            owner: "me".into(),
        }
    }

    #[test]
    fn windows_follow_the_watermark_with_overlap_lag_and_catch_up() {
        let s = settings();
        let min = 60_000;
        let every = Duration::from_secs(300);
        // Due: new events since the watermark, the statement reaching back the overlap.
        let (w, st) = plan_window(100 * min, 106 * min, &s, every, Duration::ZERO).unwrap();
        assert_eq!((w.since, w.until), (100 * min, 105 * min));
        assert_eq!((st.since, st.until), (90 * min, 105 * min));
        // A longer lookback (aggregations) widens only the statement.
        let (_, st) = plan_window(100 * min, 106 * min, &s, every, Duration::from_secs(7200)).unwrap();
        assert_eq!(st.since, -20 * min);
        // Far behind: one max_lookback at a time, never a skip.
        let (w, _) = plan_window(0, 1000 * min, &s, every, Duration::ZERO).unwrap();
        assert_eq!((w.since, w.until), (0, 60 * min));
        // Not due: less than an interval of new events (e.g. another process just ran it).
        assert!(plan_window(100 * min, 105 * min, &s, every, Duration::ZERO).is_none());
        assert!(plan_window(100 * min, 100 * min + 30_000, &s, every, Duration::ZERO).is_none());
        assert_eq!(initial_watermark(1000 * min, &s), 939 * min);
    }
}
