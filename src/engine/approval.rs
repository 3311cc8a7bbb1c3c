//! Approval rules, without I/O: when a step needs people, who may vote, what a vote decides,
//! and what a deadline does. The store applies the verdicts in locked transactions.

use super::registry::Directory;
use crate::playbook::{ApprovalSpec, OnTimeout, Playbook, Severity, Step};
use crate::store::VoteVerdict;
use crate::store::{ApprovalRow, ApprovalState, VoteRow};
use serde_json::Value;
use std::time::Duration;

/// What a step needs before it may run.
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    /// Nothing: run it.
    None,
    /// Approved automatically by a rule (recorded with the rule's text), unless the hourly cap
    /// is reached: then people decide (`fallback`), or the step cannot run if nobody may.
    Auto { rule: String, fallback: Option<ApprovalSpec> },
    /// People must decide.
    Ask(ApprovalSpec),
    /// Approval is required but nobody is configured to give it.
    Nobody(String),
}

/// The approval a step gets from people: its own `approval:` (never a quorum below the
/// policy's minimum), or the policy's default approvers.
fn human_approval(step: &Step, dir: &Directory) -> Option<ApprovalSpec> {
    let policy = &dir.policy;
    let min = policy.min_quorum.get(&step.spec.risk).copied().unwrap_or(1).max(1);
    match &step.approval {
        Some(spec) => {
            // `on_timeout: approve` is kept as written; the deadline refuses it when the policy
            // does not allow approval by silence, and says so on the timeline.
            let mut spec = spec.clone();
            spec.quorum = spec.quorum.max(min);
            Some(spec)
        }
        None if policy.default_approvers.is_empty() => None,
        None => Some(ApprovalSpec {
            groups: policy.default_approvers.clone(),
            quorum: min,
            timeout: Duration::from_secs(3600),
            on_timeout: OnTimeout::Deny,
            escalate_to: Vec::new(),
        }),
    }
}

/// The automatic approval rule that covers this alert, if any (the playbook's own first, then
/// the config's).
fn auto_rule(playbook: &Playbook, alert: &Value, dir: &Directory) -> Option<String> {
    if !dir.policy.auto_approve.enabled {
        return None;
    }
    let confidence = alert["confidence"].as_f64().unwrap_or(0.0);
    let severity = alert["severity"].as_str().and_then(Severity::parse)?;
    let describe = |origin: &str, min: f64, sevs: &[Severity]| {
        let names: Vec<&str> = sevs.iter().map(|s| s.as_str()).collect();
        format!("{origin}: confidence {confidence} >= {min} and severity in [{}]", names.join(", "))
    };
    if let Some(auto) = &playbook.auto_approve
        && confidence >= auto.min_confidence
        && auto.severities.contains(&severity)
    {
        return Some(describe(
            &format!("playbook {} auto_approve", playbook.id),
            auto.min_confidence,
            &auto.severities,
        ));
    }
    for (i, rule) in dir.policy.auto_approve.rules.iter().enumerate() {
        let sevs = rule.severities.clone().unwrap_or_else(|| vec![Severity::High, Severity::Critical]);
        let covers = rule.playbooks.is_empty() || rule.playbooks.iter().any(|p| p == &playbook.id);
        if covers && confidence >= rule.min_confidence && sevs.contains(&severity) {
            return Some(describe(&format!("policy.auto_approve.rules[{i}]"), rule.min_confidence, &sevs));
        }
    }
    None
}

/// Decides whether a step needs approval: the risk classes the policy names always do (by
/// default `contain` and `destructive`); any step can ask for it with `approval:`.
pub fn requirement(step: &Step, playbook: &Playbook, alert: &Value, dir: &Directory) -> Requirement {
    let by_risk = dir.policy.require_approval.contains(&step.spec.risk);
    if step.approval.is_none() && !by_risk {
        return Requirement::None;
    }
    let human = human_approval(step, dir);
    if let Some(rule) = auto_rule(playbook, alert, dir) {
        return Requirement::Auto { rule, fallback: human };
    }
    match human {
        Some(spec) => Requirement::Ask(spec),
        None => Requirement::Nobody(format!(
            "{} is a {} action and needs approval, but the step has no approval: block and the config sets no policy.default_approvers",
            step.action, step.spec.risk
        )),
    }
}

