//! Intake of delivered Databricks audit-log files: JSON lines with camelCase keys under
//! `workspaceId=<id>/date=<yyyy-mm-dd>/auditlogs_<id>.json`, delivered to a bucket that is
//! mounted or synced to a local directory.
//!
//! Each `[[audit_files]]` entry watches one directory. Every record is mapped to the
//! `system.access.audit` row shape (so playbooks and filters see the same fields as for
//! detections), and only records that match one of the entry's `rules` (service/action
//! patterns and an optional condition) become alerts, through the `databricks-audit` format.
//! Delivered records carry no event id, so the alert's external id is a hash of the record's
//! canonical JSON: the same record read twice is a duplicate, never a second alert.
//!
//! With `detections = true` (and in `floodgate ingest audit-logs`) the enabled detections also
//! run over the records, on the local SQL engine (`detections::local`); then a scan stores the
//! rules' and the detections' alerts and every file's progress in one transaction (`scan`).
//!
//! Progress is durable per file: the read offset and the SHA-256 of the bytes before it move in
//! the transaction that stores the alerts of those lines. A restart reads on from the offset; a
//! file that grew is read from the offset; a file that was overwritten (Databricks may rewrite
//! a file with more lines) no longer matches the stored prefix hash and is read again from the
//! start, its known records coming back as duplicates. A line that is not a JSON object is
//! logged with its file and line number and skipped; it never stops the rest. This module never
//! writes to the watched directory.

#[cfg(feature = "local-sql")]
use super::detections::{Detection, DetectionsConfig};
use crate::alert::Alert;
use crate::config::{Config, FieldMapping, SourceAuth, SourceConfig, SourceFormat};
use crate::engine::Engine;
use crate::playbook::{Condition, Severity, Templates};
use crate::store::detections::{FileProgress, save_file_progress_in};
use crate::store::{self, StoreError, new_id};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a malformed line is reported as, after `path:line: `.
const NOT_A_RECORD: &str = "not an audit record (a JSON object per line); skipped";
/// Lines committed per transaction.
const BATCH_LINES: usize = 500;
/// Files larger than this are skipped with an error (delivered files are far smaller).
const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// How deep below the directory files are looked for (`workspaceId=…/date=…/file`).
const MAX_DEPTH: usize = 4;

/// One `[[audit_files]]` entry in floodgate.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilesConfig {
    /// The alerts' source (playbooks match it), and the key of the per-file progress.
    pub name: String,
    /// The directory holding `workspaceId=…` folders; relative to the config file.
    pub directory: PathBuf,
    /// How often the directory is scanned. Default `30s`.
    #[serde(default = "default_poll", deserialize_with = "duration")]
    pub poll_interval: Duration,
    /// Which records become alerts; a record matching none of them is only counted.
    #[serde(default)]
    pub rules: Vec<AuditFileRule>,
    /// Also run the enabled detections (`[detections] directory`) over the records, on the
    /// local SQL engine, storing their alerts as the poller does. Default false.
    #[serde(default)]
    pub detections: bool,
}

/// A filter: the record's `service.action` matches one of `actions` and `when` holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFileRule {
    /// `service.action` patterns: `accounts.login`, `secrets.*` (a whole service), `*`.
    #[serde(default)]
    pub actions: Vec<String>,
    /// A condition over `event` (the record in system-table shape), e.g.
    /// `event.response.status_code >= 400`.
    #[serde(default)]
    pub when: Option<String>,
    /// The alert's severity. Default `medium`.
    #[serde(default)]
    pub severity: Option<String>,
    /// The alert's confidence (0.0–1.0). Default 0.5.
    #[serde(default, deserialize_with = "crate::config::optional_confidence")]
    pub confidence: Option<f64>,
}

fn default_poll() -> Duration {
    Duration::from_secs(30)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    crate::duration::parse(&s).map_err(serde::de::Error::custom)
}

struct Rule {
    actions: Vec<String>,
    when: Option<Condition>,
    severity: Severity,
    confidence: f64,
}

/// What one scan of one file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    pub path: String,
    /// The file no longer matched what was read before and was read again from the start.
    pub reread: bool,
    pub records: usize,
    pub matched: usize,
    pub new_alerts: usize,
    pub duplicates: usize,
    pub malformed: usize,
    /// Each malformed line as `path:line: message`.
    pub problems: Vec<String>,
}

/// What one scan did: each file, and the detections run over the records read.
#[derive(Debug, Default)]
pub struct ScanReport {
    pub files: Vec<Result<FileReport, AuditFileError>>,
    /// Per detection (when the entry runs detections): its id, and its alerts or its error.
    pub detections: Vec<(String, Result<usize, String>)>,
    /// Alerts the detections stored (new) and found already stored (duplicates).
    pub detection_new: usize,
    pub detection_duplicates: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditFileError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("cannot store progress: {0}")]
    Store(#[from] StoreError),
}

