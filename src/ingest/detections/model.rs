//! The detection file format (`detections/*.yaml`): the checked `Detection` the poller runs, and
//! loading files and directories of them.
//!
//! Files are read with the playbooks' YAML reader (positions for every value and key, budgets
//! against hostile input) and checked by `check::compile`, which collects every problem.
//! Nothing downstream re-validates; nothing here talks to Databricks.

pub use super::check::compile;
use crate::playbook::diag::Diagnostic;
use crate::playbook::yaml;
use crate::playbook::{Severity, Templates, ValueTemplate};
use floodgate_databricks::SqlParam;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// MITRE ATT&CK enterprise tactics, as detections name them.
pub const TACTICS: &[&str] = &[
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
];
/// Entities a detection may fill (playbooks and connectors read these names).
pub const ENTITIES: &[&str] = &["user", "source_ip", "workspace", "table", "token", "cluster", "service_principal"];
/// Parameters floodgate binds for every window; the SQL uses the ones it needs.
pub const WINDOW_PARAMS: &[&str] = &["since", "until", "since_date", "until_date"];
pub const TOP_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "severity",
    "confidence",
    "tactic",
    "technique",
    "enabled",
    "interval",
    "lookback",
    "workspace",
    "params",
    "sql",
    "alert",
];
pub const ALERT_KEYS: &[&str] = &["title", "description", "key", "severity_column", "entities", "fields"];
/// Names `alert.fields` may not use: the alert's fields already hold these.
pub const RESERVED_FIELDS: &[&str] = &["detection", "window", "row"];
pub const SQL_TYPES: &[&str] = &["STRING", "INT", "BIGINT", "DOUBLE", "DECIMAL", "BOOLEAN", "DATE", "TIMESTAMP"];
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// A checked detection, ready to run.
#[derive(Debug)]
pub struct Detection {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub confidence: f64,
    pub tactic: Option<String>,
    pub technique: Option<String>,
    pub enabled: bool,
    pub interval: Duration,
    /// How far before the watermark each window's `:since` reaches, beyond the global overlap
    /// (for aggregations over a period, e.g. failures per hour).
    pub lookback: Duration,
    /// Configured workspace names; empty means `[detections] workspace` or the default.
    pub workspaces: Vec<String>,
    pub sql: String,
    /// Constant parameters from `params:`.
    pub params: Vec<SqlParam>,
    /// Every `:name` the SQL uses.
    pub markers: BTreeSet<String>,
    pub alert: AlertMapping,
    pub templates: Templates,
    pub path: String,
    /// SHA-256 of the file.
    pub hash: String,
}

/// How a result row becomes an alert.
#[derive(Debug)]
pub struct AlertMapping {
    pub title: ValueTemplate,
    pub description: Option<ValueTemplate>,
    /// Columns whose values identify a finding: the same values again are the same alert.
    pub key: Vec<String>,
    pub severity_column: Option<String>,
    /// Entity name → column.
    pub entities: BTreeMap<String, String>,
    /// Field name → column, copied to the alert's top-level `fields`.
    pub fields: BTreeMap<String, String>,
}

impl Detection {
    /// The alert rule playbooks match: `detection:<id>`.
    pub fn rule(&self) -> String {
        format!("detection:{}", self.id)
    }
}

/// Reads and checks one file.
pub fn load_file(path: &Path) -> Result<Detection, Vec<Diagnostic>> {
    let shown = path.display().to_string();
    let at_start = |message: String| vec![Diagnostic { path: shown.clone(), line: 1, col: 1, message }];
    let meta = std::fs::metadata(path).map_err(|e| at_start(format!("cannot read file: {e}")))?;
    if !meta.is_file() {
        return Err(at_start("not a regular file".into()));
    }
    if meta.len() > yaml::MAX_BYTES as u64 {
        return Err(at_start(format!(
            "file is {} bytes; detections are limited to {} bytes (1 MiB)",
            meta.len(),
            yaml::MAX_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| at_start(format!("cannot read file: {e}")))?;
    compile(&bytes, &shown)
}

/// Checks every `*.yaml` / `*.yml` file of a directory (sorted by name), or one file. Returns
/// the good detections and every problem, including ids used twice.
pub fn load(path: &Path) -> (Vec<Detection>, Vec<Diagnostic>) {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        match std::fs::read_dir(path) {
            Ok(rd) => {
                let mut f: Vec<_> = rd
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                    .collect();
                f.sort();
                f
            }
            Err(e) => {
                let d = Diagnostic {
                    path: path.display().to_string(),
                    line: 1,
                    col: 1,
                    message: format!("cannot read directory: {e}"),
                };
                return (Vec::new(), vec![d]);
            }
        }
    } else {
        vec![path.to_path_buf()]
    };
    let mut out: Vec<Detection> = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        match load_file(&f) {
            Ok(d) => match out.iter().find(|o| o.id == d.id) {
                Some(first) => diags.push(Diagnostic {
                    path: d.path.clone(),
                    line: 1,
                    col: 1,
                    message: format!("detection id {:?} is already used by {}", d.id, first.path),
                }),
                None => out.push(d),
            },
            Err(d) => diags.extend(d),
        }
    }
    (out, diags)
}
