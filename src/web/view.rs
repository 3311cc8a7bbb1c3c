//! View data: store rows turned into plain values the templates lay out. Times become UTC text
//! with their age, JSON becomes redacted pretty text, timeline events become sentences, and
//! each approval says whether the viewer could vote on it and, if not, why.
//!
//! The "could vote" hint only shapes the page; the engine judges every vote that is sent.

use super::render::{when, when_opt};
use crate::engine::Directory;
use crate::store::{
    ApprovalDetail, ApprovalRow, ApprovalState, EventRow, IncidentRow, RunSummary, StepExecRow, VoteRow,
};
use serde_json::{Value, json};

/// Redacted, indented JSON for a `<pre>`.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(&floodgate_sdk::text::redact_json(v)).unwrap_or_default()
}

pub fn pretty_opt(v: Option<&Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(v) => Value::String(pretty(v)),
    }
}

/// A person's display name (their `name`, else their id).
pub fn display_name(dir: &Directory, id: &str) -> String {
    dir.people.get(id).and_then(|p| p.name.clone()).unwrap_or_else(|| id.to_string())
}

/// `abc1234` of a long hash.
fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

pub fn incident(i: &IncidentRow, now: i64) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "severity": i.severity,
        "state": i.state,
        "resolution": i.resolution,
        "playbook": i.playbook_id,
        "group_key": i.group_key,
        "alert_count": i.alert_count,
        "opened": when(i.opened_at, now),
        "last_alert": when(i.last_alert_at, now),
        "closed": when_opt(i.closed_at, now),
    })
}

pub fn run_summary(r: &RunSummary, now: i64) -> Value {
    json!({
        "id": r.id,
        "incident_id": r.incident_id,
        "playbook": r.playbook_id,
        "state": r.state,
        "waiting_for": r.waiting_for.as_deref().map(|w| w.split(' ').next().unwrap_or(w)),
        "error": r.error,
        "title": r.title,
        "severity": r.severity,
        "created": when(r.created_at, now),
        "updated": when(r.updated_at, now),
        "finished": when_opt(r.finished_at, now),
    })
}

