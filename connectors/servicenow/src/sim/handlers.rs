//! Table API handlers of the ServiceNow simulator: list with encoded queries, read one record,
//! create and update (journal appends, reference checks, the resolution data policy).

use super::*;

/// A JSON object body, refused the way the Table API refuses it.
fn object_body(h: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Response> {
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(sn_error(415, "Unsupported Media Type", Some("Content-Type must be application/json")));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(sn_error(400, "Exception while reading request", Some("The payload is not valid JSON."))),
    }
}

/// The Table API's string form of a JSON value; objects and arrays are not field values.
fn as_field(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Applies written fields to a record: journal fields append, references must name an
/// existing record (others are dropped, leaving the field empty), unknown columns are ignored.
fn apply(st: &mut SimState, def: &TableDef, rec: &mut SimRecord, body: &Map<String, Value>) {
    for (k, v) in body {
        let Some(val) = as_field(v) else { continue };
        if !def.columns.contains(&k.as_str()) || READ_ONLY.contains(&k.as_str()) {
            continue;
        }
        if JOURNAL.contains(&k.as_str()) {
            if !val.trim().is_empty() {
                st.seq += 1;
                rec.journal.push(JournalEntry { element: k.clone(), value: val, seq: st.seq });
            }
            continue;
        }
        if let Some((_, target)) = def.references.iter().find(|(c, _)| c == k) {
            let exists = st.records.get(target).is_some_and(|rs| rs.iter().any(|r| r.sys_id == val));
            rec.fields.insert(k.clone(), if exists { val } else { String::new() });
            continue;
        }
        rec.fields.insert(k.clone(), val);
    }
    let p = priority(rec.get("impact"), rec.get("urgency"));
    rec.fields.insert("priority".into(), p.into());
    let active = !matches!(rec.get("state"), "7" | "8");
    rec.fields.insert("active".into(), active.to_string());
    st.seq += 1;
    rec.fields.insert("sys_updated_on".into(), timestamp(st.seq));
}

/// The default data policy: resolving or closing needs a resolution code and notes.
fn data_policy(rec: &SimRecord) -> Result<(), Response> {
    if matches!(rec.get("state"), "6" | "7") {
        let mut missing = Vec::new();
        if rec.get("close_code").is_empty() {
            missing.push("Resolution code");
        }
        if rec.get("close_notes").is_empty() {
            missing.push("Resolution notes");
        }
        if !missing.is_empty() {
            return Err(sn_error(
                403,
                "Operation Failed",
                Some(&format!(
                    "Data Policy Exception: \n The following fields are mandatory: {}\n",
                    missing.join(", ")
                )),
            ));
        }
    }
    Ok(())
}

pub(super) async fn list(
    State(inner): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = authorize(&h) {
        return r;
    }
    let def = match known_table(&t) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let how = Render::from(&q);
    let parsed = query::parse(&how.query, def.columns);
    let st = lock(&inner.state);
    let mut rows: Vec<&SimRecord> = st
        .records
        .get(def.name)
        .map(|rs| {
            rs.iter().filter(|r| parsed.groups.iter().all(|g| g.iter().any(|c| c.matches(r.get(&c.column))))).collect()
        })
        .unwrap_or_default();
    rows.sort_by_key(|r| r.seq);
    for (col, desc) in parsed.order.iter().rev() {
        if col == "sys_created_on" {
            rows.sort_by_key(|r| r.seq);
        } else {
            rows.sort_by(|a, b| a.get(col).cmp(b.get(col)));
        }
        if *desc {
            rows.reverse();
        }
    }
    let total = rows.len();
    let result: Vec<Value> =
        rows.into_iter().skip(how.offset).take(how.limit).map(|r| inner.render(&st, def, r, &how)).collect();
    let mut resp = axum::Json(json!({"result": result})).into_response();
    resp.headers_mut().insert("x-total-count", total.into());
    resp
}

pub(super) async fn get_one(
    State(inner): State<Shared>,
    h: HeaderMap,
    Path((t, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Err(r) = authorize(&h) {
        return r;
    }
    let def = match known_table(&t) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let how = Render::from(&q);
    let st = lock(&inner.state);
    match st.records.get(def.name).and_then(|rs| rs.iter().find(|r| r.sys_id == id)) {
        Some(rec) => axum::Json(json!({"result": inner.render(&st, def, rec, &how)})).into_response(),
        None => not_found(),
    }
}

pub(super) async fn create(
    State(inner): State<Shared>,
    h: HeaderMap,
    Path(t): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&h) {
        return r;
    }
    let def = match known_table(&t) {
        Ok(d) => d,
        Err(r) => return r,
    };
    if !def.writable {
        return sn_error(403, "Operation Failed", Some("ACL Exception Insert Failed due to security constraints"));
    }
    let fields = match object_body(&h, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let how = Render::from(&q);
    let mut st = lock(&inner.state);
    st.seq += 1;
    let seq = st.seq;
    let id = sys_id(seq);
    let number = format!("INC{:07}", st.next_number);
    let mut rec = SimRecord { sys_id: id.clone(), fields: BTreeMap::new(), journal: Vec::new(), seq };
    for (k, v) in
        [("sys_id", id.as_str()), ("number", number.as_str()), ("state", "1"), ("urgency", "3"), ("impact", "3")]
    {
        rec.fields.insert(k.into(), v.into());
    }
    rec.fields.insert("opened_at".into(), timestamp(seq));
    rec.fields.insert("sys_created_on".into(), timestamp(seq));
    apply(&mut st, def, &mut rec, &fields);
    if let Err(r) = data_policy(&rec) {
        return r;
    }
    st.next_number += 1;
    let rendered = inner.render(&st, def, &rec, &how);
    st.records.entry(def.name).or_default().push(rec);
    if st.lose_create_answers > 0 {
        st.lose_create_answers -= 1;
        return (StatusCode::GATEWAY_TIMEOUT, "<html><body>504 Gateway Time-out</body></html>").into_response();
    }
    let location = format!("{}/api/now/table/{}/{id}", inner.base(), def.name);
    let mut resp = (StatusCode::CREATED, axum::Json(json!({"result": rendered}))).into_response();
    if let Ok(v) = location.parse() {
        resp.headers_mut().insert("location", v);
    }
    resp
}

pub(super) async fn update(
    State(inner): State<Shared>,
    h: HeaderMap,
    Path((t, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    if let Err(r) = authorize(&h) {
        return r;
    }
    let def = match known_table(&t) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let fields = match object_body(&h, &body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let how = Render::from(&q);
    let mut st = lock(&inner.state);
    let Some(pos) = st.records.get(def.name).and_then(|rs| rs.iter().position(|r| r.sys_id == id)) else {
        return not_found();
    };
    if !def.writable {
        return sn_error(403, "Operation Failed", Some("ACL Exception Update Failed due to security constraints"));
    }
    let Some(mut rec) = st.records.get(def.name).and_then(|rs| rs.get(pos)).cloned() else {
        return not_found();
    };
    apply(&mut st, def, &mut rec, &fields);
    if let Err(r) = data_policy(&rec) {
        return r;
    }
    let rendered = inner.render(&st, def, &rec, &how);
    if let Some(slot) = st.records.get_mut(def.name).and_then(|rs| rs.get_mut(pos)) {
        *slot = rec;
    }
    axum::Json(json!({"result": rendered})).into_response()
}
