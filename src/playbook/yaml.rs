//! YAML to JSON with positions.
//!
//! A playbook is parsed once into a tree where every node (and every mapping key) keeps its
//! line and column, then turned into a `serde_json::Value` plus a map from JSON pointer to
//! position. Everything after this (schema checks, semantic checks) works on JSON and asks the
//! map where a value was written, so every error names `file:line:col`.
//!
//! Hostile input stops here with a clear error: files over the size limit are not read, invalid
//! UTF-8 is located, and serde-saphyr's budget bounds aliases (billion-laughs), nesting depth,
//! node counts and scalar bytes before anything is built.

use super::diag::Pos;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::fmt;

/// Playbooks larger than this are refused before parsing.
pub const MAX_BYTES: usize = 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 48;

/// Where each value and key was written, by JSON pointer (`/steps/triage/0/with/ip`).
#[derive(Debug, Default, Clone)]
pub struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Positions {
    /// Position of the value at `pointer`, or of its closest ancestor that has one.
    pub fn value(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, col: 1 },
            }
        }
    }
    /// Position of the key naming the value at `pointer` (falls back to the value).
    pub fn key(&self, pointer: &str) -> Pos {
        self.keys.get(pointer).copied().unwrap_or_else(|| self.value(pointer))
    }
}

/// A problem found while reading the file, with its position.
#[derive(Debug, Clone)]
pub struct ReadError {
    pub pos: Pos,
    pub message: String,
}

enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Node, D2::Error> {
                Node::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = a.next_key::<Spanned<String>>()? {
                    let v = a.next_value()?;
                    entries.push((k, v));
                }
                Ok(Node::Map(entries))
            }
            fn visit_bytes<E: de::Error>(self, _v: &[u8]) -> Result<Node, E> {
                Err(E::custom("binary values are not supported in playbooks"))
            }
        }
        d.deserialize_any(V)
    }
}

fn budget() -> serde_saphyr::Budget {
    let mut b = serde_saphyr::Budget::default();
    b.max_events = 200_000;
    b.max_aliases = 1_000;
    b.max_anchors = 1_000;
    b.max_recorded_anchor_events = 50_000;
    b.max_recorded_anchor_bytes = 4 * 1024 * 1024;
    b.max_depth = MAX_DEPTH;
    b.max_nodes = 100_000;
    b.max_total_scalar_bytes = 4 * 1024 * 1024;
    b.max_documents = 1;
    b.max_merge_keys = 1_000;
    b.flow_nesting_limit = MAX_DEPTH;
    b
}

/// Position of byte `offset` in `text`, 1-based, counting characters for the column.
pub fn offset_pos(text: &str, offset: usize) -> Pos {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    let line_start = before.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[line_start..]).chars().count() as u64 + 1;
    Pos { line, col }
}

/// Checks size and encoding, then parses. `bytes` is the whole file.
pub fn parse(bytes: &[u8]) -> Result<(Value, Positions), ReadError> {
    let at_start = Pos { line: 1, col: 1 };
    if bytes.len() > MAX_BYTES {
        return Err(ReadError {
            pos: at_start,
            message: format!("file is {} bytes; playbooks are limited to {} bytes (1 MiB)", bytes.len(), MAX_BYTES),
        });
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or("");
            return Err(ReadError {
                pos: offset_pos(valid, valid.len()),
                message: format!("invalid UTF-8 (byte 0x{:02x}); playbooks must be UTF-8 text", bytes[e.valid_up_to()]),
            });
        }
    };
    if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---") {
        return Err(ReadError {
            pos: at_start,
            message: "file is empty: expected a playbook (a mapping with id, name, match and steps)".into(),
        });
    }
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget());
    // YAML 1.2 booleans only: `no`, `on`, `y`, `n` are strings, as authors of step ids and
    // messages expect (YAML 1.1 would silently turn `id: n` into false).
    options.strict_booleans = true;
    let root: Spanned<Node> = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let pos = e.location().map(|l| Pos { line: l.line().max(1), col: l.column().max(1) }).unwrap_or(at_start);
        ReadError { pos, message: clean_yaml_message(&e.without_snippet().to_string()) }
    })?;
    let mut positions = Positions::default();
    let value = to_json(root, String::new(), &mut positions);
    Ok((value, positions))
}

