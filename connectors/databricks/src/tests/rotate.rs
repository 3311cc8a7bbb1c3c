//! `service_principal.rotate_secret`: delivery, verification, the five-secret limit, and a crash
//! at every stage followed by a resume with the same idempotency key and refs.

use super::{Env, exec_with};
use floodgate_sdk::sim::Fault;
use floodgate_sdk::{ActionError, MemoryRefStore, RefStore};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const APP: &str = "5e1f0c2d-1111-4222-8333-444455556666";
const NS: &str = "databricks.service_principal.rotate_secret";
const PUT: &str = "/api/2.0/secrets/put";
const WS_TOKEN: &str = "/oidc/v1/token";

struct Rot {
    env: Env,
    sp: String,
    old: Vec<String>,
}

impl Rot {
    /// A principal `etl` with `n` secrets, managed through workspace `main` (PAT auth, so the
    /// token endpoint only ever sees verification), delivering to `deliver_to`.
    async fn new(n: usize, deliver_to: Value) -> Rot {
        let mut sp = String::new();
        let env = Env::with(|c, sim| {
            sp = sim.add_service_principal(APP, "etl");
            c["service_principals"] =
                json!({"etl": {"id": sp, "application_id": APP, "level": "main", "deliver_to": deliver_to}});
        })
        .await;
        env.sim.create_secret_scope("ops");
        let old = (0..n).map(|_| env.sim.add_sp_secret(&sp).unwrap().0).collect();
        Rot { env, sp, old }
    }

    fn scope() -> Value {
        json!({"type": "secret-scope", "scope": "ops", "key": "etl-client-secret"})
    }

    async fn rotate(&self) -> Result<floodgate_sdk::ActionOutput, ActionError> {
        self.env.exec("service_principal.rotate_secret", json!({"service_principal": "etl"})).await
    }

    /// Runs the rotation until it blocks on a hung request, then drops it: a crash.
    async fn crash(&self) {
        let r = tokio::time::timeout(Duration::from_millis(400), self.rotate()).await;
        assert!(r.is_err(), "the rotation should have been stuck on the hung request: {r:?}");
    }

    async fn stage(&self) -> String {
        let v = self.env.refs.get(NS, "key-1").await.unwrap().unwrap_or(Value::Null);
        v["stage"].as_str().unwrap_or("none").to_string()
    }

    fn secrets_path(&self) -> String {
        format!("/api/2.0/accounts/servicePrincipals/{}/credentials/secrets", self.sp)
    }

    fn ids(&self) -> Vec<String> {
        self.env.sim.sp_secret_ids(&self.sp)
    }

    /// Exactly one secret is left, it is the one in the scope, and it obtains a token.
    async fn assert_rotated(&self, out: &floodgate_sdk::ActionOutput) {
        let ids = self.ids();
        assert_eq!(ids.len(), 1, "only the new secret remains: {ids:?}");
        assert_eq!(out.output["new_secret_id"], ids[0].as_str());
        let value = self.env.sim.sp_secret_value(&self.sp, &ids[0]).unwrap();
        assert_eq!(self.env.sim.secret("ops", "etl-client-secret").as_deref(), Some(value.as_str()));
        for old in &self.old {
            assert!(!ids.contains(old));
        }
        assert_no_secret_leak(&self.env, out, &value).await;
    }
}

/// The secret value appears nowhere floodgate keeps things: output, notes, refs.
async fn assert_no_secret_leak(env: &Env, out: &floodgate_sdk::ActionOutput, value: &str) {
    let shown = serde_json::to_string(&out).unwrap();
    assert!(!shown.contains(value), "secret in the output: {shown}");
    let refs = env.refs.get(NS, "key-1").await.unwrap().unwrap_or(Value::Null).to_string();
    assert!(!refs.contains(value), "secret in refs: {refs}");
}

#[tokio::test]
async fn rotation_delivers_verifies_then_deletes_old_secrets() {
    let r = Rot::new(2, Rot::scope()).await;
    let out = r.rotate().await.unwrap();
    r.assert_rotated(&out).await;
    assert_eq!(out.output["deleted_secret_ids"].as_array().unwrap().len(), 2);
    assert_eq!(out.output["verified"], true);
    assert_eq!(r.stage().await, "done");
    // Order: create, deliver, verify, then delete.
    let calls: Vec<(String, String)> =
        r.env.sim.calls().calls().iter().map(|c| (c.method.clone(), c.path.clone())).collect();
    let pos = |m: &str, p: &str| calls.iter().position(|(cm, cp)| cm == m && cp.starts_with(p)).unwrap();
    let created = pos("POST", &r.secrets_path());
    let put = pos("POST", PUT);
    let verified = pos("POST", WS_TOKEN);
    let deleted = pos("DELETE", &r.secrets_path());
    assert!(created < put && put < verified && verified < deleted, "{calls:?}");
    let verify = &r.env.sim.calls().matching("POST", WS_TOKEN)[0];
    assert!(verify.header("authorization").unwrap().starts_with("Basic "));
    // Running the finished step again changes nothing.
    let again = r.rotate().await.unwrap();
    assert_eq!(again.output, out.output);
    assert_eq!(r.env.sim.calls().count("POST", &r.secrets_path()), 1);
}

