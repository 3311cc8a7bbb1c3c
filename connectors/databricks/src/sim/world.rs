//! Everything the simulated workspace and account hold. Handlers lock it briefly and never hold
//! the lock across an `.await`.

use super::sqlengine::DType;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Workspace-conf keys the simulator knows (unknown keys are refused, as Databricks does).
pub const CONF_KEYS: &[&str] = &[
    "enableExportNotebook",
    "enableResultsDownloading",
    "enableNotebookTableClipboard",
    "enableDbfsFileBrowser",
    "enableFileStoreEndpoint",
    "enableIpAccessLists",
    "enableVerboseAuditLogs",
    "enableTokensConfig",
    "maxTokenLifetimeDays",
    "enableWorkspaceFilesystem",
    "storeInteractiveNotebookResultsInCustomerAccount",
];

#[derive(Debug, Clone)]
pub struct AclList {
    pub list_id: String,
    pub label: String,
    pub list_type: String,
    pub ip_addresses: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct TypedSetting {
    pub value: bool,
    pub etag: u64,
}

#[derive(Debug, Clone)]
pub struct ScimUser {
    pub id: String,
    pub user_name: String,
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct SpSecret {
    pub id: String,
    pub value: String,
    pub create_time: String,
}

#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    pub id: String,
    pub application_id: String,
    pub display_name: String,
    pub active: bool,
    pub secrets: Vec<SpSecret>,
}

/// A personal access token: both a token-management record and a credential.
#[derive(Debug, Clone)]
pub struct Pat {
    pub token_id: String,
    pub value: String,
    pub comment: String,
    pub created_by_username: String,
    pub created_by_id: String,
    pub owner_id: String,
    pub creation_time: i64,
    pub expiry_time: i64,
    pub admin: bool,
}

#[derive(Debug, Clone)]
pub struct AccessToken {
    pub application_id: String,
    pub account_level: bool,
    pub expires_at: Instant,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub state: String,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Rows { columns: Vec<(String, DType)>, rows: Vec<Vec<Option<String>>>, truncated: bool },
    Failed { error_code: String, message: String, sql_state: String },
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub id: String,
    pub submitted: Instant,
    pub latency: Duration,
    pub outcome: Outcome,
    pub canceled: bool,
    pub closed: bool,
    pub chunk_rows: usize,
}

impl Statement {
    pub fn done_at(&self) -> Instant {
        self.submitted + self.latency
    }

    /// The state at `now`, given how long results are kept.
    pub fn state(&self, now: Instant, result_ttl: Duration) -> &'static str {
        if self.canceled {
            return "CANCELED";
        }
        let elapsed = now.saturating_duration_since(self.submitted);
        if elapsed < self.latency {
            return if elapsed < self.latency / 3 { "PENDING" } else { "RUNNING" };
        }
        match &self.outcome {
            Outcome::Failed { .. } => "FAILED",
            Outcome::Rows { .. } if self.closed || now > self.done_at() + result_ttl => "CLOSED",
            Outcome::Rows { .. } => "SUCCEEDED",
        }
    }
}