/// Whether `identity` is the user the approval's action is aimed at (the alert's user entity,
/// compared with the identity id and its email, ignoring case): they may not approve it.
pub fn is_target(a: &ApprovalRow, identity: &str, dir: &Directory) -> bool {
    let Some(target) = a.target_user.as_deref().filter(|t| !t.is_empty()) else { return false };
    let email = dir.people.get(identity).and_then(|p| p.email.as_deref());
    identity.eq_ignore_ascii_case(target) || email.is_some_and(|e| e.eq_ignore_ascii_case(target))
}

/// Judges one vote by `voter` (an identity id) on a locked approval.
pub fn judge(a: &ApprovalRow, votes: &[VoteRow], voter: &str, approve: bool, now: i64, dir: &Directory) -> VoteVerdict {
    let decision = if approve { "approve" } else { "deny" };
    let eligible = dir.members(&a.groups);
    // The same vote again (a double click, a redelivered button press, a retried API call) is
    // the vote already counted, whatever happened since: answer it the same way, change nothing.
    if votes.iter().any(|v| v.identity == voter && v.decision == decision) {
        let approvals = votes.iter().filter(|v| v.decision == "approve" && eligible.contains(&v.identity)).count();
        return VoteVerdict::Repeat { approvals: approvals as i64 };
    }
    if a.state != ApprovalState::Pending {
        return VoteVerdict::Refuse(format!("approval {} is already {}", a.id, a.state.as_str()));
    }
    if now > a.deadline {
        return VoteVerdict::Refuse(format!("the deadline of approval {} has passed", a.id));
    }
    if !dir.people.contains_key(voter) {
        return VoteVerdict::Refuse(format!("{voter:?} is not a known identity"));
    }
    if !eligible.contains(voter) {
        return VoteVerdict::Refuse(format!("{voter} is not in the approver groups ({})", a.groups.join(", ")));
    }
    if is_target(a, voter, dir) {
        return VoteVerdict::Refuse(format!("{voter} is the user this action is aimed at and cannot approve it"));
    }
    let approvals_so_far =
        votes.iter().filter(|v| v.decision == "approve" && eligible.contains(&v.identity)).count() as i64;
    // An identical earlier vote was answered as a repeat above; any other earlier vote is a
    // change of mind.
    if let Some(prev) = votes.iter().find(|v| v.identity == voter) {
        return VoteVerdict::Refuse(format!("{voter} already voted {}", prev.decision));
    }
    if !approve {
        return VoteVerdict::Accept {
            state: ApprovalState::Denied,
            approvals: approvals_so_far,
            reason: format!("denied by {voter}"),
        };
    }
    let approvals = approvals_so_far + 1;
    if approvals >= a.quorum {
        let mut who: Vec<&str> =
            votes.iter().filter(|v| v.decision == "approve").map(|v| v.identity.as_str()).collect();
        who.push(voter);
        VoteVerdict::Accept {
            state: ApprovalState::Approved,
            approvals,
            reason: format!("approved by {}", who.join(", ")),
        }
    } else {
        VoteVerdict::Accept { state: ApprovalState::Pending, approvals, reason: String::new() }
    }
}

/// What a passed deadline does to a pending approval.
#[derive(Debug, Clone, PartialEq)]
pub enum TimeoutAction {
    Decide(ApprovalState, String),
    /// Ask `group` too, until `deadline`.
    Escalate {
        group: String,
        deadline: i64,
    },
}

pub fn on_deadline(a: &ApprovalRow, now: i64, allow_approve_on_timeout: bool) -> TimeoutAction {
    match a.on_timeout {
        OnTimeout::Deny => {
            TimeoutAction::Decide(ApprovalState::Expired, "no decision before the deadline (on_timeout: deny)".into())
        }
        OnTimeout::Approve if !allow_approve_on_timeout => TimeoutAction::Decide(
            ApprovalState::Expired,
            "no decision before the deadline; on_timeout: approve is not allowed by the policy".into(),
        ),
        OnTimeout::Approve => {
            TimeoutAction::Decide(ApprovalState::Approved, "approved by timeout (on_timeout: approve)".into())
        }
        OnTimeout::Escalate => match a.escalation.first() {
            Some(g) => TimeoutAction::Escalate { group: g.clone(), deadline: now + a.timeout_ms },
            None => TimeoutAction::Decide(ApprovalState::Expired, "no decision after the last escalation".into()),
        },
    }
}
