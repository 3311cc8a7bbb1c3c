//! Detections over Databricks system tables and audit-log file intake, end to end: the shipped
//! detections run on the Databricks simulator loaded with the project's fixture events
//! (tests/data/audit-events.jsonl and tests/data/detections-events.jsonl), their alerts start
//! the shipped playbooks, and the containment those playbooks ask for is observed at the
//! simulator. Watermarks and file progress are checked on SQLite and PostgreSQL, across
//! restarts, crashes (a failpoint in `floodgate serve`), FAILED statements and 429 storms.
//!
//! The simulator answers real SQL over the fixture rows: a detection that passes here ran the
//! same text floodgate sends to a warehouse. The same expectations hold on the local SQL engine
//! (`detections test --events`, `ingest audit-logs`), and its alerts equal the simulator's.

mod cli;
mod containment;
mod files;
#[cfg(feature = "local-sql")]
mod local;
mod serve;
mod shipped;
mod watermark;

use crate::harness::{Db, catalog, compile_all, directory};
use floodgate::clock::ManualClock;
use floodgate::engine::{Connectors, Engine, Playbooks, Settings};
use floodgate::ingest::detections::{self, Detection, Poller, PollerSettings};
use floodgate::metrics::Metrics;
use floodgate::store::Store;
use floodgate_databricks::Databricks;
use floodgate_databricks::sim::{DatabricksSim, SimOptions};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The workspace every fixture row belongs to.
pub const WORKSPACE_ID: &str = "4242424242424242";

