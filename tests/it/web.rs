//! The responder console over HTTP, on a real router over a real database: signing in (and
//! failing to), session cookies, CSRF and origin checks that leave everything unchanged,
//! authorisation through the engine, the pages, approval links, temporary containment, and the
//! console inside `floodgate serve`.

use crate::common::{bin, write};
use crate::harness::{Db, Harness, NowPub};
use crate::on_both_databases;
use floodgate::config::Config;
use floodgate::engine::Directory;
use floodgate::store::{ApprovalState, RunState, Wait};
use serde_json::{Value, json};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const PASSWORD: &str = "correct horse battery staple";
const PEOPLE: [(&str, &str, &str); 4] = [
    ("alice", "Alice Adams", "alice@corp.example"),
    ("bob", "Bob Brown", "bob@corp.example"),
    ("carol", "Carol Chen", "carol@corp.example"),
    ("dana", "Dana Diaz", "dana@corp.example"),
];

/// A playbook whose containment waits for the on-call group, then notifies.
pub const PLAYBOOK: &str = r#"
id: web
name: Block and tell
match: {rule: web}
steps:
  containment:
    - id: block
      name: Block the source IP
      action: test.contain
      approval: {groups: [oncall], timeout: 30m}
      with: {target: "{{ alert.entities.source_ip }}"}
  remediation:
    - id: tell
      action: test.notify
      with: {target: done}
"#;

const TEMPORARY: &str = r#"
id: temp
name: Temporary block
match: {rule: temp}
steps:
  containment:
    - id: block
      action: test.contain
      approval: {groups: [oncall]}
      revert_after: 1h
      with: {target: "{{ alert.entities.source_ip }}"}
"#;

const AUTOMATIC: &str = r#"
id: auto
name: Automatic block
match: {rule: auto}
auto_approve: {min_confidence: 0.5, severities: [high]}
steps:
  containment:
    - id: block
      action: test.contain
      with: {target: x}
"#;

/// An alert for `rule` aimed at Bob (so Bob may not approve its containment).
pub fn alert(id: &str, rule: &str, title: &str) -> Value {
    json!({"id": id, "rule": rule, "title": title, "severity": "high", "confidence": 0.4,
           "entities": {"source_ip": "203.0.113.66", "user": "bob@corp.example"}})
}

/// `floodgate passwd`, run once: the hash every test identity's `password_hash` holds.
pub fn password_hash() -> String {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let mut child = Command::new(bin())
            .arg("passwd")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("floodgate passwd starts");
        child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "passwd failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    })
    .clone()
}

pub fn token_of(who: &str) -> String {
    format!("{who}-api-token-7d1c0a3e9b")
}

/// A console config: four people with passwords and API tokens, on-call approvers, a link key.
pub fn config(dir: &Path, public_url: &str) -> Config {
    let secret = write(dir, "secret", "test-link-signing-key-0123456789abcdef");
    let mut text = format!(
        "[server]\npublic_url = \"{public_url}\"\nsecret = \"file:{}\"\n[groups]\noncall = [\"alice\", \"bob\", \"dana\"]\nleads = [\"carol\"]\n[policy]\ndefault_approvers = [\"oncall\"]\n",
        secret.display()
    );
    for (id, name, email) in PEOPLE {
        let token = write(dir, &format!("{id}.token"), token_of(id));
        text.push_str(&format!(
            "[[identities]]\nid = \"{id}\"\nname = \"{name}\"\nemail = \"{email}\"\npassword_hash = \"{}\"\napi_token = \"file:{}\"\n",
            password_hash(),
            token.display()
        ));
    }
    Config::parse(&text, &dir.join("floodgate.toml")).expect("test config parses")
}

/// An answer, read whole.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    /// The `Set-Cookie` line for cookie `name`.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let line = self.set_cookie(name)?;
        Some(line.split(';').next()?.split_once('=')?.1.to_string())
    }
    pub fn location(&self) -> String {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }
}

/// The value of the first hidden field `name` on a page.
pub fn field(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).unwrap_or_else(|| panic!("no field {name} in:\n{body}")) + marker.len();
    body[start..].split('"').next().unwrap().to_string()
}

