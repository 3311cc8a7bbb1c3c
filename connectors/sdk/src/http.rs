//! The one HTTP layer every connector uses.
//!
//! It does the short, in-request retries (backon): 429 and the retryable 5xx statuses, and
//! network errors, with exponential backoff and jitter, honouring `Retry-After` (seconds or an
//! HTTP date). Other 4xx are never retried. When the vendor asks for a longer pause than
//! `max_wait`, it stops and hands the wait to the engine, which retries durably (`run_after`)
//! instead of holding a worker.
//!
//! Requests that are not idempotent (a POST that creates something) are only replayed when the
//! vendor certainly did not process them (429, or a connection that never opened); anything
//! else is returned to the connector, which reconciles on the next durable attempt.
//!
//! A `Request` also describes itself as a `PlannedRequest` with secrets redacted, so `plan()`
//! and `execute()` are built from the same value and cannot drift apart.

use crate::{ActionError, PlannedRequest, Secret};
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::Value;
use std::sync::{Arc, Once};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How hard to try within one call.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total tries, including the first.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured by sleeping in-request; longer waits go back to
    /// the engine as a retryable error carrying the wait.
    pub max_wait: Duration,
    /// Statuses worth retrying. Databricks retries 429 and 503; most vendors 429 and 5xx.
    pub retry_statuses: Vec<u16>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_wait: Duration::from_secs(15),
            retry_statuses: vec![429, 500, 502, 503, 504],
        }
    }
}

/// A client-side rate limit (token bucket), so floodgate stays under a vendor's published limit
/// instead of learning it from 429s.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter { per_second: per_second.max(0.001), burst, state: Mutex::new((burst, Instant::now())) }
    }

    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut st = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(st.1).as_secs_f64() * self.per_second;
                st.0 = (st.0 + refill).min(self.burst);
                st.1 = now;
                if st.0 >= 1.0 {
                    st.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - st.0) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
}

#[derive(Clone)]
struct HeaderEntry {
    name: String,
    value: String,
    sensitive: bool,
}

impl std::fmt::Debug for HeaderEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = if self.sensitive { "[redacted]" } else { &self.value };
        write!(f, "{}: {v}", self.name)
    }
}

/// May the layer send this request again after a failure whose effect is unknown?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Repeating it has the same effect as sending it once (GET, PUT, DELETE, PATCH to a value).
    Safe,
    /// Repeat only when the vendor certainly did not process it (429, connection refused).
    OnlyUnprocessed,
}

/// One request, built once and used both to plan and to send.
#[derive(Clone)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<HeaderEntry>,
    body: Body,
    replay: Replay,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.planned();
        f.debug_struct("Request")
            .field("method", &p.method)
            .field("url", &p.url)
            .field("headers", &self.headers)
            .field("body", &p.body)
            .finish()
    }
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        let replay = if method == Method::POST { Replay::OnlyUnprocessed } else { Replay::Safe };
        Request { method, url: url.into(), headers: Vec::new(), body: Body::None, replay, timeout: None }
    }
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::POST, url)
    }
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::PUT, url)
    }
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::PATCH, url)
    }
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::DELETE, url)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push(HeaderEntry { name: name.to_string(), value: value.into(), sensitive: false });
        self
    }
    /// A header whose value is a secret: sent, but redacted in plans and errors.
    pub fn secret_header(mut self, name: &str, value: &Secret) -> Self {
        self.headers.push(HeaderEntry { name: name.to_string(), value: value.expose().to_string(), sensitive: true });
        self
    }
    pub fn bearer(self, token: &Secret) -> Self {
        let v = Secret::new(format!("Bearer {}", token.expose()));
        self.secret_header("Authorization", &v)
    }
    pub fn basic(self, user: &str, password: &Secret) -> Self {
        let v = Secret::new(format!("Basic {}", base64_encode(format!("{user}:{}", password.expose()).as_bytes())));
        self.secret_header("Authorization", &v)
    }
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }
    pub fn form(mut self, pairs: Vec<(String, String)>) -> Self {
        self.body = Body::Form(pairs);
        self
    }
    pub fn replay(mut self, replay: Replay) -> Self {
        self.replay = replay;
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
    pub fn method(&self) -> &Method {
        &self.method
    }
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn json_body(&self) -> Option<&Value> {
        match &self.body {
            Body::Json(v) => Some(v),
            _ => None,
        }
    }

    /// This request as `plan()` shows it: method, URL and body, with secret-looking body fields
    /// redacted. Form bodies are shown as an object; form values under secret keys are redacted.
    pub fn planned(&self) -> PlannedRequest {
        let body = match &self.body {
            Body::None => None,
            Body::Json(v) => Some(crate::text::redact_json(v)),
            Body::Form(pairs) => Some(crate::text::redact_json(&Value::Object(
                pairs.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect(),
            ))),
        };
        PlannedRequest { method: self.method.to_string(), url: self.url.clone(), body }
    }
}

