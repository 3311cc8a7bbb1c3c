//! What the responder console stores and reads: sessions (by the SHA-256 of their id, never
//! the id itself), failed sign-ins for throttling, used approval-link nonces, and the filtered
//! lists its pages show.
//!
//! Filters are assembled from fixed SQL fragments; what a person typed only ever travels as a
//! bound argument (and a text search escapes `LIKE` wildcards), never as SQL.

use super::{Arg, IncidentRow, Result, RunSummary, Store, StoreError};
use crate::args;
use serde::Serialize;

/// A console session as stored.
#[derive(Debug, Clone, Serialize)]
pub struct WebSession {
    pub id_hash: String,
    pub identity: String,
    pub csrf: String,
    /// `password` or `token`.
    pub method: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// Filters of the incidents page.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub state: Option<String>,
    pub severity: Option<String>,
    pub playbook: Option<String>,
    /// Matched against the title and the id, case-insensitively.
    pub text: Option<String>,
    pub limit: i64,
}

/// Filters of the runs page.
#[derive(Debug, Clone, Default)]
pub struct ConsoleRunFilter {
    pub state: Option<String>,
    pub severity: Option<String>,
    pub playbook: Option<String>,
    pub incident: Option<String>,
    /// Matched against the incident title and the run id, case-insensitively.
    pub text: Option<String>,
    pub limit: i64,
}

/// One alert of an incident.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: String,
    pub source: String,
    pub external_id: String,
    pub run_id: Option<String>,
    pub received_at: i64,
    pub rule: Option<String>,
    pub title: String,
    pub severity: String,
    pub confidence: f64,
    pub body: serde_json::Value,
}

/// The use of an approval link.
#[derive(Debug, Clone, Serialize)]
pub struct LinkUse {
    pub approval_id: String,
    pub identity: String,
    pub decision: String,
    pub used_at: i64,
}

/// `%text%` for `LIKE ... ESCAPE '\'`, lower-cased, with the user's wildcards taken literally.
fn like_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn add_eq(sql: &mut String, args: &mut Vec<Arg>, col: &str, val: &Option<String>) {
    if let Some(v) = val.as_deref().filter(|v| !v.is_empty()) {
        args.push(Arg::from(v));
        sql.push_str(&format!(" AND {col} = ${}", args.len()));
    }
}

fn add_text(sql: &mut String, args: &mut Vec<Arg>, cols: &[&str], val: &Option<String>) {
    if let Some(v) = val.as_deref().filter(|v| !v.trim().is_empty()) {
        args.push(Arg::from(like_pattern(v)));
        let n = args.len();
        let ors: Vec<String> = cols.iter().map(|c| format!("LOWER({c}) LIKE ${n} ESCAPE '\\'")).collect();
        sql.push_str(&format!(" AND ({})", ors.join(" OR ")));
    }
}

