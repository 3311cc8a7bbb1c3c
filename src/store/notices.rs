//! Approval notices: what each channel (Slack, Teams, PagerDuty) has been told about an
//! approval. The notifier finds approvals whose notices lag behind them, claims one (channel,
//! approval) pair with a short lease, talks to the vendor, and records what it did, fenced by
//! the attempt it claimed, so two notifiers (or one that lost its lease) never both record.

use super::{ApprovalRow, Result, Row, Store, Tx, append_event};
use crate::args;
use serde_json::{Value, json};

/// One approval and what one channel has seen of it.
#[derive(Debug, Clone)]
pub struct NoticeWork {
    pub approval: ApprovalRow,
    pub channel: String,
    /// Highest escalation level announced (-1: not even the request).
    pub level_sent: i64,
    pub decided_sent: bool,
    /// Where earlier posts are (Slack: `[{channel, ts}]`).
    pub refs: Value,
    /// Consecutive failures of the current delivery.
    pub failures: i64,
    /// The row's claim counter when read (0 before the first claim); claims are fenced on it.
    pub attempt: i64,
}

/// A claimed delivery: complete it with `notice_done` or `notice_failed`.
#[derive(Debug, Clone)]
pub struct NoticeClaim {
    pub approval_id: String,
    pub channel: String,
    pub attempt: i64,
}

/// What a finished delivery leaves behind.
#[derive(Debug, Clone)]
pub struct NoticeDone {
    pub level_sent: i64,
    pub decided_sent: bool,
    pub refs: Value,
    /// Timeline event kind and body, e.g. `approval_notified` `{channel, what}`.
    pub event: Option<Value>,
}

/// Pending approvals not yet announced at their current escalation level (the
/// `approvals_pending` index finds them).
const DUE_PENDING: &str = "SELECT a.id, a.run_id, a.step_exec_id, a.step_id, a.incident_id, a.state, a.groups_json, a.quorum, a.timeout_ms, a.deadline, a.on_timeout, a.escalation_json, a.escalation_level, a.target_user, a.summary, a.plan, a.auto_rule, a.decided_at, a.decided_reason, a.created_at, \
       n.level_sent AS n_level, n.decided_sent AS n_decided, n.refs AS n_refs, n.failures AS n_failures, n.attempt AS n_attempt \
     FROM approvals a LEFT JOIN approval_notices n ON n.approval_id = a.id AND n.channel = $1 \
     WHERE a.state = 'pending' AND a.auto_rule IS NULL AND (n.run_after IS NULL OR n.run_after <= $2) \
       AND (n.level_sent IS NULL OR n.level_sent < a.escalation_level) \
     ORDER BY a.created_at LIMIT $3";

/// Decided approvals whose decision a channel that announced them has not shown yet (found
/// from the notice rows, so old decided approvals are never scanned).
const DUE_DECIDED: &str = "SELECT a.id, a.run_id, a.step_exec_id, a.step_id, a.incident_id, a.state, a.groups_json, a.quorum, a.timeout_ms, a.deadline, a.on_timeout, a.escalation_json, a.escalation_level, a.target_user, a.summary, a.plan, a.auto_rule, a.decided_at, a.decided_reason, a.created_at, \
       n.level_sent AS n_level, n.decided_sent AS n_decided, n.refs AS n_refs, n.failures AS n_failures, n.attempt AS n_attempt \
     FROM approval_notices n JOIN approvals a ON a.id = n.approval_id \
     WHERE n.channel = $1 AND n.decided_sent = 0 AND n.run_after <= $2 AND a.state <> 'pending' \
     ORDER BY a.created_at LIMIT $3";

impl Store {
    /// Approvals whose notices on `channel` lag behind them and are not leased or backing off:
    /// pending ones not yet announced (or not at their current escalation level), and decided
    /// ones whose decision the channel has not shown yet. Approvals decided before anything was
    /// announced are not listed: there is nothing to update.
    pub async fn notices_due(&self, channel: &str, now: i64, limit: i64) -> Result<Vec<NoticeWork>> {
        let mut out = Vec::new();
        for sql in [DUE_DECIDED, DUE_PENDING] {
            for r in self.all(sql, args![channel, now, limit]).await? {
                out.push(work(&r, channel)?);
            }
        }
        Ok(out)
    }

