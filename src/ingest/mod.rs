//! Getting alerts in: source formats, sender authentication, and durable intake.
//!
//! Intake commits in batches: whatever arrived while the previous commit was in flight goes
//! into the next transaction (group commit). A caller's future resolves only after the
//! transaction holding its alert committed, so every 2xx still means "stored" — batching only
//! shares one fsync between many alerts.

pub mod audit_files;
pub mod auth;
pub mod commands;
pub mod detections;
pub mod formats;

use crate::alert::Alert;
use crate::engine::Engine;
use crate::store::{Accepted, NewAlert, Route, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Largest batch committed in one transaction.
const MAX_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("cannot store the alert: {0}")]
    Store(#[from] StoreError),
    #[error("floodgate is shutting down")]
    Closed,
}

struct Submission {
    alert: NewAlert,
    reply: oneshot::Sender<Result<Accepted, Arc<StoreError>>>,
}

/// The intake queue; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Submission>,
    engine: Engine,
}

impl Intake {
    /// Starts the batcher task.
    pub fn start(engine: Engine) -> Intake {
        let (tx, rx) = mpsc::channel::<Submission>(8192);
        tokio::spawn(batcher(engine.clone(), rx));
        Intake { tx, engine }
    }

    /// Decides where an alert goes (no I/O), without storing it.
    pub fn route(&self, alert: &Alert) -> NewAlert {
        route(&self.engine, alert)
    }

    /// Stores one alert (opening or joining an incident, starting a run) and returns what
    /// happened once it is committed.
    pub async fn submit(&self, alert: &Alert) -> Result<Accepted, IntakeError> {
        let new = self.route(alert);
        let (reply, rx) = oneshot::channel();
        self.tx.send(Submission { alert: new, reply }).await.map_err(|_| IntakeError::Closed)?;
        let accepted = rx
            .await
            .map_err(|_| IntakeError::Closed)?
            .map_err(|e| IntakeError::Store(StoreError::Invalid(e.to_string())))?;
        self.engine.metrics().alert(&alert.source, accepted.outcome());
        if accepted.run_id.is_some() && !accepted.duplicate {
            self.engine.wake();
        }
        Ok(accepted)
    }
}

/// Routes an alert to the highest-priority playbook that takes it.
pub fn route(engine: &Engine, alert: &Alert) -> NewAlert {
    let body = alert.to_json();
    let route = engine.playbooks().route(&body).map(|(pb, key)| {
        let (window_ms, group_key) = match key {
            Ok(key) => (pb.group.as_ref().map_or(0, |g| g.window.as_millis() as i64), key),
            Err(e) => {
                // The group key could not be rendered for this alert: the same playbook runs it on
                // its own incident.
                tracing::warn!(alert = %alert.id, playbook = %pb.id, error = %e, "group key template failed; the alert opens its own incident");
                (0, None)
            }
        };
        Route {
            playbook_id: pb.id.clone(),
            playbook_hash: pb.hash.clone(),
            playbook_path: pb.path.clone(),
            playbook_source: pb.source.clone(),
            window_ms,
            group_key,
            vars: serde_json::Value::Object(pb.vars.clone()),
        }
    });
    NewAlert {
        id: alert.id.clone(),
        source: alert.source.clone(),
        external_id: alert.external_id.clone(),
        rule: alert.rule.clone(),
        title: alert.title.clone(),
        severity: alert.severity.as_str().to_string(),
        confidence: alert.confidence,
        body,
        route,
    }
}

async fn batcher(engine: Engine, mut rx: mpsc::Receiver<Submission>) {
    let mut batch: Vec<Submission> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) => break,
            }
        }
        // Moved, not cloned: an alert's body can be large.
        let (alerts, replies): (Vec<NewAlert>, Vec<_>) = batch.drain(..).map(|s| (s.alert, s.reply)).unzip();
        let result = engine.store().accept_alerts(&alerts, engine.now()).await;
        match result {
            Ok(accepted) => {
                for (reply, a) in replies.into_iter().zip(accepted) {
                    let _ = reply.send(Ok(a));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, alerts = alerts.len(), "cannot commit a batch of alerts");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
