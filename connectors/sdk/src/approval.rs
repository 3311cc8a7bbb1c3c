//! What an approval request shows people, whatever the channel (a Slack message, a Teams card).
//! The engine fills it in; each vendor crate renders and escapes it for its own markup.

use crate::{Plan, RiskClass};
use time::OffsetDateTime;

/// Everything an approval request shows.
#[derive(Debug, Clone)]
pub struct ApprovalRequest {
    /// floodgate's approval id; ASCII letters, digits and `-_.:`, at most 128 characters.
    pub approval_id: String,
    pub incident_id: String,
    pub incident_title: String,
    /// floodgate severity (`info`…`critical`).
    pub severity: Option<String>,
    pub incident_url: Option<String>,
    /// The step's action, e.g. `databricks.ip_access_list.block`.
    pub action: String,
    pub risk: RiskClass,
    /// `plan()` of the step, secrets already redacted by the caller.
    pub plan: Plan,
    /// Label/value evidence (alert rule, entities, confidence...), untrusted: renderers escape it.
    pub evidence: Vec<(String, String)>,
    /// Who may approve, as people read it ("secops, 2 of 3").
    pub approvers: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
}
