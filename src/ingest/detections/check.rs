//! Checking a detection file: every problem collected, each with the position a person needs
//! (`path:line:col: error: …`) and a did-you-mean hint where one helps, before anything runs.
//! The shape of each key, the SQL's markers against the declared parameters, templates and
//! durations are checked here; what the SQL returns is only known when it runs.

use super::model::{
    ALERT_KEYS, AlertMapping, DEFAULT_INTERVAL, Detection, ENTITIES, RESERVED_FIELDS, SQL_TYPES, TACTICS, TOP_KEYS,
    WINDOW_PARAMS,
};
use super::sqltext;
use crate::playbook::diag::{Diagnostic, Pos, hint};
use crate::playbook::yaml::{self, Positions};
use crate::playbook::{Severity, Templates, ValueTemplate};
use floodgate_databricks::{SqlParam, SqlType};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const DEFAULT_CONFIDENCE: f64 = 0.5;

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && s.len() <= 128
}

fn valid_id(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_lowercase() || f.is_ascii_digit())
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || x == '-' || x == '_')
        && s.len() <= 63
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

struct Checker<'a> {
    path: &'a str,
    text: &'a str,
    positions: Positions,
    diags: Vec<Diagnostic>,
    templates: Templates,
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

    fn unknown_keys(&mut self, map: &Map<String, Value>, pointer: &str, allowed: &[&str]) {
        for key in map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            let pos = self.positions.key(&format!("{pointer}/{}", escape(key)));
            let h = hint(key, allowed.iter().copied());
            let known = if h.is_empty() { format!(" (allowed: {})", allowed.join(", ")) } else { String::new() };
            self.error(pos, format!("unknown key {key:?}{h}{known}"));
        }
    }

    /// A string at `pointer`; reports a wrong type, and a missing value when `required`.
    fn string(&mut self, root: &Value, pointer: &str, required: bool) -> Option<String> {
        let field = pointer.rsplit('/').next().unwrap_or("").to_string();
        match root.pointer(pointer) {
            Some(Value::String(s)) => Some(s.clone()),
            None if required => {
                let parent = &pointer[..pointer.rfind('/').unwrap_or(0)];
                let within = if parent.is_empty() { String::new() } else { format!(" in {}", &parent[1..]) };
                self.error_at(parent, format!("missing required key {field:?}{within}"));
                None
            }
            None => None,
            Some(other) => {
                self.error_at(pointer, format!("{field}: expected a string, found {}", json_type(other)));
                None
            }
        }
    }

    fn duration(&mut self, root: &Value, pointer: &str) -> Option<Duration> {
        let s = self.string(root, pointer, false)?;
        let field = pointer.rsplit('/').next().unwrap_or("");
        match crate::duration::parse(&s) {
            Ok(d) if d.is_zero() => {
                self.error_at(pointer, format!("{field}: must be longer than 0"));
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                self.error_at(pointer, format!("{field}: {why}"));
                None
            }
        }
    }

    fn template(&mut self, root: &Value, pointer: &str, required: bool) -> Option<ValueTemplate> {
        let s = self.string(root, pointer, required)?;
        match self.templates.text(&s) {
            Ok(t) => Some(t),
            Err(e) => {
                let at = if e.line > 1 || e.col > 1 {
                    format!(" (template line {}, column {})", e.line, e.col)
                } else {
                    String::new()
                };
                self.error_at(pointer, format!("invalid template: {}{at}", e.message));
                None
            }
        }
    }

    fn column(&mut self, v: &Value, pointer: &str, what: &str) -> Option<String> {
        match v {
            Value::String(s) if is_identifier(s) => Some(s.clone()),
            Value::String(s) => {
                self.error_at(
                    pointer,
                    format!("{what}: {s:?} is not a column name (letters, digits and '_'; alias it in the SQL)"),
                );
                None
            }
            other => {
                self.error_at(pointer, format!("{what}: expected a column name, found {}", json_type(other)));
                None
            }
        }
    }

    /// Where byte `offset` of the SQL is in the file: exact for block scalars (`sql: |`) and
    /// one-line values, else the value's start with the SQL line and column in the message.
    fn sql_pos(&self, sql: &str, offset: usize) -> (Pos, String) {
        let (line, col) = sqltext::line_col(sql, offset);
        let start = self.positions.value("/sql");
        let fallback = (start, format!(" (SQL line {line}, column {col})"));
        let sql_line = sql.lines().nth(line - 1).unwrap_or("").trim_end();
        // Block scalars (`sql: |`) and one-line values start at the value's position, and a
        // block's lines all share its indentation. Checked against the file's own text, so a
        // folded or escaped value falls back rather than pointing at the wrong place.
        let target = start.line as usize + line - 1;
        let indent = start.col as usize - 1;
        let Some(file_line) = self.text.lines().nth(target - 1) else { return fallback };
        let rest: String = file_line.chars().skip(indent).collect();
        if rest.trim_end() == sql_line {
            return (Pos { line: target as u64, col: (indent + col) as u64 }, String::new());
        }
        if line == 1 && (rest.starts_with('"') || rest.starts_with('\'')) && rest[1..].starts_with(sql_line) {
            return (Pos { line: target as u64, col: (indent + 1 + col) as u64 }, String::new());
        }
        fallback
    }

    fn sql_error(&mut self, sql: &str, offset: usize, message: String) {
        let (pos, suffix) = self.sql_pos(sql, offset);
        self.error(pos, format!("sql: {message}{suffix}"));
    }
}

