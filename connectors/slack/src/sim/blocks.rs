//! Block Kit validation as Slack's `invalid_blocks` applies it, for the block and element
//! types floodgate can send (section, context, actions with buttons, header, divider).
//! Limits come from Slack's Block Kit reference. Anything else is refused, as Slack refuses
//! what it does not know, so a connector bug shows up as the error a real workspace gives.

use serde_json::{Map, Value};
use std::collections::HashSet;

const MAX_BLOCKS: usize = 50;

/// Every problem, each as Slack words it: `<reason> [json-pointer:/blocks/0/text]`.
pub fn validate(blocks: &Value) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    let Some(list) = blocks.as_array() else {
        return Err(vec!["must be an array [json-pointer:/blocks]".into()]);
    };
    if list.len() > MAX_BLOCKS {
        errs.push(format!("must contain at most {MAX_BLOCKS} blocks [json-pointer:/blocks]"));
    }
    let mut block_ids = HashSet::new();
    let mut action_ids = HashSet::new();
    for (i, b) in list.iter().enumerate() {
        let at = format!("/blocks/{i}");
        let Some(obj) = b.as_object() else {
            errs.push(format!("must be an object [json-pointer:{at}]"));
            continue;
        };
        if let Some(id) = obj.get("block_id") {
            match id.as_str() {
                Some(s) if !s.is_empty() && s.chars().count() <= 255 => {
                    if !block_ids.insert(s.to_string()) {
                        errs.push(format!("duplicate block_id [json-pointer:{at}/block_id]"));
                    }
                }
                _ => errs.push(format!("must be a string of 1-255 characters [json-pointer:{at}/block_id]")),
            }
        }
        match obj.get("type").and_then(Value::as_str) {
            Some("section") => section(obj, &at, &mut errs),
            Some("context") => context_block(obj, &at, &mut errs),
            Some("actions") => actions(obj, &at, &mut action_ids, &mut errs),
            Some("header") => {
                only(obj, &["type", "block_id", "text", "level"], &at, &mut errs);
                plain_text(obj.get("text"), 150, &format!("{at}/text"), &mut errs);
            }
            Some("divider") => only(obj, &["type", "block_id"], &at, &mut errs),
            Some(other) => errs.push(format!("unsupported block type {other:?} [json-pointer:{at}/type]")),
            None => errs.push(format!("missing required field: type [json-pointer:{at}]")),
        }
    }
    if errs.is_empty() { Ok(()) } else { Err(errs) }
}

fn only(obj: &Map<String, Value>, allowed: &[&str], at: &str, errs: &mut Vec<String>) {
    for k in obj.keys() {
        if !allowed.contains(&k.as_str()) {
            errs.push(format!("invalid additional property: {k} [json-pointer:{at}]"));
        }
    }
}

fn text_object(v: Option<&Value>, max: usize, at: &str, errs: &mut Vec<String>) {
    let Some(obj) = v.and_then(Value::as_object) else {
        errs.push(format!("must be a text object [json-pointer:{at}]"));
        return;
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("plain_text") => only(obj, &["type", "text", "emoji"], at, errs),
        Some("mrkdwn") => only(obj, &["type", "text", "verbatim"], at, errs),
        _ => errs.push(format!("must be plain_text or mrkdwn [json-pointer:{at}/type]")),
    }
    text_len(obj, max, at, errs);
    for flag in ["emoji", "verbatim"] {
        if obj.get(flag).is_some_and(|f| !f.is_boolean()) {
            errs.push(format!("must be a boolean [json-pointer:{at}/{flag}]"));
        }
    }
}

fn text_len(obj: &Map<String, Value>, max: usize, at: &str, errs: &mut Vec<String>) {
    match obj.get("text").and_then(Value::as_str) {
        Some("") => errs.push(format!("must be more than 0 characters [json-pointer:{at}/text]")),
        Some(t) if t.chars().count() > max => {
            errs.push(format!("must be less than {} characters [json-pointer:{at}/text]", max + 1))
        }
        Some(_) => {}
        None => errs.push(format!("missing required field: text [json-pointer:{at}]")),
    }
}

fn plain_text(v: Option<&Value>, max: usize, at: &str, errs: &mut Vec<String>) {
    match v.and_then(Value::as_object) {
        Some(obj) if obj.get("type").and_then(Value::as_str) == Some("plain_text") => {
            only(obj, &["type", "text", "emoji"], at, errs);
            text_len(obj, max, at, errs);
        }
        _ => errs.push(format!("must be a plain_text object [json-pointer:{at}]")),
    }
}

