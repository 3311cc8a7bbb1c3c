//! Issue endpoints of the Jira simulator: create (with Jira's field validation), read, and
//! workflow transitions.

use super::*;

pub(super) async fn create_issue(State(inner): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    let v = match json_body(&h, &body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(fields) = v.get("fields").and_then(Value::as_object) else {
        return jira_error(400, &["Can not deserialize instance of fields: an object is required"], &[]);
    };
    let mut errors = BTreeMap::new();
    let mut st = lock(&inner.state);
    let project_idx = match reference(fields.get("project"), &["key", "id"]) {
        Some((_, p)) => st.projects.iter().position(|x| x.key == p || x.id == p),
        None => None,
    };
    if project_idx.is_none() {
        errors.insert("project".to_string(), "valid project is required".to_string());
    }
    let issue_type = match (project_idx, reference(fields.get("issuetype"), &["name", "id"])) {
        (Some(pi), Some((_, t))) => {
            st.projects[pi].issue_types.iter().find(|(id, name)| *id == t || *name == t).map(|(_, n)| n.to_string())
        }
        _ => None,
    };
    if issue_type.is_none() {
        errors.insert("issuetype".into(), "Specify a valid issue type".into());
    }
    let summary = fields.get("summary").and_then(Value::as_str).unwrap_or("").to_string();
    if summary.trim().is_empty() {
        errors.insert("summary".into(), "You must specify a summary of the issue.".into());
    } else if summary.chars().count() > 255 {
        errors.insert("summary".into(), "Summary must be less than 255 characters.".into());
    } else if summary.contains('\n') || summary.contains('\r') {
        errors.insert("summary".into(), "The summary is invalid because it contains newline characters.".into());
    }
    let description = fields.get("description").cloned().unwrap_or(Value::Null);
    if !description.is_null()
        && let Err(e) = inner.check_rich_text(&description)
    {
        errors.insert("description".into(), e);
    }
    let mut labels = Vec::new();
    match fields.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for l in items {
                match l.as_str() {
                    Some(s) if s.chars().any(char::is_whitespace) => {
                        errors.insert("labels".into(), format!("The label '{s}' contains spaces which is invalid."));
                    }
                    Some(s) if !s.is_empty() && s.chars().count() <= 255 => labels.push(s.to_string()),
                    _ => {
                        errors.insert("labels".into(), "Labels must be strings of 1 to 255 characters.".into());
                    }
                }
            }
        }
        Some(_) => {
            errors.insert("labels".into(), "Operation value must be an array of strings".into());
        }
    }
    let priority = match fields.get("priority") {
        None | Some(Value::Null) => None,
        p => match reference(p, &["name", "id"]) {
            Some((_, x)) => match PRIORITIES.iter().find(|(id, name)| *id == x || *name == x) {
                Some((_, name)) => Some(name.to_string()),
                None => {
                    errors.insert("priority".into(), format!("Priority name '{x}' is not valid"));
                    None
                }
            },
            None => {
                errors.insert("priority".into(), "Specify the Priority (id or name) in the string format".into());
                None
            }
        },
    };
    let mut custom = BTreeMap::new();
    for (k, val) in fields {
        if matches!(k.as_str(), "project" | "issuetype" | "summary" | "description" | "labels" | "priority") {
            continue;
        }
        if k == SIM_CUSTOM_FIELD {
            if val.is_string() {
                custom.insert(k.clone(), val.clone());
            } else {
                errors.insert(k.clone(), "Operation value must be a string".into());
            }
        } else {
            errors.insert(
                k.clone(),
                format!("Field '{k}' cannot be set. It is not on the appropriate screen, or unknown."),
            );
        }
    }
    if !errors.is_empty() {
        drop(st);
        return field_errors(errors);
    }
    let Some(pi) = project_idx else {
        return jira_error(500, &["project vanished"], &[]);
    };
    let number = st.projects[pi].next_number;
    st.projects[pi].next_number += 1;
    let key = format!("{}-{number}", st.projects[pi].key);
    let project = st.projects[pi].key.clone();
    let id = st.next_issue_id.to_string();
    st.next_issue_id += 1;
    st.seq += 1;
    let seq = st.seq;
    st.issues.push(SimIssue {
        id: id.clone(),
        key: key.clone(),
        project,
        issue_type: issue_type.unwrap_or_default(),
        summary,
        description,
        labels,
        priority,
        status: "To Do".into(),
        resolution: None,
        custom_fields: custom,
        comments: Vec::new(),
        seq,
    });
    if st.lose_create_answers > 0 {
        st.lose_create_answers -= 1;
        return (StatusCode::GATEWAY_TIMEOUT, "<html><body>504 Gateway Time-out</body></html>").into_response();
    }
    let url = format!("{}{}/issue/{id}", inner.base(), inner.flavor.api());
    (StatusCode::CREATED, axum::Json(json!({"id": id, "key": key, "self": url}))).into_response()
}