pub enum Origin<'a> {
    Us,
    Nowhere,
    Site(&'a str),
}

/// The API router with the console, served on 127.0.0.1 over a harness engine.
pub struct Site {
    pub h: Harness,
    pub url: String,
    pub cfg: Config,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Site {
    pub async fn start(db: Db, playbooks: &[&str], public_url: Option<&str>) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cfg = config(dir.path(), public_url.unwrap_or(&url));
        let h = Harness::with_directory(db, playbooks, Directory::from_config(&cfg)).await;
        let state = floodgate::api::AppState::from_config(&cfg, h.engine.clone(), h.intake.clone()).unwrap();
        tokio::spawn(axum::serve(listener, floodgate::api::router(state)).into_future());
        floodgate_sdk::http::install_crypto_provider();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Site { h, url, cfg, http, _dir: dir }
    }

    async fn send(&self, rb: reqwest::RequestBuilder, cookie: Option<&str>) -> Resp {
        let rb = match cookie {
            Some(c) => rb.header("cookie", c),
            None => rb,
        };
        let r = rb.send().await.expect("the console answers");
        let (status, headers) = (r.status().as_u16(), r.headers().clone());
        Resp { status, headers, body: r.text().await.unwrap() }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Resp {
        self.send(self.http.get(format!("{}{path}", self.url)), cookie).await
    }

    pub async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)], from: Origin<'_>) -> Resp {
        let mut rb = self.http.post(format!("{}{path}", self.url)).form(form);
        rb = match from {
            Origin::Us => rb.header("origin", &self.url),
            Origin::Nowhere => rb,
            Origin::Site(o) => rb.header("origin", o),
        };
        self.send(rb, cookie).await
    }

    /// Fills in and sends the sign-in form.
    pub async fn sign_in(&self, fields: &[(&str, &str)]) -> Resp {
        let page = self.get("/login", None).await;
        let login_cookie = page.cookie_value("floodgate_login").expect("the sign-in page sets its cookie");
        let csrf = field(&page.body, "csrf");
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.post("/login", Some(&format!("floodgate_login={login_cookie}")), &form, Origin::Us).await
    }

    /// A signed-in session: its `Cookie` header and its CSRF token.
    pub async fn session(&self, who: &str) -> (String, String) {
        let r = self.sign_in(&[("login", who), ("password", PASSWORD)]).await;
        assert_eq!(r.status, 303, "{who} signs in: {}", r.body);
        let cookie = format!("floodgate_session={}", r.cookie_value("floodgate_session").unwrap());
        let page = self.get("/approvals", Some(&cookie)).await;
        assert_eq!(page.status, 200);
        (cookie.clone(), field(&page.body, "csrf"))
    }

    /// Posts an alert and drives the run until it waits; returns (run id, approval id).
    pub async fn waiting_run(&self, alert: Value) -> (String, String) {
        let run = self.h.alert(alert).await.run_id.expect("a playbook matched");
        self.h.settle().await;
        match self.h.run(&run).await.state {
            RunState::Waiting(Wait::Approval(a)) => (run, a),
            other => panic!("expected a wait for approval, got {other:?}"),
        }
    }

    pub async fn approval_state(&self, id: &str) -> (ApprovalState, usize) {
        let a = self.h.store.approval(id).await.unwrap().unwrap();
        (a.state, self.h.store.approval_votes(id).await.unwrap().len())
    }
}

on_both_databases!(
    signing_in_takes_a_password_or_token_and_says_nothing_about_who_exists,
    sessions_end_on_sign_out_idle_time_and_removal,
    posts_without_the_csrf_token_or_from_another_site_change_nothing,
    only_approvers_decide_and_nobody_approves_containment_aimed_at_them,
    pages_show_incidents_runs_approvals_and_the_timeline,
    approval_links_decide_once_for_their_own_person,
    temporary_containment_is_extended_or_kept_from_the_run_page,
);

