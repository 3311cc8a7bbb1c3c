//! `floodgate serve` as a child process, for tests that need the real binary: HTTP intake,
//! signals, crashes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const SIEM_SECRET: &str = "test-siem-secret";

pub struct Server {
    child: Child,
    pub url: String,
    pub config: PathBuf,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    /// Starts `floodgate serve --config <config>` with extra environment, and waits for it to
    /// listen.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(crate::common::bin());
        cmd.args(["serve", "--config"]).arg(config).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env("FLOODGATE_SIEM_SECRET", SIEM_SECRET)
            .env("RUST_LOG", "info,sqlx=warn")
            .env_remove("FLOODGATE_FAILPOINTS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("floodgate serve starts");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l2.lock().unwrap().push_str(&line);
                l2.lock().unwrap().push('\n');
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("floodgate listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(u) => u,
            Err(_) => {
                let _ = child.kill();
                panic!("floodgate serve did not start; stderr:\n{}", log.lock().unwrap());
            }
        };
        Server { child, url, config: config.to_path_buf(), stderr: log }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the process to exit on its own (e.g. a failpoint killed it).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&mut self) -> Option<ExitStatus> {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.wait_exit(Duration::from_secs(40))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The signature header for `body` now.
pub fn signature(body: &[u8]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    floodgate::ingest::auth::sign(SIEM_SECRET.as_bytes(), now, body)
}

/// A config for a test server: listens on an ephemeral port, given database and playbooks.
pub fn config(dir: &Path, db_url: &str, playbooks: &Path, extra: &str) -> PathBuf {
    let text = format!(
        r#"playbooks = "{playbooks}"
[server]
listen = "127.0.0.1:0"
[database]
url = "{db_url}"
[engine]
workers = 2
lease = "2s"
poll_interval = "100ms"
[[sources]]
name = "siem"
format = "generic"
auth = {{ type = "hmac-sha256", secret = "env:FLOODGATE_SIEM_SECRET" }}
{extra}
"#,
        playbooks = playbooks.display()
    );
    crate::common::write(dir, "floodgate.toml", text)
}

/// Posts a signed alert; `None` when the server did not answer (it died).
pub async fn post_alert(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Option<(u16, serde_json::Value)> {
    let bytes = serde_json::to_vec(body).unwrap();
    let resp = client
        .post(format!("{url}/v1/alerts/siem"))
        .header("content-type", "application/json")
        .header("x-floodgate-signature", signature(&bytes))
        .body(bytes)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    let json = resp.json().await.unwrap_or(serde_json::Value::Null);
    Some((status, json))
}
