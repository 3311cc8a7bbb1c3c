//! Accepting alerts: dedup, grouping into incidents, and starting runs — in one transaction per
//! batch, so a webhook answers 2xx only for what is committed.

use super::{Result, Store, Tx, append_event, new_id};
use crate::args;
use crate::playbook::Severity;
use serde_json::{Value, json};
use std::sync::Arc;

/// Where an alert goes, decided (without I/O) before it reaches the database.
#[derive(Debug, Clone)]
pub struct Route {
    pub playbook_id: String,
    pub playbook_hash: String,
    pub playbook_path: String,
    pub playbook_source: Arc<str>,
    /// The rendered group key, when the playbook groups alerts.
    pub group_key: Option<String>,
    pub window_ms: i64,
    /// Initial run variables.
    pub vars: Value,
}

/// A normalized alert ready to be stored.
#[derive(Debug, Clone)]
pub struct NewAlert {
    pub id: String,
    pub source: String,
    pub external_id: String,
    pub rule: Option<String>,
    pub title: String,
    pub severity: String,
    pub confidence: f64,
    /// The normalized alert as templates see it.
    pub body: Value,
    pub route: Option<Route>,
}

/// What intake answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Accepted {
    pub alert_id: String,
    pub incident_id: String,
    pub run_id: Option<String>,
    pub duplicate: bool,
    /// True when the alert joined an open incident (and so started no run).
    #[serde(skip)]
    pub joined: bool,
}

fn max_severity(a: &str, b: &str) -> String {
    let (sa, sb) = (Severity::parse(a), Severity::parse(b));
    match (sa, sb) {
        (Some(x), Some(y)) if y > x => b.to_string(),
        (None, Some(_)) => b.to_string(),
        _ => a.to_string(),
    }
}

impl Store {
    /// Stores a batch of alerts in one transaction and returns what happened to each, in order.
    /// Alerts in the same batch see each other (a duplicate of an earlier one is a duplicate).
    pub async fn accept_alerts(&self, batch: &[NewAlert], now: i64) -> Result<Vec<Accepted>> {
        let mut tx = self.begin_durable().await?;
        let out = accept_alerts_in(&mut tx, batch, now).await?;
        crate::failpoint!("intake.before_commit");
        tx.commit().await?;
        Ok(out)
    }
}

/// Stores a batch of alerts inside the caller's transaction (begun with `begin_durable`), so
/// other writes can commit atomically with them — e.g. a detection's watermark.
pub async fn accept_alerts_in(tx: &mut Tx, batch: &[NewAlert], now: i64) -> Result<Vec<Accepted>> {
    let mut out = Vec::with_capacity(batch.len());
    for alert in batch {
        out.push(accept_one(tx, alert, now).await?);
    }
    Ok(out)
}

async fn accept_one(tx: &mut Tx, a: &NewAlert, now: i64) -> Result<Accepted> {
    tx.lock_key(&format!("alert:{}:{}", a.source, a.external_id)).await?;
    if let Some(row) = tx
        .opt(
            "SELECT id, incident_id, run_id FROM alerts WHERE source = $1 AND external_id = $2",
            args![&a.source, &a.external_id],
        )
        .await?
    {
        return Ok(Accepted {
            alert_id: row.text("id")?,
            incident_id: row.text("incident_id")?,
            run_id: row.opt_text("run_id")?,
            duplicate: true,
            joined: false,
        });
    }

    let Some(route) = &a.route else {
        // No playbook wants it: still an incident, so a person sees it.
        let incident_id = new_id("inc");
        insert_incident(tx, &incident_id, None, None, a, now).await?;
        insert_alert(tx, a, &incident_id, None, now).await?;
        append_event(tx, now, Some(&incident_id), None, None, "alert_received", &alert_event(a, "no playbook matched"))
            .await?;
        return Ok(Accepted { alert_id: a.id.clone(), incident_id, run_id: None, duplicate: false, joined: false });
    };

    if let Some(key) = &route.group_key {
        tx.lock_key(&format!("group:{}:{key}", route.playbook_id)).await?;
        if let Some(row) = tx
            .opt(
                "SELECT id, severity FROM incidents WHERE playbook_id = $1 AND group_key = $2 AND state = 'open' AND opened_at >= $3 ORDER BY opened_at DESC LIMIT 1",
                args![&route.playbook_id, key, now - route.window_ms],
            )
            .await?
        {
            let incident_id = row.text("id")?;
            let severity = max_severity(&row.text("severity")?, &a.severity);
            tx.exec(
                "UPDATE incidents SET alert_count = alert_count + 1, last_alert_at = $1, severity = $2 WHERE id = $3",
                args![now, severity, &incident_id],
            )
            .await?;
            insert_alert(tx, a, &incident_id, None, now).await?;
            append_event(tx, now, Some(&incident_id), None, None, "alert_received", &alert_event(a, "joined the open incident")).await?;
            return Ok(Accepted { alert_id: a.id.clone(), incident_id, run_id: None, duplicate: false, joined: true });
        }
    }

    let incident_id = new_id("inc");
    let run_id = new_id("run");
    insert_incident(tx, &incident_id, Some(&route.playbook_id), route.group_key.as_deref(), a, now).await?;
    tx.exec(
        "INSERT INTO playbook_versions (hash, playbook_id, path, source, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING",
        args![&route.playbook_hash, &route.playbook_id, &route.playbook_path, route.playbook_source.as_ref(), now],
    )
    .await?;
    tx.exec(
        "INSERT INTO runs (id, incident_id, alert_id, playbook_id, playbook_hash, state, run_after, cursor, vars, epoch, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'queued', $6, 0, $7, 0, $6, $6)",
        args![&run_id, &incident_id, &a.id, &route.playbook_id, &route.playbook_hash, now, route.vars.to_string()],
    )
    .await?;
    insert_alert(tx, a, &incident_id, Some(&run_id), now).await?;
    append_event(tx, now, Some(&incident_id), None, None, "alert_received", &alert_event(a, "opened an incident"))
        .await?;
    append_event(
        tx,
        now,
        Some(&incident_id),
        Some(&run_id),
        None,
        "run_queued",
        &json!({"playbook": route.playbook_id, "version": route.playbook_hash}),
    )
    .await?;
    Ok(Accepted { alert_id: a.id.clone(), incident_id, run_id: Some(run_id), duplicate: false, joined: false })
}

fn alert_event(a: &NewAlert, outcome: &str) -> Value {
    json!({"alert_id": a.id, "source": a.source, "external_id": a.external_id, "title": a.title, "severity": a.severity, "outcome": outcome})
}

async fn insert_incident(
    tx: &mut Tx,
    id: &str,
    playbook: Option<&str>,
    group_key: Option<&str>,
    a: &NewAlert,
    now: i64,
) -> Result<()> {
    tx.exec(
        "INSERT INTO incidents (id, playbook_id, group_key, title, severity, state, alert_count, opened_at, last_alert_at) VALUES ($1, $2, $3, $4, $5, 'open', 1, $6, $6)",
        args![id, playbook, group_key, &a.title, &a.severity, now],
    )
    .await?;
    Ok(())
}

async fn insert_alert(tx: &mut Tx, a: &NewAlert, incident_id: &str, run_id: Option<&str>, now: i64) -> Result<()> {
    tx.exec(
        "INSERT INTO alerts (id, source, external_id, incident_id, run_id, received_at, rule, title, severity, confidence, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        args![&a.id, &a.source, &a.external_id, incident_id, run_id, now, a.rule.as_deref(), &a.title, &a.severity, a.confidence, a.body.to_string()],
    )
    .await?;
    Ok(())
}
