//! The connectors compiled into this binary. The engine never names a vendor anywhere else.

use crate::playbook::ActionCatalog;
use floodgate_sdk::ConnectorKind;

/// Every connector kind floodgate knows, built-in first.
pub fn kinds() -> Vec<Box<dyn ConnectorKind>> {
    vec![
        Box::new(floodgate_connector_core::CoreKind),
        Box::new(floodgate_jira::JiraKind),
        Box::new(floodgate_servicenow::ServiceNowKind),
        Box::new(floodgate_slack::SlackKind),
        Box::new(floodgate_teams::TeamsKind),
        Box::new(floodgate_pagerduty::PagerDutyKind),
        Box::new(floodgate_databricks::DatabricksKind),
    ]
}

/// Every action of every known connector.
pub fn catalog() -> ActionCatalog {
    let kinds = kinds();
    ActionCatalog::from_kinds(kinds.iter().map(|k| k.as_ref()))
}
