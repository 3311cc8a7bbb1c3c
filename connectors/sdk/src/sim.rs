//! A small framework for vendor simulators (feature `sim`).
//!
//! Each vendor crate builds an axum `Router` that behaves like the vendor (paths, payloads,
//! errors, pagination, state) and wraps it with `instrument`, which records every call and
//! injects faults: 429 with `Retry-After` (a fixed number of times, every n-th call, or above a
//! rate), 5xx, delays and hangs. The error body of an injected fault comes from the vendor's
//! own renderer, so a fault looks exactly like the vendor's real error.
//!
//! Nothing in the product depends on this module; tests and the demo do.

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A running simulator on 127.0.0.1.
pub struct SimServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Serves `router` on an ephemeral port of 127.0.0.1.
    pub async fn start(router: Router) -> std::io::Result<SimServer> {
        Self::start_on("127.0.0.1:0".parse().expect("valid address"), router).await
    }

    /// Serves `router` on a chosen address (to restart a simulator on the same port).
    pub async fn start_on(addr: SocketAddr, router: Router) -> std::io::Result<SimServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(SimServer { addr, shutdown: Some(tx), task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request a simulator received.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Lower-cased header names.
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
    /// True when an injected fault answered instead of the simulator.
    pub faulted: bool,
    /// The HTTP status the simulator (or the fault) answered.
    pub status: u16,
}

impl RecordedCall {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
    /// Form-encoded body as pairs (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every call a simulator received, in order.
#[derive(Clone, Default)]
pub struct CallLog(Arc<Mutex<Vec<RecordedCall>>>);

impl CallLog {
    pub fn calls(&self) -> Vec<RecordedCall> {
        lock(&self.0).clone()
    }
    /// Calls with this method whose path matches exactly.
    pub fn matching(&self, method: &str, path: &str) -> Vec<RecordedCall> {
        lock(&self.0).iter().filter(|c| c.method.eq_ignore_ascii_case(method) && c.path == path).cloned().collect()
    }
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.matching(method, path).len()
    }
    /// Calls that the simulator itself answered (not an injected fault) with a 2xx status.
    pub fn successful(&self, method: &str, path: &str) -> Vec<RecordedCall> {
        self.matching(method, path).into_iter().filter(|c| !c.faulted && (200..300).contains(&c.status)).collect()
    }
    pub fn len(&self) -> usize {
        lock(&self.0).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn clear(&self) {
        lock(&self.0).clear();
    }
}

/// What an injected fault does.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (the vendor renderer writes the body); `retry_after` in seconds.
    Status { status: u16, retry_after: Option<u64> },
    /// Wait, then let the simulator answer normally.
    Delay(Duration),
    /// Never answer (the client times out).
    Hang,
}

#[derive(Debug, Clone)]
struct FaultRule {
    method: Option<String>,
    path_prefix: Option<String>,
    remaining: Option<u32>,
    every_nth: Option<u32>,
    seen: u32,
    fault: Fault,
}

struct RateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    retry_after: u64,
}

#[derive(Default)]
struct FaultState {
    rules: Vec<FaultRule>,
    rate: Option<RateLimit>,
}

/// Renders a vendor's error response for an injected status.
pub type ErrorRenderer = Arc<dyn Fn(u16, Option<u64>) -> Response + Send + Sync>;

/// Faults to inject, shared between a test and its simulator.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    render: ErrorRenderer,
}

impl Faults {
    /// `render` writes the vendor's error body for a status (e.g. Databricks'
    /// `{"error_code":"REQUEST_LIMIT_EXCEEDED","message":...}`).
    pub fn new(render: ErrorRenderer) -> Self {
        Faults { state: Arc::default(), render }
    }

