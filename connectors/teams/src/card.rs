//! Adaptive Card 1.5 as typed structs, the Workflows webhook envelope around it, and the rules
//! a card sent through a webhook must follow.
//!
//! Only the elements floodgate uses are modelled. Actions are `Action.OpenUrl` only: a
//! Workflows (Power Automate) webhook posts as the flow, not as a bot, so `Action.Submit` and
//! `Action.Execute` have nobody to deliver to; the [`Action`] type cannot express them, and
//! [`check_webhook_card`] refuses them anywhere in a card as a second line of defence.
//!
//! Untrusted text goes into `TextRun`s (the Adaptive Card schema: "Markdown is not supported"
//! in a TextRun), so alert data cannot format or link anything. `FactSet` values are rendered
//! with markdown by Teams, so they pass through [`plain`], which breaks link syntax.
//! This module must never build a card by formatting JSON text.

use serde::Serialize;
use serde_json::Value;

pub const CARD_VERSION: &str = "1.5";
pub const CARD_SCHEMA: &str = "http://adaptivecards.io/schemas/adaptive-card.json";
pub const ADAPTIVE_CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";

/// What a Workflows webhook ("Post to a channel when a webhook request is received") expects.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    #[serde(rename = "contentType")]
    pub content_type: &'static str,
    /// Always null: the card is inline.
    #[serde(rename = "contentUrl")]
    pub content_url: Option<String>,
    pub content: AdaptiveCard,
}

impl Envelope {
    /// A message with one Adaptive Card.
    pub fn card(card: AdaptiveCard) -> Envelope {
        Envelope {
            kind: "message",
            attachments: vec![Attachment {
                content_type: ADAPTIVE_CARD_CONTENT_TYPE,
                content_url: None,
                content: card,
            }],
        }
    }