async fn signing_in_takes_a_password_or_token_and_says_nothing_about_who_exists(db: Db) {
    let site = Site::start(db, &[PLAYBOOK], None).await;
    let r = site.get("/approvals", None).await;
    assert_eq!((r.status, r.location()), (303, "/login?next=/approvals".to_string()));

    let ok = site.sign_in(&[("login", "alice"), ("password", PASSWORD), ("next", "/runs")]).await;
    assert_eq!((ok.status, ok.location()), (303, "/runs".to_string()), "{}", ok.body);
    let line = ok.set_cookie("floodgate_session").unwrap();
    assert!(line.contains("; HttpOnly") && line.contains("; SameSite=Strict") && line.contains("; Path=/"), "{line}");
    assert!(line.contains("; Max-Age=43200") && !line.contains("Secure"), "plain http: no Secure flag: {line}");
    // The database holds only a digest of the session id.
    let id = ok.cookie_value("floodgate_session").unwrap();
    let rows = site.h.store.all_dynamic("SELECT id_hash, csrf FROM web_sessions".into(), vec![]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text("id_hash").unwrap(), hex::encode(<sha2::Sha256 as sha2::Digest>::digest(id.as_bytes())));
    assert_ne!(rows[0].text("id_hash").unwrap(), id);

    assert_eq!(
        site.sign_in(&[("login", "BOB@corp.example"), ("password", PASSWORD)]).await.status,
        303,
        "e-mail works"
    );
    let t = token_of("dana");
    assert_eq!(site.sign_in(&[("token", &t)]).await.status, 303, "an API token works");

    // A wrong password and an unknown name get the same answer.
    let wrong = site.sign_in(&[("login", "carol"), ("password", "not her password")]).await;
    let nobody = site.sign_in(&[("login", "mallory"), ("password", "whatever it is")]).await;
    let token = site.sign_in(&[("token", "guessed-token")]).await;
    for r in [&wrong, &nobody, &token] {
        assert_eq!(r.status, 401);
        assert!(r.body.contains("That did not work."), "{}", r.body);
        assert!(r.set_cookie("floodgate_session").is_none());
    }
    assert!(!nobody.body.contains("unknown") && !nobody.body.contains("no such"), "no hint that the name is unknown");

    // Five failures pause that name, even for the right password; other names are unaffected.
    for _ in 0..4 {
        assert_eq!(site.sign_in(&[("login", "carol"), ("password", "nope nope nope")]).await.status, 401);
    }
    let paused = site.sign_in(&[("login", "carol"), ("password", PASSWORD)]).await;
    assert_eq!(paused.status, 429, "{}", paused.body);
    assert!(paused.body.contains("Too many failed attempts"));
    assert_eq!(site.sign_in(&[("login", "alice"), ("password", PASSWORD)]).await.status, 303);
    site.h.clock.advance(15 * 60 * 1000 + 1);
    assert_eq!(site.sign_in(&[("login", "carol"), ("password", PASSWORD)]).await.status, 303, "the pause ends");

    // The sign-in form itself needs its double-submit token and our origin.
    let no_cookie =
        site.post("/login", None, &[("csrf", "x"), ("login", "alice"), ("password", PASSWORD)], Origin::Us).await;
    assert_eq!(no_cookie.status, 403);
    let page = site.get("/login", None).await;
    let c = format!("floodgate_login={}", page.cookie_value("floodgate_login").unwrap());
    let csrf = field(&page.body, "csrf");
    let form = [("csrf", csrf.as_str()), ("login", "alice"), ("password", PASSWORD)];
    assert_eq!(site.post("/login", Some(&c), &form, Origin::Site("https://evil.example")).await.status, 403);
    assert_eq!(site.post("/login", Some(&c), &form, Origin::Us).await.status, 303);

    // https: the cookie is Secure and uses the __Host- prefix.
    let secure =
        Site::start(Db::new(crate::harness::Backend::Sqlite).await, &[PLAYBOOK], Some("https://floodgate.test")).await;
    let r = secure.get("/login", None).await;
    let login_cookie = r.cookie_value("__Host-floodgate_login").expect("secure sign-in cookie");
    let form = [("csrf", field(&r.body, "csrf")), ("login", "alice".into()), ("password", PASSWORD.into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ok = secure.post("/login", Some(&format!("__Host-floodgate_login={login_cookie}")), &form, Origin::Us).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let line = ok.set_cookie("__Host-floodgate_session").unwrap();
    assert!(line.ends_with("; Secure") && line.contains("HttpOnly") && line.contains("SameSite=Strict"), "{line}");
}

async fn sessions_end_on_sign_out_idle_time_and_removal(db: Db) {
    let site = Site::start(db, &[PLAYBOOK], None).await;
    let (cookie, csrf) = site.session("alice").await;
    let page = site.get("/incidents", Some(&cookie)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Signed in as <strong id=\"signed-in-as\">Alice Adams</strong>"), "{}", page.body);
    for h in ["content-security-policy", "x-frame-options", "x-content-type-options", "cache-control"] {
        assert!(page.headers.contains_key(h), "{h} missing");
    }
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));

    // Sign-out needs the token too, then the cookie is dead.
    assert_eq!(site.post("/logout", Some(&cookie), &[], Origin::Us).await.status, 403);
    assert_eq!(site.get("/incidents", Some(&cookie)).await.status, 200, "still signed in");
    let out = site.post("/logout", Some(&cookie), &[("csrf", &csrf)], Origin::Us).await;
    assert_eq!((out.status, out.location()), (303, "/login?signed_out=1".to_string()));
    assert!(out.set_cookie("floodgate_session").unwrap().contains("Max-Age=0"));
    assert_eq!(site.get("/incidents", Some(&cookie)).await.status, 303);

    // Two hours without a request end a session; activity keeps it alive up to twelve hours.
    let (cookie, _) = site.session("bob").await;
    site.h.clock.advance(100 * 60 * 1000);
    assert_eq!(site.get("/runs", Some(&cookie)).await.status, 200);
    site.h.clock.advance(100 * 60 * 1000);
    assert_eq!(site.get("/runs", Some(&cookie)).await.status, 200, "touched 100 minutes ago");
    site.h.clock.advance(2 * 3600 * 1000 + 1);
    assert_eq!(site.get("/runs", Some(&cookie)).await.status, 303, "idle too long");
    let (cookie, _) = site.session("bob").await;
    for _ in 0..12 {
        site.h.clock.advance(3600 * 1000);
        let _ = site.get("/runs", Some(&cookie)).await;
    }
    assert_eq!(site.get("/runs", Some(&cookie)).await.status, 303, "twelve hours at most");
    assert_eq!(site.get("/runs", Some("floodgate_session=forged")).await.status, 303);

    // A session whose identity left the config ends at its next request.
    let now = site.h.clock.now_ms_pub();
    let ghost = floodgate::store::web::WebSession {
        id_hash: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"ghost-session-id")),
        identity: "ghost".into(),
        csrf: "x".into(),
        method: "password".into(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + 3_600_000,
    };
    site.h.store.insert_web_session(&ghost).await.unwrap();
    assert_eq!(site.get("/runs", Some("floodgate_session=ghost-session-id")).await.status, 303);
    assert!(site.h.store.web_session(&ghost.id_hash).await.unwrap().is_none(), "and is deleted");
}

