//! Who is asking: console sessions in cookies, the same-origin check every POST passes first,
//! and the per-session CSRF token every form carries.
//!
//! A session id is 32 random bytes; the cookie holds it, the database only its SHA-256, so a
//! leaked table signs nobody in. The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, lives
//! `SESSION_LIFETIME`, and on https is `Secure` with the `__Host-` prefix (which browsers only
//! accept from a secure origin with no Domain attribute). A session also ends after
//! `IDLE_TIMEOUT` without requests, when its identity leaves the config, or on sign-out.

use super::Console;
use super::render::PageError;
use crate::api::AppState;
use crate::store::web::WebSession;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a session lasts at most, whatever happens.
pub const SESSION_LIFETIME_MS: i64 = 12 * 3600 * 1000;
/// How long a session survives without a request (a laptop left open after the shift).
pub const IDLE_TIMEOUT_MS: i64 = 2 * 3600 * 1000;
/// `last_seen_at` is written at most this often: page views stay reads.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

pub fn session_cookie(c: &Console) -> &'static str {
    if c.secure() { "__Host-floodgate_session" } else { "floodgate_session" }
}

/// The double-submit cookie of the sign-in form (there is no session to hold a token yet).
pub fn login_cookie(c: &Console) -> &'static str {
    if c.secure() { "__Host-floodgate_login" } else { "floodgate_login" }
}

/// A `Set-Cookie` value; `max_age_secs` 0 deletes the cookie.
pub fn set_cookie(c: &Console, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if c.secure() { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}");
    // Names are constants and values are base64url/hex we made: always a valid header.
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// The value of cookie `name`, from any `Cookie` header.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A fresh random token (session ids, CSRF tokens).
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_id(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The signed-in person.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub identity: String,
    /// Display name (the identity's `name`, else its id).
    pub name: String,
    pub csrf: String,
    pub id_hash: String,
}

impl Viewer {
    /// Checks a form's CSRF token against the session's, in constant time.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), PageError> {
        match sent {
            Some(t) if constant_time_eq(t, &self.csrf) => Ok(()),
            _ => Err(PageError::Forbidden(
                "This form did not carry a valid security token (it may be from an old tab or another site). Reload the page and try again."
                    .into(),
            )),
        }
    }

    /// What templates know about the viewer (the CSRF token is for the sign-out form).
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"identity": self.identity, "name": self.name, "csrf": self.csrf})
    }
}

/// Starts a session for `identity`; returns the `Set-Cookie` value.
pub async fn start(s: &AppState, c: &Console, identity: &str, method: &str) -> Result<HeaderValue, PageError> {
    let id = random_token();
    let now = s.engine.now();
    let session = WebSession {
        id_hash: hash_id(&id),
        identity: identity.to_string(),
        csrf: random_token(),
        method: method.to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + SESSION_LIFETIME_MS,
    };
    s.engine.store().insert_web_session(&session).await?;
    Ok(set_cookie(c, session_cookie(c), &id, SESSION_LIFETIME_MS / 1000))
}

/// The session a request carries, if it is still good.
pub async fn current(s: &AppState, c: &Console, headers: &HeaderMap) -> Result<Option<Viewer>, PageError> {
    let Some(id) = read_cookie(headers, session_cookie(c)) else {
        return Ok(None);
    };
    let id_hash = hash_id(&id);
    let store = s.engine.store();
    let Some(session) = store.web_session(&id_hash).await? else {
        return Ok(None);
    };
    let now = s.engine.now();
    let person = s.engine.inner().directory.people.get(&session.identity);
    let expired = now >= session.expires_at || now - session.last_seen_at > IDLE_TIMEOUT_MS;
    let Some(person) = person.filter(|_| !expired) else {
        store.delete_web_session(&id_hash).await?;
        return Ok(None);
    };
    if now - session.last_seen_at > TOUCH_EVERY_MS {
        store.touch_web_session(&id_hash, now).await?;
    }
    Ok(Some(Viewer {
        identity: session.identity.clone(),
        name: person.name.clone().unwrap_or_else(|| session.identity.clone()),
        csrf: session.csrf,
        id_hash,
    }))
}

