//! Detection-shaped SQL (our own, written from the logic summarised in the Databricks
//! reference) run through the connector on the simulator: the subset the simulator documents
//! has to carry real detections, not only the investigation helpers.

use super::Env;
use crate::SqlParam;
use crate::sim::testdata::{ATTACKER_IP, VICTIM, story_jsonl};
use serde_json::{Value, json};

async fn env() -> Env {
    let env = Env::new().await;
    env.sim.load_audit_events(&story_jsonl()).await.unwrap();
    env
}

fn window() -> Vec<SqlParam> {
    vec![
        SqlParam::timestamp("since", time::macros::datetime!(2026-04-01 00:00 UTC)),
        SqlParam::timestamp("until", time::macros::datetime!(2026-04-02 00:00 UTC)),
    ]
}

async fn rows(env: &Env, sql: &str, params: &[SqlParam]) -> Vec<serde_json::Map<String, Value>> {
    env.dbx.run_statement(None, sql, params).await.unwrap_or_else(|e| panic!("{e}\n{sql}")).rows
}

#[tokio::test]
async fn account_takeover_success_after_failures_from_the_same_address() {
    let env = env().await;
    let sql = "
        WITH failures AS (
          SELECT request_params.user AS user_name, source_ip_address AS ip, count(*) AS failures,
                 max(event_time) AS last_failure
          FROM system.access.audit
          WHERE service_name = 'accounts' AND action_name IN ('login', 'samlLogin')
            AND response.status_code IN (401, 403) AND event_time >= :since AND event_time < :until
          GROUP BY request_params.user, source_ip_address
          HAVING count(*) >= 5
        )
        SELECT s.event_id, s.event_time, f.user_name, f.ip, f.failures
        FROM system.access.audit s
        JOIN failures f ON lower(s.user_identity.email) = lower(f.user_name) AND s.source_ip_address = f.ip
        WHERE s.action_name IN ('login', 'samlLogin') AND s.response.status_code = 200
          AND s.event_time > f.last_failure AND s.event_time < f.last_failure + INTERVAL 1 HOUR";
    let r = rows(&env, sql, &window()).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["user_name"], VICTIM);
    assert_eq!(r[0]["ip"], ATTACKER_IP);
    assert_eq!(r[0]["failures"], 9);
    assert_eq!(r[0]["event_time"], "2026-04-01T22:01:00.000Z");
}

#[tokio::test]
async fn bulk_downloads_per_user_hour_over_a_threshold() {
    let env = env().await;
    let sql = "
        SELECT user_identity.email AS email, date_trunc('HOUR', event_time) AS hour, count(*) AS downloads,
               array_join(collect_list(action_name), ',') AS actions
        FROM system.access.audit
        WHERE event_time >= :since AND event_time < :until AND (
              (service_name = 'notebook' AND action_name IN ('downloadPreviewResults', 'downloadLargeResults'))
           OR (service_name = 'databrickssql' AND action_name = 'downloadQueryResult' AND request_params.fileType <> 'arrows')
           OR (service_name = 'workspace' AND action_name = 'workspaceExport' AND request_params.workspaceExportFormat != 'SOURCE'))
        GROUP BY 1, 2
        HAVING count(*) >= :threshold";
    let mut params = window();
    params.push(SqlParam::int("threshold", 2));
    let r = rows(&env, sql, &params).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["downloads"], 2);
    assert_eq!(r[0]["hour"], "2026-04-01T22:00:00.000Z");
    let mut actions: Vec<&str> = r[0]["actions"].as_str().unwrap().split(',').collect();
    actions.sort_unstable();
    assert_eq!(actions, vec!["downloadLargeResults", "downloadQueryResult"]);
}

#[tokio::test]
async fn long_lived_tokens_and_time_arithmetic() {
    let env = env().await;
    let sql = "
        SELECT event_id, user_identity.email AS email,
               round((CAST(request_params.tokenExpirationTime AS BIGINT) / 1000 - unix_timestamp(event_time)) / 86400, 1) AS lifetime_days,
               timestamp_millis(CAST(request_params.tokenExpirationTime AS BIGINT)) AS expires,
               timestampdiff(HOUR, event_time, timestamp_millis(CAST(request_params.tokenExpirationTime AS BIGINT))) AS hours
        FROM system.access.audit
        WHERE action_name = 'generateDbToken'
          AND CAST(request_params.tokenExpirationTime AS BIGINT) / 1000 - unix_timestamp(event_time) > 72 * 3600";
    let r = rows(&env, sql, &[]).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["lifetime_days"], 400.0);
    assert_eq!(r[0]["expires"], "2027-05-06T22:02:00.000Z");
    assert_eq!(r[0]["hours"], 9600);
}

