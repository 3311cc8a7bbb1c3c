//! `floodgate bench`: measures what the performance targets are about, on this machine.
//!
//! 1. Durable intake: signed alerts over HTTP to a real server (in this process, on
//!    127.0.0.1), as fast as `concurrency` clients can send them; every answer is a 2xx that
//!    means "committed", and the count is checked in the database afterwards.
//! 2. Accept latency at a fixed rate (open loop: latency is measured from each request's
//!    scheduled send time, so a stall is not hidden by the client waiting).
//! 3. Engine overhead per step: runs of `core.noop` steps driven by the engine; the time per
//!    step includes claiming the run, loading it and committing every step's outcome.
//! 4. Memory: runs waiting for approval, and the process's resident memory afterwards.
//!
//! The numbers are this machine's, with the client sharing its cores with the server.

use crate::clock;
use crate::config::{ResolvedAuth, SourceAuth, SourceConfig, SourceFormat};
use crate::engine::{Connectors, Directory, Engine, Playbooks, Settings};
use crate::ingest::Intake;
use crate::metrics::Metrics;
use crate::playbook::{self, CompileOptions};
use crate::store::Store;
use anyhow::{Context, Result};
use floodgate_sdk::Secret;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret";

#[derive(Debug, Clone)]
pub struct Options {
    /// `None`: a fresh SQLite file. `postgres://...`: a fresh database is created on that server.
    pub database: Option<String>,
    pub alerts: usize,
    pub concurrency: usize,
    pub rate: u32,
    pub rate_seconds: u64,
    pub runs: usize,
    pub steps: usize,
    pub waiting: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub database: String,
    pub intake_alerts: usize,
    pub intake_seconds: f64,
    pub intake_per_second: f64,
    pub intake_p50_ms: f64,
    pub intake_p99_ms: f64,
    pub rate: u32,
    pub rate_alerts: usize,
    pub rate_p50_ms: f64,
    pub rate_p99_ms: f64,
    pub step_runs: usize,
    pub steps_per_run: usize,
    pub step_p50_ms: f64,
    pub step_p99_ms: f64,
    pub waiting_runs: usize,
    pub waiting_seconds: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Resident and peak resident memory of this process, in MiB (Linux; 0 elsewhere).
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

const PLAYBOOKS: &[(&str, &str)] = &[
    (
        "intake.yaml",
        "id: bench-intake\nname: Intake\nmatch: {source: bench, rule: intake}\nsteps:\n  triage:\n    - {id: n, action: core.noop}\n",
    ),
    (
        "wait.yaml",
        "id: bench-wait\nname: Wait\nmatch: {source: bench, rule: wait}\nsteps:\n  containment:\n    - id: hold\n      action: core.log\n      approval: {groups: [oncall], timeout: 1d}\n      with: {message: \"contain {{ alert.entities.user }}\"}\n",
    ),
];

fn steps_playbook(n: usize) -> String {
    let mut s =
        String::from("id: bench-steps\nname: Steps\nmatch: {source: bench, rule: steps}\nsteps:\n  investigation:\n");
    for i in 0..n {
        s.push_str(&format!("    - {{id: s{i}, action: core.noop}}\n"));
    }
    s
}

struct Setup {
    engine: Engine,
    store: Store,
    url: String,
    cleanup: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

async fn setup(opts: &Options) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let (url, cleanup) = match &opts.database {
        None => (format!("sqlite://{}", dir.path().join("bench.db").display()), None),
        Some(admin) => {
            let name = format!("fg_bench_{}", uuid::Uuid::new_v4().simple());
            let s = Store::connect(admin, 2).await.context("cannot reach the PostgreSQL server")?;
            s.all_dynamic(format!("CREATE DATABASE {name}"), vec![]).await?;
            s.close().await;
            let base = admin.rsplit_once('/').map_or(admin.clone(), |(b, _)| b.to_string());
            (format!("{base}/{name}"), Some((admin.clone(), name)))
        }
    };
    let store = Store::connect(&url, 16).await?;
    store.migrate().await?;
    let catalog = crate::connectors::catalog();
    let mut texts: Vec<(String, String)> = PLAYBOOKS.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect();
    texts.push(("steps.yaml".into(), steps_playbook(opts.steps)));
    let mut list = Vec::new();
    for (name, text) in texts {
        let p =
            playbook::compile(text.as_bytes(), &name, CompileOptions { catalog: &catalog, groups: None, policy: None })
                .map_err(|d| anyhow::anyhow!("bench playbook: {d:?}"))?;
        list.push(p);
    }
    let mut dir_people = Directory::default();
    dir_people.groups.insert("oncall".into(), ["alice".to_string()].into_iter().collect());
    let settings = Settings { workers: 2, poll: Duration::from_millis(20), ..Settings::default() };
    let engine = Engine::new(
        store.clone(),
        clock::system(),
        Arc::new(Playbooks::new(list, catalog)),
        Connectors::build(&BTreeMap::new()).map_err(|e| anyhow::anyhow!(e))?,
        dir_people,
        settings,
        Arc::new(Metrics::default()),
    );
    let intake = Intake::start(engine.clone());
    let source = SourceConfig {
        name: "bench".into(),
        format: SourceFormat::Generic,
        auth: SourceAuth::HmacSha256 { secret: floodgate_sdk::SecretRef::Env("UNUSED".into()) },
        default_severity: None,
        default_confidence: None,
        mapping: Default::default(),
    };
    let sources = BTreeMap::from([(
        "bench".to_string(),
        crate::api::Source { config: source, auth: ResolvedAuth::Hmac(Secret::new(SECRET)) },
    )]);
    let state = crate::api::AppState {
        engine: engine.clone(),
        intake,
        sources: Arc::new(sources),
        tokens: Arc::default(),
        console: Arc::new(crate::web::Console::token_only("http://127.0.0.1")),
        slack: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, crate::api::router(state)).await;
    });
    Ok(Setup { engine, store, url: format!("http://{addr}/v1/alerts/bench"), cleanup, _dir: dir })
}

