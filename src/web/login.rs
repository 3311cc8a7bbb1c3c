//! Signing in and out.
//!
//! Two ways in: an identity's console password (Argon2id, `password_hash` in the config), or
//! its API token. Every failure gets the same words and takes about the same time whether the
//! name exists or not (an unknown name is checked against a dummy hash), so the page tells an
//! attacker nothing about who has an account. Failures are counted per login name (and for
//! tokens together) in the database, so every process sharing it enforces one limit.

use super::Console;
use super::render::{Page, PageError, see_other};
use super::session::{self, SameOrigin, Viewer, constant_time_eq, login_cookie, random_token, set_cookie};
use crate::api::AppState;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::sync::LazyLock;

/// Failed sign-ins allowed per login name in `WINDOW_MS` before that name is paused.
const MAX_FAILURES_PER_NAME: i64 = 5;
/// Failed token sign-ins allowed in `WINDOW_MS`, all together (tokens carry no name).
const MAX_TOKEN_FAILURES: i64 = 20;
const WINDOW_MS: i64 = 15 * 60 * 1000;

const FAILED: &str = "That did not work. Check the name and password (or the token) and try again.";
const PAUSED: &str = "Too many failed attempts for this sign-in. Wait 15 minutes, or sign in with your API token.";

/// An Argon2id hash (default parameters: 19 MiB, 2 passes) in PHC form.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Checked when the name is unknown, so both answers cost the same.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("floodgate-dummy-password-for-timing").unwrap_or_default());

fn verify(password: &str, phc: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    login: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// The sign-in page with a fresh double-submit token in a cookie and in the form.
fn login_page(
    c: &Console,
    status: StatusCode,
    next: &str,
    login: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let token = random_token();
    let mut resp = Page::new(
        "login.html",
        json!({
            "title": "Sign in",
            "viewer": null,
            "csrf": token,
            "next": next,
            "login": login,
            "error": error,
            "notice": notice,
            "passwords": !c.passwords.is_empty(),
        }),
    )
    .status(status)
    .into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(c, login_cookie(c), &token, 3600));
    resp
}

pub async fn page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let c = super::console(&s);
    let next = session::safe_next(q.next.as_deref());
    if session::current(&s, &c, &headers).await?.is_some() {
        return Ok(see_other(&next));
    }
    let notice = q.signed_out.as_ref().map(|_| "You are signed out.");
    Ok(login_page(&c, StatusCode::OK, &next, "", None, notice))
}

pub async fn submit(
    State(s): State<AppState>,
    _: SameOrigin,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    let c = super::console(&s);
    let next = session::safe_next(f.next.as_deref());
    let cookie = session::read_cookie(&headers, login_cookie(&c));
    match (&cookie, &f.csrf) {
        (Some(a), Some(b)) if constant_time_eq(a, b) => {}
        _ => {
            return Err(PageError::Forbidden(
                "The sign-in form had expired or did not come from this site. Reload it and try again.".into(),
            ));
        }
    }
    let store = s.engine.store();
    let now = s.engine.now();
    let use_token = !f.token.trim().is_empty();
    let (key, limit) = if use_token {
        ("token".to_string(), MAX_TOKEN_FAILURES)
    } else {
        (format!("login:{}", f.login.trim().to_lowercase()), MAX_FAILURES_PER_NAME)
    };
    if store.login_failures_since(&key, now - WINDOW_MS).await? >= limit {
        return Ok(login_page(&c, StatusCode::TOO_MANY_REQUESTS, &next, f.login.trim(), Some(PAUSED), None));
    }
    let identity = if use_token {
        s.tokens.identity(f.token.trim()).map(str::to_string)
    } else {
        check_password(&c, f.login.trim(), f.password).await
    };
    let identity = identity.filter(|id| s.engine.inner().directory.people.contains_key(id));
    let Some(identity) = identity else {
        store.record_login_failure(&key, now, now - WINDOW_MS).await?;
        tracing::info!(method = if use_token { "token" } else { "password" }, "console sign-in refused");
        return Ok(login_page(&c, StatusCode::UNAUTHORIZED, &next, f.login.trim(), Some(FAILED), None));
    };
    store.clear_login_failures(&key).await?;
    // A session id the browser had before is dropped: a new sign-in always gets a new id.
    if let Some(old) = session::read_cookie(&headers, session::session_cookie(&c)) {
        store.delete_web_session(&session::hash_id(&old)).await?;
    }
    let cookie = session::start(&s, &c, &identity, if use_token { "token" } else { "password" }).await?;
    tracing::info!(%identity, "console sign-in");
    let mut resp = see_other(&next);
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&c, login_cookie(&c), "", 0));
    Ok(resp)
}

/// The identity whose password this is. The hash check runs off the async workers (it is
/// deliberately slow) and runs for unknown names too.
async fn check_password(c: &Console, login: &str, password: String) -> Option<String> {
    let lower = login.to_lowercase();
    let identity = if c.passwords.contains_key(login) {
        Some(login.to_string())
    } else {
        c.emails.get(&lower).filter(|id| c.passwords.contains_key(*id)).cloned()
    };
    let phc = identity.as_ref().and_then(|id| c.passwords.get(id)).cloned();
    let known = phc.is_some();
    let phc = phc.unwrap_or_else(|| DUMMY_HASH.clone());
    let ok = tokio::task::spawn_blocking(move || verify(&password, &phc)).await.unwrap_or(false);
    if ok && known { identity } else { None }
}

#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: Option<String>,
}

pub async fn logout(
    State(s): State<AppState>,
    _: SameOrigin,
    viewer: Viewer,
    Form(f): Form<LogoutForm>,
) -> Result<Response, PageError> {
    viewer.check_csrf(f.csrf.as_deref())?;
    s.engine.store().delete_web_session(&viewer.id_hash).await?;
    let c = super::console(&s);
    let mut resp = see_other("/login?signed_out=1");
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(&c, session::session_cookie(&c), "", 0));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong", &h));
        assert!(!verify("x", "not a hash"));
    }
}
