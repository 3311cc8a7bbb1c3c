//! `floodgate validate` and `floodgate schema` over real files.

use crate::common::{repo, run_in, write};
use std::time::{Duration, Instant};

const GOOD: &str = r#"
id: good
name: Good
match: {source: siem}
steps:
  triage:
    - id: a
      action: core.log
      with: {message: "hi {{ alert.title }}"}
"#;

/// Validates `content` as `pb.yaml` and returns (exit code, stdout lines).
fn validate(content: &str) -> (i32, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pb.yaml", content);
    let (code, out, _) = run_in(dir.path(), &["validate", "pb.yaml"]);
    (code, out.lines().map(str::to_string).collect())
}

#[test]
fn shipped_playbooks_are_valid_and_schema_json_is_current() {
    let (code, out, err) = run_in(&repo(), &["validate", "playbooks"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: "), "{out}");
    assert_eq!(out.lines().count(), 1, "one-line summary: {out}");
    let (code, schema, _) = run_in(&repo(), &["schema"]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string(repo().join("playbooks/schema.json")).unwrap();
    assert_eq!(schema, committed, "playbooks/schema.json is stale: run `floodgate schema > playbooks/schema.json`");
    for entry in std::fs::read_dir(repo().join("playbooks")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.starts_with("# yaml-language-server: $schema=./schema.json"),
                "{} must reference the schema",
                p.display()
            );
        }
    }
}

#[test]
fn a_valid_file_exits_zero() {
    let (code, out) = validate(GOOD);
    assert_eq!((code, out), (0, vec!["ok: 1 playbook valid".to_string()]));
}

#[test]
fn every_problem_in_a_file_is_reported_with_its_position() {
    let bad = r#"id: bad
name: Bad
stpes: {}
match:
  source: siem
  when: "alert.severity =="
group:
  key: "{{ alert.entities.user }}"
  window: 5y
steps:
  triage:
    - id: first
      action: core.lgo
      with: {message: hi}
    - id: second
      action: core.log
      with:
        message: "{{ steps.thrid.output }}"
        colour: red
    - id: first
      action: core.log
      with: {message: "{{ steps.later.output }}"}
  containment:
    - id: later
      action: core.log
      timeout: "10 minutes"
      revert_after: 1h
      with: {message: "{{ alert. }}"}
  contaiment:
    - id: x
      action: core.log
      with: {message: x}
  remediation:
    - action: core.noop
      on_error: ignore
"#;
    let (code, out) = validate(bad);
    assert_eq!(code, 1);
    let expected = [
        "pb.yaml:3:1: error: unknown key \"stpes\" — did you mean \"steps\"?",
        "pb.yaml:6:9: error: invalid condition: Found the end of the condition but expected one of: integer, float, string, bool, ident, `-`, `not`, `<`, `{`, `[` or `(` (template line 1, column 19)",
        "pb.yaml:9:11: error: window: invalid duration \"5y\": unknown unit \"y\"; use ms, s, m, h, d or w",
        "pb.yaml:13:15: error: unknown action \"core.lgo\" — did you mean \"core.log\"?; core offers: core.close, core.http, core.log, core.noop, core.set",
        "pb.yaml:18:18: error: refers to step \"thrid\", which does not exist",
        "pb.yaml:19:9: error: core.log has no input \"colour\"; its inputs: level, message",
        "pb.yaml:20:11: error: duplicate step id \"first\" (first defined on line 12)",
        "pb.yaml:22:23: error: refers to step \"later\", which runs later; a step can only read earlier steps",
        "pb.yaml:26:16: error: timeout: invalid duration \"10 minutes\": no spaces allowed; write e.g. 30s, 10m, 1h30m",
        "pb.yaml:27:21: error: revert_after: core.log cannot be reverted, so it cannot be temporary",
        "pb.yaml:28:23: error: invalid template: Found `}}` but expected identifier. (template line 1, column 11)",
        "pb.yaml:29:3: error: unknown phase \"contaiment\" — did you mean \"containment\"?; phases are detection, triage, investigation, containment, remediation",
        "pb.yaml:34:7: error: missing required key \"id\" in this step",
        "pb.yaml:35:17: error: on_error: expected one of fail, continue, found \"ignore\"",
    ];
    for e in expected {
        assert!(out.iter().any(|l| l == e), "missing line:\n{e}\nin output:\n{}", out.join("\n"));
    }
    assert!(out.iter().all(|l| l.starts_with("pb.yaml:")), "{}", out.join("\n"));
}

#[test]
fn quorum_and_groups_are_checked_against_the_config() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "floodgate.toml",
        "[[identities]]\nid = \"alice\"\n[[identities]]\nid = \"bob\"\n[groups]\noncall = [\"alice\", \"bob\"]\nsolo = [\"alice\"]\n",
    );
    write(
        dir.path(),
        "pb.yaml",
        r#"id: q
name: Q
match: {}
steps:
  containment:
    - id: c
      action: core.log
      with: {message: x}
      approval: {groups: [oncall], quorum: 3}
    - id: d
      action: core.log
      with: {message: x}
      approval: {groups: [oncal], quorum: 1, on_timeout: escalate}
    - id: e
      action: core.log
      with: {message: x}
      approval: {groups: [solo], quorum: 2}
"#,
    );
    let (code, out, _) = run_in(dir.path(), &["validate", "--config", "floodgate.toml", "pb.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("pb.yaml:9:44: error: quorum 3 is larger than the 2 people in oncall"), "{out}");
    assert!(out.contains("error: unknown approver group \"oncal\" — did you mean \"oncall\"?"), "{out}");
    assert!(out.contains("error: on_timeout: escalate needs escalate_to"), "{out}");
    assert!(out.contains("error: quorum 2 is larger than the 1 person in solo"), "{out}");
}

#[test]
fn wrong_types_and_missing_keys() {
    let (code, out) = validate(
        "id: x\nname: [1]\nmatch: {rule: 5}\nsteps:\n  triage:\n    - id: a\n      action: core.log\n      with: {message: 1}\n      retry: {max_attempts: many}\n",
    );
    assert_eq!(code, 1);
    let all = out.join("\n");
    assert!(all.contains("pb.yaml:2:7: error: name: expected a string, found a list"), "{all}");
    assert!(all.contains("pb.yaml:3:15: error: rule: expected a string or a list of strings, found a number"), "{all}");
    assert!(all.contains("pb.yaml:9:29: error: max_attempts: expected a whole number, found a string"), "{all}");
    assert!(all.contains("pb.yaml:8:23: error: with.message:"), "{all}");
    let (code, out) = validate("id: x\nsteps: {}\n");
    assert_eq!(code, 1);
    let all = out.join("\n");
    assert!(all.contains("pb.yaml:1:1: error: missing required key \"name\""), "{all}");
    assert!(all.contains("pb.yaml:1:1: error: missing required key \"match\""), "{all}");
}

#[test]
fn hostile_files_get_clear_errors_within_a_second() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..15 {
        let p = i - 1;
        bomb.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("alias bomb", bomb.into_bytes(), "pb.yaml:"),
        ("deep nesting", ("[".repeat(100_000) + &"]".repeat(100_000)).into_bytes(), "pb.yaml:"),
        (
            "huge file",
            vec![b' '; 50 * 1024 * 1024],
            "pb.yaml:1:1: error: file is 52428800 bytes; playbooks are limited to 1048576 bytes (1 MiB)",
        ),
        (
            "invalid utf-8",
            b"id: x\nname: caf\xe9\n".to_vec(),
            "pb.yaml:2:10: error: invalid UTF-8 (byte 0xe9); playbooks must be UTF-8 text",
        ),
        ("empty", Vec::new(), "pb.yaml:1:1: error: file is empty"),
        ("not a mapping", b"- 1\n- 2\n".to_vec(), "pb.yaml:1:1: error: expected a playbook"),
        ("multi document", b"id: a\n---\nid: b\n".to_vec(), "pb.yaml:"),
    ];
    for (what, content, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "pb.yaml", &content);
        let start = Instant::now();
        let (code, out, err) = run_in(dir.path(), &["validate", "pb.yaml"]);
        let took = start.elapsed();
        assert_eq!(code, 1, "{what}: {out}{err}");
        assert!(took < Duration::from_secs(1), "{what} took {took:?}");
        assert!(out.starts_with(expected), "{what}: expected {expected:?}, got {out}");
        assert!(out.contains(": error: "), "{what}: {out}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

#[test]
fn every_file_is_reported_and_duplicate_ids_across_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "pbs/a.yaml", GOOD);
    write(dir.path(), "pbs/b.yaml", GOOD);
    write(dir.path(), "pbs/c.yaml", "id: c\n");
    let (code, out, _) = run_in(dir.path(), &["validate", "pbs"]);
    assert_eq!(code, 1);
    assert!(out.contains("pbs/b.yaml:1:1: error: playbook id \"good\" is already used by pbs/a.yaml"), "{out}");
    assert!(out.contains("pbs/c.yaml:1:1: error: missing required key \"name\""), "{out}");
}