pub fn fixture(name: &str) -> String {
    let path = crate::common::repo().join("tests/data").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Unix ms of an RFC 3339 time.
pub fn ms(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).expect("RFC 3339");
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// What data classification found in the fixture lakehouse: one sensitive table.
pub fn classification_rows() -> Vec<Value> {
    vec![json!({"catalog_name": "main", "schema_name": "hr", "table_name": "employees_pii", "column_name": "ssn",
                "data_type": "string", "class_tag": "class.us_ssn", "confidence": "HIGH", "frequency": 0.8})]
}

/// A simulated workspace holding the fixture events, the classification of one sensitive
/// table, and the users the playbooks act on.
pub struct Lakehouse {
    pub sim: DatabricksSim,
    dir: tempfile::TempDir,
}

impl Lakehouse {
    pub async fn start() -> Lakehouse {
        let sim = DatabricksSim::start_with(SimOptions { workspace_id: WORKSPACE_ID.into(), ..SimOptions::default() })
            .await
            .expect("databricks simulator");
        for f in ["audit-events.jsonl", "detections-events.jsonl"] {
            sim.load_audit_events(&fixture(f)).await.expect("fixture rows load");
        }
        sim.insert_rows("system.data_classification.results", &classification_rows())
            .await
            .expect("classification rows load");
        for user in ["dana@corp.example", "mallory@corp.example", "erin@corp.example"] {
            sim.add_user(false, user);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("databricks.pat"), sim.admin_pat()).unwrap();
        Lakehouse { sim, dir }
    }

    fn pat_ref(&self) -> String {
        format!("file:{}", self.dir.path().join("databricks.pat").display())
    }

    /// `[connectors.databricks]` as JSON: one workspace, the PAT by file reference, and fast
    /// retries so a 429 storm outlasts them in milliseconds.
    pub fn connector(&self) -> Value {
        json!({
            "default_workspace": "prod",
            "egress_ips": ["192.0.2.250"],
            "max_attempts": 3,
            "retry_base_delay_ms": 10,
            "rate_limit_per_second": 1000,
            "workspaces": {"prod": {
                "host": self.sim.url(),
                "workspace_id": WORKSPACE_ID,
                "warehouse_id": self.sim.warehouse_id(),
                "auth": {"type": "pat", "token": self.pat_ref()},
            }},
        })
    }

    /// The same table as TOML, for `floodgate serve` and the CLI.
    pub fn connector_toml(&self) -> String {
        format!(
            r#"
[connectors.databricks]
default_workspace = "prod"
egress_ips = ["192.0.2.250"]
max_attempts = 3
retry_base_delay_ms = 10
rate_limit_per_second = 1000
[connectors.databricks.workspaces.prod]
host = "{host}"
workspace_id = "{WORKSPACE_ID}"
warehouse_id = "{warehouse}"
auth = {{ type = "pat", token = "{pat}" }}
"#,
            host = self.sim.url(),
            warehouse = self.sim.warehouse_id(),
            pat = self.pat_ref()
        )
    }

    pub fn databricks(&self) -> Arc<Databricks> {
        Arc::new(Databricks::from_config(&self.connector()).expect("connector config"))
    }
}

pub fn detections_dir() -> PathBuf {
    crate::common::repo().join("detections")
}

pub fn shipped_detections() -> Vec<Detection> {
    let (found, problems) = detections::load(&detections_dir());
    assert!(problems.is_empty(), "shipped detections do not check: {problems:?}");
    found
}

/// The shipped Databricks playbooks' text.
pub fn shipped_playbooks() -> Vec<String> {
    let dir = crate::common::repo().join("playbooks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("databricks-")))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "expected the shipped databricks-*.yaml playbooks");
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

pub fn poller_settings(owner: &str) -> PollerSettings {
    PollerSettings {
        source: "databricks-detection".into(),
        overlap: Duration::from_secs(15 * 60),
        lag: Duration::from_secs(60),
        max_lookback: Duration::from_secs(24 * 3600),
        lease: Duration::from_secs(30),
        workspace: None,
        owner: owner.into(),
    }
}

/// floodgate in this process: a real database, a manual clock, the shipped playbooks, the
/// Databricks connector (plus any `extra` connectors) and a detection poller.
pub struct Soc {
    pub engine: Engine,
    pub clock: Arc<ManualClock>,
    pub store: Store,
    pub poller: Poller,
    pub db: Option<Db>,
}

impl Soc {
    pub async fn start(db: Db, lake: &Lakehouse, extra: BTreeMap<String, Value>, now: i64) -> Soc {
        Self::start_with(db, lake, extra, now, shipped_detections()).await
    }

    pub async fn start_with(
        db: Db,
        lake: &Lakehouse,
        extra: BTreeMap<String, Value>,
        now: i64,
        detections: Vec<Detection>,
    ) -> Soc {
        let url = db.url.clone();
        let mut soc = Self::build(&url, lake, extra, ManualClock::new(now), detections, "soc-1").await;
        soc.db = Some(db);
        soc
    }

    /// Another process on the same database and clock, with its own lease-owner id.
    pub async fn second(&self, lake: &Lakehouse, detections: Vec<Detection>) -> Soc {
        let url = self.db.as_ref().expect("the first process owns the database").url.clone();
        Self::build(&url, lake, BTreeMap::new(), self.clock.clone(), detections, "soc-2").await
    }

    async fn build(
        url: &str,
        lake: &Lakehouse,
        extra: BTreeMap<String, Value>,
        clock: Arc<ManualClock>,
        detections: Vec<Detection>,
        owner: &str,
    ) -> Soc {
        let store = Store::connect(url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let mut connectors = extra;
        connectors.insert("databricks".into(), lake.connector());
        let texts = shipped_playbooks();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let playbooks = Arc::new(Playbooks::new(compile_all(&refs), catalog()));
        let settings = Settings {
            workers: 1,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(50),
            public_url: Some("https://floodgate.test".into()),
            worker_id: format!("w-{owner}"),
        };
        let engine = Engine::new(
            store.clone(),
            clock.clone(),
            playbooks,
            Connectors::build(&connectors).expect("connectors build"),
            directory(),
            settings,
            Arc::new(Metrics::default()),
        );
        let poller =
            Poller::new(engine.clone(), lake.databricks(), detections, poller_settings(owner)).expect("poller");
        Soc { engine, clock, store, poller, db: None }
    }
}

pub async fn alert_count(store: &Store, source: &str) -> i64 {
    let rows = store.all("SELECT count(*) AS n FROM alerts WHERE source = $1", floodgate::args![source]).await.unwrap();
    rows[0].int("n").unwrap()
}

/// Every stored alert of `source` as `detection|severity|user|source_ip|table`, sorted.
pub async fn stored_findings(store: &Store, source: &str) -> Vec<String> {
    let rows = store.all("SELECT rule, body FROM alerts WHERE source = $1", floodgate::args![source]).await.unwrap();
    let mut out: Vec<String> = rows
        .iter()
        .map(|r| {
            let body = r.json("body").unwrap();
            let rule = r.opt_text("rule").unwrap().unwrap_or_default();
            finding(rule.trim_start_matches("detection:"), &body)
        })
        .collect();
    out.sort();
    out
}

/// One alert (as templates see it) in the compact form the expectations use.
pub fn finding(detection: &str, alert: &Value) -> String {
    let e = &alert["entities"];
    let get = |k: &str| e[k].as_str().unwrap_or("").to_string();
    format!(
        "{detection}|{}|{}|{}|{}",
        alert["severity"].as_str().unwrap_or(""),
        get("user"),
        get("source_ip"),
        get("table")
    )
}

/// What the shipped detections must find in the two fixture files, and nothing else: every
/// benign row in tests/data/detections-events.jsonl sits next to an attack row it resembles.
pub const EXPECTED: &[&str] = &[
    "account-takeover-new-ip|high|dana@corp.example|203.0.113.77|",
    "admin-group-change|high|mallory@corp.example|203.0.113.99|",
    "bulk-downloads|high|mallory@corp.example|203.0.113.99|",
    "compute-spike|medium|mallory@corp.example|203.0.113.99|",
    "denied-ingress|medium|erin@corp.example|203.0.113.150|",
    "failed-logins|medium|dana@corp.example|203.0.113.77|",
    "failed-logins|medium|erin@corp.example|198.51.100.23|",
    "ip-access-list-change|high|mallory@corp.example|203.0.113.99|",
    "ip-access-list-change|medium|mallory@corp.example|203.0.113.99|",
    "long-lived-token|medium|dana@corp.example|203.0.113.77|",
    "long-lived-token|medium|mallory@corp.example|203.0.113.99|",
    "long-lived-token|medium|mallory@corp.example|203.0.113.99|",
    "permission-change-burst|medium|mallory@corp.example|203.0.113.99|",
    "secret-enumeration|high|mallory@corp.example|203.0.113.99|",
    "sensitive-table-grant|high|mallory@corp.example|203.0.113.99|main.finance.payroll_2026",
    "sensitive-table-grant|high|mallory@corp.example|203.0.113.99|main.hr.employees_pii",
    "workspace-conf-weakened|critical|dana@corp.example|203.0.113.77|",
    "workspace-conf-weakened|critical|mallory@corp.example|203.0.113.99|",
    "workspace-conf-weakened|high|mallory@corp.example|203.0.113.99|",
];

/// The findings expected from events before `until` (the fixtures' attack on 2026-09-01 is
/// dana's; everything else happens on 2026-09-02).
pub fn expected_before(until: &str) -> Vec<String> {
    let dana_only = ms(until) <= ms("2026-09-02T00:00:00Z");
    EXPECTED.iter().filter(|e| !dana_only || e.contains("dana@")).map(|s| s.to_string()).collect()
}

/// The shipped detections with these ids.
pub fn only(ids: &[&str]) -> Vec<Detection> {
    let found: Vec<Detection> = shipped_detections().into_iter().filter(|d| ids.contains(&d.id.as_str())).collect();
    assert_eq!(found.len(), ids.len(), "unknown detection in {ids:?}");
    found
}
