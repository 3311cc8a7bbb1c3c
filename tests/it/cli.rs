//! The people-facing commands: simulate, runs, approvals, approve.

use crate::common::{repo, run_in, write};
use crate::harness::{Backend, Db, Harness};
use serde_json::{Value, json};

const ALERT: &str = r#"{"id": "evt-1", "title": "Suspicious login", "rule": "suspicious-login", "severity": "high",
 "confidence": 0.85, "entities": {"user": "dana@example.com", "source_ip": "203.0.113.66"}}"#;

#[test]
fn simulate_shows_steps_plans_and_approvals_as_json() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "alert.json", ALERT);
    let pb = repo().join("playbooks/core-suspicious-login.yaml");
    let (code, out, err) = run_in(
        dir.path(),
        &[
            "simulate",
            "--playbook",
            pb.to_str().unwrap(),
            "--alert",
            "alert.json",
            "--source",
            "siem",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["playbook"], "core-suspicious-login");
    assert_eq!(v["matched"], true);
    let steps = v["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["score", "known_scanner", "summary", "contain_ip", "done"]);
    for s in steps {
        for key in ["id", "phase", "action", "run", "reason", "approval", "requests"] {
            assert!(s.get(key).is_some(), "step lacks {key}: {s}");
        }
    }
    assert_eq!(steps[1]["run"], false, "the benign verdict does not apply");
    assert!(steps[1]["reason"].as_str().unwrap().contains("when is false"));
    assert_eq!(steps[3]["approval"]["groups"], json!(["oncall"]));
    assert!(steps[2]["inputs"][0]["message"].as_str().unwrap().contains("203.0.113.66 (risk 70"), "{}", steps[2]);

    // A scanner IP: triage closes the incident, nothing after it runs.
    write(dir.path(), "scanner.json", ALERT.replace("203.0.113.66", "192.0.2.10"));
    let (_, out, _) = run_in(
        dir.path(),
        &[
            "simulate",
            "--playbook",
            pb.to_str().unwrap(),
            "--alert",
            "scanner.json",
            "--source",
            "siem",
            "--format",
            "json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["steps"][1]["run"], true);
    assert!(v["steps"][2]["reason"].as_str().unwrap().contains("closed as benign"), "{}", v["steps"][2]);
    assert_eq!(v["steps"][3]["run"], false);

    // Plans show the requests an HTTP step would send; a wrong source does not match.
    let pb2 = repo().join("playbooks/core-exfiltration-webhook.yaml");
    write(
        dir.path(),
        "exfil.json",
        r#"{"id": "x1", "title": "Large download", "rule": "data-exfiltration-bulk", "entities": {"user": "u", "source_ip": "198.51.100.4"}}"#,
    );
    let (_, out, _) = run_in(
        dir.path(),
        &[
            "simulate",
            "--playbook",
            pb2.to_str().unwrap(),
            "--alert",
            "exfil.json",
            "--source",
            "siem",
            "--format",
            "json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["steps"][1]["requests"][0], json!({"method": "GET", "url": "http://127.0.0.1:9900/ip/198.51.100.4"}));
    assert_eq!(v["steps"][2]["requests"][0]["body"]["user"], "u");
    let (_, out, _) = run_in(
        dir.path(),
        &[
            "simulate",
            "--playbook",
            pb2.to_str().unwrap(),
            "--alert",
            "exfil.json",
            "--source",
            "other",
            "--format",
            "json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["matched"], false);
    assert!(v["steps"].as_array().unwrap().iter().all(|s| s["run"] == false));

    // Text output for people; a broken playbook prints its problems and exits 1.
    let (code, out, _) = run_in(
        dir.path(),
        &["simulate", "--playbook", pb.to_str().unwrap(), "--alert", "alert.json", "--source", "siem"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("? contain_ip (core.log, read): runs; when holds"), "{out}");
    write(dir.path(), "bad.yaml", "id: b\nname: B\nmatch: {}\nsteps: {triage: [{id: a, action: core.nope}]}\n");
    let (code, out, _) = run_in(dir.path(), &["simulate", "--playbook", "bad.yaml", "--alert", "alert.json"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("bad.yaml:4:"), "{out}");
}

const PB: &str = r#"
id: cli
name: CLI
match: {rule: cli}
steps:
  containment:
    - id: block
      action: test.contain
      with: {target: "{{ alert.entities.source_ip }}"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_approvals_from_the_command_line() {
    let h = Harness::new(Db::new(Backend::Sqlite).await, &[PB]).await;
    // The CLI runs on the real clock.
    h.clock.set(floodgate::clock::Clock::now_ms(&floodgate::clock::SystemClock));
    let acc = h.alert(json!({"id": "c1", "rule": "cli", "title": "cli test", "severity": "high", "entities": {"source_ip": "203.0.113.9", "user": "dana@corp.example"}})).await;
    h.settle().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "floodgate.toml",
        format!(
            "[database]\nurl = \"{}\"\n[[identities]]\nid = \"alice\"\n[[identities]]\nid = \"dana\"\nemail = \"dana@corp.example\"\n[groups]\noncall = [\"alice\", \"dana\"]\n",
            h.db.url
        ),
    );
    let (code, out, err) = run_in(dir.path(), &["approvals", "list", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let apr = v["approvals"][0]["id"].as_str().unwrap().to_string();
    let (_, text, _) = run_in(dir.path(), &["approvals", "list"]);
    assert!(text.contains("POST https://vendor.test/contain"), "{text}");
    let (code, _, err) = run_in(dir.path(), &["approve", &apr, "--as", "dana"]);
    assert_eq!(code, 1);
    assert!(err.contains("refused") && err.contains("aimed at"), "{err}");
    let (code, out, err) = run_in(dir.path(), &["approve", &apr, "--as", "alice", "--reason", "confirmed"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("approved (1 of 1 approvals)"), "{out}");
    let (code, _, err) = run_in(dir.path(), &["approve", "apr_missing", "--as", "alice"]);
    assert_eq!(code, 1);
    assert!(err.contains("no approval apr_missing"), "{err}");
    h.clock.advance(10_000);
    h.settle().await;
    let run_id = acc.run_id.unwrap();
    let (code, out, _) = run_in(dir.path(), &["runs", "list", "--format", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["runs"][0]["id"], run_id.as_str());
    assert_eq!(v["runs"][0]["state"], "succeeded");
    let (_, out, _) = run_in(dir.path(), &["runs", "list", "--state", "failed"]);
    assert_eq!(out.trim(), "no runs");
    let (code, out, _) = run_in(dir.path(), &["runs", "show", &run_id]);
    assert_eq!(code, 0);
    for expected in ["state     succeeded", "alice approve via cli", "confirmed", "approval_decided", "step_succeeded"]
    {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    // Each step's state is a column of its line.
    let block = out.lines().find(|l| l.contains("block") && l.contains("test.contain")).expect("the step's line");
    assert!(block.split_whitespace().any(|w| w == "succeeded"), "{block}");
    let (code, out, _) = run_in(dir.path(), &["runs", "show", &run_id, "--format", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["steps"][0]["state"], "succeeded");
    let (code, _, err) = run_in(dir.path(), &["runs", "show", "run_missing"]);
    assert_eq!((code, err.trim()), (1, "error: no run run_missing"));
    let (code, out, _) = run_in(dir.path(), &["migrate"]);
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
}

#[test]
fn commands_without_a_config_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_in(dir.path(), &["runs", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("config file floodgate.toml not found"), "{err}");
}

#[test]
fn simulate_routes_on_the_alert_alone_and_shows_a_failing_when_as_would_fail() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "alert.json", ALERT);
    write(dir.path(), "floodgate.toml", "[server]\npublic_url = \"https://soar.example/\"\n");
    // `vars` does not exist when an alert is routed: the engine cannot match on it.
    write(
        dir.path(),
        "by-vars.yaml",
        r#"id: by-vars
name: By vars
match: {when: 'vars.team == "soc"'}
vars: {team: soc}
steps:
  triage:
    - {id: note, action: core.log, with: {message: hi}}
"#,
    );
    let (code, out, err) =
        run_in(dir.path(), &["simulate", "--playbook", "by-vars.yaml", "--alert", "alert.json", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["matched"], false, "{v}");
    assert!(v["match_reason"].as_str().unwrap().contains("match.when cannot be evaluated"), "{v}");

    // The group key sees only the alert; a step whose `when` cannot be evaluated would fail, and
    // the run stops there; `incident.url` comes from the config's public_url.
    write(
        dir.path(),
        "edge.yaml",
        r#"id: edge
name: Edge
match: {}
group: {key: "{{ vars.team }}/{{ alert.rule }}", window: 1h}
vars: {team: soc}
steps:
  triage:
    - {id: link, action: core.log, with: {message: "see {{ incident.url }}"}}
    - {id: broken, action: core.log, when: 'alert.entities.nope.deeper == 1', with: {message: x}}
    - {id: after, action: core.log, with: {message: y}}
"#,
    );
    let args = ["simulate", "--playbook", "edge.yaml", "--alert", "alert.json", "--config", "floodgate.toml"];
    let (code, out, err) = run_in(dir.path(), &[&args[..], &["--format", "json"]].concat());
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["matched"], true, "{v}");
    assert_eq!(v["group_key"], Value::Null, "the key cannot use vars: {v}");
    let steps = &v["steps"];
    assert_eq!(steps[0]["inputs"][0]["message"], "see https://soar.example/incidents/inc_simulated", "{v}");
    assert_eq!(steps[1]["run"], false);
    assert!(steps[1]["would_fail"].as_str().unwrap().starts_with("when: "), "{}", steps[1]);
    assert!(steps[1]["reason"].as_str().unwrap().starts_with("would fail: when: "), "{}", steps[1]);
    assert_eq!(steps[2]["run"], false);
    assert!(steps[2]["reason"].as_str().unwrap().contains("the run fails at step broken"), "{}", steps[2]);
    let (code, out, _) = run_in(dir.path(), &args);
    assert_eq!(code, 0);
    assert!(out.contains("! broken (core.log, read): would fail: when: "), "{out}");

    // Without a config the incident has no URL.
    let (_, out, _) =
        run_in(dir.path(), &["simulate", "--playbook", "edge.yaml", "--alert", "alert.json", "--format", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["steps"][0]["inputs"][0]["message"], "see ", "{v}");
}

/// `floodgate schema | head -c1`: a reader that goes away ends floodgate quietly (SIGPIPE), it
/// does not panic on the failed write.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_process_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};
    let mut child = Command::new(crate::common::bin())
        .arg("schema")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("floodgate runs");
    // Close the reading end before floodgate writes anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {stderr}", out.status);
}
