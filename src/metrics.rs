//! Counters and a histogram, rendered in the Prometheus text format for `/metrics`.
//! Kept in-process and dependency-free: a handful of labelled counters is all floodgate needs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    total: u64,
}

#[derive(Default)]
pub struct Metrics {
    alerts: Mutex<BTreeMap<(String, String), u64>>,
    runs_finished: Mutex<BTreeMap<String, u64>>,
    connector_errors: Mutex<BTreeMap<(String, String), u64>>,
    auto_approvals: Mutex<u64>,
    steps: Mutex<Histogram>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// An alert reached intake; `outcome` is `accepted`, `duplicate`, `grouped`, `unauthorized`, ...
    pub fn alert(&self, source: &str, outcome: &str) {
        *lock(&self.alerts).entry((source.to_string(), outcome.to_string())).or_default() += 1;
    }
    pub fn run_finished(&self, state: &str) {
        *lock(&self.runs_finished).entry(state.to_string()).or_default() += 1;
    }
    pub fn connector_error(&self, connector: &str, code: &str) {
        *lock(&self.connector_errors).entry((connector.to_string(), code.to_string())).or_default() += 1;
    }
    pub fn auto_approved(&self) {
        *lock(&self.auto_approvals) += 1;
    }
    pub fn step_duration(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut h = lock(&self.steps);
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += s;
        h.total += 1;
    }

    /// Prometheus text exposition. `run_states` are current counts from the database.
    pub fn render(&self, run_states: &[(String, i64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP floodgate_alerts_received_total Alerts received, by source and outcome.");
        let _ = writeln!(out, "# TYPE floodgate_alerts_received_total counter");
        for ((source, outcome), n) in lock(&self.alerts).iter() {
            let _ = writeln!(
                out,
                "floodgate_alerts_received_total{{source=\"{}\",outcome=\"{}\"}} {n}",
                escape(source),
                escape(outcome)
            );
        }
        let _ = writeln!(out, "# HELP floodgate_runs Runs in the database, by state.");
        let _ = writeln!(out, "# TYPE floodgate_runs gauge");
        for (state, n) in run_states {
            let _ = writeln!(out, "floodgate_runs{{state=\"{}\"}} {n}", escape(state));
        }
        let _ = writeln!(out, "# HELP floodgate_runs_finished_total Runs this process finished, by final state.");
        let _ = writeln!(out, "# TYPE floodgate_runs_finished_total counter");
        for (state, n) in lock(&self.runs_finished).iter() {
            let _ = writeln!(out, "floodgate_runs_finished_total{{state=\"{}\"}} {n}", escape(state));
        }
        let _ = writeln!(out, "# HELP floodgate_connector_errors_total Connector errors, by connector and error code.");
        let _ = writeln!(out, "# TYPE floodgate_connector_errors_total counter");
        for ((c, code), n) in lock(&self.connector_errors).iter() {
            let _ = writeln!(
                out,
                "floodgate_connector_errors_total{{connector=\"{}\",code=\"{}\"}} {n}",
                escape(c),
                escape(code)
            );
        }
        let _ = writeln!(
            out,
            "# HELP floodgate_auto_approvals_total Steps approved automatically by an auto_approve rule."
        );
        let _ = writeln!(out, "# TYPE floodgate_auto_approvals_total counter");
        let _ = writeln!(out, "floodgate_auto_approvals_total {}", *lock(&self.auto_approvals));
        let h = lock(&self.steps);
        let _ = writeln!(out, "# HELP floodgate_step_duration_seconds Time connectors took per step attempt.");
        let _ = writeln!(out, "# TYPE floodgate_step_duration_seconds histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "floodgate_step_duration_seconds_bucket{{le=\"{b}\"}} {}", h.counts[i]);
        }
        let _ = writeln!(out, "floodgate_step_duration_seconds_bucket{{le=\"+Inf\"}} {}", h.total);
        let _ = writeln!(out, "floodgate_step_duration_seconds_sum {}", h.sum);
        let _ = writeln!(out, "floodgate_step_duration_seconds_count {}", h.total);
        out
    }
}
