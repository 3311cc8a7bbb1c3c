//! Search endpoints of the Jira simulator: Cloud's `/search/jql` (token pagination, ids only by
//! default, strict request bean), Data Center's `/search` (`startAt`/`total`), and Cloud's removed
//! `/search` answering 410.

use super::*;

/// Runs a JQL query over the issues, answering Jira's 400s for queries it cannot run.
fn run_jql(st: &SimState, jql: &str) -> Result<Vec<SimIssue>, Response> {
    let q = jql::parse(jql).map_err(|e| jira_error(400, &[&e], &[]))?;
    for c in &q.clauses {
        if c.field == jql::Field::Project {
            for p in &c.values {
                if !st.projects.iter().any(|x| x.key.eq_ignore_ascii_case(p) || x.id == *p) {
                    return Err(jira_error(
                        400,
                        &[&format!("The value '{p}' does not exist for the field 'project'.")],
                        &[],
                    ));
                }
            }
        }
    }
    let matches = |i: &SimIssue, c: &jql::Clause| {
        let hit = c.values.iter().any(|v| match c.field {
            jql::Field::Labels => i.labels.iter().any(|l| l == v),
            jql::Field::Project => i.project.eq_ignore_ascii_case(v),
            jql::Field::Key => i.key.eq_ignore_ascii_case(v) || i.id == *v,
            jql::Field::Status => i.status.eq_ignore_ascii_case(v),
            jql::Field::StatusCategory => STATUSES
                .iter()
                .find(|s| s.1 == i.status)
                .is_some_and(|s| s.3.eq_ignore_ascii_case(v) || s.2.eq_ignore_ascii_case(v)),
        });
        hit != c.negated
    };
    let mut found: Vec<SimIssue> =
        st.issues.iter().filter(|i| q.clauses.iter().all(|c| matches(i, c))).cloned().collect();
    match q.order {
        Some((_, desc)) => {
            found.sort_by_key(|i| i.seq);
            if desc {
                found.reverse();
            }
        }
        None => found.sort_by_key(|i| std::cmp::Reverse(i.seq)),
    }
    Ok(found)
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

struct SearchArgs {
    jql: String,
    next_page_token: Option<String>,
    start_at: usize,
    max_results: usize,
    fields: Option<Vec<String>>,
}

const JQL_BEAN_KEYS: [&str; 8] =
    ["expand", "fields", "fieldsByKeys", "jql", "maxResults", "nextPageToken", "properties", "reconcileIssues"];
const V2_SEARCH_KEYS: [&str; 8] =
    ["jql", "startAt", "maxResults", "fields", "expand", "validateQuery", "properties", "fieldsByKeys"];

fn search_args_from_body(v: &Value, allowed: &[&str]) -> Result<SearchArgs, Response> {
    let Some(o) = v.as_object() else {
        return Err(jira_error(400, &["The request body must be a JSON object."], &[]));
    };
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(jira_error(400, &[&format!("Unrecognized field \"{k}\" in the request body.")], &[]));
    }
    let fields = match o.get("fields") {
        None => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|f| f.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| jira_error(400, &["fields must be an array of strings."], &[]))?,
        ),
        Some(_) => {
            return Err(jira_error(400, &["fields must be an array of strings."], &[]));
        }
    };
    let num = |k: &str, default: usize| match o.get(k) {
        None => Ok(default),
        Some(n) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| jira_error(400, &[&format!("{k} must be a non-negative integer.")], &[])),
    };
    Ok(SearchArgs {
        jql: o.get("jql").and_then(Value::as_str).unwrap_or("").to_string(),
        next_page_token: o.get("nextPageToken").and_then(Value::as_str).map(str::to_string),
        start_at: num("startAt", 0)?,
        max_results: num("maxResults", 50)?,
        fields,
    })
}

fn search_args_from_query(q: &Option<String>) -> SearchArgs {
    let mut a = SearchArgs { jql: String::new(), next_page_token: None, start_at: 0, max_results: 50, fields: None };
    for (k, v) in query_pairs(q) {
        match k.as_str() {
            "jql" => a.jql = v,
            "nextPageToken" => a.next_page_token = Some(v),
            "startAt" => a.start_at = v.parse().unwrap_or(0),
            "maxResults" => a.max_results = v.parse().unwrap_or(50),
            "fields" => a.fields.get_or_insert_with(Vec::new).extend(v.split(',').map(str::to_string)),
            _ => {}
        }
    }
    a
}

/// `/rest/api/3/search/jql`: token pagination, ids only unless fields are asked for.
fn search_jql(inner: &Inner, a: SearchArgs) -> Response {
    let st = lock(&inner.state);
    let found = match run_jql(&st, &a.jql) {
        Ok(f) => f,
        Err(r) => return r,
    };
    drop(st);
    let offset = match &a.next_page_token {
        None => 0,
        Some(t) => {
            let prefix = format!("fgsim-{:016x}-", fnv(&a.jql));
            match t.strip_prefix(&prefix).and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => n,
                None => {
                    return jira_error(400, &["The provided next page token is invalid or expired."], &[]);
                }
            }
        }
    };
    let max = if a.max_results == 0 { 50 } else { a.max_results.min(5000) };
    let ids_only = a.fields.as_ref().is_none_or(|f| f.iter().all(|x| x == "id"));
    let page: Vec<Value> = found
        .iter()
        .skip(offset)
        .take(max)
        .map(|i| if ids_only { json!({"id": i.id}) } else { inner.issue_json(i, a.fields.as_deref()) })
        .collect();
    let is_last = offset + page.len() >= found.len();
    let mut body = json!({"issues": page, "isLast": is_last});
    if !is_last {
        body["nextPageToken"] = json!(format!("fgsim-{:016x}-{}", fnv(&a.jql), offset + max));
    }
    axum::Json(body).into_response()
}

/// Data Center `/rest/api/2/search`: `startAt`/`total` pagination, full issues.
fn search_v2(inner: &Inner, a: SearchArgs) -> Response {
    let st = lock(&inner.state);
    let found = match run_jql(&st, &a.jql) {
        Ok(f) => f,
        Err(r) => return r,
    };
    drop(st);
    let max = if a.max_results == 0 { 50 } else { a.max_results.min(1000) };
    let page: Vec<Value> =
        found.iter().skip(a.start_at).take(max).map(|i| inner.issue_json(i, a.fields.as_deref())).collect();
    axum::Json(json!({"expand": "schema,names", "startAt": a.start_at, "maxResults": max, "total": found.len(), "issues": page}))
        .into_response()
}

pub(super) async fn search_jql_post(State(inner): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    let args = match json_body(&h, &body).and_then(|v| search_args_from_body(&v, &JQL_BEAN_KEYS)) {
        Ok(a) => a,
        Err(r) => return r,
    };
    search_jql(&inner, args)
}

pub(super) async fn search_jql_get(State(inner): State<Shared>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    search_jql(&inner, search_args_from_query(&q))
}

pub(super) async fn search_v2_post(State(inner): State<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    let args = match json_body(&h, &body).and_then(|v| search_args_from_body(&v, &V2_SEARCH_KEYS)) {
        Ok(a) => a,
        Err(r) => return r,
    };
    search_v2(&inner, args)
}

pub(super) async fn search_v2_get(State(inner): State<Shared>, h: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if let Err(r) = authorize(&inner, &h) {
        return r;
    }
    search_v2(&inner, search_args_from_query(&q))
}

/// Jira Cloud removed the old search endpoints in favour of `/search/jql`.
pub(super) async fn search_removed() -> Response {
    jira_error(410, &["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."], &[])
}
