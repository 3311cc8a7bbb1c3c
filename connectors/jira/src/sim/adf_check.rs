//! How the simulator decides whether a v3 rich-text value is an Atlassian Document: the node
//! structure from Atlassian's ADF documentation (doc → blocks → inline), written independently
//! of the connector's own `adf` types so the simulator can catch the connector's mistakes.

use serde_json::Value;

const BLOCKS: &[&str] =
    &["paragraph", "heading", "bulletList", "orderedList", "table", "rule", "codeBlock", "blockquote", "panel"];
const INLINE: &[&str] = &["text", "hardBreak", "mention", "emoji", "inlineCard"];
const MARKS: &[&str] = &["strong", "em", "code", "link", "strike", "underline", "subsup", "textColor"];

/// `Ok` when `v` is an ADF document; otherwise where and why it is not.
pub fn check_doc(v: &Value) -> Result<(), String> {
    let o = v.as_object().ok_or("not an object")?;
    if o.get("type").and_then(Value::as_str) != Some("doc") {
        return Err("root node type must be \"doc\"".into());
    }
    if o.get("version").and_then(Value::as_u64) != Some(1) {
        return Err("doc.version must be 1".into());
    }
    let content = o.get("content").and_then(Value::as_array).ok_or("doc.content must be an array")?;
    for (i, b) in content.iter().enumerate() {
        check_block(b).map_err(|e| format!("content[{i}]: {e}"))?;
    }
    Ok(())
}

fn node_type(v: &Value) -> Result<&str, String> {
    v.get("type").and_then(Value::as_str).ok_or_else(|| "node without a type".to_string())
}

fn children(v: &Value) -> Result<&[Value], String> {
    match v.get("content") {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err("content must be an array".into()),
    }
}

fn check_block(v: &Value) -> Result<(), String> {
    let t = node_type(v)?;
    if !BLOCKS.contains(&t) {
        return Err(format!("{t:?} is not a block node"));
    }
    let kids = children(v)?;
    match t {
        "paragraph" | "codeBlock" => kids.iter().try_for_each(check_inline),
        "heading" => {
            let level = v.pointer("/attrs/level").and_then(Value::as_u64);
            if !matches!(level, Some(1..=6)) {
                return Err("heading.attrs.level must be 1-6".into());
            }
            kids.iter().try_for_each(check_inline)
        }
        "bulletList" | "orderedList" => {
            if kids.is_empty() {
                return Err(format!("{t} needs at least one listItem"));
            }
            kids.iter().try_for_each(|k| {
                if node_type(k)? != "listItem" {
                    return Err(format!("{t} may only hold listItem"));
                }
                children(k)?.iter().try_for_each(check_block)
            })
        }
        "table" => {
            if kids.is_empty() {
                return Err("table needs at least one tableRow".into());
            }
            kids.iter().try_for_each(|row| {
                if node_type(row)? != "tableRow" {
                    return Err("table may only hold tableRow".into());
                }
                children(row)?.iter().try_for_each(|cell| {
                    let ct = node_type(cell)?;
                    if ct != "tableCell" && ct != "tableHeader" {
                        return Err(format!("tableRow may not hold {ct:?}"));
                    }
                    children(cell)?.iter().try_for_each(check_block)
                })
            })
        }
        "blockquote" | "panel" => kids.iter().try_for_each(check_block),
        _ => Ok(()),
    }
}

fn check_inline(v: &Value) -> Result<(), String> {
    let t = node_type(v)?;
    if !INLINE.contains(&t) {
        return Err(format!("{t:?} is not an inline node"));
    }
    if t == "text" {
        let text = v.get("text").and_then(Value::as_str).ok_or("text node without text")?;
        if text.is_empty() {
            return Err("text nodes must not be empty".into());
        }
        if let Some(marks) = v.get("marks") {
            for m in marks.as_array().ok_or("marks must be an array")? {
                let mt = node_type(m)?;
                if !MARKS.contains(&mt) {
                    return Err(format!("unknown mark {mt:?}"));
                }
                if mt == "link" && v.is_object() && m.pointer("/attrs/href").and_then(Value::as_str).is_none() {
                    return Err("link mark needs attrs.href".into());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_documents_and_rejects_strings_and_bad_nodes() {
        check_doc(
            &json!({"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":"x"}]}]}),
        )
        .unwrap();
        assert!(check_doc(&json!("plain")).is_err());
        assert!(check_doc(&json!({"type":"doc","version":1,"content":[{"type":"text","text":"x"}]})).is_err());
        assert!(check_doc(&json!({"type":"doc","version":1,"content":[{"type":"paragraph","content":[{"type":"text","text":""}]}]})).is_err());
        assert!(check_doc(&json!({"type":"doc","version":1,"content":[{"type":"table","content":[{"type":"tableRow","content":[{"type":"paragraph"}]}]}]})).is_err());
    }
}
