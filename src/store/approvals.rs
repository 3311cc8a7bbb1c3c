//! Approvals and votes. A vote is one transaction that locks the approval row, so two
//! decisions arriving at once (Slack and the CLI, or a vote racing the deadline) are applied one
//! after the other and the second sees the first.

use super::{ApprovalRow, ApprovalState, Dialect, Result, Store, StoreError, Tx, VoteRow, append_event};
use crate::args;
use serde_json::json;

/// What a vote did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VoteOutcome {
    pub approval_id: String,
    pub state: ApprovalState,
    /// True when this identity had already cast the same vote (a double click, a redelivery).
    pub repeated: bool,
    pub approvals: i64,
    pub quorum: i64,
}

const SELECT_APPROVAL: &str = "SELECT id, run_id, step_exec_id, step_id, incident_id, state, groups_json, quorum, timeout_ms, deadline, on_timeout, escalation_json, escalation_level, target_user, summary, plan, auto_rule, decided_at, decided_reason, created_at FROM approvals WHERE id = $1";
const SELECT_APPROVAL_FOR_UPDATE: &str = "SELECT id, run_id, step_exec_id, step_id, incident_id, state, groups_json, quorum, timeout_ms, deadline, on_timeout, escalation_json, escalation_level, target_user, summary, plan, auto_rule, decided_at, decided_reason, created_at FROM approvals WHERE id = $1 FOR UPDATE";

impl Tx {
    pub async fn insert_approval(&mut self, a: &ApprovalRow) -> Result<()> {
        self.exec(
            "INSERT INTO approvals (id, run_id, step_exec_id, step_id, incident_id, state, groups_json, quorum, timeout_ms, deadline, on_timeout, escalation_json, escalation_level, target_user, summary, plan, auto_rule, decided_at, decided_reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
            args![
                &a.id,
                &a.run_id,
                &a.step_exec_id,
                &a.step_id,
                &a.incident_id,
                a.state.as_str(),
                json!(a.groups).to_string(),
                a.quorum,
                a.timeout_ms,
                a.deadline,
                super::on_timeout_str(a.on_timeout),
                json!(a.escalation).to_string(),
                a.escalation_level,
                a.target_user.clone(),
                &a.summary,
                a.plan.to_string(),
                a.auto_rule.clone(),
                a.decided_at,
                a.decided_reason.clone(),
                a.created_at
            ],
        )
        .await?;
        Ok(())
    }

    /// Loads an approval and locks it until the transaction ends.
    pub async fn lock_approval(&mut self, id: &str) -> Result<Option<ApprovalRow>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => SELECT_APPROVAL,
            Dialect::Postgres => SELECT_APPROVAL_FOR_UPDATE,
        };
        self.opt(sql, args![id]).await?.map(|r| ApprovalRow::from_row(&r)).transpose()
    }

    pub async fn votes(&mut self, approval_id: &str) -> Result<Vec<VoteRow>> {
        self.all(
            "SELECT identity, decision, reason, channel, at FROM approval_votes WHERE approval_id = $1 ORDER BY at",
            args![approval_id],
        )
        .await?
        .iter()
        .map(VoteRow::from_row)
        .collect()
    }

    /// Automatic approvals since `since` (Unix ms): in all, and for one playbook.
    pub async fn auto_approvals_since(&mut self, since: i64, playbook_id: &str) -> Result<(i64, i64)> {
        let all = self
            .one("SELECT COUNT(*) AS n FROM approvals WHERE auto_rule IS NOT NULL AND created_at >= $1", args![since])
            .await?
            .int("n")?;
        let mine = self
            .one(
                "SELECT COUNT(*) AS n FROM approvals a JOIN runs r ON r.id = a.run_id WHERE a.auto_rule IS NOT NULL AND a.created_at >= $1 AND r.playbook_id = $2",
                args![since, playbook_id],
            )
            .await?
            .int("n")?;
        Ok((all, mine))
    }

    /// Decides an approval and, when the run waits for it, makes the run runnable again.
    pub async fn decide_approval(
        &mut self,
        a: &ApprovalRow,
        state: ApprovalState,
        reason: &str,
        now: i64,
    ) -> Result<()> {
        self.exec(
            "UPDATE approvals SET state = $1, decided_at = $2, decided_reason = $3 WHERE id = $4 AND state = 'pending'",
            args![state.as_str(), now, reason, &a.id],
        )
        .await?;
        self.exec(
            "UPDATE runs SET state = 'queued', wait_kind = NULL, wait_ref = NULL, run_after = $1, updated_at = $1 WHERE id = $2 AND state = 'waiting' AND wait_kind = 'approval' AND wait_ref = $3",
            args![now, &a.run_id, &a.id],
        )
        .await?;
        append_event(
            self,
            now,
            Some(&a.incident_id),
            Some(&a.run_id),
            Some(&a.step_id),
            "approval_decided",
            &json!({"approval_id": a.id, "state": state.as_str(), "reason": reason}),
        )
        .await
    }
}

