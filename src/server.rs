//! `floodgate serve`: wires config, database, playbooks, connectors, engine, intake and the HTTP
//! server together, and shuts them down in order on SIGTERM or Ctrl-C.

use crate::api::{self, AppState};
use crate::clock;
use crate::config::Config;
use crate::engine::{Connectors, Directory, Engine, Playbooks, Settings};
use crate::ingest::Intake;
use crate::metrics::Metrics;
use crate::store::Store;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Sets up structured logs on stderr (`text` or `json`), filtered by `RUST_LOG` (default info).
pub fn init_logging(format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colours only for a person at a terminal: not in files, pipes or journald.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Connects and migrates the configured database.
pub async fn open_store(cfg: &Config) -> Result<Store> {
    let store = Store::connect(&cfg.database.url, cfg.database.max_connections)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&cfg.database.url)))?;
    store.migrate().await.context("cannot apply database migrations")?;
    Ok(store)
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Builds the engine from a loaded config (used by `serve` and by tests that need a server).
pub fn build_engine(cfg: &Config, store: Store, settings: Settings) -> Result<Engine> {
    let catalog = crate::connectors::catalog();
    let playbooks =
        Playbooks::load(&cfg.playbooks, catalog, cfg).map_err(|d| anyhow::anyhow!("invalid playbooks:\n{d}"))?;
    let connectors = Connectors::build(&cfg.connectors).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Engine::new(
        store,
        clock::system(),
        Arc::new(playbooks),
        connectors,
        Directory::from_config(cfg),
        settings,
        Arc::new(Metrics::default()),
    ))
}

pub async fn serve(config_path: &Path) -> Result<()> {
    let cfg = Config::load(config_path)?;
    if !cfg.playbooks.is_dir() {
        bail!("playbooks directory {} does not exist", cfg.playbooks.display());
    }
    let store = open_store(&cfg).await?;
    let settings = Settings {
        workers: cfg.engine.workers,
        lease: cfg.engine.lease,
        poll: cfg.engine.poll_interval,
        public_url: Some(cfg.public_url()),
        ..Settings::default()
    };
    let engine = build_engine(&cfg, store.clone(), settings)?;
    let intake = Intake::start(engine.clone());
    let state = AppState::from_config(&cfg, engine.clone(), intake)?;
    let notifier = crate::notify::Notifier::from_config(&cfg, engine.clone())?;
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    let workers = engine.spawn_workers();
    let timers = engine.spawn_timers();
    let mut background: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    background.extend(crate::ingest::detections::spawn(&cfg, &engine, &state.intake)?);
    background.extend(crate::ingest::audit_files::spawn(&cfg, &engine, &state.intake)?);
    if let Some(notifier) = notifier {
        tracing::info!(channels = ?notifier.channel_names(), "approval notices on");
        background.push(notifier.spawn());
    }
    tracing::info!(
        %addr,
        database = %redact_url(&cfg.database.url),
        playbooks = engine.playbooks().current().len(),
        sources = cfg.sources.len(),
        "floodgate is running"
    );
    // Tests and scripts read the bound address from this line (the port may be 0 in config).
    println!("floodgate listening on http://{addr}");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server failed")?;
    tracing::info!("shutting down: no new work; handing runs back at the next step boundary");
    engine.stop(workers, Duration::from_secs(30)).await;
    timers.abort();
    for task in background {
        task.abort();
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
