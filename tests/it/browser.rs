//! The console in a real browser: Debian's headless Chromium, driven through chromedriver over
//! the W3C WebDriver protocol by the small client below (plain JSON over reqwest; no browser
//! download, no WebDriver crate). A responder signs in, opens a pending approval, approves it
//! with a reason and watches the run finish on its timeline; a form stripped of its CSRF token
//! is refused and changes nothing.
//!
//! Without `/usr/bin/chromium` and `/usr/bin/chromedriver` (or `FLOODGATE_CHROMIUM` /
//! `FLOODGATE_CHROMEDRIVER`) these tests print `SKIPPED: ...` and pass, unless
//! `FLOODGATE_REQUIRE_BROWSER=1` (CI), where a missing browser fails them.

use crate::harness::{Backend, Db};
use crate::web::{PASSWORD, PLAYBOOK, Site, alert};
use floodgate::store::ApprovalState;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser and driver to use, or `None` after saying why the test is skipped.
fn browser(test: &str) -> Option<(String, String)> {
    let chromium = std::env::var("FLOODGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = std::env::var("FLOODGATE_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    let missing: Vec<&str> =
        [chromium.as_str(), driver.as_str()].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return Some((chromium, driver));
    }
    let why = format!("{} not found (Debian: apt-get install chromium chromium-driver)", missing.join(" and "));
    if std::env::var("FLOODGATE_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("FLOODGATE_REQUIRE_BROWSER=1 but {why}");
    }
    println!("SKIPPED: {test}: {why}");
    None
}

/// A chromedriver process on a free local port.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start(path: &str) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Owned by the guard from here on: a panic below still kills the process.
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
        let http = reqwest::Client::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(r) = http.get(format!("{}/status", driver.url)).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready at {}", driver.url);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
struct Browser {
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn open(driver: &Driver, chromium: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let http = reqwest::Client::new();
        let r: Value =
            http.post(format!("{}/session", driver.url)).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no browser session: {r}"));
        Browser { http, session: format!("{}/session/{id}", driver.url), _profile: profile }
    }

