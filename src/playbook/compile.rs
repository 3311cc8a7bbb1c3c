//! Checking a playbook file and compiling it.
//!
//! Checks run in two passes over the positioned JSON, and both always run to the end so an
//! author sees every problem at once: the shape (against the JSON Schema, with messages
//! written for people and did-you-mean hints) and the meaning (actions exist, step ids are
//! unique, references point to earlier steps, templates parse, durations are valid, quorums
//! fit their groups, `revert_after` only on revertible actions).

use super::diag::{Diagnostic, Pos, hint};
use super::raw::{OnTimeout, RawPlaybook, Severity};
use super::template::{Input, TemplateError, Templates, ValueTemplate, is_template, step_references};
use super::yaml::{self, Positions};
use super::{ActionCatalog, ApprovalSpec, AutoApprove, Grouping, Phase, Playbook, Retry, Step, schema};
use crate::duration;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What compiling needs to know about the world.
#[derive(Clone, Copy)]
pub struct CompileOptions<'a> {
    pub catalog: &'a ActionCatalog,
    /// Approver groups from the config (name → member identities). `None` when validating
    /// without a config: group names and quorums are then not checked.
    pub groups: Option<&'a BTreeMap<String, BTreeSet<String>>>,
    /// The global approval policy, so a playbook cannot loosen it. `None`: not checked.
    pub policy: Option<&'a crate::config::PolicyConfig>,
}

/// Reads and compiles one file.
pub fn load_file(path: &Path, opts: CompileOptions<'_>) -> Result<Playbook, Vec<Diagnostic>> {
    let shown = path.display().to_string();
    let at_start = |message: String| vec![Diagnostic { path: shown.clone(), line: 1, col: 1, message }];
    let meta = std::fs::metadata(path).map_err(|e| at_start(format!("cannot read file: {e}")))?;
    if !meta.is_file() {
        return Err(at_start("not a regular file".into()));
    }
    if meta.len() > yaml::MAX_BYTES as u64 {
        return Err(at_start(format!(
            "file is {} bytes; playbooks are limited to {} bytes (1 MiB)",
            meta.len(),
            yaml::MAX_BYTES
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| at_start(format!("cannot read file: {e}")))?;
    compile(&bytes, &shown, opts)
}

/// Compiles every `*.yaml` / `*.yml` file of a directory (sorted by name). Returns the good
/// playbooks and every problem, including ids used by two files.
pub fn load_dir(dir: &Path, opts: CompileOptions<'_>) -> (Vec<Playbook>, Vec<Diagnostic>) {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(e) => {
            return (
                Vec::new(),
                vec![Diagnostic {
                    path: dir.display().to_string(),
                    line: 1,
                    col: 1,
                    message: format!("cannot read directory: {e}"),
                }],
            );
        }
    };
    files.sort();
    let mut out: Vec<Playbook> = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        match load_file(&f, opts) {
            Ok(p) => {
                if let Some(first) = out.iter().find(|o| o.id == p.id) {
                    diags.push(Diagnostic {
                        path: p.path.clone(),
                        line: 1,
                        col: 1,
                        message: format!("playbook id {:?} is already used by {}", p.id, first.path),
                    });
                } else {
                    out.push(p);
                }
            }
            Err(d) => diags.extend(d),
        }
    }
    (out, diags)
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

const DURATION_FIELDS: &[&str] = &["window", "timeout", "backoff", "max_backoff", "revert_after"];

struct Checker<'a> {
    path: &'a str,
    positions: Positions,
    diags: Vec<Diagnostic>,
    templates: Templates,
    opts: CompileOptions<'a>,
}