fn section(obj: &Map<String, Value>, at: &str, errs: &mut Vec<String>) {
    only(obj, &["type", "block_id", "text", "fields", "accessory", "expand"], at, errs);
    if obj.get("text").is_none() && obj.get("fields").is_none() {
        errs.push(format!("must provide either text or fields [json-pointer:{at}]"));
    }
    if let Some(t) = obj.get("text") {
        text_object(Some(t), 3000, &format!("{at}/text"), errs);
    }
    if let Some(f) = obj.get("fields") {
        match f.as_array() {
            Some(list) if !list.is_empty() && list.len() <= 10 => {
                for (i, item) in list.iter().enumerate() {
                    text_object(Some(item), 2000, &format!("{at}/fields/{i}"), errs);
                }
            }
            _ => errs.push(format!("must be an array of 1-10 text objects [json-pointer:{at}/fields]")),
        }
    }
    if let Some(acc) = obj.get("accessory")
        && acc.get("type").and_then(Value::as_str) != Some("button")
    {
        errs.push(format!("unsupported accessory [json-pointer:{at}/accessory]"));
    }
}

fn context_block(obj: &Map<String, Value>, at: &str, errs: &mut Vec<String>) {
    only(obj, &["type", "block_id", "elements"], at, errs);
    match obj.get("elements").and_then(Value::as_array) {
        Some(list) if !list.is_empty() && list.len() <= 10 => {
            for (i, e) in list.iter().enumerate() {
                let eat = format!("{at}/elements/{i}");
                match e.get("type").and_then(Value::as_str) {
                    Some("plain_text" | "mrkdwn") => text_object(Some(e), 3000, &eat, errs),
                    Some("image") => {}
                    _ => errs.push(format!("must be a text or image element [json-pointer:{eat}]")),
                }
            }
        }
        _ => errs.push(format!("must be an array of 1-10 elements [json-pointer:{at}/elements]")),
    }
}

fn actions(obj: &Map<String, Value>, at: &str, action_ids: &mut HashSet<String>, errs: &mut Vec<String>) {
    only(obj, &["type", "block_id", "elements"], at, errs);
    let Some(list) = obj.get("elements").and_then(Value::as_array).filter(|l| !l.is_empty() && l.len() <= 25) else {
        errs.push(format!("must be an array of 1-25 elements [json-pointer:{at}/elements]"));
        return;
    };
    for (i, e) in list.iter().enumerate() {
        let eat = format!("{at}/elements/{i}");
        let Some(b) = e.as_object().filter(|b| b.get("type").and_then(Value::as_str) == Some("button")) else {
            errs.push(format!("unsupported element type [json-pointer:{eat}/type]"));
            continue;
        };
        only(b, &["type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"], &eat, errs);
        plain_text(b.get("text"), 75, &format!("{eat}/text"), errs);
        if let Some(id) = b.get("action_id") {
            match id.as_str() {
                Some(s) if !s.is_empty() && s.len() <= 255 => {
                    if !action_ids.insert(s.to_string()) {
                        errs.push(format!("duplicate action_id [json-pointer:{eat}/action_id]"));
                    }
                }
                _ => errs.push(format!("must be a string of 1-255 characters [json-pointer:{eat}/action_id]")),
            }
        }
        if b.get("value").is_some_and(|v| v.as_str().is_none_or(|s| s.chars().count() > 2000)) {
            errs.push(format!("must be a string of at most 2000 characters [json-pointer:{eat}/value]"));
        }
        if let Some(s) = b.get("style")
            && !matches!(s.as_str(), Some("primary" | "danger"))
        {
            errs.push(format!("must be primary or danger [json-pointer:{eat}/style]"));
        }
        if let Some(c) = b.get("confirm") {
            confirm(c, &format!("{eat}/confirm"), errs);
        }
    }
}

fn confirm(c: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(obj) = c.as_object() else {
        errs.push(format!("must be a confirmation object [json-pointer:{at}]"));
        return;
    };
    only(obj, &["title", "text", "confirm", "deny", "style"], at, errs);
    plain_text(obj.get("title"), 100, &format!("{at}/title"), errs);
    text_object(obj.get("text"), 300, &format!("{at}/text"), errs);
    plain_text(obj.get("confirm"), 30, &format!("{at}/confirm"), errs);
    plain_text(obj.get("deny"), 30, &format!("{at}/deny"), errs);
}