    /// Sends a WebDriver command; `Err` carries the protocol error (`no such element`, ...).
    async fn try_cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut rb = self.http.request(method, format!("{}{path}", self.session));
        rb = rb.json(&body.unwrap_or_else(|| json!({})));
        let v: Value = rb.send().await.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        match v["value"]["error"].as_str() {
            Some(e) => Err(format!("{e}: {}", v["value"]["message"])),
            None => Ok(v["value"].clone()),
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body).await.unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", None).await.as_str().unwrap_or_default().to_string()
    }

    async fn try_find(&self, css: &str) -> Option<String> {
        let v = self
            .try_cmd(reqwest::Method::POST, "/element", Some(json!({"using": "css selector", "value": css})))
            .await
            .ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// Waits up to ten seconds for `css` to be on the page.
    async fn find(&self, css: &str) -> String {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(e) = self.try_find(css).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} is not on {}:\n{}", self.url().await, self.source().await);
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/value"), Some(json!({"text": text}))).await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{e}/click"), None).await;
    }

    async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.cmd(reqwest::Method::GET, &format!("/element/{e}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn attr(&self, css: &str, name: &str) -> String {
        let e = self.find(css).await;
        let v = self.cmd(reqwest::Method::GET, &format!("/element/{e}/attribute/{name}"), None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn run_js(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Saves a PNG of the page to `$FLOODGATE_SCREENSHOTS/<name>.png` when that is set (to look
    /// at the pages while working on them).
    async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("FLOODGATE_SCREENSHOTS") else { return };
        use base64::Engine as _;
        let png = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), bytes).unwrap();
    }

    async fn close(self) {
        let _ = self.try_cmd(reqwest::Method::DELETE, "", None).await;
    }

    /// Signs in through the form and lands on the approvals page.
    async fn sign_in(&self, site: &Site, who: &str) {
        self.goto(&format!("{}/approvals", site.url)).await;
        assert!(self.url().await.contains("/login?next=/approvals"), "sent to sign in first");
        self.type_into("#login", who).await;
        self.type_into("#password", PASSWORD).await;
        self.click("#sign-in").await;
        self.find("#signed-in-as").await;
        assert!(self.url().await.ends_with("/approvals"), "{}", self.url().await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_approves_in_a_real_browser_and_watches_the_run_finish() {
    let Some((chromium, driver)) = browser("a_responder_approves_in_a_real_browser_and_watches_the_run_finish") else {
        return;
    };
    let site = Site::start(Db::new(Backend::Sqlite).await, &[PLAYBOOK], None).await;
    let (run, apr) = site.waiting_run(alert("b1", "web", "Impossible travel for bob")).await;
    let workers = site.h.engine.spawn_workers();
    let driver = Driver::start(&driver).await;
    let b = Browser::open(&driver, &chromium).await;

    b.goto(&format!("{}/login", site.url)).await;
    b.screenshot("login").await;
    b.sign_in(&site, "alice").await;
    b.screenshot("approvals").await;
    assert_eq!(b.text("#signed-in-as").await, "Alice Adams");
    assert_eq!(b.text("#pending-count").await, "1");
    // The timeline before the decision: asked, nobody voted, nothing contained.
    b.goto(&format!("{}/runs/{run}", site.url)).await;
    assert_eq!(b.attr("#run-state", "data-state").await, "waiting");
    b.screenshot("run-waiting").await;
    let before = b.text("#timeline").await;
    assert!(before.contains("Approval requested from oncall"), "{before}");
    assert!(!before.contains("voted") && !before.contains("test.contain succeeded"), "{before}");

    b.goto(&format!("{}/approvals", site.url)).await;
    b.click(&format!("#review-{apr}")).await;
    let page = b.text("main").await;
    assert!(page.contains("POST https://vendor.test/contain"), "the plan is shown: {page}");
    assert!(page.contains("Impossible travel for bob"));
    b.type_into(&format!("#reason-{apr}"), "Confirmed with Bob: not him. Block it.").await;
    b.screenshot("approval").await;
    b.click(&format!("#approve-{apr}")).await;

    b.find("#notice").await;
    assert!(b.url().await.contains(&format!("/runs/{run}?notice=approved")), "{}", b.url().await);
    assert!(b.text("#notice").await.contains("Your approval was recorded"));
    // The workers take the run from here; the page shows it finishing.
    let start = Instant::now();
    loop {
        if b.attr("#run-state", "data-state").await == "succeeded" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the run did not finish:\n{}", b.source().await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.cmd(reqwest::Method::POST, "/refresh", None).await;
    }
    b.screenshot("run-succeeded").await;
    let after = b.text("#timeline").await;
    for line in [
        "Alice Adams voted to approve via web — “Confirmed with Bob: not him. Block it.”",
        "Approval approved: approved by alice",
        "test.contain succeeded",
        "test.notify succeeded",
        "Run finished: succeeded",
    ] {
        assert!(after.contains(line), "timeline lacks {line:?}:\n{after}");
    }
    assert_eq!(site.h.vendor.calls("contain"), 1);
    let votes = site.h.store.approval_votes(&apr).await.unwrap();
    assert_eq!((votes.len(), votes[0].channel.as_str()), (1, "web"));
    b.close().await;
    site.h.engine.stop(workers, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_is_refused_in_a_real_browser() {
    let Some((chromium, driver)) = browser("a_form_without_its_csrf_token_is_refused_in_a_real_browser") else {
        return;
    };
    let site = Site::start(Db::new(Backend::Sqlite).await, &[PLAYBOOK], None).await;
    let (_, apr) = site.waiting_run(alert("b2", "web", "Token created from a new country")).await;
    let driver = Driver::start(&driver).await;
    let b = Browser::open(&driver, &chromium).await;
    b.sign_in(&site, "alice").await;
    b.goto(&format!("{}/approvals/{apr}", site.url)).await;
    let removed = b
        .run_js(&format!(
            "var f = document.querySelector('#decide-{apr} input[name=csrf]'); if (!f) return false; f.remove(); return true;"
        ))
        .await;
    assert_eq!(removed, json!(true), "the decision form carries a CSRF field");
    b.type_into(&format!("#reason-{apr}"), "sent without the token").await;
    b.click(&format!("#approve-{apr}")).await;
    assert_eq!(b.text("#message-heading").await, "Refused — nothing was changed");
    b.screenshot("refused").await;
    assert!(b.text("#message-text").await.contains("security token"));
    let a = site.h.store.approval(&apr).await.unwrap().unwrap();
    assert_eq!(a.state, ApprovalState::Pending);
    assert!(site.h.store.approval_votes(&apr).await.unwrap().is_empty());
    assert_eq!(site.h.vendor.calls("contain"), 0);
    // The same form, untouched, works.
    b.goto(&format!("{}/approvals/{apr}", site.url)).await;
    b.type_into(&format!("#reason-{apr}"), "with the token this time").await;
    b.click(&format!("#deny-{apr}")).await;
    b.find("#notice").await;
    assert_eq!(site.h.store.approval(&apr).await.unwrap().unwrap().state, ApprovalState::Denied);
    b.close().await;
}