async fn posts_without_the_csrf_token_or_from_another_site_change_nothing(db: Db) {
    let site = Site::start(db, &[PLAYBOOK], None).await;
    let (run, apr) = site.waiting_run(alert("a1", "web", "Login from a blocked country")).await;
    let (cookie, csrf) = site.session("alice").await;
    let path = format!("/approvals/{apr}/decision");
    let ok = [("csrf", csrf.as_str()), ("decision", "approve"), ("reason", "looks bad")];
    let attempts: Vec<(Vec<(&str, &str)>, Origin)> = vec![
        (vec![("decision", "approve"), ("reason", "no token")], Origin::Us),
        (vec![("csrf", "wrong"), ("decision", "approve"), ("reason", "bad token")], Origin::Us),
        (ok.to_vec(), Origin::Site("https://evil.example")),
        (ok.to_vec(), Origin::Site("null")),
        (ok.to_vec(), Origin::Nowhere),
    ];
    for (form, from) in attempts {
        let r = site.post(&path, Some(&cookie), &form, from).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("nothing was changed"), "{}", r.body);
    }
    assert_eq!(site.post(&path, None, &ok, Origin::Us).await.status, 403, "no session");
    site.h.settle().await;
    assert_eq!(site.approval_state(&apr).await, (ApprovalState::Pending, 0), "nothing changed");
    assert_eq!(site.h.vendor.calls("contain"), 0);

    let r = site.post(&path, Some(&cookie), &ok, Origin::Us).await;
    assert_eq!((r.status, r.location()), (303, format!("/runs/{run}?notice=approved")), "{}", r.body);
    assert_eq!(site.approval_state(&apr).await, (ApprovalState::Approved, 1));
    site.h.settle().await;
    assert_eq!(site.h.run(&run).await.state, RunState::Succeeded);
    assert_eq!(site.h.vendor.calls("contain"), 1);
}

