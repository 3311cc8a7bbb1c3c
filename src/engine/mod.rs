//! The engine: workers that claim runnable runs with a lease and drive them, a timer loop for
//! approval deadlines, and the entry points for decisions.
//!
//! Work is found in the database, not in memory: a worker claims runs that are queued, due for a
//! retry, or held by a lease that expired (a crashed worker). An in-process notification only
//! makes that faster. Every process sharing the database can therefore work on every run, and
//! a restart resumes each run from its last committed state.

pub mod approval;
mod context;
mod drive;
pub mod registry;
pub mod reverts;

pub use drive::{Stop, idempotency_key};
pub use registry::{Connectors, Directory, Playbooks};

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::store::{ApprovalRow, ApprovalState, Claim, Store, StoreError, StoreRefs, VoteOutcome, append_event};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {0} does not exist")]
    Missing(String),
}

/// How the engine works (from `[engine]` and `[server]`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub workers: usize,
    pub lease: Duration,
    pub poll: Duration,
    /// Where people reach floodgate, for links in messages.
    pub public_url: Option<String>,
    /// This process's worker identity (shown as the lease owner).
    pub worker_id: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 4,
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            public_url: None,
            worker_id: format!("{}-{}", hostname(), std::process::id()),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "floodgate".into())
}

/// Set when a worker's lease is lost; the driver stops at the next await point.
#[derive(Clone, Default)]
pub struct LostSignal(Arc<(AtomicBool, Notify)>);

impl LostSignal {
    pub fn set(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }
    pub fn is_set(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }
    pub async fn wait(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

pub struct Inner {
    pub store: Store,
    pub clock: SharedClock,
    pub playbooks: Arc<Playbooks>,
    pub connectors: Connectors,
    pub directory: Directory,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub(crate) refs: Arc<StoreRefs>,
    wake: Notify,
    /// Approvals changed (requested, voted on, escalated, decided): the notifier catches up.
    notices: Notify,
    stopping: AtomicBool,
}

impl Inner {
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
    pub fn shutting_down(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
    fn approval_requested(&self, a: &ApprovalRow) {
        tracing::info!(approval = %a.id, run = %a.run_id, step = %a.step_id, groups = ?a.groups, "approval requested");
        self.notices.notify_one();
    }
}

/// A handle to the engine; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(
        store: Store,
        clock: SharedClock,
        playbooks: Arc<Playbooks>,
        connectors: Connectors,
        directory: Directory,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        let refs = Arc::new(StoreRefs { store: store.clone(), clock: clock.clone() });
        Engine {
            inner: Arc::new(Inner {
                store,
                clock,
                playbooks,
                connectors,
                directory,
                settings,
                metrics,
                refs,
                wake: Notify::new(),
                notices: Notify::new(),
                stopping: AtomicBool::new(false),
            }),
        }
    }

    pub fn inner(&self) -> &Inner {
        &self.inner
    }
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    pub fn playbooks(&self) -> &Arc<Playbooks> {
        &self.inner.playbooks
    }
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }
    pub fn now(&self) -> i64 {
        self.inner.now()
    }