#[tokio::test]
async fn ports_days_filters_windows_and_case() {
    let env = env().await;
    let r = rows(
        &env,
        "SELECT split_part(source_ip_address, ':', 1) AS ip, count(*) AS n FROM system.access.audit
         WHERE source_ip_address RLIKE '^203[.]' GROUP BY split_part(source_ip_address, ':', 1)",
        &[],
    )
    .await;
    assert_eq!(r, vec![json!({"ip": ATTACKER_IP, "n": 15}).as_object().unwrap().clone()]);

    let r = rows(
        &env,
        "SELECT date_format(event_time, 'yyyy-MM-dd') AS day, count(*) FILTER (WHERE response.status_code >= 400) AS failures,
                count(*) AS total, count(DISTINCT coalesce(user_identity.email, request_params.user)) AS principals
         FROM system.access.audit GROUP BY date_format(event_time, 'yyyy-MM-dd')",
        &[],
    )
    .await;
    assert_eq!(r[0]["day"], "2026-04-01");
    assert_eq!(
        (r[0]["failures"].clone(), r[0]["total"].clone(), r[0]["principals"].clone()),
        (json!(9), json!(19), json!(3))
    );

    let r = rows(
        &env,
        "SELECT * FROM (
           SELECT action_name, event_time, row_number() OVER (PARTITION BY action_name ORDER BY event_time DESC) AS n
           FROM system.access.audit WHERE action_name ILIKE '%LOGIN%' AND action_name NOT IN ('samlLogin')
         ) latest WHERE n = 1",
        &[],
    )
    .await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["event_time"], "2026-04-01T22:01:00.000Z", "types come through SELECT * of a subquery");

    let r = rows(
        &env,
        "SELECT CASE WHEN response.status_code BETWEEN 400 AND 499 THEN 'denied' ELSE 'ok' END AS outcome, count(*) AS n
         FROM system.access.audit WHERE event_time >= TIMESTAMP '2026-04-01 21:00:00'
         GROUP BY 1 ORDER BY outcome",
        &[],
    )
    .await;
    assert_eq!(
        r,
        vec![
            json!({"outcome": "denied", "n": 9}).as_object().unwrap().clone(),
            json!({"outcome": "ok", "n": 6}).as_object().unwrap().clone(),
        ]
    );

    let r = rows(
        &env,
        "SELECT count(*) AS n FROM system.access.audit
         WHERE event_time > current_timestamp() - INTERVAL 36500 DAYS AND event_date >= date_sub(current_date(), 36500)
           AND request_params['user'] IS NOT NULL AND startswith(action_name, 'log') AND NOT contains(action_name, 'x')",
        &[],
    )
    .await;
    assert_eq!(r[0]["n"], 10);
}

#[tokio::test]
async fn the_shared_sample_answers_the_reference_detections_when_present() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/samples/audit-events.jsonl");
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!("SKIPPED: {path} not found");
        return;
    };
    let env = Env::new().await;
    env.sim.load_audit_events(&text).await.unwrap();
    let failed = rows(
        &env,
        "SELECT ifnull(user_identity.email, request_params.user) AS user_name, count(*) AS total
         FROM system.access.audit
         WHERE action_name IN ('aadBrowserLogin', 'aadTokenLogin', 'certLogin', 'jwtLogin', 'login', 'oidcBrowserLogin', 'samlLogin', 'tokenLogin')
           AND response.status_code IN (401, 403)
         GROUP BY ifnull(user_identity.email, request_params.user), date_trunc('HOUR', event_time) HAVING count(*) > 1",
        &[],
    )
    .await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["total"].as_i64().unwrap() > 1);
    let conf = rows(
        &env,
        "SELECT request_params.workspaceConfKeys AS k, request_params.workspaceConfValues AS v
         FROM system.access.audit WHERE service_name = 'workspace' AND action_name = 'workspaceConfEdit'
           AND request_params.workspaceConfKeys = 'enableVerboseAuditLogs' AND request_params.workspaceConfValues = 'false'",
        &[],
    )
    .await;
    assert_eq!(conf.len(), 1);
    let admins = rows(
        &env,
        "SELECT user_identity.email AS actor, request_params.targetUserName AS target FROM system.access.audit
         WHERE action_name IN ('setAdmin', 'addPrincipalToGroup') AND lower(request_params.targetGroupName) = 'admins'",
        &[],
    )
    .await;
    assert_eq!(admins.len(), 1);
}