/// A vendor's answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ActionError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ActionError::permanent(
                "bad_response",
                format!(
                    "unexpected response body (HTTP {}): {e}: {}",
                    self.status,
                    crate::text::truncate(&self.text(), 300)
                ),
            )
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// `Retry-After` as a duration: integer seconds or an HTTP date.
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?)
    }
    /// Ok for 2xx; otherwise an `ActionError` classified by status, with the message the
    /// vendor-specific `describe` extracts from the body.
    pub fn error_for_status(self, describe: impl Fn(&Response) -> String) -> Result<Self, ActionError> {
        if self.is_success() {
            return Ok(self);
        }
        Err(ActionError::from_status(self.status, describe(&self), self.retry_after()))
    }
}

/// Parses `Retry-After`: delay-seconds, or an HTTP date (IMF-fixdate, RFC 2822 style).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let when = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    let delta = when - now;
    Some(if delta.is_negative() { Duration::ZERO } else { Duration::try_from(delta).unwrap_or(Duration::ZERO) })
}

fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

/// Why one try failed, inside the retry loop.
enum TryFailure {
    /// The vendor answered with a status worth retrying.
    Status(Response),
    /// The connection never opened: the vendor cannot have processed the request.
    Connect(String),
    /// Timed out or broke after sending: the effect is unknown.
    Network(String),
}

static INSTALL_RING: Once = Once::new();

/// Makes ring the process-wide rustls provider (floodgate uses ring only; no aws-lc, no OpenSSL).
pub fn install_crypto_provider() {
    INSTALL_RING.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A vendor's HTTP client: connection pool, retry policy, optional rate limit.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    policy: RetryPolicy,
    limiter: Option<Arc<RateLimiter>>,
    default_timeout: Duration,
}

impl HttpClient {
    pub fn new(policy: RetryPolicy) -> Self {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("floodgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        HttpClient { client, policy, limiter: None, default_timeout: Duration::from_secs(30) }
    }

    pub fn with_rate_limit(mut self, per_second: f64, burst: u32) -> Self {
        self.limiter = Some(Arc::new(RateLimiter::new(per_second, burst)));
        self
    }

    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.default_timeout = t;
        self
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Sends the request, retrying what the policy allows. Returns the final answer whatever
    /// its status (use `Response::error_for_status`); network failures become retryable errors.
    pub async fn send(&self, req: &Request) -> Result<Response, ActionError> {
        let policy = &self.policy;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.base_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        let max_wait = policy.max_wait;
        let result = (|| self.try_once(req))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|f: &TryFailure| match f {
                TryFailure::Status(r) => {
                    let replayable = req.replay == Replay::Safe || r.status == 429;
                    replayable && r.retry_after().is_none_or(|d| d <= max_wait)
                }
                TryFailure::Connect(_) => true,
                TryFailure::Network(_) => req.replay == Replay::Safe,
            })
            .adjust(|f: &TryFailure, dur| match f {
                // Honour the vendor's pause when it is longer than our own backoff.
                TryFailure::Status(r) => match (r.retry_after(), dur) {
                    (Some(ra), Some(d)) => Some(ra.max(d)),
                    (_, d) => d,
                },
                _ => dur,
            })
            .notify(|f: &TryFailure, dur| {
                let why = match f {
                    TryFailure::Status(r) => format!("HTTP {}", r.status),
                    TryFailure::Connect(e) | TryFailure::Network(e) => e.clone(),
                };
                tracing::debug!(method = %req.method, url = %req.url, %why, retry_in = ?dur, "retrying request");
            })
            .await;
        match result {
            Ok(resp) => Ok(resp),
            Err(TryFailure::Status(resp)) => Ok(resp),
            Err(TryFailure::Connect(e)) => {
                Err(ActionError::retryable("network", format!("{} {}: cannot connect: {e}", req.method, req.url)))
            }
            Err(TryFailure::Network(e)) => {
                Err(ActionError::retryable("network", format!("{} {}: {e}", req.method, req.url)))
            }
        }
    }

