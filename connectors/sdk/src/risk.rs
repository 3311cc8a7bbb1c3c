use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How much harm an action can do, which drives approval policy.
///
/// The order matters: a policy such as "needs approval at `contain` and above" compares classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskClass {
    /// Reads data; changes nothing anywhere.
    Read,
    /// Sends a message to people (chat, page).
    Notify,
    /// Creates or changes a ticket.
    Ticket,
    /// Limits an attacker's access (block an IP, disable exports, deactivate a user).
    Contain,
    /// Cannot be undone, or destroys state (revoke tokens, rotate secrets, terminate compute).
    Destructive,
}

impl RiskClass {
    pub const ALL: [RiskClass; 5] =
        [RiskClass::Read, RiskClass::Notify, RiskClass::Ticket, RiskClass::Contain, RiskClass::Destructive];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskClass::Read => "read",
            RiskClass::Notify => "notify",
            RiskClass::Ticket => "ticket",
            RiskClass::Contain => "contain",
            RiskClass::Destructive => "destructive",
        }
    }
}

impl fmt::Display for RiskClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RiskClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RiskClass::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown risk class {s:?}; expected read, notify, ticket, contain or destructive"))
    }
}