    /// The size Teams counts against its 28 KB limit: the serialized envelope.
    pub fn size(&self) -> usize {
        serde_json::to_vec(self).map(|v| v.len()).unwrap_or(usize::MAX)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AdaptiveCard {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(rename = "$schema")]
    pub schema: &'static str,
    pub version: &'static str,
    pub body: Vec<Element>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// Shown by clients that cannot render the card, and in notifications.
    #[serde(rename = "fallbackText", skip_serializing_if = "Option::is_none")]
    pub fallback_text: Option<String>,
}

impl AdaptiveCard {
    pub fn new(body: Vec<Element>, actions: Vec<Action>, fallback_text: String) -> Self {
        AdaptiveCard {
            kind: "AdaptiveCard",
            schema: CARD_SCHEMA,
            version: CARD_VERSION,
            body,
            actions,
            fallback_text: Some(plain(&fallback_text)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum Element {
    RichTextBlock(RichTextBlock),
    FactSet(FactSet),
    Container(Container),
}

#[derive(Debug, Clone, Serialize)]
pub struct RichTextBlock {
    pub inlines: Vec<TextRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spacing: Option<Spacing>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separator: Option<bool>,
}

/// Text shown as written: no markdown, no links.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename = "TextRun")]
pub struct TextRun {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<Weight>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
    #[serde(rename = "fontType", skip_serializing_if = "Option::is_none")]
    pub font_type: Option<FontType>,
    #[serde(rename = "isSubtle", skip_serializing_if = "Option::is_none")]
    pub is_subtle: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
}

impl TextRun {
    pub fn new(text: impl Into<String>) -> Self {
        TextRun { text: text.into(), weight: None, size: None, font_type: None, is_subtle: None, color: None }
    }
    pub fn bold(mut self) -> Self {
        self.weight = Some(Weight::Bolder);
        self
    }
    pub fn size(mut self, s: Size) -> Self {
        self.size = Some(s);
        self
    }
    pub fn monospace(mut self) -> Self {
        self.font_type = Some(FontType::Monospace);
        self
    }
    pub fn subtle(mut self) -> Self {
        self.is_subtle = Some(true);
        self
    }
    pub fn color(mut self, c: Color) -> Self {
        self.color = Some(c);
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FactSet {
    pub facts: Vec<Fact>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    pub title: String,
    pub value: String,
}

impl Fact {
    /// A fact from untrusted text: link syntax broken, lengths bounded.
    pub fn new(title: &str, value: &str) -> Self {
        Fact { title: plain(&cut(title, 100)), value: plain(&cut(value, 500)) }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Container {
    pub items: Vec<Element>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub style: Option<ContainerStyle>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type")]
pub enum Action {
    /// The only action a webhook card can carry that works: opens a link.
    #[serde(rename = "Action.OpenUrl")]
    OpenUrl {
        title: String,
        url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        style: Option<ActionStyle>,
    },
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weight {
    Bolder,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Size {
    Small,
    Medium,
    Large,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FontType {
    Monospace,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Attention,
    Warning,
    Good,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    Medium,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStyle {
    Emphasis,
    Attention,
    Warning,
    Good,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStyle {
    Positive,
    Destructive,
}

/// Cuts to `max` characters, marking the cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Text for places Teams renders as markdown (fact values, fallback text): breaks the link
/// constructs `[label](url)`, `[label]: url` and `<url>` with an invisible zero-width space,
/// and drops control characters. Emphasis markers are left alone: they can only make text
/// bold or italic. Plain text such as IP addresses and emails stays exactly as it was.
pub fn plain(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    for c in s.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.push(' ');
            prev = Some(' ');
            continue;
        }
        if matches!((prev, c), (Some(']'), '(' | ':' | '[')) {
            out.push('\u{200B}');
        }
        out.push(c);
        if c == '<' {
            out.push('\u{200B}');
        }
        prev = Some(c);
    }
    out
}

/// An `Action.OpenUrl` for an http(s) URL floodgate trusts (its own pages, a step's links);
/// `None` for anything else.
pub fn open_url(title: &str, url: &str, style: Option<ActionStyle>) -> Option<Action> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    Some(Action::OpenUrl { title: cut(title, 80), url: parsed.to_string(), style })
}

/// The webhook rule the Adaptive Card schema cannot express: no `Action.Submit` or
/// `Action.Execute` anywhere (actions, selectAction, ActionSet, ShowCard cards, fallbacks).
/// Returns the JSON pointer of every offending action.
pub fn check_webhook_card(card: &Value) -> Result<(), Vec<String>> {
    let mut found = Vec::new();
    walk(card, String::new(), &mut found);
    if found.is_empty() { Ok(()) } else { Err(found) }
}

fn walk(v: &Value, at: String, found: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(t)) = map.get("type")
                && matches!(t.as_str(), "Action.Submit" | "Action.Execute")
            {
                found.push(format!("{at}: {t} is not supported by Teams webhooks (use Action.OpenUrl)"));
            }
            for (k, child) in map {
                walk(child, format!("{at}/{k}"), found);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_breaks_links_but_keeps_data_readable() {
        let p = plain("[Reset password](https://evil.example) <https://evil.example> [x]: https://e");
        assert!(!p.contains("]("), "{p}");
        assert!(!p.contains("]:"), "{p}");
        assert!(!p.contains("<h"), "{p}");
        assert_eq!(plain("203.0.113.66 alice@example.com"), "203.0.113.66 alice@example.com");
    }

    #[test]
    fn submit_and_execute_are_found_anywhere() {
        let card = json!({"type": "AdaptiveCard", "body": [{"type": "ActionSet", "actions": [{"type": "Action.Submit"}]}],
            "actions": [{"type": "Action.ShowCard", "card": {"actions": [{"type": "Action.Execute"}]}}, {"type": "Action.OpenUrl"}]});
        let errs = check_webhook_card(&card).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].starts_with("/actions/0/card/actions/0") || errs[1].starts_with("/actions/0/card/actions/0"));
        assert!(check_webhook_card(&json!({"actions": [{"type": "Action.OpenUrl"}]})).is_ok());
    }

    #[test]
    fn open_url_takes_http_links_only() {
        assert!(open_url("x", "https://fg.example/a?b=1", None).is_some());
        assert!(open_url("x", "javascript:alert(1)", None).is_none());
        assert!(open_url("x", "not a url", None).is_none());
    }
}