    async fn try_once(&self, req: &Request) -> Result<Response, TryFailure> {
        if let Some(l) = &self.limiter {
            l.acquire().await;
        }
        let mut b =
            self.client.request(req.method.clone(), &req.url).timeout(req.timeout.unwrap_or(self.default_timeout));
        for h in &req.headers {
            b = b.header(&h.name, &h.value);
        }
        b = match &req.body {
            Body::None => b,
            Body::Json(v) => b.json(v),
            Body::Form(pairs) => b.form(pairs),
        };
        let resp = match b.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(TryFailure::Connect(describe_reqwest(&e))),
            Err(e) => return Err(TryFailure::Network(describe_reqwest(&e))),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| TryFailure::Network(describe_reqwest(&e)))?;
        let out = Response { status, headers, body };
        if self.policy.retry_statuses.contains(&status) {
            return Err(TryFailure::Status(out));
        }
        Ok(out)
    }
}

/// reqwest's errors can carry the URL; ours never carry secrets because secrets are never in URLs
/// (connectors put them in headers), but keep the text short and free of the request itself.
fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body error"
    } else {
        "request failed"
    };
    let mut src = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() { kind.to_string() } else { format!("{kind}: {detail}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicU32, Ordering};

    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    fn fast_policy() -> RetryPolicy {
        RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        }
    }

    #[tokio::test]
    async fn retries_429_then_succeeds_honouring_retry_after() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let url = serve(axum::Router::new().route(
            "/x",
            axum::routing::get(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) < 2 {
                        (StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "0")], "slow").into_response()
                    } else {
                        "ok".into_response()
                    }
                }
            }),
        ))
        .await;
        let c = HttpClient::new(fast_policy());
        let r = c.send(&Request::get(format!("{url}/x"))).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn never_retries_other_4xx() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let url = serve(axum::Router::new().route(
            "/x",
            axum::routing::get(move || {
                let h = h.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::BAD_REQUEST, "bad")
                }
            }),
        ))
        .await;
        let c = HttpClient::new(fast_policy());
        let r = c.send(&Request::get(format!("{url}/x"))).await.unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let e = r.error_for_status(|r| r.text()).unwrap_err();
        assert!(!e.is_retryable());
    }

    #[tokio::test]
    async fn post_is_not_replayed_after_a_500_but_is_after_a_429() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let url = serve(axum::Router::new().route(
            "/x",
            axum::routing::post(move || {
                let h = h.clone();
                async move {
                    match h.fetch_add(1, Ordering::SeqCst) {
                        0 => (StatusCode::TOO_MANY_REQUESTS, "slow").into_response(),
                        _ => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                    }
                }
            }),
        ))
        .await;
        let c = HttpClient::new(fast_policy());
        let r = c.send(&Request::post(format!("{url}/x"))).await.unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(hits.load(Ordering::SeqCst), 2, "429 replayed once, 500 not replayed");
        assert!(r.error_for_status(|r| r.text()).unwrap_err().is_retryable());
    }

    #[tokio::test]
    async fn long_retry_after_is_handed_back_to_the_engine() {
        let url = serve(axum::Router::new().route(
            "/x",
            axum::routing::get(|| async { (StatusCode::TOO_MANY_REQUESTS, [("Retry-After", "120")], "later") }),
        ))
        .await;
        let c = HttpClient::new(fast_policy());
        let r = c.send(&Request::get(format!("{url}/x"))).await.unwrap();
        let e = r.error_for_status(|r| r.text()).unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(120)));
    }

    #[tokio::test]
    async fn connection_refused_is_retryable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let c = HttpClient::new(fast_policy());
        let e = c.send(&Request::post(format!("http://{addr}/x"))).await.unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(e.code(), "network");
    }

    #[test]
    fn plans_redact_secret_headers_and_body_fields() {
        let r = Request::post("https://h/x")
            .bearer(&Secret::new("tok"))
            .json(serde_json::json!({"name": "n", "client_secret": "s"}));
        let p = r.planned();
        assert_eq!(p.method, "POST");
        assert_eq!(p.body.unwrap()["client_secret"], "[redacted]");
        assert!(!format!("{r:?}").contains("tok"), "Debug must not print secret headers");
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_spaces_requests() {
        let l = RateLimiter::new(10.0, 1);
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(390) && took < Duration::from_millis(600), "{took:?}");
    }
}
