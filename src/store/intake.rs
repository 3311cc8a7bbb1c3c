//! Accepting alerts: dedup, grouping into incidents, and starting runs — in one transaction per
//! batch, so a webhook answers 2xx only for what is committed.

use super::audit::{NewEvent, append_events};
use super::{Arg, Dialect, Result, Store, Tx, new_id};
use crate::args;
use crate::playbook::Severity;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
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

impl Accepted {
    /// The outcome as the `floodgate_alerts_received_total` metric counts it.
    pub fn outcome(&self) -> &'static str {
        if self.duplicate {
            "duplicate"
        } else if self.joined {
            "grouped"
        } else if self.run_id.is_some() {
            "accepted"
        } else {
            "unmatched"
        }
    }

    /// Whether a run started, so workers should look for work.
    pub fn started_run(&self) -> bool {
        self.outcome() == "accepted"
    }
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
///
/// The outcome is exactly that of taking the alerts one by one in order (a duplicate of an
/// earlier alert of the batch is a duplicate; an alert joins an incident an earlier one opened;
/// the audit entries follow the batch's order), but the database sees a fixed handful of
/// statements per batch instead of several per alert: on PostgreSQL the advisory locks of all
/// alert and group keys, taken in sorted order; one duplicate lookup; one lookup of the open
/// incidents of the batch's group keys; then multi-row inserts of incidents, playbook versions,
/// runs, alerts and audit entries (hash-chained in memory), and one update of the incidents
/// that existing alerts joined.
pub async fn accept_alerts_in(tx: &mut Tx, batch: &[NewAlert], now: i64) -> Result<Vec<Accepted>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    lock_batch(tx, batch).await?;
    let mut known = existing_alerts(tx, batch).await?;
    let mut open = open_incidents(tx, batch, &known, now).await?;

    let mut plan = Plan::default();
    let mut out = Vec::with_capacity(batch.len());
    for a in batch {
        let key = (a.source.clone(), a.external_id.clone());
        if let Some(first) = known.get(&key) {
            out.push(Accepted { duplicate: true, joined: false, ..first.clone() });
            continue;
        }
        let accepted = plan.accept(a, &mut open, now);
        known.insert(key, accepted.clone());
        out.push(accepted);
    }
    plan.write(tx, now).await?;
    Ok(out)
}

/// On PostgreSQL, locks every alert key (`alert:SOURCE:ID`) and group key
/// (`group:PLAYBOOK:KEY`) of the batch, sorted, so that two processes cannot both store the same
/// alert or both open an incident for the same group — and cannot deadlock on each other.
async fn lock_batch(tx: &mut Tx, batch: &[NewAlert]) -> Result<()> {
    if tx.dialect() != Dialect::Postgres {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(batch.len() * 2);
    for a in batch {
        keys.push(format!("alert:{}:{}", a.source, a.external_id));
        if let Some(r) = &a.route
            && let Some(k) = &r.group_key
        {
            keys.push(format!("group:{}:{k}", r.playbook_id));
        }
    }
    tx.lock_keys(&keys).await
}

/// The alerts of the batch that are already stored, by (source, external id). (A join with the
/// `VALUES` list rather than `(source, external_id) IN (VALUES …)`: SQLite plans the latter as
/// a scan of the whole table.)
async fn existing_alerts(tx: &mut Tx, batch: &[NewAlert]) -> Result<HashMap<(String, String), Accepted>> {
    let mut seen = HashSet::with_capacity(batch.len());
    let mut keys = Vec::with_capacity(batch.len() * 2);
    for a in batch {
        if seen.insert((a.source.as_str(), a.external_id.as_str())) {
            keys.extend(args![&a.source, &a.external_id]);
        }
    }
    let rows = tx
        .all_rows(
            "SELECT a.id, a.source, a.external_id, a.incident_id, a.run_id FROM (VALUES ",
            ") AS v JOIN alerts AS a ON a.source = v.column1 AND a.external_id = v.column2",
            2,
            &keys,
        )
        .await?;
    let mut known = HashMap::with_capacity(rows.len());
    for row in rows {
        known.insert(
            (row.text("source")?, row.text("external_id")?),
            Accepted {
                alert_id: row.text("id")?,
                incident_id: row.text("incident_id")?,
                run_id: row.opt_text("run_id")?,
                duplicate: true,
                joined: false,
            },
        );
    }
    Ok(known)
}

/// The incident an alert of a group would join: the latest open one of its playbook and key.
#[derive(Debug, Clone)]
struct OpenIncident {
    id: String,
    opened_at: i64,
    /// Where its changes go: an index into `Plan::incidents` (opened by this batch) or into
    /// `Plan::updates` (already stored), once an alert joined it.
    slot: Option<Slot>,
    /// Its severity as stored, while no alert of this batch joined it.
    severity: String,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    New(usize),
    Stored(usize),
}

type GroupKey = (String, String);

/// For each group key of the batch's new alerts, the latest open incident that any of them
/// could join (opened within the longest window of the batch); each alert checks its own
/// window afterwards — the same answer as one `ORDER BY opened_at DESC LIMIT 1` per alert.
async fn open_incidents(
    tx: &mut Tx,
    batch: &[NewAlert],
    known: &HashMap<(String, String), Accepted>,
    now: i64,
) -> Result<HashMap<GroupKey, OpenIncident>> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    let mut window = 0;
    for a in batch {
        if known.contains_key(&(a.source.clone(), a.external_id.clone())) {
            continue;
        }
        if let Some(r) = &a.route
            && let Some(k) = &r.group_key
        {
            window = window.max(r.window_ms);
            if seen.insert((r.playbook_id.as_str(), k.as_str())) {
                keys.push((r.playbook_id.as_str(), k.as_str()));
            }
        }
    }
    let mut open: HashMap<GroupKey, OpenIncident> = HashMap::new();
    if keys.is_empty() {
        return Ok(open);
    }
    // The bound is in every row so that the statement's only parameters are the list's.
    let since = now.saturating_sub(window);
    let keys: Vec<Arg> = keys.into_iter().flat_map(|(p, k)| args![p, k, since]).collect();
    let rows = tx
        .all_rows(
            "SELECT i.id, i.playbook_id, i.group_key, i.severity, i.opened_at FROM (VALUES ",
            ") AS v JOIN incidents AS i ON i.playbook_id = v.column1 AND i.group_key = v.column2 WHERE i.state = 'open' AND i.opened_at >= v.column3",
            3,
            &keys,
        )
        .await?;
    for row in rows {
        let found = OpenIncident {
            id: row.text("id")?,
            opened_at: row.int("opened_at")?,
            slot: None,
            severity: row.text("severity")?,
        };
        let key = (row.text("playbook_id")?, row.text("group_key")?);
        match open.get(&key) {
            Some(o) if o.opened_at >= found.opened_at => {}
            _ => {
                open.insert(key, found);
            }
        }
    }
    Ok(open)
}