impl Checker<'_> {
    fn error(&mut self, pos: Pos, message: String) {
        let d = Diagnostic { path: self.path.to_string(), line: pos.line, col: pos.col, message };
        if !self.diags.contains(&d) {
            self.diags.push(d);
        }
    }

    fn error_at(&mut self, pointer: &str, message: String) {
        let pos = self.positions.value(pointer);
        self.error(pos, message);
    }

    fn template_error(&mut self, pointer: &str, what: &str, e: TemplateError) {
        let at = if e.line > 1 || e.col > 1 {
            format!(" (template line {}, column {})", e.line, e.col)
        } else {
            String::new()
        };
        self.error_at(pointer, format!("invalid {what}: {}{at}", e.message));
    }

    /// The shape pass: every JSON Schema violation, phrased for people.
    fn check_shape(&mut self, value: &Value) {
        let errors: Vec<_> = schema::validator().iter_errors(value).collect();
        for e in errors {
            let ptr = e.instance_path().as_str().to_string();
            let instance = e.instance();
            let field = ptr.rsplit('/').next().unwrap_or("").to_string();
            use jsonschema::error::ValidationErrorKind as K;
            match e.kind() {
                K::AdditionalProperties { unexpected } => {
                    let allowed = schema::allowed_keys(&ptr);
                    for key in unexpected {
                        let pos = self.positions.key(&format!("{ptr}/{}", escape(key)));
                        let h = hint(key, allowed.iter().map(String::as_str));
                        let msg = if ptr == "/steps" {
                            format!(
                                "unknown phase {key:?}{h}; phases are detection, triage, investigation, containment, remediation"
                            )
                        } else {
                            let known = if h.is_empty() && !allowed.is_empty() {
                                format!(" (allowed: {})", allowed.join(", "))
                            } else {
                                String::new()
                            };
                            format!("unknown key {key:?}{h}{known}")
                        };
                        self.error(pos, msg);
                    }
                }
                K::Required { property } => {
                    let name = property.as_str().unwrap_or("?");
                    let within = match ptr.as_str() {
                        "" => String::new(),
                        p if p.matches('/').count() == 3 && p.starts_with("/steps/") => " in this step".into(),
                        p => format!(" in {}", p.trim_start_matches('/').replace('/', ".")),
                    };
                    self.error_at(&ptr, format!("missing required key {name:?}{within}"));
                }
                K::Type { kind } => {
                    let expected = format!("{kind:?}").to_ascii_lowercase().replace("single(", "").replace(')', "");
                    let expected = match expected.as_str() {
                        "object" => "a mapping".to_string(),
                        "array" => "a list".to_string(),
                        "string" => "a string".to_string(),
                        "integer" => "a whole number".to_string(),
                        "number" => "a number".to_string(),
                        "boolean" => "true or false".to_string(),
                        other => other.to_string(),
                    };
                    self.error_at(&ptr, format!("{field}: expected {expected}, found {}", json_type(instance)));
                }
                K::Pattern { .. } => {
                    let s = instance.as_str().unwrap_or_default().to_string();
                    let msg = if DURATION_FIELDS.contains(&field.as_str()) {
                        match duration::parse(&s) {
                            Err(why) => format!("{field}: {why}"),
                            Ok(_) => format!("{field}: invalid duration {s:?}; write e.g. 30s, 5m, 1h30m"),
                        }
                    } else if field == "action" {
                        format!("invalid action name {s:?}: write <connector>.<action>, e.g. core.log")
                    } else if field == "id" && ptr == "/id" {
                        format!("invalid playbook id {s:?}: use lowercase letters, digits, '-' and '_' (at most 63)")
                    } else if field == "id" {
                        format!(
                            "invalid step id {s:?}: start with a lowercase letter, then lowercase letters, digits or '_' (at most 63)"
                        )
                    } else {
                        format!("{field}: {s:?} is not valid")
                    };
                    self.error_at(&ptr, msg);
                }
                K::Enum { options } => {
                    let opts: Vec<&str> =
                        options.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                    let got =
                        instance.as_str().map(|s| format!("{s:?}")).unwrap_or_else(|| json_type(instance).to_string());
                    let h = instance.as_str().map(|s| hint(s, opts.iter().copied())).unwrap_or_default();
                    self.error_at(&ptr, format!("{field}: expected one of {}, found {got}{h}", opts.join(", ")));
                }
                K::AnyOf { .. } | K::OneOfNotValid { .. } => {
                    let allowed = schema::allowed_values(&ptr);
                    let msg = if !allowed.is_empty() {
                        let got = instance
                            .as_str()
                            .map(|s| format!("{s:?}"))
                            .unwrap_or_else(|| json_type(instance).to_string());
                        let h =
                            instance.as_str().map(|s| hint(s, allowed.iter().map(String::as_str))).unwrap_or_default();
                        format!("{field}: expected one of {}, found {got}{h}", allowed.join(", "))
                    } else if field == "source" || field == "rule" {
                        format!("{field}: expected a string or a list of strings, found {}", json_type(instance))
                    } else {
                        format!("{field}: {} is not allowed here", json_type(instance))
                    };
                    self.error_at(&ptr, msg);
                }
                _ => {
                    let label = if field.is_empty() { String::new() } else { format!("{field}: ") };
                    self.error_at(&ptr, format!("{label}{e}"));
                }
            }
        }
    }

    /// Parses a duration field whose shape the schema checks; reports only what the pattern
    /// cannot catch (values too large, zero).
    fn duration(&mut self, value: &Value, pointer: &str) -> Option<Duration> {
        let s = value.pointer(pointer)?.as_str()?;
        let field = pointer.rsplit('/').next().unwrap_or("");
        match duration::parse(s) {
            Ok(d) if d.is_zero() => {
                self.error_at(pointer, format!("{field}: must be longer than 0"));
                None
            }
            Ok(d) => Some(d),
            Err(why) if why.contains("too large") || why.contains("100 years") => {
                self.error_at(pointer, format!("{field}: {why}"));
                None
            }
            // Anything else broke the schema's pattern and was reported by the shape pass.
            Err(_) => None,
        }
    }
}