/// serde-saphyr prefixes messages with "error: line N column M: "; we print our own position.
fn clean_yaml_message(m: &str) -> String {
    let mut s = m.trim().strip_prefix("error: ").unwrap_or(m.trim());
    if let Some(rest) = s.strip_prefix("line ")
        && let Some(i) = rest.find(": ")
    {
        let head = &rest[..i];
        if head.split(" column ").all(|p| p.trim().chars().all(|c| c.is_ascii_digit())) {
            s = &rest[i + 2..];
        }
    }
    let mut first = s.lines().next().unwrap_or(s).trim();
    // "... at line 3, column 1": the position is printed in front already.
    if let Some(i) = first.rfind(" at line ")
        && first[i + 9..].split(", column ").all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        first = &first[..i];
    }
    // serde-saphyr suggests a parser option to duplicate keys; people editing a file cannot set
    // it, and a duplicate key is an error here.
    if let Some(rest) = first.strip_prefix("duplicate mapping key") {
        let rest = rest.strip_suffix(", set DuplicateKeyPolicy in Options if acceptable").unwrap_or(rest);
        return match rest.strip_prefix(": ") {
            Some(key) => format!("YAML: duplicate key `{key}`"),
            None => "YAML: duplicate key".to_string(),
        };
    }
    format!("YAML: {first}")
}

fn escape(seg: &str) -> String {
    seg.replace('~', "~0").replace('/', "~1")
}

fn to_json(node: Spanned<Node>, pointer: String, positions: &mut Positions) -> Value {
    positions
        .values
        .insert(pointer.clone(), Pos { line: node.referenced.line().max(1), col: node.referenced.column().max(1) });
    match node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(i) => Value::Number(i.into()),
        Node::UInt(u) => Value::Number(u.into()),
        Node::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Node::Str(s) => Value::String(s),
        Node::Seq(items) => Value::Array(
            items.into_iter().enumerate().map(|(i, item)| to_json(item, format!("{pointer}/{i}"), positions)).collect(),
        ),
        Node::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let child = format!("{pointer}/{}", escape(&k.value));
                positions
                    .keys
                    .insert(child.clone(), Pos { line: k.referenced.line().max(1), col: k.referenced.column().max(1) });
                let value = to_json(v, child, positions);
                map.insert(k.value, value);
            }
            Value::Object(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_duplicate_key_names_the_key_without_internal_hints() {
        let e = parse(b"id: x\nsteps: {}\nid: y\n").unwrap_err();
        assert_eq!(e.message, "YAML: duplicate key `id`", "{e:?}");
        assert_eq!(e.pos.line, 3, "{e:?}");
    }

    #[test]
    fn yaml_11_booleans_stay_strings() {
        let (v, _) = parse(b"a: n\nb: no\nc: on\nd: yes\ne: true\nf: False\n").unwrap();
        assert_eq!(
            (v["a"].as_str(), v["b"].as_str(), v["c"].as_str(), v["d"].as_str()),
            (Some("n"), Some("no"), Some("on"), Some("yes"))
        );
        assert_eq!((v["e"].as_bool(), v["f"].as_bool()), (Some(true), Some(false)));
    }

    #[test]
    fn keeps_positions_of_values_and_keys() {
        let (v, p) = parse(b"id: x\nsteps:\n  triage:\n    - id: a\n      with: {ip: \"1.2.3.4\"}\n").unwrap();
        assert_eq!(v["steps"]["triage"][0]["with"]["ip"], "1.2.3.4");
        assert_eq!(p.value("/steps/triage/0/id"), Pos { line: 4, col: 11 });
        assert_eq!(p.key("/steps/triage/0/with"), Pos { line: 5, col: 7 });
        assert_eq!(p.value("/steps/triage/0/with/ip/nothing"), p.value("/steps/triage/0/with/ip"));
    }

    fn must_fail_fast(input: &[u8]) -> ReadError {
        let start = Instant::now();
        let e = parse(input).map(|_| ()).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
        e
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = must_fail_fast(s.as_bytes());
        assert!(e.message.starts_with("YAML:"), "{}", e.message);
    }

    #[test]
    fn deep_nesting_is_refused_quickly() {
        let s = "[".repeat(10_000) + &"]".repeat(10_000);
        must_fail_fast(s.as_bytes());
        let mut block = String::new();
        for i in 0..500 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        must_fail_fast(block.as_bytes());
    }

    #[test]
    fn huge_empty_and_binary_files_are_refused() {
        let e = must_fail_fast(&vec![b'#'; MAX_BYTES + 1]);
        assert!(e.message.contains("limited to"), "{}", e.message);
        let e = must_fail_fast(b"   \n# only a comment\n");
        assert!(e.message.contains("empty"), "{}", e.message);
        let e = must_fail_fast(b"id: ok\nname: \xff\xfe\n");
        assert_eq!(e.pos, Pos { line: 2, col: 7 });
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_have_positions_and_short_messages() {
        let e = must_fail_fast(b"a: [1, 2\nb: 3\n");
        assert_eq!(e.pos.line, 2);
        assert!(!e.message.contains("-->"), "{}", e.message);
        let e = must_fail_fast(b"a: 1\na: 2\n");
        assert!(e.message.contains("duplicate"), "{}", e.message);
    }
}