#[tokio::test]
async fn account_level_rotation_with_oauth() {
    let mut sp = String::new();
    let env = Env::with(|c, sim| {
        sp = sim.add_service_principal(APP, "etl");
        c["service_principals"] = json!({"etl": {"id": sp, "application_id": APP,
            "deliver_to": {"type": "secret-scope", "scope": "ops", "key": "k"}}});
    })
    .await;
    env.sim.create_secret_scope("ops");
    env.sim.add_sp_secret(&sp).unwrap();
    let out = env.exec("service_principal.rotate_secret", json!({"service_principal": APP})).await.unwrap();
    let ids = env.sim.sp_secret_ids(&sp);
    assert_eq!(ids.len(), 1);
    assert_eq!(env.sim.secret("ops", "k"), env.sim.sp_secret_value(&sp, &ids[0]));
    assert_eq!(env.served("POST", &env.acct(&format!("/servicePrincipals/{sp}/credentials/secrets"))), 1);
    // floodgate's own token and the verification both went to the account token endpoint.
    assert_eq!(env.sim.calls().count("POST", &format!("/oidc/accounts/{}/v1/token", env.sim.account_id())), 2);
    assert!(out.output.get("secret").is_none());
}

#[tokio::test]
async fn file_destination_is_written_mode_0600() {
    let dir = super::temp_dir();
    let path = dir.join("etl.secret");
    let r = Rot::new(1, json!({"type": "file", "path": path})).await;
    let out = r.rotate().await.unwrap();
    let ids = r.ids();
    let value = r.env.sim.sp_secret_value(&r.sp, &ids[0]).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), value);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(out.output["destination"].as_str().unwrap().contains("etl.secret"));
}

#[tokio::test]
async fn crash_after_create_before_delivery_replaces_the_lost_secret() {
    let r = Rot::new(2, Rot::scope()).await;
    r.env.sim.faults().hang_next(1, Some(PUT));
    r.crash().await;
    assert_eq!(r.stage().await, "created");
    let lost: Vec<String> = r.ids().into_iter().filter(|id| !r.old.contains(id)).collect();
    assert_eq!(lost.len(), 1);
    let out = r.rotate().await.unwrap();
    r.assert_rotated(&out).await;
    assert!(!r.ids().contains(&lost[0]), "the secret whose value was lost is deleted");
    assert!(out.notes.iter().any(|n| n.contains(&lost[0])), "{:?}", out.notes);
}

#[tokio::test]
async fn crash_after_delivery_before_verification_replaces_and_verifies() {
    let r = Rot::new(1, Rot::scope()).await;
    r.env.sim.faults().hang_next(1, Some(WS_TOKEN));
    r.crash().await;
    assert_eq!(r.stage().await, "delivered");
    assert_eq!(r.ids().len(), 2, "old secrets are kept until the new one is verified");
    let out = r.rotate().await.unwrap();
    r.assert_rotated(&out).await;
    assert_eq!(r.env.sim.calls().count("POST", PUT), 2, "delivered again with the replacement");
}

#[tokio::test]
async fn crash_after_verification_only_finishes_the_deletions() {
    let r = Rot::new(3, Rot::scope()).await;
    r.env.sim.faults().inject(Some("DELETE"), Some(&r.secrets_path()), Some(1), Fault::Hang);
    r.crash().await;
    assert_eq!(r.stage().await, "verified");
    let delivered = r.env.sim.secret("ops", "etl-client-secret");
    let out = r.rotate().await.unwrap();
    r.assert_rotated(&out).await;
    assert_eq!(r.env.sim.calls().count("POST", &r.secrets_path()), 1, "no second secret");
    assert_eq!(r.env.sim.secret("ops", "etl-client-secret"), delivered);
}

/// A refs store whose write of the `created` checkpoint fails once: the process died right
/// after Databricks created the secret.
struct CrashOnCreated {
    inner: Arc<MemoryRefStore>,
    armed: AtomicBool,
}