async fn only_approvers_decide_and_nobody_approves_containment_aimed_at_them(db: Db) {
    let site = Site::start(db, &[PLAYBOOK], None).await;
    let (run, apr) = site.waiting_run(alert("a1", "web", "Exfiltration by bob")).await;
    let path = format!("/approvals/{apr}/decision");

    let (carol, carol_csrf) = site.session("carol").await;
    let page = site.get(&format!("/approvals/{apr}"), Some(&carol)).await;
    assert!(page.body.contains("You are not in the approver groups (oncall)."), "{}", page.body);
    assert!(!page.body.contains(&format!("id=\"approve-{apr}\"")), "no buttons for a non-approver");
    let r = site
        .post(&path, Some(&carol), &[("csrf", &carol_csrf), ("decision", "approve"), ("reason", "me")], Origin::Us)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("carol is not in the approver groups (oncall)"), "{}", r.body);

    let (bob, bob_csrf) = site.session("bob").await;
    let r = site
        .post(&path, Some(&bob), &[("csrf", &bob_csrf), ("decision", "approve"), ("reason", "fine")], Origin::Us)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("bob is the user this action is aimed at and cannot approve it"), "{}", r.body);
    assert_eq!(site.approval_state(&apr).await, (ApprovalState::Pending, 0));

    let (alice, csrf) = site.session("alice").await;
    let r =
        site.post(&path, Some(&alice), &[("csrf", &csrf), ("decision", "approve"), ("reason", " ")], Origin::Us).await;
    assert_eq!(r.status, 400, "a reason is required");
    assert!(r.body.contains("Write a reason"));
    let r = site
        .post(
            &path,
            Some(&alice),
            &[("csrf", &csrf), ("decision", "approve"), ("reason", "ip is known bad")],
            Origin::Us,
        )
        .await;
    assert_eq!(r.status, 303);
    let votes = site.h.store.approval_votes(&apr).await.unwrap();
    assert_eq!(
        (votes[0].identity.as_str(), votes[0].channel.as_str(), votes[0].reason.as_deref()),
        ("alice", "web", Some("ip is known bad"))
    );
    let again = site
        .post(&path, Some(&alice), &[("csrf", &csrf), ("decision", "deny"), ("reason", "changed my mind")], Origin::Us)
        .await;
    assert_eq!(again.status, 403);
    assert!(again.body.contains("already approved"), "{}", again.body);
    site.h.settle().await;
    assert_eq!(site.h.run(&run).await.state, RunState::Succeeded);
}