/// One person's vote, and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Ballot<'a> {
    pub identity: &'a str,
    /// `approve` or `deny`.
    pub decision: &'a str,
    pub reason: Option<&'a str>,
    /// `cli`, `api`, `slack`, `web`, `link`.
    pub channel: &'a str,
}

/// The engine's verdict on one vote, given the approval and the votes so far.
pub enum VoteVerdict {
    /// Record the vote; the approval becomes `state` (still `Pending` below quorum).
    Accept { state: ApprovalState, approvals: i64, reason: String },
    /// This identity already voted this way: count it once, change nothing.
    Repeat { approvals: i64 },
    /// Refused (not an approver, self-approval, after the deadline, already decided...).
    Refuse(String),
}

impl Store {
    pub async fn approval(&self, id: &str) -> Result<Option<ApprovalRow>> {
        self.opt(SELECT_APPROVAL, args![id]).await?.map(|r| ApprovalRow::from_row(&r)).transpose()
    }

    pub async fn approval_votes(&self, approval_id: &str) -> Result<Vec<VoteRow>> {
        self.all(
            "SELECT identity, decision, reason, channel, at FROM approval_votes WHERE approval_id = $1 ORDER BY at",
            args![approval_id],
        )
        .await?
        .iter()
        .map(VoteRow::from_row)
        .collect()
    }

    pub async fn pending_approvals(&self) -> Result<Vec<ApprovalRow>> {
        self.all(
            "SELECT id, run_id, step_exec_id, step_id, incident_id, state, groups_json, quorum, timeout_ms, deadline, on_timeout, escalation_json, escalation_level, target_user, summary, plan, auto_rule, decided_at, decided_reason, created_at FROM approvals WHERE state = 'pending' ORDER BY created_at",
            vec![],
        )
        .await?
        .iter()
        .map(ApprovalRow::from_row)
        .collect()
    }

    /// Ids of pending approvals whose deadline has passed.
    pub async fn due_approvals(&self, now: i64) -> Result<Vec<String>> {
        self.all(
            "SELECT id FROM approvals WHERE state = 'pending' AND deadline <= $1 ORDER BY deadline LIMIT 100",
            args![now],
        )
        .await?
        .iter()
        .map(|r| r.text("id"))
        .collect()
    }

    /// Casts one vote. `judge` sees the locked approval and the votes so far and decides.
    pub async fn vote(
        &self,
        approval_id: &str,
        ballot: &Ballot<'_>,
        now: i64,
        judge: impl FnOnce(&ApprovalRow, &[VoteRow]) -> VoteVerdict,
    ) -> Result<std::result::Result<VoteOutcome, String>> {
        let Ballot { identity, decision, reason, channel } = *ballot;
        let mut tx = self.begin_durable().await?;
        let Some(a) = tx.lock_approval(approval_id).await? else {
            return Err(StoreError::NotFound(format!("approval {approval_id}")));
        };
        let votes = tx.votes(approval_id).await?;
        match judge(&a, &votes) {
            VoteVerdict::Refuse(why) => {
                append_event(
                    &mut tx,
                    now,
                    Some(&a.incident_id),
                    Some(&a.run_id),
                    Some(&a.step_id),
                    "vote_refused",
                    &json!({"approval_id": a.id, "identity": identity, "decision": decision, "channel": channel, "why": why}),
                )
                .await?;
                tx.commit().await?;
                Ok(Err(why))
            }
            VoteVerdict::Repeat { approvals } => Ok(Ok(VoteOutcome {
                approval_id: a.id.clone(),
                state: a.state,
                repeated: true,
                approvals,
                quorum: a.quorum,
            })),
            VoteVerdict::Accept { state, approvals, reason: why } => {
                tx.exec(
                    "INSERT INTO approval_votes (approval_id, identity, decision, reason, channel, at) VALUES ($1, $2, $3, $4, $5, $6)",
                    args![&a.id, identity, decision, reason, channel, now],
                )
                .await?;
                append_event(
                    &mut tx,
                    now,
                    Some(&a.incident_id),
                    Some(&a.run_id),
                    Some(&a.step_id),
                    "vote",
                    &json!({"approval_id": a.id, "identity": identity, "decision": decision, "reason": reason, "channel": channel}),
                )
                .await?;
                if state != ApprovalState::Pending {
                    tx.decide_approval(&a, state, &why, now).await?;
                }
                tx.commit().await?;
                Ok(Ok(VoteOutcome { approval_id: a.id.clone(), state, repeated: false, approvals, quorum: a.quorum }))
            }
        }
    }
}

impl Store {
    /// The approval (if any) of a step execution.
    pub async fn approval_for_step(&self, step_exec_id: &str) -> Result<Option<ApprovalRow>> {
        self.opt(
            "SELECT id, run_id, step_exec_id, step_id, incident_id, state, groups_json, quorum, timeout_ms, deadline, on_timeout, escalation_json, escalation_level, target_user, summary, plan, auto_rule, decided_at, decided_reason, created_at FROM approvals WHERE step_exec_id = $1 ORDER BY created_at DESC LIMIT 1",
            args![step_exec_id],
        )
        .await?
        .map(|r| ApprovalRow::from_row(&r))
        .transpose()
    }
}
