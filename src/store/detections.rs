//! Detection watermarks and audit-file progress: the durable memory that makes detections and
//! file intake exactly-once.
//!
//! A detection's watermark says "every window ending at or before this instant has been run and
//! its alerts committed". It moves only inside the caller's transaction that also stores those
//! alerts (`advance_watermark_in`), and only while the caller holds the row's lease, so a
//! window is never skipped (the watermark cannot pass alerts that were not stored) and never
//! committed twice by two processes (the second finds the lease or the watermark moved and
//! rolls back). The lease is a plain owner/expiry pair on the row: it works the same on SQLite
//! and PostgreSQL, expires on its own when a process dies, and is renewed while a statement runs.
//!
//! File progress is the same idea for delivered audit-log files: the read offset moves in the
//! transaction that stores the alerts of the lines before it.
//!
//! Nothing here decides windows or reads files; callers pass the values to store.

use super::{Result, Row, Store, Tx};
use crate::args;

/// One detection's state in one workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WatermarkRow {
    pub detection_id: String,
    pub workspace: String,
    /// Unix ms: the end of the last committed window.
    pub watermark: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// Windows committed so far.
    pub windows: i64,
    /// New alerts stored so far (duplicates not counted).
    pub alerts: i64,
    /// Failed attempts since the last committed window.
    pub failures: i64,
    pub last_error: Option<String>,
    pub last_run_at: Option<i64>,
    pub updated_at: i64,
}

impl WatermarkRow {
    fn from_row(r: &Row) -> Result<WatermarkRow> {
        Ok(WatermarkRow {
            detection_id: r.text("detection_id")?,
            workspace: r.text("workspace")?,
            watermark: r.int("watermark")?,
            lease_owner: r.opt_text("lease_owner")?,
            lease_until: r.opt_int("lease_until")?,
            windows: r.int("windows")?,
            alerts: r.int("alerts")?,
            failures: r.int("failures")?,
            last_error: r.opt_text("last_error")?,
            last_run_at: r.opt_int("last_run_at")?,
            updated_at: r.int("updated_at")?,
        })
    }
}

/// How far one audit-log file has been read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileProgress {
    pub source: String,
    /// Relative to the watched directory, with `/` separators.
    pub path: String,
    /// Bytes consumed: everything before it was turned into alerts (or reported as malformed).
    pub byte_offset: i64,
    /// Lines consumed (for error messages that name a line number).
    pub line_count: i64,
    /// SHA-256 (hex) of the bytes before `byte_offset`.
    pub prefix_sha256: String,
    pub file_size: i64,
    pub modified_ms: i64,
    pub records: i64,
    pub alerts: i64,
    pub malformed: i64,
    pub updated_at: i64,
}

impl FileProgress {
    fn from_row(r: &Row) -> Result<FileProgress> {
        Ok(FileProgress {
            source: r.text("source")?,
            path: r.text("path")?,
            byte_offset: r.int("byte_offset")?,
            line_count: r.int("line_count")?,
            prefix_sha256: r.text("prefix_sha256")?,
            file_size: r.int("file_size")?,
            modified_ms: r.int("modified_ms")?,
            records: r.int("records")?,
            alerts: r.int("alerts")?,
            malformed: r.int("malformed")?,
            updated_at: r.int("updated_at")?,
        })
    }
}

impl Store {
    /// Every detection's state, by detection id then workspace.
    pub async fn watermarks(&self) -> Result<Vec<WatermarkRow>> {
        let rows = self
            .all(
                "SELECT detection_id, workspace, watermark, lease_owner, lease_until, windows, alerts, failures, last_error, last_run_at, updated_at FROM detection_watermarks ORDER BY detection_id, workspace",
                vec![],
            )
            .await?;
        rows.iter().map(WatermarkRow::from_row).collect()
    }

    pub async fn watermark(&self, detection_id: &str, workspace: &str) -> Result<Option<WatermarkRow>> {
        let row = self
            .opt(
                "SELECT detection_id, workspace, watermark, lease_owner, lease_until, windows, alerts, failures, last_error, last_run_at, updated_at FROM detection_watermarks WHERE detection_id = $1 AND workspace = $2",
                args![detection_id, workspace],
            )
            .await?;
        row.as_ref().map(WatermarkRow::from_row).transpose()
    }

    /// Takes the lease on a detection's row (creating the row at `initial_watermark` the first
    /// time) when it is free, expired, or already `owner`'s. Returns the row as claimed, or
    /// `None` when another process holds it.
    pub async fn claim_detection(
        &self,
        detection_id: &str,
        workspace: &str,
        owner: &str,
        now: i64,
        lease_until: i64,
        initial_watermark: i64,
    ) -> Result<Option<WatermarkRow>> {
        let mut tx = self.begin().await?;
        tx.exec(
            "INSERT INTO detection_watermarks (detection_id, workspace, watermark, windows, alerts, failures, updated_at) VALUES ($1, $2, $3, 0, 0, 0, $4) ON CONFLICT (detection_id, workspace) DO NOTHING",
            args![detection_id, workspace, initial_watermark, now],
        )
        .await?;
        // On PostgreSQL a concurrent claimer blocks on the row lock and re-checks this condition
        // after our commit, so exactly one of them gets the lease.
        let claimed = tx
            .exec(
                "UPDATE detection_watermarks SET lease_owner = $3, lease_until = $4 WHERE detection_id = $1 AND workspace = $2 AND (lease_owner IS NULL OR lease_until IS NULL OR lease_until < $5 OR lease_owner = $3)",
                args![detection_id, workspace, owner, lease_until, now],
            )
            .await?;
        if claimed == 0 {
            return Ok(None);
        }
        let row = tx
            .one(
                "SELECT detection_id, workspace, watermark, lease_owner, lease_until, windows, alerts, failures, last_error, last_run_at, updated_at FROM detection_watermarks WHERE detection_id = $1 AND workspace = $2",
                args![detection_id, workspace],
            )
            .await?;
        let row = WatermarkRow::from_row(&row)?;
        tx.commit().await?;
        Ok(Some(row))
    }

