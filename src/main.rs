//! The `floodgate` command line: parses arguments and calls the library. Nothing else.

use clap::{Parser, Subcommand};
use floodgate::store::RunFilter;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "floodgate", version, about = "Incident-response orchestration for Databricks lakehouses")]
struct Cli {
    /// Log format: `text` (default) or `json`.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

/// The config file; commands that touch the database read `[database]` from it.
#[derive(clap::Args)]
struct ConfigArg {
    /// Config file (TOML).
    #[arg(long, env = "FLOODGATE_CONFIG", default_value = "floodgate.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: webhook intake, workers and timers.
    Serve(ConfigArg),
    /// Check playbooks (and, with a config, its detections): prints every problem as
    /// path:line:col: error: message and exits 1, or a one-line summary and exits 0.
    Validate {
        /// Playbook files or directories (default: the config's playbooks directory, else ./playbooks).
        paths: Vec<PathBuf>,
        /// Config file, to check approver groups and quorums against it and, when it has a
        /// `[detections]` table, the detection files. Default ./floodgate.toml when it exists.
        #[arg(long, env = "FLOODGATE_CONFIG")]
        config: Option<PathBuf>,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Print the JSON Schema of the playbook format (committed as playbooks/schema.json).
    Schema,
    /// Create or upgrade the database schema (serve does this at start too).
    Migrate(ConfigArg),
    /// Show what a playbook would do with an alert, without a database or side effects.
    Simulate {
        /// The playbook file.
        #[arg(long)]
        playbook: PathBuf,
        /// A JSON file with the alert as the source would post it.
        #[arg(long)]
        alert: PathBuf,
        /// How to read the alert: `generic`, `databricks-sql-alert` or `databricks-audit`
        /// (ignored when --source names a source of --config).
        #[arg(long, default_value = "generic", value_parser = ["generic", "databricks-sql-alert", "databricks-audit"])]
        alert_format: String,
        /// The source name the alert arrives on.
        #[arg(long, default_value = "simulate")]
        source: String,
        /// Config file: connector settings for realistic plans, sources and approver groups.
        #[arg(long)]
        config: Option<PathBuf>,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Measure intake throughput and latency, engine overhead per step and memory with many
    /// waiting runs, on a fresh database (see docs/performance.md).
    Bench {
        /// A PostgreSQL server to measure on (a fresh database is created and dropped);
        /// default: a fresh SQLite file.
        #[arg(long)]
        postgres: Option<String>,
        /// Alerts for the throughput measurement.
        #[arg(long, default_value_t = 20_000)]
        alerts: usize,
        /// Concurrent HTTP clients for the throughput measurement.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Alerts per second for the latency measurement.
        #[arg(long, default_value_t = 1_000)]
        rate: u32,
        /// Seconds of the latency measurement.
        #[arg(long, default_value_t = 10)]
        rate_seconds: u64,
        /// Runs for the engine measurement.
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// `core.noop` steps per run.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Runs left waiting for approval for the memory measurement.
        #[arg(long, default_value_t = 10_000)]
        waiting: usize,
        /// `markdown` (default) or `json`.
        #[arg(long, default_value = "markdown", value_parser = ["markdown", "json"])]
        format: String,
    },
    /// Read a console password (from stdin) and print its Argon2id hash for `password_hash`.
    Passwd,
    /// Databricks detections over system tables.
    Detections {
        #[command(subcommand)]
        command: floodgate::ingest::commands::DetectionsCommand,
    },
    /// Read delivered audit-log files and run the detections over them locally.
    Ingest {
        #[command(subcommand)]
        command: floodgate::ingest::commands::IngestCommand,
    },
    /// Temporary containment: list scheduled reverts, extend them, or make containment permanent.
    Reverts {
        #[command(subcommand)]
        command: RevertsCommand,
    },
    /// Check or export the hash-chained audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// List or show runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// List pending approvals.
    Approvals {
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
    /// Approve (or with --deny, deny) a pending approval as an identity from the config.
    Approve {
        /// The approval id (apr_...).
        id: String,
        /// Your identity id from [[identities]].
        #[arg(long = "as")]
        identity: String,
        /// Deny instead of approve.
        #[arg(long)]
        deny: bool,
        /// Why; recorded on the timeline.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List recent runs, newest first.
    List {
        /// Only runs in this state (queued, running, waiting, succeeded, failed, closed_benign, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Only runs of this playbook.
        #[arg(long)]
        playbook: Option<String>,
        /// Only runs of this incident.
        #[arg(long)]
        incident: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show a run: its steps, approvals and timeline.
    Show {
        id: String,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum RevertsCommand {
    /// List reverts (default: the scheduled ones), soonest first.
    List {
        /// scheduled (default), started, reverted, failed, permanent, or all.
        #[arg(long, default_value = "scheduled")]
        state: String,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Postpone a scheduled revert.
    Extend {
        /// The revert id (rev_...).
        id: String,
        /// How much later, e.g. 24h.
        #[arg(long)]
        by: String,
        /// Your identity id from [[identities]].
        #[arg(long = "as")]
        identity: String,
        /// Why; recorded on the timeline.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Keep the containment: the scheduled revert will not run.
    Cancel {
        /// The revert id (rev_...).
        id: String,
        /// Your identity id from [[identities]].
        #[arg(long = "as")]
        identity: String,
        /// Why; recorded on the timeline.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the chain; exits 1 naming the first edited, inserted or deleted entry.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Write audit entries for a SIEM, oldest first.
    Export {
        /// Only `jsonl` (one JSON object per line).
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl"])]
        format: String,
        /// Only entries at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// List pending approvals with what each would do.
    List {
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`floodgate runs list | head`) would
    // panic; the default action ends the process quietly, as other command-line tools do.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    floodgate::server::init_logging(&cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        use floodgate::cli;
        match cli.command {
            Command::Serve(c) => floodgate::server::serve(&c.config).await.map(|()| ExitCode::SUCCESS),
            Command::Validate { paths, config, format } => cli::validate(&paths, config.as_deref(), &format),
            Command::Schema => cli::schema(),
            Command::Migrate(c) => cli::migrate(&c.config).await,
            Command::Simulate { playbook, alert, alert_format, source, config, format } => {
                cli::simulate(&playbook, &alert, &alert_format, &source, config.as_deref(), &format).await
            }
            Command::Bench { postgres, alerts, concurrency, rate, rate_seconds, runs, steps, waiting, format } => {
                let opts = floodgate::bench::Options {
                    database: postgres,
                    alerts,
                    concurrency,
                    rate,
                    rate_seconds,
                    runs,
                    steps,
                    waiting,
                };
                let report = floodgate::bench::run(&opts).await?;
                if format == "json" {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", floodgate::bench::markdown(&report));
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::Passwd => floodgate::web::passwd(),
            Command::Detections { command } => floodgate::ingest::commands::run(command).await,
            Command::Ingest { command } => floodgate::ingest::commands::run_ingest(command).await,
            Command::Reverts { command: RevertsCommand::List { state, format, config } } => {
                cli::reverts_list(&config.config, &state, &format).await
            }
            Command::Reverts { command: RevertsCommand::Extend { id, by, identity, reason, config } } => {
                cli::reverts_change(&config.config, &id, &identity, Some(&by), reason.as_deref()).await
            }
            Command::Reverts { command: RevertsCommand::Cancel { id, identity, reason, config } } => {
                cli::reverts_change(&config.config, &id, &identity, None, reason.as_deref()).await
            }
            Command::Audit { command: AuditCommand::Verify { config } } => cli::audit_verify(&config.config).await,
            Command::Audit { command: AuditCommand::Export { format: _, since, config } } => {
                cli::audit_export(&config.config, since.as_deref()).await
            }
            Command::Runs { command: RunsCommand::List { state, playbook, incident, limit, format, config } } => {
                cli::runs_list(&config.config, RunFilter { state, playbook, incident, limit }, &format).await
            }
            Command::Runs { command: RunsCommand::Show { id, format, config } } => {
                cli::runs_show(&config.config, &id, &format).await
            }
            Command::Approvals { command: ApprovalsCommand::List { format, config } } => {
                cli::approvals_list(&config.config, &format).await
            }
            Command::Approve { id, identity, deny, reason, config } => {
                cli::approve(&config.config, &id, &identity, deny, reason.as_deref()).await
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