pub struct World {
    pub workspace_id: String,
    pub account_id: String,
    pub warehouses: BTreeSet<String>,
    pub caller_ip: Ipv4Addr,
    pub ws_lists: Vec<AclList>,
    pub acct_lists: Vec<AclList>,
    pub conf: BTreeMap<String, Option<String>>,
    pub sql_results_download: Option<TypedSetting>,
    /// The account setting `acct_ip_acl_enable` (off until an admin turns it on).
    pub acct_ip_acl: TypedSetting,
    pub ws_users: Vec<ScimUser>,
    pub acct_users: Vec<ScimUser>,
    pub sps: Vec<ServicePrincipal>,
    /// Service principals that are not admins (everyone else is).
    pub non_admin_sps: BTreeSet<String>,
    pub scopes: BTreeMap<String, BTreeMap<String, String>>,
    pub pats: Vec<Pat>,
    pub access_tokens: HashMap<String, AccessToken>,
    pub token_lifetime: Duration,
    pub clusters: BTreeMap<String, Cluster>,
    pub statements: HashMap<String, Statement>,
    pub statement_latency: Duration,
    pub chunk_rows: usize,
    pub result_ttl: Duration,
    pub forget_after: Duration,
    /// Service errors for the next statements (`TEMPORARILY_UNAVAILABLE`, ...).
    pub statement_failures: Vec<(String, String)>,
    seq: u64,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

impl World {
    pub fn new(workspace_id: &str, account_id: &str, warehouse_id: &str) -> World {
        let mut conf: BTreeMap<String, Option<String>> = CONF_KEYS.iter().map(|k| (k.to_string(), None)).collect();
        conf.insert("enableIpAccessLists".into(), Some("true".into()));
        World {
            workspace_id: workspace_id.to_string(),
            account_id: account_id.to_string(),
            warehouses: [warehouse_id.to_string()].into_iter().collect(),
            caller_ip: Ipv4Addr::LOCALHOST,
            ws_lists: Vec::new(),
            acct_lists: Vec::new(),
            conf,
            sql_results_download: Some(TypedSetting { value: true, etag: 1 }),
            acct_ip_acl: TypedSetting { value: false, etag: 1 },
            ws_users: Vec::new(),
            acct_users: Vec::new(),
            sps: Vec::new(),
            non_admin_sps: BTreeSet::new(),
            scopes: BTreeMap::new(),
            pats: Vec::new(),
            access_tokens: HashMap::new(),
            token_lifetime: Duration::from_secs(3600),
            clusters: BTreeMap::new(),
            statements: HashMap::new(),
            statement_latency: Duration::ZERO,
            chunk_rows: 10_000,
            result_ttl: Duration::from_secs(3600),
            forget_after: Duration::from_secs(12 * 3600),
            statement_failures: Vec::new(),
            seq: 1000,
        }
    }

    /// A fresh numeric id (SCIM ids, user ids).
    pub fn next_id(&mut self) -> String {
        self.seq += 1;
        format!("{}", 7_000_000_000_000 + self.seq)
    }

    /// A fresh opaque id or secret of `len` hex characters.
    pub fn opaque(&mut self, len: usize) -> String {
        let mut s = String::new();
        while s.len() < len {
            s.push_str(&uuid::Uuid::new_v4().simple().to_string());
        }
        s.truncate(len);
        s
    }

    pub fn lists_mut(&mut self, account: bool) -> &mut Vec<AclList> {
        if account { &mut self.acct_lists } else { &mut self.ws_lists }
    }

    pub fn lists(&self, account: bool) -> &Vec<AclList> {
        if account { &self.acct_lists } else { &self.ws_lists }
    }

    pub fn users_mut(&mut self, account: bool) -> &mut Vec<ScimUser> {
        if account { &mut self.acct_users } else { &mut self.ws_users }
    }

    pub fn add_user(&mut self, account: bool, user_name: &str) -> String {
        let id = self.next_id();
        self.users_mut(account).push(ScimUser { id: id.clone(), user_name: user_name.to_string(), active: true });
        id
    }

    pub fn add_pat(&mut self, user_name: &str, admin: bool) -> (String, String) {
        let user_id = match self.ws_users.iter().find(|u| u.user_name == user_name) {
            Some(u) => u.id.clone(),
            None => self.add_user(false, user_name),
        };
        let token_id = self.opaque(64);
        let value = format!("dapi{}", self.opaque(32));
        self.pats.push(Pat {
            token_id: token_id.clone(),
            value: value.clone(),
            comment: "simulator".into(),
            created_by_username: user_name.to_string(),
            created_by_id: user_id.clone(),
            owner_id: user_id,
            creation_time: now_ms(),
            expiry_time: -1,
            admin,
        });
        (value, token_id)
    }

    pub fn add_sp(&mut self, application_id: &str, display_name: &str) -> String {
        let id = self.next_id();
        self.sps.push(ServicePrincipal {
            id: id.clone(),
            application_id: application_id.to_string(),
            display_name: display_name.to_string(),
            active: true,
            secrets: Vec::new(),
        });
        id
    }

    pub fn add_sp_secret(&mut self, sp_id: &str) -> Option<(String, String)> {
        let id = self.opaque(20);
        let value = format!("dose{}", self.opaque(40));
        let sp = self.sps.iter_mut().find(|s| s.id == sp_id)?;
        sp.secrets.push(SpSecret { id: id.clone(), value: value.clone(), create_time: now_rfc3339() });
        Some((id, value))
    }
}
