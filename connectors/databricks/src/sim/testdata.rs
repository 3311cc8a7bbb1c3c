//! Audit events of our own for tests, in the `system.access.audit` row shape: a quiet day plus
//! one account-takeover-and-exfiltration story, so queries have something true to find.

use serde_json::{Value, json};

pub const WORKSPACE_ID: &str = "1111222233334444";
pub const ATTACKER_IP: &str = "203.0.113.7";
pub const VICTIM: &str = "mallory@corp.example";

/// One row. `email` `None` is a failed login (Databricks logs no identity then).
pub fn event(
    time: &str,
    service: &str,
    action: &str,
    ip: &str,
    email: Option<&str>,
    params: Value,
    status: i64,
) -> Value {
    json!({
        "account_id": "0a1b2c3d-0000-4000-8000-000000000001",
        "workspace_id": WORKSPACE_ID,
        "version": "2.0",
        "event_time": time,
        "event_date": &time[..10],
        "source_ip_address": ip,
        "user_agent": "test-agent/1.0",
        "session_id": null,
        "user_identity": {"email": email, "subject_name": null},
        "service_name": service,
        "action_name": action,
        "request_id": format!("req-{time}-{action}"),
        "request_params": params,
        "response": {"status_code": status, "error_message": if status >= 400 { json!("denied") } else { Value::Null }, "result": null},
        "audit_level": "WORKSPACE_LEVEL",
        "event_id": format!("ev-{time}-{action}"),
        "identity_metadata": {"run_by": null, "run_as": null},
    })
}

/// 19 rows: 4 benign, then 9 failed logins, one success, a long-lived token, a table read and
/// two downloads by the victim account from the attacker's address, and a read from another
/// address with a port.
pub fn story() -> Vec<Value> {
    let mut v = vec![
        event(
            "2026-04-01T08:00:00.000+00:00",
            "accounts",
            "samlLogin",
            "198.51.100.20",
            Some("ann@corp.example"),
            json!({"user": "ann@corp.example"}),
            200,
        ),
        event(
            "2026-04-01T08:05:00.000+00:00",
            "unityCatalog",
            "getTable",
            "198.51.100.20",
            Some("ann@corp.example"),
            json!({"full_name_arg": "main.sales.orders"}),
            200,
        ),
        event(
            "2026-04-01T09:00:00.000+00:00",
            "clusters",
            "start",
            "198.51.100.21",
            Some("ben@corp.example"),
            json!({"cluster_id": "0401-000000-abc"}),
            200,
        ),
        event(
            "2026-04-01T09:30:00.000+00:00",
            "accounts",
            "samlLogin",
            "198.51.100.21",
            Some("ben@corp.example"),
            json!({"user": "ben@corp.example"}),
            200,
        ),
    ];
    for k in 0..9 {
        v.push(event(
            &format!("2026-04-01T22:00:{:02}.000+00:00", k * 5),
            "accounts",
            "login",
            ATTACKER_IP,
            None,
            json!({"user": VICTIM}),
            401,
        ));
    }
    v.extend([
        event(
            "2026-04-01T22:01:00.000+00:00",
            "accounts",
            "login",
            ATTACKER_IP,
            Some(VICTIM),
            json!({"user": VICTIM}),
            200,
        ),
        // A token valid for 400 days.
        event(
            "2026-04-01T22:02:00.000+00:00",
            "accounts",
            "generateDbToken",
            ATTACKER_IP,
            Some(VICTIM),
            json!({"tokenExpirationTime": "1809640920000", "tokenHash": "abc123"}),
            200,
        ),
        event(
            "2026-04-01T22:03:00.000+00:00",
            "unityCatalog",
            "generateTemporaryTableCredential",
            ATTACKER_IP,
            Some(VICTIM),
            json!({"table_full_name": "main.hr.salaries", "operation": "READ"}),
            200,
        ),
        event(
            "2026-04-01T22:04:00.000+00:00",
            "notebook",
            "downloadLargeResults",
            ATTACKER_IP,
            Some(VICTIM),
            json!({"notebookId": "42"}),
            200,
        ),
        event(
            "2026-04-01T22:05:00.000+00:00",
            "databrickssql",
            "downloadQueryResult",
            ATTACKER_IP,
            Some(VICTIM),
            json!({"fileType": "csv"}),
            200,
        ),
        event(
            "2026-04-01T22:06:00.000+00:00",
            "unityCatalog",
            "getTable",
            "203.0.113.7:51234",
            Some(VICTIM),
            json!({"full_name_arg": "main.sales.orders"}),
            200,
        ),
    ]);
    v
}

pub fn story_jsonl() -> String {
    story().iter().map(|e| format!("{e}\n")).collect()
}