    /// New work exists: wake idle workers now rather than at their next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_waiters();
    }

    /// Waits until an approval changes (see `notify::Notifier`).
    pub async fn wait_notices(&self) {
        self.inner.notices.notified().await;
    }

    fn notices_changed(&self) {
        self.inner.notices.notify_one();
    }

    /// Claims and drives one runnable run, if any. Returns its id and how driving stopped.
    pub async fn step_once(&self) -> Result<Option<(String, Stop)>, EngineError> {
        let i = &self.inner;
        let lease_ms = i.settings.lease.as_millis() as i64;
        let claims = i.store.claim_runs(&i.settings.worker_id, i.now(), lease_ms, 1).await?;
        let Some(claim) = claims.into_iter().next() else {
            return Ok(None);
        };
        let stop = self.drive_claimed(&claim).await?;
        Ok(Some((claim.run_id, stop)))
    }

    /// Drives runs until none is runnable now (tests and `floodgate bench`).
    pub async fn run_until_idle(&self) -> Result<usize, EngineError> {
        let mut n = 0;
        while self.step_once().await?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    async fn drive_claimed(&self, claim: &Claim) -> Result<Stop, EngineError> {
        let lost = LostSignal::default();
        let heartbeat = {
            let store = self.inner.store.clone();
            let claim = claim.clone();
            let lost = lost.clone();
            let clock = self.inner.clock.clone();
            let lease = self.inner.settings.lease;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match store.renew_lease(&claim, clock.now_ms() + lease.as_millis() as i64).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(run = %claim.run_id, "lease lost; another worker owns the run now");
                            lost.set();
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(run = %claim.run_id, error = %e, "cannot renew lease")
                        }
                    }
                }
            })
        };
        let result = drive::drive(&self.inner, claim, &lost).await;
        heartbeat.abort();
        if let Err(e) = &result {
            tracing::error!(run = %claim.run_id, error = %e, "driving the run failed; it will be retried when its lease expires");
        }
        result
    }

    /// Starts `settings.workers` workers. They stop when `stop()` is called.
    pub fn spawn_workers(&self) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.inner.settings.workers.max(1))
            .map(|n| {
                let engine = self.clone();
                tokio::spawn(async move { engine.worker(n).await })
            })
            .collect()
    }

    async fn worker(&self, n: usize) {
        let i = &self.inner;
        while !i.shutting_down() {
            let notified = i.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.step_once().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => tracing::error!(worker = n, error = %e, "worker error"),
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(i.settings.poll) => {}
            }
        }
    }

    /// Starts the timer loop (approval deadlines and escalations).
    pub fn spawn_timers(&self) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            while !engine.inner.shutting_down() {
                if let Err(e) = engine.tick_timers().await {
                    tracing::error!(error = %e, "timer error");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    /// Handles every approval whose deadline has passed. Returns how many it handled.
    pub async fn tick_timers(&self) -> Result<usize, EngineError> {
        let i = &self.inner;
        let now = i.now();
        let due = i.store.due_approvals(now).await?;
        let mut handled = 0;
        for id in due {
            let mut tx = i.store.begin().await?;
            let Some(a) = tx.lock_approval(&id).await? else {
                continue;
            };
            if a.state != ApprovalState::Pending || a.deadline > now {
                continue; // decided meanwhile (a vote won the race)
            }
            match approval::on_deadline(&a, now, i.directory.policy.allow_approve_on_timeout) {
                approval::TimeoutAction::Decide(state, reason) => {
                    tx.decide_approval(&a, state, &reason, now).await?;
                }
                approval::TimeoutAction::Escalate { group, deadline } => {
                    let mut groups = a.groups.clone();
                    groups.push(group.clone());
                    let rest: Vec<String> = a.escalation.iter().skip(1).cloned().collect();
                    tx.exec(
                        "UPDATE approvals SET groups_json = $1, escalation_json = $2, escalation_level = escalation_level + 1, deadline = $3 WHERE id = $4 AND state = 'pending'",
                        crate::args![json!(groups).to_string(), json!(rest).to_string(), deadline, &a.id],
                    )
                    .await?;
                    tx.exec(
                        "UPDATE runs SET run_after = $1 WHERE id = $2 AND state = 'waiting' AND wait_ref = $3",
                        crate::args![deadline, &a.run_id, &a.id],
                    )
                    .await?;
                    append_event(
                        &mut tx,
                        now,
                        Some(&a.incident_id),
                        Some(&a.run_id),
                        Some(&a.step_id),
                        "approval_escalated",
                        &json!({"approval_id": a.id, "to": group, "deadline": crate::clock::rfc3339(deadline)}),
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            handled += 1;
        }
        if handled > 0 {
            self.notices_changed();
        }
        handled += self.run_due_reverts().await?;
        if handled > 0 {
            self.wake();
        }
        Ok(handled)
    }

    /// Records a vote by `identity` from `channel` (`cli`, `api`, `slack`, `web`).
    pub async fn decide(
        &self,
        approval_id: &str,
        identity: &str,
        approve: bool,
        reason: Option<&str>,
        channel: &str,
    ) -> Result<Result<VoteOutcome, String>, EngineError> {
        let now = self.now();
        let dir = &self.inner.directory;
        let decision = if approve { "approve" } else { "deny" };
        let out = self
            .inner
            .store
            .vote(approval_id, &crate::store::Ballot { identity, decision, reason, channel }, now, |a, votes| {
                approval::judge(a, votes, identity, approve, now, dir)
            })
            .await?;
        if let Ok(o) = &out
            && o.state != ApprovalState::Pending
        {
            self.wake();
            self.notices_changed();
        }
        Ok(out)
    }

    /// Stops taking new work; drivers hand their runs back at the next step boundary.
    pub async fn stop(&self, workers: Vec<tokio::task::JoinHandle<()>>, grace: Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.wake();
        let all = futures_join(workers);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("workers did not stop within {grace:?}; releasing their leases");
        }
        match self.inner.store.release_leases(&self.inner.settings.worker_id, self.now()).await {
            Ok(n) if n > 0 => tracing::info!(runs = n, "released leases"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "cannot release leases; they expire on their own")
            }
        }
    }
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}