    /// Faults with a plain-text body, for vendors whose error body does not matter.
    pub fn plain() -> Self {
        Self::new(Arc::new(|status, retry_after| {
            let mut r = (
                axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                format!("injected fault: HTTP {status}"),
            )
                .into_response();
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", s.to_string().parse().expect("digits"));
            }
            r
        }))
    }

    fn add(
        &self,
        method: Option<&str>,
        path_prefix: Option<&str>,
        remaining: Option<u32>,
        every_nth: Option<u32>,
        fault: Fault,
    ) {
        lock(&self.state).rules.push(FaultRule {
            method: method.map(str::to_ascii_uppercase),
            path_prefix: path_prefix.map(str::to_string),
            remaining,
            every_nth,
            seen: 0,
            fault,
        });
    }

    /// The next `n` calls (matching `path_prefix`, if given) get `status`.
    pub fn fail_next(&self, n: u32, status: u16, path_prefix: Option<&str>) {
        self.add(None, path_prefix, Some(n), None, Fault::Status { status, retry_after: None });
    }

    /// The next `n` calls get 429 with `Retry-After: retry_after` seconds.
    pub fn rate_limit_next(&self, n: u32, retry_after: u64, path_prefix: Option<&str>) {
        self.add(None, path_prefix, Some(n), None, Fault::Status { status: 429, retry_after: Some(retry_after) });
    }

    /// Every `nth` call (matching `path_prefix`) gets 429 with `Retry-After`, until cleared.
    pub fn rate_limit_every(&self, nth: u32, retry_after: u64, path_prefix: Option<&str>) {
        self.add(
            None,
            path_prefix,
            None,
            Some(nth.max(1)),
            Fault::Status { status: 429, retry_after: Some(retry_after) },
        );
    }

    /// Calls above `per_second` (with `burst`) get 429 with `Retry-After: retry_after`.
    pub fn rate_limit(&self, per_second: f64, burst: u32, retry_after: u64) {
        lock(&self.state).rate = Some(RateLimit {
            per_second,
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: Instant::now(),
            retry_after,
        });
    }

    /// The next `n` calls (matching) are delayed.
    pub fn delay_next(&self, n: u32, delay: Duration, path_prefix: Option<&str>) {
        self.add(None, path_prefix, Some(n), None, Fault::Delay(delay));
    }

    /// The next `n` calls (matching) never get an answer.
    pub fn hang_next(&self, n: u32, path_prefix: Option<&str>) {
        self.add(None, path_prefix, Some(n), None, Fault::Hang);
    }

    /// A fully specified rule: method (any if `None`), path prefix, how many times (forever if
    /// `None`).
    pub fn inject(&self, method: Option<&str>, path_prefix: Option<&str>, times: Option<u32>, fault: Fault) {
        self.add(method, path_prefix, times, None, fault);
    }

    pub fn clear(&self) {
        let mut st = lock(&self.state);
        st.rules.clear();
        st.rate = None;
    }

    fn pick(&self, method: &str, path: &str) -> Option<Fault> {
        let mut st = lock(&self.state);
        if let Some(rl) = st.rate.as_mut() {
            let now = Instant::now();
            rl.tokens = (rl.tokens + now.duration_since(rl.last).as_secs_f64() * rl.per_second).min(rl.burst);
            rl.last = now;
            if rl.tokens >= 1.0 {
                rl.tokens -= 1.0;
            } else {
                return Some(Fault::Status { status: 429, retry_after: Some(rl.retry_after) });
            }
        }
        let mut chosen = None;
        for rule in st.rules.iter_mut() {
            if rule.method.as_deref().is_some_and(|m| m != method)
                || rule.path_prefix.as_deref().is_some_and(|p| !path.starts_with(p))
                || rule.remaining == Some(0)
            {
                continue;
            }
            rule.seen += 1;
            if let Some(n) = rule.every_nth
                && rule.seen % n != 0
            {
                continue;
            }
            if let Some(r) = rule.remaining.as_mut() {
                *r -= 1;
            }
            chosen = Some(rule.fault.clone());
            break;
        }
        st.rules.retain(|r| r.remaining != Some(0));
        chosen
    }
}

#[derive(Clone)]
struct Instrument {
    log: CallLog,
    faults: Faults,
}

/// Wraps a simulator router: records every call in `log` and applies `faults` first.
pub fn instrument(router: Router, log: CallLog, faults: Faults) -> Router {
    router.layer(axum::middleware::from_fn_with_state(Instrument { log, faults }, record_and_fault))
}

const MAX_SIM_BODY: usize = 16 * 1024 * 1024;

async fn record_and_fault(State(inst): State<Instrument>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_SIM_BODY).await.unwrap_or_default();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let headers =
        parts.headers.iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let mut call = RecordedCall {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_string),
        headers,
        body: bytes.clone(),
        faulted: false,
        status: 0,
    };
    let response = match inst.faults.pick(&method, &path) {
        Some(Fault::Status { status, retry_after }) => {
            call.faulted = true;
            (inst.faults.render)(status, retry_after)
        }
        Some(Fault::Hang) => {
            call.faulted = true;
            call.status = 0;
            inst.log.0.lock().unwrap_or_else(|p| p.into_inner()).push(call);
            std::future::pending::<()>().await;
            unreachable!("pending never resolves")
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        None => next.run(Request::from_parts(parts, Body::from(bytes))).await,
    };
    call.status = response.status().as_u16();
    lock(&inst.log.0).push(call);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_calls_and_injects_vendor_shaped_faults() {
        let log = CallLog::default();
        let faults = Faults::plain();
        let router = Router::new().route("/x", axum::routing::post(|| async { "ok" }));
        let sim = SimServer::start(instrument(router, log.clone(), faults.clone())).await.unwrap();
        faults.rate_limit_next(1, 7, Some("/x"));
        let c = reqwest::Client::new();
        let r1 = c.post(format!("{}/x", sim.url())).body("{\"a\":1}").send().await.unwrap();
        assert_eq!(r1.status(), 429);
        assert_eq!(r1.headers()["retry-after"], "7");
        let r2 = c.post(format!("{}/x", sim.url())).body("{\"a\":2}").send().await.unwrap();
        assert_eq!(r2.status(), 200);
        assert_eq!(log.count("POST", "/x"), 2);
        let ok = log.successful("POST", "/x");
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].json().unwrap()["a"], 2);
        faults.rate_limit_every(2, 1, None);
        let s: Vec<u16> = futures_statuses(&c, &sim.url(), 4).await;
        assert_eq!(s, vec![200, 429, 200, 429]);
        sim.stop().await;
    }

    async fn futures_statuses(c: &reqwest::Client, url: &str, n: usize) -> Vec<u16> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(c.post(format!("{url}/x")).send().await.unwrap().status().as_u16());
        }
        out
    }
}

/// Every log line of the test process, captured by one process-wide subscriber at TRACE level,
/// for tests that prove a secret never reaches the logs.
///
/// A process-wide subscriber, not a thread-scoped one: with scoped subscribers and tests on
/// several threads, `tracing` may cache a callsite as disabled while another thread's test
/// runs, and the capturing test then misses events it should see. Tests read the whole text
/// and look for lines of their own (e.g. their simulator's URL).
pub fn captured_logs() -> &'static LogCapture {
    static LOGS: std::sync::OnceLock<LogCapture> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = LogCapture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        if tracing::subscriber::set_global_default(subscriber).is_err() {
            panic!("captured_logs: another global subscriber is installed in this test process");
        }
        logs
    })
}

/// The captured log text (see `captured_logs`).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}