/// A watched directory.
pub struct AuditFiles {
    name: String,
    directory: PathBuf,
    poll: Duration,
    rules: Vec<Rule>,
    templates: Templates,
    source: SourceConfig,
    engine: Engine,
    /// The detections run over the records (`detections = true`).
    local: Option<LocalDetections>,
}

/// Detections over delivered records, on the local SQL engine. The engine keeps the records of
/// earlier scans (up to `retain` before the newest one, each record once), so counts over an
/// hour see records from several files and scans.
#[cfg(feature = "local-sql")]
struct LocalDetections {
    detections: Vec<Detection>,
    source: String,
    overlap: Duration,
    retain: Duration,
    state: tokio::sync::Mutex<Option<LocalState>>,
}

#[cfg(feature = "local-sql")]
struct LocalState {
    engine: floodgate_databricks::localsql::LocalSql,
    seen: std::collections::HashMap<String, i64>,
}

#[cfg(not(feature = "local-sql"))]
struct LocalDetections;

/// New complete lines of one file, read but not yet committed.
#[cfg(feature = "local-sql")]
struct Pending {
    report: FileReport,
    progress: FileProgress,
    expected: Option<(i64, String)>,
    rows: Vec<Value>,
}

impl AuditFiles {
    /// Checks an entry; `base` is the config file's directory. Every problem is reported.
    pub fn new(cfg: &AuditFilesConfig, base: &Path, engine: Engine) -> Result<AuditFiles, String> {
        let at = format!("[[audit_files]] {:?}", cfg.name);
        let mut problems = Vec::new();
        if cfg.name.is_empty() || !cfg.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            problems.push(format!("{at}: name must be letters, digits, '-' or '_'"));
        }
        if cfg.rules.is_empty() && !cfg.detections {
            problems.push(format!(
                "{at}: add at least one [[audit_files.rules]] (which records become alerts), or detections = true"
            ));
        }
        if cfg.detections && cfg!(not(feature = "local-sql")) {
            problems.push(format!("{at}: detections = true needs floodgate built with the local-sql feature"));
        }
        let mut templates = Templates::new();
        let mut rules = Vec::new();
        for (i, r) in cfg.rules.iter().enumerate() {
            let at = format!("{at} rules[{i}]");
            if r.actions.is_empty() && r.when.is_none() {
                problems.push(format!(
                    "{at}: give actions or when (a rule with neither would make every record an alert; write actions = [\"*\"] if you mean it)"
                ));
            }
            for a in &r.actions {
                let ok = a == "*" || a.split_once('.').is_some_and(|(s, act)| !s.is_empty() && !act.is_empty());
                if !ok {
                    problems.push(format!("{at}: action {a:?} must be service.action, service.* or *"));
                }
            }
            let when = match &r.when {
                Some(w) => match templates.condition(w) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        problems.push(format!("{at}: when: {}", e.message));
                        None
                    }
                },
                None => None,
            };
            let severity = match r.severity.as_deref() {
                None => Severity::Medium,
                Some(s) => Severity::parse(s).unwrap_or_else(|| {
                    problems.push(format!("{at}: severity {s:?} is not info, low, medium, high or critical"));
                    Severity::Medium
                }),
            };
            let confidence = r.confidence.unwrap_or(0.5);
            if !(0.0..=1.0).contains(&confidence) {
                problems.push(format!("{at}: confidence {confidence} is not between 0.0 and 1.0"));
            }
            rules.push(Rule { actions: r.actions.clone(), when, severity, confidence });
        }
        if !problems.is_empty() {
            return Err(problems.join("\n"));
        }
        let directory = if cfg.directory.is_absolute() { cfg.directory.clone() } else { base.join(&cfg.directory) };
        let source = SourceConfig {
            name: cfg.name.clone(),
            format: SourceFormat::DatabricksAudit,
            // Files are not posted: nothing authenticates, and this is never resolved.
            auth: SourceAuth::Bearer { token: floodgate_sdk::SecretRef::Env("UNUSED".into()) },
            default_severity: None,
            default_confidence: None,
            mapping: FieldMapping::default(),
        };
        Ok(AuditFiles {
            name: cfg.name.clone(),
            directory,
            poll: cfg.poll_interval,
            rules,
            templates,
            source,
            engine,
            local: None,
        })
    }

    /// Runs these (enabled) detections over the records read, with the `[detections]` settings:
    /// the alerts' source, how far each statement reaches back before the first new record
    /// (`overlap`, or the detection's `lookback` if longer), and how long records are kept for
    /// later scans (`max_lookback`).
    #[cfg(feature = "local-sql")]
    pub fn with_detections(mut self, detections: Vec<Detection>, settings: &DetectionsConfig) -> AuditFiles {
        self.local = Some(LocalDetections {
            detections: detections.into_iter().filter(|d| d.enabled).collect(),
            source: settings.source.clone(),
            overlap: settings.overlap,
            retain: settings.max_lookback,
            state: tokio::sync::Mutex::new(None),
        });
        self
    }

    /// The entry's name (the source of its rule alerts, and the key of its progress).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The watched directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Every audit-log file under the directory, relative paths sorted.
    pub fn files(&self) -> Result<Vec<String>, AuditFileError> {
        let mut out = Vec::new();
        let mut stack = vec![(self.directory.clone(), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let rd = std::fs::read_dir(&dir).map_err(|e| AuditFileError::File {
                path: dir.display().to_string(),
                message: format!("cannot read directory: {e}"),
            })?;
            for entry in rd.filter_map(Result::ok) {
                let p = entry.path();
                let Ok(kind) = entry.file_type() else { continue };
                if kind.is_dir() && depth < MAX_DEPTH {
                    stack.push((p, depth + 1));
                } else if kind.is_file()
                    && p.extension().is_some_and(|e| e == "json" || e == "jsonl")
                    && let Ok(rel) = p.strip_prefix(&self.directory)
                {
                    out.push(rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Reads every file once: what is new in each (see the module docs).
    pub async fn scan_once(&self) -> Vec<Result<FileReport, AuditFileError>> {
        match self.files() {
            Ok(files) => {
                let mut out = Vec::with_capacity(files.len());
                for f in files {
                    out.push(self.read_file(&f).await);
                }
                out
            }
            Err(e) => vec![Err(e)],
        }
    }

    /// One scan: `scan_once`, or with detections, every file's new lines read, the rules and
    /// the detections run over them, and everything stored in ONE durable transaction with every
    /// file's progress, so a file's records are processed once even across restarts.
    pub async fn scan(&self) -> ScanReport {
        match &self.local {
            #[cfg(feature = "local-sql")]
            Some(local) => self.scan_with_detections(local).await,
            _ => ScanReport { files: self.scan_once().await, ..ScanReport::default() },
        }
    }

    /// Opens a file for reading on: `None` when it is unchanged since it was last read. Where
    /// the stored progress still matches the file's first bytes, reading resumes after them;
    /// otherwise the file was rewritten and is read again from the start.
    async fn open(&self, rel: &str) -> Result<Option<Opened>, AuditFileError> {
        let abs = self.directory.join(rel);
        let fail = |message: String| AuditFileError::File { path: abs.display().to_string(), message };
        let meta = std::fs::metadata(&abs).map_err(|e| fail(format!("cannot read file: {e}")))?;
        if meta.len() > MAX_FILE_BYTES {
            return Err(fail(format!(
                "file is {} bytes; audit-log files over {MAX_FILE_BYTES} are skipped",
                meta.len()
            )));
        }
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64);
        let size = meta.len() as i64;
        let known = self.engine.store().audit_file_progress(&self.name, rel).await?;
        if known.as_ref().is_some_and(|p| p.file_size == size && p.modified_ms == modified && p.byte_offset == size) {
            return Ok(None);
        }
        let bytes = tokio::fs::read(&abs).await.map_err(|e| fail(format!("cannot read file: {e}")))?;
        let mut resume = None;
        let (mut offset, mut line_no) = (0usize, 0i64);
        if let Some(p) = &known {
            let at = usize::try_from(p.byte_offset).unwrap_or(usize::MAX);
            if at <= bytes.len() && hex::encode(Sha256::digest(&bytes[..at])) == p.prefix_sha256 {
                (offset, line_no) = (at, p.line_count);
                resume = Some(p.clone());
            } else {
                tracing::info!(source = %self.name, file = %rel, "audit-log file was rewritten; reading it again from the start (records already seen are duplicates)");
            }
        }
        Ok(Some(Opened { abs, bytes, size, modified, known, resume, offset, line_no }))
    }

    /// One line of a file as a system-table row. `None` for a blank line, and for a line that
    /// is not a JSON object: that one is counted and reported with its file and line number.
    fn read_line(
        &self,
        line: &[u8],
        line_no: i64,
        abs: &Path,
        (workspace, date): &(Option<String>, Option<String>),
        report: &mut FileReport,
        progress: &mut FileProgress,
    ) -> Option<Value> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(record)) => {
                report.records += 1;
                progress.records += 1;
                Some(system_row(&record, workspace.as_deref(), date.as_deref()))
            }
            Ok(_) | Err(_) => {
                report.malformed += 1;
                progress.malformed += 1;
                let problem = format!("{}:{line_no}: {NOT_A_RECORD}", abs.display());
                tracing::warn!(source = %self.name, "{problem}");
                report.problems.push(problem);
                None
            }
        }
    }

    /// Progress of a file read from its start (counts start again with the file).
    fn fresh_progress(&self, rel: &str, size: i64, modified: i64) -> FileProgress {
        FileProgress {
            source: self.name.clone(),
            path: rel.to_string(),
            byte_offset: 0,
            line_count: 0,
            prefix_sha256: hex::encode(Sha256::digest(b"")),
            file_size: size,
            modified_ms: modified,
            records: 0,
            alerts: 0,
            malformed: 0,
            updated_at: 0,
        }
    }

    async fn read_file(&self, rel: &str) -> Result<FileReport, AuditFileError> {
        let mut report = FileReport { path: rel.to_string(), ..FileReport::default() };
        let Some(f) = self.open(rel).await? else { return Ok(report) };
        let Opened { abs, bytes, size, modified, known, resume, offset, line_no } = f;
        let (mut offset, mut line_no) = (offset, line_no);
        report.reread = known.is_some() && resume.is_none();
        let mut hasher = Sha256::new();
        hasher.update(&bytes[..offset]);
        let mut progress = resume.unwrap_or_else(|| self.fresh_progress(rel, size, modified));
        let mut expected = known.map(|p| (p.byte_offset, p.prefix_sha256));
        let partitions = path_partitions(rel);
        let end = complete_end(&bytes, offset);
        while offset < end {
            let mut alerts = Vec::new();
            let mut batch_end = offset;
            let mut lines = 0;
            while batch_end < end && lines < BATCH_LINES {
                let next = bytes[batch_end..end].iter().position(|b| *b == b'\n').map_or(end, |i| batch_end + i + 1);
                let line = &bytes[batch_end..next];
                line_no += 1;
                lines += 1;
                batch_end = next;
                let Some(row) = self.read_line(line, line_no, &abs, &partitions, &mut report, &mut progress) else {
                    continue;
                };
                if let Some(alert) = self.alert_for(&row) {
                    report.matched += 1;
                    progress.alerts += 1;
                    alerts.push(alert);
                }
            }
            hasher.update(&bytes[offset..batch_end]);
            progress.byte_offset = batch_end as i64;
            progress.line_count = line_no;
            progress.prefix_sha256 = hex::encode(hasher.clone().finalize());
            progress.file_size = size;
            progress.modified_ms = modified;
            progress.updated_at = self.engine.now();
            match self.commit(&alerts, &progress, expected.as_ref().map(|(o, h)| (*o, h.as_str()))).await? {
                Some((new, dup)) => {
                    report.new_alerts += new;
                    report.duplicates += dup;
                }
                None => {
                    tracing::info!(source = %self.name, file = %rel, "another process read this file first");
                    return Ok(report);
                }
            }
            expected = Some((progress.byte_offset, progress.prefix_sha256.clone()));
            offset = batch_end;
        }
        if offset == end && (expected.is_none() || progress.file_size != size || progress.modified_ms != modified) {
            // Nothing new but the file's size or time changed (or it is empty): remember it.
            progress.file_size = size;
            progress.modified_ms = modified;
            progress.prefix_sha256 = hex::encode(hasher.clone().finalize());
            progress.updated_at = self.engine.now();
            self.commit(&[], &progress, expected.as_ref().map(|(o, h)| (*o, h.as_str()))).await?;
        }
        Ok(report)
    }

    /// A file's new complete lines as system-table rows, with the progress that consumes them
    /// (not stored). `None`: the file is unchanged since it was last read.
    #[cfg(feature = "local-sql")]
    async fn collect(&self, rel: &str) -> Result<Option<Pending>, AuditFileError> {
        let Some(f) = self.open(rel).await? else { return Ok(None) };
        let Opened { abs, bytes, size, modified, known, resume, offset, line_no } = f;
        let mut line_no = line_no;
        let mut report = FileReport { path: rel.to_string(), ..FileReport::default() };
        report.reread = known.is_some() && resume.is_none();
        let mut progress = resume.unwrap_or_else(|| self.fresh_progress(rel, size, modified));
        let partitions = path_partitions(rel);
        let end = complete_end(&bytes, offset);
        let mut rows = Vec::new();
        let mut at = offset;
        while at < end {
            let next = bytes[at..end].iter().position(|b| *b == b'\n').map_or(end, |i| at + i + 1);
            let line = &bytes[at..next];
            line_no += 1;
            at = next;
            if let Some(row) = self.read_line(line, line_no, &abs, &partitions, &mut report, &mut progress) {
                rows.push(row);
            }
        }
        progress.byte_offset = end as i64;
        progress.line_count = line_no;
        progress.prefix_sha256 = hex::encode(Sha256::digest(&bytes[..end]));
        progress.file_size = size;
        progress.modified_ms = modified;
        progress.updated_at = self.engine.now();
        let expected = known.map(|p| (p.byte_offset, p.prefix_sha256));
        Ok(Some(Pending { report, progress, expected, rows }))
    }

    /// `scan` with detections (see there).
    #[cfg(feature = "local-sql")]
    async fn scan_with_detections(&self, local: &LocalDetections) -> ScanReport {
        let mut out = ScanReport::default();
        let files = match self.files() {
            Ok(f) => f,
            Err(e) => {
                out.files.push(Err(e));
                return out;
            }
        };
        // Where each file's report goes in `out.files`, for the pending ones.
        let mut pending: Vec<(usize, Pending)> = Vec::new();
        for f in files {
            match self.collect(&f).await {
                Ok(Some(p)) => {
                    pending.push((out.files.len(), p));
                    out.files.push(Ok(FileReport::default()));
                }
                Ok(None) => out.files.push(Ok(FileReport { path: f, ..FileReport::default() })),
                Err(e) => out.files.push(Err(e)),
            }
        }
        // The rules' alerts, file by file, then the detections' over every new record.
        let mut alerts: Vec<Alert> = Vec::new();
        let mut owner: Vec<Option<usize>> = Vec::new();
        for (k, (_, p)) in pending.iter_mut().enumerate() {
            for row in &p.rows {
                if let Some(a) = self.alert_for(row) {
                    p.report.matched += 1;
                    p.progress.alerts += 1;
                    alerts.push(a);
                    owner.push(Some(k));
                }
            }
        }
        let rows: Vec<&Value> = pending.iter().flat_map(|(_, p)| p.rows.iter()).collect();
        match self.run_detections(local, &rows).await {
            Ok(found) => {
                for (id, r) in found {
                    if let Ok(list) = &r {
                        for a in list {
                            alerts.push(a.clone());
                            owner.push(None);
                        }
                    }
                    out.detections.push((id, r.map(|l| l.len())));
                }
            }
            Err(e) => out.detections.push(("*".into(), Err(e))),
        }
        if !pending.is_empty() {
            match self.commit_all(&alerts, &pending).await {
                Ok(Some(accepted)) => {
                    for (dup, who) in accepted.iter().zip(&owner) {
                        match (who, dup) {
                            (Some(k), false) => pending[*k].1.report.new_alerts += 1,
                            (Some(k), true) => pending[*k].1.report.duplicates += 1,
                            (None, false) => out.detection_new += 1,
                            (None, true) => out.detection_duplicates += 1,
                        }
                    }
                }
                Ok(None) => {
                    tracing::info!(source = %self.name, "another process read these files first; nothing stored");
                    for (_, p) in &mut pending {
                        p.report = FileReport { path: p.report.path.clone(), ..FileReport::default() };
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    for (i, p) in pending {
                        out.files[i] = Err(AuditFileError::File { path: p.report.path, message: msg.clone() });
                    }
                    return out;
                }
            }
        }
        for (i, p) in pending {
            out.files[i] = Ok(p.report);
        }
        out
    }

    /// Loads the records into the engine (each `event_id` once, older ones dropped) and runs
    /// every detection over the window the new records span, reaching back `overlap` (or the
    /// detection's `lookback`) for aggregations.
    #[cfg(feature = "local-sql")]
    async fn run_detections(
        &self,
        local: &LocalDetections,
        rows: &[&Value],
    ) -> Result<Vec<(String, Result<Vec<Alert>, String>)>, String> {
        use super::detections::{finding::Window, local as run};
        use floodgate_databricks::localsql::LocalSql;
        let millis = |r: &Value| -> Option<i64> {
            let s = r.get("event_time")?.as_str()?;
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
            Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
        };
        let times: Vec<i64> = rows.iter().filter_map(|r| millis(r)).collect();
        let (Some(first), Some(last)) = (times.iter().min().copied(), times.iter().max().copied()) else {
            return Ok(Vec::new());
        };
        let mut guard = local.state.lock().await;
        if guard.is_none() {
            let engine = LocalSql::open().await?;
            *guard = Some(LocalState { engine, seen: std::collections::HashMap::new() });
        }
        let state = guard.as_mut().expect("opened above");
        let horizon = last - local.retain.as_millis() as i64;
        if state.seen.values().any(|t| *t < horizon) {
            state.engine.prune(run::AUDIT, &crate::clock::rfc3339(horizon)).await?;
            state.seen.retain(|_, t| *t >= horizon);
        }
        let mut fresh = Vec::new();
        for r in rows {
            let id = r.get("event_id").and_then(Value::as_str).unwrap_or("").to_string();
            let Some(t) = millis(r) else { continue };
            if state.seen.insert(id, t).is_none() {
                fresh.push((*r).clone());
            }
        }
        for (i, problem) in state.engine.load_good(run::AUDIT, &fresh).await? {
            tracing::warn!(source = %self.name, event_id = ?fresh[i].get("event_id"), "audit record does not fit system.access.audit: {problem}");
        }
        let now = self.engine.now();
        let mut out = Vec::new();
        for d in &local.detections {
            let reach = local.overlap.max(d.lookback).as_millis() as i64;
            let window = Window { since: first - reach, until: last + 1 };
            let r = run::evaluate(&state.engine, d, &local.source, run::WORKSPACE, window, now)
                .await
                .map(|(_, alerts)| alerts)
                .map_err(|e| e.to_string());
            out.push((d.id.clone(), r));
        }
        Ok(out)
    }

    /// Stores every alert and every file's progress in one durable transaction. `None`: another
    /// process moved a file's progress first; nothing stored. Otherwise, per alert, whether it
    /// was a duplicate.
    #[cfg(feature = "local-sql")]
    async fn commit_all(
        &self,
        alerts: &[Alert],
        pending: &[(usize, Pending)],
    ) -> Result<Option<Vec<bool>>, StoreError> {
        let engine = &self.engine;
        let batch: Vec<_> = alerts.iter().map(|a| crate::ingest::route(engine, a)).collect();
        let mut tx = engine.store().begin_durable().await?;
        let accepted = store::accept_alerts_in(&mut tx, &batch, engine.now()).await?;
        for (_, p) in pending {
            let expected = p.expected.as_ref().map(|(o, h)| (*o, h.as_str()));
            if !save_file_progress_in(&mut tx, &p.progress, expected).await? {
                return Ok(None);
            }
        }
        crate::failpoint!("audit_files.before_commit");
        tx.commit().await?;
        let mut started = false;
        for (a, alert) in accepted.iter().zip(alerts) {
            started |= a.started_run();
            let outcome = a.outcome();
            engine.metrics().alert(&alert.source, outcome);
        }
        if started {
            engine.wake();
        }
        Ok(Some(accepted.iter().map(|a| a.duplicate).collect()))
    }

    /// The alert for a record, when a rule takes it.
    fn alert_for(&self, row: &Value) -> Option<Alert> {
        let service = row["service_name"].as_str()?;
        let action = row["action_name"].as_str()?;
        let name = format!("{service}.{action}");
        let mut ctx = tera::Context::new();
        ctx.insert("event", row);
        let rule = self.rules.iter().find(|r| {
            let action_ok = r.actions.is_empty()
                || r.actions.iter().any(|p| match p.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => p == &name,
                });
            action_ok && r.when.as_ref().is_none_or(|c| self.templates.eval(c, &ctx).unwrap_or(false))
        })?;
        match crate::ingest::formats::normalize(&self.source, row, new_id("alr"), self.engine.now()) {
            Ok(mut a) => {
                a.severity = rule.severity;
                a.confidence = rule.confidence;
                Some(a)
            }
            Err(e) => {
                tracing::warn!(source = %self.name, error = %e, "audit record cannot become an alert; skipped");
                None
            }
        }
    }

    /// Stores alerts and the file's progress in one durable transaction. `None`: another
    /// process moved the progress first; nothing stored.
    async fn commit(
        &self,
        alerts: &[Alert],
        progress: &FileProgress,
        expected: Option<(i64, &str)>,
    ) -> Result<Option<(usize, usize)>, StoreError> {
        let engine = &self.engine;
        let batch: Vec<_> = alerts.iter().map(|a| crate::ingest::route(engine, a)).collect();
        let mut tx = engine.store().begin_durable().await?;
        let accepted = store::accept_alerts_in(&mut tx, &batch, engine.now()).await?;
        if !save_file_progress_in(&mut tx, progress, expected).await? {
            return Ok(None);
        }
        crate::failpoint!("audit_files.before_commit");
        tx.commit().await?;
        let mut started = false;
        for a in &accepted {
            started |= a.started_run();
            let outcome = a.outcome();
            engine.metrics().alert(&self.name, outcome);
        }
        if started {
            engine.wake();
        }
        let new = accepted.iter().filter(|a| !a.duplicate).count();
        Ok(Some((new, accepted.len() - new)))
    }

    async fn watch(self) {
        loop {
            let scan = self.scan().await;
            for (id, r) in &scan.detections {
                if let Err(e) = r {
                    tracing::error!(source = %self.name, detection = %id, error = %e, "detection failed over audit-log records");
                }
            }
            if scan.detection_new > 0 {
                tracing::info!(source = %self.name, new_alerts = scan.detection_new, duplicates = scan.detection_duplicates, "detections over audit-log records");
            }
            for r in scan.files {
                match r {
                    Ok(f) if f.records > 0 || f.malformed > 0 => tracing::info!(
                        source = %self.name, file = %f.path, records = f.records, matched = f.matched,
                        new_alerts = f.new_alerts, duplicates = f.duplicates, malformed = f.malformed, reread = f.reread,
                        "audit-log file read"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(source = %self.name, error = %e, "audit-log file intake failed; it is tried again at the next scan")
                    }
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

/// Where the complete lines end: after the last newline, or at the end when the last line is
/// itself a complete JSON value (files need not end with a newline). A half-written last line
/// waits for the next scan.
fn complete_end(bytes: &[u8], from: usize) -> usize {
    let last_nl = bytes[from..].iter().rposition(|b| *b == b'\n').map_or(from, |i| from + i + 1);
    let tail = &bytes[last_nl..];
    if !tail.iter().all(u8::is_ascii_whitespace) && serde_json::from_slice::<Value>(tail).is_ok() {
        bytes.len()
    } else {
        last_nl
    }
}

/// `workspaceId=<id>` and `date=<yyyy-mm-dd>` from the file's path.
fn path_partitions(rel: &str) -> (Option<String>, Option<String>) {
    let find = |key: &str| rel.split('/').find_map(|c| c.strip_prefix(key)).map(str::to_string);
    (find("workspaceId="), find("date="))
}

/// A scalar as a string (workspace ids are numbers in files, strings in the system table).
fn string(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => json!(s),
        Some(Value::Number(n)) => json!(n.to_string()),
        _ => Value::Null,
    }
}

/// A delivered record (camelCase, epoch-ms `timestamp`) as a `system.access.audit` row, with
/// a stable `event_id` (the record's own, if it has one, else a hash of its canonical JSON —
/// serde_json's maps are ordered by key, so the hash does not depend on key order).
pub fn system_row(r: &Map<String, Value>, workspace: Option<&str>, date: Option<&str>) -> Value {
    let get = |camel: &str, snake: &str| r.get(camel).or_else(|| r.get(snake));
    let millis = get("timestamp", "event_time").and_then(Value::as_i64);
    let event_time = match millis {
        Some(ms) => json!(format_millis(ms)),
        None => get("timestamp", "event_time").cloned().unwrap_or(Value::Null),
    };
    let event_date = date.map(|d| json!(d)).unwrap_or_else(|| match millis {
        Some(ms) => json!(format_millis(ms).get(..10).unwrap_or("")),
        None => Value::Null,
    });
    let identity = get("userIdentity", "user_identity").cloned().unwrap_or(Value::Null);
    let response = get("response", "response").cloned().unwrap_or(Value::Null);
    let workspace_id = match string(get("workspaceId", "workspace_id")) {
        Value::Null => workspace.map_or(Value::Null, |w| json!(w)),
        v => v,
    };
    let event_id = match get("eventId", "event_id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => format!("file:{}", hex::encode(&Sha256::digest(Value::Object(r.clone()).to_string().as_bytes())[..16])),
    };
    json!({
        "account_id": get("accountId", "account_id"),
        "workspace_id": workspace_id,
        "version": get("version", "version"),
        "event_time": event_time,
        "event_date": event_date,
        "source_ip_address": get("sourceIPAddress", "source_ip_address"),
        "user_agent": get("userAgent", "user_agent"),
        "session_id": get("sessionId", "session_id"),
        "user_identity": {
            "email": identity.get("email"),
            "subject_name": identity.get("subjectName").or_else(|| identity.get("subject_name")),
        },
        "service_name": get("serviceName", "service_name"),
        "action_name": get("actionName", "action_name"),
        "request_id": get("requestId", "request_id"),
        "request_params": get("requestParams", "request_params"),
        "response": {
            "status_code": response.get("statusCode").or_else(|| response.get("status_code")),
            "error_message": response.get("errorMessage").or_else(|| response.get("error_message")),
            "result": response.get("result"),
        },
        "audit_level": get("auditLevel", "audit_level"),
        "event_id": event_id,
    })
}

fn format_millis(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The entry with the configured detections when it asks for them (`detections = true`).
pub fn with_configured_detections(w: AuditFiles, entry: &AuditFilesConfig, cfg: &Config) -> Result<AuditFiles, String> {
    if !entry.detections {
        return Ok(w);
    }
    #[cfg(feature = "local-sql")]
    {
        cfg.detections.check().map_err(|e| format!("[[audit_files]] {:?}: {e}", entry.name))?;
        let found = crate::ingest::detections::load_configured(cfg)
            .map_err(|e| format!("[[audit_files]] {:?} runs detections: {e}", entry.name))?;
        Ok(w.with_detections(found, &cfg.detections))
    }
    #[cfg(not(feature = "local-sql"))]
    {
        let _ = (w, cfg);
        Err(format!("[[audit_files]] {:?}: detections = true needs the local-sql feature", entry.name))
    }
}

/// Starts watching the configured directories; `None` when there are none.
pub fn spawn(
    cfg: &Config,
    engine: &Engine,
    _intake: &crate::ingest::Intake,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if cfg.audit_files.is_empty() {
        return Ok(None);
    }
    let base = cfg.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut watchers = Vec::new();
    let mut problems = Vec::new();
    for entry in &cfg.audit_files {
        if cfg.audit_files.iter().filter(|e| e.name == entry.name).count() > 1 {
            problems.push(format!("[[audit_files]] {:?} is defined twice", entry.name));
            continue;
        }
        match AuditFiles::new(entry, base, engine.clone()).and_then(|w| with_configured_detections(w, entry, cfg)) {
            Ok(w) if !w.directory.is_dir() => problems.push(format!(
                "[[audit_files]] {:?}: directory {} does not exist",
                w.name,
                w.directory.display()
            )),
            Ok(w) => watchers.push(w),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        anyhow::bail!("{}: invalid [[audit_files]]:\n{}", cfg.path.display(), problems.join("\n"));
    }
    for w in &watchers {
        tracing::info!(source = %w.name, directory = %w.directory.display(), every = %crate::duration::format(w.poll), "watching audit-log files");
    }
    Ok(Some(tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for w in watchers {
            set.spawn(w.watch());
        }
        while set.join_next().await.is_some() {}
    })))
}

/// A file opened by `Watcher::open`: its bytes, and where reading resumes.
struct Opened {
    abs: PathBuf,
    bytes: Vec<u8>,
    size: i64,
    modified: i64,
    /// The stored progress, if the file was read before.
    known: Option<FileProgress>,
    /// That progress, when it still matches the file (reading resumes at `offset`).
    resume: Option<FileProgress>,
    offset: usize,
    line_no: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_records_map_to_the_system_table_shape() {
        let rec: Map<String, Value> = serde_json::from_str(
            r#"{"version":"2.0","auditLevel":"WORKSPACE_LEVEL","timestamp":1788232205000,"workspaceId":4242424242424242,
               "sourceIPAddress":"203.0.113.77:51234","userAgent":"curl/8.5.0","sessionId":null,
               "userIdentity":{"email":"dana@corp.example"},"serviceName":"accounts","actionName":"login",
               "requestId":"r-1","requestParams":{"user":"dana@corp.example"},"response":{"statusCode":401,"errorMessage":"bad"}}"#,
        )
        .unwrap();
        let row = system_row(&rec, Some("4242424242424242"), Some("2026-09-01"));
        assert_eq!(row["event_time"], "2026-09-01T03:10:05.000Z");
        assert_eq!(
            (row["event_date"].as_str(), row["workspace_id"].as_str()),
            (Some("2026-09-01"), Some("4242424242424242"))
        );
        assert_eq!(
            (row["response"]["status_code"].as_i64(), row["user_identity"]["email"].as_str()),
            (Some(401), Some("dana@corp.example"))
        );
        // The id depends on the content, not on the order keys were written in.
        let mut reordered = Map::new();
        for (k, v) in rec.iter().rev() {
            reordered.insert(k.clone(), v.clone());
        }
        assert_eq!(system_row(&reordered, None, None)["event_id"], row["event_id"]);
        let mut other = rec.clone();
        other.insert("requestId".into(), json!("r-2"));
        assert_ne!(system_row(&other, None, None)["event_id"], row["event_id"]);
    }

    #[test]
    fn only_complete_lines_are_read() {
        assert_eq!(complete_end(b"{\"a\":1}\n{\"b\"", 0), 8);
        assert_eq!(complete_end(b"{\"a\":1}\n{\"b\":2}", 0), 15);
        assert_eq!(complete_end(b"{\"a\":1}\n", 8), 8);
        assert_eq!(
            path_partitions("workspaceId=42/date=2026-09-01/auditlogs_x.json"),
            (Some("42".into()), Some("2026-09-01".into()))
        );
    }
}
