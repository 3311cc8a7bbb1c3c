//! Templates and conditions (tera 2), compiled once per playbook.
//!
//! Three shapes:
//! - a **text** template renders to a string (`"Login from {{ alert.entities.source_ip }}"`);
//! - a **value** template is a string holding exactly one `{{ expression }}`: it keeps the
//!   expression's JSON type, so `"{{ steps.lookup.output.ips }}"` is a list, not its text;
//! - a **condition** is a bare tera expression (`alert.severity == "high"`), true or false.
//!
//! Strings without `{{` or `{%` are literals and never touch tera. Templates see only the
//! context the engine builds (`alert`, `incident`, `steps`, `vars`, `run`, `item`), never
//! secrets, and render with autoescape off: connectors escape for their own targets.

use serde_json::Value;
use std::fmt;

/// A template that failed to compile, with its position inside the template text.
#[derive(Debug, Clone)]
pub struct TemplateError {
    pub message: String,
    /// 1-based line and column inside the template source, when tera knows them.
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Rendering failed at run time (an undefined variable, a filter on the wrong type).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// A compiled string: a literal, a text template or a typed expression.
#[derive(Debug, Clone)]
pub enum ValueTemplate {
    Literal(Value),
    Text(String),
    /// `typed` renders the expression as JSON; `plain` renders it as text and is used to explain
    /// a failure (tera names the missing field only when it renders the expression directly).
    Expr {
        typed: String,
        plain: String,
    },
}

/// A compiled condition (the name of its tera template).
#[derive(Debug, Clone)]
pub struct Condition {
    name: String,
    pub source: String,
}

/// The structure of a step's `with:` map, with strings compiled and everything else kept.
#[derive(Debug, Clone)]
pub enum Input {
    Value(ValueTemplate),
    Object(Vec<(String, Input)>),
    Array(Vec<Input>),
}

pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

/// The expression inside a string that is exactly `{{ expr }}` (one expression, nothing else).
fn single_expression(s: &str) -> Option<&str> {
    let t = s.trim();
    let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    Some(inner.trim())
}

/// Every template of one playbook, in one tera instance.
pub struct Templates {
    tera: tera::Tera,
    count: usize,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Templates({})", self.count)
    }
}

fn tojson(v: tera::Value, _: tera::Kwargs, _: &tera::State) -> tera::TeraResult<String> {
    if v.is_undefined() {
        return Err(tera::Error::message("the value is not defined"));
    }
    serde_json::to_string(&v).map_err(|e| tera::Error::message(e.to_string()))
}