#[floodgate_sdk::async_trait]
impl RefStore for CrashOnCreated {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Value>, ActionError> {
        self.inner.get(ns, key).await
    }
    async fn put(&self, ns: &str, key: &str, value: &Value) -> Result<(), ActionError> {
        if value["stage"] == "created" && self.armed.swap(false, Ordering::SeqCst) {
            return Err(ActionError::retryable("crash", "simulated crash"));
        }
        self.inner.put(ns, key, value).await
    }
    async fn delete(&self, ns: &str, key: &str) -> Result<(), ActionError> {
        self.inner.delete(ns, key).await
    }
}

#[tokio::test]
async fn a_secret_created_before_its_checkpoint_is_found_and_deleted_within_the_limit() {
    // Four old secrets: the orphan makes five, so the resume must delete it before creating.
    let r = Rot::new(4, Rot::scope()).await;
    let crashing = CrashOnCreated { inner: r.env.refs.clone(), armed: AtomicBool::new(true) };
    let input = json!({"service_principal": "etl"});
    let e =
        exec_with(r.env.dbx.as_ref(), "service_principal.rotate_secret", &input, "key-1", &r.env.ctx, &crashing).await;
    assert_eq!(e.unwrap_err().code(), "crash");
    assert_eq!(r.stage().await, "listed");
    assert_eq!(r.ids().len(), 5);
    let out = r.rotate().await.unwrap();
    r.assert_rotated(&out).await;
    assert_eq!(r.env.sim.calls().count("POST", &r.secrets_path()), 2);
    assert!(r.env.sim.calls().calls().iter().all(|c| c.status != 400), "the five-secret limit was never hit");
}

#[tokio::test]
async fn a_principal_at_the_limit_is_refused_before_creating() {
    let r = Rot::new(5, Rot::scope()).await;
    let e = r.rotate().await.unwrap_err();
    assert_eq!(e.code(), "secret_limit");
    assert!(!e.is_retryable());
    assert_eq!(r.env.sim.calls().count("POST", &r.secrets_path()), 0);
    assert_eq!(r.ids(), r.old);
}

#[tokio::test]
async fn a_secret_that_cannot_obtain_a_token_keeps_the_old_ones() {
    let r = Rot::new(1, Rot::scope()).await;
    r.env.sim.faults().fail_next(4, 401, Some(WS_TOKEN));
    let e = r.rotate().await.unwrap_err();
    assert_eq!(e.code(), "rotation_verify_failed");
    assert!(e.is_retryable());
    assert!(r.ids().contains(&r.old[0]));
    assert_eq!(r.stage().await, "delivered");
    let out = r.rotate().await.unwrap();
    r.assert_rotated(&out).await;
}

#[tokio::test]
async fn a_failed_delivery_removes_the_new_secret_at_once() {
    let r = Rot::new(1, json!({"type": "secret-scope", "scope": "missing", "key": "k"})).await;
    let e = r.rotate().await.unwrap_err();
    assert_eq!(e.code(), "RESOURCE_DOES_NOT_EXIST");
    assert!(e.message().contains("missing"), "{}", e.message());
    assert_eq!(r.ids(), r.old, "the undelivered secret was deleted");
    assert_eq!(r.stage().await, "listed");
}

#[tokio::test]
async fn refusals_unknown_principals_and_floodgates_own_identity() {
    let r = Rot::new(1, Rot::scope()).await;
    let e = r.env.exec("service_principal.rotate_secret", json!({"service_principal": "nobody"})).await.unwrap_err();
    assert_eq!(e.code(), "unknown_service_principal");
    assert!(e.message().contains("etl"));

    let mut sp = String::new();
    let env = Env::with(|c, sim| {
        sp = sim.add_service_principal("spare", "spare");
        let (app, _) = sim.floodgate_client();
        c["service_principals"] =
            json!({"self": {"id": sp, "application_id": app, "deliver_to": {"type": "secret-scope", "scope": "ops", "key": "k"}}});
    })
    .await;
    let e = env.exec("service_principal.rotate_secret", json!({"service_principal": "self"})).await.unwrap_err();
    assert_eq!(e.code(), "refused_self");
    assert!(env.sim.calls().is_empty());
}

#[tokio::test]
async fn the_plan_never_holds_a_secret() {
    let r = Rot::new(1, Rot::scope()).await;
    let plan = r.env.plan("service_principal.rotate_secret", json!({"service_principal": "etl"})).unwrap();
    let methods: Vec<&str> = plan.requests.iter().map(|p| p.method.as_str()).collect();
    assert_eq!(methods, vec!["GET", "POST", "POST", "POST", "DELETE"]);
    let put = plan.requests.iter().find(|p| p.url.ends_with(PUT)).unwrap();
    assert_eq!(put.body.as_ref().unwrap()["string_value"], "[new secret]");
    assert!(plan.summary.contains("ops"));
}
