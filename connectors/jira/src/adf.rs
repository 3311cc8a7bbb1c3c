//! Atlassian Document Format (the rich-text JSON of Jira Cloud REST v3), as typed values.
//!
//! Descriptions and comments carry alert data an attacker controls, so they are built from these
//! types and serialized by serde: untrusted text only ever becomes the `text` of a text node and
//! can never add nodes, marks or links. This module must never build ADF by formatting strings.
//! Only the node types floodgate needs are modelled; each serializes to the shape the ADF
//! schema documents (`{"type": "...", "content": [...]}`, marks as `{"type": "strong"}`).

use serde::Serialize;

/// The root node: `{"type": "doc", "version": 1, "content": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename = "doc")]
pub struct Doc {
    pub version: u8,
    pub content: Vec<Block>,
}

impl Default for Doc {
    fn default() -> Self {
        Doc { version: 1, content: Vec::new() }
    }
}

impl Doc {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, block: Block) {
        self.content.push(block);
    }
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
    /// Plain text as paragraphs: a blank line starts a paragraph, a single newline is a hard break.
    pub fn from_plain(text: &str) -> Self {
        let mut doc = Doc::new();
        doc.content.extend(paragraphs(text));
        doc
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Block {
    Paragraph {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        content: Vec<Inline>,
    },
    Heading {
        attrs: HeadingAttrs,
        content: Vec<Inline>,
    },
    Table {
        attrs: TableAttrs,
        content: Vec<TableRow>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadingAttrs {
    pub level: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableAttrs {
    pub is_number_column_enabled: bool,
    pub layout: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename = "tableRow")]
pub struct TableRow {
    pub content: Vec<Cell>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Cell {
    TableHeader { content: Vec<Block> },
    TableCell { content: Vec<Block> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Inline {
    Text {
        text: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        marks: Vec<Mark>,
    },
    HardBreak,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Mark {
    Strong,
    Code,
    Link { attrs: LinkAttrs },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkAttrs {
    pub href: String,
}

/// Removes control characters other than newline and tab: they are invisible in Jira and some
/// make the ADF parser reject the document.
pub fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect()
}

/// A text node, or nothing when the text is empty (ADF text nodes may not be empty).
pub fn text(s: &str) -> Vec<Inline> {
    let s = clean(s);
    if s.is_empty() {
        return Vec::new();
    }
    vec![Inline::Text { text: s, marks: Vec::new() }]
}

pub fn strong(s: &str) -> Vec<Inline> {
    marked(s, Mark::Strong)
}

pub fn code(s: &str) -> Vec<Inline> {
    marked(s, Mark::Code)
}

fn marked(s: &str, mark: Mark) -> Vec<Inline> {
    let s = clean(s).replace('\n', " ");
    if s.is_empty() {
        return Vec::new();
    }
    vec![Inline::Text { text: s, marks: vec![mark] }]
}

/// A link whose target is trusted (floodgate's own URL); the label may be anything.
pub fn link(label: &str, href: &str) -> Vec<Inline> {
    let label = clean(label);
    if label.is_empty() {
        return Vec::new();
    }
    vec![Inline::Text { text: label, marks: vec![Mark::Link { attrs: LinkAttrs { href: href.to_string() } }] }]
}

pub fn paragraph(content: Vec<Inline>) -> Block {
    Block::Paragraph { content }
}

pub fn heading(level: u8, s: &str) -> Block {
    Block::Heading { attrs: HeadingAttrs { level }, content: text(&s.replace('\n', " ")) }
}

/// Paragraphs from plain text: blank lines separate paragraphs, single newlines become hard breaks.
pub fn paragraphs(text: &str) -> Vec<Block> {
    let text = clean(text).replace("\r\n", "\n");
    text.split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let mut content = Vec::new();
            for (i, line) in p.split('\n').enumerate() {
                if i > 0 {
                    content.push(Inline::HardBreak);
                }
                content.extend(self::text(line));
            }
            Block::Paragraph { content }
        })
        .collect()
}

/// A two-column table with a header row; values are plain text.
pub fn key_value_table(header: (&str, &str), rows: &[(String, String)]) -> Block {
    let cell = |header: bool, s: &str| {
        let content = vec![paragraph(if header { strong(s) } else { text(s) })];
        if header { Cell::TableHeader { content } } else { Cell::TableCell { content } }
    };
    let mut content = vec![TableRow { content: vec![cell(true, header.0), cell(true, header.1)] }];
    for (k, v) in rows {
        content.push(TableRow { content: vec![cell(false, k), cell(false, v)] });
    }
    Block::Table { attrs: TableAttrs { is_number_column_enabled: false, layout: "default" }, content }
}

/// Every text of a document, in order.
#[cfg(test)]
pub fn texts(value: &serde_json::Value) -> Vec<&str> {
    let mut out = Vec::new();
    collect_texts(value, &mut out);
    out
}

#[cfg(test)]
fn collect_texts<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("type").and_then(|t| t.as_str()) == Some("text")
                && let Some(t) = m.get("text").and_then(|t| t.as_str())
            {
                out.push(t);
            }
            if let Some(c) = m.get("content") {
                collect_texts(c, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_texts(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_to_documented_adf_shapes() {
        let mut doc = Doc::new();
        doc.push(heading(2, "Alert"));
        doc.push(paragraph(link("open", "https://fg/x")));
        doc.push(key_value_table(("Field", "Value"), &[("ip".into(), "203.0.113.9".into())]));
        let v = doc.to_value();
        assert_eq!(v["type"], "doc");
        assert_eq!(v["version"], 1);
        assert_eq!(
            v["content"][0],
            json!({"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Alert"}]})
        );
        assert_eq!(
            v["content"][1]["content"][0]["marks"][0],
            json!({"type": "link", "attrs": {"href": "https://fg/x"}})
        );
        assert_eq!(v["content"][2]["type"], "table");
        assert_eq!(v["content"][2]["attrs"]["isNumberColumnEnabled"], false);
        assert_eq!(v["content"][2]["content"][0]["content"][0]["type"], "tableHeader");
        assert_eq!(v["content"][2]["content"][1]["content"][1]["content"][0]["content"][0]["text"], "203.0.113.9");
    }

    #[test]
    fn untrusted_markup_stays_text() {
        let doc = Doc::from_plain("[click](https://evil) {\"type\":\"x\"}\nline2\n\npara2\u{0}");
        let v = doc.to_value();
        assert_eq!(v["content"].as_array().unwrap().len(), 2);
        assert_eq!(v["content"][0]["content"][0]["text"], "[click](https://evil) {\"type\":\"x\"}");
        assert_eq!(v["content"][0]["content"][1]["type"], "hardBreak");
        assert_eq!(v["content"][1]["content"][0]["text"], "para2");
        assert_eq!(texts(&v), vec!["[click](https://evil) {\"type\":\"x\"}", "line2", "para2"]);
    }
}