fn urlencode(s: &str, _: tera::Kwargs, _: &tera::State) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(Vec::<&str>::new());
        tera.register_filter("tojson", tojson);
        tera.register_filter("urlencode", urlencode);
        Templates { tera, count: 0 }
    }

    fn add(&mut self, source: &str, prefix_len: usize) -> Result<String, TemplateError> {
        let name = format!("t{}", self.count);
        self.count += 1;
        self.tera.add_raw_template(&name, source).map_err(|e| {
            let (message, line, col) = match e.kind() {
                tera::ErrorKind::SyntaxError(r) | tera::ErrorKind::RenderingError(r) => {
                    let s = r.span();
                    let col = if s.start_line == 1 {
                        (s.start_col + 1).saturating_sub(prefix_len).max(1)
                    } else {
                        s.start_col + 1
                    };
                    // The wrapper around a condition is ours; speak of the condition's end instead.
                    let message = r.message().replace("Found `%}`", "Found the end of the condition");
                    (message, s.start_line.max(1), col)
                }
                _ => (first_line(&e.to_string()), 1, 1),
            };
            TemplateError { message, line, col }
        })?;
        Ok(name)
    }

    /// Compiles a string: a literal, a typed single expression, or a text template.
    pub fn value(&mut self, s: &str) -> Result<ValueTemplate, TemplateError> {
        if !is_template(s) {
            return Ok(ValueTemplate::Literal(Value::String(s.to_string())));
        }
        if let Some(expr) = single_expression(s) {
            let lead = s.len() - s.trim_start().len();
            // Compile the expression alone first so errors point into the author's text.
            let plain = self.add(&format!("{{{{ {expr} }}}}"), 0).map_err(|mut e| {
                if e.line == 1 {
                    e.col += lead;
                }
                e
            })?;
            let typed = self.add(&format!("{{{{ ({expr}) | tojson }}}}"), 0)?;
            return Ok(ValueTemplate::Expr { typed, plain });
        }
        Ok(ValueTemplate::Text(self.add(s, 0)?))
    }

    /// Compiles a string that must render to text (URLs, group keys).
    pub fn text(&mut self, s: &str) -> Result<ValueTemplate, TemplateError> {
        if !is_template(s) {
            return Ok(ValueTemplate::Literal(Value::String(s.to_string())));
        }
        Ok(ValueTemplate::Text(self.add(s, 0)?))
    }

    /// Compiles a condition. `{{ … }}` around it is accepted and ignored.
    pub fn condition(&mut self, s: &str) -> Result<Condition, TemplateError> {
        let expr = single_expression(s).unwrap_or(s).trim();
        if expr.is_empty() {
            return Err(TemplateError { message: "empty condition".into(), line: 1, col: 1 });
        }
        if expr.contains("{{") || expr.contains("{%") {
            return Err(TemplateError {
                message: "a condition is one expression, e.g. alert.severity == \"high\"; remove the {{ }} or {% %} inside it".into(),
                line: 1,
                col: 1,
            });
        }
        let prefix = "{% if ";
        let name = self.add(&format!("{prefix}{expr} %}}true{{% else %}}false{{% endif %}}"), prefix.len())?;
        Ok(Condition { name, source: s.to_string() })
    }

    /// Compiles a `with:` structure, calling `on_error` for every bad template with its pointer.
    pub fn input(&mut self, v: &Value, pointer: &str, on_error: &mut dyn FnMut(&str, TemplateError)) -> Input {
        match v {
            Value::String(s) => match self.value(s) {
                Ok(t) => Input::Value(t),
                Err(e) => {
                    on_error(pointer, e);
                    Input::Value(ValueTemplate::Literal(Value::Null))
                }
            },
            Value::Object(map) => Input::Object(
                map.iter()
                    .map(|(k, v)| {
                        let p = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                        (k.clone(), self.input(v, &p, on_error))
                    })
                    .collect(),
            ),
            Value::Array(items) => Input::Array(
                items.iter().enumerate().map(|(i, v)| self.input(v, &format!("{pointer}/{i}"), on_error)).collect(),
            ),
            other => Input::Value(ValueTemplate::Literal(other.clone())),
        }
    }

    pub fn render_value(&self, t: &ValueTemplate, ctx: &tera::Context) -> Result<Value, RenderError> {
        match t {
            ValueTemplate::Literal(v) => Ok(v.clone()),
            ValueTemplate::Text(name) => self.render(name, ctx).map(Value::String),
            ValueTemplate::Expr { typed, plain } => {
                let json = self.render(typed, ctx).map_err(|e| match self.render(plain, ctx) {
                    Err(better) => better,
                    Ok(_) => e,
                })?;
                serde_json::from_str(&json).map_err(|e| RenderError(format!("expression did not produce a value: {e}")))
            }
        }
    }

    /// Renders to text: typed values are written as JSON (strings without quotes).
    pub fn render_text(&self, t: &ValueTemplate, ctx: &tera::Context) -> Result<String, RenderError> {
        Ok(match self.render_value(t, ctx)? {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        })
    }

    pub fn render_input(&self, input: &Input, ctx: &tera::Context) -> Result<Value, RenderError> {
        Ok(match input {
            Input::Value(t) => self.render_value(t, ctx)?,
            Input::Object(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    m.insert(k.clone(), self.render_input(v, ctx).map_err(|e| RenderError(format!("{k}: {}", e.0)))?);
                }
                Value::Object(m)
            }
            Input::Array(items) => {
                Value::Array(items.iter().map(|i| self.render_input(i, ctx)).collect::<Result<_, _>>()?)
            }
        })
    }

    pub fn eval(&self, c: &Condition, ctx: &tera::Context) -> Result<bool, RenderError> {
        Ok(self.render(&c.name, ctx)? == "true")
    }

    fn render(&self, name: &str, ctx: &tera::Context) -> Result<String, RenderError> {
        self.tera.render(name, ctx).map_err(|e| {
            RenderError(match e.kind() {
                tera::ErrorKind::RenderingError(r) | tera::ErrorKind::SyntaxError(r) => r.message().to_string(),
                _ => first_line(&e.to_string()),
            })
        })
    }
}

