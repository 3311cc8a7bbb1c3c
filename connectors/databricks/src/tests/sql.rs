//! Statement Execution end to end: chunked results, typed rows, FAILED with HTTP 200, states,
//! cancellation, expiry, `sql.query` parameters, and the `investigate.*` helpers over our own
//! audit events.

use super::Env;
use crate::sim::testdata::{ATTACKER_IP, VICTIM, story_jsonl};
use crate::{SqlParam, SqlType};
use serde_json::{Value, json};
use std::time::Duration;

async fn story_env(edit: impl FnOnce(&mut Value, &crate::sim::DatabricksSim)) -> Env {
    let env = Env::with(edit).await;
    env.sim.load_audit_events(&story_jsonl()).await.unwrap();
    env
}

#[tokio::test]
async fn a_three_chunk_result_comes_back_whole_and_typed() {
    let env = story_env(|_, _| {}).await;
    env.sim.set_chunk_rows(7);
    let r = env
        .dbx
        .run_statement(
            Some("main"),
            "SELECT event_time, action_name, response.status_code AS status, request_params, user_identity.email
             FROM system.access.audit WHERE event_date >= :d ORDER BY event_time, event_id",
            &[SqlParam::date("d", time::macros::date!(2026 - 04 - 01))],
        )
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 19);
    let chunk_gets = env.sim.calls().calls().iter().filter(|c| c.path.contains("/result/chunks/")).count();
    assert_eq!(chunk_gets, 2, "chunks 1 and 2 after the inline chunk 0");
    let types: Vec<&str> = r.columns.iter().map(|c| c.type_name.as_str()).collect();
    assert_eq!(types, vec!["TIMESTAMP", "STRING", "INT", "MAP", "STRING"]);
    assert_eq!(r.rows[0]["event_time"], "2026-04-01T08:00:00.000Z");
    assert_eq!(r.rows[0]["status"], 200);
    assert_eq!(r.rows[0]["request_params"], json!({"user": "ann@corp.example"}));
    assert_eq!(r.rows[4]["email"], Value::Null, "failed logins carry no identity");
    assert_eq!(r.rows[4]["status"], 401);
    assert!(!r.truncated);
    let body = env.sim.calls().matching("POST", "/api/2.0/sql/statements")[0].json().unwrap();
    assert_eq!(body["parameters"], json!([{"name": "d", "value": "2026-04-01", "type": "DATE"}]));
    assert_eq!(body["disposition"], "INLINE");
    assert_eq!(body["format"], "JSON_ARRAY");
}