/// With a config (given, or ./floodgate.toml), `validate` checks the `[detections]` too, in the
/// same `path:line:col: error: message` form.
#[test]
fn validate_checks_the_configured_detections() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "playbooks/pb.yaml",
        "id: p\nname: P\nmatch: {}\nsteps:\n  triage:\n    - {id: a, action: core.log, with: {message: x}}\n",
    );
    let shipped = repo().join("detections/failed-logins.yaml");
    write(dir.path(), "det/good.yaml", std::fs::read(&shipped).unwrap());
    write(dir.path(), "floodgate.toml", "[detections]\ndirectory = \"det\"\n");
    let (code, out, err) = run_in(dir.path(), &["validate"]);
    assert_eq!((code, out.trim()), (0, "ok: 1 playbook, 1 detection valid"), "{err}");

    write(dir.path(), "det/bad.yaml", "id: bad\ntitle: Bad\nseverity: hgh\nsql: SELECT 1\n");
    let (code, out, err) = run_in(dir.path(), &["validate"]);
    assert_eq!(code, 1, "{out}{err}");
    let p = std::path::Path::new("det").join("bad.yaml").display().to_string();
    assert!(out.lines().any(|l| l.starts_with(&format!("{p}:3:11: error: severity:"))), "{out}");
    let (code, out, _) = run_in(dir.path(), &["validate", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, v["valid"].as_bool()), (1, Some(false)));
    assert!(v["problems"].as_array().unwrap().iter().any(|d| d["path"] == p.as_str()), "{v}");

    // A missing directory is named at the [detections] table; without the table nothing is checked.
    write(dir.path(), "other.toml", "playbooks = \"playbooks\"\n\n[detections]\ndirectory = \"nowhere\"\n");
    let (code, out, _) = run_in(dir.path(), &["validate", "--config", "other.toml"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("other.toml:3:1: error: [detections] directory"), "{out}");
    write(dir.path(), "off.toml", "[detections]\nenabled = false\ndirectory = \"nowhere\"\n");
    let (code, out, err) = run_in(dir.path(), &["validate", "--config", "off.toml"]);
    assert_eq!((code, out.trim()), (0, "ok: 1 playbook valid"), "{err}");
}