/// Checks one detection from its bytes; `path` is only used in messages.
pub fn compile(bytes: &[u8], path: &str) -> Result<Detection, Vec<Diagnostic>> {
    let at_start = |message: String| vec![Diagnostic { path: path.to_string(), line: 1, col: 1, message }];
    // Invalid UTF-8 is located by the YAML reader; only text can be "empty".
    let text = std::str::from_utf8(bytes).unwrap_or("");
    let only_comments =
        |t: &str| t.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
    if std::str::from_utf8(bytes).is_ok_and(only_comments) {
        return Err(at_start(
            "file is empty: expected a detection (a mapping with id, title, severity, sql and alert)".into(),
        ));
    }
    let (value, positions) = yaml::parse(bytes).map_err(|e| {
        vec![Diagnostic { path: path.to_string(), line: e.pos.line, col: e.pos.col, message: e.message }]
    })?;
    let mut c = Checker { path, text, positions, diags: Vec::new(), templates: Templates::new() };
    let Some(root) = value.as_object() else {
        c.error_at(
            "",
            format!(
                "expected a detection (a mapping with id, title, severity, sql and alert), found {}",
                json_type(&value)
            ),
        );
        return Err(c.diags);
    };
    c.unknown_keys(root, "", TOP_KEYS);

    let id = c.string(&value, "/id", true);
    if let Some(i) = &id
        && !valid_id(i)
    {
        c.error_at(
            "/id",
            format!("invalid detection id {i:?}: use lowercase letters, digits, '-' and '_' (at most 63)"),
        );
    }
    let title = c.string(&value, "/title", true);
    if title.as_ref().is_some_and(|t| t.trim().is_empty() || t.chars().count() > 200) {
        c.error_at("/title", "title: write 1 to 200 characters".into());
    }
    let description = c.string(&value, "/description", false).unwrap_or_default();
    let severity = c.string(&value, "/severity", true).and_then(|s| {
        let parsed = Severity::parse(&s);
        if parsed.is_none() {
            let levels = ["info", "low", "medium", "high", "critical"];
            let h = hint(&s, levels);
            c.error_at("/severity", format!("severity: expected one of {}, found {s:?}{h}", levels.join(", ")));
        }
        parsed
    });
    let confidence = match value.get("confidence") {
        None => Some(DEFAULT_CONFIDENCE),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|f| (0.0..=1.0).contains(&f)) => n.as_f64(),
        Some(other) => {
            c.error_at("/confidence", format!("confidence: expected a number from 0.0 to 1.0, found {other}"));
            None
        }
    };
    let tactic = c.string(&value, "/tactic", false);
    if let Some(t) = &tactic
        && !TACTICS.contains(&t.as_str())
    {
        let h = hint(t, TACTICS.iter().copied());
        let known = if h.is_empty() { format!(" (MITRE ATT&CK tactics: {})", TACTICS.join(", ")) } else { h };
        c.error_at("/tactic", format!("tactic: unknown tactic {t:?}{known}"));
    }
    let technique = c.string(&value, "/technique", false);
    if let Some(t) = &technique {
        let ok = t.len() >= 5
            && t.starts_with('T')
            && t[1..5].chars().all(|x| x.is_ascii_digit())
            && (t.len() == 5 || (t.len() == 9 && &t[5..6] == "." && t[6..].chars().all(|x| x.is_ascii_digit())));
        if !ok {
            c.error_at(
                "/technique",
                format!("technique: {t:?} is not a MITRE ATT&CK technique id such as T1110 or T1110.001"),
            );
        }
    }
    let enabled = match value.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            c.error_at("/enabled", format!("enabled: expected true or false, found {}", json_type(other)));
            true
        }
    };
    let interval = c.duration(&value, "/interval");
    if interval.is_some_and(|d| d < Duration::from_secs(1)) {
        c.error_at("/interval", "interval: run at most once a second (write e.g. 1m or 5m)".into());
    }
    let lookback = c.duration(&value, "/lookback").unwrap_or(Duration::ZERO);
    let workspaces = workspaces(&mut c, &value);
    let params = params(&mut c, &value);
    let sql = c.string(&value, "/sql", true).unwrap_or_default();
    let markers = check_sql(&mut c, &sql, &params);
    let alert = alert_mapping(&mut c, &value);

    if !c.diags.is_empty() {
        let mut d = c.diags;
        d.sort();
        return Err(d);
    }
    let (Some(id), Some(title), Some(severity), Some(confidence), Some(alert)) =
        (id, title, severity, confidence, alert)
    else {
        return Err(at_start("incomplete detection".into()));
    };
    Ok(Detection {
        id,
        title,
        description,
        severity,
        confidence,
        tactic,
        technique,
        enabled,
        interval: interval.unwrap_or(DEFAULT_INTERVAL),
        lookback,
        workspaces,
        sql,
        params: params.into_iter().map(|(_, p)| p).collect(),
        markers,
        alert,
        templates: c.templates,
        path: path.to_string(),
        hash: hex::encode(Sha256::digest(bytes)),
    })
}

