//! What each command does, for `main.rs` to call. Output formats live here; the work itself
//! lives in the library modules.

use crate::playbook::{self, CompileOptions};
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `floodgate validate`
pub fn validate(paths: &[PathBuf], config: Option<&Path>, format: &str) -> Result<ExitCode> {
    let catalog = crate::connectors::catalog();
    // The config given, else ./floodgate.toml when there is one: its groups and policy check
    // the playbooks, and its `[detections]` are checked too.
    let default_config = Path::new("floodgate.toml");
    let config = config.or_else(|| default_config.is_file().then_some(default_config));
    let cfg = config.map(crate::config::Config::load).transpose()?;
    let groups = cfg.as_ref().map(|c| c.group_members());
    let opts = CompileOptions { catalog: &catalog, groups: groups.as_ref(), policy: cfg.as_ref().map(|c| &c.policy) };
    let targets: Vec<PathBuf> = if paths.is_empty() {
        vec![cfg.as_ref().map_or_else(|| PathBuf::from("playbooks"), |c| c.playbooks.clone())]
    } else {
        paths.to_vec()
    };
    let mut ok = Vec::new();
    let mut diags = Vec::new();
    let mut files = 0usize;
    for t in &targets {
        if t.is_dir() {
            let (good, bad) = playbook::load_dir(t, opts);
            files += good.len() + bad.iter().map(|d| &d.path).collect::<std::collections::BTreeSet<_>>().len();
            ok.extend(good.into_iter().map(|p| (p.id.clone(), p.path.clone())));
            diags.extend(bad);
        } else {
            files += 1;
            match playbook::load_file(t, opts) {
                Ok(p) => ok.push((p.id.clone(), p.path.clone())),
                Err(d) => diags.extend(d),
            }
        }
    }
    let detections = cfg.as_ref().filter(|c| c.detections.enabled).map(|c| {
        let (n, problems) = crate::ingest::commands::check_configured(c);
        diags.extend(problems);
        n
    });
    if format == "json" {
        let mut out = serde_json::json!({
            "valid": diags.is_empty(),
            "playbooks": ok.iter().map(|(id, path)| serde_json::json!({"id": id, "path": path})).collect::<Vec<_>>(),
            "problems": diags,
        });
        if let Some(n) = detections {
            out["detections"] = n.into();
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if diags.is_empty() {
        if files == 0 {
            println!(
                "no playbooks found in {}",
                targets.iter().map(|t| t.display().to_string()).collect::<Vec<_>>().join(", ")
            );
        } else {
            let also = detections
                .map_or(String::new(), |n| format!(", {}", crate::text::count(n as u64, "detection", "detections")));
            println!("ok: {}{also} valid", crate::text::count(ok.len() as u64, "playbook", "playbooks"));
        }
    } else {
        for d in &diags {
            println!("{d}");
        }
        let bad_files: std::collections::BTreeSet<_> = diags.iter().map(|d| &d.path).collect();
        eprintln!(
            "{} in {}",
            crate::text::count(diags.len() as u64, "problem", "problems"),
            crate::text::count(bad_files.len() as u64, "file", "files")
        );
    }
    Ok(if diags.is_empty() && files > 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `floodgate schema`
pub fn schema() -> Result<ExitCode> {
    let s = playbook::schema::published(&crate::connectors::catalog());
    println!("{}", serde_json::to_string_pretty(&s)?);
    Ok(ExitCode::SUCCESS)
}

use crate::config::Config;
use crate::engine::{Connectors, Directory, Engine, Playbooks, Settings};
use crate::store::{RunFilter, Store};
use std::sync::Arc;

fn load_config(path: &Path) -> Result<Config> {
    if !path.exists() {
        anyhow::bail!("config file {} not found (pass --config FILE or set FLOODGATE_CONFIG)", path.display());
    }
    Ok(Config::load(path)?)
}

async fn store_for(path: &Path) -> Result<(Config, Store)> {
    let cfg = load_config(path)?;
    let store = crate::server::open_store(&cfg).await?;
    Ok((cfg, store))
}

fn time(ms: i64) -> String {
    crate::clock::rfc3339(ms)
}

/// `floodgate migrate`
pub async fn migrate(config: &Path) -> Result<ExitCode> {
    let (cfg, store) = store_for(config).await?;
    println!("database {} is up to date", crate::server::redact_url(&cfg.database.url));
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `floodgate runs list`
pub async fn runs_list(config: &Path, filter: RunFilter, format: &str) -> Result<ExitCode> {
    let (_, store) = store_for(config).await?;
    let runs = store.list_runs(&filter).await?;
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"runs": runs}))?);
    } else if runs.is_empty() {
        println!("no runs");
    } else {
        println!("{:<38} {:<12} {:<26} {:<9} {:<20} TITLE", "RUN", "STATE", "PLAYBOOK", "SEVERITY", "CREATED");
        for r in runs {
            let state = if r.state == "waiting" {
                format!("waiting:{}", r.waiting_for.as_deref().unwrap_or("").split(' ').next().unwrap_or(""))
            } else {
                r.state
            };
            println!(
                "{:<38} {:<12} {:<26} {:<9} {:<20} {}",
                r.id,
                state,
                r.playbook_id,
                r.severity,
                &time(r.created_at)[..19.min(time(r.created_at).len())],
                r.title
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `floodgate runs show ID`
pub async fn runs_show(config: &Path, id: &str, format: &str) -> Result<ExitCode> {
    let (_, store) = store_for(config).await?;
    let d = match store.run_detail(id).await {
        Ok(d) => d,
        Err(crate::store::StoreError::NotFound(_)) => {
            eprintln!("error: no run {id}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&d)?);
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    println!("run       {}", d.run.id);
    println!("state     {}", d.run.state.label());
    if let Some(e) = &d.run.error {
        println!("error     {e}");
    }
    println!("playbook  {} (version {})", d.run.playbook_id, &d.run.playbook_hash[..12]);
    if let Some(i) = &d.incident {
        println!(
            "incident  {} [{}] {} ({}, {})",
            i.id,
            i.severity,
            i.title,
            crate::text::count(i.alert_count, "alert", "alerts"),
            i.state
        );
    }
    println!("started   {}", time(d.run.created_at));
    println!("\nsteps");
    for s in &d.steps {
        let detail = s.error.as_deref().or(s.reason.as_deref()).unwrap_or("");
        let item = if s.iteration > 0 || d.steps.iter().filter(|o| o.step_id == s.step_id).count() > 1 {
            format!("[{}]", s.iteration)
        } else {
            String::new()
        };
        println!(
            "  {:<13} {:<22} {:<28} {:<10} attempt {}  {detail}",
            s.phase,
            format!("{}{item}", s.step_id),
            s.action,
            s.state.as_str(),
            s.attempt
        );
    }
    if !d.approvals.is_empty() {
        println!("\napprovals");
        for a in &d.approvals {
            let a_row = &a.approval;
            println!(
                "  {} {} step {} — {} (quorum {}, deadline {})",
                a_row.id,
                a_row.state.as_str(),
                a_row.step_id,
                a_row.summary,
                a_row.quorum,
                time(a_row.deadline)
            );
            for v in &a.votes {
                println!(
                    "      {} {} via {} at {}{}",
                    v.identity,
                    v.decision,
                    v.channel,
                    time(v.at),
                    v.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
                );
            }
            if let Some(r) = &a_row.decided_reason {
                println!("      decided: {r}");
            }
        }
    }
    println!("\ntimeline");
    for e in &d.events {
        println!(
            "  {}  {:<22} {}{}",
            time(e.at),
            e.kind,
            e.step_id.as_deref().map(|s| format!("[{s}] ")).unwrap_or_default(),
            e.data
        );
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `floodgate approvals list`
pub async fn approvals_list(config: &Path, format: &str) -> Result<ExitCode> {
    let (_, store) = store_for(config).await?;
    let pending = store.pending_approvals().await?;
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"approvals": pending}))?);
    } else if pending.is_empty() {
        println!("no pending approvals");
    } else {
        for a in pending {
            println!(
                "{}  run {}  step {}  groups {}  quorum {}  deadline {}",
                a.id,
                a.run_id,
                a.step_id,
                a.groups.join(","),
                a.quorum,
                time(a.deadline)
            );
            println!("    {}", a.summary);
            for r in a.plan["requests"].as_array().into_iter().flatten() {
                println!("    {} {}", r["method"].as_str().unwrap_or(""), r["url"].as_str().unwrap_or(""));
            }
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// An engine for commands that decide things: people and the database are enough; the
/// server's workers and timers pick up what follows.
fn decision_engine(cfg: &Config, store: &Store) -> Engine {
    Engine::new(
        store.clone(),
        crate::clock::system(),
        Arc::new(Playbooks::new(Vec::new(), crate::connectors::catalog())),
        Connectors::default(),
        Directory::from_config(cfg),
        Settings::default(),
        Arc::default(),
    )
}

/// `floodgate approve ID --as IDENTITY [--deny] [--reason TEXT]`
pub async fn approve(config: &Path, id: &str, identity: &str, deny: bool, reason: Option<&str>) -> Result<ExitCode> {
    let (cfg, store) = store_for(config).await?;
    let engine = decision_engine(&cfg, &store);
    let code = match engine.decide(id, identity, !deny, reason, "cli").await {
        Ok(Ok(o)) => {
            let what = if o.repeated { " (you had already voted; counted once)" } else { "" };
            println!(
                "approval {}: {} ({} of {} approvals){what}",
                o.approval_id,
                o.state.as_str(),
                o.approvals,
                o.quorum
            );
            ExitCode::SUCCESS
        }
        Ok(Err(refused)) => {
            eprintln!("error: refused: {refused}");
            ExitCode::from(1)
        }
        Err(crate::engine::EngineError::Store(crate::store::StoreError::NotFound(_))) => {
            eprintln!("error: no approval {id}");
            ExitCode::from(1)
        }
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    Ok(code)
}

/// `floodgate simulate --playbook FILE --alert FILE`
pub async fn simulate(
    playbook_path: &Path,
    alert_path: &Path,
    alert_format: &str,
    source: &str,
    config: Option<&Path>,
    format: &str,
) -> Result<ExitCode> {
    let cfg = config.map(load_config).transpose()?;
    let catalog = crate::connectors::catalog();
    let groups = cfg.as_ref().map(|c| c.group_members());
    let opts = CompileOptions { catalog: &catalog, groups: groups.as_ref(), policy: cfg.as_ref().map(|c| &c.policy) };
    let pb = match playbook::load_file(playbook_path, opts) {
        Ok(p) => p,
        Err(diags) => {
            for d in diags {
                println!("{d}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let text = std::fs::read_to_string(alert_path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", alert_path.display()))?;
    let body: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not valid JSON: {e}", alert_path.display()))?;
    let src = match cfg.as_ref().and_then(|c| c.source(source)) {
        Some(s) => s.clone(),
        None => crate::config::SourceConfig {
            name: source.to_string(),
            format: match alert_format {
                "databricks-sql-alert" => crate::config::SourceFormat::DatabricksSqlAlert,
                "databricks-audit" => crate::config::SourceFormat::DatabricksAudit,
                _ => crate::config::SourceFormat::Generic,
            },
            auth: crate::config::SourceAuth::Bearer { token: floodgate_sdk::SecretRef::Env("UNUSED".into()) },
            default_severity: None,
            default_confidence: None,
            mapping: Default::default(),
        },
    };
    let alert = crate::ingest::formats::normalize(&src, &body, "alr_simulated".into(), crate::clock::system().now_ms())
        .map_err(|e| anyhow::anyhow!("{}: {e}", alert_path.display()))?;
    let connectors = Connectors::build(cfg.as_ref().map(|c| &c.connectors).unwrap_or(&Default::default()))
        .map_err(|e| anyhow::anyhow!(e))?;
    let dir = cfg.as_ref().map(Directory::from_config).unwrap_or_default();
    // As `serve` does: the configured public URL (or the listen address) makes `incident.url`.
    let public_url = cfg.as_ref().map(Config::public_url);
    let sim = crate::simulate::simulate(&pb, alert.to_json(), &connectors, &dir, public_url.as_deref()).await;
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&sim)?);
    } else {
        print!("{}", crate::simulate::render_text(&sim));
    }
    Ok(ExitCode::SUCCESS)
}

/// `floodgate audit verify`
pub async fn audit_verify(config: &Path) -> Result<ExitCode> {
    let (_, store) = store_for(config).await?;
    let verdict = store.verify_audit().await?;
    store.close().await;
    Ok(match verdict {
        crate::store::audit::Verdict::Intact { entries, head } => {
            println!("ok: {entries} audit entries, chain intact; head {head}");
            ExitCode::SUCCESS
        }
        crate::store::audit::Verdict::Broken { seq, reason } => {
            println!("audit trail broken at entry {seq}: {reason}");
            ExitCode::from(1)
        }
    })
}

/// `floodgate audit export --format jsonl [--since T]`
pub async fn audit_export(config: &Path, since: Option<&str>) -> Result<ExitCode> {
    let since_ms = match since {
        None => None,
        Some(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|e| {
                anyhow::anyhow!("--since {s:?} is not an RFC 3339 time (e.g. 2026-11-01T00:00:00Z): {e}")
            })?;
            Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
    };
    let (_, store) = store_for(config).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let n = store
        .export_audit(since_ms, |e| {
            use std::io::Write;
            serde_json::to_writer(&mut out, &e)?;
            out.write_all(b"\n")
        })
        .await?;
    use std::io::Write;
    out.flush()?;
    eprintln!("exported {n} audit entries");
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `floodgate reverts list`
pub async fn reverts_list(config: &Path, state: &str, format: &str) -> Result<ExitCode> {
    let (_, store) = store_for(config).await?;
    let rows = store.list_reverts((state != "all").then_some(state), 500).await?;
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"reverts": rows}))?);
    } else if rows.is_empty() {
        match state {
            "all" => println!("no reverts"),
            _ => println!("no {state} reverts"),
        }
    } else {
        for r in rows {
            println!(
                "{}  {:<9} {:<36} due {}  run {}  step {}",
                r.id,
                r.state.as_str(),
                r.action,
                time(r.due_at),
                r.run_id,
                r.step_id
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `floodgate reverts extend|cancel`
pub async fn reverts_change(
    config: &Path,
    id: &str,
    identity: &str,
    by: Option<&str>,
    reason: Option<&str>,
) -> Result<ExitCode> {
    let by = by.map(crate::duration::parse).transpose().map_err(|e| anyhow::anyhow!("--by: {e}"))?;
    let (cfg, store) = store_for(config).await?;
    let engine = decision_engine(&cfg, &store);
    let result = match by {
        Some(d) => engine.extend_revert(id, identity, d, reason).await,
        None => engine.cancel_revert(id, identity, reason).await,
    };
    let code = match result {
        Ok(Ok(r)) => {
            match by {
                Some(_) => println!("revert {} now due {}", r.id, time(r.due_at)),
                None => println!("revert {} cancelled: the containment is permanent", r.id),
            }
            ExitCode::SUCCESS
        }
        Ok(Err(refused)) => {
            eprintln!("error: refused: {refused}");
            ExitCode::from(1)
        }
        Err(crate::engine::EngineError::Store(crate::store::StoreError::NotFound(_))) => {
            eprintln!("error: no revert {id}");
            ExitCode::from(1)
        }
        Err(e) => return Err(e.into()),
    };
    store.close().await;
    Ok(code)
}