async fn pages_show_incidents_runs_approvals_and_the_timeline(db: Db) {
    let site = Site::start(db, &[PLAYBOOK, AUTOMATIC], None).await;
    let (run, apr) = site.waiting_run(alert("a1", "web", "<script>alert(1)</script> token theft")).await;
    let incident = site.h.run(&run).await.incident_id;
    let (cookie, csrf) = site.session("alice").await;
    let get = |p: String| {
        let c = cookie.clone();
        let site = &site;
        async move { site.get(&p, Some(&c)).await }
    };

    let list = get("/incidents".into()).await;
    assert!(list.body.contains("&lt;script&gt;alert(1)&lt;/script&gt; token theft"), "escaped: {}", list.body);
    assert!(!list.body.contains("<script>alert(1)"), "never raw");
    assert!(get("/incidents?q=TOKEN%20THEFT&severity=high&state=open".into()).await.body.contains(&incident));
    assert!(!get("/incidents?severity=low".into()).await.body.contains(&incident));
    assert!(!get("/incidents?q=100%25".into()).await.body.contains(&incident), "% is taken literally");
    let inc = get(format!("/incidents/{incident}")).await;
    assert!(inc.body.contains("203.0.113.66") && inc.body.contains(&run), "{}", inc.body);

    assert!(get("/runs?state=waiting&playbook=web".into()).await.body.contains(&run));
    assert!(!get("/runs?state=succeeded".into()).await.body.contains(&run));
    assert!(get("/runs?q=theft".into()).await.body.contains(&run));

    let pending = get("/approvals".into()).await;
    assert!(pending.body.contains("Block the source IP: contain 203.0.113.66"), "{}", pending.body);
    assert!(pending.body.contains("POST https://vendor.test/contain"), "the plan's request");
    assert!(pending.body.contains("&quot;target&quot;: &quot;203.0.113.66&quot;"), "the request body");
    assert!(pending.body.contains("<span class=\"count\" id=\"pending-count\">1</span>"));
    let one = get(format!("/approvals/{apr}")).await;
    assert!(one.body.contains(&format!("id=\"approve-{apr}\"")) && one.body.contains("bob@corp.example"));

    let before = get(format!("/runs/{run}")).await;
    assert!(before.body.contains("data-state=\"waiting\"") && before.body.contains("Approval requested from oncall"));
    assert!(before.body.contains("data-refresh=\"10\""), "an unfinished run refreshes itself");
    let form = [("csrf", csrf.as_str()), ("decision", "approve"), ("reason", "confirmed with the SOC")];
    site.post(&format!("/approvals/{apr}/decision"), Some(&cookie), &form, Origin::Us).await;
    site.h.settle().await;
    let after = get(format!("/runs/{run}?notice=approved")).await;
    assert!(after.body.contains("data-state=\"succeeded\""), "{}", after.body);
    assert!(after.body.contains("Your approval was recorded."));
    assert!(after.body.contains("Alice Adams voted to approve via web — “confirmed with the SOC”"), "{}", after.body);
    assert!(after.body.contains("test.contain succeeded") && after.body.contains("test.notify succeeded"));
    assert!(after.body.contains("data-refresh=\"0\""));
    assert!(!get(format!("/runs/{run}?notice=%3Cb%3Eforged")).await.body.contains("forged"), "notices are fixed texts");

    let auto =
        site.h.alert(json!({"id": "a2", "rule": "auto", "title": "sure", "severity": "high", "confidence": 0.9})).await;
    site.h.settle().await;
    let page = get(format!("/runs/{}", auto.run_id.unwrap())).await;
    assert!(
        page.body.contains("Approved automatically — rule: playbook auto auto_approve: confidence 0.9 &gt;= 0.5"),
        "{}",
        page.body
    );

    assert_eq!(get("/runs/run_missing".into()).await.status, 404);
    assert_eq!(get("/incidents/inc_missing".into()).await.status, 404);
    let css = site.get("/static/console.css", None).await;
    assert_eq!((css.status, css.headers["content-type"].to_str().unwrap()), (200, "text/css; charset=utf-8"));
}