    /// Extends `owner`'s lease. False when the lease was lost (expired and taken by another
    /// process): the owner must not commit its window.
    pub async fn renew_detection_lease(
        &self,
        detection_id: &str,
        workspace: &str,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                "UPDATE detection_watermarks SET lease_until = $4 WHERE detection_id = $1 AND workspace = $2 AND lease_owner = $3",
                args![detection_id, workspace, owner, lease_until],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Gives the lease back without moving the watermark; with `error`, records a failed
    /// attempt (the same window is tried again later).
    pub async fn release_detection(
        &self,
        detection_id: &str,
        workspace: &str,
        owner: &str,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        match error {
            Some(e) => {
                tx.exec(
                    "UPDATE detection_watermarks SET lease_owner = NULL, lease_until = NULL, failures = failures + 1, last_error = $4, last_run_at = $5, updated_at = $5 WHERE detection_id = $1 AND workspace = $2 AND lease_owner = $3",
                    args![detection_id, workspace, owner, e, now],
                )
                .await?
            }
            None => {
                tx.exec(
                    "UPDATE detection_watermarks SET lease_owner = NULL, lease_until = NULL WHERE detection_id = $1 AND workspace = $2 AND lease_owner = $3",
                    args![detection_id, workspace, owner],
                )
                .await?
            }
        };
        tx.commit().await?;
        Ok(())
    }

    /// How far a file has been read, if at all.
    pub async fn audit_file_progress(&self, source: &str, path: &str) -> Result<Option<FileProgress>> {
        let row = self
            .opt(
                "SELECT source, path, byte_offset, line_count, prefix_sha256, file_size, modified_ms, records, alerts, malformed, updated_at FROM audit_file_progress WHERE source = $1 AND path = $2",
                args![source, path],
            )
            .await?;
        row.as_ref().map(FileProgress::from_row).transpose()
    }

    /// Every file of a source, by path.
    pub async fn audit_files(&self, source: &str) -> Result<Vec<FileProgress>> {
        let rows = self
            .all(
                "SELECT source, path, byte_offset, line_count, prefix_sha256, file_size, modified_ms, records, alerts, malformed, updated_at FROM audit_file_progress WHERE source = $1 ORDER BY path",
                args![source],
            )
            .await?;
        rows.iter().map(FileProgress::from_row).collect()
    }
}

/// Moves a detection's watermark from `from` to `to` inside the caller's transaction (the one
/// storing the window's alerts), releasing the lease and resetting the failure count. Returns
/// false — and changes nothing — when `owner` no longer holds the lease or the watermark is no
/// longer `from`: another process committed or took over, and the caller must roll back.
#[allow(clippy::too_many_arguments)]
pub async fn advance_watermark_in(
    tx: &mut Tx,
    detection_id: &str,
    workspace: &str,
    owner: &str,
    from: i64,
    to: i64,
    new_alerts: i64,
    now: i64,
) -> Result<bool> {
    let n = tx
        .exec(
            "UPDATE detection_watermarks SET watermark = $5, lease_owner = NULL, lease_until = NULL, windows = windows + 1, alerts = alerts + $6, failures = 0, last_error = NULL, last_run_at = $7, updated_at = $7 WHERE detection_id = $1 AND workspace = $2 AND lease_owner = $3 AND watermark = $4",
            args![detection_id, workspace, owner, from, to, new_alerts, now],
        )
        .await?;
    Ok(n == 1)
}

/// Saves a file's progress inside the caller's transaction (the one storing the alerts of the
/// lines just read), provided nobody else moved it since the caller read `expected` (`None`: the
/// caller saw no progress row). Returns false, changing nothing, when it moved: another process
/// read the same lines, and the caller must roll back.
pub async fn save_file_progress_in(tx: &mut Tx, p: &FileProgress, expected: Option<(i64, &str)>) -> Result<bool> {
    tx.lock_key(&format!("audit-file:{}:{}", p.source, p.path)).await?;
    let current = tx
        .opt(
            "SELECT byte_offset, prefix_sha256 FROM audit_file_progress WHERE source = $1 AND path = $2",
            args![&p.source, &p.path],
        )
        .await?;
    let current = match current {
        Some(r) => Some((r.int("byte_offset")?, r.text("prefix_sha256")?)),
        None => None,
    };
    if current.as_ref().map(|(o, h)| (*o, h.as_str())) != expected {
        return Ok(false);
    }
    tx.exec(
        "INSERT INTO audit_file_progress (source, path, byte_offset, line_count, prefix_sha256, file_size, modified_ms, records, alerts, malformed, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (source, path) DO UPDATE SET byte_offset = excluded.byte_offset, line_count = excluded.line_count, prefix_sha256 = excluded.prefix_sha256, file_size = excluded.file_size, modified_ms = excluded.modified_ms, records = excluded.records, alerts = excluded.alerts, malformed = excluded.malformed, updated_at = excluded.updated_at",
        args![&p.source, &p.path, p.byte_offset, p.line_count, &p.prefix_sha256, p.file_size, p.modified_ms, p.records, p.alerts, p.malformed, p.updated_at],
    )
    .await?;
    Ok(true)
}