/// Where to go back to after signing in: only a path on this site (no `//host`, no scheme).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.starts_with("/login") => {
            n.to_string()
        }
        _ => "/approvals".into(),
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let c = super::console(s);
        if let Some(v) = current(s, &c, &parts.headers).await? {
            return Ok(v);
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let next = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
            Err(PageError::SignIn { next })
        } else {
            Err(PageError::Forbidden("You are not signed in (or your session has ended). Sign in again.".into()))
        }
    }
}

/// Proof that a POST came from one of floodgate's own pages (checked before the body is read).
pub struct SameOrigin;

impl FromRequestParts<AppState> for SameOrigin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        if same_origin(&parts.headers, &super::console(s)) {
            Ok(SameOrigin)
        } else {
            Err(PageError::Forbidden(
                "This form was not sent from floodgate's own pages (the browser named another site, or no site), so it was refused."
                    .into(),
            ))
        }
    }
}

/// `scheme://host[:port]` of a URL, lower-cased, with the port only when it is not the default.
fn origin_of(url: &str) -> Option<(String, String)> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?.to_ascii_lowercase();
    let authority = match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    Some((u.scheme().to_string(), authority))
}

/// Does the request's `Origin` (or, without one, its `Referer`) name this site: the public URL,
/// or the host the browser addressed? Browsers send `Origin` on every form POST; a request with
/// neither header is refused.
pub fn same_origin(headers: &HeaderMap, c: &Console) -> bool {
    let get = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::trim);
    let claimed = match get(header::ORIGIN).filter(|o| !o.is_empty() && *o != "null") {
        Some(o) => o,
        None => match get(header::REFERER) {
            Some(r) => r,
            None => return false,
        },
    };
    let Some((scheme, authority)) = origin_of(claimed) else {
        return false;
    };
    if let Some((pub_scheme, pub_authority)) = origin_of(c.public_url())
        && pub_scheme == scheme
        && pub_authority == authority
    {
        return true;
    }
    // The Host the browser addressed: right behind a proxy that keeps Host, and when the public
    // URL is not configured. A cross-site form names its own site, never ours.
    get(header::HOST).is_some_and(|h| h.eq_ignore_ascii_case(&authority) && matches!(scheme.as_str(), "http" | "https"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn console(url: &str) -> Console {
        Console { passwords: BTreeMap::new(), emails: BTreeMap::new(), secret: vec![1], public_url: url.into() }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn origin_checks() {
        let c = console("https://fg.example.com");
        assert!(same_origin(&headers(&[("origin", "https://fg.example.com")]), &c));
        assert!(!same_origin(&headers(&[("origin", "https://evil.example")]), &c));
        assert!(!same_origin(&headers(&[("origin", "http://fg.example.com")]), &c), "scheme matters");
        assert!(same_origin(&headers(&[("referer", "https://fg.example.com/approvals/x")]), &c));
        assert!(!same_origin(&headers(&[]), &c), "neither header: refused");
        assert!(!same_origin(&headers(&[("origin", "null")]), &c));
        let local = console("http://127.0.0.1:0");
        let h = headers(&[("origin", "http://127.0.0.1:41234"), ("host", "127.0.0.1:41234")]);
        assert!(same_origin(&h, &local));
        let h = headers(&[("origin", "http://evil.example"), ("host", "127.0.0.1:41234")]);
        assert!(!same_origin(&h, &local));
    }

    #[test]
    fn cookies_and_next() {
        let h = headers(&[("cookie", "a=1; floodgate_session=abc ; b=2")]);
        assert_eq!(read_cookie(&h, "floodgate_session").as_deref(), Some("abc"));
        assert_eq!(read_cookie(&h, "missing"), None);
        let v = set_cookie(&console("https://x"), "__Host-floodgate_session", "v", 60);
        assert_eq!(
            v.to_str().unwrap(),
            "__Host-floodgate_session=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert_eq!(safe_next(Some("/runs/r1?x=1")), "/runs/r1?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/approvals");
        assert_eq!(safe_next(Some("https://evil.example")), "/approvals");
        assert_eq!(safe_next(Some("/\\evil.example")), "/approvals");
    }
}