async fn approval_links_decide_once_for_their_own_person(db: Db) {
    let site = Site::start(db, &[PLAYBOOK], None).await;
    let key = floodgate::web::try_link_secret(&site.cfg).unwrap();
    let (_, apr) = site.waiting_run(alert("a1", "web", "one")).await;
    let deadline = site.h.store.approval(&apr).await.unwrap().unwrap().deadline;
    let link = |who: &str, expires: i64| floodgate::web::links::sign(&key, &apr, who, expires);
    let path = |t: &str| format!("/links/{t}");

    let alice = link("alice", deadline);
    let page = site.get(&path(&alice), None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("POST https://vendor.test/contain") && page.body.contains("Confirm: approve"));
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(site.approval_state(&apr).await, (ApprovalState::Pending, 0), "opening a link decides nothing");
    let confirm = field(&page.body, "confirm");

    let form = [("confirm", confirm.as_str()), ("decision", "approve"), ("reason", "via teams")];
    assert_eq!(site.post(&path(&alice), None, &form[1..], Origin::Us).await.status, 403, "no confirmation token");
    assert_eq!(site.post(&path(&alice), None, &form, Origin::Site("https://evil.example")).await.status, 403);
    let forged = floodgate::web::links::sign(b"another key", &apr, "alice", deadline);
    let r = site.post(&path(&forged), None, &form, Origin::Us).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("This approval link is not valid"));
    let expired = link("alice", site.h.clock.now_ms_pub() - 1);
    assert_eq!(site.get(&path(&expired), None).await.status, 410);
    // Signed in to the console as someone else: the link is not theirs.
    let (bob, _) = site.session("bob").await;
    let r = site.post(&path(&alice), Some(&bob), &form, Origin::Us).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("for someone else"), "{}", r.body);
    assert_eq!(site.approval_state(&apr).await, (ApprovalState::Pending, 0));

    // Two clicks at once: one decision, one "already used".
    let alice_path = path(&alice);
    let (a, b) =
        tokio::join!(site.post(&alice_path, None, &form, Origin::Us), site.post(&alice_path, None, &form, Origin::Us));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 410], "{} / {}", a.body, b.body);
    assert!([&a.body, &b.body].iter().any(|body| body.contains("your decision to approve was recorded")));
    let votes = site.h.store.approval_votes(&apr).await.unwrap();
    assert_eq!((votes.len(), votes[0].channel.as_str(), votes[0].identity.as_str()), (1, "link", "alice"));
    let reused = site.get(&path(&alice), None).await;
    assert_eq!(reused.status, 410);
    assert!(reused.body.contains("already used"));

    // A link for someone outside the approver groups is refused by the engine, and spent.
    let (_, apr2) = site.waiting_run(alert("a2", "web", "two")).await;
    let carol = floodgate::web::links::sign(&key, &apr2, "carol", deadline);
    let page = site.get(&path(&carol), None).await;
    assert!(page.body.contains("You are not in the approver groups (oncall)."), "{}", page.body);
    assert!(!page.body.contains("Confirm: approve"), "no form for someone who cannot vote");
    // Posted anyway (the confirmation is derivable only with the key): the engine refuses.
    let claims = floodgate::web::links::verify(&key, &carol, site.h.clock.now_ms_pub()).unwrap();
    let confirm = floodgate::web::links::confirm_token(&key, &claims.nonce);
    let r = site
        .post(&path(&carol), None, &[("confirm", &confirm), ("decision", "approve"), ("reason", "x")], Origin::Us)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("carol is not in the approver groups"), "{}", r.body);
    assert_eq!(site.approval_state(&apr2).await, (ApprovalState::Pending, 0));
    assert_eq!(site.get(&path(&carol), None).await.status, 410);
}

async fn temporary_containment_is_extended_or_kept_from_the_run_page(db: Db) {
    let site = Site::start(db, &[TEMPORARY], None).await;
    let (run, apr) = site.waiting_run(alert("t1", "temp", "temporary")).await;
    let (alice, csrf) = site.session("alice").await;
    let form = [("csrf", csrf.as_str()), ("decision", "approve"), ("reason", "block for now")];
    site.post(&format!("/approvals/{apr}/decision"), Some(&alice), &form, Origin::Us).await;
    site.h.settle().await;
    let reverts = site.h.store.reverts_for_run(&run).await.unwrap();
    let rev = reverts[0].id.clone();
    let page = site.get(&format!("/runs/{run}"), Some(&alice)).await;
    assert!(page.body.contains("Temporary containment") && page.body.contains(&format!("id=\"extend-{rev}\"")));

    let extend = format!("/reverts/{rev}/extend");
    let due = reverts[0].due_at;
    assert_eq!(site.post(&extend, Some(&alice), &[("by", "24h"), ("reason", "x")], Origin::Us).await.status, 403);
    let (carol, carol_csrf) = site.session("carol").await;
    let r =
        site.post(&extend, Some(&carol), &[("csrf", &carol_csrf), ("by", "24h"), ("reason", "x")], Origin::Us).await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("carol may not change temporary containment"), "{}", r.body);
    assert_eq!(site.h.store.revert(&rev).await.unwrap().unwrap().due_at, due);

    let r = site
        .post(&extend, Some(&alice), &[("csrf", &csrf), ("by", "24h"), ("reason", "still investigating")], Origin::Us)
        .await;
    assert_eq!((r.status, r.location()), (303, format!("/runs/{run}?notice=extended")), "{}", r.body);
    assert_eq!(site.h.store.revert(&rev).await.unwrap().unwrap().due_at, due + 24 * 3600 * 1000);
    let r = site.post(&extend, Some(&alice), &[("csrf", &csrf), ("by", "99y"), ("reason", "x")], Origin::Us).await;
    assert_eq!(r.status, 400, "only the offered durations");

    let keep = format!("/reverts/{rev}/cancel");
    let r = site.post(&keep, Some(&alice), &[("csrf", &csrf), ("reason", "confirmed attacker")], Origin::Us).await;
    assert_eq!(r.status, 303);
    let page = site.get(&format!("/runs/{run}?notice=permanent"), Some(&alice)).await;
    assert!(page.body.contains("Kept permanently") && page.body.contains("Alice Adams made the containment permanent"));
}