struct IncidentRow {
    id: String,
    playbook_id: Option<String>,
    group_key: Option<String>,
    title: String,
    severity: String,
    alert_count: i64,
}

/// What a batch writes, gathered in memory in the batch's order.
#[derive(Default)]
struct Plan {
    incidents: Vec<IncidentRow>,
    /// Stored incidents that alerts joined: (id, alerts added, new severity).
    updates: Vec<(String, i64, String)>,
    versions: Vec<Arg>,
    version_seen: HashSet<String>,
    runs: Vec<Arg>,
    alerts: Vec<Arg>,
    events: Vec<NewEvent>,
}

impl Plan {
    /// Decides what happens to a new (not duplicate) alert and records the rows to write.
    fn accept(&mut self, a: &NewAlert, open: &mut HashMap<GroupKey, OpenIncident>, now: i64) -> Accepted {
        let Some(route) = &a.route else {
            // No playbook wants it: still an incident, so a person sees it.
            let incident_id = new_id("inc");
            self.open_incident(&incident_id, None, None, a);
            self.alert(a, &incident_id, None, now);
            self.event(now, &incident_id, None, "alert_received", alert_event(a, "no playbook matched"));
            return Accepted { alert_id: a.id.clone(), incident_id, run_id: None, duplicate: false, joined: false };
        };

        let group = route.group_key.as_ref().map(|k| (route.playbook_id.clone(), k.clone()));
        if let Some(key) = &group
            && let Some(inc) = open.get_mut(key)
            && inc.opened_at >= now - route.window_ms
        {
            let incident_id = inc.id.clone();
            match inc.slot {
                Some(Slot::New(i)) => {
                    let row = &mut self.incidents[i];
                    row.alert_count += 1;
                    row.severity = max_severity(&row.severity, &a.severity);
                }
                Some(Slot::Stored(i)) => {
                    let update = &mut self.updates[i];
                    update.1 += 1;
                    update.2 = max_severity(&update.2, &a.severity);
                }
                None => {
                    inc.slot = Some(Slot::Stored(self.updates.len()));
                    self.updates.push((incident_id.clone(), 1, max_severity(&inc.severity, &a.severity)));
                }
            }
            self.alert(a, &incident_id, None, now);
            self.event(now, &incident_id, None, "alert_received", alert_event(a, "joined the open incident"));
            return Accepted { alert_id: a.id.clone(), incident_id, run_id: None, duplicate: false, joined: true };
        }

        let incident_id = new_id("inc");
        let run_id = new_id("run");
        let slot = self.open_incident(&incident_id, Some(&route.playbook_id), route.group_key.as_deref(), a);
        if let Some(key) = group {
            // Opened now, so the latest open incident of its key for the rest of the batch.
            open.insert(
                key,
                OpenIncident { id: incident_id.clone(), opened_at: now, slot: Some(slot), severity: String::new() },
            );
        }
        if self.version_seen.insert(route.playbook_hash.clone()) {
            self.versions.extend(args![
                &route.playbook_hash,
                &route.playbook_id,
                &route.playbook_path,
                route.playbook_source.as_ref(),
                now
            ]);
        }
        self.runs.extend(args![
            &run_id,
            &incident_id,
            &a.id,
            &route.playbook_id,
            &route.playbook_hash,
            "queued",
            now,
            0i64,
            route.vars.to_string(),
            0i64,
            now,
            now
        ]);
        self.alert(a, &incident_id, Some(&run_id), now);
        self.event(now, &incident_id, None, "alert_received", alert_event(a, "opened an incident"));
        self.event(
            now,
            &incident_id,
            Some(&run_id),
            "run_queued",
            json!({"playbook": route.playbook_id, "version": route.playbook_hash}),
        );
        Accepted { alert_id: a.id.clone(), incident_id, run_id: Some(run_id), duplicate: false, joined: false }
    }

