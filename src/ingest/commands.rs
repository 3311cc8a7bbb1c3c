//! `floodgate detections ...`: check detection files, list them with their watermarks, try them
//! against Databricks without storing anything, run every due window once, or read the
//! configured audit-log files once.
//!
//! Output formatting lives here; the work lives in `ingest::detections`.

use super::detections::finding::Window;
use super::detections::poller::{self, Job, Outcome, Poller};
use super::detections::{self, Detection};
use crate::config::Config;
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, clap::Subcommand)]
pub enum DetectionsCommand {
    /// Check detection files: prints every problem as path:line:col: error: message and exits
    /// 1, or a one-line summary and exits 0.
    Validate {
        /// Detection files or directories (default: the config's detections directory, else ./detections).
        paths: Vec<PathBuf>,
        /// Config file, for its `[detections] directory` when no paths are given.
        #[arg(long, env = "FLOODGATE_CONFIG")]
        config: Option<PathBuf>,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// List the configured detections with their watermarks and last errors.
    List {
        /// Config file (TOML).
        #[arg(long, env = "FLOODGATE_CONFIG", default_value = "floodgate.toml")]
        config: PathBuf,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Run detections once over a window against the configured Databricks and print the alerts
    /// they would raise. Stores nothing and moves no watermark. With --events, run them instead
    /// on the local SQL engine over a file of events: no Databricks and no database.
    Test {
        /// Config file (default floodgate.toml). With --events it is optional and only names the
        /// detections directory.
        #[arg(long, env = "FLOODGATE_CONFIG")]
        config: Option<PathBuf>,
        /// Run locally over these events: JSON lines in the system.access.audit row shape. A
        /// malformed line is reported as FILE:LINE: message and skipped (the exit code is then 1).
        #[arg(long, value_name = "FILE.jsonl")]
        events: Option<PathBuf>,
        /// With --events: the detections directory (default: the config's, else ./detections).
        #[arg(long, value_name = "DIR", requires = "events")]
        detections_dir: Option<PathBuf>,
        /// Only these detection ids (repeatable; default all, including disabled ones).
        #[arg(long = "detection")]
        detections: Vec<String>,
        /// Window start: RFC 3339 (2026-09-01T00:00:00Z) or a duration before now (24h). Default
        /// 24h; with --events, the first event.
        #[arg(long)]
        since: Option<String>,
        /// Window end (exclusive): RFC 3339 or a duration before now. Default now; with --events,
        /// just after the last event.
        #[arg(long)]
        until: Option<String>,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Run every enabled detection's due windows once, storing alerts and moving watermarks
    /// exactly as `floodgate serve` does (for cron-style use and catching up by hand).
    RunOnce {
        /// Config file (TOML).
        #[arg(long, env = "FLOODGATE_CONFIG", default_value = "floodgate.toml")]
        config: PathBuf,
    },
    /// Read every `[[audit_files]]` directory once, storing alerts and per-file progress
    /// exactly as `floodgate serve` does (a file already read is not read again).
    ReadFiles {
        /// Config file (TOML).
        #[arg(long, env = "FLOODGATE_CONFIG", default_value = "floodgate.toml")]
        config: PathBuf,
    },
    /// Print the JSON Schema of detection files (committed as detections/schema.json).
    Schema,
}

/// `floodgate ingest …`
#[derive(Debug, clap::Subcommand)]
pub enum IngestCommand {
    /// Read delivered Databricks audit-log files under DIR once, run the enabled detections over
    /// the new records on the local SQL engine, and store their alerts together with each
    /// file's progress: a file is processed once, even across restarts. A malformed line is
    /// reported as FILE:LINE: message and skipped (the exit code is then 1).
    AuditLogs {
        /// The directory holding workspaceId=<id>/date=<yyyy-mm-dd>/auditlogs_*.json.
        dir: PathBuf,
        #[arg(long, env = "FLOODGATE_CONFIG", default_value = "floodgate.toml")]
        config: PathBuf,
        /// The name progress is kept under: one per directory.
        #[arg(long, default_value = "audit-logs")]
        name: String,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

pub async fn run_ingest(command: IngestCommand) -> Result<ExitCode> {
    match command {
        IngestCommand::AuditLogs { dir, config, name, format } => {
            ingest_audit_logs(&dir, &config, &name, &format).await
        }
    }
}

pub async fn run(command: DetectionsCommand) -> Result<ExitCode> {
    match command {
        DetectionsCommand::Validate { paths, config, format } => validate(&paths, config.as_deref(), &format),
        DetectionsCommand::List { config, format } => list(&config, &format).await,
        DetectionsCommand::Test { config, events: Some(events), detections_dir, detections, since, until, format } => {
            let args = LocalTest {
                events: &events,
                config: config.as_deref(),
                dir: detections_dir.as_deref(),
                only: &detections,
                since: since.as_deref(),
                until: until.as_deref(),
                format: &format,
            };
            test_local(args).await
        }
        DetectionsCommand::Test { config, events: None, detections_dir: _, detections, since, until, format } => {
            let config = config.unwrap_or_else(|| PathBuf::from("floodgate.toml"));
            test(&config, &detections, since.as_deref().unwrap_or("24h"), until.as_deref(), &format).await
        }
        DetectionsCommand::RunOnce { config } => run_once(&config).await,
        DetectionsCommand::ReadFiles { config } => read_files(&config).await,
        DetectionsCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&detections::schema::schema())?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn load_config(path: &Path) -> Result<Config> {
    if !path.exists() {
        anyhow::bail!("config file {} not found (pass --config FILE or set FLOODGATE_CONFIG)", path.display());
    }
    Ok(Config::load(path)?)
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// Loads every detection file of `targets` (files or directories): the good ones, and every
/// problem (ids used twice included), sorted by file and position.
pub fn check_paths(targets: &[PathBuf]) -> (Vec<Detection>, Vec<crate::playbook::Diagnostic>) {
    let mut good: Vec<Detection> = Vec::new();
    let mut diags = Vec::new();
    for t in targets {
        let (ok, bad) = detections::load(t);
        for d in ok {
            match good.iter().find(|g| g.id == d.id) {
                Some(first) => diags.push(crate::playbook::Diagnostic {
                    path: d.path.clone(),
                    line: 1,
                    col: 1,
                    message: format!("detection id {:?} is already used by {}", d.id, first.path),
                }),
                None => good.push(d),
            }
        }
        diags.extend(bad);
    }
    diags.sort();
    (good, diags)
}

/// What `floodgate validate` checks of the detections when a config is given: nothing when
/// `[detections]` is off; otherwise the table's settings, that the directory exists, and every
/// file in it. Returns the number of valid detections and the problems.
pub fn check_configured(cfg: &Config) -> (usize, Vec<crate::playbook::Diagnostic>) {
    let dc = &cfg.detections;
    if !dc.enabled {
        return (0, Vec::new());
    }
    // Problems of the table itself are reported at its header.
    let at_table = |message: String| {
        let text = std::fs::read_to_string(&cfg.path).unwrap_or_default();
        let line = text.lines().position(|l| l.trim_start().starts_with("[detections]")).map_or(1, |i| i + 1);
        crate::playbook::Diagnostic { path: cfg.path.display().to_string(), line: line as u64, col: 1, message }
    };
    let mut diags = Vec::new();
    if let Err(e) = dc.check() {
        diags.push(at_table(e));
    }
    let dir = dc.directory(cfg);
    if !dir.is_dir() {
        diags.push(at_table(format!(
            "[detections] directory {} does not exist (create it, set directory, or enabled = false)",
            dir.display()
        )));
        return (0, diags);
    }
    let (good, bad) = check_paths(&[dir]);
    diags.extend(bad);
    (good.len(), diags)
}

/// `floodgate detections validate`
fn validate(paths: &[PathBuf], config: Option<&Path>, format: &str) -> Result<ExitCode> {
    let cfg = config.map(load_config).transpose()?;
    let targets: Vec<PathBuf> = if paths.is_empty() {
        vec![cfg.as_ref().map_or_else(|| PathBuf::from("detections"), |c| c.detections.directory(c))]
    } else {
        paths.to_vec()
    };
    let (good, diags) = check_paths(&targets);
    if format == "json" {
        let out = json!({
            "valid": diags.is_empty() && !good.is_empty(),
            "detections": good.iter().map(|d| json!({"id": d.id, "path": d.path, "enabled": d.enabled})).collect::<Vec<_>>(),
            "problems": diags,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if !diags.is_empty() {
        for d in &diags {
            println!("{d}");
        }
        let files: std::collections::BTreeSet<_> = diags.iter().map(|d| &d.path).collect();
        eprintln!("{} in {}", plural(diags.len(), "problem"), plural(files.len(), "file"));
    } else if good.is_empty() {
        let shown: Vec<String> = targets.iter().map(|t| t.display().to_string()).collect();
        println!("no detections found in {}", shown.join(", "));
    } else {
        println!("ok: {} valid", plural(good.len(), "detection"));
    }
    Ok(if diags.is_empty() && !good.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `floodgate detections list`
async fn list(config: &Path, format: &str) -> Result<ExitCode> {
    let cfg = load_config(config)?;
    let found = detections::load_configured(&cfg)?;
    let store = crate::server::open_store(&cfg).await?;
    let states = store.watermarks().await?;
    store.close().await;
    let rows: Vec<Value> = found
        .iter()
        .map(|d| {
            let state: Vec<Value> = states
                .iter()
                .filter(|s| s.detection_id == d.id)
                .map(|s| {
                    json!({
                        "workspace": s.workspace,
                        "watermark": crate::clock::rfc3339(s.watermark),
                        "windows": s.windows,
                        "alerts": s.alerts,
                        "failures": s.failures,
                        "last_error": s.last_error,
                        "last_run_at": s.last_run_at.map(crate::clock::rfc3339),
                    })
                })
                .collect();
            json!({
                "id": d.id,
                "title": d.title,
                "enabled": d.enabled && cfg.detections.enabled,
                "severity": d.severity.as_str(),
                "tactic": d.tactic,
                "technique": d.technique,
                "interval": crate::duration::format(d.interval),
                "workspaces": d.workspaces,
                "rule": d.rule(),
                "path": d.path,
                "state": state,
            })
        })
        .collect();
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if !cfg.detections.enabled {
        println!("([detections] is not enabled in {}: floodgate serve runs none of these)", cfg.path.display());
    }
    for r in &rows {
        let on = if r["enabled"] == true { "on " } else { "off" };
        println!(
            "{on} {:<34} {:<8} every {:<5} {}",
            r["id"].as_str().unwrap_or(""),
            r["severity"].as_str().unwrap_or(""),
            r["interval"].as_str().unwrap_or(""),
            r["title"].as_str().unwrap_or("")
        );
        for s in r["state"].as_array().into_iter().flatten() {
            let error = match s["last_error"].as_str() {
                Some(e) => format!("  FAILING ({}x): {e}", s["failures"]),
                None => String::new(),
            };
            println!(
                "      {}: watermark {}, {}, {}{error}",
                s["workspace"].as_str().unwrap_or(""),
                s["watermark"].as_str().unwrap_or(""),
                crate::text::count(s["windows"].as_i64().unwrap_or(0), "window", "windows"),
                crate::text::count(s["alerts"].as_i64().unwrap_or(0), "alert", "alerts")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An instant on the command line: RFC 3339, or a duration before now.
fn instant_arg(s: &str, now: i64) -> Result<i64> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    match crate::duration::parse(s) {
        Ok(d) => Ok(now - d.as_millis() as i64),
        Err(_) => {
            anyhow::bail!("{s:?} is neither an RFC 3339 time (2026-09-01T00:00:00Z) nor a duration before now (24h)")
        }
    }
}

/// `floodgate detections test`
async fn test(config: &Path, only: &[String], since: &str, until: Option<&str>, format: &str) -> Result<ExitCode> {
    let cfg = load_config(config)?;
    let found = detections::load_configured(&cfg)?;
    check_only(&found, only)?;
    let dbx = detections::databricks(&cfg)?;
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let window = Window { since: instant_arg(since, now)?, until: until.map_or(Ok(now), |u| instant_arg(u, now))? };
    if window.until <= window.since {
        anyhow::bail!("the window is empty: --until must be after --since");
    }
    let default = cfg.detections.workspace.clone().or_else(|| dbx.config().default_workspace.clone());
    let mut failed = false;
    let mut report = Vec::new();
    for d in found.into_iter().filter(|d| only.is_empty() || only.contains(&d.id)) {
        let d = Arc::new(d);
        let workspaces =
            if d.workspaces.is_empty() { default.clone().into_iter().collect() } else { d.workspaces.clone() };
        for ws in workspaces {
            let job = Job { detection: d.clone(), workspace: ws.clone() };
            let entry = match poller::evaluate(&dbx, &job, &cfg.detections.source, window, window, now).await {
                Ok((result, alerts)) => json!({
                    "detection": d.id, "workspace": ws, "rows": result.rows.len(),
                    "alerts": alerts.iter().map(crate::alert::Alert::to_json).collect::<Vec<_>>(),
                }),
                Err(e) => {
                    failed = true;
                    json!({"detection": d.id, "workspace": ws, "error": e.to_string()})
                }
            };
            report.push(entry);
        }
    }
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&json!({"window": window.to_json(), "results": report}))?);
    } else {
        println!("window {} .. {}", crate::clock::rfc3339(window.since), crate::clock::rfc3339(window.until));
        for r in &report {
            let (id, ws) = (r["detection"].as_str().unwrap_or(""), r["workspace"].as_str().unwrap_or(""));
            if let Some(e) = r["error"].as_str() {
                println!("{id} ({ws}): ERROR {e}");
                continue;
            }
            let alerts = r["alerts"].as_array().cloned().unwrap_or_default();
            println!("{id} ({ws}): {}", plural(alerts.len(), "alert"));
            alerts.iter().for_each(print_alert);
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// One alert as `detections test` prints it.
fn print_alert(a: &Value) {
    let entities: Vec<String> = a["entities"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    println!(
        "  [{}] {}  ({}; {})",
        a["severity"].as_str().unwrap_or(""),
        a["title"].as_str().unwrap_or(""),
        a["external_id"].as_str().unwrap_or(""),
        entities.join(", ")
    );
}

/// What `detections test --events` was asked.
#[cfg_attr(not(feature = "local-sql"), allow(dead_code))]
struct LocalTest<'a> {
    events: &'a Path,
    config: Option<&'a Path>,
    dir: Option<&'a Path>,
    only: &'a [String],
    since: Option<&'a str>,
    until: Option<&'a str>,
    format: &'a str,
}

/// The detections in `dir` (every problem listed), or the configured ones.
#[cfg_attr(not(feature = "local-sql"), allow(dead_code))]
fn load_detections(dir: Option<&Path>, cfg: Option<&Config>) -> Result<Vec<Detection>> {
    let dir = match (dir, cfg) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(c)) => c.detections.directory(c),
        (None, None) => PathBuf::from("detections"),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "detections directory {} does not exist (pass --detections-dir DIR or --config FILE)",
            dir.display()
        );
    }
    let (found, diags) = detections::load(&dir);
    if !diags.is_empty() {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        anyhow::bail!("invalid detections:\n{}", lines.join("\n"));
    }
    if found.is_empty() {
        anyhow::bail!("no detections found in {}", dir.display());
    }
    Ok(found)
}

fn check_only(found: &[Detection], only: &[String]) -> Result<()> {
    for id in only {
        if !found.iter().any(|d| &d.id == id) {
            let h = crate::playbook::diag::hint(id, found.iter().map(|d| d.id.as_str()));
            anyhow::bail!("no detection {id:?}{h}");
        }
    }
    Ok(())
}

/// `floodgate detections test --events FILE`
#[cfg(feature = "local-sql")]
async fn test_local(a: LocalTest<'_>) -> Result<ExitCode> {
    use super::detections::local;
    let cfg = a.config.map(load_config).transpose()?;
    let found = load_detections(a.dir, cfg.as_ref())?;
    check_only(&found, a.only)?;
    let source = cfg.as_ref().map_or_else(|| "databricks-detection".to_string(), |c| c.detections.source.clone());
    let shown = a.events.display().to_string();
    let text = std::fs::read_to_string(a.events).with_context(|| format!("cannot read {shown}"))?;
    let engine = floodgate_databricks::localsql::LocalSql::open().await.map_err(|e| anyhow::anyhow!(e))?;
    let (rows, mut bad) = local::parse_jsonl(&text);
    let (loaded, unfit) = local::load(&engine, local::AUDIT, &rows).await.map_err(|e| anyhow::anyhow!(e))?;
    bad.extend(unfit);
    bad.sort_by_key(|b| b.line);
    for b in &bad {
        eprintln!("{}", b.at(&shown));
    }
    if !bad.is_empty() {
        eprintln!("{} skipped", plural(bad.len(), "malformed line"));
    }
    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
    let covering = local::events_window(&engine).await.map_err(|e| anyhow::anyhow!(e))?;
    let since = match (a.since, covering) {
        (Some(s), _) => instant_arg(s, now)?,
        (None, Some(w)) => w.since,
        (None, None) => anyhow::bail!("{shown} holds no events; give --since and --until to run over an empty window"),
    };
    let until = match (a.until, covering) {
        (Some(u), _) => instant_arg(u, now)?,
        (None, Some(w)) => w.until,
        (None, None) => now,
    };
    let window = Window { since, until };
    if window.until <= window.since {
        anyhow::bail!("the window is empty: --until must be after --since");
    }
    let mut failed = false;
    let mut report = Vec::new();
    for d in found.iter().filter(|d| a.only.is_empty() || a.only.contains(&d.id)) {
        report.push(match local::evaluate(&engine, d, &source, local::WORKSPACE, window, now).await {
            Ok((result, alerts)) => json!({
                "id": d.id, "rows": result.rows.len(),
                "alerts": alerts.iter().map(crate::alert::Alert::to_json).collect::<Vec<_>>(),
            }),
            Err(e) => {
                failed = true;
                json!({"id": d.id, "error": e.to_string()})
            }
        });
    }
    let total: usize = report.iter().map(|r| r["alerts"].as_array().map_or(0, Vec::len)).sum();
    if a.format == "json" {
        let out = json!({
            "events": loaded, "malformed": bad.len(), "window": window.to_json(), "alerts": total, "detections": report,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} from {shown}, window {} .. {}",
            plural(loaded, "event"),
            crate::clock::rfc3339(window.since),
            crate::clock::rfc3339(window.until)
        );
        for r in &report {
            let id = r["id"].as_str().unwrap_or("");
            if let Some(e) = r["error"].as_str() {
                println!("{id}: ERROR {e}");
                continue;
            }
            let alerts = r["alerts"].as_array().cloned().unwrap_or_default();
            println!("{id}: {}", plural(alerts.len(), "alert"));
            alerts.iter().for_each(print_alert);
        }
        let fired = report.iter().filter(|r| r["alerts"].as_array().is_some_and(|v| !v.is_empty())).count();
        println!("{} of {} raised {}", fired, plural(report.len(), "detection"), plural(total, "alert"));
    }
    Ok(if failed || !bad.is_empty() { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[cfg(not(feature = "local-sql"))]
async fn test_local(_: LocalTest<'_>) -> Result<ExitCode> {
    anyhow::bail!("this floodgate was built without the local-sql feature: --events is not available")
}

/// `floodgate detections run-once`
async fn run_once(config: &Path) -> Result<ExitCode> {
    let cfg = load_config(config)?;
    cfg.detections.check().map_err(|e| anyhow::anyhow!("{}: {e}", cfg.path.display()))?;
    let found = detections::load_configured(&cfg)?;
    let dbx = detections::databricks(&cfg)?;
    let store = crate::server::open_store(&cfg).await?;
    let engine = crate::server::build_engine(&cfg, store.clone(), crate::engine::Settings::default())
        .context("cannot load the playbooks the alerts are routed to")?;
    let poller = Poller::new(engine, Arc::new(dbx), found, cfg.detections.poller_settings(cfg.engine.lease))
        .map_err(|e| anyhow::anyhow!("cannot run detections:\n{e}"))?;
    let mut failed = false;
    for (job, result) in poller.run_until_caught_up().await {
        let (id, ws) = (&job.detection.id, &job.workspace);
        match result {
            Ok(Outcome::Committed(c)) => println!(
                "{id} ({ws}): {} .. {}: {}, {} new, {} duplicate",
                crate::clock::rfc3339(c.window.since),
                crate::clock::rfc3339(c.window.until),
                plural(c.rows, "row"),
                c.new_alerts,
                c.duplicates
            ),
            Ok(Outcome::Idle) => println!("{id} ({ws}): up to date"),
            Ok(Outcome::Busy) => println!("{id} ({ws}): another process is running it"),
            Ok(Outcome::Lost) => println!("{id} ({ws}): another process committed the window first"),
            Err(e) => {
                failed = true;
                println!("{id} ({ws}): ERROR {e}");
            }
        }
    }
    store.close().await;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `floodgate detections read-files`
async fn read_files(config: &Path) -> Result<ExitCode> {
    let cfg = load_config(config)?;
    if cfg.audit_files.is_empty() {
        anyhow::bail!("{} has no [[audit_files]]", cfg.path.display());
    }
    let store = crate::server::open_store(&cfg).await?;
    let engine = crate::server::build_engine(&cfg, store.clone(), crate::engine::Settings::default())
        .context("cannot load the playbooks the alerts are routed to")?;
    let base = cfg.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut failed = false;
    for entry in &cfg.audit_files {
        let files = super::audit_files::AuditFiles::new(entry, base, engine.clone())
            .and_then(|w| super::audit_files::with_configured_detections(w, entry, &cfg))
            .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.path.display()))?;
        let scan = files.scan().await;
        for (id, r) in &scan.detections {
            match r {
                Ok(n) if *n > 0 => println!("{}: detection {id}: {}", entry.name, plural(*n, "alert")),
                Ok(_) => {}
                Err(e) => {
                    failed = true;
                    println!("{}: detection {id}: ERROR {e}", entry.name);
                }
            }
        }
        if entry.detections {
            println!(
                "{}: detections stored {} new, {} duplicate",
                entry.name, scan.detection_new, scan.detection_duplicates
            );
        }
        for r in scan.files {
            match r {
                Ok(f) => println!(
                    "{}: {}: {}, {} matched, {} new, {} duplicate, {} malformed{}",
                    entry.name,
                    f.path,
                    plural(f.records, "record"),
                    f.matched,
                    f.new_alerts,
                    f.duplicates,
                    f.malformed,
                    if f.reread { " (rewritten: read again)" } else { "" }
                ),
                Err(e) => {
                    failed = true;
                    println!("{}: ERROR {e}", entry.name);
                }
            }
        }
    }
    store.close().await;
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// `floodgate ingest audit-logs DIR`
async fn ingest_audit_logs(dir: &Path, config: &Path, name: &str, format: &str) -> Result<ExitCode> {
    use super::audit_files::{AuditFiles, AuditFilesConfig};
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let cfg = load_config(config)?;
    let entry = AuditFilesConfig {
        name: name.to_string(),
        directory: std::path::absolute(dir)?,
        poll_interval: std::time::Duration::from_secs(30),
        rules: Vec::new(),
        detections: true,
    };
    let store = crate::server::open_store(&cfg).await?;
    let engine = crate::server::build_engine(&cfg, store.clone(), crate::engine::Settings::default())
        .context("cannot load the playbooks the alerts are routed to")?;
    let files = AuditFiles::new(&entry, Path::new("."), engine)
        .and_then(|w| super::audit_files::with_configured_detections(w, &entry, &cfg))
        .map_err(|e| anyhow::anyhow!("{}: {e}", cfg.path.display()))?;
    let scan = files.scan().await;
    store.close().await;
    let mut failed = false;
    let (mut read, mut unchanged, mut records, mut malformed) = (0usize, 0usize, 0usize, 0usize);
    let mut file_rows = Vec::new();
    for r in &scan.files {
        match r {
            Ok(f) if f.records == 0 && f.malformed == 0 && !f.reread => {
                unchanged += 1;
                file_rows.push(json!({"path": f.path, "records": 0, "malformed": 0, "unchanged": true}));
            }
            Ok(f) => {
                read += 1;
                records += f.records;
                malformed += f.malformed;
                for p in &f.problems {
                    eprintln!("{p}");
                }
                file_rows
                    .push(json!({"path": f.path, "records": f.records, "malformed": f.malformed, "reread": f.reread}));
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
                file_rows.push(json!({"error": e.to_string()}));
            }
        }
    }
    let detections: Vec<Value> = scan
        .detections
        .iter()
        .map(|(id, r)| match r {
            Ok(n) => json!({"id": id, "alerts": n}),
            Err(e) => {
                failed = true;
                json!({"id": id, "error": e})
            }
        })
        .collect();
    if format == "json" {
        let out = json!({
            "files": file_rows, "files_read": read, "files_unchanged": unchanged, "records": records,
            "malformed": malformed, "detections": detections,
            "alerts": {"new": scan.detection_new, "duplicate": scan.detection_duplicates},
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for f in &file_rows {
            if f["unchanged"] == true || f.get("error").is_some() {
                continue;
            }
            println!(
                "{}: {}, {} malformed{}",
                f["path"].as_str().unwrap_or(""),
                plural(f["records"].as_u64().unwrap_or(0) as usize, "record"),
                f["malformed"],
                if f["reread"] == true { " (rewritten: read again)" } else { "" }
            );
        }
        for d in &detections {
            match d["error"].as_str() {
                Some(e) => println!("{}: ERROR {e}", d["id"].as_str().unwrap_or("")),
                None if d["alerts"].as_u64().unwrap_or(0) > 0 => println!(
                    "{}: {}",
                    d["id"].as_str().unwrap_or(""),
                    plural(d["alerts"].as_u64().unwrap_or(0) as usize, "alert")
                ),
                None => {}
            }
        }
        println!(
            "{} read ({unchanged} unchanged), {}, {}, alerts stored: {} new, {} duplicate",
            plural(read, "file"),
            plural(records, "record"),
            plural(malformed, "malformed line"),
            scan.detection_new,
            scan.detection_duplicates
        );
    }
    Ok(if failed || malformed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