pub(super) async fn get_issue(
    State(inner): State<Shared>,
    h: HeaderMap,
    Path(key): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    let fields: Option<Vec<String>> = query_pairs(&q)
        .into_iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .reduce(|mut a, b| {
            a.extend(b);
            a
        });
    let mut st = lock(&inner.state);
    match find_issue(&mut st, &key) {
        Some(i) => {
            let i = i.clone();
            drop(st);
            axum::Json(inner.issue_json(&i, fields.as_deref())).into_response()
        }
        None => not_found_issue(),
    }
}

pub(super) async fn get_transitions(State(inner): State<Shared>, h: HeaderMap, Path(key): Path<String>) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    let mut st = lock(&inner.state);
    let Some(issue) = find_issue(&mut st, &key) else {
        return not_found_issue();
    };
    let list: Vec<Value> = transitions_from(&issue.status)
        .into_iter()
        .map(|(id, name, to)| {
            let (sid, _, ckey, cname) =
                STATUSES.iter().find(|s| s.1 == to).copied().unwrap_or(("1", to, "undefined", ""));
            json!({"id": id, "name": name, "hasScreen": to == "Done", "isAvailable": true,
                   "isConditional": false, "isGlobal": false, "isInitial": false, "isLooped": false,
                   "to": {"id": sid, "name": to, "statusCategory": {"key": ckey, "name": cname}}})
        })
        .collect();
    axum::Json(json!({"expand": "transitions", "transitions": list})).into_response()
}

pub(super) async fn do_transition(
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
    let Some(issue) = find_issue(&mut st, &key) else {
        return not_found_issue();
    };
    let id = match v.pointer("/transition/id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return jira_error(400, &["Missing 'transition' identifier"], &[]),
    };
    let Some((_, _, to)) = transitions_from(&issue.status).into_iter().find(|t| t.0 == id) else {
        return jira_error(400, &[&format!("Transition id '{id}' is not valid for this issue.")], &[]);
    };
    let mut errors = BTreeMap::new();
    let mut resolution = None;
    if let Some(fields) = v.get("fields") {
        let Some(fields) = fields.as_object() else {
            return jira_error(400, &["fields must be an object"], &[]);
        };
        for (k, val) in fields {
            if k == "resolution" && to == "Done" {
                match reference(Some(val), &["name", "id"]) {
                    Some((_, r)) if RESOLUTIONS.contains(&r) => resolution = Some(r.to_string()),
                    Some((_, r)) => {
                        errors.insert(k.clone(), format!("Resolution '{r}' is not valid"));
                    }
                    None => {
                        errors.insert(k.clone(), "Specify the resolution (id or name)".into());
                    }
                }
            } else {
                errors.insert(
                    k.clone(),
                    format!("Field '{k}' cannot be set. It is not on the appropriate screen, or unknown."),
                );
            }
        }
    }
    let mut new_comments = Vec::new();
    if let Some(update) = v.get("update") {
        let Some(update) = update.as_object() else {
            return jira_error(400, &["update must be an object"], &[]);
        };
        for (k, ops) in update {
            if k != "comment" {
                errors.insert(
                    k.clone(),
                    format!("Field '{k}' cannot be set. It is not on the appropriate screen, or unknown."),
                );
                continue;
            }
            for op in ops.as_array().map(Vec::as_slice).unwrap_or_default() {
                match op.pointer("/add/body") {
                    Some(b) => match inner.check_rich_text(b) {
                        Ok(()) => new_comments.push(b.clone()),
                        Err(e) => {
                            errors.insert("comment".into(), e);
                        }
                    },
                    None => {
                        errors.insert("comment".into(), "Comment body can not be empty!".into());
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        drop(st);
        return field_errors(errors);
    }
    issue.status = to.to_string();
    issue.resolution = if to == "Done" { Some(resolution.unwrap_or_else(|| "Done".into())) } else { None };
    let issue_key = issue.key.clone();
    for body in new_comments {
        let cid = st.next_comment_id.to_string();
        st.next_comment_id += 1;
        if let Some(i) = find_issue(&mut st, &issue_key) {
            i.comments.push(SimComment { id: cid, body, properties: Vec::new() });
        }
    }
    StatusCode::NO_CONTENT.into_response()
}