/// What an approved action will send: the connector's plan, redacted.
pub fn plan(p: &Value) -> Value {
    let p = floodgate_sdk::text::redact_json(p);
    let requests: Vec<Value> = p["requests"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    json!({
                        "method": r["method"].as_str().unwrap_or("?"),
                        "url": r["url"].as_str().unwrap_or(""),
                        "body": pretty_opt(r.get("body")),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"summary": p["summary"].as_str().unwrap_or(""), "requests": requests})
}

/// Whether `viewer` may vote on `a` now, as far as the page can tell.
fn eligibility(a: &ApprovalRow, votes: &[VoteRow], viewer: &str, dir: &Directory, now: i64) -> (bool, String) {
    if a.state != ApprovalState::Pending {
        return (false, format!("This approval is already {}.", a.state.as_str()));
    }
    if now > a.deadline {
        return (false, "The deadline has passed; the engine is applying the timeout rule.".into());
    }
    if !dir.members(&a.groups).contains(viewer) {
        return (false, format!("You are not in the approver groups ({}).", a.groups.join(", ")));
    }
    if crate::engine::approval::is_target(a, viewer, dir) {
        return (false, "This action is aimed at you, so you cannot approve it.".into());
    }
    if let Some(v) = votes.iter().find(|v| v.identity == viewer) {
        return (false, format!("You already voted to {}.", v.decision));
    }
    (true, String::new())
}

fn vote(v: &VoteRow, dir: &Directory, now: i64) -> Value {
    json!({
        "identity": v.identity,
        "name": display_name(dir, &v.identity),
        "decision": v.decision,
        "reason": v.reason,
        "channel": v.channel,
        "at": when(v.at, now),
    })
}

pub fn approval(a: &ApprovalRow, votes: &[VoteRow], viewer: &str, dir: &Directory, now: i64) -> Value {
    let eligible = dir.members(&a.groups);
    let approvals = votes.iter().filter(|v| v.decision == "approve" && eligible.contains(&v.identity)).count();
    let (can_vote, why_not) = eligibility(a, votes, viewer, dir, now);
    json!({
        "id": a.id,
        "run_id": a.run_id,
        "incident_id": a.incident_id,
        "step_id": a.step_id,
        "state": a.state.as_str(),
        "pending": a.state == ApprovalState::Pending,
        "summary": a.summary,
        "plan": plan(&a.plan),
        "groups": a.groups.join(", "),
        "escalation": a.escalation.join(", "),
        "on_timeout": crate::store::on_timeout_str(a.on_timeout),
        "quorum": a.quorum,
        "approvals": approvals,
        "deadline": when(a.deadline, now),
        "overdue": a.state == ApprovalState::Pending && now > a.deadline,
        "target_user": a.target_user,
        "auto_rule": a.auto_rule,
        "decided": when_opt(a.decided_at, now),
        "decided_reason": a.decided_reason,
        "created": when(a.created_at, now),
        "votes": votes.iter().map(|v| vote(v, dir, now)).collect::<Vec<_>>(),
        "can_vote": can_vote,
        "why_not": why_not,
    })
}

pub fn approval_detail(d: &ApprovalDetail, viewer: &str, dir: &Directory, now: i64) -> Value {
    approval(&d.approval, &d.votes, viewer, dir, now)
}

pub fn step(s: &StepExecRow, name: Option<&str>, now: i64) -> Value {
    json!({
        "id": s.id,
        "step_id": s.step_id,
        "name": name.unwrap_or(&s.step_id),
        "iteration": s.iteration,
        "action": s.action,
        "state": s.state.as_str(),
        "attempt": s.attempt,
        "input": pretty_opt(s.input.as_ref()),
        "plan": s.plan.as_ref().map(plan),
        "output": pretty_opt(s.output.as_ref()),
        "error": s.error,
        "error_code": s.error_code,
        "reason": s.reason,
        "started": when_opt(s.started_at, now),
        "finished": when_opt(s.finished_at, now),
        "retry_at": when_opt(s.run_after.filter(|_| !s.state.is_terminal()), now),
    })
}

/// Green, amber, red or grey for a state or event.
pub fn tone(word: &str) -> &'static str {
    match word {
        "succeeded" | "approved" | "reverted" | "closed_benign" | "step_succeeded" | "revert_succeeded"
        | "approval_automatic" => "good",
        "failed"
        | "denied"
        | "expired"
        | "cancelled"
        | "step_failed"
        | "vote_refused"
        | "revert_failed"
        | "approval_notice_failed" => "bad",
        "waiting"
        | "pending"
        | "scheduled"
        | "approval_requested"
        | "approval_escalated"
        | "step_retry_scheduled"
        | "revert_retry_scheduled"
        | "open" => "warn",
        _ => "neutral",
    }
}

fn channel_name(c: &str) -> &str {
    match c {
        "slack" => "Slack",
        "teams" => "Teams",
        "pagerduty" => "PagerDuty",
        other => other,
    }
}