/// A step as found in the file, before checking its contents.
struct Found<'v> {
    ptr: String,
    phase: Phase,
    id: Option<&'v str>,
    step: &'v Value,
}

/// Compiles one playbook from its bytes; `path` is only used in messages.
pub fn compile(bytes: &[u8], path: &str, opts: CompileOptions<'_>) -> Result<Playbook, Vec<Diagnostic>> {
    let (value, positions) = yaml::parse(bytes).map_err(|e| {
        vec![Diagnostic { path: path.to_string(), line: e.pos.line, col: e.pos.col, message: e.message }]
    })?;
    let mut c = Checker { path, positions, diags: Vec::new(), templates: Templates::new(), opts };
    if !value.is_object() {
        c.error_at(
            "",
            format!("expected a playbook (a mapping with id, name, match and steps), found {}", json_type(&value)),
        );
        return Err(c.diags);
    }
    c.check_shape(&value);

    // Steps in run order, so references can be checked against what ran before.
    let mut found: Vec<Found<'_>> = Vec::new();
    for phase in Phase::ALL {
        if let Some(list) = value.pointer(&format!("/steps/{phase}")).and_then(Value::as_array) {
            for (i, step) in list.iter().enumerate() {
                found.push(Found {
                    ptr: format!("/steps/{phase}/{i}"),
                    phase,
                    id: step.get("id").and_then(Value::as_str),
                    step,
                });
            }
        }
    }
    if found.is_empty() && value.get("steps").is_some_and(Value::is_object) {
        c.error_at("/steps", "no steps: add at least one step under a phase (e.g. triage)".into());
    }
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (i, f) in found.iter().enumerate() {
        if let Some(id) = f.id {
            if let Some(&j) = first_seen.get(id) {
                let line = c.positions.value(&found[j].ptr).line;
                c.error_at(
                    &format!("{}/id", f.ptr),
                    format!("duplicate step id {id:?} (first defined on line {line})"),
                );
            } else {
                first_seen.insert(id, i);
            }
        }
    }
    let all_ids: Vec<&str> = first_seen.keys().copied().collect();

    let mut steps = Vec::new();
    for (index, f) in found.iter().enumerate() {
        if let Some(step) = compile_step(&mut c, &value, f, index, &first_seen, &all_ids) {
            steps.push(step);
        }
    }

    let when = match value.pointer("/match/when").and_then(Value::as_str) {
        Some(s) => match c.templates.condition(s) {
            Ok(cond) => {
                check_references(&mut c, "/match/when", s, None, &first_seen, &all_ids);
                Some(cond)
            }
            Err(e) => {
                c.template_error("/match/when", "condition", e);
                None
            }
        },
        None => None,
    };
    if value.get("auto_approve").is_some() && c.opts.policy.is_some_and(|p| !p.auto_approve.enabled) {
        c.error_at(
            "/auto_approve",
            "auto_approve is disabled by the policy (policy.auto_approve.enabled = false)".into(),
        );
    }
    let group = match value.pointer("/group/key").and_then(Value::as_str) {
        Some(k) => {
            let key = c.templates.text(k).map_err(|e| c.template_error("/group/key", "template", e)).ok();
            let window = c.duration(&value, "/group/window");
            key.zip(window).map(|(key, window)| Grouping { key, window })
        }
        None => None,
    };

    if !c.diags.is_empty() {
        let mut d = c.diags;
        d.sort();
        return Err(d);
    }
    let raw: RawPlaybook = serde_json::from_value(value).map_err(|e| {
        vec![Diagnostic { path: path.to_string(), line: 1, col: 1, message: format!("cannot read playbook: {e}") }]
    })?;
    Ok(Playbook {
        id: raw.id,
        name: raw.name,
        description: raw.description,
        version: raw.version,
        hash: hex::encode(Sha256::digest(bytes)),
        source: Arc::from(String::from_utf8_lossy(bytes).as_ref()),
        path: path.to_string(),
        priority: raw.priority,
        sources: raw.matcher.source.map(|s| s.to_vec()).unwrap_or_default(),
        rules: raw.matcher.rule.map(|s| s.to_vec()).unwrap_or_default(),
        when,
        group,
        auto_approve: raw.auto_approve.map(|a| AutoApprove {
            min_confidence: a.min_confidence,
            severities: a.severities.unwrap_or_else(|| vec![Severity::High, Severity::Critical]),
        }),
        vars: raw.vars,
        steps,
        templates: c.templates,
    })
}

