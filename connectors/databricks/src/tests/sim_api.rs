//! The simulator on its own, over HTTP: the semantics the connector does not exercise on its
//! happy paths, which a faithful simulator must still have (validation, statement timing modes,
//! quota and lockout, token endpoint errors, etags, enforcement).

use crate::sim::DatabricksSim;
use floodgate_sdk::Secret;
use floodgate_sdk::http::{HttpClient, Request, Response, RetryPolicy};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct Raw {
    sim: DatabricksSim,
    http: HttpClient,
}

impl Raw {
    async fn new() -> Raw {
        let policy = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
        Raw {
            sim: DatabricksSim::start().await.unwrap(),
            http: HttpClient::new(policy).with_timeout(Duration::from_secs(30)),
        }
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.url())
    }
    async fn send(&self, req: Request) -> Response {
        let req = req.bearer(&Secret::new(self.sim.admin_pat()));
        self.http.send(&req).await.unwrap()
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.send(Request::post(self.url(path)).json(body)).await;
        (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.send(Request::get(self.url(path))).await;
        (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
    }
    fn statement(&self, sql: &str, extra: Value) -> Value {
        let mut b = json!({"statement": sql, "warehouse_id": self.sim.warehouse_id()});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    }
}

const STATEMENTS: &str = "/api/2.0/sql/statements";

#[tokio::test]
async fn statement_requests_are_validated_like_databricks() {
    let raw = Raw::new().await;
    for (extra, needle) in [
        (json!({"wait_timeout": "3s"}), "wait_timeout"),
        (json!({"on_wait_timeout": "LATER"}), "on_wait_timeout"),
        (json!({"format": "CSV"}), "EXTERNAL_LINKS"),
        (json!({"parameters": [{"name": "a b", "value": "x"}]}), "parameter name"),
        (json!({"parameters": [{"name": "a", "value": 1}]}), "must be a string"),
        (json!({"row_limit": 0}), "row_limit"),
    ] {
        let (status, body) = raw.post(STATEMENTS, raw.statement("SELECT 1", extra)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error_code"], "INVALID_PARAMETER_VALUE");
        assert!(body["message"].as_str().unwrap().contains(needle), "{needle}: {body}");
    }
    let (status, body) = raw.post(STATEMENTS, json!({"statement": "SELECT 1", "warehouse_id": "nope"})).await;
    assert_eq!((status, body["error_code"].as_str()), (404, Some("RESOURCE_DOES_NOT_EXIST")));
    let r = raw.send(Request::post(raw.url(STATEMENTS)).json(json!("not a map"))).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("MALFORMED_REQUEST"));
    let (status, _) = raw.get(&format!("{STATEMENTS}/01f0-unknown")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn wait_timeout_modes_and_cancel_on_timeout() {
    let raw = Raw::new().await;
    raw.sim.set_statement_latency(Duration::from_millis(600));
    // Asynchronous: answers at once.
    let (_, body) = raw.post(STATEMENTS, raw.statement("SELECT 1 AS x", json!({"wait_timeout": "0s"}))).await;
    assert_eq!(body["status"]["state"], "PENDING");
    let id = body["statement_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(raw.get(&format!("{STATEMENTS}/{id}")).await.1["status"]["state"], "RUNNING");
    let (status, body) = raw.get(&format!("{STATEMENTS}/{id}/result/chunks/0")).await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("BAD_REQUEST")));
    // Hybrid: waits for the result within wait_timeout.
    let start = Instant::now();
    let (_, body) = raw.post(STATEMENTS, raw.statement("SELECT 1 AS x", json!({"wait_timeout": "5s"}))).await;
    assert_eq!(body["status"]["state"], "SUCCEEDED");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(body["result"]["data_array"], json!([["1"]]));
    assert_eq!(body["manifest"]["schema"]["columns"][0]["type_name"], "INT");
    // Synchronous with CANCEL: a statement slower than wait_timeout is cancelled.
    raw.sim.set_statement_latency(Duration::from_secs(60));
    let (_, body) = raw
        .post(STATEMENTS, raw.statement("SELECT 1", json!({"wait_timeout": "5s", "on_wait_timeout": "CANCEL"})))
        .await;
    assert_eq!(body["status"]["state"], "CANCELED");
    // Cancel by id.
    let (_, body) = raw.post(STATEMENTS, raw.statement("SELECT 1", json!({"wait_timeout": "0s"}))).await;
    let id = body["statement_id"].as_str().unwrap().to_string();
    let (status, _) = raw.post(&format!("{STATEMENTS}/{id}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(raw.get(&format!("{STATEMENTS}/{id}")).await.1["status"]["state"], "CANCELED");
}

#[tokio::test]
async fn failed_statements_and_chunk_links() {
    let raw = Raw::new().await;
    raw.sim.load_audit_events(&crate::sim::testdata::story_jsonl()).await.unwrap();
    raw.sim.set_chunk_rows(8);
    let (status, body) = raw.post(STATEMENTS, raw.statement("SELECT * FROM main.default.nope", json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"]["state"], "FAILED");
    assert_eq!(body["status"]["sql_state"], "42P01");
    assert_eq!(body["status"]["error"]["error_code"], "BAD_REQUEST");
    assert!(body["status"]["error"]["message"].as_str().unwrap().starts_with("[TABLE_OR_VIEW_NOT_FOUND]"));
    let (_, body) = raw.post(STATEMENTS, raw.statement("SELECT event_id FROM system.access.audit", json!({}))).await;
    assert_eq!(body["manifest"]["total_chunk_count"], 3);
    assert_eq!(body["manifest"]["chunks"][2], json!({"chunk_index": 2, "row_offset": 16, "row_count": 3}));
    let link = body["result"]["next_chunk_internal_link"].as_str().unwrap().to_string();
    let (_, chunk) = raw.get(&link).await;
    assert_eq!(chunk["chunk_index"], 1);
    assert_eq!(chunk["next_chunk_index"], 2);
    let id = body["statement_id"].as_str().unwrap();
    let (_, last) = raw.get(&format!("{STATEMENTS}/{id}/result/chunks/2")).await;
    assert!(last.get("next_chunk_index").is_none());
    let (status, _) = raw.get(&format!("{STATEMENTS}/{id}/result/chunks/3")).await;
    assert_eq!(status, 400);
    let (_, body) =
        raw.post(STATEMENTS, raw.statement("SELECT event_id FROM system.access.audit WHERE 1 = 0", json!({}))).await;
    assert_eq!(body["manifest"]["total_row_count"], 0);
    assert!(body.get("result").is_none());
}

#[tokio::test]
async fn ip_access_lists_enforce_quota_lockout_and_blocks() {
    let raw = Raw::new().await;
    let many: Vec<String> = (0..1001).map(|k| format!("10.{}.{}.1", k / 250, k % 250)).collect();
    let (status, body) =
        raw.post("/api/2.0/ip-access-lists", json!({"label": "x", "list_type": "BLOCK", "ip_addresses": many})).await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("QUOTA_EXCEEDED")));
    let (status, body) = raw
        .post(
            "/api/2.0/ip-access-lists",
            json!({"label": "x", "list_type": "ALLOW", "ip_addresses": ["198.51.100.0/24"]}),
        )
        .await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_STATE")), "an allow list without the caller");
    let (status, body) = raw.post("/api/2.0/ip-access-lists", json!({"label": "", "list_type": "BLOCK"})).await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("INVALID_PARAMETER_VALUE")));
    let (status, _) = raw
        .post(
            "/api/2.0/ip-access-lists",
            json!({"label": "v6", "list_type": "BLOCK", "ip_addresses": ["2001:db8::/32"]}),
        )
        .await;
    assert_eq!(status, 400);
    let (_, body) = raw
        .post("/api/2.0/ip-access-lists", json!({"label": "ok", "list_type": "BLOCK", "ip_addresses": ["203.0.113.7"]}))
        .await;
    let id = body["ip_access_list"]["list_id"].as_str().unwrap().to_string();
    let r =
        raw.send(Request::put(raw.url(&format!("/api/2.0/ip-access-lists/{id}"))).json(json!({"label": "ok"}))).await;
    assert_eq!(r.status, 400, "replace needs label, list_type and enabled");
    // Enforcement: once the caller is on an enabled block list, the workspace refuses it.
    raw.sim.add_ip_access_list(false, "manual", "BLOCK", &["127.0.0.1"]);
    let (status, body) = raw.get("/api/2.0/ip-access-lists").await;
    assert_eq!(status, 403);
    assert!(body["message"].as_str().unwrap().contains("blocked by Databricks IP ACL"));
}

#[tokio::test]
async fn oauth_endpoints_and_credentials_are_checked() {
    let raw = Raw::new().await;
    let (app, secret) = raw.sim.floodgate_client();
    let token = |body: Vec<(&str, &str)>, user: &str, pass: &str| {
        Request::post(raw.url("/oidc/v1/token"))
            .basic(user, &Secret::new(pass))
            .form(body.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    };
    let ok = vec![("grant_type", "client_credentials"), ("scope", "all-apis")];
    let r = raw.http.send(&token(ok.clone(), app, secret)).await.unwrap();
    assert_eq!(r.status, 200);
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let r = raw.http.send(&token(ok.clone(), app, "wrong")).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(r.text().contains("invalid_client"));
    let r = raw.http.send(&token(vec![("grant_type", "password"), ("scope", "all-apis")], app, secret)).await.unwrap();
    assert!(r.text().contains("unsupported_grant_type"));
    let r = raw.http.send(&token(vec![("grant_type", "client_credentials")], app, secret)).await.unwrap();
    assert!(r.text().contains("invalid_scope"));
    // A workspace token does not open account APIs; a PAT does not either.
    let ws_token: String = serde_json::from_slice::<Value>(&raw.http.send(&token(ok, app, secret)).await.unwrap().body)
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let acct = raw.url(&format!("/api/2.0/accounts/{}/ip-access-lists", raw.sim.account_id()));
    let r = raw.http.send(&Request::get(&acct).bearer(&Secret::new(ws_token.clone()))).await.unwrap();
    assert_eq!(r.status, 401);
    let r = raw.send(Request::get(&acct)).await;
    assert_eq!(r.status, 401);
    let r =
        raw.http.send(&Request::get(raw.url("/api/2.0/ip-access-lists")).bearer(&Secret::new(ws_token))).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn settings_scim_secrets_and_tokens_validate_input() {
    let raw = Raw::new().await;
    let r = raw.send(Request::get(raw.url("/api/2.0/workspace-conf?keys=enableNothing"))).await;
    assert_eq!(r.status, 400);
    let r = raw
        .send(Request::patch(raw.url("/api/2.0/workspace-conf")).json(json!({"enableExportNotebook": "maybe"})))
        .await;
    assert_eq!(r.status, 400);
    let setting = "/api/2.0/settings/types/sql_results_download/names/default";
    let stale = json!({"allow_missing": true, "field_mask": "boolean_val.value",
                       "setting": {"boolean_val": {"value": false}, "etag": "999"}});
    let r = raw.send(Request::patch(raw.url(setting)).json(stale)).await;
    assert_eq!(r.status, 409);
    let r = raw
        .send(Request::patch(raw.url(setting)).json(json!({"field_mask": "boolean_val.value", "setting": {}})))
        .await;
    assert_eq!(r.status, 400);
    let bad_patch = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
    let id = raw.sim.add_user(false, "u@corp.example");
    let r = raw.send(Request::patch(raw.url(&format!("/api/2.0/preview/scim/v2/Users/{id}"))).json(bad_patch)).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("invalidSyntax"));
    let legacy_form = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                             "Operations": [{"op": "replace", "path": "active", "value": [{"value": "false"}]}]});
    let r = raw.send(Request::patch(raw.url(&format!("/api/2.0/preview/scim/v2/Users/{id}"))).json(legacy_form)).await;
    assert_eq!(r.status, 204);
    assert_eq!(raw.sim.user_active(false, &id), Some(false));
    let r = raw.send(Request::get(raw.url("/api/2.0/preview/scim/v2/Users?filter=userName%20co%20%22u%22"))).await;
    assert!(r.text().contains("invalidFilter"));
    let (status, _) = raw.post("/api/2.0/secrets/put", json!({"scope": "none", "key": "k", "string_value": "v"})).await;
    assert_eq!(status, 404);
    raw.sim.create_secret_scope("s");
    let (status, _) = raw
        .post("/api/2.0/secrets/put", json!({"scope": "s", "key": "k", "string_value": "v", "bytes_value": "dg=="}))
        .await;
    assert_eq!(status, 400);
    let r = raw.send(Request::delete(raw.url("/api/2.0/token-management/tokens/nope"))).await;
    assert_eq!(r.status, 404);
    let sp = raw.sim.add_service_principal("11111111-2222-4333-8444-555555555555", "s");
    for _ in 0..5 {
        raw.sim.add_sp_secret(&sp).unwrap();
    }
    let (status, body) =
        raw.post(&format!("/api/2.0/accounts/servicePrincipals/{sp}/credentials/secrets"), json!({})).await;
    assert_eq!((status, body["error_code"].as_str()), (400, Some("QUOTA_EXCEEDED")));
    let (_, page) = raw.get(&format!("/api/2.0/accounts/servicePrincipals/{sp}/credentials/secrets?page_size=2")).await;
    assert_eq!(page["secrets"].as_array().unwrap().len(), 2);
    assert!(page["secrets"][0].get("secret").is_none(), "listing never returns values");
    assert_eq!(page["next_page_token"], "offset-2");
}
