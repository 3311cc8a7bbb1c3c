//! Comment endpoints of the Jira simulator: list an issue's comments, add one (ADF on v3,
//! string on v2, with comment properties), and read comments by id with their properties.

use super::*;

pub(super) async fn list_comments(
    State(inner): State<Shared>,
    h: HeaderMap,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    let mut start = 0usize;
    let mut max = 100usize;
    let mut newest_first = false;
    for (k, v) in query_pairs(&q) {
        match k.as_str() {
            "startAt" => start = v.parse().unwrap_or(0),
            "maxResults" => max = v.parse().unwrap_or(100).clamp(1, 100),
            "orderBy" => match v.as_str() {
                "created" | "+created" => newest_first = false,
                "-created" => newest_first = true,
                _ => return jira_error(400, &[&format!("Invalid orderBy value '{v}'.")], &[]),
            },
            _ => {}
        }
    }
    let mut st = lock(&inner.state);
    let Some(issue) = find_issue(&mut st, &key).map(|i| i.clone()) else {
        return not_found_issue();
    };
    drop(st);
    let mut comments: Vec<&SimComment> = issue.comments.iter().collect();
    if newest_first {
        comments.reverse();
    }
    let total = comments.len();
    let page: Vec<Value> =
        comments.into_iter().skip(start).take(max).map(|c| inner.comment_json(&issue, c, false)).collect();
    axum::Json(json!({"startAt": start, "maxResults": max, "total": total, "comments": page})).into_response()
}

fn parse_properties(v: Option<&Value>) -> Result<Vec<(String, Value)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| match (p.get("key").and_then(Value::as_str), p.get("value")) {
                (Some(k), Some(val)) if !k.is_empty() && k.len() <= 255 => Ok((k.to_string(), val.clone())),
                _ => Err("Each property needs a key (1-255 characters) and a value.".to_string()),
            })
            .collect(),
        Some(_) => Err("properties must be an array".into()),
    }
}

pub(super) async fn add_comment(
    State(inner): State<Shared>,
    h: HeaderMap,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    let v = match json_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut st = lock(&inner.state);
    if find_issue(&mut st, &key).is_none() {
        return not_found_issue();
    }
    let Some(text) = v.get("body").filter(|b| !b.is_null()) else {
        return jira_error(400, &[], &[("comment", "Comment body can not be empty!".into())]);
    };
    if let Err(e) = inner.check_rich_text(text) {
        return jira_error(400, &[], &[("comment", e)]);
    }
    let properties = match parse_properties(v.get("properties")) {
        Ok(p) => p,
        Err(e) => return jira_error(400, &[&e], &[]),
    };
    let id = st.next_comment_id.to_string();
    st.next_comment_id += 1;
    let comment = SimComment { id, body: text.clone(), properties };
    let Some(issue) = find_issue(&mut st, &key) else {
        return not_found_issue();
    };
    issue.comments.push(comment.clone());
    let issue = issue.clone();
    drop(st);
    (StatusCode::CREATED, axum::Json(inner.comment_json(&issue, &comment, false))).into_response()
}

pub(super) async fn comments_by_id(
    State(inner): State<Shared>,
    h: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    let v = match json_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let expand = query_pairs(&q)
        .into_iter()
        .filter(|(k, _)| k == "expand")
        .any(|(_, v)| v.split(',').any(|e| e == "properties"));
    let Some(ids) = v.get("ids").and_then(Value::as_array) else {
        return jira_error(400, &["The list of comment IDs is required."], &[]);
    };
    if v.as_object().is_some_and(|o| o.keys().any(|k| k != "ids")) {
        return jira_error(400, &["Unrecognized field in the request body; only \"ids\" is allowed."], &[]);
    }
    let mut wanted = Vec::new();
    for id in ids {
        match id.as_i64() {
            Some(n) => wanted.push(n.to_string()),
            None => return jira_error(400, &["Comment IDs must be integers."], &[]),
        }
    }
    if wanted.len() > 1000 {
        return jira_error(400, &["A maximum of 1000 IDs can be specified."], &[]);
    }
    let st = lock(&inner.state);
    let mut values = Vec::new();
    for issue in &st.issues {
        for c in &issue.comments {
            if wanted.contains(&c.id) {
                values.push(inner.comment_json(issue, c, expand));
            }
        }
    }
    let total = values.len();
    axum::Json(json!({"isLast": true, "maxResults": 1000, "startAt": 0, "total": total, "values": values}))
        .into_response()
}