fn first_line(s: &str) -> String {
    let s = s.trim().strip_prefix("error: ").unwrap_or(s.trim());
    s.lines().next().unwrap_or("").to_string()
}

/// The step ids a template refers to as `steps.<id>` or `steps["<id>"]`.
pub fn step_references(source: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while let Some(found) = source[i..].find("steps") {
        let start = i + found;
        let end = start + 5;
        i = end;
        let boundary_before = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_' || bytes[start - 1] == b'.');
        if !boundary_before || end >= bytes.len() {
            continue;
        }
        let rest = &source[end..];
        let id = if let Some(r) = rest.strip_prefix('.') {
            r.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("")
        } else if let Some(r) = rest.strip_prefix("[\"").or_else(|| rest.strip_prefix("['")) {
            r.split(['"', '\'']).next().unwrap_or("")
        } else {
            ""
        };
        if !id.is_empty() {
            out.push((id.to_string(), start));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> tera::Context {
        tera::Context::from_serialize(&v).unwrap()
    }

    #[test]
    fn single_expressions_keep_their_type_and_text_stays_text() {
        let mut t = Templates::new();
        let list = t.value("{{ alert.ips }}").unwrap();
        let text = t.value("ip {{ alert.ips | first }}").unwrap();
        let joined = t.value("{{ alert.a ~ '-' ~ alert.b }}").unwrap();
        let lit = t.value("plain").unwrap();
        let c = ctx(json!({"alert": {"ips": ["1.2.3.4", "5.6.7.8"], "a": "x", "b": 2}}));
        assert_eq!(t.render_value(&list, &c).unwrap(), json!(["1.2.3.4", "5.6.7.8"]));
        assert_eq!(t.render_value(&text, &c).unwrap(), json!("ip 1.2.3.4"));
        assert_eq!(t.render_value(&joined, &c).unwrap(), json!("x-2"));
        assert_eq!(t.render_value(&lit, &c).unwrap(), json!("plain"));
    }

    #[test]
    fn conditions_evaluate_and_report_errors_in_author_columns() {
        let mut t = Templates::new();
        let c = t.condition("alert.severity == 'high' and alert.confidence >= 0.9").unwrap();
        assert!(t.eval(&c, &ctx(json!({"alert": {"severity": "high", "confidence": 0.95}}))).unwrap());
        assert!(!t.eval(&c, &ctx(json!({"alert": {"severity": "low", "confidence": 0.95}}))).unwrap());
        let braces = t.condition("{{ alert.x is defined }}").unwrap();
        assert!(!t.eval(&braces, &ctx(json!({"alert": {}}))).unwrap());
        let e = t.condition("alert.severity == ").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.col >= 16 && e.col <= 20, "col {}", e.col);
    }

    #[test]
    fn undefined_values_are_render_errors_not_empty_strings() {
        let mut t = Templates::new();
        let v = t.value("{{ alert.nope }}").unwrap();
        let e = t.render_value(&v, &ctx(json!({"alert": {}}))).unwrap_err();
        assert!(e.0.contains("nope"), "{}", e.0);
    }

    #[test]
    fn urlencode_filter_escapes_alert_values() {
        let mut t = Templates::new();
        let v = t.value("https://x/{{ alert.id | urlencode }}").unwrap();
        let out = t.render_value(&v, &ctx(json!({"alert": {"id": "a b/../c?d=1"}}))).unwrap();
        assert_eq!(out, json!("https://x/a%20b%2F..%2Fc%3Fd%3D1"));
    }

    #[test]
    fn finds_step_references() {
        let refs: Vec<String> = step_references("{{ steps.lookup.output.x }} {{ steps['b'].output }} {{ mysteps.no }}")
            .into_iter()
            .map(|r| r.0)
            .collect();
        assert_eq!(refs, vec!["lookup", "b"]);
    }
}