fn workspaces(c: &mut Checker<'_>, root: &Value) -> Vec<String> {
    let check = |c: &mut Checker<'_>, v: &Value, ptr: &str| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        other => {
            c.error_at(ptr, format!("workspace: expected a workspace name, found {}", json_type(other)));
            None
        }
    };
    match root.get("workspace") {
        None => Vec::new(),
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().enumerate().filter_map(|(i, v)| check(c, v, &format!("/workspace/{i}"))).collect()
        }
        Some(Value::Array(_)) => {
            c.error_at("/workspace", "workspace: an empty list runs nowhere; leave the key out for the default".into());
            Vec::new()
        }
        Some(v) => check(c, v, "/workspace").into_iter().collect(),
    }
}

/// `params:` — name → `{type, value}` or a plain value (its type read from the YAML).
fn params(c: &mut Checker<'_>, root: &Value) -> Vec<(String, SqlParam)> {
    let Some(v) = root.get("params") else { return Vec::new() };
    let Some(map) = v.as_object() else {
        c.error_at("/params", format!("params: expected a mapping of name to value, found {}", json_type(v)));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, v) in map {
        let ptr = format!("/params/{}", escape(name));
        if !is_identifier(name) {
            let pos = c.positions.key(&ptr);
            c.error(pos, format!("parameter name {name:?}: use letters, digits and '_'"));
            continue;
        }
        if WINDOW_PARAMS.contains(&name.as_str()) {
            let pos = c.positions.key(&ptr);
            c.error(pos, format!("parameter {name:?} is set by floodgate for every window; choose another name"));
            continue;
        }
        let (type_name, raw): (Option<SqlType>, Option<String>) = match v {
            Value::Object(m) => {
                c.unknown_keys(m, &ptr, &["type", "value"]);
                let t = match m.get("type") {
                    Some(Value::String(t)) => {
                        SqlType::parse(t).filter(|t| SQL_TYPES.contains(&t.as_str())).or_else(|| {
                            let h = hint(&t.to_ascii_uppercase(), SQL_TYPES.iter().copied());
                            c.error_at(
                                &format!("{ptr}/type"),
                                format!("type: expected one of {}, found {t:?}{h}", SQL_TYPES.join(", ")),
                            );
                            None
                        })
                    }
                    None => Some(SqlType::String),
                    Some(other) => {
                        c.error_at(
                            &format!("{ptr}/type"),
                            format!("type: expected a type name, found {}", json_type(other)),
                        );
                        None
                    }
                };
                let value = match m.get("value") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    Some(Value::Bool(b)) => Some(b.to_string()),
                    Some(other) => {
                        c.error_at(
                            &format!("{ptr}/value"),
                            format!("value: expected a single value, found {}", json_type(other)),
                        );
                        continue;
                    }
                };
                (t, value)
            }
            Value::String(s) => (Some(SqlType::String), Some(s.clone())),
            Value::Number(n) if n.is_i64() || n.is_u64() => (Some(SqlType::Bigint), Some(n.to_string())),
            Value::Number(n) => (Some(SqlType::Double), Some(n.to_string())),
            Value::Bool(b) => (Some(SqlType::Boolean), Some(b.to_string())),
            other => {
                c.error_at(
                    &ptr,
                    format!("parameter {name:?}: expected a value or {{type, value}}, found {}", json_type(other)),
                );
                continue;
            }
        };
        let Some(t) = type_name else { continue };
        match SqlParam::typed(name, t, raw.as_deref()) {
            Ok(p) => out.push((name.clone(), p)),
            Err(e) => c.error_at(&ptr, e.message().to_string()),
        }
    }
    out
}