/// Reports `steps.<id>` references that are unknown or not earlier than the step at `index`.
fn check_references(
    c: &mut Checker<'_>,
    pointer: &str,
    source: &str,
    index: Option<usize>,
    ids: &HashMap<&str, usize>,
    all: &[&str],
) {
    for (id, _) in step_references(source) {
        match ids.get(id.as_str()) {
            None => c.error_at(
                pointer,
                format!("refers to step {id:?}, which does not exist{}", hint(&id, all.iter().copied())),
            ),
            Some(&j) => match index {
                Some(i) if j == i => c.error_at(pointer, format!("step {id:?} refers to its own output")),
                Some(i) if j > i => c.error_at(
                    pointer,
                    format!("refers to step {id:?}, which runs later; a step can only read earlier steps"),
                ),
                None => {
                    c.error_at(pointer, format!("refers to step {id:?}, but no step has run when alerts are matched"))
                }
                _ => {}
            },
        }
    }
}

/// Every template string under `v`, with its pointer.
fn template_strings<'v>(v: &'v Value, pointer: String, out: &mut Vec<(String, &'v str)>) {
    match v {
        Value::String(s) if is_template(s) => out.push((pointer, s)),
        Value::Object(m) => m.iter().for_each(|(k, v)| template_strings(v, format!("{pointer}/{}", escape(k)), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, v)| template_strings(v, format!("{pointer}/{i}"), out)),
        _ => {}
    }
}