impl Store {
    pub async fn insert_web_session(&self, s: &WebSession) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec(
            "INSERT INTO web_sessions (id_hash, identity, csrf, method, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![&s.id_hash, &s.identity, &s.csrf, &s.method, s.created_at, s.last_seen_at, s.expires_at],
        )
        .await?;
        // Housekeeping rides along with sign-ins, which are rare: no background task needed.
        tx.exec("DELETE FROM web_sessions WHERE expires_at < $1", args![s.created_at]).await?;
        tx.commit().await
    }

    pub async fn web_session(&self, id_hash: &str) -> Result<Option<WebSession>> {
        self.opt(
            "SELECT id_hash, identity, csrf, method, created_at, last_seen_at, expires_at FROM web_sessions WHERE id_hash = $1",
            args![id_hash],
        )
        .await?
        .map(|r| {
            Ok(WebSession {
                id_hash: r.text("id_hash")?,
                identity: r.text("identity")?,
                csrf: r.text("csrf")?,
                method: r.text("method")?,
                created_at: r.int("created_at")?,
                last_seen_at: r.int("last_seen_at")?,
                expires_at: r.int("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn touch_web_session(&self, id_hash: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec("UPDATE web_sessions SET last_seen_at = $1 WHERE id_hash = $2", args![now, id_hash]).await?;
        tx.commit().await
    }

    pub async fn delete_web_session(&self, id_hash: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec("DELETE FROM web_sessions WHERE id_hash = $1", args![id_hash]).await?;
        tx.commit().await
    }

    /// Failed sign-ins for `key` since `since`.
    pub async fn login_failures_since(&self, key: &str, since: i64) -> Result<i64> {
        self.opt("SELECT COUNT(*) AS n FROM web_login_failures WHERE key = $1 AND at >= $2", args![key, since])
            .await?
            .map_or(Ok(0), |r| r.int("n"))
    }

    /// Records a failed sign-in and forgets those older than `forget_before`.
    pub async fn record_login_failure(&self, key: &str, now: i64, forget_before: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec("INSERT INTO web_login_failures (key, at) VALUES ($1, $2)", args![key, now]).await?;
        tx.exec("DELETE FROM web_login_failures WHERE at < $1", args![forget_before]).await?;
        tx.commit().await
    }

    pub async fn clear_login_failures(&self, key: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.exec("DELETE FROM web_login_failures WHERE key = $1", args![key]).await?;
        tx.commit().await
    }

    /// Records that a link is being used. `Ok(false)` when its nonce was used already (also
    /// when another request claims it at the same moment: the primary key decides).
    pub async fn claim_link_nonce(&self, nonce: &str, u: &LinkUse) -> Result<bool> {
        let mut tx = self.begin_durable().await?;
        let inserted = tx
            .exec(
                "INSERT INTO web_link_uses (nonce, approval_id, identity, decision, used_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (nonce) DO NOTHING",
                args![nonce, &u.approval_id, &u.identity, &u.decision, u.used_at],
            )
            .await?;
        tx.commit().await?;
        Ok(inserted == 1)
    }

    /// Gives a claimed nonce back (the decision could not be recorded at all: the database was
    /// unavailable or the approval vanished), so the person can try again.
    pub async fn release_link_nonce(&self, nonce: &str) -> Result<()> {
        let mut tx = self.begin_durable().await?;
        tx.exec("DELETE FROM web_link_uses WHERE nonce = $1", args![nonce]).await?;
        tx.commit().await
    }

    pub async fn link_use(&self, nonce: &str) -> Result<Option<LinkUse>> {
        self.opt("SELECT approval_id, identity, decision, used_at FROM web_link_uses WHERE nonce = $1", args![nonce])
            .await?
            .map(|r| {
                Ok(LinkUse {
                    approval_id: r.text("approval_id")?,
                    identity: r.text("identity")?,
                    decision: r.text("decision")?,
                    used_at: r.int("used_at")?,
                })
            })
            .transpose()
    }

    /// Incidents, newest activity first.
    pub async fn list_incidents(&self, f: &IncidentFilter) -> Result<Vec<IncidentRow>> {
        let mut sql = format!("SELECT {} FROM incidents WHERE 1 = 1", IncidentRow::COLUMNS);
        let mut args: Vec<Arg> = Vec::new();
        add_eq(&mut sql, &mut args, "state", &f.state);
        add_eq(&mut sql, &mut args, "severity", &f.severity);
        add_eq(&mut sql, &mut args, "playbook_id", &f.playbook);
        add_text(&mut sql, &mut args, &["title", "id"], &f.text);
        args.push(Arg::from(if f.limit > 0 { f.limit } else { 100 }));
        sql.push_str(&format!(" ORDER BY last_alert_at DESC, id DESC LIMIT ${}", args.len()));
        self.all_dynamic(sql, args).await?.iter().map(IncidentRow::from_row).collect()
    }

    /// Runs with the console's filters, newest first.
    pub async fn console_runs(&self, f: &ConsoleRunFilter) -> Result<Vec<RunSummary>> {
        let mut sql = String::from(
            "SELECT r.id, r.incident_id, r.playbook_id, r.state, r.wait_kind, r.wait_ref, r.cursor, r.error, r.created_at, r.updated_at, r.finished_at, i.title, i.severity \
             FROM runs r JOIN incidents i ON i.id = r.incident_id WHERE 1 = 1",
        );
        let mut args: Vec<Arg> = Vec::new();
        add_eq(&mut sql, &mut args, "r.state", &f.state);
        add_eq(&mut sql, &mut args, "i.severity", &f.severity);
        add_eq(&mut sql, &mut args, "r.playbook_id", &f.playbook);
        add_eq(&mut sql, &mut args, "r.incident_id", &f.incident);
        add_text(&mut sql, &mut args, &["i.title", "r.id"], &f.text);
        args.push(Arg::from(if f.limit > 0 { f.limit } else { 100 }));
        sql.push_str(&format!(" ORDER BY r.created_at DESC, r.id DESC LIMIT ${}", args.len()));
        self.all_dynamic(sql, args)
            .await?
            .iter()
            .map(|r| {
                let waiting_for = match (r.opt_text("wait_kind")?, r.opt_text("wait_ref")?) {
                    (Some(k), Some(id)) => Some(format!("{k} {id}")),
                    (Some(k), None) => Some(k),
                    _ => None,
                };
                Ok(RunSummary {
                    id: r.text("id")?,
                    incident_id: r.text("incident_id")?,
                    playbook_id: r.text("playbook_id")?,
                    state: r.text("state")?,
                    waiting_for,
                    cursor: r.int("cursor")?,
                    error: r.opt_text("error")?,
                    created_at: r.int("created_at")?,
                    updated_at: r.int("updated_at")?,
                    finished_at: r.opt_int("finished_at")?,
                    title: r.text("title")?,
                    severity: r.text("severity")?,
                })
            })
            .collect()
    }

    /// The alerts of an incident, oldest first (bodies as stored: redact before showing).
    pub async fn incident_alerts(&self, incident_id: &str) -> Result<Vec<AlertRow>> {
        self.all(
            "SELECT id, source, external_id, run_id, received_at, rule, title, severity, confidence, body FROM alerts WHERE incident_id = $1 ORDER BY received_at, id LIMIT 500",
            args![incident_id],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(AlertRow {
                id: r.text("id")?,
                source: r.text("source")?,
                external_id: r.text("external_id")?,
                run_id: r.opt_text("run_id")?,
                received_at: r.int("received_at")?,
                rule: r.opt_text("rule")?,
                title: r.text("title")?,
                severity: r.text("severity")?,
                confidence: r.float("confidence")?,
                body: r.json("body")?,
            })
        })
        .collect()
    }

    /// Distinct playbook ids seen on incidents (for the filter menus).
    pub async fn incident_playbooks(&self) -> Result<Vec<String>> {
        self.all(
            "SELECT DISTINCT playbook_id FROM incidents WHERE playbook_id IS NOT NULL ORDER BY playbook_id LIMIT 200",
            vec![],
        )
        .await?
        .iter()
        .map(|r| r.text("playbook_id"))
        .collect()
    }

    /// How many approvals are pending (the navigation badge).
    pub async fn pending_approval_count(&self) -> Result<i64> {
        self.opt("SELECT COUNT(*) AS n FROM approvals WHERE state = 'pending'", vec![])
            .await?
            .map_or(Ok(0), |r| r.int("n"))
    }

    /// The incident of an approval, for pages that start from one.
    pub async fn approval_incident(&self, approval_id: &str) -> Result<IncidentRow> {
        let Some(a) = self.approval(approval_id).await? else {
            return Err(StoreError::NotFound(format!("approval {approval_id}")));
        };
        self.incident(&a.incident_id).await?.ok_or_else(|| StoreError::NotFound(format!("incident {}", a.incident_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn text_search_takes_wildcards_literally() {
        assert_eq!(like_pattern(" Admin_Login 100% "), "%admin\\_login 100\\%%");
        assert_eq!(like_pattern("a\\b"), "%a\\\\b%");
    }
}