fn check_sql(c: &mut Checker<'_>, sql: &str, params: &[(String, SqlParam)]) -> BTreeSet<String> {
    if sql.is_empty() {
        return BTreeSet::new();
    }
    let scanned = sqltext::scan(sql);
    for p in &scanned.problems {
        c.sql_error(sql, p.offset, p.message.clone());
    }
    let declared: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    let mut used = BTreeSet::new();
    for m in &scanned.markers {
        let known = WINDOW_PARAMS.contains(&m.name.as_str()) || declared.contains(&m.name.as_str());
        if !known {
            let h = crate::playbook::diag::did_you_mean(
                &m.name,
                WINDOW_PARAMS.iter().copied().chain(declared.iter().copied()),
            )
            .map(|c| format!(" — did you mean :{c}?"))
            .unwrap_or_default();
            c.sql_error(
                sql,
                m.offset,
                format!(
                    "unknown parameter :{}{h} (floodgate sets {}; declare others under params)",
                    m.name,
                    WINDOW_PARAMS.iter().map(|p| format!(":{p}")).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        used.insert(m.name.clone());
    }
    let missing: Vec<&str> = ["since", "until"].into_iter().filter(|p| !used.contains(*p)).collect();
    if !missing.is_empty() {
        let list = missing.iter().map(|p| format!(":{p}")).collect::<Vec<_>>().join(" and ");
        c.error_at(
            "/sql",
            format!("sql: never uses {list}: a detection reads only its window (event_time >= :since AND event_time < :until)"),
        );
    }
    for (name, _) in params {
        if !used.contains(name) {
            let pos = c.positions.key(&format!("/params/{}", escape(name)));
            c.error(pos, format!("parameter {name:?} is declared but the SQL never uses :{name}"));
        }
    }
    used
}

fn alert_mapping(c: &mut Checker<'_>, root: &Value) -> Option<AlertMapping> {
    let Some(a) = root.get("alert") else {
        c.error_at("", "missing required key \"alert\" (how each result row becomes an alert)".into());
        return None;
    };
    let Some(map) = a.as_object() else {
        c.error_at("/alert", format!("alert: expected a mapping, found {}", json_type(a)));
        return None;
    };
    c.unknown_keys(map, "/alert", ALERT_KEYS);
    let title = c.template(root, "/alert/title", true);
    let description = c.template(root, "/alert/description", false);
    let key = match map.get("key") {
        None => vec!["event_id".to_string()],
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().enumerate().filter_map(|(i, v)| c.column(v, &format!("/alert/key/{i}"), "key")).collect()
        }
        Some(Value::String(s)) => c.column(&Value::String(s.clone()), "/alert/key", "key").into_iter().collect(),
        Some(other) => {
            c.error_at("/alert/key", format!("key: expected a list of column names, found {}", json_type(other)));
            Vec::new()
        }
    };
    let severity_column =
        map.get("severity_column").and_then(|v| c.column(v, "/alert/severity_column", "severity_column"));
    let mut entities = BTreeMap::new();
    match map.get("entities") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                let ptr = format!("/alert/entities/{}", escape(name));
                if !ENTITIES.contains(&name.as_str()) {
                    let pos = c.positions.key(&ptr);
                    let h = hint(name, ENTITIES.iter().copied());
                    c.error(pos, format!("unknown entity {name:?}{h} (entities: {})", ENTITIES.join(", ")));
                    continue;
                }
                if let Some(col) = c.column(v, &ptr, name) {
                    entities.insert(name.clone(), col);
                }
            }
        }
        Some(other) => c.error_at(
            "/alert/entities",
            format!("entities: expected a mapping of entity to column, found {}", json_type(other)),
        ),
    }
    let mut fields = BTreeMap::new();
    match map.get("fields") {
        None => {}
        Some(Value::Object(m)) => {
            for (name, v) in m {
                let ptr = format!("/alert/fields/{}", escape(name));
                if RESERVED_FIELDS.contains(&name.as_str()) || !is_identifier(name) {
                    let pos = c.positions.key(&ptr);
                    c.error(
                        pos,
                        format!("field name {name:?}: use letters, digits and '_', and not detection, window or row (the alert already has them)"),
                    );
                    continue;
                }
                if let Some(col) = c.column(v, &ptr, name) {
                    fields.insert(name.clone(), col);
                }
            }
        }
        Some(other) => c.error_at(
            "/alert/fields",
            format!("fields: expected a mapping of name to column, found {}", json_type(other)),
        ),
    }
    Some(AlertMapping { title: title?, description, key, severity_column, entities, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "id: failed-logins
title: Repeated failed logins
severity: medium
confidence: 0.7
tactic: credential-access
technique: T1110
interval: 5m
lookback: 1h
params:
  threshold: {type: INT, value: 5}
sql: |
  SELECT request_params.user AS user_name, count(*) AS failures
  FROM system.access.audit
  WHERE event_time >= :since AND event_time < :until
  GROUP BY 1 HAVING count(*) >= :threshold
alert:
  title: \"{{ row.user_name }} failed {{ row.failures }} times\"
  key: [user_name]
  entities: {user: user_name}
";

    fn errors(text: &str) -> Vec<String> {
        compile(text.as_bytes(), "d.yaml").map(|_| ()).unwrap_err().into_iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn a_good_detection_compiles() {
        let d = compile(GOOD.as_bytes(), "d.yaml").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(d.rule(), "detection:failed-logins");
        assert_eq!(d.markers.iter().map(String::as_str).collect::<Vec<_>>(), vec!["since", "threshold", "until"]);
        assert_eq!(d.params[0].value.as_deref(), Some("5"));
        assert_eq!((d.interval, d.lookback), (Duration::from_secs(300), Duration::from_secs(3600)));
        assert_eq!(d.alert.key, vec!["user_name"]);
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let bad = GOOD
            .replace("severity: medium", "severity: meduim")
            .replace("tactic: credential-access", "tactic: credential-acess")
            .replace("interval: 5m", "intervall: 5m")
            .replace(">= :threshold", ">= :treshold")
            .replace("entities: {user: user_name}", "entities: {usr: user_name}")
            .replace("confidence: 0.7", "confidence: 7");
        let e = errors(&bad);
        let want = [
            "d.yaml:3:11: error: severity: expected one of info, low, medium, high, critical, found \"meduim\" — did you mean \"medium\"?",
            "d.yaml:4:13: error: confidence: expected a number from 0.0 to 1.0, found 7",
            "d.yaml:5:9: error: tactic: unknown tactic \"credential-acess\" — did you mean \"credential-access\"?",
            "d.yaml:7:1: error: unknown key \"intervall\" — did you mean \"interval\"?",
            "d.yaml:10:3: error: parameter \"threshold\" is declared but the SQL never uses :threshold",
            "d.yaml:15:33: error: sql: unknown parameter :treshold — did you mean :threshold? (floodgate sets :since, :until, :since_date, :until_date; declare others under params)",
            "d.yaml:19:14: error: unknown entity \"usr\" — did you mean \"user\"? (entities: user, source_ip, workspace, table, token, cluster, service_principal)",
        ];
        assert_eq!(e, want);
    }

    #[test]
    fn sql_must_be_one_windowed_read() {
        let e =
            errors(&GOOD.replace("WHERE event_time >= :since AND event_time < :until", "WHERE event_time >= :since;"));
        assert!(e.iter().any(|m| m.contains("never uses :until")), "{e:?}");
        assert!(e.iter().any(|m| m.starts_with("d.yaml:14:29: error: sql: a detection is one statement")), "{e:?}");
        let e = errors(
            "id: x\ntitle: t\nseverity: low\nsql: \"DELETE FROM t WHERE a > :since AND a < :until\"\nalert: {title: t}\n",
        );
        assert_eq!(
            e,
            vec![
                "d.yaml:4:7: error: sql: detections run read-only queries: the SQL must start with SELECT or WITH, not DELETE"
            ]
        );
        let e = errors("id: X!\ntitle: t\nsql: 1\nalert: {titel: t, fields: {row: c}}\n");
        assert!(e.iter().any(|m| m.contains("invalid detection id")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("missing required key \"severity\"")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("sql: expected a string, found a number")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("unknown key \"titel\" — did you mean \"title\"?")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("missing required key \"title\" in alert")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("field name \"row\"")), "{e:?}");
        assert!(errors("# nothing\n")[0].contains("expected a detection"));
        assert!(errors("")[0].contains("file is empty: expected a detection"));
        let e = compile(b"id: \xff\n", "d.yaml").map(|_| ()).unwrap_err();
        assert!(e[0].message.contains("invalid UTF-8"), "{e:?}");
    }
}