fn compile_step(
    c: &mut Checker<'_>,
    value: &Value,
    f: &Found<'_>,
    index: usize,
    ids: &HashMap<&str, usize>,
    all: &[&str],
) -> Option<Step> {
    let p = &f.ptr;
    let step = f.step;
    let action = step.get("action").and_then(Value::as_str);
    let spec = action.and_then(|a| {
        let spec = c.opts.catalog.get(a).cloned();
        if spec.is_none() && a.contains('.') {
            let connector = a.split('.').next().unwrap_or("");
            let known = c.opts.catalog.connectors();
            let msg = if known.contains(&connector) {
                let same: Vec<&str> =
                    c.opts.catalog.names().filter(|n| n.starts_with(&format!("{connector}."))).collect();
                format!(
                    "unknown action {a:?}{}; {connector} offers: {}",
                    hint(a, same.iter().copied()),
                    same.join(", ")
                )
            } else {
                format!(
                    "unknown connector {connector:?} in action {a:?}{}; known connectors: {}",
                    hint(connector, known.iter().copied()),
                    known.join(", ")
                )
            };
            c.error_at(&format!("{p}/action"), msg);
        }
        spec
    });

    // Templates: with, when, foreach — each parsed and its references checked.
    let mut strings = Vec::new();
    if let Some(w) = step.get("with") {
        template_strings(w, format!("{p}/with"), &mut strings);
    }
    for key in ["when", "foreach"] {
        if let Some(Value::String(s)) = step.get(key) {
            strings.push((format!("{p}/{key}"), s.as_str()));
        }
    }
    for (ptr, s) in &strings {
        check_references(c, ptr, s, Some(index), ids, all);
    }
    let mut template_errors = Vec::new();
    let input = step
        .get("with")
        .filter(|w| w.is_object())
        .map(|w| c.templates.input(w, &format!("{p}/with"), &mut |ptr, e| template_errors.push((ptr.to_string(), e))));
    for (ptr, e) in template_errors {
        c.template_error(&ptr, "template", e);
    }
    let when = match step.get("when").and_then(Value::as_str) {
        Some(s) => c.templates.condition(s).map_err(|e| c.template_error(&format!("{p}/when"), "condition", e)).ok(),
        None => None,
    };
    let foreach = match step.get("foreach") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(ValueTemplate::Literal(Value::Array(items.clone()))),
        Some(Value::String(s)) if is_template(s) => {
            c.templates.value(s).map_err(|e| c.template_error(&format!("{p}/foreach"), "template", e)).ok()
        }
        Some(other) => {
            c.error_at(
                &format!("{p}/foreach"),
                format!("foreach: expected a list or a {{{{ expression }}}} giving a list, found {}", json_type(other)),
            );
            None
        }
    };

    // The input against the action's own schema (literal values only; templates render later).
    if let (Some(spec), Some(w)) = (&spec, step.get("with").filter(|w| w.is_object())) {
        check_input(c, &format!("{p}/with"), w, &spec.input_schema, action.unwrap_or(""));
    }

    let timeout = c.duration(value, &format!("{p}/timeout"));
    let revert_after = c.duration(value, &format!("{p}/revert_after"));
    if let (Some(spec), Some(_)) = (&spec, step.get("revert_after"))
        && !spec.revertible
    {
        c.error_at(
            &format!("{p}/revert_after"),
            format!("revert_after: {} cannot be reverted, so it cannot be temporary", action.unwrap_or("")),
        );
    }
    let retry = step.get("retry").filter(|r| r.is_object()).map(|r| {
        let d = Retry::default();
        Retry {
            max_attempts: r.get("max_attempts").and_then(Value::as_u64).map_or(d.max_attempts, |n| n as u32),
            backoff: c.duration(value, &format!("{p}/retry/backoff")).unwrap_or(d.backoff),
            max_backoff: c.duration(value, &format!("{p}/retry/max_backoff")).unwrap_or(d.max_backoff),
        }
    });
    let approval = step
        .get("approval")
        .filter(|a| a.is_object())
        .and_then(|a| compile_approval(c, value, &format!("{p}/approval"), a));
    if let (Some(policy), Some(spec)) = (c.opts.policy, &spec) {
        let min = policy.min_quorum.get(&spec.risk).copied().unwrap_or(1);
        if let Some(a) = &approval
            && a.quorum < min
        {
            c.error_at(
                &format!("{p}/approval/quorum"),
                format!(
                    "quorum {} is below the policy minimum of {min} for {} actions (policy.min_quorum)",
                    a.quorum, spec.risk
                ),
            );
        }
        if approval.as_ref().is_some_and(|a| a.on_timeout == OnTimeout::Approve) && !policy.allow_approve_on_timeout {
            c.error_at(
                &format!("{p}/approval/on_timeout"),
                "on_timeout: approve is not allowed by the policy (set policy.allow_approve_on_timeout = true to allow it)".into(),
            );
        }
    }

    let id = f.id?;
    let spec = spec?;
    let action = action?;
    let (connector, action_name) = action.split_once('.')?;
    let on_error = match step.get("on_error").and_then(Value::as_str) {
        Some("continue") => super::OnError::Continue,
        _ => super::OnError::Fail,
    };
    Some(Step {
        id: id.to_string(),
        name: step.get("name").and_then(Value::as_str).map(str::to_string),
        phase: f.phase,
        action: action.to_string(),
        connector: connector.to_string(),
        action_name: action_name.to_string(),
        spec,
        input: input.unwrap_or(Input::Object(Vec::new())),
        when,
        foreach,
        // Without a `retry:` block: 3 attempts, 5s then 10s apart (see docs/playbooks.md).
        retry: retry.unwrap_or_default(),
        timeout,
        on_error,
        approval,
        revert_after,
        line: c.positions.value(p).line,
    })
}