    fn open_incident(&mut self, id: &str, playbook: Option<&str>, group_key: Option<&str>, a: &NewAlert) -> Slot {
        self.incidents.push(IncidentRow {
            id: id.to_string(),
            playbook_id: playbook.map(str::to_string),
            group_key: group_key.map(str::to_string),
            title: a.title.clone(),
            severity: a.severity.clone(),
            alert_count: 1,
        });
        Slot::New(self.incidents.len() - 1)
    }

    fn alert(&mut self, a: &NewAlert, incident_id: &str, run_id: Option<&str>, now: i64) {
        self.alerts.extend(args![
            &a.id,
            &a.source,
            &a.external_id,
            incident_id,
            run_id,
            now,
            a.rule.as_deref(),
            &a.title,
            &a.severity,
            a.confidence,
            a.body.to_string()
        ]);
    }

    fn event(&mut self, at: i64, incident_id: &str, run_id: Option<&str>, kind: &'static str, data: Value) {
        self.events.push(NewEvent {
            at,
            incident_id: Some(incident_id.to_string()),
            run_id: run_id.map(str::to_string),
            step_id: None,
            kind,
            data,
        });
    }

    /// Writes everything, parents before the rows that reference them.
    async fn write(self, tx: &mut Tx, now: i64) -> Result<()> {
        let mut incidents = Vec::with_capacity(self.incidents.len() * 9);
        for i in self.incidents {
            incidents.extend(args![
                i.id,
                i.playbook_id,
                i.group_key,
                i.title,
                i.severity,
                "open",
                i.alert_count,
                now,
                now
            ]);
        }
        tx.exec_rows(
            "INSERT INTO incidents (id, playbook_id, group_key, title, severity, state, alert_count, opened_at, last_alert_at) VALUES ",
            "",
            9,
            incidents,
        )
        .await?;
        tx.exec_rows(
            "INSERT INTO playbook_versions (hash, playbook_id, path, source, created_at) VALUES ",
            " ON CONFLICT (hash) DO NOTHING",
            5,
            self.versions,
        )
        .await?;
        tx.exec_rows(
            "INSERT INTO runs (id, incident_id, alert_id, playbook_id, playbook_hash, state, run_after, cursor, vars, epoch, created_at, updated_at) VALUES ",
            "",
            12,
            self.runs,
        )
        .await?;
        tx.exec_rows(
            "INSERT INTO alerts (id, source, external_id, incident_id, run_id, received_at, rule, title, severity, confidence, body) VALUES ",
            "",
            11,
            self.alerts,
        )
        .await?;
        let mut updates = Vec::with_capacity(self.updates.len() * 4);
        for (id, n, severity) in self.updates {
            updates.extend(args![id, n, severity, now]);
        }
        // VALUES columns are named column1, column2, … on both databases.
        tx.exec_rows(
            "UPDATE incidents SET alert_count = alert_count + v.column2, severity = v.column3, last_alert_at = v.column4 FROM (VALUES ",
            ") AS v WHERE incidents.id = v.column1",
            4,
            updates,
        )
        .await?;
        append_events(tx, self.events).await
    }
}

fn alert_event(a: &NewAlert, outcome: &str) -> Value {
    json!({"alert_id": a.id, "source": a.source, "external_id": a.external_id, "title": a.title, "severity": a.severity, "outcome": outcome})
}
