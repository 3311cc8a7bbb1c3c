//! An in-process floodgate for engine tests: a real database (SQLite file or a PostgreSQL
//! database of its own), a manual clock, real playbooks compiled from text, and a `test`
//! connector that honours idempotency keys and counts what took effect.

#![allow(dead_code)]

use floodgate::clock::ManualClock;
use floodgate::config::{SourceAuth, SourceConfig, SourceFormat};
use floodgate::engine::{Connectors, Directory, Engine, Playbooks, Settings, registry::Person};
use floodgate::ingest::{Intake, formats};
use floodgate::metrics::Metrics;
use floodgate::playbook::{self, ActionCatalog, CompileOptions};
use floodgate::store::{Accepted, NewAlert, RunRow, Store};
use floodgate_sdk::{
    ActionCall, ActionError, ActionOutput, ActionSpec, BuildError, Connector, ConnectorKind, Plan, RiskClass, SecretRef,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const T0: i64 = 1_790_000_000_000;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database for one test, removed afterwards.
pub struct Db {
    pub url: String,
    guard: Guard,
}

enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres { admin: String, name: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { admin, name } = self {
            let (admin, name) = (admin.clone(), name.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok(s) = Store::connect(&admin, 2).await {
                        let _ = s.all_dynamic(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"), vec![]).await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn postgres_admin_url() -> String {
    std::env::var("FLOODGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl Db {
    pub async fn new(b: Backend) -> Db {
        match b {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("floodgate.db").display());
                Db { url, guard: Guard::Sqlite(dir) }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("fg_test_{}", uuid::Uuid::new_v4().simple());
                let store = Store::connect(&admin, 2).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL is not reachable at {admin} ({e}). Start it (see README) or point FLOODGATE_TEST_POSTGRES_URL at one.")
                });
                store.all_dynamic(format!("CREATE DATABASE {name}"), vec![]).await.unwrap();
                store.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin.clone());
                Db { url: format!("{base}/{name}"), guard: Guard::Postgres { admin, name } }
            }
        }
    }
}

/// Runs the same async test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::harness::Db::new($crate::harness::Backend::Sqlite).await).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::harness::Db::new($crate::harness::Backend::Postgres).await).await
                }
            }
        )*
    };
}

/// What the `test` connector saw and did.
#[derive(Default)]
pub struct TestVendor {
    pub calls: Mutex<Vec<(String, String, Value)>>,
    /// Effects by idempotency key: how many times each key took effect (must stay 1).
    pub effects: Mutex<HashMap<String, u32>>,
    pub retryable_failures: AtomicU32,
    pub permanent_failures: AtomicU32,
    pub retry_after: Mutex<Option<Duration>>,
}

impl TestVendor {
    pub fn calls(&self, action: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|c| c.0 == action).count()
    }
    pub fn effect_count(&self) -> usize {
        self.effects.lock().unwrap().len()
    }
    pub fn max_effects_per_key(&self) -> u32 {
        self.effects.lock().unwrap().values().copied().max().unwrap_or(0)
    }
    pub fn inputs(&self, action: &str) -> Vec<Value> {
        self.calls.lock().unwrap().iter().filter(|c| c.0 == action).map(|c| c.2.clone()).collect()
    }
}

struct TestConnector(Arc<TestVendor>);

fn test_actions() -> Vec<ActionSpec> {
    let schema = json!({"type": "object", "properties": {"target": {"type": "string"}}, "additionalProperties": false});
    vec![
        ActionSpec::new("contain", "Contain a target", RiskClass::Contain, schema.clone()).revertible(),
        ActionSpec::new("notify", "Notify", RiskClass::Notify, schema.clone()),
        ActionSpec::new("destroy", "Destroy a target", RiskClass::Destructive, schema),
    ]
}

#[async_trait::async_trait]
impl Connector for TestConnector {
    fn name(&self) -> &str {
        "test"
    }
    fn actions(&self) -> Vec<ActionSpec> {
        test_actions()
    }
    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        let target = call.input["target"].as_str().unwrap_or("?");
        Ok(Plan::new(format!("{} {target}", call.action)).request(
            "POST",
            format!("https://vendor.test/{}", call.action),
            Some(call.input.clone()),
        ))
    }
    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        let v = &self.0;
        v.calls.lock().unwrap().push((call.action.to_string(), call.idempotency_key.to_string(), call.input.clone()));
        if v.retryable_failures.load(Ordering::SeqCst) > 0 {
            v.retryable_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ActionError::retry_after("http_503", "vendor unavailable", *v.retry_after.lock().unwrap()));
        }
        if v.permanent_failures.load(Ordering::SeqCst) > 0 {
            v.permanent_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ActionError::permanent("http_400", "vendor refused the request"));
        }
        // Honour the idempotency key: the effect happens once per key.
        let mut effects = v.effects.lock().unwrap();
        let first = !effects.contains_key(call.idempotency_key);
        if first {
            effects.insert(call.idempotency_key.to_string(), 1);
        }
        let out = ActionOutput::new(json!({"target": call.input["target"], "new": first}));
        Ok(if call.action == "contain" { out.with_revert_state(json!({"undo": call.input["target"]})) } else { out })
    }

    async fn revert(&self, call: &ActionCall<'_>, state: &Value) -> Result<ActionOutput, ActionError> {
        let v = &self.0;
        v.calls.lock().unwrap().push((
            format!("revert:{}", call.action),
            call.idempotency_key.to_string(),
            state.clone(),
        ));
        if v.retryable_failures.load(Ordering::SeqCst) > 0 {
            v.retryable_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ActionError::retryable("http_503", "vendor unavailable"));
        }
        if v.permanent_failures.load(Ordering::SeqCst) > 0 {
            v.permanent_failures.fetch_sub(1, Ordering::SeqCst);
            return Err(ActionError::permanent("http_400", "vendor refused the revert"));
        }
        Ok(ActionOutput::new(json!({"undone": state["undo"]})))
    }
}