fn body(rule: &str, i: usize) -> Vec<u8> {
    format!(r#"{{"id":"{rule}-{i}","title":"bench {i}","rule":"{rule}","severity":"high","confidence":0.5,"entities":{{"user":"user{i}@bench.example"}}}}"#).into_bytes()
}

async fn post(client: &reqwest::Client, url: &str, b: Vec<u8>) -> Result<()> {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let sig = crate::ingest::auth::sign(SECRET.as_bytes(), now, &b);
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-floodgate-signature", sig)
        .body(b)
        .send()
        .await?;
    anyhow::ensure!(r.status().as_u16() == 202, "intake answered {}", r.status());
    Ok(())
}

fn client(concurrency: usize) -> Result<reqwest::Client> {
    floodgate_sdk::http::install_crypto_provider();
    Ok(reqwest::Client::builder().pool_max_idle_per_host(concurrency).http1_only().build()?)
}

/// Sends `n` alerts from `concurrency` clients; returns (seconds, sorted latencies in ms).
async fn intake_phase(url: &str, rule: &'static str, n: usize, concurrency: usize) -> Result<(f64, Vec<f64>)> {
    let client = client(concurrency)?;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, url) = (client.clone(), next.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                post(&client, &url, body(rule, i)).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    Ok((secs, all))
}

/// Sends at a fixed rate; latency counts from each request's scheduled time.
async fn rate_phase(url: &str, rate: u32, seconds: u64) -> Result<Vec<f64>> {
    let client = client(256)?;
    let total = (u64::from(rate) * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            post(&client, &url, body("rate", i)).await?;
            Ok::<_, anyhow::Error>(scheduled.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut lat = Vec::with_capacity(total);
    for t in tasks {
        lat.push(t.await??);
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

pub async fn run(opts: &Options) -> Result<Report> {
    let s = setup(opts).await?;
    let label = if opts.database.is_some() { "postgresql" } else { "sqlite" };
    eprintln!("bench on {label}: intake of {} alerts with {} clients…", opts.alerts, opts.concurrency);
    let (secs, lat) = intake_phase(&s.url, "intake", opts.alerts, opts.concurrency).await?;
    anyhow::ensure!(
        s.store.count_alerts().await? as usize == opts.alerts,
        "not every accepted alert is in the database"
    );

    eprintln!("bench: {} alerts/s for {}s…", opts.rate, opts.rate_seconds);
    let rate_lat = rate_phase(&s.url, opts.rate, opts.rate_seconds).await?;

    // Clear the queue of the intake runs so the step phase measures only its own runs.
    let mut tx = s.store.begin().await?;
    tx.exec("UPDATE runs SET state = 'cancelled' WHERE state = 'queued'", vec![]).await?;
    tx.commit().await?;

    eprintln!("bench: {} runs of {} core.noop steps…", opts.runs, opts.steps);
    intake_phase(&s.url, "steps", opts.runs, 8).await?;
    let mut per_step = Vec::with_capacity(opts.runs);
    loop {
        let t = Instant::now();
        if s.engine.step_once().await?.is_none() {
            break;
        }
        per_step.push(t.elapsed().as_secs_f64() * 1000.0 / opts.steps.max(1) as f64);
    }
    per_step.sort_by(f64::total_cmp);

    eprintln!("bench: {} runs waiting for approval…", opts.waiting);
    let t = Instant::now();
    intake_phase(&s.url, "wait", opts.waiting, opts.concurrency).await?;
    let workers = s.engine.spawn_workers();
    loop {
        let waiting = s.store.run_state_counts().await?.iter().find(|(st, _)| st == "waiting").map_or(0, |(_, n)| *n);
        if waiting as usize >= opts.waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waiting_seconds = t.elapsed().as_secs_f64();
    s.engine.stop(workers, Duration::from_secs(10)).await;
    let (rss, peak) = memory_mib();

    let report = Report {
        database: label.into(),
        intake_alerts: opts.alerts,
        intake_seconds: secs,
        intake_per_second: opts.alerts as f64 / secs,
        intake_p50_ms: percentile(&lat, 0.5),
        intake_p99_ms: percentile(&lat, 0.99),
        rate: opts.rate,
        rate_alerts: rate_lat.len(),
        rate_p50_ms: percentile(&rate_lat, 0.5),
        rate_p99_ms: percentile(&rate_lat, 0.99),
        step_runs: per_step.len(),
        steps_per_run: opts.steps,
        step_p50_ms: percentile(&per_step, 0.5),
        step_p99_ms: percentile(&per_step, 0.99),
        waiting_runs: opts.waiting,
        waiting_seconds,
        rss_mib: rss,
        peak_rss_mib: peak,
    };
    s.store.close().await;
    if let Some((admin, name)) = s.cleanup
        && let Ok(st) = Store::connect(&admin, 2).await
    {
        let _ = st.all_dynamic(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), vec![]).await;
    }
    Ok(report)
}

/// The report as a Markdown table (for docs/performance.md).
pub fn markdown(r: &Report) -> String {
    format!(
        "| measure ({db}) | result |\n|---|---|\n\
         | durable intake, {n} signed alerts, as fast as possible | {tput:.0} alerts/s (p50 {p50:.1} ms, p99 {p99:.1} ms) |\n\
         | accept latency at {rate} alerts/s ({rn} alerts) | p50 {rp50:.1} ms, p99 {rp99:.1} ms |\n\
         | engine overhead per `core.noop` step ({runs} runs × {steps} steps) | p50 {sp50:.3} ms, p99 {sp99:.3} ms |\n\
         | {w} runs waiting for approval | created in {ws:.1} s; RSS {rss:.0} MiB (peak {peak:.0} MiB) |\n",
        db = r.database,
        n = r.intake_alerts,
        tput = r.intake_per_second,
        p50 = r.intake_p50_ms,
        p99 = r.intake_p99_ms,
        rate = r.rate,
        rn = r.rate_alerts,
        rp50 = r.rate_p50_ms,
        rp99 = r.rate_p99_ms,
        runs = r.step_runs,
        steps = r.steps_per_run,
        sp50 = r.step_p50_ms,
        sp99 = r.step_p99_ms,
        w = r.waiting_runs,
        ws = r.waiting_seconds,
        rss = r.rss_mib,
        peak = r.peak_rss_mib,
    )
}
