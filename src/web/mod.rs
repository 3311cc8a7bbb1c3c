//! The responder console: server-rendered pages where an on-call responder sees incidents and
//! runs, reads exactly what a pending approval would do, approves or denies it with a reason,
//! and extends or keeps temporary containment; plus the approval-link pages Teams cards open.
//!
//! What it must never do:
//! - decide anything itself: every vote goes through `Engine::decide`, every containment change
//!   through `Engine::extend_revert` / `cancel_revert`, which judge groups, self-approval,
//!   deadlines and double votes; the console shows their refusal word for word;
//! - change state on a GET, or accept a POST without the session's CSRF token and a same-origin
//!   `Origin` (or `Referer`): opening a page or a link never decides;
//! - store a session id, a password or a token in clear: the database holds SHA-256 digests of
//!   session ids, the config holds Argon2id hashes, API tokens are compared as digests;
//! - show a secret: run details come redacted from the store and are redacted again here;
//! - load anything from another origin: CSS and JS are embedded and served from `/static`, and
//!   the Content-Security-Policy says so.
//!
//! Pages are tera templates (`templates/*.html`, embedded, autoescaped). View data is prepared
//! in Rust (`view.rs`) so templates only lay out values that are already formatted.

mod actions;
mod assets;
mod link_pages;
pub mod links;
mod login;
mod pages;
mod render;
mod session;
mod view;

use crate::api::AppState;
use crate::config::{Config, ConfigError};
use axum::Router;
use axum::routing::{get, post};
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, OnceLock};

/// What the console needs from the config beyond what `AppState` carries: console passwords,
/// the key that signs approval links, and the public URL (cookie `Secure`, origin checks).
pub struct Console {
    /// Identity id → Argon2id PHC string, for identities with a `password_hash`.
    passwords: BTreeMap<String, String>,
    /// Lower-cased e-mail → identity id, so people can sign in with either.
    emails: BTreeMap<String, String>,
    secret: Vec<u8>,
    public_url: String,
}

impl Console {
    /// Reads the console's settings; a `[server] secret` that cannot be resolved is an error.
    pub fn from_config(cfg: &Config) -> Result<Console, ConfigError> {
        let mut passwords = BTreeMap::new();
        let mut emails = BTreeMap::new();
        for i in &cfg.identities {
            if let Some(h) = &i.password_hash {
                passwords.insert(i.id.clone(), h.clone());
            }
            if let Some(e) = &i.email {
                emails.insert(e.to_lowercase(), i.id.clone());
            }
        }
        Ok(Console { passwords, emails, secret: try_link_secret(cfg)?, public_url: cfg.public_url() })
    }

    /// A console with API-token sign-in only and this process's own link key (the bench and
    /// embedders without a config).
    pub fn token_only(public_url: &str) -> Console {
        Console {
            passwords: BTreeMap::new(),
            emails: BTreeMap::new(),
            secret: process_key().to_vec(),
            public_url: public_url.to_string(),
        }
    }

    /// Cookies carry `Secure` (and the `__Host-` prefix) when people reach floodgate over https.
    pub fn secure(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    pub fn public_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    pub(crate) fn secret(&self) -> &[u8] {
        &self.secret
    }
}

/// The console settings of a state.
pub(crate) fn console(s: &AppState) -> Arc<Console> {
    s.console.clone()
}

/// A key made once per process, used when `[server] secret` is not set: links then stop
/// working when the process restarts (the config reference says so).
fn process_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(rand::random)
}

/// The key that signs approval links: `[server] secret` when set, else this process's own key.
pub fn try_link_secret(cfg: &Config) -> Result<Vec<u8>, ConfigError> {
    match &cfg.server.secret {
        Some(r) => {
            let s = r.resolve().map_err(|e| ConfigError(format!("[server] secret: {e}")))?;
            if s.expose().len() < 32 {
                tracing::warn!("[server] secret is shorter than 32 characters; use e.g. `openssl rand -hex 32`");
            }
            Ok(s.expose().as_bytes().to_vec())
        }
        None => Ok(process_key().to_vec()),
    }
}

/// Shortest password `floodgate passwd` accepts.
const MIN_PASSWORD: usize = 12;

/// `floodgate passwd`: reads a password and prints its Argon2id hash for `password_hash`.
pub fn passwd() -> anyhow::Result<std::process::ExitCode> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let first = read_hidden("Password: ")?;
        let second = read_hidden("Again: ")?;
        if first != second {
            anyhow::bail!("the two passwords differ; nothing was printed");
        }
        first
    } else {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.chars().count() < MIN_PASSWORD {
        anyhow::bail!("the password must be at least {MIN_PASSWORD} characters (a passphrase of a few words is best)");
    }
    println!("{}", login::hash_password(&password)?);
    Ok(std::process::ExitCode::SUCCESS)
}

/// Prompts on stderr and reads a line from the terminal without echoing it.
fn read_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    // SAFETY: termios calls on stdin's descriptor with a zeroed struct filled by tcgetattr.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
            None
        } else {
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            Some(saved)
        }
    };
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the settings read above.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
        }
    }
    eprintln!();
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The console's routes, merged into the API router.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/incidents", get(pages::incidents))
        .route("/incidents/{id}", get(pages::incident))
        .route("/runs", get(pages::runs))
        .route("/runs/{id}", get(pages::run))
        .route("/approvals", get(pages::approvals))
        .route("/approvals/{id}", get(pages::approval))
        .route("/approvals/{id}/decision", post(actions::decide))
        .route("/reverts/{id}/extend", post(actions::extend_revert))
        .route("/reverts/{id}/cancel", post(actions::cancel_revert))
        .route("/links/{token}", get(link_pages::show).post(link_pages::submit))
        .route("/static/{file}", get(assets::serve))
}