/// One timeline entry in words.
pub fn event(e: &EventRow, dir: &Directory, now: i64) -> Value {
    let d = &e.data;
    let s = |k: &str| d[k].as_str().map(str::to_string).unwrap_or_else(|| d[k].to_string());
    let who = |k: &str| d[k].as_str().map(|id| display_name(dir, id)).unwrap_or_default();
    let because = |k: &str| d[k].as_str().filter(|r| !r.is_empty()).map(|r| format!(" — “{r}”")).unwrap_or_default();
    let text = match e.kind.as_str() {
        "alert_received" => format!("Alert “{}” from {}: {}", s("title"), s("source"), s("outcome")),
        "run_queued" => format!("Run queued for playbook {}", s("playbook")),
        "run_started" => format!("Picked up by worker {}", s("worker")),
        "step_started" => format!("{} started (attempt {})", s("action"), s("attempt")),
        "step_succeeded" => format!("{} succeeded", s("action")),
        "step_failed" => format!("{} failed: {}", s("action"), s("error")),
        "step_skipped" => format!("{} skipped: {}", s("action"), s("reason")),
        "step_retry_scheduled" => {
            format!("Attempt {} failed ({}); retry at {}", s("attempt"), s("error"), s("retry_at"))
        }
        "approval_requested" => format!(
            "Approval requested from {} (quorum {}), deadline {}: {}",
            d["groups"]
                .as_array()
                .map(|g| g.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            s("quorum"),
            s("deadline"),
            s("summary")
        ),
        "approval_automatic" => format!("Approved automatically — rule: {}", s("rule")),
        "approval_escalated" => {
            format!("No decision in time: escalated to {}, new deadline {}", s("to"), s("deadline"))
        }
        "approval_decided" => format!("Approval {}: {}", s("state"), s("reason")),
        "approval_notified" => {
            let what = match s("what").as_str() {
                "request" => "approval request posted",
                "escalation" => "escalation posted",
                "decision" => "message updated with the decision",
                "page" => "page triggered",
                "resolve" => "page resolved",
                _ => "notified",
            };
            format!("{}: {what}", channel_name(&s("channel")))
        }
        "approval_notice_failed" => format!(
            "{} could not be notified ({}); retrying at {}",
            channel_name(&s("channel")),
            s("error"),
            s("retry_at")
        ),
        "vote" => format!("{} voted to {} via {}{}", who("identity"), s("decision"), s("channel"), because("reason")),
        "vote_refused" => {
            format!("{}'s vote ({}) via {} was refused: {}", who("identity"), s("decision"), s("channel"), s("why"))
        }
        "run_finished" => match d["error"].as_str().or(d["reason"].as_str()) {
            Some(why) => format!("Run finished: {} — {why}", s("state")),
            None => format!("Run finished: {}", s("state")),
        },
        "revert_scheduled" => format!("Temporary: will be undone at {} (after {})", s("due_at"), s("after")),
        "revert_started" => format!("Undoing {} (attempt {})", s("action"), s("attempt")),
        "revert_succeeded" => "Containment undone as scheduled".to_string(),
        "revert_retry_scheduled" => {
            format!("Undo attempt {} failed ({}); retry at {}", s("attempt"), s("error"), s("retry_at"))
        }
        "revert_failed" => format!("Undo failed: {} — {}", s("error"), s("note")),
        "revert_extended" => format!(
            "{} extended the containment by {} (until {}){}",
            who("identity"),
            s("by"),
            s("due_at"),
            because("reason")
        ),
        "revert_cancelled" => format!("{} made the containment permanent{}", who("identity"), because("reason")),
        other => other.replace('_', " "),
    };
    json!({
        "at": when(e.at, now),
        "kind": e.kind,
        "tone": tone(&e.kind),
        "step_id": e.step_id,
        "text": text,
        "data": pretty(d),
    })
}

/// A sentence for the top of the run page: what is happening and what, if anything, the
/// responder should do.
pub fn run_headline(state: &str, waiting: Option<&str>, error: Option<&str>) -> String {
    match (state, waiting) {
        ("waiting", Some("approval")) => "Waiting for approval — decide below.".into(),
        ("waiting", Some("retry")) => "Waiting to retry a step that failed for a passing reason.".into(),
        ("waiting", _) => "Waiting for a timer.".into(),
        ("queued", _) => "Queued — a worker will pick it up in a moment.".into(),
        ("running", _) => "Running.".into(),
        ("succeeded", _) => "Finished: every step is done.".into(),
        ("closed_benign", _) => "Closed as benign.".into(),
        ("failed", _) => format!("Failed: {}", error.unwrap_or("see the timeline")),
        ("cancelled", _) => "Cancelled.".into(),
        (other, _) => other.to_string(),
    }
}

pub fn short_hash(h: &str) -> String {
    short(h).to_string()
}
