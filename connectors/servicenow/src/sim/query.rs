//! ServiceNow encoded queries (`sysparm_query`) as the simulator evaluates them: conditions
//! joined by `^` (AND) and `^OR` (OR), operators `=`, `!=`, `LIKE`, `STARTSWITH`, `ISEMPTY`,
//! `ISNOTEMPTY`, and `ORDERBY<col>` / `ORDERBYDESC<col>`.
//!
//! Like the real Table API, a condition on a column the table does not have is dropped
//! silently (unless the instance sets `glide.invalid_query.returns_no_rows`), which widens the
//! query: the simulator keeps that trap so the connector's guard against it is tested.

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Like,
    StartsWith,
    IsEmpty,
    IsNotEmpty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub column: String,
    pub op: Op,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// AND of OR-groups.
    pub groups: Vec<Vec<Cond>>,
    pub order: Vec<(String, bool)>,
}

fn cond(part: &str) -> Option<Cond> {
    let end = part
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(part.len());
    let (column, rest) = part.split_at(end);
    if column.is_empty() {
        return None;
    }
    let (op, value) = if let Some(v) = rest.strip_prefix("!=") {
        (Op::Ne, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (Op::Eq, v)
    } else if let Some(v) = rest.strip_prefix("LIKE") {
        (Op::Like, v)
    } else if let Some(v) = rest.strip_prefix("STARTSWITH") {
        (Op::StartsWith, v)
    } else if rest == "ISEMPTY" {
        (Op::IsEmpty, "")
    } else if rest == "ISNOTEMPTY" {
        (Op::IsNotEmpty, "")
    } else {
        return None;
    };
    Some(Cond { column: column.to_string(), op, value: value.to_string() })
}

/// Parses `q`, keeping only conditions on `columns` (the others are dropped, as ServiceNow does).
pub fn parse(q: &str, columns: &[&str]) -> Query {
    let mut out = Query::default();
    for (i, part) in q.split('^').enumerate() {
        if part.is_empty() || part == "NQ" || part == "EQ" {
            continue;
        }
        if let Some(col) = part.strip_prefix("ORDERBYDESC") {
            out.order.push((col.to_string(), true));
            continue;
        }
        if let Some(col) = part.strip_prefix("ORDERBY") {
            out.order.push((col.to_string(), false));
            continue;
        }
        let (is_or, body) = match part.strip_prefix("OR") {
            Some(rest) if i > 0 => (true, rest),
            _ => (false, part),
        };
        let Some(c) = cond(body) else { continue };
        if !columns.contains(&c.column.as_str()) {
            continue;
        }
        match (is_or, out.groups.last_mut()) {
            (true, Some(g)) => g.push(c),
            _ => out.groups.push(vec![c]),
        }
    }
    out
}

impl Cond {
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            Op::Eq => v == self.value,
            Op::Ne => v != self.value,
            Op::Like => v.to_lowercase().contains(&self.value.to_lowercase()),
            Op::StartsWith => v.to_lowercase().starts_with(&self.value.to_lowercase()),
            Op::IsEmpty => v.is_empty(),
            Op::IsNotEmpty => !v.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_or_order_and_drops_unknown_columns() {
        let cols = ["correlation_id", "active", "state", "sys_created_on"];
        let q = parse("correlation_id=fg-1^active=true^state=1^ORstate=2^ORDERBYsys_created_on", &cols);
        assert_eq!(q.groups.len(), 3);
        assert_eq!(q.groups[2].len(), 2);
        assert_eq!(q.order, vec![("sys_created_on".to_string(), false)]);
        let q = parse("corelation_id=fg-1", &cols);
        assert!(q.groups.is_empty(), "a typo widens the query, as on a real instance");
    }
}