#[tokio::test]
async fn a_failed_statement_is_a_clear_permanent_error() {
    let env = story_env(|_, _| {}).await;
    let e = env.dbx.run_statement(None, "SELECT * FROM system.access.audit_x", &[]).await.unwrap_err();
    assert_eq!(e.code(), "TABLE_OR_VIEW_NOT_FOUND");
    assert!(!e.is_retryable());
    for needle in ["FAILED", "SQLSTATE 42P01", "`audit_x`", "BAD_REQUEST"] {
        assert!(e.message().contains(needle), "{needle}: {}", e.message());
    }
    assert_eq!(env.sim.calls().len(), 1, "HTTP 200 FAILED needs no retry or poll");
    let e = env
        .exec("sql.query", json!({"statement": "SELECT count(*) FROM system.access.audit WHERE event_time > :since"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "UNBOUND_SQL_PARAMETER");
    env.sim.fail_next_statement("TEMPORARILY_UNAVAILABLE", "The warehouse is restarting");
    let e = env.dbx.run_statement(None, "SELECT 1", &[]).await.unwrap_err();
    assert!(e.is_retryable(), "service-side failures may be retried");
}

#[tokio::test]
async fn pending_and_running_statements_are_polled_to_completion() {
    let env = story_env(|c, _| c["sql"] = json!({"wait_timeout_seconds": 0})).await;
    env.sim.set_statement_latency(Duration::from_millis(700));
    let r = env.dbx.run_statement(None, "SELECT count(*) AS n FROM system.access.audit", &[]).await.unwrap();
    assert_eq!(r.rows[0]["n"], 19);
    let polls = env
        .sim
        .calls()
        .calls()
        .iter()
        .filter(|c| c.method == "GET" && c.path.starts_with("/api/2.0/sql/statements/"))
        .count();
    assert!(polls >= 2, "{polls}");
    let post = &env.sim.calls().matching("POST", "/api/2.0/sql/statements")[0];
    assert_eq!(post.json().unwrap()["wait_timeout"], "0s");
}

#[tokio::test]
async fn a_statement_that_runs_too_long_is_cancelled() {
    let env = story_env(|c, _| c["sql"] = json!({"wait_timeout_seconds": 0, "timeout_seconds": 1})).await;
    env.sim.set_statement_latency(Duration::from_secs(30));
    let e = env.dbx.run_statement(None, "SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code(), "statement_timeout");
    assert!(e.is_retryable());
    let cancels = env.sim.calls().calls().iter().filter(|c| c.path.ends_with("/cancel")).count();
    assert_eq!(cancels, 1);
}

#[tokio::test]
async fn expired_and_closed_statements_are_retryable() {
    let env = story_env(|c, _| c["sql"] = json!({"wait_timeout_seconds": 0})).await;
    env.sim.set_statement_latency(Duration::from_millis(300));
    env.sim.set_forget_after(Duration::ZERO);
    let e = env.dbx.run_statement(None, "SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code(), "statement_expired");
    assert!(e.is_retryable());

    env.sim.set_forget_after(Duration::from_secs(3600));
    env.sim.set_result_ttl(Duration::ZERO);
    let e = env.dbx.run_statement(None, "SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code(), "statement_closed");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn sql_query_passes_alert_values_as_parameters_only() {
    let env = story_env(|_, _| {}).await;
    let statement = "SELECT action_name, count(*) AS n FROM system.access.audit
                     WHERE source_ip_address = :ip AND event_time >= :since GROUP BY action_name ORDER BY n DESC, action_name";
    let out = env
        .exec(
            "sql.query",
            json!({"statement": statement, "parameters": {
                "ip": ATTACKER_IP, "since": {"value": "2026-04-01T21:00:00Z", "type": "TIMESTAMP"}}}),
        )
        .await
        .unwrap();
    assert_eq!(out.output["rows"][0], json!({"action_name": "login", "n": 10}));
    assert_eq!(out.output["row_count"], 5);
    assert_eq!(out.output["columns"][1], json!({"name": "n", "type": "LONG"}));
    let hostile = "203.0.113.7' OR '1'='1";
    let out = env
        .exec_key(
            "sql.query",
            json!({"statement": statement, "parameters": {"ip": hostile, "since": "2026-01-01T00:00:00Z"}}),
            "k2",
        )
        .await
        .unwrap();
    assert_eq!(out.output["row_count"], 0, "the value is compared, never executed");
    let sent = env.sim.calls().matching("POST", "/api/2.0/sql/statements")[1].json().unwrap();
    assert!(!sent["statement"].as_str().unwrap().contains("OR '1'"));
    let e = env
        .exec_key(
            "sql.query",
            json!({"statement": "SELECT 1", "parameters": {"n": {"value": "x", "type": "INT"}}}),
            "k3",
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let out = env
        .exec_key("sql.query", json!({"statement": "SELECT event_id FROM system.access.audit", "row_limit": 3}), "k4")
        .await
        .unwrap();
    assert_eq!(out.output["row_count"], 3);
    assert_eq!(out.output["truncated"], true);
}

#[tokio::test]
async fn investigation_helpers_answer_from_system_tables() {
    let env = story_env(|_, _| {}).await;
    let window = json!({"since": "2026-04-01T00:00:00Z", "until": "2026-04-02T00:00:00Z"});
    let with = |extra: Value| {
        let mut v = window.clone();
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    let out = env.exec("investigate.user_activity", with(json!({"user": "MALLORY@corp.example"}))).await.unwrap();
    assert_eq!(out.output["row_count"], 15, "failed logins are matched by request_params.user");
    assert_eq!(out.output["rows"][0]["action_name"], "getTable", "newest first");

    let out = env.exec_key("investigate.ip_activity", with(json!({"ip": ATTACKER_IP})), "k2").await.unwrap();
    assert_eq!(out.output["row_count"], 15, "ip:port rows match too");
    assert_eq!(out.output["rows"][14]["principal"], VICTIM);

    env.sim
        .insert_rows(
            "system.data_classification.results",
            &[
                json!({"catalog_name": "main", "schema_name": "hr", "table_name": "salaries", "column_name": "ssn", "class_tag": "class.us_ssn", "confidence": "HIGH"}),
                json!({"catalog_name": "main", "schema_name": "hr", "table_name": "salaries", "column_name": "iban", "class_tag": "class.iban_code", "confidence": "HIGH"}),
                json!({"catalog_name": "main", "schema_name": "sales", "table_name": "other", "column_name": "email", "class_tag": "class.email_address"}),
            ],
        )
        .await
        .unwrap();
    let out = env.exec_key("investigate.sensitive_tables", with(json!({"user": VICTIM})), "k3").await.unwrap();
    assert_eq!(out.output["row_count"], 1, "main.sales.orders is not classified");
    let row = &out.output["rows"][0];
    assert_eq!(row["table_full_name"], "main.hr.salaries");
    assert_eq!(row["access_count"], 1);
    let mut tags: Vec<String> = serde_json::from_value(row["class_tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, vec!["class.iban_code", "class.us_ssn"]);
    assert_eq!(row["first_access"], "2026-04-01T22:03:00.000Z");

    env.sim
        .insert_rows(
            "system.access.table_lineage",
            &[
                json!({"source_table_full_name": "main.hr.salaries", "target_table_full_name": "main.tmp.dump", "source_type": "TABLE",
                       "target_type": "TABLE", "entity_type": "NOTEBOOK", "entity_id": "42", "created_by": VICTIM, "event_time": "2026-04-01T22:04:30Z"}),
                json!({"source_table_full_name": "main.raw.hr", "target_table_full_name": "main.hr.salaries", "source_type": "TABLE",
                       "target_type": "TABLE", "entity_type": "JOB", "entity_id": "7", "created_by": "etl@corp.example", "event_time": "2026-03-30T01:00:00Z"}),
            ],
        )
        .await
        .unwrap();
    let out = env
        .exec_key(
            "investigate.table_lineage",
            json!({"table": "main.hr.salaries", "until": "2026-04-02T00:00:00Z"}),
            "k4",
        )
        .await
        .unwrap();
    let directions: Vec<&str> =
        out.output["rows"].as_array().unwrap().iter().map(|r| r["direction"].as_str().unwrap()).collect();
    assert_eq!(directions, vec!["downstream", "upstream"]);

    env.sim
        .insert_rows(
            "system.information_schema.table_privileges",
            &[
                json!({"grantor": "admin", "grantee": VICTIM, "table_catalog": "main", "table_schema": "hr", "table_name": "salaries", "privilege_type": "SELECT", "is_grantable": "NO"}),
                json!({"grantor": "admin", "grantee": "hr-team", "table_catalog": "main", "table_schema": "hr", "table_name": "salaries", "privilege_type": "SELECT", "is_grantable": "NO", "inherited_from": "main.hr"}),
                json!({"grantor": "admin", "grantee": "x", "table_catalog": "main", "table_schema": "hr", "table_name": "other", "privilege_type": "MODIFY", "is_grantable": "NO"}),
            ],
        )
        .await
        .unwrap();
    let out = env.exec_key("investigate.privileges", json!({"securable": "main.hr.salaries"}), "k5").await.unwrap();
    let grantees: Vec<&str> =
        out.output["rows"].as_array().unwrap().iter().map(|r| r["grantee"].as_str().unwrap()).collect();
    assert_eq!(grantees, vec!["hr-team", VICTIM]);
    assert_eq!(out.output["rows"][0]["securable"], "main.hr.salaries");

    let e =
        env.exec_key("investigate.privileges", json!({"securable": "main.hr.salaries; DROP"}), "k6").await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = env.exec_key("investigate.ip_activity", json!({"ip": "not-an-ip"}), "k7").await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
}

#[tokio::test]
async fn statements_need_a_warehouse_and_a_configured_connector() {
    let env = Env::with(|c, _| {
        c["workspaces"]["main"].as_object_mut().unwrap().remove("warehouse_id");
    })
    .await;
    let e = env.dbx.run_statement(None, "SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code(), "no_warehouse");
    let e = crate::Databricks::unconfigured().run_statement(None, "SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code(), "not_configured");
    let p = SqlParam::typed("t", SqlType::Timestamp, Some("yesterday"));
    assert_eq!(p.unwrap_err().code(), "invalid_input");
}
