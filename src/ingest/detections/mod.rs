//! Detections: SQL over Databricks system tables, run on a schedule by `floodgate serve`, each
//! result row an alert of source `databricks-detection`, with an exactly-once watermark.
//!
//! - `model`: the YAML format (`detections/*.yaml`) as a checked `Detection`, and loading.
//! - `check`: checking a file, every problem with its position.
//! - `sqltext`: reading a detection's SQL for its `:name` markers (never rewriting it).
//! - `finding`: one result row → one `Alert` with a stable external id.
//! - `poller`: windows, leases, the one-transaction commit of alerts and watermark.
//! - `local` (feature `local-sql`): the same detections over rows on the local SQL engine.
//! - `schema`: the JSON Schema editors use for detection files.
//!
//! This module must never splice a value into SQL (windows and constants are statement
//! parameters), never move a watermark outside the transaction that stores the window's alerts,
//! and never let one detection's failure stop another's schedule.

mod check;
pub mod finding;
#[cfg(feature = "local-sql")]
pub mod local;
pub mod model;
pub mod poller;
pub mod schema;
pub mod sqltext;

pub use model::{Detection, load};
pub use poller::{Job, Outcome, Poller, PollerSettings};

use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `[detections]` in floodgate.toml. Without the table detections are off; with it they run
/// unless `enabled = false`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionsConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Directory of detection files, relative to the config file. Default `detections`.
    #[serde(default = "default_directory")]
    pub directory: PathBuf,
    /// Workspace (a `[connectors.databricks.workspaces]` name) for detections that name none.
    /// Default: the connector's `default_workspace`.
    #[serde(default)]
    pub workspace: Option<String>,
    /// How far each statement reaches back before the watermark, to catch events that reach
    /// the system tables late. Default `15m`.
    #[serde(default = "default_overlap", deserialize_with = "duration")]
    pub overlap: Duration,
    /// Windows end this long before now, so the newest events have time to land. Default `1m`.
    #[serde(default = "default_lag", deserialize_with = "duration")]
    pub lag: Duration,
    /// Where a new detection starts (this long before now) and the longest window one
    /// statement covers; a detection that fell behind catches up window by window. Default `24h`.
    #[serde(default = "default_max_lookback", deserialize_with = "duration")]
    pub max_lookback: Duration,
    /// The alerts' source name (playbooks match it). Default `databricks-detection`.
    #[serde(default = "default_source")]
    pub source: String,
}

fn yes() -> bool {
    true
}
fn default_directory() -> PathBuf {
    PathBuf::from("detections")
}
fn default_overlap() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_lag() -> Duration {
    Duration::from_secs(60)
}
fn default_max_lookback() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_source() -> String {
    "databricks-detection".into()
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::duration::parse(&s).map_err(serde::de::Error::custom)
}

impl Default for DetectionsConfig {
    /// No `[detections]` table: off.
    fn default() -> Self {
        DetectionsConfig {
            enabled: false,
            directory: default_directory(),
            workspace: None,
            overlap: default_overlap(),
            lag: default_lag(),
            max_lookback: default_max_lookback(),
            source: default_source(),
        }
    }
}

impl DetectionsConfig {
    /// The detections directory, relative paths taken from the config file's directory.
    pub fn directory(&self, cfg: &crate::config::Config) -> PathBuf {
        if self.directory.is_absolute() {
            return self.directory.clone();
        }
        match cfg.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(base) => base.join(&self.directory),
            // A config in the current directory: paths as written, without a leading "./".
            None => self.directory.clone(),
        }
    }

    /// Checks what serde cannot: the source name and the window settings.
    pub fn check(&self) -> Result<(), String> {
        if self.source.is_empty() || !self.source.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("[detections] source {:?} must be letters, digits, '-' or '_'", self.source));
        }
        if self.max_lookback < Duration::from_secs(60) {
            return Err("[detections] max_lookback must be at least 1m".into());
        }
        Ok(())
    }

    pub fn poller_settings(&self, lease: Duration) -> PollerSettings {
        PollerSettings {
            source: self.source.clone(),
            overlap: self.overlap,
            lag: self.lag,
            max_lookback: self.max_lookback,
            lease,
            workspace: self.workspace.clone(),
            owner: crate::store::new_id("detections"),
        }
    }
}

/// Loads the configured detections, failing with every problem listed.
pub fn load_configured(cfg: &crate::config::Config) -> anyhow::Result<Vec<Detection>> {
    let dir = cfg.detections.directory(cfg);
    if !dir.is_dir() {
        anyhow::bail!(
            "detections directory {} does not exist (set [detections] directory, or enabled = false)",
            dir.display()
        );
    }
    let (detections, diags) = load(&dir);
    if !diags.is_empty() {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        anyhow::bail!("invalid detections:\n{}", lines.join("\n"));
    }
    Ok(detections)
}

/// The Databricks connector the detections run on.
pub fn databricks(cfg: &crate::config::Config) -> anyhow::Result<floodgate_databricks::Databricks> {
    let table = cfg.connectors.get("databricks").ok_or_else(|| {
        anyhow::anyhow!(
            "[detections] runs SQL on Databricks: add a [connectors.databricks] table (see docs/databricks.md)"
        )
    })?;
    floodgate_databricks::Databricks::from_config(table).map_err(|e| anyhow::anyhow!(e.to_string()))
}

/// Starts the detection poller when detections are configured; `None` otherwise.
pub fn spawn(
    cfg: &crate::config::Config,
    engine: &crate::engine::Engine,
    _intake: &crate::ingest::Intake,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let dc = &cfg.detections;
    if !dc.enabled {
        return Ok(None);
    }
    dc.check().map_err(|e| anyhow::anyhow!("{}: {e}", cfg.path.display()))?;
    let detections = load_configured(cfg)?;
    if !detections.iter().any(|d| d.enabled) {
        tracing::info!("no enabled detections; the detection poller is not started");
        return Ok(None);
    }
    let dbx = databricks(cfg)?;
    let poller = Poller::new(engine.clone(), Arc::new(dbx), detections, dc.poller_settings(cfg.engine.lease))
        .map_err(|e| anyhow::anyhow!("cannot start detections:\n{e}"))?;
    tracing::info!(
        jobs = poller.jobs().len(),
        source = %dc.source,
        overlap = %crate::duration::format(dc.overlap),
        lag = %crate::duration::format(dc.lag),
        "detections are running"
    );
    Ok(Some(Arc::new(poller).start()))
}