fn compile_approval(c: &mut Checker<'_>, value: &Value, p: &str, a: &Value) -> Option<ApprovalSpec> {
    let groups: Vec<String> =
        a.get("groups")?.as_array()?.iter().filter_map(|g| g.as_str().map(str::to_string)).collect();
    let escalate_to: Vec<String> = a
        .get("escalate_to")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(|g| g.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let quorum = a.get("quorum").and_then(Value::as_u64).unwrap_or(1) as u32;
    let on_timeout = match a.get("on_timeout").and_then(Value::as_str) {
        Some("approve") => OnTimeout::Approve,
        Some("escalate") => OnTimeout::Escalate,
        _ => OnTimeout::Deny,
    };
    if on_timeout == OnTimeout::Escalate && escalate_to.is_empty() {
        c.error_at(&format!("{p}/on_timeout"), "on_timeout: escalate needs escalate_to: the groups to ask next".into());
    }
    if on_timeout != OnTimeout::Escalate && !escalate_to.is_empty() {
        c.error_at(&format!("{p}/escalate_to"), "escalate_to is only used with on_timeout: escalate".into());
    }
    if let Some(config_groups) = c.opts.groups {
        let known: Vec<&str> = config_groups.keys().map(String::as_str).collect();
        let mut members = BTreeSet::new();
        for (key, list) in [("groups", &groups), ("escalate_to", &escalate_to)] {
            for (i, g) in list.iter().enumerate() {
                match config_groups.get(g) {
                    Some(m) => {
                        if key == "groups" {
                            members.extend(m.iter().cloned());
                        }
                    }
                    None => c.error_at(
                        &format!("{p}/{key}/{i}"),
                        format!(
                            "unknown approver group {g:?}{}; groups in the config: {}",
                            hint(g, known.iter().copied()),
                            known.join(", ")
                        ),
                    ),
                }
            }
        }
        if groups.iter().all(|g| config_groups.contains_key(g)) && quorum as usize > members.len() {
            c.error_at(
                &format!("{p}/quorum"),
                format!(
                    "quorum {quorum} is larger than the {} in {}",
                    crate::text::count(members.len() as u64, "person", "people"),
                    groups.join(", ")
                ),
            );
        }
        for (i, g) in escalate_to.iter().enumerate() {
            if let Some(m) = config_groups.get(g)
                && (quorum as usize) > m.len()
            {
                c.error_at(
                    &format!("{p}/escalate_to/{i}"),
                    format!(
                        "quorum {quorum} is larger than the {} in escalation group {g}",
                        crate::text::count(m.len() as u64, "person", "people")
                    ),
                );
            }
        }
    }
    let timeout = match a.get("timeout") {
        Some(_) => c.duration(value, &format!("{p}/timeout"))?,
        None => Duration::from_secs(3600),
    };
    Some(ApprovalSpec { groups, quorum, timeout, on_timeout, escalate_to })
}

/// Checks literal parts of a step's `with:` against the action's input schema.
fn check_input(c: &mut Checker<'_>, p: &str, with: &Value, schema: &Value, action: &str) {
    let Ok(validator) = jsonschema::validator_for(schema) else {
        return;
    };
    let mut templated = Vec::new();
    template_strings(with, String::new(), &mut templated);
    let templated: Vec<String> = templated.into_iter().map(|(ptr, _)| ptr).collect();
    let props: Vec<String> =
        schema.get("properties").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    for e in validator.iter_errors(with) {
        let ptr = e.instance_path().as_str().to_string();
        if templated.iter().any(|t| ptr == *t || ptr.starts_with(&format!("{t}/"))) {
            continue;
        }
        use jsonschema::error::ValidationErrorKind as K;
        match e.kind() {
            K::AdditionalProperties { unexpected } if ptr.is_empty() => {
                for key in unexpected {
                    let pos = c.positions.key(&format!("{p}/{}", escape(key)));
                    c.error(
                        pos,
                        format!(
                            "{action} has no input {key:?}{}; its inputs: {}",
                            hint(key, props.iter().map(String::as_str)),
                            props.join(", ")
                        ),
                    );
                }
            }
            K::Required { property } if ptr.is_empty() => {
                let name = property.as_str().unwrap_or("?");
                let pos = c.positions.key(p);
                c.error(pos, format!("{action} needs input {name:?}"));
            }
            _ => {
                let shown = if ptr.is_empty() { "with".to_string() } else { format!("with{}", ptr.replace('/', ".")) };
                c.error_at(&format!("{p}{ptr}"), format!("{shown}: {e}"));
            }
        }
    }
}