pub struct TestKind;

impl ConnectorKind for TestKind {
    fn name(&self) -> &'static str {
        "test"
    }
    fn actions(&self) -> Vec<ActionSpec> {
        test_actions()
    }
    fn build(&self, _config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError> {
        Err(BuildError::new("test", "built by the harness"))
    }
}

pub fn catalog() -> ActionCatalog {
    let mut kinds = floodgate::connectors::kinds();
    kinds.push(Box::new(TestKind));
    ActionCatalog::from_kinds(kinds.iter().map(|k| k.as_ref()))
}

pub fn directory() -> Directory {
    let people = [
        ("alice", "alice@corp.example"),
        ("bob", "bob@corp.example"),
        ("carol", "carol@corp.example"),
        ("dana", "dana@corp.example"),
    ];
    Directory {
        people: people
            .iter()
            .map(|(id, email)| {
                (
                    id.to_string(),
                    Person { id: id.to_string(), name: None, email: Some(email.to_string()), slack_user_id: None },
                )
            })
            .collect(),
        groups: BTreeMap::from([
            ("oncall".to_string(), BTreeSet::from(["alice".to_string(), "bob".to_string(), "dana".to_string()])),
            ("leads".to_string(), BTreeSet::from(["carol".to_string()])),
        ]),
        policy: floodgate::config::PolicyConfig {
            default_approvers: vec!["oncall".into()],
            allow_approve_on_timeout: true,
            ..Default::default()
        },
    }
}

pub struct Harness {
    pub engine: Engine,
    pub intake: Intake,
    pub clock: Arc<ManualClock>,
    pub vendor: Arc<TestVendor>,
    pub store: Store,
    pub db: Db,
    source: SourceConfig,
}

pub fn compile_all(texts: &[&str]) -> Vec<floodgate::playbook::Playbook> {
    let catalog = catalog();
    let groups = directory().groups;
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            playbook::compile(
                t.as_bytes(),
                &format!("pb{i}.yaml"),
                CompileOptions { catalog: &catalog, groups: Some(&groups), policy: None },
            )
            .unwrap_or_else(|d| panic!("test playbook does not compile: {d:?}"))
        })
        .collect()
}

impl Harness {
    pub async fn new(db: Db, playbooks: &[&str]) -> Harness {
        Self::with_store(db, playbooks, None).await
    }

    /// A second engine (another process) on the same database.
    pub async fn with_store(db: Db, playbooks: &[&str], clock: Option<Arc<ManualClock>>) -> Harness {
        Self::build(db, playbooks, clock, directory()).await
    }

    /// A harness whose people and policy are `dir`.
    pub async fn with_directory(db: Db, playbooks: &[&str], dir: Directory) -> Harness {
        Self::build(db, playbooks, None, dir).await
    }

    async fn build(db: Db, playbooks: &[&str], clock: Option<Arc<ManualClock>>, dir: Directory) -> Harness {
        let store = Store::connect(&db.url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let clock = clock.unwrap_or_else(|| ManualClock::new(T0));
        let vendor = Arc::new(TestVendor::default());
        let connectors = Connectors::build(&BTreeMap::new()).unwrap().with(Arc::new(TestConnector(vendor.clone())));
        let playbooks = Arc::new(Playbooks::new(compile_all(playbooks), catalog()));
        let settings = Settings {
            workers: 2,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(50),
            public_url: Some("https://floodgate.test".into()),
            worker_id: format!("w-{}", uuid::Uuid::new_v4().simple()),
        };
        let engine = Engine::new(
            store.clone(),
            clock.clone(),
            playbooks,
            connectors,
            dir,
            settings,
            Arc::new(Metrics::default()),
        );
        let intake = Intake::start(engine.clone());
        let source = SourceConfig {
            name: "siem".into(),
            format: SourceFormat::Generic,
            auth: SourceAuth::Bearer { token: SecretRef::Env("UNUSED".into()) },
            default_severity: None,
            default_confidence: None,
            mapping: Default::default(),
        };
        Harness { engine, intake, clock, vendor, store, db, source }
    }

    /// Posts a generic alert (`id`, `title`, `severity`, `confidence`, `rule`, `entities`).
    pub async fn alert(&self, body: Value) -> Accepted {
        let id = floodgate::store::new_id("alr");
        let alert = formats::normalize(&self.source, &body, id, self.clock.now_ms_pub()).expect("valid alert");
        self.intake.submit(&alert).await.expect("alert stored")
    }

    /// Normalizes and routes a generic alert without storing it (for `Store::accept_alerts`).
    pub fn routed(&self, body: Value) -> NewAlert {
        let id = floodgate::store::new_id("alr");
        let alert = formats::normalize(&self.source, &body, id, self.clock.now_ms_pub()).expect("valid alert");
        self.intake.route(&alert)
    }

    pub async fn settle(&self) -> usize {
        self.engine.run_until_idle().await.expect("engine runs")
    }

    pub async fn run(&self, id: &str) -> RunRow {
        self.store.run(id).await.unwrap().expect("run exists")
    }

    pub async fn events(&self, run: &RunRow) -> Vec<String> {
        self.store.run_events(&run.id, &run.incident_id).await.unwrap().into_iter().map(|e| e.kind).collect()
    }
}

pub trait NowPub {
    fn now_ms_pub(&self) -> i64;
}

impl NowPub for ManualClock {
    fn now_ms_pub(&self) -> i64 {
        floodgate::clock::Clock::now_ms(self)
    }
}