    /// Claims one delivery for `lease_ms`. `None` when someone else holds it, or when the row
    /// moved on since `w` was read (another notifier delivered it meanwhile): the claim is
    /// fenced on the attempt `w` saw, so stale work is never delivered twice.
    pub async fn claim_notice(&self, w: &NoticeWork, now: i64, lease_ms: i64) -> Result<Option<NoticeClaim>> {
        let mut tx = self.begin().await?;
        tx.exec(
            "INSERT INTO approval_notices (approval_id, channel, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            args![&w.approval.id, &w.channel, now],
        )
        .await?;
        let n = tx
            .exec(
                "UPDATE approval_notices SET attempt = attempt + 1, run_after = $1, updated_at = $2 WHERE approval_id = $3 AND channel = $4 AND attempt = $5 AND run_after <= $2",
                args![now + lease_ms, now, &w.approval.id, &w.channel, w.attempt],
            )
            .await?;
        tx.commit().await?;
        Ok((n == 1).then(|| NoticeClaim {
            approval_id: w.approval.id.clone(),
            channel: w.channel.clone(),
            attempt: w.attempt + 1,
        }))
    }

    /// Records a finished delivery (and its timeline event) if the claim still holds.
    /// Durable: it holds where the posts are (a Slack `ts`), which cannot be found again.
    pub async fn notice_done(&self, c: &NoticeClaim, a: &ApprovalRow, done: &NoticeDone, now: i64) -> Result<bool> {
        let mut tx = self.begin_durable().await?;
        let n = tx
            .exec(
                "UPDATE approval_notices SET level_sent = $1, decided_sent = $2, refs = $3, run_after = 0, failures = 0, last_error = NULL, updated_at = $4 WHERE approval_id = $5 AND channel = $6 AND attempt = $7",
                args![
                    done.level_sent,
                    i64::from(done.decided_sent),
                    done.refs.to_string(),
                    now,
                    &c.approval_id,
                    &c.channel,
                    c.attempt
                ],
            )
            .await?;
        if n == 1
            && let Some(event) = &done.event
        {
            notice_event(&mut tx, a, "approval_notified", event, now).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Records a failed delivery: retried at `retry_at`. The first failure of a delivery goes
    /// on the timeline so responders know a channel did not get the request.
    pub async fn notice_failed(
        &self,
        c: &NoticeClaim,
        a: &ApprovalRow,
        error: &str,
        retry_at: i64,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let failures = tx
            .opt(
                "SELECT failures FROM approval_notices WHERE approval_id = $1 AND channel = $2 AND attempt = $3",
                args![&c.approval_id, &c.channel, c.attempt],
            )
            .await?;
        let Some(failures) = failures else { return Ok(()) };
        let failures = failures.int("failures")?;
        tx.exec(
            "UPDATE approval_notices SET failures = failures + 1, last_error = $1, run_after = $2, updated_at = $3 WHERE approval_id = $4 AND channel = $5 AND attempt = $6",
            args![error, retry_at, now, &c.approval_id, &c.channel, c.attempt],
        )
        .await?;
        if failures == 0 {
            let body = json!({"channel": c.channel, "error": error, "retry_at": crate::clock::rfc3339(retry_at)});
            notice_event(&mut tx, a, "approval_notice_failed", &body, now).await?;
        }
        tx.commit().await
    }
}

async fn notice_event(tx: &mut Tx, a: &ApprovalRow, kind: &str, body: &Value, now: i64) -> Result<()> {
    let mut body = body.clone();
    body["approval_id"] = json!(a.id);
    append_event(tx, now, Some(&a.incident_id), Some(&a.run_id), Some(&a.step_id), kind, &body).await
}

fn work(r: &Row, channel: &str) -> Result<NoticeWork> {
    Ok(NoticeWork {
        approval: ApprovalRow::from_row(r)?,
        channel: channel.to_string(),
        level_sent: r.opt_int("n_level")?.unwrap_or(-1),
        decided_sent: r.opt_int("n_decided")?.unwrap_or(0) != 0,
        refs: r.opt_text("n_refs")?.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_else(|| json!([])),
        failures: r.opt_int("n_failures")?.unwrap_or(0),
        attempt: r.opt_int("n_attempt")?.unwrap_or(0),
    })
}