/// The console inside the real binary: `floodgate serve` routes it, signs people in with their
/// API token, refuses a CSRF-less decision, and takes a proper one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_inside_floodgate_serve() {
    let dir = tempfile::tempdir().unwrap();
    let playbooks = dir.path().join("playbooks");
    write(
        &playbooks,
        "log.yaml",
        "id: noted\nname: Noted\nmatch: {rule: web}\nsteps:\n  triage:\n    - id: note\n      action: core.log\n      approval: {groups: [oncall]}\n      with: {message: seen}\n",
    );
    let db = format!("sqlite://{}", dir.path().join("fg.db").display());
    let extra = "[[identities]]\nid = \"alice\"\napi_token = \"env:FG_ALICE_TOKEN\"\n[groups]\noncall = [\"alice\"]\n";
    let cfg = crate::server::config(dir.path(), &db, &playbooks, extra);
    let server = crate::server::Server::start(&cfg, &[("FG_ALICE_TOKEN", "alice-token-for-serve")]);
    let client = crate::common::client();
    let (status, accepted) =
        crate::server::post_alert(&client, &server.url, &json!({"id": "s1", "rule": "web", "title": "t"}))
            .await
            .unwrap();
    assert_eq!(status, 202, "{accepted}");
    let run = accepted["run_id"].as_str().unwrap().to_string();
    let api = |p: &str| client.get(format!("{}{p}", server.url)).bearer_auth("alice-token-for-serve");
    let mut apr = String::new();
    for _ in 0..100 {
        let list: Value = api("/v1/approvals").send().await.unwrap().json().await.unwrap();
        if let Some(id) = list["approvals"][0]["id"].as_str() {
            apr = id.to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!apr.is_empty(), "the run asked for approval: {}", server.stderr());

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(format!("{}/login", server.url)).send().await.unwrap();
    let login = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let csrf = field(&page.text().await.unwrap(), "csrf");
    let r = http
        .post(format!("{}/login", server.url))
        .header("cookie", &login)
        .header("origin", &server.url)
        .form(&[("csrf", csrf.as_str()), ("token", "alice-token-for-serve")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let page = http.get(format!("{}/approvals/{apr}", server.url)).header("cookie", &session).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains(&format!("id=\"approve-{apr}\"")), "alice may decide: {body}");
    let csrf = field(&body, "csrf");
    let decide = |form: Vec<(&'static str, String)>| {
        http.post(format!("{}/approvals/{apr}/decision", server.url))
            .header("cookie", &session)
            .header("origin", &server.url)
            .form(&form)
            .send()
    };
    let refused = decide(vec![("decision", "approve".into()), ("reason", "no token".into())]).await.unwrap();
    assert_eq!(refused.status(), 403);
    let a: Value = api("/v1/approvals").send().await.unwrap().json().await.unwrap();
    assert_eq!(a["approvals"][0]["id"], apr.as_str(), "still pending");
    let ok = decide(vec![("csrf", csrf), ("decision", "approve".into()), ("reason", "fine".into())]).await.unwrap();
    assert_eq!(ok.status(), 303);
    for _ in 0..100 {
        let r: Value = api(&format!("/v1/runs/{run}")).send().await.unwrap().json().await.unwrap();
        if r["run"]["state"] == "succeeded" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the run did not finish after the console approval: {}", server.stderr());
}
